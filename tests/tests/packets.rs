//! The balancer on crafted frames through BPF_PROG_TEST_RUN: parsing, scheduling, the
//! connection table, persistence, fallback, removal and quiescing, counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_common::stats::DropReason;
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, L4, SYN},
    xdp::{Outcome, TEST_RUN_IFINDEX, pin_to_one_cpu, run},
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
        target: Target::Remote {
            mac: real_mac(i),
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

fn service(vip: IpAddr, port: u16, protocol: Protocol, dests: Vec<DestPlan>) -> ServicePlan {
    ServicePlan {
        vip: SocketAddr::new(vip, port),
        protocol,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests,
        fallback: None,
    }
}

fn loaded(plans: &[ServicePlan]) -> Dataplane {
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
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
            ipv6_ext: vec![(43, 8), (0, 8), (60, 8), (0, 8), (60, 8)], // longer than followed
            ..Frame::tcp(CLIENT6, 40000, VIP6, 80, SYN)
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
fn fragments_pass_untouched() {
    let mut dp = loaded(&[
        service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]),
        service(VIP6, 80, Protocol::Tcp, vec![real(1, 1)]),
    ]);
    let mut first = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN);
    first.fragment = true;
    let mut later = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN);
    later.fragment_offset = 185;
    let mut v6 = Frame::tcp(CLIENT6, 40000, VIP6, 80, SYN);
    v6.fragment = true;
    for fr in [first, later, v6] {
        let f = fr.build();
        assert_passed_untouched(&f, &run(&mut dp, &f));
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
        .apply(&[service(
            VIP4,
            53,
            Protocol::Udp,
            vec![real(1, 1), real(2, 1), real(3, 1)],
        )])
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

    let mut sh = service(
        VIP4,
        80,
        Protocol::Tcp,
        vec![real(1, 1), real(2, 1), real(3, 1)],
    );
    sh.scheduler = Scheduler::Sh;
    dp.tables.apply(&[sh]).unwrap();
    let mut per_client = std::collections::HashMap::new();
    let mut used = std::collections::HashSet::new();
    for c in 0..60u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0xc612_0100 + c));
        for port in 0..5 {
            let f = Frame::tcp(src, 10000 + port, VIP4, 80, SYN).build();
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
    let mut s = service(
        VIP4,
        80,
        Protocol::Tcp,
        vec![real(1, 1), real(2, 1), real(3, 1)],
    );
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
    let all = vec![real(1, 1), real(2, 1), real(3, 1)];
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
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![r])]);
    let lines = Lines::default();
    let mut logger = aya_log::EbpfLogger::init_with_logger(dp.ebpf(), lines.clone()).unwrap();
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    for _ in 0..50 {
        assert_eq!(run(&mut dp, &syn).verdict, XDP_DROP);
    }
    assert_eq!(
        dp.tables.stats().drops(DropReason::RedirectFailed).unwrap(),
        50
    );
    // The kernel logs it, but not once per packet.
    logger.flush();
    let lines = lines.0.lock().unwrap();
    assert!(
        (1..=2).contains(&lines.len()) && lines[0].contains("redirect_failed"),
        "kernel log: {lines:?}"
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
    let ok = std::process::Command::new("ip")
        .args([
            "link", "add", "lvsnic2", "type", "veth", "peer", "name", "lvsnic2p",
        ])
        .status()
        .expect("ip link add");
    assert!(ok.success());
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

#[test]
fn persistence_expires_after_its_timeout() {
    pin_to_one_cpu();
    let mut s = service(
        VIP4,
        80,
        Protocol::Tcp,
        vec![real(1, 1), real(2, 1), real(3, 1)],
    );
    s.scheduler = Scheduler::Rr;
    s.persistence = Some((1, 32));
    let mut dp = loaded(&[s]);
    let conn = |dp: &mut Dataplane, port| {
        let f = Frame::tcp(CLIENT4, port, VIP4, 80, SYN).build();
        forwarded_to(&f, &run(dp, &f))
    };
    let first = conn(&mut dp, 30000);
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(conn(&mut dp, 30001), first, "within the timeout: same real");
    // Each use refreshes the entry: 600 ms later it still holds.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(
        conn(&mut dp, 30002),
        first,
        "refreshed by the last connection"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_ne!(
        conn(&mut dp, 30003),
        first,
        "expired: scheduled by the ring again"
    );
}
