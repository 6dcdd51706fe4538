//! Reloads from a config path that holds what a config must not be: a FIFO (which would block
//! a read for ever), an empty file, a half-written one. The agent goes on checking and
//! applying health changes, answers `lvs status`, and keeps the running config.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions};
use lvs_tests::agent::{RunningLvs, lab_reals, who_answers};

const CONFIG: &str = r#"
checkinterval = 1
checktimeout = 1
failurecount = 1
autoreload = true

[[virtual]]
address = "198.18.0.100:80"
scheduler = "rr"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
[[virtual.real]]
address = "198.18.0.12:80"
"#;

fn lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap()
}

/// Waits until the log holds `needle` at least `n` times.
fn wait_log_count(lvs: &RunningLvs, needle: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if lvs.log().matches(needle).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{needle:?} not {n} times in the lvs log within {within:?}:\n{}",
        lvs.log()
    );
}

/// Waits until new connections to `vip` reach only `real`.
fn wait_only(lab: &Lab, vip: SocketAddr, real: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Ok(names) = who_answers(lab, vip, 4) {
            if names.iter().all(|n| n == real) {
                return;
            }
            last = names;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{vip} not served by {real} alone within {within:?}: last {last:?}");
}

#[test]
fn a_fifo_at_the_config_path_is_refused_and_the_agent_goes_on() {
    let lab = lab();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    // Both reals in the data plane (up and their MACs known), not only one answering.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1)[..2], Duration::from_secs(15))
        .unwrap();

    // A FIFO with no writer in place of the config: opening it for reading would block.
    std::fs::remove_file(&lvs.config).unwrap();
    nix::unistd::mkfifo(&lvs.config, nix::sys::stat::Mode::S_IRUSR).unwrap();
    // The autoreload poll sees another file, and a SIGHUP asks for a read too.
    lvs.reload();

    // Health changes are still applied: a real that fails is taken out; status answers.
    lab.stop_server(0).unwrap();
    wait_only(&lab, vip, "real2", Duration::from_secs(15));
    let table = lvs.status(&[]).expect("lvs status answers");
    assert!(table.contains("198.18.0.100:80"), "{table}");

    // Each read was refused with a message naming the file and what it is.
    let refused = format!(
        "{}: cannot read the configuration: a FIFO, not a regular file",
        lvs.config.display()
    );
    wait_log_count(&lvs, &refused, 1, Duration::from_secs(10));
    let seen = lvs.log().matches(&refused).count();
    lvs.reload();
    wait_log_count(&lvs, &refused, seen + 1, Duration::from_secs(10));
    assert!(
        lvs.log()
            .contains("reload refused, the running config stays in force"),
        "{}",
        lvs.log()
    );
    assert!(lvs.stop(), "stops on SIGTERM");
}

#[test]
fn an_empty_or_half_written_config_is_refused_and_autoreload_goes_on() {
    let lab = lab();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    // Both reals in the data plane (up and their MACs known), not only one answering.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1)[..2], Duration::from_secs(15))
        .unwrap();
    let both = |what: &str| {
        let names = who_answers(&lab, vip, 8)
            .unwrap_or_else(|e| panic!("{what}: {e}; lvs log:\n{}", lvs.log()));
        for r in ["real1", "real2"] {
            assert!(names.iter().any(|n| n == r), "{what}: {r} in {names:?}");
        }
    };

    // Truncated, as an editor does before it writes: refused, both reals still served.
    std::fs::File::create(&lvs.config).unwrap();
    // Time for the poll (every second) to see it.
    std::thread::sleep(Duration::from_millis(2500));
    both("after an empty file");
    wait_log_count(&lvs, "no virtual service", 1, Duration::from_secs(10));

    // Half written: refused too.
    let cut = CONFIG.find("[[virtual.real]]").unwrap() + 5;
    std::fs::write(&lvs.config, &CONFIG[..cut]).unwrap();
    wait_log_count(&lvs, "reload refused", 2, Duration::from_secs(10));
    both("after a half-written file");
    assert!(
        !lvs.log().contains("config reloaded"),
        "nothing was applied:\n{}",
        lvs.log()
    );

    // The whole new file (real1 gone) is still picked up by autoreload.
    let real2_only = CONFIG.replace("[[virtual.real]]\naddress = \"198.18.0.11:80\"\n", "");
    assert_ne!(real2_only, CONFIG);
    std::fs::write(&lvs.config, &real2_only).unwrap();
    wait_only(&lab, vip, "real2", Duration::from_secs(15));

    // An empty config that says so is applied.
    std::fs::write(&lvs.config, "allow_empty = true\n").unwrap();
    lvs.wait_log("services=0", Duration::from_secs(10)).unwrap();
    assert!(lvs.stop(), "stops on SIGTERM");
}
