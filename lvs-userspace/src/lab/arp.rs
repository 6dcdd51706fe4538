//! Who answers ARP for an address: one request broadcast, the answers collected.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use super::{LabError, Result, run_in_netns};
use crate::neighbour::{self, MacAddr};

/// Broadcasts one ARP request for `target` on `ifname` in the calling thread's namespace,
/// with `sender` as the sender address, and returns the MACs that answered (distinct, in
/// order of arrival) within `wait`. Use it inside [`run_in_netns`] to check who answers ARP
/// for an address; [`arp_probe`] does that for you.
pub fn arp_probe_here(
    ifname: &str,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    wait: Duration,
) -> Result<Vec<MacAddr>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let link = neighbour::link_by_name(ifname).map_err(|e| LabError::Netlink {
        what: format!("finding {ifname}"),
        source: e,
    })?;
    let src = link.mac.ok_or_else(|| LabError::BadOption {
        detail: format!("{ifname} has no MAC"),
    })?;
    let io = |what: &str| LabError::Io {
        what: format!("ARP probe: {what}"),
        source: std::io::Error::last_os_error(),
    };
    const ETH_P_ARP: u16 = 0x0806;
    // SAFETY: socket(2); the result is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    if fd < 0 {
        return Err(io("socket"));
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = link.ifindex as i32;
    // SAFETY: sll is valid for its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(io("bind"));
    }
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&sender.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    // SAFETY: frame is valid for its length.
    let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if n < 0 {
        return Err(io("send"));
    }
    let deadline = Instant::now() + wait;
    let mut macs = Vec::new();
    let mut buf = [0u8; 1600];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(macs);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = (deadline - now).as_millis().clamp(1, 10_000) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 42 {
            continue;
        }
        let f = &buf[..n as usize];
        let is_reply = f[12..14] == ETH_P_ARP.to_be_bytes() && f[20..22] == [0, 2];
        if is_reply && f[28..32] == target.octets() {
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&f[22..28]);
            let mac = MacAddr(sha);
            if !macs.contains(&mac) {
                macs.push(mac);
            }
        }
    }
}

/// [`arp_probe_here`] from namespace `ns`.
pub fn arp_probe(
    ns: &str,
    ifname: &str,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    wait: Duration,
) -> Result<Vec<MacAddr>> {
    run_in_netns(ns, || arp_probe_here(ifname, sender, target, wait))?
}
