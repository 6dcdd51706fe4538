//! TCP connects for connect checks, on sockets used again and again.
//!
//! A connect check only needs to know whether the real completes a handshake. Opening a socket
//! for each check, registering it with the runtime's epoll, then unregistering and closing it
//! costs the kernel more than the handshake itself; with thousands of reals checked every
//! second it is most of the agent's CPU. The connector keeps a pool of non-blocking sockets,
//! each registered once (edge-triggered) with an epoll instance of its own, which the runtime
//! polls as one descriptor. A check takes a socket, connects, waits for the epoll event and
//! reads the socket's TCP state; after a handshake it disconnects the socket with
//! `connect(AF_UNSPEC)`, which resets the connection as a close with `SO_LINGER` 0 does (no
//! `TIME_WAIT` left), and the socket goes back to the pool. After a refused or timed-out
//! connect the socket is disconnected the same way (from `SYN_SENT` the attempt is abandoned;
//! a late SYN-ACK gets a reset from the kernel), so thousands of reals that refuse cost no
//! more than thousands that accept; so is the socket of a check cancelled in the middle (its
//! target removed).
//!
//! Events can be stale: the disconnect of the previous check wakes the socket too. A waiting
//! check therefore trusts the socket's state (`TCP_INFO`), not the event.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Poll, Waker},
    time::Duration,
};

use socket2::{Protocol, SockAddr, Socket, Type};
use tokio::{
    io::{Interest, unix::AsyncFd},
    task::JoinHandle,
};

use crate::config::model::CheckSource;

/// Idle sockets kept beyond those in use; more are closed when returned.
const SPARE: usize = 256;
/// Events read by one `epoll_wait`.
const EVENTS: usize = 256;
/// States of the kernel's `tcp_states.h` (`tcpi_state`): connected, and connected with the
/// peer's close already received (a server that closes at once after accepting).
const TCP_ESTABLISHED: i32 = 1;
const TCP_CLOSE_WAIT: i32 = 8;
/// No connection: the handshake failed (or never started).
const TCP_CLOSE: i32 = 7;

/// A pool of connect sockets and the task that dispatches their events.
#[derive(Debug)]
pub struct Connector {
    shared: Arc<Shared>,
    dispatcher: JoinHandle<()>,
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

#[derive(Debug)]
struct Shared {
    epoll: AsyncFd<OwnedFd>,
    /// Checks waiting for their socket, by token.
    waiting: Mutex<HashMap<u64, Wait>>,
    /// Idle sockets, IPv4 and IPv6.
    idle: Mutex<[Vec<Pooled>; 2]>,
    /// Sockets out of the pool now.
    in_use: AtomicU64,
    next_token: AtomicU64,
}

#[derive(Debug, Default)]
struct Wait {
    /// An event came since the check last looked.
    woken: bool,
    waker: Option<Waker>,
}

/// A socket of the pool, registered with the connector's epoll under `token`.
#[derive(Debug)]
struct Pooled {
    socket: Socket,
    token: u64,
    v6: bool,
    /// Opened for one check with a source of its own (bound, marked...): closed after it,
    /// never pooled.
    own: bool,
}

/// Outcome of a connect.
#[derive(Debug)]
pub enum Connected {
    /// The handshake completed.
    Yes,
    /// It failed: refused, unreachable...
    Failed(io::Error),
    /// No answer within the timeout.
    TimedOut,
}

impl Connector {
    /// Opens the epoll instance and starts the dispatching task on the current runtime.
    pub fn new() -> io::Result<Connector> {
        // SAFETY: plain epoll_create1 call; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd stays open and unchanged for as long as the AsyncFd owns it.
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let shared = Arc::new(Shared {
            epoll,
            waiting: Mutex::default(),
            idle: Mutex::default(),
            in_use: AtomicU64::new(0),
            next_token: AtomicU64::new(1),
        });
        let dispatcher = tokio::spawn(dispatch(shared.clone()));
        Ok(Connector { shared, dispatcher })
    }

    /// Connects to `addr` within `timeout`, then resets the connection.
    pub async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Connected {
        self.connect_from(addr, timeout, &CheckSource::default())
            .await
    }

    /// [`Connector::connect`] from `source`: a socket of its own when `source` is not the
    /// default (bound, marked...), closed after the check.
    pub async fn connect_from(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        source: &CheckSource,
    ) -> Connected {
        match self.lease_and_connect(addr, timeout, source).await {
            // The lease ends here: the socket is disconnected and back in the pool.
            Ok((_lease, outcome)) => outcome,
            Err(e) => Connected::Failed(e),
        }
    }

    /// Takes a socket and connects it to `addr` within `timeout`; the lease gives it back
    /// (disconnected) when dropped. `Err`: no socket could be had.
    async fn lease_and_connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        source: &CheckSource,
    ) -> io::Result<(Lease<'_>, Connected)> {
        let addr = super::source::target(addr, source)?;
        let pooled = self.shared.take(addr, source)?;
        let lease = Lease {
            shared: &self.shared,
            pooled: Some(pooled),
        };
        let outcome = match tokio::time::timeout(timeout, lease.handshake(addr)).await {
            Ok(Ok(())) => Connected::Yes,
            Ok(Err(e)) => Connected::Failed(e),
            Err(_) => Connected::TimedOut,
        };
        Ok((lease, outcome))
    }

    /// Connects to `addr` within `timeout` and hands the connection over as a stream of the
    /// runtime's (for checks that talk: http); the socket leaves the pool. A connect that
    /// fails gives its socket back, as in [`Connector::connect`], so reals that refuse cost
    /// no socket per check.
    pub async fn connect_stream(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        source: &CheckSource,
    ) -> io::Result<tokio::net::TcpStream> {
        let (lease, outcome) = self.lease_and_connect(addr, timeout, source).await?;
        match outcome {
            Connected::Yes => {}
            Connected::Failed(e) => return Err(e),
            Connected::TimedOut => return Err(io::Error::from(io::ErrorKind::TimedOut)),
        }
        let pooled = lease.release();
        // Out of the connector's epoll set, into the runtime's.
        // SAFETY: both descriptors are open; a null event is allowed for EPOLL_CTL_DEL.
        let rc = unsafe {
            libc::epoll_ctl(
                self.shared.epoll.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                pooled.socket.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        tokio::net::TcpStream::from_std(pooled.socket.into())
    }

    /// Idle sockets in the pool.
    #[cfg(test)]
    fn idle(&self) -> usize {
        let idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle[0].len() + idle[1].len()
    }

    /// Sockets out of the pool now (leased to a check).
    #[cfg(test)]
    fn in_use(&self) -> u64 {
        self.shared.in_use.load(Ordering::Relaxed)
    }

    /// Sockets opened since the connector was made.
    #[cfg(test)]
    fn opened(&self) -> u64 {
        self.shared.next_token.load(Ordering::Relaxed) - 1
    }
}

impl Shared {
    /// An idle socket of `addr`'s family, or a new one; one of its own, never pooled, for a
    /// check from a `source` that is not the default.
    fn take(&self, addr: SocketAddr, source: &CheckSource) -> io::Result<Pooled> {
        let pooled = if source.is_default() {
            let family = usize::from(addr.is_ipv6());
            let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner())[family].pop();
            match reused {
                Some(p) => p,
                None => self.open(addr, source)?,
            }
        } else {
            self.open(addr, source)?
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pooled.token, Wait::default());
        Ok(pooled)
    }

    fn open(&self, addr: SocketAddr, source: &CheckSource) -> io::Result<Pooled> {
        let socket = super::source::socket(Type::STREAM, Protocol::TCP, source, addr)?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut event = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; event is a valid epoll_event.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut event,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pooled {
            socket,
            token,
            v6: addr.is_ipv6(),
            own: !source.is_default(),
        })
    }

    /// Ends a check's use of `pooled`: disconnected and back to the pool, or closed when the
    /// pool is full or the disconnect failed (which also takes it out of the epoll set).
    fn give_back(&self, pooled: Pooled) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pooled.token);
        let in_use = self.in_use.fetch_sub(1, Ordering::Relaxed) - 1;
        if disconnect(pooled.socket.as_raw_fd()).is_err() || pooled.own {
            return;
        }
        let family = usize::from(pooled.v6);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if (idle[0].len() + idle[1].len()) < in_use as usize + SPARE {
            idle[family].push(pooled);
        }
    }
}

/// A socket out of the pool for one check; given back when dropped (also when the check is
/// cancelled).
struct Lease<'a> {
    shared: &'a Shared,
    pooled: Option<Pooled>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.pooled.take() {
            self.shared.give_back(p);
        }
    }
}

impl Lease<'_> {
    /// Takes the socket out of the pool for good.
    fn release(mut self) -> Pooled {
        let pooled = self.pooled.take().expect("a leased socket");
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pooled.token);
        self.shared.in_use.fetch_sub(1, Ordering::Relaxed);
        pooled
    }

    /// Connects and waits until the socket is connected or has failed.
    async fn handshake(&self, addr: SocketAddr) -> io::Result<()> {
        let pooled = self.pooled.as_ref().expect("a leased socket");
        match pooled.socket.connect(&SockAddr::from(addr)) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let fd = pooled.socket.as_raw_fd();
        let token = pooled.token;
        std::future::poll_fn(|cx| {
            let mut waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let wait = waiting.entry(token).or_default();
            if wait.woken {
                wait.woken = false;
                match tcp_state(fd) {
                    Ok(TCP_ESTABLISHED | TCP_CLOSE_WAIT) => return Poll::Ready(Ok(())),
                    Ok(TCP_CLOSE) => {
                        let err = pooled
                            .socket
                            .take_error()
                            .ok()
                            .flatten()
                            .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionAborted));
                        return Poll::Ready(Err(err));
                    }
                    Ok(_) => {} // still connecting: a stale event
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            wait.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// Reads the connector's epoll set whenever it is readable and wakes the checks concerned.
async fn dispatch(shared: Arc<Shared>) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        let Ok(mut guard) = shared.epoll.readable().await else {
            return;
        };
        // SAFETY: events has room for EVENTS entries; timeout 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(
                shared.epoll.get_ref().as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as i32,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(error = %e, "connect checks: epoll_wait failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        }
        let n = n as usize;
        if n < EVENTS {
            guard.clear_ready();
        }
        let mut waiting = shared.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for ev in &events[..n] {
            let token = ev.u64;
            if let Some(wait) = waiting.get_mut(&token) {
                wait.woken = true;
                if let Some(w) = wait.waker.take() {
                    w.wake();
                }
            }
        }
    }
}

/// The socket's TCP state ([`TCP_ESTABLISHED`], `TCP_SYN_SENT`, [`TCP_CLOSE`]...).
fn tcp_state(fd: RawFd) -> io::Result<i32> {
    // tcpi_state is the first byte of struct tcp_info; the kernel copies what fits.
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: info is valid for len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(info[0]))
}

/// Disconnects a connected socket (`connect(AF_UNSPEC)`: a reset, as a close with
/// `SO_LINGER` 0) and clears the error the reset leaves on it, ready for another connect.
fn disconnect(fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr_storage is plain data; zeroed, its family is AF_UNSPEC.
    let unspec: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: unspec is valid for the length passed.
    let rc = unsafe {
        libc::connect(
            fd,
            (&unspec as *const libc::sockaddr_storage).cast(),
            std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err is valid for len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{io::AsyncReadExt, net::TcpListener};

    /// Waits for `f` at most 10 s, or fails naming `what` it waited for.
    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("waited 10 s for {what}"))
    }

    /// Waits until no connection to or from local `port` is left (only its listener).
    async fn all_gone(port: u16) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = connections_to(port);
            if left == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{left} connections to port {port} still there after 5 s (a close, not a reset, \
                 leaves the checker's side in TIME_WAIT)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Each check's connection is reset, not closed: nothing of it is left on either side (a
    /// close would leave the checker in `FIN_WAIT2`/`TIME_WAIT` and the server in `CLOSE_WAIT`),
    /// and one socket serves the checks. The server does not accept: a connection reset
    /// before `accept()` need not come out of it.
    #[tokio::test]
    async fn sockets_are_reused_and_each_connection_is_reset() {
        let connector = Connector::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..3 {
            let outcome = connector.connect(addr, Duration::from_secs(2)).await;
            assert!(matches!(outcome, Connected::Yes), "{outcome:?}");
            all_gone(addr.port()).await;
        }
        assert_eq!(connector.idle(), 1, "one socket served the three checks");
        assert_eq!(connector.opened(), 1);
    }

    #[tokio::test]
    async fn refused_and_ipv6() {
        let connector = Connector::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let outcome = connector.connect(addr, Duration::from_secs(2)).await;
        assert!(
            matches!(&outcome, Connected::Failed(e) if e.kind() == io::ErrorKind::ConnectionRefused),
            "{outcome:?}"
        );
        for _ in 0..3 {
            let outcome = connector.connect(addr, Duration::from_secs(2)).await;
            assert!(matches!(outcome, Connected::Failed(_)), "{outcome:?}");
        }
        assert_eq!(
            connector.idle(),
            1,
            "one socket served the refused connects"
        );
        let l6 = TcpListener::bind("[::1]:0")
            .await
            .expect("this test needs IPv6 on loopback ([::1])");
        let outcome = connector
            .connect(l6.local_addr().unwrap(), Duration::from_secs(2))
            .await;
        assert!(matches!(outcome, Connected::Yes), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_timed_out_socket_connects_again() {
        let connector = Connector::new().unwrap();
        // A listener that never accepts, its queue full: further handshakes get no answer.
        let full = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let full_addr = full.local_addr().unwrap();
        // SAFETY: listen(2) again on our listening socket only changes its backlog.
        unsafe { libc::listen(full.as_raw_fd(), 0) };
        let mut answered = 0;
        let timed_out = loop {
            match connector
                .connect(full_addr, Duration::from_millis(300))
                .await
            {
                Connected::TimedOut => break true,
                Connected::Yes if answered < 16 => answered += 1,
                _ => break false,
            }
        };
        assert!(timed_out, "the full listener never stopped answering");
        assert_eq!(connector.idle(), 1);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outcome = connector
            .connect(listener.local_addr().unwrap(), Duration::from_secs(2))
            .await;
        assert!(matches!(outcome, Connected::Yes), "{outcome:?}");
        assert_eq!(
            connector.idle(),
            1,
            "the timed-out socket served the next check"
        );
    }

    #[tokio::test]
    async fn a_stream_handed_over_talks_and_a_refused_one_keeps_its_socket() {
        use tokio::io::AsyncWriteExt;
        let connector = Connector::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut stream = connector
            .connect_stream(addr, Duration::from_secs(2), &CheckSource::default())
            .await
            .unwrap();
        let (mut server, _) = within("the handed-over connection", listener.accept())
            .await
            .unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        within("ping at the server", server.read_exact(&mut b))
            .await
            .unwrap();
        assert_eq!(&b, b"ping");
        server.write_all(b"pong").await.unwrap();
        within("pong at the checker", stream.read_exact(&mut b))
            .await
            .unwrap();
        assert_eq!(&b, b"pong");
        assert_eq!(connector.idle(), 0, "the socket left the pool");
        drop(listener);
        for _ in 0..3 {
            let err = connector
                .connect_stream(addr, Duration::from_secs(2), &CheckSource::default())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        }
        assert_eq!(
            connector.idle(),
            1,
            "one socket served the refused connects"
        );
    }

    /// 200 checks at once all connect, a second round of 200 opens no socket (the pool serves
    /// it), and nothing is left: no socket leased, no connection to the server.
    ///
    /// A connection the checker resets before the server accepted it need not come out of
    /// `accept()`, so this test does not count accepted connections: the server accepts and
    /// drops in the background only to keep its queue from filling.
    #[tokio::test]
    async fn many_checks_at_once() {
        const CHECKS: usize = 200;
        let connector = Arc::new(Connector::new().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                drop(listener.accept().await);
            }
        });
        let mut opened_after_first = 0;
        for round in 0..2 {
            let checks: Vec<_> = (0..CHECKS)
                .map(|_| {
                    let c = connector.clone();
                    tokio::spawn(async move { c.connect(addr, Duration::from_secs(5)).await })
                })
                .collect();
            for c in checks {
                let outcome = within("a check with a 5 s timeout", c).await.unwrap();
                assert!(
                    matches!(outcome, Connected::Yes),
                    "round {round}: {outcome:?}"
                );
            }
            assert_eq!(
                connector.in_use(),
                0,
                "round {round}: every socket given back"
            );
            assert_eq!(
                connector.idle() as u64,
                connector.opened(),
                "round {round}: every socket opened is idle in the pool"
            );
            if round == 0 {
                opened_after_first = connector.opened();
                assert!(
                    opened_after_first <= CHECKS as u64,
                    "{opened_after_first} opened"
                );
            } else {
                assert_eq!(
                    connector.opened(),
                    opened_after_first,
                    "the second round was served by the pool"
                );
            }
        }
        server.abort();
        // Every connection was reset: none to the server is left in any state but LISTEN.
        all_gone(addr.port()).await;
    }

    /// Sockets in `/proc/net/tcp` to or from local `port` that are not listening.
    fn connections_to(port: u16) -> usize {
        const LISTEN: &str = "0A";
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let port = format!(":{port:04X}");
        table
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && (f[1].ends_with(&port) || f[2].ends_with(&port)) && f[3] != LISTEN
            })
            .count()
    }
}
