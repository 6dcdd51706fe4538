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
    hash::{BuildHasher, Hash, Hasher},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

pub use probe::CheckError;
pub use state::{HardState, StateMachine, Transition};

use crate::config::model::{
    CheckService, CheckSource, CheckSpec, CheckType, Config, HttpMethod, Protocol, RealServer,
    StatusCodes, VirtualService,
};

/// Everything that makes one check distinct. Targets with equal keys are checked once.
///
/// Build it with [`CheckKey::from_config`], which also clears the fields the check type does
/// not use (a connect check ignores `request`...), so that more targets share a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckKey {
    /// The real: its address and port (the service's port when configured as 0). Its port is
    /// the one used for `maintenancedir` names and passed to external checks.
    pub real: SocketAddr,
    /// The port checked (`checkport`, else the real's port, else the service's well-known
    /// port). 0 for ping, on and off.
    pub port: u16,
    /// The virtual service's protocol (UDP connect checks probe with a datagram; DNS over TCP
    /// for TCP services).
    pub protocol: Protocol,
    /// The check type.
    pub check_type: CheckType,
    /// The negotiate protocol.
    pub service: CheckService,
    /// The request (per-real override applied).
    pub request: Option<String>,
    /// The receive regex (per-real override applied).
    pub receive: Option<String>,
    /// The http method.
    pub http_method: HttpMethod,
    /// The Host header / TLS server name.
    pub virtual_host: Option<String>,
    /// Verify TLS certificates.
    pub verify_tls: bool,
    /// The external command.
    pub command: Option<String>,
    /// keepalived's `misc_dynamic`: the external command's exit code sets the weight.
    pub dynamic_weight: bool,
    /// `login` and `passwd` (pop, imap).
    pub login: Option<(String, String)>,
    /// `database` (mysql, pgsql).
    pub database: Option<String>,
    /// `secret` (radius).
    pub secret: Option<String>,
    /// The record type a dns check asks for, when configured (keepalived's DNS_CHECK).
    pub dns_type: Option<u16>,
    /// The MD5 (hex) the body of an http(s) check must have.
    pub digest: Option<String>,
    /// The statuses an http(s) or http_proxy check passes on.
    pub status_codes: StatusCodes,
    /// Whether an http(s) check follows redirects (else the 3xx is the status).
    pub follow_redirects: bool,
    /// The virtual service's address, kept only for external checks (their arguments).
    pub virtual_addr: Option<SocketAddr>,
    /// Time between checks.
    pub interval: Duration,
    /// Timeout of connect, ping and external checks.
    pub timeout: Duration,
    /// Timeout of negotiate checks.
    pub negotiate_timeout: Duration,
    /// Consecutive failures that take the real down.
    pub failure_count: u32,
    /// While soft-failing, the time from one check to the next (keepalived's
    /// `delay_before_retry`); `None`: `interval`.
    pub retry_interval: Option<Duration>,
    /// Consecutive successes that bring it back.
    pub success_count: u32,
    /// A file check's weight (keepalived's FILE_CHECK).
    pub track_weight: i32,
    /// A file check's `reverse`.
    pub track_reverse: bool,
    /// The real's configured weight, kept only for a file check with a weight (which adds to
    /// it).
    pub base_weight: u32,
    /// The address checked when it is not the real's (keepalived's `connect_ip`).
    pub address: Option<IpAddr>,
    /// Where the check's sockets leave from (keepalived's `bindto`, `bind_port`, `bind_if`,
    /// `fwmark`).
    pub source: CheckSource,
}

impl Hash for CheckKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The config enums do not derive Hash; hash their discriminants by hand.
        self.real.hash(state);
        self.port.hash(state);
        (self.protocol as u8).hash(state);
        match self.check_type {
            CheckType::Connect => 0u32.hash(state),
            CheckType::Negotiate => 1u32.hash(state),
            CheckType::Ping => 2u32.hash(state),
            CheckType::External => 3u32.hash(state),
            CheckType::On => 4u32.hash(state),
            CheckType::Off => 5u32.hash(state),
            CheckType::ConnectThenNegotiate(n) => {
                6u32.hash(state);
                n.hash(state);
            }
            CheckType::File => 7u32.hash(state),
        }
        (self.service as u8).hash(state);
        self.request.hash(state);
        self.receive.hash(state);
        (self.http_method as u8).hash(state);
        self.virtual_host.hash(state);
        self.verify_tls.hash(state);
        self.command.hash(state);
        self.dynamic_weight.hash(state);
        self.login.hash(state);
        self.database.hash(state);
        self.secret.hash(state);
        self.dns_type.hash(state);
        self.digest.hash(state);
        self.status_codes.hash(state);
        self.follow_redirects.hash(state);
        self.virtual_addr.hash(state);
        self.interval.hash(state);
        self.timeout.hash(state);
        self.negotiate_timeout.hash(state);
        self.failure_count.hash(state);
        self.retry_interval.hash(state);
        self.track_weight.hash(state);
        self.track_reverse.hash(state);
        self.base_weight.hash(state);
        self.success_count.hash(state);
        self.address.hash(state);
        self.source.hash(state);
    }
}

/// The well-known port of a negotiate service (ldirectord's `ld_service_to_port`).
fn service_port(service: CheckService) -> u16 {
    match service {
        CheckService::Http => 80,
        CheckService::Https => 443,
        CheckService::Dns => 53,
        CheckService::Smtp => 25,
        CheckService::Pop => 110,
        CheckService::Pops => 995,
        CheckService::Imap => 143,
        CheckService::Imaps => 993,
        CheckService::Nntp => 119,
        CheckService::Ftp => 21,
        CheckService::Ldap => 389,
        CheckService::Ldaps => 636,
        CheckService::Radius => 1812,
        CheckService::HttpProxy => 3128,
        CheckService::Mysql => 3306,
        CheckService::Sip => 5060,
        CheckService::Pgsql => 5432,
        CheckService::SimpleTcp | CheckService::None | CheckService::Udp => 0,
    }
}

impl CheckKey {
    /// The key of the service's own check of `real` of `vs`, with the per-real
    /// request/receive/digest overrides applied: the real's identity in the agent's maps.
    pub fn from_config(vs: &VirtualService, real: &RealServer) -> CheckKey {
        CheckKey::of_spec(vs, &vs.check, real, true)
    }

    /// Every check of `real` of `vs`: [`CheckKey::from_config`] first, then the service's
    /// further checks (`also_checks`). The real is up only when all of them are
    /// ([`real_state`]).
    pub fn all_for(vs: &VirtualService, real: &RealServer) -> Vec<CheckKey> {
        std::iter::once(CheckKey::from_config(vs, real))
            .chain(
                vs.also_checks
                    .iter()
                    .map(|c| CheckKey::of_spec(vs, c, real, false)),
            )
            .collect()
    }

    /// The key checking `real` of `vs` by `c`; `overrides`: the real's own request, receive
    /// and digest replace the spec's.
    fn of_spec(vs: &VirtualService, c: &CheckSpec, real: &RealServer, overrides: bool) -> CheckKey {
        let own = |o: &Option<String>, spec: &Option<String>| {
            o.clone().filter(|_| overrides).or_else(|| spec.clone())
        };
        // A firewall-mark service has no port of its own (ldirectord checks its reals on
        // checkport or the service's well-known port).
        let real_port = if real.addr.port() == 0 && vs.fwmark.is_none() {
            vs.vip.port()
        } else {
            real.addr.port()
        };
        let real_addr = SocketAddr::new(real.addr.ip(), real_port);
        let port = c
            .port
            .or((real_port != 0).then_some(real_port))
            .unwrap_or_else(|| service_port(c.service));
        CheckKey {
            real: real_addr,
            port,
            protocol: vs.protocol,
            check_type: c.check_type,
            service: c.service,
            request: own(&real.request, &c.request),
            receive: own(&real.receive, &c.receive),
            http_method: c.http_method,
            virtual_host: c.virtual_host.clone(),
            verify_tls: c.verify_tls,
            command: c.command.clone(),
            dynamic_weight: c.dynamic_weight,
            login: c
                .login
                .clone()
                .map(|l| (l, c.passwd.clone().unwrap_or_default())),
            database: c.database.clone(),
            secret: c.secret.clone(),
            dns_type: c.dns_type,
            digest: own(&real.digest, &c.digest),
            status_codes: c.status_codes.clone(),
            follow_redirects: c.follow_redirects,
            virtual_addr: Some(vs.vip),
            interval: c.interval,
            timeout: c.timeout,
            negotiate_timeout: c.negotiate_timeout,
            failure_count: c.failure_count,
            success_count: c.success_count,
            retry_interval: c.retry_interval,
            track_weight: c.track_weight,
            track_reverse: c.track_reverse,
            base_weight: real.weight,
            address: real
                .check_address
                .filter(|_| overrides)
                .or(c.address)
                .filter(|a| *a != real.addr.ip()),
            source: if overrides {
                real.check_source.over(&c.source)
            } else {
                c.source.clone()
            },
        }
        .normalized()
    }

    /// Clears the fields the check type does not use.
    pub fn normalized(mut self) -> CheckKey {
        // A file check's file is its request.
        let file = (self.check_type == CheckType::File)
            .then(|| self.request.clone())
            .flatten();
        let negotiates = matches!(
            self.check_type,
            CheckType::Negotiate | CheckType::ConnectThenNegotiate(_)
        );
        if !negotiates || self.service == CheckService::None {
            self.request = None;
            self.receive = None;
            self.http_method = HttpMethod::Get;
            self.virtual_host = None;
            self.verify_tls = false;
            self.negotiate_timeout = Duration::ZERO;
            if !negotiates {
                self.service = CheckService::None;
            }
        } else if !matches!(self.service, CheckService::Http | CheckService::Https) {
            self.http_method = HttpMethod::Get;
            if !matches!(
                self.service,
                CheckService::Pops | CheckService::Imaps | CheckService::Ldaps
            ) {
                self.virtual_host = None;
                self.verify_tls = false;
            }
        } else if self.service == CheckService::Http {
            self.verify_tls = false;
        }
        if !negotiates
            || !matches!(
                self.service,
                CheckService::Pop
                    | CheckService::Pops
                    | CheckService::Imap
                    | CheckService::Imaps
                    | CheckService::Ftp
                    | CheckService::Sip
                    | CheckService::Radius
                    | CheckService::Ldap
                    | CheckService::Ldaps
                    | CheckService::Mysql
                    | CheckService::Pgsql
            )
        {
            self.login = None;
        }
        if !negotiates || !matches!(self.service, CheckService::Mysql | CheckService::Pgsql) {
            self.database = None;
        }
        if !negotiates || self.service != CheckService::Radius {
            self.secret = None;
        }
        if !negotiates || !matches!(self.service, CheckService::Http | CheckService::Https) {
            self.digest = None;
        }
        if !negotiates
            || !matches!(
                self.service,
                CheckService::Http | CheckService::Https | CheckService::HttpProxy
            )
        {
            self.status_codes = StatusCodes::default();
        }
        if !negotiates || !matches!(self.service, CheckService::Http | CheckService::Https) {
            self.follow_redirects = true;
        }
        if !negotiates || self.service != CheckService::Dns {
            self.dns_type = None;
        }
        if matches!(
            self.check_type,
            CheckType::External | CheckType::On | CheckType::Off | CheckType::File
        ) {
            // No socket of its own.
            self.address = None;
            self.source = CheckSource::default();
        }
        if self.check_type == CheckType::File {
            // Nothing of a network check applies.
            self.request = file;
            self.port = 0;
            self.protocol = Protocol::Tcp;
            if self.track_weight == 0 {
                self.base_weight = 0;
            }
        } else {
            self.track_weight = 0;
            self.track_reverse = false;
            self.base_weight = 0;
        }
        if self.check_type != CheckType::External {
            self.command = None;
            self.dynamic_weight = false;
            self.virtual_addr = None;
        }
        if matches!(
            self.check_type,
            CheckType::Ping | CheckType::On | CheckType::Off
        ) {
            self.port = 0;
            self.protocol = Protocol::Tcp;
        }
        if matches!(self.check_type, CheckType::On | CheckType::Off) {
            self.timeout = Duration::ZERO;
        }
        self
    }
}

/// The state of a real whose checks are `keys` ([`CheckKey::all_for`]), given each check's
/// state: down when one is down, up when all are up, else unknown (keepalived counts a real's
/// failed checkers and has it up only at none).
pub fn real_state(
    keys: &[CheckKey],
    state: impl Fn(&CheckKey) -> Option<HardState>,
) -> Option<HardState> {
    let mut all_up = true;
    for k in keys {
        match state(k) {
            Some(HardState::Down) => return Some(HardState::Down),
            Some(HardState::Up) => {}
            None => all_up = false,
        }
    }
    all_up.then_some(HardState::Up)
}

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
