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

    /// The key whose [`FlowKey::words`] are `w`.
    #[inline(always)]
    pub const fn from_words(w: &[u64; FLOW_WORDS]) -> FlowKey {
        let (s0, s1) = halves(w[0]);
        let (s2, s3) = halves(w[1]);
        let (d0, d1) = halves(w[2]);
        let (d2, d3) = halves(w[3]);
        let b = w[4].to_ne_bytes();
        FlowKey {
            src: Addr {
                words: [s0, s1, s2, s3],
            },
            dst: Addr {
                words: [d0, d1, d2, d3],
            },
            sport_be: u16::from_ne_bytes([b[0], b[1]]),
            dport_be: u16::from_ne_bytes([b[2], b[3]]),
            proto: b[4],
            _pad0: b[5],
            _pad1: u16::from_ne_bytes([b[6], b[7]]),
        }
    }
}

/// Whether two keys, as [`FlowKey::words`], are the same flow.
#[inline(always)]
pub const fn same_flow(a: &[u64; FLOW_WORDS], b: &[u64; FLOW_WORDS]) -> bool {
    (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) == 0
}

/// One flow of the connection table as userspace reads it: the way's head
/// ([`CtSlot`]) and its flow ([`CtFlow`]) together. Not a map layout: see [`CtBucket`].
///
/// `seq` makes the way a sequence lock: even when stable, odd while a writer fills it, and
/// 0 (with everything else 0) when the way was never used. Each write adds 2, so a reader that
/// sees the same even `seq` before and after reading the other fields read one writer's entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// Sequence number (see above).
    pub seq: u64,
    /// The flow.
    pub key: FlowKey,
    /// The destination id the flow was scheduled to.
    pub dest: u32,
    /// That destination's generation at the time.
    pub generation: u32,
    /// When a packet of the flow was last seen (CLOCK_MONOTONIC, coarse: the data plane's
    /// clock, at most a tick behind `bpf_ktime_get_coarse_ns`), with the low [`STATE_BITS`]
    /// bits replaced by the flow's [`ct_state`]: one word, so a hit changes time and state
    /// with one store. Read it with [`CtEntry::seen_ns`] and [`CtEntry::state`].
    pub last_seen_ns: u64,
}

/// The head of one way, in the first cache line of its bucket: what a writer ranks the ways
/// by and what a reader checks before it reads the flow's key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtSlot {
    /// The way's sequence lock (see [`CtEntry::seq`]); with `tag`, one 8-byte word
    /// ([`seq_tag`]), claimed whole with compare-and-exchange.
    pub seq: u32,
    /// The flow's tag: 32 bits of its hash that the bucket index does not use
    /// ([`crate::hash::ct_place`]). A reader compares the key only where the tag matches.
    pub tag: u32,
    /// As [`CtEntry::last_seen_ns`].
    pub last_seen_ns: u64,
}

/// The rest of one way, in the bucket's later lines: the flow and where it goes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtFlow {
    /// The flow (stored as [`FlowKey::words`], which is the key's memory image).
    pub key: FlowKey,
    /// The destination id the flow was scheduled to.
    pub dest: u32,
    /// That destination's generation. With `dest`, one 8-byte word ([`dest_word`]), written
    /// and read whole.
    pub generation: u32,
}

/// Byte offset of [`CtFlow::key`] in a [`CtFlow`].
pub const CT_KEY_OFFSET: usize = 0;
/// Byte offset of the (`dest`, `generation`) word of a [`CtFlow`].
pub const CT_DEST_OFFSET: usize = 40;
/// Byte offset of [`CtSlot::last_seen_ns`] in a [`CtSlot`].
pub const CT_SEEN_OFFSET: usize = 8;

const _: () = {
    assert!(core::mem::size_of::<CtSlot>() == 16);
    assert!(core::mem::size_of::<CtFlow>() == 48);
    assert!(core::mem::align_of::<CtFlow>() == 4);
    assert!(core::mem::offset_of!(CtFlow, key) == CT_KEY_OFFSET);
    assert!(core::mem::offset_of!(CtFlow, dest) == CT_DEST_OFFSET);
    assert!(core::mem::offset_of!(CtFlow, generation) == CT_DEST_OFFSET + 4);
    assert!(core::mem::offset_of!(CtSlot, last_seen_ns) == CT_SEEN_OFFSET);
};

/// The (`seq`, `tag`) pair of a [`CtSlot`] as the one word that starts it.
#[inline(always)]
pub const fn seq_tag(seq: u32, tag: u32) -> u64 {
    word(seq.to_ne_bytes(), tag.to_ne_bytes())
}

/// The (`seq`, `tag`) pair from the first word of a [`CtSlot`].
#[inline(always)]
pub const fn split_seq_tag(w: u64) -> (u32, u32) {
    split_dest_word(w)
}

/// The (`dest`, `generation`) pair of a [`CtFlow`] as the one word that stands at
/// [`CT_DEST_OFFSET`].
#[inline(always)]
pub const fn dest_word(dest: u32, generation: u32) -> u64 {
    word(dest.to_ne_bytes(), generation.to_ne_bytes())
}

/// The destination half of a reply way's destination word ([`reply_word`]): no destination
/// slot has this id.
pub const CT_REPLY_DEST: u32 = u32::MAX;

/// The state of a reply way: a NATed flow's replies (real → client) under their own 5-tuple,
/// as IPVS's NAT connections are found by either direction. Its destination word
/// ([`reply_word`]) is the place of the flow's own way, which the reply's translation, state
/// and idle timeout are taken from; the reply way itself is not a connection (not counted, not
/// listed), and its time only ranks it for eviction.
pub const CT_REPLY: u8 = 13;

/// Bits of a way's index in its bucket, in a [`reply_word`].
const WAY_BITS: u32 = CT_WAYS.trailing_zeros();

const _: () = {
    assert!(CT_WAYS == 1 << WAY_BITS);
    assert!((CT_REPLY as usize) < CT_STATES);
    assert!(CT_REPLY as usize >= ct_state::NAMES.len());
    assert!(CT_REPLY != crate::conns::CT_GONE);
};

/// The destination word of a reply way whose flow is in way `way` of bucket `bucket`.
#[inline(always)]
pub const fn reply_word(bucket: u32, way: u32) -> u64 {
    dest_word(
        CT_REPLY_DEST,
        (bucket << WAY_BITS) | (way & (CT_WAYS as u32 - 1)),
    )
}

/// The place (bucket, way) of the flow a reply way's destination word ([`reply_word`]) points
/// to; `None` for a flow's own destination word.
#[inline(always)]
pub const fn reply_place(pair: u64) -> Option<(u32, u32)> {
    let (dest, place) = split_dest_word(pair);
    if dest != CT_REPLY_DEST {
        return None;
    }
    Some((place >> WAY_BITS, place & (CT_WAYS as u32 - 1)))
}

/// The (`dest`, `generation`) pair from the word at [`CT_DEST_OFFSET`].
#[inline(always)]
pub const fn split_dest_word(w: u64) -> (u32, u32) {
    halves(w)
}

/// The two `u32`s that stand in memory as the word `w` (the first, then the second).
#[inline(always)]
const fn halves(w: u64) -> (u32, u32) {
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

    /// When the flow was last seen (the time half of [`CtEntry::last_seen_ns`]).
    #[inline(always)]
    pub const fn seen_ns(&self) -> u64 {
        self.last_seen_ns & !STATE_MASK
    }

    /// The flow's [`ct_state`] (the state half of [`CtEntry::last_seen_ns`]).
    #[inline(always)]
    pub const fn state(&self) -> u8 {
        (self.last_seen_ns & STATE_MASK) as u8
    }

    /// Whether the way holds a flow that is still within the idle timeout of its state under
    /// `timeouts`, at `now_ns` (on the clock of [`CtEntry::last_seen_ns`]). A copy taken while
    /// a writer was at work is not one.
    #[inline(always)]
    pub const fn is_live(&self, now_ns: u64, timeouts: &CtTimeouts) -> bool {
        !self.is_empty()
            && self.is_stable()
            && !self.is_reply()
            && within(self.last_seen_ns, now_ns, timeouts)
    }

    /// Whether the way is a NATed flow's reply way ([`CT_REPLY`]), not a flow of its own.
    #[inline(always)]
    pub const fn is_reply(&self) -> bool {
        self.state() == CT_REPLY || self.dest == CT_REPLY_DEST
    }

    /// Whether the way holds `key`.
    #[inline(always)]
    pub const fn holds(&self, key: &FlowKey) -> bool {
        !self.is_empty() && same_flow(&self.key.words(), &key.words())
    }
}

/// Bits of [`CtEntry::last_seen_ns`] that hold the state.
pub const STATE_BITS: u32 = 4;
/// The mask of those bits.
pub const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
/// The number of state slots (the states and the timeouts table are indexed by the masked
/// state, so every value of the bits has a slot).
pub const CT_STATES: usize = 1 << STATE_BITS;

/// Connection states, IPVS's TCP states with IPVS's numbers (`IP_VS_TCP_S_*`), and UDP.
pub mod ct_state {
    /// Created, no packet has moved it yet.
    pub const NONE: u8 = 0;
    /// Established.
    pub const ESTABLISHED: u8 = 1;
    /// SYN sent (not reached by client→VIP packets from NONE).
    pub const SYN_SENT: u8 = 2;
    /// SYN received: the client's SYN was forwarded.
    pub const SYN_RECV: u8 = 3;
    /// The client sent a FIN.
    pub const FIN_WAIT: u8 = 4;
    /// Time wait.
    pub const TIME_WAIT: u8 = 5;
    /// Closed (a RST, or a packet without SYN, FIN, ACK or RST).
    pub const CLOSE: u8 = 6;
    /// Close wait.
    pub const CLOSE_WAIT: u8 = 7;
    /// Last ACK.
    pub const LAST_ACK: u8 = 8;
    /// Listen.
    pub const LISTEN: u8 = 9;
    /// SYN-ACK.
    pub const SYNACK: u8 = 10;
    /// A UDP flow: its only state.
    pub const UDP: u8 = 11;
    /// IPVS's names, by state number (`ipvsadm -lc`), for display.
    pub const NAMES: [&str; 12] = [
        "NONE",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "SYNACK",
        "UDP",
    ];
}

/// The packet events of IPVS's TCP state table, in its row order.
pub mod ct_event {
    /// SYN set (and no RST).
    pub const SYN: u8 = 0;
    /// FIN set (and no RST or SYN).
    pub const FIN: u8 = 1;
    /// ACK set (and no RST, SYN or FIN).
    pub const ACK: u8 = 2;
    /// RST set.
    pub const RST: u8 = 3;
    /// None of those flags: the connection goes to CLOSE.
    pub const NONE: u8 = 4;
}

/// TCP header flag bits.
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The event of a TCP packet with header flags `flags`, by IPVS's priority: RST, then SYN,
/// then FIN, then ACK (`tcp_state_idx`).
#[inline(always)]
pub const fn tcp_event(flags: u8) -> u8 {
    if flags & TCP_RST != 0 {
        ct_event::RST
    } else if flags & TCP_SYN != 0 {
        ct_event::SYN
    } else if flags & TCP_FIN != 0 {
        ct_event::FIN
    } else if flags & TCP_ACK != 0 {
        ct_event::ACK
    } else {
        ct_event::NONE
    }
}

/// IPVS's INPUT-ONLY table (`tcp_states[]`, normal, `secure_tcp` 0, current kernels): the
/// states a connection whose director sees only client→server packets (DR) moves through.
/// Row: event (SYN, FIN, ACK, RST); column: current state NONE..SYNACK.
const INPUT_ONLY: [[u8; 11]; 4] = {
    use ct_state::*;
    const NO: u8 = NONE;
    const ES: u8 = ESTABLISHED;
    const SS: u8 = SYN_SENT;
    const SR: u8 = SYN_RECV;
    const FW: u8 = FIN_WAIT;
    const TW: u8 = TIME_WAIT;
    const CL: u8 = CLOSE;
    const CW: u8 = CLOSE_WAIT;
    const LA: u8 = LAST_ACK;
    const LI: u8 = LISTEN;
    let _ = NO;
    [
        //NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // SYN
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW], // FIN
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ACK
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL], // RST
    ]
};

/// [`INPUT_ONLY`] packed ([`pack_rows`]): the data plane looks a transition up with a shift,
/// without a table in memory.
const PACKED: [u64; 4] = pack_rows(INPUT_ONLY);

/// A state table (a row per event, a column per state) with each row packed into one word,
/// 4 bits per column.
pub(crate) const fn pack_rows<const N: usize>(table: [[u8; 11]; N]) -> [u64; N] {
    let mut rows = [0u64; N];
    let mut r = 0;
    while r < N {
        let mut c = 0;
        while c < 11 {
            rows[r] |= (table[r][c] as u64) << (4 * c);
            c += 1;
        }
        r += 1;
    }
    rows
}

/// The state a TCP connection in `state` moves to on a client→VIP packet with flags `flags`
/// (IPVS's INPUT-ONLY table); a UDP flow ([`ct_state::UDP`]) stays UDP.
#[inline(always)]
pub const fn next_state(state: u8, flags: u8) -> u8 {
    if state == ct_state::UDP {
        return ct_state::UDP;
    }
    let row = match tcp_event(flags) {
        ct_event::SYN => PACKED[0],
        ct_event::FIN => PACKED[1],
        ct_event::ACK => PACKED[2],
        ct_event::RST => PACKED[3],
        _ => return ct_state::CLOSE,
    };
    // A state outside the table (none is ever written) reads as NONE.
    let col = if state < 11 { state as u64 } else { 0 };
    ((row >> (4 * col)) & 0xf) as u8
}

/// The state of a new flow's entry after its first packet: UDP, or a TCP connection created in
/// NONE and moved by the packet.
#[inline(always)]
pub const fn first_state(is_tcp: bool, flags: u8) -> u8 {
    if is_tcp {
        next_state(ct_state::NONE, flags)
    } else {
        ct_state::UDP
    }
}

/// Whether a SYN that finds its flow's entry in `state` (live, its real usable) keeps the flow
/// on its real, as IPVS's `conn_reuse_mode` 1 does: everywhere but TIME_WAIT and CLOSE, where
/// the SYN is a new connection on a reused port and is scheduled afresh.
#[inline(always)]
pub const fn syn_keeps_real(state: u8) -> bool {
    state != ct_state::TIME_WAIT && state != ct_state::CLOSE
}

/// Whether IPVS counts a connection in `state` as active (ActiveConn) rather than inactive
/// (InActConn): ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK (`tcp_state_active_table`). UDP
/// flows are never active.
#[inline(always)]
pub const fn is_active_state(state: u8) -> bool {
    matches!(
        state,
        ct_state::ESTABLISHED | ct_state::SYN_SENT | ct_state::SYN_RECV | ct_state::SYNACK
    )
}

/// The time-and-state word of [`CtEntry::last_seen_ns`].
#[inline(always)]
pub const fn seen_word(now_ns: u64, state: u8) -> u64 {
    (now_ns & !STATE_MASK) | (state as u64 & STATE_MASK)
}

/// Whether a flow whose time-and-state word is `seen` is within its state's idle timeout at
/// `now_ns`.
#[inline(always)]
pub const fn within(seen: u64, now_ns: u64, timeouts: &CtTimeouts) -> bool {
    let idle = now_ns.saturating_sub(seen & !STATE_MASK);
    idle <= timeouts.secs[(seen & STATE_MASK) as usize] as u64 * 1_000_000_000
}

/// The idle timeout of each state, in seconds, indexed by state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTimeouts {
    /// Seconds by [`ct_state`]; slots past the last state are unused (0: gone at once).
    pub secs: [u32; CT_STATES],
}

impl CtTimeouts {
    /// IPVS's defaults (`tcp_timeouts[]`, `udp_timeouts[]`) with `ipvsadm --set`'s three
    /// (`tcp`: ESTABLISHED, `tcpfin`: FIN_WAIT, `udp`: UDP) as given.
    pub const fn ipvs(tcp: u32, tcpfin: u32, udp: u32) -> Self {
        let mut secs = [0u32; CT_STATES];
        secs[ct_state::NONE as usize] = 2;
        secs[ct_state::ESTABLISHED as usize] = tcp;
        secs[ct_state::SYN_SENT as usize] = 120;
        secs[ct_state::SYN_RECV as usize] = 60;
        secs[ct_state::FIN_WAIT as usize] = tcpfin;
        secs[ct_state::TIME_WAIT as usize] = 120;
        secs[ct_state::CLOSE as usize] = 10;
        secs[ct_state::CLOSE_WAIT as usize] = 60;
        secs[ct_state::LAST_ACK as usize] = 30;
        secs[ct_state::LISTEN as usize] = 120;
        secs[ct_state::SYNACK as usize] = 120;
        secs[ct_state::UDP as usize] = udp;
        // A reply way lives as long as its flow does (the data plane judges it by its flow's
        // state); for the agent's listings, the longest of them.
        let mut longest = 0;
        let mut i = 0;
        while i < CT_STATES {
            if secs[i] > longest {
                longest = secs[i];
            }
            i += 1;
        }
        secs[CT_REPLY as usize] = longest;
        CtTimeouts { secs }
    }

    /// `ipvsadm --set`'s defaults: tcp 900, tcpfin 120, udp 300.
    pub const DEFAULT: CtTimeouts = CtTimeouts::ipvs(900, 120, 300);
}

impl Default for CtTimeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The connection table's settings, one map value read by every lookup: the hash seed, the
/// idle timeouts and the table's size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtConfig {
    /// The hash seed (random, non-zero once the agent wrote it; kept with the table).
    pub seed: u64,
    /// The idle timeout of each state.
    pub timeouts: CtTimeouts,
    /// The number of buckets of the table minus one (the number is a power of two, set at
    /// load from the config): the mask [`crate::hash::ct_bucket`] applies.
    pub bucket_mask: u32,
    /// The layout of the table's buckets ([`CT_LAYOUT`]), written with the seed: a restarted
    /// agent refuses pinned tables of another layout.
    pub layout: u32,
}

/// The layout of [`CtBucket`] this build writes: 2, heads in the first line (1 was four
/// 64-byte entries, 0 an lvs that did not record it).
pub const CT_LAYOUT: u32 = 2;

const _: () = {
    assert!(core::mem::size_of::<CtTimeouts>() == 4 * CT_STATES);
    assert!(core::mem::size_of::<CtConfig>() == 8 + 4 * CT_STATES + 8);
    assert!(ct_state::NAMES.len() <= CT_STATES);
};

/// One element of the connection-table array: the ways flows of one hash share. 256 bytes,
/// four cache lines (the map is `BPF_F_MMAPABLE`, which page-aligns its values): the first
/// holds every way's head (sequence lock, tag, time and state), the other three the ways'
/// flows. A new flow whose bucket is full reads the first line only: no tag matches, and the
/// heads rank the ways for eviction; a known flow reads the first line and its own flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtBucket {
    /// The ways' heads, in the order a writer fills empty ways.
    pub heads: [CtSlot; CT_WAYS],
    /// The ways' flows, in the same order.
    pub flows: [CtFlow; CT_WAYS],
}

const _: () = {
    assert!(core::mem::size_of::<CtBucket>() == 256);
    assert!(core::mem::offset_of!(CtBucket, flows) == 64);
};

impl CtBucket {
    /// The ways as [`CtEntry`]s, in way order.
    pub fn ways(&self) -> [CtEntry; CT_WAYS] {
        core::array::from_fn(|w| CtEntry {
            seq: self.heads[w].seq as u64,
            key: self.flows[w].key,
            dest: self.flows[w].dest,
            generation: self.flows[w].generation,
            last_seen_ns: self.heads[w].last_seen_ns,
        })
    }

    /// The bucket holding `ways` with the tags `tags` (a test's or benchmark's table image).
    pub fn from_ways(ways: &[CtEntry; CT_WAYS], tags: &[u32; CT_WAYS]) -> CtBucket {
        CtBucket {
            heads: core::array::from_fn(|w| CtSlot {
                seq: ways[w].seq as u32,
                tag: tags[w],
                last_seen_ns: ways[w].last_seen_ns,
            }),
            flows: core::array::from_fn(|w| CtFlow {
                key: ways[w].key,
                dest: ways[w].dest,
                generation: ways[w].generation,
            }),
        }
    }
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
        // away; it would only make the way rank as "being written" and be skipped). The time
        // only, without the state bits.
        (last_seen_ns & !STATE_MASK).saturating_add(2)
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

/// The sequence number a writer leaves a way with after holding it from the even `seq`: two
/// more, never 0 (0 means a way never written), so 2 after a wrap.
#[inline(always)]
pub const fn next_seq(seq: u32) -> u32 {
    match (seq & !1).wrapping_add(2) {
        0 => 2,
        s => s,
    }
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
    /// When the entry was last used to schedule a connection (CLOCK_MONOTONIC, coarse, as
    /// [`CtEntry::last_seen_ns`]).
    pub last_used_ns: u64,
    /// The destination id.
    pub dest: u32,
    /// That destination's generation at the time.
    pub generation: u32,
}

#[cfg(test)]
#[path = "conntrack_tests.rs"]
mod tests;
