//! The NAT forwarding method (`masq`) on crafted frames through BPF_PROG_TEST_RUN, in a network
//! namespace of the test's own whose FIB holds the reals (on the egress link) and the route to
//! the clients (through a router): both directions, IPv4 and IPv6, TCP and UDP, a real whose
//! port differs from the VIP's, every header and checksum compared byte for byte with one
//! recomputed here from scratch; a reply whose flow is unknown and the director's own traffic
//! passed untouched; later fragments translated; the state of a NATed connection moved by both
//! directions.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::Command,
};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN, fix_ipv4_checksum, fragments},
    xdp::run,
};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100);
/// Behind the router 10.99.0.254 / fd99::fe.
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10);
/// On the egress link, as the NAT reals are.
const REAL4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 11);
const REAL6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x11);
const REAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
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
/// egress link `d0` (a veth) holding the reals, a route to the clients through a router on
/// it, and forwarding on.
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

fn nat_service(
    vip: IpAddr,
    port: u16,
    protocol: Protocol,
    real: IpAddr,
    rport: u16,
) -> ServicePlan {
    ServicePlan {
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

fn loaded() -> Dataplane {
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

fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => CLIENT4.into(),
        IpAddr::V6(_) => CLIENT6.into(),
    }
}

fn real_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => REAL4.into(),
        IpAddr::V6(_) => REAL6.into(),
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

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

/// Writes the transport checksum of the unfragmented frame `b` (Ethernet, IPv4 without
/// options or IPv6 without extension headers), computed from scratch. A UDP checksum of 0 in
/// an IPv4 frame is kept when `keep_zero`.
fn set_l4_checksum(b: &mut [u8], keep_zero: bool) {
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
fn to_vip(vip: IpAddr, port: u16, udp: bool, flags: u8) -> Vec<u8> {
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
fn from_real(real: IpAddr, rport: u16, udp: bool, flags: u8) -> Vec<u8> {
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
fn translated(
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
fn forwarded(input: &[u8], real: IpAddr, rport: u16) -> Vec<u8> {
    let at = if real.is_ipv4() { 16 } else { 24 };
    translated(input, REAL_MAC, real, at, rport, 2)
}

/// The reply to the client: source address and port translated back to the VIP's.
fn replied(input: &[u8], vip: IpAddr, vport: u16) -> Vec<u8> {
    let at = if vip.is_ipv4() { 12 } else { 8 };
    translated(input, ROUTER_MAC, vip, at, vport, 0)
}

/// Both directions of one flow of each kind, byte for byte.
#[test]
fn both_directions_translated_byte_exact() {
    in_lab_netns(|| {
        let mut dp = loaded();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let real = real_of(vip);
            for (udp, vport, rport) in [(false, 80, 8080), (true, 53, 5353)] {
                let what = format!("{vip} {}", if udp { "udp" } else { "tcp" });
                let input = to_vip(vip, vport, udp, SYN);
                let out = run(&mut dp, &input);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: out through d0");
                assert_eq!(
                    out.frame,
                    forwarded(&input, real, rport),
                    "{what}: to the real"
                );

                let reply = from_real(real, rport, udp, SYN | ACK);
                let out = run(&mut dp, &reply);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: reply out through d0");
                assert_eq!(
                    out.frame,
                    replied(&reply, vip, vport),
                    "{what}: to the client"
                );

                // The established flow's next packet, with data.
                let mut f = if udp {
                    Frame::udp(client_of(vip), 40000, vip, vport)
                } else {
                    Frame::tcp(client_of(vip), 40000, vip, vport, ACK)
                };
                f.payload = (0..=255).collect();
                let mut input = f.build();
                set_l4_checksum(&mut input, false);
                let out = run(&mut dp, &input);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: established");
                assert_eq!(
                    out.frame,
                    forwarded(&input, real, rport),
                    "{what}: established"
                );
            }
        }
    });
}

/// The replies are counted as IPVS counts them, in the OutPkts and OutBytes of the service
/// and of the real (whole frames), the client's packets in InPkts and InBytes; an ICMP error
/// from the inside about the flow is a reply too; a packet passed untranslated (a reply of
/// no flow) counts nowhere.
#[test]
fn replies_are_counted_out_for_the_service_and_the_real() {
    in_lab_netns(|| {
        let mut dp = loaded();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let real = real_of(vip);
            let key = lvs::dataplane::plan::vip_key(SocketAddr::new(vip, 80), Protocol::Tcp);
            let sid = dp.tables.service_id(&key).expect("service id");
            let did = dp.tables.dest_id(&key, real).expect("dest id");
            let sent = |dp: &mut Dataplane, b: Vec<u8>| {
                assert_eq!(run(dp, &b).verdict, XDP_REDIRECT, "{vip}");
                b.len() as u64
            };
            let in1 = sent(&mut dp, to_vip(vip, 80, false, SYN));
            let out1 = sent(&mut dp, from_real(real, 8080, false, SYN | ACK));
            let in2 = sent(&mut dp, to_vip(vip, 80, false, ACK));
            let mut f = Frame::tcp(real, 8080, client_of(real), 40000, ACK);
            f.src_mac = REAL_MAC;
            f.payload = vec![7; 1000];
            let mut data = f.build();
            set_l4_checksum(&mut data, false);
            let out2 = sent(&mut dp, data);
            // A reply of no flow: passed, counted nowhere.
            let stray = from_real(real, 8081, false, ACK);
            assert_eq!(run(&mut dp, &stray).verdict, XDP_PASS);
            let want = lvs_common::Counters {
                packets: 2,
                bytes: in1 + in2,
                connections: 1,
                out_packets: 2,
                out_bytes: out1 + out2,
            };
            let stats = dp.tables.stats();
            assert_eq!(stats.service(sid).unwrap(), want, "{vip}: the service");
            assert_eq!(stats.dest(did).unwrap(), want, "{vip}: the real");
        }
    });
}

/// A UDP-over-IPv4 datagram without a checksum (0) keeps none, both ways; the real's port 0
/// keeps the VIP's.
#[test]
fn no_udp_checksum_stays_none_and_port_0_keeps_the_vips() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let mut input = Frame::udp(CLIENT4.into(), 40001, VIP4.into(), 53).build();
        assert_eq!(&input[40..42], &[0, 0]);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(&out.frame[40..42], &[0, 0], "no checksum");
        assert_eq!(out.frame, forwarded(&input, REAL4.into(), 5353));
        let mut reply = Frame::udp(REAL4.into(), 5353, CLIENT4.into(), 40001);
        reply.src_mac = REAL_MAC;
        let reply = reply.build();
        let out = run(&mut dp, &reply);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(out.frame, replied(&reply, VIP4.into(), 53));

        input = to_vip(VIP4.into(), 443, false, SYN);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(out.frame, forwarded(&input, REAL4.into(), 443), "port kept");
        let reply = from_real(REAL4.into(), 443, false, SYN | ACK);
        let out = run(&mut dp, &reply);
        assert_eq!(out.frame, replied(&reply, VIP4.into(), 443));
    });
}

/// What is not a NATed flow's reply is XDP_PASS, untouched: the real's packet to a client it
/// has no flow with (or from another port), the director's own traffic, a reply fragment.
#[test]
fn traffic_of_no_nated_flow_passes_untouched() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let untouched = |dp: &mut Dataplane, b: &[u8], what: &str| {
            let out = run(dp, b);
            assert_eq!((out.verdict, out.frame.as_slice()), (XDP_PASS, b), "{what}");
        };
        untouched(
            &mut dp,
            &from_real(REAL4.into(), 8080, false, SYN | ACK),
            "no flow yet",
        );
        let input = to_vip(VIP4.into(), 80, false, SYN);
        assert_eq!(run(&mut dp, &input).verdict, XDP_REDIRECT);
        untouched(
            &mut dp,
            &from_real(REAL4.into(), 8081, false, ACK),
            "another port",
        );
        let mut own = Frame::tcp(
            Ipv4Addr::new(10, 99, 0, 50).into(),
            50000,
            Ipv4Addr::new(10, 99, 0, 1).into(),
            22,
            SYN,
        )
        .build();
        set_l4_checksum(&mut own, false);
        untouched(&mut dp, &own, "the director's own traffic");
        let mut own6 = Frame::tcp(
            REAL6.into(),
            8080,
            Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1).into(),
            22,
            SYN,
        )
        .build();
        set_l4_checksum(&mut own6, false);
        untouched(&mut dp, &own6, "a real's own traffic to the director");
        // The flow's reply, whole, is translated.
        assert_eq!(
            run(&mut dp, &from_real(REAL4.into(), 8080, false, SYN | ACK)).verdict,
            XDP_REDIRECT
        );
    });
}

/// A fragmented datagram to the VIP: every fragment gets the real's address (the first its
/// port and the transport checksum for the whole datagram), IPv4 header checksums right.
#[test]
fn later_fragments_are_translated() {
    in_lab_netns(|| {
        let mut dp = loaded();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let real = real_of(vip);
            let mut f = Frame::udp(client_of(vip), 40002, vip, 53);
            f.payload = (0..200u8).collect();
            let frags = fragments(&f, 64, 0x4242);
            // The whole datagram as the real must reassemble it: its checksum from scratch.
            let mut whole = f.build();
            set_l4_checksum(&mut whole, false);
            let want = forwarded(&whole, real, 5353);
            let l3 = 14;
            let (unfrag, addr_at) = if vip.is_ipv4() { (20, 16) } else { (48, 24) };
            let mut data = Vec::new();
            for (i, fr) in frags.iter().enumerate() {
                let out = run(&mut dp, fr);
                assert_eq!(out.verdict, XDP_REDIRECT, "{vip}: fragment {i}");
                let o = &out.frame;
                let a = octets(real);
                assert_eq!(
                    &o[l3 + addr_at..l3 + addr_at + a.len()],
                    a.as_slice(),
                    "{vip}: fragment {i}'s destination"
                );
                if vip.is_ipv4() {
                    let mut fixed = o.clone();
                    fix_ipv4_checksum(&mut fixed, l3);
                    assert_eq!(&fixed, o, "{vip}: fragment {i}'s header checksum");
                    assert_eq!(o[22], 63, "TTL");
                } else {
                    assert_eq!(o[21], 63, "hop limit");
                }
                data.extend_from_slice(&o[l3 + unfrag..]);
            }
            let l4 = if vip.is_ipv4() { 34 } else { 54 };
            assert_eq!(
                data,
                want[l4..],
                "{vip}: the datagram as the real reassembles it"
            );
        }
    });
}

/// A NATed connection's state follows both directions (IPVS's INPUT and OUTPUT tables), and
/// with it the real's ActiveConn/InActConn: the real's RST to a SYN (a closed port) closes the
/// connection (inactive), where DR's INPUT-ONLY table, or the client's packets alone, would
/// keep it in SYN_RECV (active); an established connection reset by the real is closed too.
#[test]
fn the_state_follows_both_directions() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let key = lvs::dataplane::plan::vip_key(SocketAddr::new(VIP4.into(), 80), Protocol::Tcp);
        let id = dp.tables.dest_id(&key, REAL4.into()).expect("dest id");
        let conns = |dp: &Dataplane| dp.tables.conns(id).expect("counts");
        let sent = |dp: &mut Dataplane, b: Vec<u8>| assert_eq!(run(dp, &b).verdict, XDP_REDIRECT);
        sent(&mut dp, to_vip(VIP4.into(), 80, false, SYN));
        assert_eq!(conns(&dp), (1, 0), "SYN_RECV: active");
        sent(&mut dp, from_real(REAL4.into(), 8080, false, 0x04 | ACK));
        assert_eq!(
            conns(&dp),
            (0, 1),
            "CLOSE, by the real's RST to the SYN: inactive"
        );
        // The client's next SYN is a new connection (from CLOSE): counted anew, once.
        sent(&mut dp, to_vip(VIP4.into(), 80, false, SYN));
        assert_eq!(conns(&dp), (1, 0), "SYN_RECV again");
        sent(&mut dp, from_real(REAL4.into(), 8080, false, SYN | ACK));
        sent(&mut dp, to_vip(VIP4.into(), 80, false, ACK));
        assert_eq!(conns(&dp), (1, 0), "ESTABLISHED: active");
        sent(&mut dp, from_real(REAL4.into(), 8080, false, 0x04));
        assert_eq!(conns(&dp), (0, 1), "CLOSE, by the real's RST: inactive");
        // The client's FIN then keeps it closed (INPUT table: CLOSE stays CLOSE).
        sent(&mut dp, to_vip(VIP4.into(), 80, false, 0x01 | ACK));
        assert_eq!(conns(&dp), (0, 1));
    });
}

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
        let icmp_frame = |quote: &[u8], t: u8, code: u8| {
            let mut icmp = vec![t, code, 0, 0, 0, 0, 0x05, 0x00]; // next-hop MTU 1280
            icmp.extend_from_slice(quote);
            let c = lvs_tests::packet::checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let mut b = Vec::new();
            b.extend_from_slice(&DIRECTOR_MAC);
            b.extend_from_slice(&ROUTER_MAC);
            b.extend_from_slice(&[0x08, 0x00, 0x45, 0xc0]);
            b.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
            b.extend_from_slice(&router.octets());
            b.extend_from_slice(&CLIENT4.octets());
            fix_ipv4_checksum(&mut b, 14);
            b.extend_from_slice(&icmp);
            b
        };
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
        let frame = |src: Ipv6Addr, quote: &[u8], t: u8, hop: u8| {
            let mut icmp = vec![t, 0, 0, 0, 0, 0, 0x05, 0x00]; // MTU 1280
            icmp.extend_from_slice(quote);
            let mut pseudo = src.octets().to_vec();
            pseudo.extend_from_slice(&CLIENT6.octets());
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
            b.extend_from_slice(&CLIENT6.octets());
            b.extend_from_slice(&icmp);
            b
        };
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

/// Opens a NATed TCP flow to `vip`:80 (the client's SYN, the real's SYN-ACK from port 8080)
/// and returns the real's SYN-ACK as it sent it and as the director sent it on (from the VIP).
fn opened(dp: &mut Dataplane, vip: IpAddr) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(run(dp, &to_vip(vip, 80, false, SYN)).verdict, XDP_REDIRECT);
    let reply = from_real(real_of(vip), 8080, false, SYN | ACK);
    let out = run(dp, &reply);
    assert_eq!(out.verdict, XDP_REDIRECT, "{vip}: the reply");
    (reply, out.frame)
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

/// The NAT flag (`LVS_NAT_ON`) the balancer reads, found through the balancer program.
fn nat_flag(dp: &mut Dataplane) -> aya::maps::Array<aya::maps::MapData, u32> {
    let ids = dp
        .balancer()
        .expect("the balancer")
        .info()
        .expect("its info")
        .map_ids()
        .expect("its maps")
        .expect("map ids");
    for id in ids {
        let data = aya::maps::MapData::from_id(id).expect("a map");
        if data.info().expect("map info").name_as_str() == Some("LVS_NAT_ON") {
            return aya::maps::Array::try_from(aya::maps::Map::Array(data)).expect("an array");
        }
    }
    panic!("the balancer has no LVS_NAT_ON map");
}

fn nat_on(dp: &mut Dataplane) -> u32 {
    nat_flag(dp).get(&0, 0).expect("read")
}

/// The agent's NAT flag follows the tables: 1 while a NATed real is in them, 0 once none is;
/// the balancer looks a reply up only while it is 1 (with it cleared by hand, a NATed flow's
/// reply passes untouched: the lookup the director's own traffic no longer pays).
#[test]
fn replies_are_looked_up_only_while_a_nated_real_is_in_the_tables() {
    in_lab_netns(|| {
        let mut dp = loaded();
        assert_eq!(nat_on(&mut dp), 1, "NATed reals");
        let (reply, _) = opened(&mut dp, VIP4.into());
        assert_eq!(run(&mut dp, &reply).verdict, XDP_REDIRECT, "translated");

        nat_flag(&mut dp).set(0, 0, 0).expect("clear");
        let out = run(&mut dp, &reply);
        assert_eq!(
            (out.verdict, &out.frame),
            (XDP_PASS, &reply),
            "flag 0: not looked up"
        );

        dp.tables.apply(&[]).expect("no service");
        assert_eq!(nat_on(&mut dp), 0, "no NATed real");
        dp.tables
            .apply(&[nat_service(
                VIP6.into(),
                53,
                Protocol::Udp,
                REAL6.into(),
                5353,
            )])
            .expect("one NATed real");
        assert_eq!(nat_on(&mut dp), 1, "a NATed real again");
    });
}
