//! `lvs run` from start to stop: the start (interface, signals, listeners, loading or adopting
//! the data plane, attaching), the event loop that every signal, read, health event, neighbour
//! update and request goes through, and the stop.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use tokio::signal::unix::{SignalKind, signal};

use super::{
    Agent, AgentError, RunOptions,
    attach::{choose_interface, write_own_macs},
    commanded,
    config_read::{READ_STUCK_AFTER, ReadOutcome, ReadWhy, read_off_loop, rules_off_loop, stamp},
    inside,
    neighbours::Neighbours,
    overload,
    restart_only::Fixed,
    sd_notify, snapshot,
};
use crate::{
    alert::{Alerter, DaemonPhase},
    config::{self, Config},
    dataplane::Dataplane,
    health::HealthChecker,
    logging::LoggingGuard,
};

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
                        agent.config_stamp = stamp;
                        if why == ReadWhy::Poll {
                            agent.changed_on_disk(*result).await;
                        } else {
                            agent.reload(*result).await;
                        }
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
                let _ = req.reply.send(agent.on_ipvsadm(&req.changes, req.connections, req.zero, req.restore));
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
                    // The file is watched with autoreload, or for ldirectord's callback, which
                    // runs on a change even without it.
                    None if agent.config.globals.autoreload || agent.config.globals.callback.is_some() => {
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
    pub(super) fn stop(self) {
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
