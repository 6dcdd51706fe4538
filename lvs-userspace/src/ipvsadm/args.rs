//! ipvsadm's command line, read as ipvsadm 1.31 reads it (popt): the first option is the
//! command (`-A`, `--add-service`, ...), short options may be bundled (`-Lnc`, `-At VIP:80`),
//! an option's value is the rest of its bundle or the next word (`--opt=value` too), `-p`
//! takes a value only when the next word does not start with `-`. Then ipvsadm's checks:
//! which options each command needs and forbids, its defaults (scheduler wlc, direct routing,
//! weight 1, persistence 360 s), and the real port forced to the service's for `-g` and `-i`.
//!
//! Errors carry ipvsadm's words and exit codes: 2 for what ipvsadm `fail()`s with, 255 for its
//! "Try `ipvsadm -h'" exit.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};

use super::options::{Arg, BIT_NAMES, Bit, DPVS_OPTIONS, OPTIONS, Opt, table};

/// The default scheduler (ipvsadm's `DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// `-p` without a value (libipvs's `IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENCE: u32 = 360;
/// The longest timeout ipvsadm accepts: 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// What ipvsadm is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService,
    /// `-E`.
    EditService,
    /// `-D`.
    DeleteService,
    /// `-C`.
    Clear,
    /// `-L` / `-l`.
    List,
    /// `-a`.
    AddReal,
    /// `-d`.
    DeleteReal,
    /// `-e`.
    EditReal,
    /// `--set`.
    SetTimeouts,
    /// `--start-daemon`.
    StartDaemon,
    /// `--stop-daemon`.
    StopDaemon,
    /// `-R`.
    Restore,
    /// `-S`.
    Save,
    /// `-Z`.
    Zero,
    /// `-h`.
    Help,
    /// `-v` / `--version`.
    Version,
}

impl Command {
    /// ipvsadm's name of the command, in its messages.
    pub fn name(self) -> &'static str {
        match self {
            Command::AddService => "add-service",
            Command::EditService => "edit-service",
            Command::DeleteService => "delete-service",
            Command::Clear => "flush",
            Command::List => "list",
            Command::AddReal => "add-server",
            Command::DeleteReal => "delete-server",
            Command::EditReal => "edit-server",
            Command::SetTimeouts => "set",
            Command::StartDaemon => "start-daemon",
            Command::StopDaemon => "stop-daemon",
            Command::Restore => "restore",
            Command::Save => "save",
            Command::Zero => "zero",
            Command::Help => "help",
            Command::Version => "version",
        }
    }
}

/// Transport protocol of a service.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Proto {
    /// `-t`.
    Tcp,
    /// `-u`.
    Udp,
}

/// A virtual service as `-t`, `-u`, `--sctp-service` or `-f` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceArg {
    /// TCP or UDP, address and port.
    Addr(Proto, SocketAddr),
    /// `--sctp-service`.
    Sctp(SocketAddr),
    /// `-f MARK` (`-6`: IPv6).
    Fwmark(u32, bool),
}

/// How packets reach a real (`-g`, `-i`, `-m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// `-g`: direct routing (the default).
    Route,
    /// `-i`: IP-in-IP tunnel.
    Tunnel,
    /// `-m`: NAT.
    Masq,
}

impl Method {
    /// ipvsadm's switch (`-g`, `-i`, `-m`).
    pub fn switch(self) -> &'static str {
        match self {
            Method::Route => "-g",
            Method::Tunnel => "-i",
            Method::Masq => "-m",
        }
    }

    /// ipvsadm's column name (`Route`, `Tunnel`, `Masq`).
    pub fn column(self) -> &'static str {
        match self {
            Method::Route => "Route",
            Method::Tunnel => "Tunnel",
            Method::Masq => "Masq",
        }
    }

    /// The configuration's name (`gate`, `ipip`, `masq`).
    pub fn config_name(self) -> &'static str {
        match self {
            Method::Route => "gate",
            Method::Tunnel => "ipip",
            Method::Masq => "masq",
        }
    }
}

/// One ipvsadm command line, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The command.
    pub command: Command,
    /// `-t/-u/-f`.
    pub service: Option<ServiceArg>,
    /// `-s` (default wlc for -A/-E).
    pub scheduler: Option<String>,
    /// `-p [T]`.
    pub persistent: Option<u32>,
    /// `-M`: the persistence netmask as a prefix length.
    pub netmask: Option<u8>,
    /// `-r`, its port the service's when not given (and for -g/-i).
    pub real: Option<SocketAddr>,
    /// `-g/-i/-m` (default -g); `None`: not given.
    pub method: Option<Method>,
    /// `-w`.
    pub weight: Option<u32>,
    /// `-x`.
    pub u_threshold: Option<u32>,
    /// `-y`.
    pub l_threshold: Option<u32>,
    /// `-n`.
    pub numeric: bool,
    /// `-c`.
    pub connection: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--exact`.
    pub exact: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--timeout` (list the timeouts).
    pub timeout: bool,
    /// `--daemon` (list the sync daemons).
    pub daemon: bool,
    /// `-o`.
    pub one_packet: bool,
    /// `--pe`.
    pub pe: Option<String>,
    /// `-b`.
    pub sched_flags: Option<String>,
    /// `--set tcp tcpfin udp`.
    pub timeouts: Option<[u32; 3]>,
}

/// Why a command line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// What ipvsadm `fail(2, ...)`s with: the message, exit code 2.
    #[error("{message}")]
    Fail {
        /// The message.
        message: String,
    },
    /// ipvsadm's "Try `ipvsadm -h'" exit (code 255), after `message` when there is one.
    #[error("{}", message.as_deref().unwrap_or("no command given"))]
    TryHelp {
        /// What popt said, if anything.
        message: Option<String>,
    },
}

impl ArgError {
    /// The exit code ipvsadm leaves with.
    pub fn exit_code(&self) -> u8 {
        match self {
            ArgError::Fail { .. } => 2,
            ArgError::TryHelp { .. } => 255,
        }
    }
}

fn fail(message: impl Into<String>) -> ArgError {
    ArgError::Fail {
        message: message.into(),
    }
}

fn number(s: &str, min: u64, max: u64) -> Option<u32> {
    s.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(|n| n as u32)
}

/// `host[:port]`, `[v6]:port` or a name: ipvsadm's `parse_service`. `None`: no address.
/// Returns the address and whether a port was given.
pub fn parse_address(s: &str, proto: Proto) -> Option<(SocketAddr, bool)> {
    if s.is_empty() || s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        (h, Some(p.strip_prefix(':')?))
    } else if s.parse::<std::net::Ipv6Addr>().is_ok() {
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) if port.is_none() || !host.contains(':') => {
            if crate::config::not_a_host_name(host).is_some() {
                return None;
            }
            // gethostbyname: the first IPv4 address.
            (host, 0)
                .to_socket_addrs()
                .ok()?
                .map(|a| a.ip())
                .find(IpAddr::is_ipv4)?
        }
        Err(_) => return None,
    };
    let port = match port {
        None => return Some((SocketAddr::new(ip, 0), false)),
        Some(p) => match number(p, 0, 65535) {
            Some(n) => n as u16,
            None => crate::config::service_port(
                p,
                match proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                },
            )?,
        },
    };
    Some((SocketAddr::new(ip, port), true))
}

/// `-M`: a dotted IPv4 mask (contiguous) for IPv4 services, a prefix length 1..128 for IPv6.
fn parse_netmask(s: &str, v6: bool) -> Result<u8, ArgError> {
    if v6 {
        return number(s, 1, 128)
            .map(|n| n as u8)
            .ok_or_else(|| fail("illegal ipv6 netmask specified"));
    }
    let bad = || fail("illegal virtual server persistent mask specified");
    let m: std::net::Ipv4Addr = s.parse().map_err(|_| bad())?;
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(fail(format!(
            "illegal virtual server persistent mask specified: {s} is not a contiguous mask \
             (lvs keeps persistence per prefix)"
        )));
    }
    Ok(bits.leading_ones() as u8)
}

/// Reads ipvsadm's command line (without the program name).
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Invocation, ArgError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    // (option, its value) in order, then the words that are no option.
    let mut opts: Vec<(Opt, Option<String>, String)> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if a == "--" {
            rest.extend(&args[i..]);
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if DPVS_OPTIONS.contains(&name) {
                return Err(fail(format!(
                    "--{name} is an option of DPVS's ipvsadm (its FNAT local addresses and \
                     lists), not of IPVS's: lvs does not have it"
                )));
            }
            let Some(&(_, _, kind, opt)) = OPTIONS.iter().find(|o| o.1 == name) else {
                return Err(ArgError::TryHelp {
                    message: Some(format!("{a}: unknown option")),
                });
            };
            let value = match (kind, inline) {
                (Arg::None, Some(_)) => {
                    return Err(ArgError::TryHelp {
                        message: Some(format!("{a}: option does not take an argument")),
                    });
                }
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.to_string())
                    }
                    None => {
                        return Err(ArgError::TryHelp {
                            message: Some(format!("{a}: missing argument")),
                        });
                    }
                },
                (Arg::Optional, None) => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.to_string())
                    }
                    _ => None,
                },
            };
            opts.push((opt, value, format!("--{name}")));
            continue;
        }
        if let Some(bundle) = a.strip_prefix('-').filter(|b| !b.is_empty()) {
            let chars: Vec<char> = bundle.chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(&(_, _, kind, opt)) = OPTIONS.iter().find(|o| o.0 == Some(c)) else {
                    if c == 'F' || c == 'z' {
                        return Err(fail(format!(
                            "-{c} is an option of DPVS's ipvsadm (FNAT local addresses), not \
                             of IPVS's: lvs does not have it"
                        )));
                    }
                    return Err(ArgError::TryHelp {
                        message: Some(format!("-{c}: unknown option")),
                    });
                };
                let rest_of_bundle: String = chars[j..].iter().collect();
                let value = match kind {
                    Arg::None => None,
                    Arg::Required if !rest_of_bundle.is_empty() => {
                        j = chars.len();
                        Some(rest_of_bundle)
                    }
                    Arg::Optional if !rest_of_bundle.is_empty() => {
                        j = chars.len();
                        Some(rest_of_bundle)
                    }
                    Arg::Required => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            Some(v.to_string())
                        }
                        None if opt == Opt::SchedFlags => None,
                        None => {
                            return Err(ArgError::TryHelp {
                                message: Some(format!("-{c}: missing argument")),
                            });
                        }
                    },
                    Arg::Optional => match args.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(v.to_string())
                        }
                        _ => None,
                    },
                };
                opts.push((opt, value, format!("-{c}")));
            }
            continue;
        }
        rest.push(a);
    }

    let mut it = opts.into_iter();
    let command = match it.next() {
        Some((Opt::Cmd(c), value, _)) => {
            if let Some(v) = &value
                && matches!(c, Command::StartDaemon | Command::StopDaemon)
                && v != "master"
                && v != "backup"
            {
                return Err(fail(if c == Command::StartDaemon {
                    "illegal start-daemon parameter specified"
                } else {
                    "illegal start_daemon specified"
                }));
            }
            c
        }
        _ => return Err(ArgError::TryHelp { message: None }),
    };
    if matches!(command, Command::Help | Command::Version) {
        return Ok(empty(command));
    }
    let mut inv = empty(command);
    let mut bits: Vec<Bit> = Vec::new();
    let set = |bits: &mut Vec<Bit>, b: Bit| {
        if bits.contains(&b) {
            return Err(fail(format!(
                "multiple '{}' options specified",
                BIT_NAMES[b as usize]
            )));
        }
        bits.push(b);
        Ok(())
    };
    let mut proto = Proto::Tcp;
    let mut real_text: Option<String> = None;
    let mut netmask_text: Option<String> = None;
    let mut fwmark_v6 = false;
    for (opt, value, written) in it {
        let v = value.clone().unwrap_or_default();
        match opt {
            Opt::Cmd(_) => return Err(fail("multiple commands specified")),
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                set(&mut bits, Bit::Service)?;
                proto = if opt == Opt::Udp {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                let (addr, _) = parse_address(&v, proto)
                    .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
                inv.service = Some(if opt == Opt::Sctp {
                    ServiceArg::Sctp(addr)
                } else {
                    ServiceArg::Addr(proto, addr)
                });
            }
            Opt::Fwmark => {
                set(&mut bits, Bit::Service)?;
                let mark = v
                    .parse::<u64>()
                    .ok()
                    .filter(|&m| m > 0 && m <= u64::from(u32::MAX))
                    .ok_or_else(|| fail(format!("invalid fwmark value `{v}' specified")))?;
                inv.service = Some(ServiceArg::Fwmark(mark as u32, false));
            }
            Opt::Ipv6 => match &mut inv.service {
                Some(ServiceArg::Fwmark(_, v6)) => {
                    *v6 = true;
                    fwmark_v6 = true;
                }
                _ => return Err(fail("-6 used before -f")),
            },
            Opt::Scheduler => {
                set(&mut bits, Bit::Scheduler)?;
                inv.scheduler = Some(v);
            }
            Opt::Persistent => {
                set(&mut bits, Bit::Persistent)?;
                inv.persistent = Some(match &value {
                    None => DEFAULT_PERSISTENCE,
                    Some(t) => number(t, 1, u64::from(MAX_TIMEOUT))
                        .ok_or_else(|| fail(format!("invalid timeout value `{t}' specified")))?,
                });
            }
            Opt::Netmask => {
                set(&mut bits, Bit::Netmask)?;
                netmask_text = Some(v);
            }
            Opt::Real => {
                set(&mut bits, Bit::Server)?;
                real_text = Some(v);
            }
            Opt::Masq | Opt::Ipip | Opt::Gate => {
                set(&mut bits, Bit::Forward)?;
                inv.method = Some(match opt {
                    Opt::Masq => Method::Masq,
                    Opt::Ipip => Method::Tunnel,
                    _ => Method::Route,
                });
            }
            Opt::Weight => {
                set(&mut bits, Bit::Weight)?;
                inv.weight =
                    Some(number(&v, 0, 65535).ok_or_else(|| fail("illegal weight specified"))?);
            }
            Opt::UThreshold => {
                set(&mut bits, Bit::UThreshold)?;
                inv.u_threshold = Some(
                    number(&v, 0, i32::MAX as u64)
                        .ok_or_else(|| fail("illegal u_threshold specified"))?,
                );
            }
            Opt::LThreshold => {
                set(&mut bits, Bit::LThreshold)?;
                inv.l_threshold = Some(
                    number(&v, 0, i32::MAX as u64)
                        .ok_or_else(|| fail("illegal l_threshold specified"))?,
                );
            }
            Opt::Numeric => {
                set(&mut bits, Bit::Numeric)?;
                inv.numeric = true;
            }
            Opt::Connection => {
                set(&mut bits, Bit::Connection)?;
                inv.connection = true;
            }
            Opt::McastInterface => set(&mut bits, Bit::Mcast)?,
            Opt::Syncid => {
                set(&mut bits, Bit::Syncid)?;
                number(&v, 0, 255).ok_or_else(|| fail("illegal syncid specified"))?;
            }
            Opt::Timeout => {
                set(&mut bits, Bit::Timeout)?;
                inv.timeout = true;
            }
            Opt::Daemon => {
                set(&mut bits, Bit::Daemon)?;
                inv.daemon = true;
            }
            Opt::Stats => {
                set(&mut bits, Bit::Stats)?;
                inv.stats = true;
            }
            Opt::Rate => {
                set(&mut bits, Bit::Rate)?;
                inv.rate = true;
            }
            Opt::Thresholds => {
                set(&mut bits, Bit::Thresholds)?;
                inv.thresholds = true;
            }
            Opt::PersistentConn => {
                set(&mut bits, Bit::PersistentConn)?;
                inv.persistent_conn = true;
            }
            Opt::NoSort => {
                set(&mut bits, Bit::NoSort)?;
                inv.nosort = true;
            }
            Opt::Sort => {}
            Opt::Exact => {
                set(&mut bits, Bit::Exact)?;
                inv.exact = true;
            }
            Opt::Ops => {
                set(&mut bits, Bit::OnePacket)?;
                inv.one_packet = true;
            }
            Opt::Pe => {
                set(&mut bits, Bit::Pe)?;
                inv.pe = Some(v);
            }
            Opt::SchedFlags => {
                if matches!(command, Command::AddReal | Command::EditReal) {
                    return Err(fail(
                        "-b on a real server is DPVS's full-NAT forwarding (FNAT), which IPVS \
                         does not have and lvs does not either (IPVS's -b sets a service's \
                         scheduler flags)",
                    ));
                }
                let Some(flags) = value else {
                    return Err(ArgError::TryHelp {
                        message: Some(format!("{written}: missing argument")),
                    });
                };
                inv.sched_flags = Some(flags);
            }
            Opt::TunType => {
                if v != "ipip" {
                    return Err(fail(format!(
                        "tunnel type `{v}` is not supported: lvs tunnels with ipip only"
                    )));
                }
            }
        }
    }

    // generic_opt_check.
    let t = table(command);
    let mut exclusive: Option<usize> = None;
    for (j, &k) in t.iter().enumerate() {
        let given = bits.iter().any(|b| *b as usize == j);
        match (k, given) {
            (b'+', false) => {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    BIT_NAMES[j],
                    command.name()
                )));
            }
            (b'x', true) => {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    BIT_NAMES[j],
                    command.name()
                )));
            }
            (b'1', true) => {
                if let Some(first) = exclusive {
                    return Err(fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        BIT_NAMES[j],
                        BIT_NAMES[first],
                        command.name()
                    )));
                }
                exclusive = Some(j);
            }
            _ => {}
        }
    }
    if command == Command::List
        && (((inv.connection || inv.timeout || inv.daemon)
            && (inv.stats || inv.rate || inv.thresholds))
            || ((inv.timeout || inv.daemon) && inv.persistent_conn))
    {
        return Err(fail("options conflicts in the list command"));
    }

    if command == Command::SetTimeouts {
        if rest.len() < 3 {
            return Err(fail("--set option requires 3 timeout values"));
        }
        let mut vals = [0u32; 3];
        for (k, t) in rest.drain(..3).enumerate() {
            vals[k] = number(t, 0, u64::from(MAX_TIMEOUT))
                .ok_or_else(|| fail(format!("invalid timeout value `{t}' specified")))?;
        }
        inv.timeouts = Some(vals);
    }
    if let Some(extra) = rest.first() {
        return Err(fail(format!("unexpected argument {extra}")));
    }

    // The service's family decides how -M reads.
    let service_v6 = match inv.service {
        Some(ServiceArg::Addr(_, a) | ServiceArg::Sctp(a)) => a.is_ipv6(),
        Some(ServiceArg::Fwmark(..)) => fwmark_v6,
        None => false,
    };
    if let Some(m) = &netmask_text {
        inv.netmask = Some(parse_netmask(m, service_v6)?);
    }
    let service_port = match inv.service {
        Some(ServiceArg::Addr(_, a) | ServiceArg::Sctp(a)) => a.port(),
        _ => 0,
    };
    if let Some(r) = &real_text {
        let (mut addr, has_port) = parse_address(r, proto)
            .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
        if !has_port {
            addr.set_port(service_port);
        }
        inv.real = Some(addr);
    }

    match command {
        Command::AddService | Command::EditService => {
            if let Some(ServiceArg::Addr(_, a) | ServiceArg::Sctp(a)) = inv.service
                && a.port() == 0
                && inv.persistent.is_none()
            {
                return Err(fail("Zero port specified for non-persistent service"));
            }
            if inv.one_packet
                && !matches!(
                    inv.service,
                    Some(ServiceArg::Fwmark(..) | ServiceArg::Addr(Proto::Udp, _))
                )
            {
                return Err(fail(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
            if inv.scheduler.is_none() {
                inv.scheduler = Some(DEFAULT_SCHEDULER.to_string());
            }
            if let Some(flags) = &inv.sched_flags {
                check_sched_flags(flags, inv.scheduler.as_deref().unwrap_or_default())?;
            }
        }
        Command::AddReal | Command::EditReal => {
            let method = inv.method.unwrap_or(Method::Route);
            let service_v6 = match inv.service {
                Some(ServiceArg::Addr(_, a) | ServiceArg::Sctp(a)) => Some(a.is_ipv6()),
                Some(ServiceArg::Fwmark(_, v6)) => Some(v6),
                None => None,
            };
            if let (Some(v6), Some(r)) = (service_v6, inv.real)
                && r.is_ipv6() != v6
                && method != Method::Tunnel
            {
                return Err(fail(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            if !matches!(inv.service, Some(ServiceArg::Fwmark(..)))
                && matches!(method, Method::Route | Method::Tunnel)
                && let Some(r) = &mut inv.real
            {
                r.set_port(service_port);
            }
        }
        _ => {}
    }
    Ok(inv)
}

/// `-b`: ipvsadm 1.31's scheduler flags, each valid only with its scheduler.
fn check_sched_flags(flags: &str, scheduler: &str) -> Result<(), ArgError> {
    for f in flags.split(',') {
        let ok = match f {
            "flag-1" | "flag-2" | "flag-3" => true,
            "sh-fallback" | "sh-port" => scheduler == "sh",
            "mh-fallback" | "mh-port" => scheduler == "mh",
            _ => {
                return Err(fail(format!("invalid scheduler flag `{f}'")));
            }
        };
        if !ok {
            return Err(fail(format!(
                "incompatible scheduler flag `{f}' for scheduler `{scheduler}'"
            )));
        }
    }
    Ok(())
}

fn empty(command: Command) -> Invocation {
    Invocation {
        command,
        service: None,
        scheduler: None,
        persistent: None,
        netmask: None,
        real: None,
        method: None,
        weight: None,
        u_threshold: None,
        l_threshold: None,
        numeric: false,
        connection: false,
        stats: false,
        rate: false,
        thresholds: false,
        persistent_conn: false,
        exact: false,
        nosort: false,
        timeout: false,
        daemon: false,
        one_packet: false,
        pe: None,
        sched_flags: None,
        timeouts: None,
    }
}

/// The words of one line of `ipvsadm -R`'s input (and of a rules file): split on white space,
/// every word `ipvsadm` dropped (as ipvsadm's config_stream does). `None`: a blank line.
pub fn restore_words(line: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = line
        .split_whitespace()
        .filter(|w| *w != "ipvsadm")
        .collect();
    (!words.is_empty()).then_some(words)
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
