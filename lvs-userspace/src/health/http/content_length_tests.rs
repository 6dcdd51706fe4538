use std::time::Duration;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::*;

/// Answers every connection with `answer` and closes it.
async fn serve(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while find(&req, b"\r\n\r\n").is_none() {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let _ = s.write_all(answer).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn check(answer: &'static [u8]) -> Result<String, HttpError> {
    let addr = serve(answer).await;
    HttpCheck::new(HttpParams {
        addr,
        https: false,
        method: HttpMethod::Get,
        request: Some("/"),
        virtual_host: None,
        receive: Some(Regex::new("up").unwrap()),
        verify_tls: false,
        timeout: Duration::from_secs(5),
        interval: Duration::from_secs(10),
        connector: None,
        digest: None,
    })
    .unwrap()
    .run()
    .await
}

fn malformed(r: Result<String, HttpError>) -> String {
    match r {
        Err(HttpError::Malformed { reason }) => reason,
        other => panic!("not refused as malformed: {other:?}"),
    }
}

#[tokio::test]
async fn a_negative_content_length_fails_the_check() {
    let e = malformed(
        check(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\nConnection: close\r\n\r\nup").await,
    );
    assert_eq!(
        e,
        "invalid Content-Length \"-5\": not a whole number of bytes, the end of the body is \
         unknown"
    );
}

#[tokio::test]
async fn conflicting_content_lengths_fail_the_check() {
    let e = malformed(
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 10\r\nConnection: \
              close\r\n\r\nup",
        )
        .await,
    );
    assert_eq!(
        e,
        "conflicting Content-Length values 2 and 10, the end of the body is unknown"
    );
    let e = malformed(
        check(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\nConnection: close\r\n\r\nup").await,
    );
    assert_eq!(
        e,
        "conflicting Content-Length values 2 and 3, the end of the body is unknown"
    );
}

#[tokio::test]
async fn the_same_content_length_repeated_is_one() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nup"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nup",
        b"HTTP/1.1 200 OK\r\nContent-Length:  2 \r\n\r\nup",
    ] {
        assert_eq!(check(answer).await.unwrap(), "200 OK");
    }
}

#[test]
fn only_a_whole_number_of_bytes_is_a_content_length() {
    let head =
        |v: &str| parse_head(format!("HTTP/1.1 200 OK\r\nContent-Length:{v}\r\n\r\n").as_bytes());
    for bad in [
        "",
        " ",
        "+5",
        "0x5",
        "5 5",
        "5;",
        "1e3",
        "99999999999999999999999",
        "\u{1b}[31m",
    ] {
        match head(bad) {
            Err(HttpError::Malformed { reason }) => {
                // A control character is refused by the head's parser already.
                assert!(
                    reason.starts_with("invalid Content-Length")
                        || (bad.contains('\u{1b}') && reason.starts_with("bad response head")),
                    "{bad:?}: {reason}"
                );
                // What the server sent is quoted, escaped: no control character reaches a log.
                assert!(!reason.contains('\u{1b}'), "{reason}");
            }
            Err(e) => panic!("{bad:?}: {e:?}"),
            Ok(h) => panic!("{bad:?} accepted: {:?}", h.map(|h| h.content_length)),
        }
    }
    assert_eq!(head(" 0").unwrap().unwrap().content_length, Some(0));
    assert_eq!(head("007").unwrap().unwrap().content_length, Some(7));
}
