//! keepalived's `UDP_CHECK`: send a payload, optionally require a reply.
//!
//! As keepalived's check_udp: the `payload` (hex) goes in one datagram. Without
//! `require_reply`, an ICMP error (port unreachable) before the timeout means down and silence
//! means up; with it, a reply must come within the timeout, and when `require_reply` gives hex
//! bytes the reply must begin with them (an `X` nibble matches anything). lvs sends an empty
//! datagram when no payload is given (keepalived sends random bytes).

use std::{io, net::SocketAddr, time::Duration};

/// Errors of UDP checks.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The port answered with ICMP port-unreachable.
    #[error("udp port {addr} unreachable")]
    Refused {
        /// The address.
        addr: SocketAddr,
    },
    /// No reply within the timeout (`require_reply`).
    #[error("no reply from {addr} within {timeout:?}")]
    Timeout {
        /// The address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The reply does not match `require_reply`.
    #[error("the {len} byte reply of {addr} does not match require_reply")]
    Mismatch {
        /// The address.
        addr: SocketAddr,
        /// Its length.
        len: usize,
    },
    /// A socket operation failed.
    #[error("udp check of {addr} failed")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A reply pattern: each byte's value and the mask of the bits that must match.
pub type Pattern = Vec<(u8, u8)>;

/// Decodes hex (spaces ignored); in a pattern an `X` nibble is a wildcard. `None` when not
/// hex, or of an odd number of digits.
pub fn parse_hex(text: &str, wildcards: bool) -> Option<Pattern> {
    let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: char| -> Option<(u8, u8)> {
        match c {
            'x' | 'X' if wildcards => Some((0, 0)),
            c => c.to_digit(16).map(|d| (d as u8, 0xf)),
        }
    };
    digits
        .chunks(2)
        .map(|p| {
            let (hv, hm) = nibble(p[0])?;
            let (lv, lm) = nibble(p[1])?;
            Some(((hv << 4) | lv, (hm << 4) | lm))
        })
        .collect()
}

/// Sends `payload` to `addr` and judges the answer within `timeout`: `reply` `None` means no
/// reply required; `Some(pattern)` requires a reply beginning with `pattern` (empty: any).
pub async fn check(
    addr: SocketAddr,
    payload: &[u8],
    reply: Option<&Pattern>,
    timeout: Duration,
    from: &crate::config::model::CheckSource,
) -> Result<String, UdpError> {
    let io = |source| UdpError::Io { addr, source };
    let socket = super::source::udp(addr, from).await.map_err(io)?;
    let refused = |e: &io::Error| e.kind() == io::ErrorKind::ConnectionRefused;
    match socket.send(payload).await {
        Ok(_) => {}
        Err(e) if refused(&e) => return Err(UdpError::Refused { addr }),
        Err(e) => return Err(io(e)),
    }
    // On the heap: a datagram may be 64 KiB, too much for a task's stack.
    let mut buf = vec![0u8; 65536];
    match (
        tokio::time::timeout(timeout, socket.recv(&mut buf)).await,
        reply,
    ) {
        (Err(_), None) => Ok(format!("no icmp error from {addr} within {timeout:?}")),
        (Err(_), Some(_)) => Err(UdpError::Timeout { addr, timeout }),
        (Ok(Err(e)), _) if refused(&e) => Err(UdpError::Refused { addr }),
        (Ok(Err(e)), _) => Err(io(e)),
        (Ok(Ok(n)), None) => Ok(format!("{n} byte reply from {addr}")),
        (Ok(Ok(n)), Some(p)) => {
            let got = &buf[..n];
            let fits =
                got.len() >= p.len() && p.iter().zip(got).all(|(&(v, m), &b)| b & m == v & m);
            if fits {
                Ok(format!("{n} byte reply from {addr} matches"))
            } else {
                Err(UdpError::Mismatch { addr, len: n })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::within;
    use tokio::net::UdpSocket;

    #[test]
    fn hex_and_wildcards() {
        assert_eq!(
            parse_hex("0aFf", false),
            Some(vec![(0x0a, 0xff), (0xff, 0xff)])
        );
        assert_eq!(parse_hex("1X", true), Some(vec![(0x10, 0xf0)]));
        assert_eq!(parse_hex("1X", false), None);
        assert_eq!(parse_hex("abc", false), None);
    }

    /// A server on loopback answering each datagram with `answer` after `delay`.
    async fn server(
        answer: &'static [u8],
        delay: Duration,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                assert_eq!(&buf[..n], b"\x01\x02", "the payload sent");
                tokio::time::sleep(delay).await;
                let _ = s.send_to(answer, from).await;
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn right_wrong_slow_and_silent() {
        let payload = parse_hex("0102", false).unwrap();
        let payload: Vec<u8> = payload.iter().map(|p| p.0).collect();
        let want = parse_hex("ABXX", true).unwrap();
        let t = Duration::from_millis(500);
        let run = |addr, reply| {
            let payload = payload.clone();
            async move {
                within(
                    10,
                    "a udp check",
                    check(addr, &payload, reply, t, &Default::default()),
                )
                .await
            }
        };
        let (right, a) = server(b"\xab\xcd\xef", Duration::ZERO).await;
        run(right, Some(&want)).await.unwrap();
        let (wrong, b) = server(b"\xac\xcd", Duration::ZERO).await;
        let e = run(wrong, Some(&want)).await.unwrap_err();
        assert!(matches!(e, UdpError::Mismatch { .. }), "{e:?}");
        let (short, c) = server(b"\xab", Duration::ZERO).await;
        let e = run(short, Some(&want)).await.unwrap_err();
        assert!(matches!(e, UdpError::Mismatch { .. }), "{e:?}");
        let (slow, d) = server(b"\xab\xcd", Duration::from_secs(3)).await;
        let e = run(slow, Some(&want)).await.unwrap_err();
        assert!(matches!(e, UdpError::Timeout { .. }), "{e:?}");
        // Without require_reply, silence is up; with it (any reply), down.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let quiet = silent.local_addr().unwrap();
        run(quiet, None).await.unwrap();
        let any = Vec::new();
        let e = run(quiet, Some(&any)).await.unwrap_err();
        assert!(matches!(e, UdpError::Timeout { .. }), "{e:?}");
        drop(silent);
        // Nothing bound: port unreachable, down either way.
        let e = run(quiet, None).await.unwrap_err();
        assert!(matches!(e, UdpError::Refused { .. }), "{e:?}");
        for t in [a, b, c, d] {
            t.abort();
        }
    }
}
