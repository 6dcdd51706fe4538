//! Interfaces and their addresses (`RTM_GETLINK`, `RTM_GETADDR`): links by index or name,
//! local addresses, and the XDP program attached to an interface.

use std::collections::HashSet;
use std::net::IpAddr;

use super::netlink::{
    IFA_ADDRESS, IFA_LOCAL, IFLA_ADDRESS, IFLA_IFNAME, Netlink, addr_bytes, attrs, malformed,
    parse_ip_family, push_attr,
};
use super::{Link, MacAddr, NeighbourError, Result};

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

fn get_link(ifindex: u32, name: Option<&str>) -> Result<Link> {
    get_link_on(&Netlink::open(0)?, ifindex, name)
}

pub(super) fn get_link_on(sock: &Netlink, ifindex: u32, name: Option<&str>) -> Result<Link> {
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
