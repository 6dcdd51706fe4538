//! Health checking, fallback and live reconfiguration end to end in the namespace lab: `lvs run`
//! on the director checks the three reals, and the tests break and mend the reals (stop their
//! HTTP servers, change what they serve) and rewrite the config while clients connect through
//! the VIP.
//!
//! Every timing bound is the one an operator is promised: a real that fails its check is out
//! within `checkinterval + checktimeout` (plus 1 s of slack for the lab's scheduling).

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, big_file_bytes, http_get, run_in_netns};
use lvs_tests::agent::{RunningLvs, connect_small_rcvbuf, lvs_binary};

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
/// and the reals numbered (0-based) in `reals`, weight 1 each.
fn config(
    lab: &Lab,
    globals: &str,
    vip: SocketAddr,
    virtual_keys: &str,
    reals: &[usize],
) -> String {
    let v6 = vip.is_ipv6();
    let mut c = format!(
        "checkinterval = {INTERVAL}\nchecktimeout = {TIMEOUT}\nnegotiatetimeout = {TIMEOUT}\n\
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
    let t0 = Instant::now();
    break_it();
    let mut last_bad = None;
    let mut seen = Vec::new();
    while t0.elapsed() < bound {
        let at = t0.elapsed();
        let answer = ask(lab, vip);
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

/// Starts a sorry server on the director, on every address (so on the VIP), serving "sorry".
fn start_sorry_server(lab: &Lab) {
    let root = lab.work_dir().join("sorry");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "sorry\n").unwrap();
    lab.spawn(
        lab.director_ns(),
        "python3",
        [
            "-m",
            "http.server",
            "80",
            "--bind",
            "::",
            "--directory",
            root.to_str().unwrap(),
        ],
    )
    .unwrap();
    // Ready when it answers on the director's own address.
    let own = SocketAddr::new(lab.director_v4().into(), 80);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(lab.director_ns(), own, "/index.html").is_err() {
        assert!(Instant::now() < deadline, "the sorry server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn with_every_real_down_the_fallback_answers_until_one_recovers() {
    let lab = lab();
    start_sorry_server(&lab);
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

/// A download of `big.bin` through `vip` that reads its first MiB, reports its client port,
/// then waits for a go before reading the rest. Returns the body, or the error that cut it.
struct PausedDownload {
    port: u16,
    go: mpsc::Sender<()>,
    done: std::thread::JoinHandle<Result<Vec<u8>, String>>,
}

impl PausedDownload {
    fn start(lab: &Lab, vip: SocketAddr) -> PausedDownload {
        let ns = lab.client_ns().to_string();
        let (port_tx, port_rx) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let done = std::thread::spawn(move || {
            run_in_netns(&ns, move || -> Result<Vec<u8>, String> {
                let mut s = connect_small_rcvbuf(vip).map_err(|e| format!("connect: {e}"))?;
                let port = s.local_addr().map_err(|e| e.to_string())?.port();
                s.set_read_timeout(Some(Duration::from_secs(20)))
                    .map_err(|e| e.to_string())?;
                write!(
                    s,
                    "GET /big.bin HTTP/1.0\r\nHost: {vip}\r\nConnection: close\r\n\r\n"
                )
                .map_err(|e| format!("request: {e}"))?;
                let mut buf = vec![0u8; 1 << 20];
                s.read_exact(&mut buf)
                    .map_err(|e| format!("first MiB: {e}"))?;
                let _ = port_tx.send(port);
                go_rx.recv().map_err(|_| "no go".to_string())?;
                s.read_to_end(&mut buf)
                    .map_err(|e| format!("after the pause: {e}"))?;
                let end = buf
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .ok_or("no end of headers")?;
                Ok(buf[end + 4..].to_vec())
            })
            .map_err(|e| e.to_string())?
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the download's first MiB");
        PausedDownload { port, go, done }
    }

    fn finish(self) -> Result<Vec<u8>, String> {
        let _ = self.go.send(());
        self.done.join().expect("download thread")
    }
}

/// Which real (0-based) holds an established connection from the client's `port` on port 80.
fn serving_real(lab: &Lab, port: u16) -> usize {
    // The servers listen on `::`, so IPv4 peers show as `[::ffff:198.18.0.10]:port`.
    let peer = format!("{}]:{port}", lab.client_v4());
    let peer_plain = format!(" {}:{port}", lab.client_v4());
    (0..lab.reals().len())
        .find(|&i| {
            let out = lab
                .command(&lab.reals()[i].ns, "ss")
                .args(["-Htn", "state", "established"])
                .output()
                .expect("ss");
            let out = String::from_utf8_lossy(&out.stdout);
            out.contains(&peer) || out.contains(&peer_plain)
        })
        .unwrap_or_else(|| panic!("no real has the download from {peer}"))
}

/// Runs lvs with `quiescent`, starts a download, fails the serving real's check (its
/// `health.html` goes) without stopping its server, checks that new connections avoid it,
/// then finishes the download. Returns the download's outcome.
fn download_across_a_failed_check(lab: &Lab, quiescent: bool) -> Result<Vec<u8>, String> {
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
    // Give the agent a moment to write the tables after logging.
    std::thread::sleep(Duration::from_millis(200));
    let others: Vec<&str> = ["real1", "real2", "real3"]
        .into_iter()
        .filter(|n| *n != name)
        .collect();
    all_from(lab, &lvs, vip, 30, &others);
    let outcome = download.finish();
    assert!(lvs.stop());
    // The next run starts with every real healthy again.
    std::fs::write(lab.work_dir().join(&name).join("health.html"), "ok\n").unwrap();
    outcome
}

#[test]
fn quiescent_keeps_established_flows_of_a_failed_real_and_removal_cuts_them() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .expect("lab");
    let want = big_file_bytes(lab.big_file_size());

    let kept = download_across_a_failed_check(&lab, true);
    match &kept {
        Ok(body) => assert!(
            body == &want,
            "quiescent: the download arrived altered ({} bytes of {})",
            body.len(),
            want.len()
        ),
        Err(e) => panic!("quiescent: the download was cut: {e}"),
    }

    let cut = download_across_a_failed_check(&lab, false);
    eprintln!(
        "without quiescent: {}",
        match &cut {
            Ok(body) => format!("{} bytes arrived", body.len()),
            Err(e) => format!("cut: {e}"),
        }
    );
    assert!(
        !cut.as_ref().is_ok_and(|body| body == &want),
        "without quiescent the failed real's download should have been cut off, \
         but it arrived intact"
    );
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
        // Give a wrongly applied config the time to show.
        std::thread::sleep(bound());
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
    for (name, text, key) in cases {
        let line = text.lines().count();
        let path = lab.work_dir().join(name);
        std::fs::write(&path, &text).unwrap();
        let out = lab
            .command(lab.director_ns(), lvs_binary().to_str().unwrap())
            .args(["run", "--config", path.to_str().unwrap()])
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running lvs");
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
        let link = Command::new("ip")
            .args([
                "-n",
                lab.director_ns(),
                "link",
                "show",
                lab.director_ifname(),
            ])
            .output()
            .expect("ip link show");
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(
            link.contains("state UP") || link.contains("LOWER_UP"),
            "{link}"
        );
        assert!(
            !link.contains("xdp"),
            "{name}: something is attached to the director's eth0: {link}"
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
    let status = std::process::Command::new("ip")
        .args(["-n", &lab.reals()[0].ns, "addr", "add"])
        .arg(format!("{}/24", ghost.ip()))
        .args(["dev", "eth0"])
        .status()
        .unwrap();
    assert!(status.success());
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
