//! `cargo xtask test`: every test binary of the workspace run under a deadline.
//!
//! `cargo test` waits for a test binary however long it runs, so one test that waits forever
//! holds a CI run until CI's own limit. Here cargo only builds the tests (`--no-run`, its JSON
//! messages name each binary); each binary then runs as `cargo test` would run it (its
//! package's directory as working directory, `CARGO_MANIFEST_DIR` set, the same arguments),
//! in a process group of its own, with its output passed through. A binary still running at
//! its deadline is killed with its whole process group, reported as failed with the tests it
//! had not finished (the `--list` of the binary less the results it printed), and what its
//! labs left behind is removed (`lvs-lab-cleanup`). The doc tests run the same way, through
//! `cargo test --doc`.
//!
//! Deadlines: `LVS_TEST_TIMEOUT` seconds per binary (default 300: the slowest binary, the
//! health lab, takes about a minute), and `LVS_SUITE_TIMEOUT` seconds for the whole run
//! (default 3000, well inside CI's 90 minutes); a binary gets what is left of the latter when
//! that is less.
//!
//! The run ends with one line per binary (result and time) and `summary: N passed, N failed,
//! N skipped`.

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Per-binary deadline unless `LVS_TEST_TIMEOUT` says otherwise.
const BINARY_TIMEOUT: Duration = Duration::from_secs(300);
/// Whole-run deadline unless `LVS_SUITE_TIMEOUT` says otherwise.
const SUITE_TIMEOUT: Duration = Duration::from_secs(3000);
/// How long the output of a finished binary may stay open (held by something it started).
const OUTPUT_GRACE: Duration = Duration::from_secs(10);
/// The tests crate's tool that removes what killed labs left behind.
const LAB_CLEANUP: &str = "lvs-lab-cleanup";

/// A test binary cargo built.
#[derive(Debug)]
struct TestBinary {
    /// `package kind name`, as cargo's `Running` line shows it.
    label: String,
    executable: PathBuf,
    package_dir: PathBuf,
}

/// What one binary's run came to.
#[derive(Debug, Default)]
struct Outcome {
    passed: u64,
    failed: u64,
    ignored: u64,
    /// The binary printed its `test result:` line(s).
    completed: bool,
    /// Tests whose result it printed.
    finished: BTreeSet<String>,
    /// Tests it had not finished when killed.
    unfinished: Vec<String>,
    timed_out: bool,
    exit_ok: bool,
    elapsed: Duration,
}

/// Builds the tests and runs every binary under its deadline; `args` go to each binary.
pub fn run_all(root: &Path, args: &[String]) -> Result<()> {
    let per_binary = timeout_from_env("LVS_TEST_TIMEOUT", BINARY_TIMEOUT)?;
    let suite_deadline = Instant::now() + timeout_from_env("LVS_SUITE_TIMEOUT", SUITE_TIMEOUT)?;
    let (binaries, cleanup) = build(root)?;
    let mut results: Vec<(String, Outcome)> = Vec::new();
    let mut runs: Vec<(String, Command)> = binaries
        .iter()
        .map(|b| {
            let mut cmd = Command::new(&b.executable);
            cmd.args(args)
                .current_dir(&b.package_dir)
                .env("CARGO_MANIFEST_DIR", &b.package_dir);
            (b.label.clone(), cmd)
        })
        .collect();
    let mut doc = Command::new(cargo_bin());
    doc.current_dir(root)
        .args(["test", "--doc", "--workspace", "--exclude", "lvs-ebpf"]);
    if !args.is_empty() {
        doc.arg("--").args(args);
    }
    runs.push(("doc tests".into(), doc));
    let listed: Vec<Option<BTreeSet<String>>> = binaries
        .iter()
        .map(|b| list_tests(b, args))
        .chain([None])
        .collect();
    for ((label, mut cmd), listed) in runs.into_iter().zip(listed) {
        let left = suite_deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("xtask: not run, the whole run's deadline passed: {label}");
            results.push((label, Outcome::default()));
            continue;
        }
        eprintln!("xtask: running {label}");
        let outcome = run_one(&label, &mut cmd, per_binary.min(left), listed.as_ref())?;
        if outcome.timed_out
            && let Some(tool) = &cleanup
        {
            let _ = Command::new(tool).status();
        }
        results.push((label, outcome));
    }
    report(&results)
}

/// Seconds from `var`, else `default`.
fn timeout_from_env(var: &str, default: Duration) -> Result<Duration> {
    match std::env::var(var) {
        Ok(v) => Ok(Duration::from_secs(v.trim().parse().with_context(
            || format!("{var}={v:?}: expected a number of seconds"),
        )?)),
        Err(_) => Ok(default),
    }
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo test --no-run` for the workspace: the test binaries, and the lab clean-up tool.
fn build(root: &Path) -> Result<(Vec<TestBinary>, Option<PathBuf>)> {
    let out = Command::new(cargo_bin())
        .current_dir(root)
        .args([
            "test",
            "--workspace",
            "--exclude",
            "lvs-ebpf",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed: {}", out.status);
    }
    let mut binaries = Vec::new();
    let mut cleanup = None;
    for line in out.stdout.split(|&b| b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(executable) = msg["executable"].as_str() else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or("?");
        if msg["profile"]["test"] != true {
            if name == LAB_CLEANUP {
                cleanup = Some(PathBuf::from(executable));
            }
            continue;
        }
        let manifest = Path::new(msg["manifest_path"].as_str().unwrap_or("."));
        let package_dir = manifest.parent().unwrap_or(root).to_path_buf();
        let package = package_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = msg["target"]["kind"][0].as_str().unwrap_or("?");
        binaries.push(TestBinary {
            label: format!("{package} {kind} {name}"),
            executable: executable.into(),
            package_dir,
        });
    }
    // Unit tests of each package first, then its binaries and integration tests, as cargo.
    binaries.sort_by(|a, b| {
        a.package_dir
            .cmp(&b.package_dir)
            .then(a.label.cmp(&b.label))
    });
    Ok((binaries, cleanup))
}

/// The names of the tests `args` select in `b`, if it can list them.
fn list_tests(b: &TestBinary, args: &[String]) -> Option<BTreeSet<String>> {
    let out = Command::new(&b.executable)
        .args(args)
        .args(["--list", "--format", "terse"])
        .current_dir(&b.package_dir)
        .env("CARGO_MANIFEST_DIR", &b.package_dir)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_string)
            .collect()
    })
}

/// Runs `cmd` until it exits or `timeout` passes, passing its output through.
fn run_one(
    label: &str,
    cmd: &mut Command,
    timeout: Duration,
    listed: Option<&BTreeSet<String>>,
) -> Result<Outcome> {
    let start = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {label}"))?;
    let stdout = child.stdout.take().context("the test's output")?;
    let (tx, rx) = mpsc::channel::<Outcome>();
    std::thread::spawn(move || {
        let _ = tx.send(read_output(stdout));
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            kill_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut outcome = rx.recv_timeout(OUTPUT_GRACE).unwrap_or_else(|_| {
        eprintln!("xtask: {label}: something it started still holds its output; not waiting");
        Outcome::default()
    });
    outcome.elapsed = start.elapsed();
    outcome.timed_out = timed_out;
    outcome.exit_ok = status.is_some_and(|s| s.success());
    if timed_out {
        if let Some(listed) = listed {
            outcome.unfinished = listed
                .iter()
                .filter(|t| !outcome.finished.contains(*t))
                .cloned()
                .collect();
        }
        eprintln!(
            "xtask: {label} still running after {timeout:?}: killed. Not finished: {}",
            if outcome.unfinished.is_empty() {
                "(not known)".to_string()
            } else {
                outcome.unfinished.join(", ")
            }
        );
    }
    Ok(outcome)
}

/// Passes a test binary's output through and counts its results.
fn read_output(stdout: std::process::ChildStdout) -> Outcome {
    let mut outcome = Outcome::default();
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(out, "{line}");
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, result)) = rest.split_once(" ... ")
            && !result.trim().is_empty()
        {
            outcome.finished.insert(name.to_string());
        }
        if let Some(counts) = line.strip_prefix("test result: ") {
            outcome.completed = true;
            for part in counts.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next())
                    && let Ok(n) = n.parse::<u64>()
                {
                    match what {
                        "passed" => outcome.passed += n,
                        "failed" => outcome.failed += n,
                        "ignored" => outcome.ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let _ = out.flush();
    outcome
}

/// SIGKILL to the child's whole process group, then reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) of the process group this child leads (spawned with process_group(0)).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// Prints one line per binary and the summary; an error if anything failed.
fn report(results: &[(String, Outcome)]) -> Result<()> {
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let mut bad = Vec::new();
    println!("\nxtask: test binaries");
    for (label, o) in results {
        let verdict = if o.timed_out {
            format!(
                "KILLED at its deadline, after {:.0?}; not finished: {}",
                o.elapsed,
                if o.unfinished.is_empty() {
                    "(not known)".to_string()
                } else {
                    o.unfinished.join(", ")
                }
            )
        } else if !o.completed && o.elapsed.is_zero() {
            "NOT RUN (the run's deadline passed)".to_string()
        } else if !o.exit_ok || o.failed > 0 || !o.completed {
            format!("FAILED in {:.1?}", o.elapsed)
        } else {
            format!("ok in {:.1?}", o.elapsed)
        };
        println!(
            "  {label}: {verdict} ({} passed, {} failed, {} ignored)",
            o.passed, o.failed, o.ignored
        );
        passed += o.passed;
        ignored += o.ignored;
        // A binary that died or was killed counts its unfinished tests, at least one, as failed.
        let lost = if o.timed_out || !o.completed || (!o.exit_ok && o.failed == 0) {
            (o.unfinished.len() as u64).max(1)
        } else {
            0
        };
        failed += o.failed + lost;
        if o.failed + lost > 0 {
            bad.push(label.as_str());
        }
    }
    println!("summary: {passed} passed, {failed} failed, {ignored} skipped");
    if !bad.is_empty() {
        bail!("failed: {}", bad.join("; "));
    }
    Ok(())
}
