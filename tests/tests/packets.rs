//! The balancer on crafted frames through BPF_PROG_TEST_RUN: parsing, scheduling, the
//! connection table (eviction, concurrent writers, its seed across a reload), persistence,
//! fallback, removal and quiescing, counters.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    maps::{HashMap as BpfHashMap, MapData},
    programs::Xdp,
};
use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target, plan::ip_of},
    lab::{mount_bpffs, unmount_bpffs},
};
use lvs_common::{
    CtBucket, FlowKey, PersistKey, PersistValue,
    conntrack::STATE_MASK,
    limits::{CT_BUCKETS, map_names},
    service::proto,
    stats::DropReason,
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, L4, SYN, fix_ipv4_checksum},
    wait,
    xdp::{
        Outcome, TEST_RUN_IFINDEX, allowed_cpus, bucket_of, ct_holds, ct_map, ct_seed, flow_key,
        keys_sharing_buckets, pin_to_cpu, pin_to_one_cpu, run, run_program, table_flags,
    },
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100));
const CLIENT4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
const CLIENT6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10));

fn real_ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i))
}

fn real_mac(i: u8) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, 0, i]
}

fn real(i: u8, weight: u32) -> DestPlan {
    DestPlan {
        addr: real_ip(i),
        weight,
        table_weight: weight,
        target: Target::Remote {
            mac: real_mac(i),
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

/// Reals 1, 2 and 3, each of weight 1.
fn equal_reals() -> Vec<DestPlan> {
    vec![real(1, 1), real(2, 1), real(3, 1)]
}

fn service(vip: IpAddr, port: u16, protocol: Protocol, dests: Vec<DestPlan>) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(vip, port),
        protocol,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests,
        fallback: None,
        aliases: Vec::new(),
    }
}

/// A data plane with `plans`, taking frames to [`DIRECTOR_MAC`] (as the agent gives it the
/// attached interface's MAC).
fn loaded(plans: &[ServicePlan]) -> Dataplane {
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables.apply(plans).expect("apply plans");
    dp
}

/// Which real's MAC the frame now carries, checking the rest of the frame is untouched.
fn forwarded_to(input: &[u8], out: &Outcome) -> u8 {
    assert_eq!(out.verdict, XDP_TX, "expected XDP_TX");
    assert_eq!(out.frame.len(), input.len());
    assert_eq!(
        &out.frame[6..12],
        &DIRECTOR_MAC,
        "source MAC is the egress interface's"
    );
    assert_eq!(&out.frame[12..], &input[12..], "only the MACs change");
    assert_eq!(
        &out.frame[..5],
        &real_mac(0)[..5],
        "destination MAC is a real's"
    );
    out.frame[5]
}

fn assert_passed_untouched(input: &[u8], out: &Outcome) {
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(out.frame, input);
}

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

/// Malformed variants of packets to `vip` (its TCP port 80 and UDP port 53), each named.
fn malformed_frames(client: IpAddr, vip: IpAddr, sport: &mut u16) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = || {
        *sport += 1;
        *sport
    };
    let v4 = vip.is_ipv4();
    let l4 = if v4 { 34 } else { 54 };
    let mut tcp = |what: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        for flags in [SYN, ACK] {
            let mut f = Frame::tcp(client, next(), vip, 80, flags).build();
            edit(&mut f);
            out.push((format!("{what} (TCP flags {flags:#x}, to {vip})"), f));
        }
    };
    if v4 {
        tcp("bad IPv4 header checksum", &|f| f[24] ^= 0x01);
        tcp("IPv4 total length past the frame", &|f| {
            let tot = u16::from_be_bytes([f[16], f[17]]) + 1;
            f[16..18].copy_from_slice(&tot.to_be_bytes());
            fix_ipv4_checksum(f, 14);
        });
        tcp("IPv4 total length short of the frame", &|f| {
            let tot = u16::from_be_bytes([f[16], f[17]]) - 4;
            f[16..18].copy_from_slice(&tot.to_be_bytes());
            fix_ipv4_checksum(f, 14);
        });
    } else {
        tcp("IPv6 payload length past the frame", &|f| {
            let plen = u16::from_be_bytes([f[18], f[19]]) + 1;
            f[18..20].copy_from_slice(&plen.to_be_bytes());
        });
        tcp("IPv6 payload length short of the frame", &|f| {
            let plen = u16::from_be_bytes([f[18], f[19]]) - 4;
            f[18..20].copy_from_slice(&plen.to_be_bytes());
        });
    }
    tcp("TCP data offset 4", &|f| f[l4 + 12] = 4 << 4);
    tcp("TCP data offset 0", &|f| f[l4 + 12] = 0);
    tcp("TCP data offset past the packet", &|f| f[l4 + 12] = 15 << 4);
    tcp("SYN with FIN", &|f| f[l4 + 13] |= 0x03);
    let mut f = Frame::udp(client, next(), vip, 53).build();
    let ulen = u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) - 1;
    f[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
    out.push((format!("UDP length short of the packet (to {vip})"), f));
    let mut f = Frame::udp(client, next(), vip, 53).build();
    f[l4 + 4..l4 + 6].copy_from_slice(&4u16.to_be_bytes());
    out.push((format!("UDP length under 8 (to {vip})"), f));
    let martians: Vec<IpAddr> = if v4 {
        [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect()
    } else {
        ["::", "::1", "ff02::1", "::ffff:198.18.1.10"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect()
    };
    for src in martians.into_iter().chain([vip]) {
        let f = Frame::tcp(src, next(), vip, 80, SYN).build();
        out.push((format!("martian source {src} (to {vip})"), f));
        let f = Frame::udp(src, next(), vip, 53).build();
        out.push((format!("martian source {src}, UDP (to {vip})"), f));
    }
    out
}

/// The reals that six new flows from fresh clients get, one after another.
fn next_six(dp: &mut Dataplane, base: u16) -> Vec<u8> {
    (0..6)
        .map(|i| {
            let f = Frame::tcp(CLIENT4, base + i, VIP4, 80, SYN).build();
            forwarded_to(&f, &run(dp, &f))
        })
        .collect()
}

#[test]
fn malformed_packets_to_a_vip_are_dropped_counted_and_never_remembered() {
    pin_to_one_cpu();
    let mut persistent = service(VIP6, 80, Protocol::Tcp, equal_reals());
    persistent.persistence = Some((300, 128));
    let plans = [
        service(VIP4, 80, Protocol::Tcp, equal_reals()),
        service(VIP4, 53, Protocol::Udp, equal_reals()),
        persistent,
        service(VIP6, 53, Protocol::Udp, equal_reals()),
    ];
    let mut dp = loaded(&plans);
    let mut untouched = loaded(&plans);
    let mut sport = 20000;
    let mut frames = malformed_frames(CLIENT4, VIP4, &mut sport);
    frames.extend(malformed_frames(CLIENT6, VIP6, &mut sport));
    // An IPv6 packet to the IPv4-mapped VIP would otherwise match the IPv4 service.
    let mapped: IpAddr = "::ffff:198.18.0.100".parse().unwrap();
    let f = Frame::tcp(CLIENT6, 29999, mapped, 80, SYN).build();
    frames.push(("IPv6 to the IPv4-mapped VIP".into(), f));
    for (n, (what, f)) in frames.iter().enumerate() {
        let out = run(&mut dp, f);
        assert_eq!(out.verdict, XDP_DROP, "{what}: dropped");
        assert_eq!(
            dp.tables.stats().drops(DropReason::Malformed).unwrap(),
            n as u64 + 1,
            "{what}: counted as malformed"
        );
    }
    for p in &plans {
        let sid = dp.tables.service_id(&p.key()).unwrap();
        assert_eq!(
            dp.tables.stats().service(sid).unwrap(),
            Default::default(),
            "{}: nothing counted as forwarded",
            p.vip
        );
    }
    for r in [
        DropReason::NoDestination,
        DropReason::BadDestination,
        DropReason::RedirectFailed,
    ] {
        assert_eq!(dp.tables.stats().drops(r).unwrap(), 0);
    }
    // Nothing remembered: no flow in the connection table, no persistence entry.
    let table = ct_map(&mut dp);
    let held = (0..CT_BUCKETS)
        .filter_map(|b| table.get(&b, 0).ok())
        .flat_map(|b| b.ways())
        .filter(|e| !e.is_empty())
        .count();
    assert_eq!(
        held, 0,
        "connection-table entries after malformed packets only"
    );
    let persist: BpfHashMap<&MapData, PersistKey, PersistValue> =
        BpfHashMap::try_from(dp.ebpf().map(map_names::PERSIST).unwrap()).unwrap();
    assert_eq!(persist.keys().count(), 0, "persistence entries");
    // No scheduler moved: the next new flows get what a data plane that saw none gets.
    assert_eq!(
        next_six(&mut dp, 50000),
        next_six(&mut untouched, 50000),
        "the ring position moved"
    );
    // The same packets to an address that is no VIP are not ours: passed untouched.
    let other = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    let mut frames = malformed_frames(CLIENT4, other, &mut sport);
    frames.extend(malformed_frames(
        CLIENT6,
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x2)),
        &mut sport,
    ));
    let before = dp.tables.stats().drops(DropReason::Malformed).unwrap();
    for (what, f) in frames {
        let out = run(&mut dp, &f);
        assert_eq!((out.verdict, &out.frame), (XDP_PASS, &f), "{what}: passed");
    }
    assert_eq!(
        dp.tables.stats().drops(DropReason::Malformed).unwrap(),
        before
    );
}

#[test]
fn short_frames_padded_by_ethernet_are_well_formed() {
    let mut dp = loaded(&[service(VIP4, 53, Protocol::Udp, vec![real(1, 1)])]);
    let mut fr = Frame::udp(CLIENT4, 40000, VIP4, 53);
    fr.payload.clear();
    let mut f = fr.build();
    assert_eq!(f.len(), 42);
    f.resize(60, 0); // the padding of a minimum Ethernet frame
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 1);
}

#[test]
fn truncated_frames_pass_untouched() {
    let mut dp = loaded(&[
        service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]),
        service(VIP6, 80, Protocol::Tcp, vec![real(1, 1)]),
    ]);
    for fr in [
        Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN),
        Frame::tcp(CLIENT6, 40000, VIP6, 80, SYN),
    ] {
        let mut full = fr.clone();
        full.payload.clear();
        let f = full.build();
        // Every cut short of the TCP flags byte (ports at least must be there to match).
        let flags_end = f.len() - 20 + 14;
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
        for len in 14..flags_end {
            let cut = &f[..len];
            let out = run(&mut dp, cut);
            assert_eq!(out.verdict, XDP_PASS, "frame cut to {len} bytes");
            assert_eq!(out.frame, cut);
        }
    }
}

#[test]
fn a_flow_stays_on_its_real_while_weights_and_reals_change() {
    pin_to_one_cpu();
    let plan = |w: [u32; 3]| {
        vec![service(
            VIP4,
            80,
            Protocol::Tcp,
            vec![real(1, w[0]), real(2, w[1]), real(3, w[2])],
        )]
    };
    let mut dp = loaded(&plan([1, 1, 1]));
    let mut flows = Vec::new();
    for port in 0..30u16 {
        let syn = Frame::tcp(CLIENT4, 20000 + port, VIP4, 80, SYN).build();
        flows.push((port, forwarded_to(&syn, &run(&mut dp, &syn))));
    }
    let check = |dp: &mut Dataplane| {
        for &(port, real) in &flows {
            let ack = Frame::tcp(CLIENT4, 20000 + port, VIP4, 80, ACK).build();
            assert_eq!(
                forwarded_to(&ack, &run(dp, &ack)),
                real,
                "flow from port {}",
                20000 + port
            );
        }
    };
    check(&mut dp);
    dp.tables.apply(&plan([5, 1, 2])).unwrap();
    check(&mut dp);
    // Adding a real does not move established flows either.
    let mut bigger = plan([1, 1, 1]);
    bigger[0].dests.push(real(4, 10));
    dp.tables.apply(&bigger).unwrap();
    check(&mut dp);
    // UDP: every datagram of a 5-tuple to the same real.
    dp.tables
        .apply(&[service(VIP4, 53, Protocol::Udp, equal_reals())])
        .unwrap();
    for sport in 0..10 {
        let f = Frame::udp(CLIENT4, 30000 + sport, VIP4, 53).build();
        let first = forwarded_to(&f, &run(&mut dp, &f));
        for _ in 0..5 {
            assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), first);
        }
    }
}

#[test]
fn six_thousand_new_flows_split_exactly_as_the_wrr_cycle() {
    pin_to_one_cpu();
    let mut dp = loaded(&[service(
        VIP4,
        80,
        Protocol::Tcp,
        vec![real(1, 3), real(2, 2), real(3, 1)],
    )]);
    let mut seen = Vec::new();
    for i in 0..6000u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i / 1000));
        let f = Frame::tcp(src, 10000 + (i % 1000) as u16 * 2, VIP4, 80, SYN).build();
        seen.push(forwarded_to(&f, &run(&mut dp, &f)));
    }
    let count = |r| seen.iter().filter(|&&x| x == r).count();
    assert_eq!((count(1), count(2), count(3)), (3000, 2000, 1000));
    // The order is ip_vs_wrr's cycle: A A B A B C, repeated (from wherever this CPU was).
    let cycle = [1, 1, 2, 1, 2, 3];
    let start = (0..6)
        .find(|&s| (0..6).all(|k| seen[k] == cycle[(s + k) % 6]))
        .expect("sequence is a rotation of the wrr cycle");
    for (k, &r) in seen.iter().enumerate() {
        assert_eq!(r, cycle[(start + k) % 6], "connection {k}");
    }
}

#[test]
fn rr_and_sh_schedulers() {
    pin_to_one_cpu();
    let mut rr = service(
        VIP4,
        80,
        Protocol::Tcp,
        vec![real(1, 3), real(2, 2), real(3, 1)],
    );
    rr.scheduler = Scheduler::Rr;
    let mut dp = loaded(&[rr]);
    let mut seen = Vec::new();
    for i in 0..300 {
        let f = Frame::tcp(CLIENT4, 10000 + i, VIP4, 80, SYN).build();
        seen.push(forwarded_to(&f, &run(&mut dp, &f)));
    }
    for r in 1..=3 {
        assert_eq!(seen.iter().filter(|&&x| x == r).count(), 100);
    }

    let mut sh = service(VIP4, 80, Protocol::Tcp, equal_reals());
    sh.scheduler = Scheduler::Sh;
    dp.tables.apply(&[sh]).unwrap();
    let mut per_client = std::collections::HashMap::new();
    let mut used = std::collections::HashSet::new();
    for c in 0..60u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0xc612_0100 + c));
        // Ports the rr flows above did not use: a SYN of a known flow stays on its real.
        for port in 0..5 {
            let f = Frame::tcp(src, 20000 + port, VIP4, 80, SYN).build();
            let r = forwarded_to(&f, &run(&mut dp, &f));
            assert_eq!(
                *per_client.entry(c).or_insert(r),
                r,
                "sh keeps a client on one real"
            );
            used.insert(r);
        }
    }
    assert_eq!(used.len(), 3, "sh spreads clients over all reals");
}

#[test]
fn persistence_keeps_a_masked_client_on_its_real() {
    pin_to_one_cpu();
    let mut s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    s.persistence = Some((300, 24));
    let mut dp = loaded(&[s.clone()]);
    let client = |host: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, host));
    let first = {
        let f = Frame::tcp(client(1), 10000, VIP4, 80, SYN).build();
        forwarded_to(&f, &run(&mut dp, &f))
    };
    // Other connections, also from other hosts of the same /24, stick.
    for i in 1..30u16 {
        let f = Frame::tcp(client(1 + (i % 7) as u8), 10000 + i, VIP4, 80, SYN).build();
        assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), first);
    }
    // Without persistence the same connections spread over all reals.
    s.persistence = None;
    dp.tables.apply(&[s.clone()]).unwrap();
    let mut used = std::collections::HashSet::new();
    for i in 100..130u16 {
        let f = Frame::tcp(client(1), 10000 + i, VIP4, 80, SYN).build();
        used.insert(forwarded_to(&f, &run(&mut dp, &f)));
    }
    assert_eq!(used.len(), 3);
    // A persistent client whose real is removed moves, and sticks to its new real.
    s.persistence = Some((300, 24));
    dp.tables.apply(&[s.clone()]).unwrap();
    let f = Frame::tcp(client(9), 11000, VIP4, 80, SYN).build();
    let before = forwarded_to(&f, &run(&mut dp, &f));
    s.dests.retain(|d| d.addr != real_ip(before));
    dp.tables.apply(&[s]).unwrap();
    let f = Frame::tcp(client(9), 11001, VIP4, 80, SYN).build();
    let after = forwarded_to(&f, &run(&mut dp, &f));
    assert_ne!(after, before);
    for i in 2..10 {
        let f = Frame::tcp(client(9), 11000 + i, VIP4, 80, SYN).build();
        assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), after);
    }
}

#[test]
fn fallback_takes_new_flows_when_no_real_is_usable() {
    let mut s = service(VIP4, 80, Protocol::Tcp, vec![]);
    // No real, no fallback: dropped, and counted.
    let mut dp = loaded(&[s.clone()]);
    let f = Frame::tcp(CLIENT4, 10000, VIP4, 80, SYN).build();
    assert_eq!(run(&mut dp, &f).verdict, XDP_DROP);
    assert_eq!(
        dp.tables.stats().drops(DropReason::NoDestination).unwrap(),
        1
    );

    // A remote fallback: rewritten like a real.
    s.fallback = Some(real(9, 1));
    dp.tables.apply(&[s.clone()]).unwrap();
    assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), 9);

    // A local fallback (the director): passed up the stack.
    s.fallback = Some(DestPlan {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        weight: 1,
        table_weight: 1,
        target: Target::Local,
    });
    dp.tables.apply(&[s.clone()]).unwrap();
    let f2 = Frame::tcp(CLIENT4, 10001, VIP4, 80, SYN).build();
    assert_passed_untouched(&f2, &run(&mut dp, &f2));

    // A real comes back: new flows go to it, the fallback's established flow stays.
    s.dests = vec![real(1, 1)];
    dp.tables.apply(&[s.clone()]).unwrap();
    let f3 = Frame::tcp(CLIENT4, 10002, VIP4, 80, SYN).build();
    assert_eq!(forwarded_to(&f3, &run(&mut dp, &f3)), 1);
    let ack2 = Frame::tcp(CLIENT4, 10001, VIP4, 80, ACK).build();
    assert_passed_untouched(&ack2, &run(&mut dp, &ack2));
    // Quiesced reals (weight 0) do not count as usable: the fallback takes new flows.
    s.dests = vec![real(1, 0)];
    dp.tables.apply(&[s]).unwrap();
    let f4 = Frame::tcp(CLIENT4, 10003, VIP4, 80, SYN).build();
    assert_passed_untouched(&f4, &run(&mut dp, &f4));
    let ack3 = Frame::tcp(CLIENT4, 10002, VIP4, 80, ACK).build();
    assert_eq!(
        forwarded_to(&ack3, &run(&mut dp, &ack3)),
        1,
        "established flow stays"
    );
}

#[test]
fn removed_real_flows_are_rescheduled_and_quiescent_ones_kept() {
    pin_to_one_cpu();
    let all = equal_reals();
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, all.clone())]);
    let mut flows = Vec::new();
    for port in 0..30u16 {
        let syn = Frame::tcp(CLIENT4, 20000 + port, VIP4, 80, SYN).build();
        flows.push((port, forwarded_to(&syn, &run(&mut dp, &syn))));
    }
    let ack = |port: u16| Frame::tcp(CLIENT4, 20000 + port, VIP4, 80, ACK).build();

    // Quiescent: real 1 at weight 0 keeps its flows, gets no new ones.
    dp.tables
        .apply(&[service(
            VIP4,
            80,
            Protocol::Tcp,
            vec![real(1, 0), real(2, 1), real(3, 1)],
        )])
        .unwrap();
    for &(port, r) in &flows {
        let f = ack(port);
        assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), r);
    }
    for port in 100..160u16 {
        let f = Frame::tcp(CLIENT4, 20000 + port, VIP4, 80, SYN).build();
        assert_ne!(
            forwarded_to(&f, &run(&mut dp, &f)),
            1,
            "quiesced real takes no new flow"
        );
    }

    // Removed: real 1's flows move to the others on their next packet; the rest stay.
    dp.tables
        .apply(&[service(
            VIP4,
            80,
            Protocol::Tcp,
            vec![real(2, 1), real(3, 1)],
        )])
        .unwrap();
    for &(port, r) in &flows {
        let f = ack(port);
        let now = forwarded_to(&f, &run(&mut dp, &f));
        if r == 1 {
            assert_ne!(now, 1, "flow of a removed real is rescheduled");
        } else {
            assert_eq!(now, r);
        }
        // ...and then stays where it went.
        assert_eq!(forwarded_to(&f, &run(&mut dp, &f)), now);
    }
    // Re-adding real 1 reuses nothing of its old flows: they stay where they went.
    dp.tables
        .apply(&[service(VIP4, 80, Protocol::Tcp, all)])
        .unwrap();
    for &(port, r) in &flows {
        let f = ack(port);
        if r == 1 {
            assert_ne!(forwarded_to(&f, &run(&mut dp, &f)), 1);
        }
    }
}

#[test]
fn removed_service_stops_forwarding_its_flows() {
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)])]);
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    forwarded_to(&syn, &run(&mut dp, &syn));
    dp.tables.apply(&[]).unwrap();
    let ack = Frame::tcp(CLIENT4, 20000, VIP4, 80, ACK).build();
    assert_passed_untouched(&ack, &run(&mut dp, &ack));
}

#[test]
fn counters_count_packets_bytes_and_connections() {
    let s = service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]);
    let key = s.key();
    let mut dp = loaded(&[s]);
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    let ack = Frame::tcp(CLIENT4, 20000, VIP4, 80, ACK).build();
    run(&mut dp, &syn);
    for _ in 0..9 {
        run(&mut dp, &ack);
    }
    let sid = dp.tables.service_id(&key).unwrap();
    let did = dp.tables.dest_id(&key, real_ip(1)).unwrap();
    for c in [
        dp.tables.stats().service(sid).unwrap(),
        dp.tables.stats().dest(did).unwrap(),
    ] {
        assert_eq!(c.packets, 10);
        assert_eq!(c.connections, 1);
        assert_eq!(c.bytes, (syn.len() + 9 * ack.len()) as u64);
    }
}

#[test]
fn redirect_to_an_interface_missing_from_the_devmap_is_a_counted_drop() {
    let mut r = real(1, 1);
    r.target = Target::Remote {
        mac: real_mac(1),
        src_mac: DIRECTOR_MAC,
        ifindex: 4242,
    };
    // The limit is per CPU: on one CPU its lines come at most once a second.
    pin_to_one_cpu();
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![r])]);
    let lines = Lines::default();
    let mut logger = aya_log::EbpfLogger::init_with_logger(dp.ebpf(), lines.clone()).unwrap();
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    let mut sent = 0u64;
    let mut drop_one = |dp: &mut Dataplane| {
        assert_eq!(run(dp, &syn).verdict, XDP_DROP);
        sent += 1;
    };
    // A burst: one line, not one per packet.
    let t0 = Instant::now();
    for _ in 0..50 {
        drop_one(&mut dp);
    }
    logger.flush();
    let burst = lines.0.lock().unwrap().clone();
    assert!(
        burst.len() == 1 && burst[0].contains("redirect_failed"),
        "a burst of 50 drops: one kernel log line, got {burst:?}"
    );
    // Drops go on for 1.5 s after the first line: a second line a second after it, and no
    // third (that would need 2 s).
    let mut spread = Duration::ZERO;
    while t0.elapsed() < Duration::from_millis(1500) {
        drop_one(&mut dp);
        // The last drop's time, from just before the first: under 2 s, no third line is due.
        spread = t0.elapsed();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        dp.tables.stats().drops(DropReason::RedirectFailed).unwrap(),
        sent,
        "every drop counted"
    );
    logger.flush();
    let lines = lines.0.lock().unwrap();
    assert!(
        spread < Duration::from_secs(2)
            && lines.len() == 2
            && lines.iter().all(|l| l.contains("redirect_failed")),
        "{sent} drops over {spread:?}: two kernel log lines (a second apart), got {lines:?}"
    );
}

/// Collects the kernel program's log lines.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl log::Log for Lines {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

#[test]
fn a_real_behind_another_interface_is_reached_by_redirect() {
    const XDP_REDIRECT: u32 = 4;
    // A private network namespace for this thread, with a second interface in it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare the network namespace");
    wait::succeed(std::process::Command::new("ip").args([
        "link", "add", "lvsnic2", "type", "veth", "peer", "name", "lvsnic2p",
    ]));
    let ifindex = nix::net::if_::if_nametoindex("lvsnic2").expect("ifindex");
    let mut r = real(2, 1);
    r.target = Target::Remote {
        mac: real_mac(2),
        src_mac: [0x02, 0, 0, 0, 0, 0x99],
        ifindex,
    };
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![r])]);
    dp.add_tx_port(ifindex).expect("devmap entry");
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    let out = run(&mut dp, &syn);
    assert_eq!(out.verdict, XDP_REDIRECT);
    assert_eq!(&out.frame[..6], &real_mac(2));
    assert_eq!(
        &out.frame[6..12],
        &[0x02, 0, 0, 0, 0, 0x99],
        "source MAC of the egress interface"
    );
}

/// The one persistence entry of the data plane (reading it does not refresh it).
fn persist_entry(dp: &mut Dataplane) -> PersistValue {
    let map = dp
        .ebpf()
        .map_mut(map_names::PERSIST)
        .expect("persistence map");
    let map: BpfHashMap<&mut MapData, PersistKey, PersistValue> =
        BpfHashMap::try_from(map).expect("persistence map type");
    let entries: Vec<PersistValue> = map.iter().map(|e| e.expect("entry").1).collect();
    assert_eq!(entries.len(), 1, "one persistence entry: {entries:?}");
    entries[0]
}

/// Waits (up to 5 s) until the data plane's clock reads past `at_ns`.
fn wait_clock(at_ns: u64, what: &str) -> u64 {
    lvs_tests::clock::wait_past(at_ns, what, Duration::from_secs(5))
}

#[test]
fn persistence_expires_after_its_timeout() {
    const TIMEOUT_S: u32 = 2;
    const TIMEOUT_NS: u64 = TIMEOUT_S as u64 * 1_000_000_000;
    pin_to_one_cpu();
    let mut s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    s.scheduler = Scheduler::Rr;
    s.persistence = Some((TIMEOUT_S, 32));
    let mut dp = loaded(&[s]);
    let conn = |dp: &mut Dataplane, port| {
        let f = Frame::tcp(CLIENT4, port, VIP4, 80, SYN).build();
        forwarded_to(&f, &run(dp, &f))
    };
    // Each step waits on the clock the entry is stamped with, from the stamp itself: half a
    // timeout after a use the entry holds, a whole timeout after its last use it has expired.
    let first = conn(&mut dp, 30000);
    let made = persist_entry(&mut dp).last_used_ns;
    wait_clock(
        made + TIMEOUT_NS / 2,
        "half a timeout after the first connection",
    );
    assert_eq!(conn(&mut dp, 30001), first, "within the timeout: same real");
    let used = persist_entry(&mut dp).last_used_ns;
    assert!(
        used > made && used - made < TIMEOUT_NS,
        "the use within the timeout refreshes the entry: stamped {made} then {used}"
    );
    // Past the timeout since the entry was made, within it since its last use: it holds.
    wait_clock(
        made + TIMEOUT_NS + 1,
        "a timeout after the first connection",
    );
    assert_eq!(
        conn(&mut dp, 30002),
        first,
        "refreshed by the last connection"
    );
    let last = persist_entry(&mut dp).last_used_ns;
    assert!(
        last - used < TIMEOUT_NS,
        "the machine stalled: {} ms between two uses, more than the timeout, so the test \
         cannot tell a refresh",
        (last - used) / 1_000_000
    );
    wait_clock(last + TIMEOUT_NS + 1, "a timeout after the last use");
    assert_ne!(
        conn(&mut dp, 30003),
        first,
        "expired: scheduled by the ring again"
    );
}

/// A TCP frame of the flow `key` (IPv4 or IPv6, as the key's addresses).
fn frame_of(key: &FlowKey, flags: u8) -> Vec<u8> {
    Frame::tcp(
        ip_of(&key.src),
        u16::from_be(key.sport_be),
        ip_of(&key.dst),
        u16::from_be(key.dport_be),
        flags,
    )
    .build()
}

/// The keys the ways of `bucket` hold (stable and written), in way order.
fn held(dp: &mut Dataplane, bucket: u32) -> Vec<FlowKey> {
    let b = ct_map(dp).get(&bucket, 0).expect("bucket");
    b.ways()
        .iter()
        .filter(|e| !e.is_empty() && e.is_stable())
        .map(|e| e.key)
        .collect()
}

#[test]
fn a_new_flow_in_a_full_bucket_takes_the_way_of_the_least_recently_seen() {
    pin_to_one_cpu();
    let s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    let sid_key = s.key();
    let mut dp = loaded(&[s]);
    let seed = ct_seed(&mut dp);
    assert_ne!(seed, 0, "the loader draws a seed");
    // Five flows of one client that share a bucket.
    let flows = keys_sharing_buckets(
        seed,
        1,
        5,
        (1024..=u16::MAX).map(|port| flow_key(CLIENT4, port, VIP4, 80, proto::TCP)),
    )
    .remove(0);
    let bucket = bucket_of(&flows[0], seed);
    let sid = dp.tables.service_id(&sid_key).unwrap();
    let connections = |dp: &Dataplane| dp.tables.stats().service(sid).unwrap().connections;
    let send = |dp: &mut Dataplane, key: &FlowKey, flags| {
        let f = frame_of(key, flags);
        forwarded_to(&f, &run(dp, &f))
    };

    for key in &flows[..4] {
        send(&mut dp, key, SYN);
    }
    assert_eq!(
        held(&mut dp, bucket),
        flows[..4],
        "four flows fill the ways in order"
    );

    // Once the coarse clock (the table's) has moved past their stamps, three of them send a
    // packet; flow 2 stays quiet.
    let stamped = ct_map(&mut dp)
        .get(&bucket, 0)
        .expect("bucket")
        .ways()
        .iter()
        .map(|e| e.seen_ns())
        .max()
        .unwrap_or(0);
    // The table keeps times without their low bits (they hold the state).
    lvs_tests::clock::wait_past(
        stamped | STATE_MASK,
        "the data plane's clock past the four flows' stamps",
        Duration::from_secs(2),
    );
    let before = connections(&dp);
    for i in [0, 1, 3] {
        send(&mut dp, &flows[i], ACK);
    }
    assert_eq!(
        connections(&dp),
        before,
        "known flows are not scheduled again"
    );

    // The fifth flow takes flow 2's way, and only that.
    send(&mut dp, &flows[4], SYN);
    assert_eq!(connections(&dp), before + 1);
    assert_eq!(
        held(&mut dp, bucket),
        [flows[0], flows[1], flows[4], flows[3]],
        "the least recently seen flow is evicted"
    );
    for i in [0, 1, 3, 4] {
        send(&mut dp, &flows[i], ACK);
    }
    assert_eq!(connections(&dp), before + 1, "the others stay known");
    send(&mut dp, &flows[2], ACK);
    assert_eq!(
        connections(&dp),
        before + 2,
        "the evicted flow's next packet is scheduled again"
    );
}

#[test]
fn two_cpus_writing_the_same_buckets_never_tear_an_entry() {
    const BUCKETS: usize = 2;
    const PER_BUCKET: usize = 16;
    const ROUNDS: usize = 3000;
    let mut s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    s.scheduler = Scheduler::Sh;
    let skey = s.key();
    let mut dp = loaded(&[s]);
    let seed = ct_seed(&mut dp);
    // 32 clients whose flows to port 80 from port 40000 fall in two buckets: sixteen flows
    // for four ways in each.
    let groups = keys_sharing_buckets(
        seed,
        BUCKETS,
        PER_BUCKET,
        (0..1u32 << 24).map(|i| {
            flow_key(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                40000,
                VIP4,
                80,
                proto::TCP,
            )
        }),
    );
    let flows: Vec<FlowKey> = groups.concat();
    // `sh` sends a client to one real whatever the flow: learn it from another port.
    let mut real_of: HashMap<IpAddr, u8> = HashMap::new();
    for key in &flows {
        let probe = Frame::tcp(ip_of(&key.src), 1, VIP4, 80, SYN).build();
        real_of.insert(ip_of(&key.src), forwarded_to(&probe, &run(&mut dp, &probe)));
    }
    assert!(
        (1..=3).all(|r| real_of.values().any(|&x| x == r)),
        "the clients spread over all reals"
    );
    let ids: Vec<u32> = (0..=3)
        .map(|r| dp.tables.dest_id(&skey, real_ip(r)).unwrap_or(u32::MAX))
        .collect();
    let dest_id = |r: u8| ids[usize::from(r)];
    let packets = |dp: &Dataplane, r: u8| dp.tables.stats().dest(dest_id(r)).unwrap().packets;
    let before: Vec<u64> = (1..=3).map(|r| packets(&dp, r)).collect();

    // Two writers on two CPUs at once, or the test proves nothing: it fails (rather than
    // passing without a race) where fewer than two CPUs are allowed.
    let cpus = allowed_cpus();
    assert!(
        cpus.len() >= 2,
        "two CPUs writing the same buckets at once needs two CPUs; this test may run on \
         {cpus:?} only, so it cannot race (run it where two CPUs are allowed)"
    );
    let prog: &Xdp = dp.balancer().expect("balancer");
    // Both start together (each waits, 10 s at most, until the other is ready).
    let ready = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    // Each thread: the SYN and the ACK of its flows (every other flow of each bucket), round
    // after round, each output checked; returns the packets sent per real, the CPU it ran on
    // and when it started and ended. Each SYN evicts a way (sixteen flows for four ways), so
    // the two CPUs keep claiming the same ways.
    let runs: Vec<([u64; 4], i32, Instant, Instant)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let mine: Vec<(Vec<u8>, Vec<u8>, u8)> = flows
                    .iter()
                    .skip(t)
                    .step_by(2)
                    .map(|k| (frame_of(k, SYN), frame_of(k, ACK), real_of[&ip_of(&k.src)]))
                    .collect();
                let cpu = cpus[t];
                let ready = &ready;
                scope.spawn(move || {
                    pin_to_cpu(cpu);
                    ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    wait::until(
                        Duration::from_secs(10),
                        Duration::ZERO,
                        &format!("writer {t}: the other writer ready"),
                        || (ready.load(std::sync::atomic::Ordering::SeqCst) == 2).then_some(()),
                        String::new,
                    );
                    let began = Instant::now();
                    let mut sent = [0u64; 4];
                    for round in 0..ROUNDS {
                        assert!(
                            Instant::now() < deadline,
                            "writer {t}: round {round} of {ROUNDS} still running after 120 s"
                        );
                        for (syn, ack, r) in &mine {
                            for f in [syn, ack] {
                                // Once: BPF_PROG_TEST_RUN with repeats swaps the program in and
                                // out of the XDP dispatcher, an RCU grace period each time.
                                let out = run_program(prog, f);
                                assert_eq!(out.verdict, XDP_TX);
                                assert_eq!(out.frame[5], *r, "round {round}: a packet went astray");
                                sent[*r as usize] += 1;
                            }
                        }
                    }
                    // SAFETY: sched_getcpu(3) has no arguments.
                    let on = unsafe { libc::sched_getcpu() };
                    (sent, on, began, Instant::now())
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // They ran on two CPUs, at the same time for most of their runs.
    let (a, b) = (&runs[0], &runs[1]);
    assert_ne!(a.1, b.1, "the two writers ran on one CPU");
    let overlap = a.3.min(b.3).saturating_duration_since(a.2.max(b.2));
    let shorter = (a.3 - a.2).min(b.3 - b.2);
    assert!(
        overlap * 2 >= shorter,
        "the writers hardly overlapped: {overlap:?} together of {shorter:?}; no race to speak of"
    );
    eprintln!(
        "two writers on CPUs {} and {}, together for {overlap:?}",
        a.1, b.1
    );
    let sent: Vec<[u64; 4]> = runs.iter().map(|r| r.0).collect();

    // Every packet went to its client's real: a torn entry would have sent some elsewhere.
    for r in 1..=3u8 {
        let want: u64 = sent.iter().map(|s| s[r as usize]).sum();
        assert_eq!(
            packets(&dp, r) - before[usize::from(r) - 1],
            want,
            "packets to real {r}"
        );
    }
    // Every entry of the table is whole: stable, and its destination is its client's.
    let want: HashMap<IpAddr, (u32, u32)> = real_of
        .iter()
        .map(|(&ip, &r)| {
            let id = dest_id(r);
            (ip, (id, dp.tables.dest_generation(id).unwrap()))
        })
        .collect();
    let table: Vec<CtBucket> = {
        let ct = ct_map(&mut dp);
        (0..CT_BUCKETS).map(|i| ct.get(&i, 0).unwrap()).collect()
    };
    let (mut entries, mut writes) = (0, 0);
    for e in table
        .iter()
        .flat_map(|b| b.ways())
        .filter(|e| !e.is_empty())
    {
        assert!(e.is_stable(), "a way left being written: {e:?}");
        let client = ip_of(&e.key.src);
        assert_eq!(
            Some(&(e.dest, e.generation)),
            want.get(&client),
            "entry of {client}"
        );
        entries += 1;
        writes += e.seq / 2;
    }
    for group in &groups {
        let b = bucket_of(&group[0], seed);
        assert_eq!(held(&mut dp, b).len(), 4, "contended bucket {b} is full");
        assert!(held(&mut dp, b).iter().all(|k| group.contains(k)));
    }
    assert!(entries >= BUCKETS * 4);
    // Every scheduled packet was remembered by one whole write of one way: no two writers
    // ever held a way at once (each write adds 2 to its way's sequence number). A writer whose
    // claims all fail would forward without remembering, but with two CPUs it loses at most
    // the one way the other CPU is writing, and then takes its next choice.
    let sid = dp.tables.service_id(&skey).unwrap();
    assert_eq!(
        writes,
        dp.tables.stats().service(sid).unwrap().connections,
        "writes of the table against scheduled packets"
    );
}

/// A bpf filesystem mounted on a fresh directory, unmounted and removed on drop.
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount(name: &str) -> Bpffs {
        let dir = std::env::temp_dir().join(format!("lvs-{name}-{}", std::process::id()));
        mount_bpffs(&dir).expect("mounting a bpffs");
        Bpffs(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        unmount_bpffs(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_reloaded_data_plane_keeps_the_seed_and_finds_its_flows() {
    pin_to_one_cpu();
    let bpffs = Bpffs::mount("ct-reload");
    let pins = bpffs.path().join("lvs/test");
    let plans = [service(VIP4, 80, Protocol::Tcp, equal_reals())];
    let skey = plans[0].key();
    let syn = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN).build();
    let ack = Frame::tcp(CLIENT4, 40000, VIP4, 80, ACK).build();
    let (seed, connections, real) = {
        let mut dp = Dataplane::load_pinned(&pins).expect("load with pins");
        dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
        dp.tables.apply(&plans).unwrap();
        let real = forwarded_to(&syn, &run(&mut dp, &syn));
        let sid = dp.tables.service_id(&skey).unwrap();
        let connections = dp.tables.stats().service(sid).unwrap().connections;
        (ct_seed(&mut dp), connections, real)
    };
    // As a restarted agent: the pinned maps are adopted.
    let mut dp = Dataplane::load_pinned(&pins).expect("load with pins again");
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    assert!(dp.adopted());
    assert_eq!(ct_seed(&mut dp), seed, "the seed is kept");
    dp.tables.apply(&plans).unwrap();
    assert_eq!(forwarded_to(&ack, &run(&mut dp, &ack)), real);
    let sid = dp.tables.service_id(&skey).unwrap();
    assert_eq!(
        dp.tables.stats().service(sid).unwrap().connections,
        connections,
        "the flow was found, not scheduled again"
    );
    dp.release(true).unwrap();
}
