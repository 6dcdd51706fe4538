//! Real servers' MAC addresses over rtnetlink: routes, the neighbour (ARP/ND) table, and its
//! changes.
//!
//! Direct routing rewrites only the destination MAC of a packet, so the agent needs, for every
//! real server, the interface that reaches it on-link, that interface's MAC (the new source MAC)
//! and the real's MAC. This module asks the kernel through a raw `NETLINK_ROUTE` socket (no
//! netlink crate) and is **synchronous**: every call blocks the calling thread for at most its
//! timeout (a netlink request at most 2 s, [`resolve`] [`DEFAULT_RESOLVE_TIMEOUT`]). From async
//! code call it through `tokio::task::spawn_blocking`. Changes can be followed with the
//! blocking [`watch`] or the tokio-driven [`watch_async`].
//!
//! Keeping a real's MAC fresh: packets the XDP program forwards bypass the kernel's neighbour
//! state machine, so the director's entry for a real is only confirmed or re-probed when the
//! director's own stack talks to the real (health checks do) or when [`Rtnl::probe_on`] is
//! called. The kernel announces a new MAC (seen by the watches) when the real sends a
//! gratuitous ARP or unsolicited NA (e.g. `arp_notify=1`), or when a stale entry's unicast
//! probes fail and it is resolved again by broadcast.
//!
//! Every call works in the network namespace of the *calling thread*, so it composes with
//! [`crate::lab::run_in_netns`].

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// How long [`resolve`] waits for an answer unless told otherwise.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one netlink request may take before it is given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The bytes of the address.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = NeighbourError;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NeighbourError::BadMac {
            text: s.to_string(),
        };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourError {
    /// A netlink socket operation failed.
    #[error("netlink {op} failed")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered a request with an error.
    #[error("the kernel refused {request}")]
    Kernel {
        /// The request, e.g. `RTM_GETROUTE for 10.0.0.1`.
        request: String,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
    },
    /// The kernel's answer could not be parsed.
    #[error("malformed netlink answer to {request}: {detail}")]
    Malformed {
        /// The request.
        request: String,
        /// What was wrong.
        detail: String,
    },
    /// There is no route to the address.
    #[error("there is no route to {addr}")]
    NoRoute {
        /// The address.
        addr: IpAddr,
        /// The kernel's error, if it gave one.
        #[source]
        source: Option<io::Error>,
    },
    /// The address is routed through a gateway, which direct routing cannot use.
    #[error(
        "real {addr} is not on a directly connected network of the director (routed via \
         gateway {gateway} on {ifname}): direct routing needs it on-link"
    )]
    NotOnLink {
        /// The real's address.
        addr: IpAddr,
        /// The gateway the kernel would use.
        gateway: IpAddr,
        /// The egress interface.
        ifname: String,
    },
    /// The address is one of this host's own addresses.
    #[error("{addr} is an address of this host, it has no neighbour entry")]
    Local {
        /// The address.
        addr: IpAddr,
    },
    /// The route's egress interface has no Ethernet address.
    #[error("interface {ifname} (index {ifindex}) has no Ethernet address")]
    NoLinkAddress {
        /// Interface index.
        ifindex: u32,
        /// Interface name.
        ifname: String,
    },
    /// No interface with that index or name exists.
    #[error("no interface {what}")]
    NoSuchInterface {
        /// The index or name asked for.
        what: String,
    },
    /// Nobody answered ARP/ND for the address within the timeout.
    #[error(
        "no neighbour answered for {addr} on {ifname} within {timeout:?} (last state: {state})"
    )]
    Unresolved {
        /// The address.
        addr: IpAddr,
        /// The interface the kernel asked on.
        ifname: String,
        /// How long was waited.
        timeout: Duration,
        /// The last neighbour state seen.
        state: NudState,
    },
    /// The kernel dropped neighbour notifications because they were not read fast enough
    /// (`ENOBUFS`). The watch stays usable; re-resolve every address you follow.
    #[error("neighbour notifications were lost (socket overrun); re-resolve what you follow")]
    EventsLost,
    /// The kernel marked a dump inconsistent (`NLM_F_DUMP_INTR`: the table changed while it
    /// was read), so it may miss entries; ask again.
    #[error("{request} was interrupted by a change of the table (asked {DUMP_ATTEMPTS} times)")]
    DumpInterrupted {
        /// The request.
        request: String,
    },
    /// A MAC address text could not be parsed.
    #[error("{text:?} is not a MAC address")]
    BadMac {
        /// The text.
        text: String,
    },
}

type Result<T, E = NeighbourError> = std::result::Result<T, E>;

/// A neighbour entry's state (`NUD_*` bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NudState(pub u16);

impl NudState {
    /// Resolution under way.
    pub const INCOMPLETE: u16 = 0x01;
    /// Confirmed recently.
    pub const REACHABLE: u16 = 0x02;
    /// Known, not confirmed recently.
    pub const STALE: u16 = 0x04;
    /// Waiting before probing.
    pub const DELAY: u16 = 0x08;
    /// Probing.
    pub const PROBE: u16 = 0x10;
    /// Resolution failed.
    pub const FAILED: u16 = 0x20;
    /// No resolution needed.
    pub const NOARP: u16 = 0x40;
    /// Static entry.
    pub const PERMANENT: u16 = 0x80;

    /// Whether an entry in this state holds a usable link-layer address.
    pub fn is_valid(self) -> bool {
        self.0 & (Self::REACHABLE | Self::STALE | Self::DELAY | Self::PROBE | Self::PERMANENT) != 0
    }
}

impl fmt::Display for NudState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u16, &str); 8] = [
            (NudState::INCOMPLETE, "INCOMPLETE"),
            (NudState::REACHABLE, "REACHABLE"),
            (NudState::STALE, "STALE"),
            (NudState::DELAY, "DELAY"),
            (NudState::PROBE, "PROBE"),
            (NudState::FAILED, "FAILED"),
            (NudState::NOARP, "NOARP"),
            (NudState::PERMANENT, "PERMANENT"),
        ];
        if self.0 == 0 {
            return f.write_str("NONE");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for NudState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The route the kernel would use to reach an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Egress interface index.
    pub ifindex: u32,
    /// Egress interface name.
    pub ifname: String,
    /// The gateway, if the address is not on-link. Always `None` from [`route_to`].
    pub gateway: Option<IpAddr>,
    /// The egress interface's MAC: the source MAC of forwarded frames.
    pub src_mac: MacAddr,
}

/// A resolved neighbour: where to send a real's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The real's address.
    pub addr: IpAddr,
    /// Egress interface index.
    pub ifindex: u32,
    /// Egress interface name.
    pub ifname: String,
    /// The real's MAC (destination MAC).
    pub mac: MacAddr,
    /// The egress interface's MAC (source MAC).
    pub src_mac: MacAddr,
    /// The entry's state when it was read.
    pub state: NudState,
}

/// An interface: index, name and (for Ethernet-like links) MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Link-layer address, if it is 6 bytes long.
    pub mac: Option<MacAddr>,
}

/// What happened to a neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourEventKind {
    /// Added or changed (`RTM_NEWNEIGH`).
    Changed,
    /// Removed (`RTM_DELNEIGH`).
    Deleted,
}

/// A change of the neighbour table, as announced by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourEvent {
    /// Added/changed or deleted.
    pub kind: NeighbourEventKind,
    /// The neighbour's address.
    pub addr: IpAddr,
    /// The interface index of the entry.
    pub ifindex: u32,
    /// The link-layer address, when the entry has one.
    pub mac: Option<MacAddr>,
    /// The entry's state.
    pub state: NudState,
}

use netlink::DUMP_ATTEMPTS;

mod link;
mod netlink;
mod resolve;
mod route;
mod routing;
mod watch;

pub use link::{
    XdpAttachment, interface_holding, is_local, link_by_index, link_by_name, local_addresses,
    xdp_of,
};
pub use resolve::{
    NeighbourTable, Rtnl, neighbour_entry, neighbour_table, resolve, resolve_timeout,
};
pub use route::{lookup_route, route_to};
pub use routing::{RoutingWatch, watch_routing};
pub use watch::{AsyncNeighbourWatch, NeighbourWatch, watch, watch_async};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:00:0a:FF:00:01".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x0a, 0xff, 0, 1]);
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        assert!("02:00:0a:ff:00".parse::<MacAddr>().is_err());
        assert!("02:00:0a:ff:00:01:02".parse::<MacAddr>().is_err());
        assert!("zz:00:0a:ff:00:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn nud_state_display() {
        assert_eq!(NudState(0).to_string(), "NONE");
        assert_eq!(NudState(NudState::FAILED).to_string(), "FAILED");
        assert!(NudState(NudState::STALE).is_valid());
        assert!(!NudState(NudState::INCOMPLETE).is_valid());
    }

    #[test]
    fn loopback_is_local_and_routes() {
        assert!(is_local("127.0.0.1".parse().unwrap()).unwrap());
        assert!(is_local("::1".parse().unwrap()).unwrap());
        let lo = link_by_name("lo").unwrap();
        assert_eq!(lo.ifindex, 1);
        assert!(matches!(
            route_to("127.0.0.1".parse().unwrap()),
            Err(NeighbourError::Local { .. })
        ));
    }
}
