//! keepalived's checker `connect_ip`, `bindto`, `bind_port`, `bind_if` and `fwmark`: read,
//! described by `lvs check`, converted to TOML and read back.

use std::{net::IpAddr, path::Path};

use crate::config::{Config, model::*, render_check, to_toml, toml};

use super::tests::{err, ok};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A DR service on 10.0.0.1:80 with two reals, each checked by `a` and `b` (its checkers,
/// `{}` for the real's address). `real_server` lines are 5 and 8 + the lines of the first.
fn two_reals(checkers: &str) -> String {
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n{}\n  }}\n",
            checkers.replace("{}", &addr.replace("10.0.0.", "192.168.9."))
        )
    };
    format!(
        "virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
        real("10.0.0.2"),
        real("10.0.0.3")
    )
}

/// The converted TOML reads back to the same model.
fn round_trip(c: &Config) -> Config {
    let text = to_toml(c);
    let back =
        toml::parse_str(Path::new("k.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        super::tests::normalized(back.clone()).virtuals,
        super::tests::normalized(c.clone()).virtuals,
        "{text}"
    );
    back
}

#[test]
fn connect_ip_of_each_real_and_of_a_further_checker() {
    let c = ok(&two_reals(
        "    TCP_CHECK {\n      connect_ip {}\n      connect_port 8080\n    }\n    \
         HTTP_GET {\n      connect_ip 10.9.9.9\n      url {\n        path /\n      }\n    }",
    ));
    let v = &c.virtuals[0];
    // The reals stay the reals; each is checked at its own connect_ip, on connect_port.
    let reals: Vec<_> = v
        .reals
        .iter()
        .map(|r| (r.addr.ip(), r.check_address))
        .collect();
    assert_eq!(
        reals,
        [
            (ip("10.0.0.2"), Some(ip("192.168.9.2"))),
            (ip("10.0.0.3"), Some(ip("192.168.9.3")))
        ]
    );
    assert_eq!(v.check.port, Some(8080));
    assert_eq!(v.check.address, None);
    assert_eq!(v.also_checks[0].address, Some(ip("10.9.9.9")));
    let text = render_check(&c);
    assert!(
        text.contains("real 10.0.0.2:80 gate weight 1 (50%) checked at 192.168.9.2"),
        "{text}"
    );
    assert!(
        text.contains("checks 10.9.9.9 instead of each real's address"),
        "{text}"
    );
    round_trip(&c);
    // The real's own address is no other address.
    let c = ok(
        &two_reals("    TCP_CHECK {\n      connect_ip 10.0.0.2\n    }").replace(
            "real_server 10.0.0.3 80 {\n    TCP_CHECK {\n      connect_ip 10.0.0.2",
            "real_server 10.0.0.3 80 {\n    TCP_CHECK {\n      connect_ip 10.0.0.3",
        ),
    );
    assert!(
        c.virtuals[0]
            .reals
            .iter()
            .all(|r| r.check_address.is_none())
    );
}

#[test]
fn a_further_checker_s_connect_ip_must_be_the_same_for_every_real() {
    let e = err(&two_reals(
        "    TCP_CHECK {\n    }\n    TCP_CHECK {\n      connect_ip {}\n    }",
    ));
    assert!(e.contains("checked differently from the real at"), "{e}");
}

#[test]
fn bindto_bind_port_bind_if_and_fwmark() {
    let c = ok(&two_reals(
        "    TCP_CHECK {\n      bindto 10.0.0.250\n      bind_port 4000\n      bind_if eth1\n      \
         fwmark 7\n    }",
    ));
    let s = &c.virtuals[0].check.source;
    assert_eq!(
        *s,
        CheckSource {
            address: Some(ip("10.0.0.250")),
            port: Some(4000),
            interface: Some("eth1".into()),
            mark: Some(7),
        }
    );
    let text = render_check(&c);
    assert!(
        text.contains("    from 10.0.0.250:4000 on interface eth1 with mark 7\n"),
        "{text}"
    );
    let back = round_trip(&c);
    assert_eq!(back.virtuals[0].check.source, *s);
    // In every checker that connects: HTTP_GET, SSL_GET, SMTP, DNS, UDP and PING too.
    for checker in [
        "HTTP_GET {\n      bindto 10.0.0.250\n    }",
        "SSL_GET {\n      bindto 10.0.0.250\n    }",
        "SMTP_CHECK {\n      bindto 10.0.0.250\n    }",
        "DNS_CHECK {\n      bindto 10.0.0.250\n    }",
        "UDP_CHECK {\n      bindto 10.0.0.250\n    }",
        "PING_CHECK {\n      bindto 10.0.0.250\n    }",
    ] {
        let c = ok(&two_reals(&format!("    {checker}")));
        assert_eq!(
            c.virtuals[0].check.source.address,
            Some(ip("10.0.0.250")),
            "{checker}"
        );
        round_trip(&c);
    }
}

#[test]
fn each_real_s_first_checker_may_leave_from_its_own_source() {
    // A director on the reals' two networks: each real checked from its own address there.
    let c = ok(&two_reals(
        "    TCP_CHECK {\n      bindto {}\n      fwmark 7\n    }",
    ));
    let v = &c.virtuals[0];
    assert!(v.check.source.is_default(), "{:?}", v.check.source);
    let own: Vec<_> = v.reals.iter().map(|r| r.check_source.clone()).collect();
    let from = |a: &str| CheckSource {
        address: Some(ip(a)),
        mark: Some(7),
        ..Default::default()
    };
    assert_eq!(own, [from("192.168.9.2"), from("192.168.9.3")]);
    let text = render_check(&c);
    assert!(
        text.contains("real 10.0.0.3:80 gate weight 1 (50%) checked from 192.168.9.3 with mark 7"),
        "{text}"
    );
    round_trip(&c);
    // A further checker's source is the service's: the same for every real.
    let e = err(&two_reals(
        "    TCP_CHECK {\n    }\n    TCP_CHECK {\n      bindto {}\n    }",
    ));
    assert!(
        e.contains("real_server: its checkers' bindto, bind_port, bind_if or fwmark differ"),
        "{e}"
    );
    // TOML: a real's own keys over the service's, field by field.
    let c = toml::parse_str(
        Path::new("t.toml"),
        "[[virtual]]\naddress = \"10.0.0.1:80\"\nchecktype = \"connect\"\ncheck_mark = 3\n\
         check_source = \"10.0.0.250\"\n[[virtual.real]]\naddress = \"10.0.0.2:80\"\n\
         check_source = \"10.0.0.251\"\n[[virtual.real]]\naddress = \"10.0.0.3:80\"\n",
    )
    .unwrap();
    let v = &c.virtuals[0];
    let keys: Vec<_> = v
        .reals
        .iter()
        .map(|r| crate::health::CheckKey::from_config(v, r).spec.source)
        .collect();
    let want = |a: &str| CheckSource {
        address: Some(ip(a)),
        mark: Some(3),
        ..Default::default()
    };
    assert_eq!(keys, [want("10.0.0.251"), want("10.0.0.250")]);
}

#[test]
fn outside_a_checker_keepalived_does_not_read_them() {
    let c = ok(&two_reals("    TCP_CHECK {\n    }").replace(
        "real_server 10.0.0.2 80 {\n",
        "real_server 10.0.0.2 80 {\n    bindto 10.0.0.250\n",
    ));
    assert!(c.virtuals[0].check.source.is_default());
    assert!(c.virtuals[0].reals[0].check_source.is_default());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("bindto: unknown keyword in real_server")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn refusals_name_the_line() {
    // A source of the other family than the address checked.
    let e = err(&two_reals("    TCP_CHECK {\n      bindto fd00::1\n    }"));
    assert!(
        e.starts_with("k.conf:7: bindto: fd00::1 is not of the family"),
        "{e}"
    );
    let e = err(&two_reals(
        "    TCP_CHECK {\n      connect_ip fd00::1\n      bindto 10.0.0.250\n    }",
    ));
    assert!(
        e.starts_with(
            "k.conf:8: bindto: 10.0.0.250 is not of the family of the address checked, fd00::1"
        ),
        "{e}"
    );
    // keepalived checks an IPv4 real at an IPv6 connect_ip if told so: so does lvs.
    let c = ok(&two_reals(
        "    TCP_CHECK {\n      connect_ip fd00::1\n    }",
    ));
    assert_eq!(c.virtuals[0].reals[0].check_address, Some(ip("fd00::1")));
    // A link-local address needs its interface, as keepalived requires.
    let v6 = "virtual_server fd00::1 80 {\n  lb_kind DR\n  protocol TCP\n  real_server fd00::2 80 {\n    \
              TCP_CHECK {\n      connect_ip fe80::2\n    }\n  }\n}\n";
    let e = err(v6);
    assert!(
        e.starts_with("k.conf:6: connect_ip: the link-local address fe80::2 needs a bind_if"),
        "{e}"
    );
    let c = ok(&v6.replace(
        "connect_ip fe80::2",
        "connect_ip fe80::2\n      bind_if eth1",
    ));
    assert_eq!(c.virtuals[0].reals[0].check_address, Some(ip("fe80::2")));
    assert!(
        err(&two_reals("    TCP_CHECK {\n      bindto nowhere\n    }"))
            .starts_with("k.conf:7: bindto: `nowhere` is not an IP address")
    );
    assert!(
        err(&two_reals(
            "    TCP_CHECK {\n      fwmark 4294967296\n    }"
        ))
        .starts_with("k.conf:7: fwmark:")
    );
}

#[test]
fn toml_keys_and_their_refusals() {
    let base = "[[virtual]]\naddress = \"10.0.0.1:80\"\n";
    let real = "[[virtual.real]]\naddress = \"10.0.0.2:80\"\ncheck_address = \"10.1.0.2\"\n";
    let c = toml::parse_str(
        Path::new("t.toml"),
        &format!(
            "{base}checktype = \"connect\"\ncheck_source = \"10.0.0.250\"\ncheck_source_port = 4000\n\
             check_interface = \"eth1\"\ncheck_mark = 9\n{real}"
        ),
    )
    .unwrap();
    let v = &c.virtuals[0];
    assert_eq!(v.reals[0].check_address, Some(ip("10.1.0.2")));
    assert_eq!(v.check.source.mark, Some(9));
    let bad = |extra: &str| {
        toml::parse_str(Path::new("t.toml"), &format!("{base}{extra}\n{real}"))
            .unwrap_err()
            .to_string()
    };
    let e = bad("checktype = \"connect\"\ncheck_source = \"fd00::9\"");
    assert!(
        e.starts_with("t.toml:6: check_source: fd00::9 is not of the family of 10.1.0.2"),
        "{e}"
    );
    let e = bad("checktype = \"connect\"\ncheck_source_port = 70000");
    assert!(
        e.starts_with("t.toml:4: check_source_port: must be in range"),
        "{e}"
    );
    let e = bad("checktype = \"connect\"\ncheck_address = \"fe80::1\"");
    assert!(
        e.starts_with("t.toml:4: check_address: an IPv6 link-local address needs"),
        "{e}"
    );
    // A check that opens no socket of its own takes no source.
    let e =
        bad("checktype = \"external\"\ncheckcommand = \"/bin/true\"\ncheck_mark = 3").to_string();
    assert!(
        e.contains("check_mark: not supported for this check"),
        "{e}"
    );
    let e = bad("checktype = \"negotiate\"\nservice = \"ldap\"\ncheck_source = \"10.0.0.250\"");
    assert!(
        e.contains("check_source: not supported for this check"),
        "{e}"
    );
}
