//! A target's check, prepared once: regexes compiled, TLS connector chosen, request parsed.
//! Running it dispatches to the check modules.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use super::{
    CheckKey, connect,
    connector::Connector,
    dns, external, file, ftp,
    http::{self, HttpCheck, HttpParams},
    ldap,
    mail::{self, MailCheck, MailProtocol},
    ping, radius, simpletcp, sip, sql, tls, udp,
};
use crate::config::model::{CheckService, CheckSource, CheckType, Protocol};

/// Why a check failed, or why a target's check could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The connect check failed.
    #[error(transparent)]
    Connect {
        /// The cause.
        #[from]
        source: connect::ConnectError,
    },
    /// The http(s) check failed.
    #[error(transparent)]
    Http {
        /// The cause.
        #[from]
        source: http::HttpError,
    },
    /// The simpletcp check failed.
    #[error(transparent)]
    SimpleTcp {
        /// The cause.
        #[from]
        source: simpletcp::SimpleTcpError,
    },
    /// The udp check (keepalived's UDP_CHECK) failed.
    #[error(transparent)]
    Udp {
        /// The cause.
        #[from]
        source: udp::UdpError,
    },
    /// The dns check failed.
    #[error(transparent)]
    Dns {
        /// The cause.
        #[from]
        source: dns::DnsError,
    },
    /// A line-protocol check (smtp, pop, imap, nntp) failed.
    #[error(transparent)]
    Mail {
        /// The cause.
        #[from]
        source: mail::MailError,
    },
    /// The sip check failed.
    #[error(transparent)]
    Sip {
        /// The cause.
        #[from]
        source: sip::SipError,
    },
    /// The radius check failed.
    #[error(transparent)]
    Radius {
        /// The cause.
        #[from]
        source: radius::RadiusError,
    },
    /// The mysql or pgsql check failed.
    #[error(transparent)]
    Sql {
        /// The cause.
        #[from]
        source: sql::SqlError,
    },
    /// The ldap check failed.
    #[error(transparent)]
    Ldap {
        /// The cause.
        #[from]
        source: ldap::LdapError,
    },
    /// The TLS server name could not be made (pops, imaps).
    #[error(transparent)]
    TlsName {
        /// The cause.
        #[from]
        source: tls::TlsError,
    },
    /// The ping check failed.
    #[error(transparent)]
    Ping {
        /// The cause.
        #[from]
        source: ping::PingError,
    },
    /// The file check (keepalived's FILE_CHECK) read a value that means down.
    #[error(transparent)]
    File {
        /// The cause.
        #[from]
        source: file::FileError,
    },
    /// The external check failed.
    #[error(transparent)]
    External {
        /// The cause.
        #[from]
        source: external::ExternalError,
    },
    /// `receive` is not a valid regular expression.
    #[error("receive {pattern:?} is not a valid regex")]
    Regex {
        /// The pattern.
        pattern: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
    /// An external check without `checkcommand`.
    #[error("external check without checkcommand")]
    NoCommand,
    /// `checktype = off`.
    #[error("checktype off")]
    Off,
    /// The real does not answer address resolution: the check sent nothing.
    #[error("{addr} does not answer ARP/ND (the kernel's neighbour entry failed): not checked")]
    Silent {
        /// The real's address.
        addr: std::net::IpAddr,
    },
    /// The check could not be prepared; it fails every time.
    #[error("check not runnable: {message}")]
    Invalid {
        /// Why it could not be prepared.
        message: String,
    },
}

impl CheckError {
    /// Whether the check could not run for a reason of this host's, not of the real: the
    /// agent is out of open files (`EMFILE`, `ENFILE`), or the kernel out of buffers or
    /// memory (`ENOBUFS`, `ENOMEM`). Such a result says nothing of the real, and the health
    /// engine does not count it (a local user who exhausts the agent's files must not take
    /// every real down).
    pub fn is_local(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && matches!(
                    io.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                )
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

/// The negotiate part of a check.
#[derive(Debug)]
enum Negotiate {
    Http(Box<HttpCheck>),
    SimpleTcp {
        addr: SocketAddr,
        payload: Vec<u8>,
        receive: Option<regex::bytes::Regex>,
        timeout: Duration,
        source: CheckSource,
    },
    Dns(dns::DnsCheck),
    Udp {
        addr: SocketAddr,
        payload: Vec<u8>,
        reply: Option<udp::Pattern>,
        timeout: Duration,
        source: CheckSource,
    },
    Mail(Box<MailCheck>),
    Ftp(Box<ftp::FtpCheck>),
    Sip(Box<sip::SipCheck>),
    Radius(Box<radius::RadiusCheck>),
    Sql(Box<sql::SqlCheck>),
    Ldap(Box<ldap::LdapCheck>),
    Connect(Connect),
}

#[derive(Clone, Debug)]
struct Connect {
    addr: SocketAddr,
    udp: bool,
    timeout: Duration,
    /// The shared pool of connect sockets, if it could be opened.
    connector: Option<Arc<Connector>>,
    /// Where its sockets leave from.
    source: CheckSource,
}

impl Connect {
    async fn run(&self) -> Result<String, CheckError> {
        Ok(if self.udp {
            connect::check_udp(self.addr, self.timeout, &self.source).await?
        } else {
            connect::check_tcp(
                self.addr,
                self.timeout,
                self.connector.as_deref(),
                &self.source,
            )
            .await?
        })
    }
}

impl Negotiate {
    async fn run(&self) -> Result<String, CheckError> {
        match self {
            Negotiate::Http(h) => Ok(Box::pin(h.run()).await?),
            Negotiate::SimpleTcp {
                addr,
                payload,
                receive,
                timeout,
                source,
            } => Ok(Box::pin(simpletcp::check(
                *addr,
                payload,
                receive.as_ref(),
                *timeout,
                source,
            ))
            .await?),
            Negotiate::Dns(d) => Ok(Box::pin(d.run()).await?),
            Negotiate::Udp {
                addr,
                payload,
                reply,
                timeout,
                source,
            } => Ok(Box::pin(udp::check(*addr, payload, reply.as_ref(), *timeout, source)).await?),
            Negotiate::Mail(m) => Ok(Box::pin(m.run()).await?),
            Negotiate::Ftp(f) => Ok(Box::pin(f.run()).await?),
            Negotiate::Sip(s) => Ok(Box::pin(s.run()).await?),
            Negotiate::Radius(r) => Ok(Box::pin(r.run()).await?),
            Negotiate::Sql(s) => Ok(Box::pin(s.run()).await?),
            Negotiate::Ldap(l) => Ok(Box::pin(l.run()).await?),
            Negotiate::Connect(c) => Box::pin(c.run()).await,
        }
    }
}

#[derive(Debug)]
enum Kind {
    On,
    Off,
    Connect(Connect),
    Ping {
        pinger: Arc<ping::Pinger>,
        addr: SocketAddr,
        id: u16,
        seq: u16,
        timeout: Duration,
        /// Not the default: a socket of its own per ping, from there.
        source: CheckSource,
    },
    External {
        command: String,
        /// The program and its arguments.
        words: Vec<String>,
        timeout: Duration,
        dynamic: bool,
    },
    Negotiate(Negotiate),
    File(file::FileCheck),
    /// `n` connect checks, then a negotiate check; `done` counts connects since the last
    /// successful negotiate (`u32::MAX` after a failed connect forces a negotiate).
    Combined {
        n: u32,
        done: u32,
        connect: Connect,
        negotiate: Negotiate,
    },
    Invalid(String),
}

/// A prepared check.
#[derive(Debug)]
pub struct Probe {
    kind: Kind,
}

/// What one run of a probe found.
#[derive(Debug)]
pub struct ProbeRun {
    /// Which check ran: "connect", "negotiate", "ping", "external", "on", "off".
    pub check: &'static str,
    /// `Ok(message)` when up.
    pub result: Result<String, CheckError>,
    /// The weight the check set (`misc_dynamic`), if it set one.
    pub weight: Option<u32>,
}

impl Probe {
    /// Prepares the check of `key`, pinging through the shared `pinger` and connecting through
    /// the shared `connector`; a key that cannot be prepared (bad regex...) yields a probe that
    /// fails every run with the reason.
    pub fn new(
        key: &CheckKey,
        pinger: &Arc<ping::Pinger>,
        connector: Option<&Arc<Connector>>,
    ) -> Probe {
        let kind = match Self::build(key, pinger, connector) {
            Ok(kind) => kind,
            Err(e) => {
                tracing::warn!(real = %key.real, error = %e, "health check cannot be prepared");
                Kind::Invalid(e.to_string())
            }
        };
        Probe { kind }
    }

    fn build(
        key: &CheckKey,
        pinger: &Arc<ping::Pinger>,
        connector: Option<&Arc<Connector>>,
    ) -> Result<Kind, CheckError> {
        // keepalived's connect_ip: the check goes there, the real stays the real.
        let addr = SocketAddr::new(key.address.unwrap_or(key.real.ip()), key.port);
        let connect = Connect {
            addr,
            udp: key.protocol == Protocol::Udp,
            timeout: key.timeout,
            connector: connector.cloned(),
            source: key.source.clone(),
        };
        Ok(match key.check_type {
            CheckType::On => Kind::On,
            CheckType::Off => Kind::Off,
            CheckType::Connect => Kind::Connect(connect),
            CheckType::Ping => Kind::Ping {
                pinger: pinger.clone(),
                addr,
                id: next_ping_id(),
                seq: 0,
                timeout: key.timeout,
                source: key.source.clone(),
            },
            CheckType::External => {
                let command = key.command.clone().ok_or(CheckError::NoCommand)?;
                let words = match key.command_style {
                    crate::config::CommandStyle::Ldirectord => external::ldirectord_words(
                        &command,
                        &external::arguments(
                            key.virtual_addr
                                .unwrap_or(SocketAddr::new(key.real.ip(), 0)),
                            key.real,
                        ),
                    ),
                    crate::config::CommandStyle::Keepalived => external::keepalived_words(&command)
                        .map_err(|why| external::ExternalError::Words {
                            command: command.clone(),
                            why,
                        })?,
                };
                Kind::External {
                    command,
                    words,
                    timeout: key.timeout,
                    dynamic: key.dynamic_weight,
                }
            }
            CheckType::Negotiate => Kind::Negotiate(Self::negotiate(key, connect)?),
            CheckType::File => Kind::File(file::FileCheck {
                path: key.request.clone().unwrap_or_default().into(),
                weight: key.track_weight,
                reverse: key.track_reverse,
                base: key.base_weight,
                last: 0,
            }),
            CheckType::ConnectThenNegotiate(n) => Kind::Combined {
                n,
                done: 0,
                connect: connect.clone(),
                negotiate: Self::negotiate(key, connect)?,
            },
        })
    }

    fn negotiate(key: &CheckKey, connect: Connect) -> Result<Negotiate, CheckError> {
        let addr = connect.addr;
        let timeout = key.negotiate_timeout;
        let pattern = key.receive.as_deref().filter(|r| !r.is_empty());
        let regex_err = |source| CheckError::Regex {
            pattern: pattern.unwrap_or_default().to_string(),
            source,
        };
        Ok(match key.service {
            CheckService::Http | CheckService::Https => {
                let receive = pattern
                    .map(regex::bytes::Regex::new)
                    .transpose()
                    .map_err(regex_err)?;
                Negotiate::Http(Box::new(
                    HttpCheck::new(HttpParams {
                        addr,
                        https: key.service == CheckService::Https,
                        method: key.http_method,
                        request: key.request.as_deref(),
                        virtual_host: key.virtual_host.as_deref(),
                        receive,
                        verify_tls: key.verify_tls,
                        timeout,
                        interval: key.interval,
                        connector: connect.connector.clone(),
                        digest: key.digest.as_deref().and_then(http::parse_digest),
                    })?
                    .from_source(connect.source.clone())
                    .answering(key.status_codes.clone(), key.follow_redirects),
                ))
            }
            CheckService::Udp => {
                let hex = |text: &str, wild: bool| {
                    udp::parse_hex(text, wild).ok_or_else(|| CheckError::Invalid {
                        message: format!("{text:?} is not hex"),
                    })
                };
                Negotiate::Udp {
                    addr,
                    payload: hex(key.request.as_deref().unwrap_or(""), false)?
                        .into_iter()
                        .map(|(v, _)| v)
                        .collect(),
                    reply: key.receive.as_deref().map(|r| hex(r, true)).transpose()?,
                    timeout,
                    source: connect.source.clone(),
                }
            }
            CheckService::SimpleTcp => Negotiate::SimpleTcp {
                addr,
                payload: simpletcp::request_payload(key.request.as_deref()),
                receive: pattern
                    .map(regex::bytes::Regex::new)
                    .transpose()
                    .map_err(regex_err)?,
                timeout,
                source: connect.source.clone(),
            },
            CheckService::Dns => Negotiate::Dns(
                dns::DnsCheck::new(
                    addr,
                    key.protocol == Protocol::Tcp,
                    key.dns_type,
                    key.request.as_deref(),
                    pattern
                        .map(regex::Regex::new)
                        .transpose()
                        .map_err(regex_err)?,
                    timeout,
                )?
                .from_source(connect.source.clone()),
            ),
            CheckService::Smtp
            | CheckService::Pop
            | CheckService::Pops
            | CheckService::Imap
            | CheckService::Imaps
            | CheckService::Nntp => {
                let protocol = match key.service {
                    CheckService::Smtp => MailProtocol::Smtp,
                    CheckService::Pop | CheckService::Pops => MailProtocol::Pop,
                    CheckService::Imap | CheckService::Imaps => MailProtocol::Imap,
                    _ => MailProtocol::Nntp,
                };
                let tls = if matches!(key.service, CheckService::Pops | CheckService::Imaps) {
                    let name = tls::server_name(key.virtual_host.as_deref(), addr.ip())?;
                    Some((
                        tokio_rustls::TlsConnector::from(tls::client_config(key.verify_tls)),
                        name,
                    ))
                } else {
                    None
                };
                Negotiate::Mail(Box::new(MailCheck {
                    addr,
                    protocol,
                    tls,
                    login: key.credentials(),
                    hello: key
                        .request
                        .as_deref()
                        .map(|r| r.trim_start_matches('/'))
                        .filter(|r| !r.is_empty())
                        .unwrap_or(mail::DEFAULT_HELLO)
                        .to_string(),
                    timeout,
                    source: connect.source.clone(),
                }))
            }
            CheckService::Ftp => {
                let Some(path) = key.request.clone().filter(|r| !r.is_empty()) else {
                    return Err(CheckError::Invalid {
                        message: "an ftp check needs the file to fetch (request)".into(),
                    });
                };
                let login = key
                    .credentials()
                    .unwrap_or_else(|| ("anonymous".to_string(), ftp::DEFAULT_PASSWD.to_string()));
                Negotiate::Ftp(Box::new(ftp::FtpCheck {
                    addr,
                    login,
                    path,
                    receive: pattern
                        .map(regex::bytes::Regex::new)
                        .transpose()
                        .map_err(regex_err)?,
                    timeout,
                    source: connect.source.clone(),
                }))
            }
            CheckService::HttpProxy => {
                let Some(url) = key.request.as_deref().map(|r| r.trim_start_matches('/')) else {
                    return Err(CheckError::Invalid {
                        message: "an http_proxy check needs the URL to fetch (request)".into(),
                    });
                };
                let receive = pattern
                    .map(regex::bytes::Regex::new)
                    .transpose()
                    .map_err(regex_err)?;
                let check = HttpCheck::new(HttpParams {
                    addr,
                    https: false,
                    method: key.http_method,
                    request: None,
                    virtual_host: None,
                    receive,
                    verify_tls: false,
                    timeout,
                    interval: key.interval,
                    connector: connect.connector.clone(),
                    digest: None,
                })?
                .from_source(connect.source.clone())
                .answering(key.status_codes.clone(), false);
                Negotiate::Http(Box::new(check.through_proxy(url)))
            }
            CheckService::Sip => Negotiate::Sip(Box::new(sip::SipCheck {
                addr,
                tcp: key.protocol == Protocol::Tcp,
                user: key.login.clone(),
                timeout,
                source: connect.source.clone(),
            })),
            CheckService::Radius => {
                let (user, passwd) = key.credentials().unwrap_or_default();
                Negotiate::Radius(Box::new(radius::RadiusCheck {
                    addr,
                    user,
                    passwd,
                    secret: key.secret.clone().unwrap_or_default(),
                    timeout,
                    source: connect.source.clone(),
                }))
            }
            CheckService::Mysql | CheckService::Pgsql => {
                let (Some((user, passwd)), Some(query)) = (key.credentials(), key.request.clone())
                else {
                    return Err(CheckError::Invalid {
                        message: "a sql check needs login and request".into(),
                    });
                };
                Negotiate::Sql(Box::new(sql::SqlCheck {
                    dialect: if key.service == CheckService::Mysql {
                        sql::Dialect::Mysql
                    } else {
                        sql::Dialect::Pgsql
                    },
                    addr,
                    user,
                    passwd,
                    database: key.database.clone(),
                    query,
                    timeout,
                    source: connect.source.clone(),
                }))
            }
            CheckService::Ldap | CheckService::Ldaps => {
                Negotiate::Ldap(Box::new(ldap::LdapCheck {
                    addr,
                    tls: (key.service == CheckService::Ldaps)
                        .then(|| tls::client_config(key.verify_tls)),
                    bind: key.credentials(),
                    base: key.request.clone().unwrap_or_default(),
                    receive: pattern
                        .map(regex::Regex::new)
                        .transpose()
                        .map_err(regex_err)?,
                    timeout,
                }))
            }
            CheckService::None => Negotiate::Connect(connect),
        })
    }

    /// Whether the check sends packets to the real (connect, ping, negotiate); not on, off,
    /// external (the command may check anything) or a check that cannot run.
    pub fn sends_packets(&self) -> bool {
        matches!(
            self.kind,
            Kind::Connect(_) | Kind::Ping { .. } | Kind::Negotiate(_) | Kind::Combined { .. }
        )
    }

    /// Runs the check once. Each check type's future is boxed on its own, so a run holds
    /// memory for the check it makes, not for the largest of them all (thousands of connect
    /// checks wait on their timeouts at once).
    pub async fn run(&mut self) -> ProbeRun {
        let mut weight = None;
        let (check, result) = match &mut self.kind {
            Kind::On => ("on", Ok("checktype on".to_string())),
            Kind::Off => ("off", Err(CheckError::Off)),
            Kind::Invalid(message) => (
                "invalid",
                Err(CheckError::Invalid {
                    message: message.clone(),
                }),
            ),
            Kind::Connect(c) => ("connect", Box::pin(c.run()).await),
            Kind::Ping {
                pinger,
                addr,
                id,
                seq,
                timeout,
                source,
            } => {
                *seq = seq.wrapping_add(1);
                let r = if source.is_default() {
                    Box::pin(pinger.ping(addr.ip(), *id, *seq, *timeout)).await
                } else {
                    Box::pin(ping::check(addr.ip(), *id, *seq, *timeout, source)).await
                };
                ("ping", r.map_err(CheckError::from))
            }
            Kind::External {
                command,
                words,
                timeout,
                dynamic,
            } => {
                let r = Box::pin(external::run(command, words, *timeout, *dynamic)).await;
                let r = r.map(|(message, w)| {
                    weight = w;
                    message
                });
                ("external", r.map_err(CheckError::from))
            }
            Kind::Negotiate(n) => ("negotiate", n.run().await),
            Kind::File(f) => {
                let r = f.run().map(|(message, w)| {
                    weight = w;
                    message
                });
                ("file", r.map_err(CheckError::from))
            }
            Kind::Combined {
                n,
                done,
                connect,
                negotiate,
            } => {
                if *done >= *n {
                    let r = Box::pin(negotiate.run()).await;
                    if r.is_ok() {
                        *done = 0;
                    }
                    ("negotiate", r)
                } else {
                    let r = Box::pin(connect.run()).await;
                    *done = if r.is_ok() { *done + 1 } else { u32::MAX };
                    ("connect", r)
                }
            }
        };
        ProbeRun {
            check,
            result,
            weight,
        }
    }
}

/// Distinct ICMP identifiers per probe, starting from a per-process value.
fn next_ping_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() as u16).wrapping_mul(31);
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;

#[cfg(test)]
mod local_error_tests {
    use std::io;

    use super::*;

    fn connect_failed(errno: i32) -> CheckError {
        CheckError::from(connect::ConnectError::Connect {
            addr: "192.0.2.1:80".parse().unwrap(),
            source: io::Error::from_raw_os_error(errno),
        })
    }

    #[test]
    fn out_of_files_buffers_or_memory_is_local_and_the_real_s_answers_are_not() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(connect_failed(errno).is_local(), "errno {errno}");
        }
        for errno in [libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ECONNRESET] {
            assert!(!connect_failed(errno).is_local(), "errno {errno}");
        }
        let timeout = CheckError::from(connect::ConnectError::Timeout {
            addr: "192.0.2.1:80".parse().unwrap(),
            timeout: std::time::Duration::from_secs(1),
        });
        assert!(!timeout.is_local());
    }
}
