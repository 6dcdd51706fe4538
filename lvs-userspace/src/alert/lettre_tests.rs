//! Alert mail through `lettre`, end to end against a one-session SMTP sink on loopback: what
//! reaches the server (no bare CR or LF, one message), the escaping of control characters, and
//! the checking of mail addresses.

use super::mail::{mail_address, printable_lines};
use super::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_secs(10);

/// A one-session SMTP sink on loopback that records the raw bytes of the DATA part (up to
/// the `.` line) and how many messages it was given.
async fn sink() -> (SocketAddr, JoinHandle<(Vec<u8>, usize)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let session = async {
            let (sock, _) = l.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
            let (mut data, mut messages, mut in_data) = (Vec::new(), 0, false);
            loop {
                // Lines as bytes, split at LF only: a bare CR stays inside its line.
                let mut line = Vec::new();
                if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return (data, messages);
                }
                if in_data {
                    if line == b".\r\n" {
                        in_data = false;
                        messages += 1;
                        w.write_all(b"250 queued\r\n").await.unwrap();
                    } else {
                        data.extend_from_slice(&line);
                    }
                    continue;
                }
                let up = String::from_utf8_lossy(&line).to_ascii_uppercase();
                let reply: &[u8] = if up.starts_with("EHLO") {
                    b"250-sink\r\n250 8BITMIME\r\n"
                } else if up.starts_with("DATA") {
                    in_data = true;
                    b"354 go ahead\r\n"
                } else if up.starts_with("QUIT") {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    return (data, messages);
                } else if up.starts_with("MAIL") || up.starts_with("RCPT") {
                    b"250 ok\r\n"
                } else {
                    // Anything else (a smuggled command) is refused and counted nowhere.
                    b"500 what\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
        };
        tokio::time::timeout(DEADLINE, session)
            .await
            .expect("the SMTP sink's session did not end within 10 s")
    });
    (addr, task)
}

#[tokio::test]
async fn a_reason_phrase_with_bare_crs_arrives_as_one_message_without_them() {
    let (addr, sink) = sink().await;
    let g = Globals {
        email_alert: vec!["a@x.y".to_string()],
        email_alert_from: Some("lb@x.y".to_string()),
        smtp: Some(addr.to_string()),
        ..Globals::default()
    };
    let a = Alerter::with_timeouts(&g, Duration::from_millis(500), Duration::from_secs(5));
    let change = StateChange {
        virtual_service: "198.18.0.100:80/tcp".to_string(),
        real: "10.0.0.2:80".parse().unwrap(),
        new_state: RealState::Down,
        // As a real's reason phrase reaches it, bare CRs and all.
        message: "status 503 a\r.\rMAIL FROM:<x@y>\rRCPT TO:<evil@z>\r\n.\r\nhidden".to_string(),
    };
    let results = tokio::time::timeout(DEADLINE, async { a.on_change(&change).await.wait().await })
        .await
        .expect("the alert was not sent within 10 s");
    for r in results {
        r.unwrap();
    }
    let (data, messages) = tokio::time::timeout(DEADLINE, sink)
        .await
        .expect("the SMTP sink did not end within 10 s")
        .unwrap();
    assert_eq!(messages, 1, "{}", String::from_utf8_lossy(&data));
    for (i, b) in data.iter().enumerate() {
        if *b == b'\r' {
            assert_eq!(data.get(i + 1), Some(&b'\n'), "bare CR at {i}: {data:?}");
        }
        if *b == b'\n' {
            assert!(i > 0 && data[i - 1] == b'\r', "bare LF at {i}: {data:?}");
        }
    }
    // Long lines go quoted-printable: its soft line breaks taken out.
    let text = String::from_utf8_lossy(&data).replace("=\r\n", "");
    assert!(text.contains("Message-ID: <"), "{text}");
    assert!(
        text.contains(
            r"Check-Result: status 503 a\r.\rMAIL FROM:<x@y>\rRCPT TO:<evil@z>\r\n.\r\nhidden"
        ),
        "{text}"
    );
}

#[test]
fn control_characters_are_escaped() {
    assert_eq!(printable("200 OK"), "200 OK");
    assert_eq!(
        printable("a\r.\rb\n\u{1b}[2J\u{85}"),
        r"a\r.\rb\n\u{1b}[2J\u{85}"
    );
    assert_eq!(printable_lines("a\r\nb\rc\nd"), "a\r\nb\\rc\r\nd");
}

#[test]
fn addresses_are_checked_and_local_parts_qualified() {
    assert_eq!(mail_address("a@x.y", "h").unwrap().to_string(), "a@x.y");
    assert_eq!(
        mail_address("\"Ops\" <ops@x.y>", "h").unwrap().to_string(),
        "ops@x.y"
    );
    assert_eq!(mail_address("root", "lb1").unwrap().to_string(), "root@lb1");
    for bad in ["Ops Team", "a@b\r\nRSET", "a b@x.y", ""] {
        assert!(
            matches!(mail_address(bad, "h"), Err(AlertError::BadAddress { .. })),
            "{bad:?}"
        );
    }
}
