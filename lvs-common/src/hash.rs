//! The hashes both sides must agree on: the source-address hash of the `sh` scheduler (so the
//! agent and its tests can say which ring slot a client lands on), and the connection table's
//! bucket hash (so tests can say which flows share a bucket), and the Maglev (`mh`) flow hash
//! (so the agent's tests and benchmarks can say which slot of the table a flow takes).

use crate::{addr::Addr, conntrack::FLOW_WORDS};

/// A 32-bit hash of an address (a multiply-xorshift mix of its four words). Cheap in the
/// kernel (no loops, no tables) and well spread over the low bits used for `% ring_len`.
#[inline(always)]
pub const fn addr_hash(addr: &Addr) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    let mut i = 0;
    while i < 4 {
        h ^= addr.words[i];
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        i += 1;
    }
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The ring slot the `sh` scheduler picks for `client` in a ring of `ring_len` slots (0 for an
/// empty ring).
#[inline(always)]
pub const fn source_hash_slot(client: &Addr, ring_len: u32) -> u32 {
    match addr_hash(client).checked_rem(ring_len) {
        Some(slot) => slot,
        None => 0,
    }
}

/// An odd constant with well-spread bits (2^64 / golden ratio) for the per-word multiply.
const FLOW_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// A keyed 64-bit hash of a flow's key words ([`crate::FlowKey::words`]): each word is mixed
/// into the state with a multiply and a xorshift, starting from `seed`, then the state gets a
/// final avalanche (two more multiply-xorshift rounds) so every output bit depends on every
/// input bit. About thirty BPF instructions, no loops left after unrolling, no tables.
///
/// It is not a cryptographic function. With a random `seed` that nobody outside knows, which
/// flows share a bucket cannot be computed from the outside, which is what keeps a flood from
/// aiming at one bucket.
#[inline(always)]
pub const fn flow_hash(words: &[u64; FLOW_WORDS], seed: u64) -> u64 {
    let mut h = seed;
    let mut i = 0;
    while i < FLOW_WORDS {
        h = (h ^ words[i]).wrapping_mul(FLOW_MUL);
        h ^= h >> 29;
        i += 1;
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

/// The connection-table bucket of a flow (its key words) under `seed`, in a table of
/// `bucket_mask + 1` buckets (a power of two, [`crate::CtConfig::bucket_mask`]).
#[inline(always)]
pub const fn ct_bucket(words: &[u64; FLOW_WORDS], seed: u64, bucket_mask: u32) -> u32 {
    ct_place(words, seed, bucket_mask).0
}

/// A flow's bucket (as [`ct_bucket`]) and its tag ([`crate::conntrack::CtSlot::tag`]): the
/// hash's low 32 bits, masked, and its high 32 bits, which the bucket index never uses (a
/// table has at most 2^32 buckets).
#[inline(always)]
pub const fn ct_place(words: &[u64; FLOW_WORDS], seed: u64, bucket_mask: u32) -> (u32, u32) {
    ct_split(flow_hash(words, seed), bucket_mask)
}

/// The bucket and tag of a flow of hash `hash` ([`flow_hash`]), as [`ct_place`] gives them.
#[inline(always)]
pub const fn ct_split(hash: u64, bucket_mask: u32) -> (u32, u32) {
    (hash as u32 & bucket_mask, (hash >> 32) as u32)
}

/// The `mh` scheduler's hash of a client (`client`, and its source port `port` with `mh-port`,
/// else 0) for its `attempt`-th slot: attempt 0 is the flow's own slot, attempts 1, 2, ... the
/// next ones of its sequence, tried with `mh-fallback` while the slot's real takes no new
/// connections.
///
/// It has no seed: every director must send a flow to the same slot, so the hash is a fixed
/// function of its inputs (like IPVS's built-in keys), which must never change between
/// versions. The address's two halves, then the port and attempt, are mixed with multiplies
/// and xorshifts (five multiplies, no loop, no table).
#[inline(always)]
pub const fn mh_hash(client: &Addr, port: u16, attempt: u32) -> u64 {
    let w = &client.words;
    let hi = w[0] as u64 | (w[1] as u64) << 32;
    let lo = w[2] as u64 | (w[3] as u64) << 32;
    let mut h = (hi ^ 0x243f_6a88_85a3_08d3).wrapping_mul(FLOW_MUL);
    h ^= h >> 29;
    h = (h ^ lo).wrapping_mul(FLOW_MUL);
    h ^= h >> 29;
    h = (h ^ (port as u64 | (attempt as u64) << 16)).wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 29)
}

/// The slot of a Maglev table of `table_len` slots that [`mh_hash`] gives: its high 32 bits
/// scaled to the table (a multiply and a shift, no division).
#[inline(always)]
pub const fn mh_slot(client: &Addr, port: u16, attempt: u32, table_len: u32) -> u32 {
    (((mh_hash(client, port, attempt) >> 32) * table_len as u64) >> 32) as u32
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;

    use super::*;
    use crate::{FlowKey, limits::CT_BUCKETS};

    const MASK: u32 = CT_BUCKETS - 1;

    fn flow(client: u32, sport: u16) -> [u64; FLOW_WORDS] {
        FlowKey {
            src: Addr::from_v4_wire(client.to_be()),
            dst: Addr::from_v4_wire(u32::from_be_bytes([198, 18, 0, 100]).to_be()),
            sport_be: sport.to_be(),
            dport_be: 80u16.to_be(),
            proto: 6,
            ..FlowKey::default()
        }
        .words()
    }

    /// Flows of one client over its ports, or of many clients on one port, fill the buckets
    /// as evenly as random placement would: no bucket gets far more than the mean.
    #[test]
    fn flows_spread_evenly_over_the_buckets() {
        let n = CT_BUCKETS as usize * 4;
        for (name, seed) in [
            ("seed 1", 1),
            ("random-looking seed", 0x1234_5678_9abc_def1),
        ] {
            for pattern in ["ports of one client", "clients on one port"] {
                let mut count = vec![0u32; CT_BUCKETS as usize];
                for i in 0..n as u32 {
                    let w = if pattern == "ports of one client" {
                        flow(0xc612_010a + (i >> 16), i as u16)
                    } else {
                        flow(0x0a00_0000 + i, 40000)
                    };
                    count[ct_bucket(&w, seed, MASK) as usize] += 1;
                }
                // Mean 4 per bucket: a Poisson(4) gets past 20 with probability ~1e-8 per
                // bucket; nearly no bucket may be empty (e^-4 ~ 1.8%).
                let max = *count.iter().max().unwrap();
                let empty = count.iter().filter(|&&c| c == 0).count();
                assert!(max <= 20, "{name}, {pattern}: a bucket got {max} flows");
                assert!(
                    empty < CT_BUCKETS as usize * 3 / 100,
                    "{name}, {pattern}: {empty} empty buckets"
                );
            }
        }
    }

    /// Clients (one port each, or one client over its ports) fill a Maglev table of 4093
    /// slots about evenly, and each attempt of the fallback sequence lands elsewhere.
    #[test]
    fn mh_slots_spread_evenly() {
        let m = crate::limits::MH_TABLE_SIZE;
        let n = m * 20;
        for pattern in ["clients", "ports of one client"] {
            let mut count = vec![0u32; m as usize];
            let mut same_next = 0;
            for i in 0..n {
                let (client, port) = if pattern == "clients" {
                    (Addr::from_v4_wire((0x0a00_0000u32 + i).to_be()), 0)
                } else {
                    (Addr::from_v4_wire(0xc612_010au32.to_be()), i as u16)
                };
                let s = mh_slot(&client, port, 0, m);
                count[s as usize] += 1;
                if mh_slot(&client, port, 1, m) == s {
                    same_next += 1;
                }
            }
            // Mean 20 per slot: Poisson(20) passes 50 with probability ~1e-8 per slot.
            let max = *count.iter().max().unwrap();
            let min = *count.iter().min().unwrap();
            assert!(max <= 50 && min >= 2, "{pattern}: slots got {min}..{max}");
            assert!(
                same_next < n / 1000,
                "{pattern}: {same_next} kept their slot"
            );
        }
    }

    #[test]
    fn the_seed_moves_flows_to_other_buckets() {
        let flows: vec::Vec<_> = (0..1000u16).map(|p| flow(0xc612_010a, 10000 + p)).collect();
        for (a, b) in [
            (1, 2),
            (0x8000_0000_0000_0000, 0x8000_0000_0000_0001),
            (7, 7 << 40),
        ] {
            let same = flows
                .iter()
                .filter(|w| ct_bucket(w, a, MASK) == ct_bucket(w, b, MASK))
                .count();
            // By chance, 1000 / 65536 flows keep their bucket.
            assert!(
                same <= 5,
                "seeds {a:#x} and {b:#x}: {same} flows kept their bucket"
            );
        }
    }

    #[test]
    fn every_key_bit_changes_the_bucket_half_the_time() {
        // Flip each bit of each word of many keys: each output bit of the bucket index should
        // flip about half the time (avalanche), whatever the seed.
        let seed = 0x0123_4567_89ab_cdef;
        for w in 0..FLOW_WORDS {
            for bit in 0..64 {
                let mut flips = [0u32; 16];
                let keys = 400u32;
                for k in 0..keys {
                    let a = flow(0x0a00_0000 + k * 7919, (k * 31) as u16);
                    let mut b = a;
                    b[w] ^= 1 << bit;
                    let d = ct_bucket(&a, seed, MASK) ^ ct_bucket(&b, seed, MASK);
                    for (o, f) in flips.iter_mut().enumerate() {
                        *f += (d >> o) & 1;
                    }
                }
                for (o, &f) in flips.iter().enumerate() {
                    assert!(
                        (keys * 3 / 10..=keys * 7 / 10).contains(&f),
                        "word {w} bit {bit}: bucket bit {o} flipped {f} of {keys} times"
                    );
                }
            }
        }
    }
}
