//! Hitless restart: maps and the XDP link are pinned, so an agent killed with SIGKILL (or one
//! that stops with `cleanstop = no`) leaves the data plane forwarding, and the next agent
//! adopts it without breaking established flows.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use lvs::lab::{Lab, LabOptions, big_file_bytes, http_get, run_in_netns};
use lvs_common::limits::map_names;
use lvs_tests::{
    agent::{RunningLvs, connect_small_rcvbuf, count, lab_reals, who_answers},
    wait,
};

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

/// The agents' pin directory in the lab's bpffs (instance `default`).
fn pin_dir(lab: &Lab) -> PathBuf {
    lab.bpffs().unwrap().join("lvs/default")
}

/// The names in `dir`, sorted (none if it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether an XDP program is attached to the director's eth0.
fn xdp_attached(lab: &Lab) -> bool {
    let out = wait::succeed(
        lab.command(lab.director_ns(), "ip")
            .args(["link", "show", "eth0"]),
    );
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// A download of `path` through `vip` from the client that spans a restart: a small receive
/// window (the file cannot be buffered ahead), read slowly (16 KiB reads 4 ms apart, at most
/// about 4 MiB/s), and held, once `hold` bytes have arrived, until [`SlowDownload::finish`]
/// lets it read the rest: it cannot end before the test says so.
struct SlowDownload {
    received: Arc<AtomicUsize>,
    go: mpsc::Sender<()>,
    done: JoinHandle<Result<Vec<u8>, String>>,
}

impl SlowDownload {
    fn start(lab: &Lab, vip: SocketAddr, path: &'static str, hold: usize) -> SlowDownload {
        let ns = lab.client_ns().to_string();
        let received = Arc::new(AtomicUsize::new(0));
        let (go, go_rx) = mpsc::channel::<()>();
        let counter = received.clone();
        let done = std::thread::spawn(move || {
            run_in_netns(&ns, move || -> Result<Vec<u8>, String> {
                let mut s = connect_small_rcvbuf(vip).map_err(|e| format!("connect: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                write!(s, "GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n")
                    .map_err(|e| format!("request: {e}"))?;
                let mut all = Vec::new();
                let mut buf = [0u8; 16384];
                let mut held = false;
                loop {
                    if !held && all.len() >= hold {
                        held = true;
                        go_rx.recv_timeout(Duration::from_secs(60)).map_err(|e| {
                            format!("held at {} bytes, no go within 60 s: {e}", all.len())
                        })?;
                    }
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => all.extend_from_slice(&buf[..n]),
                        Err(e) => return Err(format!("broke after {} bytes: {e}", all.len())),
                    }
                    counter.store(all.len(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(4));
                }
                let split = all
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .ok_or("no HTTP header end")?;
                Ok(all.split_off(split + 4))
            })
            .map_err(|e| format!("client namespace: {e}"))?
        });
        SlowDownload { received, go, done }
    }

    /// Bytes received so far (headers included).
    fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until at least `bytes` arrived; panics naming `what` after `within`, or if the
    /// download ended first.
    fn wait_received(&self, bytes: usize, within: Duration, what: &str) {
        wait::until(
            within,
            Duration::from_millis(10),
            what,
            || (self.received() >= bytes || self.done.is_finished()).then_some(()),
            || format!("{} bytes received", self.received()),
        );
        assert!(
            !self.done.is_finished(),
            "{what}: the download ended after {} bytes",
            self.received()
        );
    }

    /// Lets it read the rest and waits (30 s at most) for its body.
    fn finish(self) -> Result<Vec<u8>, String> {
        let _ = self.go.send(());
        wait::join_within(
            self.done,
            Duration::from_secs(30),
            "the rest of the download",
        )
    }
}

#[test]
fn a_download_survives_sigkill_and_restart_of_the_agent() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .unwrap();
    let size = lab.big_file_size();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let first = RunningLvs::start(&lab, &config(true)).unwrap();
    // Every real in the data plane, not only one answering: each must be in `before`.
    first
        .wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();
    let before = who_answers(&lab, vip, 30).unwrap();

    // Held at half the file: at least 8 MiB are left to cross after the second agent is in.
    let download = SlowDownload::start(&lab, vip, "/big.bin", size / 2);
    download.wait_received(1 << 20, Duration::from_secs(10), "the download's first MiB");
    first.kill();
    // No agent at all now: the pinned link and maps go on forwarding, the download's packets
    // and new connections alike.
    let at_kill = download.received();
    download.wait_received(
        (at_kill + (1 << 20)).min(size / 2),
        Duration::from_secs(10),
        "the download going on with no agent running",
    );
    let (status, _) = http_get(lab.client_ns(), vip, "/index.html").unwrap();
    assert_eq!(status, 200, "forwarding continues with no agent running");

    let second = RunningLvs::start(&lab, &config(true)).unwrap();
    second
        .wait_log("adopted the running data plane", Duration::from_secs(10))
        .unwrap();
    let at_adoption = download.received();
    assert!(
        !download.done.is_finished() && at_adoption < size,
        "the download should still be running when the second agent took over: {at_adoption} \
         bytes of {size} received, ended: {}",
        download.done.is_finished()
    );
    let body = download.finish().unwrap_or_else(|e| {
        panic!(
            "the download across the restart, {at_adoption} bytes in when the second agent \
             took over: {e}; lvs log:\n{}",
            second.log()
        )
    });
    assert!(
        body == big_file_bytes(size),
        "download altered: {} bytes",
        body.len()
    );
    eprintln!(
        "{at_kill} bytes in at the SIGKILL, {at_adoption} at the adoption, {} after it",
        size - at_adoption.min(size)
    );
    // The adopted agent schedules as before: every real still gets new connections.
    let after = who_answers(&lab, vip, 30).unwrap();
    for r in ["real1", "real2", "real3"] {
        assert!(
            before.iter().any(|n| n == r) && after.iter().any(|n| n == r),
            "{r} in service before and after"
        );
    }
    // The pins the next agent would adopt are there while it runs...
    let dir = pin_dir(&lab);
    let pins = listing(&dir);
    for name in map_names::ALL.iter().chain(&["link"]) {
        assert!(
            pins.iter().any(|p| p == name),
            "{name} pinned in {} while the agent runs: {pins:?}",
            dir.display()
        );
    }
    assert!(second.stop(), "stops on SIGTERM");
    // ...and cleanstop = yes removes them, detaches, and the VIP reaches the director's own
    // stack.
    assert!(
        listing(&dir).is_empty(),
        "pins removed on a clean stop: {:?} left in {}",
        listing(&dir),
        dir.display()
    );
    assert!(!xdp_attached(&lab), "detached on a clean stop");
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
    // Served by one real is not all three in the data plane (each needs its MAC too): the
    // agent must leave all three behind.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();
    let pid = lvs.pid();
    assert!(lvs.stop(), "lvs exits on SIGTERM");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the agent is gone"
    );
    // What it leaves: the program on eth0, its pins, and forwarding to every real (the
    // director's own stack would refuse the VIP's port 80).
    assert!(xdp_attached(&lab), "the balancer stays attached");
    let pins = listing(&pin_dir(&lab));
    assert!(
        pins.iter().any(|p| p == "link") && pins.iter().any(|p| p == map_names::CONNTRACK),
        "the pins stay: {pins:?}"
    );
    let names = who_answers(&lab, vip, 9).unwrap();
    for r in ["real1", "real2", "real3"] {
        assert!(
            count(&names, r) > 0,
            "{r} still gets new connections after the agent exited: {names:?}"
        );
    }
}

/// A pinned map's id and its entries, as bpftool shows them.
fn map_state(pin: &Path) -> (u64, serde_json::Value) {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = wait::succeed(
            std::process::Command::new("bpftool")
                .arg("-j")
                .args(args)
                .arg(pin),
        );
        serde_json::from_slice(&out.stdout).expect("bpftool's JSON")
    };
    let show = json(&["map", "show", "pinned"]);
    let id = show["id"].as_u64().expect("a map id");
    (id, json(&["map", "dump", "pinned"]))
}

#[test]
fn pinned_maps_of_another_layout_are_refused_untouched() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap();
    let dir = pin_dir(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    let pin = dir.join("LVS_DESTS");
    let bpftool = |args: &[&str]| {
        wait::succeed(std::process::Command::new("bpftool").args(args));
    };
    let path = pin.to_str().unwrap();
    bpftool(&[
        "map",
        "create",
        path,
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
    ]);
    bpftool(&[
        "map", "update", "pinned", path, "key", "1", "0", "0", "0", "value", "1", "2", "3", "4",
        "5", "6", "7", "8",
    ]);
    let before = map_state(&pin);

    let lvs = RunningLvs::start(&lab, &config(true)).unwrap();
    let status = lvs.wait_exit(Duration::from_secs(10)).unwrap();
    let log = lvs.log();
    assert!(
        !status.success(),
        "lvs should refuse the foreign pins and exit non-zero, it exited {status}:\n{log}"
    );
    assert!(
        log.contains("another layout") && log.contains(path),
        "the refusal names the pinned map {path}:\n{log}"
    );
    // Untouched: the same map (not one made anew under its name), its entries as they were,
    // nothing pinned beside it, nothing attached.
    assert_eq!(
        map_state(&pin),
        before,
        "the foreign map (id, entries) is left as it was"
    );
    assert_eq!(
        listing(&dir),
        ["LVS_DESTS"],
        "nothing pinned beside it in {}",
        dir.display()
    );
    assert!(!xdp_attached(&lab), "nothing attached");
}

/// A restart whose config asks for a larger connection table than the pinned one: the live
/// flows move into the new table while the old program keeps forwarding, and a download held
/// open across it completes intact.
#[test]
fn a_download_survives_a_restart_that_resizes_the_connection_table() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .unwrap();
    let size = lab.big_file_size();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let sized = |flows: u32| format!("connection_table_size = {flows}\n{}", config(true));
    let first = RunningLvs::start(&lab, &sized(1024)).unwrap();
    first.wait_served(vip, Duration::from_secs(15)).unwrap();
    let dir = pin_dir(&lab);
    let pinned_flows = || {
        aya::maps::MapInfo::from_pin(dir.join(map_names::CONNTRACK))
            .unwrap()
            .max_entries()
            * lvs_common::limits::CT_WAYS as u32
    };
    assert_eq!(pinned_flows(), 1024);

    let download = SlowDownload::start(&lab, vip, "/big.bin", size / 2);
    download.wait_received(1 << 20, Duration::from_secs(10), "the download's first MiB");
    first.kill();
    let second = RunningLvs::start(&lab, &sized(65536)).unwrap();
    second
        .wait_log("resized the pinned flow tables", Duration::from_secs(10))
        .unwrap();
    assert_eq!(pinned_flows(), 65536, "the new table is pinned");
    let at_resize = download.received();
    assert!(
        !download.done.is_finished() && at_resize < size,
        "the download should still be running at the resize: {at_resize} bytes of {size}"
    );
    let body = download.finish().unwrap_or_else(|e| {
        panic!(
            "the download across the resize, {at_resize} bytes in: {e}; lvs log:\n{}",
            second.log()
        )
    });
    assert!(
        body == big_file_bytes(size),
        "download altered: {} bytes",
        body.len()
    );
    let log = second.log();
    assert!(
        log.contains("live flows now in a table of 65536 flows")
            && !log.contains("0 live flows now"),
        "the log says how many flows moved:\n{log}"
    );
    assert!(second.stop(), "stops on SIGTERM");
}
