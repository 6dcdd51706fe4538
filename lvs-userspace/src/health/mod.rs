//! The health-check engine: replaces ldirectord's checking loop.
//!
//! Each distinct check — a [`CheckKey`]: the real, the port checked and every parameter that
//! changes the check — runs as one tokio task on its own schedule, however many virtual
//! services share it. [`HealthChecker::spawn`] starts the engine and returns a
//! [`HealthHandle`], through which the set of targets is reconciled
//! ([`HealthHandle::set_targets`]) and their state read ([`HealthHandle::snapshot`]), and a
//! channel of [`HealthEvent`]s, sent when a target's hard state or soft-failing flag changes.
//!
//! One module per check: [`connect`], [`http`] (http and https), [`simpletcp`], [`dns`],
//! [`ping`], [`external`]; the state machine is in [`state`], `maintenancedir` in
//! [`maintenance`], and reals that do not answer ARP/ND in [`silent`].

pub mod connect;
pub mod connector;
pub mod dns;
pub mod external;
pub mod file;
pub mod ftp;
pub mod http;
mod key;
pub mod ldap;
pub mod mail;
pub mod maintenance;
pub mod ping;
pub mod probe;
pub mod radius;
pub mod silent;
pub mod simpletcp;
pub mod sip;
pub mod source;
pub mod sql;
pub mod state;
pub mod tls;
pub mod udp;
pub mod url;

use std::{
    collections::HashMap,
    hash::BuildHasher,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

pub use key::{CheckKey, real_state};
pub use probe::CheckError;
pub use state::{HardState, StateMachine, Transition};

use crate::config::model::{Config, RealServer, VirtualService};

/// A target to check: its key and the hard state it starts in.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSpec {
    /// What to check.
    pub key: CheckKey,
    /// The starting hard state; `None` (unknown): the first result decides.
    pub initial: Option<HardState>,
}

impl TargetSpec {
    /// The target checking `real` of `vs`, starting unknown.
    pub fn from_config(vs: &VirtualService, real: &RealServer) -> TargetSpec {
        TargetSpec {
            key: CheckKey::from_config(vs, real),
            initial: None,
        }
    }
}

/// A configured real and the target checking it (see [`targets_for`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigTarget {
    /// Index of the virtual service in `Config::virtuals`.
    pub virtual_index: usize,
    /// Index of the real in that service's `reals`.
    pub real_index: usize,
    /// The target; several reals may share its key (one check for all).
    pub spec: TargetSpec,
}

/// Every real of `config` with its target, in file order. Pass the specs to
/// [`HealthHandle::set_targets`] and keep the list to map [`HealthEvent::key`] back to the
/// (virtual, real) pairs it concerns.
pub fn targets_for(config: &Config) -> Vec<ConfigTarget> {
    config
        .virtuals
        .iter()
        .enumerate()
        .flat_map(|(vi, vs)| {
            vs.reals
                .iter()
                .enumerate()
                .map(move |(ri, r)| ConfigTarget {
                    virtual_index: vi,
                    real_index: ri,
                    spec: TargetSpec::from_config(vs, r),
                })
        })
        .collect()
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// Whether it passed.
    pub ok: bool,
    /// Which check ran: "connect", "negotiate", "ping", "external", "on", "off",
    /// "maintenance", "invalid", or "resolve" (the real does not answer ARP/ND, so nothing
    /// was sent: see [`silent`]).
    pub check: &'static str,
    /// What happened (the status line, the error chain...).
    pub message: String,
    /// The weight the check set for the real (keepalived's `misc_dynamic`: exit code minus
    /// 2); `None`: the weight stays as it was.
    pub weight: Option<u32>,
    /// How long it took.
    pub latency: Duration,
    /// When it started.
    pub at: SystemTime,
}

/// A change of a target's state.
///
/// Sent when the hard state changes (including the first decision from unknown), and when
/// a target starts or stops soft-failing without a hard change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthEvent {
    /// The target.
    pub key: CheckKey,
    /// Its hard state now.
    pub state: HardState,
    /// Its hard state before (`None`: unknown). Equal to `state` for soft-failing changes.
    pub previous: Option<HardState>,
    /// Hard up but with failed checks below `failure_count`.
    pub soft_failing: bool,
    /// The check that caused the event.
    pub result: CheckResult,
}

impl HealthEvent {
    /// Whether the hard state changed (what the data plane acts on).
    pub fn is_transition(&self) -> bool {
        self.previous != Some(self.state)
    }
}

/// The current state of a target, for `lvs status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetStatus {
    /// The target.
    pub key: CheckKey,
    /// The hard state; `None` until decided.
    pub state: Option<HardState>,
    /// Hard up with recent failures.
    pub soft_failing: bool,
    /// Consecutive failed checks.
    pub consecutive_failures: u32,
    /// Consecutive successful checks.
    pub consecutive_successes: u32,
    /// Forced down by a `maintenancedir` file.
    pub maintenance: bool,
    /// The weight last set by the check (`misc_dynamic`), if any.
    pub weight: Option<u32>,
    /// The last check, if any ran yet.
    pub last: Option<CheckResult>,
    /// Checks run since the target was added.
    pub checks: u64,
    /// Checks that could not run for a reason of this host's (out of open files, buffers or
    /// memory), not counted for or against the real.
    pub local_failures: u64,
}

/// What [`HealthHandle::set_targets`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Targets started.
    pub added: usize,
    /// Targets stopped.
    pub removed: usize,
    /// Targets kept with their state.
    pub kept: usize,
}

/// The engine's settings.
#[derive(Clone, Debug)]
pub struct HealthChecker {
    /// `maintenancedir`: a file named after a real forces it down.
    pub maintenance_dir: Option<PathBuf>,
    /// How long a listing of `maintenance_dir` is reused (default 1 s).
    pub maintenance_refresh: Duration,
    /// Capacity of the event channel. Target tasks wait when it is full: drain it.
    pub event_capacity: usize,
}

impl Default for HealthChecker {
    fn default() -> Self {
        HealthChecker {
            maintenance_dir: None,
            maintenance_refresh: Duration::from_secs(1),
            event_capacity: 1024,
        }
    }
}

impl HealthChecker {
    /// Starts the engine with no targets on the current tokio runtime.
    ///
    /// Panics outside a tokio runtime. The engine stops (every task aborted) when the last
    /// clone of the handle is dropped; the receiver then ends.
    pub fn spawn(self) -> (HealthHandle, mpsc::Receiver<HealthEvent>) {
        let (tx, rx) = mpsc::channel(self.event_capacity.max(1));
        let inner = Inner {
            targets: Mutex::new(HashMap::new()),
            events: tx,
            pinger: Arc::new(ping::Pinger::new()),
            connector: connector::Connector::new()
                .map_err(|e| {
                    tracing::warn!(error = %e, "connect checks will open a socket each");
                })
                .ok()
                .map(Arc::new),
            silent: Arc::new(silent::Silent::default()),
            maintenance_dir: self.maintenance_dir.map(|d| {
                Arc::new(maintenance::MaintenanceDir::new(
                    d,
                    self.maintenance_refresh,
                ))
            }),
            runtime: tokio::runtime::Handle::current(),
        };
        (
            HealthHandle {
                inner: Arc::new(inner),
            },
            rx,
        )
    }
}

/// The running engine. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct HealthHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthHandle")
            .field("targets", &self.len())
            .finish()
    }
}

struct Inner {
    targets: Mutex<HashMap<CheckKey, Target>>,
    pinger: Arc<ping::Pinger>,
    connector: Option<Arc<connector::Connector>>,
    silent: Arc<silent::Silent>,
    events: mpsc::Sender<HealthEvent>,
    maintenance_dir: Option<Arc<maintenance::MaintenanceDir>>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let targets = self.targets.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, t) in targets.drain() {
            t.task.abort();
        }
    }
}

struct Target {
    status: Arc<Mutex<TargetStatus>>,
    task: JoinHandle<()>,
}

impl HealthHandle {
    /// Makes `targets` the set checked: new keys start at once (first check immediately),
    /// keys no longer present stop, and kept keys keep their task, schedule and state.
    /// Duplicate keys are checked once (the first spec's initial state wins).
    pub fn set_targets(&self, targets: Vec<TargetSpec>) -> Reconciled {
        let mut wanted: HashMap<CheckKey, Option<HardState>> =
            HashMap::with_capacity(targets.len());
        for t in targets {
            wanted.entry(t.key).or_insert(t.initial);
        }
        let mut map = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = Reconciled::default();
        map.retain(|key, target| {
            let keep = wanted.contains_key(key);
            if !keep {
                target.task.abort();
                done.removed += 1;
            }
            keep
        });
        for (key, initial) in wanted {
            if map.contains_key(&key) {
                done.kept += 1;
                continue;
            }
            let target = self.start(key.clone(), initial);
            map.insert(key, target);
            done.added += 1;
        }
        tracing::debug!(?done, total = map.len(), "health targets reconciled");
        done
    }

    fn start(&self, key: CheckKey, initial: Option<HardState>) -> Target {
        let status = Arc::new(Mutex::new(TargetStatus {
            key: key.clone(),
            state: initial,
            soft_failing: false,
            consecutive_failures: 0,
            consecutive_successes: 0,
            maintenance: false,
            weight: None,
            last: None,
            checks: 0,
            local_failures: 0,
        }));
        let worker = Worker {
            machine: StateMachine::new(initial, key.failure_count, key.success_count),
            probe: probe::Probe::new(&key, &self.inner.pinger, self.inner.connector.as_ref()),
            key,
            status: status.clone(),
            silent: self.inner.silent.clone(),
            events: self.inner.events.clone(),
            maintenance_dir: self.inner.maintenance_dir.clone(),
        };
        let task = self.inner.runtime.spawn(worker.run());
        Target { status, task }
    }

    /// Marks the reals at `addr` silent (they do not answer ARP/ND) or not. The network
    /// checks of a silent real fail at once without sending anything (see [`silent`]).
    pub fn set_silent(&self, addr: std::net::IpAddr, silent: bool) {
        self.inner.silent.set(addr, silent);
    }

    /// Stops every target.
    pub fn clear(&self) {
        self.set_targets(Vec::new());
    }

    /// The number of distinct targets checked.
    pub fn len(&self) -> usize {
        self.inner
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether nothing is checked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of one target.
    pub fn status(&self, key: &CheckKey) -> Option<TargetStatus> {
        let map = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .map(|t| t.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// The state of every target, in no particular order.
    pub fn snapshot(&self) -> Vec<TargetStatus> {
        let map = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|t| t.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }
}

/// One target's task.
struct Worker {
    key: CheckKey,
    probe: probe::Probe,
    machine: StateMachine,
    status: Arc<Mutex<TargetStatus>>,
    silent: Arc<silent::Silent>,
    events: mpsc::Sender<HealthEvent>,
    maintenance_dir: Option<Arc<maintenance::MaintenanceDir>>,
}

impl Worker {
    async fn run(mut self) {
        let interval = self.key.interval.max(Duration::from_millis(10));
        // Maintenance names: the address forms at once, host names once resolved.
        let mut names = maintenance::candidate_names(self.key.real, None);
        let mut lookup = self.maintenance_dir.as_ref().map(|_| {
            let ip = self.key.real.ip();
            tokio::task::spawn_blocking(move || maintenance::reverse_lookup(ip))
        });
        // Targets added together (10,000 at start) do not all check in the same instant: each
        // first check comes within the first second (or interval, if shorter).
        let start = Instant::now() + jitter(&self.key, interval.min(Duration::from_secs(1)));
        tokio::time::sleep_until(on_tick(start)).await;
        let first = Instant::now();
        // The second check comes within one interval of the first (spread by the jitter), so no
        // gap between two checks is ever longer than the interval (and the one [`TICK`] a check
        // may wait for).
        let mut next = first + jitter(&self.key, interval);
        loop {
            if let Some(task) = lookup.take_if(|t| t.is_finished())
                && let Ok(Some(host)) = task.await
            {
                names = maintenance::candidate_names(self.key.real, Some(&host));
            }
            // Boxed: a check's state (its result, the event it sends) is held while it runs,
            // not for the life of the task (10,000 targets idle most of the time).
            let was_retrying = self.machine.is_soft_failing();
            Box::pin(self.check_once(&names)).await;
            let now = Instant::now();
            // keepalived's delay_before_retry: a real that is up with failed checks is checked
            // again that long after the last check ends; once it is down or passes again, the
            // checks go back to the interval, counted from that check.
            match self.key.retry_interval {
                Some(retry) if self.machine.is_soft_failing() => {
                    next = now + retry.max(Duration::from_millis(10));
                }
                Some(_) if was_retrying => next = now + interval,
                _ => {}
            }
            while next <= now {
                next += interval;
            }
            tokio::time::sleep_until(on_tick(next)).await;
        }
    }

    /// Counts a check that could not run for a local reason, and logs it (rate-limited).
    fn note_local_failure(&self, e: &CheckError) {
        {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            s.local_failures += 1;
        }
        let mut last = LOCAL_FAILURE_LOGGED
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(real = %self.key.real, port = self.key.port,
                "a check could not run for a reason of this host's, not counted against the \
                 real (at most one such line every 10 s): {}", error_chain(e));
        }
    }

    async fn check_once(&mut self, names: &[String]) {
        let at = SystemTime::now();
        let started = Instant::now();
        let in_maintenance = self.maintenance_dir.as_ref().and_then(|d| d.find(names));
        let (result, transition) = match &in_maintenance {
            Some(file) => {
                let transition = self.machine.force_down();
                let result = CheckResult {
                    ok: false,
                    check: "maintenance",
                    message: format!("Server in maintenance (file {file})"),
                    weight: None,
                    latency: started.elapsed(),
                    at,
                };
                (result, transition)
            }
            None => {
                let checked = self.key.address.unwrap_or(self.key.real.ip());
                let run = if self.probe.sends_packets() && self.silent.contains(checked) {
                    probe::ProbeRun {
                        check: "resolve",
                        result: Err(CheckError::Silent { addr: checked }),
                        weight: None,
                    }
                } else {
                    // The probe boxes the future of the check it runs: held only while it
                    // runs.
                    self.probe.run().await
                };
                let latency = started.elapsed();
                if let Err(e) = &run.result
                    && e.is_local()
                {
                    // Not the real's failure: nothing recorded, the state stays.
                    self.note_local_failure(e);
                    return;
                }
                let (ok, message) = match run.result {
                    Ok(m) => (true, m),
                    Err(CheckError::Off) => (false, "checktype off".to_string()),
                    Err(e) => (false, error_chain(&e)),
                };
                // It quotes the real (a reason phrase, an answer): no control character goes
                // on to the logs, the status or an alert mail.
                let message = crate::alert::printable(&message).into_owned();
                let transition = if run.check == "off" {
                    self.machine.force_down()
                } else {
                    self.machine.record(ok)
                };
                let result = CheckResult {
                    ok,
                    check: run.check,
                    message,
                    weight: run.weight,
                    latency,
                    at,
                };
                (result, transition)
            }
        };
        tracing::trace!(real = %self.key.real, port = self.key.port, ok = result.ok,
            message = %result.message, "health check");
        let soft = self.machine.is_soft_failing();
        let event = {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            let soft_changed = s.soft_failing != soft;
            // A weight set anew by the check (misc_dynamic) is news even without a transition.
            let weight_changed = result.weight.is_some_and(|w| s.weight != Some(w));
            if result.weight.is_some() {
                s.weight = result.weight;
            }
            s.state = self.machine.hard();
            s.soft_failing = soft;
            s.consecutive_failures = self.machine.consecutive_failures();
            s.consecutive_successes = self.machine.consecutive_successes();
            s.maintenance = in_maintenance.is_some();
            s.last = Some(result.clone());
            s.checks += 1;
            (transition.is_some() || soft_changed || weight_changed).then(|| HealthEvent {
                key: self.key.clone(),
                state: self.machine.hard().unwrap_or(HardState::Down),
                previous: match transition {
                    Some(t) => t.from,
                    None => self.machine.hard(),
                },
                soft_failing: soft,
                result,
            })
        };
        let Some(event) = event else { return };
        // The operator-facing line for a transition is the agent's (per virtual service, with
        // alerts); here it is detail.
        if event.is_transition() {
            tracing::debug!(real = %self.key.real, port = self.key.port,
                state = %event.state, message = %event.result.message, "check state changed");
        } else {
            tracing::debug!(real = %self.key.real, port = self.key.port,
                soft_failing = soft, message = %event.result.message, "real server soft state");
        }
        // A closed receiver only means nobody listens any more.
        let _ = self.events.send(event).await;
    }
}

/// The last time a check that could not run for a local reason was logged (any target): at
/// most one such line every 10 s.
static LOCAL_FAILURE_LOGGED: Mutex<Option<Instant>> = Mutex::new(None);

/// Checks start on ticks this far apart, so that targets due at nearly the same moment are
/// woken together: 10,000 targets checked every second wake the runtime 100 times a second
/// instead of up to a thousand (the timer's own resolution is 1 ms).
const TICK: Duration = Duration::from_millis(10);

/// The first tick at or after `at`.
fn on_tick(at: Instant) -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let since = at.saturating_duration_since(base).as_nanos();
    let tick = TICK.as_nanos();
    let ticks = since.div_ceil(tick);
    let offset = u64::try_from(ticks * tick).unwrap_or(u64::MAX);
    base + Duration::from_nanos(offset)
}

/// A random delay below `interval` for the second check, spreading targets over the interval.
fn jitter(key: &CheckKey, interval: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().hash_one(key);
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(random % nanos)
}

/// An error and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod keepalived_engine_tests;
#[cfg(test)]
mod tests;
