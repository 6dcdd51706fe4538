//! Stage 4, connection schedulers: `lc`, `wlc`, `sed`, `nq`, `fo` and `ovf`, by their real
//! servers' connection counts ([`crate::conns`]) as IPVS's schedulers choose
//! ([`lvs_common::conns::consider`]).
//!
//! The service's ring lists its candidates (destination id and weight, reals of weight 0 left
//! out) in IPVS's list order, written by the agent. A service of at most
//! [`SCAN_MAX`] candidates is compared whole for every new connection: IPVS's choice exactly.
//! A larger one is compared a window of [`SCAN_MAX`] consecutive candidates at a time, each new
//! connection on a CPU taking the next window: a bounded cost per packet, the least loaded of
//! the window rather than of the whole service (the README gives the measured difference).

use core::ptr::read_volatile;

use lvs_common::{
    Service,
    conns::{Best, Rule, SCAN_MAX, candidate_id, candidate_weight, consider},
};

use crate::maps::{DEST_CONNS, RING_POS, RINGS};

/// The destination id the rule chooses among the `len` candidates of `service`'s live ring
/// (1 ≤ `len` ≤ the ring size), or `None` if none may take a connection.
///
/// The loop is unrolled: the BPF verifier walks it once per path into the scheduler, which is
/// what bounds [`SCAN_MAX`] (`bpf_loop` would need the object's BTF, which the kernel refuses
/// for Rust's).
#[inline(always)]
pub fn choose(service: &Service, rule: Rule, len: u32) -> Option<u32> {
    let (start, n) = if len <= SCAN_MAX {
        (0, len)
    } else {
        (next_window(service.id, len), SCAN_MAX)
    };
    let mut best = Best::start(rule);
    for i in 0..SCAN_MAX {
        if i >= n {
            break;
        }
        let mut pos = start + i;
        if pos >= len {
            pos -= len;
        }
        let Some(&c) = RINGS.get(Service::ring_index(service.id, service.ring_gen, pos)) else {
            break;
        };
        let id = candidate_id(c);
        let counts = match DEST_CONNS.get_ptr(id) {
            // SAFETY: a word of a map value, 8-aligned, valid for this program run.
            Some(p) => unsafe { read_volatile(p) },
            None => 0,
        };
        if consider(rule, &mut best, id, candidate_weight(c), counts) {
            break;
        }
    }
    best.found().then_some(best.id)
}

/// This CPU's next window start in a ring of `len` candidates.
#[inline(always)]
fn next_window(id: u32, len: u32) -> u32 {
    let Some(pos) = RING_POS.get_ptr_mut(id) else {
        return 0;
    };
    // SAFETY: a per-CPU slot: no other CPU touches it, and XDP runs without preemption.
    unsafe {
        let cur = if *pos >= len { 0 } else { *pos };
        let next = cur + SCAN_MAX;
        *pos = if next >= len { next - len } else { next };
        cur
    }
}
