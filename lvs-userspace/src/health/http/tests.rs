use super::*;
use crate::health::tests::{ipv6_loopback, wait_until, within};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use tokio::net::TcpListener;

/// A check's run, bounded in the test.
trait RunWithin {
    /// Runs the check once; fails the test if it runs for more than 15 s (every check
    /// here has a timeout of at most a few seconds).
    async fn run_within(&self) -> Result<String, HttpError>;
}

impl RunWithin for HttpCheck {
    async fn run_within(&self) -> Result<String, HttpError> {
        within(15, "an http check to end", self.run()).await
    }
}

/// A bounded in-test server: answers each connection via `respond(request) -> bytes`;
/// `None` means "accept, read, and never answer". Stops when the test's runtime ends.
async fn serve(
    respond: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while find(&req, b"\r\n\r\n").is_none() {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                match respond(&String::from_utf8_lossy(&req)) {
                    Some(bytes) => {
                        let _ = s.write_all(&bytes).await;
                        let _ = s.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (addr, count)
}

/// A keep-alive server: answers every request of a connection with `respond(request)`
/// until the client closes (or, when `close_after` is set, closes after that many answers
/// on a connection). Returns the address, the connections accepted and the requests seen.
async fn serve_keep_alive(
    respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    close_after: Option<usize>,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (seen, log) = (count.clone(), requests.clone());
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let (respond, log) = (respond.clone(), log.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                let mut answered = 0;
                loop {
                    let Some(end) = find(&req, b"\r\n\r\n") else {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                        continue;
                    };
                    let text = String::from_utf8_lossy(&req[..end]).to_string();
                    req.drain(..end + 4);
                    log.lock().unwrap().push(text.clone());
                    let _ = s.write_all(&respond(&text)).await;
                    answered += 1;
                    if text.contains("Connection: close") || close_after == Some(answered) {
                        let _ = s.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    (addr, count, requests)
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn params<'a>(addr: SocketAddr, request: Option<&'a str>, receive: Option<&str>) -> HttpParams<'a> {
    HttpParams {
        addr,
        https: false,
        method: HttpMethod::Get,
        request,
        virtual_host: None,
        receive: receive.map(|r| Regex::new(r).unwrap()),
        verify_tls: false,
        timeout: Duration::from_secs(2),
        interval: Duration::from_secs(10),
        connector: None,
        digest: None,
    }
}

#[tokio::test]
async fn a_short_interval_reuses_the_connection_until_it_is_old() {
    let (addr, conns, requests) = serve_keep_alive(|_| ok("up"), None).await;
    let check = short_interval_check(addr, Some("up"));
    for _ in 0..3 {
        check.run_within().await.unwrap();
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "one connection for three checks"
    );
    assert!(
        requests
            .lock()
            .unwrap()
            .iter()
            .all(|r| !r.contains("Connection: close"))
    );
    // A connection as old as the next check would find it too old: its last request
    // asks to close, and the next check connects afresh.
    check.kept.lock().unwrap().as_mut().unwrap().since -= REUSE_FOR;
    check.run_within().await.unwrap();
    assert!(requests.lock().unwrap()[3].contains("Connection: close"));
    assert!(check.kept.lock().unwrap().is_none());
    check.run_within().await.unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_kept_connection_closed_by_the_server_is_replaced_within_the_check() {
    // The server closes each connection after one answer, without saying so.
    let (addr, conns, _) = serve_keep_alive(|_| ok("up"), Some(1)).await;
    let check = short_interval_check(addr, None);
    check.run_within().await.unwrap();
    // Let the server's close arrive.
    tokio::time::sleep(Duration::from_millis(50)).await;
    check.run_within().await.unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_kept_connection_the_server_wrote_to_since_is_not_used() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = conns.clone();
    let late = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let late_sent = late.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
            let late_sent = late_sent.clone();
            tokio::spawn(async move {
                let mut b = [0u8; 1024];
                loop {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let _ = s.write_all(&ok("up")).await;
                    if first {
                        // A late answer of its own, the connection left open.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        late_sent.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let check = short_interval_check(addr, Some("up"));
    check.run_within().await.unwrap();
    wait_until(
        10,
        "the server's late answer on the kept connection",
        || late.load(Ordering::SeqCst),
    )
    .await;
    check.run_within().await.unwrap();
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "the second check connected afresh"
    );
    // Bytes after an answer, read with it: the connection is not kept.
    let (addr, _, _) = serve_keep_alive(
        |_| [ok("up"), b"HTTP/1.1 408 Request Timeout\r\n\r\n".to_vec()].concat(),
        None,
    )
    .await;
    let check = short_interval_check(addr, Some("up"));
    check.run_within().await.unwrap();
    assert!(check.kept.lock().unwrap().is_none());
}

#[tokio::test]
async fn no_reuse_when_the_server_says_close_or_http_1_0_or_the_interval_is_long() {
    let answers: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nup",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nup",
        // No length: the end of the body is the close.
        b"HTTP/1.1 200 OK\r\n\r\nup",
    ];
    for answer in answers {
        let (addr, _, _) = serve_keep_alive(move |_| answer.to_vec(), Some(1)).await;
        let check = short_interval_check(addr, Some("up"));
        check.run_within().await.unwrap();
        assert!(check.kept.lock().unwrap().is_none(), "{answer:?}");
    }
    // ldirectord's default interval: a connection per check, asking to close.
    let (addr, conns, requests) = serve_keep_alive(|_| ok("up"), None).await;
    let check = HttpCheck::new(params(addr, None, None)).unwrap();
    check.run_within().await.unwrap();
    check.run_within().await.unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    assert!(
        requests
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.contains("Connection: close"))
    );
}

/// A plain-http check of `addr` at a 1 s interval: its connections are kept.
fn short_interval_check(addr: SocketAddr, receive: Option<&str>) -> HttpCheck {
    HttpCheck::new(HttpParams {
        interval: Duration::from_secs(1),
        ..params(addr, None, receive)
    })
    .unwrap()
}

#[test]
fn request_forms() {
    assert_eq!(request_path("index.html"), "/index.html");
    assert_eq!(request_path("/a/b?c"), "/a/b?c");
    assert_eq!(request_path("http://10.0.0.1:80/x.html"), "/x.html");
    assert_eq!(request_path("HTTPS://host"), "/");
    assert_eq!(request_path("http://host?q=1"), "/?q=1");
}

#[test]
fn chunked_decoding() {
    assert_eq!(
        dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
        (b"Wikipedia".to_vec(), Some(28))
    );
    assert_eq!(
        dechunk(b"1\r\nW\r\n0\r\nX-Trailer: 1\r\n\r\nmore"),
        (b"W".to_vec(), Some(25))
    );
    assert_eq!(dechunk(b"4\r\nWi"), (b"Wi".to_vec(), None));
    assert_eq!(dechunk(b"1\r\nW\r\n0\r\n"), (b"W".to_vec(), None));
}

#[tokio::test]
async fn ok_with_receive_and_host_header() {
    let (addr, _) = serve(|req| {
        let good = req.starts_with("GET /check.html HTTP/1.1\r\n")
            && req.contains("\r\nHost: www.example.com:")
            && req.contains("Connection: close");
        Some(ok(if good {
            "alive and well"
        } else {
            "bad request"
        }))
    })
    .await;
    let mut p = params(addr, Some("check.html"), Some("alive"));
    p.virtual_host = Some("www.example.com");
    let msg = HttpCheck::new(p).unwrap().run_within().await.unwrap();
    assert_eq!(msg, "200 OK");
}

#[tokio::test]
async fn host_defaults_to_real_address() {
    let (addr, _) = serve(|req| {
        Some(ok(if req.contains("\r\nHost: 127.0.0.1:") {
            "yes"
        } else {
            "no"
        }))
    })
    .await;
    HttpCheck::new(params(addr, None, Some("^yes$")))
        .unwrap()
        .run_within()
        .await
        .unwrap();
}

#[tokio::test]
async fn ipv6_real_gets_bracketed_host() {
    if !ipv6_loopback("ipv6_real_gets_bracketed_host") {
        return;
    }
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while find(&req, b"\r\n\r\n").is_none() {
            let n = s.read(&mut b).await.unwrap();
            assert_ne!(n, 0, "the request ended early: {req:?}");
            req.extend_from_slice(&b[..n]);
        }
        let req = String::from_utf8_lossy(&req).to_string();
        let body = if req.contains("\r\nHost: [::1]:") {
            "v6"
        } else {
            "no"
        };
        s.write_all(&ok(body)).await.unwrap();
        req
    });
    HttpCheck::new(params(addr, None, Some("^v6$")))
        .unwrap()
        .run_within()
        .await
        .unwrap();
    let req = within(10, "the [::1] server's end", server).await.unwrap();
    assert!(req.starts_with("GET / HTTP/1.1\r\n"), "{req}");
}

#[tokio::test]
async fn wrong_status_fails() {
    let (addr, _) =
        serve(|_| Some(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()))
            .await;
    let err = HttpCheck::new(params(addr, None, None))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::Status { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn receive_mismatch_fails() {
    let (addr, _) = serve(|_| Some(ok("maintenance page"))).await;
    let err = HttpCheck::new(params(addr, None, Some("all good")))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::ReceiveMismatch { status: 200, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn dollar_matches_before_a_final_newline_as_in_perl() {
    let (addr, _) = serve(|_| Some(ok("real1\n"))).await;
    HttpCheck::new(params(addr, None, Some("^real[12]$")))
        .unwrap()
        .run_within()
        .await
        .unwrap();
    let err = HttpCheck::new(params(addr, None, Some("^real[23]$")))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::ReceiveMismatch { status: 200, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn head_request_ignores_body() {
    // The answer announces a body that never comes, and the connection stays open: a
    // client reading the body would wait for its whole timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while find(&req, b"\r\n\r\n").is_none() {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
        }
        let answer: &[u8] = if req.starts_with(b"HEAD / ") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        } else {
            b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n"
        };
        s.write_all(answer).await.unwrap();
        // Held open until the client closes (bounded by the test's runtime).
        let _ = s.read(&mut b).await;
    });
    let mut p = params(addr, None, None);
    p.method = HttpMethod::Head;
    p.timeout = Duration::from_secs(60);
    let check = HttpCheck::new(p).unwrap();
    let msg = within(
        10,
        "a HEAD check to end at the response head (its timeout is 60 s)",
        check.run(),
    )
    .await
    .unwrap();
    assert_eq!(msg, "200 OK");
    server.abort();
}

#[tokio::test]
async fn chunked_body_matches() {
    let (addr, _) = serve(|_| {
        Some(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n3\r\nbar\r\n0\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    HttpCheck::new(params(addr, None, Some("foobar")))
        .unwrap()
        .run_within()
        .await
        .unwrap();
}

#[tokio::test]
async fn redirect_to_same_host_is_followed() {
    let (addr, count) = serve(move |req| {
        Some(if req.starts_with("GET / ") {
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/real\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        } else if req.starts_with("GET /real ") {
            b"HTTP/1.1 301 Moved\r\nLocation: final\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else if req.starts_with("GET /final ") {
            ok("landed")
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
        })
    })
    .await;
    HttpCheck::new(params(addr, None, Some("landed")))
        .unwrap()
        .run_within()
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

/// keepalived's `digest`: the body's MD5 must be the one configured (after a chunked
/// body is decoded); a wrong one fails naming both.
#[tokio::test]
async fn digest_of_the_body() {
    let (addr, _) = serve(|_| {
        Some(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    // md5("hello")
    let good = parse_digest("5d41402abc4b2a76b9719d911017c592").unwrap();
    HttpCheck::new(HttpParams {
        digest: Some(good),
        ..params(addr, None, None)
    })
    .unwrap()
    .run_within()
    .await
    .unwrap();
    let bad = parse_digest("9B3A0C85A887A256D6939DA88AABD8CD").unwrap();
    let err = HttpCheck::new(HttpParams {
        digest: Some(bad),
        ..params(addr, None, None)
    })
    .unwrap()
    .run_within()
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "status 200, body MD5 5d41402abc4b2a76b9719d911017c592 is not \
         9b3a0c85a887a256d6939da88aabd8cd"
    );
    assert!(parse_digest("5d41402abc4b2a76b9719d911017c59").is_none());
    assert!(parse_digest("5d41402abc4b2a76b9719d911017c59g").is_none());
}

#[tokio::test]
async fn relative_locations_are_resolved_as_rfc_3986_says() {
    let (addr, count) = serve(move |req| {
        Some(if req.starts_with("GET /a/b/c HTTP") {
            b"HTTP/1.1 302 Found\r\nLocation: ?q=1\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else if req.starts_with("GET /a/b/c?q=1 HTTP") {
            b"HTTP/1.1 303 See Other\r\nLocation: ../x#frag\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        } else if req.starts_with("GET /a/x HTTP") {
            b"HTTP/1.1 307 Temporary\r\nLocation: //127.0.0.1/y/./z/../w\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        } else if req.starts_with("GET /y/w HTTP") {
            ok("landed")
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
        })
    })
    .await;
    HttpCheck::new(params(addr, Some("/a/b/c"), Some("landed")))
        .unwrap()
        .run_within()
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 4);
    // A network-path reference to another host is not followed.
    let (addr, _) =
        serve(|_| Some(b"HTTP/1.1 302 Found\r\nLocation: //example.com/x\r\n\r\n".to_vec())).await;
    let err = HttpCheck::new(params(addr, None, None))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Redirect {
                reason: "different host",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn redirect_elsewhere_or_looping_fails() {
    let (addr, _) =
        serve(|_| Some(b"HTTP/1.1 302 Found\r\nLocation: http://example.com/\r\n\r\n".to_vec()))
            .await;
    let err = HttpCheck::new(params(addr, None, None))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Redirect {
                reason: "different host",
                ..
            }
        ),
        "{err:?}"
    );

    let (addr, count) =
        serve(|_| Some(b"HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n".to_vec())).await;
    let err = HttpCheck::new(params(addr, None, None))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Redirect {
                reason: "too many redirects",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn timeout_when_server_never_answers() {
    let (addr, _) = serve(|_| None).await;
    let mut p = params(addr, None, None);
    p.timeout = Duration::from_millis(300);
    let start = std::time::Instant::now();
    let err = HttpCheck::new(p).unwrap().run_within().await.unwrap_err();
    assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn large_body_is_cut_without_hanging() {
    // A 1 MiB body on a connection the server keeps open: reading stops at 64 KiB.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\nSTART".to_vec();
            resp.resize(resp.len() + 1048576 - 8, b'x');
            resp.extend_from_slice(b"END");
            // The client stops reading, so this write blocks; hold the socket open.
            let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&resp)).await;
        }
    });
    let mut p = params(addr, None, Some("START"));
    p.timeout = Duration::from_secs(3);
    let start = std::time::Instant::now();
    HttpCheck::new(p).unwrap().run_within().await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "did not hang");
    let mut p = params(addr, None, Some("END"));
    p.timeout = Duration::from_secs(3);
    let err = HttpCheck::new(p).unwrap().run_within().await.unwrap_err();
    assert!(matches!(err, HttpError::ReceiveMismatch { .. }), "{err:?}");
    server.abort();
}

#[tokio::test]
async fn refused_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = HttpCheck::new(params(addr, None, None))
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
}

/// An https server with a fresh self-signed certificate for 127.0.0.1.
async fn serve_tls(body: &'static str) -> SocketAddr {
    let (acceptor, _) = crate::testtls::acceptor(&["127.0.0.1", "localhost"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while find(&req, b"\r\n\r\n").is_none() {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let _ = s.write_all(&ok(body)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_without_verification_passes() {
    let addr = serve_tls("secure hello").await;
    let mut p = params(addr, Some("/"), Some("secure"));
    p.https = true;
    let msg = HttpCheck::new(p).unwrap().run_within().await.unwrap();
    assert_eq!(msg, "200 OK");
}

#[tokio::test]
async fn https_with_verification_rejects_self_signed() {
    let addr = serve_tls("secure hello").await;
    let mut p = params(addr, Some("/"), Some("secure"));
    p.https = true;
    p.verify_tls = true;
    let err = HttpCheck::new(p).unwrap().run_within().await.unwrap_err();
    assert!(matches!(err, HttpError::Tls { .. }), "{err:?}");
}
