//! keepalived.conf: the helpers the keepalived tests share, then the keywords of a service and
//! its reals with keepalived's defaults and refusals (protocol, schedulers, forwarding methods,
//! persistence, weights, sorry server and quorum, alpha/omega/ha_suspend, timers,
//! lvs_timeouts, a real listed twice, other blocks, included files). Checkers:
//! `keepalived_checks_tests.rs`; fwmark services, groups and address families:
//! `keepalived_fwmark_group_tests.rs`; the corpus: `keepalived_corpus_tests.rs`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::parse_with_id;
use crate::config::{Config, ConfigError, Location, model::*, to_toml, toml};

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_id(Path::new("k.conf"), text, "lb1")
}

pub(super) fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub(super) fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A DR virtual service on 10.0.0.1:80 with `vs` lines and two reals, each with `real`
/// lines. Line numbers: `virtual_server` is line 1, `vs` lines start at 2.
pub(super) fn vs(vs: &str, real: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\n{vs}\n  real_server 10.0.0.2 80 {{\n{real}\n  }}\n  \
         real_server 10.0.0.3 80 {{\n{real}\n  }}\n}}\n"
    )
}

pub(super) const BASE: &str = "  lb_algo rr\n  lb_kind DR\n  protocol TCP";

#[test]
fn keepalived_defaults_are_written_out() {
    let c = ok(&vs(BASE, "    TCP_CHECK {\n    }"));
    let v = &c.virtuals[0];
    assert_eq!(v.vip, sa("10.0.0.1:80"));
    assert_eq!(v.location.line, 1);
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.scheduler, Scheduler::Rr);
    assert_eq!(v.persistent, None);
    assert_eq!(v.fallback, None);
    assert!(!v.quiescent);
    let reals: Vec<_> = v
        .reals
        .iter()
        .map(|r| (r.addr, r.weight, r.forwarding))
        .collect();
    assert_eq!(
        reals,
        [
            (sa("10.0.0.2:80"), 1, Forwarding::Gate),
            (sa("10.0.0.3:80"), 1, Forwarding::Gate)
        ]
    );
    let k = &v.check;
    assert_eq!(k.check_type, CheckType::Connect);
    assert_eq!(k.port, None);
    // delay_loop 60, connect_timeout 5, retry 1: down after 2 failures, up after 1 success.
    assert_eq!(k.interval, Duration::from_secs(60));
    assert_eq!(k.timeout, Duration::from_secs(5));
    assert_eq!(k.failure_count, 2);
    assert_eq!(k.success_count, 1);
    // delay_before_retry's default: 1 s between the retries.
    assert_eq!(k.retry_interval, Some(Duration::from_secs(1)));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn protocol_defaults_to_udp_with_a_warning() {
    let c = ok(&vs("  lb_algo rr\n  lb_kind DR", ""));
    assert_eq!(c.virtuals[0].protocol, Protocol::Udp);
    assert_eq!(
        c.warnings,
        [
            "k.conf:1: protocol: no protocol set: UDP, keepalived's default (write `protocol TCP` for TCP)"
        ]
    );
    assert_eq!(
        err(&vs("  lb_algo rr\n  lb_kind DR\n  protocol SCTP", "")),
        "k.conf:4: protocol: SCTP is not supported: TCP or UDP"
    );
}

#[test]
fn schedulers_lvs_lacks_are_refused_at_their_line() {
    assert_eq!(
        err(&vs("  lb_kind DR\n  lb_algo lblc", "")),
        "k.conf:3: lb_algo: scheduler `lblc` is not supported: lvs implements rr, wrr, sh, lc, \
         wlc, sed, nq, fo, ovf, dh and mh"
    );
    assert!(
        err(&vs("  lvs_sched twos\n  lb_kind DR", ""))
            .starts_with("k.conf:2: lvs_sched: scheduler `twos`")
    );
    // No lb_algo: keepalived's default, wlc.
    let c = ok(&vs("  lb_kind DR\n  protocol TCP", ""));
    assert_eq!(c.virtuals[0].scheduler, Scheduler::Wlc);
    for (algo, want) in [
        ("lc", Scheduler::Lc),
        ("dh", Scheduler::Dh),
        ("ovf", Scheduler::Ovf),
    ] {
        let c = ok(&vs(&format!("  lb_algo {algo}\n  lb_kind DR"), ""));
        assert_eq!(c.virtuals[0].scheduler, want);
    }
    for (algo, want) in [("wrr", Scheduler::Wrr), ("sh", Scheduler::Sh)] {
        let c = ok(&vs(
            &format!("  lvs_sched {algo}\n  lvs_method DR\n  protocol TCP"),
            "",
        ));
        assert_eq!(c.virtuals[0].scheduler, want);
    }
}

#[test]
fn nat_is_keepalived_default_and_fnat_is_refused() {
    let method = |c: &Config| c.virtuals[0].reals[0].forwarding;
    assert_eq!(
        method(&ok(&vs("  lb_algo rr\n  lb_kind NAT", ""))),
        Forwarding::Masq
    );
    // No lb_kind: keepalived's default, NAT.
    assert_eq!(
        method(&ok(&vs("  lb_algo rr\n  protocol TCP", ""))),
        Forwarding::Masq
    );
    // A real's own method wins.
    assert_eq!(
        method(&ok(&vs(BASE, "    lvs_method NAT"))),
        Forwarding::Masq
    );
    assert_eq!(
        err(&vs("  lb_algo rr\n  lb_kind FNAT", "")),
        "k.conf:3: lb_kind: FNAT forwarding (DPVS's full NAT) is not IPVS: lvs forwards by \
         direct routing (DR), NAT and IP-in-IP tunnel (TUN)"
    );
    assert!(err(&vs("  lb_algo rr\n  lb_kind dr", "")).contains("in capitals"));
}

#[test]
fn tun_is_the_tunnel_for_every_real_unless_a_real_says_otherwise() {
    let c = ok(&vs(
        "  lb_algo rr\n  lb_kind TUN\n  sorry_server 10.0.9.9 80",
        "",
    ));
    let v = &c.virtuals[0];
    assert!(v.reals.iter().all(|r| r.forwarding == Forwarding::Tunnel));
    assert_eq!(v.fallback.as_ref().unwrap().forwarding, Forwarding::Tunnel);
    // A real's own lvs_method wins; the sorry server's method is its own when given.
    let dr_tun =
        "  lb_algo rr\n  lb_kind DR\n  sorry_server 10.0.9.9 80\n  sorry_server_lvs_method TUN";
    let c = ok(&vs(dr_tun, "    lvs_method TUN"));
    let v = &c.virtuals[0];
    assert!(v.reals.iter().all(|r| r.forwarding == Forwarding::Tunnel));
    assert_eq!(v.fallback.as_ref().unwrap().forwarding, Forwarding::Tunnel);
    // keepalived does not read lb_kind in a real_server (an unknown keyword there): the
    // service's method applies. Another method than the service's is refused, the same one
    // warned.
    assert_eq!(
        err(&vs(dr_tun, "    lb_kind TUN")),
        "k.conf:7: lb_kind: keepalived does not read lb_kind in a real_server (\"Unknown \
         keyword\"): it forwards to this real by the service's method (DR); write `lvs_method \
         TUN` for the real's own"
    );
    let c = ok(&vs(dr_tun, "    lb_kind DR"));
    assert!(
        c.virtuals[0]
            .reals
            .iter()
            .all(|r| r.forwarding == Forwarding::Gate)
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:7: lb_kind: ignored, as keepalived does")),
        "{:?}",
        c.warnings
    );
    let c = ok(&vs(BASE, ""));
    assert!(
        c.virtuals[0]
            .reals
            .iter()
            .all(|r| r.forwarding == Forwarding::Gate)
    );
}

#[test]
fn persistence_as_keepalived_reads_it() {
    let p = |lines: &str| ok(&vs(&format!("{BASE}\n{lines}"), "")).virtuals[0].clone();
    assert_eq!(
        p("  persistence_timeout 600").persistent,
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        p("  persistence_timeout").persistent,
        Some(Duration::from_secs(360))
    );
    assert_eq!(p("  persistence_timeout 0").persistent, None);
    let g = p("  persistence_granularity 255.255.255.0");
    assert_eq!(
        (g.persistent, g.netmask_prefix),
        (Some(Duration::from_secs(360)), 24)
    );
    // Port 0 is no port: every port, persistent for 360 s (keepalived's check_data.c).
    let zero = ok(&vs(BASE, "").replace("virtual_server 10.0.0.1 80", "virtual_server 10.0.0.1 0"));
    assert_eq!(
        (zero.virtuals[0].vip.port(), zero.virtuals[0].persistent),
        (0, Some(Duration::from_secs(360)))
    );
}

#[test]
fn weights_inhibit_and_real_ports() {
    let c = ok(&vs(
        &format!("{BASE}\n  weight 3\n  inhibit_on_failure"),
        "",
    ));
    let v = &c.virtuals[0];
    assert!(v.reals.iter().all(|r| r.weight == 3));
    assert!(v.quiescent);
    let c = ok(&vs(BASE, "    weight 5\n    inhibit_on_failure on"));
    assert!(c.virtuals[0].reals.iter().all(|r| r.weight == 5) && c.virtuals[0].quiescent);
    // A real without a port takes the service's.
    let c = ok(&format!(
        "virtual_server 10.0.0.1 8080 {{\n{BASE}\n  real_server 10.0.0.2 {{\n  }}\n}}\n"
    ));
    assert_eq!(c.virtuals[0].reals[0].addr, sa("10.0.0.2:8080"));
    let text = format!(
        "virtual_server 10.0.0.1 80 {{\n{BASE}\n  real_server 10.0.0.2 80 {{\n    \
         inhibit_on_failure\n  }}\n  real_server 10.0.0.3 80 {{\n  }}\n}}\n"
    );
    assert!(
        err(&text).starts_with("k.conf:8: inhibit_on_failure: differs from the real at k.conf:5")
    );
}

#[test]
fn sorry_server_and_quorum() {
    let c = ok(&vs(
        &format!("{BASE}\n  sorry_server 127.0.0.1\n  quorum 1\n  hysteresis 0"),
        "",
    ));
    assert_eq!(
        c.virtuals[0].fallback,
        Some(Fallback {
            addr: sa("127.0.0.1:80"),
            forwarding: Forwarding::Gate
        })
    );
    let c = ok(&vs(
        &format!(
            "{BASE}\n  sorry_server 10.0.0.9 8080\n  sorry_server_inhibit\n  sorry_server_lvs_method DR\n  hysteresis 2"
        ),
        "",
    ));
    assert_eq!(
        c.virtuals[0].fallback.as_ref().unwrap().addr,
        sa("10.0.0.9:8080")
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:6: sorry_server_inhibit: no effect"))
    );
    // keepalived keeps the hysteresis below the quorum (1 here): 0.
    assert_eq!((c.virtuals[0].quorum, c.virtuals[0].hysteresis), (1, 0));
    // A quorum: the summed weight of live reals below which the sorry server takes over.
    let c = ok(&vs(
        &format!("{BASE}\n  sorry_server 10.0.0.9\n  quorum 2\n  hysteresis 1"),
        "    weight 2",
    ));
    assert_eq!((c.virtuals[0].quorum, c.virtuals[0].hysteresis), (2, 1));
    let back = toml::parse_str(Path::new("c.toml"), &to_toml(&c)).unwrap();
    assert_eq!(
        (back.virtuals[0].quorum, back.virtuals[0].hysteresis),
        (2, 1)
    );
    // Above the reals' total weight (2 × 1): lowered to it, with a warning.
    let c = ok(&vs(&format!("{BASE}\n  quorum 5"), ""));
    assert_eq!(c.virtuals[0].quorum, 2);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:5: quorum: 5 is above the reals' total weight 2")),
        "{:?}",
        c.warnings
    );
    assert!(
        err(&vs(&format!("{BASE}\n  quorum 0"), ""))
            .starts_with("k.conf:5: quorum: must be 1 or more")
    );
    // quorum_up and quorum_down: kept, and through the TOML.
    let c = ok(&vs(
        &format!("{BASE}\n  quorum_up \"/bin/up now\"\n  quorum_down /bin/down"),
        "",
    ));
    let v = &c.virtuals[0];
    assert_eq!(
        (v.quorum_up.as_deref(), v.quorum_down.as_deref()),
        (Some("/bin/up now"), Some("/bin/down"))
    );
    let back =
        crate::config::toml::parse_str(Path::new("k.toml"), &crate::config::render::to_toml(&c))
            .unwrap();
    assert_eq!(back.virtuals[0].quorum_up, v.quorum_up);
    assert_eq!(back.virtuals[0].quorum_down, v.quorum_down);
    assert!(
        err(&vs(&format!("{BASE}\n  quorum_up /bin/up someone"), ""))
            .starts_with("k.conf:5: quorum_up: a script user is not supported")
    );
    assert_eq!(
        ok(&vs(
            &format!("{BASE}\n  sorry_server 10.0.0.9 80\n  sorry_server_lvs_method NAT"),
            ""
        ))
        .virtuals[0]
            .fallback
            .as_ref()
            .map(|f| f.forwarding),
        Some(Forwarding::Masq)
    );
}

#[test]
fn alpha_omega_ha_suspend_and_ignored_keywords() {
    let c = ok(&vs(
        &format!(
            "{BASE}\n  alpha\n  omega\n  ha_suspend\n  nat_mask 255.255.255.0\n  delay_before_retry 3"
        ),
        "    alpha\n    smtp_alert",
    ));
    let w: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| w.split(": ").nth(1).unwrap())
        .collect();
    assert_eq!(
        w,
        [
            "omega",
            "ha_suspend",
            "nat_mask",
            "smtp_alert",
            "smtp_alert"
        ]
    );
    // delay_before_retry of the virtual_server: the time between retries of its checks.
    let c = ok(&vs(
        &format!("{BASE}\n  delay_before_retry 3"),
        "    TCP_CHECK {\n      retry 2\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(
        (k.failure_count, k.retry_interval),
        (3, Some(Duration::from_secs(3)))
    );
    // Given in the checker, it wins; retry 0 needs none.
    let c = ok(&vs(
        &format!("{BASE}\n  delay_before_retry 3"),
        "    TCP_CHECK {\n      delay_before_retry 2\n    }",
    ));
    assert_eq!(
        c.virtuals[0].check.retry_interval,
        Some(Duration::from_secs(2))
    );
    let c = ok(&vs(BASE, "    TCP_CHECK {\n      retry 0\n    }"));
    assert_eq!(c.virtuals[0].check.retry_interval, None);
    // A keyword keepalived does not know either: warned with its line and skipped (with its
    // block), as keepalived does; the weight stays keepalived's default.
    let c = ok(&vs(
        &format!("{BASE}\n  weigth 2\n  colour {{\n    blue\n  }}"),
        "    wieght 3\n    TCP_CHECK {\n      conect_timeout 2\n    }",
    ));
    assert!(c.virtuals[0].reals.iter().all(|r| r.weight == 1));
    assert_eq!(c.virtuals[0].check.timeout, Duration::from_secs(5));
    let unknown = |line: usize, key: &str, block: &str| {
        format!(
            "k.conf:{line}: {key}: unknown keyword in {block}: ignored (with its block, if any), \
             as keepalived does (it logs \"Unknown keyword\")"
        )
    };
    for w in [
        unknown(5, "weigth", "virtual_server"),
        unknown(6, "colour", "virtual_server"),
        unknown(10, "wieght", "real_server"),
        unknown(12, "conect_timeout", "TCP_CHECK"),
    ] {
        assert!(c.warnings.contains(&w), "{w}\n{:?}", c.warnings);
    }
    // A connection keyword where keepalived has none (MISC_CHECK) is unknown there too.
    let c = ok(&vs(
        BASE,
        "    MISC_CHECK {\n      misc_path /bin/true\n      connect_port 81\n    }",
    ));
    assert!(
        c.warnings
            .contains(&unknown(8, "connect_port", "MISC_CHECK"))
    );
    let t = ok(&vs(BASE, "    uthreshold 10\n    lthreshold 4")).virtuals[0].reals[0].thresholds;
    assert_eq!((t.upper, t.lower), (10, 4));
    // `ops`: one-packet scheduling for a UDP service; on a TCP one keepalived clears it.
    let tcp = ok(&vs(&format!("{BASE}\n  ops"), ""));
    assert!(!tcp.virtuals[0].one_packet);
    assert!(
        tcp.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:5: ops: ignored: one-packet scheduling is only for UDP")),
        "{:?}",
        tcp.warnings
    );
    let udp = ok(&vs("  lb_algo rr\n  lb_kind DR\n  protocol UDP\n  ops", ""));
    assert!(udp.virtuals[0].one_packet);
    assert!(err(&vs(&format!("{BASE}\n  ops yes"), "")).starts_with("k.conf:5: ops: takes no"));
    assert!(
        err(&vs(&format!("{BASE}\n  sh-port"), ""))
            .starts_with("k.conf:5: sh-port: scheduler flags")
    );
}

#[test]
fn timers_inherit_and_round_up() {
    let c = ok(&vs(
        &format!("{BASE}\n  delay_loop 6\n  connect_timeout 2.5\n  retry 3"),
        "    TCP_CHECK {\n      connect_port 8080\n      retry 4\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(
        (k.interval, k.timeout, k.failure_count),
        (Duration::from_secs(6), Duration::from_secs(3), 5)
    );
    assert_eq!(k.port, Some(8080));
    assert_eq!(
        c.warnings,
        ["k.conf:6: connect_timeout: 2.5 s rounded up to 3 s (lvs times checks in whole seconds)"]
    );
    assert_eq!(
        err(&vs(&format!("{BASE}\n  delay_loop 0"), "")),
        "k.conf:5: delay_loop: must be above 0 seconds"
    );
    // nb_get_retry is retry's old name in HTTP_GET and SSL_GET; the checker's delay_loop wins.
    let c = ok(&vs(
        BASE,
        "    HTTP_GET {\n      nb_get_retry 0\n      delay_loop 2\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!((k.interval, k.failure_count), (Duration::from_secs(2), 1));
    // keepalived 2 does not read it in another checker: retry's default (1) stays.
    let c = ok(&vs(
        BASE,
        "    TCP_CHECK {\n      nb_get_retry 0\n      delay_loop 2\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!((k.interval, k.failure_count), (Duration::from_secs(2), 2));
    assert!(
        c.warnings[0].starts_with("k.conf:7: nb_get_retry: ignored, as keepalived 2 does"),
        "{:?}",
        c.warnings
    );
}

/// Reals of every test service below: two, TCP-checked.
pub(super) const REALS: &str = "  real_server 10.0.1.2 80 {\n    TCP_CHECK {\n    }\n  }\n  \
                     real_server 10.0.1.3 80 {\n    TCP_CHECK {\n    }\n  }\n";

#[test]
fn lvs_timeouts_set_the_connection_timeouts() {
    let c = ok(&format!(
        "global_defs {{\n  lvs_timeouts tcp 7200 udp 60\n}}\n{}",
        vs(BASE, "")
    ));
    assert_eq!(
        c.globals.timeouts,
        ConnTimeouts {
            tcp: 7200,
            tcpfin: 120,
            udp: 60
        }
    );
    let back = toml::parse_str(Path::new("c.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.globals.timeouts, c.globals.timeouts);
    for (line, want) in [
        (
            "lvs_timeouts tcp",
            "k.conf:2: lvs_timeouts: expected `[tcp S] [tcpfin S] [udp S]`",
        ),
        (
            "lvs_timeouts tcp x",
            "k.conf:2: lvs_timeouts: `x` is not a number of seconds",
        ),
        (
            "lvs_timeouts sctp 5",
            "k.conf:2: lvs_timeouts: `sctp`: expected tcp, tcpfin or udp",
        ),
    ] {
        let e = err(&format!("global_defs {{\n  {line}\n}}\n"));
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn a_real_listed_twice_is_kept_once_with_a_warning() {
    let c = ok(&format!(
        "virtual_server 10.0.0.1 80 {{\n{BASE}\n{REALS}  real_server 10.0.1.2 80 {{\n  }}\n}}\n"
    ));
    assert_eq!(c.virtuals[0].reals.len(), 2);
    assert!(
        c.warnings.iter().any(|w| w.starts_with(
            "k.conf:13: real_server: 10.0.1.2:80 is listed twice in this virtual_server (first at line 5)"
        )),
        "{:?}",
        c.warnings
    );
    // Odd indentation and braces on their own lines read as keepalived reads them.
    let c = ok(
        "virtual_server 10.0.0.1 80\n{\nlb_algo rr\n        lb_kind DR\n\tprotocol TCP\n  real_server 10.0.1.2 80\n  {\n      TCP_CHECK\n{\n}\n}\n}\n",
    );
    assert_eq!(c.virtuals[0].reals.len(), 1);
}

#[test]
fn other_blocks() {
    let text = format!(
        "global_defs {{\n  router_id A\n  lvs_timeouts tcp 900\n}}\nvrrp_instance V {{\n  state MASTER\n}}\n\
         vrrp_script s {{\n}}\nstatic_routes {{\n}}\n{}virtual_server 10.0.0.9 80 {{\n{BASE}\n}}\n",
        vs(BASE, "")
    );
    let c = ok(&text);
    assert_eq!(
        c.virtuals.len(),
        1,
        "a virtual_server without reals is ignored"
    );
    assert_eq!(
        c.warnings[0],
        "k.conf:5: 3 non-LVS block(s) skipped (static_routes, vrrp_instance, vrrp_script): keepalived \
         keeps doing VRRP and the rest beside lvs; lvs reads only virtual_server"
    );
    assert_eq!(
        c.warnings.iter().filter(|w| w.contains("skipped")).count(),
        1
    );
    assert_eq!(c.globals.timeouts.tcp, 900);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:23: virtual_server: no real_server"))
    );
}

#[test]
fn an_included_service_is_named_by_its_file() {
    let dir = crate::testdir::TestDir::new("keepalived-vs-include");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("conf.d/web.conf"), vs(BASE, "")).unwrap();
    std::fs::write(
        dir.join("conf.d/bad.conf"),
        vs("  lb_algo lblc\n  lb_kind DR", ""),
    )
    .unwrap();
    let main = dir.join("keepalived.conf");
    let c = parse_with_id(&main, "include conf.d/web.conf\n", "lb1").unwrap();
    assert_eq!(c.virtuals[0].location.file, dir.join("conf.d/web.conf"));
    assert_eq!(c.virtuals[0].reals[1].location.line, 8);
    let e = parse_with_id(&main, "include conf.d/*.conf\n", "lb1")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}:2: lb_algo: scheduler `lblc` is not supported: lvs implements rr, wrr, sh, lc, wlc, \
             sed, nq, fo, ovf, dh and mh",
            dir.join("conf.d/bad.conf").display()
        )
    );
}

/// The model without places (a converted file has other lines) and warnings.
pub(super) fn normalized(mut c: Config) -> Config {
    let nowhere = Location {
        file: PathBuf::new(),
        line: 0,
    };
    c.source = PathBuf::new();
    c.warnings.clear();
    for v in &mut c.virtuals {
        v.location = nowhere.clone();
        for r in &mut v.reals {
            r.location = nowhere.clone();
        }
    }
    c
}
