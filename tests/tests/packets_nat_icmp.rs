//! ICMP errors about a flow on crafted frames through BPF_PROG_TEST_RUN (the namespace and
//! helpers of `packets_nat.rs`): about a NATed flow from the inside (IPVS's `ip_vs_out_icmp`,
//! to the client) and from the outside (`ip_vs_in_icmp`, to the real), and from the outside
//! about a direct-routed or tunnelled flow (to the real as it came), IPv4 and IPv6, every header and
//! checksum compared byte for byte with one recomputed here from scratch; errors about no
//! NATed flow and other ICMP messages passed untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lvs::{
    config::Protocol,
    dataplane::{Dataplane, Target},
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN, fix_ipv4_checksum},
    xdp::run,
};

#[path = "packets_nat/common.rs"]
mod common;
use common::*;

/// An ICMP error from the inside (a router on the way to the real) about a packet the director
/// NATed (client → real:8080, quoted) reaches the client as if met at the VIP, as IPVS
/// translates it: outer source the VIP, the quote's destination VIP:80 (its header checksum
/// right), the ICMP checksum right, TTL one less. An error about no NATed flow, and an echo
/// request, pass untouched.
#[test]
fn icmp_errors_from_the_inside_are_translated_for_the_client() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let input = to_vip(VIP4.into(), 80, false, SYN);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT);
        // What the router quotes: the packet as it got it, IP header and 8 bytes more.
        let quote = out.frame[14..14 + 28].to_vec();
        let router = Ipv4Addr::new(10, 99, 0, 254);
        let icmp_frame =
            |quote: &[u8], t: u8, code: u8| icmp4_frame(router, CLIENT4, 64, quote, t, code);
        let err = icmp_frame(&quote, 3, 4);
        let out = run(&mut dp, &err);
        assert_eq!(out.verdict, XDP_REDIRECT, "to the client");

        // As it must leave, from scratch: the quote as the client sent it but for what the
        // director changed on the way (TTL), the outer header from the VIP.
        let mut q = quote.clone();
        q[16..20].copy_from_slice(&VIP4.octets());
        q[22..24].copy_from_slice(&80u16.to_be_bytes());
        q[10..12].fill(0);
        let c = lvs_tests::packet::checksum(&q[..20]);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            &q[..20],
            &input[14..34][..8]
                .iter()
                .chain(&[63u8])
                .chain(&input[23..24])
                .chain(&q[10..12])
                .chain(&input[26..34])
                .copied()
                .collect::<Vec<u8>>()[..],
            "the quote: the client's header, TTL one less"
        );
        let mut want = icmp_frame(&q, 3, 4);
        want[0..6].copy_from_slice(&ROUTER_MAC);
        want[6..12].copy_from_slice(&EGRESS_MAC);
        want[26..30].copy_from_slice(&VIP4.octets());
        want[22] = 63;
        fix_ipv4_checksum(&mut want, 14);
        assert_eq!(out.frame, want);
        // Counted as a reply of the flow's real (OutPkts, OutBytes), as IPVS counts it.
        let key = lvs::dataplane::plan::vip_key(SocketAddr::new(VIP4.into(), 80), Protocol::Tcp);
        let did = dp.tables.dest_id(&key, REAL4.into()).expect("dest id");
        let c = dp.tables.stats().dest(did).unwrap();
        assert_eq!((c.out_packets, c.out_bytes), (1, err.len() as u64));

        let untouched = |dp: &mut Dataplane, b: &[u8], what: &str| {
            let out = run(dp, b);
            assert_eq!((out.verdict, out.frame.as_slice()), (XDP_PASS, b), "{what}");
        };
        let mut other = quote.clone();
        other[22..24].copy_from_slice(&8081u16.to_be_bytes());
        untouched(&mut dp, &icmp_frame(&other, 3, 4), "about no NATed flow");
        untouched(&mut dp, &icmp_frame(&quote, 8, 0), "an echo request");
    });
}

/// The same for IPv6: an inside router's packet too big about the NATed packet reaches the
/// client from the VIP, the quote's destination VIP:80, the ICMPv6 checksum (pseudo-header
/// included) recomputed here from scratch.
#[test]
fn icmpv6_errors_from_the_inside_are_translated_for_the_client() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let input = to_vip(VIP6.into(), 80, false, SYN);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT);
        let quote = out.frame[14..14 + 48].to_vec();
        let router = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0xfe);
        let frame =
            |src: Ipv6Addr, quote: &[u8], t: u8, hop: u8| icmp6_frame(src, CLIENT6, hop, quote, t);
        let out = run(&mut dp, &frame(router, &quote, 2, 64));
        assert_eq!(out.verdict, XDP_REDIRECT, "to the client");
        // The client's own header (hop limit one less, as the director sent it), then TCP.
        let mut q = input[14..14 + 48].to_vec();
        q[7] = 63;
        let mut want = frame(VIP6, &q, 2, 63);
        want[0..6].copy_from_slice(&ROUTER_MAC);
        want[6..12].copy_from_slice(&EGRESS_MAC);
        assert_eq!(out.frame, want);

        let echo = frame(router, &quote, 128, 64);
        let out = run(&mut dp, &echo);
        assert_eq!(
            (out.verdict, &out.frame),
            (XDP_PASS, &echo),
            "an echo request"
        );
    });
}

/// An ICMPv4 error from `src` to `dst` (TTL `ttl`) of type `t` and code `code` (next-hop
/// MTU 1280) quoting `quote`, from the router's MAC to the director's, every checksum
/// computed here from scratch.
fn icmp4_frame(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, quote: &[u8], t: u8, code: u8) -> Vec<u8> {
    let mut icmp = vec![t, code, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(quote);
    let c = lvs_tests::packet::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut b = Vec::new();
    b.extend_from_slice(&DIRECTOR_MAC);
    b.extend_from_slice(&ROUTER_MAC);
    b.extend_from_slice(&[0x08, 0x00, 0x45, 0xc0]);
    b.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, ttl, 1, 0, 0]);
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    fix_ipv4_checksum(&mut b, 14);
    b.extend_from_slice(&icmp);
    b
}

/// An ICMPv6 error from `src` to `dst` (hop limit `hop`) of type `t` (MTU 1280) quoting
/// `quote`, its checksum (pseudo-header included) computed here from scratch.
fn icmp6_frame(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, quote: &[u8], t: u8) -> Vec<u8> {
    let mut icmp = vec![t, 0, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(quote);
    let mut pseudo = src.octets().to_vec();
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let c = fold(sum(&pseudo) + sum(&icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut b = Vec::new();
    b.extend_from_slice(&DIRECTOR_MAC);
    b.extend_from_slice(&ROUTER_MAC);
    b.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    b.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    b.extend_from_slice(&[58, hop]);
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&icmp);
    b
}

/// An ICMP error from the outside (a router on the way to the client) about a reply the
/// director sent (VIP:80 → client, quoted), sent to the VIP, goes on to the real as IPVS's
/// `ip_vs_in_icmp` sends it: outer destination the real, the quote's source REAL:8080 (its
/// header checksum right), the ICMP checksum right, TTL one less; counted in (InPkts), the
/// flow's state unmoved. An error about no NATed flow, and an echo request to the VIP, pass
/// untouched.
#[test]
fn icmp_errors_from_the_outside_are_translated_for_the_real() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let (reply, sent) = opened(&mut dp, VIP4.into());
        let key = lvs::dataplane::plan::vip_key(SocketAddr::new(VIP4.into(), 80), Protocol::Tcp);
        let did = dp.tables.dest_id(&key, REAL4.into()).expect("dest id");
        let before = dp.tables.stats().dest(did).unwrap();
        let conns = dp.tables.conns(did).expect("counts");
        // What the router quotes: the reply as the director sent it (from the VIP).
        let quote = sent[14..14 + 28].to_vec();
        assert_eq!(&quote[12..16], &VIP4.octets());
        let router = Ipv4Addr::new(10, 99, 0, 254);
        let err = icmp4_frame(router, VIP4, 64, &quote, 3, 4);
        let out = run(&mut dp, &err);
        assert_eq!(out.verdict, XDP_REDIRECT, "to the real");

        // As it must leave, from scratch: the quote is the real's own packet but for what the
        // director changed on the way (TTL one less), the outer header to the real.
        let mut q = reply[14..14 + 28].to_vec();
        q[8] -= 1;
        q[10..12].fill(0);
        let c = lvs_tests::packet::checksum(&q[..20]);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        let mut want = icmp4_frame(router, REAL4, 63, &q, 3, 4);
        want[0..6].copy_from_slice(&REAL_MAC);
        want[6..12].copy_from_slice(&EGRESS_MAC);
        assert_eq!(out.frame, want);
        let after = dp.tables.stats().dest(did).unwrap();
        assert_eq!(
            (after.packets, after.bytes),
            (before.packets + 1, before.bytes + err.len() as u64),
            "counted in"
        );
        assert_eq!(after.out_packets, before.out_packets, "not out");
        assert_eq!(
            dp.tables.conns(did).expect("counts"),
            conns,
            "state unmoved"
        );

        let untouched = |dp: &mut Dataplane, b: &[u8], what: &str| {
            let out = run(dp, b);
            assert_eq!((out.verdict, out.frame.as_slice()), (XDP_PASS, b), "{what}");
        };
        let mut other = quote.clone();
        other[22..24].copy_from_slice(&40001u16.to_be_bytes());
        untouched(
            &mut dp,
            &icmp4_frame(router, VIP4, 64, &other, 3, 4),
            "about no NATed flow",
        );
        untouched(
            &mut dp,
            &icmp4_frame(router, VIP4, 64, &quote, 8, 0),
            "an echo request",
        );
        untouched(
            &mut dp,
            &icmp4_frame(router, VIP4, 1, &quote, 3, 4),
            "a TTL that runs out: the kernel's",
        );
    });
}

/// The same for IPv6: a router's packet too big about the reply reaches the real, the quote's
/// source REAL6:8080, the outer destination the real, the ICMPv6 checksum (pseudo-header
/// included) recomputed here from scratch.
#[test]
fn icmpv6_errors_from_the_outside_are_translated_for_the_real() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let (reply, sent) = opened(&mut dp, VIP6.into());
        let quote = sent[14..14 + 48].to_vec();
        let router = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0xfe);
        let out = run(&mut dp, &icmp6_frame(router, VIP6, 64, &quote, 2));
        assert_eq!(out.verdict, XDP_REDIRECT, "to the real");
        // The real's own header (hop limit one less, as the director sent it), then TCP.
        let mut q = reply[14..14 + 48].to_vec();
        q[7] -= 1;
        let mut want = icmp6_frame(router, REAL6, 63, &q, 2);
        want[0..6].copy_from_slice(&REAL_MAC);
        want[6..12].copy_from_slice(&EGRESS_MAC);
        assert_eq!(out.frame, want);

        let mut other = quote.clone();
        other[42..44].copy_from_slice(&40001u16.to_be_bytes());
        let stray = icmp6_frame(router, VIP6, 64, &other, 2);
        let out = run(&mut dp, &stray);
        assert_eq!(
            (out.verdict, &out.frame),
            (XDP_PASS, &stray),
            "about no NATed flow"
        );
    });
}

/// The director's address on the egress link `d0`: the tunnel's outer source.
const DIRECTOR4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const DIRECTOR6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);

/// A direct-routed (port 81) and a tunnelled (port 82) service on both VIPs, each to the one
/// real on the egress link.
fn dr_and_tunnel() -> Dataplane {
    let d0 = nix::net::if_::if_nametoindex("d0").expect("d0's index");
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.add_tx_port(d0).expect("d0 in the devmap");
    let plan = |vip: IpAddr, port: u16, target: Target| {
        let mut p = nat_service(vip, port, Protocol::Tcp, real_of(vip), 0);
        p.dests[0].target = target;
        p
    };
    let direct = Target::Remote {
        mac: REAL_MAC,
        src_mac: EGRESS_MAC,
        ifindex: d0,
    };
    let tunnel = Target::Tunnel { src: None };
    dp.tables
        .apply(&[
            plan(VIP4.into(), 81, direct),
            plan(VIP4.into(), 82, tunnel),
            plan(VIP6.into(), 81, direct),
            plan(VIP6.into(), 82, tunnel),
        ])
        .expect("apply plans");
    dp
}

/// The start of the real's reply `vip`:`port` → client:40000 (it leaves from the VIP, by
/// direct routing or tunnel): what a router on the way to the client quotes.
fn reply_quote(vip: IpAddr, port: u16) -> Vec<u8> {
    let b = Frame::tcp(vip, port, client_of(vip), 40000, SYN | ACK).build();
    let l3 = if vip.is_ipv4() { 20 } else { 40 };
    b[14..14 + l3 + 8].to_vec()
}

/// An ICMP error from the outside about a direct-routed or tunnelled flow (a router on the way
/// to the client met the real's reply, which left from the VIP) goes on to the flow's real as
/// it came, as IPVS's `ip_vs_in_icmp` hands it to the flow's own transmitter: by direct
/// routing only the MACs change; by tunnel it is encapsulated whole (IPv4 in IPv4, IPv6 in
/// IPv6). Counted in; the flow's state unmoved. So the real's path MTU discovery works
/// through the director. An error about no flow passes untouched.
#[test]
fn icmp_errors_from_the_outside_about_dr_and_tunnel_flows_go_to_the_real() {
    in_lab_netns(|| {
        let mut dp = dr_and_tunnel();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let v4 = vip.is_ipv4();
            let router: IpAddr = if v4 {
                Ipv4Addr::new(10, 99, 0, 254).into()
            } else {
                Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0xfe).into()
            };
            let error = |quote: &[u8]| match (router, vip) {
                (IpAddr::V4(r), IpAddr::V4(v)) => icmp4_frame(r, v, 64, quote, 3, 4),
                (IpAddr::V6(r), IpAddr::V6(v)) => icmp6_frame(r, v, 64, quote, 2),
                _ => unreachable!(),
            };
            for port in [81, 82] {
                let what = format!("{vip} port {port}");
                assert_eq!(
                    run(&mut dp, &to_vip(vip, port, false, SYN)).verdict,
                    XDP_REDIRECT,
                    "{what}: the client's SYN"
                );
                let key = lvs::dataplane::plan::vip_key(SocketAddr::new(vip, port), Protocol::Tcp);
                let did = dp.tables.dest_id(&key, real_of(vip)).expect("dest id");
                let before = dp.tables.stats().dest(did).unwrap();
                let conns = dp.tables.conns(did).expect("counts");

                let err = error(&reply_quote(vip, port));
                let out = run(&mut dp, &err);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: to the real");
                let mut want = Vec::new();
                want.extend_from_slice(&REAL_MAC);
                want.extend_from_slice(&EGRESS_MAC);
                if port == 81 {
                    // Direct routing: the MACs, nothing else.
                    want.extend_from_slice(&err[12..]);
                } else if v4 {
                    // IPv4 in IPv4 as the tunnel builds it: the inner TOS and DF (none
                    // here), its identification, TTL 64, the route's source.
                    let inner = &err[14..];
                    let mut outer = vec![0x45, inner[1]];
                    outer.extend_from_slice(&((20 + inner.len()) as u16).to_be_bytes());
                    outer.extend_from_slice(&inner[4..6]);
                    outer.extend_from_slice(&[inner[6] & 0x40, 0, 64, 4, 0, 0]);
                    outer.extend_from_slice(&DIRECTOR4.octets());
                    outer.extend_from_slice(&REAL4.octets());
                    let c = lvs_tests::packet::checksum(&outer);
                    outer[10..12].copy_from_slice(&c.to_be_bytes());
                    want.extend_from_slice(&[0x08, 0x00]);
                    want.extend_from_slice(&outer);
                    want.extend_from_slice(inner);
                } else {
                    // IPv6 in IPv6: the inner traffic class, flow label 0, hop limit 64.
                    let inner = &err[14..];
                    let mut outer = vec![0x60, 0, 0, 0];
                    outer.extend_from_slice(&(inner.len() as u16).to_be_bytes());
                    outer.extend_from_slice(&[41, 64]);
                    outer.extend_from_slice(&DIRECTOR6.octets());
                    outer.extend_from_slice(&REAL6.octets());
                    want.extend_from_slice(&[0x86, 0xdd]);
                    want.extend_from_slice(&outer);
                    want.extend_from_slice(inner);
                }
                assert_eq!(out.frame, want, "{what}: as it must leave");
                let after = dp.tables.stats().dest(did).unwrap();
                assert_eq!(
                    (after.packets, after.bytes),
                    (before.packets + 1, before.bytes + err.len() as u64),
                    "{what}: counted in"
                );
                assert_eq!(
                    dp.tables.conns(did).expect("counts"),
                    conns,
                    "{what}: state"
                );

                let mut other = reply_quote(vip, port);
                let at = other.len() - 6;
                other[at..at + 2].copy_from_slice(&40001u16.to_be_bytes());
                let stray = error(&other);
                let out = run(&mut dp, &stray);
                assert_eq!(
                    (out.verdict, &out.frame),
                    (XDP_PASS, &stray),
                    "{what}: about no flow"
                );
            }
        }
    });
}
