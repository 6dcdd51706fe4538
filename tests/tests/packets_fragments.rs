//! Fragments through BPF_PROG_TEST_RUN: the first fragment of a datagram to a virtual service
//! is balanced as its flow, the later ones follow it by (source, destination, protocol,
//! identification), IPv4 and IPv6; what comes before its first fragment, a first fragment too
//! short for its ports, and an IPv6 chain longer than followed are dropped and counted when
//! they are to a VIP address, and passed untouched otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_common::stats::DropReason;
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, L4, SYN, fragments},
    xdp::{Outcome, TEST_RUN_IFINDEX, ct_holds, flow_key, pin_to_one_cpu, run},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100));
/// A VIP with a TCP service only.
const VIP4_TCP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101));
const OTHER4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const OTHER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x2));
const CLIENT4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
const CLIENT6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10));

fn real_mac(i: u8) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, 0, i]
}

fn reals() -> Vec<DestPlan> {
    (1..=3u8)
        .map(|i| DestPlan {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
            weight: 1,
            table_weight: 1,
            target: Target::Remote {
                mac: real_mac(i),
                src_mac: DIRECTOR_MAC,
                ifindex: TEST_RUN_IFINDEX,
            },
        })
        .collect()
}

fn service(vip: IpAddr, port: u16, protocol: Protocol) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(vip, port),
        protocol,
        scheduler: Scheduler::Rr,
        persistence: None,
        dests: reals(),
        fallback: None,
        aliases: Vec::new(),
    }
}

/// TCP and UDP services on port 80 of the IPv4 VIP, TCP on port 80 and UDP on every port of
/// the IPv6 VIP, TCP on port 80 of [`VIP4_TCP`].
fn loaded() -> Dataplane {
    pin_to_one_cpu();
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables
        .apply(&[
            service(VIP4, 80, Protocol::Tcp),
            service(VIP4, 80, Protocol::Udp),
            service(VIP6, 80, Protocol::Tcp),
            service(VIP6, 0, Protocol::Udp),
            service(VIP4_TCP, 80, Protocol::Tcp),
        ])
        .expect("apply plans");
    dp
}

/// The real the frame was sent to, checking that only the MACs changed.
fn real_of(input: &[u8], out: &Outcome, what: &str) -> u8 {
    assert_eq!(out.verdict, XDP_TX, "{what}: expected XDP_TX");
    assert_eq!(
        &out.frame[12..],
        &input[12..],
        "{what}: only the MACs change"
    );
    assert_eq!(&out.frame[6..12], &DIRECTOR_MAC, "{what}: source MAC");
    assert_eq!(&out.frame[..5], &real_mac(0)[..5], "{what}: to a real");
    out.frame[5]
}

fn passed(input: &[u8], out: &Outcome, what: &str) {
    assert_eq!(out.verdict, XDP_PASS, "{what}: expected XDP_PASS");
    assert_eq!(out.frame, input, "{what}: untouched");
}

fn drops(dp: &Dataplane, r: DropReason) -> u64 {
    dp.tables.stats().drops(r).unwrap()
}

/// A datagram of `len` payload bytes.
fn datagram(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, l4: L4, len: usize) -> Frame {
    let mut f = Frame::tcp(src, sport, dst, dport, ACK);
    f.l4 = l4;
    f.payload = (0..len).map(|i| i as u8).collect();
    f
}

#[test]
fn first_middle_and_last_fragments_reach_the_real_of_their_first() {
    let mut dp = loaded();
    for (client, vip, l4) in [
        (CLIENT4, VIP4, L4::Udp),
        (CLIENT4, VIP4, L4::Tcp { flags: SYN }),
        (CLIENT6, VIP6, L4::Udp),
        (CLIENT6, VIP6, L4::Tcp { flags: SYN }),
    ] {
        // Six datagrams of six flows: rr sends them to reals 1, 2, 3, 1, 2, 3, so a
        // fragment that did not follow its first would be seen at another real.
        let mut got = Vec::new();
        for n in 0..6u16 {
            let d = datagram(client, 40000 + n, vip, 80, l4, 300);
            let frags = fragments(&d, 128, 7000 + u32::from(n));
            assert_eq!(frags.len(), 3, "first, middle, last");
            let what = format!("{l4:?} {vip} datagram {n}");
            let first = real_of(&frags[0], &run(&mut dp, &frags[0]), &what);
            for (i, f) in frags.iter().enumerate().skip(1) {
                let r = real_of(f, &run(&mut dp, f), &format!("{what} fragment {i}"));
                assert_eq!(r, first, "{what}: fragment {i} follows its first");
            }
            got.push(first);
        }
        assert_eq!(got, [1, 2, 3, 1, 2, 3], "{l4:?} {vip}: scheduled as flows");
    }
    assert_eq!(drops(&dp, DropReason::OrphanFragment), 0);
    assert_eq!(drops(&dp, DropReason::Malformed), 0);
}

#[test]
fn the_first_fragment_is_scheduled_as_its_flow() {
    let mut dp = loaded();
    // A fragmented SYN makes the flow: the connection table holds it, and the ACK that
    // follows goes to the same real.
    let syn = datagram(CLIENT4, 41000, VIP4, 80, L4::Tcp { flags: SYN }, 200);
    let frags = fragments(&syn, 64, 99);
    let real = real_of(&frags[0], &run(&mut dp, &frags[0]), "first fragment");
    assert!(ct_holds(&mut dp, &flow_key(CLIENT4, 41000, VIP4, 80, 6)));
    let ack = Frame::tcp(CLIENT4, 41000, VIP4, 80, ACK).build();
    assert_eq!(real_of(&ack, &run(&mut dp, &ack), "ACK"), real);
    // A known flow's fragmented datagram: its fragments go to the flow's real.
    for n in 0..3 {
        let big = datagram(CLIENT4, 41000, VIP4, 80, L4::Tcp { flags: ACK }, 500);
        for (i, f) in fragments(&big, 200, 100 + n).iter().enumerate() {
            assert_eq!(real_of(f, &run(&mut dp, f), &format!("fragment {i}")), real);
        }
    }
    // The later fragments are counted as the service's packets, not as connections.
    let id = dp
        .tables
        .service_id(&service(VIP4, 80, Protocol::Tcp).key());
    let c = dp.tables.stats().service(id.unwrap()).unwrap();
    assert_eq!(c.connections, 1);
    // The first fragment, the ACK, three datagrams of three fragments.
    assert_eq!(c.packets, 1 + 1 + 3 * 3);
}

#[test]
fn fragments_before_their_first_are_dropped_and_counted_and_never_passed() {
    let mut dp = loaded();
    for (client, vip, n) in [(CLIENT4, VIP4, 0u32), (CLIENT6, VIP6, 1)] {
        let d = datagram(client, 42000, vip, 80, L4::Udp, 300);
        let frags = fragments(&d, 128, 500 + n);
        let before = drops(&dp, DropReason::OrphanFragment);
        // Last, middle, then first: the two that came first are lost (dropped, counted).
        for f in [&frags[2], &frags[1]] {
            let out = run(&mut dp, f);
            assert_eq!(
                out.verdict, XDP_DROP,
                "{vip}: an orphan fragment is dropped"
            );
        }
        assert_eq!(drops(&dp, DropReason::OrphanFragment), before + 2);
        let real = real_of(&frags[0], &run(&mut dp, &frags[0]), "first");
        // A fragment that comes again after its first follows it.
        assert_eq!(
            real_of(&frags[2], &run(&mut dp, &frags[2]), "last again"),
            real
        );
        // Another datagram of the same flow (another id) has no first fragment yet.
        let other = fragments(&d, 128, 900 + n);
        assert_eq!(run(&mut dp, &other[1]).verdict, XDP_DROP, "{vip}: other id");
    }
}

#[test]
fn fragments_not_for_a_virtual_service_pass_untouched() {
    let mut dp = loaded();
    let cases = [
        // Another address: every fragment, in any order.
        datagram(CLIENT4, 43000, OTHER4, 80, L4::Udp, 300),
        datagram(CLIENT6, 43000, OTHER6, 80, L4::Tcp { flags: SYN }, 300),
        // ICMP to the VIP (a big ping).
        datagram(CLIENT4, 0, VIP4, 0, L4::Other(1), 300),
        datagram(CLIENT6, 0, VIP6, 0, L4::Other(58), 300),
        // A protocol the VIP address has no service for.
        datagram(CLIENT4, 43000, VIP4_TCP, 80, L4::Udp, 300),
    ];
    for d in cases {
        let frags = fragments(&d, 128, 4242);
        let what = format!("{:?} to {}:{}", d.l4, d.dst, d.dport);
        passed(
            &frags[2],
            &run(&mut dp, &frags[2]),
            &format!("{what}, last first"),
        );
        for (i, f) in frags.iter().enumerate() {
            passed(f, &run(&mut dp, f), &format!("{what} fragment {i}"));
        }
    }
    // Another port of a VIP address (no service there): the first fragment is the director's,
    // and so are the fragments that follow it.
    let d = datagram(CLIENT4, 43000, VIP4, 81, L4::Tcp { flags: SYN }, 300);
    for (i, f) in fragments(&d, 128, 4343).iter().enumerate() {
        passed(f, &run(&mut dp, f), &format!("VIP port 81 fragment {i}"));
    }
    assert_eq!(drops(&dp, DropReason::OrphanFragment), 0);
}

#[test]
fn a_first_fragment_too_short_for_its_ports_is_malformed_at_a_vip() {
    let mut dp = loaded();
    for (client, vip, other) in [(CLIENT4, VIP4, OTHER4), (CLIENT6, VIP6, OTHER6)] {
        // 8 bytes of TCP in the first fragment: ports, but not the flags or data offset.
        let d = datagram(client, 44000, vip, 80, L4::Tcp { flags: SYN }, 40);
        let frags = fragments(&d, 8, 77);
        let before = drops(&dp, DropReason::Malformed);
        let out = run(&mut dp, &frags[0]);
        assert_eq!(out.verdict, XDP_DROP, "{vip}: tiny first fragment dropped");
        assert_eq!(drops(&dp, DropReason::Malformed), before + 1);
        assert!(!ct_holds(&mut dp, &flow_key(client, 44000, vip, 80, 6)));
        // Its second fragment has no first: an orphan.
        assert_eq!(run(&mut dp, &frags[1]).verdict, XDP_DROP);
        let d = datagram(client, 44000, other, 80, L4::Tcp { flags: SYN }, 40);
        let f = &fragments(&d, 8, 77)[0];
        passed(
            f,
            &run(&mut dp, f),
            "tiny first fragment to another address",
        );
    }
}

#[test]
fn an_ipv6_chain_longer_than_followed_is_dropped_at_a_vip() {
    let mut dp = loaded();
    let long = vec![
        (0, 8),
        (60, 8),
        (43, 8),
        (60, 8),
        (43, 16),
        (60, 8),
        (60, 8),
    ];
    let mut f = Frame::tcp(CLIENT6, 45000, VIP6, 80, SYN);
    f.ipv6_ext = long.clone();
    let frame = f.build();
    assert_eq!(run(&mut dp, &frame).verdict, XDP_DROP, "to the VIP");
    assert_eq!(drops(&dp, DropReason::LongExtChain), 1);
    // Six are followed.
    f.ipv6_ext.truncate(6);
    let frame = f.build();
    real_of(&frame, &run(&mut dp, &frame), "six extension headers");
    // A second Fragment header.
    let mut twice = Frame::tcp(CLIENT6, 45001, VIP6, 80, SYN);
    twice.ipv6_ext = vec![(44, 8)];
    let frags = fragments(&twice, 64, 3);
    assert_eq!(
        run(&mut dp, &frags[0]).verdict,
        XDP_DROP,
        "two fragment headers"
    );
    assert_eq!(drops(&dp, DropReason::LongExtChain), 2);
    // To another address: passed untouched.
    let mut f = Frame::tcp(CLIENT6, 45000, OTHER6, 80, SYN);
    f.ipv6_ext = long;
    let frame = f.build();
    passed(
        &frame,
        &run(&mut dp, &frame),
        "long chain to another address",
    );
}

#[test]
fn malformed_later_fragments_to_a_vip_are_dropped_as_malformed() {
    let mut dp = loaded();
    let d = datagram(CLIENT4, 46000, VIP4, 80, L4::Udp, 300);
    let frags = fragments(&d, 128, 31);
    real_of(&frags[0], &run(&mut dp, &frags[0]), "first");
    let mut bad = frags[1].clone();
    bad[14 + 10] ^= 0x40; // the header checksum
    assert_eq!(run(&mut dp, &bad).verdict, XDP_DROP);
    let mut cut = frags[1].clone();
    cut.truncate(cut.len() - 8); // shorter than its total length
    assert_eq!(run(&mut dp, &cut).verdict, XDP_DROP);
    assert_eq!(drops(&dp, DropReason::Malformed), 2);
    assert_eq!(drops(&dp, DropReason::OrphanFragment), 0);
    real_of(&frags[2], &run(&mut dp, &frags[2]), "last");
}
