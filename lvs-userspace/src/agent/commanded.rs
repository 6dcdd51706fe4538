//! The services the `ipvsadm` command made, beside the configuration file's.
//!
//! The agent keeps them as an ipvsadm table ([`Rules`]) and runs the configuration file's
//! services plus these: the model the data plane is written from is the file's config with
//! the table's services appended (and the table's `--set` timeouts over the file's), built by
//! the ipvsadm reader's resolver and checked as any config is. A change is made on a copy of
//! the table; the copy is turned into model and checked, and only then replaces the running
//! model and is written to the maps in one go (the one model-to-maps diff), so a change is
//! all or nothing, a whole `ipvsadm -R` included.
//!
//! - **Command and config on one service.** A service of the configuration file belongs to
//!   the file (its checks, its reloads): the command refuses to change it, naming the file and
//!   line (ipvsadm lists and saves it like any other). A reload that brings a service the
//!   command made takes it over: the command's is dropped, with a warning in the log.
//! - **Restarts.** After every change the table is written, as `ipvsadm-save -n` writes it, to
//!   a state file next to the control socket (`/run/lvs/lvs.ipvsadm` for the default socket);
//!   an agent that starts reads it back, so the command's services survive a restart (and, as
//!   IPVS's, not a reboot: /run is emptied). A state file that cannot be applied is moved
//!   aside to `*.rejected`, and the log says why: never lost in silence.

use std::path::{Path, PathBuf};

use super::{Agent, kept_states};
use crate::{
    config::{self, CheckType, Config, ConfigError, Protocol},
    control::{IpvsadmAnswer, ZeroScope},
    health::{CheckKey, HardState},
    ipvsadm::{
        args::Proto,
        output,
        rules::{Change, Key, Rules},
    },
};

/// The state file for the control socket at `control`.
pub fn state_file(control: &Path) -> PathBuf {
    control.with_extension("ipvsadm")
}

fn model_protocol(p: Proto) -> Protocol {
    match p {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
    }
}

/// The service of the configuration file `key` names, if it names one.
fn file_service<'a>(file: &'a Config, key: &Key) -> Option<&'a config::VirtualService> {
    file.virtuals
        .iter()
        .find(|v| match (key.fwmark, &v.fwmark) {
            (Some(m), Some(f)) => f.mark == m && f.v6 == key.addr.is_ipv6(),
            (None, None) => v.vip == key.addr && v.protocol == model_protocol(key.proto),
            _ => false,
        })
}

/// The running model: `file`'s services and `rules`' (read as from `state`), checked.
pub fn merge(file: &Config, rules: &Rules, state: &Path) -> Result<Config, ConfigError> {
    let mut merged = file.clone();
    if rules.services.is_empty() && rules.timeouts.is_none() {
        return Ok(merged);
    }
    let mut commanded = config::ipvsadm::to_config(state, rules)?;
    // A `-f` service's matches come from the host's rules, as a config file's do.
    config::fwmark::apply_host_rules(&mut commanded)?;
    if let Some([tcp, tcpfin, udp]) = rules.timeouts {
        let t = &mut merged.globals.timeouts;
        for (slot, v) in [
            (&mut t.tcp, tcp),
            (&mut t.tcpfin, tcpfin),
            (&mut t.udp, udp),
        ] {
            if v != 0 {
                *slot = v;
            }
        }
    }
    merged.virtuals.extend(commanded.virtuals);
    config::validate(&merged)?;
    Ok(merged)
}

/// A config error in the command's words: the reason, without the state file's place.
fn command_words(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { key, reason, .. } => format!("{key}: {reason}"),
        e => e.to_string(),
    }
}

/// Reads the state file: `None` when there is none.
fn read_state(path: &Path) -> Option<Result<Rules, ConfigError>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => {
            Some(config::read_text(path).and_then(|text| config::ipvsadm::read_rules(path, &text)))
        }
    }
}

/// Writes `rules` to `path` as `ipvsadm-save -n` does, through a temporary file renamed over
/// it (a crash leaves the old file or the new one).
fn write_state(path: &Path, rules: &Rules) -> std::io::Result<()> {
    let tmp = path.with_extension("ipvsadm.tmp");
    std::fs::write(&tmp, output::save_rules(rules))?;
    std::fs::rename(&tmp, path)
}

impl Agent {
    /// At the start: the command's services from the state file, into the running model.
    pub(super) fn restore_commanded(&mut self) {
        let Some(read) = read_state(&self.state_file) else {
            return;
        };
        let merged = read.and_then(|rules| {
            for s in &rules.services {
                if let Some(v) = file_service(&self.file_config, &s.key) {
                    return Err(ConfigError::invalid(
                        &self.state_file,
                        s.line,
                        "ipvsadm",
                        format!(
                            "{} is now a service of the configuration file ({}): the file's \
                             takes it over",
                            s.key, v.location
                        ),
                    ));
                }
            }
            merge(&self.file_config, &rules, &self.state_file).map(|m| (rules, m))
        });
        match merged {
            Ok((rules, merged)) => {
                tracing::info!(
                    services = rules.services.len(),
                    file = %self.state_file.display(),
                    "the services the ipvsadm command made are restored"
                );
                self.commanded = rules;
                self.config = merged;
                self.seed_always_up();
            }
            Err(e) => {
                let aside = self.state_file.with_extension("ipvsadm.rejected");
                let moved = std::fs::rename(&self.state_file, &aside);
                tracing::error!(
                    "the services the ipvsadm command made cannot be restored: {e}; they are \
                     not running: their rules are kept in {} ({})",
                    aside.display(),
                    match moved {
                        Ok(()) => "restore them with ipvsadm -R once fixed".to_string(),
                        Err(m) => format!("moving them there failed: {m}"),
                    }
                );
            }
        }
    }

    /// After a reload: the file's new config with the command's services; a service the file
    /// now has too is the file's (the command's is dropped and the log says so).
    pub(super) fn merge_reloaded(&mut self, new: Config) -> Result<Config, ConfigError> {
        let before = self.commanded.services.len();
        let mut rules = self.commanded.clone();
        rules.services.retain(|s| match file_service(&new, &s.key) {
            Some(v) => {
                tracing::warn!(
                    "{} was made by the ipvsadm command and is now a service of the \
                     configuration file ({}): the file's takes it over",
                    s.key,
                    v.location
                );
                false
            }
            None => true,
        });
        let merged = merge(&new, &rules, &self.state_file)?;
        self.file_config = new;
        if rules.services.len() != before {
            self.commanded = rules;
            self.persist_commanded();
        }
        Ok(merged)
    }

    fn persist_commanded(&self) {
        if let Err(e) = write_state(&self.state_file, &self.commanded) {
            tracing::error!(
                file = %self.state_file.display(),
                "writing the ipvsadm command's services: {e}; they run, but an agent restart \
                 would not find them"
            );
        }
    }

    /// Reals that are never checked (`checktype = on`, every ipvsadm real) are up at once,
    /// not after their first (always passing) check.
    fn seed_always_up(&mut self) {
        for v in &self.config.virtuals {
            if v.check.check_type == CheckType::On {
                for r in &v.reals {
                    self.states
                        .entry(CheckKey::from_config(v, r))
                        .or_insert(HardState::Up);
                }
            }
        }
    }

    /// Answers the ipvsadm command: makes its `changes` ([`Agent::on_changes`]; `restore`:
    /// they are `-R`'s), then tells the timeouts in force and, when asked, the connection
    /// table.
    pub(super) fn on_ipvsadm(
        &mut self,
        changes: &[Change],
        connections: bool,
        zero: Option<ZeroScope>,
        restore: bool,
    ) -> Result<IpvsadmAnswer, (usize, String)> {
        let notes = if changes.is_empty() {
            Vec::new()
        } else {
            self.on_changes(changes, restore)?
        };
        if let Some(scope) = zero {
            let views = output::views(&self.snapshot());
            let only = match &scope {
                ZeroScope::All => None,
                ZeroScope::Service(k) => {
                    if !views.iter().any(|s| s.is(k)) {
                        return Err((0, "No such service".into()));
                    }
                    Some(k)
                }
            };
            let fresh = output::zero_bases(&views, only);
            self.zeroed.retain(|b| {
                !fresh
                    .iter()
                    .any(|f| f.proto == b.proto && f.service == b.service && f.real == b.real)
            });
            self.zeroed.extend(fresh);
        }
        let t = self.config.globals.timeouts;
        Ok(IpvsadmAnswer {
            notes,
            failed_change: None,
            timeouts: [t.tcp, t.tcpfin, t.udp],
            connections: if connections {
                self.connections()
            } else {
                Vec::new()
            },
            zeroed: self.zeroed.clone(),
        })
    }

    /// Makes the ipvsadm command's `changes`, all or none: `Err((index of the change that
    /// failed, why))`, or notes to show the operator. The maps are written before it returns.
    ///
    /// A change to a service of the configuration file is refused, except in a `restore`
    /// (`-R`): there the `-A`/`-a` lines of the file's services are left to the file, with a
    /// note. So the output of `-S`, which lists the file's services too, restores, as `ipvsadm
    /// -R` goes on past the kernel's "Service already exists".
    fn on_changes(
        &mut self,
        changes: &[Change],
        restore: bool,
    ) -> Result<Vec<String>, (usize, String)> {
        let mut rules = self.commanded.clone();
        let mut notes = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            if let Some(key) = change.key()
                && let Some(v) = file_service(&self.file_config, &key)
            {
                if restore && matches!(change, Change::AddService(_) | Change::AddReal(..)) {
                    let note = format!(
                        "{key} is a service of the configuration file ({}): its -A and -a \
                         lines are left to the file",
                        v.location
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                    continue;
                }
                return Err((
                    i,
                    format!(
                        "{key} is a service of the configuration file ({}): change it there \
                         (the agent checks its reals and reloads it); the ipvsadm command \
                         changes only the services it made",
                        v.location
                    ),
                ));
            }
            if *change == Change::Clear && !self.file_config.virtuals.is_empty() {
                notes.push(format!(
                    "the {} service(s) of the configuration file {} stay: -C clears the \
                     services the ipvsadm command made",
                    self.file_config.virtuals.len(),
                    self.file_config.source.display()
                ));
            }
            rules.apply(change).map_err(|e| (i, e.to_string()))?;
        }
        // Each service numbered as a line, so that an error names the service (and so the
        // change) it comes from.
        let mut numbered = rules.clone();
        for (i, s) in numbered.services.iter_mut().enumerate() {
            s.line = i + 1;
            for r in &mut s.reals {
                r.line = i + 1;
            }
        }
        let merged = merge(&self.file_config, &numbered, &self.state_file).map_err(|e| {
            let last = changes.len().saturating_sub(1);
            let at = e
                .location()
                .and_then(|l| numbered.services.get(l.line.wrapping_sub(1)))
                .and_then(|s| changes.iter().rposition(|c| c.key() == Some(s.key)))
                .unwrap_or(last);
            (at, command_words(&e))
        })?;
        kept_states::carry_states(&self.config, &merged, &mut self.states);
        self.commanded = rules;
        self.config = merged;
        self.seed_always_up();
        self.start_following();
        self.apply_or_log();
        self.persist_commanded();
        Ok(notes)
    }
}
