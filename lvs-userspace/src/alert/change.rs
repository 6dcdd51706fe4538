//! What alerts are about: a real's hard state change ([`StateChange`], [`RealState`]) and the
//! daemon's phase ([`DaemonPhase`]) that `emailalertstatus` filters on.

use std::{fmt, net::SocketAddr};

use crate::config::model::AlertStatus;

/// The health of a real server after a hard state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RealState {
    /// It passes its checks and takes traffic.
    Up,
    /// It failed its checks and was taken out.
    Down,
}

impl RealState {
    /// `"up"` or `"down"`, as passed to the `notify` command.
    pub fn as_str(self) -> &'static str {
        match self {
            RealState::Up => "up",
            RealState::Down => "down",
        }
    }
}

impl fmt::Display for RealState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hard state change of one real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The virtual service, written `vip:port/proto`, e.g. `198.18.0.100:80/tcp`.
    pub virtual_service: String,
    /// The real server.
    pub real: SocketAddr,
    /// Its new state.
    pub new_state: RealState,
    /// The result of the last check, for the log and the mail.
    pub message: String,
}

/// The daemon's phase, which `emailalertstatus` filters on (ldirectord's `$DAEMON_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonPhase {
    /// Starting up: the first checks are being made (`starting`).
    Starting,
    /// Normal operation (`running`).
    Running,
    /// Shutting down (`stopping`).
    Stopping,
    /// Reloading the configuration (`reloading`, the model's `sent`).
    Reloading,
}

impl DaemonPhase {
    /// ldirectord's name for the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonPhase::Starting => "starting",
            DaemonPhase::Running => "running",
            DaemonPhase::Stopping => "stopping",
            DaemonPhase::Reloading => "reloading",
        }
    }

    /// Whether `filter` lets mail through in this phase.
    pub fn enabled_in(self, filter: &AlertStatus) -> bool {
        match self {
            DaemonPhase::Starting => filter.starting,
            DaemonPhase::Running => filter.running,
            DaemonPhase::Stopping => filter.stopping,
            DaemonPhase::Reloading => filter.sent,
        }
    }
}
