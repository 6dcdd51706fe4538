use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::mpsc,
};

use super::*;
use crate::health::tests::{spec, within};

/// What the server saw on one connection.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A connect, closed without a byte sent.
    Connect,
    /// An http request (answered).
    Request,
}

/// An http server on loopback reporting, per connection in accept order, whether it was
/// a bare connect or a request. It answers `alive` while `healthy`, else `sick`.
async fn observing_server(healthy: Arc<AtomicBool>) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (tx, healthy) = (tx.clone(), healthy.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                let read = async {
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                };
                // Bounded: the checker closes or asks at once.
                if tokio::time::timeout(Duration::from_secs(10), read)
                    .await
                    .is_err()
                {
                    return; // reported as nothing: the test's wait names it
                }
                if req.is_empty() {
                    let _ = tx.send(Seen::Connect).await;
                    return;
                }
                let body = if healthy.load(Ordering::SeqCst) {
                    "alive"
                } else {
                    "sick!"
                };
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{body}");
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
                let _ = tx.send(Seen::Request).await;
            });
        }
    });
    (addr, rx)
}

/// `checktype = n` of an http service at `addr` expecting `alive`.
fn key(addr: SocketAddr, n: u32) -> CheckKey {
    let mut spec = spec(CheckType::ConnectThenNegotiate(n));
    spec.service = CheckService::Http;
    spec.request = Some("/health".into());
    spec.receive = Some("alive".into());
    spec.timeout = Duration::from_secs(2);
    spec.negotiate_timeout = Duration::from_secs(2);
    CheckKey {
        real: addr,
        port: addr.port(),
        protocol: Protocol::Tcp,
        virtual_addr: None,
        base_weight: 0,
        spec,
    }
    .normalized()
}

#[tokio::test]
async fn checktype_n_connects_n_times_then_negotiates_once() {
    let healthy = Arc::new(AtomicBool::new(true));
    let (addr, mut seen) = observing_server(healthy.clone()).await;
    // As the engine builds it: the shared pinger and connector.
    let pinger = Arc::new(ping::Pinger::new());
    let connector = Connector::new().ok().map(Arc::new);
    let mut probe = Probe::new(&key(addr, 2), &pinger, connector.as_ref());
    assert!(probe.sends_packets());
    // One run: what the probe says it ran, whether it passed, and what the server saw.
    let mut run = async |i: usize| {
        let r = within(
            15,
            &format!("run {i} of the checktype = 2 probe"),
            probe.run(),
        )
        .await;
        let s = within(
            15,
            &format!("the server to see run {i}'s connection"),
            seen.recv(),
        )
        .await
        .expect("the server is running");
        (r.check, r.result.is_ok(), s)
    };
    use Seen::{Connect, Request};
    let mut got = Vec::new();
    for i in 1..=5 {
        got.push(run(i).await);
    }
    assert_eq!(
        got,
        [
            ("connect", true, Connect),
            ("connect", true, Connect),
            ("negotiate", true, Request),
            ("connect", true, Connect),
            ("connect", true, Connect),
        ],
        "two connects, then one negotiate, and again"
    );
    // A failed negotiate counts no connects: the next check negotiates again, until one
    // passes.
    healthy.store(false, Ordering::SeqCst);
    let mut got = vec![run(6).await, run(7).await];
    healthy.store(true, Ordering::SeqCst);
    got.push(run(8).await);
    got.push(run(9).await);
    assert_eq!(
        got,
        [
            ("negotiate", false, Request),
            ("negotiate", false, Request),
            ("negotiate", true, Request),
            ("connect", true, Connect),
        ]
    );
    assert!(
        seen.try_recv().is_err(),
        "one connection per check: {:?}",
        seen.try_recv()
    );
}
