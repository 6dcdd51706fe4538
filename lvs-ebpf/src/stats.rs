//! Per-CPU counters: per service and per destination (packets, bytes, new connections), and
//! drops by reason.

use aya_ebpf::{bindings::xdp_action::XDP_DROP, helpers::bpf_ktime_get_ns, programs::XdpContext};
use aya_log_ebpf::error;
use lvs_common::{Counters, stats::DropReason};

use crate::maps::{DEST_STATS, DROP_LOGGED, DROPS, SERVICE_STATS};

/// Least time between two log lines for one reason on one CPU.
const LOG_EVERY_NS: u64 = 1_000_000_000;

/// Counts a forwarded packet of `len` bytes; `new` when it started a connection.
#[inline(always)]
pub fn forwarded(service: u32, dest: u32, len: u64, new: bool) {
    add(SERVICE_STATS.get_ptr_mut(service), len, new);
    add(DEST_STATS.get_ptr_mut(dest), len, new);
}

/// Counts a packet of `len` bytes forwarded server → client (a NATed flow's reply, or an
/// ICMP error from the inside about it): IPVS's OutPkts and OutBytes.
#[inline(always)]
pub fn replied(service: u32, dest: u32, len: u64) {
    add_out(SERVICE_STATS.get_ptr_mut(service), len);
    add_out(DEST_STATS.get_ptr_mut(dest), len);
}

#[inline(always)]
fn add_out(c: Option<*mut Counters>, len: u64) {
    if let Some(c) = c {
        // SAFETY: a per-CPU slot, touched by no other CPU while XDP runs here.
        unsafe {
            (*c).out_packets += 1;
            (*c).out_bytes += len;
        }
    }
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

/// Counts a drop and returns the verdict XDP_DROP. Drops that mean something is wrong with
/// the director (not a service without servers, which is an outage the agent already reports,
/// nor a malformed packet or an orphan fragment, which anyone on the internet can send) are also logged, at most
/// once a second per CPU: never a line per packet.
#[inline(always)]
pub fn drop(ctx: &XdpContext, reason: DropReason) -> u32 {
    if let Some(n) = DROPS.get_ptr_mut(reason as u32) {
        // SAFETY: a per-CPU slot.
        unsafe { *n += 1 };
    }
    if reason != DropReason::NoDestination
        && !reason.sent_by_anyone()
        && let Some(last) = DROP_LOGGED.get_ptr_mut(reason as u32)
    {
        // SAFETY: a helper without arguments; `last` is a per-CPU slot.
        unsafe {
            let now = bpf_ktime_get_ns();
            if now.wrapping_sub(*last) >= LOG_EVERY_NS {
                *last = now;
                error!(
                    ctx,
                    "lvs: dropping packets: {} (reason {})",
                    reason.name(),
                    reason as u32
                );
            }
        }
    }
    XDP_DROP
}
