//! [`LabError`]: what can go wrong building, running or asking the lab.

use std::time::Duration;

use crate::neighbour::NeighbourError;

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A lab option is out of range.
    #[error("bad lab option: {detail}")]
    BadOption {
        /// What is wrong.
        detail: String,
    },
    /// A command could not be started.
    #[error("could not run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A file or OS operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A bpf filesystem could not be mounted.
    #[error(transparent)]
    Bpffs(#[from] crate::dataplane::bpffs::BpffsError),
    /// Entering a network namespace failed.
    #[error("cannot enter network namespace {ns}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Loading or attaching the pass XDP program failed.
    #[error("XDP: {step}")]
    Xdp {
        /// What was being done.
        step: String,
        /// The aya error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A netlink query failed.
    #[error("{what}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: NeighbourError,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
    },
    /// An HTTP exchange failed at the socket level.
    #[error("HTTP GET {path} from {addr}: {step}")]
    HttpIo {
        /// The server address.
        addr: String,
        /// The path.
        path: String,
        /// What was being done.
        step: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP answer was not understood.
    #[error("HTTP GET {path} from {addr}: bad answer: {detail}")]
    HttpAnswer {
        /// The server address.
        addr: String,
        /// The path.
        path: String,
        /// What is wrong.
        detail: String,
    },
}
