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

/// Why a check that cannot take a source is refused one.
pub(super) const SOURCE_CHECKS: &str = "not supported for this check: a check's source is \
     set for connect, ping and negotiate checks, but not for mysql and ldap(s), whose client \
     crates open their own connections";

/// Whether a check of `check_type`/`service` opens its sockets through the paths that honour
/// [`CheckSource`]: all but mysql and ldap(s), whose client crates connect by themselves.
pub(super) fn takes_source(check_type: CheckType, service: CheckService) -> bool {
    match check_type {
        CheckType::Connect | CheckType::Ping => true,
        CheckType::Negotiate | CheckType::ConnectThenNegotiate(_) => matches!(
            service,
            CheckService::None
                | CheckService::Http
                | CheckService::Https
                | CheckService::HttpProxy
                | CheckService::SimpleTcp
                | CheckService::Dns
                | CheckService::Smtp
                | CheckService::Pop
                | CheckService::Pops
                | CheckService::Imap
                | CheckService::Imaps
                | CheckService::Nntp
                | CheckService::Udp
                | CheckService::Ftp
                | CheckService::Sip
                | CheckService::Radius
                | CheckService::Pgsql
        ),
        CheckType::External | CheckType::On | CheckType::Off | CheckType::File => false,
    }
}

/// The check's target address (`check_address`) and source (`check_source`,
/// `check_source_port`, `check_interface`, `check_mark`), each refused with its line when it
/// does not parse or when the check opens no socket that honours it.
pub(super) fn resolve_target_and_source(
    v: &super::RawVirtual,
    check_type: CheckType,
    service: CheckService,
    errs: &mut super::resolve::Errors<'_>,
) -> (Option<std::net::IpAddr>, CheckSource) {
    let connects = !matches!(
        check_type,
        CheckType::External | CheckType::On | CheckType::Off | CheckType::File
    );
    let sourced = takes_source(check_type, service);
    let ip = |val: &super::Opt<String>, key: &str, errs: &mut super::resolve::Errors<'_>| {
        let val = val.as_ref()?;
        match val.value.trim().parse::<std::net::IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errs.bad(
                    val.line,
                    key,
                    format!("`{}` is not an IP address", val.value),
                );
                None
            }
        }
    };
    let address = ip(&v.check_address, "check_address", errs);
    let source = parse_source(
        SourceKeys {
            address: &v.check_source,
            port: &v.check_source_port,
            interface: &v.check_interface,
            mark: &v.check_mark,
        },
        errs,
    );
    let (source_addr, interface) = (source.address, source.interface.clone());
    if let (Some(a), Some(s)) = (address, source_addr)
        && a.is_ipv4() != s.is_ipv4()
    {
        let line = v.check_source.as_ref().map_or(0, |s| s.line);
        errs.bad(
            line,
            "check_source",
            format!("{s} is not of the family of check_address {a}"),
        );
    }
    let link_local = |a: &Option<std::net::IpAddr>| matches!(a, Some(std::net::IpAddr::V6(a)) if a.segments()[0] & 0xffc0 == 0xfe80);
    if interface.is_none() && (link_local(&address) || link_local(&source_addr)) {
        let line = v
            .check_address
            .as_ref()
            .filter(|_| link_local(&address))
            .or(v.check_source.as_ref())
            .map_or(0, |x| x.line);
        errs.bad(
            line,
            if link_local(&address) {
                "check_address"
            } else {
                "check_source"
            },
            "an IPv6 link-local address needs check_interface (keepalived's bind_if), its scope",
        );
    }
    if !connects && let Some(a) = &v.check_address {
        errs.bad(
            a.line,
            "check_address",
            "has no effect: this check type opens no connection",
        );
    }
    if !sourced && !source.is_default() {
        let (line, key) = [
            (v.check_source.as_ref().map(|x| x.line), "check_source"),
            (
                v.check_source_port.as_ref().map(|x| x.line),
                "check_source_port",
            ),
            (
                v.check_interface.as_ref().map(|x| x.line),
                "check_interface",
            ),
            (v.check_mark.as_ref().map(|x| x.line), "check_mark"),
        ]
        .into_iter()
        .find_map(|(l, k)| l.map(|l| (l, k)))
        .unwrap_or((0, "check_source"));
        errs.bad(line, key, SOURCE_CHECKS);
    }
    (address, source)
}

/// The four source keys of a service or a real, as written.
pub(super) struct SourceKeys<'a> {
    pub address: &'a super::Opt<String>,
    pub port: &'a super::Opt<u64>,
    pub interface: &'a super::Opt<String>,
    pub mark: &'a super::Opt<u64>,
}

/// `check_source`, `check_source_port`, `check_interface` and `check_mark`, each refused with
/// its line when it does not parse.
pub(super) fn parse_source(
    k: SourceKeys<'_>,
    errs: &mut super::resolve::Errors<'_>,
) -> CheckSource {
    let address =
        k.address
            .as_ref()
            .and_then(|val| match val.value.trim().parse::<std::net::IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errs.bad(
                        val.line,
                        "check_source",
                        format!("`{}` is not an IP address", val.value),
                    );
                    None
                }
            });
    let port = k.port.as_ref().and_then(|p| {
        if (1..=65535).contains(&p.value) {
            Some(p.value as u16)
        } else {
            errs.bad(p.line, "check_source_port", "must be in range 1..65535");
            None
        }
    });
    let interface = k.interface.as_ref().and_then(|i| {
        let name = i.value.trim();
        // IFNAMSIZ is 16 with the terminating NUL.
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            errs.bad(
                i.line,
                "check_interface",
                format!("`{name}` is not an interface name"),
            );
            None
        } else {
            Some(name.to_string())
        }
    });
    let mark = k.mark.as_ref().and_then(|m| match u32::try_from(m.value) {
        Ok(n) => Some(n),
        Err(_) => {
            errs.bad(m.line, "check_mark", "must fit in 32 bits");
            None
        }
    });
    CheckSource {
        address,
        port,
        interface,
        mark,
    }
}

/// `status_codes` (default 200-299) and `follow_redirects` (default true, as ldirectord's
/// LWP) of an http(s) check, refused with their line on any other check, when they do not
/// parse, or when a 3xx is to pass on a check that follows redirects (it never would).
pub(super) fn resolve_http_answer(
    v: &super::RawVirtual,
    service: CheckService,
    errs: &mut super::resolve::Errors<'_>,
) -> (StatusCodes, bool) {
    let is_http = matches!(service, CheckService::Http | CheckService::Https);
    let follow = match &v.follow_redirects {
        Some(f) if !is_http => {
            errs.bad(
                f.line,
                "follow_redirects",
                "has no effect: only http and https checks meet redirects",
            );
            true
        }
        Some(f) => f.value,
        None => true,
    };
    let codes = match &v.status_codes {
        None => StatusCodes::default(),
        Some(c) if !is_http && service != CheckService::HttpProxy => {
            errs.bad(
                c.line,
                "status_codes",
                "has no effect: only http, https and http_proxy checks have a status",
            );
            StatusCodes::default()
        }
        Some(c) => match StatusCodes::parse(&c.value) {
            Ok(codes) if follow && is_http && codes.any_redirect() => {
                errs.bad(
                    c.line,
                    "status_codes",
                    format!(
                        "`{}` lists a redirection (3xx), which a check that follows \
                         redirects never ends on: set follow_redirects = false",
                        c.value
                    ),
                );
                codes
            }
            Ok(codes) => codes,
            Err(why) => {
                errs.bad(c.line, "status_codes", why);
                StatusCodes::default()
            }
        },
    };
    (codes, follow)
}
