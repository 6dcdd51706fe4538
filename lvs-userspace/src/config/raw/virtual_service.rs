//! Resolving one virtual service: its address or firewall mark, protocol, scheduler,
//! persistence, netmask, check and quorum settings.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use super::{Family, Opt, RawGlobals, RawVirtual, Val};
use super::{
    address::{parse_endpoint, split_host_port},
    check::{
        DNS_TYPES, LDIRECTORD_ONLY_SERVICES, SERVICES, SOURCE_CHECKS, SourceKeys, check_regex,
        dns_type_number, http_path, parse_check_type, parse_source, port_to_service,
        resolve_http_answer, resolve_target_and_source, takes_source,
    },
    real::{parse_fallback, resolve_real},
    resolve::{Errors, check_seconds, count, loc, warn},
};
use crate::config::{ConfigError, model::*};

/// Schedulers lvs implements, for messages.
const SCHEDULERS: &str = "wrr, rr, sh, lc, wlc, sed, nq, fo, ovf, dh and mh";
/// Other ipvs schedulers, refused by name.
const IPVS_SCHEDULERS: &[&str] = &["lblc", "lblcr", "twos"];

fn parse_netmask(file: &Path, n: &Val<String>, v6: bool) -> Result<u8, ConfigError> {
    let s = n.value.trim().trim_start_matches('/');
    let bad = |why: String| ConfigError::invalid(file, n.line, "netmask", why);
    if let Ok(p) = s.parse::<u8>() {
        let max = if v6 { 128 } else { 32 };
        if (1..=max).contains(&p) {
            return Ok(p);
        }
        return Err(bad(format!("prefix length {p} is out of range 1..{max}")));
    }
    if v6 {
        return Err(bad(format!(
            "`{s}`: an IPv6 service needs a prefix length between 1 and 128"
        )));
    }
    let mask: Ipv4Addr = s.parse().map_err(|_| {
        bad(format!(
            "`{s}` is neither a dotted quad nor a prefix length"
        ))
    })?;
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 || bits == 0 {
        return Err(bad(format!("`{s}` is not a contiguous netmask")));
    }
    Ok(bits.leading_ones() as u8)
}

pub(super) fn resolve_virtual(
    file: &Path,
    v: &RawVirtual,
    g: &RawGlobals,
    globals: &Globals,
    warnings: &mut Vec<String>,
    names: &mut Vec<ResolvedName>,
) -> Result<VirtualService, ConfigError> {
    let mut errs = Errors::new(file);
    let vline = v.address.line;
    let addr = v.address.value.trim();
    // A firewall-mark service: `virtual=N` (ldirectord, keepalived's `fwmark N`) or
    // `fwmark:N` / `fwmark6:N` (TOML).
    let (mark_text, mark_v6) = if let Some(m) = addr.strip_prefix("fwmark6:") {
        (Some(m), true)
    } else if let Some(m) = addr.strip_prefix("fwmark:") {
        (Some(m), false)
    } else if !addr.is_empty() && addr.chars().all(|c| c.is_ascii_digit()) {
        (Some(addr), v.family == Some(Family::V6))
    } else {
        (None, false)
    };
    let fwmark = match mark_text {
        None => None,
        Some(m) => match m.parse::<u32>() {
            Ok(n) if n > 0 => Some(Fwmark {
                mark: n,
                v6: mark_v6,
                matches: Vec::new(),
            }),
            _ => {
                errs.bad(
                    vline,
                    "virtual",
                    format!("`{m}` is not a firewall mark (1 to 4294967295)"),
                );
                None
            }
        },
    };

    // Protocol first (it decides how a named port resolves).
    let mut protocol = None;
    if let Some(p) = &v.protocol {
        match (p.value.trim(), mark_text.is_some()) {
            ("fwm", true) => {}
            ("tcp" | "udp", true) => errs.bad(
                p.line,
                "protocol",
                "protocol must be fwm if the virtual service is a fwmark (as ldirectord says)",
            ),
            ("tcp", false) => protocol = Some(Protocol::Tcp),
            ("udp", false) => protocol = Some(Protocol::Udp),
            ("fwm", false) => errs.bad(
                p.line,
                "protocol",
                "fwm is for firewall-mark services: write virtual=N (the mark), not an address",
            ),
            (other, _) => errs.bad(
                p.line,
                "protocol",
                format!("unknown protocol `{other}`: must be tcp, udp or fwm"),
            ),
        }
    }
    let proto_name = match protocol {
        Some(Protocol::Udp) => "udp",
        _ => "tcp",
    };

    let vip = if let Some(m) = &fwmark {
        // Until the host's rules are read (config::fwmark), the unspecified address.
        Some(if m.v6 {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        })
    } else if mark_text.is_some() {
        None
    } else {
        let (_, port) = split_host_port(addr);
        if port.is_none() {
            errs.bad(
                vline,
                "virtual",
                format!("`{addr}` has no port: write VIP:port (IPv6: [VIP]:port)"),
            );
            None
        } else {
            errs.ok(parse_endpoint(
                file, vline, "virtual", addr, v.family, 0, proto_name, names,
            ))
        }
    };
    let port = vip.map_or(0, |a| a.port());
    let v6 = vip.map_or(v.family == Some(Family::V6), |a| a.is_ipv6());
    let family = if v6 { Family::V6 } else { Family::V4 };
    // ldirectord: port 53 defaults to udp.
    let protocol = protocol.unwrap_or(if port == 53 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    });

    let scheduler = match &v.scheduler {
        None => Scheduler::Wrr,
        Some(s) => match s.value.trim() {
            name if Scheduler::from_name(name).is_some() => {
                Scheduler::from_name(name).unwrap_or(Scheduler::Wrr)
            }
            other if IPVS_SCHEDULERS.contains(&other) => {
                errs.bad(
                    s.line,
                    "scheduler",
                    format!("scheduler `{other}` is not supported: lvs implements {SCHEDULERS}"),
                );
                Scheduler::Wrr
            }
            other => {
                errs.bad(
                    s.line,
                    "scheduler",
                    format!("unknown scheduler `{other}`: lvs implements {SCHEDULERS}"),
                );
                Scheduler::Wrr
            }
        },
    };

    let scheduler = match (&v.schedflags, scheduler) {
        (None, s) => s,
        (Some(f), Scheduler::Mh(mut flags)) => {
            for flag in f.value.split([',', ' ', '\t']).filter(|x| !x.is_empty()) {
                match flag {
                    "mh-port" => flags.port = true,
                    "mh-fallback" => flags.fallback = true,
                    other => errs.bad(
                        f.line,
                        "schedflags",
                        format!(
                            "unknown flag `{other}` for mh: lvs implements mh-port and mh-fallback"
                        ),
                    ),
                }
            }
            Scheduler::Mh(flags)
        }
        (Some(f), s) => {
            errs.bad(
                f.line,
                "schedflags",
                "scheduler flags are only implemented for mh (mh-port, mh-fallback)",
            );
            s
        }
    };

    let check_type = match &v.checktype {
        None => CheckType::Negotiate,
        Some(c) => errs
            .ok(parse_check_type(file, c, warnings))
            .unwrap_or(CheckType::Negotiate),
    };
    let negotiates = matches!(
        check_type,
        CheckType::Negotiate | CheckType::ConnectThenNegotiate(_)
    );

    let (service_name, service_line, written) = match &v.service {
        Some(s) => (s.value.trim().to_string(), s.line, true),
        None => (port_to_service(port).to_string(), vline, false),
    };
    let service = match service_name.as_str() {
        "http" => CheckService::Http,
        "https" => CheckService::Https,
        "simpletcp" => CheckService::SimpleTcp,
        "dns" => CheckService::Dns,
        "none" => CheckService::None,
        "smtp" | "submission" => CheckService::Smtp,
        "pop" => CheckService::Pop,
        "pops" => CheckService::Pops,
        "imap" => CheckService::Imap,
        "imaps" => CheckService::Imaps,
        "nntp" => CheckService::Nntp,
        "ftp" => CheckService::Ftp,
        "udp" => CheckService::Udp,
        "sip" => CheckService::Sip,
        "radius" => CheckService::Radius,
        "http_proxy" => CheckService::HttpProxy,
        "ldap" => CheckService::Ldap,
        "ldaps" => CheckService::Ldaps,
        "mysql" => CheckService::Mysql,
        "pgsql" => CheckService::Pgsql,
        other if LDIRECTORD_ONLY_SERVICES.iter().any(|(s, _)| *s == other) => {
            let why = LDIRECTORD_ONLY_SERVICES
                .iter()
                .find(|(s, _)| *s == other)
                .map_or("", |(_, why)| *why);
            if !negotiates {
                if written {
                    warn(
                        warnings,
                        file,
                        service_line,
                        "service",
                        &format!(
                            "service={other} has no effect: the service only matters for \
                             negotiate checks"
                        ),
                    );
                }
            } else if written {
                errs.bad(
                    service_line,
                    "service",
                    format!(
                        "service `{other}` is not supported for negotiate checks: {why}; lvs \
                         checks {SERVICES} (or use checktype=connect)"
                    ),
                );
            } else {
                errs.bad(
                    service_line,
                    "service",
                    format!(
                        "port {port} implies service={other} (ldirectord's default), which lvs \
                         cannot check: {why}; lvs checks {SERVICES}; set service= or \
                         checktype=connect"
                    ),
                );
            }
            CheckService::None
        }
        other => {
            errs.bad(
                service_line,
                "service",
                format!("unknown service `{other}`: lvs checks {SERVICES}"),
            );
            CheckService::None
        }
    };
    let is_http = matches!(service, CheckService::Http | CheckService::Https);

    let persistent = match &v.persistent {
        None => None,
        Some(Val { value: 0, line }) => {
            errs.bad(*line, "persistent", "must be a positive number of seconds");
            None
        }
        Some(p) => Some(Duration::from_secs(p.value)),
    };
    let one_packet = match &v.ops {
        Some(Val { value: true, line }) if fwmark.is_none() && protocol != Protocol::Udp => {
            errs.bad(
                *line,
                "ops",
                "one-packet scheduling is only for UDP services (or firewall-mark ones), as \
                 in IPVS",
            );
            false
        }
        o => o.as_ref().is_some_and(|o| o.value),
    };
    let netmask_prefix = match &v.netmask {
        None => {
            if v6 {
                128
            } else {
                32
            }
        }
        Some(n) => errs.ok(parse_netmask(file, n, v6)).unwrap_or(32),
    };

    let fallback = match &v.fallback {
        Some(f) => {
            let key = if v.family == Some(Family::V6) {
                "fallback6"
            } else {
                "fallback"
            };
            errs.ok(parse_fallback(file, f, key, family, port, names))
        }
        None => {
            if v6 {
                globals.fallback6.clone()
            } else {
                globals.fallback.clone()
            }
        }
    };

    let http_method = match &v.httpmethod {
        None => HttpMethod::Get,
        Some(m) => match m.value.trim().to_ascii_uppercase().as_str() {
            "GET" => HttpMethod::Get,
            "HEAD" => HttpMethod::Head,
            _ => {
                errs.bad(m.line, "httpmethod", "httpmethod must be GET or HEAD");
                HttpMethod::Get
            }
        },
    };
    let request = match &v.request {
        Some(r) if r.value.is_empty() => {
            errs.bad(r.line, "request", "no request string specified");
            None
        }
        Some(r) if is_http => Some(http_path(&r.value)),
        Some(r) => Some(r.value.clone()),
        None if is_http => Some("/".to_string()),
        None => None,
    };
    let receive = match &v.receive {
        // An empty one means "any reply" to a udp check (keepalived's bare require_reply).
        Some(r) if r.value.is_empty() && service != CheckService::Udp => {
            errs.bad(r.line, "receive", "invalid receive string: empty");
            None
        }
        Some(r) => {
            errs.ok(check_regex(file, r.line, "receive", &r.value));
            Some(r.value.clone())
        }
        None => None,
    };
    let (check_address, check_source) =
        resolve_target_and_source(v, check_type, service, &mut errs);
    let (status_codes, follow_redirects) = resolve_http_answer(v, service, &mut errs);
    let check_port = match &v.checkport {
        None => None,
        Some(p) if (1..=65535).contains(&p.value) => Some(p.value as u16),
        Some(p) => {
            errs.bad(p.line, "checkport", "checkport must be in range 1..65535");
            None
        }
    };
    // `login` and `passwd` go into protocol lines: no control character (a CR LF would be a
    // command of its own).
    let mut credential = |v: &Opt<String>, key: &'static str| match v {
        Some(Val { value, line }) if value.chars().any(char::is_control) => {
            errs.bad(*line, key, "must not contain control characters");
            None
        }
        Some(Val { value, .. }) => Some(value.clone()),
        None => None,
    };
    let mut login = credential(&v.login, "login").filter(|l| !l.is_empty());
    let mut passwd = credential(&v.passwd, "passwd");
    let logs_in = negotiates && service.logs_in();
    if !logs_in {
        for (key, val) in [("login", &v.login), ("passwd", &v.passwd)] {
            if let Some(Val { line, .. }) = val {
                warn(
                    warnings,
                    file,
                    *line,
                    key,
                    "ignored: only the pop, pops, imap, imaps, ftp, ldap, ldaps, sip, radius, mysql and \
                     pgsql checks log in",
                );
            }
        }
        login = None;
        passwd = None;
    }
    let sql = negotiates && matches!(service, CheckService::Mysql | CheckService::Pgsql);
    let database = credential(&v.database, "database");
    let database = match (&v.database, sql) {
        (_, true) => database,
        (Some(Val { line, .. }), false) => {
            warn(
                warnings,
                file,
                *line,
                "database",
                "ignored: only the mysql and pgsql checks use a database",
            );
            None
        }
        (None, false) => None,
    };
    let radius = negotiates && service == CheckService::Radius;
    let secret = match (&v.secret, radius) {
        (Some(Val { value, .. }), true) => Some(value.clone()),
        (Some(Val { line, .. }), false) => {
            warn(
                warnings,
                file,
                *line,
                "secret",
                "ignored: only the radius check uses a secret",
            );
            None
        }
        (None, _) => None,
    };
    // ldirectord's check_sql: "Must specify a login and request string" (it never brings such
    // a real up; lvs says so when it reads the file).
    if sql {
        if login.is_none() {
            errs.bad(
                vline,
                "login",
                format!("a {service_name} check needs a login (and request, the query to run)"),
            );
        }
        if request
            .as_deref()
            .is_none_or(|r| r.trim_start_matches('/').is_empty())
        {
            errs.bad(
                vline,
                "request",
                format!(
                    "a {service_name} check needs request, the SQL query to run (a row back is up)"
                ),
            );
        }
    }
    if negotiates && service == CheckService::HttpProxy {
        let ok = request
            .as_deref()
            .map(|r| r.trim_start_matches('/'))
            .is_some_and(|r| r.len() > 7 && r[..7].eq_ignore_ascii_case("http://"));
        if !ok {
            errs.bad(
                v.request.as_ref().map_or(vline, |r| r.line),
                "request",
                "an http_proxy check needs request, the absolute http:// URL to fetch through the \
                 real",
            );
        }
    }
    let dns_type = match &v.dns_type {
        None => None,
        Some(Val { value, line }) if service != CheckService::Dns => {
            errs.bad(
                *line,
                "dns_type",
                format!("`{value}` has no effect: only the dns check asks for a record type"),
            );
            None
        }
        Some(Val { value, line }) => match dns_type_number(value) {
            Some(n) => Some(n),
            None => {
                errs.bad(
                    *line,
                    "dns_type",
                    format!("`{value}` is not one of {DNS_TYPES}"),
                );
                None
            }
        },
    };
    let digest = match &v.digest {
        None => None,
        Some(Val { value, line }) if !is_http => {
            errs.bad(
                *line,
                "digest",
                format!("`{value}` has no effect: only http and https checks read a body"),
            );
            None
        }
        Some(Val { value, line }) => {
            if crate::health::http::parse_digest(value).is_none() {
                errs.bad(
                    *line,
                    "digest",
                    format!("`{value}` is not an MD5 (32 hex digits, as genhash prints it)"),
                );
            }
            Some(value.trim().to_ascii_lowercase())
        }
    };
    let command_style = match v
        .checkcommand_style
        .as_ref()
        .map(|s| (s.value.as_str(), s.line))
    {
        None | Some(("ldirectord", _)) => CommandStyle::Ldirectord,
        Some(("keepalived", _)) => CommandStyle::Keepalived,
        Some((other, line)) => {
            errs.bad(
                line,
                "checkcommand_style",
                format!("`{other}` is not `ldirectord` or `keepalived`"),
            );
            CommandStyle::Ldirectord
        }
    };
    if command_style == CommandStyle::Keepalived {
        let commands = v
            .checkcommand
            .iter()
            .map(|c| (c.value.as_str(), c.line))
            .chain(
                v.reals
                    .iter()
                    .filter_map(|r| Some((r.checkcommand.as_deref()?, r.line))),
            );
        for (c, line) in commands {
            if let Err(why) = crate::health::external::keepalived_words(c) {
                errs.bad(line, "checkcommand", format!("`{c}`: {why}"));
            }
        }
    }
    let command = match (&v.checkcommand, check_type) {
        (Some(c), _) => Some(c.value.clone()),
        // ldirectord's default checkcommand.
        (None, CheckType::External) => Some("/bin/true".to_string()),
        (None, _) => None,
    };

    // Mutual defaults of checktimeout and negotiatetimeout, as ldirectord's ld_setup.
    let vct = errs
        .ok(check_seconds(file, "checktimeout", &v.checktimeout))
        .flatten();
    let vnt = errs
        .ok(check_seconds(file, "negotiatetimeout", &v.negotiatetimeout))
        .flatten();
    let gct = g.checktimeout.as_ref().map(|x| x.value);
    let gnt = g.negotiatetimeout.as_ref().map(|x| x.value);
    let timeout = vct
        .or(vnt)
        .or(gct)
        .or(gnt)
        .map_or(Duration::from_secs(5), Duration::from_secs);
    let negotiate_timeout = vnt
        .or(vct)
        .or(gnt)
        .or(gct)
        .map_or(Duration::from_secs(30), Duration::from_secs);

    let interval = errs
        .ok(check_seconds(file, "checkinterval", &v.checkinterval))
        .flatten()
        .map_or(globals.check_interval, Duration::from_secs);
    let failure_count = errs
        .ok(count(file, "failurecount", &v.failurecount))
        .flatten()
        .unwrap_or(globals.failure_count);
    let success_count = errs
        .ok(count(file, "successcount", &v.successcount))
        .flatten()
        .unwrap_or(globals.success_count);
    let retry_interval = errs
        .ok(check_seconds(file, "retry_interval", &v.retry_interval))
        .flatten()
        .map(Duration::from_secs);
    let is_file = check_type == CheckType::File;
    if is_file && request.as_deref().is_none_or(str::is_empty) {
        errs.bad(
            v.checktype.as_ref().map_or(vline, |c| c.line),
            "checktype",
            "a file check needs request, the file to read",
        );
    }
    let track_weight = match &v.track_weight {
        Some(Val { value, line }) if !is_file => {
            warn(
                warnings,
                file,
                *line,
                "track_weight",
                &format!("{value}: ignored: only a file check has one"),
            );
            0
        }
        Some(Val { value, line }) => match i32::try_from(*value) {
            Ok(w) if w > i32::MIN => w,
            _ => {
                errs.bad(
                    *line,
                    "track_weight",
                    "must be within -2147483647..2147483647",
                );
                0
            }
        },
        None => 0,
    };
    let track_reverse = is_file && v.track_reverse.as_ref().is_some_and(|r| r.value);

    let quorum = match &v.quorum {
        None => 1,
        Some(q) if (1..=u64::from(u32::MAX)).contains(&q.value) => q.value as u32,
        Some(q) => {
            errs.bad(q.line, "quorum", "must be 1 or more");
            1
        }
    };
    // keepalived keeps the hysteresis below the quorum.
    let hysteresis = v
        .hysteresis
        .as_ref()
        .map_or(0, |h| h.value.min(u64::from(quorum) - 1) as u32);

    let mut reals = Vec::new();
    for r in &v.reals {
        if let Some(mut rs) = errs.ok(resolve_real(file, r, family, proto_name, is_http, names)) {
            // The real's own source, over the service's.
            let own = parse_source(
                SourceKeys {
                    address: &r.check_source,
                    port: &r.check_source_port,
                    interface: &r.check_interface,
                    mark: &r.check_mark,
                },
                &mut errs,
            );
            if !own.is_default() && !takes_source(check_type, service) {
                errs.bad(r.line, "check_source", SOURCE_CHECKS);
            }
            if r.checkcommand.is_some() && check_type != CheckType::External {
                errs.bad(
                    r.line,
                    "checkcommand",
                    "a real's own checkcommand needs checktype = \"external\" on its service",
                );
            }
            let from = own.over(&check_source);
            // The source must be of the family of each address checked.
            for rr in &mut rs {
                rr.check_source = own.clone();
                let target = rr.check_address.or(check_address).unwrap_or(rr.addr.ip());
                if let Some(s) = from.address
                    && s.is_ipv4() != target.is_ipv4()
                {
                    errs.bad(
                        r.line,
                        "check_source",
                        format!(
                            "{s} is not of the family of {target}, which this real is checked at"
                        ),
                    );
                    break;
                }
                if let Some(std::net::IpAddr::V6(a)) = rr.check_address
                    && a.segments()[0] & 0xffc0 == 0xfe80
                    && from.interface.is_none()
                {
                    errs.bad(
                        r.line,
                        "check_address",
                        "an IPv6 link-local address needs check_interface (keepalived's bind_if), its scope",
                    );
                    break;
                }
            }
            if let Some(own) = vip.filter(|a| rs.iter().any(|rr| rr.addr.ip() == a.ip())) {
                warn(
                    warnings,
                    file,
                    r.line,
                    "real",
                    &format!(
                        "{} is the virtual address itself: the director serves this share of \
                         the connections with its own stack (IPVS's local node), whatever the \
                         forwarding method",
                        own.ip()
                    ),
                );
            }
            for rr in &rs {
                if rr.forwarding != Forwarding::Masq
                    && rr.addr.port() != 0
                    && port != 0
                    && rr.addr.port() != port
                {
                    warn(
                        warnings,
                        file,
                        r.line,
                        "real",
                        &format!(
                            "direct routing cannot change the port: {} receives connections on \
                             port {port}, port {} is only used for checks",
                            rr.addr.ip(),
                            rr.addr.port()
                        ),
                    );
                    break;
                }
            }
            reals.append(&mut rs);
        }
    }

    // Each further check is resolved as a virtual of its own on the same address and
    // protocol (the same defaults, the same refusals), of which only the check is kept.
    let mut also_checks = Vec::new();
    for a in &v.also_checks {
        let mut a = a.clone();
        a.address = v.address.clone();
        a.family = v.family;
        a.protocol = v.protocol.clone();
        a.reals.clear();
        a.also_checks.clear();
        if let Some(resolved) = errs.ok(resolve_virtual(
            file,
            &a,
            g,
            globals,
            warnings,
            &mut Vec::new(),
        )) {
            also_checks.push(resolved.check);
        }
    }

    errs.finish()?;
    Ok(VirtualService {
        location: loc(file, vline),
        name: v.servicename.as_ref().map(|s| s.value.clone()),
        comment: v.comment.as_ref().map(|s| s.value.clone()),
        vip: vip.expect("no error means the address parsed"),
        protocol,
        fwmark,
        scheduler,
        persistent,
        netmask_prefix,
        one_packet,
        reals,
        fallback,
        fallback_command: v
            .fallbackcommand
            .as_ref()
            .map(|c| c.value.clone())
            .or_else(|| globals.fallback_command.clone()),
        quiescent: v.quiescent.as_ref().map_or(globals.quiescent, |q| q.value),
        check: CheckSpec {
            check_type,
            service,
            port: check_port,
            request,
            receive,
            http_method,
            virtual_host: v.virtualhost.as_ref().map(|h| h.value.clone()),
            verify_tls: v
                .verify_tls
                .as_ref()
                .map_or(globals.verify_tls, |b| b.value),
            command,
            command_style,
            dynamic_weight: v.dynamic_weight.as_ref().is_some_and(|b| b.value),
            login,
            passwd,
            database,
            secret,
            dns_type,
            digest,
            status_codes,
            follow_redirects,
            interval,
            timeout,
            negotiate_timeout,
            failure_count,
            success_count,
            retry_interval,
            track_weight,
            track_reverse,
            address: check_address,
            source: check_source,
        },
        also_checks,
        quorum,
        hysteresis,
        quorum_up: v.quorum_up.as_ref().map(|s| s.value.clone()),
        quorum_down: v.quorum_down.as_ref().map(|s| s.value.clone()),
    })
}
