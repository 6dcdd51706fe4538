//! A newcomer's first command: `ip netns exec NS lvs run --config F`, with no `--bpffs`.
//! `ip netns exec` remounts /sys in a private mount namespace, which hides the host's
//! /sys/fs/bpf; the agent runs without pins all the same, says once what that costs and how to
//! keep it, and serves (issue 14, defect 10). A `--bpffs` given on purpose that is no bpffs is
//! still refused.

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::agent::{lvs_binary, strip_ansi, who_answers};

const CONFIG: &str = r#"
checkinterval = 1
checktimeout = 1

[[virtual]]
address = "198.18.0.100:80"
scheduler = "rr"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
[[virtual.real]]
address = "198.18.0.12:80"
"#;

/// The one warning of an agent that cannot pin (its first words).
const WARNING: &str = "running without pins";

fn lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .expect("lab")
}

#[test]
fn ip_netns_exec_without_bpffs_runs_unpinned_with_one_warning_and_serves() {
    let lab = lab();
    let config = lab.work_dir().join("lvs.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let log = lab.work_dir().join("lvs.log");
    let control = lab.work_dir().join("run-lvs").join("lvs.sock");
    // As a newcomer types it: `ip netns exec NS lvs run --config F` (and a control socket of
    // its own, so that labs running side by side do not share /run/lvs/lvs.sock).
    let pid = lab
        .spawn_logged(
            lab.director_ns(),
            lvs_binary().to_str().unwrap(),
            [
                "run",
                "--config",
                config.to_str().unwrap(),
                "--control",
                control.to_str().unwrap(),
            ],
            &log,
        )
        .unwrap();
    let read_log = || strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
    let vip = SocketAddr::from(([198, 18, 0, 100], 80));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, _)) = http_get(lab.client_ns(), vip, "/index.html") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{vip} not served within 15 s; lvs log:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both reals answer through the VIP.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names = who_answers(&lab, vip, 10).unwrap();
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        if distinct.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{names:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let text = read_log();
    assert_eq!(text.matches(WARNING).count(), 1, "one warning:\n{text}");
    let warning = text.lines().find(|l| l.contains(WARNING)).unwrap();
    for what in [
        "WARN",
        "/sys/fs/bpf is not a bpf filesystem here",
        // What is lost.
        "a restart or a crash stops forwarding",
        "the next agent cannot adopt",
        // How to keep it.
        "--bpffs",
        "mount -t bpf bpf",
        "--no-pin",
    ] {
        assert!(warning.contains(what), "{what:?} not in: {warning}");
    }
    assert!(
        text.contains("balancer attached") && text.contains("pins=None"),
        "{text}"
    );
    assert!(lab.terminate(pid, Duration::from_secs(5)), "lvs stops");
    let text = read_log();
    assert_eq!(text.matches(WARNING).count(), 1, "still one:\n{text}");

    // `--bpffs` given on purpose, where it is no bpffs: refused, nothing started.
    let mut child = lab
        .command(lab.director_ns(), lvs_binary().to_str().unwrap())
        .args(["run", "--config", config.to_str().unwrap(), "--bpffs"])
        .arg("/sys/fs/bpf")
        .arg("--control")
        .arg(&control)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lvs run --bpffs /sys/fs/bpf did not end within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("/sys/fs/bpf is not a bpf filesystem")
            && stderr.contains("private mount namespace"),
        "{stderr}"
    );
}
