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

mod apply;
mod attach;
mod commanded;
mod config_read;
mod conn_list;
pub mod desired;
mod events;
mod follow;
mod inside;
mod kept_states;
pub mod neighbours;
mod overload;
mod reload;
mod restart_only;
mod run;
pub mod sd_notify;
pub mod snapshot;
mod tunnel_forwarding;
mod view;

pub use self::run::run;

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use self::{
    attach::write_own_macs, config_read::FileStamp, neighbours::Neighbours, restart_only::Fixed,
    view::View,
};
use crate::{
    alert::Alerter,
    config::{self, Config, ConfigError, Protocol, VirtualService},
    dataplane::{AttachMode, Dataplane, LoadError, Target, tables::TablesError},
    health::{CheckKey, HardState, HealthHandle},
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

/// A service's name for logs and alerts: `VIP:port/proto`.
pub fn service_name(v: &VirtualService) -> String {
    format!("{}/{:?}", v.vip, v.protocol).to_lowercase()
}
