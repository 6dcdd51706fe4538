//! Connection thresholds (ipvsadm's `-x`/`-y`, keepalived's `uthreshold`/`lthreshold`): which
//! reals are overloaded, from the per-real counts the data plane keeps.
//!
//! IPVS sets a real's `IP_VS_DEST_F_OVERLOAD` when a connection is bound to it and clears it
//! when one is unbound; its schedulers skip an overloaded real. Here the agent reads the counts
//! ([`crate::dataplane::conns`], a mapped word per real) every [`CHECK_EVERY`] and applies
//! the same rule ([`Thresholds::overloaded`]); an overloaded real is planned at weight 0 (its
//! flows go on, it takes no new connection) until the rule clears it. The difference from
//! IPVS: a real may take up to [`CHECK_EVERY`]'s worth of new connections past its upper
//! threshold before the flag is seen.

use std::{collections::HashSet, time::Duration};

use super::{Agent, CheckKey, View, desired};
/// How often the counts of reals with thresholds are compared with them.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

impl Agent {
    /// Whether any real of the config has a connection threshold (else no check runs).
    pub(super) fn has_thresholds(&self) -> bool {
        self.config
            .virtuals
            .iter()
            .flat_map(|v| &v.reals)
            .any(|r| r.thresholds.any())
    }

    /// Re-evaluates every real with thresholds against its counts; `true` when a real became
    /// overloaded or stopped being so (the tables must then be written again).
    pub(super) fn update_overloads(&mut self) -> bool {
        let mut now: HashSet<CheckKey> = HashSet::new();
        let tables = &self.dataplane.tables;
        for v in &self.config.virtuals {
            if !v.reals.iter().any(|r| r.thresholds.any()) {
                continue;
            }
            let key = desired::plan(v, &View::of(self)).key();
            for r in v.reals.iter().filter(|r| r.thresholds.any()) {
                let ck = CheckKey::from_config(v, r);
                let total = tables
                    .dest_id(&key, r.addr.ip())
                    .and_then(|id| tables.conns(id))
                    .map_or(0, |(a, i)| a + i);
                let was = self.overloaded.contains(&ck);
                if r.thresholds.overloaded(was, total) {
                    if !was {
                        tracing::info!(service = %v.vip, real = %r.addr, connections = total,
                            upper = r.thresholds.upper, "real overloaded: no new connections");
                    }
                    now.insert(ck);
                } else if was {
                    tracing::info!(service = %v.vip, real = %r.addr, connections = total,
                        "real no longer overloaded");
                }
            }
        }
        let changed = now != self.overloaded;
        self.overloaded = now;
        changed
    }
}

#[cfg(test)]
mod tests {
    use crate::config::model::Thresholds;

    #[test]
    fn ipvs_rule_with_and_without_a_lower_threshold() {
        let upper_only = Thresholds { upper: 8, lower: 0 };
        assert!(!upper_only.overloaded(false, 7));
        assert!(upper_only.overloaded(false, 8));
        // Cleared below 3/4 of the upper one: 6 of 8 is not below.
        assert!(upper_only.overloaded(true, 6));
        assert!(!upper_only.overloaded(true, 5));
        let both = Thresholds { upper: 8, lower: 2 };
        assert!(both.overloaded(true, 2));
        assert!(!both.overloaded(true, 1));
        // No upper threshold: never overloaded (IPVS sets the flag only with one).
        let lower_only = Thresholds { upper: 0, lower: 2 };
        assert!(!lower_only.overloaded(false, 100));
        assert!(!lower_only.overloaded(true, 100));
    }
}
