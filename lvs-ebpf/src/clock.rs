//! The data plane's clock: CLOCK_MONOTONIC, coarse (what `bpf_ktime_get_coarse_ns` gives and
//! the agent reads as `CLOCK_MONOTONIC_COARSE`), read through this CPU's cache of it.
//!
//! Why a cache: on this project's machines a helper call costs 20–25 ns (the call and its
//! return go through the kernel's Spectre return thunks), about a third of an established
//! flow's whole cost, while `bpf_jiffies64` is inlined by the verifier (a load, no call).
//! The coarse clock only moves at a tick, when the tick also advances `jiffies`: so each CPU
//! keeps the coarse time it read together with the `jiffies` value it read it under, and asks
//! the helper again only when `jiffies` has moved (once a tick, not once a packet).
//!
//! Accuracy: the tick advances `jiffies` a moment before the coarse time. A read in that
//! moment gives the previous tick's time; it is kept only if it differs from the time kept
//! (else the next packet asks again), so what [`now`] gives is the coarse time of this tick or
//! of the one before: never ahead of the coarse clock, at most one tick (1–10 ms, by the
//! kernel's HZ) behind it. IPVS itself keeps its timeouts in ticks (`jiffies`).
//!
//! The cache is the per-CPU map [`CLOCK`], the programs' own (not pinned: a restarted agent's
//! programs start with an empty one and fill it at their first packet).

use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns};

use crate::maps::CLOCK;

/// One CPU's cache of the coarse clock.
#[derive(Clone, Copy)]
pub struct Cached {
    /// The `jiffies` value `ns` was read under (0: nothing read yet).
    pub jiffies: u64,
    /// The coarse time read then.
    pub ns: u64,
}

/// Now, on the coarse monotonic clock (see the module docs), in nanoseconds.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper without arguments (inlined by the verifier).
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(cached) = CLOCK.get_ptr_mut(0) else {
        // SAFETY: as below (the per-CPU slot always exists; this is for the verifier).
        return unsafe { bpf_ktime_get_coarse_ns() };
    };
    // SAFETY: this CPU's slot, valid for the program run; XDP runs to completion on one CPU,
    // so nothing else writes it meanwhile.
    let c = unsafe { &mut *cached };
    if c.jiffies == jiffies {
        return c.ns;
    }
    // SAFETY: a helper without arguments.
    let ns = unsafe { bpf_ktime_get_coarse_ns() };
    // A time read as `jiffies` moved but before the tick moved the clock is the one kept: kept
    // under the old `jiffies`, so that the next packet asks again.
    if ns != c.ns {
        c.jiffies = jiffies;
        c.ns = ns;
    }
    ns
}
