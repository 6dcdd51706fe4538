//! Support for lvs's tests on the real kernel: crafted frames ([`packet`]) and a data plane
//! driven through BPF_PROG_TEST_RUN ([`xdp`]).

pub mod packet;
pub mod xdp;
