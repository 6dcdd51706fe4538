//! Per-real connection counts (IPVS's ActiveConn and InActConn) and the connection schedulers'
//! rules, shared by the data plane, which keeps the counts and schedules with them, and the
//! agent, which corrects the counts for flows that expire without a packet and shows them.
//!
//! # The counts word
//!
//! One `u64` per destination slot ([`map_names::DEST_CONNS`](crate::limits::map_names)),
//! changed only by compare-and-exchange: the slot's generation (low [`GEN_BITS`] bits) in the
//! top bits, then the active and the inactive count ([`COUNT_BITS`] bits each). A change made
//! for a flow of another generation (a removed real whose slot was reused) leaves the word
//! alone, so a new real never inherits its slot's old flows.
//!
//! # Who counts what
//!
//! Every way of the connection table that holds a flow whose state is not [`CT_GONE`] (nor a
//! NATed flow's reply way, [`crate::conntrack::CT_REPLY`], which is no flow of its own) is
//! counted once, in its destination's word, as active or inactive by its state
//! ([`crate::conntrack::is_active_state`]). The one that changes a way's time-and-state word
//! from counted to something else owns the matching change of the counts: the data plane when a
//! packet moves the state (its compare-and-exchange of the word), or when a new flow takes the
//! way (an exchange of the word); the agent when it finds the flow past its idle timeout and
//! marks it [`CT_GONE`] (a compare-and-exchange of the word). Exactly one of them can win.

use crate::conntrack::{CT_STATES, STATE_MASK, ct_state, is_active_state};

/// The state of a way whose flow expired and was uncounted: no lookup finds it (its timeout is
/// 0 and its time 0), and it is not counted.
pub const CT_GONE: u8 = 12;

/// The time-and-state word of a way marked [`CT_GONE`].
pub const GONE_WORD: u64 = CT_GONE as u64;

const _: () = {
    assert!((CT_GONE as usize) < CT_STATES);
    assert!(CT_GONE as usize >= ct_state::NAMES.len());
    assert!(GONE_WORD & !STATE_MASK == 0);
};

/// Bits of each count.
pub const COUNT_BITS: u32 = 26;
/// Bits of the generation tag.
pub const GEN_BITS: u32 = 64 - 2 * COUNT_BITS;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// A counts word for a slot of generation `generation` with the given counts.
#[inline(always)]
pub const fn counts_word(generation: u32, active: u64, inactive: u64) -> u64 {
    ((generation as u64 & GEN_MASK) << (2 * COUNT_BITS))
        | ((active & COUNT_MASK) << COUNT_BITS)
        | (inactive & COUNT_MASK)
}

/// The active count of a counts word.
#[inline(always)]
pub const fn active(word: u64) -> u64 {
    (word >> COUNT_BITS) & COUNT_MASK
}

/// The inactive count of a counts word.
#[inline(always)]
pub const fn inactive(word: u64) -> u64 {
    word & COUNT_MASK
}

/// Whether a counts word belongs to generation `generation` of its slot.
#[inline(always)]
pub const fn same_generation(word: u64, generation: u32) -> bool {
    word >> (2 * COUNT_BITS) == generation as u64 & GEN_MASK
}

/// The word with `d_active` and `d_inactive` (each -1, 0 or +1) added, each count kept
/// within 0 and its maximum.
#[inline(always)]
pub const fn add(word: u64, d_active: i32, d_inactive: i32) -> u64 {
    let a = step(active(word), d_active);
    let i = step(inactive(word), d_inactive);
    (word & !((COUNT_MASK << COUNT_BITS) | COUNT_MASK)) | (a << COUNT_BITS) | i
}

#[inline(always)]
const fn step(v: u64, d: i32) -> u64 {
    if d > 0 {
        if v < COUNT_MASK { v + 1 } else { v }
    } else if d < 0 {
        v.saturating_sub(1)
    } else {
        v
    }
}

/// The change of (active, inactive) a flow makes when its state goes from `from` to `to`
/// (either may be `None`: no flow, or a flow that is not counted).
#[inline(always)]
pub const fn delta(from: Option<u8>, to: Option<u8>) -> (i32, i32) {
    let (mut a, mut i) = (0, 0);
    if let Some(s) = from {
        if is_active_state(s) {
            a -= 1;
        } else {
            i -= 1;
        }
    }
    if let Some(s) = to {
        if is_active_state(s) {
            a += 1;
        } else {
            i += 1;
        }
    }
    (a, i)
}

/// Whether a way whose sequence number is `seq` and time-and-state word `seen` holds a counted
/// flow.
#[inline(always)]
pub const fn counted(seq: u64, seen: u64) -> bool {
    let state = (seen & STATE_MASK) as u8;
    seq != 0 && state != CT_GONE && state != crate::conntrack::CT_REPLY
}

/// A connection scheduler's candidate as the ring holds it: destination id (low 16 bits) and
/// weight (high 16 bits).
#[inline(always)]
pub const fn candidate(id: u32, weight: u32) -> u32 {
    (id & 0xffff) | (if weight > 0xffff { 0xffff } else { weight }) << 16
}

/// The destination id of a candidate.
#[inline(always)]
pub const fn candidate_id(c: u32) -> u32 {
    c & 0xffff
}

/// The weight of a candidate.
#[inline(always)]
pub const fn candidate_weight(c: u32) -> u32 {
    c >> 16
}

const _: () = assert!(crate::limits::MAX_DESTS <= 1 << 16);

/// Candidates the data plane compares for one new connection. A service with more takes them
/// in windows of this many, each new connection the next window (per CPU).
pub const SCAN_MAX: u32 = 8;

/// The connection schedulers' rules, with IPVS's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `lc`: least `active*256 + inactive`, weights ignored (but weight 0 never chosen).
    Lc,
    /// `wlc`: least `(active*256 + inactive) / weight`, by cross-multiplication.
    Wlc,
    /// `sed`: least `(active + 1) / weight`.
    Sed,
    /// `nq`: the first with no active connection, else as `sed`.
    Nq,
    /// `fo`: the highest weight.
    Fo,
    /// `ovf`: the highest weight among those whose active count does not exceed their weight.
    Ovf,
}

impl Rule {
    /// The rule of a service's scheduler ([`crate::service::sched`]), if it is one of these.
    #[inline(always)]
    pub const fn of(scheduler: u32) -> Option<Rule> {
        use crate::service::sched;
        match scheduler {
            sched::LC => Some(Rule::Lc),
            sched::WLC => Some(Rule::Wlc),
            sched::SED => Some(Rule::Sed),
            sched::NQ => Some(Rule::Nq),
            sched::FO => Some(Rule::Fo),
            sched::OVF => Some(Rule::Ovf),
            _ => None,
        }
    }
}

/// The best candidate so far of a scan. It starts as [`Best::start`], which any candidate
/// of weight above 0 beats, so "found" is a weight above 0 and not a flag of its own (a flag
/// would make every candidate double the paths the BPF verifier walks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Best {
    /// Its destination id.
    pub id: u32,
    /// Its weight; 0 until a candidate was taken.
    pub weight: u32,
    /// Its overhead by the rule (for `fo` and `ovf`: unused).
    pub overhead: u64,
}

impl Best {
    /// Before the first candidate: for `lc` an overhead no real reaches; for the weighted
    /// rules weight 0, so `overhead * w > oh * 0` holds for any weight above 0.
    #[inline(always)]
    pub const fn start(rule: Rule) -> Best {
        Best {
            id: 0,
            weight: 0,
            overhead: if matches!(rule, Rule::Lc) {
                u64::MAX
            } else {
                1
            },
        }
    }

    /// Whether a candidate was taken.
    #[inline(always)]
    pub const fn found(&self) -> bool {
        self.weight != 0
    }
}

/// Considers a candidate (`id`, `weight`, its counts word `counts`) in list order, as IPVS's
/// scheduler loop does; a later candidate replaces the best only on a strict improvement, so
/// ties go to the first. Returns true when the scan can stop (`nq` found an idle real).
#[inline(always)]
pub fn consider(rule: Rule, best: &mut Best, id: u32, weight: u32, counts: u64) -> bool {
    if weight == 0 {
        return false;
    }
    let (a, i) = (active(counts), inactive(counts));
    let w = weight as u64;
    let (take, overhead) = match rule {
        Rule::Lc => {
            let oh = a * 256 + i;
            (oh < best.overhead, oh)
        }
        Rule::Wlc => {
            let oh = a * 256 + i;
            (best.overhead * w > oh * best.weight as u64, oh)
        }
        Rule::Sed | Rule::Nq => {
            let oh = a + 1;
            (best.overhead * w > oh * best.weight as u64, oh)
        }
        Rule::Fo => (weight > best.weight, 0),
        Rule::Ovf => (a <= w && weight > best.weight, 0),
    };
    if matches!(rule, Rule::Nq) && a == 0 {
        *best = Best {
            id,
            weight,
            overhead,
        };
        return true;
    }
    if take {
        *best = Best {
            id,
            weight,
            overhead,
        };
    }
    false
}

/// Buckets of the `dh` scheduler's table (IPVS's `IP_VS_DH_TAB_BITS` 8).
pub const DH_BUCKETS: u32 = 256;

/// The `dh` bucket of a destination address, as IPVS's `ip_vs_dh_hashkey`: the address (IPv6:
/// its four words XORed) as a host-order integer, through the kernel's `hash_32` to 8 bits.
#[inline(always)]
pub const fn dh_bucket(addr: &crate::Addr) -> u32 {
    let w = &addr.words;
    let fold = if addr.is_v4() {
        w[3]
    } else {
        w[0] ^ w[1] ^ w[2] ^ w[3]
    };
    u32::from_be(fold).wrapping_mul(0x61C8_8647) >> (32 - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_pack_and_saturate() {
        let w = counts_word(7, 3, 5);
        assert_eq!((active(w), inactive(w)), (3, 5));
        assert!(same_generation(w, 7) && !same_generation(w, 8));
        let w = add(w, -1, 1);
        assert_eq!((active(w), inactive(w)), (2, 6));
        let z = add(counts_word(1, 0, 0), -1, -1);
        assert_eq!((active(z), inactive(z)), (0, 0));
        assert!(same_generation(z, 1));
    }

    #[test]
    fn deltas_follow_ipvs_activity() {
        use ct_state::*;
        assert_eq!(delta(None, Some(SYN_RECV)), (1, 0));
        assert_eq!(delta(Some(ESTABLISHED), Some(FIN_WAIT)), (-1, 1));
        assert_eq!(delta(Some(FIN_WAIT), Some(SYN_RECV)), (1, -1));
        assert_eq!(delta(Some(UDP), None), (0, -1));
        assert_eq!(delta(None, Some(UDP)), (0, 1));
    }

    fn pick(rule: Rule, list: &[(u32, u64, u64)]) -> Option<u32> {
        let mut best = Best::start(rule);
        for (id, &(w, a, i)) in list.iter().enumerate() {
            if consider(rule, &mut best, id as u32, w, counts_word(0, a, i)) {
                break;
            }
        }
        best.found().then_some(best.id)
    }

    #[test]
    fn rules_choose_as_ipvs() {
        // (weight, active, inactive)
        let l = [(1, 2, 0), (3, 3, 0), (1, 1, 300)];
        assert_eq!(pick(Rule::Lc, &l), Some(0)); // 512 < 768, 556
        assert_eq!(pick(Rule::Wlc, &l), Some(1)); // 768/3 = 256 < 512
        assert_eq!(pick(Rule::Sed, &l), Some(1)); // 4/3 < 2 = 3/1... (a+1)/w
        assert_eq!(pick(Rule::Nq, &[(1, 2, 0), (1, 0, 9), (1, 0, 0)]), Some(1));
        assert_eq!(pick(Rule::Fo, &[(2, 0, 0), (5, 9, 9), (5, 0, 0)]), Some(1));
        assert_eq!(pick(Rule::Ovf, &[(2, 0, 0), (5, 6, 0), (4, 4, 0)]), Some(2));
        // Weight 0 never wins; ties go to the first.
        assert_eq!(pick(Rule::Wlc, &[(0, 0, 0), (1, 1, 0), (1, 1, 0)]), Some(1));
        assert_eq!(pick(Rule::Lc, &[(0, 0, 0)]), None);
    }

    #[test]
    fn dh_matches_hash_32() {
        // hash_32(0xc0a80001, 8) = (0xc0a80001 * 0x61c88647) >> 24
        let a = crate::Addr::from_v4_wire(u32::from_ne_bytes([192, 168, 0, 1]));
        assert_eq!(
            dh_bucket(&a),
            0xc0a8_0001u32.wrapping_mul(0x61c8_8647) >> 24
        );
    }
}
