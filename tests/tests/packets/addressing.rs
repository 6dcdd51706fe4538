//! Which frames are the balancer's: IPv4 and IPv6, TCP and UDP to a VIP forwarded, a VLAN tag
//! and IPv4 options followed, services of every port (port 0) and the flag that gates their
//! lookup, everything not for a virtual service passed untouched, frames to another
//! destination MAC passed and counted nowhere, an extra (VRRP) MAC balanced like the own one.

use std::net::{IpAddr, Ipv4Addr};

use lvs::{config::Protocol, dataplane::Dataplane};
use lvs_common::{service::proto, stats::DropReason};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, L4, SYN},
    xdp::{ct_holds, flow_key, run, table_flags},
};

use super::common::*;

#[test]
fn ipv4_tcp_and_udp_to_a_vip_are_forwarded() {
    let mut dp = loaded(&[
        service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]),
        service(VIP4, 53, Protocol::Udp, vec![real(2, 1)]),
    ]);
    let f = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN).build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
    let f = Frame::udp(CLIENT4, 40000, VIP4, 53).build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 2);
}

#[test]
fn ipv6_tcp_and_udp_to_a_vip_are_forwarded() {
    let mut dp = loaded(&[
        service(VIP6, 443, Protocol::Tcp, vec![real(3, 1)]),
        service(VIP6, 53, Protocol::Udp, vec![real(1, 1)]),
    ]);
    let f = Frame::tcp(CLIENT6, 40000, VIP6, 443, SYN).build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 3);
    let f = Frame::udp(CLIENT6, 40001, VIP6, 53).build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
    // Through hop-by-hop and destination-options headers.
    let mut fr = Frame::tcp(CLIENT6, 40002, VIP6, 443, SYN);
    fr.ipv6_ext = vec![(0, 8), (60, 16)];
    let f = fr.build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 3);
}

#[test]
fn vlan_tag_and_ipv4_options_are_followed() {
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![real(2, 1)])]);
    let mut fr = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN);
    fr.vlan = Some(42);
    fr.ipv4_options = vec![1, 1, 1, 1, 1, 1, 1, 0];
    let f = fr.build();
    let out = run(&mut dp, &f);
    assert_eq!(forwarded_to(&f, &out), 2);
    assert_eq!(&out.frame[12..16], &[0x81, 0, 0, 42], "VLAN tag kept");
}

#[test]
fn port_zero_service_takes_every_port() {
    let mut dp = loaded(&[service(VIP4, 0, Protocol::Tcp, vec![real(1, 1)])]);
    for port in [1, 80, 8080, 65535] {
        let f = Frame::tcp(CLIENT4, 40000, VIP4, port, SYN).build();
        assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
    }
    let f = Frame::udp(CLIENT4, 40000, VIP4, 80).build();
    assert_passed_untouched(&f, &run(&mut dp, &f));
}

/// The agent's flag for services of every port follows the tables, and the balancer looks a
/// packet up with port 0 only while it is up: with it cleared by hand, a service of every
/// port is not found (the lookup the director's own traffic and NAT replies no longer pay).
#[test]
fn port_zero_is_looked_up_only_while_a_service_of_every_port_is_in_the_tables() {
    use lvs_common::service::table_flags::ANY_PORT;
    let any_port = |dp: &mut Dataplane| table_flags(dp).get(&0, 0).expect("flags") & ANY_PORT;
    let every = service(VIP4, 0, Protocol::Tcp, vec![real(1, 1)]);
    let one = service(VIP6, 80, Protocol::Tcp, vec![real(2, 1)]);
    let mut dp = loaded(std::slice::from_ref(&one));
    assert_eq!(any_port(&mut dp), 0, "no service of every port");
    let f = Frame::tcp(CLIENT4, 40000, VIP4, 8080, SYN).build();
    assert_passed_untouched(&f, &run(&mut dp, &f));

    dp.tables
        .apply(&[every.clone(), one.clone()])
        .expect("a service of every port");
    assert_eq!(any_port(&mut dp), ANY_PORT, "a service of every port");
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);

    table_flags(&mut dp).set(0, 0, 0).expect("clear");
    let g = Frame::tcp(CLIENT4, 40001, VIP4, 8080, SYN).build();
    assert_passed_untouched(&g, &run(&mut dp, &g));
    let v6 = Frame::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    assert_eq!(
        forwarded_to(&v6, &run(&mut dp, &v6)),
        2,
        "a service of its own port is found without the flag"
    );

    dp.tables.apply(&[one]).expect("none of every port");
    assert_eq!(any_port(&mut dp), 0, "the service of every port removed");
}

#[test]
fn everything_not_for_a_virtual_service_passes_untouched() {
    let mut dp = loaded(&[
        service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]),
        service(VIP6, 80, Protocol::Tcp, vec![real(1, 1)]),
    ]);
    let other = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    let cases = [
        Frame::tcp(CLIENT4, 40000, other, 80, SYN), // another address
        Frame::tcp(CLIENT4, 40000, VIP4, 81, SYN),  // another port
        Frame::udp(CLIENT4, 40000, VIP4, 80),       // another protocol
        Frame {
            l4: L4::Other(1), // ICMP to the VIP
            ..Frame::tcp(CLIENT4, 0, VIP4, 80, 0)
        },
        Frame {
            ipv6_ext: vec![(51, 8)], // AH: not followed
            ..Frame::tcp(CLIENT6, 40000, VIP6, 80, SYN)
        },
    ];
    for fr in cases {
        let f = fr.build();
        assert_passed_untouched(&f, &run(&mut dp, &f));
    }
    // Not IP at all (ARP).
    let mut arp = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN).build();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_passed_untouched(&arp, &run(&mut dp, &arp));
}

/// A VRRP virtual MAC (VRID 10), as `extra_macs` would add it.
const VRRP_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x0a];

#[test]
fn frames_to_another_destination_mac_pass_untouched_and_count_nowhere() {
    let plans = [
        service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]),
        service(VIP6, 80, Protocol::Tcp, vec![real(1, 1)]),
    ];
    let mut dp = loaded(&plans);
    let others: [(&str, [u8; 6]); 5] = [
        ("broadcast", [0xff; 6]),
        ("IPv4 multicast", [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]),
        ("IPv6 multicast", [0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
        ("another host (a real)", real_mac(2)),
        ("a VRRP MAC the config does not add", VRRP_MAC),
    ];
    let mut sport = 30000;
    for (what, mac) in others {
        for (client, vip, vlan) in [
            (CLIENT4, VIP4, None),
            (CLIENT6, VIP6, None),
            (CLIENT4, VIP4, Some(7)),
        ] {
            sport += 1;
            for flags in [SYN, ACK] {
                let mut fr = Frame::tcp(client, sport, vip, 80, flags);
                fr.dst_mac = mac;
                fr.vlan = vlan;
                let f = fr.build();
                let out = run(&mut dp, &f);
                assert_eq!(
                    (out.verdict, &out.frame),
                    (XDP_PASS, &f),
                    "a frame to {what} ({vlan:?}, flags {flags:#x}) is passed untouched"
                );
            }
            let key = flow_key(client, sport, vip, 80, proto::TCP);
            assert!(!ct_holds(&mut dp, &key), "no flow remembered for {what}");
        }
    }
    for p in &plans {
        let sid = dp.tables.service_id(&p.key()).unwrap();
        let did = dp.tables.dest_id(&p.key(), real_ip(1)).unwrap();
        assert_eq!(dp.tables.stats().service(sid).unwrap(), Default::default());
        assert_eq!(dp.tables.stats().dest(did).unwrap(), Default::default());
    }
    for r in DropReason::ALL {
        assert_eq!(dp.tables.stats().drops(r).unwrap(), 0, "no drop counted");
    }
    // The own MAC is balanced (the frames above were not lost for another reason).
    let f = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN).build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
    let f = Frame::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
}

#[test]
fn an_extra_mac_is_balanced_like_the_own_one() {
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)])]);
    let mut fr = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN);
    fr.dst_mac = VRRP_MAC;
    let f = fr.build();
    assert_passed_untouched(&f, &run(&mut dp, &f));
    dp.set_own_macs(&[DIRECTOR_MAC, VRRP_MAC]).unwrap();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
    let f = Frame::tcp(CLIENT4, 40001, VIP4, 80, SYN).build();
    assert_eq!(
        forwarded_to(&f, &run(&mut dp, &f)),
        1,
        "the own MAC still is"
    );
    // A data plane that was given no MAC balances nothing.
    dp.set_own_macs(&[]).unwrap();
    assert_passed_untouched(&f, &run(&mut dp, &f));
}
