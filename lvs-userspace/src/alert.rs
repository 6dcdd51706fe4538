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

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

use crate::config::model::{AlertStatus, Globals, Protocol, SmtpSecurity};

mod command;
mod mail;
mod smtp;

use command::spawn_command;
pub use command::{run_callback, run_fallback_command};
pub(crate) use mail::civil_from_days;
pub use mail::printable;
use mail::{envelope_address, send_mail};
// The tests' SMTP sink writes with it.
#[cfg(test)]
use tokio::{io::AsyncWriteExt, net::TcpStream};

/// How long a command may run before it is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one SMTP delivery (connect to `QUIT`) may take.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The mail server used when `smtp` is not set.
pub const DEFAULT_SMTP_SERVER: &str = "127.0.0.1:25";

/// Everything that can go wrong while alerting.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A configured command is empty or badly quoted.
    #[error("bad command {command:?}: {reason}")]
    BadCommand {
        /// The command as configured.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A command could not be started.
    #[error("cannot run {program:?}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for a command failed.
    #[error("waiting for {program:?}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command ran past its timeout and was killed.
    #[error("{program:?} did not finish within {timeout:?} and was killed")]
    CommandTimeout {
        /// The program.
        program: String,
        /// The timeout it ran past.
        timeout: Duration,
    },
    /// A command exited unsuccessfully.
    #[error("{program:?} failed ({status})")]
    CommandFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The `smtp` setting cannot be read as `host` or `host:port`.
    #[error("bad smtp server {server:?}")]
    BadSmtpServer {
        /// The setting.
        server: String,
    },
    /// Talking to the mail server failed at the transport level.
    #[error("smtp {server}: {stage}")]
    SmtpIo {
        /// The mail server.
        server: String,
        /// What was being done.
        stage: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The mail server refused something.
    #[error("smtp {server}: {stage}: server replied {reply:?}")]
    SmtpRejected {
        /// The mail server.
        server: String,
        /// What was being done.
        stage: &'static str,
        /// The server's (last) reply line.
        reply: String,
    },
    /// The mail server could not be talked to (its connection or its answers).
    #[error("smtp {server}: {stage}")]
    Smtp {
        /// The mail server.
        server: String,
        /// What was being done: `greeting` (greeting and EHLO) or `message` (MAIL to the
        /// end of DATA).
        stage: &'static str,
        /// Why.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// An address of the mail (`emailalert`, `emailalertfrom`) is not a mail address.
    #[error("{address:?} is not a mail address")]
    BadAddress {
        /// The address as configured.
        address: String,
        /// Why.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be built.
    #[error("building the alert mail")]
    Message {
        /// Why.
        #[source]
        source: lettre::error::Error,
    },
    /// The delivery took longer than the SMTP timeout.
    #[error("smtp {server}: no delivery within {timeout:?}")]
    SmtpTimeout {
        /// The mail server.
        server: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The mail server refused `EHLO`; `lettre` has no `HELO` fallback (see the `smtp`
    /// module).
    #[error(
        "smtp {server}: the server refused EHLO ({reply}); lvs sends mail with ESMTP only \
         (no HELO fallback): use a mail server or relay that accepts EHLO"
    )]
    EhloRefused {
        /// The mail server.
        server: String,
        /// Its reply.
        reply: String,
    },
    /// `smtp_starttls = required` and the server does not offer STARTTLS.
    #[error("smtp {server}: smtp_starttls is required but the server does not offer STARTTLS")]
    StartTlsNotOffered {
        /// The mail server.
        server: String,
    },
    /// AUTH is configured, STARTTLS opportunistic, and the server offered none.
    #[error(
        "smtp {server}: the server offers no STARTTLS; the AUTH password is not sent in clear \
         (smtp_starttls = \"never\" allows it on loopback only)"
    )]
    AuthInClear {
        /// The mail server.
        server: String,
    },
    /// AUTH is configured and the server offers neither PLAIN nor LOGIN.
    #[error("smtp {server}: the server offers no AUTH PLAIN or LOGIN")]
    AuthNotOffered {
        /// The mail server.
        server: String,
    },
    /// A file of the mail settings (`smtp_password_file`, `smtp_ca_file`) cannot be read.
    #[error("reading {}", path.display())]
    SmtpFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A spawned alert task panicked or was cancelled.
    #[error("alert task failed")]
    Task {
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
}

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

/// The background work started by one call; dropping it lets the work go on unobserved.
#[derive(Debug, Default)]
pub struct Pending {
    tasks: Vec<JoinHandle<Result<(), AlertError>>>,
}

impl Pending {
    /// How many background jobs (command runs, mails) were started.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether nothing was started.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for every job and returns their outcomes (already logged), in start order.
    pub async fn wait(self) -> Vec<Result<(), AlertError>> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            out.push(match t.await {
                Ok(r) => r,
                Err(source) => Err(AlertError::Task { source }),
            });
        }
        out
    }

    fn push(&mut self, t: JoinHandle<Result<(), AlertError>>) {
        self.tasks.push(t);
    }
}

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

/// Displays an error with its sources, `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut s = self.0.source();
        while let Some(e) = s {
            write!(f, ": {e}")?;
            s = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;

#[cfg(test)]
mod lettre_tests {
    use super::mail::{mail_address, printable_lines};
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// A one-session SMTP sink on loopback that records the raw bytes of the DATA part (up to
    /// the `.` line) and how many messages it was given.
    async fn sink() -> (SocketAddr, JoinHandle<(Vec<u8>, usize)>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let session = async {
                let (sock, _) = l.accept().await.unwrap();
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let (mut data, mut messages, mut in_data) = (Vec::new(), 0, false);
                loop {
                    // Lines as bytes, split at LF only: a bare CR stays inside its line.
                    let mut line = Vec::new();
                    if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return (data, messages);
                    }
                    if in_data {
                        if line == b".\r\n" {
                            in_data = false;
                            messages += 1;
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            data.extend_from_slice(&line);
                        }
                        continue;
                    }
                    let up = String::from_utf8_lossy(&line).to_ascii_uppercase();
                    let reply: &[u8] = if up.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if up.starts_with("DATA") {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if up.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        return (data, messages);
                    } else if up.starts_with("MAIL") || up.starts_with("RCPT") {
                        b"250 ok\r\n"
                    } else {
                        // Anything else (a smuggled command) is refused and counted nowhere.
                        b"500 what\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            };
            tokio::time::timeout(DEADLINE, session)
                .await
                .expect("the SMTP sink's session did not end within 10 s")
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_reason_phrase_with_bare_crs_arrives_as_one_message_without_them() {
        let (addr, sink) = sink().await;
        let g = Globals {
            email_alert: vec!["a@x.y".to_string()],
            email_alert_from: Some("lb@x.y".to_string()),
            smtp: Some(addr.to_string()),
            ..Globals::default()
        };
        let a = Alerter::with_timeouts(&g, Duration::from_millis(500), Duration::from_secs(5));
        let change = StateChange {
            virtual_service: "198.18.0.100:80/tcp".to_string(),
            real: "10.0.0.2:80".parse().unwrap(),
            new_state: RealState::Down,
            // As a real's reason phrase reaches it, bare CRs and all.
            message: "status 503 a\r.\rMAIL FROM:<x@y>\rRCPT TO:<evil@z>\r\n.\r\nhidden"
                .to_string(),
        };
        let results =
            tokio::time::timeout(DEADLINE, async { a.on_change(&change).await.wait().await })
                .await
                .expect("the alert was not sent within 10 s");
        for r in results {
            r.unwrap();
        }
        let (data, messages) = tokio::time::timeout(DEADLINE, sink)
            .await
            .expect("the SMTP sink did not end within 10 s")
            .unwrap();
        assert_eq!(messages, 1, "{}", String::from_utf8_lossy(&data));
        for (i, b) in data.iter().enumerate() {
            if *b == b'\r' {
                assert_eq!(data.get(i + 1), Some(&b'\n'), "bare CR at {i}: {data:?}");
            }
            if *b == b'\n' {
                assert!(i > 0 && data[i - 1] == b'\r', "bare LF at {i}: {data:?}");
            }
        }
        // Long lines go quoted-printable: its soft line breaks taken out.
        let text = String::from_utf8_lossy(&data).replace("=\r\n", "");
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(
            text.contains(
                r"Check-Result: status 503 a\r.\rMAIL FROM:<x@y>\rRCPT TO:<evil@z>\r\n.\r\nhidden"
            ),
            "{text}"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("200 OK"), "200 OK");
        assert_eq!(
            printable("a\r.\rb\n\u{1b}[2J\u{85}"),
            r"a\r.\rb\n\u{1b}[2J\u{85}"
        );
        assert_eq!(printable_lines("a\r\nb\rc\nd"), "a\r\nb\\rc\r\nd");
    }

    #[test]
    fn addresses_are_checked_and_local_parts_qualified() {
        assert_eq!(mail_address("a@x.y", "h").unwrap().to_string(), "a@x.y");
        assert_eq!(
            mail_address("\"Ops\" <ops@x.y>", "h").unwrap().to_string(),
            "ops@x.y"
        );
        assert_eq!(mail_address("root", "lb1").unwrap().to_string(), "root@lb1");
        for bad in ["Ops Team", "a@b\r\nRSET", "a b@x.y", ""] {
            assert!(
                matches!(mail_address(bad, "h"), Err(AlertError::BadAddress { .. })),
                "{bad:?}"
            );
        }
    }
}
