//! A virtual service ([`VirtualService`]): its protocol, its fallback ("sorry") server, and,
//! for a firewall-mark service, the mark and the destinations the host's rules match.

use std::{net::SocketAddr, time::Duration};

use super::{CheckSpec, Forwarding, Location, RealServer, Scheduler};

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A fallback ("sorry") server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// Its address; port 0 means the service's port.
    pub addr: SocketAddr,
    /// How it is reached.
    pub forwarding: Forwarding,
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    /// Where it was configured.
    pub location: Location,
    /// `servicename`, if any.
    pub name: Option<String>,
    /// `comment`, if any.
    pub comment: Option<String>,
    /// VIP and port; port 0 means every port. For a firewall-mark service, the first of its
    /// matches (the unspecified address of its family until the host's rules are read).
    pub vip: SocketAddr,
    /// Transport protocol (a firewall-mark service: its first match's).
    pub protocol: Protocol,
    /// A firewall-mark service (`virtual=N`, `virtual_server fwmark N`): the mark, and the
    /// VIP/protocol/port matches derived from the host's rules that set it.
    pub fwmark: Option<Fwmark>,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// `persistent` timeout; `None` when not persistent.
    pub persistent: Option<Duration>,
    /// `netmask` for persistence, as a prefix length within the VIP's family.
    pub netmask_prefix: u8,
    /// `ops`: IPVS's one-packet scheduling. Each UDP packet is scheduled on its own and no
    /// connection entry is kept (a UDP or firewall-mark service only).
    pub one_packet: bool,
    /// Real servers, in file order, ranges expanded.
    pub reals: Vec<RealServer>,
    /// The fallback server (the service's own or the global one for its family).
    pub fallback: Option<Fallback>,
    /// `fallbackcommand`.
    pub fallback_command: Option<String>,
    /// `quiescent`: a failed real keeps its established flows (weight 0) instead of being
    /// removed.
    pub quiescent: bool,
    /// Health checking.
    pub check: CheckSpec,
    /// Further checks every real must pass too (keepalived: a real with several checkers, an
    /// `HTTP_GET` with several `url` blocks; TOML `[[virtual.also_check]]`): a real is up only
    /// when all its checks are. The real's `request`/`receive`/`digest` overrides apply to
    /// `check` only.
    pub also_checks: Vec<CheckSpec>,
    /// keepalived's `quorum`: the summed weight of the reals that are up below which the
    /// service turns to its sorry server (1: ldirectord's "no real is up").
    pub quorum: u32,
    /// keepalived's `hysteresis` around the quorum: lost below `quorum - hysteresis`,
    /// regained at `quorum + hysteresis`.
    pub hysteresis: u32,
    /// keepalived's `quorum_up`: a command run (no argument added) when the service regains
    /// its quorum.
    pub quorum_up: Option<String>,
    /// keepalived's `quorum_down`: run when the service loses its quorum.
    pub quorum_down: Option<String>,
}

/// A firewall-mark virtual service: packets the host's netfilter rules mark with `mark`. XDP
/// runs before netfilter, so lvs turns those rules into the matches the data plane looks up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fwmark {
    /// The mark (`virtual=N`).
    pub mark: u32,
    /// IPv6 (`virtual6=N`, keepalived's `ip_family inet6`) rather than IPv4.
    pub v6: bool,
    /// What the rules setting the mark match, sorted, every one pointing to this service
    /// (empty until the host's rules are read: see `config::fwmark`).
    pub matches: Vec<MarkMatch>,
}

/// One destination a mark rule matches: address, protocol and port (0: every port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkMatch {
    /// Destination address and port (0: every port).
    pub vip: SocketAddr,
    /// Transport protocol.
    pub protocol: Protocol,
}
