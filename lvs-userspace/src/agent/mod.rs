//! The agent: `lvs run`. It loads the config, attaches the balancer, checks every real, follows
//! every server's MAC, and keeps the kernel's tables equal to what [`desired::plans`] says
//! after every health change, MAC change and reload.
//!
//! A config change travels: file → [`crate::config::load`] → `Agent::reload` →
//! health targets and followed addresses → [`desired::plans`] →
//! [`crate::dataplane::tables::Tables::apply`] → the kernel's maps.
//!
//! The maps and the XDP link are pinned (see [`crate::dataplane::bpffs`]): an agent that starts
//! where an earlier one left pins (after a crash, a SIGKILL, an upgrade, or `cleanstop = no`)
//! adopts them, and forwarding never stops.

mod attach;
mod commanded;
mod config_read;
mod conn_list;
pub mod desired;
mod inside;
mod kept_states;
pub mod neighbours;
mod overload;
mod restart_only;
pub mod sd_notify;
pub mod snapshot;
mod tunnel_forwarding;
mod view;

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use tokio::signal::unix::{SignalKind, signal};

use self::{
    attach::{choose_interface, server_addrs, write_own_macs},
    config_read::{
        FileStamp, READ_STUCK_AFTER, ReadOutcome, ReadWhy, read_off_loop, rules_off_loop, stamp,
    },
    neighbours::{Neighbours, TargetUpdate},
    restart_only::{Fixed, restart_only_changes},
    view::View,
};
use crate::{
    alert::{Alerter, DaemonPhase, RealState, StateChange},
    config::{self, Config, ConfigError, Protocol, VirtualService},
    dataplane::{
        AttachMode, Dataplane, LoadError, ServicePlan, Target, plan::vip_key, tables::TablesError,
    },
    health::{
        CheckKey, HardState, HealthChecker, HealthEvent, HealthHandle, TargetSpec, real_state,
    },
    logging::LoggingGuard,
    neighbour,
};

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No interface was given and none holds a VIP.
    #[error(
        "no interface given (--interface or interface=) and no interface of this host holds a \
         virtual address ({vips}); add the VIP to the interface that receives its traffic"
    )]
    NoInterface {
        /// The VIPs looked for.
        vips: String,
    },
    /// Looking up interfaces failed.
    #[error("looking up the interface that holds {vip}: {source}")]
    Interface {
        /// The VIP.
        vip: IpAddr,
        /// The cause.
        #[source]
        source: neighbour::NeighbourError,
    },
    /// Loading or attaching the data plane failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Writing the tables failed.
    #[error(transparent)]
    Tables(#[from] TablesError),
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// The metrics listener could not be set up.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Installing a signal handler failed.
    #[error("installing the {signal} handler: {source}")]
    Signal {
        /// The signal.
        signal: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `lvs run` options.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Its format when `--format` named it (`None`: told from the content at every read).
    pub format: Option<config::Format>,
    /// The interface to attach to (overrides the config's).
    pub interface: Option<String>,
    /// XDP attach mode.
    pub mode: AttachMode,
    /// Where maps and the link are pinned (`None`: not pinned; the data plane lives as long as
    /// the process).
    pub pin_dir: Option<PathBuf>,
    /// The control socket's path (`lvs status` asks there).
    pub control: PathBuf,
}

/// The running agent's state.
pub struct Agent {
    config: Config,
    config_path: PathBuf,
    config_format: Option<config::Format>,
    dataplane: Dataplane,
    ifindex: u32,
    health: HealthHandle,
    neighbours: Neighbours,
    alerter: Alerter,
    logging: Option<LoggingGuard>,
    /// Hard state of each distinct check.
    states: HashMap<CheckKey, HardState>,
    /// The weight each check set (keepalived's `misc_dynamic`), where one did.
    weights: HashMap<CheckKey, u32>,
    /// How to reach each server (`None`: unresolved).
    targets: HashMap<IpAddr, Option<Target>>,
    /// Interfaces already in the devmap.
    tx_ports: HashSet<u32>,
    /// Services whose new connections currently go to the fallback.
    on_fallback: HashSet<SocketAddr>,
    /// Services with a quorum above 1 below it, and those whose quorum was evaluated.
    quorum_lost: HashSet<(SocketAddr, Protocol)>,
    quorum_seen: HashSet<(SocketAddr, Protocol)>,
    /// Reals past their upper connection threshold ([`overload`]).
    overloaded: HashSet<CheckKey>,
    /// The virtual services (indices in `config.virtuals`) each check concerns, so that a
    /// health event finds its services without rebuilding every real's key.
    services_of: HashMap<CheckKey, Vec<usize>>,
    /// The config file's stamp when it was last read.
    config_stamp: Option<FileStamp>,
    /// Counters reported by `lvs status` and the metrics.
    counters: snapshot::AgentCounters,
    /// What was set up at the start and only a restart changes.
    fixed: Fixed,
    /// The configuration file's config as read (`config` is it plus the ipvsadm command's
    /// services).
    file_config: Config,
    /// The services the ipvsadm command made ([`commanded`]).
    commanded: crate::ipvsadm::rules::Rules,
    /// Where they are kept across restarts.
    state_file: PathBuf,
    /// Where `ipvsadm -Z` zeroed the counters.
    zeroed: Vec<crate::ipvsadm::output::ZeroBase>,
}

/// The shortest time between two writes of the tables; see [`run`].
const APPLY_EVERY: Duration = Duration::from_millis(100);
/// Forwards the kernel program's log (rare events only: drops that mean something is wrong)
/// into the agent's log.
fn forward_kernel_log(dataplane: &mut Dataplane) {
    let logger = match aya_log::EbpfLogger::init(dataplane.ebpf()) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("the kernel program's log is not forwarded: {e}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer's fd, which stays open and the same for as long
    // as the logger lives, and the AsyncFd owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("the kernel program's log is not forwarded: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        while let Ok(mut guard) = fd.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

/// A service's name for logs and alerts: `VIP:port/proto`.
pub fn service_name(v: &VirtualService) -> String {
    format!("{}/{:?}", v.vip, v.protocol).to_lowercase()
}

/// Runs the agent until SIGTERM or SIGINT. `config` is the already loaded `opts.config`;
/// `logging`, when given, follows the config's log target across reloads.
pub async fn run(
    opts: RunOptions,
    config: Config,
    logging: Option<LoggingGuard>,
) -> Result<(), AgentError> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    for n in &config.resolved {
        tracing::info!("{n}");
    }
    let interface = choose_interface(&opts, &config)?;
    // A wrong interface stops lvs before anything is touched.
    let attach_to = crate::dataplane::loader::interface_index(&interface)?;
    // Signals are taken before anything is attached: one that comes during the start is
    // handled once it is done (a stop, detaching cleanly), and no failure after the attach
    // can leave without undoing it.
    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| AgentError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    // The control socket and the metrics ask the loop for snapshots through this channel.
    // Both listen before anything is attached: a port in use stops lvs with nothing changed.
    let (snapshot_tx, mut snapshot_requests) = tokio::sync::mpsc::channel(16);
    // The ipvsadm command's changes come through the control socket too.
    let (change_tx, mut change_requests) = tokio::sync::mpsc::channel(16);
    let _control = crate::control::ControlServer::start_with_changes(
        &opts.control,
        snapshot_tx.clone(),
        Some(change_tx),
    )?;
    let _metrics = match config.globals.metrics {
        Some(addr) => Some(crate::metrics::MetricsServer::start(addr, snapshot_tx)?),
        None => None,
    };
    let mut dataplane = match &opts.pin_dir {
        Some(dir) => Dataplane::load_pinned_sized(dir, config.globals.tables)?,
        None => Dataplane::load_sized(config.globals.tables)?,
    };
    let adopted = dataplane.adopted();
    forward_kernel_log(&mut dataplane);
    // Before the program runs (attached, or swapped into an adopted link): which Ethernet
    // destinations are ours.
    // The NAT inside interfaces' too: an adopted link there runs this program at once.
    let inside: Vec<u32> = inside::interfaces(&config, attach_to)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    if let Err(e) = write_own_macs(&mut dataplane, attach_to, &inside, &config) {
        dataplane.abandon();
        return Err(e.into());
    }
    // Tunnelled and NATed packets take their next hop from a cache in front of the FIB: every
    // routing change the kernel announces empties it (a new generation), from before the
    // program runs.
    let _next_hops = crate::dataplane::next_hop::follow(&mut dataplane);
    // A start that fails leaves nothing behind (but what it adopted).
    let ifindex = match dataplane.attach(&interface, opts.mode) {
        Ok(i) => i,
        Err(e) => {
            dataplane.abandon();
            return Err(e.into());
        }
    };
    if adopted {
        tracing::info!(interface, ifindex, pins = ?opts.pin_dir, "adopted the running data plane: established flows and counters kept");
    } else {
        tracing::info!(interface, ifindex, mode = ?opts.mode, pins = ?opts.pin_dir, "balancer attached");
    }

    let (health, mut health_events) = HealthChecker {
        maintenance_dir: config.globals.maintenance_dir.clone(),
        ..HealthChecker::default()
    }
    .spawn();
    let (neighbours, mut target_updates) = Neighbours::spawn();
    let alerter = Alerter::new(&config.globals);
    alerter.set_phase(DaemonPhase::Starting);
    let fixed = Fixed {
        interface: interface.clone(),
        interface_from_option: opts.interface.is_some(),
        metrics: config.globals.metrics,
        maintenance_dir: config.globals.maintenance_dir.clone(),
        tables: config.globals.tables,
        mode: opts.mode,
    };
    let mut agent = Agent {
        fixed,
        config_stamp: stamp(&opts.config),
        config_path: opts.config.clone(),
        config_format: opts.format,
        file_config: config.clone(),
        commanded: crate::ipvsadm::rules::Rules::default(),
        state_file: commanded::state_file(&opts.control),
        zeroed: Vec::new(),
        config,
        dataplane,
        ifindex,
        health,
        neighbours,
        alerter,
        logging,
        states: HashMap::new(),
        weights: HashMap::new(),
        targets: HashMap::new(),
        tx_ports: HashSet::new(),
        on_fallback: HashSet::new(),
        quorum_lost: HashSet::new(),
        quorum_seen: HashSet::new(),
        overloaded: HashSet::new(),
        counters: snapshot::AgentCounters::default(),
        services_of: HashMap::new(),
    };
    agent.restore_commanded();
    if adopted {
        agent.seed_from_dataplane();
    }
    agent.start_following();
    if let Err(e) = agent.apply() {
        agent.health.clear();
        agent.dataplane.abandon();
        return Err(e);
    }

    // Attached and the tables written: systemd (Type=notify) may start what depends on it.
    let notifier = sd_notify::Notifier::from_env();
    notifier.notify("READY=1");
    let mut watchdog = notifier
        .watchdog_every()
        .map(|every| tokio::time::interval(every.max(Duration::from_millis(10))));

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut overload_tick = tokio::time::interval(overload::CHECK_EVERY);
    let started = Instant::now();
    // Changes are written at most every APPLY_EVERY: a change after a quiet spell is written
    // at once, the changes that follow it within APPLY_EVERY are written together when it
    // ends (a burst of 10,000 health events costs a few plans, not 10,000).
    let mut last_apply = Instant::now();
    let mut pending = false;
    // At most one read of the config runs at a time, off the loop; when it started, whether
    // it was reported as stuck, and whether a SIGHUP came while it ran.
    let (read_tx, mut read_done) = tokio::sync::mpsc::channel::<ReadOutcome>(1);
    let mut reading: Option<(Instant, bool)> = None;
    let mut hup_waiting = false;
    // Firewall-mark services: when the host's rules were last read, and the last refusal
    // (logged once, not on every poll).
    let mut rules_read = Instant::now();
    let mut rules_refused: Option<String> = None;

    let result = loop {
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = async { watchdog.as_mut()?.tick().await; Some(()) }, if watchdog.is_some() => {
                notifier.notify("WATCHDOG=1");
                continue;
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading {}", agent.config_path.display());
                if let Some(l) = &agent.logging
                    && let Err(e) = l.reopen() {
                        tracing::warn!("reopening the log: {e}");
                    }
                if reading.is_some() {
                    tracing::warn!("a read of {} is still under way: the config is read again once it ends", agent.config_path.display());
                    hup_waiting = true;
                } else {
                    read_off_loop(agent.config_path.clone(), agent.config_format, ReadWhy::Signal, agent.config_stamp, read_tx.clone());
                    reading = Some((Instant::now(), false));
                }
                continue;
            }
            Some(outcome) = read_done.recv() => {
                reading = None;
                if hup_waiting {
                    hup_waiting = false;
                    read_off_loop(agent.config_path.clone(), agent.config_format, ReadWhy::Signal, agent.config_stamp, read_tx.clone());
                    reading = Some((Instant::now(), false));
                }
                match outcome {
                    ReadOutcome::Unchanged => continue,
                    ReadOutcome::Read { why: ReadWhy::Rules, result, .. } => {
                        match *result {
                            Ok(c) if c.virtuals == agent.file_config.virtuals => {
                                rules_refused = None;
                                continue;
                            }
                            Ok(c) => {
                                rules_refused = None;
                                tracing::info!("the host's firewall-mark rules changed: reloading");
                                agent.reload(Ok(c)).await;
                            }
                            Err(e) => {
                                let e = e.to_string();
                                if rules_refused.as_ref() != Some(&e) {
                                    agent.counters.reload_failures += 1;
                                    tracing::error!("the host's firewall-mark rules changed and cannot be used; the running config stays in force: {e}");
                                    rules_refused = Some(e);
                                }
                                continue;
                            }
                        }
                    }
                    ReadOutcome::Read { why, stamp, result } => {
                        if why == ReadWhy::Poll {
                            tracing::info!("{} changed: reloading", agent.config_path.display());
                        }
                        agent.config_stamp = stamp;
                        agent.reload(*result).await;
                    }
                }
            }
            Some(ev) = health_events.recv() => agent.on_health(ev).await,
            Some(up) = target_updates.recv() => agent.on_target(up),
            _ = tokio::time::sleep_until((last_apply + APPLY_EVERY).into()), if pending => {}
            Some(req) = change_requests.recv() => {
                let req: crate::control::ChangeRequest = req;
                // Made at once: the pending changes are written with them.
                pending = false;
                last_apply = Instant::now();
                let _ = req.reply.send(agent.on_ipvsadm(&req.changes, req.connections, req.zero));
                continue;
            }
            Some(req) = snapshot_requests.recv() => {
                // The checks' results already sent first: a real that status shows down is
                // out of the tables it shows.
                while let Ok(ev) = health_events.try_recv() {
                    agent.on_health(ev).await;
                    pending = true;
                }
                // What status shows is what the kernel does: write pending changes first.
                if pending {
                    pending = false;
                    last_apply = Instant::now();
                    agent.apply_or_log();
                }
                let _ = req.reply.send(agent.snapshot());
                continue;
            }
            _ = overload_tick.tick(), if agent.has_thresholds() => {
                if agent.update_overloads() {
                    last_apply = Instant::now();
                    agent.apply_or_log();
                }
            }
            _ = tick.tick() => {
                agent.alerter.tick(Instant::now());
                agent.sweep_counts();
                if agent.alerter.phase() == DaemonPhase::Starting && started.elapsed() > Duration::from_secs(1) {
                    agent.alerter.set_phase(DaemonPhase::Running);
                }
                match &mut reading {
                    Some((since, reported)) if !*reported && since.elapsed() > READ_STUCK_AFTER => {
                        *reported = true;
                        tracing::error!(
                            "reading {} has not ended after {:?} (a stalled mount?): \
                             no reload until it does; the running config stays in force",
                            agent.config_path.display(),
                            READ_STUCK_AFTER
                        );
                    }
                    Some(_) => {}
                    None if config::fwmark::has_fwmark(&agent.file_config) && rules_read.elapsed() >= config::fwmark::POLL_EVERY => {
                        rules_read = Instant::now();
                        // The file's services: a reload adds the ipvsadm command's to them.
                        rules_off_loop(agent.file_config.clone(), agent.config_stamp, read_tx.clone());
                        reading = Some((Instant::now(), false));
                    }
                    None if agent.config.globals.autoreload => {
                        read_off_loop(agent.config_path.clone(), agent.config_format, ReadWhy::Poll, agent.config_stamp, read_tx.clone());
                        reading = Some((Instant::now(), false));
                    }
                    None => {}
                }
                continue;
            }
        }
        if last_apply.elapsed() < APPLY_EVERY {
            pending = true;
            continue;
        }
        pending = false;
        last_apply = Instant::now();
        agent.apply_or_log();
    };
    notifier.notify("STOPPING=1");
    agent.stop();
    result
}

impl Agent {
    /// After adopting a running data plane: what it forwards to is taken as up and reachable
    /// until checks and neighbour lookups say otherwise, so the first write changes nothing.
    fn seed_from_dataplane(&mut self) {
        for (addr, target) in self.dataplane.tables.targets() {
            self.targets.insert(addr, Some(target));
        }
        let mut seeded = 0;
        for v in &self.config.virtuals {
            let key = vip_key(v.vip, v.protocol);
            for r in &v.reals {
                let schedulable = self
                    .dataplane
                    .tables
                    .dest(&key, r.addr.ip())
                    .is_some_and(|d| d.flags & lvs_common::dest::dest_flags::SCHEDULABLE != 0);
                if schedulable {
                    for k in CheckKey::all_for(v, r) {
                        self.states.insert(k, HardState::Up);
                    }
                    seeded += 1;
                }
            }
        }
        tracing::info!(
            reals = seeded,
            "reals in service in the adopted data plane start as up"
        );
    }

    /// Health targets for the config, starting from the states already known.
    fn health_targets(&self) -> Vec<TargetSpec> {
        self.config
            .virtuals
            .iter()
            .flat_map(|v| v.reals.iter().flat_map(move |r| CheckKey::all_for(v, r)))
            .map(|key| TargetSpec {
                initial: self.states.get(&key).copied(),
                key,
            })
            .collect()
    }

    fn start_following(&mut self) {
        tunnel_forwarding::check(&self.config, &self.fixed.interface);
        self.follow_inside();
        let targets = self.health_targets();
        self.services_of.clear();
        for (vi, v) in self.config.virtuals.iter().enumerate() {
            for key in v.reals.iter().flat_map(|r| CheckKey::all_for(v, r)) {
                let services = self.services_of.entry(key).or_default();
                if services.last() != Some(&vi) {
                    services.push(vi);
                }
            }
        }
        self.states.retain(|k, _| self.services_of.contains_key(k));
        self.weights.retain(|k, _| self.services_of.contains_key(k));
        self.health.set_targets(targets);
        let addrs = server_addrs(&self.config);
        self.targets.retain(|a, _| addrs.contains(a));
        self.neighbours.follow(addrs);
    }

    /// [`Agent::apply`] while running: a write the kernel refuses is logged and counted, and
    /// neither detaches the balancer nor stops the agent. What was written stays in force
    /// (each service's switch to new rings is one map write, so a service holds its last good
    /// state or its new one), and the next change tries again.
    /// Uncounts flows that went past their idle timeout without a packet (see
    /// [`crate::dataplane::conns`]).
    fn sweep_counts(&mut self) {
        let timeouts = self.config.globals.timeouts.table();
        let now = crate::dataplane::conns::table_now_ns();
        self.dataplane.tables.counts_mut().sweep(now, &timeouts);
    }

    fn apply_or_log(&mut self) {
        if let Err(e) = self.apply() {
            self.counters.map_update_failures += 1;
            tracing::error!(
                "writing the data plane's tables failed; the balancer keeps forwarding with \
                 what they hold: {e}"
            );
        }
    }

    /// Writes the plans for the current knowledge to the kernel.
    fn apply(&mut self) -> Result<(), AgentError> {
        self.update_quorums();
        let plans = desired::plans(&self.config, &View::of(self));
        for p in &plans {
            self.note_fallback(p);
            for t in p.dests.iter().chain(p.fallback.iter()).map(|d| d.target) {
                if let Target::Remote { ifindex, .. } = t
                    && ifindex != self.ifindex
                    && self.tx_ports.insert(ifindex)
                {
                    self.dataplane.add_tx_port(ifindex)?;
                }
            }
        }
        self.dataplane
            .set_timeouts(self.config.globals.timeouts.table())?;
        self.dataplane.tables.apply(&plans)?;
        self.counters.map_updates += 1;
        Ok(())
    }

    /// keepalived's quorum of each service that has one above 1 or a quorum script: lost
    /// below `quorum - hysteresis`, regained at `quorum + hysteresis`; each change logged, and
    /// `quorum_up` or `quorum_down` run. The first reckoning of a service (at a start or a
    /// reload) runs nothing; the reals start unknown, so the quorum reached once they pass
    /// runs `quorum_up`, as `notify_up` runs when a real first passes.
    fn update_quorums(&mut self) {
        let mut lost = HashSet::new();
        let watched =
            |v: &&VirtualService| v.quorum > 1 || v.quorum_up.is_some() || v.quorum_down.is_some();
        for v in self.config.virtuals.iter().filter(watched) {
            let key = (v.vip, v.protocol);
            let live = desired::live_weight(v, &View::of(self));
            let had = self.quorum_seen.contains(&key) && !self.quorum_lost.contains(&key);
            let held = desired::quorum_held(v, live, had);
            if !held {
                lost.insert(key);
            }
            if self.quorum_seen.contains(&key) && held != had {
                let script = if held {
                    tracing::info!(service = %v.vip, live, quorum = v.quorum, "quorum regained");
                    v.quorum_up.as_deref()
                } else {
                    tracing::warn!(service = %v.vip, live, quorum = v.quorum, "quorum lost");
                    v.quorum_down.as_deref()
                };
                if let Some(script) = script {
                    let _ = self.alerter.quorum_script(script);
                }
            }
        }
        self.quorum_seen = self
            .config
            .virtuals
            .iter()
            .filter(watched)
            .map(|v| (v.vip, v.protocol))
            .collect();
        self.quorum_lost = lost;
    }

    /// Logs a service entering or leaving its fallback, and runs `fallbackcommand`.
    fn note_fallback(&mut self, p: &ServicePlan) {
        let on = desired::on_fallback(p);
        let was = self.on_fallback.contains(&p.vip);
        if on == was {
            return;
        }
        if on {
            self.on_fallback.insert(p.vip);
            match &p.fallback {
                Some(f) => {
                    tracing::warn!(service = %p.vip, fallback = %f.addr, "no real server is up: new connections go to the fallback")
                }
                None => {
                    tracing::warn!(service = %p.vip, "no real server is up and no fallback: new connections are dropped")
                }
            }
        } else {
            self.on_fallback.remove(&p.vip);
            tracing::info!(service = %p.vip, "a real server is up: new connections leave the fallback");
        }
        let command = self
            .config
            .virtuals
            .iter()
            .find(|v| v.vip == p.vip && v.protocol == p.protocol)
            .and_then(|v| v.fallback_command.clone());
        if let Some(cmd) = command {
            let _ = self.alerter.fallback(&cmd, on, p.vip, p.protocol);
        }
    }

    async fn on_health(&mut self, ev: HealthEvent) {
        if !ev.result.ok {
            self.counters.check_errors += 1;
        }
        if let Some(w) = ev.result.weight {
            // The real stays in; only its weight changes (the next apply writes it).
            tracing::info!(real = %ev.key.real, weight = w, "weight set by the check");
            self.weights.insert(ev.key.clone(), w);
        }
        if !ev.is_transition() {
            self.states.insert(ev.key, ev.state);
            return;
        }
        // The reals this check is one of, with their state before it: a real with several
        // checks changes state only when all are up, or the first of them goes down.
        let services = self.services_of.get(&ev.key).cloned().unwrap_or_default();
        let mut reals = Vec::new();
        for vi in services {
            let Some(v) = self.config.virtuals.get(vi) else {
                continue;
            };
            for (ri, r) in v.reals.iter().enumerate() {
                let keys = CheckKey::all_for(v, r);
                if keys.contains(&ev.key) {
                    let was = real_state(&keys, |k| self.states.get(k).copied());
                    reals.push((vi, ri, keys, was));
                }
            }
        }
        self.states.insert(ev.key.clone(), ev.state);
        for (vi, ri, keys, was) in reals {
            let now = real_state(&keys, |k| self.states.get(k).copied());
            let new_state = match now {
                Some(s) if now != was => s,
                _ => continue,
            };
            let (v, r) = (
                &self.config.virtuals[vi],
                &self.config.virtuals[vi].reals[ri],
            );
            let new_state = match new_state {
                HardState::Up => RealState::Up,
                HardState::Down => RealState::Down,
            };
            let change = StateChange {
                virtual_service: service_name(v),
                real: ev.key.real,
                new_state,
                message: ev.result.message.clone(),
            };
            let _ = self.alerter.on_change(&change).await;
            // keepalived's own scripts of the real, if it has them.
            let script = match new_state {
                RealState::Up => r.notify_up.as_deref(),
                RealState::Down => r.notify_down.as_deref(),
            };
            if let Some(script) = script {
                let _ = self.alerter.real_script(script);
            }
        }
    }

    fn on_target(&mut self, up: TargetUpdate) {
        self.health.set_silent(up.addr, up.silent);
        if up.silent {
            tracing::info!(server = %up.addr, "server silent: it does not answer ARP/ND; its checks send nothing until it does");
        }
        if self.targets.get(&up.addr) == Some(&up.target) {
            // Only its silence changed.
            return;
        }
        match (&up.target, &up.reason) {
            (Some(_), _) => {
                tracing::info!(server = %up.addr, target = ?up.target, "server reachable")
            }
            (None, reason) => {
                tracing::warn!(server = %up.addr, reason = reason.as_deref().unwrap_or(""), "server unusable: its MAC address is unknown")
            }
        }
        self.targets.insert(up.addr, up.target);
    }

    /// Applies a config read anew; a config that does not load, or one without any virtual
    /// service that does not say `allow_empty`, leaves everything as it is.
    async fn reload(&mut self, loaded: Result<Config, ConfigError>) {
        match loaded {
            Ok(new) if new.virtuals.is_empty() && !new.globals.allow_empty => {
                self.counters.reload_failures += 1;
                tracing::error!(
                    "reload refused, the running config stays in force: {}: no virtual service \
                     (a file caught while it is rewritten looks so); to empty the director, say \
                     so in it: allow_empty = yes (TOML: allow_empty = true)",
                    self.config_path.display()
                )
            }
            Ok(new) => {
                for w in &new.warnings {
                    tracing::warn!("{w}");
                }
                for n in &new.resolved {
                    tracing::info!("{n}");
                }
                for w in restart_only_changes(&self.fixed, &new) {
                    tracing::warn!("{w}");
                }
                self.alerter = self.alerter.reconfigured(&new.globals);
                if let Some(l) = &self.logging
                    && let Err(e) = l.reload(&new.globals.log)
                {
                    tracing::warn!("changing the log target: {e}");
                }
                let new = match self.merge_reloaded(new) {
                    Ok(merged) => merged,
                    Err(e) => {
                        self.counters.reload_failures += 1;
                        tracing::error!(
                            "reload refused, the running config stays in force: with the \
                             services the ipvsadm command made: {e}"
                        );
                        return;
                    }
                };
                kept_states::carry_states(&self.config, &new, &mut self.states);
                self.config = new;
                self.counters.reloads += 1;
                // The interface's MAC may have changed too.
                let inside = self.dataplane.inside_interfaces();
                if let Err(e) =
                    write_own_macs(&mut self.dataplane, self.ifindex, &inside, &self.config)
                {
                    tracing::error!("writing the accepted MACs: {e}");
                }
                self.start_following();
                tracing::info!(services = self.config.virtuals.len(), "config reloaded");
                if let Some(cb) = self.config.globals.callback.clone() {
                    let path = self.config_path.clone();
                    tokio::spawn(async move {
                        let _ = crate::alert::run_callback(
                            &cb,
                            &path,
                            crate::alert::DEFAULT_COMMAND_TIMEOUT,
                        )
                        .await;
                    });
                }
            }
            Err(e) => {
                self.counters.reload_failures += 1;
                tracing::error!("reload refused, the running config stays in force: {e}")
            }
        }
    }

    fn stop(self) {
        self.alerter.set_phase(DaemonPhase::Stopping);
        self.health.clear();
        let cleanstop = self.config.globals.cleanstop;
        let pinned = self.dataplane.pinned();
        match self.dataplane.release(cleanstop) {
            Ok(()) if cleanstop => tracing::info!("balancer detached"),
            Ok(()) if pinned => tracing::info!("cleanstop = no: the data plane keeps forwarding"),
            // Nothing holds the program and its maps once this process is gone.
            Ok(()) => tracing::warn!(
                "cleanstop = no, but the data plane is not pinned: the balancer goes with this \
                 agent"
            ),
            Err(e) => tracing::error!("detaching: {e}"),
        }
    }
}
