//! One agent per instance: a second `lvs run` on an instance that an agent runs is refused
//! before it touches anything (the first agent's control socket, maps and link), and the first
//! goes on serving.

use std::{
    net::SocketAddr,
    process::{Command, ExitStatus},
    time::Duration,
};

use lvs::lab::{Lab, LabOptions};
use lvs_tests::{
    agent::{RunningLvs, lab_reals, lvs_binary, who_answers},
    wait::output_within,
};

const CONFIG: &str = r#"
checkinterval = 1
checktimeout = 1
cleanstop = true

[[virtual]]
address = "198.18.0.100:80"
scheduler = "rr"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
[[virtual.real]]
address = "198.18.0.12:80"
"#;

/// Runs `cmd` (an `lvs run` expected to be refused) to its end within 10 s: its exit status
/// and standard error.
fn refused_run(mut cmd: Command) -> (ExitStatus, String) {
    let out = output_within(&mut cmd, Duration::from_secs(10));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `lvs status` of `lvs` answers with the service.
fn status_answers(lvs: &RunningLvs) -> bool {
    lvs.status(&[]).is_ok_and(|s| s.contains("198.18.0.100:80"))
}

#[test]
fn a_second_agent_on_the_same_instance_is_refused_and_the_first_keeps_serving() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let first = RunningLvs::start(&lab, CONFIG).unwrap();
    // Both reals in the data plane (up and their MACs known): the first must forward to each.
    first
        .wait_ready(vip, &lab_reals(&lab, 80, 1)[..2], Duration::from_secs(15))
        .unwrap();
    assert!(status_answers(&first), "the first agent answers");

    // The same instance, the same control socket: as an operator typing it twice would.
    let bpffs = lab.bpffs().unwrap();
    let mut second = lab.command(lab.director_ns(), lvs_binary().to_str().unwrap());
    second
        .arg("run")
        .arg("--config")
        .arg(&first.config)
        .arg("--bpffs")
        .arg(&bpffs)
        .arg("--control")
        .arg(&first.control);
    let (status, stderr) = refused_run(second);
    assert!(!status.success(), "the second agent is refused: {stderr}");
    let wanted = format!("instance default is already run by pid {}", first.pid());
    assert!(stderr.contains(&wanted), "wanted {wanted:?} in:\n{stderr}");

    // The first one is whole: its socket answers, it forwards to every real.
    assert!(
        first.control.exists(),
        "the first agent's control socket is still there"
    );
    assert!(status_answers(&first), "the first agent still answers");
    let names = who_answers(&lab, vip, 8).unwrap();
    for r in ["real1", "real2"] {
        assert!(names.iter().any(|n| n == r), "{r} still served: {names:?}");
    }

    // Once the first has stopped, the instance is free again.
    assert!(first.stop(), "the first agent stops on SIGTERM");
    let third = RunningLvs::start_file(&lab, "third.toml", CONFIG).unwrap();
    third.wait_served(vip, Duration::from_secs(15)).unwrap();
    assert!(third.stop());
}

#[test]
fn a_control_socket_another_agent_answers_on_is_left_alone() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let first = RunningLvs::start(&lab, CONFIG).unwrap();
    first.wait_served(vip, Duration::from_secs(15)).unwrap();

    // Another instance (its own pins) but the first agent's control socket.
    let bpffs = lab.bpffs().unwrap();
    let mut second = lab.command(lab.director_ns(), lvs_binary().to_str().unwrap());
    second
        .arg("run")
        .arg("--config")
        .arg(&first.config)
        .arg("--bpffs")
        .arg(&bpffs)
        .arg("--instance")
        .arg("other")
        .arg("--control")
        .arg(&first.control);
    let (status, stderr) = refused_run(second);
    assert!(!status.success(), "the second agent is refused: {stderr}");
    assert!(
        stderr.contains("is in use: another agent answers on it"),
        "{stderr}"
    );
    assert!(status_answers(&first), "the first agent still answers");
    assert!(
        std::fs::read_dir(bpffs.join("lvs/other")).map_or(true, |mut d| d.next().is_none()),
        "the refused agent pinned nothing"
    );
    assert!(first.stop());
}
