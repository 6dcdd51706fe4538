//! keepalived.conf: each keyword, keepalived's defaults, the refusals, and the corpus.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::parse_with_id;
use crate::config::{Config, ConfigError, Location, model::*, to_toml, toml};

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_id(Path::new("k.conf"), text, "lb1")
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn err(text: &str) -> String {
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
        err(&vs("  lb_kind DR\n  lb_algo wlc", "")),
        "k.conf:3: lb_algo: scheduler `wlc` is not supported: lvs implements rr, wrr and sh"
    );
    assert!(
        err(&vs("  lvs_sched lc\n  lb_kind DR", ""))
            .starts_with("k.conf:2: lvs_sched: scheduler `lc`")
    );
    assert_eq!(
        err(&vs("  lb_kind DR\n  protocol TCP", "")),
        "k.conf:1: lb_algo: no lb_algo: keepalived's default, wlc, is not supported; lvs \
         implements rr, wrr and sh (write e.g. `lb_algo rr`)"
    );
    for (algo, want) in [("wrr", Scheduler::Wrr), ("sh", Scheduler::Sh)] {
        let c = ok(&vs(
            &format!("  lvs_sched {algo}\n  lvs_method DR\n  protocol TCP"),
            "",
        ));
        assert_eq!(c.virtuals[0].scheduler, want);
    }
}

#[test]
fn nat_is_not_yet_supported() {
    for m in ["NAT", "FNAT"] {
        assert_eq!(
            err(&vs(&format!("  lb_algo rr\n  lb_kind {m}"), "")),
            format!(
                "k.conf:3: lb_kind: {m} forwarding is not yet supported: lvs forwards by direct \
                 routing (DR) and IP-in-IP tunnel (TUN)"
            )
        );
    }
    assert!(err(&vs("  lb_algo rr\n  protocol TCP", "")).starts_with(
        "k.conf:1: lb_kind: no lb_kind: keepalived's default, NAT, is not yet supported"
    ));
    assert!(
        err(&vs(BASE, "    lvs_method NAT")).starts_with("k.conf:6: lvs_method: NAT forwarding")
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
    // A real's own lb_kind wins; the sorry server's method is its own when given.
    let c = ok(&vs(
        "  lb_algo rr\n  lb_kind DR\n  sorry_server 10.0.9.9 80\n  sorry_server_lvs_method TUN",
        "    lb_kind TUN",
    ));
    let v = &c.virtuals[0];
    assert!(v.reals.iter().all(|r| r.forwarding == Forwarding::Tunnel));
    assert_eq!(v.fallback.as_ref().unwrap().forwarding, Forwarding::Tunnel);
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
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:8: hysteresis: no effect"))
    );
    assert!(
        err(&vs(&format!("{BASE}\n  quorum 2"), ""))
            .starts_with("k.conf:5: quorum: a quorum above 1 is not supported")
    );
    assert!(
        err(&vs(&format!("{BASE}\n  quorum_up /bin/up"), ""))
            .starts_with("k.conf:5: quorum_up: quorum scripts are not supported yet")
    );
    assert!(
        err(&vs(&format!("{BASE}\n  sorry_server_lvs_method NAT"), ""))
            .starts_with("k.conf:5: sorry_server_lvs_method: NAT forwarding")
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
            "delay_before_retry",
            "smtp_alert",
            "smtp_alert"
        ]
    );
    assert!(
        err(&vs(&format!("{BASE}\n  weigth 2"), ""))
            .starts_with("k.conf:5: weigth: unknown keyword in virtual_server")
    );
    assert!(
        err(&vs(BASE, "    notify_up /bin/up"))
            .starts_with("k.conf:6: notify_up: per-real notify scripts are not supported yet")
    );
    assert!(
        err(&vs(BASE, "    uthreshold 10"))
            .starts_with("k.conf:6: uthreshold: connection thresholds")
    );
    assert!(err(&vs(&format!("{BASE}\n  ops"), "")).starts_with("k.conf:5: ops: one-packet"));
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
    // nb_get_retry is retry's old name; the checker's delay_loop wins.
    let c = ok(&vs(
        BASE,
        "    TCP_CHECK {\n      nb_get_retry 0\n      delay_loop 2\n    }",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!((k.interval, k.failure_count), (Duration::from_secs(2), 1));
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
    let c = ok(&vs(
        BASE,
        "    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n    }",
    ));
    assert!(c.warnings[0].contains("any 2xx status"), "{:?}", c.warnings);
    assert!(
        err(&vs(
            BASE,
            "    HTTP_GET {\n      url {\n        path /\n        status_code 301\n      }\n    }"
        ))
        .starts_with("k.conf:9: status_code: status codes outside 200-299 are not supported")
    );
    assert!(err(&vs(BASE, "    HTTP_GET {\n      url {\n        path /\n        digest 9b3a0c85a887a256d6939da88aabd8cd\n      }\n    }"))
        .starts_with("k.conf:9: digest: not supported yet"));
    assert!(err(&vs(BASE, "    HTTP_GET {\n      url {\n        path /\n      }\n      url {\n        path /b\n      }\n    }"))
        .starts_with("k.conf:10: url: several url blocks are not supported"));
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
    assert!(
        err(&vs(
            BASE,
            "    MISC_CHECK {\n      misc_path /bin/x\n      misc_dynamic\n    }"
        ))
        .starts_with("k.conf:8: misc_dynamic: not supported yet")
    );
    let c = ok(&vs(BASE, "    PING_CHECK {\n    }"));
    assert_eq!(c.virtuals[0].check.check_type, CheckType::Ping);
    // No checker: keepalived never takes the real out.
    let c = ok(&vs(BASE, ""));
    assert_eq!(c.virtuals[0].check.check_type, CheckType::On);
    assert!(
        err(&vs(BASE, "    SMTP_CHECK {\n    }"))
            .starts_with("k.conf:6: SMTP_CHECK: not supported")
    );
    assert!(
        err(&vs(BASE, "    TCP_CHECK {\n      bindto 10.0.0.9\n    }"))
            .starts_with("k.conf:7: bindto: not supported")
    );
    assert!(
        err(&vs(
            BASE,
            "    TCP_CHECK {\n      connect_ip 10.0.0.9\n    }"
        ))
        .starts_with("k.conf:7: connect_ip: checking another address")
    );
}

#[test]
fn several_checkers_on_one_real() {
    let c = ok(&vs(
        BASE,
        "    TCP_CHECK {\n    }\n    HTTP_GET {\n      url {\n        path /x\n      }\n    }",
    ));
    assert_eq!(c.virtuals[0].check.service, CheckService::Http);
    assert!(
        c.warnings[0].starts_with("k.conf:6: TCP_CHECK: covered by the HTTP check"),
        "{:?}",
        c.warnings
    );
    assert!(
        err(&vs(
            BASE,
            "    TCP_CHECK {\n    }\n    TCP_CHECK {\n      connect_port 81\n    }"
        ))
        .starts_with("k.conf:8: TCP_CHECK: several checkers on one real are not supported")
    );
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

#[test]
fn fwmark_group_and_other_blocks() {
    assert!(
        err("virtual_server fwmark 3 {\n}\n")
            .starts_with("k.conf:1: virtual_server: firewall-mark services")
    );
    assert!(
        err("virtual_server group G {\n}\n")
            .starts_with("k.conf:1: virtual_server: virtual_server group is not supported yet")
    );
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
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:3: lvs_timeouts: ignored"))
    );
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
        vs("  lb_algo lc\n  lb_kind DR", ""),
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
            "{}:2: lb_algo: scheduler `lc` is not supported: lvs implements rr, wrr and sh",
            dir.join("conf.d/bad.conf").display()
        )
    );
}

/// The model without places (a converted file has other lines) and warnings.
fn normalized(mut c: Config) -> Config {
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
    let nat = "lb_kind: NAT forwarding is not yet supported";
    let group = "virtual_server: virtual_server group is not supported yet";
    let expected: &[(&str, Outcome)] = &[
        ("001.conf", Err((16, nat))),
        ("002.conf", Err((33, nat))),
        ("003.conf", Err((17, nat))),
        (
            "004.conf",
            Err((37, "lb_kind: unknown forwarding method `dr`")),
        ),
        ("005.conf", Err((6, nat))),
        ("006.conf", Err((38, nat))),
        ("007.conf", Err((48, nat))),
        // DPVS's fork: a group of VIPs (and FNAT further on).
        ("008.conf", Err((41, group))),
        ("009.conf", Err((45, group))),
        ("010.conf", Ok(1)),
        ("011.conf", Ok(1)),
        ("012.conf", Ok(1)),
        ("013.conf", Ok(2)),
        (
            "014.conf",
            Err((15, "lb_algo: scheduler `lc` is not supported")),
        ),
        ("015.conf", Ok(1)),
        ("016.conf", Err((9, group))),
        ("017.conf", Ok(1)),
        (
            "018.conf",
            Err((
                21,
                "real: real server 192.168.10.10:23 is the virtual address itself",
            )),
        ),
        ("019.conf", Err((21, nat))),
        ("020.conf", Ok(1)),
        ("021.conf", Ok(1)),
        ("022.conf", Ok(1)),
        ("023.conf", Ok(1)),
        (
            "024.conf",
            Err((29, "lb_algo: scheduler `loadbalance` is not supported")),
        ),
        ("025.conf", Err((5, group))),
        ("026.conf", Ok(1)),
        (
            "027.conf",
            Err((3, "lb_algo: scheduler `wlc` is not supported")),
        ),
        ("028.conf", Ok(1)),
        ("029.conf", Err((57, "digest: not supported yet"))),
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
