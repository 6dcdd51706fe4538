//! The agent: `lvs run`. It loads the config, attaches the balancer, checks every real, follows
//! every server's MAC, and keeps the kernel's tables equal to what [`desired::plans`] says
//! after every health change, MAC change and reload.
//!
//! A config change travels: file → [`crate::config::load`] → [`Agent::reload`] →
//! health targets and followed addresses → [`desired::plans`] →
//! [`crate::dataplane::tables::Tables::apply`] → the kernel's maps.

pub mod desired;
pub mod neighbours;
pub mod snapshot;

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use tokio::signal::unix::{SignalKind, signal};

use self::{
    desired::Knowledge,
    neighbours::{Neighbours, TargetUpdate},
};
use crate::{
    config::{self, Config, ConfigError, RealServer, VirtualService},
    dataplane::{AttachMode, Dataplane, LoadError, ServicePlan, Target, tables::TablesError},
    health::{CheckKey, HardState, HealthChecker, HealthEvent, HealthHandle, TargetSpec},
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
    /// The interface to attach to (overrides the config's).
    pub interface: Option<String>,
    /// XDP attach mode.
    pub mode: AttachMode,
    /// The control socket's path (`lvs status` asks there).
    pub control: PathBuf,
}

/// The running agent's state.
pub struct Agent {
    config: Config,
    dataplane: Dataplane,
    ifindex: u32,
    health: HealthHandle,
    neighbours: Neighbours,
    /// Hard state of each distinct check.
    states: HashMap<CheckKey, HardState>,
    /// How to reach each server (`None`: unresolved).
    targets: HashMap<IpAddr, Option<Target>>,
    /// Interfaces already in the devmap.
    tx_ports: HashSet<u32>,
    /// Services whose new connections currently go to the fallback.
    on_fallback: HashSet<SocketAddr>,
    config_mtime: Option<SystemTime>,
    /// Counters reported by `lvs status` and the metrics.
    counters: snapshot::AgentCounters,
}

struct View<'a> {
    states: &'a HashMap<CheckKey, HardState>,
    targets: &'a HashMap<IpAddr, Option<Target>>,
}

impl Knowledge for View<'_> {
    fn is_up(&self, v: &VirtualService, real: &RealServer) -> bool {
        self.states.get(&CheckKey::from_config(v, real)) == Some(&HardState::Up)
    }

    fn target(&self, addr: IpAddr) -> Option<Target> {
        self.targets.get(&addr).copied().flatten()
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Every check target of a config.
fn health_targets(config: &Config) -> Vec<TargetSpec> {
    config
        .virtuals
        .iter()
        .flat_map(|v| v.reals.iter().map(move |r| TargetSpec::from_config(v, r)))
        .collect()
}

/// Every server address the data plane must reach: reals and fallbacks.
fn server_addrs(config: &Config) -> HashSet<IpAddr> {
    config
        .virtuals
        .iter()
        .flat_map(|v| {
            v.reals
                .iter()
                .map(|r| r.addr.ip())
                .chain(v.fallback.iter().map(|f| f.addr.ip()))
        })
        .collect()
}

/// The interface to attach to: the option, the config's, or the one holding a VIP.
fn choose_interface(opts: &RunOptions, config: &Config) -> Result<String, AgentError> {
    if let Some(i) = opts
        .interface
        .clone()
        .or_else(|| config.globals.interface.clone())
    {
        return Ok(i);
    }
    for v in &config.virtuals {
        let vip = v.vip.ip();
        if let Some((_, name)) = neighbour::interface_holding(vip)
            .map_err(|source| AgentError::Interface { vip, source })?
        {
            return Ok(name);
        }
    }
    Err(AgentError::NoInterface {
        vips: config
            .virtuals
            .iter()
            .map(|v| v.vip.ip().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A service's name for logs: `VIP:port/proto`.
pub fn service_name(v: &VirtualService) -> String {
    format!("{}/{:?}", v.vip, v.protocol).to_lowercase()
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), AgentError> {
    let config = config::load(&opts.config)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let interface = choose_interface(&opts, &config)?;
    let mut dataplane = Dataplane::load()?;
    let ifindex = dataplane.attach(&interface, opts.mode)?;
    tracing::info!(interface, ifindex, mode = ?opts.mode, "balancer attached");

    let (health, mut health_events) = HealthChecker {
        maintenance_dir: config.globals.maintenance_dir.clone(),
        ..HealthChecker::default()
    }
    .spawn();
    let (neighbours, mut target_updates) = Neighbours::spawn();
    let mut agent = Agent {
        config_mtime: mtime(&opts.config),
        config,
        dataplane,
        ifindex,
        health,
        neighbours,
        states: HashMap::new(),
        targets: HashMap::new(),
        tx_ports: HashSet::new(),
        on_fallback: HashSet::new(),
        counters: snapshot::AgentCounters::default(),
    };
    agent.start_following();
    agent.apply()?;
    // The control socket and the metrics ask the loop for snapshots through this channel.
    let (snapshot_tx, mut snapshot_requests) = tokio::sync::mpsc::channel(16);
    let _control = crate::control::ControlServer::start(&opts.control, snapshot_tx.clone())?;
    let _metrics = match agent.config.globals.metrics {
        Some(addr) => Some(crate::metrics::MetricsServer::start(addr, snapshot_tx)?),
        None => None,
    };

    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| AgentError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));

    let result = loop {
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading {}", opts.config.display());
                agent.reload(&opts.config);
            }
            Some(ev) = health_events.recv() => agent.on_health(ev),
            Some(up) = target_updates.recv() => agent.on_target(up),
            Some(req) = snapshot_requests.recv() => {
                let _ = req.reply.send(agent.snapshot(req.with_flows));
                continue;
            }
            _ = tick.tick() => {
                if agent.config.globals.autoreload {
                    let now = mtime(&opts.config);
                    if now != agent.config_mtime {
                        tracing::info!("{} changed: reloading", opts.config.display());
                        agent.reload(&opts.config);
                    }
                }
                continue;
            }
        }
        if let Err(e) = agent.apply() {
            break Err(e);
        }
    };
    agent.stop();
    result
}

impl Agent {
    fn start_following(&mut self) {
        self.health.set_targets(health_targets(&self.config));
        let addrs = server_addrs(&self.config);
        self.targets.retain(|a, _| addrs.contains(a));
        self.neighbours.follow(addrs);
    }

    /// Writes the plans for the current knowledge to the kernel.
    fn apply(&mut self) -> Result<(), AgentError> {
        let view = View {
            states: &self.states,
            targets: &self.targets,
        };
        let plans = desired::plans(&self.config, &view);
        for p in &plans {
            self.note_fallback(p);
            for t in p.dests.iter().chain(p.fallback.iter()).map(|d| d.target) {
                if let Target::Remote { ifindex, .. } = t {
                    if ifindex != self.ifindex && self.tx_ports.insert(ifindex) {
                        self.dataplane.add_tx_port(ifindex)?;
                    }
                }
            }
        }
        self.dataplane.tables.apply(&plans)?;
        self.counters.map_updates += 1;
        Ok(())
    }

    /// Logs a service entering or leaving its fallback.
    fn note_fallback(&mut self, p: &ServicePlan) {
        let on = desired::on_fallback(p);
        let was = self.on_fallback.contains(&p.vip);
        if on && !was {
            self.on_fallback.insert(p.vip);
            match &p.fallback {
                Some(f) => {
                    tracing::warn!(service = %p.vip, fallback = %f.addr, "no real server is up: new connections go to the fallback")
                }
                None => {
                    tracing::warn!(service = %p.vip, "no real server is up and no fallback: new connections are dropped")
                }
            }
        } else if !on && was {
            self.on_fallback.remove(&p.vip);
            tracing::info!(service = %p.vip, "a real server is up again: new connections leave the fallback");
        }
    }

    fn on_health(&mut self, ev: HealthEvent) {
        if !ev.result.ok {
            self.counters.check_errors += 1;
        }
        if ev.is_transition() {
            let state = match ev.state {
                HardState::Up => "up",
                HardState::Down => "down",
            };
            tracing::info!(real = %ev.key.real, state, check = ev.result.check, result = %ev.result.message, "real server state changed");
        }
        self.states.insert(ev.key, ev.state);
    }

    fn on_target(&mut self, up: TargetUpdate) {
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

    /// Applies a changed config; a config that does not load leaves everything as it is.
    fn reload(&mut self, path: &Path) {
        self.config_mtime = mtime(path);
        match config::load(path) {
            Ok(new) => {
                for w in &new.warnings {
                    tracing::warn!("{w}");
                }
                let checks: HashSet<CheckKey> =
                    health_targets(&new).into_iter().map(|t| t.key).collect();
                self.states.retain(|k, _| checks.contains(k));
                self.config = new;
                self.counters.reloads += 1;
                self.start_following();
                tracing::info!(services = self.config.virtuals.len(), "config reloaded");
            }
            Err(e) => {
                self.counters.reload_failures += 1;
                tracing::error!("reload refused, the running config stays in force: {e}")
            }
        }
    }

    fn stop(&mut self) {
        self.health.clear();
        if self.config.globals.cleanstop {
            match self.dataplane.detach() {
                Ok(()) => tracing::info!("balancer detached"),
                Err(e) => tracing::error!("detaching: {e}"),
            }
        }
    }
}
