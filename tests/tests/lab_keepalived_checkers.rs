//! keepalived's rule for a real with several checkers, in the namespace lab: it is up only
//! while all of them pass. Each real has a TCP_CHECK on its port and an HTTP_GET with two url
//! blocks (its index page, and a health page the test removes and puts back): with the health
//! page gone the real's server still accepts connections and serves its index page, yet the
//! real leaves the data plane, takes no new connection through the VIP, and `lvs status` says
//! which check failed; with the page back it returns.

use std::{net::SocketAddr, time::Duration};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::agent::{RunningLvs, count, who_answers};

/// A keepalived.conf: the IPv4 VIP, rr over the lab's reals, each with three checks (a
/// TCP_CHECK, and an HTTP_GET of two urls), one failure taking a real down.
fn keepalived_conf(lab: &Lab) -> String {
    let mut c = format!(
        "virtual_server {} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    \
         protocol TCP\n",
        lab.vip_v4()
    );
    for r in lab.reals() {
        c.push_str(&format!(
            "    real_server {} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n            \
             retry 0\n        }}\n        HTTP_GET {{\n            url {{\n              \
             path /index.html\n            }}\n            url {{\n              \
             path /health.html\n              status_code 200\n            }}\n            \
             connect_timeout 1\n            retry 0\n        }}\n    }}\n",
            r.addr_v4
        ));
    }
    c.push_str("}\n");
    c
}

fn health_page(lab: &Lab, real: &str) -> std::path::PathBuf {
    lab.work_dir().join(real).join("health.html")
}

#[test]
fn a_real_with_several_checkers_is_up_only_while_all_pass() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    for r in lab.reals() {
        std::fs::write(health_page(&lab, &r.name), "ok\n").expect("health page");
    }
    let lvs = RunningLvs::start_file(&lab, "keepalived.conf", &keepalived_conf(&lab)).unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let reals: Vec<(String, SocketAddr)> = lab
        .reals()
        .iter()
        .map(|r| (r.name.clone(), SocketAddr::new(r.addr_v4.into(), 80)))
        .collect();
    for (_, addr) in &reals {
        lvs.wait_real_weight(*addr, "1", Duration::from_secs(30))
            .unwrap();
    }
    let status = lvs.status(&["--json"]).unwrap();
    assert!(
        status.matches("\"check\":").count() >= reals.len(),
        "lvs status --json shows a last check per real:\n{status}"
    );

    // real2's health page goes: its TCP_CHECK and its first url still pass.
    let (name, addr) = &reals[1];
    std::fs::remove_file(health_page(&lab, name)).expect("removing the health page");
    lvs.wait_real_weight(*addr, "-", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{name} stays in with one of its checks failing: {e}"));
    let (code, body) = http_get(lab.client_ns(), *addr, "/index.html").expect("real2 directly");
    assert_eq!(
        (code, String::from_utf8_lossy(&body).trim()),
        (200, name.as_str()),
        "{name}'s server still answers"
    );
    let names = who_answers(&lab, vip, 12).expect("new connections");
    assert_eq!(
        count(&names, name),
        0,
        "{name} took new connections: {names:?}"
    );
    let table = lvs.status(&[]).unwrap();
    let text = lvs.status(&["--json"]).unwrap();
    assert!(
        text.contains("health.html") || text.contains("404"),
        "lvs status --json names the failing check (the health page):\n{text}\n{table}"
    );

    // Back: all three checks pass again.
    std::fs::write(health_page(&lab, name), "ok\n").expect("health page");
    lvs.wait_real_weight(*addr, "1", Duration::from_secs(15))
        .unwrap();
    let names = who_answers(&lab, vip, 12).expect("new connections");
    assert!(count(&names, name) > 0, "{name} back in: {names:?}");
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}
