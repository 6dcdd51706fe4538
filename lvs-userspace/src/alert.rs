//! Alerting on real-server state changes, in the manner of ldirectord (e-mail alerts,
//! `fallbackcommand`, `callback`) and keepalived (a `notify` command per change).
//!
//! The [`Alerter`] is built from the [`Globals`] of a configuration and rebuilt on reload. The
//! agent calls [`Alerter::on_change`] on every hard state change of a real,
//! [`Alerter::tick`] periodically (for `emailalertfreq`), [`Alerter::set_phase`] when the
//! daemon starts, runs, reloads or stops (for `emailalertstatus`), and
//! [`Alerter::fallback`] / [`run_callback`] as ldirectord does.
//!
//! Nothing here is fatal: every failure is logged and, for whoever wants to wait for it,
//! returned through [`Pending::wait`].
//!
//! # Commands
//!
//! Commands from the configuration are split into words the way a POSIX shell would split a
//! plain command line (whitespace, `'…'`, `"…"`, `\`), but no shell runs them: the first word
//! is the program (looked up in `PATH`), the others its first arguments, and the addresses
//! are appended as separate arguments, so nothing from the network or the configuration of
//! the reals is ever parsed by a shell. Anyone who needs a shell writes it out, e.g.
//! `notify = "/bin/sh -c 'logger \"$1 $2 $3\"' notify"` (the word after the script is `$0`).
//!
//! Every command runs in its own process group with stdin from `/dev/null`; its output is
//! logged; after the timeout (10 s by default) the whole group is killed with `SIGKILL`.
//!
//! * `notify`: `<notify words…> <real ip:port> <virtual service> <up|down>`, e.g.
//!   `/usr/local/bin/notify 10.0.0.2:80 198.18.0.100:80/tcp down`. IPv6 reals are written
//!   `[2001:db8::2]:80`.
//! * `fallbackcommand`: `<words…> <start|stop> <vip:port> <tcp|udp>` as ldirectord: `start`
//!   when the last real of a service went down (the fallback server takes over), `stop` when
//!   the first real came back; not run twice in a row with the same word for one service.
//! * `callback`: `<words…> <config file path>`, after the configuration file changed.
//!
//! # E-mail
//!
//! As ldirectord's `ld_emailalert_send`: when `emailalert` names recipients, a mail goes to
//! all of them in one SMTP transaction through `smtp` (default `127.0.0.1:25`). The subject
//! is ldirectord's log line: `Deleted real server: 10.0.0.2:80 (198.18.0.100:80/tcp)` when a
//! real went down, `Added real server: …` when it came up, `Inaccessible real server: …` for
//! the `emailalertfreq` reminders. `emailalertstatus` filters on the *daemon's* phase, as in
//! ldirectord (not on the direction of the change): `starting` while the daemon starts,
//! `running` in normal operation, `stopping` while it stops, `reloading` (the model's
//! `sent`) while it reloads. See [`DaemonPhase`].
//!
//! Mail is built and sent with `lettre` (SMTP from the greeting to QUIT, within the SMTP
//! timeout; STARTTLS and AUTH as `smtp_starttls`, `smtp_username` and `smtp_password_file`
//! say, see the `smtp` module, which also says why there is no HELO fallback); control characters in a subject or check text are escaped first
//! ([`printable`]).
//!
//! Here: the [`Alerter`]. Beside it in `alert/`: what alerts are about (`change.rs`), the
//! errors (`error.rs`), the background jobs (`pending.rs`), commands (`command.rs`) and mail
//! (`mail.rs`, `smtp.rs`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::config::model::{AlertStatus, Globals, Protocol, SmtpSecurity};

mod change;
mod command;
mod error;
mod mail;
mod pending;
mod smtp;

pub use change::{DaemonPhase, RealState, StateChange};
use command::spawn_command;
pub use command::{run_callback, run_fallback_command};
pub use error::AlertError;
use error::ErrorChain;
pub(crate) use mail::civil_from_days;
pub use mail::printable;
use mail::{envelope_address, send_mail};
pub use pending::Pending;
// The tests' SMTP sinks write with these and hold their tasks.
#[cfg(test)]
use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinHandle};

/// How long a command may run before it is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one SMTP delivery (connect to `QUIT`) may take.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The mail server used when `smtp` is not set.
pub const DEFAULT_SMTP_SERVER: &str = "127.0.0.1:25";

/// The mail settings, shared with the delivery tasks.
#[derive(Debug)]
struct MailSettings {
    recipients: Vec<String>,
    from_header: String,
    envelope_from: String,
    server: String,
    hostname: String,
    timeout: Duration,
    security: SmtpSecurity,
}

/// When the last mail about a real that is still down went out.
#[derive(Clone, Debug)]
struct DownEntry {
    last_mail: Instant,
}

#[derive(Debug)]
struct State {
    phase: DaemonPhase,
    /// Reals that went down and are not back, keyed by (virtual service, real).
    down: HashMap<(String, SocketAddr), DownEntry>,
    /// The last `fallbackcommand` word run per service.
    fallback_status: HashMap<(SocketAddr, Protocol), bool>,
}

/// Sends the alerts configured in [`Globals`]. Cheap to rebuild on reload (carry the phase
/// over with [`Alerter::set_phase`]; reminders for reals still down restart from scratch).
#[derive(Debug)]
pub struct Alerter {
    notify: Option<String>,
    mail: Option<Arc<MailSettings>>,
    status: AlertStatus,
    freq: Duration,
    command_timeout: Duration,
    state: Mutex<State>,
}

impl Alerter {
    /// An alerter for `globals` with the default timeouts.
    pub fn new(globals: &Globals) -> Alerter {
        Alerter::with_timeouts(globals, DEFAULT_COMMAND_TIMEOUT, DEFAULT_SMTP_TIMEOUT)
    }

    /// An alerter for `globals` that kills commands after `command_timeout` and gives up a
    /// mail delivery after `smtp_timeout`.
    pub fn with_timeouts(
        globals: &Globals,
        command_timeout: Duration,
        smtp_timeout: Duration,
    ) -> Alerter {
        let recipients: Vec<String> = globals
            .email_alert
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mail = (!recipients.is_empty()).then(|| {
            let hostname = hostname();
            let default_from = format!("{}@{}", username(), hostname);
            let from_header = globals
                .email_alert_from
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| default_from.clone());
            let envelope_from = envelope_address(&from_header).unwrap_or(default_from);
            Arc::new(MailSettings {
                recipients,
                from_header,
                envelope_from,
                server: globals
                    .smtp
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_SMTP_SERVER.to_string()),
                hostname,
                timeout: smtp_timeout,
                security: globals.smtp_security.clone(),
            })
        });
        Alerter {
            notify: globals.notify.clone().filter(|s| !s.trim().is_empty()),
            mail,
            status: globals.email_alert_status,
            freq: globals.email_alert_freq,
            command_timeout,
            state: Mutex::new(State {
                phase: DaemonPhase::Running,
                down: HashMap::new(),
                fallback_status: HashMap::new(),
            }),
        }
    }

    /// The daemon's phase (initially [`DaemonPhase::Running`]).
    pub fn phase(&self) -> DaemonPhase {
        self.lock().phase
    }

    /// Sets the daemon's phase, which decides whether mail goes out (`emailalertstatus`).
    pub fn set_phase(&self, phase: DaemonPhase) {
        self.lock().phase = phase;
    }

    /// Handles one hard state change of a real: logs it, starts the `notify` command and
    /// sends the mail (if configured and enabled). Returns at once; the command and the
    /// mail run in background tasks (must be called inside a tokio runtime).
    pub async fn on_change(&self, change: &StateChange) -> Pending {
        self.on_change_at(change, Instant::now())
    }

    /// [`Alerter::on_change`] with an explicit time (for reminders and tests).
    pub fn on_change_at(&self, change: &StateChange, now: Instant) -> Pending {
        match change.new_state {
            RealState::Up => tracing::info!(
                virtual_service = %change.virtual_service,
                real = %change.real,
                state = "up",
                check = %change.message,
                "real server up"
            ),
            RealState::Down => tracing::warn!(
                virtual_service = %change.virtual_service,
                real = %change.real,
                state = "down",
                check = %change.message,
                "real server down"
            ),
        }
        let mut pending = Pending::default();
        if let Some(cmd) = &self.notify {
            let args = vec![
                change.real.to_string(),
                change.virtual_service.clone(),
                change.new_state.as_str().to_string(),
            ];
            pending.push(spawn_command(
                "notify",
                cmd.clone(),
                args,
                self.command_timeout,
            ));
        }
        let key = (change.virtual_service.clone(), change.real);
        let phase = {
            let mut st = self.lock();
            match change.new_state {
                RealState::Down if !self.freq.is_zero() => {
                    st.down.insert(key, DownEntry { last_mail: now });
                }
                _ => {
                    st.down.remove(&key);
                }
            }
            st.phase
        };
        let verb = match change.new_state {
            RealState::Up => "Added",
            RealState::Down => "Deleted",
        };
        let subject = format!(
            "{verb} real server: {} ({})",
            change.real, change.virtual_service
        );
        self.mail(&mut pending, phase, subject, &change.message);
        pending
    }

    /// Re-sends the alert for every real still down whose last mail is at least
    /// `emailalertfreq` old (never when it is 0). Call it periodically.
    pub fn tick(&self, now: Instant) -> Pending {
        let mut pending = Pending::default();
        if self.freq.is_zero() {
            return pending;
        }
        let (due, phase) = {
            let mut st = self.lock();
            let mut due = Vec::new();
            for ((vs, real), e) in st.down.iter_mut() {
                if now.saturating_duration_since(e.last_mail) >= self.freq {
                    e.last_mail = now;
                    due.push((vs.clone(), *real));
                }
            }
            (due, st.phase)
        };
        for (vs, real) in due {
            tracing::warn!(virtual_service = %vs, real = %real, "real server still down");
            let subject = format!("Inaccessible real server: {real} ({vs})");
            self.mail(&mut pending, phase, subject, "");
        }
        pending
    }

    /// Runs `fallbackcommand` for the service `vip`/`protocol` with ldirectord's arguments
    /// (`start` when its last real went down, `stop` when one came back), unless it was
    /// last run for that service with the same word. `command` is the service's own
    /// `fallbackcommand` or the global one.
    pub fn fallback(
        &self,
        command: &str,
        start: bool,
        vip: SocketAddr,
        protocol: Protocol,
    ) -> Pending {
        let mut pending = Pending::default();
        let previous = self.lock().fallback_status.insert((vip, protocol), start);
        if previous == Some(start) {
            return pending;
        }
        let command = command.to_string();
        let timeout = self.command_timeout;
        pending.push(tokio::spawn(async move {
            run_fallback_command(&command, start, vip, protocol, timeout).await
        }));
        pending
    }

    /// Runs a real's own `notify_up` or `notify_down` script (keepalived's), with no argument
    /// added, as keepalived runs it; logged, killed after the command timeout.
    pub fn real_script(&self, command: &str) -> Pending {
        let mut pending = Pending::default();
        pending.push(spawn_command(
            "notify_up/notify_down",
            command.to_string(),
            Vec::new(),
            self.command_timeout,
        ));
        pending
    }

    /// Runs keepalived's `quorum_up` or `quorum_down` command of a service (no argument
    /// added), as [`Alerter::real_script`].
    pub fn quorum_script(&self, command: &str) -> Pending {
        let mut pending = Pending::default();
        pending.push(spawn_command(
            "quorum_up/quorum_down",
            command.to_string(),
            Vec::new(),
            self.command_timeout,
        ));
        pending
    }

    /// A new alerter for `globals` (after a reload) that keeps this one's daemon phase, its
    /// reminders for reals still down (unless `emailalertfreq` is now 0) and the last
    /// `fallbackcommand` word per service. Keeps this one's timeouts.
    pub fn reconfigured(&self, globals: &Globals) -> Alerter {
        let smtp_timeout = self
            .mail
            .as_ref()
            .map_or(DEFAULT_SMTP_TIMEOUT, |m| m.timeout);
        let next = Alerter::with_timeouts(globals, self.command_timeout, smtp_timeout);
        {
            let old = self.lock();
            let mut new = next.lock();
            new.phase = old.phase;
            new.fallback_status = old.fallback_status.clone();
            if !next.freq.is_zero() {
                new.down = old.down.clone();
            }
        }
        next
    }

    fn mail(&self, pending: &mut Pending, phase: DaemonPhase, subject: String, check: &str) {
        let Some(mail) = &self.mail else { return };
        if !phase.enabled_in(&self.status) {
            tracing::debug!(%subject, phase = phase.as_str(), "emailalert suppressed by emailalertstatus");
            return;
        }
        tracing::info!(%subject, "emailalert");
        // The check's text comes from the real: one line, nothing it can forge.
        let mut body = format!(
            "lvs host: {}\r\nLog-Message: {}\r\nDaemon-Status: {}\r\n",
            mail.hostname,
            printable(&subject),
            phase.as_str()
        );
        if !check.is_empty() {
            body.push_str(&format!("Check-Result: {}\r\n", printable(check)));
        }
        let mail = Arc::clone(mail);
        pending.push(tokio::spawn(async move {
            let r = send_mail(&mail, &subject, &body).await;
            if let Err(e) = &r {
                tracing::error!(error = %ErrorChain(e), %subject, "failed to send alert mail");
            }
            r
        }));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".to_string())
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;

#[cfg(test)]
mod lettre_tests;
