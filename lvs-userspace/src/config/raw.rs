//! The readers' common ground: a raw description of a configuration (every value as written,
//! with its line) and [`resolve`], the one place that applies ldirectord's defaults, refuses
//! what lvs cannot do, and builds the [`Config`].

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{ConfigError, model::*};

/// A value as written, with its 1-based line.
#[derive(Clone, Debug)]
pub(crate) struct Val<T> {
    pub value: T,
    pub line: usize,
}

impl<T> Val<T> {
    pub fn new(value: T, line: usize) -> Self {
        Val { value, line }
    }
}

/// An optional value with its line.
pub(crate) type Opt<T> = Option<Val<T>>;

/// An address family, when the syntax fixes it (`virtual6=`, `real6=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// Global settings as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawGlobals {
    pub checktimeout: Opt<u64>,
    pub negotiatetimeout: Opt<u64>,
    pub checkinterval: Opt<u64>,
    pub failurecount: Opt<u64>,
    pub successcount: Opt<u64>,
    pub fallback: Opt<String>,
    pub fallback6: Opt<String>,
    pub fallbackcommand: Opt<String>,
    pub quiescent: Opt<bool>,
    pub autoreload: Opt<bool>,
    pub logfile: Opt<String>,
    pub supervised: Opt<bool>,
    pub emailalert: Opt<Vec<String>>,
    pub emailalertfrom: Opt<String>,
    pub emailalertfreq: Opt<u64>,
    pub emailalertstatus: Opt<String>,
    pub smtp: Opt<String>,
    pub smtp_starttls: Opt<String>,
    pub smtp_username: Opt<String>,
    pub smtp_password_file: Opt<String>,
    pub smtp_ca_file: Opt<String>,
    pub notify: Opt<String>,
    pub maintenancedir: Opt<String>,
    pub cleanstop: Opt<bool>,
    pub callback: Opt<String>,
    pub interface: Opt<String>,
    pub metrics: Opt<String>,
    pub verify_tls: Opt<bool>,
    pub allow_empty: Opt<bool>,
    pub timeout_tcp: Opt<u64>,
    pub timeout_tcpfin: Opt<u64>,
    pub timeout_udp: Opt<u64>,
    pub connection_table_size: Opt<u64>,
    pub persistence_table_size: Opt<u64>,
    pub extra_macs: Opt<Vec<String>>,
}

/// A virtual service as written.
#[derive(Clone, Debug)]
pub(crate) struct RawVirtual {
    /// `VIP:port`, `[VIP6]:port`, a host name, or a fwmark number.
    pub address: Val<String>,
    /// Fixed by `virtual=`/`virtual6=`; `None` (TOML): taken from the address.
    pub family: Option<Family>,
    pub protocol: Opt<String>,
    pub scheduler: Opt<String>,
    /// Scheduler flags, comma- or space-separated, as ipvsadm's `-b` (`mh-port,mh-fallback`).
    pub schedflags: Opt<String>,
    pub persistent: Opt<u64>,
    pub netmask: Opt<String>,
    pub fallback: Opt<String>,
    pub fallbackcommand: Opt<String>,
    pub quiescent: Opt<bool>,
    pub checktype: Opt<String>,
    pub service: Opt<String>,
    pub checkport: Opt<u64>,
    pub request: Opt<String>,
    pub receive: Opt<String>,
    pub httpmethod: Opt<String>,
    pub virtualhost: Opt<String>,
    pub checkcommand: Opt<String>,
    /// keepalived's `misc_dynamic` (TOML `dynamic_weight`): the external check's exit code
    /// sets the real's weight.
    pub dynamic_weight: Opt<bool>,
    pub login: Opt<String>,
    pub passwd: Opt<String>,
    /// `database` (mysql, pgsql).
    pub database: Opt<String>,
    /// keepalived's `delay_before_retry` (TOML `retry_interval`), seconds.
    pub retry_interval: Opt<u64>,
    /// A file check's `weight` and `reverse` (TOML `track_weight`, `track_reverse`).
    pub track_weight: Opt<i64>,
    pub track_reverse: Opt<bool>,
    /// keepalived's `quorum_up` and `quorum_down` scripts (TOML too).
    pub quorum_up: Opt<String>,
    pub quorum_down: Opt<String>,
    /// `secret` (radius).
    pub secret: Opt<String>,
    pub dns_type: Opt<String>,
    pub digest: Opt<String>,
    pub checkinterval: Opt<u64>,
    pub checktimeout: Opt<u64>,
    pub negotiatetimeout: Opt<u64>,
    pub failurecount: Opt<u64>,
    pub successcount: Opt<u64>,
    pub verify_tls: Opt<bool>,
    pub servicename: Opt<String>,
    pub comment: Opt<String>,
    /// keepalived's `quorum` and `hysteresis` (TOML too).
    pub quorum: Opt<u64>,
    pub hysteresis: Opt<u64>,
    pub reals: Vec<RawReal>,
}

impl RawVirtual {
    /// A virtual with only its address set.
    pub fn new(address: Val<String>, family: Option<Family>) -> Self {
        RawVirtual {
            address,
            family,
            protocol: None,
            scheduler: None,
            schedflags: None,
            persistent: None,
            netmask: None,
            fallback: None,
            fallbackcommand: None,
            quiescent: None,
            checktype: None,
            service: None,
            checkport: None,
            request: None,
            receive: None,
            httpmethod: None,
            virtualhost: None,
            checkcommand: None,
            dynamic_weight: None,
            login: None,
            passwd: None,
            database: None,
            retry_interval: None,
            quorum_up: None,
            quorum_down: None,
            track_weight: None,
            track_reverse: None,
            secret: None,
            dns_type: None,
            digest: None,
            checkinterval: None,
            checktimeout: None,
            negotiatetimeout: None,
            failurecount: None,
            successcount: None,
            verify_tls: None,
            servicename: None,
            quorum: None,
            hysteresis: None,
            comment: None,
            reals: Vec::new(),
        }
    }
}

/// A real server (or a range of them) as written.
#[derive(Clone, Debug)]
pub(crate) struct RawReal {
    pub line: usize,
    /// `host[:port]`, `[v6][:port]` or `first->last[:port]`.
    pub address: String,
    /// Fixed by `real=`/`real6=`.
    pub family: Option<Family>,
    /// `gate`, `masq`, `ipip`; `None` means gate.
    pub method: Option<String>,
    pub weight: Option<u64>,
    pub request: Option<String>,
    pub receive: Option<String>,
    pub digest: Option<String>,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// Upper and lower connection thresholds, each with its line.
    pub u_threshold: Option<(usize, u64)>,
    pub l_threshold: Option<(usize, u64)>,
}

/// A whole configuration as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawConfig {
    pub globals: RawGlobals,
    pub virtuals: Vec<RawVirtual>,
    /// Warnings the reader already produced (`file:line: key: why`).
    pub warnings: Vec<String>,
}

/// Schedulers lvs implements, for messages.
/// Where `metrics = true` (or `yes`) listens.
pub const DEFAULT_METRICS: ([u8; 4], u16) = ([127, 0, 0, 1], 9100);

const SCHEDULERS: &str = "wrr, rr, sh, lc, wlc, sed, nq, fo, ovf, dh and mh";
/// Other ipvs schedulers, refused by name.
const IPVS_SCHEDULERS: &[&str] = &["lblc", "lblcr", "twos"];
/// Negotiate services lvs implements, for messages.
const SERVICES: &str = "http, https, http_proxy, simpletcp, dns, smtp, submission, pop, pops, imap, imaps, nntp, ftp, ldap, ldaps, sip, radius, mysql, pgsql, udp and none";
/// ldirectord services lvs has no negotiate check for, with the reason.
const LDIRECTORD_ONLY_SERVICES: &[(&str, &str)] = &[(
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

/// The most real servers one range may expand to.
const MAX_RANGE: u32 = 4096;

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

/// Collects the errors of one virtual service; the earliest line wins, so the reported error
/// is the first one in file order whatever order the checks run in.
struct Errors<'a> {
    file: &'a Path,
    first: Option<(usize, ConfigError)>,
}

impl<'a> Errors<'a> {
    fn new(file: &'a Path) -> Self {
        Errors { file, first: None }
    }

    fn push(&mut self, e: ConfigError) {
        let line = e.location().map_or(0, |l| l.line);
        if self.first.as_ref().is_none_or(|(l, _)| line < *l) {
            self.first = Some((line, e));
        }
    }

    fn bad(&mut self, line: usize, key: &str, reason: impl Into<String>) {
        let e = ConfigError::invalid(self.file, line, key, reason);
        self.push(e);
    }

    /// Keeps the value of `r`, or records its error and returns `None`.
    fn ok<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        match self.first {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

fn loc(file: &Path, line: usize) -> Location {
    Location {
        file: file.to_path_buf(),
        line,
    }
}

fn warn(warnings: &mut Vec<String>, file: &Path, line: usize, key: &str, why: &str) {
    warnings.push(format!("{}:{line}: {key}: {why}", file.display()));
}

/// Turns a raw configuration into the model: ldirectord's defaults, lvs's refusals, host and
/// port resolution, range expansion. Does not run [`super::validate`].
pub(crate) fn resolve(file: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let mut warnings = raw.warnings;
    let mut names = Vec::new();
    let g = &raw.globals;
    let globals = resolve_globals(file, g, &mut warnings, &mut names)?;
    let mut virtuals = Vec::with_capacity(raw.virtuals.len());
    for v in &raw.virtuals {
        virtuals.push(resolve_virtual(
            file,
            v,
            g,
            &globals,
            &mut warnings,
            &mut names,
        )?);
    }
    Ok(Config {
        source: file.to_path_buf(),
        globals,
        virtuals,
        warnings,
        resolved: names,
    })
}

/// A connection timeout in seconds: positive, and at most what the data plane holds.
fn timeout(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u32>, ConfigError> {
    match positive(file, key, v)? {
        None => Ok(None),
        Some(s) => u32::try_from(s).map(Some).map_err(|_| {
            ConfigError::invalid(
                file,
                v.as_ref().map_or(0, |v| v.line),
                key,
                "must be at most 4294967295 seconds",
            )
        }),
    }
}

/// `connection_table_size` (rounded up to a power of two) and `persistence_table_size`,
/// within their bounds.
fn table_sizes(file: &Path, g: &RawGlobals) -> Result<TableSizes, ConfigError> {
    let d = TableSizes::default();
    let size = |key: &str, v: &Opt<u64>, min: u32, max: u32| -> Result<Option<u32>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        if v.value < min as u64 || v.value > max as u64 {
            return Err(ConfigError::invalid(
                file,
                v.line,
                key,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(Some(v.value as u32))
    };
    Ok(TableSizes {
        connections: size(
            "connection_table_size",
            &g.connection_table_size,
            TableSizes::MIN_CONNECTIONS,
            TableSizes::MAX_CONNECTIONS,
        )?
        .map_or(d.connections, u32::next_power_of_two),
        persistence: size(
            "persistence_table_size",
            &g.persistence_table_size,
            TableSizes::MIN_PERSISTENCE,
            TableSizes::MAX_PERSISTENCE,
        )?
        .unwrap_or(d.persistence),
    })
}

fn positive(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(Val { value: 0, line }) => Err(ConfigError::invalid(
            file,
            *line,
            key,
            "must be a positive whole number",
        )),
        Some(Val { value, .. }) => Ok(Some(*value)),
    }
}

/// The longest `checkinterval`, `checktimeout` or `negotiatetimeout`: a day. A check that
/// waits longer never tells a failure in time, and such a number is a typo (a time in
/// milliseconds, a stray digit), not a choice.
pub const MAX_CHECK_SECONDS: u64 = 86_400;

/// `checkinterval`, `checktimeout`, `negotiatetimeout`: 1 to [`MAX_CHECK_SECONDS`] seconds.
fn check_seconds(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u64>, ConfigError> {
    match positive(file, key, v)? {
        Some(n) if n > MAX_CHECK_SECONDS => Err(ConfigError::invalid(
            file,
            v.as_ref().map_or(0, |v| v.line),
            key,
            format!("{n} seconds is more than a day: lvs takes 1 to {MAX_CHECK_SECONDS} seconds"),
        )),
        n => Ok(n),
    }
}

fn count(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u32>, ConfigError> {
    match positive(file, key, v)? {
        None => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            ConfigError::invalid(file, v.as_ref().unwrap().line, key, "number too large")
        }),
    }
}

fn resolve_globals(
    file: &Path,
    g: &RawGlobals,
    warnings: &mut Vec<String>,
    names: &mut Vec<ResolvedName>,
) -> Result<Globals, ConfigError> {
    let d = Globals::default();
    let ct = check_seconds(file, "checktimeout", &g.checktimeout)?;
    let nt = check_seconds(file, "negotiatetimeout", &g.negotiatetimeout)?;
    let fallback = match &g.fallback {
        Some(f) => Some(parse_fallback(file, f, "fallback", Family::V4, 0, names)?),
        None => None,
    };
    let fallback6 = match &g.fallback6 {
        Some(f) => Some(parse_fallback(file, f, "fallback6", Family::V6, 0, names)?),
        None => None,
    };
    let log = match &g.logfile {
        None => LogTarget::Stdout,
        Some(Val { value, line }) if value.trim().is_empty() => {
            return Err(ConfigError::invalid(file, *line, "logfile", "is empty"));
        }
        Some(Val { value, .. }) if value.starts_with('/') => LogTarget::File(PathBuf::from(value)),
        Some(Val { value, .. }) => LogTarget::Syslog(value.trim().to_string()),
    };
    let email_alert_status = match &g.emailalertstatus {
        None => d.email_alert_status,
        Some(s) => parse_alert_status(file, s)?,
    };
    let metrics = match &g.metrics {
        None => None,
        Some(Val { value, .. }) if matches!(value.trim(), "true" | "yes") => {
            Some(SocketAddr::from(DEFAULT_METRICS))
        }
        Some(Val { value, .. }) if matches!(value.trim(), "false" | "no") => None,
        Some(Val { value, line }) => Some(value.parse::<SocketAddr>().map_err(|e| {
            ConfigError::invalid(
                file,
                *line,
                "metrics",
                format!("`{value}` is not an address:port to listen on ({e})"),
            )
        })?),
    };
    let maintenance_dir = g.maintenancedir.as_ref().map(|m| {
        let p = PathBuf::from(&m.value);
        if !p.is_dir() {
            warn(
                warnings,
                file,
                m.line,
                "maintenancedir",
                "the maintenance directory does not exist (yet)",
            );
        }
        p
    });
    let email_alert = g
        .emailalert
        .as_ref()
        .map(|v| {
            v.value
                .iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(e) = &g.emailalert
        && email_alert.is_empty()
    {
        return Err(ConfigError::invalid(
            file,
            e.line,
            "emailalert",
            "no email address specified",
        ));
    }
    let extra_macs = match &g.extra_macs {
        None => Vec::new(),
        Some(v) => extra_macs(file, v)?,
    };
    Ok(Globals {
        check_interval: check_seconds(file, "checkinterval", &g.checkinterval)?
            .map_or(d.check_interval, Duration::from_secs),
        check_timeout: ct.or(nt).map_or(d.check_timeout, Duration::from_secs),
        negotiate_timeout: nt.or(ct).map_or(d.negotiate_timeout, Duration::from_secs),
        failure_count: count(file, "failurecount", &g.failurecount)?.unwrap_or(d.failure_count),
        success_count: count(file, "successcount", &g.successcount)?.unwrap_or(d.success_count),
        fallback,
        fallback6,
        fallback_command: g.fallbackcommand.as_ref().map(|v| v.value.clone()),
        quiescent: g.quiescent.as_ref().map_or(d.quiescent, |v| v.value),
        autoreload: g.autoreload.as_ref().map_or(d.autoreload, |v| v.value),
        log,
        supervised: g.supervised.as_ref().map_or(d.supervised, |v| v.value),
        email_alert,
        email_alert_from: g.emailalertfrom.as_ref().map(|v| v.value.clone()),
        email_alert_freq: g
            .emailalertfreq
            .as_ref()
            .map_or(d.email_alert_freq, |v| Duration::from_secs(v.value)),
        email_alert_status,
        smtp: match &g.smtp {
            Some(v) => Some(check_smtp(file, v)?),
            None => None,
        },
        smtp_security: smtp_security(file, g, warnings)?,
        notify: g.notify.as_ref().map(|v| v.value.clone()),
        maintenance_dir,
        cleanstop: g.cleanstop.as_ref().map_or(d.cleanstop, |v| v.value),
        callback: g.callback.as_ref().map(|v| v.value.clone()),
        interface: g.interface.as_ref().map(|v| v.value.clone()),
        verify_tls: g.verify_tls.as_ref().map_or(d.verify_tls, |v| v.value),
        metrics,
        allow_empty: g.allow_empty.as_ref().map_or(d.allow_empty, |v| v.value),
        timeouts: ConnTimeouts {
            tcp: timeout(file, "timeout_tcp", &g.timeout_tcp)?.unwrap_or(d.timeouts.tcp),
            tcpfin: timeout(file, "timeout_tcpfin", &g.timeout_tcpfin)?
                .unwrap_or(d.timeouts.tcpfin),
            udp: timeout(file, "timeout_udp", &g.timeout_udp)?.unwrap_or(d.timeouts.udp),
        },
        tables: table_sizes(file, g)?,
        extra_macs,
    })
}

/// `smtp`: `host`, `host:port`, an address, or `[IPv6]:port`, read as strictly as the other
/// addresses (see [`not_a_host_name`]). The name is resolved when a mail is sent.
fn check_smtp(file: &Path, v: &Val<String>) -> Result<String, ConfigError> {
    let s = v.value.trim();
    let bad = |why: String| ConfigError::invalid(file, v.line, "smtp", why);
    if s.is_empty() {
        return Err(bad("no mail server given".into()));
    }
    let bracketed_v6 = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|r| r.parse::<std::net::Ipv6Addr>().is_ok());
    if s.parse::<SocketAddr>().is_ok() || s.parse::<IpAddr>().is_ok() || bracketed_v6 {
        return Ok(s.to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(bad(format!(
            "`{p}` is not a port number (write host or host:port)"
        )));
    }
    match not_a_host_name(host) {
        Some(why) => Err(bad(format!("`{host}` {why}"))),
        None => Ok(s.to_string()),
    }
}

/// `smtp_starttls`, `smtp_username`, `smtp_password_file`, `smtp_ca_file`: a user needs a
/// password file and the other way round; both are refused with `smtp_starttls = never`
/// unless the server is on loopback (the password would cross the network in clear).
fn smtp_security(
    file: &Path,
    g: &RawGlobals,
    warnings: &mut Vec<String>,
) -> Result<SmtpSecurity, ConfigError> {
    let starttls = match &g.smtp_starttls {
        None => StartTls::default(),
        Some(v) => match v.value.trim() {
            "never" | "no" => StartTls::Never,
            "opportunistic" => StartTls::Opportunistic,
            "required" | "yes" => StartTls::Required,
            other => {
                return Err(ConfigError::invalid(
                    file,
                    v.line,
                    "smtp_starttls",
                    format!("`{other}` is not one of never, opportunistic, required"),
                ));
            }
        },
    };
    let nonempty = |v: &Opt<String>, key: &'static str| -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(Val { value, line }) if value.trim().is_empty() => {
                Err(ConfigError::invalid(file, *line, key, "is empty"))
            }
            Some(Val { value, .. }) => Ok(Some(value.trim().to_string())),
        }
    };
    let username = nonempty(&g.smtp_username, "smtp_username")?;
    let password_file = nonempty(&g.smtp_password_file, "smtp_password_file")?.map(PathBuf::from);
    let ca_file = nonempty(&g.smtp_ca_file, "smtp_ca_file")?.map(PathBuf::from);
    match (&g.smtp_username, &g.smtp_password_file) {
        (Some(u), None) => {
            return Err(ConfigError::invalid(
                file,
                u.line,
                "smtp_username",
                "needs smtp_password_file (the password is read from a file, never written inline)",
            ));
        }
        (None, Some(p)) => {
            return Err(ConfigError::invalid(
                file,
                p.line,
                "smtp_password_file",
                "needs smtp_username",
            ));
        }
        (Some(u), Some(p)) => {
            if starttls == StartTls::Never && !smtp_on_loopback(g) {
                return Err(ConfigError::invalid(
                    file,
                    u.line,
                    "smtp_username",
                    "AUTH would send the password in clear: set smtp_starttls = \"required\" \
                     (or use a mail server on loopback)",
                ));
            }
            if let Some(path) = &password_file
                && let Err(e) = std::fs::metadata(path)
            {
                warn(
                    warnings,
                    file,
                    p.line,
                    "smtp_password_file",
                    &format!("cannot read {} ({e}): mail will fail", path.display()),
                );
            }
        }
        (None, None) => {}
    }
    if let (Some(v), Some(path)) = (&g.smtp_ca_file, &ca_file)
        && let Err(e) = std::fs::metadata(path)
    {
        warn(
            warnings,
            file,
            v.line,
            "smtp_ca_file",
            &format!("cannot read {} ({e}): mail will fail", path.display()),
        );
    }
    Ok(SmtpSecurity {
        starttls,
        username,
        password_file,
        ca_file,
    })
}

/// Whether `smtp` names a loopback address (the default `127.0.0.1:25` when unset).
fn smtp_on_loopback(g: &RawGlobals) -> bool {
    let Some(v) = &g.smtp else { return true };
    let s = v.value.trim();
    let host = s
        .parse::<SocketAddr>()
        .map(|sa| sa.ip())
        .or_else(|_| s.parse::<IpAddr>())
        .or_else(|_| {
            s.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
        });
    match host {
        Ok(ip) => ip.is_loopback(),
        Err(_) => s.split(':').next() == Some("localhost"),
    }
}

/// `extra_macs`: unicast MACs (`aa:bb:cc:dd:ee:ff` or with `-`), comma-separated or a list,
/// at most [`lvs_common::mac::MAX_OWN_MACS`] - 1 (the interface's own takes one place).
fn extra_macs(file: &Path, v: &Val<Vec<String>>) -> Result<Vec<[u8; 6]>, ConfigError> {
    let err = |why: String| ConfigError::invalid(file, v.line, "extra_macs", why);
    let mut macs = Vec::new();
    for text in v.value.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if text.is_empty() {
            continue;
        }
        let mac = text
            .parse::<crate::neighbour::MacAddr>()
            .map_err(|_| err(format!("`{text}` is not a MAC address (aa:bb:cc:dd:ee:ff)")))?
            .octets();
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(err(format!(
                "`{text}` is not a unicast MAC: broadcast and multicast frames are never \
                 balanced"
            )));
        }
        if !macs.contains(&mac) {
            macs.push(mac);
        }
    }
    if macs.is_empty() {
        return Err(err("no MAC address specified".into()));
    }
    let max = lvs_common::mac::MAX_OWN_MACS - 1;
    if macs.len() > max {
        return Err(err(format!(
            "{} MACs, at most {max} (the data plane accepts {} with the interface's own)",
            macs.len(),
            lvs_common::mac::MAX_OWN_MACS
        )));
    }
    Ok(macs)
}

fn parse_alert_status(file: &Path, s: &Val<String>) -> Result<AlertStatus, ConfigError> {
    let words: Vec<&str> = s.value.split(',').map(str::trim).collect();
    let mut st = AlertStatus {
        starting: false,
        stopping: false,
        running: false,
        sent: false,
    };
    let none = words.contains(&"none");
    for w in words {
        match w {
            "none" => continue,
            "all" => st = AlertStatus::ALL,
            "starting" => st.starting = true,
            "stopping" => st.stopping = true,
            "running" => st.running = true,
            "reloading" | "sent" => st.sent = true,
            other => {
                return Err(ConfigError::invalid(
                    file,
                    s.line,
                    "emailalertstatus",
                    format!(
                        "invalid status `{other}`: use all, none, or a comma-separated list of \
                         starting, running, stopping, reloading"
                    ),
                ));
            }
        }
        if none {
            return Err(ConfigError::invalid(
                file,
                s.line,
                "emailalertstatus",
                format!("`{w}` given together with `none`"),
            ));
        }
    }
    Ok(st)
}

/// Splits `host[:port]`, `[v6][:port]` or `a->b[:port]` into host part and port text.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
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
fn parse_port(
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
fn resolve_host(
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
fn parse_endpoint(
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
fn parse_fallback(
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

fn parse_check_type(
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

fn check_regex(file: &Path, line: usize, key: &str, re: &str) -> Result<(), ConfigError> {
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
fn http_path(r: &str) -> String {
    if r.starts_with('/') || r.starts_with("http://") || r.starts_with("https://") {
        r.to_string()
    } else {
        format!("/{r}")
    }
}

fn resolve_virtual(
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
    let logs_in = negotiates
        && matches!(
            service,
            CheckService::Pop
                | CheckService::Pops
                | CheckService::Imap
                | CheckService::Imaps
                | CheckService::Ftp
                | CheckService::Sip
                | CheckService::Radius
                | CheckService::Ldap
                | CheckService::Ldaps
                | CheckService::Mysql
                | CheckService::Pgsql
        );
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
            dynamic_weight: v.dynamic_weight.as_ref().is_some_and(|b| b.value),
            login,
            passwd,
            database,
            secret,
            dns_type,
            digest,
            interval,
            timeout,
            negotiate_timeout,
            failure_count,
            success_count,
            retry_interval,
            track_weight,
            track_reverse,
        },
        quorum,
        hysteresis,
        quorum_up: v.quorum_up.as_ref().map(|s| s.value.clone()),
        quorum_down: v.quorum_down.as_ref().map(|s| s.value.clone()),
    })
}

/// One `real=` line: a server, or every address of a range.
fn resolve_real(
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
            notify_up: r.notify_up.clone(),
            notify_down: r.notify_down.clone(),
            thresholds,
        })
        .collect())
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
