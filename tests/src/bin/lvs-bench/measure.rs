//! How a program is timed: ns per packet at `repeat` runs, the median of rounds, frames run
//! once each (the test run's own cost taken off), fresh 5-tuples into the table (nearly empty
//! or full).

use anyhow::{Result, ensure};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use lvs_common::limits::CT_WAYS;
pub use lvs_tests::bench::{fastest, median, ns_with_verdict};
use lvs_tests::packet::{ACK, Frame, SYN};

use crate::setup::*;

/// Runs `prog` once on `frame`, wanting `verdict`: the frame it leaves.
pub fn frame_after(prog: &Xdp, frame: &[u8], verdict: u32) -> Result<Vec<u8>> {
    frame_after_on(prog, frame, verdict, None)
}

/// [`frame_after`], the frame received on interface `ingress` if given (else on loopback).
pub fn frame_after_on(
    prog: &Xdp,
    frame: &[u8],
    verdict: u32,
    ingress: Option<u32>,
) -> Result<Vec<u8>> {
    let mut out = vec![0u8; frame.len() + 64];
    let ctx: Option<Vec<u8>> = ingress.map(|i| {
        lvs_tests::bpf::xdp_md(frame, i)
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect()
    });
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: ctx.as_deref(),
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == verdict,
        "program returned {} instead of {verdict}",
        r.return_value
    );
    out.truncate(r.data_size_out as usize);
    Ok(out)
}

pub fn ns_per_packet(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<f64> {
    ns_with_verdict(prog, frame, repeat, XDP_TX)
}

/// The three programs on frames each run once, interleaved: the mean ns of the pass program
/// on `known`, of the floor on `known` and of the balancer on `new`.
pub fn once_each(
    (pass, floor, balancer): (&Xdp, &Xdp, &Xdp),
    known: &[Vec<u8>],
    new: &[Vec<u8>],
) -> Result<(f64, f64, f64)> {
    let (mut ps, mut fs, mut ns) = (0.0, 0.0, 0.0);
    for (k, n) in known.iter().zip(new) {
        ps += ns_with_verdict(pass, k, 1, XDP_PASS)?;
        fs += ns_per_packet(floor, k, 1)?;
        ns += ns_per_packet(balancer, n, 1)?;
    }
    let count = known.len() as f64;
    Ok((ps / count, fs / count, ns / count))
}

/// New flows whose 5-tuple really is not in the table: each frame once (repeat 1), fresh
/// source addresses every round (`rounds` from `first_round`). One run of a program is too
/// short for the timer, so the cost of a run of the pass program measured the same way
/// (minus its cost at `repeat` repeats) is taken off both sides: what remains is each
/// program's own time. (overhead, floor, lvs) ns.
pub fn measure_fresh(
    programs: (&Xdp, &Xdp, &Xdp),
    port: u16,
    first_round: u32,
    rounds: u32,
    repeat: u32,
) -> Result<(f64, f64, f64)> {
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let pass_long = ns_with_verdict(programs.0, &ack, repeat, XDP_PASS)?;
    let known: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh(0, i, ACK)).collect();
    let (mut po, mut fo, mut no) = (Vec::new(), Vec::new(), Vec::new());
    for round in first_round..first_round + rounds {
        let new: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh_to(port, round, i, SYN)).collect();
        let (p, f, n) = once_each(programs, &known, &new)?;
        po.push(p);
        fo.push(f);
        no.push(n);
    }
    let overhead = median(po) - pass_long;
    Ok((overhead, median(fo) - overhead, median(no) - overhead))
}

/// Fills the table of `setup` and measures fresh 5-tuples into it; prints the line.
pub fn full_table_line(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    fill_conntrack(&mut setup.dp, setup.first_real, setup.first_generation)?;
    let flows = setup.table.buckets() * CT_WAYS;
    let (overhead, fo, no) =
        measure_fresh(programs(&mut setup.dp)?, 80, 1 + rounds, rounds, repeat)?;
    println!(
        "\nthe same into a full table of {flows} flows: every way written first, each new flow evicts one ({overhead:.0} ns taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", fo, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (target <= 2x)",
        "lvs new flow (SYN, full table)",
        no,
        no / fo
    );
    crate::flood::fresh_warm_lines(
        setup,
        &format!("the full table of {flows} flows"),
        rounds,
        repeat,
        0,
    )?;
    Ok(())
}
