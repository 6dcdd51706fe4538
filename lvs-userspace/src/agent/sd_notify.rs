//! systemd's service notifications (`sd_notify(3)`), in the few lines they take: one datagram
//! per state to the Unix socket named by `NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). Nothing is sent when the variable is not set, so outside systemd (or with
//! `Type=simple`) this does nothing.
//!
//! The agent sends `READY=1` once the balancer is attached and its tables are written,
//! `STOPPING=1` when it begins to stop, and `WATCHDOG=1` at half the period systemd asks for
//! in `WATCHDOG_USEC` (`WatchdogSec=`) from its main loop, so a loop that stops turning gets
//! the service restarted.

use std::{
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

/// The connection to systemd's notification socket, if there is one.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` (with
    /// `WATCHDOG_PID`, when set, naming this process).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let addr = match path.as_encoded_bytes().strip_prefix(b"@") {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name)
                }
                None => SocketAddr::from_pathname(&path),
            };
            let sock = UnixDatagram::unbound().and_then(|s| {
                // A datagram send never waits: a full socket loses the notification.
                s.set_nonblocking(true)?;
                Ok(s)
            });
            match (sock, addr) {
                (Ok(s), Ok(a)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(
                        "NOTIFY_SOCKET={}: cannot notify systemd: {e}",
                        path.to_string_lossy()
                    );
                    None
                }
            }
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us && target.is_some())
            .map(|u| Duration::from_micros(u) / 2);
        Notifier { target, watchdog }
    }

    /// How often to send `WATCHDOG=1` (half of systemd's `WATCHDOG_USEC`), when it asks.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (e.g. `READY=1`); a failure is logged, never fatal.
    pub fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.target
            && let Err(e) = sock.send_to_addr(state.as_bytes(), addr)
        {
            tracing::warn!("notifying systemd of {state}: {e}");
        }
    }
}
