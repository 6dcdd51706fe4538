//! The agent's reactions to its followers: a check's result (state, weight, alerts and
//! keepalived's scripts of the real) and a server's reachability (its MAC, its silence).

use super::{Agent, neighbours::TargetUpdate, service_name};
use crate::{
    alert::{RealState, StateChange},
    health::{CheckKey, HardState, HealthEvent, real_state},
};

impl Agent {
    pub(super) async fn on_health(&mut self, ev: HealthEvent) {
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

    pub(super) fn on_target(&mut self, up: TargetUpdate) {
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
}
