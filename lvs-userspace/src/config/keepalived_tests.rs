//! keepalived.conf: each keyword, keepalived's defaults, the refusals, and the corpus.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::parse_with_id;
use crate::config::{Config, ConfigError, Location, model::*, render_check, to_toml, toml};

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

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A DR virtual service on 10.0.0.1:80 with `vs` lines and two reals, each with `real`
/// lines. Line numbers: `virtual_server` is line 1, `vs` lines start at 2.
fn vs(vs: &str, real: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\n{vs}\n  real_server 10.0.0.2 80 {{\n{real}\n  }}\n  \
         real_server 10.0.0.3 80 {{\n{real}\n  }}\n}}\n"
    )
}

const BASE: &str = "  lb_algo rr\n  lb_kind DR\n  protocol TCP";

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

#[test]
fn http_and_ssl_checks() {
    let c = ok(&vs(
        &format!("{BASE}\n  virtualhost www.example.org"),
        "    HTTP_GET {\n      url {\n        path /health\n        status_code 200-299\n        \
         regex \"^ok\"\n      }\n      connect_timeout 3\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(
        (k.check_type, k.service),
        (CheckType::Negotiate, CheckService::Http)
    );
    assert_eq!(k.request.as_deref(), Some("/health"));
    assert_eq!(k.receive.as_deref(), Some("^ok"));
    assert_eq!(k.virtual_host.as_deref(), Some("www.example.org"));
    assert_eq!(
        (k.timeout, k.negotiate_timeout),
        (Duration::from_secs(3), Duration::from_secs(3))
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = ok(&vs(
        BASE,
        "    SSL_GET {\n      url {\n        path /\n        virtualhost a.b\n      }\n    }",
    ));
    let k = &c.virtual_host_check();
    assert_eq!(k.0, CheckService::Https);
    assert_eq!(k.1.as_deref(), Some("a.b"));
    assert!(
        !c.virtuals[0].check.verify_tls,
        "keepalived does not verify certificates"
    );
    // status_code: see keepalived_status_tests.rs.
    // digest: the page's MD5, a setting of each real (keepalived's pages differ per real).
    let c = ok(&vs(
        BASE,
        "    HTTP_GET {\n      url {\n        path /\n        digest 9B3A0C85A887A256D6939DA88AABD8CD\n      }\n    }",
    ));
    assert_eq!(
        c.virtuals[0].reals[0].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    let back = toml::parse_str(std::path::Path::new("k.toml"), &to_toml(&c)).unwrap();
    assert_eq!(
        back.virtuals[0].reals[0].digest,
        c.virtuals[0].reals[0].digest
    );
    // The real's check asks for it.
    let key = crate::health::CheckKey::from_config(&c.virtuals[0], &c.virtuals[0].reals[0]);
    assert_eq!(
        key.digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert!(
        err(&vs(
            BASE,
            "    HTTP_GET {\n      url {\n        path /\n        digest 9b3a\n      }\n    }"
        ))
        .starts_with("k.conf:9: digest: `9b3a` is not an MD5")
    );
    // Several url blocks: one check each, all of which a real must pass, in the TOML too.
    let c = ok(&vs(
        BASE,
        "    HTTP_GET {\n      url {\n        path /\n      }\n      url {\n        path /b\n        \
         digest 9b3a0c85a887a256d6939da88aabd8cd\n      }\n    }",
    ));
    let v = &c.virtuals[0];
    assert_eq!(v.check.request.as_deref(), Some("/"));
    assert_eq!(v.also_checks.len(), 1);
    assert_eq!(v.also_checks[0].request.as_deref(), Some("/b"));
    assert_eq!(
        v.also_checks[0].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    let keys = crate::health::CheckKey::all_for(v, &v.reals[0]);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].request.as_deref(), Some("/b"));
    let back = toml::parse_str(std::path::Path::new("k.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].also_checks, v.also_checks);
}

impl Config {
    fn virtual_host_check(&self) -> (CheckService, Option<String>) {
        let k = &self.virtuals[0].check;
        (k.service, k.virtual_host.clone())
    }
}

#[test]
fn misc_ping_and_no_checker() {
    let c = ok(&vs(
        BASE,
        "    MISC_CHECK {\n      misc_path \"/bin/check -x\"\n      misc_timeout 7\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(k.check_type, CheckType::External);
    assert_eq!(k.command.as_deref(), Some("/bin/check -x"));
    assert_eq!((k.timeout, k.failure_count), (Duration::from_secs(7), 1));
    assert!(
        c.warnings[0].contains("ldirectord's four arguments"),
        "{:?}",
        c.warnings
    );
    assert!(!k.dynamic_weight);
    let c = ok(&vs(
        BASE,
        "    MISC_CHECK {\n      misc_path /bin/x\n      misc_dynamic\n    }",
    ));
    assert!(c.virtuals[0].check.dynamic_weight);
    // Through convert: the TOML says so and reads back the same.
    let toml = crate::config::render::to_toml(&c);
    assert!(toml.contains("dynamic_weight = true"), "{toml}");
    assert!(
        err(&vs(
            BASE,
            "    MISC_CHECK {\n      misc_path /bin/x\n      misc_dynamic yes\n    }"
        ))
        .starts_with("k.conf:8: misc_dynamic: takes no argument")
    );
    let c = ok(&vs(BASE, "    PING_CHECK {\n    }"));
    assert_eq!(c.virtuals[0].check.check_type, CheckType::Ping);
    // No checker: keepalived never takes the real out.
    let c = ok(&vs(BASE, ""));
    assert_eq!(c.virtuals[0].check.check_type, CheckType::On);
    // SMTP_CHECK: keepalived's HELO name, or the one given.
    let c = ok(&vs(BASE, "    SMTP_CHECK {\n    }"));
    let check = &c.virtuals[0].check;
    assert_eq!(check.check_type, CheckType::Negotiate);
    assert_eq!(check.service, CheckService::Smtp);
    assert_eq!(check.request.as_deref(), Some("smtpchecker.keepalived.org"));
    let c = ok(&vs(
        BASE,
        "    SMTP_CHECK {\n      helo_name lb.example\n      connect_port 2525\n    }",
    ));
    assert_eq!(c.virtuals[0].check.request.as_deref(), Some("lb.example"));
    assert_eq!(c.virtuals[0].check.port, Some(2525));
    assert!(
        err(&vs(BASE, "    SMTP_CHECK {\n      host {\n      }\n    }"))
            .starts_with("k.conf:7: host: not supported")
    );
    // notify_up / notify_down: the real's own scripts, kept per real.
    let c = ok(&vs(
        BASE,
        "    notify_up \"/usr/local/bin/up 1\"\n    notify_down /usr/local/bin/down\n    TCP_CHECK {\n    }",
    ));
    let r = &c.virtuals[0].reals[0];
    assert_eq!(r.notify_up.as_deref(), Some("/usr/local/bin/up 1"));
    assert_eq!(r.notify_down.as_deref(), Some("/usr/local/bin/down"));
    let back = toml::parse_str(std::path::Path::new("k.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].reals[0].notify_up, r.notify_up);
    assert_eq!(back.virtuals[0].reals[0].notify_down, r.notify_down);
    assert!(
        err(&vs(
            BASE,
            "    notify_up /bin/up nobody\n    TCP_CHECK {\n    }"
        ))
        .starts_with("k.conf:6: notify_up: a script user is not supported")
    );
    // DNS_CHECK: SOA of the root unless told, NOERROR passes, retry 3 by default.
    let c = ok(&vs(BASE, "    DNS_CHECK {\n    }"));
    let check = &c.virtuals[0].check;
    assert_eq!(check.service, CheckService::Dns);
    assert_eq!(check.request.as_deref(), Some("."));
    assert_eq!(check.dns_type, Some(6));
    assert_eq!(check.failure_count, 4);
    let c = ok(&vs(
        BASE,
        "    DNS_CHECK {\n      name www.example.org\n      type aaaa\n      retry 1\n    }",
    ));
    let check = &c.virtuals[0].check;
    assert_eq!(check.request.as_deref(), Some("www.example.org"));
    assert_eq!(check.dns_type, Some(28));
    assert_eq!(check.failure_count, 2);
    // Converted, it reads back the same.
    let back = toml::parse_str(std::path::Path::new("k.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].check, c.virtuals[0].check);
    assert!(
        err(&vs(BASE, "    DNS_CHECK {\n      type SRV\n    }"))
            .starts_with("k.conf:7: type: `SRV` is not one of A, NS")
    );
    let e = toml::parse_str(
        std::path::Path::new("t.toml"),
        "[[virtual]]\naddress = \"10.0.0.1:80\"\ndns_type = \"SOA\"\n\
         [[virtual.real]]\naddress = \"10.0.0.2:80\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.toml:3: dns_type: `SOA` has no effect"),
        "{e}"
    );
}

#[test]
fn several_checkers_on_one_real() {
    // keepalived has the real up only while every checker passes: each is a check of its own.
    let c = ok(&vs(
        BASE,
        "    TCP_CHECK {\n    }\n    HTTP_GET {\n      url {\n        path /x\n      }\n    }\n    \
         TCP_CHECK {\n      connect_port 81\n      retry 2\n    }",
    ));
    let v = &c.virtuals[0];
    assert_eq!(v.check.check_type, CheckType::Connect);
    assert_eq!(v.also_checks.len(), 2);
    assert_eq!(v.also_checks[0].service, CheckService::Http);
    assert_eq!(v.also_checks[0].request.as_deref(), Some("/x"));
    assert_eq!(v.also_checks[1].port, Some(81));
    assert_eq!(v.also_checks[1].failure_count, 3);
    let keys = crate::health::CheckKey::all_for(v, &v.reals[0]);
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[2].port, 81);
    // `lvs check` lists them; the TOML keeps them.
    assert_eq!(render_check(&c).matches("  and check ").count(), 2);
    let back = toml::parse_str(std::path::Path::new("k.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].also_checks, v.also_checks);
    // Reals of one service checked differently.
    let text = format!(
        "virtual_server 10.0.0.1 80 {{\n{BASE}\n  real_server 10.0.0.2 80 {{\n    TCP_CHECK {{\n    }}\n  }}\n  \
         real_server 10.0.0.3 80 {{\n    PING_CHECK {{\n    }}\n  }}\n}}\n"
    );
    assert!(
        err(&text)
            .starts_with("k.conf:9: real_server: checked differently from the real at k.conf:5")
    );
}

/// Reals of every test service below: two, TCP-checked.
const REALS: &str = "  real_server 10.0.1.2 80 {\n    TCP_CHECK {\n    }\n  }\n  \
                     real_server 10.0.1.3 80 {\n    TCP_CHECK {\n    }\n  }\n";

#[test]
fn fwmark_services() {
    // A firewall mark: its matches come from the host's rules (config::fwmark).
    let c = ok(&format!(
        "virtual_server fwmark 80 {{\n{BASE}\n  persistence_timeout 600\n{REALS}}}\n"
    ));
    let v = &c.virtuals[0];
    let f = v.fwmark.as_ref().unwrap();
    assert_eq!((f.mark, f.v6), (80, false));
    assert_eq!(v.persistent, Some(Duration::from_secs(600)));
    assert_eq!(v.reals.len(), 2);
    // `protocol` means nothing for a mark (keepalived: a warning).
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:4: protocol: ignored for a firewall-mark service")),
        "{:?}",
        c.warnings
    );
    // ip_family inet6: an IPv6 mark.
    let c = ok(
        "virtual_server fwmark 5 {\n  lb_algo rr\n  lb_kind DR\n  ip_family inet6\n  \
         real_server 2001:db8::2 80 {\n  }\n}\n",
    );
    assert!(c.virtuals[0].fwmark.as_ref().unwrap().v6);
    assert!(
        err("virtual_server fwmark 0 {\n}\n")
            .starts_with("k.conf:1: virtual_server: `0` is not a firewall mark")
    );
    // lvs convert writes it as TOML's fwmark:N, read back the same.
    let c = ok(&format!("virtual_server fwmark 80 {{\n{BASE}\n{REALS}}}\n"));
    let back = toml::parse_str(Path::new("c.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].fwmark, c.virtuals[0].fwmark);
}

#[test]
fn virtual_server_groups() {
    // A group stands for each of its members (one IPVS service each, in keepalived): ranges
    // of the last byte, full ranges, prefixes, single addresses, with or without a port, and
    // marks; defined before or after the virtual_server naming it.
    let text = format!(
        "virtual_server group WEB {{\n{BASE}\n  persistence_timeout 60\n{REALS}}}\n\
         virtual_server_group WEB {{\n  10.0.0.1-3 80\n  10.0.0.10-10.0.0.11 443\n  \
         10.0.0.20/31 8080\n  10.0.0.30\n  fwmark 7\n}}\n"
    );
    let c = ok(&text);
    let got: Vec<String> = c
        .virtuals
        .iter()
        .map(|v| match &v.fwmark {
            Some(f) => format!("fwmark {}", f.mark),
            None => v.vip.to_string(),
        })
        .collect();
    assert_eq!(
        got,
        [
            "10.0.0.1:80",
            "10.0.0.2:80",
            "10.0.0.3:80",
            "10.0.0.10:443",
            "10.0.0.11:443",
            "10.0.0.20:8080",
            "10.0.0.21:8080",
            "10.0.0.30:0",
            "fwmark 7"
        ]
    );
    for v in &c.virtuals {
        assert_eq!(v.location.line, 1);
        assert_eq!(v.reals.len(), 2);
        assert_eq!(v.persistent, Some(Duration::from_secs(60)));
    }
    // One warning per line, not one per member.
    let n = c.warnings.len();
    let mut dedup = c.warnings.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), n, "{:?}", c.warnings);
    // IPv6 ranges: the last group, in hex.
    let c = ok(&format!(
        "virtual_server_group G6 {{\n  2001:db8::a-c 80\n}}\nvirtual_server group G6 {{\n{BASE}\n  \
         real_server 2001:db8::2 80 {{\n  }}\n}}\n"
    ));
    assert_eq!(c.virtuals.len(), 3);
    assert_eq!(c.virtuals[2].vip, sa("[2001:db8::c]:80"));
    // Mistakes, named at their line.
    for (text, want) in [
        (
            "virtual_server group NONE {\n}\n".to_string(),
            "k.conf:1: virtual_server: no virtual_server_group `NONE` is defined",
        ),
        (
            "virtual_server_group G {\n  10.0.0.5-1 80\n}\n".to_string(),
            "k.conf:2: virtual_server_group: `10.0.0.5-1`: the range ends before it starts",
        ),
        (
            "virtual_server_group G {\n  10.0.0.0/16 80\n}\n".to_string(),
            "k.conf:2: virtual_server_group: `10.0.0.0/16`: more than 256 addresses",
        ),
        (
            "virtual_server_group G {\n  www.example.com 80\n}\n".to_string(),
            "k.conf:2: virtual_server_group: `www.example.com`: not an address",
        ),
        (
            "virtual_server_group G {\n}\nvirtual_server_group G {\n}\n".to_string(),
            "k.conf:3: virtual_server_group: a group `G` is already defined",
        ),
    ] {
        let e = err(&text);
        assert!(e.starts_with(want), "{e}");
    }
    // An empty group: its virtual_server is ignored, as keepalived does.
    let c = ok(&format!(
        "virtual_server_group E {{\n}}\nvirtual_server group E {{\n{BASE}\n{REALS}}}\n"
    ));
    assert!(c.virtuals.is_empty());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:3: virtual_server: its group has no member"))
    );
}

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

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keepalived")
}

/// Accepted with this many virtual services, or refused at this line with this message.
type Outcome = Result<usize, (usize, &'static str)>;

/// Every keepalived.conf of the corpus (tests/fixtures/keepalived, see its SOURCES.md): the
/// outcome of each, and for an accepted one, `lvs convert` reads back to the same model.
#[test]
fn corpus() {
    let fnat = "lb_kind: FNAT forwarding (DPVS's full NAT) is not IPVS";
    let expected: &[(&str, Outcome)] = &[
        ("001.conf", Ok(1)),
        ("002.conf", Ok(2)),
        ("003.conf", Ok(1)),
        (
            "004.conf",
            Err((37, "lb_kind: unknown forwarding method `dr`")),
        ),
        ("005.conf", Ok(1)),
        ("006.conf", Ok(1)),
        ("007.conf", Ok(1)),
        // DPVS's fork: a group of VIPs, read; its FNAT is not.
        ("008.conf", Err((44, fnat))),
        ("009.conf", Err((48, fnat))),
        ("010.conf", Ok(1)),
        ("011.conf", Ok(1)),
        ("012.conf", Ok(1)),
        ("013.conf", Ok(2)),
        // A real that is the VIP itself: the director serves it (IPVS's local node).
        ("014.conf", Ok(1)),
        ("015.conf", Ok(1)),
        ("016.conf", Ok(2)),
        ("017.conf", Ok(1)),
        ("018.conf", Ok(1)),
        // An IPv6 VIP with an IPv4 real: IPVS mixes families for tunnels only (keepalived
        // skips the real, then the service without reals).
        (
            "019.conf",
            Err((
                24,
                "real_server: 10.175.147.247 is IPv4 and the virtual server \
                 fdd6:5a50:af9e:1::5 is IPv6: IPVS forwards to a server of the other address \
                 family only through a tunnel (TUN), and NAT cannot",
            )),
        ),
        ("020.conf", Ok(1)),
        ("021.conf", Ok(1)),
        ("022.conf", Ok(1)),
        ("023.conf", Ok(1)),
        (
            "024.conf",
            Err((29, "lb_algo: scheduler `loadbalance` is not supported")),
        ),
        ("025.conf", Ok(1)),
        ("026.conf", Ok(1)),
        // keepalived logs an unknown keyword (`weigth 1`) and goes on (the weight stays 1);
        // so does lvs, with a warning.
        ("027.conf", Ok(2)),
        ("028.conf", Ok(1)),
        // Two files in one (the master's and the backup's): the second virtual_server repeats
        // the first (its digests are read).
        ("029.conf", Err((119, "virtual: duplicate virtual service"))),
    ];
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    files.sort();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        files, listed,
        "every file of the corpus has its expected outcome"
    );
    for (name, want) in expected {
        let path = corpus_dir().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        // The content says keepalived.conf.
        assert_eq!(
            crate::config::detect(&path, &text).unwrap(),
            crate::config::Format::Keepalived,
            "{name}"
        );
        match (want, parse_with_id(&path, &text, "lb1")) {
            (Ok(n), Ok(c)) => {
                assert_eq!(c.virtuals.len(), *n, "{name}");
                let toml_text = to_toml(&c);
                let back =
                    toml::parse_str(Path::new("converted.toml"), &toml_text).unwrap_or_else(|e| {
                        panic!("{name}: the converted TOML does not read: {e}\n{toml_text}")
                    });
                assert_eq!(normalized(back), normalized(c), "{name}: {toml_text}");
            }
            (Ok(_), Err(e)) => panic!("{name}: refused: {e}"),
            (Err((line, why)), Ok(_)) => panic!("{name}: accepted, expected {line}: {why}"),
            (Err((line, why)), Err(e)) => {
                let prefix = format!("{}:{line}: {why}", path.display());
                assert!(
                    e.to_string().starts_with(&prefix),
                    "{name}: want {prefix}, got {e}"
                );
            }
        }
    }
}

#[test]
fn udp_check_payload_and_reply() {
    let udp = "  lb_algo rr\n  lb_kind DR\n  protocol UDP";
    // No require_reply: silence is up (keepalived's default).
    let c = ok(&vs(udp, "    UDP_CHECK {\n      connect_timeout 2\n    }"));
    let k = &c.virtuals[0].check;
    assert_eq!(
        (k.check_type, k.service),
        (CheckType::Negotiate, CheckService::Udp)
    );
    assert_eq!((k.request.as_deref(), k.receive.as_deref()), (None, None));
    assert_eq!(k.negotiate_timeout, Duration::from_secs(2));
    let c = ok(&vs(
        udp,
        "    UDP_CHECK {\n      payload 0a0b\n      require_reply 0aXX\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(
        (k.request.as_deref(), k.receive.as_deref()),
        (Some("0a0b"), Some("0aXX"))
    );
    // A bare require_reply: any reply.
    let c = ok(&vs(udp, "    UDP_CHECK {\n      require_reply\n    }"));
    assert_eq!(c.virtuals[0].check.receive.as_deref(), Some(""));
    // Through convert and back.
    let toml = crate::config::render::to_toml(&c);
    assert!(toml.contains("service = \"udp\""), "{toml}");
    assert!(
        err(&vs(udp, "    UDP_CHECK {\n      payload 0g\n    }"))
            .starts_with("k.conf:7: payload: `0g` is not hex"),
        "{}",
        err(&vs(udp, "    UDP_CHECK {\n      payload 0g\n    }"))
    );
    assert!(
        err(&vs(
            udp,
            "    UDP_CHECK {\n      max_reply_length 10\n    }"
        ))
        .starts_with("k.conf:7: max_reply_length: not supported"),
    );
}

#[test]
fn file_check_reads_its_track_file() {
    let track = "track_file maint {\n  file /run/maint\n  weight 0\n}\n";
    let c = ok(&format!(
        "{track}{}",
        vs(BASE, "    FILE_CHECK {\n      track_file maint\n    }")
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(k.check_type, CheckType::File);
    assert_eq!(k.request.as_deref(), Some("/run/maint"));
    assert_eq!((k.track_weight, k.track_reverse), (0, false));
    // Read every second, down at the first value that says so.
    assert_eq!((k.interval, k.failure_count), (Duration::from_secs(1), 1));
    let back = toml::parse_str(Path::new("k.toml"), &to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].check, *k);
    // The checker's weight wins over the track_file's (default 1); reverse.
    let c = ok(&format!(
        "track_file t {{\n  file /run/w\n}}\n{}",
        vs(
            BASE,
            "    FILE_CHECK {\n      track_file t\n      weight -3 reverse\n    }"
        )
    ));
    let k = &c.virtuals[0].check;
    assert_eq!((k.track_weight, k.track_reverse), (-3, true));
    let c = ok(&format!(
        "track_file t {{\n  file /run/w\n  init_file\n}}\n{}",
        vs(BASE, "    FILE_CHECK {\n      track_file t\n    }")
    ));
    assert_eq!(c.virtuals[0].check.track_weight, 1);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("init_file: lvs does not create")),
        "{:?}",
        c.warnings
    );
    // Unknown track_file, none named, init_file with a value.
    assert!(
        err(&vs(BASE, "    FILE_CHECK {\n      track_file nope\n    }"))
            .contains("track_file: track_file nope not found"),
    );
    assert!(err(&vs(BASE, "    FILE_CHECK {\n    }")).contains("FILE_CHECK: has no track_file"));
    assert!(
        err(&format!(
            "track_file t {{\n  file /run/w\n  init_file 5 overwrite\n}}\n{}",
            vs(BASE, "    FILE_CHECK {\n      track_file t\n    }")
        ))
        .contains("init_file: a value or overwrite is not supported")
    );
}

#[test]
fn file_check_dynamic_changes_nothing_as_in_keepalived() {
    // keepalived 2.2 lists `dynamic` in its man page but does not read it ("Unknown
    // keyword"): the value times the weight is added to the real's weight with or without it.
    let conf = |dynamic: &str| {
        format!(
            "track_file t {{\n  file /run/w\n  weight 2\n}}\n{}",
            vs(
                BASE,
                &format!("    weight 5\n    FILE_CHECK {{\n      track_file t\n{dynamic}    }}")
            )
        )
    };
    let with = ok(&conf("      dynamic\n"));
    let without = ok(&conf(""));
    assert_eq!(
        normalized(with.clone()).virtuals,
        normalized(without.clone()).virtuals
    );
    let k = &with.virtuals[0].check;
    assert_eq!((k.track_weight, k.track_reverse), (2, false));
    assert!(with.virtuals[0].reals.iter().all(|r| r.weight == 5));
    assert!(
        with.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:13: dynamic: no effect, as in keepalived 2.2")),
        "{:?}",
        with.warnings
    );
    assert!(without.warnings.iter().all(|w| !w.contains("dynamic")));
    // A keyword keepalived's FILE_CHECK does not know is skipped too (keepalived 2.2's
    // FILE_CHECK reads track_file and weight only).
    let c = ok(&conf("      retry 3\n"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:13: retry: unknown keyword in FILE_CHECK")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_server_of_the_other_family_is_refused_with_the_reason() {
    let v6 = |vs_lines: &str, real: &str| {
        format!(
            "virtual_server 2001:db8::1 80 {{\n{vs_lines}\n  real_server {real} 80 {{\n  }}\n}}\n"
        )
    };
    // NAT (keepalived's default) and DR: IPVS mixes families only through a tunnel.
    assert_eq!(
        err(&v6(
            "  lb_algo rr\n  lb_kind NAT\n  protocol TCP",
            "10.0.0.2"
        )),
        "k.conf:5: real_server: 10.0.0.2 is IPv4 and the virtual server 2001:db8::1 is IPv6: \
         IPVS forwards to a server of the other address family only through a tunnel (TUN), and \
         NAT cannot translate or route between families (keepalived skips this server, with an \
         error); give it a server of the virtual server's family"
    );
    assert!(
        err(&vs(BASE, "").replace("10.0.0.3 80", "2001:db8::3 80"))
            .starts_with("k.conf:8: real_server: 2001:db8::3 is IPv6 and the virtual server 10.0.0.1 is IPv4: IPVS forwards to a server of the other address family only through a tunnel (TUN), and DR cannot")
    );
    // TUN: IPVS can, lvs's tunnel cannot.
    assert!(
        err(&v6(
            "  lb_algo rr\n  lb_kind TUN\n  protocol TCP",
            "10.0.0.2"
        ))
        .contains("IPVS tunnels to a server of the other family, but lvs's tunnel does not")
    );
    // The sorry server too, at its line.
    assert!(
        err(&vs(&format!("{BASE}\n  sorry_server 2001:db8::9 80"), "")).starts_with(
            "k.conf:5: sorry_server: 2001:db8::9 is IPv6 and the virtual server 10.0.0.1 is IPv4"
        )
    );
    // One family: accepted.
    ok(&v6(
        "  lb_algo rr\n  lb_kind DR\n  protocol TCP",
        "2001:db8::2",
    ));
}

#[test]
fn a_firewall_mark_service_takes_its_family_as_keepalived_does() {
    let fw = |lines: &str, reals: &[&str]| {
        let mut c = format!("virtual_server fwmark 5 {{\n  lb_algo rr\n  lb_kind DR\n{lines}\n");
        for r in reals {
            c.push_str(&format!("  real_server {r} 80 {{\n  }}\n"));
        }
        c.push_str("}\n");
        c
    };
    // No ip_family: the first real's (keepalived sets it from the first real).
    let c = ok(&fw("", &["2001:db8::2", "2001:db8::3"]));
    assert!(c.virtuals[0].reals.iter().all(|r| r.addr.is_ipv6()));
    let c = ok(&fw("", &["10.0.0.2"]));
    assert!(c.virtuals[0].reals[0].addr.is_ipv4());
    // A real of the other family than the first, or than ip_family: refused with the reason.
    assert_eq!(
        err(&fw("", &["2001:db8::2", "10.0.0.3"])),
        "k.conf:7: real_server: 10.0.0.3 is IPv4 and the firewall-mark service 5 is IPv6: IPVS \
         forwards to a server of the other address family only through a tunnel (TUN), and DR \
         cannot translate or route between families (keepalived skips this server, with an \
         error); give it a server of the virtual server's family"
    );
    assert!(err(&fw("  ip_family inet", &["2001:db8::2"])).starts_with(
        "k.conf:5: real_server: 2001:db8::2 is IPv6 and the firewall-mark service 5 is IPv4"
    ));
}
