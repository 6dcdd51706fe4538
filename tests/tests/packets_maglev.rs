//! The `mh` scheduler on crafted frames through BPF_PROG_TEST_RUN: every data plane given the
//! same reals and weights sends a flow to the same real whatever the order it learned them in,
//! the kernel's choice is the agent's table, a packet that is not a SYN and has no entry goes
//! where its SYN would have gone (and is remembered), and `mh-fallback` skips unusable reals
//! within its bound.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs::{
    config::{MhFlags, Protocol, Scheduler},
    dataplane::{
        Dataplane, DestPlan, ServicePlan, Target,
        maglev::{self, Member},
        plan::kernel_addr,
    },
};
use lvs_common::{
    hash::mh_slot,
    limits::{MH_FALLBACK_TRIES, MH_TABLE_SIZE},
    service::proto,
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{Outcome, TEST_RUN_IFINDEX, ct_holds, flow_key, run},
};

const XDP_DROP: u32 = 1;
const XDP_TX: u32 = 3;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));

fn real_ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i))
}

/// Real `i` with `weight` now and `table_weight` when up.
fn real(i: u8, weight: u32, table_weight: u32) -> DestPlan {
    DestPlan {
        addr: real_ip(i),
        weight,
        table_weight,
        target: Target::Remote {
            mac: [0x02, 0xaa, 0, 0, 0, i],
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

fn service(flags: MhFlags, dests: Vec<DestPlan>) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, 80),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Mh(flags),
        persistence: None,
        dests,
        fallback: None,
        aliases: Vec::new(),
    }
}

fn loaded(plans: &[ServicePlan]) -> Dataplane {
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables.apply(plans).expect("apply plans");
    dp
}

/// The real a frame went to, or `None` if it was dropped.
fn outcome(out: &Outcome) -> Option<u8> {
    match out.verdict {
        XDP_TX => Some(out.frame[5]),
        XDP_DROP => None,
        v => panic!("unexpected verdict {v}"),
    }
}

fn client(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a10_0000 + n * 7))
}

/// What the agent's table says for the client (port with `mh-port`, else 0), trying up to
/// `tries` slots of its sequence for a real in `usable`.
fn predicted(table: &[u32], src: IpAddr, port: u16, tries: u32, usable: &[u8]) -> Option<u8> {
    (0..tries)
        .map(|a| table[mh_slot(&kernel_addr(src), port, a, table.len() as u32) as usize] as u8)
        .find(|r| usable.contains(r))
}

fn table_of(reals: &[(u8, u32)]) -> Vec<u32> {
    let members: Vec<Member> = reals
        .iter()
        .map(|&(i, w)| Member {
            addr: real_ip(i),
            id: u32::from(i),
            weight: w,
        })
        .collect();
    maglev::build(&members)
}

#[test]
fn directors_that_learned_the_reals_in_any_order_agree_with_the_agents_table() {
    let weights = [(1, 1), (2, 3), (3, 1), (4, 2), (5, 1), (6, 1)];
    let plan = |order: &[usize]| {
        service(
            MhFlags::default(),
            order
                .iter()
                .map(|&k| real(weights[k].0, weights[k].1, weights[k].1))
                .collect(),
        )
    };
    let mut a = loaded(&[plan(&[0, 1, 2, 3, 4, 5])]);
    // Another director: a config in another order, reached through other states (a subset
    // first, a health event quiescing a real and bringing it back), so its slots and ids
    // differ.
    let mut b = loaded(&[plan(&[4, 2])]);
    b.tables.apply(&[plan(&[5, 3, 1, 0, 4, 2])]).unwrap();
    let mut quiet = plan(&[5, 3, 1, 0, 4, 2]);
    quiet.dests[2].weight = 0;
    b.tables.apply(&[quiet]).unwrap();
    b.tables.apply(&[plan(&[2, 0, 5, 1, 4, 3])]).unwrap();

    let table = table_of(&weights);
    assert_eq!(table.len(), MH_TABLE_SIZE as usize);
    let mut per_real = [0u32; 7];
    for n in 0..600 {
        let src = client(n);
        let f = Frame::tcp(src, 40000, VIP, 80, SYN).build();
        let on_a = outcome(&run(&mut a, &f)).expect("forwarded");
        let on_b = outcome(&run(&mut b, &f)).expect("forwarded");
        assert_eq!(on_a, on_b, "client {src}: the directors disagree");
        let expected = predicted(&table, src, 0, 1, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(Some(on_a), expected, "client {src}: not the agent's table");
        // Without mh-port every port of a client goes to its real.
        let other = Frame::tcp(src, 50000 + n as u16, VIP, 80, SYN).build();
        assert_eq!(outcome(&run(&mut a, &other)), Some(on_a));
        per_real[on_a as usize] += 1;
    }
    // Weights as shares: real 2 (weight 3) gets about three times real 1's clients.
    assert!(
        per_real[2] > 2 * per_real[1] && per_real[4] > per_real[1],
        "{per_real:?}"
    );
}

#[test]
fn a_mid_flow_packet_without_an_entry_goes_where_its_syn_went_and_is_remembered() {
    let reals = || (1..=5).map(|i| real(i, 1, 1)).collect::<Vec<_>>();
    let flags = MhFlags {
        port: true,
        fallback: false,
    };
    let mut first = loaded(&[service(flags, reals())]);
    let mut second = loaded(&[service(flags, reals())]);
    let src = client(1);
    let mut used = std::collections::HashSet::new();
    for port in 0..200u16 {
        let syn = Frame::tcp(src, 30000 + port, VIP, 80, SYN).build();
        let on_first = outcome(&run(&mut first, &syn)).expect("forwarded");
        used.insert(on_first);
        // The flow moves to the second director mid-stream (a failover, an ECMP change).
        let key = flow_key(src, 30000 + port, VIP, 80, proto::TCP);
        assert!(!ct_holds(&mut second, &key));
        let ack = Frame::tcp(src, 30000 + port, VIP, 80, ACK).build();
        assert_eq!(
            outcome(&run(&mut second, &ack)),
            Some(on_first),
            "port {}: the mid-flow packet changed real",
            30000 + port
        );
        assert!(
            ct_holds(&mut second, &key),
            "the mid-flow miss is remembered"
        );
    }
    // With mh-port, one client's flows spread over the reals.
    assert_eq!(used.len(), 5, "mh-port spreads one client's ports");
    // The remembered flows keep their real when a real is added to the second director.
    let mut more = reals();
    more.push(real(6, 1, 1));
    second.tables.apply(&[service(flags, more)]).unwrap();
    for port in 0..200u16 {
        let ack = Frame::tcp(src, 30000 + port, VIP, 80, ACK).build();
        let syn = Frame::tcp(src, 30000 + port, VIP, 80, SYN).build();
        assert_eq!(
            outcome(&run(&mut second, &ack)),
            outcome(&run(&mut first, &syn)),
        );
    }
}

#[test]
fn mh_fallback_skips_unusable_reals_within_its_bound_and_moves_no_other_flow() {
    let table = table_of(&[(1, 1), (2, 1), (3, 1), (4, 1)]);
    let plan = |fallback: bool, up: &[u8]| {
        service(
            MhFlags {
                port: false,
                fallback,
            },
            (1..=4)
                .map(|i| real(i, u32::from(up.contains(&i)), 1))
                .collect(),
        )
    };
    let mut dp = loaded(&[plan(true, &[1, 2, 3, 4])]);
    let mut before = Vec::new();
    for n in 0..400 {
        let f = Frame::tcp(client(n), 40000, VIP, 80, SYN).build();
        before.push(outcome(&run(&mut dp, &f)).expect("forwarded"));
    }
    // Real 2 quiesced: its clients go to the next usable real of their sequence; no other
    // client moves. New flows (other ports) so no entry is involved.
    dp.tables.apply(&[plan(true, &[1, 3, 4])]).unwrap();
    let mut skipped = 0;
    for n in 0..400 {
        let src = client(n);
        let f = Frame::tcp(src, 41000, VIP, 80, SYN).build();
        let now = outcome(&run(&mut dp, &f));
        if before[n as usize] == 2 {
            skipped += 1;
            assert_ne!(now, Some(2));
            assert_eq!(
                now,
                predicted(&table, src, 0, MH_FALLBACK_TRIES, &[1, 3, 4])
            );
        } else {
            assert_eq!(now, Some(before[n as usize]), "client {src} moved");
        }
    }
    assert!(skipped > 50, "{skipped} clients of real 2");

    // Only real 4 up: a client whose first MH_FALLBACK_TRIES slots all name quiesced reals is
    // dropped (the bound), every other one gets real 4.
    dp.tables.apply(&[plan(true, &[4])]).unwrap();
    let mut dropped = 0;
    for n in 0..400 {
        let src = client(n);
        let f = Frame::tcp(src, 42000, VIP, 80, SYN).build();
        let now = outcome(&run(&mut dp, &f));
        assert_eq!(
            now,
            predicted(&table, src, 0, MH_FALLBACK_TRIES, &[4]),
            "{src}"
        );
        dropped += usize::from(now.is_none());
    }
    // (3/4)^8 of the clients: about 10%.
    assert!((10..=80).contains(&dropped), "{dropped} dropped");

    // Without mh-fallback, real 2's clients are dropped and the others keep their real.
    dp.tables.apply(&[plan(false, &[1, 3, 4])]).unwrap();
    for n in 0..400 {
        let f = Frame::tcp(client(n), 43000, VIP, 80, SYN).build();
        let now = outcome(&run(&mut dp, &f));
        let b = before[n as usize];
        assert_eq!(now, (b != 2).then_some(b));
    }
}

#[test]
fn a_real_that_fails_while_flows_change_director_loses_only_its_own_flows() {
    let flags = MhFlags {
        port: true,
        fallback: true,
    };
    let all = || (1..=5).map(|i| real(i, 1, 1)).collect::<Vec<_>>();
    let mut first = loaded(&[service(flags, all())]);
    let src = client(9);
    let mut before = Vec::new();
    for port in 0..300u16 {
        let syn = Frame::tcp(src, 20000 + port, VIP, 80, SYN).build();
        before.push(outcome(&run(&mut first, &syn)).expect("forwarded"));
    }
    assert!(before.iter().filter(|&&r| r == 3).count() > 20);

    // The second director's check took real 3 down while the flows come over: quiesced (it
    // keeps its slots), every flow of another real keeps its real, real 3's go to the next real
    // of their sequence.
    let mut quiesced = all();
    quiesced[2].weight = 0;
    let mut second = loaded(&[service(flags, quiesced)]);
    let full = table_of(&[(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
    for (port, &was) in (0..300u16).zip(&before) {
        let ack = Frame::tcp(src, 20000 + port, VIP, 80, ACK).build();
        let now = outcome(&run(&mut second, &ack));
        if was == 3 {
            let expected = predicted(&full, src, 20000 + port, MH_FALLBACK_TRIES, &[1, 2, 4, 5]);
            assert_eq!(now, expected, "port {}", 20000 + port);
        } else {
            assert_eq!(
                now,
                Some(was),
                "port {}: a flow of real {was} moved",
                20000 + port
            );
        }
    }

    // Removed instead (quiescent = no): the table is rebuilt without it; real 3's flows are
    // rescheduled, and of the others only the table's small excess moves.
    let mut third = loaded(&[service(
        flags,
        all().into_iter().filter(|d| d.addr != real_ip(3)).collect(),
    )]);
    let without = table_of(&[(1, 1), (2, 1), (4, 1), (5, 1)]);
    let mut moved = 0;
    let mut others = 0;
    for (port, &was) in (0..300u16).zip(&before) {
        let ack = Frame::tcp(src, 20000 + port, VIP, 80, ACK).build();
        let now = outcome(&run(&mut third, &ack)).expect("forwarded");
        assert_ne!(now, 3);
        assert_eq!(
            Some(now),
            predicted(&without, src, 20000 + port, 1, &[1, 2, 4, 5])
        );
        if was != 3 {
            others += 1;
            moved += usize::from(now != was);
        }
    }
    assert!(
        moved * 100 <= others * 3,
        "{moved} of {others} other flows moved"
    );
}
