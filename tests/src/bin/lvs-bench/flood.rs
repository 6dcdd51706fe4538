//! New flows, warm: a SYN of a new 5-tuple at every run, `repeat` runs a round, behind the
//! fresh wrapper ([`lvs_tests::bpf::Fresh`]: the frame restored, then a new source port and
//! address). The program's code and its small maps stay in the cache, as on a director taking
//! many new connections a second; the connection table's bucket of each new flow is anywhere
//! in the table, as it is there. The cold lines (`measure.rs`, each frame a test run of its
//! own) pay besides for the code and every map coming back into the cache after the test
//! run's call; both are printed.

use std::os::fd::AsRawFd as _;

use anyhow::{Context as _, Result, ensure};
use lvs_common::limits::CT_WAYS;
use lvs_tests::{
    bench::fastest,
    bpf::{self, Fresh},
    packet::{ACK, Frame, SYN},
};

use crate::{measure::median, setup::*};

/// The source address of the fresh frames (its last two bytes set by the wrapper).
const FRESH_SOURCE: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(100, 99, 0, 0));
/// The same for the `mh` mid-flow misses, whose ACKs must not meet the flows the `mh` SYNs
/// opened (both count from the same start, on the same port).
const MIDFLOW_SOURCE: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(100, 98, 0, 0));

/// A case: the wrapped program, its verdict, and the destination slots of its service (their
/// new connections must grow by one a run).
struct Case {
    name: String,
    wrapped: Fresh,
    verdict: u32,
    dests: Vec<u32>,
}

/// The new connections the destination slots `dests` counted.
fn connections(setup: &Setup, dests: &[u32]) -> Result<u64> {
    let stats = setup.dp.tables.stats();
    let mut sum = 0;
    for &d in dests {
        sum += stats.dest(d)?.connections;
    }
    Ok(sum)
}

/// New flows into the table as it is (`what` says how full), warm: the DR service (`wrr`, 3
/// reals), the `mh` service on the same reals (a SYN, and a mid-flow ACK with no entry), and
/// the `wlc` services of [`WLC_SIZES`], beside the floor (which misses its hash map
/// on a new 5-tuple: the same parse and lookup), each less the wrapper's cost in front of the
/// pass program. Runs count on from `start`; returns where they stopped.
pub fn fresh_warm_lines(
    setup: &mut Setup,
    what: &str,
    rounds: u32,
    repeat: u32,
    start: u64,
) -> Result<u64> {
    let cases = {
        let (pass, floor, lvs) = program_fds(&mut setup.dp)?;
        let frame = |port, flags| {
            let source = if flags == ACK {
                MIDFLOW_SOURCE
            } else {
                FRESH_SOURCE
            };
            Frame::tcp(source, 1, VIP, port, flags).build()
        };
        let syn = |port| frame(port, SYN);
        let mut cases = vec![
            Case {
                name: "wrapper (pass)".into(),
                wrapped: Fresh::new("fresh pass", pass, &syn(80), start)?,
                verdict: XDP_PASS,
                dests: Vec::new(),
            },
            Case {
                name: "floor".into(),
                wrapped: Fresh::new("fresh floor", floor, &syn(80), start)?,
                verdict: XDP_PASS,
                dests: Vec::new(),
            },
        ];
        // The services' 5-tuples differ by their port, so all cases count from `start`.
        for plan in setup.plans.iter().filter(|p| {
            p.vip.ip() == VIP
                && (p.vip.port() == 80
                    || p.vip.port() == MH_PORT
                    || WLC_SIZES.iter().any(|w| w.0 == p.vip.port()))
        }) {
            let dests = dest_ids(setup, plan)?;
            let port = plan.vip.port();
            let mut new = |name: String, flags| -> Result<()> {
                cases.push(Case {
                    wrapped: Fresh::new(&name, lvs, &frame(port, flags), start)?,
                    name,
                    verdict: XDP_TX,
                    dests: dests.clone(),
                });
                Ok(())
            };
            match port {
                80 => new("lvs new flow (SYN), wrr of 3".into(), SYN)?,
                // A mid-flow packet with no entry (another director had the flow) goes where
                // the flow's SYN would have gone and is remembered: a new connection too.
                MH_PORT => {
                    new("lvs new flow (SYN), mh of 3".into(), SYN)?;
                    new("lvs mid-flow miss (ACK), mh of 3".into(), ACK)?;
                }
                _ => new(format!("lvs new flow (SYN), wlc of {}", dests.len()), SYN)?,
            }
        }
        cases
    };
    // LVS_BENCH_CASE=text: only the cases whose name holds it, besides the wrapper and the
    // floor (to profile one).
    let only = std::env::var("LVS_BENCH_CASE").unwrap_or_default();
    let cases: Vec<Case> = cases
        .into_iter()
        .enumerate()
        .filter(|(i, c)| *i < 2 || c.name.contains(only.as_str()))
        .map(|(_, c)| c)
        .collect();
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (c, t) in cases.iter().zip(times.iter_mut()) {
            let before = connections(setup, &c.dests)?;
            let r = bpf::test_run(c.wrapped.prog.as_raw_fd(), &[0u8; 54], repeat)?;
            ensure!(
                r.verdict == c.verdict,
                "{}: {} instead of {}",
                c.name,
                r.verdict,
                c.verdict
            );
            if !c.dests.is_empty() {
                let runs = connections(setup, &c.dests)? - before;
                ensure!(
                    runs == u64::from(repeat),
                    "{}: {runs} new connections counted for {repeat} runs",
                    c.name
                );
            }
            t.push(f64::from(r.duration_ns));
        }
    }
    let (wrapper, wrapper_fastest) = (median(times[0].clone()), fastest(&times[0]));
    println!(
        "\nnew flows into {what}, warm: a new 5-tuple each run, {repeat} runs a round ({rounds} interleaved rounds, median, and the fastest round; the fresh wrapper's {wrapper:.1} ns (fastest {wrapper_fastest:.1}) taken off)"
    );
    let rows: Vec<_> = cases
        .iter()
        .zip(&times)
        .skip(2)
        .map(|(c, t)| {
            let target = match c.dests.len() {
                3 => "   (target <= 2x)",
                8 => "   (target <= 2.5x)",
                _ => "",
            };
            (c.name.as_str(), t.as_slice(), target)
        })
        .collect();
    print_lines(&times[0], &times[1], &rows);
    Ok(start + u64::from(repeat) * u64::from(rounds))
}

/// The median and the fastest of the rounds `times`, each less the wrapper's (`wrapper`: its
/// rounds).
fn less_wrapper(times: &[f64], wrapper: &[f64]) -> (f64, f64) {
    let (w, wf) = (median(wrapper.to_vec()), fastest(wrapper));
    (
        median(times.iter().map(|t| t - w).collect()),
        fastest(times) - wf,
    )
}

/// Prints the floor's line (its rounds `floor`) and each of `rows` (name, rounds, target note)
/// beside it: median and fastest round, each less the wrapper's (its rounds `wrapper`), and
/// their ratios to the floor's.
fn print_lines(wrapper: &[f64], floor: &[f64], rows: &[(&str, &[f64], &str)]) {
    let (fm, ff) = less_wrapper(floor, wrapper);
    println!(
        "{:<34} {:>8} {:>10} {:>8} {:>10}",
        "program", "ns/pkt", "vs floor", "fastest", "vs floor"
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x {:>8.1} {:>9.2}x",
        "floor (a lookup that misses)", fm, 1.0, ff, 1.0
    );
    for (name, times, target) in rows {
        let (m, f) = less_wrapper(times, wrapper);
        println!(
            "{:<34} {:>8.1} {:>9.2}x {:>8.1} {:>9.2}x{target}",
            name,
            m,
            m / fm,
            f,
            f / ff
        );
    }
}

/// [`established_cold_buckets_line`] with a sixteenth of the table's flows (a few buckets
/// draw more than their four ways), counting from 2^40 (apart from the new-flow lines'
/// 5-tuples, which count from 0); returns where its runs stopped.
pub fn cold_buckets_line(setup: &mut Setup, rounds: u32) -> Result<u64> {
    let flows = u32::try_from(setup.table.buckets() * CT_WAYS / 16).context("flows")?;
    established_cold_buckets_line(setup, rounds, flows, 1 << 40)
}

/// Established flows whose buckets are out of the cache, the code warm: `flows` flows of the
/// DR service opened by SYNs through the fresh wrapper, then their ACKs through it in the same
/// order, `flows` runs a round, each ACK meeting its own flow's bucket anywhere in the table
/// (as on a director holding many flows). Checked: every run forwarded, fewer than 1% of the
/// ACKs scheduled again (those whose flow a bucket that drew more than four evicted). Beside
/// the floor through the same wrapper (its one small hash map stays cached: the ratio says
/// what the table's size costs over that). Runs count from `start`; returns where they
/// stopped.
fn established_cold_buckets_line(
    setup: &mut Setup,
    rounds: u32,
    flows: u32,
    start: u64,
) -> Result<u64> {
    let (pass, floor, lvs) = program_fds(&mut setup.dp)?;
    let frame = |flags| Frame::tcp(FRESH_SOURCE, 1, VIP, 80, flags).build();
    let plan = setup
        .plans
        .iter()
        .find(|p| p.vip.ip() == VIP && p.vip.port() == 80)
        .context("the DR service")?;
    let dests = dest_ids(setup, plan)?;
    let opened = Fresh::new("open", lvs, &frame(SYN), start)?;
    let before = connections(setup, &dests)?;
    let r = bpf::test_run(opened.prog.as_raw_fd(), &[0u8; 54], flows)?;
    ensure!(r.verdict == XDP_TX, "opening the flows: {}", r.verdict);
    ensure!(
        connections(setup, &dests)? - before == u64::from(flows),
        "not every flow was opened"
    );
    let cases = [
        (
            "wrapper (pass)",
            Fresh::new("ack pass", pass, &frame(ACK), start)?,
            XDP_PASS,
        ),
        (
            "floor",
            Fresh::new("ack floor", floor, &frame(ACK), start)?,
            XDP_PASS,
        ),
        (
            "lvs",
            Fresh::new("ack lvs", lvs, &frame(ACK), start)?,
            XDP_TX,
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let opened_count = connections(setup, &dests)?;
    for _ in 0..rounds {
        for ((name, wrapped, verdict), t) in cases.iter().zip(times.iter_mut()) {
            wrapped.restart(start)?;
            let r = bpf::test_run(wrapped.prog.as_raw_fd(), &[0u8; 54], flows)?;
            ensure!(
                r.verdict == *verdict,
                "{name}: {} instead of {verdict}",
                r.verdict
            );
            t.push(f64::from(r.duration_ns));
        }
    }
    // A bucket that drew more than its ways' worth of the opened flows evicted the first of
    // them (a few buckets of a table a sixteenth full): their ACKs are new flows again.
    let again = connections(setup, &dests)? - opened_count;
    ensure!(
        again * 100 < u64::from(flows) * u64::from(rounds),
        "{again} ACKs of opened flows were scheduled again"
    );
    let (wrapper, wrapper_fastest) = (median(times[0].clone()), fastest(&times[0]));
    println!(
        "\nestablished flows, their buckets out of the cache: {flows} DR flows opened, then their ACKs in turn, {flows} runs a round ({rounds} rounds; {again} ACKs whose flow a full bucket had evicted scheduled again; the fresh wrapper's {wrapper:.1} ns (fastest {wrapper_fastest:.1}) taken off)"
    );
    print_lines(
        &times[0],
        &times[1],
        &[("lvs DR established, cold bucket", &times[2], "")],
    );
    Ok(start + u64::from(flows))
}
