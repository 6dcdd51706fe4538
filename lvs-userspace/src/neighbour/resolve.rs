//! Neighbour resolution: a real's MAC from the neighbour (ARP/ND) table, asking the kernel to
//! resolve it when it is missing, and the table itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{
    DEFAULT_RESOLVE_TIMEOUT, Link, MacAddr, Neighbour, NeighbourError, NudState, Result, Route,
};
use super::{
    link::get_link_on,
    netlink::{NDA_DST, NTF_USE, Netlink, addr_bytes, ndmsg, parse_neigh, push_attr},
    route::{lookup_route_on, on_link, route_to},
};

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
