//! Writing a [`Config`] out: the human-readable plan of `lvs check` and the TOML of
//! `lvs convert`.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use super::{model::*, protocol_name};

fn scheduler_name(s: Scheduler) -> &'static str {
    match s {
        Scheduler::Wrr => "wrr",
        Scheduler::Rr => "rr",
        Scheduler::Sh => "sh",
    }
}

fn check_type_name(c: CheckType) -> String {
    match c {
        CheckType::Connect => "connect".into(),
        CheckType::Negotiate => "negotiate".into(),
        CheckType::Ping => "ping".into(),
        CheckType::External => "external".into(),
        CheckType::On => "on".into(),
        CheckType::Off => "off".into(),
        CheckType::ConnectThenNegotiate(n) => n.to_string(),
    }
}

fn service_name(s: CheckService) -> &'static str {
    match s {
        CheckService::Http => "http",
        CheckService::Https => "https",
        CheckService::SimpleTcp => "simpletcp",
        CheckService::Dns => "dns",
        CheckService::None => "none",
    }
}

fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Head => "HEAD",
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// A TOML string literal.
fn q(s: &str) -> String {
    ::toml::Value::String(s.to_string()).to_string()
}

/// A fallback as the TOML format writes it: the address, and the method unless it is `gate`.
fn fallback_text(f: &Fallback) -> String {
    match f.forwarding {
        Forwarding::Gate => f.addr.to_string(),
        m => format!("{} {}", f.addr, m.config_name()),
    }
}

/// A fallback or VIP with port 0 shown as "service port".
fn addr_or_any_port(a: SocketAddr) -> String {
    if a.port() == 0 {
        format!("{} (service port)", a.ip())
    } else {
        a.to_string()
    }
}

/// What `lvs check FILE` prints: every virtual service with its reals, weights, scheduler,
/// check and fallback, with all defaults applied, then the warnings.
pub fn render_check(config: &Config) -> String {
    let mut o = String::new();
    let g = &config.globals;
    let _ = writeln!(
        o,
        "{}: {} virtual service(s)",
        config.source.display(),
        config.virtuals.len()
    );
    let _ = writeln!(
        o,
        "timeouts: tcp {} s, tcpfin {} s, udp {} s",
        g.timeouts.tcp, g.timeouts.tcpfin, g.timeouts.udp
    );
    for v in &config.virtuals {
        let _ = writeln!(o);
        let _ = write!(o, "virtual {} {}", protocol_name(v.protocol), v.vip);
        if let Some(n) = &v.name {
            let _ = write!(o, " \"{n}\"");
        }
        let _ = writeln!(o, "  ({})", v.location);
        if let Some(c) = &v.comment {
            let _ = writeln!(o, "  comment: {c}");
        }
        let _ = write!(o, "  scheduler {}", scheduler_name(v.scheduler));
        match v.persistent {
            Some(p) => {
                let _ = writeln!(o, ", persistent {} per /{}", secs(p), v.netmask_prefix);
            }
            None => {
                let _ = writeln!(o, ", not persistent");
            }
        }
        let total: u32 = v.reals.iter().map(|r| r.weight).sum();
        if v.reals.is_empty() {
            let _ = writeln!(o, "  no real servers");
        }
        for r in &v.reals {
            let share = if total > 0 {
                format!("{:.0}%", 100.0 * f64::from(r.weight) / f64::from(total))
            } else {
                "-".into()
            };
            let _ = write!(
                o,
                "  real {} {} weight {} ({share})",
                addr_or_any_port(r.addr),
                r.forwarding.config_name(),
                r.weight
            );
            if let Some(req) = &r.request {
                let _ = write!(o, " request {req:?}");
            }
            if let Some(rec) = &r.receive {
                let _ = write!(o, " receive {rec:?}");
            }
            let _ = writeln!(o);
        }
        let c = &v.check;
        let _ = write!(o, "  check {}", check_type_name(c.check_type));
        if matches!(
            c.check_type,
            CheckType::Negotiate | CheckType::ConnectThenNegotiate(_)
        ) {
            let _ = write!(o, " {}", service_name(c.service));
        }
        match c.port {
            Some(p) => {
                let _ = write!(o, " on port {p}");
            }
            None => {
                let _ = write!(o, " on the real's port");
            }
        }
        let _ = writeln!(
            o,
            ", every {}, timeout {} (negotiate {}), down after {} failure(s), up after {} success(es)",
            secs(c.interval),
            secs(c.timeout),
            secs(c.negotiate_timeout),
            c.failure_count,
            c.success_count
        );
        if matches!(c.service, CheckService::Http | CheckService::Https) {
            let _ = write!(
                o,
                "    {} {}",
                method_name(c.http_method),
                c.request.as_deref().unwrap_or("/")
            );
            if let Some(h) = &c.virtual_host {
                let _ = write!(o, " Host: {h}");
            }
            let _ = writeln!(o);
        } else if let Some(r) = &c.request {
            let _ = writeln!(o, "    request {r:?}");
        }
        if let Some(r) = &c.receive {
            let _ = writeln!(o, "    expect {r:?}");
        }
        if let Some(cmd) = &c.command {
            let _ = writeln!(o, "    command {cmd}");
        }
        match &v.fallback {
            Some(f) => {
                let _ = writeln!(
                    o,
                    "  fallback {} {}",
                    addr_or_any_port(f.addr),
                    f.forwarding.config_name()
                );
            }
            None => {
                let _ = writeln!(o, "  no fallback");
            }
        }
        if let Some(f) = &v.fallback_command {
            let _ = writeln!(o, "  fallbackcommand {f}");
        }
        let _ = writeln!(
            o,
            "  failed reals are {}",
            if v.quiescent {
                "quiesced (weight 0, flows kept)"
            } else {
                "removed"
            }
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "autoreload {}, log {}, emailalert {}",
        if g.autoreload { "yes" } else { "no" },
        match &g.log {
            LogTarget::Stdout => "stdout".to_string(),
            LogTarget::File(p) => p.display().to_string(),
            LogTarget::Syslog(f) => format!("syslog {f}"),
        },
        if g.email_alert.is_empty() {
            "none".to_string()
        } else {
            g.email_alert.join(", ")
        }
    );
    for n in &config.resolved {
        let _ = writeln!(o, "name: {n}");
    }
    for w in &config.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}

/// What `lvs convert FILE` prints: the configuration in the TOML schema of
/// [`super::toml`], every value explicit, so that it loads back to an equal [`Config`] (but for
/// `source`, locations and warnings).
pub fn to_toml(config: &Config) -> String {
    let mut o = String::new();
    let g = &config.globals;
    let _ = writeln!(o, "# Converted by lvs from {}", config.source.display());
    let _ = writeln!(o, "checkinterval = {}", g.check_interval.as_secs());
    let _ = writeln!(o, "checktimeout = {}", g.check_timeout.as_secs());
    let _ = writeln!(o, "negotiatetimeout = {}", g.negotiate_timeout.as_secs());
    let _ = writeln!(o, "failurecount = {}", g.failure_count);
    let _ = writeln!(o, "successcount = {}", g.success_count);
    let _ = writeln!(o, "timeout_tcp = {}", g.timeouts.tcp);
    let _ = writeln!(o, "timeout_tcpfin = {}", g.timeouts.tcpfin);
    let _ = writeln!(o, "timeout_udp = {}", g.timeouts.udp);
    if let Some(f) = &g.fallback {
        let _ = writeln!(o, "fallback = {}", q(&fallback_text(f)));
    }
    if let Some(f) = &g.fallback6 {
        let _ = writeln!(o, "fallback6 = {}", q(&fallback_text(f)));
    }
    if let Some(f) = &g.fallback_command {
        let _ = writeln!(o, "fallbackcommand = {}", q(f));
    }
    let _ = writeln!(o, "quiescent = {}", g.quiescent);
    let _ = writeln!(o, "autoreload = {}", g.autoreload);
    match &g.log {
        LogTarget::Stdout => {}
        LogTarget::File(p) => {
            let _ = writeln!(o, "logfile = {}", q(&p.display().to_string()));
        }
        LogTarget::Syslog(f) => {
            let _ = writeln!(o, "logfile = {}", q(f));
        }
    }
    let _ = writeln!(o, "supervised = {}", g.supervised);
    if !g.email_alert.is_empty() {
        let list: Vec<String> = g.email_alert.iter().map(|a| q(a)).collect();
        let _ = writeln!(o, "emailalert = [{}]", list.join(", "));
    }
    if let Some(f) = &g.email_alert_from {
        let _ = writeln!(o, "emailalertfrom = {}", q(f));
    }
    let _ = writeln!(o, "emailalertfreq = {}", g.email_alert_freq.as_secs());
    let s = g.email_alert_status;
    let status = if s == AlertStatus::ALL {
        "all".to_string()
    } else {
        let mut w = Vec::new();
        if s.starting {
            w.push("starting");
        }
        if s.running {
            w.push("running");
        }
        if s.stopping {
            w.push("stopping");
        }
        if s.sent {
            w.push("reloading");
        }
        if w.is_empty() {
            "none".to_string()
        } else {
            w.join(",")
        }
    };
    let _ = writeln!(o, "emailalertstatus = {}", q(&status));
    for (k, v) in [
        ("smtp", &g.smtp),
        ("notify", &g.notify),
        ("callback", &g.callback),
        ("interface", &g.interface),
    ] {
        if let Some(v) = v {
            let _ = writeln!(o, "{k} = {}", q(v));
        }
    }
    if let Some(m) = &g.maintenance_dir {
        let _ = writeln!(o, "maintenancedir = {}", q(&m.display().to_string()));
    }
    let _ = writeln!(o, "cleanstop = {}", g.cleanstop);
    if let Some(m) = g.metrics {
        let _ = writeln!(o, "metrics = {}", q(&m.to_string()));
    }
    let _ = writeln!(o, "verify_tls = {}", g.verify_tls);
    if g.allow_empty {
        let _ = writeln!(o, "allow_empty = true");
    }
    if !g.extra_macs.is_empty() {
        let list: Vec<String> = g
            .extra_macs
            .iter()
            .map(|m| q(&crate::neighbour::MacAddr(*m).to_string()))
            .collect();
        let _ = writeln!(o, "extra_macs = [{}]", list.join(", "));
    }

    for v in &config.virtuals {
        let _ = writeln!(o);
        let _ = writeln!(o, "[[virtual]]");
        let _ = writeln!(o, "address = {}", q(&v.vip.to_string()));
        let _ = writeln!(o, "protocol = {}", q(protocol_name(v.protocol)));
        if let Some(n) = &v.name {
            let _ = writeln!(o, "servicename = {}", q(n));
        }
        if let Some(c) = &v.comment {
            let _ = writeln!(o, "comment = {}", q(c));
        }
        let _ = writeln!(o, "scheduler = {}", q(scheduler_name(v.scheduler)));
        if let Some(p) = v.persistent {
            let _ = writeln!(o, "persistent = {}", p.as_secs());
        }
        let _ = writeln!(o, "netmask = {}", v.netmask_prefix);
        if let Some(f) = &v.fallback {
            let _ = writeln!(o, "fallback = {}", q(&fallback_text(f)));
        }
        if let Some(f) = &v.fallback_command {
            let _ = writeln!(o, "fallbackcommand = {}", q(f));
        }
        let _ = writeln!(o, "quiescent = {}", v.quiescent);
        let c = &v.check;
        let ct = check_type_name(c.check_type);
        let _ = writeln!(o, "checktype = {}", q(&ct));
        let _ = writeln!(o, "service = {}", q(service_name(c.service)));
        if let Some(p) = c.port {
            let _ = writeln!(o, "checkport = {p}");
        }
        if let Some(r) = &c.request {
            let _ = writeln!(o, "request = {}", q(r));
        }
        if let Some(r) = &c.receive {
            let _ = writeln!(o, "receive = {}", q(r));
        }
        let _ = writeln!(o, "httpmethod = {}", q(method_name(c.http_method)));
        if let Some(h) = &c.virtual_host {
            let _ = writeln!(o, "virtualhost = {}", q(h));
        }
        if let Some(cmd) = &c.command {
            let _ = writeln!(o, "checkcommand = {}", q(cmd));
        }
        let _ = writeln!(o, "checkinterval = {}", c.interval.as_secs());
        let _ = writeln!(o, "checktimeout = {}", c.timeout.as_secs());
        let _ = writeln!(o, "negotiatetimeout = {}", c.negotiate_timeout.as_secs());
        let _ = writeln!(o, "failurecount = {}", c.failure_count);
        let _ = writeln!(o, "successcount = {}", c.success_count);
        let _ = writeln!(o, "verify_tls = {}", c.verify_tls);
        for r in &v.reals {
            let _ = writeln!(o);
            let _ = writeln!(o, "[[virtual.real]]");
            let _ = writeln!(o, "address = {}", q(&r.addr.to_string()));
            let _ = writeln!(o, "weight = {}", r.weight);
            let _ = writeln!(o, "method = {}", q(r.forwarding.config_name()));
            if let Some(req) = &r.request {
                let _ = writeln!(o, "request = {}", q(req));
            }
            if let Some(rec) = &r.receive {
                let _ = writeln!(o, "receive = {}", q(rec));
            }
        }
    }
    o
}
