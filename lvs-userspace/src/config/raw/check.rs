//! Check specifications: check types, negotiate services and what they imply (the service a
//! port implies, dns record types), regular expressions and http request paths.

use std::path::Path;

use super::Val;
use super::resolve::warn;
use crate::config::{ConfigError, model::*};

/// Negotiate services lvs implements, for messages.
pub(super) const SERVICES: &str = "http, https, http_proxy, simpletcp, dns, smtp, submission, pop, pops, imap, imaps, nntp, ftp, ldap, ldaps, sip, radius, mysql, pgsql, udp and none";
/// ldirectord services lvs has no negotiate check for, with the reason.
pub(super) const LDIRECTORD_ONLY_SERVICES: &[(&str, &str)] = &[(
    "oracle",
    "no maintained Rust client speaks Oracle's protocol without Oracle's proprietary \
         client library (OCI), which lvs does not link",
)];
/// The record types a dns check may ask for (keepalived's DNS_CHECK `type`).
pub(crate) const DNS_TYPES: &str = "A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, RRSIG, DNSKEY";

/// The number of the record type `name` (case-insensitive), of [`DNS_TYPES`].
pub(crate) fn dns_type_number(name: &str) -> Option<u16> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "RRSIG" => 46,
        "DNSKEY" => 48,
        _ => return None,
    })
}

/// The name of the record type `n` (of [`DNS_TYPES`]).
pub(crate) fn dns_type_name(n: u16) -> &'static str {
    match n {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        46 => "RRSIG",
        48 => "DNSKEY",
        _ => "?",
    }
}

/// ldirectord's `ld_port_to_service`: the service a port implies.
pub(crate) fn port_to_service(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

pub(super) fn parse_check_type(
    file: &Path,
    c: &Val<String>,
    warnings: &mut Vec<String>,
) -> Result<CheckType, ConfigError> {
    let s = c.value.trim();
    if let Ok(n) = s.parse::<u32>() {
        if n == 0 {
            return Err(ConfigError::invalid(
                file,
                c.line,
                "checktype",
                "0 is no check type: a number N means N connect checks, then one negotiate \
                 check; write negotiate, or a positive number",
            ));
        }
        return Ok(CheckType::ConnectThenNegotiate(n));
    }
    Ok(match s {
        "connect" => CheckType::Connect,
        "negotiate" => CheckType::Negotiate,
        "ping" => CheckType::Ping,
        "external" => CheckType::External,
        "file" => CheckType::File,
        "external-perl" => {
            warn(
                warnings,
                file,
                c.line,
                "checktype",
                "external-perl is run as checktype=external: checkcommand is executed as a \
                 program (it must be executable, with a #! line), not inside a perl interpreter",
            );
            CheckType::External
        }
        "on" => CheckType::On,
        "off" => CheckType::Off,
        other => {
            return Err(ConfigError::invalid(
                file,
                c.line,
                "checktype",
                format!(
                    "unknown check type `{other}`: must be connect, negotiate, ping, external, \
                     external-perl, on, off or a positive number"
                ),
            ));
        }
    })
}

pub(super) fn check_regex(
    file: &Path,
    line: usize,
    key: &str,
    re: &str,
) -> Result<(), ConfigError> {
    regex::Regex::new(re).map(|_| ()).map_err(|e| {
        ConfigError::invalid(
            file,
            line,
            key,
            format!("`{re}` is not a valid regular expression: {e}"),
        )
    })
}

/// An http request path starts with `/` (ldirectord adds it); a full URL stays as written.
pub(super) fn http_path(r: &str) -> String {
    if r.starts_with('/') || r.starts_with("http://") || r.starts_with("https://") {
        r.to_string()
    } else {
        format!("/{r}")
    }
}
