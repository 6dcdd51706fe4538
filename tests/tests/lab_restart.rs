//! Hitless restart: maps and the XDP link are pinned, so an agent killed with SIGKILL (or one
//! that stops with `cleanstop = no`) leaves the data plane forwarding, and the next agent
//! adopts it without breaking established flows.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    time::Duration,
};

use lvs::lab::{Lab, LabOptions, big_file_bytes, http_get, run_in_netns};
use lvs_tests::agent::{RunningLvs, connect_small_rcvbuf, who_answers};

fn config(cleanstop: bool) -> String {
    format!(
        r#"
checkinterval = 1
checktimeout = 1
cleanstop = {cleanstop}

[[virtual]]
address = "198.18.0.100:80"
scheduler = "wrr"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
weight = 1
[[virtual.real]]
address = "198.18.0.12:80"
weight = 1
[[virtual.real]]
address = "198.18.0.13:80"
weight = 1
"#
    )
}

/// Downloads `path` through `vip` from the client, slowly (so it spans a restart); returns the
/// body.
fn slow_download(
    lab: &Lab,
    vip: SocketAddr,
    path: &'static str,
) -> std::thread::JoinHandle<Vec<u8>> {
    let ns = lab.client_ns().to_string();
    std::thread::spawn(move || {
        run_in_netns(&ns, move || {
            // A small receive window: the file cannot all be buffered before the restart.
            let mut s = connect_small_rcvbuf(vip).expect("connect to the VIP");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n").unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 16384];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("download broke after {} bytes: {e}", all.len()),
                }
                // About 4 MiB/s: a 16 MiB file takes ~4 s.
                std::thread::sleep(Duration::from_millis(4));
            }
            let split = all
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("HTTP header end");
            all.split_off(split + 4)
        })
        .expect("client namespace")
    })
}

#[test]
fn a_download_survives_sigkill_and_restart_of_the_agent() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let first = RunningLvs::start(&lab, &config(true)).unwrap();
    first.wait_served(vip, Duration::from_secs(15)).unwrap();
    let before = who_answers(&lab, vip, 30).unwrap();

    let download = slow_download(&lab, vip, "/big.bin");
    std::thread::sleep(Duration::from_millis(800));
    first.kill();
    // No agent at all now: the pinned link and maps go on forwarding.
    std::thread::sleep(Duration::from_millis(700));
    let (status, _) = http_get(lab.client_ns(), vip, "/index.html").unwrap();
    assert_eq!(status, 200, "forwarding continues with no agent running");

    let second = RunningLvs::start(&lab, &config(true)).unwrap();
    second
        .wait_log("adopted the running data plane", Duration::from_secs(10))
        .unwrap();
    let body = download.join().expect("download thread");
    assert!(
        body == big_file_bytes(lab.big_file_size()),
        "download altered: {} bytes",
        body.len()
    );
    // The adopted agent schedules as before: every real still gets new connections.
    let after = who_answers(&lab, vip, 30).unwrap();
    for r in ["real1", "real2", "real3"] {
        assert!(
            before.iter().any(|n| n == r) && after.iter().any(|n| n == r),
            "{r} in service before and after"
        );
    }
    assert!(second.stop(), "stops on SIGTERM");
    // cleanstop = yes: detached, pins gone, the VIP now reaches the director's own stack.
    assert!(
        std::fs::read_dir(lab.bpffs().unwrap().join("lvs/default"))
            .map_or(true, |mut d| d.next().is_none()),
        "pins removed on a clean stop"
    );
    assert!(
        http_get(lab.client_ns(), vip, "/index.html").is_err(),
        "nothing forwards after a clean stop"
    );
}

#[test]
fn cleanstop_no_leaves_the_data_plane_forwarding() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 20,
        ..LabOptions::default()
    })
    .unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = RunningLvs::start(&lab, &config(false)).unwrap();
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
    assert!(lvs.stop());
    let names = who_answers(&lab, vip, 9).unwrap();
    assert_eq!(names.len(), 9, "forwarding goes on after the agent exited");
}

#[test]
fn pinned_maps_of_another_layout_are_refused_untouched() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap();
    let dir = lab.bpffs().unwrap().join("lvs/default");
    std::fs::create_dir_all(&dir).unwrap();
    let pin = dir.join("LVS_DESTS");
    let out = std::process::Command::new("bpftool")
        .args([
            "map",
            "create",
            pin.to_str().unwrap(),
            "type",
            "array",
            "key",
            "4",
            "value",
            "8",
            "entries",
            "4",
            "name",
            "LVS_DESTS",
        ])
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool map create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lvs = RunningLvs::start(&lab, &config(true)).unwrap();
    lvs.wait_log("another layout", Duration::from_secs(10))
        .unwrap();
    assert!(pin.exists(), "the foreign pin is left as it was");
    let link = lab
        .command(lab.director_ns(), "ip")
        .args(["link", "show", "eth0"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "nothing attached"
    );
}
