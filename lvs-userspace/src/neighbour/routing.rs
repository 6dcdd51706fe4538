//! Following every change that can move a routed packet's next hop: routes, next-hop objects,
//! policy rules, neighbour entries, links, addresses (a route's preferred source) and the
//! per-interface forwarding settings, for IPv4 and IPv6 ([`RoutingWatch::wait`]), which is what
//! the next-hop cache needs ([`crate::dataplane::next_hop`]). Only neighbour notifications are
//! read: one that keeps an entry usable with the link-layer address last seen for it (an entry
//! going stale, being probed and confirmed: what a LAN's neighbours do all day) changes no
//! next hop and is not a change; any other is, as is every other notification.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::netlink::{Netlink, messages, parse_neigh};
use super::{MacAddr, NeighbourError, Result};

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
    Ok(RoutingWatch {
        sock,
        neighbours: HashMap::new(),
    })
}

/// A subscription to routing changes; see [`watch_routing`]. Blocking.
pub struct RoutingWatch {
    sock: Netlink,
    /// The link-layer address of each usable neighbour entry, as last announced.
    neighbours: HashMap<(IpAddr, u32), MacAddr>,
}

/// `NUD_NOARP`: usable without resolution (the kernel counts it valid).
const NUD_NOARP: u16 = 0x40;

impl RoutingWatch {
    /// Waits at most `timeout` for a change; reads every notification already there. `true`
    /// if anything changed (or notifications were lost, which means the same).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if !self.sock.wait_readable(Some(timeout))? {
            return Ok(false);
        }
        let mut changed = false;
        loop {
            match self.sock.recv_flags(libc::MSG_DONTWAIT) {
                Ok(buf) => changed |= self.changes(&buf),
                Err(NeighbourError::Socket { source, .. })
                    if source.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(changed);
                }
                Err(NeighbourError::Socket { source, .. })
                    if source.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    // Lost notifications: anything may have changed, and what is known of the
                    // neighbours may be old.
                    self.neighbours.clear();
                    changed = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the notifications in `buf` change a next hop (see the module's docs).
    fn changes(&mut self, buf: &[u8]) -> bool {
        let mut changed = false;
        for (ty, _flags, _seq, body) in messages(buf) {
            if ty != libc::RTM_NEWNEIGH && ty != libc::RTM_DELNEIGH {
                changed = true;
                continue;
            }
            let Some((addr, ifindex, state, mac)) = parse_neigh(body) else {
                changed = true;
                continue;
            };
            let usable = state.is_valid() || state.0 & NUD_NOARP != 0;
            changed |= self.neighbour((addr, ifindex), ty == libc::RTM_NEWNEIGH && usable, mac);
        }
        changed
    }

    /// Records a neighbour entry's announcement (`usable` with `mac`, or not); whether it is
    /// a change: anything but the same address as last announced for a usable entry. The
    /// first announcement of an entry is one (its address before is not known).
    fn neighbour(&mut self, key: (IpAddr, u32), usable: bool, mac: Option<MacAddr>) -> bool {
        match (usable, mac) {
            (true, Some(mac)) => self.neighbours.insert(key, mac) != Some(mac),
            _ => {
                self.neighbours.remove(&key);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_neighbour_confirmed_with_its_address_is_no_change() {
        let mut w = watch_routing().unwrap();
        let key = ("10.0.0.1".parse().unwrap(), 2);
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        assert!(
            w.neighbour(key, true, Some(a)),
            "first seen: its address before is unknown"
        );
        assert!(
            !w.neighbour(key, true, Some(a)),
            "stale, probed, reachable again: same MAC"
        );
        assert!(w.neighbour(key, true, Some(b)), "a new MAC");
        assert!(w.neighbour(key, false, None), "failed");
        assert!(
            w.neighbour(key, true, Some(b)),
            "usable again after failing"
        );
        assert!(
            w.neighbour(key, true, None),
            "usable without an address: a change"
        );
    }

    #[test]
    fn the_mask_holds_each_group_once() {
        assert_eq!(mask().count_ones() as usize, GROUPS.len());
        assert_eq!(mask() & 0b100, 0b100, "neighbours (group 3)");
        assert_eq!(mask() & (1 << 31), 1 << 31, "next-hop objects (group 32)");
    }
}
