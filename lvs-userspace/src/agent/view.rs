//! What the agent knows now (health states, weights, next hops, quorums, thresholds), as
//! [`desired::plans`](super::desired::plans) asks it.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
};

use super::{Agent, desired::Knowledge};
use crate::{
    config::{Protocol, RealServer, VirtualService},
    dataplane::Target,
    health::{CheckKey, HardState, real_state},
};

/// What [`Agent`] knows, borrowed for one planning.
pub(super) struct View<'a> {
    states: &'a HashMap<CheckKey, HardState>,
    weights: &'a HashMap<CheckKey, u32>,
    targets: &'a HashMap<IpAddr, Option<Target>>,
    /// Services (by VIP and protocol) below their quorum.
    quorum_lost: &'a HashSet<(SocketAddr, Protocol)>,
    /// Reals past their connection threshold.
    overloaded: &'a HashSet<CheckKey>,
}

impl<'a> View<'a> {
    /// What `agent` knows now.
    pub(super) fn of(agent: &'a Agent) -> View<'a> {
        View {
            states: &agent.states,
            weights: &agent.weights,
            targets: &agent.targets,
            quorum_lost: &agent.quorum_lost,
            overloaded: &agent.overloaded,
        }
    }
}

impl Knowledge for View<'_> {
    fn is_up(&self, v: &VirtualService, real: &RealServer) -> bool {
        real_state(&CheckKey::all_for(v, real), |k| self.states.get(k).copied())
            == Some(HardState::Up)
    }

    fn weight(&self, v: &VirtualService, real: &RealServer) -> u32 {
        // The weight a check set (keepalived's misc_dynamic), whichever of the real's it is.
        CheckKey::all_for(v, real)
            .iter()
            .find_map(|k| self.weights.get(k).copied())
            .unwrap_or(real.weight)
    }

    fn target(&self, addr: IpAddr) -> Option<Target> {
        self.targets.get(&addr).copied().flatten()
    }

    fn quorum_lost(&self, v: &VirtualService) -> bool {
        self.quorum_lost.contains(&(v.vip, v.protocol))
    }

    fn overloaded(&self, v: &VirtualService, real: &RealServer) -> bool {
        self.overloaded.contains(&CheckKey::from_config(v, real))
    }
}
