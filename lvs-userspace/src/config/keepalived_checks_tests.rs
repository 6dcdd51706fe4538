//! keepalived.conf's checkers: HTTP_GET and SSL_GET, MISC_CHECK, PING_CHECK and no checker,
//! several checkers on one real, UDP_CHECK's payload and reply, FILE_CHECK and its track file.

use std::{path::Path, time::Duration};

use super::tests::{BASE, err, normalized, ok, vs};
use crate::config::{Config, model::*, render_check, to_toml, toml};

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
    // Run as keepalived runs misc_path: split with its quotes, nothing appended.
    assert_eq!(k.command_style, CommandStyle::Keepalived);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!k.dynamic_weight);
    // The rest of the line, unquoted (keepalived reads it so), with a quoted word in it.
    let c = ok(&vs(
        BASE,
        "    MISC_CHECK {\n      misc_path /bin/sh -c \"nc -z h 80\"\n    }",
    ));
    let command = c.virtuals[0].check.command.clone().unwrap();
    assert_eq!(
        crate::health::external::keepalived_words(&command).unwrap(),
        ["/bin/sh", "-c", "nc -z h 80"]
    );
    let toml = crate::config::render::to_toml(&c);
    assert!(
        toml.contains("checkcommand_style = \"keepalived\""),
        "{toml}"
    );
    let back = toml::parse_str(std::path::Path::new("k.toml"), &toml).unwrap();
    assert_eq!(back.virtuals[0].check, c.virtuals[0].check);
    // A quote misc_path does not close: refused at its line.
    assert!(
        err(&vs(
            BASE,
            "    MISC_CHECK {\n      misc_path \"/bin/x 'a\"\n    }"
        ))
        .contains("quote is not closed"),
    );
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

/// A MISC_CHECK script given each real's own address (keepalived runs one checker per real):
/// each real keeps its command, its check runs it, and the TOML says so and reads back the same.
#[test]
fn each_real_may_run_its_own_misc_check_script() {
    let text = format!(
        "virtual_server 10.0.0.1 3306 {{\n{BASE}\n  real_server 10.0.0.2 3306 {{\n    MISC_CHECK {{\n      \
         misc_path \"/usr/local/bin/slave.sh 10.0.0.2\"\n    }}\n  }}\n  \
         real_server 10.0.0.3 3306 {{\n    MISC_CHECK {{\n      misc_path \"/usr/local/bin/slave.sh 10.0.0.3\"\n    }}\n  }}\n}}\n"
    );
    let c = ok(&text);
    let v = &c.virtuals[0];
    let commands: Vec<Option<String>> = v
        .reals
        .iter()
        .map(|r| {
            crate::health::CheckKey::all_for(v, r)[0]
                .spec
                .command
                .clone()
        })
        .collect();
    assert_eq!(
        commands,
        [
            Some("/usr/local/bin/slave.sh 10.0.0.2".to_string()),
            Some("/usr/local/bin/slave.sh 10.0.0.3".to_string())
        ]
    );
    let toml = to_toml(&c);
    assert!(
        toml.contains("checkcommand = \"/usr/local/bin/slave.sh 10.0.0.3\""),
        "{toml}"
    );
    let back = toml::parse_str(std::path::Path::new("k.toml"), &toml).unwrap();
    let own = |v: &crate::config::VirtualService| -> Vec<Option<String>> {
        v.reals.iter().map(|r| r.check_command.clone()).collect()
    };
    assert_eq!(own(&back.virtuals[0]), own(v));
    assert_eq!(back.virtuals[0].check, v.check);
    // Another checker on one of them is still refused.
    assert!(
        err(&text.replacen(
            "MISC_CHECK {\n      misc_path \"/usr/local/bin/slave.sh 10.0.0.3\"\n    }",
            "TCP_CHECK {\n    }",
            1
        ))
        .contains("checked differently")
    );
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
