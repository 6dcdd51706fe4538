//! A firewall-mark service in the data plane: several (VIP, port, protocol) keys leading to
//! one service (its aliases), crafted frames through BPF_PROG_TEST_RUN. Persistence is the
//! service's, so one client's connections to every key of it land on one real.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_tests::{
    packet::{DIRECTOR_MAC, Frame, SYN},
    xdp::{Outcome, TEST_RUN_IFINDEX, pin_to_one_cpu, run},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
const VIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101));

fn real(i: u8) -> DestPlan {
    DestPlan {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
        weight: 1,
        table_weight: 1,
        target: Target::Remote {
            mac: [0x02, 0xaa, 0, 0, 0, i],
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

/// Mark 3: TCP 80 and 443 of VIP, and every UDP port of VIP2; persistent per client.
fn marked(aliases: &[(IpAddr, u16, Protocol)]) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, 80),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: Some((300, 32)),
        dests: vec![real(1), real(2), real(3)],
        fallback: None,
        aliases: aliases
            .iter()
            .map(|&(a, p, proto)| (SocketAddr::new(a, p), proto))
            .collect(),
    }
}

const ALL: [(IpAddr, u16, Protocol); 2] = [(VIP, 443, Protocol::Tcp), (VIP2, 0, Protocol::Udp)];

fn to(dp: &mut Dataplane, f: &[u8]) -> Option<u8> {
    let out: Outcome = run(dp, f);
    match out.verdict {
        XDP_TX => Some(out.frame[5]),
        XDP_PASS => None,
        v => panic!("verdict {v}"),
    }
}

fn client(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, i))
}

#[test]
fn every_key_of_a_mark_shares_its_persistence() {
    pin_to_one_cpu();
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    dp.tables.apply(&[marked(&ALL)]).unwrap();
    let mut used = std::collections::HashSet::new();
    for c in 1..=30u8 {
        let web = Frame::tcp(client(c), 10000, VIP, 80, SYN).build();
        let first = to(&mut dp, &web).expect("port 80 balanced");
        used.insert(first);
        // HTTPS, and UDP to any port of the second VIP: the same real, whatever order.
        for (i, f) in [
            Frame::tcp(client(c), 10001, VIP, 443, SYN).build(),
            Frame::udp(client(c), 10002, VIP2, 5353).build(),
            Frame::udp(client(c), 10003, VIP2, 9).build(),
            Frame::tcp(client(c), 10004, VIP, 80, SYN).build(),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(to(&mut dp, f), Some(first), "client {c}, frame {i}");
        }
    }
    // Clients spread over the reals: the stickiness is persistence, not one real for all.
    assert_eq!(used.len(), 3, "{used:?}");
    // Keys not in the mark: untouched.
    let other = Frame::tcp(client(1), 10005, VIP, 8080, SYN).build();
    assert_eq!(to(&mut dp, &other), None);
    let other = Frame::tcp(client(1), 10006, VIP2, 80, SYN).build();
    assert_eq!(to(&mut dp, &other), None, "VIP2 is marked for UDP only");
}

#[test]
fn a_key_leaves_and_comes_back_with_the_rules() {
    pin_to_one_cpu();
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    dp.tables.apply(&[marked(&ALL)]).unwrap();
    let web = Frame::tcp(client(7), 20000, VIP, 80, SYN).build();
    let first = to(&mut dp, &web).unwrap();
    let https = Frame::tcp(client(7), 20001, VIP, 443, SYN).build();
    assert_eq!(to(&mut dp, &https), Some(first));
    // The 443 rule goes: 443 is the host's again; the service and its flows stay.
    dp.tables.apply(&[marked(&ALL[1..])]).unwrap();
    let https2 = Frame::tcp(client(7), 20002, VIP, 443, SYN).build();
    assert_eq!(to(&mut dp, &https2), None);
    assert_eq!(
        to(&mut dp, &web),
        Some(first),
        "the established flow on 80 stays"
    );
    // It comes back, and leads to the same service (the same persistence).
    dp.tables.apply(&[marked(&ALL)]).unwrap();
    let https3 = Frame::tcp(client(7), 20003, VIP, 443, SYN).build();
    assert_eq!(to(&mut dp, &https3), Some(first));
    // Another service takes a key the mark gave up: it is that service's now.
    let mut other = marked(&[]);
    other.vip = SocketAddr::new(VIP, 443);
    other.persistence = None;
    other.dests = vec![real(9)];
    dp.tables
        .apply(&[marked(&ALL[1..]), other.clone()])
        .unwrap();
    let https4 = Frame::tcp(client(7), 20004, VIP, 443, SYN).build();
    assert_eq!(to(&mut dp, &https4), Some(9));
    // And the mark takes it back as an alias.
    dp.tables.apply(&[marked(&ALL)]).unwrap();
    let https5 = Frame::tcp(client(7), 20005, VIP, 443, SYN).build();
    assert_eq!(to(&mut dp, &https5), Some(first));
    // The whole service goes: every key of it passes.
    dp.tables.apply(&[]).unwrap();
    for f in [
        Frame::tcp(client(8), 20006, VIP, 80, SYN).build(),
        Frame::tcp(client(8), 20007, VIP, 443, SYN).build(),
        Frame::udp(client(8), 20008, VIP2, 53).build(),
    ] {
        assert_eq!(to(&mut dp, &f), None);
    }
}

/// A bpffs of the test's own, unmounted on drop.
struct Bpffs(std::path::PathBuf);

impl Drop for Bpffs {
    fn drop(&mut self) {
        lvs::lab::unmount_bpffs(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_restarted_agent_adopts_a_mark_with_its_keys() {
    pin_to_one_cpu();
    let dir = std::env::temp_dir().join(format!("lvs-fwmark-adopt-{}", std::process::id()));
    lvs::lab::mount_bpffs(&dir).expect("mounting a bpffs");
    let bpffs = Bpffs(dir);
    let pins = bpffs.0.join("lvs/test");
    let plan = marked(&ALL);
    let https = |port| Frame::tcp(client(5), port, VIP, 443, SYN).build();
    let (sid, first) = {
        let mut dp = Dataplane::load_pinned(&pins).expect("load with pins");
        dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
        dp.tables.apply(std::slice::from_ref(&plan)).unwrap();
        let first = to(&mut dp, &https(30000)).unwrap();
        (dp.tables.service_id(&plan.key()).unwrap(), first)
    };
    // As a restarted agent: three keys of one service in the pinned map are one service,
    // found under the key the config gives (its first), with the same id.
    let mut dp = Dataplane::load_pinned(&pins).expect("load with pins again");
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    assert!(dp.adopted());
    assert_eq!(dp.tables.service_id(&plan.key()), Some(sid));
    dp.tables.apply(std::slice::from_ref(&plan)).unwrap();
    assert_eq!(dp.tables.service_id(&plan.key()), Some(sid));
    // Persistence held across the restart, on another key of the mark.
    let web = Frame::tcp(client(5), 30001, VIP, 80, SYN).build();
    assert_eq!(to(&mut dp, &web), Some(first));
    // The aliases are known as such: dropping one removes it.
    dp.tables.apply(&[marked(&ALL[1..])]).unwrap();
    assert_eq!(to(&mut dp, &https(30002)), None);
    dp.release(true).unwrap();
}
