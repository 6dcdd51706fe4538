//! Every tail call of the loaded programs is a direct jump: its index is one constant on every
//! path to it ([`lvs_tests::tail_calls`]). The compiler merges two calls that differ only in
//! their index into one whose index varies (the tunnel's and NAT's did), which the kernel runs
//! as an indirect jump: a retpoline on this machine's kernel, some 20 ns of every tunnelled or
//! NATed packet.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::programs::Xdp;
use lvs_common::limits::program_names;
use lvs_tests::{bpf, tail_calls};

use crate::common::loaded;

#[test]
fn every_tail_call_of_the_programs_has_one_constant_index() {
    let mut dp = loaded(&[]);
    let ebpf = dp.ebpf();
    let mut calls = 0;
    for name in [
        program_names::BALANCER,
        program_names::NEW_FLOW,
        program_names::TUNNEL,
        program_names::NAT,
        program_names::NAT_REPLY,
        program_names::NAT_ICMP,
    ] {
        let prog: &Xdp = ebpf
            .program(name)
            .unwrap_or_else(|| panic!("{name} in the object"))
            .try_into()
            .expect("an XDP program");
        let fd = prog.fd().expect("loaded").as_fd().as_raw_fd();
        let insns = bpf::xlated(fd).expect("translated instructions");
        calls += tail_calls::tail_calls(&insns).count();
        let variable = tail_calls::variable_tail_calls(&insns);
        assert!(
            variable.is_empty(),
            "{name}: the tail calls at instructions {variable:?} have an index that varies (an \
             indirect jump): keep each index's call site apart (lvs-ebpf/src/maps.rs, tail_call)"
        );
    }
    // The balancer's calls of the new-flow, tunnel, NAT, reply and ICMP programs (each may be
    // inlined at more than one place), and the ICMP program's call of the tunnel's.
    assert!(calls >= 6, "only {calls} tail calls found");
}
