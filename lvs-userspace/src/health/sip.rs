//! The sip negotiate check, as ldirectord's `check_sip`: an `OPTIONS` request for
//! `sip:login` (the real's address when no `login` is set) over the service's protocol (UDP
//! or TCP); the real is up when the answer's status line is `SIP/2.0 200`. The whole exchange
//! is bounded by the negotiate timeout and the answer by [`MAX_READ`] bytes.
//!
//! Written here rather than through a SIP crate: the check sends one fixed `OPTIONS` request and
//! reads one status line; SIP crates parse and build the whole protocol for user agents and
//! proxies, far more than this needs.

use std::{
    hash::BuildHasher,
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most bytes of an answer read.
pub const MAX_READ: usize = 64 * 1024;

/// Why a sip check failed.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// No socket to the real.
    #[error("sip: cannot reach {addr}: {source}")]
    Connect {
        /// The real.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending or receiving failed.
    #[error("sip: exchange with {addr} failed: {source}")]
    Io {
        /// The real.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No whole answer within the timeout.
    #[error("sip: no answer within {timeout:?}")]
    Timeout {
        /// The negotiate timeout.
        timeout: Duration,
    },
    /// The answer's head did not end within [`MAX_READ`] bytes.
    #[error("sip: answer longer than {MAX_READ} bytes")]
    TooLong,
    /// The answer is not `SIP/2.0 200`.
    #[error("sip: answered {status:?}")]
    Status {
        /// Its first line (cut).
        status: String,
    },
}

/// A prepared sip check of one real.
#[derive(Clone, Debug)]
pub struct SipCheck {
    /// Where the real's SIP server listens.
    pub addr: SocketAddr,
    /// TCP rather than UDP (the virtual service's protocol).
    pub tcp: bool,
    /// The user part of the request URI (`login`).
    pub user: Option<String>,
    /// The whole exchange's timeout.
    pub timeout: Duration,
    /// Where its sockets leave from (keepalived's `bindto`...).
    pub source: crate::config::model::CheckSource,
}

impl SipCheck {
    /// Runs the check: the status line when up.
    pub async fn run(&self) -> Result<String, SipError> {
        tokio::time::timeout(self.timeout, self.exchange())
            .await
            .unwrap_or(Err(SipError::Timeout {
                timeout: self.timeout,
            }))
    }

    async fn exchange(&self) -> Result<String, SipError> {
        let addr = self.addr;
        let connect = |source| SipError::Connect { addr, source };
        let io = |source| SipError::Io { addr, source };
        let answer = if self.tcp {
            let mut s = super::source::tcp(addr, &self.source)
                .await
                .map_err(connect)?;
            let local = s.local_addr().map_err(io)?;
            s.write_all(self.request(local).as_bytes())
                .await
                .map_err(io)?;
            let mut got = Vec::with_capacity(1024);
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                if got.len() > MAX_READ {
                    return Err(SipError::TooLong);
                }
                match s.read(&mut buf).await.map_err(io)? {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        } else {
            let s = super::source::udp(addr, &self.source)
                .await
                .map_err(connect)?;
            let local = s.local_addr().map_err(io)?;
            s.send(self.request(local).as_bytes()).await.map_err(io)?;
            let mut buf = vec![0u8; MAX_READ];
            let n = s.recv(&mut buf).await.map_err(io)?;
            buf.truncate(n);
            buf
        };
        let text = String::from_utf8_lossy(&answer);
        let status = text.lines().next().unwrap_or("").trim_end();
        // ldirectord: `/^SIP\/2.0 200 OK/`; the reason phrase is free text (RFC 3261 §7.2).
        let ok = status
            .strip_prefix("SIP/2.0 200")
            .is_some_and(|r| r.is_empty() || r.starts_with(' '));
        if !ok {
            return Err(SipError::Status {
                status: status.chars().take(80).collect(),
            });
        }
        Ok(status.to_string())
    }

    /// ldirectord's `OPTIONS` request, from `local` (the Via and Contact).
    fn request(&self, local: SocketAddr) -> String {
        let target = match (&self.user, self.addr.ip()) {
            (Some(u), _) => u.clone(),
            (None, IpAddr::V4(ip)) => ip.to_string(),
            (None, IpAddr::V6(ip)) => format!("[{ip}]"),
        };
        let random = std::collections::hash_map::RandomState::new().hash_one(local);
        let transport = if self.tcp { "TCP" } else { "UDP" };
        format!(
            "OPTIONS sip:{target} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {local};branch=z9hG4bK{random:016x}\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{target}>\r\n\
             From: <sip:{target}>;tag={:08x}\r\n\
             Call-ID: {random:016x}@lvs\r\n\
             CSeq: 63104 OPTIONS\r\n\
             Contact: <sip:{target}>\r\n\
             Accept: application/sdp\r\n\
             Content-Length: 0\r\n\r\n",
            random >> 32
        )
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::{TcpListener, UdpSocket};

    use super::*;
    use crate::health::tests::within;

    /// How the test server answers.
    #[derive(Clone, Copy, PartialEq)]
    enum Server {
        /// `SIP/2.0 200 OK` to an OPTIONS for sip:probe.
        Right,
        /// `SIP/2.0 404 Not Found`.
        Wrong,
        /// Nothing.
        Silent,
        /// An endless head.
        Huge,
    }

    fn answer(how: Server, request: &[u8]) -> Option<Vec<u8>> {
        let req = String::from_utf8_lossy(request);
        let good = req.starts_with("OPTIONS sip:probe SIP/2.0\r\n")
            && req.contains("\r\nCSeq: 63104 OPTIONS\r\n")
            && req.ends_with("Content-Length: 0\r\n\r\n");
        match how {
            Server::Right if good => {
                Some(b"SIP/2.0 200 OK\r\nCSeq: 63104 OPTIONS\r\n\r\n".to_vec())
            }
            Server::Right | Server::Wrong => Some(b"SIP/2.0 404 Not Found\r\n\r\n".to_vec()),
            Server::Silent => None,
            Server::Huge => Some(vec![b'x'; 100_000]),
        }
    }

    async fn udp_server(how: Server) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                if let Some(a) = answer(how, &buf[..n]) {
                    let _ = s.send_to(&a[..a.len().min(60_000)], from).await;
                }
            }
        });
        addr
    }

    async fn tcp_server(how: Server) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    match answer(how, &req) {
                        Some(a) => {
                            let _ = s.write_all(&a).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        addr
    }

    async fn run(addr: SocketAddr, tcp: bool) -> Result<String, SipError> {
        let c = SipCheck {
            addr,
            tcp,
            user: Some("probe".into()),
            timeout: Duration::from_millis(800),
            source: Default::default(),
        };
        within(5, "the sip check", c.run()).await
    }

    #[tokio::test]
    async fn right_wrong_slow_and_absent_over_udp_and_tcp() {
        for tcp in [false, true] {
            let server = async |how| {
                if tcp {
                    tcp_server(how).await
                } else {
                    udp_server(how).await
                }
            };
            let ok = run(server(Server::Right).await, tcp).await;
            assert_eq!(ok.unwrap(), "SIP/2.0 200 OK", "tcp {tcp}");
            let e = run(server(Server::Wrong).await, tcp).await.unwrap_err();
            assert_eq!(e.to_string(), "sip: answered \"SIP/2.0 404 Not Found\"");
            let e = run(server(Server::Silent).await, tcp).await.unwrap_err();
            assert!(matches!(e, SipError::Timeout { .. }), "tcp {tcp}: {e}");
            let e = run(server(Server::Huge).await, tcp).await.unwrap_err();
            if tcp {
                assert!(matches!(e, SipError::TooLong), "{e}");
            } else {
                assert!(matches!(e, SipError::Status { .. }), "{e}");
            }
        }
        // Absent: TCP refused; UDP answered by ICMP port unreachable.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = l.local_addr().unwrap();
        drop(l);
        let e = run(gone, true).await.unwrap_err();
        assert!(matches!(e, SipError::Connect { .. }), "{e}");
        let e = run(gone, false).await.unwrap_err();
        assert!(matches!(e, SipError::Io { .. }), "{e}");
    }
}
