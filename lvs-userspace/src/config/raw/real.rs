//! Real servers and fallbacks: `real=` lines (with ranges), `fallback=` and forwarding
//! methods.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
};

use super::{Family, RawReal, Val};
use super::{
    address::{parse_endpoint, parse_port, resolve_host, split_host_port},
    check::{check_regex, http_path},
    resolve::loc,
};
use crate::config::{ConfigError, model::*};

/// The most real servers one range may expand to.
const MAX_RANGE: u32 = 4096;

/// A forwarding method: `gate`, `ipip` or `masq`.
fn parse_method(
    file: &Path,
    line: usize,
    key: &str,
    m: Option<&str>,
) -> Result<Forwarding, ConfigError> {
    match m {
        None | Some("gate") => Ok(Forwarding::Gate),
        Some("ipip") => Ok(Forwarding::Tunnel),
        Some("masq") => Ok(Forwarding::Masq),
        Some(m) => Err(ConfigError::invalid(
            file,
            line,
            key,
            format!("unknown forwarding method `{m}`: must be gate, masq or ipip"),
        )),
    }
}

/// `host[:port] [gate|masq|ipip]`.
pub(super) fn parse_fallback(
    file: &Path,
    f: &Val<String>,
    key: &str,
    family: Family,
    default_port: u16,
    names: &mut Vec<ResolvedName>,
) -> Result<Fallback, ConfigError> {
    let mut words = f.value.split_whitespace();
    let Some(addr) = words.next() else {
        return Err(ConfigError::invalid(
            file,
            f.line,
            key,
            "no fallback server given",
        ));
    };
    let method = words.next();
    if let Some(extra) = words.next() {
        return Err(ConfigError::invalid(
            file,
            f.line,
            key,
            format!("unexpected `{extra}` after the forwarding method"),
        ));
    }
    let forwarding = parse_method(file, f.line, key, method)?;
    let addr = parse_endpoint(
        file,
        f.line,
        key,
        addr,
        Some(family),
        default_port,
        "tcp",
        names,
    )?;
    Ok(Fallback { addr, forwarding })
}

/// One `real=` line: a server, or every address of a range.
pub(super) fn resolve_real(
    file: &Path,
    r: &RawReal,
    family: Family,
    proto: &str,
    is_http: bool,
    names: &mut Vec<ResolvedName>,
) -> Result<Vec<RealServer>, ConfigError> {
    let key = if r.family == Some(Family::V6) {
        "real6"
    } else {
        "real"
    };
    if let Some(d) = &r.digest {
        let why = if !is_http {
            Some(format!(
                "digest `{d}` has no effect: only http and https checks read a body"
            ))
        } else if crate::health::http::parse_digest(d).is_none() {
            Some(format!(
                "digest `{d}` is not an MD5 (32 hex digits, as genhash prints it)"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ConfigError::invalid(file, r.line, key, why));
        }
    }
    let check_address = match &r.check_address {
        None => None,
        Some(a) => Some(a.trim().parse::<IpAddr>().map_err(|_| {
            ConfigError::invalid(
                file,
                r.line,
                "check_address",
                format!("`{a}` is not an IP address"),
            )
        })?),
    };
    if let Some(f) = r.family
        && f != family
    {
        let want = if family == Family::V6 {
            "real6"
        } else {
            "real"
        };
        return Err(ConfigError::invalid(
            file,
            r.line,
            key,
            format!("cannot specify `{key}` in this virtual service: use `{want}`"),
        ));
    }
    let forwarding = parse_method(file, r.line, key, r.method.as_deref())?;
    let weight = match r.weight {
        None => 1,
        Some(w) if w <= 65535 => w as u32,
        Some(w) => {
            return Err(ConfigError::invalid(
                file,
                r.line,
                key,
                format!("weight {w} is out of range 0..65535"),
            ));
        }
    };
    let threshold = |t: Option<(usize, u64)>, name: &str| -> Result<u32, ConfigError> {
        match t {
            None => Ok(0),
            Some((_, n)) if n <= u64::from(u32::MAX) => Ok(n as u32),
            Some((line, n)) => Err(ConfigError::invalid(
                file,
                line,
                key,
                format!("{name} threshold {n} is out of range 0..{}", u32::MAX),
            )),
        }
    };
    let thresholds = Thresholds {
        upper: threshold(r.u_threshold, "upper")?,
        lower: threshold(r.l_threshold, "lower")?,
    };
    let request = r
        .request
        .as_ref()
        .map(|q| if is_http { http_path(q) } else { q.clone() });
    if let Some(re) = &r.receive {
        check_regex(file, r.line, key, re)?;
    }
    let (host, port) = split_host_port(&r.address);
    let port = match port {
        Some(p) => parse_port(file, r.line, key, p, proto)?,
        None => 0,
    };
    let ips = match host.split_once("->") {
        None => vec![resolve_host(file, r.line, key, host, Some(family), names)?],
        Some((a, b)) => {
            let a = resolve_host(file, r.line, key, a, Some(family), names)?;
            let b = resolve_host(file, r.line, key, b, Some(family), names)?;
            let (IpAddr::V4(a), IpAddr::V4(b)) = (a, b) else {
                return Err(ConfigError::invalid(
                    file,
                    r.line,
                    key,
                    "address ranges are only supported for IPv4",
                ));
            };
            let (a, b) = (u32::from(a), u32::from(b));
            if a > b {
                return Err(ConfigError::invalid(
                    file,
                    r.line,
                    key,
                    "invalid range: the first address must not be above the last",
                ));
            }
            if b - a >= MAX_RANGE {
                return Err(ConfigError::invalid(
                    file,
                    r.line,
                    key,
                    format!("range too large: at most {MAX_RANGE} addresses"),
                ));
            }
            (a..=b).map(|i| IpAddr::V4(Ipv4Addr::from(i))).collect()
        }
    };
    Ok(ips
        .into_iter()
        .map(|ip| RealServer {
            location: loc(file, r.line),
            addr: SocketAddr::new(ip, port),
            weight,
            forwarding,
            request: request.clone(),
            receive: r.receive.clone(),
            digest: r.digest.clone(),
            check_command: r.checkcommand.clone(),
            check_address,
            check_source: CheckSource::default(),
            notify_up: r.notify_up.clone(),
            notify_down: r.notify_down.clone(),
            thresholds,
        })
        .collect())
}
