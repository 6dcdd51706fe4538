//! Operating lvs in the namespace lab: `lvs status` over the control socket (the agent in the
//! director's namespace, the client in the root namespace) and the Prometheus endpoint,
//! checked against the traffic actually sent.

use std::{
    collections::HashMap,
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use lvs::{
    agent::snapshot::{ServiceSnapshot, Snapshot},
    lab::{Lab, LabOptions, http_get},
};
use lvs_tests::{
    agent::{RunningLvs, count, lvs_binary, who_answers},
    wait,
};

const METRICS: &str = "127.0.0.1:9100";

fn config() -> String {
    format!(
        r#"
checkinterval = 1
checktimeout = 1
failurecount = 1
metrics = "{METRICS}"

[[virtual]]
address = "198.18.0.100:80"
scheduler = "wrr"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
weight = 3
[[virtual.real]]
address = "198.18.0.12:80"
weight = 2
[[virtual.real]]
address = "198.18.0.13:80"
weight = 1

[[virtual]]
address = "198.18.0.100:8080"
scheduler = "sh"
persistent = 300
checktype = "off"
fallback = "198.18.0.13:8080"
[[virtual.real]]
address = "198.18.0.11:8080"
"#
    )
}

fn lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1 << 20,
        ..LabOptions::default()
    })
    .expect("lab")
}

fn vip(lab: &Lab) -> SocketAddr {
    SocketAddr::new(lab.vip_v4().into(), 80)
}

fn start(lab: &Lab) -> RunningLvs<'_> {
    // Its control socket is in a directory that does not exist yet: the agent creates it.
    let lvs = RunningLvs::start(lab, &config()).unwrap();
    lvs.wait_served(vip(lab), Duration::from_secs(15)).unwrap();
    lvs
}

/// `lvs status ARGS` in the root namespace (20 s at most); its standard output.
fn status(sock: &Path, args: &[&str]) -> String {
    let out = wait::output(
        Command::new(lvs_binary())
            .arg("status")
            .arg("--control")
            .arg(sock)
            .args(args),
    );
    assert!(
        out.status.success(),
        "lvs status {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn snapshot(sock: &Path) -> Snapshot {
    serde_json::from_str(&status(sock, &["--json"])).expect("lvs status --json is a snapshot")
}

fn service(s: &Snapshot) -> &ServiceSnapshot {
    s.services
        .iter()
        .find(|v| v.address == "198.18.0.100:80".parse().unwrap())
        .expect("the service is in the snapshot")
}

/// Polls `lvs status` until `pred` holds on its table, or fails with the last table.
fn wait_table(sock: &Path, within: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        last = status(sock, &[]);
        if pred(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} not seen within {within:?}; last table:\n{last}");
}

/// The table line of a real.
fn real_line<'t>(table: &'t str, real: &str) -> &'t str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("  -> {real} ")))
        .unwrap_or_else(|| panic!("no line for {real} in:\n{table}"))
}

fn reals(lab: &Lab) -> Vec<(String, SocketAddr)> {
    lab.reals()
        .iter()
        .map(|r| (r.name.clone(), SocketAddr::new(r.addr_v4.into(), 80)))
        .collect()
}

/// Waits until the three reals of the port-80 service are in the data plane at their weights
/// (3, 2, 1): up is not enough, each is in the kernel's tables once its MAC is known too, and
/// the checks that follow count connections (and weights) per real.
fn in_data_plane(lvs: &RunningLvs) {
    let reals = [
        ("198.18.0.11:80", 3),
        ("198.18.0.12:80", 2),
        ("198.18.0.13:80", 1),
    ]
    .map(|(r, w)| (r.parse().unwrap(), w));
    lvs.wait_in_data_plane(
        "198.18.0.100:80".parse().unwrap(),
        &reals,
        Duration::from_secs(15),
    )
    .unwrap();
}

fn all_up(t: &str) -> bool {
    ["198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"]
        .iter()
        .all(|r| {
            t.lines()
                .any(|l| l.starts_with(&format!("  -> {r} ")) && l.contains(" up "))
        })
}

#[test]
fn status_lists_the_service_and_counts_connections_per_real() {
    let lab = lab();
    let lvs = start(&lab);
    let sock = lvs.control.clone();

    // Owner-only: the directory is 0700, the socket 0600.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(sock.parent().unwrap()), 0o700);
    assert_eq!(mode(&sock), 0o600);

    in_data_plane(&lvs);
    let table = wait_table(&sock, Duration::from_secs(10), "all three reals up", all_up);
    assert!(
        table.starts_with("IP Virtual Server version lvs-0.1.0 (size=4194304)\n"),
        "{table}"
    );
    assert!(table.contains("\nTCP  198.18.0.100:80 wrr\n"), "{table}");
    for (real, weight) in [
        ("198.18.0.11:80", "3"),
        ("198.18.0.12:80", "2"),
        ("198.18.0.13:80", "1"),
    ] {
        let cols: Vec<&str> = real_line(&table, real).split_whitespace().collect();
        assert_eq!(cols[2], "Route", "{table}");
        assert_eq!(cols[3], weight, "{real}: {table}");
        assert_eq!(cols[6], "up", "{real}: {table}");
    }

    // A persistent service whose only real is down runs on its fallback.
    let table = wait_table(&sock, Duration::from_secs(10), "the fallback active", |t| {
        t.contains("fallback (active)")
    });
    eprintln!("{table}");
    assert!(
        table.contains("\nTCP  198.18.0.100:8080 sh persistent 300\n"),
        "{table}"
    );
    let cols: Vec<&str> = real_line(&table, "198.18.0.13:8080")
        .split_whitespace()
        .collect();
    assert_eq!(cols[3], "1", "the active fallback has weight 1: {table}");
    assert!(
        table.contains(
            "  (no real server is up: new connections go to the fallback 198.18.0.13:8080)"
        ),
        "{table}"
    );
    assert!(real_line(&table, "198.18.0.11:8080").contains(" down "));

    const N: usize = 120;
    let before = snapshot(&sock);
    let names = who_answers(&lab, vip(&lab), N).unwrap();
    let after = snapshot(&sock);
    let (b, a) = (service(&before), service(&after));
    assert_eq!(
        a.counters.connections - b.counters.connections,
        N as u64,
        "service connections grew by the requests sent"
    );
    assert!(a.counters.connections >= N as u64);
    for (name, addr) in reals(&lab) {
        let rb = b.reals.iter().find(|r| r.address == addr).unwrap();
        let ra = a.reals.iter().find(|r| r.address == addr).unwrap();
        let answered = count(&names, &name) as u64;
        assert!(answered > 0, "{name} answered none of {N}");
        assert_eq!(
            ra.counters.connections - rb.counters.connections,
            answered,
            "{name} ({addr}): connections counted vs answered"
        );
        // Each request's connection was closed by the client (its FIN: FIN_WAIT, inactive)
        // or is still closing (ESTABLISHED, active); within timeout_tcpfin it is counted.
        assert!(
            ra.active_connections + ra.inactive_connections >= answered,
            "{name}: {} active and {} inactive connections, {answered} answered",
            ra.active_connections,
            ra.inactive_connections
        );
        assert_eq!(ra.forward, "Route");
        assert!(
            ra.counters.packets >= 3 * answered,
            "{name}: {:?}",
            ra.counters
        );
    }
    assert!(after.agent.map_updates >= 1);
    eprintln!("{}", status(&sock, &[]));

    // --stats: the service's Conns column counts at least the requests sent.
    let stats = status(&sock, &["--stats"]);
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP  198.18.0.100:80 "))
        .unwrap_or_else(|| panic!("no service line in:\n{stats}"));
    let cols: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|c| c.parse().unwrap())
        .collect();
    assert!(cols[0] >= N as u64, "{stats}");
    assert_eq!(cols[2], 0, "OutPkts are 0 in DR: {stats}");
    eprintln!("{stats}");
    let rate = status(&sock, &["--rate"]);
    assert!(rate.contains("CPS"), "{rate}");
    assert!(rate.contains("  -> 198.18.0.11:80 "), "{rate}");

    assert!(lvs.stop());
    assert!(!sock.exists(), "the socket file is removed on exit");
}

#[test]
fn a_stopped_real_shows_down() {
    let lab = lab();
    let lvs = start(&lab);
    let sock = lvs.control.clone();
    wait_table(&sock, Duration::from_secs(10), "all three reals up", all_up);
    lab.stop_server(2).unwrap();
    // checkinterval 1 + checktimeout 1, failurecount 1: down within a few seconds.
    let t = wait_table(&sock, Duration::from_secs(6), "198.18.0.13 down", |t| {
        t.lines()
            .any(|l| l.starts_with("  -> 198.18.0.13:80 ") && l.contains(" down "))
    });
    let line = real_line(&t, "198.18.0.13:80");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[3], "-", "a down real is out of the data plane: {t}");
    assert!(line.contains("connect failed"), "{t}");
    for r in ["198.18.0.11:80", "198.18.0.12:80"] {
        assert!(real_line(&t, r).contains(" up "), "{t}");
    }
    let s = snapshot(&sock);
    let r3 = service(&s)
        .reals
        .iter()
        .find(|r| r.address == "198.18.0.13:80".parse().unwrap())
        .unwrap();
    assert_eq!(r3.health.as_ref().unwrap().state, "down");
    assert_eq!(r3.effective_weight, None);
    assert!(s.agent.check_errors >= 1);
    assert!(lvs.stop());
}

/// Sample values of a scrape: `name{labels}` → value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn scrape(lab: &Lab) -> HashMap<String, f64> {
    let (status, body) = http_get(lab.director_ns(), METRICS, "/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for name in [
        "lvs_service_connections_total",
        "lvs_real_connections_total",
        "lvs_real_up",
        "lvs_drops_total",
        "lvs_map_updates_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{text}");
    }
    parse_metrics(&text)
}

#[test]
fn metrics_match_the_traffic_sent() {
    let lab = lab();
    let lvs = start(&lab);
    in_data_plane(&lvs);
    wait_table(
        &lvs.control,
        Duration::from_secs(10),
        "all three reals up",
        all_up,
    );
    let svc = "service=\"198.18.0.100:80/tcp\"";
    let before = scrape(&lab);
    const N: usize = 90;
    let names = who_answers(&lab, vip(&lab), N).unwrap();
    let after = scrape(&lab);
    let diff = |k: &str| after[k] - before.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        diff(&format!("lvs_service_connections_total{{{svc}}}")),
        N as f64
    );
    for (name, addr) in reals(&lab) {
        let labels = format!("{svc},real=\"{addr}\"");
        assert_eq!(
            diff(&format!("lvs_real_connections_total{{{labels}}}")),
            count(&names, &name) as f64,
            "{name}"
        );
        assert_eq!(after[&format!("lvs_real_up{{{labels}}}")], 1.0, "{name}");
        assert!(after[&format!("lvs_real_check_latency_seconds{{{labels}}}")] < 1.0);
    }
    assert_eq!(
        after[&format!("lvs_real_weight{{{svc},real=\"198.18.0.11:80\"}}")],
        3.0
    );
    // Packets sent while the first checks were still running may have been dropped; none since.
    assert_eq!(diff("lvs_drops_total{reason=\"no_destination\"}"), 0.0);
    assert!(after["lvs_map_updates_total"] >= 1.0);
    assert_eq!(after["lvs_reloads_total"], 0.0);
    // Anything but /metrics is not found.
    let (status, _) = http_get(lab.director_ns(), METRICS, "/").unwrap();
    assert_eq!(status, 404);
    assert!(lvs.stop());
}

/// The agent raises its soft limit of open files to the hard one (a check holds a socket while
/// it runs, thousands at once with thousands of reals; systemd's default soft limit is 1,024).
#[test]
fn the_open_files_limit_is_raised_to_the_hard_one() {
    let lab = lab();
    let lvs = RunningLvs::start_under(
        &lab,
        "lvs.toml",
        &config(),
        &["prlimit", "--nofile=256:4096", "--"],
    )
    .unwrap();
    lvs.wait_served(vip(&lab), Duration::from_secs(15)).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", lvs.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-files limit in:\n{limits}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[3..5], ["4096", "4096"], "{line}");
    assert!(lvs.stop());
}

/// A reload that changes what only a restart applies (`interface=`, `metrics=`) says so in
/// the log, and the agent goes on as it was: attached where it was, metrics where they were,
/// the rest of the reload applied (issue 14: these changes were ignored in silence).
#[test]
fn a_reload_that_changes_interface_or_metrics_says_it_needs_a_restart() {
    let lab = lab();
    let lvs = start(&lab);
    let changed = config()
        .replace(
            &format!("metrics = \"{METRICS}\""),
            "metrics = \"127.0.0.1:9200\"\ninterface = \"lo\"",
        )
        .replace("weight = 3", "weight = 4");
    std::fs::write(&lvs.config, changed).unwrap();
    lvs.reload();
    lvs.wait_log("config reloaded", Duration::from_secs(10))
        .unwrap();
    let log = lvs.log();
    let file = lvs.config.display();
    let needs = "the change needs a restart of lvs and is not applied";
    assert!(
        log.contains(&format!(
            "{file}: metrics = 127.0.0.1:9200, but the metrics listener is on {METRICS}: {needs}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{file}: interface = lo, but the balancer is attached to "
        )),
        "{log}"
    );
    // The metrics stay where they were, the new weight is applied, traffic goes on.
    wait_table(
        &lvs.control,
        Duration::from_secs(10),
        "the new weight",
        |t| real_line(t, "198.18.0.11:80").contains(" 4 "),
    );
    assert_eq!(scrape(&lab)["lvs_reloads_total"], 1.0);
    assert!(http_get(lab.director_ns(), "127.0.0.1:9200", "/metrics").is_err());
    lvs.wait_served(vip(&lab), Duration::from_secs(5)).unwrap();
    assert!(lvs.stop());
}
