//! keepalived.conf's services that are not one address and port: firewall-mark services and
//! the family they take, virtual_server_group, and a server of the other family refused.

use std::{path::Path, time::Duration};

use super::tests::{BASE, REALS, err, ok, sa, vs};
use crate::config::{to_toml, toml};

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
