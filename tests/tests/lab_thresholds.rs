//! Connection thresholds (ipvsadm's `-x`/`-y`, here TOML's `upper_threshold` /
//! `lower_threshold`) end to end in the namespace lab: a real holding its upper threshold of
//! connections is overloaded and takes no new connection while its flows go on; once its
//! count falls below the lower threshold it takes new connections again. `ipvsadm -Ln
//! --thresholds` shows both thresholds.

use std::{
    net::{SocketAddr, TcpStream},
    process::Command,
    time::Duration,
};

use lvs::lab::{Lab, LabOptions, run_in_netns};
use lvs_tests::{
    agent::{RealCounts, RunningLvs, count, counting_config, lab_reals, lvs_binary, who_answers},
    wait,
};

/// The FIN_WAIT timeout of the test's config, in seconds.
const TCPFIN_S: u64 = 2;
/// real1's upper threshold.
const UPPER: u64 = 3;

/// (address, ActiveConn + InActConn, overloaded) of each real.
fn reals(lvs: &RunningLvs) -> Vec<(String, u64, bool)> {
    lvs.real_counts()
        .into_iter()
        .map(
            |RealCounts {
                 address,
                 active,
                 inactive,
                 overloaded,
             }| { (address, active + inactive, overloaded) },
        )
        .collect()
}

#[test]
fn a_real_at_its_upper_threshold_takes_no_new_connection_until_below_its_lower_one() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let extra = format!("upper_threshold = {UPPER}\nlower_threshold = 1\n");
    let config = counting_config(&lab, vip, "rr", TCPFIN_S, &extra);
    let lvs = RunningLvs::start(&lab, &config).unwrap();
    // Every real in the data plane: rr must give real1 every third connection, and the
    // others must take what real1 refuses.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();
    let real1 = format!("{}:80", lab.reals()[0].addr_v4);

    // ipvsadm's thresholds view: Uthreshold and Lthreshold of each real.
    let out = wait::output(
        Command::new(lvs_binary())
            .args(["ipvsadm", "-Ln", "--thresholds"])
            .env("LVS_CONTROL", &lvs.control),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("  -> {real1} ")))
        .unwrap_or_else(|| panic!("no row for {real1}:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[2..4], ["3", "1"], "{text}");

    // The probes age out, so that the counts start from 0.
    wait::until(
        Duration::from_secs(10 + TCPFIN_S),
        Duration::from_millis(100),
        "the probe connections' entries gone (no connection counted)",
        || Some(()).filter(|_| reals(&lvs).iter().all(|r| r.1 == 0 && !r.2)),
        || format!("reals {:?}", lvs.real_counts()),
    );

    // Held connections, opened one by one until real1 has its upper threshold: rr gives it
    // every third; each stays ESTABLISHED.
    let mut held: Vec<TcpStream> = Vec::new();
    wait::until(
        Duration::from_secs(10),
        Duration::from_millis(1),
        "real1 holding its upper threshold of connections",
        || {
            let r = reals(&lvs);
            let on1 = r.iter().find(|x| x.0 == real1)?.1;
            if on1 >= UPPER {
                return Some(());
            }
            let s = run_in_netns(lab.client_ns(), || {
                TcpStream::connect_timeout(&vip, Duration::from_secs(5))
            })
            .expect("client namespace")
            .expect("connect");
            held.push(s);
            None
        },
        || format!("reals {:?}", lvs.real_counts()),
    );
    wait::until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        "real1 overloaded",
        || reals(&lvs).iter().find(|x| x.0 == real1 && x.2).map(|_| ()),
        || format!("reals {:?}", lvs.real_counts()),
    );

    // New connections: none to real1.
    let names = who_answers(&lab, vip, 12).expect("new connections");
    assert_eq!(count(&names, "real1"), 0, "{names:?}");
    assert_eq!(
        count(&names, "real2") + count(&names, "real3"),
        12,
        "{names:?}"
    );
    let r = reals(&lvs);
    assert_eq!(
        r.iter().find(|x| x.0 == real1).map(|x| x.1),
        Some(UPPER),
        "its flows go on: {r:?}"
    );

    // Closed: real1's flows go to FIN_WAIT, still counted, then expire; below the lower
    // threshold (1) it is no longer overloaded.
    drop(held);
    wait::until(
        Duration::from_secs(10 + TCPFIN_S),
        Duration::from_millis(100),
        "real1 no longer overloaded",
        || {
            reals(&lvs)
                .iter()
                .find(|x| x.0 == real1 && !x.2)
                .map(|_| ())
        },
        || format!("reals {:?}", lvs.real_counts()),
    );
    let names = who_answers(&lab, vip, 6).expect("new connections");
    assert!(count(&names, "real1") >= 1, "{names:?}");
}
