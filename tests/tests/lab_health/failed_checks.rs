//! A real that fails its check is out of the rotation within the bound: its HTTP server
//! stopped (IPv4 and IPv6 services), its SYNs dropped (silent, out within interval plus
//! timeout), a body that does not match `receive`.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use lvs::lab::{Lab, run_in_netns};
use lvs_tests::{agent::RunningLvs, wait};

use super::common::*;

/// Stops real `index`'s HTTP server and asserts it is out of `vip`'s rotation in time: no
/// connection issued later than the bound fails or reaches it, and then 100 new connections
/// all go to the others.
fn assert_stopped_real_removed(lab: &Lab, lvs: &RunningLvs, vip: SocketAddr, index: usize) {
    let victim = lab.reals()[index].name.clone();
    let others: Vec<String> = lab
        .reals()
        .iter()
        .filter(|r| r.name != victim)
        .map(|r| r.name.clone())
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    // Observe one bound plus a second more, so a late removal shows as a late failure.
    let (last_bad, seen) =
        last_bad_after(lab, vip, &victim, bound() + Duration::from_secs(1), || {
            lab.stop_server(index).expect("stop_server")
        });
    let last_bad = last_bad.unwrap_or_default();
    assert!(
        last_bad <= bound(),
        "{vip}: {victim} still got new connections {last_bad:?} after its server stopped, \
         bound {:?}; answers: {seen:?}; lvs log:\n{}",
        bound(),
        lvs.log()
    );
    all_from(lab, lvs, vip, 100, &others);
    assert!(
        transitions(
            &lvs.log(),
            real_addr(lab, index, vip.is_ipv6()),
            Some("down")
        ) > 0,
        "no log line says {victim} went down:\n{}",
        lvs.log()
    );
}

/// A service on the VIP `vip_of` gives, its three reals checked by connect, all answering;
/// then real `index`'s server stopped ([`assert_stopped_real_removed`]).
fn stopped_server_removed(vip_of: fn(&Lab) -> SocketAddr, index: usize) {
    let lab = lab();
    let vip = vip_of(&lab);
    let lvs = RunningLvs::start(
        &lab,
        &config(&lab, "", vip, "checktype = \"connect\"", &[0, 1, 2]),
    )
    .unwrap();
    wait_all_answer(
        &lab,
        &lvs,
        vip,
        &["real1", "real2", "real3"],
        Duration::from_secs(15),
    );
    assert_stopped_real_removed(&lab, &lvs, vip, index);
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

#[test]
fn a_stopped_server_is_removed_within_the_bound() {
    stopped_server_removed(vip4, 2);
}

#[test]
fn a_stopped_server_is_removed_from_the_ipv6_service() {
    stopped_server_removed(vip6, 1);
}

/// A classic BPF program for tc ingress (`bpf da bytecode`, offsets from the Ethernet
/// header): an IPv4 TCP segment to port 80 with SYN set and ACK clear is shot (2,
/// TC_ACT_SHOT); everything else goes on (0, TC_ACT_OK).
const DROP_SYNS_TO_80: &str = "10,\
    48 0 0 23,\
    21 0 7 6,\
    177 0 0 14,\
    72 0 0 16,\
    21 0 4 80,\
    80 0 0 27,\
    84 0 0 18,\
    21 0 1 2,\
    6 0 0 2,\
    6 0 0 0";

/// Makes real `index` stop answering on port 80 without refusing anything: its namespace
/// drops every SYN to port 80 arriving on its eth0 (checks' and clients' alike), so a
/// connect gets no answer at all and only a timeout tells. Established flows go on.
fn drop_syns(lab: &Lab, index: usize) {
    let ns = &lab.reals()[index].ns;
    wait::succeed(
        lab.command(ns, "tc")
            .args(["qdisc", "add", "dev", "eth0", "clsact"]),
    );
    wait::succeed(lab.command(ns, "tc").args([
        "filter",
        "add",
        "dev",
        "eth0",
        "ingress",
        "protocol",
        "ip",
        "bpf",
        "da",
        "bytecode",
        DROP_SYNS_TO_80,
    ]));
}

/// One GET of `/index.html` through `vip` that gives up on its connect after 300 ms: a real
/// that drops SYNs would hold each try of [`ask`] for its 5 s connect timeout, and the
/// observation would see too few connections to time the removal.
fn ask_quick(lab: &Lab, vip: SocketAddr) -> Result<String, String> {
    run_in_netns(lab.client_ns(), || -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_millis(300))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET /index.html HTTP/1.0\r\nHost: {vip}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("request: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .map_err(|e| format!("answer: {e}"))?;
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
            return Err(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
        Ok(String::from_utf8_lossy(&buf[end + 4..]).trim().to_string())
    })
    .map_err(|e| e.to_string())?
}

/// A real that stops answering (its SYNs dropped, so its check's connect hears nothing) is
/// out within `checkinterval + checktimeout + 1 s`, here with the two terms apart (1 s and
/// 2 s): the check waits its whole timeout before it fails, and the log says so.
#[test]
fn a_real_that_stops_answering_is_removed_within_interval_plus_timeout() {
    const INTERVAL: u64 = 1;
    const TIMEOUT: u64 = 2;
    let bound = Duration::from_secs(INTERVAL + TIMEOUT + 1);
    let lab = lab();
    let vip = vip4(&lab);
    let lvs = RunningLvs::start(
        &lab,
        &config_timed(
            &lab,
            (INTERVAL, TIMEOUT),
            "",
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
    let victim = 1;
    let name = lab.reals()[victim].name.clone();
    // Observe one bound plus a second more, so a late removal shows as a late failure.
    let (last_bad, seen) = last_bad_after_with(
        || ask_quick(&lab, vip),
        &name,
        bound + Duration::from_secs(1),
        || drop_syns(&lab, victim),
    );
    let last_bad = last_bad.unwrap_or_default();
    eprintln!("{name} stopped answering: its last new connection {last_bad:?} after");
    assert!(
        last_bad <= bound,
        "{name} stopped answering, and new connections still went to it {last_bad:?} later, \
         bound {bound:?} (interval {INTERVAL} s + timeout {TIMEOUT} s + 1 s); answers: \
         {seen:?}; lvs log:\n{}",
        lvs.log()
    );
    assert!(
        seen.iter().any(|(_, a)| a.is_err()),
        "no connection went to {name} after it stopped answering: the observation saw \
         nothing of it; answers: {seen:?}"
    );
    // It is out: it takes no new connection, and it does not answer at all (a connect to
    // its own address times out rather than being refused).
    all_from(&lab, &lvs, vip, 60, &["real1", "real3"]);
    let own = real_addr(&lab, victim, false);
    let direct = run_in_netns(lab.client_ns(), || {
        TcpStream::connect_timeout(&own, Duration::from_millis(500)).map(|_| ())
    })
    .unwrap();
    assert!(
        direct
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)),
        "{own} should stay silent, not answer or refuse: {direct:?}"
    );
    // The check that took it out waited its whole timeout.
    let log = lvs.log();
    let down: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("real server down") && l.contains(&format!("real={own}")))
        .collect();
    assert!(
        down.len() == 1 && down[0].contains(&format!("timed out after {TIMEOUT}s")),
        "one log line should say {own} went down on a connect that timed out after \
         {TIMEOUT}s: {down:?}\n{log}"
    );
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

#[test]
fn a_body_that_does_not_match_receive_keeps_a_real_out() {
    let lab = lab();
    let vip = vip4(&lab);
    let keys = "checktype = \"negotiate\"\nservice = \"http\"\nrequest = \"/index.html\"\nreceive = \"^real[12]$\"";
    let lvs = RunningLvs::start(&lab, &config(&lab, "", vip, keys, &[0, 1, 2])).unwrap();
    wait_all_answer(
        &lab,
        &lvs,
        vip,
        &["real1", "real2"],
        Duration::from_secs(15),
    );
    // real3 answers its check with "real3": never in.
    lvs.wait_log(
        &format!("real={}", real_addr(&lab, 2, false)),
        Duration::from_secs(5),
    )
    .unwrap();
    let names = all_from(&lab, &lvs, vip, 60, &["real1", "real2"]);
    assert!(
        names.iter().any(|n| n == "real1") && names.iter().any(|n| n == "real2"),
        "both matching reals take traffic: {names:?}"
    );
    assert!(
        transitions(&lvs.log(), real_addr(&lab, 2, false), Some("up")) == 0,
        "real3 was never up:\n{}",
        lvs.log()
    );

    // real2's page changes on disk so it stops matching: out within the bound, while its
    // server keeps running (connections to it would still succeed, with "broken").
    let page = lab.work_dir().join("real2").join("index.html");
    let (last_bad, seen) = last_bad_after(
        &lab,
        vip,
        "broken",
        bound() + Duration::from_secs(1),
        || std::fs::write(&page, "broken\n").expect("rewriting real2's page"),
    );
    let last_bad = last_bad.unwrap_or_default();
    assert!(
        last_bad <= bound(),
        "real2 still got new connections {last_bad:?} after its page changed, bound {:?}; \
         answers: {seen:?}; lvs log:\n{}",
        bound(),
        lvs.log()
    );
    all_from(&lab, &lvs, vip, 60, &["real1"]);
    assert!(lvs.stop());
}
