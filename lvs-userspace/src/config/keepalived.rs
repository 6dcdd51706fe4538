//! The keepalived.conf reader (its LVS part): `virtual_server` blocks with keepalived's
//! meaning and defaults, into the same model as the other readers.
//!
//! The syntax (comments, blocks, `include`, `$VAR`, `@id` lines) is read by
//! `keepalived_lex`; this file maps the statements onto the raw description that
//! `raw::resolve` turns into the model, with keepalived's defaults written out (they differ
//! from ldirectord's): `delay_loop` 60 s, `connect_timeout` 5 s, `retry` 1 (MISC_CHECK 0),
//! persistence 360 s when enabled without a value, protocol UDP when unset (keepalived 2.x,
//! with a warning), and the scheduler (wlc) and forwarding (NAT) defaults, which lvs cannot do,
//! refused with the line to change.
//!
//! What lvs cannot express is refused with file:line and the reason; `vrrp_*`, `static_*` and
//! the other non-LVS blocks are skipped (keepalived keeps doing VRRP), with one warning.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use super::{
    Config, ConfigError, ConnTimeouts, Location, MAX_VIRTUALS,
    keepalived_lex::{self, Stmt},
    raw::{Family, RawConfig, RawVirtual, Val, resolve},
};

/// Schedulers lvs implements, for messages.
const SCHEDULERS: &str = "rr, wrr, sh, lc, wlc, sed, nq, fo, ovf, dh and mh";

/// Reads keepalived.conf text; `path` names it in messages and in [`Config::source`], and
/// `include`s are found relative to it. `@ID` lines are read as keepalived does without `-i`
/// (ID compared with the host name up to its first dot). The result is validated.
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_with_id(path, text, &keepalived_lex::default_config_id())
}

/// [`parse_str`] with the config id given (keepalived's `-i`).
pub fn parse_with_id(path: &Path, text: &str, config_id: &str) -> Result<Config, ConfigError> {
    let parsed = keepalived_lex::parse(path, text, config_id)?;
    let mut m = Mapper {
        warnings: parsed.warnings,
        skipped: Vec::new(),
        groups: HashMap::new(),
        timeouts: None,
        track_files: HashMap::new(),
    };
    for s in parsed.stmts.iter().filter(|s| s.key() == "track_file") {
        m.track_file(s)?;
    }
    // Groups first: a virtual_server may name one defined further down.
    for s in parsed
        .stmts
        .iter()
        .filter(|s| s.key() == "virtual_server_group")
    {
        m.virtual_server_group(s)?;
    }
    let mut virtuals: Vec<(PathBuf, RawVirtual)> = Vec::new();
    for s in &parsed.stmts {
        match s.key() {
            "virtual_server" => virtuals.extend(m.virtual_server(s)?),
            "virtual_server_group" | "track_file" => {}
            "global_defs" => m.global_defs(s)?,
            k if k.starts_with("vrrp_")
                || k.starts_with("static_")
                || matches!(
                    k,
                    "linkbeat_interfaces"
                        | "track_process"
                        | "bfd_instance"
                        | "garp_group"
                        | "net_namespace"
                        | "net_namespace_ipvs"
                        | "instance"
                        | "use_pid_dir"
                ) =>
            {
                m.skipped.push((k.to_string(), s.loc.clone()))
            }
            k => m.warn(
                &s.loc,
                k,
                "unknown keyword outside any block: ignored (as keepalived does)",
            ),
        }
    }
    if let Some((_, first)) = m.skipped.first() {
        let mut kinds: Vec<&str> = m.skipped.iter().map(|(k, _)| k.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let why = format!(
            "{} non-LVS block(s) skipped ({}): keepalived keeps doing VRRP and the rest beside \
             lvs; lvs reads only virtual_server",
            m.skipped.len(),
            kinds.join(", ")
        );
        m.warnings.insert(0, format!("{first}: {why}"));
    }
    // One resolve per virtual service, so that a service read from an included file is
    // named by that file in messages.
    let mut config = resolve(
        path,
        RawConfig {
            warnings: std::mem::take(&mut m.warnings),
            ..RawConfig::default()
        },
    )?;
    if let Some(t) = m.timeouts {
        config.globals.timeouts = t;
    }
    for (file, v) in virtuals {
        let one = resolve(
            &file,
            RawConfig {
                virtuals: vec![v],
                ..RawConfig::default()
            },
        )?;
        config.warnings.extend(one.warnings);
        config.virtuals.extend(one.virtuals);
    }
    super::validate(&config)?;
    Ok(config)
}

struct Mapper {
    warnings: Vec<String>,
    /// Non-LVS blocks skipped: keyword and place.
    skipped: Vec<(String, Location)>,
    /// `virtual_server_group`s by name.
    groups: HashMap<String, Vec<Member>>,
    /// `lvs_timeouts` of `global_defs`.
    timeouts: Option<ConnTimeouts>,
    /// `track_file`s by name.
    track_files: HashMap<String, file::TrackFile>,
}

/// What a `virtual_server` stands for: an address with its port (none: every port), or a
/// firewall mark (with its family when the group entry gives one).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Member {
    Addr(String, Option<u16>),
    Fwmark(u32, Option<Family>),
}

/// A firewall mark as keepalived takes it.
fn fwmark(s: &Stmt, m: &str) -> Result<u32, ConfigError> {
    m.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
        bad(
            &s.loc,
            s.key(),
            format!("`{m}` is not a firewall mark (1 to 4294967295)"),
        )
    })
}

fn bad(loc: &Location, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        location: loc.clone(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The one argument of `s`.
fn one_arg(s: &Stmt) -> Result<&str, ConfigError> {
    match s.args() {
        [a] => Ok(a),
        [] => Err(bad(&s.loc, s.key(), "needs a value")),
        _ => Err(bad(&s.loc, s.key(), "takes one value")),
    }
}

/// A keepalived `<TIMER>`: seconds with fractions, into whole seconds (rounded up).
fn timer(s: &Stmt, warnings: &mut Vec<String>) -> Result<Val<u64>, ConfigError> {
    let a = one_arg(s)?;
    let secs: f64 = a
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| bad(&s.loc, s.key(), format!("`{a}` is not a number of seconds")))?;
    if secs == 0.0 {
        return Err(bad(&s.loc, s.key(), "must be above 0 seconds"));
    }
    let whole = secs.ceil();
    if whole != secs {
        warnings.push(format!(
            "{}: {}: {a} s rounded up to {whole} s (lvs times checks in whole seconds)",
            s.loc,
            s.key()
        ));
    }
    Ok(Val::new(whole as u64, s.loc.line))
}

fn number(s: &Stmt) -> Result<Val<u64>, ConfigError> {
    let a = one_arg(s)?;
    a.parse()
        .map(|n| Val::new(n, s.loc.line))
        .map_err(|_| bad(&s.loc, s.key(), format!("`{a}` is not a whole number")))
}

/// keepalived's `<BOOL>`: no value means true.
fn boolean(s: &Stmt) -> Result<bool, ConfigError> {
    match s.args() {
        [] => Ok(true),
        [a] => match a.as_str() {
            "on" | "true" | "yes" => Ok(true),
            "off" | "false" | "no" => Ok(false),
            _ => Err(bad(
                &s.loc,
                s.key(),
                format!("`{a}` is not on|off|true|false|yes|no"),
            )),
        },
        _ => Err(bad(&s.loc, s.key(), "takes at most one value")),
    }
}

/// `IP:PORT` as the raw reader wants it (`[IP]:PORT` for IPv6).
fn endpoint(s: &Stmt, ip: &str, port: u16) -> Result<String, ConfigError> {
    let ip: IpAddr = ip.parse().map_err(|_| {
        bad(
            &s.loc,
            s.key(),
            format!("`{ip}` is not an IP address (keepalived takes addresses, not names)"),
        )
    })?;
    Ok(match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    })
}

/// The addresses of a group entry: `IP`, `IP-LAST` (the last byte, or IPv6's last group, up
/// to LAST), `IP-IP` or `IP/LEN`.
fn group_addresses(s: &Stmt, a: &str) -> Result<Vec<IpAddr>, ConfigError> {
    let no = |why: &str| bad(&s.loc, "virtual_server_group", format!("`{a}`: {why}"));
    let too_many = || no(&format!("more than {MAX_VIRTUALS} addresses"));
    if let Some((ip, len)) = a.split_once('/') {
        let ip: IpAddr = ip.parse().map_err(|_| no("not an address"))?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = len
            .parse()
            .ok()
            .filter(|&l| l <= bits)
            .ok_or_else(|| no("bad prefix length"))?;
        if bits - len > 8 {
            return Err(too_many());
        }
        let n = 1u32 << (bits - len);
        return Ok(match ip {
            IpAddr::V4(v) => {
                let base = u32::from(v) & u32::MAX.checked_shl(32 - len).unwrap_or(0);
                (0..n)
                    .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
                    .collect()
            }
            IpAddr::V6(v) => {
                let base = u128::from(v) & u128::MAX.checked_shl(128 - len).unwrap_or(0);
                (0..n)
                    .map(|i| IpAddr::V6(Ipv6Addr::from(base + u128::from(i))))
                    .collect()
            }
        });
    }
    let Some((first, last)) = a.split_once('-') else {
        return Ok(vec![a.parse().map_err(|_| {
            no("not an address (keepalived takes addresses, not names)")
        })?]);
    };
    let first: IpAddr = first.parse().map_err(|_| no("not an address range"))?;
    let (lo, hi): (u128, u128) = match first {
        IpAddr::V4(v) => {
            let lo = u32::from(v);
            let hi = match last.parse::<IpAddr>() {
                Ok(IpAddr::V4(l)) => u32::from(l),
                _ => {
                    (lo & !0xff)
                        | last.parse::<u8>().map_err(|_| no("not an address range"))? as u32
                }
            };
            (lo.into(), hi.into())
        }
        IpAddr::V6(v) => {
            let lo = u128::from(v);
            let hi = match last.parse::<IpAddr>() {
                Ok(IpAddr::V6(l)) => u128::from(l),
                _ => {
                    (lo & !0xffff)
                        | u128::from(
                            u16::from_str_radix(last, 16)
                                .map_err(|_| no("not an address range"))?,
                        )
                }
            };
            (lo, hi)
        }
    };
    if hi < lo {
        return Err(no("the range ends before it starts"));
    }
    if hi - lo >= MAX_VIRTUALS as u128 {
        return Err(too_many());
    }
    Ok((lo..=hi)
        .map(|n| match first {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        })
        .collect())
}

fn port(s: &Stmt, p: &str) -> Result<u16, ConfigError> {
    p.parse()
        .map_err(|_| bad(&s.loc, s.key(), format!("`{p}` is not a port number")))
}

/// `DR` is direct routing (ldirectord's `gate`), `TUN` the IP-in-IP tunnel (`ipip`), `NAT`
/// network address translation (`masq`). Returns the ldirectord word.
fn method(s: &Stmt) -> Result<&'static str, ConfigError> {
    match s.args().first().map(String::as_str) {
        Some("DR") => Ok("gate"),
        Some("TUN") => Ok("ipip"),
        Some("NAT") => Ok("masq"),
        Some(m @ "FNAT") => Err(bad(
            &s.loc,
            s.key(),
            format!(
                "{m} forwarding (DPVS's full NAT) is not IPVS: lvs forwards by direct routing \
                 (DR), NAT and IP-in-IP tunnel (TUN)"
            ),
        )),
        Some(m) => Err(bad(
            &s.loc,
            s.key(),
            format!(
                "unknown forwarding method `{m}`: keepalived knows DR, NAT and TUN, in capitals \
                 (and uses NAT for any other word)"
            ),
        )),
        None => Err(bad(&s.loc, s.key(), "needs a value")),
    }
}

impl Mapper {
    fn warn(&mut self, loc: &Location, key: &str, why: &str) {
        // A group's services share their block: one warning per line.
        let w = format!("{loc}: {key}: {why}");
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// `virtual_server_group NAME { IP [PORT]; IP-RANGE [PORT]; CIDR [PORT]; fwmark N [inet|inet6] }`.
    fn virtual_server_group(&mut self, s: &Stmt) -> Result<(), ConfigError> {
        let name = one_arg(s)?.to_string();
        let mut members = Vec::new();
        for i in s.block.iter().flatten() {
            let words: Vec<&str> = std::iter::once(i.key())
                .chain(i.args().iter().map(String::as_str))
                .collect();
            match words.as_slice() {
                ["fwmark", m, rest @ ..] => {
                    let fam = match rest {
                        [] => None,
                        ["inet"] => Some(Family::V4),
                        ["inet6"] => Some(Family::V6),
                        _ => return Err(bad(&i.loc, "fwmark", "expected `fwmark N [inet|inet6]`")),
                    };
                    members.push(Member::Fwmark(fwmark(i, m)?, fam));
                }
                [addrs, rest @ ..] => {
                    let p = match rest {
                        [] => None,
                        [p] => Some(port(i, p)?),
                        _ => {
                            return Err(bad(
                                &i.loc,
                                "virtual_server_group",
                                "expected `IP [PORT]`, `IP-RANGE [PORT]`, `CIDR [PORT]` or \
                                 `fwmark N`",
                            ));
                        }
                    };
                    for ip in group_addresses(i, addrs)? {
                        members.push(Member::Addr(ip.to_string(), p));
                    }
                }
                [] => {}
            }
            if members.len() > MAX_VIRTUALS {
                return Err(bad(
                    &i.loc,
                    "virtual_server_group",
                    format!(
                        "more than {MAX_VIRTUALS} members: each is a virtual service, and lvs \
                         handles at most {MAX_VIRTUALS}"
                    ),
                ));
            }
        }
        if self.groups.insert(name.clone(), members).is_some() {
            return Err(bad(
                &s.loc,
                "virtual_server_group",
                format!("a group `{name}` is already defined"),
            ));
        }
        Ok(())
    }

    fn global_defs(&mut self, s: &Stmt) -> Result<(), ConfigError> {
        for i in s.block.iter().flatten() {
            match i.key() {
                "lvs_timeouts" => {
                    // `tcp S`, `tcpfin S`, `udp S`, any of them; the others unchanged.
                    let mut t = self.timeouts.unwrap_or_default();
                    let args = i.args();
                    if args.is_empty() || args.len() % 2 != 0 {
                        return Err(bad(
                            &i.loc,
                            i.key(),
                            "expected `[tcp S] [tcpfin S] [udp S]`",
                        ));
                    }
                    for pair in args.chunks(2) {
                        let secs: u32 =
                            pair[1].parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                                bad(
                                    &i.loc,
                                    i.key(),
                                    format!("`{}` is not a number of seconds", pair[1]),
                                )
                            })?;
                        match pair[0].as_str() {
                            "tcp" => t.tcp = secs,
                            "tcpfin" => t.tcpfin = secs,
                            "udp" => t.udp = secs,
                            o => {
                                return Err(bad(
                                    &i.loc,
                                    i.key(),
                                    format!("`{o}`: expected tcp, tcpfin or udp"),
                                ));
                            }
                        }
                    }
                    self.timeouts = Some(t);
                }
                "lvs_sync_daemon" | "lvs_sync_daemon_interface" => self.warn(
                    &i.loc,
                    i.key(),
                    "ignored: lvs has no connection synchronisation daemon",
                ),
                "lvs_flush" | "lvs_flush_on_stop" => self.warn(
                    &i.loc,
                    i.key(),
                    "ignored: lvs owns its data plane (it never shares it with ipvsadm rules)",
                ),
                "notification_email" | "smtp_server" | "lvs_notify_fifo" => self.warn(
                    &i.loc,
                    i.key(),
                    "ignored: lvs does not send keepalived's notifications (use emailalert and \
                     notify in a TOML or ldirectord config)",
                ),
                _ => {}
            }
        }
        Ok(())
    }
}

#[path = "keepalived_vs.rs"]
mod vs;

#[path = "keepalived_file.rs"]
mod file;

#[path = "keepalived_keywords.rs"]
mod keywords;

#[cfg(test)]
#[path = "keepalived_checks_tests.rs"]
mod checks_tests;
#[cfg(test)]
#[path = "keepalived_corpus_tests.rs"]
mod corpus_tests;
#[cfg(test)]
#[path = "keepalived_fwmark_group_tests.rs"]
mod fwmark_group_tests;
#[cfg(test)]
#[path = "keepalived_source_tests.rs"]
mod source_tests;
#[cfg(test)]
#[path = "keepalived_status_tests.rs"]
mod status_tests;
#[cfg(test)]
#[path = "keepalived_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "keepalived_timer_tests.rs"]
mod timer_tests;
