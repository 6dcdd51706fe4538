//! The SMTP session of an alert mail, over `lettre`'s client: connect, greeting and EHLO,
//! STARTTLS (`smtp_starttls`), AUTH (`smtp_username`, `smtp_password_file`), then the caller
//! sends the message.
//!
//! # No HELO fallback
//!
//! `lettre` speaks ESMTP only: its connection sends `EHLO` right after the greeting and hands
//! the connection over only once `EHLO` was accepted, so a server that refuses `EHLO` (an SMTP
//! server from before RFC 1869, 1995) cannot get `HELO` through it. Falling back would mean
//! writing the SMTP dialogue by hand again, which is what `lettre` replaced (the smuggling of
//! bare CRs into DATA). Such a server gets a delivery error that says so
//! ([`AlertError::EhloRefused`]); point `smtp` at a relay that speaks ESMTP (every maintained
//! MTA does; RFC 5321 asks clients to send EHLO).

use std::{
    io,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use lettre::transport::smtp::{
    authentication::{Credentials, DEFAULT_MECHANISMS},
    client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters},
    extension::{ClientId, Extension},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use super::{AlertError, printable};
use crate::config::model::{SmtpSecurity, StartTls};

/// The TCP stream to the mail server, noting whether the client wrote anything yet: a refusal
/// read before the first write is the greeting's, one after it is `EHLO`'s.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    wrote: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.wrote.store(true, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Watched {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

/// The error for `source` during `stage`: a reply of the server, or the transport's failure.
pub(super) fn smtp_error(
    server: &str,
    stage: &'static str,
    source: lettre::transport::smtp::Error,
) -> AlertError {
    match source.status() {
        Some(_) => AlertError::SmtpRejected {
            server: server.to_string(),
            stage,
            reply: printable(&source.to_string()).into_owned(),
        },
        None => AlertError::Smtp {
            server: server.to_string(),
            stage,
            source,
        },
    }
}

/// An open session with `server` (`host`, `port`), greeted as `hostname`, upgraded and
/// authenticated as `sec` says, ready for the message.
pub(super) async fn open(
    server: &str,
    host: &str,
    port: u16,
    hostname: &str,
    sec: &SmtpSecurity,
) -> Result<AsyncSmtpConnection, AlertError> {
    // Everything local is read before the server is contacted.
    let tls = match sec.starttls {
        StartTls::Never => None,
        _ => Some(tls_parameters(server, host, sec.ca_file.as_deref())?),
    };
    let credentials = match (&sec.username, &sec.password_file) {
        (Some(user), Some(path)) => Some(Credentials::new(user.clone(), read_password(path)?)),
        _ => None,
    };
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|source| AlertError::SmtpIo {
            server: server.to_string(),
            stage: "connect",
            source,
        })?;
    let wrote = Arc::new(AtomicBool::new(false));
    let watched = Watched {
        inner: stream,
        wrote: wrote.clone(),
    };
    let hello = ClientId::Domain(hostname.to_string());
    let mut conn =
        match AsyncSmtpConnection::connect_with_transport(Box::new(watched), &hello).await {
            Ok(c) => c,
            Err(source) if source.status().is_some() && wrote.load(Ordering::Relaxed) => {
                return Err(AlertError::EhloRefused {
                    server: server.to_string(),
                    reply: printable(&source.to_string()).into_owned(),
                });
            }
            Err(source) => return Err(smtp_error(server, "greeting", source)),
        };
    if let Some(tls) = tls {
        let offered = conn.server_info().supports_feature(Extension::StartTls);
        match (sec.starttls, offered) {
            (_, true) => conn
                .starttls(tls, &hello)
                .await
                .map_err(|e| smtp_error(server, "starttls", e))?,
            (StartTls::Required, false) => {
                conn.abort().await;
                return Err(AlertError::StartTlsNotOffered {
                    server: server.to_string(),
                });
            }
            _ => {}
        }
    }
    if let Some(credentials) = credentials {
        if !conn.is_encrypted() && sec.starttls != StartTls::Never {
            // Opportunistic, and the server offered no STARTTLS: the password stays here.
            conn.abort().await;
            return Err(AlertError::AuthInClear {
                server: server.to_string(),
            });
        }
        let offered = DEFAULT_MECHANISMS
            .iter()
            .any(|m| conn.server_info().supports_auth_mechanism(*m));
        if !offered {
            conn.abort().await;
            return Err(AlertError::AuthNotOffered {
                server: server.to_string(),
            });
        }
        conn.auth(DEFAULT_MECHANISMS, &credentials)
            .await
            .map_err(|e| smtp_error(server, "auth", e))?;
    }
    Ok(conn)
}

/// TLS for STARTTLS: the server's certificate must be valid for `host` and chain to the web
/// roots or to a certificate of `ca_file`.
fn tls_parameters(
    server: &str,
    host: &str,
    ca_file: Option<&Path>,
) -> Result<TlsParameters, AlertError> {
    let mut b = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| AlertError::SmtpFile {
            path: path.to_path_buf(),
            source,
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|source| AlertError::Smtp {
            server: server.to_string(),
            stage: "reading smtp_ca_file",
            source,
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|source| AlertError::Smtp {
        server: server.to_string(),
        stage: "tls setup",
        source,
    })
}

/// The first line of the password file (at most 4 KiB read), without its line end.
fn read_password(path: &Path) -> Result<String, AlertError> {
    use std::io::Read as _;
    let err = |source| AlertError::SmtpFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(4096)
        .read_to_string(&mut text)
        .map_err(err)?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use tokio::{
        io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
        net::TcpListener,
    };

    use super::super::{AlertError, Alerter, RealState, StateChange};
    use crate::config::model::{Globals, SmtpSecurity, StartTls};

    /// What the test server does.
    #[derive(Clone, Copy)]
    struct Server {
        starttls: bool,
        /// AUTH offered before STARTTLS too (it always is after).
        auth_in_clear: bool,
        refuse_ehlo: bool,
    }

    /// The server's view of one session: each command, `tls:` before those read under TLS.
    type Log = Arc<Mutex<Vec<String>>>;

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut o = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    o.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    o.push('=');
                }
            }
        }
        o
    }

    enum Next {
        StartTls,
        Done,
    }

    /// One SMTP dialogue until QUIT, the end, or an accepted STARTTLS.
    async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut BufReader<S>,
        tls: bool,
        cfg: Server,
        log: &Log,
    ) -> Next {
        let good = format!("AUTH PLAIN {}", b64(b"\0alerts\0s3cret"));
        let mut in_data = false;
        loop {
            let mut line = String::new();
            match s.read_line(&mut line).await {
                Ok(0) | Err(_) => return Next::Done,
                Ok(_) => {}
            }
            let cmd = line.trim_end().to_string();
            if in_data {
                if cmd == "." {
                    in_data = false;
                    s.get_mut().write_all(b"250 queued\r\n").await.unwrap();
                }
                continue;
            }
            log.lock()
                .unwrap()
                .push(format!("{}{cmd}", if tls { "tls:" } else { "" }));
            let upper = cmd.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                if cfg.refuse_ehlo {
                    "502 5.5.1 command not recognised\r\n".into()
                } else {
                    let mut r = String::from("250-test.invalid\r\n");
                    if cfg.starttls && !tls {
                        r.push_str("250-STARTTLS\r\n");
                    }
                    if tls || cfg.auth_in_clear {
                        r.push_str("250-AUTH LOGIN PLAIN\r\n");
                    }
                    r.push_str("250 8BITMIME\r\n");
                    r
                }
            } else if upper == "STARTTLS" && cfg.starttls && !tls {
                s.get_mut().write_all(b"220 go ahead\r\n").await.unwrap();
                return Next::StartTls;
            } else if upper.starts_with("AUTH") {
                if cmd == good {
                    "235 2.7.0 ok\r\n".into()
                } else {
                    "535 5.7.8 bad credentials\r\n".into()
                }
            } else if upper == "DATA" {
                in_data = true;
                "354 go\r\n".into()
            } else if upper == "QUIT" {
                s.get_mut().write_all(b"221 bye\r\n").await.unwrap();
                return Next::Done;
            } else {
                "250 ok\r\n".into()
            };
            s.get_mut().write_all(reply.as_bytes()).await.unwrap();
        }
    }

    /// A one-session SMTP server on loopback with a fresh certificate for 127.0.0.1; returns
    /// its address, the certificate (PEM) and the session's log.
    async fn server(cfg: Server) -> (std::net::SocketAddr, String, Log) {
        let (acceptor, pem) = crate::testtls::acceptor(&["127.0.0.1"]);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let log: Log = Arc::default();
        let log2 = log.clone();
        tokio::spawn(async move {
            let (sock, _) = l.accept().await.unwrap();
            let mut s = BufReader::new(sock);
            s.get_mut().write_all(b"220 test ESMTP\r\n").await.unwrap();
            if let Next::StartTls = dialogue(&mut s, false, cfg, &log2).await {
                let Ok(tls) = acceptor.accept(s.into_inner()).await else {
                    log2.lock().unwrap().push("tls handshake failed".into());
                    return;
                };
                dialogue(&mut BufReader::new(tls), true, cfg, &log2).await;
            }
        });
        (addr, pem, log)
    }

    fn scratch_file(dir: &crate::testdir::TestDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    async fn deliver(addr: std::net::SocketAddr, security: SmtpSecurity) -> Result<(), AlertError> {
        let g = Globals {
            email_alert: vec!["a@x.y".to_string()],
            smtp: Some(addr.to_string()),
            smtp_security: security,
            ..Globals::default()
        };
        let a = Alerter::with_timeouts(&g, Duration::from_secs(5), Duration::from_secs(5));
        let change = StateChange {
            virtual_service: "198.18.0.100:80/tcp".to_string(),
            real: "10.0.0.2:80".parse().unwrap(),
            new_state: RealState::Down,
            message: "connect: refused".to_string(),
        };
        let r = tokio::time::timeout(Duration::from_secs(20), a.on_change(&change).await.wait())
            .await
            .expect("no delivery outcome within 20 s");
        r.into_iter().next().expect("one delivery")
    }

    fn security(
        dir: &crate::testdir::TestDir,
        starttls: StartTls,
        password: &str,
        ca_pem: Option<&str>,
    ) -> SmtpSecurity {
        SmtpSecurity {
            starttls,
            username: Some("alerts".into()),
            password_file: Some(scratch_file(dir, "pass", &format!("{password}\n"))),
            ca_file: ca_pem.map(|p| scratch_file(dir, "ca.pem", p)),
        }
    }

    fn commands(log: &Log) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    const TLS_SERVER: Server = Server {
        starttls: true,
        auth_in_clear: false,
        refuse_ehlo: false,
    };

    #[tokio::test]
    async fn starttls_then_auth_then_the_mail_all_under_tls() {
        let dir = crate::testdir::TestDir::new("smtp-tls-auth");
        let (addr, pem, log) = server(TLS_SERVER).await;
        deliver(
            addr,
            security(&dir, StartTls::Required, "s3cret", Some(&pem)),
        )
        .await
        .unwrap();
        let c = commands(&log);
        assert!(c[0].starts_with("EHLO "), "{c:?}");
        assert_eq!(c[1], "STARTTLS", "{c:?}");
        assert!(c[2].starts_with("tls:EHLO "), "{c:?}");
        assert_eq!(
            c[3],
            format!("tls:AUTH PLAIN {}", b64(b"\0alerts\0s3cret")),
            "{c:?}"
        );
        assert!(c[4].starts_with("tls:MAIL FROM:"), "{c:?}");
        assert!(c.contains(&"tls:DATA".to_string()), "{c:?}");
    }

    #[tokio::test]
    async fn a_wrong_password_is_a_rejected_auth() {
        let dir = crate::testdir::TestDir::new("smtp-bad-pass");
        let (addr, pem, log) = server(TLS_SERVER).await;
        let e = deliver(
            addr,
            security(&dir, StartTls::Required, "wrong", Some(&pem)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, AlertError::SmtpRejected { stage: "auth", .. }),
            "{e:?}"
        );
        assert!(!commands(&log).iter().any(|c| c.contains("MAIL")));
    }

    #[tokio::test]
    async fn an_untrusted_certificate_stops_before_the_password() {
        let dir = crate::testdir::TestDir::new("smtp-untrusted");
        let (addr, _pem, log) = server(TLS_SERVER).await;
        let e = deliver(addr, security(&dir, StartTls::Required, "s3cret", None))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                AlertError::Smtp {
                    stage: "starttls",
                    ..
                }
            ),
            "{e:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c = commands(&log);
        assert!(!c.iter().any(|c| c.contains("AUTH")), "{c:?}");
    }

    #[tokio::test]
    async fn required_starttls_not_offered_is_refused_before_anything_is_sent() {
        let dir = crate::testdir::TestDir::new("smtp-no-starttls");
        let (addr, pem, log) = server(Server {
            starttls: false,
            auth_in_clear: true,
            refuse_ehlo: false,
        })
        .await;
        let e = deliver(
            addr,
            security(&dir, StartTls::Required, "s3cret", Some(&pem)),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AlertError::StartTlsNotOffered { .. }), "{e:?}");
        assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
        let c = commands(&log);
        assert!(
            !c.iter().any(|c| c.contains("AUTH") || c.contains("MAIL")),
            "{c:?}"
        );
    }

    #[tokio::test]
    async fn opportunistic_without_starttls_keeps_the_password() {
        let dir = crate::testdir::TestDir::new("smtp-opportunistic");
        let (addr, pem, log) = server(Server {
            starttls: false,
            auth_in_clear: true,
            refuse_ehlo: false,
        })
        .await;
        let e = deliver(
            addr,
            security(&dir, StartTls::Opportunistic, "s3cret", Some(&pem)),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AlertError::AuthInClear { .. }), "{e:?}");
        assert!(!commands(&log).iter().any(|c| c.contains("AUTH")));
    }

    #[tokio::test]
    async fn opportunistic_without_auth_sends_plain_when_not_offered() {
        let (addr, _pem, log) = server(Server {
            starttls: false,
            auth_in_clear: false,
            refuse_ehlo: false,
        })
        .await;
        let sec = SmtpSecurity {
            starttls: StartTls::Opportunistic,
            ..SmtpSecurity::default()
        };
        deliver(addr, sec).await.unwrap();
        let c = commands(&log);
        assert!(c.iter().any(|c| c.starts_with("MAIL FROM:")), "{c:?}");
    }

    #[tokio::test]
    async fn auth_in_clear_on_loopback_when_starttls_is_never() {
        let dir = crate::testdir::TestDir::new("smtp-auth-plain");
        let (addr, _pem, log) = server(Server {
            starttls: false,
            auth_in_clear: true,
            refuse_ehlo: false,
        })
        .await;
        deliver(addr, security(&dir, StartTls::Never, "s3cret", None))
            .await
            .unwrap();
        let c = commands(&log);
        assert_eq!(c[1], format!("AUTH PLAIN {}", b64(b"\0alerts\0s3cret")));
    }

    #[tokio::test]
    async fn a_server_refusing_ehlo_gets_a_message_saying_there_is_no_helo() {
        let (addr, _pem, log) = server(Server {
            starttls: false,
            auth_in_clear: false,
            refuse_ehlo: true,
        })
        .await;
        let e = deliver(addr, SmtpSecurity::default()).await.unwrap_err();
        assert!(matches!(e, AlertError::EhloRefused { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("refused EHLO"), "{text}");
        assert!(text.contains("no HELO fallback"), "{text}");
        assert!(text.contains("502"), "{text}");
        assert!(commands(&log)[0].starts_with("EHLO "));
    }

    #[test]
    fn settings_are_read_checked_and_shown_without_the_password() {
        use std::path::Path;
        let parse = |t: &str| crate::config::toml::parse_str(Path::new("m.toml"), t);
        let c = parse(
            "emailalert = \"a@x.y\"\nsmtp = \"mail.example.org:587\"\n\
             smtp_starttls = \"required\"\nsmtp_username = \"alerts\"\n\
             smtp_password_file = \"/nonexistent/pass\"\nsmtp_ca_file = \"/etc/ca.pem\"\n",
        )
        .unwrap();
        let s = &c.globals.smtp_security;
        assert_eq!(s.starttls, StartTls::Required);
        assert_eq!(s.username.as_deref(), Some("alerts"));
        let shown = crate::config::render_check(&c);
        assert!(
            shown.contains(
                "mail via mail.example.org:587, starttls required (extra roots /etc/ca.pem), \
                 auth as \"alerts\" (password from /nonexistent/pass)"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("m.toml:5: smtp_password_file: cannot read"),
            "{shown}"
        );
        // convert writes the keys back.
        let back = parse(&crate::config::to_toml(&c)).unwrap();
        assert_eq!(back.globals.smtp_security, c.globals.smtp_security);
        for (text, want) in [
            (
                "smtp_starttls = \"maybe\"\n",
                "m.toml:1: smtp_starttls: `maybe` is not one of",
            ),
            (
                "smtp_username = \"u\"\n",
                "m.toml:1: smtp_username: needs smtp_password_file",
            ),
            (
                "smtp_password_file = \"/p\"\n",
                "m.toml:1: smtp_password_file: needs smtp_username",
            ),
            (
                "smtp = \"10.0.0.25\"\nsmtp_username = \"u\"\nsmtp_password_file = \"/p\"\n",
                "m.toml:2: smtp_username: AUTH would send the password in clear",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text}: {e}");
        }
        // On loopback AUTH without STARTTLS is allowed; the same keys in ldirectord.cf.
        let cf = crate::config::ldirectord::parse_str(
            Path::new("m.cf"),
            "smtp=127.0.0.1:25\nsmtp_username=u\nsmtp_password_file=/p\nsmtp_starttls=never\n",
        )
        .unwrap();
        assert_eq!(cf.globals.smtp_security.starttls, StartTls::Never);
        assert_eq!(cf.globals.smtp_security.username.as_deref(), Some("u"));
    }
}
