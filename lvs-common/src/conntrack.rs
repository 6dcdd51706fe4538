//! The connection and persistence tables.
//!
//! The connection table is a set-associative hash table in a plain array map: bucket
//! [`crate::hash::ct_bucket`] of a flow's key holds [`CT_WAYS`] ways ([`CtEntry`]), and a new
//! flow takes the way of its own key, else an empty way, else the bucket's least recently seen
//! way. This module holds the layout and the pure decisions (which way to claim, whether a way
//! holds a key, whether an entry counts as active); the kernel's `conntrack.rs` does the memory
//! work (volatile reads, the claim with compare-and-exchange) and explains why it is safe.

use crate::{addr::Addr, limits::CT_WAYS};

/// A flow's 5-tuple as seen on the wire (client → VIP).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address.
    pub src: Addr,
    /// Virtual address.
    pub dst: Addr,
    /// Client port, network byte order.
    pub sport_be: u16,
    /// Virtual port, network byte order.
    pub dport_be: u16,
    /// IP protocol.
    pub proto: u8,
    /// Explicit padding, always 0.
    pub _pad0: u8,
    /// Explicit padding, always 0.
    pub _pad1: u16,
}

/// The number of 64-bit words in a [`FlowKey`].
pub const FLOW_WORDS: usize = 5;

const _: () = assert!(core::mem::size_of::<FlowKey>() == FLOW_WORDS * 8);

/// Eight bytes as they stand in memory: `lo` first, then `hi`.
#[inline(always)]
const fn word(lo: [u8; 4], hi: [u8; 4]) -> u64 {
    u64::from_ne_bytes([lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]])
}

impl FlowKey {
    /// The key as five 64-bit words: the memory image of the key read as `u64`s, built from
    /// the fields (so it does not depend on the key's alignment, which is 4). This is what the
    /// connection table hashes, stores and compares.
    #[inline(always)]
    pub const fn words(&self) -> [u64; FLOW_WORDS] {
        let (s, d) = (&self.src.words, &self.dst.words);
        let sp = self.sport_be.to_ne_bytes();
        let dp = self.dport_be.to_ne_bytes();
        let p1 = self._pad1.to_ne_bytes();
        [
            word(s[0].to_ne_bytes(), s[1].to_ne_bytes()),
            word(s[2].to_ne_bytes(), s[3].to_ne_bytes()),
            word(d[0].to_ne_bytes(), d[1].to_ne_bytes()),
            word(d[2].to_ne_bytes(), d[3].to_ne_bytes()),
            word(
                [sp[0], sp[1], dp[0], dp[1]],
                [self.proto, self._pad0, p1[0], p1[1]],
            ),
        ]
    }
}

/// Whether two keys, as [`FlowKey::words`], are the same flow.
#[inline(always)]
pub const fn same_flow(a: &[u64; FLOW_WORDS], b: &[u64; FLOW_WORDS]) -> bool {
    (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) == 0
}

/// One way of a connection-table bucket: a flow and where it goes. 64 bytes, one cache line
/// (the map is `BPF_F_MMAPABLE`, which page-aligns its values).
///
/// `seq` makes the entry a sequence lock: even when stable, odd while a writer fills it, and
/// 0 (with everything else 0) when the way was never used. Each write adds 2, so a reader that
/// sees the same even `seq` before and after reading the other fields read one writer's entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// Sequence number (see above).
    pub seq: u64,
    /// The flow (stored as [`FlowKey::words`], which is the key's memory image).
    pub key: FlowKey,
    /// The destination id the flow was scheduled to.
    pub dest: u32,
    /// That destination's generation at the time. With `dest`, one 8-byte word
    /// ([`dest_word`]), written and read whole.
    pub generation: u32,
    /// When a packet of the flow was last seen (`bpf_ktime_get_coarse_ns`: CLOCK_MONOTONIC,
    /// coarse).
    pub last_seen_ns: u64,
}

/// Byte offset of [`CtEntry::key`].
pub const CT_KEY_OFFSET: usize = 8;
/// Byte offset of the (`dest`, `generation`) word of a [`CtEntry`].
pub const CT_DEST_OFFSET: usize = 48;

const _: () = {
    assert!(core::mem::size_of::<CtEntry>() == 64);
    assert!(core::mem::align_of::<CtEntry>() == 8);
    assert!(core::mem::offset_of!(CtEntry, key) == CT_KEY_OFFSET);
    assert!(core::mem::offset_of!(CtEntry, dest) == CT_DEST_OFFSET);
    assert!(core::mem::offset_of!(CtEntry, generation) == CT_DEST_OFFSET + 4);
    assert!(core::mem::offset_of!(CtEntry, last_seen_ns) == 56);
};

/// The (`dest`, `generation`) pair of a [`CtEntry`] as the one word that stands at
/// [`CT_DEST_OFFSET`].
#[inline(always)]
pub const fn dest_word(dest: u32, generation: u32) -> u64 {
    word(dest.to_ne_bytes(), generation.to_ne_bytes())
}

/// The (`dest`, `generation`) pair from the word at [`CT_DEST_OFFSET`].
#[inline(always)]
pub const fn split_dest_word(w: u64) -> (u32, u32) {
    let b = w.to_ne_bytes();
    (
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    )
}

impl CtEntry {
    /// The way was never written.
    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// No writer is filling the way (`seq` even).
    #[inline(always)]
    pub const fn is_stable(&self) -> bool {
        self.seq & 1 == 0
    }

    /// Whether the way holds a flow that was seen at most `idle_ns` before `now_ns` (both on
    /// the clock of [`CtEntry::last_seen_ns`]). A copy taken while a writer was at work is not
    /// one.
    #[inline(always)]
    pub const fn is_active(&self, now_ns: u64, idle_ns: u64) -> bool {
        !self.is_empty() && self.is_stable() && now_ns.saturating_sub(self.last_seen_ns) <= idle_ns
    }

    /// Whether the way holds `key`.
    #[inline(always)]
    pub const fn holds(&self, key: &FlowKey) -> bool {
        !self.is_empty() && same_flow(&self.key.words(), &key.words())
    }
}

/// One element of the connection-table array: the ways flows of one hash share.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtBucket {
    /// The ways, in the order a writer fills empty ones.
    pub ways: [CtEntry; CT_WAYS],
}

/// A way a writer must not take: one being written by another CPU, or already tried.
pub const CT_NO_CLAIM: u64 = u64::MAX;

/// The rank of an empty way (see [`claim_rank`]).
const CT_RANK_EMPTY: u64 = 1;

/// How much a writer of a new flow wants the way whose `seq`, key match and `last_seen_ns` it
/// read: the lowest rank is claimed first. The way already holding the flow (a SYN that
/// schedules its flow again), then an empty way, then the least recently seen; never a way
/// being written ([`CT_NO_CLAIM`]).
#[inline(always)]
pub const fn claim_rank(seq: u64, holds_key: bool, last_seen_ns: u64) -> u64 {
    if seq & 1 != 0 {
        CT_NO_CLAIM
    } else if holds_key {
        0
    } else if seq == 0 {
        CT_RANK_EMPTY
    } else {
        // Times of stable entries rank after the two above (a clock near u64::MAX is decades
        // away; it would only make the way rank as "being written" and be skipped).
        last_seen_ns.saturating_add(2)
    }
}

/// Whether no way after one of rank `rank` can rank lower, so a writer need not read them:
/// after the way of its own key, or after an empty way. Ways fill in order and are never
/// emptied: a writer takes a later way only after it saw this one being written (odd) or lost
/// it to another writer, and either way it is no longer empty. So the ways after an empty one
/// are empty too, and none of them holds the key.
#[inline(always)]
pub const fn rest_ranks_higher(rank: u64) -> bool {
    rank <= CT_RANK_EMPTY
}

/// Whether a reader looking for a key may stop at a way with sequence number `seq`: an empty
/// way is followed by empty ways only (see [`rest_ranks_higher`]).
#[inline(always)]
pub const fn rest_is_empty(seq: u64) -> bool {
    seq == 0
}

/// The way to try to claim next: the lowest rank among the ways not in `tried` (a bit per
/// way), the lowest index on a tie; `None` when every way is tried or being written.
#[inline(always)]
pub const fn next_way(ranks: &[u64; CT_WAYS], tried: u32) -> Option<usize> {
    let mut best = None;
    let mut best_rank = CT_NO_CLAIM;
    let mut w = 0;
    while w < CT_WAYS {
        if tried & (1 << w) == 0 && ranks[w] < best_rank {
            best = Some(w);
            best_rank = ranks[w];
        }
        w += 1;
    }
    best
}

/// The key of a persistence entry: a service and a masked client address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistKey {
    /// Client address with the service's persistence mask applied.
    pub client: Addr,
    /// Service id.
    pub service: u32,
}

/// A persistence entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistValue {
    /// When the entry was last used to schedule a connection (`bpf_ktime_get_ns`).
    pub last_used_ns: u64,
    /// The destination id.
    pub dest: u32,
    /// That destination's generation at the time.
    pub generation: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src: Addr::from_v4_wire(u32::from_ne_bytes([198, 18, 1, 10])),
            dst: Addr::from_v4_wire(u32::from_ne_bytes([198, 18, 0, 100])),
            sport_be: port.to_be(),
            dport_be: 80u16.to_be(),
            proto: 6,
            _pad0: 0,
            _pad1: 0,
        }
    }

    /// The memory of `entry` as 8 words.
    fn image(entry: &CtEntry) -> [u64; 8] {
        // SAFETY: `CtEntry` is 64 bytes, 8-aligned, without implicit padding.
        unsafe { core::mem::transmute(*entry) }
    }

    #[test]
    fn words_are_the_memory_image_of_the_key_in_an_entry() {
        let e = CtEntry {
            seq: 2,
            key: FlowKey {
                _pad0: 0x5a,
                _pad1: 0x1234,
                ..key(40000)
            },
            dest: 7,
            generation: 9,
            last_seen_ns: 11,
        };
        let m = image(&e);
        assert_eq!(m[1..6], e.key.words());
        assert_eq!(m[CT_DEST_OFFSET / 8], dest_word(7, 9));
        assert_eq!(split_dest_word(dest_word(7, 9)), (7, 9));
        assert_eq!((m[0], m[7]), (2, 11));
    }

    #[test]
    fn an_entry_holds_its_key_and_no_other() {
        let e = CtEntry {
            seq: 4,
            key: key(1),
            ..CtEntry::default()
        };
        assert!(e.holds(&key(1)));
        assert!(!e.holds(&key(2)));
        assert!(
            !CtEntry::default().holds(&FlowKey::default()),
            "empty holds nothing"
        );
        let mut other_vip = key(1);
        other_vip.dst.words[3] ^= 1;
        assert!(!e.holds(&other_vip));
        assert!(same_flow(&key(3).words(), &key(3).words()));
    }

    #[test]
    fn active_means_stable_written_and_recently_seen() {
        let e = CtEntry {
            seq: 6,
            last_seen_ns: 1_000,
            ..CtEntry::default()
        };
        assert!(e.is_active(1_500, 500));
        assert!(!e.is_active(1_501, 500));
        assert!(e.is_active(900, 500), "a time from another CPU a bit ahead");
        assert!(
            !CtEntry { seq: 7, ..e }.is_active(1_000, 500),
            "being written"
        );
        assert!(!CtEntry::default().is_active(0, 500), "empty");
    }

    #[test]
    fn writers_prefer_the_own_key_then_empty_then_the_least_recently_seen() {
        // Way 0: another flow seen at 50; 1: empty; 2: this flow; 3: being written.
        let ranks = [
            claim_rank(2, false, 50),
            claim_rank(0, false, 0),
            claim_rank(8, true, 90),
            claim_rank(5, false, 0),
        ];
        assert_eq!(next_way(&ranks, 0), Some(2));
        assert_eq!(next_way(&ranks, 0b0100), Some(1));
        assert_eq!(next_way(&ranks, 0b0110), Some(0));
        assert_eq!(next_way(&ranks, 0b0111), None, "never a way being written");

        // A full bucket: the oldest goes, the first of equals on a tie.
        let full = [30, 10, 20, 10].map(|seen| claim_rank(2, false, seen));
        assert_eq!(next_way(&full, 0), Some(1));
        assert_eq!(next_way(&full, 0b0010), Some(3));
        assert_eq!(next_way(&full, 0b1010), Some(2));
        // An empty bucket fills in way order.
        assert_eq!(next_way(&[claim_rank(0, false, 0); CT_WAYS], 0), Some(0));
        // Ranking stops at the own key or an empty way, not at a way being written or in use.
        assert!(rest_ranks_higher(claim_rank(4, true, 9)));
        assert!(rest_ranks_higher(claim_rank(0, false, 0)));
        assert!(!rest_ranks_higher(claim_rank(3, false, 0)));
        assert!(!rest_ranks_higher(claim_rank(4, false, 0)));
        assert!(rest_is_empty(0) && !rest_is_empty(1) && !rest_is_empty(2));
        // An entry seen at time 0 still ranks after an empty way.
        assert!(claim_rank(2, false, 0) > claim_rank(0, false, 0));
    }
}
