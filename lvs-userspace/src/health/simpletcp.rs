//! simpletcp negotiate checks: send `request`, expect `receive` in the answer.
//!
//! As ldirectord's `check_simpletcp`: the request loses one leading `/` (ldirectord stores
//! requests with one prepended) and the two characters `\n` become a newline; after sending,
//! the write side is shut down and the answer is read line by line; the check passes when a
//! line matches `receive` (any line at all when `receive` is unset). At most
//! [`MAX_ANSWER`] bytes are read.

use std::{io, net::SocketAddr, time::Duration};

use regex::bytes::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most bytes read from the answer.
pub const MAX_ANSWER: usize = 64 * 1024;

/// Errors of simpletcp checks.
#[derive(Debug, thiserror::Error)]
pub enum SimpleTcpError {
    /// The connect failed.
    #[error("connect to {addr} failed")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending or reading failed.
    #[error("exchange with {addr} failed")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No matching line within the timeout.
    #[error("no matching answer within {timeout:?}")]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The answer ended without a matching line.
    #[error("no line of the {read} byte answer matches {pattern:?}")]
    NoMatch {
        /// Bytes read.
        read: usize,
        /// The regex (empty: any line).
        pattern: String,
    },
}

/// ldirectord's request form: one leading `/` dropped, `\n` (two characters) → newline.
pub fn request_payload(request: Option<&str>) -> Vec<u8> {
    let request = request.unwrap_or_default();
    let request = request.strip_prefix('/').unwrap_or(request);
    request.replace("\\n", "\n").into_bytes()
}

/// Sends `payload` to `addr` and waits for a line matching `receive`, all within `timeout`.
pub async fn check(
    addr: SocketAddr,
    payload: &[u8],
    receive: Option<&Regex>,
    timeout: Duration,
    from: &crate::config::model::CheckSource,
) -> Result<String, SimpleTcpError> {
    tokio::time::timeout(timeout, exchange(addr, payload, receive, from))
        .await
        .unwrap_or(Err(SimpleTcpError::Timeout { timeout }))
}

async fn exchange(
    addr: SocketAddr,
    payload: &[u8],
    receive: Option<&Regex>,
    from: &crate::config::model::CheckSource,
) -> Result<String, SimpleTcpError> {
    let io = |source| SimpleTcpError::Io { addr, source };
    let mut stream = super::source::tcp(addr, from)
        .await
        .map_err(|source| SimpleTcpError::Connect { addr, source })?;
    stream.write_all(payload).await.map_err(io)?;
    stream.shutdown().await.map_err(io)?;
    let matches = |line: &[u8]| receive.is_none_or(|re| re.is_match(line));
    let mut buf = Vec::with_capacity(1024);
    let mut scanned = 0; // start of the first line not yet tested
    let mut chunk = [0u8; 4096];
    loop {
        let room = MAX_ANSWER - buf.len();
        let n = if room == 0 {
            0
        } else {
            let want = room.min(chunk.len());
            stream.read(&mut chunk[..want]).await.map_err(io)?
        };
        if n == 0 {
            // End of answer: the last, unterminated line counts too.
            if scanned < buf.len() && matches(&buf[scanned..]) {
                return Ok(found(&buf[scanned..]));
            }
            return Err(SimpleTcpError::NoMatch {
                read: buf.len(),
                pattern: receive.map(|r| r.as_str().to_string()).unwrap_or_default(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(nl) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let line = &buf[scanned..scanned + nl];
            if matches(line) {
                return Ok(found(line));
            }
            scanned += nl + 1;
        }
    }
}

fn found(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let cut: String = text.chars().take(120).collect();
    format!("answer: {cut}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::within;

    /// [`check`], bounded: fails the test if it runs for more than 15 s (every check here
    /// has a timeout of at most 2 s).
    async fn check_within(
        addr: SocketAddr,
        payload: &[u8],
        receive: Option<&Regex>,
        timeout: Duration,
    ) -> Result<String, SimpleTcpError> {
        within(
            15,
            "a simpletcp check to end",
            check(addr, payload, receive, timeout, &Default::default()),
        )
        .await
    }
    use tokio::net::TcpListener;

    /// Answers one connection: reads the request until EOF, then writes `answer(request)`.
    async fn one_shot(answer: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // Not awaited by the test; bounded all the same.
            let Ok(Ok((mut s, _))) =
                tokio::time::timeout(Duration::from_secs(10), listener.accept()).await
            else {
                return;
            };
            let mut req = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut req)).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&answer(&req))).await;
        });
        addr
    }

    #[test]
    fn payload_forms() {
        assert_eq!(request_payload(Some("/PING\\n")), b"PING\n");
        assert_eq!(request_payload(Some("HELO x\\nQUIT\\n")), b"HELO x\nQUIT\n");
        assert_eq!(request_payload(None), b"");
    }

    #[tokio::test]
    async fn matching_line_passes() {
        let addr = one_shot(|req| {
            if req == b"PING\n" {
                b"+banner\r\n+PONG\r\n".to_vec()
            } else {
                b"-ERR\r\n".to_vec()
            }
        })
        .await;
        let re = Regex::new("^\\+PONG").unwrap();
        let msg = check_within(
            addr,
            &request_payload(Some("PING\\n")),
            Some(&re),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(msg, "answer: +PONG");
    }

    #[tokio::test]
    async fn mismatch_fails() {
        let addr = one_shot(|_| b"-ERR unknown\r\n".to_vec()).await;
        let re = Regex::new("PONG").unwrap();
        let err = check_within(addr, b"PING\n", Some(&re), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, SimpleTcpError::NoMatch { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn empty_answer_fails_even_without_receive() {
        let addr = one_shot(|_| Vec::new()).await;
        let err = check_within(addr, b"x", None, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SimpleTcpError::NoMatch { read: 0, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let err = check_within(addr, b"x", None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, SimpleTcpError::Timeout { .. }), "{err:?}");
        drop(listener);
    }
}
