//! Malformed frames: bad packets to a VIP dropped, counted and never remembered in the
//! connection table (the same to another address passed), short frames padded by Ethernet
//! well formed, truncated frames passed untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{HashMap as BpfHashMap, MapData};
use lvs::{config::Protocol, dataplane::Dataplane};
use lvs_common::{
    PersistKey, PersistValue,
    limits::{CT_BUCKETS, map_names},
    stats::DropReason,
};
use lvs_tests::{
    packet::{ACK, Frame, SYN, fix_ipv4_checksum},
    xdp::{ct_map, pin_to_one_cpu, run},
};

use super::common::*;

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
