//! Support for lvs's tests on the real kernel: crafted frames ([`packet`]), the balancer
//! driven through BPF_PROG_TEST_RUN ([`xdp`]), the `lvs` binary run in the namespace lab
//! ([`agent`]), and waits that end in bounded time ([`wait`]).

pub mod agent;
pub mod multidir;
pub mod packet;
pub mod wait;
pub mod wire;
pub mod xdp;
