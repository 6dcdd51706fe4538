//! Engine tests: everything on loopback, every server bounded by the test.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use tokio::net::TcpListener;

use super::*;
use std::net::SocketAddr;

use crate::config::model::{
    CheckService, CheckSource, CheckSpec, CheckType, Forwarding, HttpMethod, Location, Protocol,
    Scheduler,
};

pub(super) fn spec(check_type: CheckType) -> CheckSpec {
    CheckSpec {
        check_type,
        service: CheckService::None,
        port: None,
        request: None,
        receive: None,
        http_method: HttpMethod::Get,
        virtual_host: None,
        verify_tls: false,
        command: None,
        command_style: crate::config::CommandStyle::Ldirectord,
        dynamic_weight: false,
        login: None,
        passwd: None,
        database: None,
        secret: None,
        dns_type: None,
        digest: None,
        status_codes: Default::default(),
        follow_redirects: true,
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(1),
        negotiate_timeout: Duration::from_secs(1),
        failure_count: 1,
        success_count: 1,
        retry_interval: None,
        track_weight: 0,
        track_reverse: false,
        address: None,
        source: CheckSource::default(),
    }
}

pub(super) fn real(addr: SocketAddr) -> RealServer {
    RealServer {
        location: Location {
            file: "test.cf".into(),
            line: 1,
        },
        addr,
        weight: 1,
        forwarding: Forwarding::Gate,
        request: None,
        receive: None,
        digest: None,
        check_command: None,
        check_address: None,
        check_source: CheckSource::default(),
        notify_up: None,
        notify_down: None,
        thresholds: Default::default(),
    }
}

pub(super) fn virtual_service(
    vip: &str,
    check: CheckSpec,
    reals: Vec<RealServer>,
) -> VirtualService {
    VirtualService {
        one_packet: false,
        location: Location {
            file: "test.cf".into(),
            line: 1,
        },
        name: None,
        comment: None,
        vip: vip.parse().unwrap(),
        protocol: Protocol::Tcp,
        fwmark: None,
        scheduler: Scheduler::Wrr,
        persistent: None,
        netmask_prefix: 32,
        reals,
        fallback: None,
        fallback_command: None,
        quiescent: false,
        check,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        also_checks: Vec::new(),
    }
}

/// A listener counting accepted connections; closes each at once.
async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, count, task)
}

async fn next_event(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
    within(5, "the next health event", rx.recv())
        .await
        .expect("the engine is running")
}

/// Awaits `fut` for at most `secs` seconds: a longer wait fails the test, naming `what` it
/// waited for. Every wait of the health tests goes through it (or through
/// [`wait_until`]), so that no test can hang.
pub(super) async fn within<T>(
    secs: u64,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("waited {secs} s for {what}"),
    }
}

/// Polls `cond` every 10 ms until it holds; fails the test after `secs` seconds, naming
/// `what` it waited for.
pub(super) async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    within(secs, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Whether the tests can use IPv6 loopback (`::1`). A test needing it calls this first and
/// returns when it is false. Without IPv6 the test fails, unless `LVS_TEST_ALLOW_SKIP` is set
/// in the environment: then a `SKIPPED` line naming the test is written straight to the
/// process's stderr (not captured by the test harness, so it shows in the run's output) and
/// the test passes.
pub(super) fn ipv6_loopback(test: &str) -> bool {
    let err = match std::net::UdpSocket::bind("[::1]:0") {
        Ok(_) => return true,
        Err(e) => e,
    };
    if std::env::var_os("LVS_TEST_ALLOW_SKIP").is_some() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no IPv6 loopback ({err}); LVS_TEST_ALLOW_SKIP is set"
        );
        false
    } else {
        panic!(
            "{test} needs IPv6 on loopback (binding [::1] failed: {err}); set \
             LVS_TEST_ALLOW_SKIP=1 to skip it"
        );
    }
}

#[tokio::test]
async fn same_check_of_two_virtuals_runs_once() {
    let (addr, count, server) = counting_listener().await;
    let mut a = spec(CheckType::Connect);
    a.request = Some("/ignored-by-connect".into());
    let b = spec(CheckType::Connect);
    let va = virtual_service("192.0.2.1:80", a, vec![real(addr)]);
    let vb = virtual_service("192.0.2.2:8080", b, vec![real(addr)]);
    let ta = TargetSpec::from_config(&va, &va.reals[0]);
    let tb = TargetSpec::from_config(&vb, &vb.reals[0]);
    assert_eq!(ta, tb, "connect checks ignore the virtual and the request");

    let (health, mut rx) = HealthChecker::default().spawn();
    let done = health.set_targets(vec![ta.clone(), tb]);
    assert_eq!(
        done,
        Reconciled {
            added: 1,
            removed: 0,
            kept: 0
        }
    );
    assert_eq!(health.len(), 1);
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.key, ta.key);
    assert_eq!(ev.state, HardState::Up);
    assert_eq!(ev.previous, None);
    assert!(ev.is_transition());
    wait_until(
        5,
        "the server to accept the first check's connection",
        || count.load(Ordering::SeqCst) >= 1,
    )
    .await;
    // A second worker for the key would make its own first check up to a second (the first
    // check's jitter, plus one tick) after the first one's: wait well past that spread.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        rx.try_recv().is_err(),
        "a second check of the shared key reported its own first result"
    );
    assert_eq!(
        health.status(&ta.key).unwrap().checks,
        1,
        "one check (the interval is an hour)"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "one connection for both virtuals"
    );
    server.abort();
}

#[tokio::test]
async fn set_targets_keeps_unchanged_targets() {
    let (addr_a, count_a, server_a) = counting_listener().await;
    let (addr_b, count_b, server_b) = counting_listener().await;
    let v = virtual_service(
        "192.0.2.1:80",
        spec(CheckType::Connect),
        vec![real(addr_a), real(addr_b)],
    );
    let ta = TargetSpec::from_config(&v, &v.reals[0]);
    let tb = TargetSpec::from_config(&v, &v.reals[1]);
    let (health, mut rx) = HealthChecker::default().spawn();

    health.set_targets(vec![ta.clone()]);
    assert_eq!(next_event(&mut rx).await.key, ta.key);
    let before = health.status(&ta.key).unwrap();
    assert_eq!(before.state, Some(HardState::Up));
    assert_eq!(before.checks, 1);

    let done = health.set_targets(vec![ta.clone(), tb.clone()]);
    assert_eq!(
        done,
        Reconciled {
            added: 1,
            removed: 0,
            kept: 1
        }
    );
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.key, tb.key, "only the new target reports");
    let after = health.status(&ta.key).unwrap();
    assert_eq!(
        after, before,
        "the kept target was neither re-checked nor reset"
    );
    // The event comes when the check's connect succeeded: the server's accept loop may not
    // have counted it yet.
    wait_until(
        5,
        "the server of the new target to accept its check",
        || count_b.load(Ordering::SeqCst) == 1,
    )
    .await;
    assert_eq!(count_a.load(Ordering::SeqCst), 1);
    assert_eq!(count_b.load(Ordering::SeqCst), 1);

    let done = health.set_targets(vec![tb.clone()]);
    assert_eq!(
        done,
        Reconciled {
            added: 0,
            removed: 1,
            kept: 1
        }
    );
    assert!(health.status(&ta.key).is_none());
    assert_eq!(health.snapshot().len(), 1);
    health.clear();
    assert!(health.is_empty());
    server_a.abort();
    server_b.abort();
}

#[tokio::test]
async fn soft_and_hard_transitions_through_the_engine() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = spec(CheckType::Connect);
    c.interval = Duration::from_millis(50);
    c.failure_count = 3;
    c.success_count = 2;
    let v = virtual_service("192.0.2.1:80", c, vec![real(addr)]);
    let t = TargetSpec::from_config(&v, &v.reals[0]);
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(vec![t.clone()]);

    // The backlog accepts connects without an accept loop.
    let ev = next_event(&mut rx).await;
    assert_eq!(
        (ev.previous, ev.state, ev.soft_failing),
        (None, HardState::Up, false)
    );

    drop(listener);
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.state, HardState::Up);
    assert!(ev.soft_failing && !ev.is_transition());
    assert!(!ev.result.ok);
    assert!(
        ev.result.message.contains("refused"),
        "{}",
        ev.result.message
    );
    let ev = next_event(&mut rx).await;
    assert_eq!(
        (ev.previous, ev.state),
        (Some(HardState::Up), HardState::Down)
    );
    assert!(!ev.soft_failing);
    let status = health.status(&t.key).unwrap();
    assert!(status.consecutive_failures >= 3);

    let listener = TcpListener::bind(addr).await.unwrap();
    let ev = next_event(&mut rx).await;
    assert_eq!(
        (ev.previous, ev.state),
        (Some(HardState::Down), HardState::Up)
    );
    let status = health.status(&t.key).unwrap();
    assert!(status.consecutive_successes >= 2, "{status:?}");
    drop(listener);
}

#[tokio::test]
async fn maintenance_file_forces_down() {
    let (addr, _count, server) = counting_listener().await;
    let dir = std::env::temp_dir().join(format!("lvs-hc-maint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("127.0.0.1:{}", addr.port()));
    std::fs::write(&file, b"").unwrap();

    let mut c = spec(CheckType::Connect);
    c.interval = Duration::from_millis(50);
    let v = virtual_service("192.0.2.1:80", c, vec![real(addr)]);
    let t = TargetSpec::from_config(&v, &v.reals[0]);
    let (health, mut rx) = HealthChecker {
        maintenance_dir: Some(dir.clone()),
        maintenance_refresh: Duration::from_millis(20),
        ..Default::default()
    }
    .spawn();
    health.set_targets(vec![t]);
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.state, HardState::Down);
    assert_eq!(ev.result.check, "maintenance");
    assert!(health.snapshot()[0].maintenance);

    std::fs::remove_file(&file).unwrap();
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.state, HardState::Up);
    assert_eq!(ev.result.check, "connect");
    std::fs::remove_dir_all(&dir).unwrap();
    server.abort();
}

#[tokio::test]
async fn on_and_off() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let v_on = virtual_service("192.0.2.1:80", spec(CheckType::On), vec![real(addr)]);
    let v_off = virtual_service("192.0.2.2:80", spec(CheckType::Off), vec![real(addr)]);
    let on = TargetSpec::from_config(&v_on, &v_on.reals[0]);
    let mut off = TargetSpec::from_config(&v_off, &v_off.reals[0]);
    off.initial = Some(HardState::Up);
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(vec![on.clone(), off.clone()]);
    let mut got = [next_event(&mut rx).await, next_event(&mut rx).await];
    got.sort_by_key(|e| e.state == HardState::Down);
    assert_eq!((got[0].key.clone(), got[0].state), (on.key, HardState::Up));
    assert_eq!(
        (got[1].key.clone(), got[1].state),
        (off.key, HardState::Down)
    );
    assert_eq!(
        got[1].previous,
        Some(HardState::Up),
        "off ignores failurecount"
    );
}

#[tokio::test]
async fn a_silent_real_is_not_connected_to_until_it_resolves() {
    let (addr, count, server) = counting_listener().await;
    let mut check = spec(CheckType::Connect);
    check.interval = Duration::from_millis(100);
    let v = virtual_service("192.0.2.1:80", check, vec![real(addr)]);
    let v_on = virtual_service("192.0.2.2:80", spec(CheckType::On), vec![real(addr)]);
    let connect = TargetSpec::from_config(&v, &v.reals[0]);
    let on = TargetSpec::from_config(&v_on, &v_on.reals[0]);
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_silent(addr.ip(), true);
    health.set_targets(vec![connect.clone(), on.clone()]);
    let mut got = [next_event(&mut rx).await, next_event(&mut rx).await];
    got.sort_by_key(|e| e.state == HardState::Down);
    // checktype on sends nothing: a silent real is up for it.
    assert_eq!((got[0].key.clone(), got[0].state), (on.key, HardState::Up));
    let down = &got[1];
    assert_eq!(
        (down.key.clone(), down.state),
        (connect.key.clone(), HardState::Down)
    );
    assert_eq!(down.result.check, "resolve");
    assert!(
        down.result.message.contains("ARP/ND"),
        "{}",
        down.result.message
    );
    wait_until(5, "three checks of the silent real", || {
        health.status(&connect.key).unwrap().checks >= 3
    })
    .await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "no connection to a silent real"
    );

    health.set_silent(addr.ip(), false);
    let up = next_event(&mut rx).await;
    assert_eq!((up.key, up.state), (connect.key, HardState::Up));
    assert!(count.load(Ordering::SeqCst) >= 1);
    server.abort();
}

#[tokio::test]
async fn http_negotiate_through_the_engine() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut b = [0u8; 1024];
            // Bounded: a client that never sends must not stop the server.
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await;
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy"),
            )
            .await;
        }
    });
    let mut c = spec(CheckType::Negotiate);
    c.service = CheckService::Http;
    c.request = Some("status".into());
    c.receive = Some("healthy".into());
    let mut r = real(addr);
    let v = virtual_service("192.0.2.1:80", c.clone(), vec![r.clone()]);
    r.receive = Some("sick".into());
    let v2 = virtual_service("192.0.2.1:80", c, vec![r]);
    let good = TargetSpec::from_config(&v, &v.reals[0]);
    let bad = TargetSpec::from_config(&v2, &v2.reals[0]);
    assert_ne!(
        good.key, bad.key,
        "the per-real receive makes another check"
    );
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(vec![good.clone(), bad.clone()]);
    for _ in 0..2 {
        let ev = next_event(&mut rx).await;
        assert_eq!(ev.result.check, "negotiate");
        if ev.key == good.key {
            assert_eq!(ev.state, HardState::Up, "{}", ev.result.message);
            assert_eq!(ev.result.message, "200 OK");
        } else {
            assert_eq!(ev.state, HardState::Down);
            assert!(
                ev.result.message.contains("does not match"),
                "{}",
                ev.result.message
            );
        }
    }
    server.abort();
}

#[tokio::test]
async fn ping_targets_share_the_pinger() {
    let mut c = spec(CheckType::Ping);
    c.interval = Duration::from_millis(100);
    let v = virtual_service(
        "192.0.2.1:80",
        c,
        vec![
            real("127.0.0.1:80".parse().unwrap()),
            real("127.0.0.2:80".parse().unwrap()),
        ],
    );
    let (health, mut rx) = HealthChecker::default().spawn();
    let targets = targets_for_service(&v);
    assert_ne!(targets[0].key, targets[1].key, "two targets");
    health.set_targets(targets);
    for _ in 0..2 {
        let ev = next_event(&mut rx).await;
        assert_eq!(ev.state, HardState::Up, "{}", ev.result.message);
        assert_eq!(ev.result.check, "ping");
    }
    // Keep pinging for a few rounds: no event means they stay up.
    wait_until(10, "three pings of each target", || {
        health.snapshot().iter().all(|s| s.checks >= 3)
    })
    .await;
    assert!(rx.try_recv().is_err());
    assert!(
        health
            .snapshot()
            .iter()
            .all(|s| s.consecutive_failures == 0)
    );
    // The sharing itself: each target's probe holds the engine's pinger, and the pings went
    // through its one IPv4 socket (a pinger of their own would leave it unopened).
    let pinger = &health.inner.pinger;
    assert_eq!(
        Arc::strong_count(pinger),
        3,
        "the engine and both ping targets hold the one pinger"
    );
    assert_eq!(
        pinger.open_families(),
        (true, false),
        "the shared pinger opened its IPv4 socket, and only that"
    );
}

fn targets_for_service(v: &VirtualService) -> Vec<TargetSpec> {
    v.reals
        .iter()
        .map(|r| TargetSpec::from_config(v, r))
        .collect()
}

#[tokio::test]
async fn bad_regex_target_reports_down() {
    let mut c = spec(CheckType::Negotiate);
    c.service = CheckService::Http;
    c.receive = Some("(unclosed".into());
    let v = virtual_service(
        "192.0.2.1:80",
        c,
        vec![real("127.0.0.1:9".parse().unwrap())],
    );
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(vec![TargetSpec::from_config(&v, &v.reals[0])]);
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.state, HardState::Down);
    assert_eq!(ev.result.check, "invalid");
    assert!(
        ev.result.message.contains("(unclosed"),
        "{}",
        ev.result.message
    );
}

#[test]
fn targets_for_maps_every_real() {
    let r1 = real("10.0.0.1:80".parse().unwrap());
    let r2 = real("10.0.0.2:80".parse().unwrap());
    let config = Config {
        source: "test.cf".into(),
        globals: Default::default(),
        virtuals: vec![
            virtual_service(
                "192.0.2.1:80",
                spec(CheckType::Connect),
                vec![r1.clone(), r2],
            ),
            virtual_service("192.0.2.2:80", spec(CheckType::Connect), vec![r1]),
        ],
        warnings: Vec::new(),
        resolved: Vec::new(),
    };
    let t = targets_for(&config);
    let pos: Vec<_> = t.iter().map(|c| (c.virtual_index, c.real_index)).collect();
    assert_eq!(pos, vec![(0, 0), (0, 1), (1, 0)]);
    assert_eq!(
        t[0].spec.key, t[2].spec.key,
        "the same real and check in two virtuals"
    );
    assert_ne!(t[0].spec.key, t[1].spec.key);
}

/// keepalived's misc_dynamic through the engine: a new weight is an event while the real
/// stays up; exit 1 takes it down.
#[tokio::test]
async fn dynamic_weight_is_news_without_a_transition() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::testdir::TestDir::new("hc-dynamic");
    let code = dir.join("code");
    let script = dir.join("check.sh");
    std::fs::write(&code, "5").unwrap();
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexit $(cat {})\n", code.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = spec(CheckType::External);
    c.command = Some(script.to_str().unwrap().into());
    c.dynamic_weight = true;
    c.interval = Duration::from_millis(50);
    let v = virtual_service(
        "192.0.2.1:80",
        c,
        vec![real("127.0.0.1:80".parse().unwrap())],
    );
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(vec![TargetSpec::from_config(&v, &v.reals[0])]);
    let ev = next_event(&mut rx).await;
    assert_eq!((ev.state, ev.result.weight), (HardState::Up, Some(3)));
    std::fs::write(&code, "2").unwrap();
    let ev = next_event(&mut rx).await;
    assert!(!ev.is_transition(), "{ev:?}");
    assert_eq!((ev.state, ev.result.weight), (HardState::Up, Some(0)));
    std::fs::write(&code, "1").unwrap();
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.state, HardState::Down, "{ev:?}");
}

#[test]
fn key_ports_and_external_arguments() {
    let mut c = spec(CheckType::External);
    c.command = Some("/bin/true".into());
    let v = virtual_service(
        "192.0.2.1:443",
        c,
        vec![real("10.0.0.1:0".parse().unwrap())],
    );
    let k = CheckKey::from_config(&v, &v.reals[0]);
    assert_eq!(
        k.real,
        "10.0.0.1:443".parse().unwrap(),
        "port 0 means the service's"
    );
    assert_eq!(k.virtual_addr, Some(v.vip));

    let mut c = spec(CheckType::Negotiate);
    c.service = CheckService::Http;
    let v = virtual_service(
        "192.0.2.1:0",
        c.clone(),
        vec![real("10.0.0.1:0".parse().unwrap())],
    );
    assert_eq!(
        CheckKey::from_config(&v, &v.reals[0]).port,
        80,
        "well-known port"
    );
    c.port = Some(8080);
    let v = virtual_service(
        "192.0.2.1:80",
        c,
        vec![real("10.0.0.1:80".parse().unwrap())],
    );
    let k = CheckKey::from_config(&v, &v.reals[0]);
    assert_eq!((k.port, k.virtual_addr), (8080, None));
}

#[test]
fn jitter_stays_within_the_interval() {
    let v = virtual_service(
        "192.0.2.1:80",
        spec(CheckType::Connect),
        vec![real("10.0.0.1:80".parse().unwrap())],
    );
    let k = CheckKey::from_config(&v, &v.reals[0]);
    let interval = Duration::from_secs(1);
    let samples: Vec<_> = (0..50).map(|_| jitter(&k, interval)).collect();
    assert!(samples.iter().all(|j| *j < interval));
    assert!(samples.iter().any(|j| *j != samples[0]), "jitter is random");
}

/// Runs `targets` for 5 s after a 3 s warm-up on a 2-thread runtime; returns
/// (checks per second, user CPU %, system CPU %, targets up) for the whole process.
async fn measure(targets: Vec<TargetSpec>) -> (f64, f64, f64, usize) {
    let (health, mut rx) = HealthChecker {
        event_capacity: 20_000,
        ..Default::default()
    }
    .spawn();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let n = targets.len();
    assert_eq!(health.set_targets(targets).added, n);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = || {
        // SAFETY: an all-zero rusage is valid; getrusage fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
        (t(u.ru_utime), t(u.ru_stime))
    };
    let checks = |h: &HealthHandle| h.snapshot().iter().map(|s| s.checks).sum::<u64>();
    let (u0, s0) = cpu();
    let c0 = checks(&health);
    let wall = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (u1, s1) = cpu();
    let c1 = checks(&health);
    let secs = wall.elapsed().as_secs_f64();
    let up = health
        .snapshot()
        .iter()
        .filter(|s| s.state == Some(HardState::Up))
        .count();
    health.clear();
    drain.abort();
    (
        (c1 - c0) as f64 / secs,
        (u1 - u0).as_secs_f64() / secs * 100.0,
        (s1 - s0).as_secs_f64() / secs * 100.0,
        up,
    )
}

fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 10,000 distinct keys at a 1 s interval (the key varies by its timeout's microseconds).
fn many(check_type: CheckType, addrs: &[SocketAddr]) -> Vec<TargetSpec> {
    (0..10_000u32)
        .map(|n| {
            let mut c = spec(check_type);
            c.interval = Duration::from_secs(1);
            c.timeout = Duration::from_secs(2) + Duration::from_micros(u64::from(n));
            let v = virtual_service(
                "192.0.2.1:80",
                c,
                vec![real(addrs[n as usize % addrs.len()])],
            );
            TargetSpec::from_config(&v, &v.reals[0])
        })
        .collect()
}

/// Scale, engine only: 10,000 `on` targets at 1 s. Run with `cargo test --release -p
/// lvs-userspace --lib health::tests::scale -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; takes ~10 s"]
fn scale_10k_engine_only() {
    bench_runtime().block_on(async {
        // `on` keys ignore timeouts: distinct reals make the keys distinct.
        let addrs: Vec<SocketAddr> = (1..=10_000u16)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let (rate, user, sys, up) = measure(many(CheckType::On, &addrs)).await;
        println!("on: checks/s {rate:.0}, user {user:.1}% sys {sys:.1}% of one core, {up} up");
        assert_eq!(up, 10_000);
        assert!(user + sys < 25.0);
    });
}

/// Scale, TCP connects: 10,000 connect targets at 1 s against loopback listeners in this
/// process, so the CPU printed includes the listeners' side of every handshake.
#[test]
#[ignore = "benchmark; takes ~10 s"]
fn scale_10k_connect_targets() {
    bench_runtime().block_on(async {
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        for i in 1..=10u8 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket
                .bind((std::net::Ipv4Addr::new(127, 0, 0, i), 0).into())
                .unwrap();
            let listener = socket.listen(4096).unwrap();
            addrs.push(listener.local_addr().unwrap());
            servers.push(tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    drop(s);
                }
            }));
        }
        let (rate, user, sys, up) = measure(many(CheckType::Connect, &addrs)).await;
        println!("connect: checks/s {rate:.0}, user {user:.1}% sys {sys:.1}% of one core, {up} up");
        for s in servers {
            s.abort();
        }
        assert_eq!(up, 10_000);
    });
}

#[test]
fn a_real_is_up_only_when_all_its_checks_are() {
    let v = virtual_service(
        "192.0.2.1:80",
        spec(CheckType::Connect),
        vec![
            real("192.0.2.2:80".parse().unwrap()),
            real("192.0.2.3:80".parse().unwrap()),
        ],
    );
    let keys = vec![
        CheckKey::from_config(&v, &v.reals[0]),
        CheckKey::from_config(&v, &v.reals[1]),
    ];
    let of = |a: Option<HardState>, b: Option<HardState>| {
        real_state(&keys, |k| if *k == keys[0] { a } else { b })
    };
    use HardState::{Down, Up};
    assert_eq!(of(Some(Up), Some(Up)), Some(Up));
    assert_eq!(of(Some(Up), None), None);
    assert_eq!(of(None, Some(Down)), Some(Down));
    assert_eq!(of(Some(Down), Some(Up)), Some(Down));
}
