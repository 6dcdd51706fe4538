//! Raw frames on a lab interface: an `AF_PACKET` socket bound to one interface, to inject
//! frames that no socket of the stack would send (a broadcast MAC to a VIP) and to see what
//! leaves a switch port.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use anyhow::{Context, Result, bail};

/// Every protocol (`ETH_P_ALL`).
const ETH_P_ALL: u16 = 0x0003;

/// An `AF_PACKET` raw socket bound to one interface, in the namespace it was opened in.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens a socket on `ifname` of the calling thread's network namespace (open it inside
    /// [`lvs::lab::run_in_netns`]; it stays in that namespace wherever it is used), receiving
    /// every frame the interface sends or receives.
    pub fn open(ifname: &str) -> Result<Self> {
        let ifindex =
            nix::net::if_::if_nametoindex(ifname).with_context(|| format!("interface {ifname}"))?;
        // SAFETY: socket(2); the result is checked and owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = sockaddr(ifindex);
        // SAFETY: bind(2) with a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            bail!("binding to {ifname}: {}", std::io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends `frame` (a whole Ethernet frame) out of the interface.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        let addr = sockaddr(self.ifindex);
        // SAFETY: sendto(2) of `frame` to a sockaddr_ll of the size given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n != frame.len() as isize {
            bail!("sending a frame: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next frame the interface sent or received, or `None` if none came within `wait`.
    pub fn recv(&self, wait: Duration) -> Result<Option<Vec<u8>>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
        if rc < 0 {
            bail!("poll: {}", std::io::Error::last_os_error());
        }
        if rc == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: recv(2) into a buffer of the length given.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            bail!("recv: {}", std::io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(Some(buf))
    }
}

fn sockaddr(ifindex: u32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = ETH_P_ALL.to_be();
    a.sll_ifindex = ifindex as i32;
    a
}
