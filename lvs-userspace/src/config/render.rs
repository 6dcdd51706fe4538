//! Writing a [`Config`] out: the human-readable plan of `lvs check` and the TOML of
//! `lvs convert`.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use super::{model::*, protocol_name};

fn scheduler_name(s: Scheduler) -> &'static str {
    s.name()
}

fn check_type_name(c: CheckType) -> String {
    match c {
        CheckType::Connect => "connect".into(),
        CheckType::Negotiate => "negotiate".into(),
        CheckType::Ping => "ping".into(),
        CheckType::External => "external".into(),
        CheckType::File => "file".into(),
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
        CheckService::Udp => "udp",
        CheckService::Dns => "dns",
        CheckService::None => "none",
        CheckService::Smtp => "smtp",
        CheckService::Pop => "pop",
        CheckService::Pops => "pops",
        CheckService::Imap => "imap",
        CheckService::Imaps => "imaps",
        CheckService::Nntp => "nntp",
        CheckService::Ftp => "ftp",
        CheckService::Sip => "sip",
        CheckService::Radius => "radius",
        CheckService::HttpProxy => "http_proxy",
        CheckService::Ldap => "ldap",
        CheckService::Ldaps => "ldaps",
        CheckService::Mysql => "mysql",
        CheckService::Pgsql => "pgsql",
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

/// `bytes` in MiB (or GiB from 1 GiB on), as the README's limits section gives sizes.
fn mib(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes.div_ceil(MIB))
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
    let _ = writeln!(
        o,
        "tables: connections {} flows ({}), persistence {} entries (about {})",
        g.tables.connections,
        mib(g.tables.connection_bytes()),
        g.tables.persistence,
        mib(g.tables.persistence_bytes())
    );
    for v in &config.virtuals {
        let _ = writeln!(o);
        match &v.fwmark {
            Some(f) => {
                let fam = if f.v6 { " (IPv6)" } else { "" };
                let _ = write!(o, "virtual fwmark {}{fam}", f.mark);
            }
            None => {
                let _ = write!(o, "virtual {} {}", protocol_name(v.protocol), v.vip);
            }
        }
        if let Some(n) = &v.name {
            let _ = write!(o, " \"{n}\"");
        }
        let _ = writeln!(o, "  ({})", v.location);
        if let Some(f) = &v.fwmark {
            let list: Vec<String> = f
                .matches
                .iter()
                .map(|m| match m.vip.port() {
                    0 => format!("{} {} every port", protocol_name(m.protocol), m.vip.ip()),
                    _ => format!("{} {}", protocol_name(m.protocol), m.vip),
                })
                .collect();
            let _ = writeln!(
                o,
                "  marked by this host's rules: {}",
                if list.is_empty() {
                    "(not read)".to_string()
                } else {
                    list.join(", ")
                }
            );
        }
        if let Some(c) = &v.comment {
            let _ = writeln!(o, "  comment: {c}");
        }
        let _ = write!(o, "  scheduler {}", scheduler_name(v.scheduler));
        let flags = v.scheduler.flags_text();
        if !flags.is_empty() {
            let _ = write!(o, " ({flags})");
        }
        match v.persistent {
            Some(p) => {
                let _ = write!(o, ", persistent {} per /{}", secs(p), v.netmask_prefix);
            }
            None => {
                let _ = write!(o, ", not persistent");
            }
        }
        if v.one_packet {
            let _ = write!(o, ", one-packet scheduling (ops)");
        }
        let _ = writeln!(o);
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
            if let Some(c) = &r.check_command {
                let _ = write!(o, " checkcommand {c:?}");
            }
            if let Some(a) = r.check_address {
                let _ = write!(o, " checked at {a}");
            }
            if !r.check_source.is_default() {
                let _ = write!(o, " checked");
                write_source(&mut o, &r.check_source);
            }
            let _ = writeln!(o);
        }
        describe_check(&mut o, "check", &v.check);
        for c in &v.also_checks {
            describe_check(&mut o, "and check", c);
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
        if v.quorum != 1 {
            let _ = writeln!(
                o,
                "  quorum {} (hysteresis {}): below it, new connections go to the fallback",
                v.quorum, v.hysteresis
            );
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
    if !g.email_alert.is_empty() {
        let _ = writeln!(o, "{}", mail_summary(g));
    }
    for n in &config.resolved {
        let _ = writeln!(o, "name: {n}");
    }
    for w in &config.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}

/// How alert mail goes out, for `lvs check`: the server, STARTTLS, the AUTH user and where
/// the password comes from (never the password).
fn mail_summary(g: &Globals) -> String {
    let sec = &g.smtp_security;
    let mut s = format!(
        "mail via {}, starttls {}",
        g.smtp
            .as_deref()
            .unwrap_or(crate::alert::DEFAULT_SMTP_SERVER),
        sec.starttls.as_str()
    );
    if let Some(ca) = &sec.ca_file {
        let _ = write!(s, " (extra roots {})", ca.display());
    }
    match (&sec.username, &sec.password_file) {
        (Some(u), Some(p)) => {
            let _ = write!(s, ", auth as {u:?} (password from {})", p.display());
        }
        _ => s.push_str(", no auth"),
    }
    s
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
    let _ = writeln!(o, "connection_table_size = {}", g.tables.connections);
    let _ = writeln!(o, "persistence_table_size = {}", g.tables.persistence);
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
    let sec = &g.smtp_security;
    if sec.starttls != StartTls::Never {
        let _ = writeln!(o, "smtp_starttls = {}", q(sec.starttls.as_str()));
    }
    if let Some(u) = &sec.username {
        let _ = writeln!(o, "smtp_username = {}", q(u));
    }
    for (k, p) in [
        ("smtp_password_file", &sec.password_file),
        ("smtp_ca_file", &sec.ca_file),
    ] {
        if let Some(p) = p {
            let _ = writeln!(o, "{k} = {}", q(&p.display().to_string()));
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
        match &v.fwmark {
            Some(f) => {
                let fam = if f.v6 { "fwmark6" } else { "fwmark" };
                let _ = writeln!(o, "address = {}", q(&format!("{fam}:{}", f.mark)));
                let _ = writeln!(o, "protocol = \"fwm\"");
            }
            None => {
                let _ = writeln!(o, "address = {}", q(&v.vip.to_string()));
                let _ = writeln!(o, "protocol = {}", q(protocol_name(v.protocol)));
            }
        }
        if let Some(n) = &v.name {
            let _ = writeln!(o, "servicename = {}", q(n));
        }
        if let Some(c) = &v.comment {
            let _ = writeln!(o, "comment = {}", q(c));
        }
        let _ = writeln!(o, "scheduler = {}", q(scheduler_name(v.scheduler)));
        let flags = v.scheduler.flags_text();
        if !flags.is_empty() {
            let _ = writeln!(o, "schedflags = {}", q(&flags));
        }
        if let Some(p) = v.persistent {
            let _ = writeln!(o, "persistent = {}", p.as_secs());
        }
        let _ = writeln!(o, "netmask = {}", v.netmask_prefix);
        if v.one_packet {
            let _ = writeln!(o, "ops = true");
        }
        if let Some(f) = &v.fallback {
            let _ = writeln!(o, "fallback = {}", q(&fallback_text(f)));
        }
        if let Some(f) = &v.fallback_command {
            let _ = writeln!(o, "fallbackcommand = {}", q(f));
        }
        let _ = writeln!(o, "quiescent = {}", v.quiescent);
        if v.quorum != 1 {
            let _ = writeln!(o, "quorum = {}", v.quorum);
        }
        if v.hysteresis != 0 {
            let _ = writeln!(o, "hysteresis = {}", v.hysteresis);
        }
        for (k, c) in [("quorum_up", &v.quorum_up), ("quorum_down", &v.quorum_down)] {
            if let Some(c) = c {
                let _ = writeln!(o, "{k} = {}", q(c));
            }
        }
        write_check_keys(&mut o, &v.check);
        for c in &v.also_checks {
            let _ = writeln!(o);
            let _ = writeln!(o, "[[virtual.also_check]]");
            write_check_keys(&mut o, c);
        }
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
            if let Some(d) = &r.digest {
                let _ = writeln!(o, "digest = {}", q(d));
            }
            if let Some(c) = &r.check_command {
                let _ = writeln!(o, "checkcommand = {}", q(c));
            }
            if let Some(a) = r.check_address {
                let _ = writeln!(o, "check_address = {}", q(&a.to_string()));
            }
            write_source_keys(&mut o, &r.check_source);
            for (k, c) in [("notify_up", &r.notify_up), ("notify_down", &r.notify_down)] {
                if let Some(c) = c {
                    let _ = writeln!(o, "{k} = {}", q(c));
                }
            }
            if r.thresholds.upper != 0 {
                let _ = writeln!(o, "upper_threshold = {}", r.thresholds.upper);
            }
            if r.thresholds.lower != 0 {
                let _ = writeln!(o, "lower_threshold = {}", r.thresholds.lower);
            }
        }
    }
    o
}

/// A check's keys, as `[[virtual]]` and `[[virtual.also_check]]` hold them.
fn write_check_keys(o: &mut String, c: &CheckSpec) {
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
    if let Some(l) = &c.login {
        let _ = writeln!(o, "login = {}", q(l));
    }
    if let Some(t) = c.dns_type {
        let _ = writeln!(o, "dns_type = {}", q(super::raw::dns_type_name(t)));
    }
    if let Some(d) = &c.digest {
        let _ = writeln!(o, "digest = {}", q(d));
    }
    if c.status_codes != StatusCodes::default() {
        let _ = writeln!(o, "status_codes = {}", q(&c.status_codes.to_string()));
    }
    if !c.follow_redirects && matches!(c.service, CheckService::Http | CheckService::Https) {
        let _ = writeln!(o, "follow_redirects = false");
    }
    if let Some(a) = c.address {
        let _ = writeln!(o, "check_address = {}", q(&a.to_string()));
    }
    write_source_keys(o, &c.source);
    if let Some(p) = &c.passwd {
        let _ = writeln!(o, "passwd = {}", q(p));
    }
    if let Some(d) = &c.database {
        let _ = writeln!(o, "database = {}", q(d));
    }
    if let Some(s) = &c.secret {
        let _ = writeln!(o, "secret = {}", q(s));
    }
    if let Some(cmd) = &c.command {
        let _ = writeln!(o, "checkcommand = {}", q(cmd));
        if c.command_style == CommandStyle::Keepalived {
            let _ = writeln!(o, "checkcommand_style = \"keepalived\"");
        }
    }
    if c.dynamic_weight {
        let _ = writeln!(o, "dynamic_weight = true");
    }
    let _ = writeln!(o, "checkinterval = {}", c.interval.as_secs());
    let _ = writeln!(o, "checktimeout = {}", c.timeout.as_secs());
    let _ = writeln!(o, "negotiatetimeout = {}", c.negotiate_timeout.as_secs());
    let _ = writeln!(o, "failurecount = {}", c.failure_count);
    if let Some(r) = c.retry_interval {
        let _ = writeln!(o, "retry_interval = {}", r.as_secs());
    }
    if c.check_type == CheckType::File {
        let _ = writeln!(o, "track_weight = {}", c.track_weight);
        let _ = writeln!(o, "track_reverse = {}", c.track_reverse);
    }
    let _ = writeln!(o, "successcount = {}", c.success_count);
    let _ = writeln!(o, "verify_tls = {}", c.verify_tls);
}

/// One check of a service for `lvs check`, its first line starting with `label` ("check", or
/// "and check" for a further one every real must pass too).
fn describe_check(o: &mut String, label: &str, c: &CheckSpec) {
    let _ = write!(o, "  {label} {}", check_type_name(c.check_type));
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
        let follows = if c.follow_redirects {
            "follows redirects to the same real"
        } else {
            "a redirect is its status, not followed"
        };
        let _ = writeln!(o, "    passes on status {}; {follows}", c.status_codes);
    } else if let Some(r) = &c.request {
        let _ = writeln!(o, "    request {r:?}");
    }
    if c.service == CheckService::HttpProxy && c.status_codes != StatusCodes::default() {
        let _ = writeln!(o, "    passes on status {}", c.status_codes);
    }
    if let Some(r) = &c.receive {
        let _ = writeln!(o, "    expect {r:?}");
    }
    if let Some(cmd) = &c.command {
        let style = match c.command_style {
            CommandStyle::Ldirectord => "with the virtual and real addresses and ports appended",
            CommandStyle::Keepalived => "split as keepalived splits it, nothing appended",
        };
        let _ = writeln!(o, "    command {cmd} ({style})");
    }
    if let Some(d) = &c.digest {
        let _ = writeln!(o, "    body MD5 {d}");
    }
    if let Some(t) = c.dns_type {
        let _ = writeln!(
            o,
            "    asks {} over UDP, passes on NOERROR",
            super::raw::dns_type_name(t)
        );
    }
    if let Some(l) = &c.login {
        // Never the password.
        let _ = writeln!(o, "    login {l:?}");
    }
    if let Some(d) = &c.database {
        let _ = writeln!(o, "    database {d:?}");
    }
    if let Some(a) = c.address {
        let _ = writeln!(o, "    checks {a} instead of each real's address");
    }
    if !c.source.is_default() {
        let _ = write!(o, "   ");
        write_source(o, &c.source);
        let _ = writeln!(o);
    }
}

/// A check source's TOML keys.
fn write_source_keys(o: &mut String, s: &CheckSource) {
    if let Some(a) = s.address {
        let _ = writeln!(o, "check_source = {}", q(&a.to_string()));
    }
    if let Some(p) = s.port {
        let _ = writeln!(o, "check_source_port = {p}");
    }
    if let Some(i) = &s.interface {
        let _ = writeln!(o, "check_interface = {}", q(i));
    }
    if let Some(m) = s.mark {
        let _ = writeln!(o, "check_mark = {m}");
    }
}

/// " from ADDR[:PORT] on interface IF with mark N", for `lvs check`.
fn write_source(o: &mut String, s: &CheckSource) {
    let _ = write!(o, " from");
    match (s.address, s.port) {
        (Some(a), Some(p)) => {
            let _ = write!(o, " {}", SocketAddr::new(a, p));
        }
        (Some(a), None) => {
            let _ = write!(o, " {a}");
        }
        (None, Some(p)) => {
            let _ = write!(o, " port {p}");
        }
        (None, None) => {}
    }
    if let Some(i) = &s.interface {
        let _ = write!(o, " on interface {i}");
    }
    if let Some(m) = s.mark {
        let _ = write!(o, " with mark {m}");
    }
}
