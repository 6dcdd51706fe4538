//! What the health lab tests share: the timing bound, the lab, the configs, new connections
//! through the VIP and what answered them, the log's transitions, and the timing of a break.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::agent::RunningLvs;

/// Seconds between checks of one real, in every config here.
pub const INTERVAL: u64 = 1;
/// Check timeout, in every config here.
pub const TIMEOUT: u64 = 1;

/// How long a failed real may keep getting new connections: interval + timeout + 1 s slack.
pub fn bound() -> Duration {
    Duration::from_secs(INTERVAL + TIMEOUT + 1)
}

pub fn lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1 << 20,
        ..LabOptions::default()
    })
    .expect("lab")
}

pub fn vip4(lab: &Lab) -> SocketAddr {
    SocketAddr::new(lab.vip_v4().into(), 80)
}

pub fn vip6(lab: &Lab) -> SocketAddr {
    SocketAddr::new(lab.vip_v6().into(), 80)
}

/// A real's address as the config and the log write it.
pub fn real_addr(lab: &Lab, index: usize, v6: bool) -> SocketAddr {
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
pub fn config(
    lab: &Lab,
    globals: &str,
    vip: SocketAddr,
    virtual_keys: &str,
    reals: &[usize],
) -> String {
    config_timed(lab, (INTERVAL, TIMEOUT), globals, vip, virtual_keys, reals)
}

/// [`config`] with checks every `interval` seconds and a check timeout of `timeout` seconds.
pub fn config_timed(
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
pub fn ask(lab: &Lab, vip: SocketAddr) -> Result<String, String> {
    match http_get(lab.client_ns(), vip, "/index.html") {
        Ok((200, body)) => Ok(String::from_utf8_lossy(&body).trim().to_string()),
        Ok((status, _)) => Err(format!("status {status}")),
        Err(e) => Err(e.to_string()),
    }
}

/// `n` new connections through `vip`; panics (with the log) if any fails or is answered by
/// something outside `allowed`. Returns the answers.
pub fn all_from(
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
pub fn wait_all_answer(
    lab: &Lab,
    lvs: &RunningLvs,
    vip: SocketAddr,
    want: &[&str],
    within: Duration,
) {
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
pub fn transitions(log: &str, real: SocketAddr, state: Option<&str>) -> usize {
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
pub type Answers = Vec<(Duration, Result<String, String>)>;

/// New connections every 20 ms through `vip` from the moment `break_it` ran until `bound`
/// has passed: returns when the last one failed or reached `victim`, relative to the break
/// (`None`: none did).
pub fn last_bad_after(
    lab: &Lab,
    vip: SocketAddr,
    victim: &str,
    bound: Duration,
    break_it: impl FnOnce(),
) -> (Option<Duration>, Answers) {
    last_bad_after_with(|| ask(lab, vip), victim, bound, break_it)
}

/// [`last_bad_after`] with new connections made by `ask`.
pub fn last_bad_after_with(
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
