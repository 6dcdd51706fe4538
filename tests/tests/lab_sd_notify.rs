//! systemd's notifications (`Type=notify`): the agent run with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test holds says `READY=1` only once the balancer is attached, then
//! `WATCHDOG=1` as `WATCHDOG_USEC` asks, and `STOPPING=1` when it stops.

use std::{
    net::SocketAddr,
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions};
use lvs_tests::agent::RunningLvs;

fn config(lab: &Lab, vip: SocketAddr) -> String {
    let mut c = format!(
        "checkinterval = 1\nchecktimeout = 1\n\n[[virtual]]\naddress = \"{vip}\"\n\
         scheduler = \"rr\"\nchecktype = \"connect\"\n"
    );
    for r in lab.reals() {
        c.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}:80\"\n",
            r.addr_v4
        ));
    }
    c
}

/// The next notification within `within`, or `None`.
fn next(sock: &UnixDatagram, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading the notification socket: {e}"),
        }
    }
}

#[test]
fn ready_comes_after_the_attach_then_watchdog_and_stopping() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let path = lab.work_dir().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("binding the notification socket");
    let notify = format!("NOTIFY_SOCKET={}", path.display());
    let lvs = RunningLvs::start_under(
        &lab,
        "lvs.toml",
        &config(&lab, vip),
        &["env", &notify, "WATCHDOG_USEC=600000"],
    )
    .unwrap();

    // READY=1 is the first notification, and when it comes the balancer is attached.
    let first = next(&sock, Duration::from_secs(20));
    let log = lvs.log();
    assert_eq!(
        first.as_deref(),
        Some("READY=1"),
        "no READY=1 within 20 s; lvs log:\n{log}"
    );
    assert!(
        log.contains("balancer attached"),
        "READY=1 came before the balancer was attached; lvs log:\n{log}"
    );
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();

    // The watchdog: every 300 ms (half of WATCHDOG_USEC), from the agent's loop.
    let mut watchdogs = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match next(&sock, Duration::from_secs(2)) {
            Some(n) if n == "WATCHDOG=1" => watchdogs += 1,
            Some(other) => panic!("unexpected notification {other:?}"),
            None => break,
        }
    }
    assert!(
        watchdogs >= 2,
        "{watchdogs} WATCHDOG=1 in 2 s with WATCHDOG_USEC=600000; lvs log:\n{}",
        lvs.log()
    );

    assert!(lvs.stop(), "lvs did not stop on SIGTERM within 5 s");
    let mut stopping = false;
    while let Some(n) = next(&sock, Duration::from_secs(2)) {
        if n == "STOPPING=1" {
            stopping = true;
            break;
        }
        assert_eq!(n, "WATCHDOG=1", "unexpected notification");
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
}
