//! Per-real connection counts (IPVS's ActiveConn/InActConn), kept as flows are created, move
//! between states and lose their way in the connection table ([`lvs_common::conns`] says who
//! changes what). The connection schedulers read them ([`crate::sched_conn`]).

use core::ptr::read_volatile;

use lvs_common::conns::{add, counted, delta, same_generation};

use crate::{conntrack::compare_exchange, maps::DEST_CONNS};

/// Tries of one change of a counts word against other CPUs changing it at the same time.
const TRIES: usize = 8;

/// A flow of (`dest`, `generation`) went from state `from` to `to` (`None`: no counted flow).
#[inline(always)]
pub fn moved(dest: u32, generation: u32, from: Option<u8>, to: Option<u8>) {
    let (da, di) = delta(from, to);
    if da == 0 && di == 0 {
        return;
    }
    change(dest, generation, da, di);
}

/// Adds (`da`, `di`) to the counts of (`dest`, `generation`). A subprogram: its retry loop is
/// verified apart from the many paths that call it, and what follows it once for all its
/// outcomes (it returns nothing).
#[inline(never)]
fn change(dest: u32, generation: u32, da: i32, di: i32) {
    let Some(ptr) = DEST_CONNS.get_ptr_mut(dest) else {
        return;
    };
    for _ in 0..TRIES {
        // SAFETY: a word of a map value, 8-aligned, valid for this program run; only changed
        // by compare-and-exchange.
        let old = unsafe { read_volatile(ptr) };
        if !same_generation(old, generation) {
            // The slot was freed (and maybe reused) since: its counts are not this flow's.
            return;
        }
        // SAFETY: as above.
        if unsafe { compare_exchange(ptr, old, add(old, da, di)) } {
            return;
        }
    }
}

/// A way held (sequence number `seq`, time-and-state word `seen`, destination `pair`) and
/// was just taken for a new flow of (`dest`, `generation`) in state `first` (`None`: for a
/// reply way, which is not counted): uncounts what it held, if it was counted, and counts the
/// new flow. When both are flows of the same destination slot and generation (an eviction in
/// a full table often is, on a service of few reals), the two make one change, often none at
/// all (active for active), rather than two compare-and-exchanges of one word.
#[inline(always)]
pub fn took(seq: u64, seen: u64, pair: u64, new: Option<(u32, u32, u8)>) {
    if !counted(seq, seen) {
        if let Some((dest, generation, first)) = new {
            moved(dest, generation, None, Some(first));
        }
        return;
    }
    let (old_dest, old_generation) = lvs_common::conntrack::split_dest_word(pair);
    let state = (seen & lvs_common::conntrack::STATE_MASK) as u8;
    match new {
        Some((dest, generation, first)) if old_dest == dest && old_generation == generation => {
            moved(dest, generation, Some(state), Some(first));
        }
        Some((dest, generation, first)) => {
            moved(old_dest, old_generation, Some(state), None);
            moved(dest, generation, None, Some(first));
        }
        None => moved(old_dest, old_generation, Some(state), None),
    }
}
