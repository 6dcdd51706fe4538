//! Route lookup (`RTM_GETROUTE`): the route the kernel would use for an address, and the
//! on-link check direct routing needs.

use std::net::IpAddr;

use super::{Link, NeighbourError, Result, Route};
use super::{
    link::get_link_on,
    netlink::{
        Netlink, RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_VIA, RTN_LOCAL, RTN_UNICAST, addr_bytes, attrs,
        malformed, parse_ip, parse_ip_family, push_attr,
    },
};

/// The route the kernel would use for `addr`, gateway or not (`RTM_GETROUTE`), and the egress
/// interface's MAC. See [`route_to`] for the direct-routing check.
pub fn lookup_route(addr: IpAddr) -> Result<Route> {
    let sock = Netlink::open(0)?;
    lookup_route_on(&sock, addr, |ifindex| get_link_on(&sock, ifindex, None))
}

/// [`lookup_route`] over `sock`, finding the egress interface with `link`.
pub(super) fn lookup_route_on(
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
pub(super) fn on_link(addr: IpAddr, route: Route) -> Result<Route> {
    if let Some(gateway) = route.gateway {
        return Err(NeighbourError::NotOnLink {
            addr,
            gateway,
            ifname: route.ifname,
        });
    }
    Ok(route)
}
