//! Reloading: a config read anew (after a SIGHUP, a change of the file, or of the host's
//! firewall-mark rules) replaces the running one, or is refused and changes nothing. A change
//! of the file also runs ldirectord's `callback`.

use super::{Agent, attach::write_own_macs, kept_states, restart_only::restart_only_changes};
use crate::config::{Config, ConfigError};

impl Agent {
    /// The config file changed on disk (the poll found a new stamp, and read it: `loaded`).
    /// As ldirectord's `check_cfgfile`: reloaded with `autoreload`, ignored without it, and
    /// either way the `callback` runs with the file's path (to copy it to the other director,
    /// say), whether the new config loads or not. A SIGHUP or a change of the firewall-mark
    /// rules reloads without it.
    pub(super) async fn changed_on_disk(&mut self, loaded: Result<Config, ConfigError>) {
        let path = self.config_path.clone();
        if self.config.globals.autoreload {
            tracing::info!("{} changed: reloading", path.display());
        } else {
            tracing::info!(
                "{} changed on disk: not reloaded (autoreload = no; SIGHUP reloads it)",
                path.display()
            );
        }
        if let Some(cb) = self.config.globals.callback.clone() {
            let path = path.clone();
            tokio::spawn(async move {
                let _ =
                    crate::alert::run_callback(&cb, &path, crate::alert::DEFAULT_COMMAND_TIMEOUT)
                        .await;
            });
        }
        if self.config.globals.autoreload {
            self.reload(loaded).await;
        }
    }

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
            }
            Err(e) => {
                self.counters.reload_failures += 1;
                tracing::error!("reload refused, the running config stays in force: {e}")
            }
        }
    }
}
