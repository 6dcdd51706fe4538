//! Support for lvs's tests on the real kernel: crafted frames ([`packet`]), the balancer
//! driven through BPF_PROG_TEST_RUN ([`xdp`]), and the `lvs` binary run in the namespace lab
//! ([`agent`]).

pub mod agent;
pub mod packet;
pub mod xdp;
