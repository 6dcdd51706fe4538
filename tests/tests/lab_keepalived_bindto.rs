//! keepalived's checker `bindto`, `connect_ip` and `fwmark` through `lvs run` in the namespace
//! lab, each shown by what the network sees. The IPv4 service's checkers have `bindto` (a
//! second address of the director) and `fwmark 7`; the IPv6 service's have neither.
//! - real1's namespace drops port 80 from the director's own addresses (nft): its check with
//!   `bindto` passes, its check without (on the IPv6 VIP) fails;
//! - real2's server is stopped: its check with `connect_ip` real3 passes (the real stays real2),
//!   its check without (on the IPv6 VIP) fails;
//! - an nft counter in the director's namespace counts packets with mark 7 to real1's port
//!   80.

use std::{net::SocketAddr, time::Duration};

use lvs::lab::{Lab, LabOptions, lab_v4};
use lvs_tests::{
    agent::{RunningLvs, sh_in},
    wait,
};

/// The second address of the director the checks of real1 leave from.
fn source(_lab: &Lab) -> std::net::Ipv4Addr {
    lab_v4(200)
}

fn keepalived_conf(lab: &Lab) -> String {
    let [r1, r2, r3] = [0, 1, 2].map(|i| lab.reals()[i].clone());
    let checker = |extra: &str| {
        format!(
            "        TCP_CHECK {{\n            connect_timeout 1\n            retry 0\n{extra}        }}\n"
        )
    };
    let real = |addr: String, extra: &str| {
        format!("    real_server {addr} 80 {{\n{}    }}\n", checker(extra))
    };
    let mut c = format!(
        "virtual_server {} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    \
         protocol TCP\n",
        lab.vip_v4()
    );
    // lvs sets a check's source for a whole virtual service: the same for every real.
    let from = format!("            bindto {}\n            fwmark 7\n", source(lab));
    c += &real(r1.addr_v4.to_string(), &from);
    c += &real(
        r2.addr_v4.to_string(),
        &format!("{from}            connect_ip {}\n", r3.addr_v4),
    );
    c += &real(r3.addr_v4.to_string(), &from);
    c += &format!(
        "}}\n\nvirtual_server {} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    \
         protocol TCP\n",
        lab.vip_v6()
    );
    for r in [&r1, &r2, &r3] {
        c += &real(r.addr_v6.to_string(), "");
    }
    c + "}\n"
}

/// The packets the director's nft counter for real3 has counted.
fn marked_packets(lab: &Lab) -> u64 {
    let out = wait::output(
        lab.command(lab.director_ns(), "nft")
            .args(["list", "chain", "inet", "lvsbind", "out"]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bindto_connect_ip_and_fwmark_are_what_the_network_sees() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let [r1, r2, r3] = [0, 1, 2].map(|i| lab.reals()[i].clone());
    // The director's second address; real1 takes port 80 only from it (and from clients).
    sh_in(
        lab.director_ns(),
        &format!(
            "ip addr add {}/32 dev {}",
            source(&lab),
            lab.director_ifname()
        ),
    );
    sh_in(
        &r1.ns,
        &format!(
            "nft add table inet lvsbind\n\
             nft add chain inet lvsbind in '{{ type filter hook input priority 0; }}'\n\
             nft add rule inet lvsbind in tcp dport 80 ip saddr {} drop\n\
             nft add rule inet lvsbind in tcp dport 80 ip6 saddr {} drop",
            lab.director_v4(),
            lab.director_v6()
        ),
    );
    sh_in(
        lab.director_ns(),
        &format!(
            "nft add table inet lvsbind\n\
             nft add chain inet lvsbind out '{{ type filter hook output priority 0; }}'\n\
             nft add rule inet lvsbind out meta mark 7 ip daddr {} tcp dport 80 counter",
            r1.addr_v4
        ),
    );
    lab.stop_server(1).unwrap();

    let lvs = RunningLvs::start_file(&lab, "keepalived.conf", &keepalived_conf(&lab)).unwrap();
    let v4 = |r: &lvs::lab::RealHost| SocketAddr::new(r.addr_v4.into(), 80);
    let v6 = |r: &lvs::lab::RealHost| SocketAddr::new(r.addr_v6.into(), 80);
    // Without bindto or connect_ip the checks fail: the rule bites, real2 has no server.
    lvs.wait_real_weight(v6(&r1), "-", Duration::from_secs(15))
        .unwrap();
    lvs.wait_real_weight(v6(&r2), "-", Duration::from_secs(15))
        .unwrap();
    lvs.wait_real_weight(v6(&r3), "1", Duration::from_secs(15))
        .unwrap();
    // Three more check rounds (delay_loop 1, retry 0: one failure is enough).
    std::thread::sleep(Duration::from_secs(3));
    for r in [&r1, &r2, &r3] {
        lvs.wait_real_weight(v4(r), "1", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
    }
    let status = lvs.status(&[]).unwrap();
    assert!(
        marked_packets(&lab) > 0,
        "no packet with mark 7 to {}:80 left the director\n{status}",
        r1.addr_v4
    );
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}
