//! Which real a flow gets and keeps: a flow stays on its real while weights and reals change,
//! the wrr cycle, rr and sh, persistence (a masked client kept on its real; the entry expiring
//! after its timeout), fallback, removed and quiescent reals, a removed service.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use aya::maps::{HashMap as BpfHashMap, MapData};
use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, Target},
};
use lvs_common::{PersistKey, PersistValue, limits::map_names, stats::DropReason};
use lvs_tests::{
    packet::{ACK, Frame, SYN},
    xdp::{pin_to_one_cpu, run},
};

use super::common::*;

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
