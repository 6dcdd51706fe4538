//! Connect checks: a TCP connect, or for UDP services a datagram probe.
//!
//! A successful TCP connect is closed with a reset (`SO_LINGER` 0), so thousands of checks
//! per second leave no `TIME_WAIT` sockets behind on the director.
//!
//! The UDP probe sends one empty datagram on a connected socket and waits: an ICMP
//! port-unreachable comes back as `ECONNREFUSED` and means down; a reply, or silence until the
//! timeout (at most [`UDP_SILENCE`]: an ICMP error takes one round trip), means up. ldirectord itself falls back to a ping for UDP
//! connect checks; the datagram probe is stricter, as it also notices a dead port.

use std::{io, net::SocketAddr, time::Duration};

use super::connector::{Connected, Connector};
use crate::config::model::CheckSource;

/// The longest a UDP probe waits for an ICMP error; silence that long means up. Bounds the
/// number of sockets open at once with thousands of UDP targets.
pub const UDP_SILENCE: Duration = Duration::from_secs(1);

/// Errors of connect checks.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect failed.
    #[error("connect to {addr} failed")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No connection within the timeout.
    #[error("connect to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The UDP port answered with ICMP port-unreachable.
    #[error("udp port {addr} unreachable")]
    Refused {
        /// The address.
        addr: SocketAddr,
    },
    /// A socket operation of the UDP probe failed.
    #[error("udp probe to {addr} failed")]
    Udp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Connects to `addr` over TCP within `timeout`, then closes: on one of `connector`'s
/// sockets when there is one, else on a socket of its own.
pub async fn check_tcp(
    addr: SocketAddr,
    timeout: Duration,
    connector: Option<&Connector>,
    source: &CheckSource,
) -> Result<String, ConnectError> {
    if let Some(connector) = connector {
        return match connector.connect_from(addr, timeout, source).await {
            Connected::Yes => Ok(format!("connected to {addr}")),
            Connected::Failed(source) => Err(ConnectError::Connect { addr, source }),
            Connected::TimedOut => Err(ConnectError::Timeout { addr, timeout }),
        };
    }
    match tokio::time::timeout(timeout, super::source::tcp(addr, source)).await {
        Ok(Ok(stream)) => {
            // Close with a reset: no TIME_WAIT left behind per check (as HAProxy's checks).
            let _ = stream.set_zero_linger();
            drop(stream);
            Ok(format!("connected to {addr}"))
        }
        Ok(Err(source)) => Err(ConnectError::Connect { addr, source }),
        Err(_) => Err(ConnectError::Timeout { addr, timeout }),
    }
}

/// Probes the UDP port `addr` from `from`: down only when it is refused within `timeout`.
pub async fn check_udp(
    addr: SocketAddr,
    timeout: Duration,
    from: &CheckSource,
) -> Result<String, ConnectError> {
    let udp = |source| ConnectError::Udp { addr, source };
    let socket = super::source::udp(addr, from).await.map_err(udp)?;
    match socket.send(&[]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(ConnectError::Refused { addr });
        }
        Err(e) => return Err(udp(e)),
    }
    let mut buf = [0u8; 512];
    let wait = timeout.min(UDP_SILENCE);
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Err(_) => Ok(format!("no icmp error from {addr} within {wait:?}")),
        Ok(Ok(n)) => Ok(format!("{n} byte answer from {addr}")),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Err(ConnectError::Refused { addr })
        }
        Ok(Err(e)) => Err(udp(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::{ipv6_loopback, within};
    use tokio::net::{TcpListener, UdpSocket};

    #[tokio::test]
    async fn tcp_ok_and_refused() {
        let connector = Connector::new().unwrap();
        for connector in [None, Some(&connector)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            within(
                10,
                "a connect check of a listener",
                check_tcp(
                    addr,
                    Duration::from_secs(2),
                    connector,
                    &CheckSource::default(),
                ),
            )
            .await
            .unwrap();
            drop(listener);
            let err = within(
                10,
                "a connect check of a closed port",
                check_tcp(
                    addr,
                    Duration::from_secs(2),
                    connector,
                    &CheckSource::default(),
                ),
            )
            .await
            .unwrap_err();
            assert!(matches!(err, ConnectError::Connect { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn tcp_ipv6_loopback() {
        if !ipv6_loopback("tcp_ipv6_loopback") {
            return;
        }
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let msg = within(
            10,
            "a connect check of [::1]",
            check_tcp(addr, Duration::from_secs(2), None, &CheckSource::default()),
        )
        .await
        .unwrap();
        assert_eq!(msg, format!("connected to {addr}"));
        drop(listener);
        let err = within(
            10,
            "a connect check of a closed port on [::1]",
            check_tcp(addr, Duration::from_secs(2), None, &CheckSource::default()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectError::Connect { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn udp_open_silent_and_closed() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        // A bound socket that never answers: silence means up.
        within(
            10,
            "a udp probe of a silent port",
            check_udp(addr, Duration::from_millis(200), &CheckSource::default()),
        )
        .await
        .unwrap();
        drop(server);
        // Nothing bound: the kernel answers port-unreachable.
        let err = within(
            10,
            "a udp probe of a closed port",
            check_udp(addr, Duration::from_secs(2), &CheckSource::default()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectError::Refused { .. }), "{err:?}");
    }
}
