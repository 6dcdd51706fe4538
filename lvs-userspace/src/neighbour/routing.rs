//! Following every change that can move a routed packet's next hop: routes, next-hop objects,
//! policy rules, neighbour entries, links, addresses (a route's preferred source) and the
//! per-interface forwarding settings, for IPv4 and IPv6. What changed is not parsed: each
//! notification only says "something did" ([`RoutingWatch::wait`]), which is what the
//! next-hop cache needs ([`crate::dataplane::next_hop`]).

use std::io;
use std::time::Duration;

use super::netlink::Netlink;
use super::{NeighbourError, Result};

/// The `RTNLGRP_*` groups followed (each group n is bit n-1 of the bind mask): LINK (1),
/// NEIGH (3), IPV4_IFADDR (5), IPV4_ROUTE (7), IPV4_RULE (8), IPV6_IFADDR (9), IPV6_ROUTE
/// (11), IPV6_RULE (19), IPV4_NETCONF (24), IPV6_NETCONF (25), NEXTHOP (32).
const GROUPS: [u32; 11] = [1, 3, 5, 7, 8, 9, 11, 19, 24, 25, 32];

/// The bind mask of [`GROUPS`].
const fn mask() -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < GROUPS.len() {
        m |= 1 << (GROUPS[i] - 1);
        i += 1;
    }
    m
}

/// Room for bursts of notifications between two reads (a table of routes changing at once);
/// an overrun only says that something changed, as a notification does.
const BUFFER: i32 = 1 << 20;

/// Subscribes to routing changes in the calling thread's network namespace.
pub fn watch_routing() -> Result<RoutingWatch> {
    let sock = Netlink::open(mask())?;
    sock.set_receive_buffer(BUFFER);
    Ok(RoutingWatch { sock })
}

/// A subscription to routing changes; see [`watch_routing`]. Blocking.
pub struct RoutingWatch {
    sock: Netlink,
}

impl RoutingWatch {
    /// Waits at most `timeout` for a change; reads every notification already there. `true`
    /// if anything changed (or notifications were lost, which means the same).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if !self.sock.wait_readable(Some(timeout))? {
            return Ok(false);
        }
        loop {
            match self.sock.recv_flags(libc::MSG_DONTWAIT) {
                Ok(_) => {}
                Err(NeighbourError::Socket { source, .. })
                    if source.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(true);
                }
                Err(NeighbourError::Socket { source, .. })
                    if source.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_holds_each_group_once() {
        assert_eq!(mask().count_ones() as usize, GROUPS.len());
        assert_eq!(mask() & 0b100, 0b100, "neighbours (group 3)");
        assert_eq!(mask() & (1 << 31), 1 << 31, "next-hop objects (group 32)");
    }
}
