//! Writing the kernel's tables from what the agent knows: the plans of [`super::desired`],
//! each service's quorum and its entering or leaving the fallback on the way.

use std::collections::HashSet;

use super::{Agent, AgentError, View, desired};
use crate::{
    config::VirtualService,
    dataplane::{ServicePlan, Target},
};

impl Agent {
    /// Uncounts flows that went past their idle timeout without a packet (see
    /// [`crate::dataplane::conns`]).
    pub(super) fn sweep_counts(&mut self) {
        let timeouts = self.config.globals.timeouts.table();
        let now = crate::dataplane::conns::table_now_ns();
        self.dataplane.tables.counts_mut().sweep(now, &timeouts);
    }

    /// [`Agent::apply`] while running: a write the kernel refuses is logged and counted, and
    /// neither detaches the balancer nor stops the agent. What was written stays in force
    /// (each service's switch to new rings is one map write, so a service holds its last good
    /// state or its new one), and the next change tries again.
    pub(super) fn apply_or_log(&mut self) {
        if let Err(e) = self.apply() {
            self.counters.map_update_failures += 1;
            tracing::error!(
                "writing the data plane's tables failed; the balancer keeps forwarding with \
                 what they hold: {e}"
            );
        }
    }

    /// Writes the plans for the current knowledge to the kernel.
    pub(super) fn apply(&mut self) -> Result<(), AgentError> {
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
    pub(super) fn update_quorums(&mut self) {
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
    pub(super) fn note_fallback(&mut self, p: &ServicePlan) {
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
}
