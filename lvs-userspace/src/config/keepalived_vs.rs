//! `virtual_server`, `real_server` and the checkers, onto the raw description.

use std::path::PathBuf;

use super::{
    Mapper, Member, SCHEDULERS, bad, boolean, endpoint, fwmark, keywords::Block, method, number,
    one_arg, port, timer,
};
use crate::config::{
    ConfigError, Location, Scheduler,
    keepalived_lex::Stmt,
    model::{CheckSource, StatusCodes},
    raw::{Family, RawReal, RawVirtual, Val},
};

/// The check settings that keepalived inherits: checker ← real_server ← virtual_server.
#[derive(Clone, Default)]
struct Timers {
    delay_loop: Option<Val<u64>>,
    connect_timeout: Option<Val<u64>>,
    retry: Option<Val<u64>>,
    delay_before_retry: Option<Val<u64>>,
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
    /// `misc_dynamic`.
    dynamic: bool,
    dns_type: Option<String>,
    digest: Option<String>,
    /// An HTTP_GET/SSL_GET url's `status_code`.
    status_codes: StatusCodes,
    interval: u64,
    timeout: u64,
    /// `delay_before_retry`: seconds between checks while retrying.
    retry_interval: u64,
    /// FILE_CHECK's weight and reverse.
    track_weight: i32,
    track_reverse: bool,
    failures: u64,
    /// `connect_ip`, when not the real's own address.
    connect_ip: Option<std::net::IpAddr>,
    /// `bindto`, `bind_port`, `bind_if`, `fwmark`.
    source: CheckSource,
}

impl Check {
    /// A `checktype` check that opens no socket and speaks no service (no checker: `on`;
    /// `FILE_CHECK`), every `interval` seconds with `timeout`: down at the first failure,
    /// nothing else set.
    fn socketless(checktype: &'static str, interval: u64, timeout: u64) -> Check {
        Check {
            checktype,
            service: "none",
            port: None,
            request: None,
            receive: None,
            virtualhost: None,
            command: None,
            dynamic: false,
            dns_type: None,
            digest: None,
            status_codes: StatusCodes::default(),
            interval,
            timeout,
            retry_interval: 1,
            track_weight: 0,
            track_reverse: false,
            failures: 1,
            connect_ip: None,
            source: CheckSource::default(),
        }
    }
}

/// One real as read.
struct Real {
    raw: RawReal,
    loc: Location,
    /// Its checkers (never empty: none written is an `on` check), the first the service's
    /// check, the others further checks.
    checks: Vec<Check>,
    inhibit: bool,
}

impl Mapper {
    /// `delay_before_retry` (into `t`) or `warmup` (checked, then ignored): read alike in a
    /// `virtual_server`, a `real_server` and a checker.
    fn retry_timer(&mut self, i: &Stmt, t: &mut Timers) -> Result<(), ConfigError> {
        let secs = timer(i, &mut self.warnings)?;
        if i.key() == "warmup" {
            self.warn(
                &i.loc,
                i.key(),
                "ignored: lvs checks at delay_loop and counts failures with retry",
            );
        } else {
            t.delay_before_retry = Some(secs);
        }
        Ok(())
    }
}

const CHECKERS_REFUSED: &[(&str, &str)] = &[("BFD_CHECK", "lvs has no BFD")];

/// keepalived's word for an ldirectord method word.
fn method_word(m: &str) -> &'static str {
    match m {
        "gate" => "DR",
        "ipip" => "TUN",
        _ => "NAT",
    }
}

/// A real (or sorry) server `at` (`IP:PORT`, `[IP6]:PORT`) of the family of the virtual
/// service (`v6`, named `what`): IPVS forwards to a server of the other family only through a
/// tunnel, and lvs's tunnel keeps the packet's family. keepalived skips such a server with an
/// error; lvs refuses it, naming `s`'s line.
fn same_family(
    s: &Stmt,
    v6: bool,
    what: &str,
    at: &str,
    m: Option<&str>,
) -> Result<(), ConfigError> {
    let real_v6 = at.starts_with('[');
    if v6 == real_v6 {
        return Ok(());
    }
    let fam = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
    let ip = at
        .rsplit_once(':')
        .map_or(at, |(ip, _)| ip)
        .trim_matches(|c| c == '[' || c == ']');
    let m = m.map_or("NAT", method_word);
    let why = if m == "TUN" {
        "IPVS tunnels to a server of the other family, but lvs's tunnel does not (IPv4 in IPv4, \
         IPv6 in IPv6)"
            .to_string()
    } else {
        format!(
            "IPVS forwards to a server of the other address family only through a tunnel (TUN), \
             and {m} cannot translate or route between families (keepalived skips this server, \
             with an error)"
        )
    };
    Err(bad(
        &s.loc,
        s.key(),
        format!(
            "{ip} is {} and {what} is {}: {why}; give it a server of the virtual server's family",
            fam(real_v6),
            fam(v6)
        ),
    ))
}

impl Mapper {
    /// One `virtual_server` block: one raw service per address it stands for (a `group`
    /// stands for each member of its `virtual_server_group`); none when keepalived would
    /// ignore it (no real server, an empty group).
    pub(super) fn virtual_server(
        &mut self,
        s: &Stmt,
    ) -> Result<Vec<(PathBuf, RawVirtual)>, ConfigError> {
        let members: Vec<Member> = match s.args() {
            [kind, m] if kind == "fwmark" => vec![Member::Fwmark(fwmark(s, m)?, None)],
            [kind, name] if kind == "group" => match self.groups.get(name.as_str()) {
                Some(g) => g.clone(),
                None => {
                    return Err(bad(
                        &s.loc,
                        "virtual_server",
                        format!("no virtual_server_group `{name}` is defined"),
                    ));
                }
            },
            [ip, p] => vec![Member::Addr(ip.clone(), Some(port(s, p)?))],
            [ip] => vec![Member::Addr(ip.clone(), None)],
            _ => {
                return Err(bad(
                    &s.loc,
                    "virtual_server",
                    "expected `virtual_server IP PORT`, `fwmark N` or `group NAME`",
                ));
            }
        };
        if members.is_empty() {
            self.warn(
                &s.loc,
                "virtual_server",
                "its group has no member: ignored, as keepalived does",
            );
        }
        let mut out = Vec::new();
        for m in &members {
            if let Some(v) = self.one_virtual(s, m)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The service of `s` for one address (or mark) it stands for.
    fn one_virtual(
        &mut self,
        s: &Stmt,
        member: &Member,
    ) -> Result<Option<(PathBuf, RawVirtual)>, ConfigError> {
        let (vip, vport, mark) = match member {
            // Port 0 is no port (keepalived's check_data.c: a zero port makes the service
            // persistent, as a missing one does); a group's member alike.
            Member::Addr(ip, p) => (ip.as_str(), p.filter(|&p| p != 0), None),
            Member::Fwmark(n, fam) => ("", Some(0), Some((*n, *fam))),
        };
        let line = s.loc.line;
        let mut timers = Timers::default();
        let mut v = RawVirtual::new(Val::new(String::new(), line), None);
        let mut sched: Option<&Stmt> = None;
        // keepalived's default is NAT.
        let mut kind_method = "masq";
        let mut sorry_method = None;
        let mut protocol: Option<&Stmt> = None;
        let mut persist: Option<Val<u64>> = None;
        let mut granularity: Option<&Stmt> = None;
        let mut weight: Option<u64> = None;
        let mut inhibit = false;
        let mut sorry: Option<&Stmt> = None;
        let mut reals: Vec<&Stmt> = Vec::new();
        let mut mh_flags: Vec<(&str, usize)> = Vec::new();
        let mut ops: Option<usize> = None;
        let mut family: Option<Family> = mark.and_then(|(_, f)| f);
        for i in s.block.iter().flatten() {
            let k = i.key();
            match k {
                "lb_algo" | "lvs_sched" => {
                    match one_arg(i)? {
                        n if Scheduler::from_name(n).is_some() => {}
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
                "lb_kind" | "lvs_method" => kind_method = method(i)?,
                "protocol" => protocol = Some(i),
                "ip_family" if mark.is_some() => match one_arg(i)? {
                    "inet" => family = Some(Family::V4),
                    "inet6" => family = Some(Family::V6),
                    f => return Err(bad(&i.loc, k, format!("`{f}` is not inet or inet6"))),
                },
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
                    let q = number(i)?;
                    if q.value == 0 {
                        return Err(bad(&i.loc, k, "must be 1 or more"));
                    }
                    v.quorum = Some(q);
                }
                "hysteresis" => v.hysteresis = Some(number(i)?),
                "quorum_up" | "quorum_down" => {
                    let script = match i.args() {
                        [script] => Val::new(script.to_string(), i.loc.line),
                        [_, _user, ..] => {
                            return Err(bad(
                                &i.loc,
                                k,
                                "a script user is not supported: lvs runs scripts as its own user",
                            ));
                        }
                        [] => return Err(bad(&i.loc, k, "needs a script")),
                    };
                    if k == "quorum_up" {
                        v.quorum_up = Some(script);
                    } else {
                        v.quorum_down = Some(script);
                    }
                }
                "alpha" => {
                    boolean(i)?;
                }
                "omega" => {
                    boolean(i)?;
                    self.warn(
                        &i.loc,
                        k,
                        "no effect: lvs does not run the quorum_down and notify_down scripts \
                         when it stops (the data plane keeps forwarding across a restart)",
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
                "delay_before_retry" | "warmup" => self.retry_timer(i, &mut timers)?,
                "ops" => {
                    if !i.args().is_empty() {
                        return Err(bad(&i.loc, k, "takes no argument"));
                    }
                    ops = Some(i.loc.line);
                }
                "persistence_engine" => {
                    return Err(bad(&i.loc, k, "persistence engines are not supported"));
                }
                "mh-port" | "mh-fallback" => mh_flags.push((k, i.loc.line)),
                k if k.starts_with("flag-") || k.starts_with("sh-") || k.starts_with("mh-") => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "scheduler flags other than mh-port and mh-fallback (for mh) are not supported",
                    ));
                }
                "real_server" => reals.push(i),
                _ => self.unknown(&i.loc, k, Block::VirtualServer)?,
            }
        }

        let proto = match protocol {
            _ if mark.is_some() => {
                if let Some(p) = protocol {
                    self.warn(
                        &p.loc,
                        "protocol",
                        "ignored for a firewall-mark service (its rules say which protocols)",
                    );
                }
                "fwm"
            }
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
        if let Some(at) = ops {
            if proto == "udp" || mark.is_some() {
                v.ops = Some(Val::new(true, at));
            } else {
                // keepalived clears the flag with a warning.
                self.warn(
                    &Location { file: s.loc.file.clone(), line: at },
                    "ops",
                    "ignored: one-packet scheduling is only for UDP services (keepalived clears it)",
                );
            }
        }
        v.scheduler = Some(match sched {
            // keepalived's default (IPVS_DEF_SCHED), and ipvsadm's.
            None => Val::new("wlc".to_string(), line),
            Some(a) => Val::new(one_arg(a)?.to_string(), a.loc.line),
        });
        if let Some(&(_, line)) = mh_flags.first() {
            let names: Vec<&str> = mh_flags.iter().map(|&(k, _)| k).collect();
            v.schedflags = Some(Val::new(names.join(","), line));
        }
        let vport = match vport {
            Some(p) => p,
            None if mark.is_some() => 0,
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
        v.address = match mark {
            Some((n, _)) => Val::new(n.to_string(), line),
            None => Val::new(endpoint(s, vip, vport)?, line),
        };
        v.family = family;
        let mut sorry_at: Option<(&Stmt, String, &str)> = None;
        if let Some(f) = sorry {
            let (ip, p) = match f.args() {
                [ip] => (ip, vport),
                [ip, p] => (ip, port(f, p)?),
                _ => return Err(bad(&f.loc, f.key(), "expected `sorry_server IP [PORT]`")),
            };
            let at = endpoint(f, ip, p)?;
            // The sorry server's method: its own, else the service's (as keepalived).
            let m = sorry_method.unwrap_or(kind_method);
            sorry_at = Some((f, at.clone(), m));
            v.fallback = Some(Val::new(format!("{at} {m}"), f.loc.line));
        }

        let mut read: Vec<Real> = Vec::new();
        // The servers as written, for their family: the reals, then the sorry server (the
        // order keepalived reads them in).
        let mut servers: Vec<(&Stmt, String, Option<String>)> = Vec::new();
        for r in reals {
            let real = self.real_server(r, vport, weight, inhibit, kind_method, &timers)?;
            servers.push((r, real.raw.address.clone(), real.raw.method.clone()));
            // keepalived keeps one of a real listed twice; so does lvs: the first.
            if let Some(first) = read.iter().find(|o| o.raw.address == real.raw.address) {
                let why = format!(
                    "{} is listed twice in this virtual_server (first at line {}): the second \
                     is ignored",
                    real.raw.address, first.loc.line
                );
                self.warn(&real.loc, "real_server", &why);
                continue;
            }
            read.push(real);
        }
        if let Some((f, at, m)) = &sorry_at {
            servers.push((f, at.clone(), Some(m.to_string())));
        }
        // The service's family: its address's; for a firewall mark, `ip_family` (or the
        // group's), else the first server's that is not tunnelled, as keepalived sets it.
        let v6 = match mark {
            None => vip.parse::<std::net::IpAddr>().ok().map(|a| a.is_ipv6()),
            Some(_) => family.map(|f| f == Family::V6).or_else(|| {
                servers
                    .iter()
                    .find(|(_, _, m)| m.as_deref() != Some("ipip"))
                    .or(servers.first())
                    .map(|(_, at, _)| at.starts_with('['))
            }),
        };
        if let Some(v6) = v6 {
            let what = match mark {
                None => format!("the virtual server {vip}"),
                Some((n, _)) => format!("the firewall-mark service {n}"),
            };
            for (st, at, m) in &servers {
                same_family(st, v6, &what, at, m.as_deref())?;
            }
            if mark.is_some() && v.family.is_none() {
                v.family = Some(if v6 { Family::V6 } else { Family::V4 });
            }
        }
        let Some(first) = read.first() else {
            self.warn(
                &s.loc,
                "virtual_server",
                "no real_server: ignored, as keepalived does",
            );
            return Ok(None);
        };
        // keepalived lowers a quorum above the reals' total weight to that total.
        let total: u64 = read.iter().map(|r| r.raw.weight.unwrap_or(1)).sum();
        if let Some(q) = &mut v.quorum
            && q.value > total
        {
            let why = format!(
                "{} is above the reals' total weight {total}: lowered to it, as keepalived does",
                q.value
            );
            let at = Location {
                file: s.loc.file.clone(),
                line: q.line,
            };
            self.warn(&at, "quorum", &why);
            q.value = total.max(1);
        }
        // The reals' first checkers leaving from different places: each real's own source
        // (TOML's per-real check_source...), as its connect_ip.
        if read
            .iter()
            .any(|r| r.checks[0].source != first.checks[0].source)
        {
            for r in &mut read {
                let s = std::mem::take(&mut r.checks[0].source);
                let line = r.loc.line;
                r.raw.check_source = s.address.map(|a| Val::new(a.to_string(), line));
                r.raw.check_source_port = s.port.map(|p| Val::new(u64::from(p), line));
                r.raw.check_interface = s.interface.map(|i| Val::new(i, line));
                r.raw.check_mark = s.mark.map(|m| Val::new(u64::from(m), line));
            }
        }
        // The reals' first checkers running different MISC_CHECK scripts (a script given each
        // real's address, as keepalived runs one checker per real): each real's own command
        // (TOML's per-real checkcommand), the service's the first real's.
        let first_command = read[0].checks[0].command.clone();
        if read[0].checks[0].checktype == "external" {
            for r in &mut read {
                if r.checks[0].checktype == "external" && r.checks[0].command != first_command {
                    r.raw.checkcommand = r.checks[0].command.clone();
                    r.checks[0].command = first_command.clone();
                }
            }
        }
        let first = &read[0];
        let (checks, quiet) = (first.checks.clone(), first.inhibit);
        let first_loc = first.loc.clone();
        let unsourced = |cs: &[Check]| -> Vec<Check> {
            cs.iter()
                .map(|c| Check {
                    source: CheckSource::default(),
                    ..c.clone()
                })
                .collect()
        };
        for r in &read {
            if r.checks != checks && unsourced(&r.checks) == unsourced(&checks) {
                return Err(bad(
                    &r.loc,
                    "real_server",
                    format!(
                        "its checkers' bindto, bind_port, bind_if or fwmark differ from those of \
                         the real at {first_loc}: lvs sets where a virtual service's checks \
                         leave from for all its reals"
                    ),
                ));
            }
            if r.checks != checks {
                return Err(bad(
                    &r.loc,
                    "real_server",
                    format!(
                        "checked differently from the real at {first_loc}: lvs checks every real \
                         of a virtual service the same way ({:?} here, {:?} there)",
                        r.checks, checks
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
        v.quiescent = Some(Val::new(quiet, line));
        let (check, also) = checks.split_first().expect("a real has at least one check");
        set_check(&mut v, check, line);
        for c in also {
            let mut a = RawVirtual::new(v.address.clone(), v.family);
            set_check(&mut a, c, line);
            v.also_checks.push(a);
        }
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
            digest: None,
            checkcommand: None,
            check_address: None,
            check_source: None,
            check_source_port: None,
            check_interface: None,
            check_mark: None,
            notify_up: None,
            notify_down: None,
            u_threshold: None,
            l_threshold: None,
        };
        let mut timers = vs.clone();
        let mut inhibit = inhibit;
        let mut checkers: Vec<&Stmt> = Vec::new();
        for i in s.block.iter().flatten() {
            let k = i.key();
            match k {
                "weight" => raw.weight = Some(number(i)?.value),
                "lvs_method" => raw.method = Some(method(i)?.into()),
                // keepalived 2 reads lb_kind in virtual_server only: here it is an unknown
                // keyword, and the real is forwarded to by the service's method.
                "lb_kind" => {
                    let m = method(i)?;
                    if m != vs_method {
                        return Err(bad(
                            &i.loc,
                            k,
                            format!(
                                "keepalived does not read lb_kind in a real_server (\"Unknown \
                                 keyword\"): it forwards to this real by the service's method \
                                 ({}); write `lvs_method {}` for the real's own",
                                method_word(vs_method),
                                method_word(m)
                            ),
                        ));
                    }
                    self.warn(
                        &i.loc,
                        k,
                        "ignored, as keepalived does (\"Unknown keyword\": a real_server's \
                         own method is lvs_method); the same as the service's",
                    );
                }
                "inhibit_on_failure" => inhibit = boolean(i)?,
                "delay_loop" => timers.delay_loop = Some(timer(i, &mut self.warnings)?),
                "connect_timeout" => timers.connect_timeout = Some(timer(i, &mut self.warnings)?),
                "retry" => timers.retry = Some(number(i)?),
                "virtualhost" => timers.virtualhost = Some(one_arg(i)?.to_string()),
                "alpha" => {
                    boolean(i)?;
                }
                "delay_before_retry" | "warmup" => self.retry_timer(i, &mut timers)?,
                "smtp_alert" | "snmp_name" => self.warn(&i.loc, k, "ignored: no effect in lvs"),
                "notify_up" | "notify_down" => {
                    let script = match i.args() {
                        [script] => script.to_string(),
                        [_, _user, ..] => {
                            return Err(bad(
                                &i.loc,
                                k,
                                "a script user is not supported: lvs runs scripts as its own user",
                            ));
                        }
                        [] => return Err(bad(&i.loc, k, "needs a script")),
                    };
                    if k == "notify_up" {
                        raw.notify_up = Some(script);
                    } else {
                        raw.notify_down = Some(script);
                    }
                }
                "uthreshold" => raw.u_threshold = Some((i.loc.line, number(i)?.value)),
                "lthreshold" => raw.l_threshold = Some((i.loc.line, number(i)?.value)),
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "PING_CHECK"
                | "SMTP_CHECK" | "DNS_CHECK" | "UDP_CHECK" | "FILE_CHECK" => checkers.push(i),
                k => match CHECKERS_REFUSED.iter().find(|(n, _)| *n == k) {
                    Some((_, why)) => {
                        return Err(bad(&i.loc, k, format!("not supported: {why}")));
                    }
                    None => self.unknown(&i.loc, k, Block::RealServer)?,
                },
            }
        }
        // Every checker of the real, in file order (one per url of an HTTP_GET/SSL_GET):
        // keepalived has a real up only while all of them pass.
        let mut checks = Vec::new();
        for c in &checkers {
            checks.extend(self.checker(c, ip, rport, &timers)?);
        }
        if checks.is_empty() {
            checks.push(Check::socketless(
                "on",
                timers.delay_loop.as_ref().map_or(60, |d| d.value),
                timers.connect_timeout.as_ref().map_or(5, |d| d.value),
            ));
        }
        // keepalived's digest is the page of each real: a per-real setting (of its first
        // check; the others' are compared with the other reals').
        raw.digest = checks[0].digest.take();
        // So is its first checker's connect_ip: each real's own (the others' must agree).
        raw.check_address = checks[0].connect_ip.take().map(|a| a.to_string());
        Ok(Real {
            raw,
            loc: s.loc.clone(),
            checks,
            inhibit,
        })
    }
}

#[path = "keepalived_checker.rs"]
mod checker;
use checker::set_check;
