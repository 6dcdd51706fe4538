//! The radius negotiate check, as ldirectord's `check_radius` (`Authen::Radius::check_pwd`):
//! one Access-Request (RFC 2865) with `User-Name` = `login`, `User-Password` = `passwd`
//! hidden with `secret`, and `NAS-IP-Address`; the real is up when it answers with a packet
//! of the same identifier whose Response Authenticator proves it knows the secret, whatever
//! its code (Access-Accept, -Reject or -Challenge: ldirectord marks a real down only when
//! `check_pwd` finds no valid answer). Bounded by the negotiate timeout and one datagram.
//!
//! Written here rather than through a RADIUS crate: the check is one datagram each way, an MD5
//! over it (the `md5` crate the http check already uses) and the RFC 2865 §5.2 password hiding;
//! the crates on crates.io are client/server frameworks with attribute dictionaries, far more
//! than this exchange needs.

use std::{
    hash::BuildHasher,
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

/// RADIUS's largest packet (RFC 2865 §3).
const MAX_PACKET: usize = 4096;

/// Why a radius check failed.
#[derive(Debug, thiserror::Error)]
pub enum RadiusError {
    /// No socket to the real.
    #[error("radius: cannot reach {addr}: {source}")]
    Connect {
        /// The real.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending or receiving failed (an ICMP port unreachable, say).
    #[error("radius: exchange with {addr} failed: {source}")]
    Io {
        /// The real.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No valid answer within the timeout.
    #[error("radius: no valid answer within {timeout:?}")]
    Timeout {
        /// The negotiate timeout.
        timeout: Duration,
    },
    /// An answer whose authenticator is wrong (another secret) or that is not RADIUS.
    #[error("radius: invalid answer ({why})")]
    Invalid {
        /// Why.
        why: &'static str,
    },
}

/// A prepared radius check of one real.
#[derive(Clone, Debug)]
pub struct RadiusCheck {
    /// Where the real's RADIUS server listens.
    pub addr: SocketAddr,
    /// `login` (User-Name).
    pub user: String,
    /// `passwd` (User-Password).
    pub passwd: String,
    /// `secret`, shared with the server.
    pub secret: String,
    /// The whole exchange's timeout.
    pub timeout: Duration,
    /// Where its sockets leave from (keepalived's `bindto`...).
    pub source: crate::config::model::CheckSource,
}

impl RadiusCheck {
    /// Runs the check: the answer's code when up.
    pub async fn run(&self) -> Result<String, RadiusError> {
        tokio::time::timeout(self.timeout, self.exchange())
            .await
            .unwrap_or(Err(RadiusError::Timeout {
                timeout: self.timeout,
            }))
    }

    async fn exchange(&self) -> Result<String, RadiusError> {
        let addr = self.addr;
        let s = super::source::udp(addr, &self.source)
            .await
            .map_err(|source| RadiusError::Connect { addr, source })?;
        let local = s
            .local_addr()
            .map_err(|source| RadiusError::Io { addr, source })?;
        let random = std::collections::hash_map::RandomState::new();
        let mut authenticator = [0u8; 16];
        authenticator[..8].copy_from_slice(&random.hash_one((local, 1u8)).to_be_bytes());
        authenticator[8..].copy_from_slice(&random.hash_one((local, 2u8)).to_be_bytes());
        let id = authenticator[0];
        let request = self.request(id, &authenticator, local.ip());
        s.send(&request)
            .await
            .map_err(|source| RadiusError::Io { addr, source })?;
        let mut buf = vec![0u8; MAX_PACKET + 1];
        loop {
            let n = s
                .recv(&mut buf)
                .await
                .map_err(|source| RadiusError::Io { addr, source })?;
            // Another request's answer (a late one): wait on.
            if n >= 2 && buf[1] != id {
                continue;
            }
            let code = verify(&buf[..n], &authenticator, self.secret.as_bytes())?;
            return Ok(format!(
                "radius: {}",
                match code {
                    2 => "Access-Accept",
                    3 => "Access-Reject",
                    _ => "Access-Challenge",
                }
            ));
        }
    }

    /// The Access-Request.
    fn request(&self, id: u8, authenticator: &[u8; 16], nas: IpAddr) -> Vec<u8> {
        let mut p = vec![1, id, 0, 0];
        p.extend_from_slice(authenticator);
        let mut attr = |t: u8, v: &[u8]| {
            let v = &v[..v.len().min(253)];
            p.push(t);
            p.push(v.len() as u8 + 2);
            p.extend_from_slice(v);
        };
        attr(1, self.user.as_bytes());
        attr(
            2,
            &hide_password(
                self.passwd.as_bytes(),
                self.secret.as_bytes(),
                authenticator,
            ),
        );
        match nas {
            IpAddr::V4(ip) => attr(4, &ip.octets()),
            IpAddr::V6(ip) => attr(95, &ip.octets()),
        }
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }
}

/// RFC 2865 §5.2: the password padded to 16 bytes, each block XORed with
/// MD5(secret + the previous block, the Request Authenticator first). At most 128 bytes.
fn hide_password(passwd: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let passwd = &passwd[..passwd.len().min(128)];
    let mut padded = passwd.to_vec();
    padded.resize(passwd.len().div_ceil(16).max(1) * 16, 0);
    let mut prev: Vec<u8> = authenticator.to_vec();
    for block in padded.chunks_mut(16) {
        let mut ctx = md5::Context::new();
        ctx.consume(secret);
        ctx.consume(&prev);
        let b = ctx.finalize().0;
        for (c, k) in block.iter_mut().zip(b) {
            *c ^= k;
        }
        prev = block.to_vec();
    }
    padded
}

/// The code of `answer` if it is an Access-Accept, -Reject or -Challenge whose Response
/// Authenticator is MD5(Code + ID + Length + Request Authenticator + Attributes + Secret).
fn verify(answer: &[u8], authenticator: &[u8; 16], secret: &[u8]) -> Result<u8, RadiusError> {
    let bad = |why| Err(RadiusError::Invalid { why });
    if answer.len() < 20 || answer.len() > MAX_PACKET {
        return bad("not a RADIUS packet");
    }
    let len = u16::from_be_bytes([answer[2], answer[3]]) as usize;
    if len < 20 || len > answer.len() {
        return bad("wrong length");
    }
    let code = answer[0];
    if !matches!(code, 2 | 3 | 11) {
        return bad("not an answer to an Access-Request");
    }
    let mut ctx = md5::Context::new();
    ctx.consume(&answer[..4]);
    ctx.consume(authenticator);
    ctx.consume(&answer[20..len]);
    ctx.consume(secret);
    if ctx.finalize().0 != answer[4..20] {
        return bad("wrong Response Authenticator: not the same secret");
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::within;
    use tokio::net::UdpSocket;

    /// How the test server answers.
    #[derive(Clone, Copy)]
    enum Server {
        /// Accept for probe/pw, Reject for any other password, signed with "s3cret".
        Right,
        /// Signed with another secret.
        OtherSecret,
        /// Nothing.
        Silent,
    }

    async fn server(how: Server) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let req = &buf[..n];
                if matches!(how, Server::Silent) || n < 20 || req[0] != 1 {
                    continue;
                }
                let auth: [u8; 16] = req[4..20].try_into().unwrap();
                // Find User-Name and User-Password.
                let (mut user, mut hidden) = (Vec::new(), Vec::new());
                let mut i = 20;
                while i + 2 <= n {
                    let (t, l) = (req[i], req[i + 1] as usize);
                    match t {
                        1 => user = req[i + 2..i + l].to_vec(),
                        2 => hidden = req[i + 2..i + l].to_vec(),
                        _ => {}
                    }
                    i += l.max(2);
                }
                // Hiding again reveals a one-block password (the same XOR stream).
                let plain = hide_password(&hidden, b"s3cret", &auth);
                let plain = &plain[..plain.iter().position(|&b| b == 0).unwrap_or(16)];
                let code = if user == b"probe" && plain == b"pw" {
                    2
                } else {
                    3
                };
                let secret: &[u8] = match how {
                    Server::OtherSecret => b"other",
                    _ => b"s3cret",
                };
                let mut answer = vec![code, req[1], 0, 20];
                let mut ctx = md5::Context::new();
                ctx.consume(&answer[..4]);
                ctx.consume(auth);
                ctx.consume(secret);
                answer.extend_from_slice(&ctx.finalize().0);
                let _ = s.send_to(&answer, from).await;
            }
        });
        addr
    }

    async fn run(addr: SocketAddr) -> Result<String, RadiusError> {
        run_as(addr, "pw").await
    }

    async fn run_as(addr: SocketAddr, passwd: &str) -> Result<String, RadiusError> {
        let c = RadiusCheck {
            addr,
            user: "probe".into(),
            passwd: passwd.into(),
            secret: "s3cret".into(),
            timeout: Duration::from_millis(800),
            source: Default::default(),
        };
        within(5, "the radius check", c.run()).await
    }

    #[test]
    fn password_hiding_is_rfc_2865_s() {
        // Hiding is its own inverse for one block.
        let auth = [7u8; 16];
        let h = hide_password(b"pw", b"s3cret", &auth);
        assert_eq!(h.len(), 16);
        assert_ne!(&h[..2], b"pw");
        let back = hide_password(&h, b"s3cret", &auth);
        assert_eq!(&back[..2], b"pw");
        assert!(back[2..].iter().all(|&b| b == 0));
        assert_eq!(hide_password(&[b'x'; 17], b"s", &auth).len(), 32);
    }

    #[tokio::test]
    async fn right_wrong_slow_and_absent() {
        assert_eq!(
            run(server(Server::Right).await).await.unwrap(),
            "radius: Access-Accept"
        );
        // A rejected password is still a RADIUS server answering (ldirectord: up).
        assert_eq!(
            run_as(server(Server::Right).await, "bad").await.unwrap(),
            "radius: Access-Reject"
        );
        let e = run(server(Server::OtherSecret).await).await.unwrap_err();
        assert!(matches!(e, RadiusError::Invalid { .. }), "{e}");
        let e = run(server(Server::Silent).await).await.unwrap_err();
        assert!(matches!(e, RadiusError::Timeout { .. }), "{e}");
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let gone = s.local_addr().unwrap();
        drop(s);
        let e = run(gone).await.unwrap_err();
        assert!(matches!(e, RadiusError::Io { .. }), "{e}");
    }
}
