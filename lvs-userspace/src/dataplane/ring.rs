//! Scheduler rings: the sequence of destinations a service hands new connections to,
//! computed here once per change and written to the kernel, which only indexes it.
//!
//! `wrr` reproduces the cycle of the kernel's `ip_vs_wrr.c`: a current weight starts at the
//! largest weight, every destination whose weight reaches it is picked in list order, then it
//! drops by the weights' greatest common divisor, and starts over at the largest weight when
//! it reaches 0. For weights 3, 2, 1 that is `A A B A B C`. `rr` is every destination with a
//! weight above 0 once, in list order. `sh` hashes client addresses into the `wrr` ring, which
//! holds each destination in proportion to its weight.

use lvs_common::{
    conns::{DH_BUCKETS, candidate},
    limits::RING_SIZE,
};

/// One ring entry's input: an opaque destination id and its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weighted {
    /// Destination id.
    pub id: u32,
    /// Weight; 0 takes no new connections.
    pub weight: u32,
}

/// The ring kind a scheduler uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// Weighted round-robin cycle (`wrr`, and `sh`, which hashes into it).
    Weighted,
    /// Plain round-robin (`rr`).
    RoundRobin,
    /// The connection schedulers' candidates (`lc`, `wlc`, `sed`, `nq`, `fo`, `ovf`): every
    /// destination with a weight above 0 once, with its weight
    /// ([`lvs_common::conns::candidate`]), in IPVS's list order.
    Candidates,
    /// IPVS's `dh` table: [`DH_BUCKETS`] buckets filled round-robin over every destination
    /// (weight 0 included: its bucket has no destination), in IPVS's list order, each with its
    /// weight ([`lvs_common::conns::candidate`]).
    DestHash,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The ring for `dests` in list order. Empty when no destination has a weight above 0. Its
/// length never exceeds [`RING_SIZE`]: weights whose cycle would be longer are scaled down in
/// proportion (each kept at least 1), which keeps the split as close as the ring allows.
pub fn build(kind: RingKind, dests: &[Weighted]) -> Vec<u32> {
    // IPVS's list is newest first, and reals are added in the order the config lists them:
    // the last listed comes first (and wins the connection schedulers' ties).
    let ipvs_order = dests.iter().rev();
    match kind {
        RingKind::Candidates => {
            return ipvs_order
                .filter(|d| d.weight > 0)
                .map(|d| candidate(d.id, d.weight))
                .take(RING_SIZE as usize)
                .collect();
        }
        RingKind::DestHash => {
            let all: Vec<u32> = ipvs_order.map(|d| candidate(d.id, d.weight)).collect();
            if all.is_empty() {
                return all;
            }
            return (0..DH_BUCKETS as usize)
                .map(|b| all[b % all.len()])
                .collect();
        }
        _ => {}
    }
    let live: Vec<Weighted> = dests.iter().copied().filter(|d| d.weight > 0).collect();
    if live.is_empty() {
        return Vec::new();
    }
    match kind {
        RingKind::RoundRobin => live.iter().map(|d| d.id).take(RING_SIZE as usize).collect(),
        RingKind::Weighted | RingKind::Candidates | RingKind::DestHash => wrr_cycle(&fit(&live)),
    }
}

/// Weights scaled so the cycle (sum of weights / gcd) fits in the ring.
fn fit(live: &[Weighted]) -> Vec<Weighted> {
    let g = live.iter().fold(0, |g, d| gcd(g, d.weight));
    let total: u64 = live.iter().map(|d| u64::from(d.weight / g)).sum();
    if total <= u64::from(RING_SIZE) {
        return live.to_vec();
    }
    // More destinations than slots cannot all be in the ring (the config refuses that): the
    // first ones, once each.
    if live.len() >= RING_SIZE as usize {
        return live[..RING_SIZE as usize]
            .iter()
            .map(|d| Weighted {
                id: d.id,
                weight: 1,
            })
            .collect();
    }
    // Scale into a budget that leaves room for the +1 floors.
    let budget = u64::from(RING_SIZE) - live.len() as u64;
    live.iter()
        .map(|d| Weighted {
            id: d.id,
            weight: (u64::from(d.weight / g) * budget / total).max(1) as u32,
        })
        .collect()
}

/// The ip_vs_wrr cycle for weights that are all above 0.
fn wrr_cycle(live: &[Weighted]) -> Vec<u32> {
    let g = live.iter().fold(0, |g, d| gcd(g, d.weight));
    let max = live.iter().map(|d| d.weight).max().unwrap_or(0);
    let len: u64 = live.iter().map(|d| u64::from(d.weight / g)).sum();
    let mut ring = Vec::with_capacity(len as usize);
    let mut cw = max;
    while cw > 0 {
        ring.extend(live.iter().filter(|d| d.weight >= cw).map(|d| d.id));
        cw = cw.saturating_sub(g);
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(list: &[u32]) -> Vec<Weighted> {
        list.iter()
            .enumerate()
            .map(|(i, &weight)| Weighted {
                id: i as u32,
                weight,
            })
            .collect()
    }

    #[test]
    fn wrr_matches_ip_vs_wrr_for_3_2_1() {
        assert_eq!(
            build(RingKind::Weighted, &w(&[3, 2, 1])),
            vec![0, 0, 1, 0, 1, 2]
        );
    }

    #[test]
    fn wrr_uses_the_gcd() {
        // Weights 4, 2 behave as 2, 1: A A B.
        assert_eq!(build(RingKind::Weighted, &w(&[4, 2])), vec![0, 0, 1]);
        assert_eq!(build(RingKind::Weighted, &w(&[5, 5, 5])), vec![0, 1, 2]);
    }

    #[test]
    fn weight_zero_is_left_out() {
        assert_eq!(build(RingKind::Weighted, &w(&[2, 0, 1])), vec![0, 0, 2]);
        assert_eq!(build(RingKind::RoundRobin, &w(&[2, 0, 1])), vec![0, 2]);
        assert!(build(RingKind::Weighted, &w(&[0, 0])).is_empty());
    }

    #[test]
    fn more_destinations_than_slots_never_overflow() {
        let many: Vec<Weighted> = (0..RING_SIZE + 10)
            .map(|id| Weighted { id, weight: 7 })
            .collect();
        assert_eq!(build(RingKind::Weighted, &many).len(), RING_SIZE as usize);
        let mut mixed: Vec<Weighted> = (0..3000).map(|id| Weighted { id, weight: 1 }).collect();
        mixed[0].weight = 5000;
        let ring = build(RingKind::Weighted, &mixed);
        assert!(ring.len() <= RING_SIZE as usize);
        assert!(ring.iter().filter(|&&x| x == 0).count() > 100);
    }

    #[test]
    fn candidates_are_in_ipvs_list_order_without_weight_zero() {
        assert_eq!(
            build(RingKind::Candidates, &w(&[2, 0, 1])),
            vec![candidate(2, 1), candidate(0, 2)]
        );
    }

    #[test]
    fn dh_fills_256_buckets_round_robin() {
        let ring = build(RingKind::DestHash, &w(&[2, 0, 1]));
        assert_eq!(ring.len(), 256);
        assert_eq!(
            &ring[..4],
            &[
                candidate(2, 1),
                candidate(1, 0),
                candidate(0, 2),
                candidate(2, 1)
            ]
        );
        assert!(build(RingKind::DestHash, &[]).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled_to_fit() {
        let ring = build(RingKind::Weighted, &w(&[65535, 32768, 1]));
        assert!(ring.len() <= RING_SIZE as usize);
        let count = |id| ring.iter().filter(|&&x| x == id).count();
        assert!(count(2) >= 1);
        let ratio = count(0) as f64 / count(1) as f64;
        assert!((ratio - 2.0).abs() < 0.01, "ratio {ratio}");
    }
}
