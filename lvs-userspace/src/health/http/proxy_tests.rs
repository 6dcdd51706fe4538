//! ldirectord's `http_proxy` check: the URL asked of the real as a proxy.

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::*;
use crate::health::tests::within;

/// How the fake proxy behaves.
#[derive(Clone, Copy, PartialEq)]
enum Proxy {
    /// Fetches `http://www.example.org/check` ("alive"); 502 for anything else.
    Right,
    /// Answers a redirect.
    Redirect,
    /// Says nothing.
    Silent,
    /// An endless body.
    Huge,
}

async fn proxy(how: Proxy) -> SocketAddr {
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
                let req = String::from_utf8_lossy(&req);
                let answer = match how {
                    Proxy::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Proxy::Huge => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n")
                            .await;
                        let _ = s.write_all(&vec![b'x'; 200_000]).await;
                        return;
                    }
                    Proxy::Redirect => {
                        "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
                    }
                    Proxy::Right
                        if req.starts_with("GET http://www.example.org/check HTTP/1.1\r\n")
                            && req.contains("\r\nHost: www.example.org\r\n") =>
                    {
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalive"
                    }
                    Proxy::Right => "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
                };
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

fn check(addr: SocketAddr, url: &str, receive: &str) -> HttpCheck {
    HttpCheck::new(HttpParams {
        addr,
        https: false,
        method: HttpMethod::Get,
        request: None,
        virtual_host: None,
        receive: Some(Regex::new(receive).unwrap()),
        digest: None,
        verify_tls: false,
        timeout: Duration::from_millis(800),
        interval: Duration::from_secs(3600),
        connector: None,
    })
    .unwrap()
    .through_proxy(url)
}

async fn run(c: HttpCheck) -> Result<String, HttpError> {
    within(5, "the http_proxy check", c.run()).await
}

#[tokio::test]
async fn right_wrong_slow_huge_and_absent() {
    let addr = proxy(Proxy::Right).await;
    let url = "http://www.example.org/check";
    assert_eq!(run(check(addr, url, "alive")).await.unwrap(), "200 OK");
    // Wrong: the body, the URL the proxy cannot fetch, a redirect (not followed).
    let e = run(check(addr, url, "^dead")).await.unwrap_err();
    assert!(matches!(e, HttpError::ReceiveMismatch { .. }), "{e}");
    let e = run(check(addr, "http://www.example.org/other", "alive"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Status { status: 502, .. }), "{e}");
    let e = run(check(proxy(Proxy::Redirect).await, url, "alive"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Status { status: 302, .. }), "{e}");
    // Slow, too much, absent.
    let e = run(check(proxy(Proxy::Silent).await, url, "alive"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    let e = run(check(proxy(Proxy::Huge).await, url, "alive"))
        .await
        .unwrap_err();
    assert!(!matches!(e, HttpError::Timeout { .. }), "{e}");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    let e = run(check(gone, url, "alive")).await.unwrap_err();
    assert!(matches!(e, HttpError::Connect { .. }), "{e}");
}
