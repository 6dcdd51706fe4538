//! ICMP echo checks over raw sockets (IPv4 and IPv6; needs root or `CAP_NET_RAW`).
//!
//! One echo request per check, the reply matched by source, identifier, sequence number and
//! payload. The engine uses a [`Pinger`]: one raw socket per address family shared by every
//! ping target, with one receive task dispatching replies, since every raw ICMP socket is
//! handed a copy of every ICMP packet the host receives. [`check`] is the standalone form
//! with a socket of its own, connected to the host.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::OwnedFd,
    sync::{Arc, Mutex},
    time::Duration,
};

use socket2::{Protocol, Type};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::oneshot,
    task::JoinHandle,
};

use crate::config::model::CheckSource;

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

/// Replies awaited: (host, id, seq) → the waiting check.
type Pending = Arc<Mutex<HashMap<(IpAddr, u16, u16), oneshot::Sender<()>>>>;

/// A shared ICMP echo client for many targets; sockets are opened on first use.
#[derive(Debug, Default)]
pub struct Pinger {
    v4: Mutex<Option<Arc<Family>>>,
    v6: Mutex<Option<Arc<Family>>>,
}

/// One family's raw socket and its receive task.
#[derive(Debug)]
struct Family {
    socket: Arc<AsyncFd<UdpSocket>>,
    pending: Pending,
    receiver: JoinHandle<()>,
}

impl Drop for Family {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Removes a pending entry when its check ends, whatever the outcome.
struct Unregister<'a>(&'a Pending, (IpAddr, u16, u16));

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Pinger {
    /// A pinger; no socket is opened before the first ping.
    pub fn new() -> Self {
        Pinger::default()
    }

    fn family(&self, ip: IpAddr) -> Result<Arc<Family>, PingError> {
        let cell = if ip.is_ipv4() { &self.v4 } else { &self.v6 };
        let mut cell = cell.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cell.as_ref() {
            return Ok(f.clone());
        }
        let socket = Arc::new(
            open(ip, false, &CheckSource::default())
                .map_err(|source| PingError::Socket { ip, source })?,
        );
        let pending: Pending = Arc::default();
        let receiver = tokio::spawn(receive(socket.clone(), pending.clone(), ip.is_ipv4()));
        let family = Arc::new(Family {
            socket,
            pending,
            receiver,
        });
        *cell = Some(family.clone());
        Ok(family)
    }

    /// Sends one echo request to `ip` with `id`/`seq` and waits up to `timeout` for its reply.
    pub async fn ping(
        &self,
        ip: IpAddr,
        id: u16,
        seq: u16,
        timeout: Duration,
    ) -> Result<String, PingError> {
        let family = self.family(ip)?;
        let (tx, rx) = oneshot::channel();
        let key = (ip, id, seq);
        family
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, tx);
        let _unregister = Unregister(&family.pending, key);
        let packet = echo_request(request_type(ip), id, seq, ip.is_ipv4());
        let start = tokio::time::Instant::now();
        let dest = SocketAddr::new(ip, 0);
        family
            .socket
            .async_io(Interest::WRITABLE, |s| s.send_to(&packet, dest))
            .await
            .map_err(|source| PingError::Socket { ip, source })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(format!("echo reply from {ip} in {:?}", start.elapsed())),
            // The receive task ended (runtime shutting down): no answer.
            Ok(Err(_)) | Err(_) => Err(PingError::Timeout { ip, timeout }),
        }
    }
}

#[cfg(test)]
impl Pinger {
    /// Whether the IPv4 and the IPv6 socket are open (test helper).
    pub(crate) fn open_families(&self) -> (bool, bool) {
        let open = |cell: &Mutex<Option<Arc<Family>>>| {
            cell.lock().unwrap_or_else(|e| e.into_inner()).is_some()
        };
        (open(&self.v4), open(&self.v6))
    }
}

/// Dispatches echo replies to the checks waiting for them.
async fn receive(socket: Arc<AsyncFd<UdpSocket>>, pending: Pending, v4: bool) {
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = match socket
            .async_io(Interest::READABLE, |s| s.recv_from(&mut buf))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "icmp receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Some((id, seq)) = parse_reply(&buf[..n], v4) {
            let waiter =
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(from.ip(), id, seq));
            if let Some(tx) = waiter {
                let _ = tx.send(());
            }
        }
    }
}

fn request_type(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        ECHO_REQUEST_V4
    } else {
        ECHO_REQUEST_V6
    }
}

/// A non-blocking raw ICMP socket for `ip`'s family, registered with tokio; from `from` and
/// connected to `ip` when `connect`.
fn open(ip: IpAddr, connect: bool, from: &CheckSource) -> io::Result<AsyncFd<UdpSocket>> {
    let proto = match ip {
        IpAddr::V4(_) => Protocol::ICMPV4,
        IpAddr::V6(_) => Protocol::ICMPV6,
    };
    let to = super::source::target(SocketAddr::new(ip, 0), from)?;
    let socket = super::source::socket(Type::RAW, proto, from, to)?;
    if connect {
        socket.connect(&to.into())?;
    }
    // std's UdpSocket is a thin datagram wrapper: its send_to/recv_from work on raw sockets.
    let socket = UdpSocket::from(OwnedFd::from(socket));
    // SAFETY: the UdpSocket owns its descriptor, which stays open and unchanged while the
    // AsyncFd owns the socket.
    unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}

/// Sends one echo request to `ip` with `id`/`seq` and waits up to `timeout` for its reply,
/// on a socket of its own, from `from` (keepalived's `bindto`...).
pub async fn check(
    ip: IpAddr,
    id: u16,
    seq: u16,
    timeout: Duration,
    from: &CheckSource,
) -> Result<String, PingError> {
    let err = |source| PingError::Socket { ip, source };
    let fd = open(ip, true, from).map_err(err)?;
    let packet = echo_request(request_type(ip), id, seq, ip.is_ipv4());
    let start = tokio::time::Instant::now();
    fd.async_io(Interest::WRITABLE, |s| s.send(&packet))
        .await
        .map_err(err)?;
    let wait = async {
        let mut buf = [0u8; 1500];
        loop {
            let n = fd
                .async_io(Interest::READABLE, |s| s.recv(&mut buf))
                .await?;
            if parse_reply(&buf[..n], ip.is_ipv4()) == Some((id, seq)) {
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

/// The id and sequence of an echo reply of ours in `data` (which starts with the IPv4 header
/// on IPv4 raw sockets).
fn parse_reply(data: &[u8], v4: bool) -> Option<(u16, u16)> {
    let icmp = if v4 {
        let ihl = usize::from(data.first()? & 0x0f) * 4;
        data.get(ihl..)?
    } else {
        data
    };
    let reply_type = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    (icmp.len() >= 8 + PAYLOAD.len()
        && icmp[0] == reply_type
        && &icmp[8..8 + PAYLOAD.len()] == PAYLOAD)
        .then(|| {
            (
                u16::from_be_bytes([icmp[4], icmp[5]]),
                u16::from_be_bytes([icmp[6], icmp[7]]),
            )
        })
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
        assert_eq!(parse_reply(&reply, true), Some((7, 9)));
        assert_eq!(parse_reply(&reply[..30], true), None, "truncated");
        let req = echo_request(ECHO_REQUEST_V6, 7, 9, false);
        assert_eq!(
            parse_reply(&req, false),
            None,
            "our own request is not a reply"
        );
        let mut other = echo_request(ECHO_REPLY_V6, 7, 9, false);
        other[8] = b'X';
        assert_eq!(parse_reply(&other, false), None, "someone else's ping");
    }

    use crate::health::tests::{ipv6_loopback, within};

    #[tokio::test]
    async fn ping_loopback_v4() {
        let msg = within(
            10,
            "a ping of 127.0.0.1",
            check(
                "127.0.0.1".parse().unwrap(),
                0x4c56,
                1,
                Duration::from_secs(2),
                &CheckSource::default(),
            ),
        )
        .await
        .unwrap();
        assert!(msg.starts_with("echo reply from 127.0.0.1"), "{msg}");
    }

    #[tokio::test]
    async fn ping_loopback_v6() {
        if !ipv6_loopback("ping_loopback_v6") {
            return;
        }
        let msg = within(
            10,
            "a ping of ::1",
            check(
                "::1".parse().unwrap(),
                0x4c57,
                1,
                Duration::from_secs(2),
                &CheckSource::default(),
            ),
        )
        .await
        .unwrap();
        assert!(msg.starts_with("echo reply from ::1"), "{msg}");
    }

    #[tokio::test]
    async fn shared_pinger_v4_and_v6_concurrently() {
        let pinger = Arc::new(Pinger::new());
        let v6 = ipv6_loopback("shared_pinger_v4_and_v6_concurrently");
        let mut tasks = Vec::new();
        for i in 0..20u16 {
            let pinger = pinger.clone();
            let ip: IpAddr = if v6 && i % 2 == 1 {
                "::1".parse().unwrap()
            } else {
                "127.0.0.1".parse().unwrap()
            };
            tasks.push(tokio::spawn(async move {
                pinger.ping(ip, 0x5000 + i, i, Duration::from_secs(2)).await
            }));
        }
        for t in tasks {
            within(10, "a ping of the shared pinger", t)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(pinger.open_families(), (true, v6), "one socket per family");
        for family in [&pinger.v4, &pinger.v6] {
            if let Some(f) = family.lock().unwrap().as_ref() {
                assert!(
                    f.pending.lock().unwrap().is_empty(),
                    "every waiter was removed"
                );
            }
        }
    }
}
