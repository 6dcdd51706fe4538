use super::*;
use tokio::{net::TcpListener, sync::oneshot};

const DEADLINE: Duration = Duration::from_secs(5);

fn params<'a>(addr: SocketAddr, request: Option<&'a str>, receive: Option<&str>) -> HttpParams<'a> {
    HttpParams {
        addr,
        https: false,
        method: HttpMethod::Get,
        request,
        virtual_host: None,
        receive: receive.map(|r| Regex::new(r).unwrap()),
        verify_tls: false,
        timeout: Duration::from_secs(3),
        interval: Duration::from_secs(10),
        connector: None,
        digest: None,
    }
}

/// A server on loopback for one connection: reads the request head, then writes `parts`
/// one by one, 30 ms apart (so the client reads them separately), and closes. The
/// request comes back on the channel.
async fn serve_parts(parts: Vec<&'static [u8]>) -> (SocketAddr, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let served = async {
            let (mut s, _) = listener.accept().await.ok()?;
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).await.ok()?;
                if n == 0 {
                    return None;
                }
                req.extend_from_slice(&b[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
            for part in parts {
                s.write_all(part).await.ok()?;
                s.flush().await.ok()?;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            s.shutdown().await.ok()
        };
        // Never longer than the test's deadline.
        let _ = tokio::time::timeout(DEADLINE, served).await;
    });
    (addr, rx)
}

/// Runs the check (within [`DEADLINE`]) and returns its outcome and the request seen.
async fn check(
    parts: Vec<&'static [u8]>,
    request: Option<&str>,
    receive: Option<&str>,
) -> (Result<String, HttpError>, String, SocketAddr) {
    let (addr, req) = serve_parts(parts).await;
    let check = HttpCheck::new(params(addr, request, receive)).unwrap();
    let outcome = tokio::time::timeout(DEADLINE, check.run())
        .await
        .expect("the http check did not end within 5 s");
    let req = tokio::time::timeout(DEADLINE, req)
        .await
        .expect("the server saw no request within 5 s")
        .expect("the server saw no request");
    (outcome, req, addr)
}

#[tokio::test]
async fn early_hints_before_the_answer_pass() {
    let (outcome, ..) = check(
        vec![
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup",
        ],
        None,
        Some("^up$"),
    )
    .await;
    assert_eq!(outcome.unwrap(), "200 OK");
}

#[tokio::test]
async fn continue_then_the_answer_in_one_read_pass() {
    let (outcome, ..) = check(
        vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup"],
        None,
        Some("^up$"),
    )
    .await;
    assert_eq!(outcome.unwrap(), "200 OK");
}

#[tokio::test]
async fn host_carries_a_port_that_is_not_the_default() {
    let (outcome, req, addr) = check(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
        None,
        None,
    )
    .await;
    outcome.unwrap();
    let host = format!("\r\nHost: 127.0.0.1:{}\r\n", addr.port());
    assert!(req.contains(&host), "{host:?} not in {req:?}");
    // The default ports are left out, as in a URL.
    let on = |port, https, vhost| {
        let mut p = params(SocketAddr::from(([10, 0, 0, 2], port)), None, None);
        p.https = https;
        p.virtual_host = vhost;
        HttpCheck::new(p).unwrap().request("/", true)
    };
    assert!(on(80, false, None).contains("\r\nHost: 10.0.0.2\r\n"));
    assert!(on(443, true, None).contains("\r\nHost: 10.0.0.2\r\n"));
    assert!(on(443, false, None).contains("\r\nHost: 10.0.0.2:443\r\n"));
    assert!(on(8080, false, Some("www.x.y")).contains("\r\nHost: www.x.y:8080\r\n"));
    assert!(on(8080, false, Some("www.x.y:81")).contains("\r\nHost: www.x.y:81\r\n"));
    assert!(on(8080, false, Some("::1")).contains("\r\nHost: [::1]:8080\r\n"));
}

#[tokio::test]
async fn the_request_path_is_percent_encoded() {
    let (outcome, req, _) = check(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
        Some("/my page/\u{e9}t\u{e9}.html?q=a b&r=%20#frag"),
        None,
    )
    .await;
    outcome.unwrap();
    assert!(
        req.starts_with("GET /my%20page/%C3%A9t%C3%A9.html?q=a%20b&r=%20 HTTP/1.1\r\n"),
        "{req:?}"
    );
    assert_eq!(
        request_path("a\"<>\\^`{|}\u{7f}"),
        "/a%22%3C%3E%5C%5E%60%7B%7C%7D%7F"
    );
    assert_eq!(request_path("http://h/\u{e9}"), "/%C3%A9");
    // A non-ASCII request right where a scheme would end.
    assert_eq!(
        request_path("\u{e9}\u{e9}\u{e9}\u{e9}"),
        "/%C3%A9%C3%A9%C3%A9%C3%A9"
    );
}

#[tokio::test]
async fn a_chunked_body_split_across_reads_is_decoded_once() {
    let (outcome, ..) = check(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi",
            b"ki\r\n5;ext=1\r",
            b"\npedia\r\n",
            // A chunk-size line ending in a bare LF (RFC 9112 section 2.2).
            b"3\n",
            b"-up\r\n0\r\n\r\n",
        ],
        None,
        Some("^Wikipedia-up$"),
    )
    .await;
    assert_eq!(outcome.unwrap(), "200 OK");
}

#[tokio::test]
async fn a_body_chunked_only_by_name_is_not_dechunked() {
    // "notchunked" is not chunked: the body ends at the close.
    let (outcome, ..) = check(
        vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\n2\r\nup\r\n0\r\n\r\n"],
        None,
        Some("^2\r\nup\r\n0\r\n\r\n$"),
    )
    .await;
    assert_eq!(outcome.unwrap(), "200 OK");
}

#[tokio::test]
async fn a_lf_only_head_ends_at_its_first_empty_line() {
    let (outcome, ..) = check(
        vec![b"HTTP/1.1 200 OK\nContent-Length: 10\n\nab\r\n\r\ncdef"],
        None,
        Some("^ab\r\n\r\ncdef$"),
    )
    .await;
    assert_eq!(outcome.unwrap(), "200 OK");
}

#[tokio::test]
async fn bad_or_conflicting_content_lengths_are_refused() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nup"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nup",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nup",
    ] {
        let (outcome, ..) = check(vec![answer], None, None).await;
        assert!(
            matches!(outcome, Err(HttpError::Malformed { .. })),
            "{:?}: {outcome:?}",
            String::from_utf8_lossy(answer)
        );
    }
    // The same length twice is one length.
    let (outcome, ..) = check(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nup"],
        None,
        Some("^up$"),
    )
    .await;
    outcome.unwrap();
}

#[test]
fn a_chunked_body_fed_a_byte_at_a_time_is_decoded_once() {
    let raw = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n3\n-up\r\n0\r\nX-T: 1\r\n\r\nnext";
    let mut d = Dechunk::default();
    let mut end = None;
    for n in 0..=raw.len() {
        end = d.advance(&raw[..n]).unwrap();
        if end.is_some() {
            assert_eq!(n, raw.len() - 4, "complete as soon as the trailer ends");
            break;
        }
    }
    assert_eq!(end, Some(raw.len() - 4));
    assert_eq!(d.out, b"Wikipedia-up");
    // Bad sizes and chunks longer than their size are errors, not a shorter body.
    for bad in [&b"zz\r\n"[..], b"2\r\nabc\r\n", b"1ffffffffffffffff\r\n"] {
        assert!(Dechunk::default().advance(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_reason_with_a_bare_cr_is_refused() {
    let (outcome, ..) = check(
        vec![b"HTTP/1.1 503 a\r.\rMAIL FROM:<x@y>\r\nContent-Length: 0\r\n\r\n"],
        None,
        None,
    )
    .await;
    assert!(
        matches!(outcome, Err(HttpError::Malformed { .. })),
        "{outcome:?}"
    );
}
