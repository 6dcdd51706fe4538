//! The tunnel forwarding method (`ipip`) on crafted frames through BPF_PROG_TEST_RUN, in a
//! network namespace of the test's own whose FIB holds the routes to the reals: IPv4 in IPv4
//! and IPv6 in IPv6 with headers and checksums compared byte for byte with ones computed here,
//! ICMP fragmentation needed / packet too big for a packet the path cannot carry once
//! encapsulated, and drops without a route or without forwarding on the ingress interface.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::Command,
};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_common::stats::DropReason;
use lvs_tests::{
    packet::{CLIENT_MAC, DIRECTOR_MAC, Frame, SYN, checksum, fix_ipv4_checksum},
    xdp::run,
};

const XDP_DROP: u32 = 1;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10);
/// The director's address on the egress link: the routes' preferred source.
const DIRECTOR4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const DIRECTOR6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
/// Behind the router 10.99.0.254 / fd99::fe.
const REAL4: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 11);
const REAL6: Ipv6Addr = Ipv6Addr::new(0xfd98, 0, 0, 0, 0, 0, 0, 0x11);
/// Behind the same router, on routes with MTU 1400 (locked: the kernel uses a route's MTU for
/// forwarded packets, which the FIB helper checks, only when locked).
const NARROW4: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const NARROW6: Ipv6Addr = Ipv6Addr::new(0xfd96, 0, 0, 0, 0, 0, 0, 0x11);
/// Without a route.
const NOWHERE4: Ipv4Addr = Ipv4Addr::new(10, 95, 0, 11);
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const EGRESS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xd0];

fn sh(cmd: &str) {
    let st = Command::new("sh")
        .args(["-ec", cmd])
        .status()
        .expect("running sh");
    assert!(st.success(), "`{cmd}` failed: {st}");
}

/// Runs `f` on a thread in a new network namespace (removed when the thread ends) with an
/// egress link `d0` (a veth; this kernel has no dummy devices) to a router, routes through it, and forwarding on.
fn in_lab_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(NEWNET)");
            sh("ip link set lo up
                ip link add d0 address 02:00:00:00:00:d0 mtu 1500 type veth peer name d1
                ip link set d1 up
                ip link set d0 up
                ip addr add 10.99.0.1/24 dev d0
                ip -6 addr add fd99::1/64 dev d0 nodad
                ip neigh add 10.99.0.254 lladdr 02:00:00:00:00:fe dev d0 nud permanent
                ip -6 neigh add fd99::fe lladdr 02:00:00:00:00:fe dev d0 nud permanent
                ip route add 10.98.0.0/24 via 10.99.0.254
                ip -6 route add fd98::/64 via fd99::fe
                ip route add 10.96.0.0/24 via 10.99.0.254 mtu lock 1400
                ip -6 route add fd96::/64 via fd99::fe mtu lock 1400
                sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.lo.forwarding=1
                sysctl -qw net.ipv6.conf.all.forwarding=1");
            f()
        });
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn tunnel_service(vip: IpAddr, port: u16, real: IpAddr) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(vip, port),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: vec![DestPlan {
            addr: real,
            weight: 1,
            table_weight: 1,
            target: Target::Tunnel { src: None },
        }],
        fallback: None,
        aliases: Vec::new(),
    }
}

fn loaded() -> Dataplane {
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables
        .apply(&[
            tunnel_service(VIP4.into(), 80, REAL4.into()),
            tunnel_service(VIP4.into(), 81, NARROW4.into()),
            tunnel_service(VIP4.into(), 82, NOWHERE4.into()),
            tunnel_service(VIP6.into(), 80, REAL6.into()),
            tunnel_service(VIP6.into(), 81, NARROW6.into()),
        ])
        .expect("apply plans");
    dp
}

/// A TCP SYN to the VIP with `payload` bytes, TOS 0x28 and (IPv4) DF set.
fn syn(dst: IpAddr, dport: u16, payload: usize) -> Vec<u8> {
    let src: IpAddr = match dst {
        IpAddr::V4(_) => CLIENT4.into(),
        IpAddr::V6(_) => CLIENT6.into(),
    };
    let mut f = Frame::tcp(src, 40000, dst, dport, SYN);
    f.payload = vec![0x5a; payload];
    let mut b = f.build();
    if dst.is_ipv4() {
        b[15] = 0x28;
        b[20] = 0x40;
        fix_ipv4_checksum(&mut b, 14);
    } else {
        b[14] = 0x62; // traffic class 0x28: version 6, then 0x2, 0x8
        b[15] = 0x80;
    }
    b
}

/// The one's complement sum of `b`, unfolded (for pseudo-headers).
fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[test]
fn ipv4_in_ipv4_to_a_routed_real_byte_exact() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let input = syn(VIP4.into(), 80, 100);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT, "out through d0");

        let inner = &input[14..];
        let mut want = Vec::new();
        want.extend_from_slice(&ROUTER_MAC);
        want.extend_from_slice(&EGRESS_MAC);
        want.extend_from_slice(&[0x08, 0x00]);
        let mut outer = vec![0x45, 0x28];
        outer.extend_from_slice(&((inner.len() + 20) as u16).to_be_bytes());
        outer.extend_from_slice(&inner[4..6]); // identification, from the inner header
        outer.extend_from_slice(&[0x40, 0, 64, 4, 0, 0]); // DF, TTL 64, IPIP
        outer.extend_from_slice(&DIRECTOR4.octets());
        outer.extend_from_slice(&REAL4.octets());
        let c = checksum(&outer);
        outer[10..12].copy_from_slice(&c.to_be_bytes());
        want.extend_from_slice(&outer);
        want.extend_from_slice(inner);
        assert_eq!(out.frame, want);
        assert_eq!(checksum(&out.frame[14..34]), 0, "outer header checksum");

        // Without DF in the inner header, none in the outer.
        let mut no_df = input.clone();
        no_df[20] = 0;
        fix_ipv4_checksum(&mut no_df, 14);
        let out = run(&mut dp, &no_df);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(out.frame[20], 0, "no DF");
        assert_eq!(checksum(&out.frame[14..34]), 0, "outer header checksum");
        assert_eq!(&out.frame[34..], &no_df[14..]);
    });
}

#[test]
fn ipv6_in_ipv6_to_a_routed_real_byte_exact() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let input = syn(VIP6.into(), 80, 100);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT, "out through d0");

        let inner = &input[14..];
        let mut want = Vec::new();
        want.extend_from_slice(&ROUTER_MAC);
        want.extend_from_slice(&EGRESS_MAC);
        want.extend_from_slice(&[0x86, 0xdd]);
        want.extend_from_slice(&[0x62, 0x80, 0, 0]); // traffic class copied, flow label 0
        want.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        want.extend_from_slice(&[41, 64]);
        want.extend_from_slice(&DIRECTOR6.octets());
        want.extend_from_slice(&REAL6.octets());
        want.extend_from_slice(inner);
        assert_eq!(out.frame, want);
    });
}

#[test]
fn too_big_once_encapsulated_gets_icmp_fragmentation_needed() {
    in_lab_netns(|| {
        let mut dp = loaded();
        // 20 + 20 + 1360 = 1400 bytes fit the 1400-byte route bare, not with 20 more.
        let input = syn(VIP4.into(), 81, 1360);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_TX, "back to the client");

        let quote = &input[14..14 + 68]; // the IP header and more: 68 bytes
        let mut icmp = vec![3, 4, 0, 0, 0, 0];
        icmp.extend_from_slice(&(1400u16 - 20).to_be_bytes());
        icmp.extend_from_slice(quote);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x45, 0xc0];
        ip.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
        ip.extend_from_slice(&VIP4.octets());
        ip.extend_from_slice(&CLIENT4.octets());
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut want = Vec::new();
        want.extend_from_slice(&CLIENT_MAC);
        want.extend_from_slice(&DIRECTOR_MAC);
        want.extend_from_slice(&[0x08, 0x00]);
        want.extend_from_slice(&ip);
        want.extend_from_slice(&icmp);
        assert_eq!(out.frame, want);

        // One byte less fits once encapsulated: tunnelled.
        let fits = syn(VIP4.into(), 81, 1360 - 20);
        assert_eq!(run(&mut dp, &fits).verdict, XDP_REDIRECT);
    });
}

#[test]
fn too_big_once_encapsulated_gets_icmpv6_packet_too_big() {
    in_lab_netns(|| {
        let mut dp = loaded();
        // 40 + 20 + 1340 = 1400 bytes fit the route bare, not with 40 more.
        let input = syn(VIP6.into(), 81, 1340);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_TX, "back to the client");

        let quote = &input[14..14 + 128]; // the IPv6 header and more: 128 bytes
        let mut icmp = vec![2, 0, 0, 0];
        icmp.extend_from_slice(&(1400u32 - 40).to_be_bytes());
        icmp.extend_from_slice(quote);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&VIP6.octets());
        pseudo.extend_from_slice(&CLIENT6.octets());
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        let c = fold(sum(&pseudo) + sum(&icmp));
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut want = Vec::new();
        want.extend_from_slice(&CLIENT_MAC);
        want.extend_from_slice(&DIRECTOR_MAC);
        want.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        want.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        want.extend_from_slice(&[58, 255]);
        want.extend_from_slice(&VIP6.octets());
        want.extend_from_slice(&CLIENT6.octets());
        want.extend_from_slice(&icmp);
        assert_eq!(out.frame, want);

        let fits = syn(VIP6.into(), 81, 1340 - 40);
        assert_eq!(run(&mut dp, &fits).verdict, XDP_REDIRECT);
    });
}

#[test]
fn no_route_or_forwarding_off_is_dropped_and_counted() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let drops = |dp: &Dataplane| dp.tables.stats().drops(DropReason::NoRoute).unwrap();
        let before = drops(&dp);
        let out = run(&mut dp, &syn(VIP4.into(), 82, 10));
        assert_eq!(out.verdict, XDP_DROP, "no route to the real");
        assert_eq!(drops(&dp), before + 1);

        sh("sysctl -qw net.ipv4.conf.lo.forwarding=0");
        let out = run(&mut dp, &syn(VIP4.into(), 80, 10));
        assert_eq!(out.verdict, XDP_DROP, "the FIB helper needs forwarding on");
        assert_eq!(drops(&dp), before + 2);
        sh("sysctl -qw net.ipv4.conf.lo.forwarding=1");
        assert_eq!(
            run(&mut dp, &syn(VIP4.into(), 80, 10)).verdict,
            XDP_REDIRECT
        );
    });
}

/// The decapsulator (`lvs decap`) on what the tunnel sends: the inner frame, byte for byte,
/// behind the same Ethernet header; anything else untouched.
#[test]
fn the_decapsulator_strips_the_outer_header_of_packets_to_its_vips_only() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let mut decap =
            lvs::decap::Decap::load("test", &[VIP4.into(), VIP6.into()]).expect("load decap");
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let input = syn(vip, 80, 100);
            let tunnelled = run(&mut dp, &input);
            assert_eq!(tunnelled.verdict, XDP_REDIRECT);
            let out = lvs_tests::xdp::run_program(decap.program(), &tunnelled.frame);
            assert_eq!(out.verdict, XDP_PASS_VERDICT);
            let mut want = tunnelled.frame[..14].to_vec();
            want.extend_from_slice(&input[14..]);
            assert_eq!(
                out.frame, want,
                "{vip}: the inner packet behind the same MACs"
            );

            // The client's packet itself, and one tunnelled to another address: untouched.
            let out = lvs_tests::xdp::run_program(decap.program(), &input);
            assert_eq!(
                (out.verdict, &out.frame),
                (XDP_PASS_VERDICT, &input),
                "{vip}: not tunnelled"
            );
        }
        let mut other = lvs::decap::Decap::load("test", &["198.18.0.200".parse().unwrap()])
            .expect("load decap");
        let tunnelled = run(&mut dp, &syn(VIP4.into(), 80, 100));
        let out = lvs_tests::xdp::run_program(other.program(), &tunnelled.frame);
        assert_eq!(
            (out.verdict, &out.frame),
            (XDP_PASS_VERDICT, &tunnelled.frame),
            "to a VIP it was not given"
        );
    });
}

const XDP_PASS_VERDICT: u32 = 2;
