//! `cargo xtask bench`, the connection schedulers' window: how far the data plane's choice for
//! a service of more than [`SCAN_MAX`] reals (the best of a window of [`SCAN_MAX`] consecutive
//! candidates, each new connection the next window) is from IPVS's exact choice (the best of
//! the whole list), for services of 1 to 4,096 reals.
//!
//! A model, not the data plane: both choices are made with the rule the data plane compiles
//! ([`consider`], `wlc`), over the same arrivals, the window advancing as
//! `lvs-ebpf/src/sched_conn.rs` advances it on one CPU. Reals are weighted 1, 2, 3 in turn;
//! each connection lives an exponential time (mean 4 × reals arrivals, so about 4 are open per
//! real, all active); 20 × reals arrivals (at least 60,000) are made, the first quarter
//! uncounted (warm-up). Printed for each size:
//! - "as good": the share of the windowed choices whose load per weight equals the best of the
//!   whole service at that moment (what IPVS would have taken; with ties, IPVS takes the first);
//! - "excess": how much more load per weight the windowed choice has than that best, in
//!   connections per unit of weight (mean over the choices);
//! - "max/mean": the most loaded real's load per weight over the service's mean, averaged over
//!   the counted arrivals, windowed and exact, each in a run of its own over the same arrivals.

use std::{cmp::Reverse, collections::BinaryHeap};

use lvs_common::conns::{Best, Rule, SCAN_MAX, consider, counts_word};

/// A small deterministic generator (xorshift64*): the same arrivals for both choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An exponential variate of mean `mean`.
    fn exp(&mut self, mean: f64) -> u64 {
        let u = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        (-u.ln() * mean).ceil() as u64
    }
}

/// The best candidate of `ids` (positions in the list) by `wlc`, as the data plane compares.
fn best_of(ids: impl Iterator<Item = usize>, weights: &[u32], active: &[u64]) -> usize {
    let mut best = Best::start(Rule::Wlc);
    for i in ids {
        consider(
            Rule::Wlc,
            &mut best,
            i as u32,
            weights[i],
            counts_word(0, active[i], 0),
        );
    }
    best.id as usize
}

/// Figures of one run.
#[derive(Default)]
struct Figures {
    as_good: f64,
    excess: f64,
    max_over_mean: f64,
}

/// One run over `arrivals` arrivals of connections to `n` reals; `windowed` chooses as the
/// data plane does, else as IPVS does.
fn run(n: usize, arrivals: u64, windowed: bool) -> Figures {
    let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 3) as u32).collect();
    let total_weight: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let mut active = vec![0u64; n];
    let mut ends: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let mut pos = 0usize;
    let (mut counted, mut same, mut excess) = (0u64, 0u64, 0.0);
    let (mut samples, mut spread) = (0u64, 0.0);
    let warm_up = arrivals / 4;
    let per_weight = |active: &[u64], i: usize| active[i] as f64 / f64::from(weights[i]);
    for t in 0..arrivals {
        while let Some(&Reverse((end, real))) = ends.peek() {
            if end > t {
                break;
            }
            ends.pop();
            active[real] -= 1;
        }
        let exact = best_of(0..n, &weights, &active);
        let chosen = if windowed && n > SCAN_MAX as usize {
            let start = pos;
            pos = (pos + SCAN_MAX as usize) % n;
            best_of(
                (0..SCAN_MAX as usize).map(|k| (start + k) % n),
                &weights,
                &active,
            )
        } else {
            exact
        };
        if t >= warm_up {
            counted += 1;
            let (c, e) = (per_weight(&active, chosen), per_weight(&active, exact));
            if c <= e {
                same += 1;
            }
            excess += c - e;
            let open: u64 = active.iter().sum();
            if open > 0 {
                let mean = open as f64 / total_weight;
                let max = (0..n).map(|i| per_weight(&active, i)).fold(0.0, f64::max);
                spread += max / mean;
                samples += 1;
            }
        }
        active[chosen] += 1;
        ends.push(Reverse((t + rng.exp(4.0 * n as f64), chosen)));
    }
    let c = counted as f64;
    Figures {
        as_good: same as f64 / c,
        excess: excess / c,
        max_over_mean: spread / samples.max(1) as f64,
    }
}

fn main() {
    println!(
        "\nwlc, the data plane's windowed choice (best of {SCAN_MAX} consecutive, next window each \
         connection) against IPVS's exact choice (best of all): a model over the same arrivals \
         (weights 1,2,3; ~4 connections open per real)"
    );
    println!(
        "{:>6} {:>10} {:>10} {:>16} {:>16}",
        "reals", "as good", "excess", "max/mean window", "max/mean exact"
    );
    for n in [
        1usize, 2, 4, 8, 9, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
    ] {
        let arrivals = (20 * n as u64).max(60_000);
        let w = run(n, arrivals, true);
        let x = run(n, arrivals, false);
        println!(
            "{n:>6} {:>9.1}% {:>10.3} {:>15.3}x {:>15.3}x",
            100.0 * w.as_good,
            w.excess,
            w.max_over_mean,
            x.max_over_mean
        );
    }
}
