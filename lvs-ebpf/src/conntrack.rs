//! Stages 2 and 5: the connection table. A flow keeps its destination for as long as the
//! destination slot keeps the generation the flow was scheduled with.

use aya_ebpf::bindings::BPF_ANY;
use lvs_common::{CtValue, Dest, FlowKey};

use crate::maps::{CONNTRACK, DESTS};

/// The destination of a known flow, if the flow is known and its destination still holds.
#[inline(always)]
pub fn established(key: &FlowKey) -> Option<(u32, &'static Dest)> {
    let ct = CONNTRACK.get_ptr(key)?;
    // SAFETY: a pointer into an LRU map value, valid for this program run; the value is two
    // words written together by `remember`.
    let ct = unsafe { *ct };
    live_dest(ct.dest, ct.generation).map(|d| (ct.dest, d))
}

/// The destination in slot `id` if it still holds `generation`.
#[inline(always)]
pub fn live_dest(id: u32, generation: u32) -> Option<&'static Dest> {
    let dest = DESTS.get(id)?;
    dest.holds(generation).then_some(dest)
}

/// Remembers that the flow goes to `dest` (a full table evicts its least recently used flow).
#[inline(always)]
pub fn remember(key: &FlowKey, dest: u32, generation: u32) {
    // An insert can only fail when the kernel is out of memory; the packet is still forwarded
    // and the next one is scheduled again.
    let _ = CONNTRACK.insert(key, CtValue { dest, generation }, BPF_ANY as u64);
}
