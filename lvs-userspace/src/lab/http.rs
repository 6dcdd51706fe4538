//! The lab's HTTP client: a GET through the VIP or to a real, from a namespace or from here,
//! from a chosen source port.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs},
    time::{Duration, Instant},
};

use super::{LabError, Result, run_in_netns};

/// A GET of `path` from `addr` (e.g. `"198.18.0.100:80"` or `"[fd00:198:18::100]:80"`),
/// opened from namespace `ns` with std's `TcpStream` (HTTP/1.0, `Connection: close`). Returns
/// the status code and the body.
pub fn http_get<A: ToSocketAddrs>(ns: &str, addr: A, path: &str) -> Result<(u16, Vec<u8>)> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| LabError::HttpIo {
            addr: "?".into(),
            path: path.into(),
            step: "parsing the address",
            source,
        })?
        .collect();
    let Some(&addr) = addrs.first() else {
        return Err(LabError::HttpAnswer {
            addr: "?".into(),
            path: path.into(),
            detail: "no address".into(),
        });
    };
    run_in_netns(ns, || http_get_here(addr, path))?
}

/// Like [`http_get`] but in the calling thread's namespace.
pub fn http_get_here(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|source| {
        LabError::HttpIo {
            addr: addr.to_string(),
            path: path.to_string(),
            step: "connecting",
            source,
        }
    })?;
    http_exchange(stream, addr, path)
}

/// Like [`http_get`], from a chosen local (source) port, so tests can spread connections over
/// the scheduler's hash (Linux itself picks mostly even ports). `SO_REUSEADDR` is set, so the
/// same port can be used again as soon as the previous connection is closed on the client.
pub fn http_get_from_port(
    ns: &str,
    src_port: u16,
    addr: SocketAddr,
    path: &str,
) -> Result<(u16, Vec<u8>)> {
    run_in_netns(ns, || {
        let stream = connect_from_port(src_port, addr).map_err(|source| LabError::HttpIo {
            addr: addr.to_string(),
            path: path.to_string(),
            step: "connecting from a chosen port",
            source,
        })?;
        http_exchange(stream, addr, path)
    })?
}

/// How long [`connect_from_port`] tries again while the last connection between the same two
/// ends is still closing.
const PORT_REUSE_WAIT: Duration = Duration::from_secs(3);

/// A TCP connection to `addr` from local port `src_port` (any local address), in the calling
/// thread's namespace, with a 5 s connect timeout.
///
/// A connection just closed from the same port to the same address holds their 4-tuple until
/// the peer's last ACK comes back (LAST_ACK, microseconds on a veth, longer on a busy machine),
/// and connect(2) refuses it meanwhile with `EADDRNOTAVAIL`: that is tried again, for
/// [`PORT_REUSE_WAIT`] at most.
pub fn connect_from_port(src_port: u16, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + PORT_REUSE_WAIT;
    loop {
        match connect_once(src_port, addr) {
            Err(e)
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// One attempt of [`connect_from_port`].
fn connect_once(src_port: u16, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2); checked and owned below.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: option values are valid for their sizes.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        // On Linux the send timeout bounds connect(2) too.
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, src_port)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, src_port)),
    };
    let (sa, len) = sockaddr_of(local);
    // SAFETY: sa is valid for len bytes.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    let (sa, len) = sockaddr_of(addr);
    // SAFETY: sa is valid for len bytes.
    if unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    } < 0
    {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINPROGRESS) {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        return Err(e);
    }
    let stream = TcpStream::from(fd);
    Ok(stream)
}

fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

fn http_exchange(mut s: TcpStream, addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let io_err = |step: &'static str| {
        move |source| LabError::HttpIo {
            addr: addr.to_string(),
            path: path.to_string(),
            step,
            source,
        }
    };
    // 30 s for a read, 60 s for the whole answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io_err("setting the read timeout"))?;
    let host = match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lvs-lab\r\nConnection: close\r\n\r\n"
    )
    .map_err(io_err("sending the request"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        if Instant::now() >= deadline {
            return Err(io_err("reading the answer")(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not all of it within 60 s ({} bytes)", buf.len()),
            )));
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("reading the answer")(e)),
        }
    }
    let bad = |detail: &str| LabError::HttpAnswer {
        addr: addr.to_string(),
        path: path.to_string(),
        detail: detail.to_string(),
    };
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    Ok((status, buf[end + 4..].to_vec()))
}
