//! What the benchmarks (`tests/src/bin/lvs-*-bench`) share: timing a program with
//! BPF_PROG_TEST_RUN, the median of rounds, and the three reals (weights 3, 2, 1) their
//! services balance over.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context as _, Result, ensure};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use lvs::dataplane::{
    Dataplane,
    plan::{DestPlan, ServicePlan, Target},
};

use crate::packet::DIRECTOR_MAC;

/// Total ns of `repeat` runs of `prog` on `frame`, each wanting `verdict`.
pub fn ns_with_verdict(prog: &Xdp, frame: &[u8], repeat: u32, verdict: u32) -> Result<f64> {
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

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The smallest of `v` (NaN for an empty one): the round least disturbed by the rest of the
/// machine, whose noise only ever adds time.
pub fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().reduce(f64::min).unwrap_or(f64::NAN)
}

/// Reals 198.18.0.11-13 with weights 3, 2 and 1, reached through interface `ifindex` at MACs
/// 02:aa:00:00:00:0N.
pub fn reals_3_2_1(ifindex: u32) -> Vec<DestPlan> {
    (1..=3u8)
        .map(|i| DestPlan {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
            weight: u32::from(4 - i),
            table_weight: u32::from(4 - i),
            target: Target::Remote {
                mac: [2, 0xaa, 0, 0, 0, i],
                src_mac: DIRECTOR_MAC,
                ifindex,
            },
        })
        .collect()
}

/// The destination slot of `plan`'s first real as written in `dp`, and its generation: what a
/// benchmark fills the connection table with.
pub fn first_real_slot(dp: &Dataplane, plan: &ServicePlan) -> Result<(u32, u32)> {
    let slot = dp
        .tables
        .dest_id(&plan.key(), plan.dests[0].addr)
        .context("the first real's slot")?;
    let generation = dp
        .tables
        .dest_generation(slot)
        .context("the first real's generation")?;
    Ok((slot, generation))
}
