//! Reloads that change how reals are checked, end to end in the namespace lab: a real keeps its
//! state across them (as ldirectord and IPVS keep reals in the table), so traffic never goes
//! to the fallback and no alert is sent again.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::agent::{RunningLvs, lab_reals, start_sorry_server};

/// A config with the sorry server as fallback and an http check of the three reals, whose
/// interval and timeout are `interval` seconds.
fn config(lab: &Lab, vip: SocketAddr, interval: u64) -> String {
    let mut c = format!(
        "checkinterval = {interval}\nchecktimeout = {interval}\nnegotiatetimeout = {interval}\n\
         fallback = \"127.0.0.1:80\"\n\n[[virtual]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n\
         checktype = \"negotiate\"\nservice = \"http\"\nrequest = \"/index.html\"\n\
         receive = \"real\"\n"
    );
    for r in lab.reals() {
        c.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}:80\"\n",
            r.addr_v4
        ));
    }
    c
}

/// The name of whoever answers a new connection through `vip`, or the error.
fn ask(lab: &Lab, vip: SocketAddr) -> Result<String, String> {
    match http_get(lab.client_ns(), vip, "/index.html") {
        Ok((200, body)) => Ok(String::from_utf8_lossy(&body).trim().to_string()),
        Ok((status, _)) => Err(format!("status {status}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Lines of the log that say a real went up.
fn ups(log: &str) -> usize {
    log.lines().filter(|l| l.contains("real server up")).count()
}

#[test]
fn reloads_that_change_the_check_keep_every_real_in_and_alert_nothing() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    start_sorry_server(&lab).unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = RunningLvs::start(&lab, &config(&lab, vip, 1)).unwrap();
    lvs.wait_log("real server up", Duration::from_secs(15))
        .unwrap();
    // Every real up: three "up" lines.
    let deadline = Instant::now() + Duration::from_secs(15);
    while ups(&lvs.log()) < 3 {
        assert!(
            Instant::now() < deadline,
            "three reals not up in 15 s; lvs log:\n{}",
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Up is not yet served: each real is in the data plane once its MAC is known too. Until
    // then new connections go to the fallback, which is not what the reloads are about.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();

    let mut answers = Vec::new();
    for i in 1..=10u64 {
        // Alternately 2 s and 1 s: every check gets a new interval and timeout.
        std::fs::write(&lvs.config, config(&lab, vip, 1 + i % 2)).unwrap();
        lvs.reload();
        let deadline = Instant::now() + Duration::from_secs(10);
        while lvs.log().matches("config reloaded").count() < i as usize {
            assert!(
                Instant::now() < deadline,
                "reload {i} not applied in 10 s; lvs log:\n{}",
                lvs.log()
            );
            answers.push(ask(&lab, vip));
        }
        // New connections through the first second of the new checks.
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            answers.push(ask(&lab, vip));
        }
    }
    let log = lvs.log();
    let bad: Vec<_> = answers
        .iter()
        .filter(|a| !a.as_deref().is_ok_and(|n| n.starts_with("real")))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} connections during the reloads not served by a real: {:?}; lvs log:\n{log}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        !log.contains("new connections go to the fallback"),
        "a reload sent the service to its fallback; lvs log:\n{log}"
    );
    assert_eq!(
        ups(&log),
        3,
        "a reload made a real go up again; lvs log:\n{log}"
    );

    // A reload past the data plane's destination table (5 services of 4,095 reals) is
    // refused when loaded, naming the service that crosses the limit; the agent goes on.
    let mut big = config(&lab, vip, 1);
    for i in 1..=5 {
        big.push_str(&format!(
            "\n[[virtual]]\naddress = \"{}:{}\"\nchecktype = \"off\"\n\
             [[virtual.real]]\naddress = \"10.{i}.16.1->10.{i}.31.255:80\"\n",
            lab.vip_v4(),
            1000 + i
        ));
    }
    std::fs::write(&lvs.config, big).unwrap();
    lvs.reload();
    lvs.wait_log(
        "too many real and fallback servers",
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        lvs.log().contains("reload refused"),
        "the oversized config was not refused; lvs log:\n{}",
        lvs.log()
    );
    lvs.wait_served(vip, Duration::from_secs(5)).unwrap();
    assert!(lvs.stop(), "lvs did not stop on SIGTERM within 5 s");
}

/// ldirectord's `callback`: run with the config file's path whenever the file changes on
/// disk, with `autoreload` off too (the change itself is then not applied), as ldirectord's
/// `check_cfgfile`; a SIGHUP reloads without running it.
#[test]
fn the_callback_runs_when_the_file_changes_even_without_autoreload() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let ran = lab.work_dir().join("callback-ran");
    let script = lab.work_dir().join("callback.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", ran.display()),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = |scheduler: &str| {
        format!(
            "autoreload = false\ncallback = \"{}\"\n\n[[virtual]]\naddress = \"{vip}\"\n\
             scheduler = \"{scheduler}\"\nchecktype = \"on\"\n[[virtual.real]]\naddress = \"{}:80\"\n",
            script.display(),
            lab.reals()[0].addr_v4
        )
    };
    let lvs = RunningLvs::start(&lab, &config("rr")).unwrap();
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
    // A change on disk: the callback runs with the file's path; nothing is reloaded. (The
    // agent polls the file's stamp each second; a second apart, the mtime surely moves.)
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&lvs.config, config("wrr")).unwrap();
    lvs.wait_log("changed on disk: not reloaded", Duration::from_secs(10))
        .unwrap();
    lvs_tests::wait::until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the callback's run",
        || std::fs::read_to_string(&ran).ok().filter(|s| !s.is_empty()),
        || format!("lvs log:\n{}", lvs.log()),
    );
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        format!("{}\n", lvs.config.display())
    );
    assert!(!lvs.log().contains("config reloaded"), "{}", lvs.log());
    // SIGHUP reloads, without the callback.
    lvs.reload();
    lvs.wait_log("config reloaded", Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read_to_string(&ran).unwrap().lines().count(), 1);
    assert!(lvs.stop(), "lvs did not stop on SIGTERM within 5 s");
}
