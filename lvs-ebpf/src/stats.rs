//! Per-CPU counters: per service and per destination (packets, bytes, new connections), and
//! drops by reason.

use aya_ebpf::bindings::xdp_action::XDP_DROP;
use lvs_common::{Counters, stats::DropReason};

use crate::maps::{DEST_STATS, DROPS, SERVICE_STATS};

/// Counts a forwarded packet of `len` bytes; `new` when it started a connection.
#[inline(always)]
pub fn forwarded(service: u32, dest: u32, len: u64, new: bool) {
    add(SERVICE_STATS.get_ptr_mut(service), len, new);
    add(DEST_STATS.get_ptr_mut(dest), len, new);
}

#[inline(always)]
fn add(c: Option<*mut Counters>, len: u64, new: bool) {
    if let Some(c) = c {
        // SAFETY: a per-CPU slot, touched by no other CPU while XDP runs here.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
            if new {
                (*c).connections += 1;
            }
        }
    }
}

/// Counts a drop and returns the verdict XDP_DROP.
#[inline(always)]
pub fn drop(reason: DropReason) -> u32 {
    if let Some(n) = DROPS.get_ptr_mut(reason as u32) {
        // SAFETY: a per-CPU slot.
        unsafe { *n += 1 };
    }
    XDP_DROP
}
