//! One agent per instance: a second `lvs run` on an instance that an agent runs is refused
//! before it touches anything (the first agent's control socket, maps and link), and the first
//! goes on serving.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions};
use lvs_tests::agent::{RunningLvs, lvs_binary, who_answers};

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

/// Runs `cmd` to its end, killing it after `within`; its exit status and standard error, or
/// a failure naming `what` when it did not end in time.
fn run_within(mut cmd: Command, what: &str, within: Duration) -> (ExitStatus, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            let mut err = String::new();
            use std::io::Read as _;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return (status, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `lvs status` on `sock`: whether it answered with the service.
fn status_answers(sock: &Path) -> bool {
    let mut cmd = Command::new(lvs_binary());
    cmd.arg("status").arg("--control").arg(sock);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lvs status");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lvs status did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("198.18.0.100:80")
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
    first.wait_served(vip, Duration::from_secs(15)).unwrap();
    assert!(status_answers(&first.control), "the first agent answers");

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
    let (status, stderr) = run_within(second, "the second lvs run", Duration::from_secs(10));
    assert!(!status.success(), "the second agent is refused: {stderr}");
    let wanted = format!("instance default is already run by pid {}", first.pid());
    assert!(stderr.contains(&wanted), "wanted {wanted:?} in:\n{stderr}");

    // The first one is whole: its socket answers, it forwards to every real.
    assert!(
        first.control.exists(),
        "the first agent's control socket is still there"
    );
    assert!(
        status_answers(&first.control),
        "the first agent still answers"
    );
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
    let (status, stderr) = run_within(second, "the second lvs run", Duration::from_secs(10));
    assert!(!status.success(), "the second agent is refused: {stderr}");
    assert!(
        stderr.contains("is in use: another agent answers on it"),
        "{stderr}"
    );
    assert!(
        status_answers(&first.control),
        "the first agent still answers"
    );
    assert!(
        std::fs::read_dir(bpffs.join("lvs/other")).map_or(true, |mut d| d.next().is_none()),
        "the refused agent pinned nothing"
    );
    assert!(first.stop());
}
