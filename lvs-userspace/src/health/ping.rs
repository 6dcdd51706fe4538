//! ICMP echo checks over raw sockets (IPv4 and IPv6; needs root or `CAP_NET_RAW`).
//!
//! One echo request per check, the reply matched by identifier, sequence number and payload.
//! The socket is connected to the real so the kernel only hands over that host's ICMP.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: &[u8; 8] = b"lvs-hc\0\0";

/// Errors of ping checks.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The raw socket could not be opened or used.
    #[error("icmp socket for {ip} failed")]
    Socket {
        /// The host.
        ip: IpAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No reply within the timeout.
    #[error("no echo reply from {ip} within {timeout:?}")]
    Timeout {
        /// The host.
        ip: IpAddr,
        /// The timeout.
        timeout: Duration,
    },
}

/// Sends one echo request to `ip` with `id`/`seq` and waits up to `timeout` for its reply.
pub async fn check(ip: IpAddr, id: u16, seq: u16, timeout: Duration) -> Result<String, PingError> {
    let err = |source| PingError::Socket { ip, source };
    let (domain, proto, request_type) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, ECHO_REQUEST_V4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, ECHO_REQUEST_V6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(proto)).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket
        .connect(&SocketAddr::new(ip, 0).into())
        .map_err(err)?;
    // SAFETY: the socket owns its descriptor, which stays open and unchanged while the
    // AsyncFd owns the socket.
    let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| err(e.into_parts().1))?;

    let packet = echo_request(request_type, id, seq, ip.is_ipv4());
    let start = tokio::time::Instant::now();
    fd.async_io(Interest::WRITABLE, |s| (&*s).write(&packet))
        .await
        .map_err(err)?;
    let wait = async {
        let mut buf = [0u8; 1500];
        loop {
            let n = fd
                .async_io(Interest::READABLE, |s| (&*s).read(&mut buf))
                .await?;
            if is_our_reply(&buf[..n], ip.is_ipv4(), id, seq) {
                return Ok::<_, io::Error>(());
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(())) => Ok(format!("echo reply from {ip} in {:?}", start.elapsed())),
        Ok(Err(source)) => Err(PingError::Socket { ip, source }),
        Err(_) => Err(PingError::Timeout { ip, timeout }),
    }
}

fn echo_request(kind: u8, id: u16, seq: u16, v4: bool) -> Vec<u8> {
    let mut p = vec![kind, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if v4 {
        // ICMPv6 checksums are filled in by the kernel (they cover a pseudo-header).
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `data` (with the IPv4 header for IPv4 raw sockets) is the reply to `id`/`seq`.
fn is_our_reply(data: &[u8], v4: bool, id: u16, seq: u16) -> bool {
    let icmp = if v4 {
        let Some(&vihl) = data.first() else {
            return false;
        };
        let ihl = usize::from(vihl & 0x0f) * 4;
        match data.get(ihl..) {
            Some(icmp) => icmp,
            None => return false,
        }
    } else {
        data
    };
    let reply_type = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    icmp.len() >= 8 + PAYLOAD.len()
        && icmp[0] == reply_type
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..8 + PAYLOAD.len()] == PAYLOAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_known_packet() {
        let p = echo_request(ECHO_REQUEST_V4, 0x1234, 1, true);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
    }

    #[test]
    fn reply_matching() {
        let mut reply = vec![0x45u8];
        reply.resize(20, 0);
        let mut icmp = echo_request(ECHO_REPLY_V4, 7, 9, true);
        reply.append(&mut icmp);
        assert!(is_our_reply(&reply, true, 7, 9));
        assert!(!is_our_reply(&reply, true, 7, 10));
        assert!(!is_our_reply(&reply, true, 8, 9));
        let req = echo_request(ECHO_REQUEST_V6, 7, 9, false);
        assert!(
            !is_our_reply(&req, false, 7, 9),
            "our own request is not a reply"
        );
    }

    #[tokio::test]
    async fn ping_loopback_v4() {
        let msg = check(
            "127.0.0.1".parse().unwrap(),
            0x4c56,
            1,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert!(msg.starts_with("echo reply from 127.0.0.1"), "{msg}");
    }

    #[tokio::test]
    async fn ping_loopback_v6() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            return; // no IPv6 on this host
        }
        check("::1".parse().unwrap(), 0x4c57, 1, Duration::from_secs(2))
            .await
            .unwrap();
    }
}
