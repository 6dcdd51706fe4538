//! Health checking, fallback and live reconfiguration end to end in the namespace lab: `lvs run`
//! on the director checks the three reals, and the tests break and mend the reals (stop their
//! HTTP servers, change what they serve) and rewrite the config while clients connect through
//! the VIP.
//!
//! Every timing bound is the one an operator is promised: a real that fails its check is out
//! within `checkinterval + checktimeout` (plus 1 s of slack for the lab's scheduling). Every
//! wait has a deadline and fails naming what it waited for.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, big_file_bytes, http_get, run_in_netns};
use lvs_tests::{
    agent::{RunningLvs, connect_small_rcvbuf, lvs_binary, start_sorry_server},
    wait,
};

/// Seconds between checks of one real, in every config here.
const INTERVAL: u64 = 1;
/// Check timeout, in every config here.
const TIMEOUT: u64 = 1;

/// How long a failed real may keep getting new connections: interval + timeout + 1 s slack.
fn bound() -> Duration {
    Duration::from_secs(INTERVAL + TIMEOUT + 1)
}

fn lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1 << 20,
        ..LabOptions::default()
    })
    .expect("lab")
}

fn vip4(lab: &Lab) -> SocketAddr {
    SocketAddr::new(lab.vip_v4().into(), 80)
}

fn vip6(lab: &Lab) -> SocketAddr {
    SocketAddr::new(lab.vip_v6().into(), 80)
}

/// A real's address as the config and the log write it.
fn real_addr(lab: &Lab, index: usize, v6: bool) -> SocketAddr {
    let r = &lab.reals()[index];
    if v6 {
        SocketAddr::new(r.addr_v6.into(), 80)
    } else {
        SocketAddr::new(r.addr_v4.into(), 80)
    }
}

/// A config: `globals` (TOML lines), then one virtual service on `vip` with `virtual_keys`
/// and the reals numbered (0-based) in `reals`, weight 1 each; checks every [`INTERVAL`]
/// seconds with a [`TIMEOUT`].
fn config(
    lab: &Lab,
    globals: &str,
    vip: SocketAddr,
    virtual_keys: &str,
    reals: &[usize],
) -> String {
    config_timed(lab, (INTERVAL, TIMEOUT), globals, vip, virtual_keys, reals)
}

/// [`config`] with checks every `interval` seconds and a check timeout of `timeout` seconds.
fn config_timed(
    lab: &Lab,
    (interval, timeout): (u64, u64),
    globals: &str,
    vip: SocketAddr,
    virtual_keys: &str,
    reals: &[usize],
) -> String {
    let v6 = vip.is_ipv6();
    let mut c = format!(
        "checkinterval = {interval}\nchecktimeout = {timeout}\nnegotiatetimeout = {timeout}\n\
         {globals}\n\n[[virtual]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n{virtual_keys}\n"
    );
    for &i in reals {
        c.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}\"\n",
            real_addr(lab, i, v6)
        ));
    }
    c
}

/// One new connection through `vip`: the name of the real (or sorry server) that answered.
fn ask(lab: &Lab, vip: SocketAddr) -> Result<String, String> {
    match http_get(lab.client_ns(), vip, "/index.html") {
        Ok((200, body)) => Ok(String::from_utf8_lossy(&body).trim().to_string()),
        Ok((status, _)) => Err(format!("status {status}")),
        Err(e) => Err(e.to_string()),
    }
}

/// `n` new connections through `vip`; panics (with the log) if any fails or is answered by
/// something outside `allowed`. Returns the answers.
fn all_from(
    lab: &Lab,
    lvs: &RunningLvs,
    vip: SocketAddr,
    n: usize,
    allowed: &[&str],
) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        match ask(lab, vip) {
            Ok(name) if allowed.contains(&name.as_str()) => names.push(name),
            Ok(name) => panic!(
                "{vip}: connection {i} of {n} went to {name}, want one of {allowed:?}; lvs log:\n{}",
                lvs.log()
            ),
            Err(e) => panic!(
                "{vip}: connection {i} of {n} failed: {e}; lvs log:\n{}",
                lvs.log()
            ),
        }
    }
    names
}

/// Waits until every name of `want` has answered a new connection through `vip` (the agent
/// is up, checked every real and wrote the tables).
fn wait_all_answer(lab: &Lab, lvs: &RunningLvs, vip: SocketAddr, want: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        if let Ok(name) = ask(lab, vip)
            && !seen.contains(&name)
        {
            seen.push(name);
        }
        if want.iter().all(|w| seen.iter().any(|s| s == w)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{vip}: only {seen:?} answered within {within:?}, want all of {want:?}; lvs log:\n{}",
        lvs.log()
    );
}

/// Lines of the log saying `real` changed state (to `state`, when given): the agent logs every
/// transition once per virtual service.
fn transitions(log: &str, real: SocketAddr, state: Option<&str>) -> usize {
    let real = format!("real={real}");
    log.lines()
        .filter(|l| {
            (l.contains("real server up") || l.contains("real server down")) && l.contains(&real)
        })
        .filter(|l| {
            state.is_none_or(|s| {
                l.contains(&format!("state={s}")) || l.contains(&format!("state=\"{s}\""))
            })
        })
        .count()
}

/// Each new connection's time since the break and its answer.
type Answers = Vec<(Duration, Result<String, String>)>;

/// New connections every 20 ms through `vip` from the moment `break_it` ran until `bound`
/// has passed: returns when the last one failed or reached `victim`, relative to the break
/// (`None`: none did).
fn last_bad_after(
    lab: &Lab,
    vip: SocketAddr,
    victim: &str,
    bound: Duration,
    break_it: impl FnOnce(),
) -> (Option<Duration>, Answers) {
    last_bad_after_with(|| ask(lab, vip), victim, bound, break_it)
}

/// [`last_bad_after`] with new connections made by `ask`.
fn last_bad_after_with(
    ask: impl Fn() -> Result<String, String>,
    victim: &str,
    bound: Duration,
    break_it: impl FnOnce(),
) -> (Option<Duration>, Answers) {
    let t0 = Instant::now();
    break_it();
    let mut last_bad = None;
    let mut seen = Vec::new();
    while t0.elapsed() < bound {
        let at = t0.elapsed();
        let answer = ask();
        if !answer.as_deref().is_ok_and(|n| n != victim) {
            last_bad = Some(at);
        }
        seen.push((at, answer));
        std::thread::sleep(Duration::from_millis(20));
    }
    (last_bad, seen)
}

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

#[test]
fn a_stopped_server_is_removed_within_the_bound() {
    let lab = lab();
    let vip = vip4(&lab);
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
    assert_stopped_real_removed(&lab, &lvs, vip, 2);
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

#[test]
fn a_stopped_server_is_removed_from_the_ipv6_service() {
    let lab = lab();
    let vip = vip6(&lab);
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
    assert_stopped_real_removed(&lab, &lvs, vip, 1);
    assert!(lvs.stop(), "lvs stops on SIGTERM");
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
    let mut answer = ask(&lab, vip);
    while answer.as_deref() != Ok("sorry") && t0.elapsed() < bound() + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        answer = ask(&lab, vip);
    }
    let took = t0.elapsed();
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
    let t1 = Instant::now();
    let mut answer = ask(&lab, vip);
    while answer.as_deref() != Ok("real1") && t1.elapsed() < bound() + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        answer = ask(&lab, vip);
    }
    let took = t1.elapsed();
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

/// The client's read timeout in a [`PausedDownload`]: an error that comes this late is the
/// client giving up, not the network cutting the flow.
const DOWNLOAD_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`PausedDownload`] failed.
#[derive(Debug)]
struct Cut {
    /// The error's kind (`ConnectionReset`: a reset cut it; `WouldBlock`/`TimedOut`: the
    /// client's own read timeout).
    kind: ErrorKind,
    /// What was being done, and the error.
    what: String,
    /// When the client saw the error.
    at: Instant,
}

impl Cut {
    fn new(kind: ErrorKind, what: String) -> Cut {
        Cut {
            kind,
            what,
            at: Instant::now(),
        }
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.what, self.kind)
    }
}

/// A download of `big.bin` through `vip` that reads its first MiB, reports its client port,
/// then waits for a go before reading the rest. Returns the body, or what cut it.
struct PausedDownload {
    port: u16,
    go: mpsc::Sender<()>,
    done: std::thread::JoinHandle<Result<Vec<u8>, Cut>>,
}

impl PausedDownload {
    fn start(lab: &Lab, vip: SocketAddr) -> PausedDownload {
        let ns = lab.client_ns().to_string();
        let (port_tx, port_rx) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let done = std::thread::spawn(move || {
            let io = |step: &'static str| {
                move |e: std::io::Error| Cut::new(e.kind(), format!("{step}: {e}"))
            };
            run_in_netns(&ns, move || -> Result<Vec<u8>, Cut> {
                let mut s = connect_small_rcvbuf(vip).map_err(io("connect"))?;
                let port = s.local_addr().map_err(io("local address"))?.port();
                s.set_read_timeout(Some(DOWNLOAD_READ_TIMEOUT))
                    .map_err(io("read timeout"))?;
                write!(
                    s,
                    "GET /big.bin HTTP/1.0\r\nHost: {vip}\r\nConnection: close\r\n\r\n"
                )
                .map_err(io("request"))?;
                let mut buf = vec![0u8; 1 << 20];
                s.read_exact(&mut buf).map_err(io("first MiB"))?;
                let _ = port_tx.send(port);
                go_rx.recv_timeout(Duration::from_secs(120)).map_err(|e| {
                    Cut::new(
                        ErrorKind::Other,
                        format!("no go from the test within 120 s: {e}"),
                    )
                })?;
                s.read_to_end(&mut buf).map_err(io("after the pause"))?;
                let end = buf
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .ok_or_else(|| Cut::new(ErrorKind::InvalidData, "no end of headers".into()))?;
                Ok(buf[end + 4..].to_vec())
            })
            .map_err(|e| Cut::new(ErrorKind::Other, e.to_string()))?
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the download's first MiB within 10 s");
        PausedDownload { port, go, done }
    }

    /// Lets it read the rest and waits for its end (each read is bounded by its read timeout;
    /// the whole by twice that).
    fn finish(self) -> Result<Vec<u8>, Cut> {
        let _ = self.go.send(());
        wait::join_within(
            self.done,
            2 * DOWNLOAD_READ_TIMEOUT,
            "the download after its pause",
        )
    }
}

/// Which real (0-based) holds an established connection from the client's `port` on port 80.
fn serving_real(lab: &Lab, port: u16) -> usize {
    // The servers listen on `::`, so IPv4 peers show as `[::ffff:198.18.0.10]:port`.
    let peer = format!("{}]:{port}", lab.client_v4());
    let peer_plain = format!(" {}:{port}", lab.client_v4());
    (0..lab.reals().len())
        .find(|&i| {
            let out = wait::output(lab.command(&lab.reals()[i].ns, "ss").args([
                "-Htn",
                "state",
                "established",
            ]));
            let out = String::from_utf8_lossy(&out.stdout);
            out.contains(&peer) || out.contains(&peer_plain)
        })
        .unwrap_or_else(|| panic!("no real has the download from {peer}"))
}

/// Runs lvs with `quiescent`, starts a download, fails the serving real's check (its
/// `health.html` goes) without stopping its server, checks that new connections avoid it,
/// then finishes the download. Returns the download's outcome, and when the agent had written
/// the real's new weight into the tables.
fn download_across_a_failed_check(lab: &Lab, quiescent: bool) -> (Result<Vec<u8>, Cut>, Instant) {
    for r in lab.reals() {
        std::fs::write(lab.work_dir().join(&r.name).join("health.html"), "ok\n").unwrap();
    }
    let vip = vip4(lab);
    let keys = "checktype = \"negotiate\"\nservice = \"http\"\nrequest = \"/health.html\"";
    let lvs = RunningLvs::start_file(
        lab,
        &format!("quiescent-{quiescent}.toml"),
        &config(
            lab,
            &format!("quiescent = {quiescent}"),
            vip,
            keys,
            &[0, 1, 2],
        ),
    )
    .unwrap();
    wait_all_answer(
        lab,
        &lvs,
        vip,
        &["real1", "real2", "real3"],
        Duration::from_secs(15),
    );

    let download = PausedDownload::start(lab, vip);
    let victim = serving_real(lab, download.port);
    let name = lab.reals()[victim].name.clone();
    std::fs::remove_file(lab.work_dir().join(&name).join("health.html")).unwrap();
    let t0 = Instant::now();
    let down = real_addr(lab, victim, false);
    while transitions(&lvs.log(), down, Some("down")) == 0 {
        assert!(
            t0.elapsed() <= bound(),
            "quiescent={quiescent}: {name} not down within {:?}; lvs log:\n{}",
            bound(),
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The tables written: at weight 0 (quiescent) or out.
    lvs.wait_real_weight(
        down,
        if quiescent { "0" } else { "-" },
        Duration::from_secs(2),
    )
    .unwrap();
    let written = Instant::now();
    let others: Vec<&str> = ["real1", "real2", "real3"]
        .into_iter()
        .filter(|n| *n != name)
        .collect();
    all_from(lab, &lvs, vip, 30, &others);
    let outcome = download.finish();
    assert!(lvs.stop());
    // The next run starts with every real healthy again.
    std::fs::write(lab.work_dir().join(&name).join("health.html"), "ok\n").unwrap();
    (outcome, written)
}

#[test]
fn quiescent_keeps_established_flows_of_a_failed_real_and_removal_cuts_them() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .expect("lab");
    let want = big_file_bytes(lab.big_file_size());

    let (kept, _) = download_across_a_failed_check(&lab, true);
    match &kept {
        Ok(body) => assert!(
            body == &want,
            "quiescent: the download arrived altered ({} bytes of {})",
            body.len(),
            want.len()
        ),
        Err(e) => panic!("quiescent: the download was cut: {e}"),
    }

    // Without quiescent the flow's next packets go to another real, which knows nothing of
    // it and resets it: the client sees a reset soon after the removal (the download resumes
    // within about a second of it), long before its own read timeout.
    let (cut, removed) = download_across_a_failed_check(&lab, false);
    match cut {
        Ok(body) => panic!(
            "without quiescent the failed real's download should have been reset, but {} \
             bytes arrived{}",
            body.len(),
            if body == want { " (all of it)" } else { "" }
        ),
        Err(cut) => {
            let after = cut.at.saturating_duration_since(removed);
            eprintln!("without quiescent: cut {after:?} after the removal: {cut}");
            assert!(
                cut.kind == ErrorKind::ConnectionReset && after <= Duration::from_secs(5),
                "without quiescent the download should end in a reset within 5 s of the \
                 removal; it ended {after:?} after it with {cut} (a read timeout of the \
                 client is {DOWNLOAD_READ_TIMEOUT:?})"
            );
        }
    }
}

/// Runs lvs from `file` with reals 1 and 2, holds a download open from one of them, rewrites
/// the file with real3 added and calls `trigger`; asserts real3 takes new connections within
/// `within`, reals 1 and 2 kept their state (no transition logged) and the download arrives
/// intact (its flow kept its real).
fn reload_adds_real3(
    lab: &Lab,
    file: &str,
    globals: &str,
    within: Duration,
    trigger: impl FnOnce(&RunningLvs),
    logged: &str,
) {
    let vip = vip4(lab);
    let keys = "checktype = \"connect\"";
    let lvs = RunningLvs::start_file(lab, file, &config(lab, globals, vip, keys, &[0, 1])).unwrap();
    wait_all_answer(lab, &lvs, vip, &["real1", "real2"], Duration::from_secs(15));
    all_from(lab, &lvs, vip, 20, &["real1", "real2"]);
    let before: Vec<usize> = (0..2)
        .map(|i| transitions(&lvs.log(), real_addr(lab, i, false), None))
        .collect();
    let download = PausedDownload::start(lab, vip);

    std::fs::write(&lvs.config, config(lab, globals, vip, keys, &[0, 1, 2])).unwrap();
    trigger(&lvs);
    wait_all_answer(lab, &lvs, vip, &["real3"], within);
    lvs.wait_log(logged, Duration::from_secs(1)).unwrap();
    let names = all_from(lab, &lvs, vip, 30, &["real1", "real2", "real3"]);
    assert!(
        names.iter().filter(|n| *n == "real3").count() >= 5,
        "{file}: real3 takes its share after the reload: {names:?}"
    );
    let log = lvs.log();
    for (i, b) in before.iter().enumerate() {
        assert_eq!(
            transitions(&log, real_addr(lab, i, false), None),
            *b,
            "{file}: real{} changed state across the reload (its check should be kept):\n{log}",
            i + 1
        );
    }
    match download.finish() {
        Ok(body) => assert!(
            body == big_file_bytes(lab.big_file_size()),
            "{file}: a download across the reload arrived altered ({} bytes)",
            body.len()
        ),
        Err(e) => panic!(
            "{file}: a download across the reload was cut: {e}; lvs log:\n{}",
            lvs.log()
        ),
    }
    assert!(lvs.stop());
}

#[test]
fn a_reload_that_adds_a_real_sends_it_traffic() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .expect("lab");
    // SIGHUP.
    reload_adds_real3(
        &lab,
        "hup.toml",
        "",
        bound(),
        |lvs| lvs.reload(),
        "config reloaded",
    );
    // autoreload: rewriting the file is enough (polled every second, then checked).
    reload_adds_real3(
        &lab,
        "auto.toml",
        "autoreload = true",
        bound() + Duration::from_secs(1),
        |_| {},
        "changed: reloading",
    );
}

#[test]
fn a_broken_reload_changes_nothing() {
    let lab = lab();
    let vip = vip4(&lab);
    let good = config(&lab, "", vip, "checktype = \"connect\"", &[0, 1]);
    let lvs = RunningLvs::start(&lab, &good).unwrap();
    wait_all_answer(
        &lab,
        &lvs,
        vip,
        &["real1", "real2"],
        Duration::from_secs(15),
    );

    // An unknown key, and then a syntax error, each with real3 added: neither may take effect.
    let with_real3 = config(&lab, "", vip, "checktype = \"connect\"", &[0, 1, 2]);
    let unknown = format!("{with_real3}bogus_key = 1\n");
    let unknown_line = unknown.lines().count();
    let syntax = format!("{with_real3}weight = = 2\n");
    let syntax_line = syntax.lines().count();
    let path = lvs.config.display().to_string();
    for (n, (text, line, key)) in [
        (unknown, unknown_line, "bogus_key"),
        (syntax, syntax_line, "weight"),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&lvs.config, &text).unwrap();
        lvs.reload();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lvs.log().matches("reload refused").count() <= n {
            assert!(
                Instant::now() < deadline,
                "no refusal logged for {key}; lvs log:\n{}",
                lvs.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = lvs.log();
        let refusal = log
            .lines()
            .filter(|l| l.contains("reload refused"))
            .nth(n)
            .unwrap();
        assert!(
            refusal.contains(&format!("{path}:{line}")) && refusal.contains(key),
            "the refusal should name {path}:{line} and {key}: {refusal}"
        );
        assert!(
            !log.contains("config reloaded"),
            "a broken config was applied:\n{log}"
        );
        // The agent's state after the refusal, as its tables hold it (a status makes it write
        // what is pending): real3 is not there at all.
        let real3 = format!("  -> {} ", real_addr(&lab, 2, false));
        let table = lvs.status(&[]).unwrap();
        assert!(
            !table.lines().any(|l| l.starts_with(&real3)),
            "a broken config was applied: real3 is in the table:\n{table}"
        );
        let names = all_from(&lab, &lvs, vip, 30, &["real1", "real2"]);
        assert!(
            names.iter().any(|n| n == "real1") && names.iter().any(|n| n == "real2"),
            "both reals still take traffic: {names:?}"
        );
    }
    assert!(lvs.stop());
}

#[test]
fn a_bad_config_at_start_exits_non_zero_and_attaches_nothing() {
    let lab = lab();
    let vip = vip4(&lab);
    let good = config(&lab, "", vip, "checktype = \"connect\"", &[0, 1, 2]);
    // One the TOML reader refuses (unknown key), one the resolver refuses (bad value); each
    // as the file's last line.
    let cases = [
        (
            "unknown-key.toml",
            format!("{good}bogus_key = 1\n"),
            "bogus_key",
        ),
        (
            "bad-value.toml",
            good.replace("scheduler = \"rr\"\n", "")
                + "[[virtual]]\naddress = \"198.18.0.200:80\"\nscheduler = \"bogus\"\n",
            "scheduler",
        ),
    ];
    // Its pins and control socket go where the lab says, never to the host's defaults: a
    // regression that accepted the config would run there until the deadline kills it.
    let bpffs = lab.bpffs().unwrap();
    for (name, text, key) in cases {
        let line = text.lines().count();
        let path = lab.work_dir().join(name);
        std::fs::write(&path, &text).unwrap();
        let control = lab.work_dir().join("run-bad").join(format!("{name}.sock"));
        let out = wait::output_within(
            lab.command(lab.director_ns(), lvs_binary().to_str().unwrap())
                .args(["run", "--config", path.to_str().unwrap(), "--bpffs"])
                .arg(&bpffs)
                .arg("--control")
                .arg(&control)
                .env("RUST_BACKTRACE", "0"),
            Duration::from_secs(10),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: lvs run accepted a bad config: {stderr}"
        );
        let want = format!("{}:{line}", path.display());
        assert!(
            stderr.contains(&format!("{want}: {key}")),
            "{name}: the error should name {want} and {key}: {stderr}"
        );
        let link = wait::succeed(Command::new("ip").args([
            "-n",
            lab.director_ns(),
            "link",
            "show",
            lab.director_ifname(),
        ]));
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(
            link.contains("state UP") || link.contains("LOWER_UP"),
            "{link}"
        );
        assert!(
            !link.contains("xdp"),
            "{name}: something is attached to the director's eth0: {link}"
        );
        assert!(
            !bpffs.join("lvs").exists() && !control.exists(),
            "{name}: lvs made pins or a control socket before refusing its config"
        );
    }
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
