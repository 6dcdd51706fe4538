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

const XDP_TX: u32 = 3;

fn ns_per_packet(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<f64> {
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == XDP_TX,
        "program returned {} instead of XDP_TX",
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

    let ebpf = dp.ebpf();
    load_program(ebpf, program_names::FLOOR)?;
    let mut flows: HashMap<_, FlowKey, [u8; 12]> = HashMap::try_from(
        ebpf.map_mut(program_names::FLOOR_MAP)
            .context("floor map")?,
    )?;
    let key = FlowKey {
        src: kernel_addr(client),
        dst: kernel_addr(vip),
        sport_be: 40000u16.to_be(),
        dport_be: 80u16.to_be(),
        proto: proto::TCP,
        ..FlowKey::default()
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
    macs[6..].copy_from_slice(&DIRECTOR_MAC);
    flows.insert(key, macs, 0)?;

    let floor: &Xdp = ebpf
        .program(program_names::FLOOR)
        .context("floor")?
        .try_into()?;
    let balancer: &Xdp = ebpf
        .program(program_names::BALANCER)
        .context("balancer")?
        .try_into()?;
    // Put the flow in the connection table.
    ns_per_packet(balancer, &syn, 1)?;

    let (mut f, mut e, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        f.push(ns_per_packet(floor, &ack, repeat)?);
        e.push(ns_per_packet(balancer, &ack, repeat)?);
        n.push(ns_per_packet(balancer, &syn, repeat)?);
    }
    let (f, e, n) = (median(f), median(e), median(n));
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
    Ok(())
}
