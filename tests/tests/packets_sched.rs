//! The connection schedulers and the per-real connection counts through BPF_PROG_TEST_RUN:
//! counts kept exact as flows are created, change state, are evicted, expire (the agent's
//! sweep) and as reals are removed; every new flow of an `lc`, `wlc`, `sed`, `nq`, `fo` or
//! `ovf` service goes where the rule says for the counts read just before (the rule written
//! out again here, not the product's), for IPv4 and IPv6, TCP and UDP; `dh` hashes the
//! destination address into IPVS's 256-bucket table.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target, conns::table_now_ns},
};
use lvs_common::{CtTimeouts, service::proto};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{TEST_RUN_IFINDEX, ct_seed, flow_key, keys_sharing_buckets, pin_to_one_cpu, run},
};

const XDP_TX: u32 = 3;
const XDP_DROP: u32 = 1;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100));

fn client(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 10))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10))
    }
}

fn real(i: u8, weight: u32, v6: bool) -> DestPlan {
    DestPlan {
        addr: if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10 + u16::from(i)))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i))
        },
        weight,
        table_weight: weight,
        target: Target::Remote {
            mac: [0x02, 0xaa, 0, 0, 0, i],
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

fn plan(scheduler: Scheduler, weights: &[u32], protocol: Protocol, v6: bool) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(if v6 { VIP6 } else { VIP4 }, 80),
        protocol,
        scheduler,
        persistence: None,
        dests: weights
            .iter()
            .enumerate()
            .map(|(i, &w)| real(i as u8, w, v6))
            .collect(),
        fallback: None,
        aliases: Vec::new(),
    }
}

fn loaded(plans: &[ServicePlan]) -> Dataplane {
    pin_to_one_cpu();
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables.apply(plans).expect("apply plans");
    dp
}

/// Sends one packet of the flow from client port `port`; the index of the real it went to.
fn send(dp: &mut Dataplane, p: &ServicePlan, port: u16, flags: u8) -> Option<u8> {
    let c = client(p.vip.is_ipv6());
    let f = match p.protocol {
        Protocol::Tcp => Frame::tcp(c, port, p.vip.ip(), 80, flags),
        Protocol::Udp => Frame::udp(c, port, p.vip.ip(), 80),
    }
    .build();
    let out = run(dp, &f);
    (out.verdict == XDP_TX).then_some(out.frame[5])
}

/// (active, inactive) of each real of `p`, in config order, as the data plane counts them.
fn counts(dp: &Dataplane, p: &ServicePlan) -> Vec<(u64, u64)> {
    p.dests
        .iter()
        .map(|d| {
            let id = dp.tables.dest_id(&p.key(), d.addr).expect("dest id");
            let generation = dp.tables.dest_generation(id).expect("generation");
            dp.tables.counts().get(id, generation).expect("counts")
        })
        .collect()
}

/// The rule, written out from IPVS's ip_vs_{lc,wlc,sed,nq,fo,ovf}.c: reals in IPVS's list
/// order (the config's last first), weight 0 skipped, the first strict best kept. Returns the
/// config index.
fn ipvs_choice(s: Scheduler, weights: &[u32], counts: &[(u64, u64)]) -> Option<usize> {
    let order: Vec<usize> = (0..weights.len()).rev().collect();
    let mut least: Option<usize> = None;
    for &d in &order {
        let (w, (a, i)) = (weights[d] as u64, counts[d]);
        if w == 0 {
            continue;
        }
        let better = match least {
            None => true,
            Some(l) => {
                let (lw, (la, li)) = (weights[l] as u64, counts[l]);
                match s {
                    Scheduler::Lc => a * 256 + i < la * 256 + li,
                    Scheduler::Wlc => (la * 256 + li) * w > (a * 256 + i) * lw,
                    Scheduler::Sed | Scheduler::Nq => (la + 1) * w > (a + 1) * lw,
                    Scheduler::Fo | Scheduler::Ovf => w > lw,
                    _ => unreachable!(),
                }
            }
        };
        if s == Scheduler::Ovf && a > w {
            continue;
        }
        if s == Scheduler::Nq && a == 0 {
            return Some(d);
        }
        if better {
            least = Some(d);
        }
    }
    least
}

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Drives `p` with a mix of new connections, handshakes, closes and resets; checks every new
/// connection against [`ipvs_choice`] and the counts against the test's own tally after every
/// packet.
fn drive(s: Scheduler, weights: &[u32], protocol: Protocol, v6: bool, rounds: usize) {
    let p = plan(s, weights, protocol, v6);
    let mut dp = loaded(std::slice::from_ref(&p));
    // Each open flow: (client port, real, active?).
    let mut flows: Vec<(u16, usize, bool)> = Vec::new();
    let mut next_port = 20000u16;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15
        ^ (Scheduler::ALL
            .iter()
            .position(|(_, x)| *x == s)
            .unwrap_or(0) as u64)
        ^ ((v6 as u64) << 8));
    let tcp = protocol == Protocol::Tcp;
    for step in 0..rounds {
        let r = rng.next() % 10;
        if r < 5 || flows.is_empty() {
            let before = counts(&dp, &p);
            let want = ipvs_choice(s, weights, &before);
            let got = send(&mut dp, &p, next_port, SYN).map(|m| m as usize);
            assert_eq!(
                got, want,
                "{s:?} step {step}: new connection went to {got:?}, IPVS's rule says {want:?} \
                 (weights {weights:?}, counts {before:?})"
            );
            if let Some(d) = got {
                flows.push((next_port, d, tcp));
            }
            next_port += 1;
        } else if tcp {
            let k = (rng.next() as usize) % flows.len();
            let (port, d, active) = flows[k];
            let flags = match (r, active) {
                (5..=7, true) => FIN | ACK,
                (8, _) => RST,
                _ => ACK,
            };
            assert_eq!(send(&mut dp, &p, port, flags).map(|m| m as usize), Some(d));
            // After a FIN or RST the flow is inactive for good (no SYN follows here).
            flows[k].2 = active && flags == ACK;
        }
        // Every open flow is counted once, on its real.
        let now = counts(&dp, &p);
        for (d, &(a, i)) in now.iter().enumerate() {
            let total = flows.iter().filter(|f| f.1 == d).count() as u64;
            assert_eq!(a + i, total, "{s:?} step {step}: real {d} counts {a}+{i}");
            if !tcp {
                assert_eq!(a, 0, "UDP flows are never active");
            }
        }
    }
}

#[test]
fn every_connection_scheduler_chooses_as_ipvs_for_ipv4_ipv6_tcp_udp() {
    let weights = [1, 3, 0, 2, 2];
    for s in [
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
    ] {
        drive(s, &weights, Protocol::Tcp, false, 120);
        drive(s, &weights, Protocol::Tcp, true, 60);
        drive(s, &weights, Protocol::Udp, false, 40);
    }
}

#[test]
fn active_and_inactive_follow_the_state_and_a_removed_real_starts_afresh() {
    let p = plan(Scheduler::Wlc, &[1, 1], Protocol::Tcp, false);
    let mut dp = loaded(std::slice::from_ref(&p));
    let total = |dp: &Dataplane| {
        counts(dp, &p)
            .iter()
            .fold((0, 0), |(a, i), c| (a + c.0, i + c.1))
    };
    for port in 0..6 {
        send(&mut dp, &p, 30000 + port, SYN).expect("forwarded");
    }
    assert_eq!(total(&dp), (6, 0), "SYN_RECV is active");
    for port in 0..6 {
        send(&mut dp, &p, 30000 + port, ACK).expect("forwarded");
    }
    assert_eq!(total(&dp), (6, 0), "ESTABLISHED is active");
    for port in 0..2 {
        send(&mut dp, &p, 30000 + port, FIN | ACK).expect("forwarded");
    }
    send(&mut dp, &p, 30002, RST).expect("forwarded");
    assert_eq!(total(&dp), (3, 3), "FIN_WAIT and CLOSE are inactive");
    // A SYN on the closed entry is a new connection (conn_reuse_mode 1): the old one goes.
    send(&mut dp, &p, 30002, SYN).expect("forwarded");
    assert_eq!(
        total(&dp),
        (4, 2),
        "the closed entry replaced by a new connection"
    );
    // The removed real's counts go with it; its slot, reused, starts at 0.
    let gone = p.dests[0].addr;
    let before = counts(&dp, &p);
    let p1 = ServicePlan {
        one_packet: false,
        dests: vec![p.dests[1]],
        ..p.clone()
    };
    dp.tables.apply(std::slice::from_ref(&p1)).expect("remove");
    assert_eq!(
        counts(&dp, &p1),
        vec![before[1]],
        "the other real keeps its counts"
    );
    dp.tables.apply(std::slice::from_ref(&p)).expect("add back");
    assert_eq!(
        counts(&dp, &p)[0],
        (0, 0),
        "{gone} came back with no connections"
    );
    // Its old flows are rescheduled by their next packet, and counted where they land.
    send(&mut dp, &p, 30005, ACK).expect("forwarded");
    let (a, i) = total(&dp);
    assert!(a + i <= 6, "no flow counted twice: {a}+{i}");
}

#[test]
fn an_evicted_flow_is_uncounted() {
    let p = plan(Scheduler::Lc, &[1], Protocol::Tcp, false);
    let mut dp = loaded(std::slice::from_ref(&p));
    let seed = ct_seed(&mut dp);
    let c = client(false);
    let keys = keys_sharing_buckets(
        seed,
        1,
        lvs_common::limits::CT_WAYS + 2,
        (1000..60000).map(|port| flow_key(c, port, VIP4, 80, proto::TCP)),
    );
    for k in &keys[0] {
        send(&mut dp, &p, u16::from_be(k.sport_be), SYN).expect("forwarded");
    }
    assert_eq!(
        counts(&dp, &p)[0],
        (lvs_common::limits::CT_WAYS as u64, 0),
        "a full bucket holds CT_WAYS flows: the evicted ones are not counted"
    );
}

#[test]
fn flows_past_their_timeout_are_uncounted_by_the_sweep() {
    let p = plan(Scheduler::Wlc, &[1], Protocol::Tcp, false);
    let u = plan(Scheduler::Wlc, &[1], Protocol::Udp, false);
    let mut dp = loaded(&[p.clone(), u.clone()]);
    let timeouts = CtTimeouts::ipvs(900, 1, 1);
    dp.set_timeouts(timeouts).expect("timeouts");
    for port in 0..4 {
        send(&mut dp, &p, 31000 + port, SYN).expect("forwarded");
        send(&mut dp, &p, 31000 + port, ACK).expect("forwarded");
        send(&mut dp, &u, 31000 + port, 0).expect("forwarded");
    }
    send(&mut dp, &p, 31000, FIN | ACK).expect("forwarded");
    assert_eq!(counts(&dp, &p)[0], (3, 1));
    assert_eq!(counts(&dp, &u)[0], (0, 4));
    // Past FIN_WAIT's and UDP's 1 s: the sweep uncounts them, the established ones stay.
    std::thread::sleep(Duration::from_millis(2500));
    let mut swept = 0;
    for _ in
        0..lvs_common::limits::CONNTRACK_ENTRIES as usize / lvs::dataplane::conns::SWEEP_WAYS + 1
    {
        swept += dp.tables.counts_mut().sweep(table_now_ns(), &timeouts);
    }
    assert_eq!(swept, 5);
    assert_eq!(counts(&dp, &p)[0], (3, 0));
    assert_eq!(counts(&dp, &u)[0], (0, 0));
    // A packet of a swept flow makes it a new connection, counted once.
    send(&mut dp, &u, 31000, 0).expect("forwarded");
    assert_eq!(counts(&dp, &u)[0], (0, 1));
}

#[test]
fn dh_hashes_the_destination_address_into_256_buckets() {
    // IPVS: hash_32(ntohl(daddr), 8) into a table filled round-robin over the list (newest,
    // i.e. the config's last, first).
    for weights in [vec![1u32, 1, 1], vec![1, 1, 1, 1, 1], vec![2, 1]] {
        let p = plan(Scheduler::Dh, &weights, Protocol::Tcp, false);
        let mut dp = loaded(std::slice::from_ref(&p));
        let IpAddr::V4(v4) = VIP4 else { unreachable!() };
        let bucket = (u32::from(v4).wrapping_mul(0x61c8_8647) >> 24) as usize;
        let n = weights.len();
        let want = n - 1 - bucket % n;
        for port in 0..8 {
            assert_eq!(
                send(&mut dp, &p, 32000 + port, SYN),
                Some(want as u8),
                "bucket {bucket} of {n} reals"
            );
        }
        // The bucket's real quiesced: no destination (IPVS has no fallback to another bucket).
        let mut quiet = weights.clone();
        quiet[want] = 0;
        let q = plan(Scheduler::Dh, &quiet, Protocol::Tcp, false);
        dp.tables.apply(std::slice::from_ref(&q)).expect("quiesce");
        let c = client(false);
        let f = Frame::tcp(c, 33000, VIP4, 80, SYN).build();
        assert_eq!(run(&mut dp, &f).verdict, XDP_DROP, "no destination");
    }
}

/// A bpf filesystem mounted on a fresh directory, unmounted and removed on drop.
struct Bpffs(std::path::PathBuf);

impl Bpffs {
    fn mount(name: &str) -> Bpffs {
        let dir = std::env::temp_dir().join(format!("lvs-{name}-{}", std::process::id()));
        lvs::lab::mount_bpffs(&dir).expect("mounting a bpffs");
        Bpffs(dir)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        lvs::lab::unmount_bpffs(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_restarted_agent_adopts_the_counts_and_recounts_a_table_pinned_without_them() {
    pin_to_one_cpu();
    let bpffs = Bpffs::mount("sched-restart");
    let pins = bpffs.0.join("lvs/test");
    let p = plan(Scheduler::Wlc, &[1, 1, 1], Protocol::Tcp, false);
    let start = |pins: &std::path::Path| {
        let mut dp = Dataplane::load_pinned(pins).expect("load with pins");
        dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
        dp.tables.apply(std::slice::from_ref(&p)).unwrap();
        dp
    };
    let before = {
        let mut dp = start(&pins);
        for port in 0..7 {
            send(&mut dp, &p, 34000 + port, SYN).expect("forwarded");
        }
        send(&mut dp, &p, 34000, FIN).expect("forwarded");
        counts(&dp, &p)
    };
    assert_eq!(
        before.iter().fold((0, 0), |s, c| (s.0 + c.0, s.1 + c.1)),
        (6, 1)
    );
    // As a restarted agent: the pinned counts are adopted as they are.
    let dp = start(&pins);
    assert!(dp.adopted());
    assert_eq!(counts(&dp, &p), before, "the counts are kept");
    drop(dp);
    // As an upgrade from a build without counts: the table is pinned, the counts map is not.
    std::fs::remove_file(pins.join(lvs_common::limits::map_names::DEST_CONNS)).unwrap();
    let dp = start(&pins);
    assert_eq!(
        counts(&dp, &p),
        before,
        "the counts are rebuilt from the table"
    );
    dp.release(true).unwrap();
}

/// What `lvs status`, `--json`, the metrics and `ipvsadm -L` show for each real
/// (`Tables::conns`, `Tables::conns_total`): the data plane's counts of the slot's current
/// generation, equal to a walk of the table counting its live entries (the walk the agent no
/// longer makes), and 0 for a real that took over a removed real's slot.
#[test]
fn what_status_shows_is_the_current_generations_counts_and_equals_a_walk() {
    let p = plan(Scheduler::Wlc, &[1, 1, 1], Protocol::Tcp, false);
    let mut dp = loaded(std::slice::from_ref(&p));
    for port in 0..9 {
        send(&mut dp, &p, 31000 + port, SYN).expect("forwarded");
        send(&mut dp, &p, 31000 + port, ACK).expect("forwarded");
    }
    for port in 0..4 {
        send(&mut dp, &p, 31000 + port, FIN | ACK).expect("forwarded");
    }
    let timeouts = CtTimeouts::ipvs(900, 120, 300);
    let walk = |dp: &mut Dataplane| {
        let mut by = std::collections::HashMap::<(u32, u32), (u64, u64)>::new();
        let now = table_now_ns();
        lvs::dataplane::conntrack::for_each_way(dp.ebpf(), |e| {
            if e.is_live(now, &timeouts) {
                let c = by.entry((e.dest, e.generation)).or_default();
                if lvs_common::conntrack::is_active_state(e.state()) {
                    c.0 += 1;
                } else {
                    c.1 += 1;
                }
            }
        })
        .expect("walk");
        by
    };
    let shown = |dp: &Dataplane, p: &ServicePlan| -> Vec<(u64, u64)> {
        p.dests
            .iter()
            .map(|d| {
                let id = dp.tables.dest_id(&p.key(), d.addr).expect("dest id");
                dp.tables
                    .conns(id)
                    .expect("counts of the current generation")
            })
            .collect()
    };
    let walked = walk(&mut dp);
    let want: Vec<(u64, u64)> = p
        .dests
        .iter()
        .map(|d| {
            let id = dp.tables.dest_id(&p.key(), d.addr).expect("dest id");
            let g = dp.tables.dest_generation(id).expect("generation");
            walked.get(&(id, g)).copied().unwrap_or_default()
        })
        .collect();
    assert_eq!(shown(&dp, &p), want, "status figures = a walk of the table");
    let sum = want.iter().fold((0, 0), |(a, i), c| (a + c.0, i + c.1));
    assert_eq!(sum, (5, 4), "9 connections, 4 closed");
    assert_eq!(dp.tables.conns_total(), 9, "the total of the counts");
    // The first real removed and another put in: the slot is reused with a new generation,
    // and the newcomer shows 0 while the old real's flows still sit in the table.
    let other = DestPlan {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 99)),
        ..p.dests[0]
    };
    let p1 = ServicePlan {
        one_packet: false,
        dests: vec![other, p.dests[1], p.dests[2]],
        ..p.clone()
    };
    let old_id = dp.tables.dest_id(&p.key(), p.dests[0].addr).expect("id");
    let p0 = ServicePlan {
        one_packet: false,
        dests: p.dests[1..].to_vec(),
        ..p.clone()
    };
    dp.tables.apply(std::slice::from_ref(&p0)).expect("remove");
    dp.tables
        .apply(std::slice::from_ref(&p1))
        .expect("add another");
    let new_id = dp.tables.dest_id(&p1.key(), other.addr).expect("id");
    assert_eq!(
        new_id, old_id,
        "the slot is reused (else the test shows nothing)"
    );
    let shown1 = shown(&dp, &p1);
    assert_eq!(
        shown1[0],
        (0, 0),
        "the newcomer has none of its slot's old flows"
    );
    assert_eq!(&shown1[1..], &want[1..], "the others keep theirs");
    assert_eq!(
        dp.tables.conns_total(),
        want[1..].iter().map(|c| c.0 + c.1).sum::<u64>(),
        "the total counts the slots in use"
    );
}

/// One-packet scheduling (`ops`): every UDP datagram of the same 5-tuple is scheduled on its
/// own (rr alternates between the two reals), no flow is remembered or counted as a
/// connection state, and every datagram counts as a connection (IPVS makes and frees one per
/// packet); without the flag the datagrams stay on one real. A TCP segment to a service with
/// the flag (a firewall-mark service takes both) is tracked as usual, as IPVS applies `ops`
/// to UDP only. IPv4 and IPv6.
#[test]
fn one_packet_scheduling_schedules_every_udp_datagram_on_its_own() {
    for v6 in [false, true] {
        let mut ops = plan(Scheduler::Rr, &[1, 1], Protocol::Udp, v6);
        ops.one_packet = true;
        let mut dp = loaded(std::slice::from_ref(&ops));
        let went: Vec<Option<u8>> = (0..4).map(|_| send(&mut dp, &ops, 40000, 0)).collect();
        assert!(
            went.iter().all(Option::is_some),
            "v6 {v6}: forwarded: {went:?}"
        );
        assert!(
            went.windows(2).all(|w| w[0] != w[1]),
            "v6 {v6}: each datagram scheduled anew: {went:?}"
        );
        assert_eq!(counts(&dp, &ops), [(0, 0), (0, 0)], "v6 {v6}: no flow kept");
        let conns: u64 = ops
            .dests
            .iter()
            .map(|d| {
                let id = dp.tables.dest_id(&ops.key(), d.addr).expect("dest id");
                dp.tables.stats().dest(id).expect("stats").connections
            })
            .sum();
        assert_eq!(conns, 4, "v6 {v6}: a connection per datagram");

        let tracked = plan(Scheduler::Rr, &[1, 1], Protocol::Udp, v6);
        let mut dp = loaded(std::slice::from_ref(&tracked));
        let went: Vec<Option<u8>> = (0..4).map(|_| send(&mut dp, &tracked, 40000, 0)).collect();
        assert!(went.windows(2).all(|w| w[0] == w[1]), "v6 {v6}: {went:?}");

        let mut tcp = plan(Scheduler::Rr, &[1, 1], Protocol::Tcp, v6);
        tcp.one_packet = true;
        let mut dp = loaded(std::slice::from_ref(&tcp));
        let mut went = vec![send(&mut dp, &tcp, 40000, SYN)];
        went.extend((0..3).map(|_| send(&mut dp, &tcp, 40000, ACK)));
        assert!(
            went.windows(2).all(|w| w[0] == w[1] && w[0].is_some()),
            "v6 {v6}: TCP tracked: {went:?}"
        );
    }
}
