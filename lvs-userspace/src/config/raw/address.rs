//! Addresses, host names and ports as written: `host[:port]`, `[v6]:port`, ranges, service
//! names from /etc/services, and the strict reading of host names.

use std::{
    net::{IpAddr, SocketAddr, ToSocketAddrs},
    path::Path,
};

use super::Family;
use super::resolve::loc;
use crate::config::{ConfigError, model::*};

/// Splits `host[:port]`, `[v6][:port]` or `a->b[:port]` into host part and port text.
pub(super) fn split_host_port(s: &str) -> (&str, Option<&str>) {
    let s = s.trim();
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let rest = &s[end + 1..];
            // `[a]->[b]:port`
            if let Some(r) = rest.strip_prefix("->")
                && r.starts_with('[')
                && let Some(e2) = r.find(']')
            {
                let host_end = end + 1 + 2 + e2 + 1;
                return (&s[..host_end], s[host_end..].strip_prefix(':'));
            }
            return (&s[..=end], rest.strip_prefix(':'));
        }
        return (s, None);
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

/// A port: a number, or a service name from /etc/services.
pub(super) fn parse_port(
    file: &Path,
    line: usize,
    key: &str,
    p: &str,
    proto: &str,
) -> Result<u16, ConfigError> {
    if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
        return p.parse::<u16>().map_err(|_| {
            ConfigError::invalid(
                file,
                line,
                key,
                format!("port `{p}` is out of range 0..65535"),
            )
        });
    }
    if !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && let Some(port) = service_port(p, proto)
    {
        return Ok(port);
    }
    Err(ConfigError::invalid(
        file,
        line,
        key,
        format!("`{p}` is neither a port number nor a service name known to /etc/services"),
    ))
}

/// Looks a service name up in /etc/services (a few common names are built in).
pub(crate) fn service_port(name: &str, proto: &str) -> Option<u16> {
    if let Ok(text) = std::fs::read_to_string("/etc/services") {
        for l in text.lines() {
            let l = l.split('#').next().unwrap_or("");
            let mut it = l.split_whitespace();
            let (Some(svc), Some(pp)) = (it.next(), it.next()) else {
                continue;
            };
            let Some((port, pr)) = pp.split_once('/') else {
                continue;
            };
            if (proto.is_empty() || pr == proto) && (svc == name || it.any(|a| a == name)) {
                return port.parse().ok();
            }
        }
    }
    Some(match name {
        "http" | "www" => 80,
        "https" => 443,
        "domain" => 53,
        "ftp" => 21,
        "smtp" => 25,
        "mysql" => 3306,
        "postgresql" => 5432,
        _ => return None,
    })
}

/// Why `host` (no address literal) is no host name either, in words for an error after
/// "`host` "; `None`: it is a name. Addresses are read strictly, the way Rust's standard
/// library reads them: an IPv4 address is a dotted quad of decimal numbers without leading
/// zeros, an IPv6 address is in RFC 4291's text forms (without a zone). The forms
/// `inet_aton(3)` reads besides (octal `010`, hex `0x0a`, the short `10.212`) are not
/// addresses, and not names either, so they never reach the system resolver, which would read
/// them as `inet_aton` does (or look them up in DNS, as `10.212.0.256`).
///
/// A host name is letters, digits, hyphens and dots: labels of 1 to 63 characters that do not
/// start or end with a hyphen, at least one with a letter, at most 253 characters in all (a
/// trailing dot allowed); a string of numbers (`10.212.0.256`, `0x0a.0.0.1`) is never one.
pub(crate) fn not_a_host_name(host: &str) -> Option<String> {
    if host.starts_with('[') || host.contains(':') {
        return Some(
            "is not a valid address: an IPv6 address is written in the text forms of RFC 4291 \
             (such as 2001:db8::10 or ::ffff:192.0.2.10: at most four hex digits a group, no \
             zone), in brackets before a port ([2001:db8::10]:80)"
                .into(),
        );
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    let numeric = host.chars().all(|c| c.is_ascii_digit() || c == '.')
        || labels.iter().all(|l| {
            let hex = l
                .strip_prefix("0x")
                .or_else(|| l.strip_prefix("0X"))
                .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
            hex || (!l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        });
    if numeric {
        return Some(
            "is not a valid address: an IPv4 address is four decimal numbers from 0 to 255, \
             without leading zeros (such as 192.0.2.10), and numbers alone are never a host name"
                .into(),
        );
    }
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253
        || !labels.iter().all(label_ok)
        || !labels
            .iter()
            .any(|l| l.chars().any(|c| c.is_ascii_alphabetic()))
    {
        return Some(
            "is neither an address nor a host name: a host name is made of letters, digits, \
             hyphens and dots, has a letter, and no label that is empty, longer than 63 \
             characters, or starts or ends with a hyphen"
                .into(),
        );
    }
    None
}

/// One host: an address literal (brackets allowed), or a host name for the system resolver,
/// recorded in `names` with what it resolved to. Anything else is refused with
/// [`not_a_host_name`]'s reason, without asking the resolver.
pub(super) fn resolve_host(
    file: &Path,
    line: usize,
    key: &str,
    host: &str,
    family: Option<Family>,
    names: &mut Vec<ResolvedName>,
) -> Result<IpAddr, ConfigError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() {
        return Err(ConfigError::invalid(file, line, key, "no address given"));
    }
    let ip = match bare.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            if let Some(why) = not_a_host_name(host) {
                return Err(ConfigError::invalid(
                    file,
                    line,
                    key,
                    format!("`{host}` {why}"),
                ));
            }
            let addrs = (bare, 0u16)
                .to_socket_addrs()
                .map_err(|source| ConfigError::Resolve {
                    location: loc(file, line),
                    key: key.to_string(),
                    host: bare.to_string(),
                    source,
                })?;
            let want_v6 = family == Some(Family::V6);
            let found = addrs.map(|a| a.ip()).collect::<Vec<_>>();
            match found.iter().find(|ip| ip.is_ipv6() == want_v6) {
                Some(ip) => {
                    names.push(ResolvedName {
                        location: loc(file, line),
                        key: key.to_string(),
                        name: bare.to_string(),
                        address: *ip,
                    });
                    *ip
                }
                None => {
                    return Err(ConfigError::invalid(
                        file,
                        line,
                        key,
                        format!(
                            "host `{bare}` has no {} address",
                            if want_v6 { "IPv6" } else { "IPv4" }
                        ),
                    ));
                }
            }
        }
    };
    match (family, ip) {
        (Some(Family::V4), IpAddr::V6(_)) => Err(ConfigError::invalid(
            file,
            line,
            key,
            format!("`{host}` is an IPv6 address: use {key}6= (with [brackets])"),
        )),
        (Some(Family::V6), IpAddr::V4(_)) => Err(ConfigError::invalid(
            file,
            line,
            key,
            format!(
                "`{host}` is an IPv4 address: use {}=",
                key.trim_end_matches('6')
            ),
        )),
        _ => Ok(ip),
    }
}

/// `host[:port]` into one socket address; a missing port is `default_port`.
#[allow(clippy::too_many_arguments)]
pub(super) fn parse_endpoint(
    file: &Path,
    line: usize,
    key: &str,
    s: &str,
    family: Option<Family>,
    default_port: u16,
    proto: &str,
    names: &mut Vec<ResolvedName>,
) -> Result<SocketAddr, ConfigError> {
    let (host, port) = split_host_port(s);
    if host.contains("->") {
        return Err(ConfigError::invalid(
            file,
            line,
            key,
            "an address range is only allowed for real servers",
        ));
    }
    let ip = resolve_host(file, line, key, host, family, names)?;
    let port = match port {
        Some(p) => parse_port(file, line, key, p, proto)?,
        None => default_port,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::not_a_host_name;

    #[test]
    fn what_a_host_name_is() {
        for name in [
            "localhost",
            "www.example",
            "www.example.",
            "web-1.dc2.example",
            "3com.example",
            "host.123",
            "0x1.example",
            &"a".repeat(63),
        ] {
            assert_eq!(not_a_host_name(name), None, "{name}");
        }
        for (name, why) in [
            ("10.212.0.010", "is not a valid address: an IPv4"),
            ("10.212", "is not a valid address: an IPv4"),
            ("10.212.0.256", "is not a valid address: an IPv4"),
            ("1.2.3.4.", "is not a valid address: an IPv4"),
            ("1..2", "is not a valid address: an IPv4"),
            ("0x0a.0.0.1", "is not a valid address: an IPv4"),
            ("0xdeadbeef", "is not a valid address: an IPv4"),
            ("10.0.0.0x1", "is not a valid address: an IPv4"),
            ("2001:db8::00001", "is not a valid address: an IPv6"),
            ("[www.example]", "is not a valid address: an IPv6"),
            ("web_1", "is neither an address nor a host name"),
            ("www..example", "is neither an address nor a host name"),
            (".example", "is neither an address nor a host name"),
            ("-www.example", "is neither an address nor a host name"),
            ("www-.example", "is neither an address nor a host name"),
            ("www example", "is neither an address nor a host name"),
            ("10.0.0.1 x", "is neither an address nor a host name"),
            ("ex\u{e4}mple", "is neither an address nor a host name"),
            (&"a".repeat(64), "is neither an address nor a host name"),
            (
                &format!("{}.example", ["a"; 124].join(".")),
                "is neither an address nor a host name",
            ),
        ] {
            let got = not_a_host_name(name);
            assert!(
                got.as_deref().is_some_and(|g| g.starts_with(why)),
                "{name}: {got:?}"
            );
        }
    }
}
