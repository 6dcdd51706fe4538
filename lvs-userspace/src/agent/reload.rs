//! Reloading: a config read anew (after a SIGHUP, a change of the file, or of the host's
//! firewall-mark rules) replaces the running one, or is refused and changes nothing.

use super::{Agent, attach::write_own_macs, kept_states, restart_only::restart_only_changes};
use crate::config::{Config, ConfigError};

impl Agent {
    /// Applies a config read anew; a config that does not load, or one without any virtual
    /// service that does not say `allow_empty`, leaves everything as it is.
    pub(super) async fn reload(&mut self, loaded: Result<Config, ConfigError>) {
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
}
