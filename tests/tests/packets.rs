//! The balancer on crafted frames through BPF_PROG_TEST_RUN: parsing, scheduling, the
//! connection table (eviction, concurrent writers, its seed across a reload), persistence,
//! fallback, removal and quiescing, counters; and its tail calls, direct jumps. One test
//! binary; each concern in a file of its own under `packets/`.

#[path = "packets/common.rs"]
mod common;

#[path = "packets/addressing.rs"]
mod addressing;

#[path = "packets/malformed.rs"]
mod malformed;

#[path = "packets/scheduling.rs"]
mod scheduling;

#[path = "packets/counters_redirect.rs"]
mod counters_redirect;

#[path = "packets/conn_table.rs"]
mod conn_table;

#[path = "packets/tail_calls.rs"]
mod tail_calls;
