//! Live reconfiguration: a reload that adds a real sends it traffic (flows and states kept),
//! a broken reload changes nothing, a bad config at start exits non-zero attaching nothing.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, big_file_bytes};
use lvs_tests::{
    agent::{RunningLvs, lvs_binary},
    wait,
};

use super::common::*;
use super::download::*;

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
