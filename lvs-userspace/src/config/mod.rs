//! Configuration: the model ([`model`]) and its readers, TOML ([`toml`]), ldirectord.cf
//! ([`ldirectord`]), keepalived.conf ([`keepalived`]) and ipvsadm rules ([`ipvsadm`]); [`load`]
//! tells them apart by the file's content ([`detect`]).
//!
//! The TOML and ldirectord readers only deal with syntax: they turn text into the same raw, still unchecked
//! description (`config/raw.rs`), and one function (`raw::resolve`) applies ldirectord's defaults,
//! refuses what lvs cannot do and builds the [`Config`]. [`validate`] then catches the
//! cross-cutting mistakes (duplicates, family mismatches, limits).

mod format;
pub mod fwmark;
mod fwmark_rules;
pub mod ipvsadm;
pub mod keepalived;
mod keepalived_lex;
pub mod ldirectord;
#[cfg(test)]
mod mh_tests;
pub mod model;
mod raw;
mod render;
mod status_codes;
pub mod toml;

use std::path::{Path, PathBuf};

pub use format::{Format, detect};
pub use model::*;
pub(crate) use raw::{not_a_host_name, service_port};
pub use render::{render_check, to_toml};

/// The most virtual services one configuration may hold (the size of the data plane's
/// service table).
pub const MAX_VIRTUALS: usize = 256;

/// Real servers one virtual service can have: every one must fit in its scheduler ring.
pub const MAX_REALS_PER_VIRTUAL: usize = lvs_common::limits::RING_SIZE as usize;

/// Real and fallback servers all virtual services together can have: each (virtual service,
/// real) pair and each service's fallback takes one slot of the data plane's destination table.
pub const MAX_DESTINATIONS: usize = lvs_common::limits::MAX_DESTS as usize;

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
    /// The path is not a regular file (a FIFO, a device, a directory...).
    #[error(
        "{}: cannot read the configuration: {kind}, not a regular file (lvs reads its \
         configuration only from a regular file)",
        path.display()
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error(
        "{}: cannot read the configuration: {size} bytes, more than the {} MiB lvs reads",
        path.display(),
        MAX_CONFIG_BYTES >> 20
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (or how much was read before giving up).
        size: u64,
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
    /// The file's content is in none of the formats lvs reads.
    #[error(
        "{}:{line}: cannot tell the configuration's format from `{text}`: lvs reads \
         keepalived.conf (blocks such as `virtual_server IP PORT {{ ... }}`), TOML (tables \
         such as `[[virtual]]`), ldirectord.cf (`key=value` lines) and ipvsadm rules \
         (`-A -t VIP:PORT -s rr` lines, as ipvsadm-save writes them); name one with \
         --format toml|ldirectord|keepalived|ipvsadm",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first line that fits no format.
        line: usize,
        /// That line (trimmed, cut to 60 characters).
        text: String,
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
            ConfigError::Io { .. }
            | ConfigError::NotRegular { .. }
            | ConfigError::TooLarge { .. }
            | ConfigError::UnknownFormat { .. } => None,
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

/// The largest configuration file read (16 MiB); a larger one is refused.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// What a file that is not a regular file is, in words.
fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The text of the configuration file at `path`: only a regular file, of at most
/// [`MAX_CONFIG_BYTES`]. It is opened without blocking (a FIFO with no writer would block an
/// open) and checked before anything is read.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _};
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ConfigError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(meta.file_type()),
        });
    }
    let too_large = |size| ConfigError::TooLarge {
        path: path.to_path_buf(),
        size,
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut text = String::new();
    // The file may grow while it is read.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// Reads a configuration file in the format its content shows ([`detect`]). Only a regular
/// file of at most [`MAX_CONFIG_BYTES`] is read ([`read_text`]). The result is validated
/// ([`validate`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_as(path, None)
}

/// [`load`], with the format given (`Some`, the `--format` switch) instead of told from the
/// content.
pub fn load_as(path: &Path, format: Option<Format>) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    let format = match format {
        Some(f) => f,
        None => detect(path, &text)?,
    };
    let mut config = match format {
        Format::Toml => toml::parse_str(path, &text),
        Format::Ldirectord => ldirectord::parse_str(path, &text),
        Format::Keepalived => keepalived::parse_str(path, &text),
        Format::Ipvsadm => ipvsadm::parse_str(path, &text),
    }?;
    fwmark::apply_host_rules(&mut config)?;
    Ok(config)
}

/// Checks what no single directive can: duplicate virtual services (same VIP, port and
/// protocol), a real listed twice in one virtual, a fallback of the wrong address family, more
/// than [`MAX_VIRTUALS`] virtual services, and more than [`MAX_DESTINATIONS`] real and
/// fallback servers in all. Both readers call it.
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
    let mut destinations = 0;
    for v in &config.virtuals {
        destinations += v.reals.len() + usize::from(v.fallback.is_some());
        if destinations > MAX_DESTINATIONS {
            return Err(err(
                &v.location,
                "virtual",
                format!(
                    "too many real and fallback servers across the virtual services: this one \
                     brings them to {destinations} (lvs handles at most {MAX_DESTINATIONS} in \
                     all, the size of the data plane's destination table)"
                ),
            ));
        }
    }
    for (i, v) in config.virtuals.iter().enumerate() {
        if let Some(m) = &v.fwmark {
            if let Some(first) = config.virtuals[..i].iter().find(|o| {
                o.fwmark
                    .as_ref()
                    .is_some_and(|f| (f.mark, f.v6) == (m.mark, m.v6))
            }) {
                return Err(err(
                    &v.location,
                    "virtual",
                    format!(
                        "duplicate firewall-mark service {}: already defined at {}",
                        m.mark, first.location
                    ),
                ));
            }
        } else if let Some(what) = unusable_address(v.vip.ip()) {
            return Err(err(
                &v.location,
                "virtual",
                format!("{} is {what}: it cannot be a virtual address", v.vip.ip()),
            ));
        }
        for r in &v.reals {
            if let Some(what) = unusable_address(r.addr.ip()) {
                return Err(err(
                    &r.location,
                    "real",
                    format!("{} is {what}: it cannot be a real server", r.addr.ip()),
                ));
            }
        }
        if let Some(first) = config.virtuals[..i].iter().find(|o| {
            o.fwmark.is_none() && v.fwmark.is_none() && o.vip == v.vip && o.protocol == v.protocol
        }) {
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

/// What makes `ip` no address of a host (`None`: it can be one): unspecified (`0.0.0.0`,
/// `::`), broadcast (`255.255.255.255`) or multicast.
fn unusable_address(ip: std::net::IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip == std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// `tcp` or `udp`.
pub(crate) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

/// Reading the file itself: only regular files, bounded, never blocking on what is not one.
#[cfg(test)]
mod read_tests {
    use std::{sync::mpsc, time::Duration};

    use super::*;
    use crate::testdir::TestDir;

    /// `load(path)`'s error, or a failure when it has not returned within 5 s.
    /// The error loading `path` gives, within `limit` (a blocking read would never return).
    fn load_error_within(path: &Path, limit: Duration) -> String {
        let (tx, rx) = mpsc::channel();
        let p = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(load(&p).map(|_| ()).map_err(|e| e.to_string()));
        });
        match rx.recv_timeout(limit) {
            Ok(Err(e)) => e,
            Ok(Ok(())) => panic!("{} loaded", path.display()),
            Err(_) => panic!("loading {} did not return within {limit:?}", path.display()),
        }
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = TestDir::new("config-fifo");
        let fifo = dir.join("lvs.cf");
        nix::unistd::mkfifo(
            &fifo,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .unwrap();
        let e = load_error_within(&fifo, Duration::from_secs(5));
        assert_eq!(
            e,
            format!(
                "{}: cannot read the configuration: a FIFO, not a regular file (lvs reads its \
                 configuration only from a regular file)",
                fifo.display()
            )
        );
    }

    #[test]
    fn a_device_is_refused_without_reading_it() {
        let e = load_error_within(Path::new("/dev/zero"), Duration::from_secs(5));
        assert!(
            e.starts_with(
                "/dev/zero: cannot read the configuration: a character device, not a regular file"
            ),
            "{e}"
        );
        let e = load_error_within(Path::new("/"), Duration::from_secs(5));
        assert!(e.contains("a directory, not a regular file"), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = TestDir::new("config-large");
        let big = dir.join("big.toml");
        // Sparse: nothing written, nothing read.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG_BYTES + 1)
            .unwrap();
        let e = load_error_within(&big, Duration::from_secs(5));
        assert_eq!(
            e,
            format!(
                "{}: cannot read the configuration: 16777217 bytes, more than the 16 MiB lvs reads",
                big.display()
            )
        );
        // At the cap exactly, it is read (and parsed: NUL bytes are no TOML). Parsing 16 MiB
        // in a debug build takes seconds on a loaded machine: the limit only bounds the wait.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG_BYTES)
            .unwrap();
        let e = load_error_within(&big, Duration::from_secs(120));
        assert!(!e.contains("more than the 16 MiB"), "{e}");
    }
}

/// `allow_empty`: how a config says that having no virtual service is meant.
#[cfg(test)]
mod allow_empty_tests {
    use super::*;

    #[test]
    fn both_readers_know_it_and_it_is_off_by_default() {
        assert!(
            !ldirectord::parse_str(Path::new("a.cf"), "")
                .unwrap()
                .globals
                .allow_empty
        );
        assert!(
            !toml::parse_str(Path::new("a.toml"), "")
                .unwrap()
                .globals
                .allow_empty
        );
        let cf = ldirectord::parse_str(Path::new("a.cf"), "allow_empty = yes\n").unwrap();
        assert!(cf.globals.allow_empty && cf.virtuals.is_empty());
        let t = toml::parse_str(Path::new("a.toml"), "allow_empty = true\n").unwrap();
        assert!(t.globals.allow_empty);
        assert!(to_toml(&t).contains("allow_empty = true"));
        let e = ldirectord::parse_str(
            Path::new("a.cf"),
            "virtual=10.0.0.1:80\n\tallow_empty=yes\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("a.cf:2: allow_empty: is a global directive"),
            "{e}"
        );
    }
}

/// `extra_macs`: Ethernet destinations balanced beside the interface's own.
#[cfg(test)]
mod extra_macs_tests {
    use super::*;

    const VMAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x0a];

    #[test]
    fn both_readers_know_it_and_convert_keeps_it() {
        let none = toml::parse_str(Path::new("a.toml"), "").unwrap();
        assert!(none.globals.extra_macs.is_empty());
        let cf = ldirectord::parse_str(
            Path::new("a.cf"),
            "extra_macs = 00:00:5e:00:01:0a, 02-00-00-00-00-09\n",
        )
        .unwrap();
        assert_eq!(cf.globals.extra_macs, vec![VMAC, [2, 0, 0, 0, 0, 9]]);
        let t = toml::parse_str(Path::new("a.toml"), &to_toml(&cf)).unwrap();
        assert_eq!(t.globals.extra_macs, cf.globals.extra_macs);
        let one =
            toml::parse_str(Path::new("a.toml"), "extra_macs = \"00:00:5e:00:01:0a\"\n").unwrap();
        assert_eq!(one.globals.extra_macs, vec![VMAC]);
    }

    #[test]
    fn what_cannot_be_a_director_s_mac_is_refused_with_its_line() {
        for (text, why) in [
            ("extra_macs = ff:ff:ff:ff:ff:ff", "not a unicast MAC"),
            ("extra_macs = 01:00:5e:00:00:01", "not a unicast MAC"),
            ("extra_macs = 00:00:00:00:00:00", "not a unicast MAC"),
            ("extra_macs = 00:00:5e:00:01", "not a MAC address"),
            ("extra_macs = ,", "no MAC address"),
            (
                "extra_macs = 02:00:00:00:00:01,02:00:00:00:00:02,02:00:00:00:00:03,\
                 02:00:00:00:00:04,02:00:00:00:00:05,02:00:00:00:00:06,02:00:00:00:00:07,\
                 02:00:00:00:00:08",
                "at most 7",
            ),
        ] {
            let e = ldirectord::parse_str(Path::new("m.cf"), &format!("\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("m.cf:2: extra_macs: "), "{text}: {e}");
            assert!(e.contains(why), "{text}: {e}");
        }
        let e = ldirectord::parse_str(
            Path::new("m.cf"),
            "virtual=10.0.0.1:80\n\textra_macs=02:00:00:00:00:01\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("global directive"), "{e}");
    }
}

/// `timeout_tcp`, `timeout_tcpfin`, `timeout_udp`: `ipvsadm --set tcp tcpfin udp` in TOML.
#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn toml_sets_the_three_timeouts_and_check_and_convert_print_them() {
        let d = toml::parse_str(Path::new("a.toml"), "").unwrap();
        assert_eq!(d.globals.timeouts, ConnTimeouts::default());
        assert_eq!(
            d.globals.timeouts.table(),
            lvs_common::CtTimeouts::ipvs(900, 120, 300)
        );
        assert!(render_check(&d).contains("timeouts: tcp 900 s, tcpfin 120 s, udp 300 s"));
        let t = toml::parse_str(
            Path::new("a.toml"),
            "timeout_tcp = 600\ntimeout_tcpfin = 5\ntimeout_udp = 30\n",
        )
        .unwrap();
        assert_eq!(
            t.globals.timeouts,
            ConnTimeouts {
                tcp: 600,
                tcpfin: 5,
                udp: 30
            }
        );
        assert!(render_check(&t).contains("timeouts: tcp 600 s, tcpfin 5 s, udp 30 s"));
        let back = toml::parse_str(Path::new("b.toml"), &to_toml(&t)).unwrap();
        assert_eq!(back.globals.timeouts, t.globals.timeouts);
        let e = toml::parse_str(Path::new("a.toml"), "timeout_udp = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout_udp"), "{e}");
    }

    #[test]
    fn table_sizes_default_round_up_are_bounded_and_printed_with_their_memory() {
        let d = toml::parse_str(Path::new("a.toml"), "").unwrap();
        assert_eq!(d.globals.tables, TableSizes::default());
        assert!(
            render_check(&d).contains(
                "tables: connections 4194304 flows (256 MiB), persistence 262144 entries \
                 (about 26 MiB)"
            ),
            "{}",
            render_check(&d)
        );
        let t = toml::parse_str(
            Path::new("a.toml"),
            "connection_table_size = 16000000\npersistence_table_size = 100000\n",
        )
        .unwrap();
        assert_eq!(
            t.globals.tables,
            TableSizes {
                connections: 1 << 24,
                persistence: 100_000
            }
        );
        assert!(
            render_check(&t).contains("connections 16777216 flows (1 GiB)"),
            "{}",
            render_check(&t)
        );
        let back = toml::parse_str(Path::new("b.toml"), &to_toml(&t)).unwrap();
        assert_eq!(back.globals.tables, t.globals.tables);
        for bad in [
            "connection_table_size = 100\n",
            "connection_table_size = 100000000\n",
            "\npersistence_table_size = 0\n",
        ] {
            let e = toml::parse_str(Path::new("a.toml"), bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("table_size") && e.contains("must be between"),
                "{e}"
            );
            assert!(e.contains("a.toml:1") || e.contains("a.toml:2"), "{e}");
        }
    }
}

/// Addresses and check types that cannot mean anything, refused with file:line.
#[cfg(test)]
mod nonsense_tests {
    use super::*;

    fn cf_error(text: &str) -> String {
        ldirectord::parse_str(Path::new("n.cf"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unusable_virtual_and_real_addresses_are_refused() {
        for (text, wanted) in [
            (
                "virtual=0.0.0.0:80\n",
                "n.cf:1: virtual: 0.0.0.0 is the unspecified address: it cannot be a virtual address",
            ),
            (
                "virtual=255.255.255.255:80\n",
                "n.cf:1: virtual: 255.255.255.255 is the broadcast address",
            ),
            (
                "virtual6=[::]:80\n",
                "n.cf:1: virtual: :: is the unspecified address",
            ),
            (
                "virtual=224.0.0.1:80\n",
                "n.cf:1: virtual: 224.0.0.1 is a multicast address",
            ),
            (
                "virtual=10.0.0.1:80\n\treal=0.0.0.0:80\n",
                "n.cf:2: real: 0.0.0.0 is the unspecified address: it cannot be a real server",
            ),
        ] {
            let e = cf_error(text);
            assert!(e.starts_with(wanted), "{text:?}: {e}");
        }
        let e = toml::parse_str(
            Path::new("n.toml"),
            "[[virtual]]\naddress = \"0.0.0.0:80\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("n.toml:2: virtual: 0.0.0.0 is the unspecified"),
            "{e}"
        );
    }

    /// checkinterval, checktimeout and negotiatetimeout: 0 and more than a day are refused,
    /// globally and per virtual, in both readers (issue 14, defect 9).
    #[test]
    fn absurd_check_times_are_refused() {
        for key in ["checkinterval", "checktimeout", "negotiatetimeout"] {
            for bad in ["0", "86401", "18446744073709551615"] {
                let e = cf_error(&format!("{key}={bad}\nvirtual=10.0.0.1:80\n"));
                assert!(e.starts_with(&format!("n.cf:1: {key}: ")), "{e}");
                let e = cf_error(&format!("virtual=10.0.0.1:80\n\t{key}={bad}\n"));
                assert!(e.starts_with(&format!("n.cf:2: {key}: ")), "{e}");
                let e = toml::parse_str(
                    Path::new("n.toml"),
                    &format!("[[virtual]]\naddress = \"10.0.0.1:80\"\n{key} = {bad}\n"),
                )
                .unwrap_err()
                .to_string();
                assert!(e.starts_with(&format!("n.toml:3: {key}: ")), "{e}");
                let e = toml::parse_str(Path::new("n.toml"), &format!("{key} = {bad}\n"))
                    .unwrap_err()
                    .to_string();
                assert!(e.starts_with(&format!("n.toml:1: {key}: ")), "{e}");
            }
            let e = cf_error(&format!("{key}=86401\n"));
            assert_eq!(
                e,
                format!(
                    "n.cf:1: {key}: 86401 seconds is more than a day: lvs takes 1 to 86400 \
                     seconds"
                )
            );
            // A day is the most.
            let c = ldirectord::parse_str(
                Path::new("n.cf"),
                &format!("{key}=86400\nvirtual=10.0.0.1:80\n\t{key}=86400\n"),
            )
            .unwrap();
            let spec = &c.virtuals[0].check;
            let day = std::time::Duration::from_secs(86_400);
            match key {
                "checkinterval" => assert_eq!(spec.interval, day),
                "checktimeout" => assert_eq!(spec.timeout, day),
                _ => assert_eq!(spec.negotiate_timeout, day),
            }
        }
    }

    #[test]
    fn checktype_zero_is_refused() {
        let e = cf_error("virtual=10.0.0.1:80\n\tchecktype=0\n");
        assert!(
            e.starts_with("n.cf:2: checktype: 0 is no check type"),
            "{e}"
        );
        ldirectord::parse_str(Path::new("n.cf"), "virtual=10.0.0.1:80\n\tchecktype=3\n").unwrap();
    }
}
