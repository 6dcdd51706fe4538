//! What the NAT packet tests share (`packets_nat.rs`, `packets_nat_icmp.rs`): a network
//! namespace whose FIB holds the reals and the route to the clients, the services, the
//! frames, and the translation recomputed from scratch.
#![allow(dead_code)]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::Command,
};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN, fix_ipv4_checksum},
    xdp::run,
};

pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100);
/// Behind the router 10.99.0.254 / fd99::fe.
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10);
/// On the egress link, as the NAT reals are.
pub const REAL4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 11);
pub const REAL6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x11);
pub const REAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const EGRESS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xd0];

pub fn sh(cmd: &str) {
    let st = Command::new("sh")
        .args(["-ec", cmd])
        .status()
        .expect("running sh");
    assert!(st.success(), "`{cmd}` failed: {st}");
}

/// Runs `f` on a thread in a new network namespace (removed when the thread ends) with an
/// egress link `d0` (a veth) holding the reals, a route to the clients through a router on
/// it, and forwarding on.
pub fn in_lab_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
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
                ip neigh add 10.99.0.11 lladdr 02:00:00:00:00:11 dev d0 nud permanent
                ip -6 neigh add fd99::11 lladdr 02:00:00:00:00:11 dev d0 nud permanent
                ip route add 198.18.1.0/24 via 10.99.0.254
                ip -6 route add fd00:198:18:1::/64 via fd99::fe
                sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.lo.forwarding=1
                sysctl -qw net.ipv6.conf.all.forwarding=1");
            f()
        });
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

pub fn nat_service(
    vip: IpAddr,
    port: u16,
    protocol: Protocol,
    real: IpAddr,
    rport: u16,
) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(vip, port),
        protocol,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: vec![DestPlan {
            addr: real,
            weight: 1,
            table_weight: 1,
            target: Target::Masq { port: rport },
        }],
        fallback: None,
        aliases: Vec::new(),
    }
}

pub fn loaded() -> Dataplane {
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables
        .apply(&[
            nat_service(VIP4.into(), 80, Protocol::Tcp, REAL4.into(), 8080),
            nat_service(VIP4.into(), 53, Protocol::Udp, REAL4.into(), 5353),
            nat_service(VIP4.into(), 443, Protocol::Tcp, REAL4.into(), 0),
            nat_service(VIP6.into(), 80, Protocol::Tcp, REAL6.into(), 8080),
            nat_service(VIP6.into(), 53, Protocol::Udp, REAL6.into(), 5353),
        ])
        .expect("apply plans");
    dp
}

pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => CLIENT4.into(),
        IpAddr::V6(_) => CLIENT6.into(),
    }
}

pub fn real_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => REAL4.into(),
        IpAddr::V6(_) => REAL6.into(),
    }
}

pub fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

pub fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Writes the transport checksum of the unfragmented frame `b` (Ethernet, IPv4 without
/// options or IPv6 without extension headers), computed from scratch. A UDP checksum of 0 in
/// an IPv4 frame is kept when `keep_zero`.
pub fn set_l4_checksum(b: &mut [u8], keep_zero: bool) {
    let v4 = b[12] == 0x08;
    let (l4, proto, src, dst) = if v4 {
        (34, b[23], b[26..30].to_vec(), b[30..34].to_vec())
    } else {
        (54, b[20], b[22..38].to_vec(), b[38..54].to_vec())
    };
    let at = l4 + if proto == 17 { 6 } else { 16 };
    if v4 && proto == 17 && keep_zero && b[at..at + 2] == [0, 0] {
        return;
    }
    b[at..at + 2].fill(0);
    let len = b.len() - l4;
    let mut pseudo = src;
    pseudo.extend_from_slice(&dst);
    if v4 {
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&(len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, proto]);
    }
    let mut c = fold(sum(&pseudo) + sum(&b[l4..]));
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// A client's packet to `vip:port`, with correct checksums.
pub fn to_vip(vip: IpAddr, port: u16, udp: bool, flags: u8) -> Vec<u8> {
    let f = if udp {
        Frame::udp(client_of(vip), 40000, vip, port)
    } else {
        Frame::tcp(client_of(vip), 40000, vip, port, flags)
    };
    let mut b = f.build();
    set_l4_checksum(&mut b, false);
    b
}

/// The real's packet `real:rport` → client:40000, with correct checksums.
pub fn from_real(real: IpAddr, rport: u16, udp: bool, flags: u8) -> Vec<u8> {
    let mut f = if udp {
        Frame::udp(real, rport, client_of(real), 40000)
    } else {
        Frame::tcp(real, rport, client_of(real), 40000, flags)
    };
    f.src_mac = REAL_MAC;
    let mut b = f.build();
    set_l4_checksum(&mut b, false);
    b
}

/// `input` as it must leave: Ethernet `dst_mac` from the egress interface, the address at
/// `addr_at` (an offset in the IP header) and the port at `port_at` (in the transport header)
/// replaced, TTL / hop limit one less, and every checksum recomputed from scratch.
pub fn translated(
    input: &[u8],
    dst_mac: [u8; 6],
    addr: IpAddr,
    addr_at: usize,
    port: u16,
    port_at: usize,
) -> Vec<u8> {
    let mut b = input.to_vec();
    b[0..6].copy_from_slice(&dst_mac);
    b[6..12].copy_from_slice(&EGRESS_MAC);
    let v4 = addr.is_ipv4();
    let a = octets(addr);
    b[14 + addr_at..14 + addr_at + a.len()].copy_from_slice(&a);
    let l4 = if v4 { 34 } else { 54 };
    b[l4 + port_at..l4 + port_at + 2].copy_from_slice(&port.to_be_bytes());
    if v4 {
        b[22] -= 1;
        fix_ipv4_checksum(&mut b, 14);
    } else {
        b[21] -= 1;
    }
    set_l4_checksum(&mut b, true);
    b
}

/// The forward packet to the real: destination address and port translated.
pub fn forwarded(input: &[u8], real: IpAddr, rport: u16) -> Vec<u8> {
    let at = if real.is_ipv4() { 16 } else { 24 };
    translated(input, REAL_MAC, real, at, rport, 2)
}

/// The reply to the client: source address and port translated back to the VIP's.
pub fn replied(input: &[u8], vip: IpAddr, vport: u16) -> Vec<u8> {
    let at = if vip.is_ipv4() { 12 } else { 8 };
    translated(input, ROUTER_MAC, vip, at, vport, 0)
}

/// Opens a NATed TCP flow to `vip`:80 (the client's SYN, the real's SYN-ACK from port 8080)
/// and returns the real's SYN-ACK as it sent it and as the director sent it on (from the VIP).
pub fn opened(dp: &mut Dataplane, vip: IpAddr) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(run(dp, &to_vip(vip, 80, false, SYN)).verdict, XDP_REDIRECT);
    let reply = from_real(real_of(vip), 8080, false, SYN | ACK);
    let out = run(dp, &reply);
    assert_eq!(out.verdict, XDP_REDIRECT, "{vip}: the reply");
    (reply, out.frame)
}
