//! A keepalived.conf run unchanged by `lvs run` in the namespace lab: DR, rr, an HTTP_GET
//! service with a sorry server on the IPv4 VIP and a TCP_CHECK service on the IPv6 VIP, beside
//! a vrrp_instance that lvs skips. Real traffic through both VIPs; a real whose server stops is
//! taken out of both (and its own `notify_down` script runs); with every real down the sorry
//! server answers; a real that comes back runs its `notify_up` script.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::agent::{RunningLvs, start_sorry_server};

fn keepalived_conf(lab: &Lab) -> String {
    let mut c = format!(
        "! Configuration File for keepalived\n\
         global_defs {{\n   router_id LVS_LAB\n}}\n\n\
         vrrp_instance VI_1 {{\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    \
         priority 100\n    virtual_ipaddress {{\n        {vip4}\n    }}\n}}\n\n\
         $REALS_CHECKED_EVERY=1\n\n\
         virtual_server {vip4} 80 {{\n    delay_loop $REALS_CHECKED_EVERY\n    lb_algo rr\n    \
         lb_kind DR\n    protocol TCP\n    sorry_server 127.0.0.1 80\n",
        vip4 = lab.vip_v4()
    );
    let notes = notes_path(lab);
    for r in lab.reals() {
        // The real's own scripts append "up|down NAME" to the notes.
        let script = |word: &str| {
            format!(
                "\"/bin/sh -c 'echo {word} {} >> {}'\"",
                r.name,
                notes.display()
            )
        };
        c.push_str(&format!(
            "    real_server {} 80 {{\n        weight 1\n        notify_up {}\n        \
             notify_down {}\n        HTTP_GET {{\n            url {{\n              \
             path /index.html\n              status_code 200-299\n            }}\n            \
             connect_timeout 1\n            retry 0\n        }}\n    }}\n",
            r.addr_v4,
            script("up"),
            script("down")
        ));
    }
    c.push_str(&format!(
        "}}\n\nvirtual_server {} 80\n{{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n",
        lab.vip_v6()
    ));
    for r in lab.reals() {
        c.push_str(&format!(
            "    real_server {} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n            \
             retry 0\n        }}\n    }}\n",
            r.addr_v6
        ));
    }
    c.push_str("}\n");
    c
}

/// Where the reals' notify scripts write.
fn notes_path(lab: &Lab) -> std::path::PathBuf {
    lab.work_dir().join("notify-notes")
}

/// Waits until the notes contain the line `line` `times` times.
fn wait_note(lab: &Lab, lvs: &RunningLvs, line: &str, times: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let notes = std::fs::read_to_string(notes_path(lab)).unwrap_or_default();
        if notes.lines().filter(|l| *l == line).count() >= times {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {times} {line:?} from the notify scripts within {within:?}; notes:\n{notes}\n\
             lvs log:\n{}",
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Who answers one new connection through `vip` (a real's name or "sorry"), or the error.
fn ask(lab: &Lab, vip: SocketAddr) -> Result<String, String> {
    match http_get(lab.client_ns(), vip, "/index.html") {
        Ok((200, body)) => Ok(String::from_utf8_lossy(&body).trim().to_string()),
        Ok((status, _)) => Err(format!("status {status}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until the answers through `vip` over 12 new connections are exactly `names` (each
/// at least once, no other), or fails naming what it waited for.
fn wait_answers(lab: &Lab, lvs: &RunningLvs, vip: SocketAddr, names: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = (0..12).map(|_| ask(lab, vip)).collect::<Vec<_>>();
        let all_named = last
            .iter()
            .all(|a| a.as_deref().is_ok_and(|n| names.contains(&n)));
        let each_seen = names
            .iter()
            .all(|n| last.iter().any(|a| a.as_deref() == Ok(*n)));
        if all_named && each_seen {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{vip}: not answered by exactly {names:?} within {within:?} (last answers {last:?}); \
         lvs log:\n{}",
        lvs.log()
    );
}

#[test]
fn a_keepalived_conf_serves_through_both_vips_and_takes_failed_reals_out() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    start_sorry_server(&lab).unwrap();
    let vip4 = SocketAddr::new(lab.vip_v4().into(), 80);
    let vip6 = SocketAddr::new(lab.vip_v6().into(), 80);
    let lvs = RunningLvs::start_file(&lab, "keepalived.conf", &keepalived_conf(&lab)).unwrap();
    let all = ["real1", "real2", "real3"];
    wait_answers(&lab, &lvs, vip4, &all, Duration::from_secs(20));
    wait_answers(&lab, &lvs, vip6, &all, Duration::from_secs(20));
    // The VRRP block is skipped, and said so.
    lvs.wait_log(
        "non-LVS block(s) skipped (vrrp_instance)",
        Duration::from_secs(1),
    )
    .unwrap();

    // real2's server stops: both checks take it out.
    lab.stop_server(1).unwrap();
    wait_answers(
        &lab,
        &lvs,
        vip4,
        &["real1", "real3"],
        Duration::from_secs(10),
    );
    wait_answers(
        &lab,
        &lvs,
        vip6,
        &["real1", "real3"],
        Duration::from_secs(10),
    );
    // Its notify_down ran (only its own).
    wait_note(&lab, &lvs, "down real2", 1, Duration::from_secs(5));
    let notes = std::fs::read_to_string(notes_path(&lab)).unwrap();
    assert!(!notes.contains("down real1"), "{notes}");
    // notify_up ran once per real when it first passed (as keepalived's `alpha` reals).
    assert_eq!(notes.matches("up real2").count(), 1, "{notes}");

    // Every real down: the sorry server answers on the IPv4 VIP.
    lab.stop_server(0).unwrap();
    lab.stop_server(2).unwrap();
    wait_answers(&lab, &lvs, vip4, &["sorry"], Duration::from_secs(10));

    // real2 is back: it alone answers.
    lab.start_server(1).unwrap();
    wait_answers(&lab, &lvs, vip4, &["real2"], Duration::from_secs(10));
    wait_note(&lab, &lvs, "up real2", 2, Duration::from_secs(5));
    wait_answers(&lab, &lvs, vip6, &["real2"], Duration::from_secs(10));
    assert!(lvs.stop());
}

#[test]
fn below_its_quorum_the_sorry_server_answers_with_hysteresis() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    start_sorry_server(&lab).unwrap();
    let vip4 = SocketAddr::new(lab.vip_v4().into(), 80);
    // Three reals of weight 1, quorum 2, hysteresis 1: lost below 1 live real, regained at 3.
    // quorum_up and quorum_down append to the notes.
    let notes = notes_path(&lab);
    let script = |word: &str| format!("\"/bin/sh -c 'echo quorum {word} >> {}'\"", notes.display());
    let conf = keepalived_conf(&lab).replace(
        "    sorry_server 127.0.0.1 80\n",
        &format!(
            "    sorry_server 127.0.0.1 80\n    quorum 2\n    hysteresis 1\n    quorum_up {}\n    \
             quorum_down {}\n",
            script("up"),
            script("down")
        ),
    );
    let lvs = RunningLvs::start_file(&lab, "keepalived.conf", &conf).unwrap();
    let all = ["real1", "real2", "real3"];
    wait_answers(&lab, &lvs, vip4, &all, Duration::from_secs(20));
    // Two reals down: one live real (weight 1) is still within the hysteresis.
    lab.stop_server(1).unwrap();
    lab.stop_server(0).unwrap();
    wait_answers(&lab, &lvs, vip4, &["real3"], Duration::from_secs(10));
    // None live: the quorum is lost, the sorry server answers.
    lab.stop_server(2).unwrap();
    wait_answers(&lab, &lvs, vip4, &["sorry"], Duration::from_secs(10));
    lvs.wait_log("quorum lost", Duration::from_secs(5)).unwrap();
    wait_note(&lab, &lvs, "quorum down", 1, Duration::from_secs(5));
    // real2 back and up: 1 live, below quorum + hysteresis (3): still the sorry server.
    let real2_up = format!(
        "real server up virtual_service={vip4}/tcp real={}:80",
        lab.reals()[1].addr_v4
    );
    lab.start_server(1).unwrap();
    lvs_tests::wait::until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        "real2 checked up again",
        || (lvs.log().matches(&real2_up).count() >= 2).then_some(()),
        || lvs.log(),
    );
    wait_answers(&lab, &lvs, vip4, &["sorry"], Duration::from_secs(5));
    // All three back: the quorum is regained, the reals answer again.
    lab.start_server(0).unwrap();
    lab.start_server(2).unwrap();
    wait_answers(&lab, &lvs, vip4, &all, Duration::from_secs(15));
    lvs.wait_log("quorum regained", Duration::from_secs(5))
        .unwrap();
    wait_note(&lab, &lvs, "quorum up", 2, Duration::from_secs(5));
    // Each ran at its change: up when the reals first passed (as keepalived's `alpha` reals
    // start down), down when it was lost, up when it was regained.
    let notes = std::fs::read_to_string(notes_path(&lab)).unwrap();
    let quorum: Vec<&str> = notes.lines().filter(|l| l.starts_with("quorum")).collect();
    assert_eq!(quorum, ["quorum up", "quorum down", "quorum up"], "{notes}");
    assert!(lvs.stop());
}
