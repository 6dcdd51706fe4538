//! What the agent follows for its config: the checks of every real (starting from the states
//! already known), the servers whose MACs it follows, and, after adopting a running data plane,
//! the states that data plane implies.

use super::{Agent, attach::server_addrs, tunnel_forwarding};
use crate::{
    dataplane::plan::vip_key,
    health::{CheckKey, HardState, TargetSpec},
};

impl Agent {
    /// After adopting a running data plane: what it forwards to is taken as up and reachable
    /// until checks and neighbour lookups say otherwise, so the first write changes nothing.
    pub(super) fn seed_from_dataplane(&mut self) {
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
    pub(super) fn health_targets(&self) -> Vec<TargetSpec> {
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

    pub(super) fn start_following(&mut self) {
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
}
