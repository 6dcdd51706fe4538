//! Support for lvs's tests on the real kernel: crafted frames ([`packet`]), the balancer
//! driven through BPF_PROG_TEST_RUN ([`xdp`]), the `lvs` binary run in the namespace lab
//! ([`agent`]), waits that end in bounded time ([`wait`]), the benchmarks' small
//! hand-assembled programs ([`bpf`]), and whether tail calls are direct jumps ([`tail_calls`]).

pub mod agent;
pub mod bench;
pub mod bpf;
pub mod clock;
pub mod multidir;
pub mod packet;
pub mod tail_calls;
pub mod wait;
pub mod wire;
pub mod xdp;
