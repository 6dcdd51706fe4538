//! keepalived's `retry` and `delay_before_retry` through `lvs run` in the namespace lab: one
//! keepalived.conf (DR, `wlc`, an HTTP_GET service with a sorry server on the IPv4 VIP, a
//! TCP_CHECK service on the IPv6 VIP) carries real traffic; real2's server starts failing its
//! HTTP check at a known time, and real2 leaves the data plane when keepalived would take it
//! out: at the `retry + 1`-th failed check, the retries `delay_before_retry` apart (not
//! `delay_loop`), and not much later. One passing check brings it back. With every real down
//! the sorry server answers.
//!
//! real2's server here is the test's own (in real2's namespace), so that the test knows when
//! each check came and what it was answered.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get, run_in_netns};
use lvs_tests::{
    agent::{RunningLvs, start_sorry_server},
    wait,
};

/// `delay_loop`, `retry` and `delay_before_retry` of the HTTP_GET service (seconds).
const DELAY_LOOP: u64 = 6;
const RETRY: usize = 2;
const DELAY_BEFORE_RETRY: u64 = 2;

fn keepalived_conf(lab: &Lab) -> String {
    let mut c = format!(
        "global_defs {{\n    router_id LVS_RETRY\n}}\n\n\
         virtual_server {vip4} 80 {{\n    delay_loop {DELAY_LOOP}\n    lb_algo wlc\n    \
         lb_kind DR\n    protocol TCP\n    sorry_server 127.0.0.1 80\n",
        vip4 = lab.vip_v4()
    );
    for r in lab.reals() {
        c.push_str(&format!(
            "    real_server {} 80 {{\n        weight 1\n        HTTP_GET {{\n            \
             url {{\n                path /index.html\n                status_code 200\n            \
             }}\n            connect_timeout 2\n            retry {RETRY}\n            \
             delay_before_retry {DELAY_BEFORE_RETRY}\n        }}\n    }}\n",
            r.addr_v4
        ));
    }
    c.push_str(&format!(
        "}}\n\nvirtual_server {} 80 {{\n    delay_loop 1\n    lb_algo wlc\n    lb_kind DR\n    \
         protocol TCP\n",
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

/// What the test's HTTP server saw: each request from the director (a check), with its time
/// and whether it was answered 200.
#[derive(Default)]
struct Seen {
    checks: Vec<(Instant, bool)>,
}

/// An HTTP server in namespace `ns` on port 80 (IPv4 and IPv6), answering "NAME" with 200,
/// and the requests that come from `director` (the checks) 500 while not `healthy`; notes
/// each check.
fn serve(
    ns: &str,
    name: &str,
    director: IpAddr,
    healthy: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> std::io::Result<()> {
    let listener =
        run_in_netns(ns, || TcpListener::bind("[::]:80")).map_err(std::io::Error::other)??;
    let body = format!("{name}\n");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let (healthy, seen, body) = (healthy.clone(), seen.clone(), body.clone());
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut b = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(n) if n > 0 => req.extend_from_slice(&b[..n]),
                        _ => return,
                    }
                }
                let ok = healthy.load(Ordering::SeqCst);
                let from_director = s.peer_addr().is_ok_and(|p| match p.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4) == Some(director),
                    ip => ip == director,
                });
                if from_director {
                    seen.lock().unwrap().checks.push((Instant::now(), ok));
                }
                // Only the checks fail: the clients are still served.
                let answer = if ok || !from_director {
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.0 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = s.write_all(answer.as_bytes());
            });
        }
    });
    Ok(())
}

/// Who answers one new connection through `vip` (a real's name or "sorry"), or the error.
fn ask(lab: &Lab, vip: SocketAddr) -> Result<String, String> {
    match http_get(lab.client_ns(), vip, "/index.html") {
        Ok((200, body)) => Ok(String::from_utf8_lossy(&body).trim().to_string()),
        Ok((status, _)) => Err(format!("status {status}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until 12 new connections through `vip` are answered by exactly `names` (each at
/// least once, no other), or fails naming what it waited for.
fn wait_answers(lab: &Lab, lvs: &RunningLvs, vip: SocketAddr, names: &[&str], within: Duration) {
    let last = std::cell::RefCell::new(Vec::new());
    wait::until(
        within,
        Duration::from_millis(100),
        &format!("{vip} answered by exactly {names:?}"),
        || {
            let mut last = last.borrow_mut();
            *last = (0..12).map(|_| ask(lab, vip)).collect::<Vec<_>>();
            let all_named = last
                .iter()
                .all(|a| a.as_deref().is_ok_and(|n| names.contains(&n)));
            let each_seen = names
                .iter()
                .all(|n| last.iter().any(|a| a.as_deref() == Ok(*n)));
            (all_named && each_seen).then_some(())
        },
        || format!("last answers {:?}; lvs log:\n{}", last.borrow(), lvs.log()),
    );
}

#[test]
fn a_failing_real_leaves_after_retry_plus_one_checks_spaced_by_delay_before_retry() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    start_sorry_server(&lab).unwrap();
    let vip4 = SocketAddr::new(lab.vip_v4().into(), 80);
    let vip6 = SocketAddr::new(lab.vip_v6().into(), 80);
    let real2 = lab.reals()[1].clone();
    let real2_v4 = SocketAddr::new(real2.addr_v4.into(), 80);
    // real2 is served by the test's server.
    lab.stop_server(1).unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Seen::default()));
    serve(
        &real2.ns,
        &real2.name,
        lab.director_v4().into(),
        healthy.clone(),
        seen.clone(),
    )
    .unwrap();

    let lvs = RunningLvs::start_file(&lab, "keepalived.conf", &keepalived_conf(&lab)).unwrap();
    let all = ["real1", "real2", "real3"];
    wait_answers(&lab, &lvs, vip4, &all, Duration::from_secs(20));
    wait_answers(&lab, &lvs, vip6, &all, Duration::from_secs(20));
    lvs.wait_real_weight(real2_v4, "1", Duration::from_secs(5))
        .unwrap();

    // real2's HTTP check fails from now on (its TCP_CHECK on the IPv6 VIP still passes).
    let failing_from = Instant::now();
    healthy.store(false, Ordering::SeqCst);
    lvs.wait_real_weight(
        real2_v4,
        "-",
        Duration::from_secs(DELAY_LOOP + RETRY as u64 * DELAY_BEFORE_RETRY + 15),
    )
    .unwrap();
    let out_at = Instant::now();
    let failed: Vec<Instant> = seen
        .lock()
        .unwrap()
        .checks
        .iter()
        .filter(|(t, ok)| !ok && *t >= failing_from)
        .map(|(t, _)| *t)
        .collect();
    let since = |t: &Instant| t.duration_since(failing_from);
    let times: Vec<Duration> = failed.iter().map(since).collect();
    let log = || lvs.log();
    // Out at the retry + 1-th failed check: not before (fewer failures seen), not at a later
    // check.
    assert_eq!(
        failed.len(),
        RETRY + 1,
        "real2 left the data plane {:?} after it started failing, with {} failed checks at \
         {times:?}; keepalived takes it out at failed check number {}\nlvs log:\n{}",
        since(&out_at),
        failed.len(),
        RETRY + 1,
        log()
    );
    // The first failed check at delay_loop at most after the failing started.
    assert!(
        times[0] <= Duration::from_secs(DELAY_LOOP) + Duration::from_millis(1500),
        "the first failed check {:?} after the failing started (delay_loop {DELAY_LOOP} s)",
        times[0]
    );
    // The retries delay_before_retry apart (2 s), far from delay_loop (6 s).
    for pair in failed.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(DELAY_BEFORE_RETRY * 1000 - 200)
                && gap < Duration::from_millis(DELAY_BEFORE_RETRY * 1000 + 1800),
            "retries {gap:?} apart (delay_before_retry {DELAY_BEFORE_RETRY} s, delay_loop \
             {DELAY_LOOP} s): failed checks at {times:?}\nlvs log:\n{}",
            log()
        );
    }
    // And out soon after the last one.
    let late = out_at - failed[RETRY];
    assert!(
        late < Duration::from_millis(2500),
        "real2 out {late:?} after its last failed check"
    );
    eprintln!("failed checks at {times:?} after the failing started; out {late:?} after the last");
    lvs.wait_log(
        &format!("real server down virtual_service={vip4}/tcp real={real2_v4}"),
        Duration::from_secs(2),
    )
    .unwrap();
    // New connections leave it; its TCP_CHECK on the IPv6 VIP keeps it there.
    wait_answers(
        &lab,
        &lvs,
        vip4,
        &["real1", "real3"],
        Duration::from_secs(5),
    );
    wait_answers(&lab, &lvs, vip6, &all, Duration::from_secs(5));

    // It passes again: one passing check brings it back, at delay_loop after the check that
    // took it out.
    let passing_from = Instant::now();
    healthy.store(true, Ordering::SeqCst);
    lvs.wait_real_weight(real2_v4, "1", Duration::from_secs(DELAY_LOOP + 10))
        .unwrap();
    let passed: Vec<Instant> = seen
        .lock()
        .unwrap()
        .checks
        .iter()
        .filter(|(t, ok)| *ok && *t >= passing_from)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        passed.len(),
        1,
        "back after {} passing checks\nlvs log:\n{}",
        passed.len(),
        log()
    );
    let gap = passed[0] - failed[RETRY];
    assert!(
        gap >= Duration::from_millis(DELAY_LOOP * 1000 - 500),
        "checked {gap:?} after it was taken out: a real that is down is checked at delay_loop \
         ({DELAY_LOOP} s), not delay_before_retry"
    );
    eprintln!("passing check {gap:?} after the one that took it out");
    wait_answers(&lab, &lvs, vip4, &all, Duration::from_secs(5));

    // Every real down: the sorry server answers on the IPv4 VIP.
    lab.stop_server(0).unwrap();
    lab.stop_server(2).unwrap();
    healthy.store(false, Ordering::SeqCst);
    wait_answers(
        &lab,
        &lvs,
        vip4,
        &["sorry"],
        Duration::from_secs(DELAY_LOOP + RETRY as u64 * DELAY_BEFORE_RETRY + 15),
    );
    assert!(lvs.stop());
}
