//! Reals that do not answer address resolution (ARP, IPv6 neighbour discovery).
//!
//! When the kernel gives up resolving a real's address, every packet a check would send it is
//! dropped before it leaves the director, and the check can only fail: a TCP connect after
//! its timeout or an unreachable error, a ping after its timeout. The neighbour resolver
//! calls such a real *silent* (see [`crate::agent::neighbours::TargetUpdate::silent`]); its
//! network checks fail at once, without a socket. The outcome is ldirectord's (the real is
//! down) at a fraction of the cost: with thousands of powered-off reals, a socket, a connect
//! and a close per check were half of the agent's work, and every check's packet restarted
//! the kernel's resolution, a burst of broadcasts each time.
//!
//! The resolver keeps probing a silent address (with backoff, see
//! [`crate::agent::neighbours`]); when it answers, it stops being silent and its next check
//! is a real one.

use std::{collections::HashSet, net::IpAddr, sync::Mutex};

/// The silent reals, shared by every check task.
#[derive(Debug, Default)]
pub(crate) struct Silent {
    addrs: Mutex<HashSet<IpAddr>>,
}

impl Silent {
    /// Marks `addr` silent or not.
    pub(crate) fn set(&self, addr: IpAddr, silent: bool) {
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if silent {
            addrs.insert(addr);
        } else {
            addrs.remove(&addr);
        }
    }

    /// Whether `addr` is silent.
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        self.addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&addr)
    }
}
