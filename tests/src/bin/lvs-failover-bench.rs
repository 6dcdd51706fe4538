//! Failover time in the namespace lab: how long after a real's HTTP server stops do new
//! connections through the VIP keep failing, beside the bound an operator is promised,
//! `checkinterval + checktimeout`.
//!
//! For each setting (1 s + 1 s, then 2 s + 2 s) it runs `lvs run` on the director with a
//! connect check, and per trial: sends a new HTTP connection from the client every 20 ms,
//! stops one real's server at a random point of its check period, and records the time from
//! the stop to the last failed request; then restarts the server and waits until it takes
//! traffic again. The first trial starts
//! two intervals after lvs, past the first (jittered, up to twice as long) gap between checks,
//! so every trial measures the steady state. Each trial and the median per setting are
//! printed:
//!
//! ```text
//! interval 1 s, timeout 1 s, trial 1: failover 1.43 s, bound 2.00 s, ratio 0.72
//! ```
//!
//! Needs root, and the `lvs` binary built beside this one (`cargo build --bin lvs`) or named by
//! `$LVS_BIN`. `LVS_FAILOVER_TRIALS` sets the number of trials (default 3). The lab is removed
//! on exit, on error, and on SIGINT/SIGTERM.

use lvs_tests::bench::median;
use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::agent::RunningLvs;

/// Set by SIGINT/SIGTERM: the loops stop and the lab is dropped on the way out.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Time between two new connections.
const PACE: Duration = Duration::from_millis(20);
/// The real whose server is stopped (0-based).
const VICTIM: usize = 2;

/// One new connection through `vip`: the answering real's name, or `None` when it failed.
fn ask(lab: &Lab, vip: SocketAddr) -> Option<String> {
    match http_get(lab.client_ns(), vip, "/index.html") {
        Ok((200, body)) => Some(String::from_utf8_lossy(&body).trim().to_string()),
        _ => None,
    }
}

/// Waits until `name` answers a new connection through `vip`.
fn wait_answers(lab: &Lab, lvs: &RunningLvs, vip: SocketAddr, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        check_stop()?;
        if ask(lab, vip).as_deref() == Some(name) {
            return Ok(());
        }
        std::thread::sleep(PACE);
    }
    bail!(
        "{name} did not answer through {vip}; lvs log:\n{}",
        lvs.log()
    )
}

/// One trial: the time from stopping the victim's server to the last failed request.
fn trial(
    lab: &Lab,
    lvs: &RunningLvs,
    vip: SocketAddr,
    interval: Duration,
    bound: Duration,
) -> Result<Duration> {
    let victim = lab.reals()[VICTIM].name.clone();
    // Every real answers before the stop.
    for r in lab.reals() {
        wait_answers(lab, lvs, vip, &r.name)?;
    }
    // The victim just came back at one of its checks: stop it at a random point of its check
    // period, not always right after a check.
    let phase = random_fraction() * interval.as_secs_f64();
    let wake = Instant::now() + Duration::from_secs_f64(phase);
    while Instant::now() < wake {
        check_stop()?;
        std::thread::sleep(PACE);
    }
    let t0 = Instant::now();
    lab.stop_server(VICTIM)?;
    let mut last_fail: Option<Duration> = None;
    // Watch at least twice the bound, and 2 s past the last failure, at most 30 s.
    loop {
        check_stop()?;
        let at = t0.elapsed();
        let quiet_since = last_fail.unwrap_or_default();
        if at >= bound * 2 && at >= quiet_since + Duration::from_secs(2) {
            break;
        }
        ensure!(
            at < Duration::from_secs(30),
            "requests still fail {at:?} after the stop; lvs log:\n{}",
            lvs.log()
        );
        match ask(lab, vip) {
            Some(name) if name != victim => {}
            _ => last_fail = Some(at),
        }
        std::thread::sleep(PACE);
    }
    lab.start_server(VICTIM)?;
    wait_answers(lab, lvs, vip, &victim)?;
    Ok(last_fail.unwrap_or_default())
}

/// A number in [0, 1) from the standard library's randomly seeded hasher.
fn random_fraction() -> f64 {
    use std::hash::BuildHasher as _;
    let r = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (r >> 11) as f64 / (1u64 << 53) as f64
}

fn config(lab: &Lab, interval: u64, timeout: u64) -> String {
    let mut c = format!(
        "checkinterval = {interval}\nchecktimeout = {timeout}\n\n[[virtual]]\n\
         address = \"{}:80\"\nscheduler = \"rr\"\nchecktype = \"connect\"\n",
        lab.vip_v4()
    );
    for r in lab.reals() {
        c.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}:80\"\n",
            r.addr_v4
        ));
    }
    c
}

fn main() -> ExitCode {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    // The lab lives inside `run` and is removed when it returns, whatever the outcome.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if STOP.load(Ordering::SeqCst) => {
            eprintln!("interrupted; the lab is removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("lvs-failover-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let trials: usize = std::env::var("LVS_FAILOVER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let lab = Lab::create(LabOptions {
        big_file_size: 4096,
        ..LabOptions::default()
    })
    .context("building the lab")?;
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    println!(
        "failover: new connections every {} ms through {vip}, {} stopped; time from the stop \
         to the last failed request",
        PACE.as_millis(),
        lab.reals()[VICTIM].name
    );
    for (interval, timeout) in [(1u64, 1u64), (2, 2)] {
        let bound = Duration::from_secs(interval + timeout);
        let lvs = RunningLvs::start_file(
            &lab,
            &format!("failover-{interval}-{timeout}.toml"),
            &config(&lab, interval, timeout),
        )?;
        // Steady state: the health engine puts each real's second check up to one interval
        // late (it spreads checks over the interval), so the first gap after a start can be
        // almost two intervals. Let every real get past it.
        for _ in 0..2 * interval * 10 {
            check_stop()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut ratios = Vec::new();
        let mut times = Vec::new();
        for n in 1..=trials {
            let t = trial(&lab, &lvs, vip, Duration::from_secs(interval), bound)?.as_secs_f64();
            let ratio = t / bound.as_secs_f64();
            println!(
                "interval {interval} s, timeout {timeout} s, trial {n}: failover {t:.2} s, \
                 bound {:.2} s, ratio {ratio:.2}",
                bound.as_secs_f64()
            );
            times.push(t);
            ratios.push(ratio);
        }
        println!(
            "interval {interval} s, timeout {timeout} s, median of {trials}: failover {:.2} s, \
             bound {:.2} s, ratio {:.2}",
            median(times),
            bound.as_secs_f64(),
            median(ratios)
        );
        ensure!(lvs.stop(), "lvs did not stop on SIGTERM");
    }
    Ok(())
}
