//! Which keywords keepalived 2.2 knows in each block of the LVS part (its `check_parser.c`,
//! `check_api.c`'s common checker keywords, each `check_*.c`, `track_file.c`), so that a
//! keyword lvs does not read is told apart: one keepalived does not know either is logged by
//! keepalived ("Unknown keyword") and skipped, with its sub-block; lvs warns with file:line
//! and skips it too. One keepalived knows is refused: lvs would silently differ from it.

use super::{Mapper, bad};
use crate::config::{ConfigError, Location};

/// A block of keepalived.conf whose keywords are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Block<'a> {
    VirtualServer,
    RealServer,
    /// A checker, by its keyword (`TCP_CHECK`, `HTTP_GET`...).
    Checker(&'a str),
    TrackFile,
}

const VIRTUAL_SERVER: &[&str] = &[
    "ip_family",
    "retry",
    "delay_before_retry",
    "warmup",
    "connect_timeout",
    "delay_loop",
    "inhibit_on_failure",
    "lb_algo",
    "lvs_sched",
    "hashed",
    "ops",
    "flag-1",
    "flag-2",
    "flag-3",
    "sh-port",
    "sh-fallback",
    "mh-port",
    "mh-fallback",
    "lb_kind",
    "lvs_method",
    "persistence_engine",
    "persistence_timeout",
    "persistence_granularity",
    "protocol",
    "ha_suspend",
    "smtp_alert",
    "virtualhost",
    "snmp_name",
    "alpha",
    "omega",
    "quorum_up",
    "quorum_down",
    "quorum",
    "hysteresis",
    "weight",
    "sorry_server",
    "sorry_server_inhibit",
    "sorry_server_lvs_method",
    "real_server",
];

const REAL_SERVER: &[&str] = &[
    "weight",
    "lvs_method",
    "uthreshold",
    "lthreshold",
    "inhibit_on_failure",
    "notify_up",
    "notify_down",
    "alpha",
    "retry",
    "delay_before_retry",
    "warmup",
    "connect_timeout",
    "delay_loop",
    "smtp_alert",
    "virtualhost",
    "snmp_name",
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "MISC_CHECK",
    "BFD_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
];

/// `install_checker_common_keywords(true)`'s connection keywords.
const CONNECTION: &[&str] = &[
    "connect_ip",
    "connect_port",
    "bindto",
    "bind_port",
    "bind_if",
    "connect_timeout",
    "fwmark",
];

/// Every checker but FILE_CHECK and BFD_CHECK.
const CHECKER: &[&str] = &[
    "retry",
    "delay_before_retry",
    "warmup",
    "delay_loop",
    "alpha",
    "log_all_failures",
];

/// Each checker's own keywords, and whether it takes the connection ones.
fn checker_own(kind: &str) -> (&'static [&'static str], bool) {
    match kind {
        "HTTP_GET" | "SSL_GET" => (
            &[
                "nb_get_retry",
                "virtualhost",
                "http_protocol",
                "enable_sni",
                "fast_recovery",
                "url",
            ],
            true,
        ),
        "SMTP_CHECK" => (&["helo_name", "host"], true),
        "DNS_CHECK" => (&["type", "name"], true),
        "UDP_CHECK" => (
            &[
                "payload",
                "require_reply",
                "min_reply_length",
                "max_reply_length",
            ],
            true,
        ),
        "MISC_CHECK" => (
            &["misc_path", "misc_timeout", "misc_dynamic", "user"],
            false,
        ),
        _ => (&[], true),
    }
}

/// Whether keepalived 2.2 knows `key` in `block`.
pub(super) fn known(block: Block<'_>, key: &str) -> bool {
    match block {
        Block::VirtualServer => VIRTUAL_SERVER.contains(&key),
        Block::RealServer => REAL_SERVER.contains(&key),
        Block::TrackFile => ["file", "weight", "init_file"].contains(&key),
        Block::Checker("FILE_CHECK") => ["track_file", "weight"].contains(&key),
        Block::Checker(kind) => {
            let (own, connects) = checker_own(kind);
            own.contains(&key) || CHECKER.contains(&key) || (connects && CONNECTION.contains(&key))
        }
    }
}

impl<'a> Block<'a> {
    fn name(self) -> &'a str {
        match self {
            Block::VirtualServer => "virtual_server",
            Block::RealServer => "real_server",
            Block::Checker(kind) => kind,
            Block::TrackFile => "track_file",
        }
    }
}

impl Mapper {
    /// A keyword of `block` that lvs does not read: warned and skipped when keepalived does
    /// not know it either (keepalived logs it and goes on), else refused.
    pub(super) fn unknown(
        &mut self,
        loc: &Location,
        key: &str,
        block: Block<'_>,
    ) -> Result<(), ConfigError> {
        let name = block.name();
        if known(block, key) {
            return Err(bad(loc, key, format!("not supported by lvs in {name}")));
        }
        self.warn(
            loc,
            key,
            &format!(
                "unknown keyword in {name}: ignored (with its block, if any), as keepalived \
                 does (it logs \"Unknown keyword\")"
            ),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, path::PathBuf};

    use super::*;

    #[test]
    fn keepalived_knows_these_where_it_reads_them() {
        assert!(known(Block::VirtualServer, "lb_kind"));
        assert!(!known(Block::RealServer, "lb_kind"), "lvs_method only");
        assert!(known(Block::RealServer, "FILE_CHECK"));
        assert!(known(Block::Checker("TCP_CHECK"), "connect_port"));
        assert!(!known(Block::Checker("MISC_CHECK"), "connect_port"));
        assert!(known(Block::Checker("MISC_CHECK"), "retry"));
        assert!(known(Block::Checker("HTTP_GET"), "nb_get_retry"));
        assert!(!known(Block::Checker("TCP_CHECK"), "nb_get_retry"));
        assert!(!known(Block::Checker("FILE_CHECK"), "dynamic"));
        assert!(!known(Block::Checker("FILE_CHECK"), "retry"));
        assert!(known(Block::TrackFile, "init_file"));
    }

    #[test]
    fn one_keepalived_knows_is_refused_one_it_does_not_is_warned() {
        let mut m = Mapper {
            warnings: Vec::new(),
            skipped: Vec::new(),
            groups: HashMap::new(),
            timeouts: None,
            track_files: HashMap::new(),
        };
        let at = Location {
            file: PathBuf::from("k.conf"),
            line: 7,
        };
        let e = m
            .unknown(&at, "bindto", Block::Checker("SMTP_CHECK"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "k.conf:7: bindto: not supported by lvs in SMTP_CHECK"
        );
        assert!(m.warnings.is_empty());
        m.unknown(&at, "bindto", Block::Checker("MISC_CHECK"))
            .unwrap();
        assert_eq!(
            m.warnings,
            [
                "k.conf:7: bindto: unknown keyword in MISC_CHECK: ignored (with its block, if any), \
              as keepalived does (it logs \"Unknown keyword\")"
            ]
        );
    }
}
