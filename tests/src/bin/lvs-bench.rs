//! `cargo xtask bench`: the balancer's cost per packet beside the floor program, measured in
//! one run with BPF_PROG_TEST_RUN.
//!
//! Three programs run on the same kind of frame (Ethernet, IPv4, TCP), each `repeat` times per
//! round, rounds interleaved so that any drift of the machine hits all of them alike:
//! - floor: parse, one hash lookup, MAC rewrite, XDP_TX (`lvs_floor`);
//! - established: `lvs_xdp` on an ACK of a flow already in the connection table;
//! - new flow: `lvs_xdp` on a SYN (a SYN always starts a new connection: virtual service
//!   lookup, scheduling, connection-table update).
//!
//! The median of the rounds is printed, with the ratio to the floor.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, Result, ensure};
use aya::{
    maps::HashMap,
    programs::{TestRun, TestRunOptions, Xdp},
};
use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{
        Dataplane, DestPlan, ServicePlan, Target, loader::load_program, plan::kernel_addr,
    },
};
use lvs_common::{FlowKey, limits::program_names, service::proto};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{TEST_RUN_IFINDEX, pin_to_one_cpu},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

fn ns_per_packet(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<f64> {
    ns_with_verdict(prog, frame, repeat, XDP_TX)
}

fn ns_with_verdict(prog: &Xdp, frame: &[u8], repeat: u32, verdict: u32) -> Result<f64> {
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == verdict,
        "program returned {} instead of {verdict}",
        r.return_value
    );
    Ok(r.duration.as_nanos() as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let repeat: u32 = std::env::var("LVS_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds = 7;
    pin_to_one_cpu();

    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
    let reals = (1..=3u8)
        .map(|i| DestPlan {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
            weight: u32::from(4 - i),
            target: Target::Remote {
                mac: [2, 0xaa, 0, 0, 0, i],
                src_mac: DIRECTOR_MAC,
                ifindex: TEST_RUN_IFINDEX,
            },
        })
        .collect();
    let mut dp = Dataplane::load().context("loading the balancer")?;
    dp.tables.apply(&[ServicePlan {
        vip: SocketAddr::new(vip, 80),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: reals,
        fallback: None,
    }])?;

    let syn = Frame::tcp(client, 40000, vip, 80, SYN).build();
    let ack = Frame::tcp(client, 40000, vip, 80, ACK).build();

    // Fresh flows for the second measurement: 1,000 a round, new source addresses each round.
    const FRESH: u32 = 1000;
    let fresh_src =
        |round: u32, i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (round << 16) | i));
    let fresh = |round: u32, i: u32, flags| {
        Frame::tcp(fresh_src(round, i), 10000 + i as u16, vip, 80, flags).build()
    };

    let ebpf = dp.ebpf();
    load_program(ebpf, program_names::FLOOR)?;
    load_program(ebpf, program_names::PASS)?;
    // The floor knows the benchmark's flow and the 1,000 flows of round 0.
    let mut flows: HashMap<_, FlowKey, [u8; 12]> = HashMap::try_from(
        ebpf.map_mut(program_names::FLOOR_MAP)
            .context("floor map")?,
    )?;
    let floor_key = |src: IpAddr, sport: u16| FlowKey {
        src: kernel_addr(src),
        dst: kernel_addr(vip),
        sport_be: sport.to_be(),
        dport_be: 80u16.to_be(),
        proto: proto::TCP,
        ..FlowKey::default()
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
    macs[6..].copy_from_slice(&DIRECTOR_MAC);
    flows.insert(floor_key(client, 40000), macs, 0)?;
    for i in 0..FRESH {
        flows.insert(floor_key(fresh_src(0, i), 10000 + i as u16), macs, 0)?;
    }

    let program =
        |name: &'static str| -> Result<&Xdp> { Ok(ebpf.program(name).context(name)?.try_into()?) };
    let (floor, balancer, pass) = (
        program(program_names::FLOOR)?,
        program(program_names::BALANCER)?,
        program(program_names::PASS)?,
    );
    // Put the flow in the connection table.
    ns_per_packet(balancer, &syn, 1)?;

    let (mut f, mut e, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        f.push(ns_per_packet(floor, &ack, repeat)?);
        e.push(ns_per_packet(balancer, &ack, repeat)?);
        n.push(ns_per_packet(balancer, &syn, repeat)?);
    }
    let (f, e, n) = (median(f), median(e), median(n));

    // New flows whose 5-tuple really is not in the table: each frame once (repeat 1), fresh
    // source addresses every round. One run of a program is too short for the timer, so the
    // cost of a run of the pass program measured the same way (minus its cost at 1,000,000
    // repeats) is taken off both sides: what remains is each program's own time.
    let pass_long = ns_with_verdict(pass, &ack, repeat, XDP_PASS)?;
    let (mut fo, mut no, mut po) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds as u32 {
        let (mut fs, mut ns, mut ps) = (0.0, 0.0, 0.0);
        for i in 0..FRESH {
            ps += ns_with_verdict(pass, &fresh(0, i, ACK), 1, XDP_PASS)?;
            fs += ns_per_packet(floor, &fresh(0, i, ACK), 1)?;
            ns += ns_per_packet(balancer, &fresh(round, i, SYN), 1)?;
        }
        let n = f64::from(FRESH);
        po.push(ps / n);
        fo.push(fs / n);
        no.push(ns / n);
    }
    let overhead = median(po) - pass_long;
    let (fo, no) = (median(fo) - overhead, median(no) - overhead);
    println!(
        "XDP cost per packet, BPF_PROG_TEST_RUN, {repeat} repeats x {rounds} rounds (median), one CPU"
    );
    println!("{:<34} {:>8} {:>10}", "program", "ns/pkt", "vs floor");
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "floor (parse, 1 lookup, rewrite)", f, 1.0
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (target <= 1.5x)",
        "lvs established flow (ACK)",
        e,
        e / f
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (target <= 3x)",
        "lvs new flow (SYN)",
        n,
        n / f
    );
    println!(
        "\nfresh 5-tuples, each run once ({FRESH} x {rounds} rounds; {overhead:.0} ns timer overhead taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", fo, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (target <= 3x)",
        "lvs new flow (SYN, not in table)",
        no,
        no / fo
    );
    Ok(())
}
