//! Telling a configuration's format from its content ([`detect`]), for [`super::load`].

use std::path::Path;

use super::ConfigError;

/// A configuration file format lvs reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// lvs's own TOML.
    Toml,
    /// ldirectord.cf.
    Ldirectord,
    /// keepalived.conf (its LVS part).
    Keepalived,
    /// ipvsadm rules: `ipvsadm-save` output, or lines of ipvsadm commands as `ipvsadm -R`
    /// reads them.
    Ipvsadm,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Ldirectord => "ldirectord.cf",
            Format::Keepalived => "keepalived.conf",
            Format::Ipvsadm => "ipvsadm rules",
        })
    }
}

/// keepalived's top-level keywords that open a block, for [`detect`].
const KEEPALIVED_BLOCKS: &[&str] = &[
    "global_defs",
    "virtual_server",
    "virtual_server_group",
    "vrrp_instance",
    "vrrp_sync_group",
    "vrrp_script",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_interfaces",
    "track_file",
    "bfd_instance",
];

/// Tells the format of `text` (read from `path`): a `*.toml` file is TOML (as before); else
/// the first line that is neither blank nor a comment decides: a keepalived keyword that opens
/// a block (`virtual_server`, `global_defs`, `vrrp_instance`...) or `include`, or any line
/// ending in `{`, is keepalived.conf; a `[table]` header (there or on any later line) is TOML;
/// `key=value` (or ldirectord's bare `supervised`) is ldirectord.cf; an ipvsadm option
/// (`-A`, `-a`, `--set`...) or the word `ipvsadm` first is ipvsadm rules (`ipvsadm-save`). A file with no such line is ldirectord.cf (an empty
/// configuration, as before); any other first line is [`ConfigError::UnknownFormat`].
pub fn detect(path: &Path, text: &str) -> Result<Format, ConfigError> {
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok(Format::Toml);
    }
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let first = line
            .split(|c: char| c.is_whitespace() || c == '{')
            .next()
            .unwrap_or_default();
        if KEEPALIVED_BLOCKS.contains(&first)
            || first.starts_with("vrrp_")
            || first.starts_with("include")
            || first.starts_with('$')
            || first.starts_with('@')
            || line.ends_with('{')
        {
            return Ok(Format::Keepalived);
        }
        // TOML's global keys come before its first table: any `[table]` line makes it TOML
        // (ldirectord.cf has none).
        if line.starts_with('[')
            || text
                .lines()
                .any(|l| l.trim_start().starts_with('[') && l.trim_end().ends_with(']'))
        {
            return Ok(Format::Toml);
        }
        if is_ipvsadm_line(first) {
            return Ok(Format::Ipvsadm);
        }
        let key_value = line.split_once('=').is_some_and(|(k, _)| {
            let k = k.trim();
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if key_value || line == "supervised" {
            return Ok(Format::Ldirectord);
        }
        return Err(ConfigError::UnknownFormat {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.chars().take(60).collect(),
        });
    }
    Ok(Format::Ldirectord)
}

/// Whether a line's first word starts ipvsadm rules: `ipvsadm`, or an option such as `-A`,
/// `-At`, `--add-service` or `--set`.
fn is_ipvsadm_line(first: &str) -> bool {
    first == "ipvsadm"
        || first
            .strip_prefix("--")
            .or_else(|| first.strip_prefix('-'))
            .and_then(|o| o.chars().next())
            .is_some_and(|c| c.is_ascii_alphabetic())
}

/// Telling the format from the content, and `--format`.
#[cfg(test)]
mod format_tests {
    use super::*;
    use crate::config::{load, load_as};
    use crate::testdir::TestDir;

    fn fmt(name: &str, text: &str) -> Result<Format, String> {
        detect(Path::new(name), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_content_tells_the_format() {
        for (text, want) in [
            (
                "! Configuration File for keepalived\n\nglobal_defs {\n}\n",
                Format::Keepalived,
            ),
            ("# x\nvirtual_server 10.0.0.1 80 {\n}\n", Format::Keepalived),
            ("vrrp_instance VI_1\n{\n}\n", Format::Keepalived),
            ("include /etc/keepalived/*.conf\n", Format::Keepalived),
            ("[[virtual]]\naddress = \"10.0.0.1:80\"\n", Format::Toml),
            (
                "checkinterval = 5\n\n[[virtual]]\naddress = \"10.0.0.1:80\"\n",
                Format::Toml,
            ),
            (
                "# c\nchecktimeout=3\nvirtual=10.0.0.1:80\n",
                Format::Ldirectord,
            ),
            ("logfile = \"local0\"\n", Format::Ldirectord),
            ("supervised\n", Format::Ldirectord),
            ("", Format::Ldirectord),
            ("# only comments\n", Format::Ldirectord),
            (
                "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n",
                Format::Ipvsadm,
            ),
            ("\nipvsadm -At 10.0.0.1:80 -s rr\n", Format::Ipvsadm),
            ("--set 900 120 300\n", Format::Ipvsadm),
        ] {
            assert_eq!(fmt("lvs.conf", text), Ok(want), "{text:?}");
        }
        // A .toml file stays TOML whatever it holds (its errors are TOML errors, as before).
        assert_eq!(fmt("a.toml", "virtual=10.0.0.1:80\n"), Ok(Format::Toml));
    }

    #[test]
    fn a_file_in_no_format_names_the_formats_lvs_reads() {
        let e = fmt("rules", "# a script\nsudo ipvsadm -A -t 10.0.0.1:80\n").unwrap_err();
        assert!(
            e.starts_with(
                "rules:2: cannot tell the configuration's format from `sudo ipvsadm -A -t 10.0.0.1:80`"
            ),
            "{e}"
        );
        assert!(
            e.contains("lvs reads keepalived.conf")
                && e.contains("TOML")
                && e.contains("ldirectord.cf"),
            "{e}"
        );
        assert!(e.contains("ipvsadm rules"), "{e}");
        assert!(
            e.contains("--format toml|ldirectord|keepalived|ipvsadm"),
            "{e}"
        );
    }

    #[test]
    fn format_overrides_the_content() {
        let dir = TestDir::new("config-format");
        let f = dir.join("lvs.conf");
        // TOML without a table header looks like ldirectord.cf (and fails as such)...
        std::fs::write(&f, "allow_empty = true\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("allow_empty: must be 'yes' or 'no'"), "{e}");
        // ... and reads as TOML when told so.
        assert!(load_as(&f, Some(Format::Toml)).unwrap().globals.allow_empty);
        // The other way round: ldirectord text in a .toml file.
        let t = dir.join("lvs.toml");
        std::fs::write(&t, "virtual=10.0.0.1:80\n").unwrap();
        assert!(load(&t).is_err());
        assert_eq!(
            load_as(&t, Some(Format::Ldirectord))
                .unwrap()
                .virtuals
                .len(),
            1
        );
    }
}
