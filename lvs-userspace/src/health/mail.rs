//! Negotiate checks of the line protocols: smtp (and submission, and keepalived's
//! `SMTP_CHECK`), pop and pops, imap and imaps, nntp; their line reader serves the ftp check
//! too.
//!
//! Each does the exchange ldirectord does through its Perl module, bounded by the negotiate
//! timeout (the whole exchange) and [`MAX_READ`] bytes read:
//!
//! * smtp (`Net::SMTP`): the greeting must be 2xx; `EHLO` with the `request` (keepalived's
//!   `helo_name`; default `localhost.localdomain`, `Net::SMTP`'s), and `HELO` when `EHLO` is
//!   refused, must get 2xx; then `QUIT`.
//! * pop (`Mail::POP3Client`): the greeting must be `+OK`; with a `login`, `USER` and `PASS`
//!   must get `+OK`; then `QUIT`. (ldirectord's pop check without a login passes even when
//!   nothing answers, a quirk of the module; lvs wants the greeting.)
//! * imap (`Net::IMAP::Simple`): the greeting must be `* OK` or `* PREAUTH`; with a `login`,
//!   `LOGIN` must be answered `OK`; then `LOGOUT`.
//! * nntp: the greeting must start with `2` (ldirectord reads 64 bytes of it).
//!
//! pops and imaps are the same over TLS from the first byte; the certificate is verified only
//! with `verify_tls` (ldirectord never verifies).

use std::{io, net::SocketAddr, time::Duration};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::alert::printable;

/// The most bytes read from the server in one check.
pub const MAX_READ: usize = 64 * 1024;
/// The name an smtp check gives itself by default (`Net::SMTP`'s).
pub const DEFAULT_HELLO: &str = "localhost.localdomain";

/// Errors of the line-protocol checks.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The connect failed.
    #[error("connect to {addr} failed")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (pops, imaps).
    #[error("tls with {addr} failed")]
    Tls {
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
    /// The server closed the connection before its answer was complete.
    #[error("{protocol}: the server closed the connection waiting for the {stage} answer")]
    Closed {
        /// The protocol.
        protocol: &'static str,
        /// What was awaited.
        stage: &'static str,
    },
    /// The server said more than [`MAX_READ`] bytes.
    #[error("{protocol}: more than {MAX_READ} bytes without the answer")]
    TooLong {
        /// The protocol.
        protocol: &'static str,
    },
    /// The server answered, but not what the check wants.
    #[error("{protocol}: {stage} answered {answer:?}")]
    Refused {
        /// The protocol.
        protocol: &'static str,
        /// What was being done.
        stage: &'static str,
        /// The answer (control characters escaped).
        answer: String,
    },
    /// What was fetched does not match `receive` (ftp).
    #[error("{protocol}: the {read} bytes fetched do not match {pattern:?}")]
    NoMatch {
        /// The protocol.
        protocol: &'static str,
        /// Bytes fetched.
        read: usize,
        /// The regex.
        pattern: String,
    },
    /// The exchange did not end within the timeout.
    #[error("no complete answer within {timeout:?}")]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
}

/// Which protocol a [`MailCheck`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailProtocol {
    /// SMTP (smtp, submission, `SMTP_CHECK`).
    Smtp,
    /// POP3.
    Pop,
    /// IMAP4.
    Imap,
    /// NNTP.
    Nntp,
}

impl MailProtocol {
    fn name(self) -> &'static str {
        match self {
            MailProtocol::Smtp => "smtp",
            MailProtocol::Pop => "pop",
            MailProtocol::Imap => "imap",
            MailProtocol::Nntp => "nntp",
        }
    }
}

/// A prepared check of one real.
#[derive(Clone)]
pub struct MailCheck {
    /// Where the real listens.
    pub addr: SocketAddr,
    /// The protocol.
    pub protocol: MailProtocol,
    /// TLS from the first byte (pops, imaps), with the name the certificate is checked for.
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    /// `login` and `passwd`: log in when set (pop, imap).
    pub login: Option<(String, String)>,
    /// The name given in `EHLO`/`HELO` (smtp).
    pub hello: String,
    /// The whole exchange's timeout.
    pub timeout: Duration,
    /// Where its connection leaves from.
    pub source: crate::config::model::CheckSource,
}

impl std::fmt::Debug for MailCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailCheck")
            .field("addr", &self.addr)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("login", &self.login.as_ref().map(|(l, _)| l))
            .field("hello", &self.hello)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MailCheck {
    /// Runs the check: the greeting (and what was logged in) when up.
    pub async fn run(&self) -> Result<String, MailError> {
        tokio::time::timeout(self.timeout, self.exchange())
            .await
            .unwrap_or(Err(MailError::Timeout {
                timeout: self.timeout,
            }))
    }

    async fn exchange(&self) -> Result<String, MailError> {
        let addr = self.addr;
        let tcp = super::source::tcp(addr, &self.source)
            .await
            .map_err(|source| MailError::Connect { addr, source })?;
        match &self.tls {
            None => self.dialogue(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| MailError::Tls { addr, source })?;
                self.dialogue(tls).await
            }
        }
    }

    async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> Result<String, MailError> {
        let mut c = Lines::new(stream, self.addr, self.protocol.name());
        match self.protocol {
            MailProtocol::Smtp => smtp(&mut c, &self.hello).await,
            MailProtocol::Pop => pop(&mut c, self.login.as_ref()).await,
            MailProtocol::Imap => imap(&mut c, self.login.as_ref()).await,
            MailProtocol::Nntp => {
                let greeting = c.line("greeting").await?;
                c.expect(greeting.starts_with('2'), "greeting", &greeting)?;
                Ok(format!("nntp: {}", short(&greeting)))
            }
        }
    }
}

async fn smtp<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Lines<S>,
    hello: &str,
) -> Result<String, MailError> {
    let (code, greeting) = c.reply("greeting").await?;
    c.expect(code / 100 == 2, "greeting", &greeting)?;
    c.send(&format!("EHLO {hello}\r\n")).await?;
    let (code, _) = c.reply("EHLO").await?;
    if code / 100 != 2 {
        // Net::SMTP's fallback.
        c.send(&format!("HELO {hello}\r\n")).await?;
        let (code, helo) = c.reply("HELO").await?;
        c.expect(code / 100 == 2, "HELO", &helo)?;
    }
    let _ = c.send("QUIT\r\n").await;
    Ok(format!("smtp: {}", short(&greeting)))
}

async fn pop<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Lines<S>,
    login: Option<&(String, String)>,
) -> Result<String, MailError> {
    let greeting = c.line("greeting").await?;
    c.expect(greeting.starts_with("+OK"), "greeting", &greeting)?;
    if let Some((user, pass)) = login {
        c.send(&format!("USER {user}\r\n")).await?;
        let a = c.line("USER").await?;
        c.expect(a.starts_with("+OK"), "USER", &a)?;
        c.send(&format!("PASS {pass}\r\n")).await?;
        let a = c.line("PASS").await?;
        c.expect(a.starts_with("+OK"), "PASS", &a)?;
    }
    let _ = c.send("QUIT\r\n").await;
    Ok(format!(
        "pop: {}{}",
        short(&greeting),
        if login.is_some() { ", logged in" } else { "" }
    ))
}

/// `s` as an IMAP quoted string.
fn imap_quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn imap<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Lines<S>,
    login: Option<&(String, String)>,
) -> Result<String, MailError> {
    let greeting = c.line("greeting").await?;
    let upper = greeting.to_ascii_uppercase();
    c.expect(
        upper.starts_with("* OK") || upper.starts_with("* PREAUTH"),
        "greeting",
        &greeting,
    )?;
    if let Some((user, pass)) = login {
        c.send(&format!(
            "a1 LOGIN {} {}\r\n",
            imap_quoted(user),
            imap_quoted(pass)
        ))
        .await?;
        // Untagged lines (capabilities) come before the tagged answer.
        let answer = loop {
            let l = c.line("LOGIN").await?;
            if l.starts_with("a1 ") || l.starts_with("A1 ") {
                break l;
            }
        };
        c.expect(
            answer[3..].to_ascii_uppercase().starts_with("OK"),
            "LOGIN",
            &answer,
        )?;
    }
    let _ = c.send("a2 LOGOUT\r\n").await;
    Ok(format!(
        "imap: {}{}",
        short(&greeting),
        if login.is_some() { ", logged in" } else { "" }
    ))
}

/// At most 120 characters of `text`, control characters escaped.
pub(super) fn short(text: &str) -> String {
    let cut: String = text.trim_end().chars().take(120).collect();
    printable(&cut).into_owned()
}

/// A line reader over a stream that reads at most [`MAX_READ`] bytes in all.
pub(super) struct Lines<S> {
    stream: S,
    buf: Vec<u8>,
    read: usize,
    addr: SocketAddr,
    protocol: &'static str,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    pub(super) fn new(stream: S, addr: SocketAddr, protocol: &'static str) -> Self {
        Lines {
            stream,
            buf: Vec::with_capacity(512),
            read: 0,
            addr,
            protocol,
        }
    }

    /// Writes `text`.
    pub(super) async fn send(&mut self, text: &str) -> Result<(), MailError> {
        let addr = self.addr;
        self.stream
            .write_all(text.as_bytes())
            .await
            .map_err(|source| MailError::Io { addr, source })
    }

    /// The next line, without its line end.
    pub(super) async fn line(&mut self, stage: &'static str) -> Result<String, MailError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.read >= MAX_READ {
                return Err(MailError::TooLong {
                    protocol: self.protocol,
                });
            }
            let mut chunk = [0u8; 2048];
            let want = (MAX_READ - self.read).min(chunk.len());
            let n = self
                .stream
                .read(&mut chunk[..want])
                .await
                .map_err(|source| MailError::Io {
                    addr: self.addr,
                    source,
                })?;
            if n == 0 {
                return Err(MailError::Closed {
                    protocol: self.protocol,
                    stage,
                });
            }
            self.read += n;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A reply of SMTP's or FTP's form (`NNN-…` continued, `NNN …` last): its code and its
    /// last line.
    pub(super) async fn reply(&mut self, stage: &'static str) -> Result<(u16, String), MailError> {
        loop {
            let l = self.line(stage).await?;
            let b = l.as_bytes();
            let code = (b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit))
                .then(|| l[..3].parse::<u16>().ok())
                .flatten();
            let Some(code) = code else {
                return Err(self.refused(stage, &l));
            };
            if b.get(3) != Some(&b'-') {
                return Ok((code, l));
            }
        }
    }

    /// Ok when `good`, else the refusal naming `answer`.
    pub(super) fn expect(
        &self,
        good: bool,
        stage: &'static str,
        answer: &str,
    ) -> Result<(), MailError> {
        if good {
            Ok(())
        } else {
            Err(self.refused(stage, answer))
        }
    }

    fn refused(&self, stage: &'static str, answer: &str) -> MailError {
        MailError::Refused {
            protocol: self.protocol,
            stage,
            answer: short(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::{
        io::{AsyncBufReadExt, BufReader},
        net::TcpListener,
    };

    use super::*;
    use crate::health::tests::within;

    type Seen = Arc<Mutex<Vec<String>>>;

    /// A server on loopback that sends `greeting` (nothing when `None`) on every connection,
    /// then answers each line with `answer(line)` (closing on `None`); the lines it read.
    async fn serve(
        greeting: Option<&'static str>,
        answer: fn(&str) -> Option<String>,
    ) -> (SocketAddr, Seen) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut s = BufReader::new(s);
                    let Some(g) = greeting else {
                        // Slow: holds the connection, says nothing.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    };
                    let _ = s.get_mut().write_all(g.as_bytes()).await;
                    loop {
                        let mut line = String::new();
                        match s.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let line = line.trim_end().to_string();
                        seen.lock().unwrap().push(line.clone());
                        match answer(&line) {
                            Some(a) => {
                                let _ = s.get_mut().write_all(a.as_bytes()).await;
                            }
                            None => return,
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn check(addr: SocketAddr, protocol: MailProtocol, login: Option<(&str, &str)>) -> MailCheck {
        MailCheck {
            addr,
            protocol,
            tls: None,
            login: login.map(|(l, p)| (l.to_string(), p.to_string())),
            hello: "lb.example".into(),
            timeout: Duration::from_millis(500),
            source: Default::default(),
        }
    }

    async fn run(c: MailCheck) -> Result<String, MailError> {
        within(5, "the mail check", c.run()).await
    }

    fn smtp_answer(line: &str) -> Option<String> {
        Some(match &line[..4.min(line.len())] {
            "EHLO" => "250-mx.example\r\n250 PIPELINING\r\n".into(),
            "QUIT" => return None,
            _ => "500 what\r\n".into(),
        })
    }

    #[tokio::test]
    async fn smtp_right_wrong_slow_and_absent() {
        let (addr, seen) = serve(Some("220-mx.example\r\n220 ESMTP\r\n"), smtp_answer).await;
        let ok = run(check(addr, MailProtocol::Smtp, None)).await.unwrap();
        assert_eq!(ok, "smtp: 220 ESMTP");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(seen.lock().unwrap()[..2], ["EHLO lb.example", "QUIT"]);

        // EHLO refused: HELO, as Net::SMTP.
        let (addr, seen) = serve(Some("220 old\r\n"), |l| {
            Some(if l.starts_with("HELO") {
                "250 hi\r\n".into()
            } else {
                "502 no\r\n".into()
            })
        })
        .await;
        run(check(addr, MailProtocol::Smtp, None)).await.unwrap();
        assert_eq!(seen.lock().unwrap()[1], "HELO lb.example");

        // Wrong: a refusing greeting, or both greetings refused.
        let (addr, _) = serve(Some("554 go away\r\n"), smtp_answer).await;
        let e = run(check(addr, MailProtocol::Smtp, None))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "smtp: greeting answered \"554 go away\"");
        let (addr, _) = serve(Some("220 x\r\n"), |_| Some("550 no\r\n".into())).await;
        let e = run(check(addr, MailProtocol::Smtp, None))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Refused { stage: "HELO", .. }), "{e}");
        // Garbage instead of a reply.
        let (addr, _) = serve(Some("hello there\r\n"), smtp_answer).await;
        let e = run(check(addr, MailProtocol::Smtp, None))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Refused { .. }), "{e}");

        // Slow: a greeting that never comes.
        let (addr, _) = serve(None, smtp_answer).await;
        let e = run(check(addr, MailProtocol::Smtp, None))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Timeout { .. }), "{e}");

        // Not at all: nothing listens.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = l.local_addr().unwrap();
        drop(l);
        let e = run(check(gone, MailProtocol::Smtp, None))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Connect { .. }), "{e}");
    }

    #[tokio::test]
    async fn an_endless_greeting_stops_at_64_kib() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let line = b"220-".repeat(1024);
            while s.write_all(&line).await.is_ok() {}
        });
        let mut c = check(addr, MailProtocol::Smtp, None);
        c.timeout = Duration::from_secs(3);
        let e = run(c).await.unwrap_err();
        assert!(matches!(e, MailError::TooLong { .. }), "{e}");
    }

    fn pop_answer(line: &str) -> Option<String> {
        Some(match line {
            "USER mon" => "+OK\r\n".into(),
            "PASS s3cret" => "+OK logged in\r\n".into(),
            "QUIT" => return None,
            _ => "-ERR no\r\n".into(),
        })
    }

    #[tokio::test]
    async fn pop_greeting_and_login() {
        let (addr, seen) = serve(Some("+OK POP3 ready\r\n"), pop_answer).await;
        assert_eq!(
            run(check(addr, MailProtocol::Pop, None)).await.unwrap(),
            "pop: +OK POP3 ready"
        );
        assert_eq!(
            run(check(addr, MailProtocol::Pop, Some(("mon", "s3cret"))))
                .await
                .unwrap(),
            "pop: +OK POP3 ready, logged in"
        );
        let e = run(check(addr, MailProtocol::Pop, Some(("mon", "wrong"))))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "pop: PASS answered \"-ERR no\"");
        assert!(seen.lock().unwrap().contains(&"PASS wrong".to_string()));
        let (addr, _) = serve(Some("-ERR busy\r\n"), pop_answer).await;
        assert!(run(check(addr, MailProtocol::Pop, None)).await.is_err());
        let (addr, _) = serve(None, pop_answer).await;
        let e = run(check(addr, MailProtocol::Pop, None)).await.unwrap_err();
        assert!(matches!(e, MailError::Timeout { .. }), "{e}");
    }

    fn imap_answer(line: &str) -> Option<String> {
        Some(if line == "a1 LOGIN \"mon\" \"s3\\\"cret\"" {
            "* CAPABILITY IMAP4rev1\r\na1 OK LOGIN completed\r\n".into()
        } else if line.starts_with("a1 LOGIN") {
            "a1 NO [AUTHENTICATIONFAILED] bad\r\n".into()
        } else {
            return None;
        })
    }

    #[tokio::test]
    async fn imap_greeting_and_login() {
        let (addr, _) = serve(Some("* OK IMAP4rev1 ready\r\n"), imap_answer).await;
        run(check(addr, MailProtocol::Imap, None)).await.unwrap();
        assert_eq!(
            run(check(addr, MailProtocol::Imap, Some(("mon", "s3\"cret"))))
                .await
                .unwrap(),
            "imap: * OK IMAP4rev1 ready, logged in"
        );
        let e = run(check(addr, MailProtocol::Imap, Some(("mon", "x"))))
            .await
            .unwrap_err();
        assert!(
            matches!(e, MailError::Refused { stage: "LOGIN", .. }),
            "{e}"
        );
        let (addr, _) = serve(Some("* BYE overloaded\r\n"), imap_answer).await;
        assert!(run(check(addr, MailProtocol::Imap, None)).await.is_err());
        let (addr, _) = serve(None, imap_answer).await;
        let e = run(check(addr, MailProtocol::Imap, None))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn nntp_wants_a_2xx_greeting() {
        let (addr, _) = serve(Some("200 news ready\r\n"), |_| None).await;
        run(check(addr, MailProtocol::Nntp, None)).await.unwrap();
        let (addr, _) = serve(Some("502 no permission\r\n"), |_| None).await;
        assert!(run(check(addr, MailProtocol::Nntp, None)).await.is_err());
        let (addr, _) = serve(None, |_| None).await;
        let e = run(check(addr, MailProtocol::Nntp, None))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn pops_speaks_tls_from_the_first_byte() {
        let (acceptor, _) = crate::testtls::acceptor(&["127.0.0.1"]);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let Ok(mut s) = acceptor.accept(s).await else {
                    continue;
                };
                let _ = s.write_all(b"+OK secure\r\n").await;
                let _ = s.shutdown().await;
            }
        });
        let mut c = check(addr, MailProtocol::Pop, None);
        c.tls = Some((
            TlsConnector::from(crate::health::tls::client_config(false)),
            ServerName::from(addr.ip()),
        ));
        assert_eq!(run(c.clone()).await.unwrap(), "pop: +OK secure");
        // Verifying, the self-signed certificate is refused.
        c.tls = Some((
            TlsConnector::from(crate::health::tls::client_config(true)),
            ServerName::from(addr.ip()),
        ));
        let e = run(c).await.unwrap_err();
        assert!(matches!(e, MailError::Tls { .. }), "{e}");
    }

    /// The readers give these checks their settings, and the probe runs them.
    #[tokio::test]
    async fn configured_checks_run_through_the_probe() {
        use std::path::Path;

        use crate::{
            config::{ldirectord, model::CheckService, toml},
            health::{CheckKey, ping::Pinger, probe::Probe},
        };

        let (addr, seen) = serve(Some("+OK POP3 ready\r\n"), pop_answer).await;
        let cf = format!(
            "virtual=10.0.0.1:110\n\treal={addr} gate\n\tservice=pop\n\tchecktype=negotiate\n\
             \tlogin=\"mon\"\n\tpasswd=\"s3cret\"\n"
        );
        let c = ldirectord::parse_str(Path::new("m.cf"), &cf).unwrap();
        let v = &c.virtuals[0];
        assert_eq!(v.check.service, CheckService::Pop);
        assert_eq!(v.check.login.as_deref(), Some("mon"));
        let pinger = Arc::new(Pinger::new());
        let mut probe = Probe::new(&CheckKey::from_config(v, &v.reals[0]), &pinger, None);
        let r = within(5, "the pop probe", probe.run()).await;
        assert_eq!(r.result.unwrap(), "pop: +OK POP3 ready, logged in");
        assert!(seen.lock().unwrap().contains(&"PASS s3cret".to_string()));
        // `lvs check` names the login, never the password.
        let shown = crate::config::render_check(&c);
        assert!(shown.contains("login \"mon\""), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");

        // smtp in TOML, with the name to greet with in `request`.
        let (addr, seen) = serve(Some("220 ESMTP\r\n"), smtp_answer).await;
        let t = format!(
            "[[virtual]]\naddress = \"10.0.0.1:25\"\nservice = \"smtp\"\nrequest = \"lb.test\"\n\
             [[virtual.real]]\naddress = \"{addr}\"\n"
        );
        let c = toml::parse_str(Path::new("m.toml"), &t).unwrap();
        let v = &c.virtuals[0];
        let mut probe = Probe::new(&CheckKey::from_config(v, &v.reals[0]), &pinger, None);
        within(5, "the smtp probe", probe.run())
            .await
            .result
            .unwrap();
        assert_eq!(seen.lock().unwrap()[0], "EHLO lb.test");

        // A login where no check logs in is ignored with a warning; control characters are
        // refused (they would be a command of their own).
        let c = ldirectord::parse_str(
            Path::new("m.cf"),
            "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tlogin=x\n",
        )
        .unwrap();
        assert!(c.virtuals[0].check.login.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("m.cf:3: login: ignored")),
            "{:?}",
            c.warnings
        );
        let e = toml::parse_str(
            Path::new("m.toml"),
            "[[virtual]]\naddress = \"10.0.0.1:143\"\nservice = \"imap\"\nlogin = \"a\\r\\nb\"\n\
             [[virtual.real]]\naddress = \"10.0.0.2:143\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("login: must not contain control characters"),
            "{e}"
        );
    }
}
