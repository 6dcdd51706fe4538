//! Following neighbour-table changes (the `RTNLGRP_NEIGH` multicast group), blocking or
//! driven by tokio.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use super::netlink::{Netlink, RTMGRP_NEIGH, messages, parse_neigh};
use super::{NeighbourError, NeighbourEvent, NeighbourEventKind, Result};

/// Subscribes to neighbour-table changes (the `RTNLGRP_NEIGH` multicast group).
///
/// The kernel announces an entry whenever its state or link-layer address changes. Linux on
/// the director only learns that a real's MAC changed when the real announces it (gratuitous
/// ARP, e.g. with `arp_notify=1`; unsolicited NA) or when the entry is re-probed after going
/// stale, so an agent should combine this with periodic probes
/// ([`Rtnl::probe_on`](super::Rtnl::probe_on)).
pub fn watch() -> Result<NeighbourWatch> {
    let sock = Netlink::open(RTMGRP_NEIGH)?;
    // Room for bursts (thousands of reals changing at once) between two reads; beyond it the
    // reader learns that events were lost and reads the table again.
    sock.set_receive_buffer(WATCH_BUFFER);
    Ok(NeighbourWatch {
        sock,
        pending: VecDeque::new(),
    })
}

/// The receive buffer asked for a [`watch`] socket.
const WATCH_BUFFER: i32 = 4 << 20;

/// A subscription to neighbour changes; see [`watch`]. Blocking; its socket can be polled.
pub struct NeighbourWatch {
    sock: Netlink,
    pending: VecDeque<NeighbourEvent>,
}

impl NeighbourWatch {
    /// The next change, waiting at most `timeout` (`None`: forever). `Ok(None)` on timeout.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<NeighbourEvent>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            let wait = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    Some(d - now)
                }
                None => None,
            };
            if !self.sock.wait_readable(wait)? {
                continue;
            }
            self.receive(false)?;
        }
    }

    /// Receives one datagram of notifications into `pending`. `Ok(false)` if `dontwait` and
    /// nothing was there.
    fn receive(&mut self, dontwait: bool) -> Result<bool> {
        let flags = if dontwait { libc::MSG_DONTWAIT } else { 0 };
        let buf = match self.sock.recv_flags(flags) {
            Ok(b) => b,
            Err(NeighbourError::Socket { source, .. })
                if source.kind() == io::ErrorKind::WouldBlock =>
            {
                return Ok(false);
            }
            Err(NeighbourError::Socket { source, .. })
                if source.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                return Err(NeighbourError::EventsLost);
            }
            Err(e) => return Err(e),
        };
        for (ty, _flags, _seq, body) in messages(&buf) {
            let kind = match ty {
                libc::RTM_NEWNEIGH => NeighbourEventKind::Changed,
                libc::RTM_DELNEIGH => NeighbourEventKind::Deleted,
                _ => continue,
            };
            if let Some((addr, ifindex, state, mac)) = parse_neigh(body) {
                self.pending.push_back(NeighbourEvent {
                    kind,
                    addr,
                    ifindex,
                    mac,
                    state,
                });
            }
        }
        Ok(true)
    }

    /// The next change already announced, without blocking (one `recv` per datagram, no
    /// `poll`).
    pub fn try_next(&mut self) -> Result<Option<NeighbourEvent>> {
        while self.pending.is_empty() {
            if !self.receive(true)? {
                return Ok(None);
            }
        }
        Ok(self.pending.pop_front())
    }
}

impl Iterator for NeighbourWatch {
    type Item = Result<NeighbourEvent>;

    /// Blocks until the next change.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_timeout(None).transpose()
    }
}

/// Subscribes to neighbour changes for async code: like [`watch`], driven by tokio's reactor.
/// Must be called inside a tokio runtime (with I/O enabled).
pub fn watch_async() -> Result<AsyncNeighbourWatch> {
    let inner = watch()?;
    // SAFETY: the descriptor is the watch's own OwnedFd, open and unchanged for as long as
    // the AsyncFd owns the watch; get_mut is only used to read from it.
    let inner = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE)
    }
    .map_err(|e| NeighbourError::Socket {
        op: "registering with the tokio reactor",
        source: e.into_parts().1,
    })?;
    Ok(AsyncNeighbourWatch { inner })
}

/// An async subscription to neighbour changes; see [`watch_async`].
pub struct AsyncNeighbourWatch {
    inner: tokio::io::unix::AsyncFd<NeighbourWatch>,
}

impl AsyncNeighbourWatch {
    /// The next change. Cancel-safe: an event is never lost by dropping the future.
    pub async fn next(&mut self) -> Result<NeighbourEvent> {
        loop {
            if let Some(ev) = self.inner.get_mut().pending.pop_front() {
                return Ok(ev);
            }
            let mut guard =
                self.inner
                    .readable_mut()
                    .await
                    .map_err(|source| NeighbourError::Socket {
                        op: "waiting for notifications",
                        source,
                    })?;
            if !guard.get_inner_mut().receive(true)? {
                guard.clear_ready();
            }
        }
    }
}

impl AsRawFd for NeighbourWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.fd.as_raw_fd()
    }
}

impl AsFd for NeighbourWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }
}
