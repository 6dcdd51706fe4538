//! Reals down and back: with every real down the fallback answers until one recovers; a real
//! whose address nobody holds is down and silent until a host takes the address.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lvs_tests::{
    agent::{RunningLvs, start_sorry_server},
    wait,
};

use super::common::*;

/// Asks `vip` every 20 ms from `since` until `want` answers or the bound and 2 s more have
/// passed: the last answer, and the time from `since` to it.
fn answered_by(
    lab: &lvs::lab::Lab,
    vip: SocketAddr,
    want: &str,
    since: Instant,
) -> (Result<String, String>, Duration) {
    let mut answer = ask(lab, vip);
    while answer.as_deref() != Ok(want) && since.elapsed() < bound() + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        answer = ask(lab, vip);
    }
    (answer, since.elapsed())
}

#[test]
fn with_every_real_down_the_fallback_answers_until_one_recovers() {
    let lab = lab();
    start_sorry_server(&lab).unwrap();
    let vip = vip4(&lab);
    let lvs = RunningLvs::start(
        &lab,
        &config(
            &lab,
            "fallback = \"127.0.0.1:80\"",
            vip,
            "checktype = \"connect\"",
            &[0, 1, 2],
        ),
    )
    .unwrap();
    wait_all_answer(
        &lab,
        &lvs,
        vip,
        &["real1", "real2", "real3"],
        Duration::from_secs(15),
    );

    let t0 = Instant::now();
    for i in 0..3 {
        lab.stop_server(i).unwrap();
    }
    let (answer, took) = answered_by(&lab, vip, "sorry", t0);
    assert!(
        answer.as_deref() == Ok("sorry") && took <= bound(),
        "the fallback answered after {took:?} (last answer {answer:?}), bound {:?}; lvs log:\n{}",
        bound(),
        lvs.log()
    );
    all_from(&lab, &lvs, vip, 30, &["sorry"]);
    lvs.wait_log("new connections go to the fallback", Duration::from_secs(1))
        .unwrap();

    // real1 recovers: new connections leave the fallback for it.
    lab.start_server(0).unwrap();
    let (answer, took) = answered_by(&lab, vip, "real1", Instant::now());
    assert!(
        answer.as_deref() == Ok("real1") && took <= bound(),
        "real1 answered again after {took:?} (last answer {answer:?}), bound {:?}; lvs log:\n{}",
        bound(),
        lvs.log()
    );
    all_from(&lab, &lvs, vip, 30, &["real1"]);
    lvs.wait_log("new connections leave the fallback", Duration::from_secs(1))
        .unwrap();
    assert!(lvs.stop());
}

/// A real whose address nobody holds goes down, then silent (its checks send nothing); when a
/// host takes the address, the resolver's next probe finds it and the real comes back up.
#[test]
fn a_real_nobody_answers_for_is_silent_until_a_host_takes_its_address() {
    let lab = lab();
    let vip = vip4(&lab);
    let ghost = SocketAddr::new(lvs::lab::lab_v4(201).into(), 80);
    let mut cfg = config(&lab, "", vip, "checktype = \"connect\"", &[0]);
    cfg.push_str(&format!("[[virtual.real]]\naddress = \"{ghost}\"\n"));
    let lvs = RunningLvs::start(&lab, &cfg).unwrap();
    wait_all_answer(&lab, &lvs, vip, &["real1"], Duration::from_secs(15));
    lvs.wait_log(
        &format!("server silent: it does not answer ARP/ND; its checks send nothing until it does server={}", ghost.ip()),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("{e}; lvs log:\n{}", lvs.log()));
    assert_eq!(transitions(&lvs.log(), ghost, Some("up")), 0);
    assert_eq!(
        transitions(&lvs.log(), ghost, Some("down")),
        1,
        "{}",
        lvs.log()
    );

    // real1 takes the address (its server listens on every address).
    wait::succeed(
        std::process::Command::new("ip")
            .args(["-n", &lab.reals()[0].ns, "addr", "add"])
            .arg(format!("{}/24", ghost.ip()))
            .args(["dev", "eth0"]),
    );
    // Probes of an unresolved address are at most 10 s apart, then one check interval.
    let deadline = Instant::now() + Duration::from_secs(10 + INTERVAL + TIMEOUT + 2);
    while transitions(&lvs.log(), ghost, Some("up")) == 0 {
        assert!(
            Instant::now() < deadline,
            "{ghost} did not come back up; lvs log:\n{}",
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lvs.stop());
}
