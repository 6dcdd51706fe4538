//! The ftp negotiate check, as ldirectord's `check_ftp` (`Net::FTP`): log in (`login`,
//! default `anonymous`; `passwd`, default `lvs@localhost` where ldirectord sends
//! `ldirectord@HOSTNAME`), `CWD /`, binary mode, passive mode, `RETR request`, `QUIT`; the
//! check passes when the file arrived whole and, when `receive` is set, its content matches.
//!
//! The data connection goes to the real's own address at the port `PASV` names (the address in
//! the answer is not followed: a real cannot send the check elsewhere). The whole exchange is
//! bounded by the negotiate timeout; the control answers and the file by [`MAX_READ`] bytes
//! each (a larger file is a failure).

use std::{net::SocketAddr, time::Duration};

use regex::bytes::Regex;
use tokio::io::AsyncReadExt;

use super::mail::{Lines, MAX_READ, MailError, short};

/// `passwd` when none is configured.
pub const DEFAULT_PASSWD: &str = "lvs@localhost";

/// A prepared ftp check of one real.
#[derive(Clone, Debug)]
pub struct FtpCheck {
    /// Where the real's ftp server listens.
    pub addr: SocketAddr,
    /// `login` and `passwd` (ldirectord's defaults applied).
    pub login: (String, String),
    /// The file to fetch (`request`).
    pub path: String,
    /// What its content must match.
    pub receive: Option<Regex>,
    /// The whole exchange's timeout.
    pub timeout: Duration,
    /// Where its sockets leave from (keepalived's `bindto`...).
    pub source: crate::config::model::CheckSource,
}

impl FtpCheck {
    /// Runs the check: the file's size when up.
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
        let mut c = Lines::new(tcp, addr, "ftp");
        let (code, greeting) = c.reply("greeting").await?;
        c.expect(code / 100 == 2, "greeting", &greeting)?;
        let (user, pass) = &self.login;
        c.send(&format!("USER {user}\r\n")).await?;
        let (code, answer) = c.reply("USER").await?;
        if code == 331 || code == 332 {
            c.send(&format!("PASS {pass}\r\n")).await?;
            let (code, answer) = c.reply("PASS").await?;
            c.expect(code / 100 == 2, "PASS", &answer)?;
        } else {
            c.expect(code / 100 == 2, "USER", &answer)?;
        }
        // Net::FTP's cwd: its answer does not matter to ldirectord.
        c.send("CWD /\r\n").await?;
        c.reply("CWD").await?;
        c.send("TYPE I\r\n").await?;
        let (code, answer) = c.reply("TYPE").await?;
        c.expect(code / 100 == 2, "TYPE", &answer)?;
        c.send("PASV\r\n").await?;
        let (code, answer) = c.reply("PASV").await?;
        let port = (code == 227).then(|| pasv_port(&answer)).flatten();
        let Some(port) = port else {
            return Err(MailError::Refused {
                protocol: "ftp",
                stage: "PASV",
                answer: short(&answer),
            });
        };
        let data_addr = SocketAddr::new(addr.ip(), port);
        let mut data = super::source::tcp(data_addr, &self.source)
            .await
            .map_err(|source| MailError::Connect {
                addr: data_addr,
                source,
            })?;
        c.send(&format!("RETR {}\r\n", self.path)).await?;
        let (code, answer) = c.reply("RETR").await?;
        c.expect(code / 100 == 1 || code / 100 == 2, "RETR", &answer)?;
        let mut file = Vec::with_capacity(1024);
        (&mut data)
            .take(MAX_READ as u64 + 1)
            .read_to_end(&mut file)
            .await
            .map_err(|source| MailError::Io {
                addr: data_addr,
                source,
            })?;
        if file.len() > MAX_READ {
            return Err(MailError::TooLong { protocol: "ftp" });
        }
        drop(data);
        if code / 100 == 1 {
            let (code, answer) = c.reply("end of RETR").await?;
            c.expect(code / 100 == 2, "end of RETR", &answer)?;
        }
        let _ = c.send("QUIT\r\n").await;
        if let Some(re) = &self.receive
            && !re.is_match(&file)
        {
            return Err(MailError::NoMatch {
                protocol: "ftp",
                read: file.len(),
                pattern: re.as_str().to_string(),
            });
        }
        Ok(format!("ftp: {} ({} bytes)", self.path, file.len()))
    }
}

/// The port of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` answer.
fn pasv_port(answer: &str) -> Option<u16> {
    let inner = match (answer.find('('), answer.rfind(')')) {
        (Some(a), Some(b)) if a < b => &answer[a + 1..b],
        // Some servers leave the parentheses out: the numbers after the code.
        _ => answer
            .get(4..)?
            .trim_start_matches(|c: char| !c.is_ascii_digit()),
    };
    let nums: Vec<u16> = inner
        .split(',')
        .map(|n| n.trim().parse::<u8>().map(u16::from))
        .collect::<Result<_, _>>()
        .ok()?;
    match nums.as_slice() {
        [_, _, _, _, p1, p2] => Some(p1 * 256 + p2).filter(|&p| p != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::health::tests::within;

    /// How the test server behaves.
    #[derive(Clone, Copy)]
    enum Server {
        /// Serves `/hello.txt` with "hello from ftp".
        Right,
        /// Refuses the password.
        BadPassword,
        /// Says nothing after the connect.
        Silent,
        /// Sends a file larger than the cap.
        Huge,
    }

    async fn server(how: Server) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                tokio::spawn(session(s, how));
            }
        });
        addr
    }

    async fn session(s: TcpStream, how: Server) {
        let mut s = BufReader::new(s);
        if let Server::Silent = how {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        let _ = s.get_mut().write_all(b"220-welcome\r\n220 ready\r\n").await;
        let data = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = data.local_addr().unwrap().port();
        loop {
            let mut line = String::new();
            match s.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            let answer = match line.split(' ').next().unwrap_or("") {
                "USER" => "331 password please\r\n".to_string(),
                "PASS" if matches!(how, Server::BadPassword) => "530 no\r\n".to_string(),
                "PASS" => "230 in\r\n".to_string(),
                "CWD" => "250 ok\r\n".to_string(),
                "TYPE" => "200 binary\r\n".to_string(),
                "PASV" => format!(
                    "227 Entering Passive Mode (10,9,8,7,{},{})\r\n",
                    port / 256,
                    port % 256
                ),
                "RETR" if line == "RETR /hello.txt" => {
                    let _ = s.get_mut().write_all(b"150 sending\r\n").await;
                    let (mut d, _) = data.accept().await.unwrap();
                    if let Server::Huge = how {
                        let chunk = vec![b'x'; 8192];
                        for _ in 0..10 {
                            if d.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    } else {
                        let _ = d.write_all(b"hello from ftp\n").await;
                    }
                    drop(d);
                    "226 done\r\n".to_string()
                }
                "RETR" => "550 no such file\r\n".to_string(),
                "QUIT" => return,
                _ => "502 ?\r\n".to_string(),
            };
            let _ = s.get_mut().write_all(answer.as_bytes()).await;
        }
    }

    fn check(addr: SocketAddr, path: &str, receive: Option<&str>) -> FtpCheck {
        FtpCheck {
            addr,
            login: ("anonymous".into(), DEFAULT_PASSWD.into()),
            path: path.into(),
            receive: receive.map(|r| Regex::new(r).unwrap()),
            timeout: Duration::from_millis(800),
            source: Default::default(),
        }
    }

    async fn run(c: FtpCheck) -> Result<String, MailError> {
        within(5, "the ftp check", c.run()).await
    }

    #[tokio::test]
    async fn right_wrong_slow_and_absent() {
        let addr = server(Server::Right).await;
        assert_eq!(
            run(check(addr, "/hello.txt", Some("from ftp")))
                .await
                .unwrap(),
            "ftp: /hello.txt (15 bytes)"
        );
        // Wrong: the content, the file, the password.
        let e = run(check(addr, "/hello.txt", Some("^nope")))
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::NoMatch { read: 15, .. }), "{e}");
        let e = run(check(addr, "/missing", None)).await.unwrap_err();
        assert_eq!(e.to_string(), "ftp: RETR answered \"550 no such file\"");
        let addr = server(Server::BadPassword).await;
        let e = run(check(addr, "/hello.txt", None)).await.unwrap_err();
        assert!(matches!(e, MailError::Refused { stage: "PASS", .. }), "{e}");
        // Too much.
        let addr = server(Server::Huge).await;
        let e = run(check(addr, "/hello.txt", None)).await.unwrap_err();
        assert!(matches!(e, MailError::TooLong { .. }), "{e}");
        // Slow.
        let addr = server(Server::Silent).await;
        let e = run(check(addr, "/hello.txt", None)).await.unwrap_err();
        assert!(matches!(e, MailError::Timeout { .. }), "{e}");
        // Absent.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = l.local_addr().unwrap();
        drop(l);
        let e = run(check(gone, "/hello.txt", None)).await.unwrap_err();
        assert!(matches!(e, MailError::Connect { .. }), "{e}");
    }

    #[test]
    fn passive_ports() {
        assert_eq!(
            pasv_port("227 Entering Passive Mode (10,0,0,1,19,137)"),
            Some(19 * 256 + 137)
        );
        assert_eq!(pasv_port("227 =10,0,0,1,0,21"), Some(21));
        assert_eq!(pasv_port("227 (10,0,0,1,300,1)"), None);
        assert_eq!(pasv_port("227 (10,0,0,1,0,0)"), None);
        assert_eq!(pasv_port("227 ok"), None);
    }
}
