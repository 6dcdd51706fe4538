//! Netlink plumbing: the raw `NETLINK_ROUTE` socket, requests and dumps, and the encoding
//! and decoding of messages and attributes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{MacAddr, NeighbourError, NudState, REQUEST_TIMEOUT, Result};

pub(super) const RTA_DST: u16 = 1;
pub(super) const RTA_OIF: u16 = 4;
pub(super) const RTA_GATEWAY: u16 = 5;
pub(super) const RTA_VIA: u16 = 18;
pub(super) const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
pub(super) const IFLA_ADDRESS: u16 = 1;
pub(super) const IFLA_IFNAME: u16 = 3;
pub(super) const IFA_ADDRESS: u16 = 1;
pub(super) const IFA_LOCAL: u16 = 2;
pub(super) const RTN_UNICAST: u8 = 1;
pub(super) const RTN_LOCAL: u8 = 2;
pub(super) const NTF_USE: u8 = 0x01;
pub(super) const RTMGRP_NEIGH: u32 = 4;
const NLMSG_HDRLEN: usize = 16;
const NLM_F_DUMP_INTR: u16 = 0x10;

static SEQ: AtomicU32 = AtomicU32::new(1);

pub(super) struct Netlink {
    pub(super) fd: OwnedFd,
}

impl Netlink {
    pub(super) fn open(groups: u32) -> Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(sock_err("socket"));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = groups;
        // SAFETY: sa is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(sock_err("bind"));
        }
        Ok(Netlink { fd })
    }

    fn send(&self, ty: u16, flags: u16, payload: &[u8]) -> Result<u32> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let len = NLMSG_HDRLEN + payload.len();
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(payload);
        // SAFETY: sockaddr_nl zeroed = the kernel.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: buf and sa are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(sock_err("sendto"));
        }
        Ok(seq)
    }

    pub(super) fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(NeighbourError::Socket {
                op: "poll",
                source: e,
            });
        }
        Ok(rc > 0)
    }

    pub(super) fn recv(&self) -> Result<Vec<u8>> {
        self.recv_flags(0)
    }

    pub(super) fn recv_flags(&self, flags: i32) -> Result<Vec<u8>> {
        // Not zeroed: the kernel writes what is read (a notification is a few hundred bytes).
        let mut buf = Vec::<u8>::with_capacity(65536);
        // SAFETY: buf's spare capacity is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.capacity(),
                flags,
            )
        };
        if n < 0 {
            return Err(sock_err("recv"));
        }
        // SAFETY: the kernel initialised the first n bytes (n <= capacity).
        unsafe { buf.set_len(n as usize) };
        Ok(buf)
    }

    /// Asks for a receive buffer of `bytes` (beyond the `rmem_max` limit when privileged).
    pub(super) fn set_receive_buffer(&self, bytes: i32) {
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: setsockopt with a valid int of the given length.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const i32).cast(),
                    std::mem::size_of::<i32>() as u32,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    /// Sends a request and collects the answers (type, body) up to the ACK or NLMSG_DONE. A
    /// dump the kernel marks inconsistent (`NLM_F_DUMP_INTR`) is
    /// [`NeighbourError::DumpInterrupted`]; one that ends in an error is
    /// [`NeighbourError::Kernel`]: neither is taken as a complete, shorter table.
    pub(super) fn request(
        &self,
        ty: u16,
        flags: u16,
        payload: &[u8],
        what: &str,
    ) -> Result<Vec<(u16, Vec<u8>)>> {
        let dump = flags & libc::NLM_F_DUMP as u16 == libc::NLM_F_DUMP as u16;
        let flags = if dump {
            flags
        } else {
            flags | libc::NLM_F_ACK as u16
        };
        let seq = self.send(ty, flags, payload)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut answers = Answers::new(seq, what);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(NeighbourError::Socket {
                    op: "receive (timed out)",
                    source: io::Error::from(io::ErrorKind::TimedOut),
                });
            }
            if !self.wait_readable(Some(deadline - now))? {
                continue;
            }
            let buf = self.recv()?;
            if let Some(out) = answers.take(&buf)? {
                return Ok(out);
            }
        }
    }

    /// A dump request ([`Netlink::request`] with `NLM_F_DUMP`), asked again when the kernel
    /// reports it interrupted, at most [`DUMP_ATTEMPTS`] times.
    pub(super) fn dump(&self, ty: u16, payload: &[u8], what: &str) -> Result<Vec<(u16, Vec<u8>)>> {
        retry_interrupted(|| {
            self.request(
                ty,
                (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
                payload,
                what,
            )
        })
    }
}

/// How many times a dump the kernel reports interrupted (the table changed while it was read)
/// is asked for before giving up.
pub(super) const DUMP_ATTEMPTS: usize = 4;

/// Runs `f` until it gives anything but [`NeighbourError::DumpInterrupted`], at most
/// [`DUMP_ATTEMPTS`] times; the last interruption is returned when every attempt was one.
fn retry_interrupted<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(NeighbourError::DumpInterrupted { .. }) if attempt < DUMP_ATTEMPTS => {
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Netlink messages as (type, body).
type Messages = Vec<(u16, Vec<u8>)>;

/// The answers to one request, gathered from the buffers read.
struct Answers<'a> {
    seq: u32,
    what: &'a str,
    out: Messages,
    /// A message of the dump carried `NLM_F_DUMP_INTR`.
    interrupted: bool,
}

impl<'a> Answers<'a> {
    fn new(seq: u32, what: &'a str) -> Self {
        Answers {
            seq,
            what,
            out: Vec::new(),
            interrupted: false,
        }
    }

    /// Takes the messages of one buffer; the answers once the request is complete (its ACK or
    /// NLMSG_DONE was read), `None` while more are to come.
    fn take(&mut self, buf: &[u8]) -> Result<Option<Messages>> {
        for (mty, mflags, mseq, body) in messages(buf) {
            if mseq != self.seq {
                continue;
            }
            if mflags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match mty as i32 {
                libc::NLMSG_DONE | libc::NLMSG_ERROR => {
                    // NLMSG_DONE carries the dump's error code (0: complete), NLMSG_ERROR the
                    // request's (0: the ACK).
                    let code = body
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    let code = match (mty as i32, code) {
                        (libc::NLMSG_ERROR, None) => {
                            return Err(malformed(self.what, "short NLMSG_ERROR"));
                        }
                        // An old kernel's DONE may carry nothing.
                        (_, code) => code.unwrap_or(0),
                    };
                    if code != 0 {
                        return Err(NeighbourError::Kernel {
                            request: self.what.to_string(),
                            source: io::Error::from_raw_os_error(code.saturating_neg()),
                        });
                    }
                    if self.interrupted {
                        return Err(NeighbourError::DumpInterrupted {
                            request: self.what.to_string(),
                        });
                    }
                    return Ok(Some(std::mem::take(&mut self.out)));
                }
                _ => self.out.push((mty, body.to_vec())),
            }
        }
        Ok(None)
    }
}

fn sock_err(op: &'static str) -> NeighbourError {
    NeighbourError::Socket {
        op,
        source: io::Error::last_os_error(),
    }
}

pub(super) fn malformed(request: &str, detail: &str) -> NeighbourError {
    NeighbourError::Malformed {
        request: request.to_string(),
        detail: detail.to_string(),
    }
}

/// Splits a buffer into netlink messages: (type, flags, seq, body).
pub(super) fn messages(buf: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[off..];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        let flags = u16::from_ne_bytes([h[6], h[7]]);
        let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        out.push((ty, flags, seq, &h[NLMSG_HDRLEN..len]));
        off += (len + 3) & !3;
    }
    out
}

/// Splits attributes (rtattr) into (type, value).
pub(super) fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff; // strip NLA_F_NESTED etc.
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((ty, &buf[4..len]));
        let adv = ((len + 3) & !3).min(buf.len());
        buf = &buf[adv..];
    }
    out
}

pub(super) fn push_attr(msg: &mut Vec<u8>, ty: u16, val: &[u8]) {
    let len = 4 + val.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(val);
    while !msg.len().is_multiple_of(4) {
        msg.push(0);
    }
}

pub(super) fn addr_bytes(addr: IpAddr) -> (u8, Vec<u8>) {
    match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    }
}

pub(super) fn parse_ip(val: &[u8]) -> Option<IpAddr> {
    match val.len() {
        4 => parse_ip_family(libc::AF_INET as u8, val),
        16 => parse_ip_family(libc::AF_INET6 as u8, val),
        _ => None,
    }
}

pub(super) fn parse_ip_family(family: u8, val: &[u8]) -> Option<IpAddr> {
    match family as i32 {
        libc::AF_INET => {
            let b: [u8; 4] = val.get(..4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        libc::AF_INET6 => {
            let b: [u8; 16] = val.get(..16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

pub(super) fn ndmsg(family: u8, ifindex: u32, state: u16, flags: u8) -> Vec<u8> {
    let mut msg = Vec::with_capacity(12);
    msg.extend_from_slice(&[family, 0, 0, 0]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&state.to_ne_bytes());
    msg.push(flags);
    msg.push(0);
    msg
}

/// Parses an ndmsg + attributes: (addr, ifindex, state, mac).
pub(super) fn parse_neigh(body: &[u8]) -> Option<(IpAddr, u32, NudState, Option<MacAddr>)> {
    if body.len() < 12 {
        return None;
    }
    let family = body[0];
    let ifindex = i32::from_ne_bytes(body[4..8].try_into().ok()?) as u32;
    let state = NudState(u16::from_ne_bytes([body[8], body[9]]));
    let mut addr = None;
    let mut mac = None;
    for (ty, val) in attrs(&body[12..]) {
        match ty {
            NDA_DST => addr = parse_ip_family(family, val),
            NDA_LLADDR if val.len() == 6 => {
                mac = Some(MacAddr(val.try_into().ok()?));
            }
            _ => {}
        }
    }
    Some((addr?, ifindex, state, mac))
}

#[cfg(test)]
mod dump_tests {
    use super::*;

    /// One netlink message: header (length, type, flags, seq, pid) and body, padded.
    fn msg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    fn neigh(last: u8) -> Vec<u8> {
        let mut b = ndmsg(libc::AF_INET as u8, 2, NudState::REACHABLE, 0);
        push_attr(&mut b, NDA_DST, &[10, 0, 0, last]);
        push_attr(&mut b, NDA_LLADDR, &[2, 0, 0, 0, 0, last]);
        b
    }

    const MULTI: u16 = libc::NLM_F_MULTI as u16;

    fn done(code: i32) -> Vec<u8> {
        msg(libc::NLMSG_DONE as u16, MULTI, 7, &code.to_ne_bytes())
    }

    #[test]
    fn a_complete_dump_gives_its_entries() {
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(msg(libc::RTM_NEWNEIGH, MULTI, 8, &neigh(9))); // another request's
        assert!(a.take(&buf).unwrap().is_none());
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(2));
        buf.extend(done(0));
        let out = a.take(&buf).unwrap().expect("complete after NLMSG_DONE");
        assert_eq!(out.len(), 2);
        let (addr, ..) = parse_neigh(&out[1].1).unwrap();
        assert_eq!(addr, IpAddr::from([10, 0, 0, 2]));
    }

    #[test]
    fn a_dump_marked_interrupted_is_not_complete() {
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(msg(
            libc::RTM_NEWNEIGH,
            MULTI | NLM_F_DUMP_INTR,
            7,
            &neigh(2),
        ));
        buf.extend(done(0));
        assert!(matches!(
            a.take(&buf),
            Err(NeighbourError::DumpInterrupted { .. })
        ));
        // The flag on NLMSG_DONE alone counts too.
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(msg(
            libc::NLMSG_DONE as u16,
            MULTI | NLM_F_DUMP_INTR,
            7,
            &0i32.to_ne_bytes(),
        ));
        assert!(matches!(
            a.take(&buf),
            Err(NeighbourError::DumpInterrupted { .. })
        ));
    }

    #[test]
    fn a_dump_ending_in_an_error_is_an_error() {
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let mut buf = msg(libc::RTM_NEWNEIGH, MULTI, 7, &neigh(1));
        buf.extend(done(-libc::ENOBUFS));
        match a.take(&buf) {
            Err(NeighbourError::Kernel { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOBUFS))
            }
            other => panic!("expected the dump's error, got {other:?}"),
        }
        // NLMSG_ERROR with an error in a dump, and a short NLMSG_ERROR.
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let buf = msg(
            libc::NLMSG_ERROR as u16,
            0,
            7,
            &(-libc::EINTR).to_ne_bytes(),
        );
        assert!(matches!(a.take(&buf), Err(NeighbourError::Kernel { .. })));
        let mut a = Answers::new(7, "RTM_GETNEIGH dump");
        let buf = msg(libc::NLMSG_ERROR as u16, 0, 7, &[0, 0]);
        assert!(matches!(
            a.take(&buf),
            Err(NeighbourError::Malformed { .. })
        ));
    }

    #[test]
    fn an_ack_completes_a_request() {
        let mut a = Answers::new(7, "RTM_NEWNEIGH");
        let buf = msg(libc::NLMSG_ERROR as u16, 0, 7, &[0; 20]);
        assert_eq!(a.take(&buf).unwrap(), Some(vec![]));
    }

    #[test]
    fn an_interrupted_dump_is_asked_again_a_bounded_number_of_times() {
        let interrupted = || NeighbourError::DumpInterrupted {
            request: "RTM_GETNEIGH dump".into(),
        };
        let mut calls = 0;
        let r = retry_interrupted(|| {
            calls += 1;
            if calls < 3 {
                Err(interrupted())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: Result<()> = retry_interrupted(|| {
            calls += 1;
            Err(interrupted())
        });
        assert!(matches!(r, Err(NeighbourError::DumpInterrupted { .. })));
        assert_eq!(calls, DUMP_ATTEMPTS);
        // Other errors are not retried.
        let mut calls = 0;
        let r: Result<()> = retry_interrupted(|| {
            calls += 1;
            Err(malformed("x", "y"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No input makes the message, attribute or neighbour parsers panic.
        #[test]
        fn parsers_take_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            for (_, _, _, body) in messages(&buf) {
                let _ = parse_neigh(body);
                let _ = attrs(body);
            }
            let _ = attrs(&buf);
            let _ = parse_neigh(&buf);
            let mut a = Answers::new(7, "any");
            let _ = a.take(&buf);
        }

        /// Attributes written with `push_attr` are read back by `attrs`, in order.
        #[test]
        fn attributes_round_trip(
            list in proptest::collection::vec(
                (0u16..0x4000, proptest::collection::vec(any::<u8>(), 0..40)),
                0..12,
            )
        ) {
            let mut msg = Vec::new();
            for (ty, val) in &list {
                push_attr(&mut msg, *ty, val);
            }
            let back: Vec<(u16, Vec<u8>)> =
                attrs(&msg).into_iter().map(|(t, v)| (t, v.to_vec())).collect();
            prop_assert_eq!(back, list);
        }

        /// Messages laid end to end (each padded to 4 bytes) are split back as they were.
        #[test]
        fn messages_round_trip(
            list in proptest::collection::vec(
                (any::<u16>(), any::<u16>(), any::<u32>(),
                 proptest::collection::vec(any::<u8>(), 0..64)),
                0..8,
            )
        ) {
            let mut buf = Vec::new();
            for (ty, flags, seq, body) in &list {
                buf.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
                buf.extend_from_slice(&ty.to_ne_bytes());
                buf.extend_from_slice(&flags.to_ne_bytes());
                buf.extend_from_slice(&seq.to_ne_bytes());
                buf.extend_from_slice(&0u32.to_ne_bytes());
                buf.extend_from_slice(body);
                while !buf.len().is_multiple_of(4) {
                    buf.push(0);
                }
            }
            let back: Vec<_> = messages(&buf)
                .into_iter()
                .map(|(t, f, s, b)| (t, f, s, b.to_vec()))
                .collect();
            prop_assert_eq!(back, list);
        }

        /// A neighbour entry built as the kernel sends it is read back.
        #[test]
        fn neighbour_round_trip(
            v4 in any::<[u8; 4]>(),
            ifindex in any::<u32>(),
            state in any::<u16>(),
            mac in proptest::option::of(any::<[u8; 6]>()),
        ) {
            let mut body = ndmsg(libc::AF_INET as u8, ifindex, state, 0);
            push_attr(&mut body, NDA_DST, &v4);
            if let Some(m) = mac {
                push_attr(&mut body, NDA_LLADDR, &m);
            }
            let (addr, idx, st, back) = parse_neigh(&body).expect("parsed");
            prop_assert_eq!(addr, IpAddr::from(v4));
            prop_assert_eq!(idx, ifindex);
            prop_assert_eq!(st.0, state);
            prop_assert_eq!(back.map(|m| m.0), mac);
        }
    }
}
