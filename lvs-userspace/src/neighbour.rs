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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

// ---------------------------------------------------------------------------------------------
// Public operations.

/// The route the kernel would use for `addr`, gateway or not (`RTM_GETROUTE`), and the egress
/// interface's MAC. See [`route_to`] for the direct-routing check.
pub fn lookup_route(addr: IpAddr) -> Result<Route> {
    let sock = Netlink::open(0)?;
    lookup_route_on(&sock, addr, |ifindex| get_link_on(&sock, ifindex, None))
}

/// [`lookup_route`] over `sock`, finding the egress interface with `link`.
fn lookup_route_on(
    sock: &Netlink,
    addr: IpAddr,
    mut link: impl FnMut(u32) -> Result<Link>,
) -> Result<Route> {
    let request = format!("RTM_GETROUTE for {addr}");
    let (family, bytes) = addr_bytes(addr);
    let mut msg = Vec::with_capacity(64);
    // struct rtmsg
    msg.extend_from_slice(&[family, (bytes.len() * 8) as u8, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut msg, RTA_DST, &bytes);
    let answers = match sock.request(
        libc::RTM_GETROUTE,
        libc::NLM_F_REQUEST as u16,
        &msg,
        &request,
    ) {
        Ok(a) => a,
        Err(NeighbourError::Kernel { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EINVAL)
            ) =>
        {
            return Err(NeighbourError::NoRoute {
                addr,
                source: Some(source),
            });
        }
        Err(e) => return Err(e),
    };
    let (_, body) = answers
        .into_iter()
        .find(|(t, _)| *t == libc::RTM_NEWROUTE)
        .ok_or_else(|| malformed(&request, "no RTM_NEWROUTE in the answer"))?;
    if body.len() < 12 {
        return Err(malformed(&request, "short rtmsg"));
    }
    let rtm_type = body[7];
    match rtm_type {
        RTN_UNICAST => {}
        RTN_LOCAL => return Err(NeighbourError::Local { addr }),
        _ => return Err(NeighbourError::NoRoute { addr, source: None }),
    }
    let mut ifindex = None;
    let mut gateway = None;
    for (ty, val) in attrs(&body[12..]) {
        match ty {
            RTA_OIF if val.len() >= 4 => {
                ifindex = Some(u32::from_ne_bytes(val[..4].try_into().unwrap_or_default()))
            }
            RTA_GATEWAY => gateway = parse_ip(val),
            RTA_VIA if val.len() >= 2 => {
                let fam = u16::from_ne_bytes([val[0], val[1]]);
                gateway = parse_ip_family(fam as u8, &val[2..]);
            }
            _ => {}
        }
    }
    let ifindex = ifindex.ok_or_else(|| malformed(&request, "the route has no RTA_OIF"))?;
    let link = link(ifindex)?;
    let src_mac = link.mac.ok_or_else(|| NeighbourError::NoLinkAddress {
        ifindex,
        ifname: link.name.clone(),
    })?;
    Ok(Route {
        ifindex,
        ifname: link.name,
        gateway,
        src_mac,
    })
}

/// The on-link route to a real server: egress interface and its MAC. A real reached only
/// through a gateway is [`NeighbourError::NotOnLink`]; an address of this host is
/// [`NeighbourError::Local`].
pub fn route_to(addr: IpAddr) -> Result<Route> {
    on_link(addr, lookup_route(addr)?)
}

/// `route` if it reaches `addr` without a gateway.
fn on_link(addr: IpAddr, route: Route) -> Result<Route> {
    if let Some(gateway) = route.gateway {
        return Err(NeighbourError::NotOnLink {
            addr,
            gateway,
            ifname: route.ifname,
        });
    }
    Ok(route)
}

/// Resolves a real's MAC with [`DEFAULT_RESOLVE_TIMEOUT`]; see [`resolve_timeout`].
pub fn resolve(addr: IpAddr) -> Result<Neighbour> {
    resolve_timeout(addr, DEFAULT_RESOLVE_TIMEOUT)
}

/// Resolves a real's MAC: finds its on-link route ([`route_to`]), reads the neighbour table
/// (`RTM_GETNEIGH`), and if the entry is missing, incomplete or failed asks the kernel to
/// resolve it (`RTM_NEWNEIGH` with `NTF_USE`, like `ip neigh replace ADDR dev IF use`) and
/// re-reads it until it is valid or `timeout` has passed.
pub fn resolve_timeout(addr: IpAddr, timeout: Duration) -> Result<Neighbour> {
    let route = route_to(addr)?;
    let sock = Netlink::open(0)?;
    let deadline = Instant::now() + timeout;
    let mut last = NudState(0);
    let mut kicked_at: Option<Instant> = None;
    loop {
        if let Some((state, mac)) = get_neigh(&sock, addr, route.ifindex)? {
            last = state;
            if let (true, Some(mac)) = (state.is_valid(), mac) {
                return Ok(Neighbour {
                    addr,
                    ifindex: route.ifindex,
                    ifname: route.ifname,
                    mac,
                    src_mac: route.src_mac,
                    state,
                });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(NeighbourError::Unresolved {
                addr,
                ifname: route.ifname,
                timeout,
                state: last,
            });
        }
        // Kick resolution at once, and again every second: a FAILED entry needs a new kick.
        let kick = kicked_at.is_none_or(|t| {
            now.duration_since(t) >= Duration::from_secs(1) && last.0 & NudState::INCOMPLETE == 0
        });
        if kick {
            kick_resolution(&sock, addr, route.ifindex)?;
            kicked_at = Some(now);
        }
        std::thread::sleep(Duration::from_millis(20).min(deadline - now));
    }
}

/// One netlink connection for a caller that makes many requests (the agent's resolver
/// thread): a single socket, and the interfaces it has looked up kept until
/// [`Rtnl::forget_links`]. The free functions of this module open a socket per call.
pub struct Rtnl {
    sock: Netlink,
    links: HashMap<u32, Link>,
}

impl Rtnl {
    /// Opens the connection (in the calling thread's network namespace).
    pub fn open() -> Result<Rtnl> {
        Ok(Rtnl {
            sock: Netlink::open(0)?,
            links: HashMap::new(),
        })
    }

    /// Drops the cached interfaces: the next lookups read them again.
    pub fn forget_links(&mut self) {
        self.links.clear();
    }

    /// [`route_to`] over this connection.
    pub fn route_to(&mut self, addr: IpAddr) -> Result<Route> {
        let Rtnl { sock, links } = self;
        let route = lookup_route_on(sock, addr, |ifindex| {
            if let Some(link) = links.get(&ifindex) {
                return Ok(link.clone());
            }
            let link = get_link_on(sock, ifindex, None)?;
            links.insert(ifindex, link.clone());
            Ok(link)
        })?;
        on_link(addr, route)
    }

    /// [`neighbour_entry`] over this connection.
    pub fn neighbour_entry(
        &self,
        addr: IpAddr,
        ifindex: u32,
    ) -> Result<Option<(NudState, Option<MacAddr>)>> {
        get_neigh(&self.sock, addr, ifindex)
    }

    /// Asks the kernel to (re)resolve `addr` on `ifindex` (`NTF_USE`), without waiting for
    /// it. A valid entry is left alone by the kernel.
    pub fn probe_on(&self, addr: IpAddr, ifindex: u32) -> Result<()> {
        kick_resolution(&self.sock, addr, ifindex)
    }
}

/// The current neighbour entry for `addr` on `ifindex`, if there is one: state and MAC.
pub fn neighbour_entry(addr: IpAddr, ifindex: u32) -> Result<Option<(NudState, Option<MacAddr>)>> {
    let sock = Netlink::open(0)?;
    get_neigh(&sock, addr, ifindex)
}

/// The neighbour table: (address, ifindex) → state and link-layer address.
pub type NeighbourTable = HashMap<(IpAddr, u32), (NudState, Option<MacAddr>)>;

/// The whole neighbour table of this namespace (IPv4 and IPv6), keyed by (address, interface
/// index): one `RTM_GETNEIGH` dump, for callers following many addresses (cheaper than a
/// [`neighbour_entry`] per address).
pub fn neighbour_table() -> Result<NeighbourTable> {
    let sock = Netlink::open(0)?;
    let msg = ndmsg(libc::AF_UNSPEC as u8, 0, 0, 0);
    let answers = sock.dump(libc::RTM_GETNEIGH, &msg, "RTM_GETNEIGH dump")?;
    Ok(answers
        .into_iter()
        .filter(|(ty, _)| *ty == libc::RTM_NEWNEIGH)
        .filter_map(|(_, body)| parse_neigh(&body))
        .map(|(addr, ifindex, state, mac)| ((addr, ifindex), (state, mac)))
        .collect())
}

/// Every address configured on an interface of this namespace (IPv4 and IPv6): one
/// `RTM_GETADDR` dump. See [`is_local`] for one address.
pub fn local_addresses() -> Result<HashSet<IpAddr>> {
    let sock = Netlink::open(0)?;
    let msg = [libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0]; // struct ifaddrmsg
    let answers = sock.dump(libc::RTM_GETADDR, &msg, "RTM_GETADDR dump")?;
    let mut out = HashSet::new();
    for (ty, body) in answers {
        if ty != libc::RTM_NEWADDR || body.len() < 8 {
            continue;
        }
        for (aty, val) in attrs(&body[8..]) {
            if (aty == IFA_LOCAL || aty == IFA_ADDRESS)
                && let Some(a) = parse_ip_family(body[0], val)
            {
                out.insert(a);
            }
        }
    }
    Ok(out)
}

/// The interface that has `addr` configured, as (index, name); `None` if no interface has it.
pub fn interface_holding(addr: IpAddr) -> Result<Option<(u32, String)>> {
    let sock = Netlink::open(0)?;
    let (family, _) = addr_bytes(addr);
    let msg = [family, 0, 0, 0, 0, 0, 0, 0]; // struct ifaddrmsg
    let request = format!("RTM_GETADDR dump (looking for {addr})");
    let answers = sock.dump(libc::RTM_GETADDR, &msg, &request)?;
    for (ty, body) in answers {
        if ty != libc::RTM_NEWADDR || body.len() < 8 {
            continue;
        }
        let index = u32::from_ne_bytes(body[4..8].try_into().unwrap_or_default());
        for (aty, val) in attrs(&body[8..]) {
            if (aty == IFA_LOCAL || aty == IFA_ADDRESS)
                && parse_ip_family(body[0], val) == Some(addr)
            {
                let link = link_by_index(index)?;
                return Ok(Some((index, link.name)));
            }
        }
    }
    Ok(None)
}

/// Whether `addr` is loopback or configured on any interface of this host (in the calling
/// thread's network namespace): a real with such an address is served locally.
pub fn is_local(addr: IpAddr) -> Result<bool> {
    let loopback = match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    Ok(loopback || interface_holding(addr)?.is_some())
}

/// The interface with this index.
pub fn link_by_index(ifindex: u32) -> Result<Link> {
    get_link(ifindex, None)
}

/// The interface with this name.
pub fn link_by_name(name: &str) -> Result<Link> {
    get_link(0, Some(name))
}

/// Subscribes to neighbour-table changes (the `RTNLGRP_NEIGH` multicast group).
///
/// The kernel announces an entry whenever its state or link-layer address changes. Linux on
/// the director only learns that a real's MAC changed when the real announces it (gratuitous
/// ARP, e.g. with `arp_notify=1`; unsolicited NA) or when the entry is re-probed after going
/// stale, so an agent should combine this with periodic probes ([`Rtnl::probe_on`]).
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

// ---------------------------------------------------------------------------------------------
// Netlink plumbing.

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_VIA: u16 = 18;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const NTF_USE: u8 = 0x01;
const RTMGRP_NEIGH: u32 = 4;
const NLMSG_HDRLEN: usize = 16;
const NLM_F_DUMP_INTR: u16 = 0x10;

static SEQ: AtomicU32 = AtomicU32::new(1);

struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    fn open(groups: u32) -> Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(sock_err("socket"));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = groups;
        // SAFETY: sa is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(sock_err("bind"));
        }
        Ok(Netlink { fd })
    }

    fn send(&self, ty: u16, flags: u16, payload: &[u8]) -> Result<u32> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let len = NLMSG_HDRLEN + payload.len();
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(payload);
        // SAFETY: sockaddr_nl zeroed = the kernel.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: buf and sa are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(sock_err("sendto"));
        }
        Ok(seq)
    }

    fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(NeighbourError::Socket {
                op: "poll",
                source: e,
            });
        }
        Ok(rc > 0)
    }

    fn recv(&self) -> Result<Vec<u8>> {
        self.recv_flags(0)
    }

    fn recv_flags(&self, flags: i32) -> Result<Vec<u8>> {
        // Not zeroed: the kernel writes what is read (a notification is a few hundred bytes).
        let mut buf = Vec::<u8>::with_capacity(65536);
        // SAFETY: buf's spare capacity is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.capacity(),
                flags,
            )
        };
        if n < 0 {
            return Err(sock_err("recv"));
        }
        // SAFETY: the kernel initialised the first n bytes (n <= capacity).
        unsafe { buf.set_len(n as usize) };
        Ok(buf)
    }

    /// Asks for a receive buffer of `bytes` (beyond the `rmem_max` limit when privileged).
    fn set_receive_buffer(&self, bytes: i32) {
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: setsockopt with a valid int of the given length.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const i32).cast(),
                    std::mem::size_of::<i32>() as u32,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    /// Sends a request and collects the answers (type, body) up to the ACK or NLMSG_DONE. A
    /// dump the kernel marks inconsistent (`NLM_F_DUMP_INTR`) is
    /// [`NeighbourError::DumpInterrupted`]; one that ends in an error is
    /// [`NeighbourError::Kernel`]: neither is taken as a complete, shorter table.
    fn request(
        &self,
        ty: u16,
        flags: u16,
        payload: &[u8],
        what: &str,
    ) -> Result<Vec<(u16, Vec<u8>)>> {
        let dump = flags & libc::NLM_F_DUMP as u16 == libc::NLM_F_DUMP as u16;
        let flags = if dump {
            flags
        } else {
            flags | libc::NLM_F_ACK as u16
        };
        let seq = self.send(ty, flags, payload)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut answers = Answers::new(seq, what);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(NeighbourError::Socket {
                    op: "receive (timed out)",
                    source: io::Error::from(io::ErrorKind::TimedOut),
                });
            }
            if !self.wait_readable(Some(deadline - now))? {
                continue;
            }
            let buf = self.recv()?;
            if let Some(out) = answers.take(&buf)? {
                return Ok(out);
            }
        }
    }

    /// A dump request ([`Netlink::request`] with `NLM_F_DUMP`), asked again when the kernel
    /// reports it interrupted, at most [`DUMP_ATTEMPTS`] times.
    fn dump(&self, ty: u16, payload: &[u8], what: &str) -> Result<Vec<(u16, Vec<u8>)>> {
        retry_interrupted(|| {
            self.request(
                ty,
                (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
                payload,
                what,
            )
        })
    }
}

/// How many times a dump the kernel reports interrupted (the table changed while it was read)
/// is asked for before giving up.
const DUMP_ATTEMPTS: usize = 4;

/// Runs `f` until it gives anything but [`NeighbourError::DumpInterrupted`], at most
/// [`DUMP_ATTEMPTS`] times; the last interruption is returned when every attempt was one.
fn retry_interrupted<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(NeighbourError::DumpInterrupted { .. }) if attempt < DUMP_ATTEMPTS => {
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Netlink messages as (type, body).
type Messages = Vec<(u16, Vec<u8>)>;

/// The answers to one request, gathered from the buffers read.
struct Answers<'a> {
    seq: u32,
    what: &'a str,
    out: Messages,
    /// A message of the dump carried `NLM_F_DUMP_INTR`.
    interrupted: bool,
}

impl<'a> Answers<'a> {
    fn new(seq: u32, what: &'a str) -> Self {
        Answers {
            seq,
            what,
            out: Vec::new(),
            interrupted: false,
        }
    }

    /// Takes the messages of one buffer; the answers once the request is complete (its ACK or
    /// NLMSG_DONE was read), `None` while more are to come.
    fn take(&mut self, buf: &[u8]) -> Result<Option<Messages>> {
        for (mty, mflags, mseq, body) in messages(buf) {
            if mseq != self.seq {
                continue;
            }
            if mflags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match mty as i32 {
                libc::NLMSG_DONE | libc::NLMSG_ERROR => {
                    // NLMSG_DONE carries the dump's error code (0: complete), NLMSG_ERROR the
                    // request's (0: the ACK).
                    let code = body
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    let code = match (mty as i32, code) {
                        (libc::NLMSG_ERROR, None) => {
                            return Err(malformed(self.what, "short NLMSG_ERROR"));
                        }
                        // An old kernel's DONE may carry nothing.
                        (_, code) => code.unwrap_or(0),
                    };
                    if code != 0 {
                        return Err(NeighbourError::Kernel {
                            request: self.what.to_string(),
                            source: io::Error::from_raw_os_error(code.saturating_neg()),
                        });
                    }
                    if self.interrupted {
                        return Err(NeighbourError::DumpInterrupted {
                            request: self.what.to_string(),
                        });
                    }
                    return Ok(Some(std::mem::take(&mut self.out)));
                }
                _ => self.out.push((mty, body.to_vec())),
            }
        }
        Ok(None)
    }
}

fn sock_err(op: &'static str) -> NeighbourError {
    NeighbourError::Socket {
        op,
        source: io::Error::last_os_error(),
    }
}

fn malformed(request: &str, detail: &str) -> NeighbourError {
    NeighbourError::Malformed {
        request: request.to_string(),
        detail: detail.to_string(),
    }
}

/// Splits a buffer into netlink messages: (type, flags, seq, body).
fn messages(buf: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[off..];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        let flags = u16::from_ne_bytes([h[6], h[7]]);
        let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        out.push((ty, flags, seq, &h[NLMSG_HDRLEN..len]));
        off += (len + 3) & !3;
    }
    out
}

/// Splits attributes (rtattr) into (type, value).
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff; // strip NLA_F_NESTED etc.
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((ty, &buf[4..len]));
        let adv = ((len + 3) & !3).min(buf.len());
        buf = &buf[adv..];
    }
    out
}

fn push_attr(msg: &mut Vec<u8>, ty: u16, val: &[u8]) {
    let len = 4 + val.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(val);
    while !msg.len().is_multiple_of(4) {
        msg.push(0);
    }
}

fn addr_bytes(addr: IpAddr) -> (u8, Vec<u8>) {
    match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    }
}

fn parse_ip(val: &[u8]) -> Option<IpAddr> {
    match val.len() {
        4 => parse_ip_family(libc::AF_INET as u8, val),
        16 => parse_ip_family(libc::AF_INET6 as u8, val),
        _ => None,
    }
}

fn parse_ip_family(family: u8, val: &[u8]) -> Option<IpAddr> {
    match family as i32 {
        libc::AF_INET => {
            let b: [u8; 4] = val.get(..4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        libc::AF_INET6 => {
            let b: [u8; 16] = val.get(..16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

fn ndmsg(family: u8, ifindex: u32, state: u16, flags: u8) -> Vec<u8> {
    let mut msg = Vec::with_capacity(12);
    msg.extend_from_slice(&[family, 0, 0, 0]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&state.to_ne_bytes());
    msg.push(flags);
    msg.push(0);
    msg
}

/// Parses an ndmsg + attributes: (addr, ifindex, state, mac).
fn parse_neigh(body: &[u8]) -> Option<(IpAddr, u32, NudState, Option<MacAddr>)> {
    if body.len() < 12 {
        return None;
    }
    let family = body[0];
    let ifindex = i32::from_ne_bytes(body[4..8].try_into().ok()?) as u32;
    let state = NudState(u16::from_ne_bytes([body[8], body[9]]));
    let mut addr = None;
    let mut mac = None;
    for (ty, val) in attrs(&body[12..]) {
        match ty {
            NDA_DST => addr = parse_ip_family(family, val),
            NDA_LLADDR if val.len() == 6 => {
                mac = Some(MacAddr(val.try_into().ok()?));
            }
            _ => {}
        }
    }
    Some((addr?, ifindex, state, mac))
}

fn get_neigh(
    sock: &Netlink,
    addr: IpAddr,
    ifindex: u32,
) -> Result<Option<(NudState, Option<MacAddr>)>> {
    let (family, bytes) = addr_bytes(addr);
    let mut msg = ndmsg(family, ifindex, 0, 0);
    push_attr(&mut msg, NDA_DST, &bytes);
    let request = format!("RTM_GETNEIGH for {addr} on ifindex {ifindex}");
    let answers = match sock.request(
        libc::RTM_GETNEIGH,
        libc::NLM_F_REQUEST as u16,
        &msg,
        &request,
    ) {
        Ok(a) => a,
        Err(NeighbourError::Kernel { source, .. })
            if source.raw_os_error() == Some(libc::ENOENT) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    for (ty, body) in answers {
        if ty != libc::RTM_NEWNEIGH {
            continue;
        }
        if let Some((a, idx, state, mac)) = parse_neigh(&body)
            && a == addr
            && idx == ifindex
        {
            return Ok(Some((state, mac)));
        }
    }
    Ok(None)
}

fn kick_resolution(sock: &Netlink, addr: IpAddr, ifindex: u32) -> Result<()> {
    let (family, bytes) = addr_bytes(addr);
    let mut msg = ndmsg(family, ifindex, NudState::REACHABLE, NTF_USE);
    push_attr(&mut msg, NDA_DST, &bytes);
    sock.request(
        libc::RTM_NEWNEIGH,
        (libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16,
        &msg,
        &format!("RTM_NEWNEIGH (NTF_USE) for {addr} on ifindex {ifindex}"),
    )?;
    Ok(())
}

fn get_link(ifindex: u32, name: Option<&str>) -> Result<Link> {
    get_link_on(&Netlink::open(0)?, ifindex, name)
}

fn get_link_on(sock: &Netlink, ifindex: u32, name: Option<&str>) -> Result<Link> {
    let body = get_link_message(sock, ifindex, name)?;
    let index = i32::from_ne_bytes(body[4..8].try_into().unwrap_or_default()) as u32;
    let mut link = Link {
        ifindex: index,
        name: String::new(),
        mac: None,
    };
    for (ty, val) in attrs(&body[16..]) {
        match ty {
            IFLA_IFNAME => {
                let end = val.iter().position(|&b| b == 0).unwrap_or(val.len());
                link.name = String::from_utf8_lossy(&val[..end]).into_owned();
            }
            IFLA_ADDRESS if val.len() == 6 => {
                link.mac = val.try_into().ok().map(MacAddr);
            }
            _ => {}
        }
    }
    Ok(link)
}

/// An XDP program attached to an interface, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpAttachment {
    /// The program's id (`bpftool prog show id ID`).
    pub prog_id: u32,
    /// How it is attached: `driver`, `generic`, `offload` or `multiple`.
    pub mode: &'static str,
}

/// The XDP program attached to interface `ifindex`, if any (`IFLA_XDP` of `RTM_GETLINK`).
pub fn xdp_of(ifindex: u32) -> Result<Option<XdpAttachment>> {
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const IFLA_XDP_PROG_ID: u16 = 4;
    let body = get_link_message(&Netlink::open(0)?, ifindex, None)?;
    let Some((_, xdp)) = attrs(&body[16..]).into_iter().find(|(t, _)| *t == IFLA_XDP) else {
        return Ok(None);
    };
    let mut mode = 0u8;
    let mut prog_id = 0u32;
    for (ty, val) in attrs(xdp) {
        match ty {
            IFLA_XDP_ATTACHED if !val.is_empty() => mode = val[0],
            IFLA_XDP_PROG_ID if val.len() >= 4 => {
                prog_id = u32::from_ne_bytes(val[..4].try_into().unwrap_or_default())
            }
            _ => {}
        }
    }
    // XDP_ATTACHED_NONE, DRV, SKB, HW, MULTI.
    let mode = match mode {
        0 => return Ok(None),
        1 => "driver",
        2 => "generic",
        3 => "offload",
        _ => "multiple",
    };
    Ok(Some(XdpAttachment { prog_id, mode }))
}

/// The body (ifinfomsg and attributes) of the kernel's `RTM_NEWLINK` for one interface, found
/// by index or name; at least 16 bytes long.
fn get_link_message(sock: &Netlink, ifindex: u32, name: Option<&str>) -> Result<Vec<u8>> {
    let mut msg = Vec::with_capacity(32);
    // struct ifinfomsg
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    if let Some(name) = name {
        let mut v = name.as_bytes().to_vec();
        v.push(0);
        push_attr(&mut msg, IFLA_IFNAME, &v);
    }
    let what = match name {
        Some(n) => format!("named {n:?}"),
        None => format!("with index {ifindex}"),
    };
    let request = format!("RTM_GETLINK for the interface {what}");
    let answers = match sock.request(
        libc::RTM_GETLINK,
        libc::NLM_F_REQUEST as u16,
        &msg,
        &request,
    ) {
        Ok(a) => a,
        Err(NeighbourError::Kernel { source, .. })
            if matches!(source.raw_os_error(), Some(libc::ENODEV | libc::ENOENT)) =>
        {
            return Err(NeighbourError::NoSuchInterface { what });
        }
        Err(e) => return Err(e),
    };
    let (_, body) = answers
        .into_iter()
        .find(|(t, _)| *t == libc::RTM_NEWLINK)
        .ok_or_else(|| malformed(&request, "no RTM_NEWLINK in the answer"))?;
    if body.len() < 16 {
        return Err(malformed(&request, "short ifinfomsg"));
    }
    Ok(body.to_vec())
}

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

#[cfg(test)]
mod dump_tests {
    use super::*;

    /// One netlink message: header (length, type, flags, seq, pid) and body, padded.
    fn msg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    fn neigh(last: u8) -> Vec<u8> {
        let mut b = ndmsg(libc::AF_INET as u8, 2, NudState::REACHABLE, 0);
        push_attr(&mut b, NDA_DST, &[10, 0, 0, last]);
        push_attr(&mut b, NDA_LLADDR, &[2, 0, 0, 0, 0, last]);
        b
    }

    const MULTI: u16 = libc::NLM_F_MULTI as u16;

    fn done(code: i32) -> Vec<u8> {
        msg(libc::NLMSG_DONE as u16, MULTI, 7, &code.to_ne_bytes())
    }

    #[test]
    fn a_complete_dump_gives_its_entries() {
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(msg(libc::RTM_NEWNEIGH, MULTI, 8, &neigh(9))); // another request's
        assert!(a.take(&buf).unwrap().is_none());
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(2));
        buf.extend(done(0));
        let out = a.take(&buf).unwrap().expect("complete after NLMSG_DONE");
        assert_eq!(out.len(), 2);
        let (addr, ..) = parse_neigh(&out[1].1).unwrap();
        assert_eq!(addr, IpAddr::from([10, 0, 0, 2]));
    }

    #[test]
    fn a_dump_marked_interrupted_is_not_complete() {
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(msg(
            libc::RTM_NEWNEIGH,
            MULTI | NLM_F_DUMP_INTR,
            7,
            &neigh(2),
        ));
        buf.extend(done(0));
        assert!(matches!(
            a.take(&buf),
            Err(NeighbourError::DumpInterrupted { .. })
        ));
        // The flag on NLMSG_DONE alone counts too.
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(msg(
            libc::NLMSG_DONE as u16,
            MULTI | NLM_F_DUMP_INTR,
            7,
            &0i32.to_ne_bytes(),
        ));
        assert!(matches!(
            a.take(&buf),
            Err(NeighbourError::DumpInterrupted { .. })
        ));
    }

    #[test]
    fn a_dump_ending_in_an_error_is_an_error() {
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(done(-libc::ENOBUFS));
        match a.take(&buf) {
            Err(NeighbourError::Kernel { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOBUFS))
            }
            other => panic!("expected the dump's error, got {other:?}"),
        }
        // NLMSG_ERROR with an error in a dump, and a short NLMSG_ERROR.
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let buf = msg(
            libc::NLMSG_ERROR as u16,
            0,
            7,
            &(-libc::EINTR).to_ne_bytes(),
        );
        assert!(matches!(a.take(&buf), Err(NeighbourError::Kernel { .. })));
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let buf = msg(libc::NLMSG_ERROR as u16, 0, 7, &[0, 0]);
        assert!(matches!(
            a.take(&buf),
            Err(NeighbourError::Malformed { .. })
        ));
    }

    #[test]
    fn an_ack_completes_a_request() {
        let mut a = Answers::new(7, "RTM_NEWNEIGH");
        let buf = msg(libc::NLMSG_ERROR as u16, 0, 7, &[0; 20]);
        assert_eq!(a.take(&buf).unwrap(), Some(vec![]));
    }

    #[test]
    fn an_interrupted_dump_is_asked_again_a_bounded_number_of_times() {
        let interrupted = || NeighbourError::DumpInterrupted {
            request: "RTM_GETNEIGH dump".into(),
        };
        let mut calls = 0;
        let r = retry_interrupted(|| {
            calls += 1;
            if calls < 3 {
                Err(interrupted())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: Result<()> = retry_interrupted(|| {
            calls += 1;
            Err(interrupted())
        });
        assert!(matches!(r, Err(NeighbourError::DumpInterrupted { .. })));
        assert_eq!(calls, DUMP_ATTEMPTS);
        // Other errors are not retried.
        let mut calls = 0;
        let r: Result<()> = retry_interrupted(|| {
            calls += 1;
            Err(malformed("x", "y"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No input makes the message, attribute or neighbour parsers panic.
        #[test]
        fn parsers_take_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            for (_, _, _, body) in messages(&buf) {
                let _ = parse_neigh(body);
                let _ = attrs(body);
            }
            let _ = attrs(&buf);
            let _ = parse_neigh(&buf);
            let mut a = Answers::new(7, "any");
            let _ = a.take(&buf);
        }

        /// Attributes written with `push_attr` are read back by `attrs`, in order.
        #[test]
        fn attributes_round_trip(
            list in proptest::collection::vec(
                (0u16..0x4000, proptest::collection::vec(any::<u8>(), 0..40)),
                0..12,
            )
        ) {
            let mut msg = Vec::new();
            for (ty, val) in &list {
                push_attr(&mut msg, *ty, val);
            }
            let back: Vec<(u16, Vec<u8>)> =
                attrs(&msg).into_iter().map(|(t, v)| (t, v.to_vec())).collect();
            prop_assert_eq!(back, list);
        }

        /// Messages laid end to end (each padded to 4 bytes) are split back as they were.
        #[test]
        fn messages_round_trip(
            list in proptest::collection::vec(
                (any::<u16>(), any::<u16>(), any::<u32>(),
                 proptest::collection::vec(any::<u8>(), 0..64)),
                0..8,
            )
        ) {
            let mut buf = Vec::new();
            for (ty, flags, seq, body) in &list {
                buf.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
                buf.extend_from_slice(&ty.to_ne_bytes());
                buf.extend_from_slice(&flags.to_ne_bytes());
                buf.extend_from_slice(&seq.to_ne_bytes());
                buf.extend_from_slice(&0u32.to_ne_bytes());
                buf.extend_from_slice(body);
                while !buf.len().is_multiple_of(4) {
                    buf.push(0);
                }
            }
            let back: Vec<_> = messages(&buf)
                .into_iter()
                .map(|(t, f, s, b)| (t, f, s, b.to_vec()))
                .collect();
            prop_assert_eq!(back, list);
        }

        /// A neighbour entry built as the kernel sends it is read back.
        #[test]
        fn neighbour_round_trip(
            v4 in any::<[u8; 4]>(),
            ifindex in any::<u32>(),
            state in any::<u16>(),
            mac in proptest::option::of(any::<[u8; 6]>()),
        ) {
            let mut body = ndmsg(libc::AF_INET as u8, ifindex, state, 0);
            push_attr(&mut body, NDA_DST, &v4);
            if let Some(m) = mac {
                push_attr(&mut body, NDA_LLADDR, &m);
            }
            let (addr, idx, st, back) = parse_neigh(&body).expect("parsed");
            prop_assert_eq!(addr, IpAddr::from(v4));
            prop_assert_eq!(idx, ifindex);
            prop_assert_eq!(st.0, state);
            prop_assert_eq!(back.map(|m| m.0), mac);
        }
    }
}
