//! The per-real connection counts the data plane keeps (ActiveConn, InActConn), as the agent
//! sees and corrects them ([`lvs_common::conns`] says who changes what).
//!
//! The data plane counts a flow when it is created, moves it between active and inactive when a
//! packet changes its state, and uncounts it when a new flow takes its way. A flow that goes
//! idle past its state's timeout sends no packet that could uncount it: the agent's sweep
//! ([`Counts::sweep`]) finds it, marks its way gone and uncounts it. The sweep reads at most
//! [`SWEEP_WAYS`] ways a second, so at the default table size every way is looked at each
//! second; a larger table takes `ways / SWEEP_WAYS` seconds per pass, and an expired flow stays
//! counted at most that long after its timeout.
//!
//! Both maps are mapped into the agent (they are `BPF_F_MMAPABLE`), and every change is a
//! compare-and-exchange on the same words the data plane changes.

use std::{
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    ptr::{NonNull, addr_of_mut},
    sync::atomic::{AtomicU64, Ordering::SeqCst},
};

use aya::maps::MapData;
use lvs_common::{
    CtBucket, CtFlow, CtSlot, CtTimeouts, Dest,
    conns::{GONE_WORD, add, counted, counts_word, delta, same_generation},
    conntrack::{CT_DEST_OFFSET, STATE_MASK, split_dest_word, split_seq_tag, within},
    dest::dest_flags,
    limits::{CT_WAYS, MAX_DESTS},
};

/// Now on the connection and persistence tables' clock: CLOCK_MONOTONIC, coarse, which the
/// data plane reads through a per-CPU cache at most one tick behind it (`lvs-ebpf/src/clock.rs`):
/// a flow the data plane still holds for a tick may read as expired here, never the reverse
/// (who uncounts a flow is settled by compare-and-exchange on its word, not by the clocks).
pub fn table_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|t| std::time::Duration::from(t).as_nanos() as u64)
        .unwrap_or(0)
}

/// Ways the sweep reads per call (the agent calls it once a second).
pub const SWEEP_WAYS: usize = 1 << 21;

/// Errors of mapping the counts.
#[derive(Debug, thiserror::Error)]
pub enum CountsError {
    /// mmap(2) of a map failed.
    #[error("mapping {map}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A shared read-write mapping of a map's values; unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, accessed only atomically or by volatile copies.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, map: &'static str) -> Result<Self, CountsError> {
        // SAFETY: a shared mapping of a BPF array map's values, of its exact size; the kernel
        // checks the map allows it (BPF_F_MMAPABLE).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(CountsError::Map {
                map,
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast()).ok_or(CountsError::Map {
            map,
            source: std::io::Error::other("mmap returned null"),
        })?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region mmap(2) returned, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The counts map and the connection table, mapped.
pub struct Counts {
    _map: MapData,
    counts: Mapping,
    table: Mapping,
    /// Buckets of the connection table (its `max_entries`, set from the config at load).
    buckets: usize,
    /// The next way the sweep reads.
    cursor: usize,
}

/// Atomic view of a word of a mapping.
///
/// # Safety
/// `p` is an 8-aligned word inside a live mapping.
unsafe fn atomic<'a>(p: *mut u64) -> &'a AtomicU64 {
    // SAFETY: the caller's contract; the data plane only changes the word atomically or while it
    // holds the way's sequence lock (which the sweep checks).
    unsafe { AtomicU64::from_ptr(p) }
}

impl Counts {
    /// Maps the counts array (`map`) and the connection table (`table_fd`, of `buckets`
    /// buckets).
    pub fn new(
        map: MapData,
        table_fd: BorrowedFd<'_>,
        buckets: usize,
    ) -> Result<Self, CountsError> {
        let counts = Mapping::new(
            map.fd().as_fd(),
            MAX_DESTS as usize * 8,
            lvs_common::limits::map_names::DEST_CONNS,
        )?;
        let table = Mapping::new(
            table_fd,
            buckets * size_of::<CtBucket>(),
            lvs_common::limits::map_names::CONNTRACK,
        )?;
        Ok(Counts {
            _map: map,
            counts,
            table,
            buckets,
            cursor: 0,
        })
    }

    fn word(&self, id: u32) -> Option<&AtomicU64> {
        if id >= MAX_DESTS {
            return None;
        }
        // SAFETY: within the mapping of MAX_DESTS words.
        Some(unsafe { atomic(self.counts.ptr.as_ptr().cast::<u64>().add(id as usize)) })
    }

    /// (active, inactive) of slot `id`, if its counts are of `generation`.
    pub fn get(&self, id: u32, generation: u32) -> Option<(u64, u64)> {
        let w = self.word(id)?.load(SeqCst);
        same_generation(w, generation)
            .then(|| (lvs_common::conns::active(w), lvs_common::conns::inactive(w)))
    }

    /// Starts slot `id`'s counts afresh for `generation` (before any flow of it can exist).
    pub fn reset(&self, id: u32, generation: u32) {
        if let Some(w) = self.word(id) {
            w.store(counts_word(generation, 0, 0), SeqCst);
        }
    }

    /// Adds (`d_active`, `d_inactive`) to slot `id` if its counts are of `generation`.
    fn change(&self, id: u32, generation: u32, d: (i32, i32)) {
        let Some(w) = self.word(id) else { return };
        let mut old = w.load(SeqCst);
        loop {
            if !same_generation(old, generation) {
                return;
            }
            match w.compare_exchange(old, add(old, d.0, d.1), SeqCst, SeqCst) {
                Ok(_) => return,
                Err(now) => old = now,
            }
        }
    }

    /// Way `i`'s head and flow (bucket `i / CT_WAYS`, way `i % CT_WAYS`).
    fn way(&self, i: usize) -> (*mut CtSlot, *mut CtFlow) {
        let bucket = self.table.ptr.as_ptr().cast::<CtBucket>();
        // SAFETY: `i` < buckets * CT_WAYS (callers take it modulo); within the mapping.
        unsafe {
            let b = bucket.add(i / CT_WAYS);
            (
                addr_of_mut!((*b).heads).cast::<CtSlot>().add(i % CT_WAYS),
                addr_of_mut!((*b).flows).cast::<CtFlow>().add(i % CT_WAYS),
            )
        }
    }

    /// Way `i`'s (sequence, time-and-state word, destination word), read consistently, or `None`
    /// if a writer holds it.
    fn read_way(&self, i: usize) -> Option<(u64, u64, u64)> {
        let (h, f) = self.way(i);
        // SAFETY: 8-aligned words of a way in the mapping: the head's (seq, tag) word and its
        // time, the flow's destination word.
        unsafe {
            let head = atomic(h.cast::<u64>());
            let s1 = head.load(SeqCst);
            let (seq, _) = split_seq_tag(s1);
            if seq & 1 != 0 {
                return None;
            }
            let seen = atomic(addr_of_mut!((*h).last_seen_ns)).load(SeqCst);
            let pair = atomic(f.cast::<u8>().add(CT_DEST_OFFSET).cast::<u64>()).load(SeqCst);
            (head.load(SeqCst) == s1).then_some((u64::from(seq), seen, pair))
        }
    }

    /// Marks way `i` gone if it still holds `seen`; whether it did (and so owns uncounting).
    fn mark_gone(&self, i: usize, seen: u64) -> bool {
        let (h, _) = self.way(i);
        // SAFETY: as in `read_way`.
        let w = unsafe { atomic(addr_of_mut!((*h).last_seen_ns)) };
        w.compare_exchange(seen, GONE_WORD, SeqCst, SeqCst).is_ok()
    }

    /// Uncounts the flows of up to [`SWEEP_WAYS`] ways that are past their state's idle
    /// timeout at `now_ns` (the connection table's clock), going on from where the last call
    /// stopped. Returns how many it uncounted.
    pub fn sweep(&mut self, now_ns: u64, timeouts: &CtTimeouts) -> u64 {
        let total = self.buckets * CT_WAYS;
        let n = total.min(SWEEP_WAYS);
        let mut gone = 0;
        for _ in 0..n {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % total;
            let Some((seq, seen, pair)) = self.read_way(i) else {
                continue;
            };
            if !counted(seq, seen) || within(seen, now_ns, timeouts) {
                continue;
            }
            if self.mark_gone(i, seen) {
                let (dest, generation) = split_dest_word(pair);
                let state = (seen & STATE_MASK) as u8;
                self.change(dest, generation, delta(Some(state), None));
                gone += 1;
            }
        }
        gone
    }

    /// Counts the whole table afresh into slots `slots` (index = id): for a counts map that is
    /// new while the table is not (pinned maps of a build that kept no counts). Flows that
    /// change state while the walk runs may be off by one.
    pub fn rebuild(&mut self, slots: &[Dest], now_ns: u64, timeouts: &CtTimeouts) {
        let mut acc = vec![(0u64, 0u64); slots.len()];
        for (id, d) in slots.iter().enumerate() {
            self.reset(id as u32, d.generation);
        }
        for i in 0..self.buckets * CT_WAYS {
            let Some((seq, seen, pair)) = self.read_way(i) else {
                continue;
            };
            if !counted(seq, seen) {
                continue;
            }
            if !within(seen, now_ns, timeouts) {
                self.mark_gone(i, seen);
                continue;
            }
            let (dest, generation) = split_dest_word(pair);
            match slots.get(dest as usize) {
                Some(d) if d.flags & dest_flags::VALID != 0 && d.generation == generation => {
                    let c = &mut acc[dest as usize];
                    if lvs_common::conntrack::is_active_state((seen & STATE_MASK) as u8) {
                        c.0 += 1;
                    } else {
                        c.1 += 1;
                    }
                }
                _ => {}
            }
        }
        for (id, &(a, i)) in acc.iter().enumerate() {
            if a == 0 && i == 0 {
                continue;
            }
            let generation = slots[id].generation;
            if let Some(w) = self.word(id as u32) {
                let mut old = w.load(SeqCst);
                loop {
                    let new = counts_word(
                        generation,
                        lvs_common::conns::active(old) + a,
                        lvs_common::conns::inactive(old) + i,
                    );
                    match w.compare_exchange(old, new, SeqCst, SeqCst) {
                        Ok(_) => break,
                        Err(now) => old = now,
                    }
                }
            }
        }
    }
}
