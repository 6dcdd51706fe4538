//! A table write the kernel refuses while the agent runs (issue 14, defect 5): the balancer
//! keeps forwarding with the last good tables, the agent logs the error, counts it in
//! `lvs_map_update_failures_total`, and keeps running.
//!
//! The fault is a real one of the kernel: the pinned service map is frozen
//! (`bpftool map freeze`, `BPF_MAP_FREEZE`), after which every write to it from user space
//! fails with `EPERM` while the XDP program still reads it. A reload that changes a weight
//! then has to switch the service to a new ring, which is a write to that map.

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::{
    agent::{RunningLvs, count, lab_reals, who_answers},
    wait::output,
};

/// wrr over the lab's three reals, the first with `first_weight`, always up (`checktype =
/// "on"`), with metrics on the director.
fn config(lab: &Lab, vip: SocketAddr, metrics: SocketAddr, first_weight: u32) -> String {
    let mut c = format!(
        "metrics = \"{metrics}\"\n\n[[virtual]]\naddress = \"{vip}\"\nscheduler = \"wrr\"\n\
         checktype = \"on\"\n"
    );
    for (i, r) in lab.reals().iter().enumerate() {
        let w = if i == 0 { first_weight } else { 1 };
        c.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}:80\"\nweight = {w}\n",
            r.addr_v4
        ));
    }
    c
}

/// The value of the counter `name` on the metrics page.
fn metric(lab: &Lab, metrics: SocketAddr, name: &str) -> u64 {
    let (status, body) = http_get(lab.client_ns(), metrics, "/metrics").expect("metrics page");
    assert_eq!(status, 200, "metrics answered {status}");
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} on the metrics page:\n{text}"))
}

/// `bpftool map freeze pinned PATH`.
fn freeze(pin: &Path) {
    let out = output(
        Command::new("bpftool")
            .args(["map", "freeze", "pinned"])
            .arg(pin),
    );
    assert!(
        out.status.success(),
        "bpftool map freeze pinned {} failed: {}",
        pin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_refused_table_write_keeps_the_last_good_tables_and_is_logged_and_counted() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let metrics = SocketAddr::new(lab.director_v4().into(), 9100);
    let lvs = RunningLvs::start(&lab, &config(&lab, vip, metrics, 1)).unwrap();
    // Every real in the data plane before the freeze: the first must take connections, and
    // a real whose MAC came in after it would make a write fail before the reload does.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();
    let first = lab.reals()[0].name.clone();
    let names = who_answers(&lab, vip, 30).unwrap();
    assert!(count(&names, &first) > 0, "{first} not served: {names:?}");
    assert_eq!(metric(&lab, metrics, "lvs_map_update_failures_total"), 0);

    let services = lab.bpffs().unwrap().join("lvs/default/LVS_SERVICES");
    assert!(
        services.exists(),
        "no pinned service map at {}; pins: {:?}",
        services.display(),
        std::fs::read_dir(services.parent().unwrap())
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    freeze(&services);

    // Weight 0 for the first real: the switch to the new ring is refused.
    std::fs::write(&lvs.config, config(&lab, vip, metrics, 0)).unwrap();
    lvs.reload();
    lvs.wait_log(
        "writing the data plane's tables failed",
        Duration::from_secs(10),
    )
    .unwrap();
    let log = lvs.log();
    assert!(
        log.contains("LVS_SERVICES"),
        "the error does not name the map; lvs log:\n{log}"
    );
    let failures = metric(&lab, metrics, "lvs_map_update_failures_total");
    assert!(failures >= 1, "lvs_map_update_failures_total is {failures}");

    // The last good tables forward: every connection served, the first real among them.
    let names = who_answers(&lab, vip, 30).unwrap();
    assert!(
        count(&names, &first) > 0,
        "{first} got no new connection: the refused tables took effect? {names:?}"
    );
    // The agent still runs and answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lvs.status(&[]).is_err() {
        assert!(
            Instant::now() < deadline,
            "lvs status does not answer; lvs log:\n{}",
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !lvs.log().contains("balancer detached"),
        "the balancer was detached; lvs log:\n{}",
        lvs.log()
    );
    assert!(lvs.stop(), "lvs did not stop on SIGTERM within 5 s");
}
