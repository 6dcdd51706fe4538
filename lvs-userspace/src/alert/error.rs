//! [`AlertError`]: everything that can go wrong while alerting, and [`ErrorChain`] to log one
//! with its causes.

use std::{fmt, time::Duration};

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

/// Displays an error with its sources, `a: b: c`.
pub(super) struct ErrorChain<'a>(pub(super) &'a (dyn std::error::Error + 'static));

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
