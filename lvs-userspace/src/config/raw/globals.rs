//! Resolving the global settings: defaults, mail (`smtp*`, `emailalert*`), `extra_macs`,
//! connection timeouts and table sizes.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{Family, Opt, RawGlobals, Val};
use super::{
    address::not_a_host_name,
    real::parse_fallback,
    resolve::{check_seconds, count, timeout, warn},
};
use crate::config::{ConfigError, model::*};

/// Where `metrics = true` (or `yes`) listens.
pub const DEFAULT_METRICS: ([u8; 4], u16) = ([127, 0, 0, 1], 9100);

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

pub(super) fn resolve_globals(
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
