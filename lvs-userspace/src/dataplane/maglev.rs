//! Maglev lookup tables for the `mh` scheduler, built here and written to the kernel in the
//! service's ring (double-buffered like the other rings); the kernel only hashes flows into
//! them ([`lvs_common::hash::mh_slot`]).
//!
//! The construction is IPVS's (`ip_vs_mh.c`): a prime table size M ([`MH_TABLE_SIZE`]); each
//! real gets an offset (a hash of it mod M) and a skip (another hash mod (M−1), plus 1), and so
//! its own permutation of the slots, `offset + j·skip mod M`; the reals take turns claiming
//! the next free slot of their permutation until every slot is taken. Weights are turns: each
//! weight is divided by the weights' greatest common divisor and, when the largest quotient
//! is above 64, shifted right until it is not (at least 1 turn each), as IPVS does.
//!
//! Unlike IPVS, whose table depends on the order the reals were added in, the reals take their
//! turns in the order of their addresses, and their hashes are fixed functions of the address
//! alone (with direct routing a real's port is the service's): every director with the same
//! reals and weights builds the same table, whatever the order of the config's lines, of
//! health events and reloads, and across restarts. The slots hold destination ids, which are
//! local to each director; the reals they stand for are the same.

use std::net::IpAddr;

use lvs_common::{hash::mh_hash, limits::MH_TABLE_SIZE};

use super::plan::kernel_addr;

/// A real as the table builder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The real's address: its identity, which fixes its permutation and its turn.
    pub addr: IpAddr,
    /// What the slots hold: its destination id.
    pub id: u32,
    /// Its weight (IPVS's last weight: the one it has when up). 0 keeps it out of the table.
    pub weight: u32,
}

/// Largest number of turns a real takes per round (IPVS: 1 << `IP_VS_MH_TAB_BITS`, 6 at its
/// default table index).
const MAX_TURN_BITS: u32 = 6;

/// The attempt numbers of [`mh_hash`] that give a real's offset and skip: out of the range a
/// flow's attempts use ([`lvs_common::limits::MH_FALLBACK_TRIES`]).
const OFFSET_KEY: u32 = 0xffff_0001;
const SKIP_KEY: u32 = 0xffff_0002;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A real's (offset, skip) in a table of `m` slots.
fn permutation(addr: IpAddr, m: u32) -> (u64, u64) {
    let a = kernel_addr(addr);
    let offset = (mh_hash(&a, 0, OFFSET_KEY) >> 32) % u64::from(m);
    let skip = (mh_hash(&a, 0, SKIP_KEY) >> 32) % u64::from(m - 1) + 1;
    (offset, skip)
}

/// The table of `m` slots (a prime) for `members` (any order; a real listed twice counts
/// once, at its first weight), or an empty one when no member has a weight above 0. With more
/// members than slots, the last ones in address order get none.
pub fn build_sized(members: &[Member], m: u32) -> Vec<u32> {
    let mut live: Vec<Member> = Vec::new();
    for x in members.iter().filter(|x| x.weight > 0) {
        if live.iter().all(|y| y.addr != x.addr) {
            live.push(*x);
        }
    }
    if live.is_empty() || m < 2 {
        return Vec::new();
    }
    live.sort_by_key(|x| x.addr);
    let g = live.iter().fold(0, |g, x| gcd(g, x.weight));
    let max = live.iter().map(|x| x.weight / g).max().unwrap_or(1);
    let fls = u32::BITS - max.leading_zeros();
    let shift = fls.saturating_sub(MAX_TURN_BITS);
    let turns: Vec<u32> = live
        .iter()
        .map(|x| ((x.weight / g) >> shift).max(1))
        .collect();
    let perms: Vec<(u64, u64)> = live.iter().map(|x| permutation(x.addr, m)).collect();

    let mut table: Vec<Option<u32>> = vec![None; m as usize];
    let mut next = vec![0u64; live.len()];
    let mut filled = 0u32;
    'rounds: loop {
        for (i, x) in live.iter().enumerate() {
            let (offset, skip) = perms[i];
            for _ in 0..turns[i] {
                // The permutation visits every slot within m steps (skip < m, m prime), and a
                // slot is free somewhere while the table is not full.
                loop {
                    let c = ((offset + next[i] * skip) % u64::from(m)) as usize;
                    next[i] += 1;
                    if table[c].is_none() {
                        table[c] = Some(x.id);
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break 'rounds;
                }
            }
        }
    }
    table.into_iter().map(|s| s.unwrap_or(0)).collect()
}

/// The table of [`MH_TABLE_SIZE`] slots for `members` (see [`build_sized`]).
pub fn build(members: &[Member]) -> Vec<u32> {
    build_sized(members, MH_TABLE_SIZE)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn member(i: u32, weight: u32) -> Member {
        Member {
            addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            id: i,
            weight,
        }
    }

    fn count(t: &[u32], id: u32) -> usize {
        t.iter().filter(|&&x| x == id).count()
    }

    #[test]
    fn every_slot_is_filled_and_equal_weights_share_evenly() {
        let members: Vec<Member> = (1..=10).map(|i| member(i, 1)).collect();
        let t = build(&members);
        assert_eq!(t.len(), MH_TABLE_SIZE as usize);
        for i in 1..=10 {
            let c = count(&t, i);
            // 4093 / 10: each real takes its turn once per round, so within one slot.
            assert!((409..=410).contains(&c), "real {i}: {c} slots");
        }
    }

    #[test]
    fn weights_are_turns() {
        let t = build(&[member(1, 300), member(2, 200), member(3, 100)]);
        let (a, b, c) = (count(&t, 1), count(&t, 2), count(&t, 3));
        assert_eq!(a + b + c, MH_TABLE_SIZE as usize);
        assert!(
            a.abs_diff(3 * c) <= 3 && b.abs_diff(2 * c) <= 2,
            "{a} {b} {c}"
        );
        // Weight 0 is out; weights past 64 turns are scaled, keeping 1 at least.
        let t = build(&[member(1, 0), member(2, 65535), member(3, 1)]);
        assert_eq!(count(&t, 1), 0);
        assert!(count(&t, 3) >= 1);
        assert!(build(&[member(1, 0)]).is_empty());
    }

    #[test]
    fn the_order_of_the_members_does_not_matter() {
        let members: Vec<Member> = (1..=50).map(|i| member(i, 1 + i % 4)).collect();
        let t = build(&members);
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(build(&reversed), t);
        let mut shuffled = members.clone();
        shuffled.sort_by_key(|x| (x.id * 7919) % 53);
        assert_eq!(build(&shuffled), t);
    }

    #[test]
    fn removing_one_real_moves_few_other_flows() {
        let members: Vec<Member> = (1..=10).map(|i| member(i, 1)).collect();
        let before = build(&members);
        let after = build(&members[1..]);
        let moved_others = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != 1 && b != a)
            .count();
        // IPVS's table size moves a few percent of the others' slots at N = 10.
        assert!(
            moved_others < before.len() * 3 / 100,
            "{moved_others} slots of surviving reals moved"
        );
    }

    #[test]
    fn more_members_than_slots_never_overflow() {
        let members: Vec<Member> = (1..=300).map(|i| member(i, 1)).collect();
        let t = build_sized(&members, 251);
        assert_eq!(t.len(), 251);
        assert!(t.iter().all(|&id| (1..=300).contains(&id)));
    }
}
