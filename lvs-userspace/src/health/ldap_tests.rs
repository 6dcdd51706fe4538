//! The ldap check against a loopback fake that speaks just enough LDAP (BER by hand: bind,
//! base search, unbind). Test code only: the check itself goes through `ldap3`.

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::health::tests::within;

/// How the fake behaves.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// Binds anyone but `cn=intruder`; the base search of `dc=example,dc=org` finds it,
    /// anything else finds nothing.
    Right,
    /// Says nothing.
    Silent,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 128 {
        out.push(content.len() as u8);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(content);
    out
}

/// One element at the start of `b`: its tag, content and what follows.
fn parse(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, start) = if first < 128 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, &x| a << 8 | x as usize);
        (len, 2 + n)
    };
    Some((tag, b.get(start..start + len)?, &b[start + len..]))
}

fn result(op: u8, code: u8) -> Vec<u8> {
    let mut c = tlv(0x0a, &[code]);
    c.extend(tlv(0x04, b""));
    c.extend(tlv(0x04, b""));
    tlv(op, &c)
}

async fn send(s: &mut (impl AsyncWrite + Unpin), id: &[u8], op: Vec<u8>) -> std::io::Result<()> {
    let mut c = tlv(0x02, id);
    c.extend(op);
    s.write_all(&tlv(0x30, &c)).await
}

async fn session(mut s: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One whole message.
        let (msg, used) = loop {
            if let Some((0x30, content, rest)) = parse(&buf) {
                break (content.to_vec(), buf.len() - rest.len());
            }
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..used);
        let Some((_, id, rest)) = parse(&msg) else {
            return Ok(());
        };
        let Some((op, body, _)) = parse(rest) else {
            return Ok(());
        };
        match op {
            // BindRequest: version, name, simple password.
            0x60 => {
                let name = parse(body)
                    .and_then(|(_, _, r)| parse(r))
                    .map(|(_, n, _)| n)
                    .unwrap_or(b"");
                let code = if name == b"cn=intruder" { 49 } else { 0 };
                send(&mut s, id, result(0x61, code)).await?;
            }
            // SearchRequest: the base first.
            0x63 => {
                let base = parse(body).map(|(_, b, _)| b).unwrap_or(b"");
                if base == b"dc=example,dc=org" {
                    let mut entry = tlv(0x04, base);
                    entry.extend(tlv(0x30, b""));
                    send(&mut s, id, tlv(0x64, &entry)).await?;
                    send(&mut s, id, result(0x65, 0)).await?;
                } else {
                    // noSuchObject
                    send(&mut s, id, result(0x65, 32)).await?;
                }
            }
            _ => return Ok(()), // unbind
        }
    }
}

async fn server(how: Server) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                if how == Server::Silent {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                } else {
                    let _ = session(s).await;
                }
            });
        }
    });
    addr
}

/// The fake over TLS (ldaps), with a fresh self-signed certificate for 127.0.0.1.
async fn tls_server() -> SocketAddr {
    let (acceptor, _) = crate::testtls::acceptor(&["127.0.0.1"]);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(s)).await
                {
                    let _ = session(tls).await;
                }
            });
        }
    });
    addr
}

fn check(addr: SocketAddr, bind: Option<&str>, base: &str, receive: Option<&str>) -> LdapCheck {
    LdapCheck {
        addr,
        tls: None,
        bind: bind.map(|b| (b.to_string(), "pw".to_string())),
        base: base.into(),
        receive: receive.map(|r| Regex::new(r).unwrap()),
        timeout: Duration::from_millis(1500),
    }
}

async fn run(c: LdapCheck) -> Result<String, LdapError> {
    within(10, "the ldap check", c.run()).await
}

#[tokio::test]
async fn right_wrong_slow_and_absent() {
    let addr = server(Server::Right).await;
    let base = "/dc=example,dc=org";
    assert_eq!(
        run(check(addr, Some("cn=probe"), base, Some("example")))
            .await
            .unwrap(),
        "ldap: \"dc=example,dc=org\""
    );
    assert!(run(check(addr, None, base, None)).await.is_ok());
    // Wrong: the DN, the base, the bind.
    let e = run(check(addr, None, base, Some("^ou=")))
        .await
        .unwrap_err();
    assert!(matches!(e, LdapError::NoMatch { .. }), "{e}");
    let e = run(check(addr, None, "/dc=other", None)).await.unwrap_err();
    assert!(
        matches!(
            e,
            LdapError::Ldap {
                stage: "search",
                ..
            }
        ),
        "{e}"
    );
    let e = run(check(addr, Some("cn=intruder"), base, None))
        .await
        .unwrap_err();
    assert!(matches!(e, LdapError::Ldap { stage: "bind", .. }), "{e}");
    // Slow.
    let addr = server(Server::Silent).await;
    let e = run(check(addr, None, base, None)).await.unwrap_err();
    assert!(matches!(e, LdapError::Timeout { .. }), "{e}");
    // Absent.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    let e = run(check(gone, None, base, None)).await.unwrap_err();
    assert!(
        matches!(
            e,
            LdapError::Ldap {
                stage: "connect",
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn ldaps_over_tls_and_verified_only_when_asked() {
    let addr = tls_server().await;
    let base = "/dc=example,dc=org";
    let tls = |verify| Some(crate::health::tls::client_config(verify));
    let c = LdapCheck {
        tls: tls(false),
        ..check(addr, Some("cn=probe"), base, None)
    };
    assert_eq!(run(c).await.unwrap(), "ldap: \"dc=example,dc=org\"");
    // A self-signed certificate fails verification.
    let c = LdapCheck {
        tls: tls(true),
        ..check(addr, Some("cn=probe"), base, None)
    };
    let e = run(c).await.unwrap_err();
    assert!(
        matches!(
            e,
            LdapError::Ldap {
                stage: "connect",
                ..
            }
        ),
        "{e}"
    );
    // Plain LDAP to a TLS port does not pass.
    assert!(run(check(addr, None, base, None)).await.is_err());
}
