//! Stages 2 and 5: the connection table. A flow keeps its destination for as long as the
//! destination slot keeps the generation the flow was scheduled with.
//!
//! The table is ours, not a kernel hash map: a set-associative hash table in a plain array map
//! ([`CONNTRACK`]), shared by all CPUs and written in place. A flow's bucket is the keyed hash
//! [`ct_bucket`] of its 5-tuple under the table's random seed ([`CT_SEED`]); the bucket holds
//! [`CT_WAYS`] ways ([`CtEntry`]). Looking a flow up reads at most the bucket's ways; a new
//! flow costs one compare-and-exchange and a few stores, with no allocation, no list to
//! update, no lock.
//!
//! # Concurrency: each way is a sequence lock
//!
//! A writer (a new flow, [`remember`]) ranks the bucket's ways ([`claim_rank`]): the way that
//! already holds the flow, else an empty one, else the least recently seen (ways fill in
//! order, so it reads no further than the first empty way). It claims the best one by turning
//! the even `seq` s it read into s+1 with compare-and-exchange; if another CPU changed the way
//! since, the exchange fails and the writer ranks the other ways again and tries the best of
//! them. Holding the way, it stores key, (destination, generation) and time, then `seq` = s+2.
//! If no way can be claimed the packet is still forwarded; the flow is just not remembered,
//! and its next packet is scheduled again. Two writers never fill one way: only one exchange
//! from s succeeds.
//!
//! A reader ([`established`]) reads `seq`, skips an odd one (a writer at work), compares the
//! key, reads the (destination, generation) word, reads `seq` again and accepts only if it did
//! not change. On x86-64 (TSO) that is exact: the claim is a locked instruction, the BPF JIT
//! keeps the order of volatile loads and stores, stores are seen in program order and loads are
//! not reordered with loads, so a reader that sees the same even `seq` around its reads saw one
//! writer's complete entry. On weakly ordered CPUs (arm64) BPF has no read barrier to offer
//! here, and a reader could mix a way's old and new contents without noticing by `seq`; there
//! the key compare is what bounds it: only a way whose key is being rewritten at that instant
//! (its flow evicted, or rescheduled by a SYN) can be misread, the destination word is one
//! aligned 8-byte store so it is the old pair or the new one, never half of each, and a key
//! that is not exactly the packet's is refused.
//!
//! # Flood safety
//!
//! The kernel's LRU hash evicts from a global (or per-CPU) least-recently-used list, so a flood
//! of new 5-tuples pushes out every established flow in turn. Here a new flow can only evict
//! the least recently seen of the [`CT_WAYS`] ways of its own bucket, and which bucket a 5-tuple
//! lands in depends on a random 64-bit seed that never leaves the director: a flood spreads over
//! all buckets like random placement, cannot be aimed at the buckets of chosen flows, and a flow
//! that sends packets keeps its way against flows that do not send more recently.
//!
//! A hit refreshes the way's `last_seen_ns` with a plain store (only when the coarse clock has
//! moved, so a busy flow writes its line at most once a tick), outside the sequence lock: a
//! race with a writer only makes the new entry's time off by a few nanoseconds, which is
//! harmless.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lvs_common::{
    CtBucket, CtEntry, Dest, FlowKey,
    conntrack::{
        CT_DEST_OFFSET, CT_KEY_OFFSET, CT_NO_CLAIM, FLOW_WORDS, claim_rank, dest_word, next_way,
        rest_is_empty, rest_ranks_higher, same_flow, split_dest_word,
    },
    hash::ct_bucket,
    limits::CT_WAYS,
};

use crate::maps::{CONNTRACK, CT_SEED, DESTS};

/// The destination of a known flow, if the flow is known and its destination still holds.
#[inline(always)]
pub fn established(key: &FlowKey) -> Option<(u32, &'static Dest)> {
    let words = key.words();
    let bucket = bucket(&words)?;
    for w in 0..CT_WAYS {
        let e = way(bucket, w);
        // SAFETY: `e` points at a way of a map value, valid for this program run and 8-aligned
        // (see `way`); every access is a volatile aligned load or store of a whole word.
        unsafe {
            let seq = read_volatile(addr_of!((*e).seq));
            if rest_is_empty(seq) {
                return None;
            }
            if seq & 1 != 0 || !same_flow(&stored_key(e), &words) {
                continue;
            }
            let pair = read_volatile(dest_ptr(e));
            if read_volatile(addr_of!((*e).seq)) != seq {
                continue;
            }
            let now = bpf_ktime_get_coarse_ns();
            let seen = addr_of_mut!((*e).last_seen_ns);
            if read_volatile(seen) != now {
                write_volatile(seen, now);
            }
            let (dest, generation) = split_dest_word(pair);
            return live_dest(dest, generation).map(|d| (dest, d));
        }
    }
    None
}

/// The destination in slot `id` if it still holds `generation`.
#[inline(always)]
pub fn live_dest(id: u32, generation: u32) -> Option<&'static Dest> {
    let dest = DESTS.get(id)?;
    dest.holds(generation).then_some(dest)
}

/// Remembers that the flow goes to `dest`, in the way of its bucket that already holds it, else
/// an empty one, else the least recently seen one.
#[inline(always)]
pub fn remember(key: &FlowKey, dest: u32, generation: u32) {
    let words = key.words();
    let Some(bucket) = bucket(&words) else {
        return;
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let mut tried = 0u32;
    for _ in 0..CT_WAYS {
        // Ranked afresh after a lost claim: the ranking stops at an empty way, and the next
        // choice may be a way it did not read.
        let (seqs, ranks) = rank_ways(bucket, &words, tried);
        let Some(w) = next_way(&ranks, tried) else {
            return;
        };
        let w = w & (CT_WAYS - 1);
        let e = way(bucket, w);
        let seq = seqs[w];
        // SAFETY: as in `established`; `seq` is the field's address.
        if unsafe { compare_exchange(addr_of_mut!((*e).seq), seq, seq + 1) } {
            // SAFETY: as in `established`. The way is ours until `seq` is even again.
            unsafe {
                let k = addr_of_mut!((*e).key) as *mut u64;
                for (i, &word) in words.iter().enumerate() {
                    write_volatile(k.add(i), word);
                }
                write_volatile(dest_ptr(e), dest_word(dest, generation));
                write_volatile(addr_of_mut!((*e).last_seen_ns), now);
                // Last: the compiler keeps volatile accesses in program order (the BPF backend
                // cannot compile a `compiler_fence`), and so does the JIT.
                write_volatile(addr_of_mut!((*e).seq), seq + 2);
            }
            return;
        }
        tried |= 1 << w;
    }
}

/// The sequence numbers and [`claim_rank`]s of the ways of `bucket` for a writer of the flow
/// `words`, in way order up to the first that no later way can beat ([`rest_ranks_higher`]);
/// the ways in `tried` and those not read rank [`CT_NO_CLAIM`].
#[inline(always)]
fn rank_ways(
    bucket: *mut CtBucket,
    words: &[u64; FLOW_WORDS],
    tried: u32,
) -> ([u64; CT_WAYS], [u64; CT_WAYS]) {
    let mut seqs = [0u64; CT_WAYS];
    let mut ranks = [CT_NO_CLAIM; CT_WAYS];
    for w in 0..CT_WAYS {
        if tried & (1 << w) != 0 {
            continue;
        }
        let e = way(bucket, w);
        // SAFETY: as in `established`.
        let rank = unsafe {
            let seq = read_volatile(addr_of!((*e).seq));
            let holds = seq != 0 && same_flow(&stored_key(e), words);
            seqs[w] = seq;
            claim_rank(seq, holds, read_volatile(addr_of!((*e).last_seen_ns)))
        };
        ranks[w] = rank;
        if rest_ranks_higher(rank) {
            break;
        }
    }
    (seqs, ranks)
}

/// The flow's bucket.
#[inline(always)]
fn bucket(words: &[u64; FLOW_WORDS]) -> Option<*mut CtBucket> {
    let seed = CT_SEED.get(0).copied().unwrap_or(0);
    CONNTRACK.get_ptr_mut(ct_bucket(words, seed))
}

/// Way `w` (taken modulo [`CT_WAYS`]) of `bucket`.
#[inline(always)]
fn way(bucket: *mut CtBucket, w: usize) -> *mut CtEntry {
    // SAFETY: in bounds of the bucket; no reference is made (other CPUs write the ways).
    unsafe { (addr_of_mut!((*bucket).ways) as *mut CtEntry).add(w & (CT_WAYS - 1)) }
}

/// The key stored in way `e`, as words, read with volatile loads.
///
/// # Safety
/// `e` is a way of a map value (see [`way`]).
#[inline(always)]
unsafe fn stored_key(e: *const CtEntry) -> [u64; FLOW_WORDS] {
    let k = (e as *const u8).wrapping_add(CT_KEY_OFFSET) as *const u64;
    let mut words = [0u64; FLOW_WORDS];
    for (i, w) in words.iter_mut().enumerate() {
        // SAFETY: the key's words lie within the way, 8-aligned (the key is at offset 8).
        *w = unsafe { read_volatile(k.add(i)) };
    }
    words
}

/// The (destination, generation) word of way `e`.
#[inline(always)]
fn dest_ptr(e: *mut CtEntry) -> *mut u64 {
    (e as *mut u8).wrapping_add(CT_DEST_OFFSET) as *mut u64
}

/// Atomically replaces `*ptr` with `new` if it holds `old` (a BPF_CMPXCHG, a locked
/// `cmpxchg` on x86-64); whether it did.
///
/// # Safety
/// `ptr` is valid for reads and writes and 8-aligned for the whole program run (a word of a
/// map value).
#[cfg(target_arch = "bpf")]
#[inline(always)]
unsafe fn compare_exchange(ptr: *mut u64, old: u64, new: u64) -> bool {
    use core::intrinsics::{AtomicOrdering, atomic_cxchg};
    // SAFETY: the caller's contract. `AtomicU64::compare_exchange` does not exist for the BPF
    // target; the intrinsic it would call does.
    unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(ptr, old, new).1
    }
}

/// The same for host builds of this crate (`cargo clippy --workspace`), which only type-check
/// it: the programs run only as BPF.
///
/// # Safety
/// As above.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn compare_exchange(ptr: *mut u64, old: u64, new: u64) -> bool {
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    // SAFETY: the caller's contract; nothing accesses the word non-atomically while the
    // reference lives.
    let word = unsafe { AtomicU64::from_ptr(ptr) };
    word.compare_exchange(old, new, SeqCst, SeqCst).is_ok()
}
