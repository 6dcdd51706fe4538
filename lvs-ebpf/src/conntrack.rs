//! Stages 2 and 5: the connection table. A flow keeps its destination for as long as the
//! destination slot keeps the generation the flow was scheduled with.
//!
//! The table is ours, not a kernel hash map: a set-associative hash table in a plain array map
//! ([`CONNTRACK`]), shared by all CPUs and written in place. A flow's bucket is the keyed hash
//! [`flow_hash`] of its 5-tuple under the table's random seed ([`CT_SEED`]), masked
//! ([`lvs_common::hash::ct_bucket`]; hashed once a packet: a new flow's writer is handed the
//! lookup's hash, [`Known::New`]); the bucket holds
//! [`CT_WAYS`] ways. The bucket's first cache line holds every way's head ([`CtSlot`]: sequence
//! lock, a 32-bit tag from the hash's bits the index does not use, time and state); the other
//! three hold the ways' flows ([`CtFlow`]: key, destination). Looking a flow up reads the first
//! line and, where a tag matches, that way's key: a new flow's SYN into a full bucket reads one
//! line (no tag matches; the heads rank the ways for eviction), where a bucket of whole
//! 64-byte entries made it read four. A new flow costs one compare-and-exchange and a few
//! stores, with no allocation, no list to update, no lock.
//!
//! # NATed flows' replies
//!
//! A NATed flow takes a second way, under its replies' 5-tuple (real → client): a reply way
//! ([`remember_reply`], state [`CT_REPLY`]) whose destination word is the place (bucket, way)
//! of the flow's own way ([`lvs_common::conntrack::reply_word`]). So a reply is known at the
//! balancer's first lookup, like any flow ([`Known::Reply`]), and [`follow`] reads the flow's
//! way by its place, with no hash: the reply counts only if that way still holds a flow whose
//! replies are exactly the packet's 5-tuple ([`lvs_common::nat::reply_key`]). A reply way is
//! claimed, and evicted, as any way; it is not a connection (never counted), and its own time
//! only ranks it for eviction: its flow's state and timeout decide.
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
//! The claim writes the new flow's tag with the odd `seq` (one word), and the final store the
//! tag with s+2.
//!
//! A reader ([`established`]) reads `seq` and the tag, skips an odd `seq` (a writer at work)
//! or another tag, compares the key, reads the (destination, generation) word, reads `seq` again and accepts only if it did
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
//! # Connection state and idle timeouts
//!
//! Each way's `last_seen_ns` word carries the flow's state in its low bits
//! ([`lvs_common::conntrack::seen_word`]): IPVS's TCP state as its INPUT-ONLY table moves it on
//! client→VIP packets ([`next_state`]), or UDP. A lookup treats an entry past its state's idle
//! timeout ([`CtConfig::timeouts`], read with the seed) as absent, so the packet is scheduled
//! again. A hit writes the new time and state (only when the coarse clock has moved or the
//! state changed, so a busy flow writes its line at most once a tick) with a
//! compare-and-exchange from the word it read, outside the sequence lock: if a writer took the
//! way for another flow meanwhile, the exchange fails and the new entry keeps its own word.

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use lvs_common::{
    CtBucket, CtConfig, CtFlow, CtSlot, Dest, FlowKey, NatReply,
    conntrack::{
        CT_DEST_OFFSET, CT_KEY_OFFSET, CT_NO_CLAIM, CT_REPLY, FLOW_WORDS, STATE_MASK, claim_rank,
        dest_word, first_state, next_seq, next_state, next_way, reply_place, reply_word,
        rest_is_empty, rest_ranks_higher, same_flow, seen_word, seq_tag, split_dest_word,
        split_seq_tag, syn_keeps_real, within,
    },
    dest::forward,
    hash::{ct_split, flow_hash},
    limits::CT_WAYS,
    nat::reply_key,
    service::proto,
};

use crate::maps::{CONNTRACK, CT_CONFIG, DESTS};

/// What the connection table knows of a packet ([`established`]).
pub enum Known {
    /// A flow of its own: its destination slot and destination.
    Flow(u32, &'static Dest),
    /// A NATed flow's reply, found by its own 5-tuple: the reply way's destination word, the
    /// place of the flow's way ([`lvs_common::conntrack::reply_place`]), for [`follow`].
    Reply(u64),
    /// No flow of its own that holds (none, or one past its timeout, or a SYN that starts a
    /// new connection): the flow's hash ([`flow_hash`]), which gives its bucket and tag, for
    /// a writer ([`touch_victim`], [`remember`]), so that a new flow's key is hashed once.
    New(u64),
}

/// What the table knows of a packet (5-tuple `key`, TCP header flags `flags`, 0 for UDP):
///
/// - a flow of its own, if its entry is within its state's idle timeout and its destination
///   still holds; the packet moves the entry's state (IPVS's INPUT-ONLY table, or its INPUT
///   table for a NATed flow) and refreshes its time. A SYN (`syn`) is only kept on the flow's
///   real where IPVS's `conn_reuse_mode` 1 keeps it ([`syn_keeps_real`]); otherwise it is a
///   new connection, and `None` sends it to the scheduler.
/// - a NATed flow's reply ([`CT_REPLY`]): the reply way's time is refreshed (it ranks the way
///   for eviction); the flow itself is judged and moved by [`follow`].
#[inline(always)]
pub fn established(key: &FlowKey, flags: u8, syn: bool) -> Option<Known> {
    let (found, config, hash) = find(key)?;
    let Some(found) = found else {
        return Some(Known::New(hash));
    };
    let now = crate::clock::now();
    if reply_place(found.pair).is_some() {
        let next = seen_word(now, CT_REPLY);
        if next != found.seen {
            // SAFETY: as in `hit`. Lost to a writer that took the way meanwhile: its word stays.
            let _ = unsafe { compare_exchange(found.seen_ptr, found.seen, next) };
        }
        return Some(Known::Reply(found.pair));
    }
    Some(
        hit(&found, config, now, flags, syn, false)
            .map_or(Known::New(hash), |(id, d)| Known::Flow(id, d)),
    )
}

/// The flow of a reply (5-tuple `reply`) whose reply way's destination word is `pair`
/// ([`Known::Reply`]): its destination slot, destination, and the VIP and port the reply goes
/// back from. Only if the way there still holds a flow whose replies are exactly these
/// ([`reply_key`]: its client, its real's address and port), within its state's idle timeout,
/// its destination still holding. With `flags` (the reply's TCP header flags), the reply moves
/// the flow's state by IPVS's OUTPUT table and refreshes its time; without, the flow is only
/// read (an ICMP error about it).
#[inline(always)]
pub fn follow(
    pair: u64,
    reply: &FlowKey,
    flags: Option<u8>,
) -> Option<(u32, &'static Dest, NatReply)> {
    let (b, w) = reply_place(pair)?;
    let config = CT_CONFIG.get(0)?;
    let bucket = CONNTRACK.get_ptr_mut(b)?;
    let (h, f) = (head(bucket, w as usize), flow(bucket, w as usize));
    // SAFETY: as in `find`.
    let (found, words) = unsafe {
        let st = read_volatile(h as *const u64);
        let (seq, _) = split_seq_tag(st);
        if seq == 0 || seq & 1 != 0 {
            return None;
        }
        let words = stored_key(f);
        (settled(h, f, st)?, words)
    };
    // The way's flow must be the reply's before anything is moved: the way may have been
    // taken by another flow since the reply way was written.
    let key = FlowKey::from_words(&words);
    let (id, generation) = split_dest_word(found.pair);
    let d = live_dest(id, generation)?;
    if d.method != forward::MASQ || reply_key(&key, &d.addr, d.port_be) != *reply {
        return None;
    }
    let now = crate::clock::now();
    let (dest_id, dest) = match flags {
        Some(flags) => hit(&found, config, now, flags, false, true)?,
        None => live(&found, config, now)?,
    };
    Some((
        dest_id,
        dest,
        NatReply {
            vip: key.dst,
            vport_be: key.dport_be,
            _pad: 0,
            dest: dest_id,
            generation,
            _pad1: 0,
        },
    ))
}

/// The flow of a NATed flow's reply `reply` as [`follow`] reads it (no state moved), if the
/// table holds the reply: for an ICMP error about the reply ([`crate::nat_icmp`]).
#[inline(always)]
pub fn reply_of(reply: &FlowKey) -> Option<(u32, &'static Dest, NatReply)> {
    let (found, _, _) = find(reply)?;
    follow(found?.pair, reply, None)
}

/// A flow's way `found` hit by a packet with TCP header flags `flags` (a SYN: `syn`; from
/// the real: `reply`, which only a NATed flow's way is hit by): its destination, if it is
/// within its state's idle timeout and the destination still holds, its state moved and its
/// time refreshed.
#[inline(always)]
fn hit(
    found: &Found,
    config: &CtConfig,
    now: u64,
    flags: u8,
    syn: bool,
    reply: bool,
) -> Option<(u32, &'static Dest)> {
    let (seen, pair) = (found.seen, found.pair);
    let state = (seen & STATE_MASK) as u8;
    if !within(seen, now, &config.timeouts) || (syn && !syn_keeps_real(state)) {
        return None;
    }
    let (dest, generation) = split_dest_word(pair);
    let d = live_dest(dest, generation)?;
    let to = if d.method == forward::MASQ {
        lvs_common::nat::next_state(state, flags, reply)
    } else {
        next_state(state, flags)
    };
    let next = seen_word(now, to);
    // Only if the word is still the one read (see the module docs); the one that changed the
    // state moves the flow between its real's counts.
    // SAFETY: `seen_ptr` points into a map value, valid for this program run and 8-aligned.
    if next != seen && unsafe { compare_exchange(found.seen_ptr, seen, next) } && to != state {
        crate::conns::moved(dest, generation, Some(state), Some(to));
    }
    Some((dest, d))
}

/// A flow's way `found`, read without a packet: its destination if it is within its state's
/// idle timeout and the destination still holds.
#[inline(always)]
fn live(found: &Found, config: &CtConfig, now: u64) -> Option<(u32, &'static Dest)> {
    if !within(found.seen, now, &config.timeouts) {
        return None;
    }
    let (dest, generation) = split_dest_word(found.pair);
    live_dest(dest, generation).map(|d| (dest, d))
}

/// The destination of a known flow, as [`established`] finds it (within its state's idle
/// timeout, its destination still holding), without moving its state or refreshing its time:
/// for an ICMP error about the flow ([`crate::nat_icmp_in`]), which IPVS does not count as
/// the connection's traffic either. A reply way is no flow: `None`.
#[inline(always)]
pub fn peek(key: &FlowKey) -> Option<(u32, &'static Dest)> {
    let (found, config, _) = find(key)?;
    live(&found?, config, crate::clock::now())
}

/// A flow's way, read consistently (its head the same before and after the reads).
struct Found {
    /// Its last-seen word (time and state).
    seen_ptr: *mut u64,
    /// That word as read.
    seen: u64,
    /// Its destination word (slot and generation).
    pair: u64,
}

/// The way of `key`'s flow in its bucket (`None` when it has none), the table's config and
/// the flow's hash ([`flow_hash`]); `None` without the table.
#[inline(always)]
fn find(key: &FlowKey) -> Option<(Option<Found>, &'static CtConfig, u64)> {
    let words = key.words();
    let config = CT_CONFIG.get(0)?;
    let hash = flow_hash(&words, config.seed);
    let (_, bucket, tag) = bucket(hash, config)?;
    for w in 0..CT_WAYS {
        let h = head(bucket, w);
        let f = flow(bucket, w);
        // SAFETY: `h` and `f` point into a map value, valid for this program run and 8-aligned
        // (see `head`, `flow`); every access is a volatile aligned load of a whole word.
        unsafe {
            let st = read_volatile(h as *const u64);
            let (seq, t) = split_seq_tag(st);
            if rest_is_empty(seq as u64) {
                return Some((None, config, hash));
            }
            // The tag first: a flow that is not this one is told apart in the bucket's first
            // line, without reading its key.
            if seq & 1 != 0 || t != tag || !same_flow(&stored_key(f), &words) {
                continue;
            }
            if let Some(found) = settled(h, f, st) {
                return Some((Some(found), config, hash));
            }
        }
    }
    Some((None, config, hash))
}

/// The rest of way (`h`, `f`) whose (seq, tag) word read `st` (even), after its key: its
/// destination and time-and-state words, if the way did not change meanwhile (the word reads
/// `st` again).
///
/// # Safety
/// `h` and `f` are a way's head and flow in a map value (see [`head`], [`flow`]).
#[inline(always)]
unsafe fn settled(h: *mut CtSlot, f: *mut CtFlow, st: u64) -> Option<Found> {
    // SAFETY: the caller's contract; every access is a volatile aligned load of a whole word.
    unsafe {
        let pair = read_volatile(dest_ptr(f));
        let seen_ptr = addr_of_mut!((*h).last_seen_ns);
        let seen = read_volatile(seen_ptr);
        (read_volatile(h as *const u64) == st).then_some(Found {
            seen_ptr,
            seen,
            pair,
        })
    }
}

/// Reads, and drops, the destination word of the way a new flow (of hash `hash`, from
/// [`Known::New`]) would take in a full bucket (the least recently seen): [`remember`] reads
/// it to uncount the flow it evicts, and it lies in a cache line of its own, seldom in the
/// cache. Read here, before the scheduler runs, the miss overlaps the scheduler's work instead
/// of stalling the writer. Nothing is decided by what is read (the writer reads the word again
/// once it holds the way); a bucket with an empty way reads nothing more.
#[inline(always)]
pub fn touch_victim(hash: u64) {
    let Some((_, bucket, _)) = CT_CONFIG.get(0).and_then(|config| bucket(hash, config)) else {
        return;
    };
    let mut ranks = [CT_NO_CLAIM; CT_WAYS];
    for (w, rank) in ranks.iter_mut().enumerate() {
        let h = head(bucket, w);
        // SAFETY: as in `find`.
        unsafe {
            let (seq, _) = split_seq_tag(read_volatile(h as *const u64));
            if rest_is_empty(seq as u64) {
                return;
            }
            *rank = claim_rank(
                seq as u64,
                false,
                read_volatile(addr_of_mut!((*h).last_seen_ns)),
            );
        }
    }
    if let Some(w) = next_way(&ranks, 0) {
        // SAFETY: as in `find`; the value is not used.
        let _ = unsafe { read_volatile(dest_ptr(flow(bucket, w))) };
    }
}

/// The destination in slot `id` if it still holds `generation`.
#[inline(always)]
pub fn live_dest(id: u32, generation: u32) -> Option<&'static Dest> {
    let dest = DESTS.get(id)?;
    dest.holds(generation).then_some(dest)
}

/// Remembers that the flow `key` (of hash `hash`, [`Known::New`] or [`hash_of`]) goes to
/// `dest`, in the way of its bucket that already holds it, else an empty one, else the least
/// recently seen one, in the state its first packet (TCP header flags `flags`) gives it
/// ([`first_state`]). Returns the destination word a reply way of the flow points to it by
/// ([`reply_word`], [`remember_reply`]); `None` if no way could be claimed.
#[inline(always)]
pub fn remember(key: &FlowKey, hash: u64, flags: u8, dest: u32, generation: u32) -> Option<u64> {
    let first = first_state(key.proto == proto::TCP, flags);
    let (place, seq, old_seen, old_pair) = claim(key, hash, first, dest_word(dest, generation))?;
    crate::conns::took(seq, old_seen, old_pair, Some((dest, generation, first)));
    Some(place)
}

/// Remembers a NATed flow's replies (5-tuple `reply`) as a reply way ([`CT_REPLY`]) pointing
/// to the flow's way (`flow`, from [`remember`]), claimed as a flow's way is: a reply is then
/// found by its own 5-tuple, as IPVS's NAT connections are. The way it takes is uncounted as
/// any (a reply way is not counted itself).
#[inline(always)]
pub fn remember_reply(reply: &FlowKey, flow: u64) {
    let Some(hash) = hash_of(reply) else {
        return;
    };
    if let Some((_, seq, old_seen, old_pair)) = claim(reply, hash, CT_REPLY, flow) {
        crate::conns::took(seq, old_seen, old_pair, None);
    }
}

/// Claims a way for `key` (of hash `hash`: its own way, else an empty one, else the least
/// recently seen one) and fills it: the key, destination word `pair`, the time now in
/// `state`. Returns the way's place as a reply way would point to it ([`reply_word`]) and what
/// the way held before: its sequence number, time-and-state word and destination word (which
/// the caller uncounts).
#[inline(always)]
fn claim(key: &FlowKey, hash: u64, state: u8, pair: u64) -> Option<(u64, u64, u64, u64)> {
    let words = key.words();
    let (index, bucket, tag) = bucket(hash, CT_CONFIG.get(0)?)?;
    let stamp = seen_word(crate::clock::now(), state);
    let mut tried = 0u32;
    for _ in 0..CT_WAYS {
        // Ranked afresh after a lost claim: the ranking stops at an empty way, and the next
        // choice may be a way it did not read.
        let (heads, ranks) = rank_ways(bucket, &words, tag, tried);
        let w = next_way(&ranks, tried)? & (CT_WAYS - 1);
        let h = head(bucket, w);
        let f = flow(bucket, w);
        let st = heads[w];
        let (seq, _) = split_seq_tag(st);
        // SAFETY: as in `find`; the (seq, tag) word starts the head. The claim writes
        // the new tag with the odd sequence number: readers skip the way until it is even.
        if unsafe { compare_exchange(h as *mut u64, st, seq_tag(seq | 1, tag)) } {
            // SAFETY: as in `find`. The way is ours until `seq` is even again.
            let (old_seen, old_pair) = unsafe {
                // Exchanged, not stored: the agent may uncount the old flow meanwhile
                // ([`lvs_common::conns`]), and only one of us may.
                let old_seen = exchange(addr_of_mut!((*h).last_seen_ns), stamp);
                let old_pair = read_volatile(dest_ptr(f));
                let k = (f as *mut u8).add(CT_KEY_OFFSET) as *mut u64;
                for (i, &word) in words.iter().enumerate() {
                    write_volatile(k.add(i), word);
                }
                write_volatile(dest_ptr(f), pair);
                // Last: the compiler keeps volatile accesses in program order (the BPF backend
                // cannot compile a `compiler_fence`), and so does the JIT.
                write_volatile(h as *mut u64, seq_tag(next_seq(seq), tag));
                (old_seen, old_pair)
            };
            return Some((reply_word(index, w as u32), seq as u64, old_seen, old_pair));
        }
        tried |= 1 << w;
    }
    None
}

/// The (seq, tag) words and [`claim_rank`]s of the ways of `bucket` for a writer of the flow
/// `words` (tag `tag`), in way order up to the first that no later way can beat
/// ([`rest_ranks_higher`]); the ways in `tried` and those not read rank [`CT_NO_CLAIM`]. Only
/// the bucket's first line is read, and a flow's key only where its tag matches.
#[inline(always)]
fn rank_ways(
    bucket: *mut CtBucket,
    words: &[u64; FLOW_WORDS],
    tag: u32,
    tried: u32,
) -> ([u64; CT_WAYS], [u64; CT_WAYS]) {
    let mut heads = [0u64; CT_WAYS];
    let mut ranks = [CT_NO_CLAIM; CT_WAYS];
    for w in 0..CT_WAYS {
        if tried & (1 << w) != 0 {
            continue;
        }
        let h = head(bucket, w);
        // SAFETY: as in `find`.
        let rank = unsafe {
            let st = read_volatile(h as *const u64);
            let (seq, t) = split_seq_tag(st);
            let holds = seq != 0 && t == tag && same_flow(&stored_key(flow(bucket, w)), words);
            heads[w] = st;
            claim_rank(
                seq as u64,
                holds,
                read_volatile(addr_of_mut!((*h).last_seen_ns)),
            )
        };
        ranks[w] = rank;
        if rest_ranks_higher(rank) {
            break;
        }
    }
    (heads, ranks)
}

/// The hash of flow `key` under the table's seed ([`flow_hash`]), for a writer that was not
/// handed it ([`Known::New`]).
#[inline(always)]
pub fn hash_of(key: &FlowKey) -> Option<u64> {
    Some(flow_hash(&key.words(), CT_CONFIG.get(0)?.seed))
}

/// The bucket (index and pointer) and tag of the flow of hash `hash` in the table of
/// `config` ([`ct_split`]).
#[inline(always)]
fn bucket(hash: u64, config: &CtConfig) -> Option<(u32, *mut CtBucket, u32)> {
    let (index, tag) = ct_split(hash, config.bucket_mask);
    Some((index, CONNTRACK.get_ptr_mut(index)?, tag))
}

/// The head of way `w` (taken modulo [`CT_WAYS`]) of `bucket`.
#[inline(always)]
fn head(bucket: *mut CtBucket, w: usize) -> *mut CtSlot {
    // SAFETY: in bounds of the bucket; no reference is made (other CPUs write the ways).
    unsafe { (addr_of_mut!((*bucket).heads) as *mut CtSlot).add(w & (CT_WAYS - 1)) }
}

/// The flow of way `w` (taken modulo [`CT_WAYS`]) of `bucket`.
#[inline(always)]
fn flow(bucket: *mut CtBucket, w: usize) -> *mut CtFlow {
    // SAFETY: as in `head`.
    unsafe { (addr_of_mut!((*bucket).flows) as *mut CtFlow).add(w & (CT_WAYS - 1)) }
}

/// The key stored in flow `f`, as words, read with volatile loads.
///
/// # Safety
/// `f` is a way's flow in a map value (see [`flow`]).
#[inline(always)]
unsafe fn stored_key(f: *const CtFlow) -> [u64; FLOW_WORDS] {
    let k = (f as *const u8).wrapping_add(CT_KEY_OFFSET) as *const u64;
    let mut words = [0u64; FLOW_WORDS];
    for (i, w) in words.iter_mut().enumerate() {
        // SAFETY: the key's words lie within the flow, 8-aligned (flows start at byte 64 of a
        // 256-byte bucket and are 48 bytes each).
        *w = unsafe { read_volatile(k.add(i)) };
    }
    words
}

/// The (destination, generation) word of flow `f`.
#[inline(always)]
fn dest_ptr(f: *mut CtFlow) -> *mut u64 {
    (f as *mut u8).wrapping_add(CT_DEST_OFFSET) as *mut u64
}

/// Atomically replaces `*ptr` with `new` if it holds `old` (a BPF_CMPXCHG, a locked
/// `cmpxchg` on x86-64); whether it did.
///
/// # Safety
/// `ptr` is valid for reads and writes and 8-aligned for the whole program run (a word of a
/// map value).
#[cfg(target_arch = "bpf")]
#[inline(always)]
pub(crate) unsafe fn compare_exchange(ptr: *mut u64, old: u64, new: u64) -> bool {
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
pub(crate) unsafe fn compare_exchange(ptr: *mut u64, old: u64, new: u64) -> bool {
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    // SAFETY: the caller's contract; nothing accesses the word non-atomically while the
    // reference lives.
    let word = unsafe { AtomicU64::from_ptr(ptr) };
    word.compare_exchange(old, new, SeqCst, SeqCst).is_ok()
}

/// Atomically replaces `*ptr` with `new` (a BPF_XCHG); the word it held.
///
/// # Safety
/// As [`compare_exchange`].
#[cfg(target_arch = "bpf")]
#[inline(always)]
unsafe fn exchange(ptr: *mut u64, new: u64) -> u64 {
    use core::intrinsics::{AtomicOrdering, atomic_xchg};
    // SAFETY: the caller's contract (see `compare_exchange`).
    unsafe { atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(ptr, new) }
}

/// The same for host builds (type-checking only).
///
/// # Safety
/// As [`compare_exchange`].
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn exchange(ptr: *mut u64, new: u64) -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    // SAFETY: as in `compare_exchange`.
    unsafe { AtomicU64::from_ptr(ptr) }.swap(new, SeqCst)
}
