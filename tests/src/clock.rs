//! The data plane's clock as tests see it: CLOCK_MONOTONIC, coarse, which the XDP programs
//! read through a per-CPU cache that may be one tick behind it (`lvs-ebpf/src/clock.rs`).

use std::time::Duration;

use nix::time::{ClockId, clock_getres, clock_gettime};

use crate::wait;

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock the tables' stamps are on.
pub fn coarse_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).expect("clock_gettime");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// One tick of the coarse clock (its resolution: 1–10 ms by the kernel's HZ), how far the
/// data plane's clock may be behind it.
pub fn tick_ns() -> u64 {
    let t = clock_getres(ClockId::CLOCK_MONOTONIC_COARSE).expect("clock_getres");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// Waits (up to `within`) until the data plane's clock is surely past `at_ns`: the coarse
/// clock past it by more than a tick. Returns the coarse clock then.
pub fn wait_past(at_ns: u64, what: &str, within: Duration) -> u64 {
    let target = at_ns + tick_ns();
    wait::until(
        within,
        Duration::from_millis(1),
        what,
        || Some(coarse_ns()).filter(|&now| now > target),
        || {
            format!(
                "coarse clock at {} ns, waiting for {target} ns",
                coarse_ns()
            )
        },
    )
}
