//! `virtual_server`, `real_server` and the checkers, onto the raw description.

use std::path::PathBuf;

use super::{Mapper, SCHEDULERS, bad, boolean, endpoint, method, number, one_arg, port, timer};
use crate::config::{
    ConfigError, Location,
    keepalived_lex::Stmt,
    raw::{RawReal, RawVirtual, Val},
};

/// The check settings that keepalived inherits: checker ← real_server ← virtual_server.
#[derive(Clone, Default)]
struct Timers {
    delay_loop: Option<Val<u64>>,
    connect_timeout: Option<Val<u64>>,
    retry: Option<Val<u64>>,
    virtualhost: Option<String>,
}

/// How one real is checked, in the model's terms; equal for every real of a service.
#[derive(Clone, Debug, PartialEq)]
struct Check {
    checktype: &'static str,
    service: &'static str,
    /// The port checked when it is not the real's.
    port: Option<u16>,
    request: Option<String>,
    receive: Option<String>,
    virtualhost: Option<String>,
    command: Option<String>,
    interval: u64,
    timeout: u64,
    failures: u64,
}

/// One real as read.
struct Real {
    raw: RawReal,
    loc: Location,
    check: Check,
    inhibit: bool,
}

const CHECKERS_REFUSED: &[(&str, &str)] = &[
    ("SMTP_CHECK", "lvs has no SMTP check yet"),
    (
        "DNS_CHECK",
        "lvs's dns check asks for an A record and wants an answer; keepalived's asks for SOA \
         of `.` and needs only NOERROR",
    ),
    ("UDP_CHECK", "lvs has no UDP payload check yet"),
    ("FILE_CHECK", "lvs has no file-watching check"),
    ("BFD_CHECK", "lvs has no BFD"),
];

impl Mapper {
    /// One `virtual_server` block: `None` when keepalived would ignore it (no real server).
    pub(super) fn virtual_server(
        &mut self,
        s: &Stmt,
    ) -> Result<Option<(PathBuf, RawVirtual)>, ConfigError> {
        let (vip, vport) = match s.args() {
            [kind, _] if kind == "fwmark" => {
                return Err(bad(
                    &s.loc,
                    "virtual_server",
                    "firewall-mark services (virtual_server fwmark N) are not supported yet: \
                     XDP runs before netfilter marks packets; write one virtual_server IP PORT \
                     per service",
                ));
            }
            [kind, _] if kind == "group" => {
                return Err(bad(
                    &s.loc,
                    "virtual_server",
                    "virtual_server group is not supported yet: write one virtual_server IP PORT \
                     per address of the group",
                ));
            }
            [ip, p] => (ip.as_str(), Some(port(s, p)?)),
            [ip] => (ip.as_str(), None),
            _ => {
                return Err(bad(
                    &s.loc,
                    "virtual_server",
                    "expected `virtual_server IP PORT`, `fwmark N` or `group NAME`",
                ));
            }
        };
        let line = s.loc.line;
        let mut timers = Timers::default();
        let mut v = RawVirtual::new(Val::new(String::new(), line), None);
        let mut sched: Option<&Stmt> = None;
        let mut kind: Option<&Stmt> = None;
        let mut kind_method = "gate";
        let mut sorry_method = None;
        let mut protocol: Option<&Stmt> = None;
        let mut persist: Option<Val<u64>> = None;
        let mut granularity: Option<&Stmt> = None;
        let mut weight: Option<u64> = None;
        let mut inhibit = false;
        let mut sorry: Option<&Stmt> = None;
        let mut reals: Vec<&Stmt> = Vec::new();
        for i in s.block.iter().flatten() {
            let k = i.key();
            match k {
                "lb_algo" | "lvs_sched" => {
                    match one_arg(i)? {
                        "rr" | "wrr" | "sh" => {}
                        n => {
                            return Err(bad(
                                &i.loc,
                                k,
                                format!(
                                    "scheduler `{n}` is not supported: lvs implements {SCHEDULERS}"
                                ),
                            ));
                        }
                    }
                    sched = Some(i)
                }
                "lb_kind" | "lvs_method" => {
                    kind_method = method(i)?;
                    kind = Some(i)
                }
                "protocol" => protocol = Some(i),
                "persistence_timeout" => {
                    // No value: 360 s; 0: not persistent (keepalived's meaning of both).
                    persist = match i.args() {
                        [] => Some(Val::new(360, i.loc.line)),
                        _ => Some(number(i)?).filter(|p| p.value > 0),
                    };
                }
                "persistence_granularity" => granularity = Some(i),
                "delay_loop" => timers.delay_loop = Some(timer(i, &mut self.warnings)?),
                "connect_timeout" => timers.connect_timeout = Some(timer(i, &mut self.warnings)?),
                "retry" => timers.retry = Some(number(i)?),
                "virtualhost" => timers.virtualhost = Some(one_arg(i)?.to_string()),
                "weight" => weight = Some(number(i)?.value),
                "inhibit_on_failure" => inhibit = boolean(i)?,
                "sorry_server" => sorry = Some(i),
                "sorry_server_lvs_method" => sorry_method = Some(method(i)?),
                "sorry_server_inhibit" => {
                    boolean(i)?;
                    self.warn(
                        &i.loc,
                        k,
                        "no effect: lvs adds the sorry server only while every real is down, \
                         and removes it when one is back",
                    );
                }
                "quorum" => {
                    if number(i)?.value > 1 {
                        return Err(bad(
                            &i.loc,
                            k,
                            "a quorum above 1 is not supported: lvs turns to the sorry server \
                             when no real is up (keepalived's quorum 1)",
                        ));
                    }
                }
                "hysteresis" => {
                    // keepalived forces hysteresis below quorum, and lvs's quorum is 1.
                    if number(i)?.value > 0 {
                        self.warn(&i.loc, k, "no effect with quorum 1 (keepalived makes it 0)");
                    }
                }
                "quorum_up" | "quorum_down" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "quorum scripts are not supported yet: lvs runs no script when it turns \
                         to the sorry server",
                    ));
                }
                "alpha" => {
                    boolean(i)?;
                }
                "omega" => {
                    boolean(i)?;
                    self.warn(
                        &i.loc,
                        k,
                        "no effect: omega runs the quorum_down and notify_down scripts at \
                         shutdown, and lvs refuses those scripts",
                    );
                }
                "ha_suspend" => {
                    boolean(i)?;
                    self.warn(
                        &i.loc,
                        k,
                        "ignored: lvs checks the reals whether or not the VIP is on this host",
                    );
                }
                "smtp_alert" | "snmp_name" | "hashed" | "nat_mask" | "ip_family" => {
                    self.warn(&i.loc, k, "ignored: no effect in lvs")
                }
                "delay_before_retry" | "warmup" => {
                    timer(i, &mut self.warnings)?;
                    self.warn(
                        &i.loc,
                        k,
                        "ignored: lvs checks at delay_loop and counts failures with retry",
                    );
                }
                "ops" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "one-packet scheduling is not supported: lvs tracks UDP flows",
                    ));
                }
                "persistence_engine" => {
                    return Err(bad(&i.loc, k, "persistence engines are not supported"));
                }
                k if k.starts_with("flag-") || k.starts_with("sh-") || k.starts_with("mh-") => {
                    return Err(bad(
                        &i.loc,
                        k,
                        format!(
                            "scheduler flags are not supported: lvs implements plain {SCHEDULERS}"
                        ),
                    ));
                }
                "real_server" => reals.push(i),
                _ => return Err(bad(&i.loc, k, "unknown keyword in virtual_server")),
            }
        }

        let proto = match protocol {
            None => {
                self.warn(
                    &s.loc,
                    "protocol",
                    "no protocol set: UDP, keepalived's default (write `protocol TCP` for TCP)",
                );
                "udp"
            }
            Some(p) => match one_arg(p)? {
                "TCP" | "tcp" => "tcp",
                "UDP" | "udp" => "udp",
                "SCTP" | "sctp" => {
                    return Err(bad(&p.loc, "protocol", "SCTP is not supported: TCP or UDP"));
                }
                o => return Err(bad(&p.loc, "protocol", format!("unknown protocol `{o}`"))),
            },
        };
        v.protocol = Some(Val::new(
            proto.to_string(),
            protocol.map_or(line, |p| p.loc.line),
        ));
        match sched {
            None => {
                return Err(bad(
                    &s.loc,
                    "lb_algo",
                    format!(
                        "no lb_algo: keepalived's default, wlc, is not supported; lvs implements \
                         {SCHEDULERS} (write e.g. `lb_algo rr`)"
                    ),
                ));
            }
            Some(a) => v.scheduler = Some(Val::new(one_arg(a)?.to_string(), a.loc.line)),
        }
        if kind.is_none() {
            return Err(bad(
                &s.loc,
                "lb_kind",
                "no lb_kind: keepalived's default, NAT, is not yet supported; lvs forwards \
                 by direct routing (write `lb_kind DR`)",
            ));
        }
        let vport = match vport {
            Some(p) => p,
            None => {
                if persist.is_none() {
                    self.warn(
                        &s.loc,
                        "virtual_server",
                        "no port and not persistent: persistent for 360 s, as keepalived does",
                    );
                    persist = Some(Val::new(360, line));
                }
                0
            }
        };
        if let Some(g) = granularity {
            v.netmask = Some(Val::new(one_arg(g)?.to_string(), g.loc.line));
            if persist.is_none() {
                persist = Some(Val::new(360, g.loc.line));
            }
        }
        v.persistent = persist;
        v.address = Val::new(endpoint(s, vip, vport)?, line);
        if let Some(f) = sorry {
            let (ip, p) = match f.args() {
                [ip] => (ip, vport),
                [ip, p] => (ip, port(f, p)?),
                _ => return Err(bad(&f.loc, f.key(), "expected `sorry_server IP [PORT]`")),
            };
            let at = endpoint(f, ip, p)?;
            // The sorry server's method: its own, else the service's (as keepalived).
            let m = sorry_method.unwrap_or(kind_method);
            v.fallback = Some(Val::new(format!("{at} {m}"), f.loc.line));
        }

        let mut read: Vec<Real> = Vec::new();
        for r in reals {
            read.push(self.real_server(r, vport, weight, inhibit, kind_method, &timers)?);
        }
        let Some(first) = read.first() else {
            self.warn(
                &s.loc,
                "virtual_server",
                "no real_server: ignored, as keepalived does",
            );
            return Ok(None);
        };
        let (check, quiet) = (first.check.clone(), first.inhibit);
        let first_loc = first.loc.clone();
        for r in &read {
            if r.check != check {
                return Err(bad(
                    &r.loc,
                    "real_server",
                    format!(
                        "checked differently from the real at {first_loc}: lvs checks every real \
                         of a virtual service the same way ({:?} here, {:?} there)",
                        r.check, check
                    ),
                ));
            }
            if r.inhibit != quiet {
                return Err(bad(
                    &r.loc,
                    "inhibit_on_failure",
                    format!(
                        "differs from the real at {first_loc}: lvs sets it for a whole virtual \
                         service"
                    ),
                ));
            }
        }
        let at = |x: String| Some(Val::new(x, line));
        v.quiescent = Some(Val::new(quiet, line));
        v.checktype = at(check.checktype.to_string());
        v.service = at(check.service.to_string());
        v.checkport = check.port.map(|p| Val::new(u64::from(p), line));
        v.request = check.request.clone().and_then(at);
        v.receive = check.receive.clone().and_then(at);
        v.virtualhost = check.virtualhost.clone().and_then(at);
        v.checkcommand = check.command.clone().and_then(at);
        v.checkinterval = Some(Val::new(check.interval, line));
        v.checktimeout = Some(Val::new(check.timeout, line));
        v.negotiatetimeout = Some(Val::new(check.timeout, line));
        v.failurecount = Some(Val::new(check.failures, line));
        v.successcount = Some(Val::new(1, line));
        v.reals = read.into_iter().map(|r| r.raw).collect();
        Ok(Some((s.loc.file.clone(), v)))
    }

    fn real_server(
        &mut self,
        s: &Stmt,
        vport: u16,
        weight: Option<u64>,
        inhibit: bool,
        vs_method: &'static str,
        vs: &Timers,
    ) -> Result<Real, ConfigError> {
        let (ip, rport) = match s.args() {
            [ip, p] => (ip.as_str(), port(s, p)?),
            [ip] => (ip.as_str(), vport),
            _ => {
                return Err(bad(
                    &s.loc,
                    "real_server",
                    "expected `real_server IP [PORT]`",
                ));
            }
        };
        let mut raw = RawReal {
            line: s.loc.line,
            address: endpoint(s, ip, rport)?,
            family: None,
            method: Some(vs_method.into()),
            weight: Some(weight.unwrap_or(1)),
            request: None,
            receive: None,
        };
        let mut timers = vs.clone();
        let mut inhibit = inhibit;
        let mut checkers: Vec<&Stmt> = Vec::new();
        for i in s.block.iter().flatten() {
            let k = i.key();
            match k {
                "weight" => raw.weight = Some(number(i)?.value),
                "lvs_method" | "lb_kind" => raw.method = Some(method(i)?.into()),
                "inhibit_on_failure" => inhibit = boolean(i)?,
                "delay_loop" => timers.delay_loop = Some(timer(i, &mut self.warnings)?),
                "connect_timeout" => timers.connect_timeout = Some(timer(i, &mut self.warnings)?),
                "retry" => timers.retry = Some(number(i)?),
                "virtualhost" => timers.virtualhost = Some(one_arg(i)?.to_string()),
                "alpha" => {
                    boolean(i)?;
                }
                "delay_before_retry" | "warmup" => {
                    timer(i, &mut self.warnings)?;
                    self.warn(
                        &i.loc,
                        k,
                        "ignored: lvs checks at delay_loop and counts failures with retry",
                    );
                }
                "smtp_alert" | "snmp_name" => self.warn(&i.loc, k, "ignored: no effect in lvs"),
                "notify_up" | "notify_down" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "per-real notify scripts are not supported yet: lvs's global `notify` \
                         command (TOML or ldirectord config) is run on every change",
                    ));
                }
                "uthreshold" | "lthreshold" => {
                    return Err(bad(&i.loc, k, "connection thresholds are not supported"));
                }
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "PING_CHECK" => {
                    checkers.push(i)
                }
                k => match CHECKERS_REFUSED.iter().find(|(n, _)| *n == k) {
                    Some((_, why)) => {
                        return Err(bad(&i.loc, k, format!("not supported: {why}")));
                    }
                    None => return Err(bad(&i.loc, k, "unknown keyword in real_server")),
                },
            }
        }
        let mut checks = Vec::new();
        for c in &checkers {
            checks.push((c, self.checker(c, ip, rport, &timers)?));
        }
        let check = match checks.as_slice() {
            [] => Check {
                checktype: "on",
                service: "none",
                port: None,
                request: None,
                receive: None,
                virtualhost: None,
                command: None,
                interval: timers.delay_loop.as_ref().map_or(60, |d| d.value),
                timeout: timers.connect_timeout.as_ref().map_or(5, |d| d.value),
                failures: 1,
            },
            [(_, c)] => c.clone(),
            [(a, ca), (b, cb)]
                if ca.port == cb.port
                    && (a.key() == "TCP_CHECK") != (b.key() == "TCP_CHECK")
                    && matches!(
                        if a.key() == "TCP_CHECK" {
                            b.key()
                        } else {
                            a.key()
                        },
                        "HTTP_GET" | "SSL_GET"
                    ) =>
            {
                let (tcp, http) = if a.key() == "TCP_CHECK" {
                    (a, cb)
                } else {
                    (b, ca)
                };
                self.warn(
                    &tcp.loc,
                    "TCP_CHECK",
                    "covered by the HTTP check on the same port (which connects too): lvs runs \
                     that one only",
                );
                http.clone()
            }
            [_, (c, _), ..] => {
                return Err(bad(
                    &c.loc,
                    c.key(),
                    "several checkers on one real are not supported (except a TCP_CHECK with an \
                     HTTP_GET or SSL_GET on the same port): lvs runs one check per real",
                ));
            }
        };
        Ok(Real {
            raw,
            loc: s.loc.clone(),
            check,
            inhibit,
        })
    }

    fn checker(
        &mut self,
        s: &Stmt,
        ip: &str,
        rport: u16,
        inherited: &Timers,
    ) -> Result<Check, ConfigError> {
        let mut t = inherited.clone();
        let kind = s.key();
        let (checktype, service, default_retry) = match kind {
            "TCP_CHECK" => ("connect", "none", 1),
            "HTTP_GET" => ("negotiate", "http", 1),
            "SSL_GET" => ("negotiate", "https", 1),
            "MISC_CHECK" => ("external", "none", 0),
            _ => ("ping", "none", 1),
        };
        let mut connect_port = None;
        let mut urls: Vec<&Stmt> = Vec::new();
        let mut misc_path = None;
        let mut misc_timeout = None;
        for i in s.block.iter().flatten() {
            let k = i.key();
            let connects = !matches!(kind, "MISC_CHECK");
            match k {
                "connect_port" if connects => connect_port = Some(port(i, one_arg(i)?)?),
                "connect_ip" if connects => {
                    if one_arg(i)?.parse::<std::net::IpAddr>().ok() != ip.parse().ok() {
                        return Err(bad(
                            &i.loc,
                            k,
                            "checking another address than the real's is not supported",
                        ));
                    }
                }
                "connect_timeout" if connects => {
                    t.connect_timeout = Some(timer(i, &mut self.warnings)?)
                }
                "bindto" | "bind_port" | "bind_if" | "fwmark" if connects => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "not supported: lvs's checks leave from the host's own address",
                    ));
                }
                "retry" | "nb_get_retry" => t.retry = Some(number(i)?),
                "delay_loop" => t.delay_loop = Some(timer(i, &mut self.warnings)?),
                "delay_before_retry" | "warmup" => {
                    timer(i, &mut self.warnings)?;
                    self.warn(
                        &i.loc,
                        k,
                        "ignored: lvs checks at delay_loop and counts failures with retry",
                    );
                }
                "alpha" => {
                    boolean(i)?;
                }
                "log_all_failures" => self.warn(&i.loc, k, "ignored: lvs logs every change"),
                "url" if matches!(kind, "HTTP_GET" | "SSL_GET") => urls.push(i),
                "virtualhost" if matches!(kind, "HTTP_GET" | "SSL_GET") => {
                    t.virtualhost = Some(one_arg(i)?.to_string())
                }
                "http_protocol" | "fast_recovery" | "enable_sni" | "sni_name" | "tls_compliant"
                    if matches!(kind, "HTTP_GET" | "SSL_GET") =>
                {
                    self.warn(&i.loc, k, "ignored: lvs's HTTP check has its own settings")
                }
                "misc_path" if kind == "MISC_CHECK" => misc_path = Some(one_arg(i)?.to_string()),
                "misc_timeout" if kind == "MISC_CHECK" => {
                    misc_timeout = Some(timer(i, &mut self.warnings)?.value)
                }
                "misc_dynamic" if kind == "MISC_CHECK" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "not supported yet: lvs does not set weights from a script's exit code",
                    ));
                }
                "user" if kind == "MISC_CHECK" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "not supported: lvs runs checks as its own user",
                    ));
                }
                "nb_sock_retry" => {
                    number(i)?;
                    self.warn(&i.loc, k, "ignored: not a keepalived 2.x keyword");
                }
                _ => return Err(bad(&i.loc, k, format!("unknown keyword in {kind}"))),
            }
        }
        let (mut request, mut receive, mut vhost) = (None, None, t.virtualhost.clone());
        if matches!(kind, "HTTP_GET" | "SSL_GET") {
            match urls.as_slice() {
                [] => request = Some("/".to_string()),
                [u] => {
                    let (p, r, h) = self.url(u)?;
                    request = Some(p);
                    receive = r;
                    vhost = h.or(vhost);
                }
                [_, second, ..] => {
                    return Err(bad(
                        &second.loc,
                        "url",
                        "several url blocks are not supported: lvs checks one path per service",
                    ));
                }
            }
        }
        let command = if kind == "MISC_CHECK" {
            let Some(p) = misc_path else {
                return Err(bad(&s.loc, kind, "needs a misc_path"));
            };
            self.warn(
                &s.loc,
                kind,
                "lvs runs misc_path with ldirectord's four arguments appended (virtual address \
                 and port, real address and port), which keepalived does not",
            );
            Some(p)
        } else {
            None
        };
        let interval = t.delay_loop.as_ref().map_or(60, |d| d.value);
        let timeout = if kind == "MISC_CHECK" {
            misc_timeout.unwrap_or(interval)
        } else {
            t.connect_timeout.as_ref().map_or(5, |d| d.value)
        };
        Ok(Check {
            checktype,
            service,
            port: connect_port.filter(|p| *p != rport),
            request,
            receive,
            virtualhost: vhost,
            command,
            interval,
            timeout,
            failures: t.retry.as_ref().map_or(default_retry, |r| r.value) + 1,
        })
    }

    /// A `url` block: path, the `regex` the body must match, and the Host.
    fn url(&mut self, s: &Stmt) -> Result<(String, Option<String>, Option<String>), ConfigError> {
        let (mut path, mut regex, mut vhost) = (None, None, None);
        for i in s.block.iter().flatten() {
            let k = i.key();
            match k {
                "path" => path = Some(one_arg(i)?.to_string()),
                "virtualhost" => vhost = Some(one_arg(i)?.to_string()),
                "regex" => regex = Some(one_arg(i)?.to_string()),
                "status_code" => {
                    let mut codes = Vec::new();
                    for a in i.args() {
                        let (lo, hi) = a.split_once('-').unwrap_or((a, a));
                        match (lo.parse::<u16>(), hi.parse::<u16>()) {
                            (Ok(lo), Ok(hi)) if lo <= hi => codes.push((lo, hi)),
                            _ => {
                                return Err(bad(
                                    &i.loc,
                                    k,
                                    format!("`{a}` is not a status code or range"),
                                ));
                            }
                        }
                    }
                    if codes.iter().any(|&(lo, hi)| lo < 200 || hi > 299) {
                        return Err(bad(
                            &i.loc,
                            k,
                            "status codes outside 200-299 are not supported: lvs's HTTP check \
                             passes on a 2xx status",
                        ));
                    }
                    if codes != [(200, 299)] {
                        self.warn(
                            &i.loc,
                            k,
                            "lvs's HTTP check passes on any 2xx status, not only these",
                        );
                    }
                }
                "digest" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "not supported yet: lvs does not compare an MD5 digest of the page; \
                         match its content with `regex` instead",
                    ));
                }
                _ => return Err(bad(&i.loc, k, "unknown or unsupported keyword in url")),
            }
        }
        let Some(path) = path else {
            return Err(bad(&s.loc, "url", "needs a path"));
        };
        Ok((path, regex, vhost))
    }
}
