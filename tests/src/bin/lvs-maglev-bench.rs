//! `cargo xtask bench`, the `mh` part: how many flows a real's removal moves (minimal
//! disruption), and the per-packet cost of an `mh` new flow and of an `mh` mid-flow miss
//! beside the floor, in one run.
//!
//! Disruption: for N equal reals, the agent's table ([`maglev::build_sized`]) is built with all
//! N and again without one of them; a flow's real is its slot's. Flows of the removed real must
//! move (1/N of them); every other slot that changes owner is excess, a flow of a surviving
//! real moved for nothing (and broken, unless a connection table remembers it). Printed for
//! N = 10, 100, 1,000 at the table size lvs offers ([`MH_TABLE_SIZE`], IPVS's default), and at
//! two larger primes for comparison (Cilium's default and IPVS's largest but one), averaged over
//! several removed reals.
//!
//! Per packet: fresh 5-tuples, each frame run once (BPF_PROG_TEST_RUN, repeat 1) on one CPU,
//! interleaved with the floor program on known flows and the pass program (whose cost, minus
//! its cost at many repeats, is the timer's overhead, taken off every side), as `lvs-bench`
//! measures new flows: SYNs of `mh` flows, ACKs of `mh` flows the table has never seen (a
//! mid-flow miss: scheduled by the table and remembered), and SYNs of `wrr` flows for
//! reference.

use lvs_tests::bench::{median, ns_with_verdict};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, Result};
use aya::{maps::HashMap, programs::Xdp};
use lvs::{
    config::{MhFlags, Protocol, Scheduler},
    dataplane::{
        Dataplane, ServicePlan,
        loader::load_program,
        maglev::{self, Member},
    },
};
use lvs_common::{
    FlowKey,
    limits::{MH_TABLE_SIZE, program_names},
    service::proto,
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{TEST_RUN_IFINDEX, flow_key, pin_to_one_cpu},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

fn real_addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a40_0000 + i))
}

/// (fraction of slots moved, fraction moved beyond the removed real's), averaged over
/// `trials` removals, for `n` equal reals in `m` slots.
fn disruption(n: u32, m: u32, trials: u32) -> (f64, f64) {
    let members: Vec<Member> = (0..n)
        .map(|i| Member {
            addr: real_addr(i),
            id: i,
            weight: 1,
        })
        .collect();
    let before = maglev::build_sized(&members, m);
    let (mut moved, mut excess) = (0usize, 0usize);
    for t in 0..trials {
        let gone = (t * 7919 + 3) % n;
        let rest: Vec<Member> = members.iter().copied().filter(|x| x.id != gone).collect();
        let after = maglev::build_sized(&rest, m);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                if *b != gone {
                    excess += 1;
                }
            }
        }
    }
    let total = (m * trials) as f64;
    (moved as f64 / total, excess as f64 / total)
}

fn print_disruption() {
    println!("mh minimal disruption: one of N equal reals removed (the agent's table)");
    println!(
        "{:>6} {:>7} {:>10} {:>9} {:>14}",
        "N", "M", "moved", "ideal 1/N", "excess moved"
    );
    for m in [MH_TABLE_SIZE, 16381, 65521] {
        for n in [10u32, 100, 1000] {
            let trials = if m > MH_TABLE_SIZE || n == 1000 {
                3
            } else {
                10
            };
            let (moved, excess) = disruption(n, m, trials);
            let note = if m == MH_TABLE_SIZE {
                "  (lvs's table)"
            } else {
                "  (not offered; for comparison)"
            };
            println!(
                "{n:>6} {m:>7} {:>9.2}% {:>8.2}% {:>13.2}%{note}",
                moved * 100.0,
                100.0 / f64::from(n),
                excess * 100.0
            );
        }
    }
}

fn main() -> Result<()> {
    print_disruption();

    let repeat: u32 = std::env::var("LVS_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds = 7u32;
    pin_to_one_cpu();

    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    let reals = lvs_tests::bench::reals_3_2_1(TEST_RUN_IFINDEX);
    let plan = |port: u16, scheduler| ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(vip, port),
        protocol: Protocol::Tcp,
        scheduler,
        persistence: None,
        dests: reals.clone(),
        fallback: None,
        aliases: Vec::new(),
    };
    let mut dp = Dataplane::load().context("loading the balancer")?;
    dp.set_own_macs(&[DIRECTOR_MAC])
        .context("setting the director's MAC")?;
    dp.tables.apply(&[
        plan(80, Scheduler::Mh(MhFlags::default())),
        plan(81, Scheduler::Wrr),
    ])?;

    const FRESH: u32 = 1000;
    let src = |round: u32, i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (round << 16) | i));
    let frame = |round: u32, i: u32, port: u16, flags| {
        Frame::tcp(src(round, i), 10000 + i as u16, vip, port, flags).build()
    };

    let ebpf = dp.ebpf();
    load_program(ebpf, program_names::FLOOR)?;
    load_program(ebpf, program_names::PASS)?;
    let mut flows: HashMap<_, FlowKey, [u8; 12]> = HashMap::try_from(
        ebpf.map_mut(program_names::FLOOR_MAP)
            .context("floor map")?,
    )?;
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
    macs[6..].copy_from_slice(&DIRECTOR_MAC);
    for i in 0..FRESH {
        let key = flow_key(src(0, i), 10000 + i as u16, vip, 80, proto::TCP);
        flows.insert(key, macs, 0)?;
    }
    let program =
        |name: &'static str| -> Result<&Xdp> { Ok(ebpf.program(name).context(name)?.try_into()?) };
    let (floor, balancer, pass) = (
        program(program_names::FLOOR)?,
        program(program_names::BALANCER)?,
        program(program_names::PASS)?,
    );
    let known: Vec<Vec<u8>> = (0..FRESH).map(|i| frame(0, i, 80, ACK)).collect();
    let pass_long = ns_with_verdict(pass, &known[0], repeat, XDP_PASS)?;

    // Each round: fresh sources for every kind, so none is in the connection table.
    let kinds: [(&str, u16, u8); 3] = [
        ("lvs mh new flow (SYN)", 80, SYN),
        ("lvs mh mid-flow miss (ACK)", 80, ACK),
        ("lvs wrr new flow (SYN)", 81, SYN),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); kinds.len() + 2];
    for round in 0..rounds {
        let (mut p, mut f) = (0.0, 0.0);
        let mut sums = [0.0; 3];
        for i in 0..FRESH {
            let k = &known[i as usize];
            p += ns_with_verdict(pass, k, 1, XDP_PASS)?;
            f += ns_with_verdict(floor, k, 1, XDP_TX)?;
            for (j, &(_, port, flags)) in kinds.iter().enumerate() {
                let r = 1 + round * 3 + j as u32;
                sums[j] += ns_with_verdict(balancer, &frame(r, i, port, flags), 1, XDP_TX)?;
            }
        }
        let count = f64::from(FRESH);
        samples[0].push(p / count);
        samples[1].push(f / count);
        for (j, s) in sums.iter().enumerate() {
            samples[2 + j].push(s / count);
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    let overhead = medians[0] - pass_long;
    let floor_ns = medians[1] - overhead;
    println!(
        "\nmh per packet: fresh 5-tuples, each run once ({FRESH} x {rounds} rounds, median; \
         {overhead:.0} ns timer overhead taken off), one CPU"
    );
    println!("{:<34} {:>8} {:>10}", "program", "ns/pkt", "vs floor");
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "floor (known flows)", floor_ns, 1.0
    );
    for (j, (name, _, _)) in kinds.iter().enumerate() {
        let v = medians[2 + j] - overhead;
        let target = if j < 2 { "   (target <= 2x)" } else { "" };
        println!("{name:<34} {v:>8.1} {:>9.2}x{target}", v / floor_ns);
    }
    Ok(())
}
