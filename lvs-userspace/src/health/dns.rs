//! dns negotiate checks: a hand-built query for `request`, sent to the real.
//!
//! As ldirectord's `check_dns`: one leading `/` of the request is dropped; the query goes
//! over UDP, or TCP when the virtual service is TCP. It asks for `A`, or `AAAA` when `receive`
//! contains a `:` (an IPv6 address pattern). The check passes on a NOERROR answer with at
//! least one answer record and, when `receive` is set, an A/AAAA record whose textual address
//! matches it.
//!
//! With a record type configured (`dns_type`, keepalived's DNS_CHECK `type`) it asks for that
//! type, always over UDP, and passes on a NOERROR answer to its query (same id, the QR bit),
//! as keepalived does: the answer's records are not looked at.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::atomic::{AtomicU16, Ordering},
    time::Duration,
};

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most bytes read from an answer.
const MAX_ANSWER: usize = 64 * 1024;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// Errors of dns checks.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The name cannot be put in a query.
    #[error("{name:?} is not a valid DNS name")]
    BadName {
        /// The name.
        name: String,
    },
    /// A socket operation failed.
    #[error("dns exchange with {addr} failed")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No answer within the timeout.
    #[error("no dns answer within {timeout:?}")]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The answer could not be parsed.
    #[error("malformed dns answer: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The server answered with an error code.
    #[error("dns answer code {rcode}")]
    Rcode {
        /// The RCODE.
        rcode: u8,
    },
    /// NOERROR but no answer records.
    #[error("empty dns answer")]
    NoAnswer,
    /// No address in the answer matches `receive`.
    #[error("no address in {addresses:?} matches {pattern:?}")]
    Mismatch {
        /// The addresses answered.
        addresses: Vec<String>,
        /// The regex.
        pattern: String,
    },
}

/// A prepared DNS check.
#[derive(Clone, Debug)]
pub struct DnsCheck {
    addr: SocketAddr,
    tcp: bool,
    qtype: u16,
    /// A NOERROR answer suffices (a configured type, as keepalived).
    noerror: bool,
    /// The encoded question (name, type, class) without the header.
    question: Vec<u8>,
    receive: Option<Regex>,
    timeout: Duration,
    /// Where its sockets leave from.
    source: crate::config::model::CheckSource,
}

impl DnsCheck {
    /// Prepares a check of the server `addr` for `request` (a name).
    pub fn new(
        addr: SocketAddr,
        tcp: bool,
        qtype: Option<u16>,
        request: Option<&str>,
        receive: Option<Regex>,
        timeout: Duration,
    ) -> Result<Self, DnsError> {
        let raw = request.unwrap_or_default();
        let name = raw.strip_prefix('/').unwrap_or(raw);
        let noerror = qtype.is_some();
        let qtype = match qtype {
            Some(t) => t,
            None if receive.as_ref().is_some_and(|r| r.as_str().contains(':')) => TYPE_AAAA,
            None => TYPE_A,
        };
        let mut question = encode_name(name).ok_or_else(|| DnsError::BadName {
            name: name.to_string(),
        })?;
        question.extend_from_slice(&qtype.to_be_bytes());
        question.extend_from_slice(&1u16.to_be_bytes()); // IN
        Ok(DnsCheck {
            addr,
            // keepalived's check is UDP only.
            tcp: tcp && !noerror,
            qtype,
            noerror,
            question,
            receive,
            timeout,
            source: Default::default(),
        })
    }

    /// The check with its sockets leaving from `source` (keepalived's `bindto`...).
    pub fn from_source(mut self, source: crate::config::model::CheckSource) -> Self {
        self.source = source;
        self
    }

    /// Runs the check: `Ok(addresses)` when up.
    pub async fn run(&self) -> Result<String, DnsError> {
        tokio::time::timeout(self.timeout, self.exchange())
            .await
            .unwrap_or(Err(DnsError::Timeout {
                timeout: self.timeout,
            }))
    }

    async fn exchange(&self) -> Result<String, DnsError> {
        static NEXT_ID: AtomicU16 = AtomicU16::new(0);
        let seed = std::process::id() as u16;
        let id = NEXT_ID.fetch_add(0x9e37, Ordering::Relaxed) ^ seed;
        let mut query = Vec::with_capacity(12 + self.question.len());
        query.extend_from_slice(&id.to_be_bytes());
        query.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
        query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
        query.extend_from_slice(&self.question);
        let addr = self.addr;
        let io = |source| DnsError::Io { addr, source };
        let answer = if self.tcp {
            let mut s = super::source::tcp(addr, &self.source).await.map_err(io)?;
            let mut framed = (query.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&query);
            s.write_all(&framed).await.map_err(io)?;
            let len = s.read_u16().await.map_err(io)? as usize;
            let mut buf = vec![0u8; len];
            s.read_exact(&mut buf).await.map_err(io)?;
            buf
        } else {
            let s = super::source::udp(addr, &self.source).await.map_err(io)?;
            s.send(&query).await.map_err(io)?;
            let mut buf = vec![0u8; MAX_ANSWER];
            loop {
                let n = s.recv(&mut buf).await.map_err(io)?;
                // Ignore stray datagrams with another id.
                if n >= 2 && buf[..2] == id.to_be_bytes() {
                    buf.truncate(n);
                    break buf;
                }
            }
        };
        if self.noerror {
            return noerror_answer(&answer, id);
        }
        let addresses = parse_answer(&answer, id)?;
        let Some(re) = &self.receive else {
            return Ok(format!("answer {}", addresses.join(" ")));
        };
        match addresses.iter().find(|a| re.is_match(a)) {
            Some(a) => Ok(format!("answer {a} matches")),
            None => Err(DnsError::Mismatch {
                addresses,
                pattern: re.as_str().to_string(),
            }),
        }
    }

    /// The query type asked (1: A, 28: AAAA).
    pub fn qtype(&self) -> u16 {
        self.qtype
    }
}

/// keepalived's DNS_CHECK: a response to query `id` with RCODE NOERROR.
fn noerror_answer(msg: &[u8], id: u16) -> Result<String, DnsError> {
    let bad = |reason| DnsError::Malformed { reason };
    if msg.len() < 12 {
        return Err(bad("short header"));
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if u16::from_be_bytes([msg[0], msg[1]]) != id {
        return Err(bad("id mismatch"));
    }
    if flags & 0x8000 == 0 {
        return Err(bad("not a response"));
    }
    match (flags & 0x000f) as u8 {
        0 => Ok(format!(
            "NOERROR, {} answer record(s)",
            u16::from_be_bytes([msg[6], msg[7]])
        )),
        rcode => Err(DnsError::Rcode { rcode }),
    }
}

/// Encodes `name` as DNS labels; `None` when a label is empty or too long.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.trim().trim_end_matches('.');
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// Skips a (possibly compressed) name at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + len as usize,
            0xc0 => return (pos + 2 <= msg.len()).then_some(pos + 2),
            _ => return None,
        }
    }
}

/// Checks the header and returns the A/AAAA addresses of the answer section as text.
fn parse_answer(msg: &[u8], id: u16) -> Result<Vec<String>, DnsError> {
    let bad = |reason| DnsError::Malformed { reason };
    if msg.len() < 12 {
        return Err(bad("short header"));
    }
    let be16 = |p: usize| u16::from_be_bytes([msg[p], msg[p + 1]]);
    if be16(0) != id {
        return Err(bad("id mismatch"));
    }
    let flags = be16(2);
    if flags & 0x8000 == 0 {
        return Err(bad("not a response"));
    }
    let rcode = (flags & 0x000f) as u8;
    if rcode != 0 {
        return Err(DnsError::Rcode { rcode });
    }
    let (qd, an) = (be16(4), be16(6));
    if an == 0 {
        return Err(DnsError::NoAnswer);
    }
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok_or(bad("bad question"))? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos).ok_or(bad("bad record name"))?;
        if pos + 10 > msg.len() {
            return Err(bad("short record"));
        }
        let rtype = be16(pos);
        let rdlen = be16(pos + 8) as usize;
        let rdata = msg
            .get(pos + 10..pos + 10 + rdlen)
            .ok_or(bad("short record data"))?;
        match (rtype, rdlen) {
            (TYPE_A, 4) => {
                let a: [u8; 4] = rdata.try_into().expect("length checked");
                addresses.push(Ipv4Addr::from(a).to_string());
            }
            (TYPE_AAAA, 16) => {
                let a: [u8; 16] = rdata.try_into().expect("length checked");
                addresses.push(Ipv6Addr::from(a).to_string());
            }
            _ => {}
        }
        pos += 10 + rdlen;
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::within;
    use tokio::net::UdpSocket;

    impl DnsCheck {
        /// Runs the check once; fails the test if it runs for more than 15 s (every check
        /// here has a timeout of at most 2 s).
        async fn run_within(&self) -> Result<String, DnsError> {
            within(15, "a dns check to end", self.run()).await
        }
    }

    /// The answer of the test server: `www.example.test` A 192.0.2.7 (compressed name),
    /// AAAA 2001:db8::7; anything else NXDOMAIN.
    fn answer(q: &[u8]) -> Vec<u8> {
        let qend = skip_name(q, 12).unwrap();
        let qname = &q[12..qend];
        let qtype = u16::from_be_bytes([q[qend], q[qend + 1]]);
        let known = encode_name("www.example.test").unwrap();
        let mut r = q[..qend + 4].to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        if qname == known.as_slice() {
            r[7] = 1; // one answer
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&qtype.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            if qtype == TYPE_AAAA {
                r.extend_from_slice(&[0, 16]);
                r.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
            } else {
                r.extend_from_slice(&[0, 4, 192, 0, 2, 7]);
            }
        } else if qname == [0] {
            // The root: NOERROR without an answer record.
        } else {
            r[3] = 0x83; // NXDOMAIN
        }
        r
    }

    /// A loopback UDP DNS responder; stops with the test's runtime.
    async fn responder() -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let _ = sock.send_to(&answer(&buf[..n]), peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let len = s.read_u16().await.unwrap() as usize;
            let mut q = vec![0u8; len];
            s.read_exact(&mut q).await.unwrap();
            let r = answer(&q);
            s.write_all(&(r.len() as u16).to_be_bytes()).await.unwrap();
            s.write_all(&r).await.unwrap();
        });
        let c = DnsCheck::new(
            addr,
            true,
            None,
            Some("www.example.test"),
            Some(Regex::new("192\\.0\\.2\\.7").unwrap()),
            Duration::from_secs(2),
        )
        .unwrap();
        c.run_within().await.unwrap();
        within(10, "the dns-over-tcp server's end", server)
            .await
            .unwrap();
    }

    fn check(addr: SocketAddr, name: &str, receive: Option<&str>) -> DnsCheck {
        DnsCheck::new(
            addr,
            false,
            None,
            Some(name),
            receive.map(|r| Regex::new(r).unwrap()),
            Duration::from_secs(2),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_record_matches() {
        let addr = responder().await;
        let msg = check(addr, "/www.example.test", Some("^192\\.0\\.2\\.7$"))
            .run_within()
            .await
            .unwrap();
        assert_eq!(msg, "answer 192.0.2.7 matches");
        check(addr, "www.example.test", None)
            .run_within()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn aaaa_when_receive_is_ipv6() {
        let addr = responder().await;
        let c = check(addr, "www.example.test", Some("2001:db8::7"));
        assert_eq!(c.qtype(), TYPE_AAAA);
        c.run_within().await.unwrap();
    }

    #[tokio::test]
    async fn mismatch_and_nxdomain_fail() {
        let addr = responder().await;
        let err = check(addr, "www.example.test", Some("10\\.0\\."))
            .run_within()
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::Mismatch { .. }), "{err:?}");
        let err = check(addr, "nope.example.test", None)
            .run_within()
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::Rcode { rcode: 3 }), "{err:?}");
    }

    #[tokio::test]
    async fn silence_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut c = check(silent.local_addr().unwrap(), "www.example.test", None);
        c.timeout = Duration::from_millis(200);
        let err = c.run_within().await.unwrap_err();
        assert!(matches!(err, DnsError::Timeout { .. }), "{err:?}");
    }

    /// keepalived's DNS_CHECK: the configured type asked, a NOERROR answer passes even
    /// without records (where ldirectord's check wants one); NXDOMAIN, silence fail.
    #[tokio::test]
    async fn a_configured_type_passes_on_noerror() {
        let addr = responder().await;
        let soa = |name: &str| {
            DnsCheck::new(
                addr,
                true, // ignored: keepalived's check is UDP
                Some(6),
                Some(name),
                None,
                Duration::from_secs(2),
            )
            .unwrap()
        };
        assert_eq!(soa(".").qtype(), 6);
        assert_eq!(
            soa(".").run_within().await.unwrap(),
            "NOERROR, 0 answer record(s)"
        );
        // The same query without a type fails as ldirectord's would: no answer record.
        let err = check(addr, ".", None).run_within().await.unwrap_err();
        assert!(matches!(err, DnsError::NoAnswer), "{err:?}");
        soa("www.example.test").run_within().await.unwrap();
        let err = soa("nope.example.test").run_within().await.unwrap_err();
        assert!(matches!(err, DnsError::Rcode { rcode: 3 }), "{err:?}");
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut c = soa(".");
        c.addr = silent.local_addr().unwrap();
        c.timeout = Duration::from_millis(200);
        let err = c.run_within().await.unwrap_err();
        assert!(matches!(err, DnsError::Timeout { .. }), "{err:?}");
    }

    #[test]
    fn bad_names_rejected() {
        assert!(encode_name("a..b").is_none());
        assert!(encode_name(&"x".repeat(64)).is_none());
        assert_eq!(encode_name("a.b.").unwrap(), vec![1, b'a', 1, b'b', 0]);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// A response with id 7 answering `name` with the given A records.
    fn response(name: &[u8], answers: &[[u8; 4]], compressed: bool) -> Vec<u8> {
        let mut m = vec![0, 7, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        for a in answers {
            if compressed {
                m.extend_from_slice(&[0xc0, 12]);
            } else {
                m.extend_from_slice(name);
            }
            m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(a);
        }
        m
    }

    proptest! {
        /// No answer makes the parser panic.
        #[test]
        fn answers_take_any_bytes(
            buf in proptest::collection::vec(any::<u8>(), 0..600),
            id in any::<u16>(),
        ) {
            let _ = parse_answer(&buf, id);
            for pos in 0..buf.len().min(64) {
                let _ = skip_name(&buf, pos);
            }
        }

        /// A well-formed answer gives back its addresses, the owner name written out or
        /// compressed, and any cut of it is refused or gives fewer, never a panic.
        #[test]
        fn answers_round_trip(
            labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..5),
            answers in proptest::collection::vec(any::<[u8; 4]>(), 1..6),
            compressed in any::<bool>(),
        ) {
            let name = encode_name(&labels.join(".")).expect("a valid name");
            let msg = response(&name, &answers, compressed);
            let want: Vec<String> =
                answers.iter().map(|a| Ipv4Addr::from(*a).to_string()).collect();
            prop_assert_eq!(parse_answer(&msg, 7).unwrap(), want);
            for cut in 0..msg.len() {
                prop_assert!(parse_answer(&msg[..cut], 7).is_err());
            }
        }

        /// Names are encoded as their labels, each with its length, and a final 0.
        #[test]
        fn names_round_trip(labels in proptest::collection::vec("[A-Za-z0-9_-]{1,63}", 1..4)) {
            let name = labels.join(".");
            let enc = encode_name(&name);
            if name.len() + 2 > 255 {
                prop_assert!(enc.is_none());
            } else {
                let enc = enc.expect("a valid name");
                let mut back = Vec::new();
                let mut pos = 0;
                while enc[pos] != 0 {
                    let len = enc[pos] as usize;
                    back.push(String::from_utf8(enc[pos + 1..pos + 1 + len].to_vec()).unwrap());
                    pos += 1 + len;
                }
                prop_assert_eq!(pos + 1, enc.len());
                prop_assert_eq!(back, labels);
            }
        }
    }
}
