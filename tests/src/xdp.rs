//! Running the balancer on crafted frames with BPF_PROG_TEST_RUN.

use aya::programs::{TestRun, TestRunOptions};
use lvs::dataplane::Dataplane;

/// The loopback interface's index: BPF_PROG_TEST_RUN without a context runs the program as if
/// the frame arrived on loopback, so a destination behind ifindex 1 gets XDP_TX.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// The verdict and the frame as the program left it.
#[derive(Debug)]
pub struct Outcome {
    /// XDP verdict.
    pub verdict: u32,
    /// The frame after the program.
    pub frame: Vec<u8>,
}

/// Runs the balancer once on `frame`.
pub fn run(dp: &mut Dataplane, frame: &[u8]) -> Outcome {
    let mut out = vec![0u8; frame.len() + 256];
    let prog = dp.balancer().expect("balancer program");
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::new()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    Outcome {
        verdict: r.return_value,
        frame: out,
    }
}

/// Pins the calling thread to one CPU, so per-CPU scheduler positions form one sequence.
pub fn pin_to_one_cpu() {
    let mut set = nix::sched::CpuSet::new();
    let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .ok()
        .and_then(|s| (0..nix::sched::CpuSet::count()).find(|&c| s.is_set(c).unwrap_or(false)))
        .unwrap_or(0);
    set.set(cpu).expect("cpu index");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("sched_setaffinity");
}
