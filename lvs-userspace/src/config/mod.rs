//! Configuration: the model ([`model`]) and its two readers, TOML ([`toml`]) and
//! ldirectord.cf ([`ldirectord`]).
//!
//! Both readers only deal with syntax: they turn text into the same raw, still unchecked
//! description (`config/raw.rs`), and one function (`raw::resolve`) applies ldirectord's defaults,
//! refuses what lvs cannot do and builds the [`Config`]. [`validate`] then catches the
//! cross-cutting mistakes (duplicates, family mismatches, limits).

pub mod ldirectord;
pub mod model;
mod raw;
mod render;
pub mod toml;

use std::path::{Path, PathBuf};

pub use model::*;
pub use render::{render_check, to_toml};

/// The most virtual services one configuration may hold (the size of the data plane's
/// service table).
pub const MAX_VIRTUALS: usize = 256;

/// Real servers one virtual service can have: every one must fit in its scheduler ring.
pub const MAX_REALS_PER_VIRTUAL: usize = lvs_common::limits::RING_SIZE as usize;

/// Why a configuration could not be read. Display always starts with `file:line:` (or `file:`
/// when the file itself could not be read), then names the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A directive or value is invalid, or refused because lvs cannot honour it.
    #[error("{location}: {key}: {reason}")]
    Invalid {
        /// Where.
        location: Location,
        /// The directive (ldirectord) or key (TOML).
        key: String,
        /// Why, in words.
        reason: String,
    },
    /// A host name could not be resolved.
    #[error("{location}: {key}: cannot resolve host `{host}`: {source}")]
    Resolve {
        /// Where.
        location: Location,
        /// The directive or key.
        key: String,
        /// The name that did not resolve.
        host: String,
        /// The resolver's answer.
        #[source]
        source: std::io::Error,
    },
    /// The TOML text does not fit the schema (syntax, unknown key, wrong type).
    #[error("{location}: {key}: {}", source.message())]
    Toml {
        /// Where.
        location: Location,
        /// The key on that line (or `?` when there is none).
        key: String,
        /// The TOML parser's error.
        #[source]
        source: Box<::toml::de::Error>,
    },
}

impl ConfigError {
    /// Where the error is, when it has a place in the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Invalid { location, .. }
            | ConfigError::Resolve { location, .. }
            | ConfigError::Toml { location, .. } => Some(location),
        }
    }

    /// Shorthand for [`ConfigError::Invalid`].
    pub(crate) fn invalid(
        file: &Path,
        line: usize,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                file: file.to_path_buf(),
                line,
            },
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Reads a configuration file: `*.toml` with the TOML reader, anything else as ldirectord.cf.
/// The result is validated ([`validate`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        toml::parse_str(path, &text)
    } else {
        ldirectord::parse_str(path, &text)
    }
}

/// Checks what no single directive can: duplicate virtual services (same VIP, port and
/// protocol), a real listed twice in one virtual, a fallback of the wrong address family, and
/// more than [`MAX_VIRTUALS`] virtual services. Both readers call it.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let err = |loc: &Location, key: &str, reason: String| ConfigError::Invalid {
        location: loc.clone(),
        key: key.to_string(),
        reason,
    };
    if config.virtuals.len() > MAX_VIRTUALS {
        let v = &config.virtuals[MAX_VIRTUALS];
        return Err(err(
            &v.location,
            "virtual",
            format!(
                "too many virtual services: {} (lvs handles at most {MAX_VIRTUALS})",
                config.virtuals.len()
            ),
        ));
    }
    for v in &config.virtuals {
        if v.reals.len() > MAX_REALS_PER_VIRTUAL {
            return Err(err(
                &v.reals[MAX_REALS_PER_VIRTUAL].location,
                "real",
                format!(
                    "too many real servers in one virtual service: {} (lvs handles at most \
                     {MAX_REALS_PER_VIRTUAL}, the size of a scheduler ring)",
                    v.reals.len()
                ),
            ));
        }
    }
    for (i, v) in config.virtuals.iter().enumerate() {
        if let Some(first) = config.virtuals[..i]
            .iter()
            .find(|o| o.vip == v.vip && o.protocol == v.protocol)
        {
            return Err(err(
                &v.location,
                "virtual",
                format!(
                    "duplicate virtual service {} {}: already defined at {}",
                    protocol_name(v.protocol),
                    v.vip,
                    first.location
                ),
            ));
        }
        for (j, r) in v.reals.iter().enumerate() {
            if let Some(first) = v.reals[..j].iter().find(|o| o.addr == r.addr) {
                return Err(err(
                    &r.location,
                    "real",
                    format!(
                        "real server {} is listed twice in this virtual service (first at {})",
                        r.addr, first.location
                    ),
                ));
            }
            if r.addr.is_ipv4() != v.vip.is_ipv4() {
                return Err(err(
                    &r.location,
                    "real",
                    format!(
                        "real server {} is not of the virtual service's address family ({})",
                        r.addr, v.vip
                    ),
                ));
            }
        }
        if let Some(fb) = &v.fallback
            && fb.addr.is_ipv4() != v.vip.is_ipv4()
        {
            return Err(err(
                &v.location,
                "fallback",
                format!(
                    "fallback {} is not of the virtual service's address family ({}); \
                     IPv4 services use fallback=, IPv6 services fallback6=",
                    fb.addr, v.vip
                ),
            ));
        }
    }
    Ok(())
}

/// `tcp` or `udp`.
pub(crate) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn too_many_virtuals() {
        let mut text = String::new();
        for i in 0..=MAX_VIRTUALS {
            text.push_str(&format!("virtual=10.0.{}.{}:80\n", i / 200, i % 200 + 1));
        }
        let e = ldirectord::parse_str(Path::new("m.cf"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.cf:257: virtual: too many virtual services: 257"),
            "{e}"
        );
    }

    #[test]
    fn same_vip_other_protocol_is_not_a_duplicate() {
        let text = "virtual=10.0.0.1:80\nvirtual=10.0.0.1:80\n\tprotocol=udp\n";
        let c = ldirectord::parse_str(Path::new("m.cf"), text).unwrap();
        let got: Vec<_> = c
            .virtuals
            .iter()
            .map(|v| (v.vip.to_string(), v.protocol, v.location.line))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1:80".to_string(), Protocol::Tcp, 1),
                ("10.0.0.1:80".to_string(), Protocol::Udp, 2),
            ],
            "two services on one address, told apart by their protocol"
        );
        // The same address and protocol twice is the duplicate.
        let text = "virtual=10.0.0.1:80\n\tprotocol=udp\nvirtual=10.0.0.1:80\n\tprotocol=udp\n";
        let e = ldirectord::parse_str(Path::new("m.cf"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.cf:3: ") && e.contains("duplicate virtual service udp 10.0.0.1:80"),
            "{e}"
        );
    }

    #[test]
    fn check_output_shows_the_plan() {
        let text = "fallback=127.0.0.1:80\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 3\n\treal=10.0.0.3:80 gate\n\treceive=\"ok\"\n\tlogin=\"x\"\n";
        let c = ldirectord::parse_str(Path::new("m.cf"), text).unwrap();
        let out = render_check(&c);
        assert!(out.contains("virtual tcp 10.0.0.1:80  (m.cf:2)"), "{out}");
        assert!(
            out.contains("real 10.0.0.2:80 gate weight 3 (75%)"),
            "{out}"
        );
        assert!(
            out.contains(
                "check negotiate http on the real's port, every 10s, timeout 5s (negotiate 30s)"
            ),
            "{out}"
        );
        assert!(out.contains("GET /"), "{out}");
        assert!(out.contains("expect \"ok\""), "{out}");
        assert!(out.contains("fallback 127.0.0.1:80 gate"), "{out}");
        assert!(out.contains("warning: m.cf:6: login: ignored"), "{out}");
    }

    #[test]
    fn load_picks_the_reader_by_extension() {
        let dir = std::env::temp_dir().join(format!("lvs-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("a.toml");
        std::fs::write(&t, "[[virtual]]\naddress = \"10.0.0.1:80\"\n").unwrap();
        assert_eq!(load(&t).unwrap().virtuals.len(), 1);
        let c = dir.join("a.cf");
        std::fs::write(&c, "virtual=10.0.0.1:80\n").unwrap();
        assert_eq!(load(&c).unwrap().virtuals.len(), 1);
        let e = load(&dir.join("missing.cf")).unwrap_err().to_string();
        assert!(e.contains("missing.cf: cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
