//! The next-hop cache in front of the FIB lookup (tunnel and NAT) on crafted frames through
//! BPF_PROG_TEST_RUN, in a network namespace of the test's own with the agent's follower of
//! routing changes running (`NextHopFollower`): a route or neighbour change of a tunnelled or
//! NATed real (and of a NATed flow's client) is followed by the next packet once the follower
//! has bumped the generation, and a neighbour entry announced again with the same MAC bumps
//! nothing; without a follower, within the cache's maximum age; a packet too big for a cached
//! route still gets its ICMP error with the route's MTU.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    time::Duration,
};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{
        Dataplane, DestPlan, ServicePlan, Target,
        next_hop::{NextHopFollower, NextHopGeneration},
    },
};
use lvs_common::next_hop::NEXT_HOP_MAX_AGE_NS;
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    wait::until,
    xdp::run,
};

const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// Behind the routers.
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// Tunnelled, behind the routers.
const TUNNEL_REAL: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 11);
/// Tunnelled, behind the routers on a route of MTU 1400.
const NARROW_REAL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
/// NATed, on the egress link.
const NAT_REAL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 11);
const ROUTER_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const ROUTER_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfd];
const NAT_REAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const NAT_REAL_NEW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x21];

fn sh(cmd: &str) {
    let st = Command::new("sh")
        .args(["-ec", cmd])
        .status()
        .expect("running sh");
    assert!(st.success(), "`{cmd}` failed: {st}");
}

/// Runs `f` on a thread in a new network namespace (removed when the thread ends) with an
/// egress link `d0` (a veth) to two routers, A (10.99.0.254) and B (10.99.0.253), the reals'
/// and clients' routes through A, and forwarding on.
fn in_lab_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h =
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(NEWNET)");
                // No IPv6 (the tests are IPv4's): its address and router notifications would
                // bump the generation at moments of their own.
                sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
                ip link set lo up
                ip link add d0 address 02:00:00:00:00:d0 mtu 1500 type veth peer name d1
                ip link set d1 up
                ip link set d0 up
                ip addr add 10.99.0.1/24 dev d0
                ip neigh add 10.99.0.254 lladdr 02:00:00:00:00:fe dev d0 nud permanent
                ip neigh add 10.99.0.253 lladdr 02:00:00:00:00:fd dev d0 nud permanent
                ip neigh add 10.99.0.11 lladdr 02:00:00:00:00:11 dev d0 nud permanent
                ip route add 10.98.0.0/24 via 10.99.0.254
                ip route add 10.96.0.0/24 via 10.99.0.254 mtu lock 1400
                ip route add 198.18.1.0/24 via 10.99.0.254
                sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.lo.forwarding=1");
                f()
            });
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn service(port: u16, real: Ipv4Addr, target: Target) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP4.into(), port),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: vec![DestPlan {
            addr: real.into(),
            weight: 1,
            table_weight: 1,
            target,
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
            service(80, TUNNEL_REAL, Target::Tunnel { src: None }),
            service(81, NARROW_REAL, Target::Tunnel { src: None }),
            service(85, NAT_REAL, Target::Masq { port: 8080 }),
        ])
        .expect("apply plans");
    dp
}

fn to_vip(port: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut f = Frame::tcp(CLIENT4.into(), 40000, VIP4.into(), port, flags);
    f.payload = vec![0x5a; payload];
    f.build()
}

/// The NATed real's reply to [`to_vip`] on port 85.
fn reply() -> Vec<u8> {
    let mut f = Frame::tcp(NAT_REAL.into(), 8080, CLIENT4.into(), 40000, ACK);
    f.src_mac = NAT_REAL_MAC;
    f.build()
}

/// The frame's Ethernet destination, after the balancer sent it with `verdict`.
fn next_hop_mac(dp: &mut Dataplane, frame: &[u8], verdict: u32) -> [u8; 6] {
    let out = run(dp, frame);
    assert_eq!(out.verdict, verdict, "verdict");
    out.frame[..6].try_into().unwrap()
}

/// Runs `change` and waits until the follower has bumped the generation past what it was.
fn changed(generation: &NextHopGeneration, change: &str) {
    let before = generation.current().expect("generation");
    sh(change);
    until(
        Duration::from_secs(5),
        Duration::from_millis(5),
        "the follower bumps the next-hop generation",
        || (generation.current().expect("generation") != before).then_some(()),
        || format!("still {before} after `{change}`"),
    );
}

#[test]
fn a_tunnelled_reals_route_and_neighbour_changes_are_followed() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let _follower = NextHopFollower::spawn(NextHopGeneration::of(&mut dp).unwrap())
            .expect("following routing changes");
        let generation = NextHopGeneration::of(&mut dp).unwrap();
        let syn = to_vip(80, SYN, 0);
        let ack = to_vip(80, ACK, 0);
        assert_eq!(next_hop_mac(&mut dp, &syn, XDP_REDIRECT), ROUTER_A);
        assert_eq!(
            next_hop_mac(&mut dp, &ack, XDP_REDIRECT),
            ROUTER_A,
            "cached"
        );

        changed(&generation, "ip route replace 10.98.0.0/24 via 10.99.0.253");
        assert_eq!(
            next_hop_mac(&mut dp, &ack, XDP_REDIRECT),
            ROUTER_B,
            "the new route, from the first packet after the change was heard of"
        );

        changed(
            &generation,
            "ip neigh replace 10.99.0.253 lladdr 02:00:00:00:00:fc dev d0 nud permanent",
        );
        assert_eq!(
            next_hop_mac(&mut dp, &ack, XDP_REDIRECT),
            [0x02, 0, 0, 0, 0, 0xfc],
            "router B's new MAC"
        );
    });
}

#[test]
fn a_nated_flows_next_hops_follow_changes_both_ways() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let _follower = NextHopFollower::spawn(NextHopGeneration::of(&mut dp).unwrap())
            .expect("following routing changes");
        let generation = NextHopGeneration::of(&mut dp).unwrap();
        assert_eq!(
            next_hop_mac(&mut dp, &to_vip(85, SYN, 0), XDP_REDIRECT),
            NAT_REAL_MAC
        );
        let ack = to_vip(85, ACK, 0);
        assert_eq!(next_hop_mac(&mut dp, &ack, XDP_REDIRECT), NAT_REAL_MAC);
        assert_eq!(next_hop_mac(&mut dp, &reply(), XDP_REDIRECT), ROUTER_A);

        changed(
            &generation,
            "ip neigh replace 10.99.0.11 lladdr 02:00:00:00:00:21 dev d0 nud permanent",
        );
        assert_eq!(
            next_hop_mac(&mut dp, &ack, XDP_REDIRECT),
            NAT_REAL_NEW_MAC,
            "the real's new MAC"
        );
        changed(
            &generation,
            "ip route replace 198.18.1.0/24 via 10.99.0.253",
        );
        assert_eq!(
            next_hop_mac(&mut dp, &reply(), XDP_REDIRECT),
            ROUTER_B,
            "the reply by the client's new route"
        );
    });
}

#[test]
fn without_a_follower_a_change_is_followed_within_the_maximum_age() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let ack = to_vip(80, ACK, 0);
        assert_eq!(
            next_hop_mac(&mut dp, &to_vip(80, SYN, 0), XDP_REDIRECT),
            ROUTER_A
        );
        sh("ip route replace 10.98.0.0/24 via 10.99.0.253");
        // Nothing bumps the generation: the entry holds until it is too old.
        assert_eq!(
            next_hop_mac(&mut dp, &ack, XDP_REDIRECT),
            ROUTER_A,
            "the cached next hop, before its maximum age"
        );
        std::thread::sleep(Duration::from_nanos(NEXT_HOP_MAX_AGE_NS) + Duration::from_millis(50));
        assert_eq!(next_hop_mac(&mut dp, &ack, XDP_REDIRECT), ROUTER_B);
    });
}

#[test]
fn too_big_for_a_cached_route_gets_the_routes_mtu() {
    in_lab_netns(|| {
        let mut dp = loaded();
        // 20 + 20 + 1340 = 1380 bytes, 1400 once encapsulated: fits, and fills the cache.
        assert_eq!(run(&mut dp, &to_vip(81, SYN, 1340)).verdict, XDP_REDIRECT);
        // One byte more does not fit: the error from the cached MTU (1400 less the outer
        // header), the packet's IPv4 header quoted.
        let big = to_vip(81, ACK, 1341);
        let out = run(&mut dp, &big);
        assert_eq!(out.verdict, XDP_TX, "back to the client");
        assert_eq!(&out.frame[34..36], &[3, 4], "fragmentation needed");
        assert_eq!(
            &out.frame[40..42],
            &1380u16.to_be_bytes(),
            "the route's MTU less 20"
        );
        assert_eq!(&out.frame[42..62], &big[14..34], "the quoted header");
        // And one that fits still goes.
        assert_eq!(run(&mut dp, &to_vip(81, ACK, 1340)).verdict, XDP_REDIRECT);
    });
}

#[test]
fn a_neighbour_announced_again_with_its_mac_keeps_the_cache() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let _follower = NextHopFollower::spawn(NextHopGeneration::of(&mut dp).unwrap())
            .expect("following routing changes");
        let generation = NextHopGeneration::of(&mut dp).unwrap();
        assert_eq!(
            next_hop_mac(&mut dp, &to_vip(80, SYN, 0), XDP_REDIRECT),
            ROUTER_A
        );
        // Router A's entry announced (first sight: a change), then announced again in another
        // state with the same MAC, as an entry going stale and confirmed is: no change.
        changed(
            &generation,
            "ip neigh change 10.99.0.254 lladdr 02:00:00:00:00:fe dev d0 nud stale",
        );
        let before = generation.current().unwrap();
        sh("ip neigh change 10.99.0.254 lladdr 02:00:00:00:00:fe dev d0 nud reachable");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            generation.current().unwrap(),
            before,
            "the same MAC announced again bumped the generation"
        );
        assert_eq!(
            next_hop_mac(&mut dp, &to_vip(80, ACK, 0), XDP_REDIRECT),
            ROUTER_A
        );
    });
}

#[test]
fn the_clients_of_a_nated_real_share_its_next_hop() {
    in_lab_netns(|| {
        let mut dp = loaded();
        // Two clients' flows to the NATed real, a SYN and an ACK each.
        for client in [CLIENT4, Ipv4Addr::new(198, 18, 1, 11)] {
            for flags in [SYN, ACK] {
                let frame = Frame::tcp(client.into(), 40000, VIP4.into(), 85, flags).build();
                assert_eq!(next_hop_mac(&mut dp, &frame, XDP_REDIRECT), NAT_REAL_MAC);
            }
        }
        // The route to the real is asked from any source, as IPVS keeps one route per real:
        // one entry in the shared cache for both clients, not one each.
        let real = lvs_common::Addr::from_octets(NAT_REAL.to_ipv6_mapped().octets());
        let hops: aya::maps::HashMap<_, lvs_common::NextHopKey, lvs_common::NextHop> =
            aya::maps::HashMap::try_from(
                dp.ebpf()
                    .map(lvs_common::limits::map_names::NEXT_HOPS)
                    .expect("the next-hop cache"),
            )
            .expect("a hash map");
        let to_real = hops
            .keys()
            .map(|k| k.expect("a key"))
            .filter(|k| k.dst == real)
            .count();
        assert_eq!(to_real, 1, "next-hop entries for the NATed real");
    });
}
