use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::parse_str;
use crate::config::{load, model::*};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
    parse_str(Path::new("test.cf"), text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn seed_reads_as_a_firewall_mark_service() {
    // The host's rules decide its matches (config::fwmark, lab_fwmark.rs); the reader
    // gives the mark and everything else.
    let path = fixture("seed-ldirectord.cf");
    let c = parse_str(&path, &read("seed-ldirectord.cf")).unwrap();
    let v = &c.virtuals[0];
    assert_eq!(v.location.line, 15);
    let f = v.fwmark.as_ref().unwrap();
    assert_eq!((f.mark, f.v6, f.matches.len()), (3, false, 0));
    assert_eq!(v.scheduler, Scheduler::Wrr);
    assert_eq!(v.reals.len(), 2);
    assert_eq!(v.check.port, Some(80));
    // ldirectord's own words for a fwmark service with tcp/udp.
    let e = err("virtual=3\n\tprotocol=tcp\n");
    assert!(
        e.contains("protocol must be fwm if the virtual service is a fwmark"),
        "{e}"
    );
    let e = err("virtual=0\n");
    assert!(e.contains("`0` is not a firewall mark"), "{e}");
    // virtual6=N: an IPv6 mark.
    let c = parse("virtual6=3\n\treal6=[2001:db8::2]:80 gate\n").unwrap();
    assert!(c.virtuals[0].fwmark.as_ref().unwrap().v6);
}

#[test]
fn seed_with_an_address_loads() {
    let text = read("seed-ldirectord.cf").replace("virtual=3", "virtual=192.168.1.100:80");
    let c = parse(&text).unwrap();
    let g = &c.globals;
    assert_eq!(g.check_timeout, Duration::from_secs(3));
    assert_eq!(g.negotiate_timeout, Duration::from_secs(3));
    assert_eq!(g.check_interval, Duration::from_secs(1));
    assert!(g.autoreload);
    assert!(!g.quiescent);
    assert_eq!(g.log, LogTarget::File("/var/log/ldirectord.log".into()));
    assert_eq!(g.fallback.as_ref().unwrap().addr, sa("127.0.0.1:80"));
    assert_eq!(c.virtuals.len(), 1);
    let v = &c.virtuals[0];
    assert_eq!(v.location.line, 15);
    assert_eq!(v.vip, sa("192.168.1.100:80"));
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.scheduler, Scheduler::Wrr);
    assert_eq!(v.persistent, None);
    assert_eq!(v.netmask_prefix, 32);
    let reals: Vec<_> = v.reals.iter().map(|r| (r.addr, r.weight)).collect();
    assert_eq!(
        reals,
        vec![(sa("192.168.1.107:80"), 2), (sa("192.168.1.109:80"), 1)]
    );
    assert_eq!(v.reals[0].location.line, 16);
    assert_eq!(v.fallback.as_ref().unwrap().addr, sa("127.0.0.1:80"));
    assert_eq!(v.fallback.as_ref().unwrap().forwarding, Forwarding::Gate);
    let k = &v.check;
    assert_eq!(k.check_type, CheckType::Negotiate);
    assert_eq!(k.service, CheckService::Http);
    assert_eq!(k.port, Some(80));
    // ldirectord makes the request a path.
    assert_eq!(k.request.as_deref(), Some("/index.html"));
    assert_eq!(k.receive, None);
    assert_eq!(k.virtual_host, None);
    assert_eq!(k.http_method, HttpMethod::Get);
    assert_eq!(k.interval, Duration::from_secs(1));
    assert_eq!(k.timeout, Duration::from_secs(3));
    assert_eq!(k.negotiate_timeout, Duration::from_secs(3));
    assert_eq!(k.failure_count, 1);
    assert_eq!(k.success_count, 1);
    assert!(!v.quiescent);
}

#[test]
fn sample_loads() {
    let c = load(&fixture("ldirectord-sample.cf")).unwrap();
    assert_eq!(c.globals.check_timeout, Duration::from_secs(3));
    assert_eq!(c.globals.check_interval, Duration::from_secs(1));
    assert!(!c.globals.quiescent);
    assert!(c.globals.autoreload);
    assert_eq!(c.globals.fallback, None);
    assert_eq!(c.virtuals.len(), 1);
    let v = &c.virtuals[0];
    assert_eq!(v.vip, sa("192.168.6.240:80"));
    assert_eq!(v.name.as_deref(), Some("Web Site"));
    assert_eq!(v.comment.as_deref(), Some("Test load balanced web site"));
    assert_eq!(v.scheduler, Scheduler::Rr);
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.reals.len(), 3);
    assert!(v.reals.iter().all(|r| r.weight == 1 && r.addr.port() == 80));
    assert_eq!(v.fallback.as_ref().unwrap().addr, sa("127.0.0.1:80"));
    assert_eq!(v.check.receive.as_deref(), Some("Test Page"));
    assert_eq!(v.check.virtual_host.as_deref(), Some("www.x.y.z"));
    assert_eq!(v.check.request.as_deref(), Some("/index.html"));
    assert_eq!(v.check.negotiate_timeout, Duration::from_secs(3));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// ldirectord-all.cf keeping the globals and the first virtual (lines 1..=42) and only the
/// block that starts at `start`; every other line blanked so line numbers stay.
fn isolate(text: &str, start: usize) -> String {
    let mut in_block = false;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let n = i + 1;
        if n == start {
            in_block = true;
        } else if in_block && l.trim().is_empty() {
            in_block = false;
        }
        out.push(if n <= 42 || in_block { l } else { "" });
    }
    out.join("\n")
}

/// The first line of every virtual service block of `text` after the first (line 25).
fn block_starts(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(i, l)| *i + 1 > 42 && l.starts_with("virtual"))
        .map(|(i, _)| i + 1)
        .collect()
}

fn check_blocks(text: &str, expected: &[(usize, Option<(usize, &str)>)]) {
    let path = fixture("ldirectord-all.cf");
    for (start, want) in expected {
        let r = parse_str(&path, &isolate(text, *start));
        match (want, r) {
            (None, Ok(_)) => {}
            (None, Err(e)) => panic!("block at {start}: unexpected error: {e}"),
            (Some((line, what)), Ok(_)) => {
                panic!("block at {start}: expected error at {line}: {what}")
            }
            (Some((line, what)), Err(e)) => {
                let msg = e.to_string();
                let prefix = format!("{}:{line}: ", path.display());
                assert!(
                    msg.starts_with(&prefix) && msg.contains(what),
                    "block at {start}: want {prefix}...{what}, got {msg}"
                );
            }
        }
    }
}

#[test]
fn every_sample_block_is_honoured_or_refused() {
    let text = read("ldirectord-all.cf");
    // Globals and the first block alone.
    let base = parse_str(&fixture("ldirectord-all.cf"), &isolate(&text, 0)).unwrap();
    assert_eq!(base.globals.log, LogTarget::Syslog("local0".into()));
    assert_eq!(base.globals.email_alert, vec!["admin@x.y.z".to_string()]);
    assert_eq!(base.globals.email_alert_freq, Duration::from_secs(3600));
    assert_eq!(base.globals.email_alert_status, AlertStatus::ALL);
    assert_eq!(
        base.globals.fallback6.as_ref().unwrap().addr,
        sa("[::1]:80")
    );
    assert_eq!(base.virtuals[0].persistent, Some(Duration::from_secs(600)));

    let every_block: &[(usize, Option<(usize, &str)>)] = &[
        (45, None),
        (
            63,
            Some((63, "duplicate virtual service tcp 192.168.6.240:80")),
        ),
        // masq (NAT) blocks; smtp, submission, pop, imap and nntp are checked, and wlc is
        // a scheduler.
        (80, None),
        (97, None),
        (116, None),
        (130, None),
        (144, None),
        (160, None),
        (177, None),
        (195, None),
        (209, None),
        (224, Some((225, "sql01"))),
        (239, Some((240, "sql01"))),
        (254, Some((255, "sql01"))),
        (270, None),
        (284, None),
        (299, None),
        (
            318,
            Some((319, "`192.168.6.2::5060` is not a valid address")),
        ),
        (333, Some((340, "an IPv6 service needs a prefix length"))),
    ];
    // Every block of the sample is checked: none is left out of this list.
    let listed: Vec<usize> = every_block.iter().map(|(start, _)| *start).collect();
    assert_eq!(listed, block_starts(&text), "every block of the sample");
    check_blocks(&text, every_block);
    // The whole file at once stops at the first line its reading refuses (duplicates are
    // found after).
    let e = parse_str(&fixture("ldirectord-all.cf"), &text)
        .unwrap_err()
        .to_string();
    let prefix = format!("{}:225: ", fixture("ldirectord-all.cf").display());
    assert!(e.starts_with(&prefix), "{e}");
}

#[test]
fn all_sample_blocks_in_detail() {
    let text = read("ldirectord-all.cf");
    let path = fixture("ldirectord-all.cf");
    // The range block under its own VIP.
    let t = isolate(&text, 63).replace(
        "virtual=192.168.6.240:80\n\treal=192.168.6.2->",
        "virtual=192.168.6.241:80\n\treal=192.168.6.2->",
    );
    let c = parse_str(&path, &t).unwrap();
    let v = &c.virtuals[1];
    assert_eq!(v.vip, sa("192.168.6.241:80"));
    let addrs: Vec<String> = v.reals.iter().map(|r| r.addr.to_string()).collect();
    assert_eq!(
        addrs,
        [2, 3, 4, 5, 6, 7, 32]
            .map(|i| format!("192.168.6.{i}:80"))
            .to_vec()
    );
    assert!(v.reals[..6].iter().all(|r| r.location.line == 64));
    // https with gate: service https, the virtual's own fallback on the virtual's port.
    let c = parse_str(&path, &isolate(&text, 80)).unwrap();
    let v = &c.virtuals[1];
    assert_eq!(v.check.service, CheckService::Https);
    assert_eq!(v.fallback.as_ref().unwrap().addr, sa("127.0.0.1:443"));
    // ping over udp.
    let c = parse_str(&path, &isolate(&text, 284)).unwrap();
    let v = &c.virtuals[1];
    assert_eq!(v.protocol, Protocol::Udp);
    assert_eq!(v.check.check_type, CheckType::Ping);
    assert_eq!(v.check.failure_count, 3);
    assert_eq!(v.check.service, CheckService::Dns);
    // Radius: login, passwd and secret.
    let c = parse_str(&path, &isolate(&text, 299)).unwrap();
    let v = &c.virtuals[1];
    assert_eq!(v.check.service, CheckService::Radius);
    assert_eq!(v.check.login.as_deref(), Some("readuser"));
    assert_eq!(v.check.passwd.as_deref(), Some("genericpassword"));
    assert_eq!(v.check.secret.as_deref(), Some("somesecret"));
    // ldap (with gate): bind as login, search request.
    let c = parse_str(&path, &isolate(&text.replace(" masq", " gate"), 177)).unwrap();
    let v = &c.virtuals[1];
    assert_eq!(v.check.service, CheckService::Ldap);
    assert_eq!(v.check.request.as_deref(), Some("dc=upmc, dc=fr"));
    assert_eq!(v.check.login.as_deref(), Some("test"));
    // Radius with checktype=connect: login etc. warn.
    let t = isolate(&text, 299).replace(
        "\tchecktype=negotiate\n\tservice=radius",
        "\tchecktype=connect\n\tservice=radius",
    );
    let c = parse_str(&path, &t).unwrap();
    let v = &c.virtuals[1];
    assert_eq!(v.check.check_type, CheckType::Connect);
    assert_eq!(v.check.secret, None);
    assert_eq!(v.check.timeout, Duration::from_secs(1));
    assert_eq!(v.check.negotiate_timeout, Duration::from_secs(1));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains(":310: login: ignored")),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains(":312: secret: ignored")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn timeout_defaults_chain() {
    let v = "virtual=10.0.0.1:80\n real=10.0.0.2:80 gate\n";
    let c = parse(v).unwrap();
    assert_eq!(c.virtuals[0].check.timeout, Duration::from_secs(5));
    assert_eq!(
        c.virtuals[0].check.negotiate_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(c.virtuals[0].check.interval, Duration::from_secs(10));
    assert_eq!(c.virtuals[0].check.failure_count, 1);
    let c = parse(&format!("checktimeout=7\n{v}")).unwrap();
    assert_eq!(c.virtuals[0].check.timeout, Duration::from_secs(7));
    assert_eq!(
        c.virtuals[0].check.negotiate_timeout,
        Duration::from_secs(7)
    );
    assert_eq!(c.globals.negotiate_timeout, Duration::from_secs(7));
    let c = parse(&format!("negotiatetimeout=9\n{v}")).unwrap();
    assert_eq!(c.virtuals[0].check.timeout, Duration::from_secs(9));
    assert_eq!(
        c.virtuals[0].check.negotiate_timeout,
        Duration::from_secs(9)
    );
    // A virtual's own negotiatetimeout beats the global checktimeout, as in ldirectord.
    let c = parse(&format!("checktimeout=7\n{v} negotiatetimeout=2\n")).unwrap();
    assert_eq!(c.virtuals[0].check.timeout, Duration::from_secs(2));
    assert_eq!(
        c.virtuals[0].check.negotiate_timeout,
        Duration::from_secs(2)
    );
    let c = parse(&format!(
        "checktimeout=7\nnegotiatetimeout=8\ncheckinterval=3\nfailurecount=2\nquiescent=yes\n{v} checktimeout=4\n"
    ))
    .unwrap();
    let k = &c.virtuals[0].check;
    // The virtual's checktimeout also beats the global negotiatetimeout (ld_setup's order).
    assert_eq!(
        (k.timeout, k.negotiate_timeout),
        (Duration::from_secs(4), Duration::from_secs(4))
    );
    assert_eq!(c.globals.negotiate_timeout, Duration::from_secs(8));
    assert_eq!(k.interval, Duration::from_secs(3));
    assert_eq!(k.failure_count, 2);
    assert!(c.virtuals[0].quiescent);
    let c = parse(&format!("quiescent=yes\n{v} quiescent=no\n")).unwrap();
    assert!(!c.virtuals[0].quiescent);
}

#[test]
fn service_and_protocol_follow_the_port() {
    let c = parse("virtual=10.0.0.1:53\n real=10.0.0.2:53 gate\n request=\"x.y.z\"\n").unwrap();
    let v = &c.virtuals[0];
    assert_eq!(v.protocol, Protocol::Udp);
    assert_eq!(v.check.service, CheckService::Dns);
    assert_eq!(v.check.request.as_deref(), Some("x.y.z"));
    let c = parse("virtual=10.0.0.1:8080\n real=10.0.0.2 gate\n").unwrap();
    assert_eq!(c.virtuals[0].check.service, CheckService::None);
    assert_eq!(c.virtuals[0].reals[0].addr.port(), 0);
    // Port 3306 implies mysql, which needs a login and a query (ldirectord never brings
    // such a real up).
    let e = err("virtual=10.0.0.1:3306\n real=10.0.0.2:3306 gate\n");
    assert!(
        e.starts_with("test.cf:1: login: a mysql check needs a login"),
        "{e}"
    );
    let c = parse(
        "virtual=10.0.0.1:3306\n real=10.0.0.2:3306 gate\n login=\"u\"\n passwd=\"p\"\n \
         database=\"db\"\n request=\"SELECT 1\"\n",
    )
    .unwrap();
    let ch = &c.virtuals[0].check;
    assert_eq!(ch.service, CheckService::Mysql);
    assert_eq!(ch.database.as_deref(), Some("db"));
    assert_eq!(ch.request.as_deref(), Some("SELECT 1"));
    let e = err("virtual=10.0.0.1:1521\n real=10.0.0.2:1521 gate\n");
    assert!(
        e.starts_with("test.cf:1: service: port 1521 implies service=oracle")
            && e.contains("Oracle's proprietary client library"),
        "{e}"
    );
    // http_proxy wants an absolute URL; sip and ldap follow their ports.
    let e = err("virtual=10.0.0.1:3128\n real=10.0.0.2:3128 gate\n request=\"/x\"\n");
    assert!(
        e.starts_with("test.cf:3: request: an http_proxy check needs request"),
        "{e}"
    );
    let c =
        parse("virtual=10.0.0.1:3128\n real=10.0.0.2:3128 gate\n request=\"http://a.example/\"\n")
            .unwrap();
    assert_eq!(c.virtuals[0].check.service, CheckService::HttpProxy);
    let c = parse("virtual=10.0.0.1:5060\n real=10.0.0.2:5060 gate\n protocol=udp\n").unwrap();
    assert_eq!(c.virtuals[0].check.service, CheckService::Sip);
    let c = parse("virtual=10.0.0.1:389\n real=10.0.0.2:389 gate\n").unwrap();
    assert_eq!(c.virtuals[0].check.service, CheckService::Ldap);
    let c = parse("virtual=10.0.0.1:636\n real=10.0.0.2:636 gate\n").unwrap();
    assert_eq!(c.virtuals[0].check.service, CheckService::Ldaps);
    parse("virtual=10.0.0.1:3306\n real=10.0.0.2:3306 gate\n checktype=connect\n").unwrap();
}

#[test]
fn ranges_weights_and_per_real_checks() {
    let c = parse(
        "virtual = 10.0.0.1:80   # web\n\treal = 10.0.1.250->10.0.2.1:80 gate 5\n    real=10.0.3.1:80 gate 0 \"other.html\" \"pat+ern\" # x\n",
    )
    .unwrap();
    let v = &c.virtuals[0];
    // .250 to .255, then .0 and .1 of the next /24 (ldirectord counts through), then one.
    assert_eq!(v.reals.len(), 9);
    assert_eq!(v.reals[0].addr, sa("10.0.1.250:80"));
    assert_eq!(v.reals[6].addr, sa("10.0.2.0:80"));
    assert_eq!(v.reals[7].addr, sa("10.0.2.1:80"));
    assert!(
        v.reals[..8]
            .iter()
            .all(|r| r.weight == 5 && r.request.is_none())
    );
    let r = v.reals.last().unwrap();
    assert_eq!(r.weight, 0);
    assert_eq!(r.request.as_deref(), Some("/other.html"));
    assert_eq!(r.receive.as_deref(), Some("pat+ern"));
    let e = err("virtual=10.0.0.1:80\n real=10.0.0.9->10.0.0.2:80 gate\n");
    assert!(e.starts_with("test.cf:2: real: invalid range"), "{e}");
    // Thresholds: ` l:N` then ` u:N`, each optional, in that order.
    let t = |line: &str| {
        parse(&format!("virtual=10.0.0.1:80\n real={line}\n"))
            .map(|c| c.virtuals[0].reals[0].thresholds)
            .map_err(|e| e.to_string())
    };
    let both = Thresholds {
        upper: 10,
        lower: 5,
    };
    assert_eq!(t("10.0.0.2:80 gate 1 l:5 u:10"), Ok(both));
    assert_eq!(t("10.0.0.2:80 gate 1 \"/x\" \"y\" l:5 u:10"), Ok(both));
    assert_eq!(t("10.0.0.2:80 gate 1 u:10").unwrap().upper, 10);
    // Converted to TOML and read back.
    let c = parse("virtual=10.0.0.1:80\n real=10.0.0.2:80 gate 1 l:5 u:10\n").unwrap();
    let text = crate::config::to_toml(&c);
    let back = crate::config::toml::parse_str(Path::new("c.toml"), &text).unwrap();
    assert_eq!(back.virtuals[0].reals[0].thresholds, both, "{text}");
    let e = t("10.0.0.2:80 gate 1 u:10 l:5").unwrap_err();
    assert!(e.contains("invalid real server line, around `l:5`"), "{e}");
    let e = t("10.0.0.2:80 gate 1 l:x").unwrap_err();
    assert!(
        e.starts_with("test.cf:2: real: `l:x`: a threshold is a number"),
        "{e}"
    );
    let e = err("virtual=10.0.0.1:80\n real=10.0.0.2:80 gate\n real=10.0.0.2:80 gate 3\n");
    assert!(
        e.starts_with("test.cf:3: real: real server 10.0.0.2:80 is listed twice"),
        "{e}"
    );
    // Host names go through the system resolver.
    let c = parse("virtual=10.0.0.1:80\n real=localhost:80 gate\n").unwrap();
    assert_eq!(c.virtuals[0].reals[0].addr, sa("127.0.0.1:80"));
}

#[test]
fn ipv6() {
    let c = parse(
        "fallback6=[::1]:80\nvirtual6=[2001:db8::5]:80\n\treal6=[2001:db8::1]:80 gate 3\n\treal6=[2001:db8::2]:80 gate\n\tpersistent=300\n\tnetmask=64\n",
    )
    .unwrap();
    let v = &c.virtuals[0];
    assert_eq!(v.vip, sa("[2001:db8::5]:80"));
    assert_eq!(v.reals[0].addr, sa("[2001:db8::1]:80"));
    assert_eq!(v.reals[0].weight, 3);
    assert_eq!(v.netmask_prefix, 64);
    assert_eq!(v.persistent, Some(Duration::from_secs(300)));
    assert_eq!(v.fallback.as_ref().unwrap().addr, sa("[::1]:80"));
    let c = parse("virtual6=[2001:db8::5]:80\n\treal6=[2001:db8::1]:80 gate\n").unwrap();
    assert_eq!(c.virtuals[0].netmask_prefix, 128);
    let e = err("virtual=[2001:db8::5]:80\n");
    assert!(e.contains("use virtual6="), "{e}");
    let e = err("virtual6=[2001:db8::5]:80\n\treal=10.0.0.1:80 gate\n");
    assert!(
        e.starts_with("test.cf:2: real: cannot specify `real`"),
        "{e}"
    );
    let e = err("virtual6=[2001:db8::5]:80\n\treal6=[2001:db8::1]->[2001:db8::3]:80 gate\n");
    assert!(e.contains("only supported for IPv4"), "{e}");
    let e = err("virtual6=[2001:db8::5]:80\n\tfallback=127.0.0.1:80\n");
    assert!(e.contains("use `fallback6`"), "{e}");
}

#[test]
fn refusals_and_bad_values_name_file_line_and_key() {
    for (text, want) in [
        (
            "checktimeout=abc\n",
            "test.cf:1: checktimeout: `abc` is not a whole number",
        ),
        (
            "checkinterval=0\n",
            "test.cf:1: checkinterval: must be a positive",
        ),
        ("bogus=1\n", "test.cf:1: bogus: unknown directive"),
        (
            "connecttimeout=3\n",
            "test.cf:1: connecttimeout: connecttimeout is deprecated",
        ),
        (
            "quiescent=maybe\n",
            "test.cf:1: quiescent: must be 'yes' or 'no'",
        ),
        (
            "\n  checktimeout=3\n",
            "test.cf:2: checktimeout: indented directive outside",
        ),
        (
            "scheduler=rr\n",
            "test.cf:1: scheduler: belongs inside a virtual= block",
        ),
        (
            "virtual=10.0.0.1:80\n\tbogus=1\n",
            "test.cf:2: bogus: unknown directive",
        ),
        (
            "virtual=10.0.0.1:80\n\tautoreload=yes\n",
            "test.cf:2: autoreload: is a global directive",
        ),
        (
            "virtual=10.0.0.1:80\n\tprotocol=fwm\n",
            "test.cf:2: protocol: fwm is for firewall-mark services",
        ),
        (
            "virtual=10.0.0.1:80\n\tscheduler=lblc\n",
            "test.cf:2: scheduler: scheduler `lblc` is not supported: lvs implements wrr, rr, sh, lc, wlc, sed, nq, fo, ovf, dh and mh",
        ),
        (
            "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 nat\n",
            "test.cf:2: real: unknown forwarding method `nat`: must be gate, masq or ipip",
        ),
        (
            "virtual=10.0.0.1:80\n\treceive=\"(unclosed\"\n",
            "test.cf:2: receive: `(unclosed` is not a valid regular expression",
        ),
        (
            "virtual=10.0.0.1:80\n\tchecktype=sometimes\n",
            "test.cf:2: checktype: unknown check type",
        ),
        (
            "virtual=10.0.0.1:80\n\tnetmask=255.0.255.0\n",
            "test.cf:2: netmask: `255.0.255.0` is not a contiguous netmask",
        ),
        (
            "virtual=10.0.0.1:80\n\tops=yes\n",
            "test.cf:2: ops: one-packet scheduling is only for UDP services",
        ),
        (
            "virtual=10.0.0.1:80\n\temailalert=a@b\n",
            "test.cf:2: emailalert: per-virtual email alerts",
        ),
        (
            "virtual=10.0.0.1\n",
            "test.cf:1: virtual: `10.0.0.1` has no port",
        ),
        (
            "virtual=10.0.0.1:80\nvirtual=10.0.0.1:80\n",
            "test.cf:2: virtual: duplicate virtual service",
        ),
        (
            "fallback=[::1]:80\n",
            "test.cf:1: fallback: `[::1]` is an IPv6 address",
        ),
    ] {
        let e = err(text);
        assert!(e.starts_with(want), "for {text:?}: got {e}");
    }
}

/// Addresses are read strictly (issue 14, defect 7): no inet_aton forms (octal, short,
/// hex), no DNS lookup of something that is no host name, and `lvs check` says when a name
/// was resolved.
#[test]
fn addresses_are_strict_and_names_look_like_names() {
    for (text, want) in [
        // Was read as 10.212.0.8 (a leading zero is octal to inet_aton).
        (
            "virtual=10.0.0.1:80\n real=10.212.0.010:80 gate\n",
            "test.cf:2: real: `10.212.0.010` is not a valid address: ",
        ),
        // Was read as 8.212.0.100.
        (
            "virtual=010.212.0.100:80\n",
            "test.cf:1: virtual: `010.212.0.100` is not a valid address: ",
        ),
        // Was read as 10.0.0.212.
        (
            "virtual=10.0.0.1:80\n real=10.212:80 gate\n",
            "test.cf:2: real: `10.212` is not a valid address: ",
        ),
        // Was looked up in DNS.
        (
            "virtual=10.0.0.1:80\n real=10.212.0.256:80 gate\n",
            "test.cf:2: real: `10.212.0.256` is not a valid address: ",
        ),
        // Hex is inet_aton's too, though it has letters.
        (
            "virtual=10.0.0.1:80\n real=0x0a.0.0.1:80 gate\n",
            "test.cf:2: real: `0x0a.0.0.1` is not a valid address: ",
        ),
        (
            "virtual=10.0.0.1:80\n real=10.0.0.01->10.0.0.5:80 gate\n",
            "test.cf:2: real: `10.0.0.01` is not a valid address: ",
        ),
        (
            "fallback=127.0.0.010:80\n",
            "test.cf:1: fallback: `127.0.0.010` is not a valid address: ",
        ),
        (
            "virtual=10.0.0.1:80\n\tfallback=127.1:80\n",
            "test.cf:2: fallback: `127.1` is not a valid address: ",
        ),
        // IPv6: RFC 4291 text only (at most four hex digits a group, a strict embedded
        // IPv4, no zone).
        (
            "virtual6=[2001:db8::5]:80\n real6=[2001:db8::00001]:80 gate\n",
            "test.cf:2: real6: `[2001:db8::00001]` is not a valid address: ",
        ),
        (
            "virtual6=[2001:db8::5]:80\n real6=[::ffff:10.0.0.010]:80 gate\n",
            "test.cf:2: real6: `[::ffff:10.0.0.010]` is not a valid address: ",
        ),
        (
            "virtual6=[2001:db8::5]:80\n real6=[fe80::1%eth0]:80 gate\n",
            "test.cf:2: real6: `[fe80::1%eth0]` is not a valid address: ",
        ),
        // Not a name: an underscore, an empty label, a label starting with a hyphen.
        (
            "virtual=10.0.0.1:80\n real=web_1:80 gate\n",
            "test.cf:2: real: `web_1` is neither an address nor a host name: ",
        ),
        (
            "virtual=10.0.0.1:80\n real=www..example:80 gate\n",
            "test.cf:2: real: `www..example` is neither an address nor a host name: ",
        ),
        (
            "virtual=10.0.0.1:80\n real=-www.example:80 gate\n",
            "test.cf:2: real: `-www.example` is neither an address nor a host name: ",
        ),
        (
            "smtp=10.0.0.010\n",
            "test.cf:1: smtp: `10.0.0.010` is not a valid address: ",
        ),
        (
            "smtp=mail_host:25\n",
            "test.cf:1: smtp: `mail_host` is neither an address nor a host name: ",
        ),
    ] {
        let e = parse(text).unwrap_err();
        // Refused as written, never sent to the resolver.
        assert!(
            matches!(e, crate::config::ConfigError::Invalid { .. }),
            "for {text:?}: {e:?}"
        );
        let e = e.to_string();
        assert!(e.starts_with(want), "for {text:?}: got {e}");
    }
    // The strict forms load.
    let c = parse(
        "smtp=[2001:db8::25]:25\nvirtual=10.0.0.1:80\n real=10.212.0.10:80 gate\n real=10.212.0.100->10.212.0.101:80 gate\nvirtual6=[2001:0db8::5]:80\n real6=[2001:db8::a]:80 gate\n real6=[::ffff:10.0.0.7]:80 gate\n",
    )
    .unwrap();
    assert_eq!(c.virtuals[0].reals[0].addr, sa("10.212.0.10:80"));
    assert_eq!(c.virtuals[0].reals[2].addr, sa("10.212.0.101:80"));
    assert_eq!(c.virtuals[1].vip, sa("[2001:db8::5]:80"));
    assert_eq!(c.virtuals[1].reals[1].addr, sa("[::ffff:10.0.0.7]:80"));
    assert!(c.resolved.is_empty(), "{:?}", c.resolved);
    // A name is looked up, and `lvs check` says so.
    let c = parse("virtual=10.0.0.1:80\n real=localhost:80 gate\n").unwrap();
    assert_eq!(c.virtuals[0].reals[0].addr, sa("127.0.0.1:80"));
    assert_eq!(c.resolved.len(), 1);
    let out = crate::config::render_check(&c);
    assert!(
        out.contains(
            "name: test.cf:2: real localhost: resolved to 127.0.0.1 (a host name, looked up \
             by the system resolver: /etc/hosts or DNS)"
        ),
        "{out}"
    );
}

#[test]
fn checktypes_and_warnings() {
    let c = parse("virtual=10.0.0.1:80\n\tchecktype=3\n\thttpmethod=head\n").unwrap();
    assert_eq!(
        c.virtuals[0].check.check_type,
        CheckType::ConnectThenNegotiate(3)
    );
    assert_eq!(c.virtuals[0].check.http_method, HttpMethod::Head);
    let c = parse("fork=yes\nvirtual=10.0.0.1:80\n\tchecktype=external\n").unwrap();
    assert_eq!(c.virtuals[0].check.command.as_deref(), Some("/bin/true"));
    assert!(
        c.warnings[0].starts_with("test.cf:1: fork: ignored"),
        "{:?}",
        c.warnings
    );
    let c =
        parse("virtual=10.0.0.1:80\n\tchecktype=external-perl\n\tcheckcommand=\"/x y\"\n").unwrap();
    assert_eq!(c.virtuals[0].check.check_type, CheckType::External);
    assert_eq!(c.virtuals[0].check.command.as_deref(), Some("/x y"));
    assert_eq!(c.warnings.len(), 1);
    let c =
        parse("supervised\nemailalertstatus=starting, stopping\nemailalert=a@b, c@d\n").unwrap();
    assert!(c.globals.supervised);
    assert_eq!(
        c.globals.email_alert,
        vec!["a@b".to_string(), "c@d".to_string()]
    );
    assert!(c.globals.email_alert_status.starting && !c.globals.email_alert_status.running);
}

/// `ops=yes` on a UDP service: one-packet scheduling.
#[test]
fn ops_yes_on_a_udp_service_is_one_packet_scheduling() {
    let c =
        parse("virtual=10.0.0.1:53\n\treal=10.0.0.2:53 gate\n\tprotocol=udp\n\tops=yes\n").unwrap();
    assert!(c.virtuals[0].one_packet);
    let c =
        parse("virtual=10.0.0.1:53\n\treal=10.0.0.2:53 gate\n\tprotocol=udp\n\tops=no\n").unwrap();
    assert!(!c.virtuals[0].one_packet);
}
