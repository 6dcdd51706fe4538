//! The statuses a check passes on (keepalived's `status_code`, TOML `status_codes`) and
//! redirects, followed by ldirectord's check and never by keepalived's, against a loopback
//! server answering 200, 204, 301, 404 and 500.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::net::TcpListener;

use super::*;
use crate::health::{
    CheckKey,
    ping::Pinger,
    probe::{CheckError, Probe},
    tests::within,
};

/// A server answering `GET /N` with status N (a 301 to `/200`, which answers 200), each on a
/// connection of its own; it counts the requests.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while find(&req, b"\r\n\r\n").is_none() {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let path = String::from_utf8_lossy(&req)
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let answer = match path.as_str() {
                    "/200" => "200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
                    "/204" => "204 No Content\r\n\r\n".to_string(),
                    "/301" => {
                        "301 Moved Permanently\r\nLocation: /200\r\nContent-Length: 0\r\n\r\n"
                            .to_string()
                    }
                    "/404" => "404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
                    _ => "500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_string(),
                };
                let _ = s.write_all(format!("HTTP/1.1 {answer}").as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, requests)
}

/// A check of `path` at `addr`, passing on `codes`, following redirects or not.
fn check(addr: SocketAddr, path: &str, codes: &str, follow: bool) -> HttpCheck {
    HttpCheck::new(HttpParams {
        addr,
        https: false,
        method: HttpMethod::Get,
        request: Some(path),
        virtual_host: None,
        receive: None,
        digest: None,
        verify_tls: false,
        timeout: Duration::from_secs(2),
        interval: Duration::from_secs(10),
        connector: None,
    })
    .unwrap()
    .answering(StatusCodes::parse(codes).unwrap(), follow)
}

#[tokio::test]
async fn a_check_passes_exactly_on_its_status_codes() {
    let (addr, _) = server().await;
    for codes in ["200", "200-299", "301", "404"] {
        let set = StatusCodes::parse(codes).unwrap();
        for status in [200u16, 204, 301, 404, 500] {
            let c = check(addr, &format!("/{status}"), codes, false);
            let result = within(15, "an http check", c.run()).await;
            match result {
                Ok(line) => {
                    assert!(set.contains(status), "{codes}: {status} passed ({line})");
                    assert!(line.starts_with(&status.to_string()), "{line}");
                }
                Err(HttpError::Status { status: got, .. }) => {
                    assert!(!set.contains(status), "{codes}: {status} failed");
                    assert_eq!(got, status);
                }
                Err(e) => panic!("{codes}, {status}: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn ldirectord_follows_a_redirect_and_keepalived_does_not() {
    let (addr, requests) = server().await;
    // ldirectord (and TOML's default): the 301 is followed to /200, which passes.
    let c = check(addr, "/301", "200-299", true);
    assert_eq!(
        within(15, "an http check", c.run()).await.unwrap(),
        "200 OK"
    );
    assert_eq!(requests.swap(0, Ordering::SeqCst), 2);
    // keepalived: the 301 is the status; it fails on 200-299 without asking /200...
    let c = check(addr, "/301", "200-299", false);
    match within(15, "an http check", c.run()).await {
        Err(HttpError::Status { status: 301, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(requests.swap(0, Ordering::SeqCst), 1);
    // ...and passes on 301.
    let c = check(addr, "/301", "301", false);
    assert_eq!(
        within(15, "an http check", c.run()).await.unwrap(),
        "301 Moved Permanently"
    );
    assert_eq!(requests.swap(0, Ordering::SeqCst), 1);
}

/// keepalived.conf to the agent's probe: the url's `status_code`, and the 3xx not followed.
#[tokio::test]
async fn a_keepalived_url_is_checked_with_its_codes() {
    let (addr, requests) = server().await;
    let conf = |path: &str, codes: &str| {
        format!(
            "virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
             real_server 127.0.0.1 {} {{\n    HTTP_GET {{\n      url {{\n        path {path}\n\
             {codes}      }}\n      connect_timeout 2\n    }}\n  }}\n}}\n",
            addr.port()
        )
    };
    let run = async |text: String| -> Result<String, CheckError> {
        let c = crate::config::keepalived::parse_with_id(Path::new("k.conf"), &text, "lb1")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let key = CheckKey::from_config(&c.virtuals[0], &c.virtuals[0].reals[0]);
        let pinger = Arc::new(Pinger::new());
        within(15, "a check", Probe::new(&key, &pinger, None).run())
            .await
            .result
    };
    let status = "        status_code 301 404\n";
    assert!(run(conf("/301", status)).await.is_ok());
    assert!(run(conf("/404", status)).await.is_ok());
    assert!(run(conf("/200", status)).await.is_err());
    assert!(run(conf("/500", status)).await.is_err());
    // None written: 200-299, and the 301 is not followed.
    assert!(run(conf("/204", "")).await.is_ok());
    assert!(run(conf("/301", "")).await.is_err());
    // Six checks, each one request: no redirect was followed.
    assert_eq!(requests.load(Ordering::SeqCst), 6);
}
