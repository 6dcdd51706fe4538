//! The source side of a check's sockets (keepalived's `bindto`, `bind_port`, `bind_if` and
//! checker `fwmark`; TOML `check_source`, `check_source_port`, `check_interface`,
//! `check_mark`), applied to every socket a check opens as keepalived's
//! `socket_bind_connect` does: `SO_MARK`, then `SO_BINDTODEVICE`, then `bind`.
//!
//! With a source port, `SO_REUSEADDR` is set too (keepalived does not): checks of several
//! reals leave from the same address and port at once, which the kernel allows for
//! connections to different peers only with it.
//!
//! A source the host cannot use (an address it does not hold, an interface it does not
//! have) fails the check, naming it, at each run: the host's addresses may change while the
//! agent runs, and keepalived too reports a failed bind as a failed check.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::config::model::CheckSource;

/// Why a check's socket could not be given its source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `SO_MARK` was refused (it needs `CAP_NET_ADMIN`).
    #[error("setting mark {mark} (SO_MARK) on a check socket failed")]
    Mark {
        /// The mark.
        mark: u32,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `SO_BINDTODEVICE` was refused (no such interface...).
    #[error("binding a check socket to interface {interface} failed")]
    Device {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The interface giving a link-local address its scope does not exist.
    #[error("interface {interface}, the scope of the link-local {ip}, does not exist")]
    Scope {
        /// The interface.
        interface: String,
        /// The link-local address.
        ip: IpAddr,
    },
    /// `bind` failed: the address is not the host's, the port is taken...
    #[error("binding a check socket to source {addr} failed")]
    Bind {
        /// The source address and port.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The source address is not of the target's family.
    #[error("source {ip} is not of the family of the address checked, {target}")]
    Family {
        /// The source.
        ip: IpAddr,
        /// The target.
        target: SocketAddr,
    },
}

impl From<SourceError> for io::Error {
    fn from(e: SourceError) -> io::Error {
        io::Error::other(e)
    }
}

fn link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// The interface index of `name`.
fn if_index(name: &str, ip: IpAddr) -> Result<u32, SourceError> {
    let scope = || SourceError::Scope {
        interface: name.to_string(),
        ip,
    };
    let c = std::ffi::CString::new(name).map_err(|_| scope())?;
    // SAFETY: c is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(scope()),
        n => Ok(n),
    }
}

/// `addr`, with the interface's scope when it is an IPv6 link-local address and an
/// interface is set.
fn scoped(addr: SocketAddr, s: &CheckSource) -> Result<SocketAddr, SourceError> {
    match (addr, &s.interface) {
        (SocketAddr::V6(a), Some(name)) if link_local(addr.ip()) && a.scope_id() == 0 => {
            let index = if_index(name, addr.ip())?;
            Ok(SocketAddr::V6(SocketAddrV6::new(
                *a.ip(),
                a.port(),
                a.flowinfo(),
                index,
            )))
        }
        _ => Ok(addr),
    }
}

/// The address a check of `target` connects to: scoped to the check's interface when it is
/// an IPv6 link-local address.
pub fn target(target: SocketAddr, s: &CheckSource) -> Result<SocketAddr, SourceError> {
    scoped(target, s)
}

/// Marks, ties to its interface and binds `socket` (of `target`'s family) as `s` says.
pub fn apply(socket: &Socket, s: &CheckSource, target: SocketAddr) -> Result<(), SourceError> {
    if let Some(mark) = s.mark {
        socket
            .set_mark(mark)
            .map_err(|source| SourceError::Mark { mark, source })?;
    }
    if let Some(interface) = &s.interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|source| SourceError::Device {
                interface: interface.clone(),
                source,
            })?;
    }
    if s.address.is_none() && s.port.is_none() {
        return Ok(());
    }
    let ip = match s.address {
        Some(ip) if ip.is_ipv4() != target.is_ipv4() => {
            return Err(SourceError::Family { ip, target });
        }
        Some(ip) => ip,
        None if target.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let addr = scoped(SocketAddr::new(ip, s.port.unwrap_or(0)), s)?;
    let bind = |source| SourceError::Bind { addr, source };
    if s.port.is_some() {
        socket.set_reuse_address(true).map_err(bind)?;
    }
    socket.bind(&SockAddr::from(addr)).map_err(bind)
}

/// A non-blocking socket for `target` of `ty`, with `s` applied.
pub fn socket(
    ty: Type,
    protocol: Protocol,
    s: &CheckSource,
    target: SocketAddr,
) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        ty.nonblocking().cloexec(),
        Some(protocol),
    )?;
    apply(&socket, s, target)?;
    Ok(socket)
}

/// Connects over TCP to `target` from `s` (the runtime's plain connect when `s` is the
/// default).
pub async fn tcp(target: SocketAddr, s: &CheckSource) -> io::Result<TcpStream> {
    if s.is_default() {
        return TcpStream::connect(target).await;
    }
    let to = self::target(target, s)?;
    let socket = socket(Type::STREAM, Protocol::TCP, s, to)?;
    TcpSocket::from_std_stream(socket.into()).connect(to).await
}

/// A UDP socket from `s`, connected to `target`.
pub async fn udp(target: SocketAddr, s: &CheckSource) -> io::Result<UdpSocket> {
    let to = self::target(target, s)?;
    let socket = socket(Type::DGRAM, Protocol::UDP, s, to)?;
    let socket = UdpSocket::from_std(socket.into())?;
    socket.connect(to).await?;
    Ok(socket)
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
