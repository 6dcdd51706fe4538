//! http and https negotiate checks over a small HTTP/1.1 client.
//!
//! As ldirectord's `check_http`: the request goes to the real (at the check port) with
//! `Host:` set to `virtualhost` or the real's address (with the port when it is not the
//! scheme's, as in a URL), the path percent-encoded; interim answers (`100 Continue`, `103
//! Early Hints`) are skipped, heads and chunk sizes are read with `httparse`; the check passes
//! on a final status among its [`StatusCodes`] (2xx unless told: keepalived's `status_code`)
//! and, when `receive` is set, the regex matching the body. Redirects are followed, as
//! ldirectord's LWP does (at most [`MAX_REDIRECTS`]), a relative `Location` resolved against
//! the request as RFC 3986 says ([`super::url`]), only on the same host, and always to the
//! same real; a keepalived check follows none ([`HttpCheck::answering`]): its 3xx is the
//! status, passing when it is one of the codes. The whole exchange,
//! redirects included, runs under one timeout (ldirectord's cumulative alarm), and at most
//! [`MAX_RESPONSE`] bytes of each response are read.
//!
//! ## Connections
//!
//! ldirectord opens a connection per check, and so does lvs whenever the check interval is
//! [`REUSE_FOR`] or longer (ldirectord's default interval is 10 s), and always for https.
//! With a shorter interval, a plain-http connection is kept for the next checks, as HTTP/1.1
//! clients and Envoy's health checker do, until it is between 70% of [`REUSE_FOR`] and
//! [`REUSE_FOR`] old (drawn for each connection, so that reals checked together do not all
//! connect again together): its last request says `Connection: close`, and the next check
//! connects afresh. A check on a kept
//! connection costs a write and a read instead of a socket, a connect and a close, which is
//! most of the cost of checking thousands of reals every second. What a kept connection
//! cannot see, a server that stopped accepting new connections while it still answers on
//! old ones, is thus seen within [`REUSE_FOR`]; a server that stops or restarts closes its
//! connections, and the next check connects. A connection is not kept when the server
//! answered with `Connection: close`, an HTTP/1.0 head without keep-alive, or a body whose
//! end only the close tells. A request on a kept connection that finds it closed before any
//! answer (the server closed it while idle) is sent again on a fresh one, within the same
//! timeout.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use regex::bytes::Regex;
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

mod head;

use self::head::{Dechunk, Head, parse_head, response_end};
#[cfg(test)]
use self::head::{dechunk, find};
use super::{connector::Connector, tls};
use crate::config::model::{CheckSource, HttpMethod, StatusCodes};

/// The most bytes read from one response, headers included.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The most redirects followed.
pub const MAX_REDIRECTS: usize = 3;
/// The longest a plain-http connection is used for checks, from its connect (see the module
/// docs): connections are kept only for checks less than this far apart, each for between
/// 70% of it and all of it.
pub const REUSE_FOR: Duration = Duration::from_secs(5);

/// Errors of http checks.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connect failed.
    #[error("connect to {addr} failed")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error("tls handshake with {addr} failed")]
    Tls {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending the request or reading the response failed.
    #[error("http exchange with {addr} failed")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The check did not finish in time.
    #[error("no complete http answer within {timeout:?}")]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The server closed the connection before any byte of an answer.
    #[error("{addr} closed the connection without answering")]
    Closed {
        /// The address.
        addr: SocketAddr,
    },
    /// The answer is not HTTP.
    #[error("malformed http response: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A status that is not one of the check's codes.
    #[error("status {status} {reason}")]
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The body does not match `receive`.
    #[error("status {status}, body does not match {pattern:?}")]
    ReceiveMismatch {
        /// The status code.
        status: u16,
        /// The regex.
        pattern: String,
    },
    /// The body's MD5 is not the configured `digest`.
    #[error("status {status}, body MD5 {got} is not {want}")]
    DigestMismatch {
        /// The status code.
        status: u16,
        /// The body's MD5, hex.
        got: String,
        /// The digest wanted, hex.
        want: String,
    },
    /// A redirect that is not followed.
    #[error("redirect to {location:?} not followed: {reason}")]
    Redirect {
        /// The `Location` header.
        location: String,
        /// Why.
        reason: &'static str,
    },
    /// TLS parameters could not be built.
    #[error("bad tls parameters")]
    TlsParams {
        /// Why.
        #[source]
        source: tls::TlsError,
    },
}

/// A prepared http(s) check: everything parsed and built once per target.
pub struct HttpCheck {
    addr: SocketAddr,
    method: HttpMethod,
    path: String,
    host: String,
    receive: Option<Regex>,
    digest: Option<[u8; 16]>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    interval: Duration,
    connector: Option<Arc<Connector>>,
    /// Where its connections leave from.
    source: CheckSource,
    /// The connection kept for the next check, if any (plain http only).
    kept: Mutex<Option<Kept>>,
    /// ldirectord's `http_proxy`: `path` is an absolute URL asked of the real as a proxy.
    proxied: bool,
    /// The statuses that pass.
    status_codes: StatusCodes,
    /// Follow redirects (ldirectord), or take the 3xx as the status (keepalived).
    follow_redirects: bool,
}

/// A connection kept for the next check.
struct Kept {
    stream: TcpStream,
    /// When it was connected.
    since: Instant,
    /// How long it may serve checks, from `since`.
    lifetime: Duration,
}

impl Kept {
    /// Nothing to read, not even the end: the server has sent nothing since the last answer.
    /// (One `recv` at most: none while the runtime has seen nothing arrive.)
    fn is_idle(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl std::fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCheck")
            .field("addr", &self.addr)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("https", &self.tls.is_some())
            .finish()
    }
}

/// Parameters of an http(s) check.
#[derive(Clone, Debug)]
pub struct HttpParams<'a> {
    /// The real at the check port.
    pub addr: SocketAddr,
    /// https instead of http.
    pub https: bool,
    /// GET or HEAD.
    pub method: HttpMethod,
    /// `request`: a path (`index.html` means `/index.html`) or a full URL.
    pub request: Option<&'a str>,
    /// `virtualhost`: the Host header; the real's address when `None`.
    pub virtual_host: Option<&'a str>,
    /// The compiled `receive`.
    pub receive: Option<Regex>,
    /// `digest` (keepalived's `url { digest }`): the MD5 the body must have.
    pub digest: Option<[u8; 16]>,
    /// Verify the server's certificate (https).
    pub verify_tls: bool,
    /// The whole check's timeout.
    pub timeout: Duration,
    /// The time between two checks: a connection is kept for the next check when it is
    /// shorter than [`REUSE_FOR`].
    pub interval: Duration,
    /// The shared pool of connect sockets, for the connects (a refused connect then costs no
    /// socket of its own).
    pub connector: Option<Arc<Connector>>,
}

impl HttpCheck {
    /// Prepares a check; the TLS configuration is the shared one from [`tls::client_config`].
    pub fn new(p: HttpParams<'_>) -> Result<Self, HttpError> {
        // As a URL's authority (and ldirectord's LWP): the port when it is not the scheme's.
        let default_port = if p.https { 443 } else { 80 };
        let port = match p.addr.port() {
            port if port == default_port => String::new(),
            port => format!(":{port}"),
        };
        let host = match p.virtual_host {
            // It names its own port.
            Some(h) if tls::strip_port(h) != h => h.to_string(),
            Some(h) if h.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{h}]{port}"),
            Some(h) => format!("{h}{port}"),
            None => match p.addr {
                SocketAddr::V4(a) => format!("{}{port}", a.ip()),
                SocketAddr::V6(a) => format!("[{}]{port}", a.ip()),
            },
        };
        let tls = if p.https {
            let name = tls::server_name(p.virtual_host, p.addr.ip())
                .map_err(|source| HttpError::TlsParams { source })?;
            Some((TlsConnector::from(tls::client_config(p.verify_tls)), name))
        } else {
            None
        };
        Ok(HttpCheck {
            addr: p.addr,
            method: p.method,
            path: request_path(p.request.unwrap_or("/")),
            host,
            receive: p.receive,
            digest: p.digest,
            tls,
            timeout: p.timeout,
            interval: p.interval,
            connector: p.connector,
            source: CheckSource::default(),
            kept: Mutex::new(None),
            proxied: false,
            status_codes: StatusCodes::default(),
            follow_redirects: true,
        })
    }

    /// The check with its connections leaving from `source` (keepalived's `bindto`...).
    pub fn from_source(mut self, source: CheckSource) -> Self {
        self.source = source;
        self
    }

    /// The check passing on `status_codes` (2xx by default), following redirects or not
    /// (by default it does, as ldirectord; keepalived's checks do not: the 3xx is then the
    /// status, judged like any other).
    pub fn answering(mut self, status_codes: StatusCodes, follow_redirects: bool) -> Self {
        self.status_codes = status_codes;
        self.follow_redirects = follow_redirects;
        self
    }

    /// The check of ldirectord's `http_proxy` service: `url` (absolute, `http://`) fetched
    /// through the real as an HTTP proxy (LWP's `proxy`): the request line carries the whole
    /// URL and `Host:` its authority. A redirect is the proxied server's answer, judged like
    /// any other status (it is not followed).
    pub fn through_proxy(mut self, url: &str) -> Self {
        let url = url.trim();
        let rest = url.get(7..).unwrap_or("");
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        self.host = authority.to_string();
        self.path = format!("http://{authority}{}", request_path(url));
        self.proxied = true;
        self
    }

    /// The path requested first.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs the check: `Ok(status line)` when up.
    pub async fn run(&self) -> Result<String, HttpError> {
        tokio::time::timeout(self.timeout, self.run_inner())
            .await
            .unwrap_or(Err(HttpError::Timeout {
                timeout: self.timeout,
            }))
    }

    async fn run_inner(&self) -> Result<String, HttpError> {
        let mut path = self.path.clone();
        let mut redirects = 0;
        loop {
            let resp = self.fetch(&path).await?;
            let location = resp.location.as_deref().unwrap_or_default();
            // A redirect without a Location is a status like any other.
            if matches!(resp.status, 301 | 302 | 303 | 307 | 308)
                && self.follow_redirects
                && !self.proxied
                && !location.is_empty()
            {
                let location = location.to_string();
                if redirects == MAX_REDIRECTS {
                    return Err(HttpError::Redirect {
                        location,
                        reason: "too many redirects",
                    });
                }
                path = self.redirect_path(&path, &location)?;
                redirects += 1;
                continue;
            }
            if !self.status_codes.contains(resp.status) {
                return Err(HttpError::Status {
                    status: resp.status,
                    reason: resp.reason,
                });
            }
            // Perl's `$` (ldirectord's `=~ /$receive/`) also matches before a final newline.
            if let Some(re) = &self.receive
                && !re.is_match(&resp.body)
                && !resp
                    .body
                    .strip_suffix(b"\n")
                    .is_some_and(|b| re.is_match(b))
            {
                return Err(HttpError::ReceiveMismatch {
                    status: resp.status,
                    pattern: re.as_str().to_string(),
                });
            }
            if let Some(want) = &self.digest {
                let got = md5::compute(&resp.body).0;
                if &got != want {
                    return Err(HttpError::DigestMismatch {
                        status: resp.status,
                        got: hex(&got),
                        want: hex(want),
                    });
                }
            }
            return Ok(format!("{} {}", resp.status, resp.reason));
        }
    }

    async fn fetch(&self, path: &str) -> Result<Response, HttpError> {
        let Some((connector, name)) = &self.tls else {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).take();
            // A kept connection the server closed, or wrote to (a late "408 Request Timeout"),
            // since the last check is dropped.
            if let Some(kept) = kept.filter(Kept::is_idle) {
                match self.fetch_plain(kept, path).await {
                    // Closed by the server while idle: ask again on a fresh connection.
                    Err(HttpError::Closed { .. }) => {}
                    done => return done,
                }
            }
            let stream = self.connect().await?;
            let since = Instant::now();
            // Between 70% of REUSE_FOR and REUSE_FOR.
            let random = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                since,
            );
            let lifetime =
                REUSE_FOR.mul_f64(0.7 + 0.3 * (random >> 11) as f64 / (1u64 << 53) as f64);
            let kept = Kept {
                stream,
                since,
                lifetime,
            };
            return self.fetch_plain(kept, path).await;
        };
        let addr = self.addr;
        let tcp = self.connect().await?;
        let request = self.request(path, true);
        let head = self.method == HttpMethod::Head;
        // What follows the connect is boxed: a check waiting for its connect (thousands at
        // once, to servers that do not answer) holds only the connect's state, not that of a
        // TLS session and an exchange.
        Box::pin(async {
            let mut stream = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|source| HttpError::Tls { addr, source })?;
            exchange(&mut stream, request.as_bytes(), head, addr).await
        })
        .await
    }

    async fn connect(&self) -> Result<TcpStream, HttpError> {
        let addr = self.addr;
        let tcp = match &self.connector {
            Some(c) => c.connect_stream(addr, self.timeout, &self.source).await,
            None => super::source::tcp(addr, &self.source).await,
        }
        .map_err(|source| HttpError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// One exchange on a plain connection, kept afterwards if it can serve the next check.
    async fn fetch_plain(&self, mut conn: Kept, path: &str) -> Result<Response, HttpError> {
        // Ask the server to keep it only if the next check comes before it is too old.
        let keep =
            self.interval < REUSE_FOR && conn.since.elapsed() + self.interval < conn.lifetime;
        let request = self.request(path, !keep);
        let head = self.method == HttpMethod::Head;
        // Boxed, as for https: the exchange's buffers are held only while it runs.
        let resp = Box::pin(exchange(
            &mut conn.stream,
            request.as_bytes(),
            head,
            self.addr,
        ))
        .await?;
        if keep && resp.reusable {
            *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        }
        Ok(resp)
    }

    /// The request for `path`, asking the server to close after it or not.
    fn request(&self, path: &str, close: bool) -> String {
        let method = match self.method {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        };
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lvs-health\r\nAccept: */*\r\n{connection}\r\n",
            self.host
        )
    }

    /// The path to request after a redirect to `location`, or why it is not followed.
    fn redirect_path(&self, current: &str, location: &str) -> Result<String, HttpError> {
        let refuse = |reason| HttpError::Redirect {
            location: location.to_string(),
            reason,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let resolved = super::url::resolve(current, location.trim());
        if let Some(s) = resolved.scheme
            && !s.eq_ignore_ascii_case(scheme)
        {
            return Err(refuse("different scheme"));
        }
        let path = resolved.target;
        let Some(authority) = resolved.authority else {
            return Ok(encode_path(&path));
        };
        let host = tls::strip_port(authority);
        let port = &authority[host.len()..];
        let same_host = host.eq_ignore_ascii_case(tls::strip_port(&self.host))
            || host.trim_matches(['[', ']']) == self.addr.ip().to_string();
        if !same_host {
            return Err(refuse("different host"));
        }
        if let Some(port) = port.strip_prefix(':')
            && port.parse::<u16>().ok() != Some(self.addr.port())
        {
            return Err(refuse("different port"));
        }
        Ok(encode_path(&path))
    }
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` (32 hex digits, keepalived's `digest` as `genhash` prints it) as an MD5.
pub fn parse_digest(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    if t.len() != 32 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// ldirectord's request forms: `index.html` → `/index.html`; `http://host/x` → `/x`; the
/// result percent-encoded as a request target (see [`encode_path`]).
pub fn request_path(request: &str) -> String {
    let request = request.trim();
    for scheme in ["http://", "https://"] {
        if request.len() >= scheme.len()
            && request.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        {
            let rest = &request[scheme.len()..];
            return encode_path(&match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].to_string(),
                Some(i) => format!("/{}", &rest[i..]),
                None => "/".to_string(),
            });
        }
    }
    if request.starts_with('/') {
        encode_path(request)
    } else {
        encode_path(&format!("/{request}"))
    }
}

/// `path` as a request target: its fragment (`#…`, never sent) dropped, and every byte that
/// cannot appear in a target (controls, space, non-ASCII, and `"` `<` `>` `\` `^` `` ` ``
/// `{` `|` `}`) percent-encoded as UTF-8. `%` is left as it is, so a path already encoded
/// stays the same.
pub fn encode_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// A response, cut at [`MAX_RESPONSE`].
struct Response {
    status: u16,
    reason: String,
    location: Option<String>,
    body: Vec<u8>,
    /// Complete, its end told by its head, nothing after it, and the server keeps the
    /// connection open.
    reusable: bool,
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    head_request: bool,
    addr: SocketAddr,
) -> Result<Response, HttpError> {
    let io = |source| HttpError::Io { addr, source };
    // A connection the server has closed or reset, before any answer.
    let closed = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        )
    };
    let sent = async {
        stream.write_all(request).await?;
        stream.flush().await
    };
    match sent.await {
        Ok(()) => {}
        Err(e) if closed(&e) => return Err(HttpError::Closed { addr }),
        Err(e) => return Err(io(e)),
    }
    // Read straight into the buffer's spare room: nothing zeroed, nothing copied.
    let mut buf = Vec::with_capacity(4096);
    // Where the next head starts: after the interim (1xx) responses read so far.
    let mut head_start = 0;
    let mut head: Option<Head> = None;
    let mut chunks = Dechunk::default();
    // Where the response ends, once known.
    let mut end = None;
    loop {
        if head.is_none() {
            while let Some(h) = parse_head(&buf[head_start..])? {
                if h.interim() {
                    // 100 Continue, 103 Early Hints: the answer comes after it.
                    head_start += h.body_start;
                    continue;
                }
                head = Some(Head {
                    body_start: head_start + h.body_start,
                    ..h
                });
                break;
            }
        }
        if let Some(h) = &head {
            end = response_end(h, &buf, head_request, &mut chunks)?;
            if end.is_some() {
                break;
            }
        }
        let room = MAX_RESPONSE - buf.len();
        if room == 0 {
            break;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().min(room));
        }
        let n = match (&mut *stream).take(room as u64).read_buf(&mut buf).await {
            Ok(n) => n,
            // A TLS peer closing without close_notify: treat as end of data.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) if buf.is_empty() && closed(&e) => return Err(HttpError::Closed { addr }),
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            if buf.is_empty() {
                return Err(HttpError::Closed { addr });
            }
            break;
        }
    }
    let Some(h) = head else {
        return Err(HttpError::Malformed {
            reason: if buf.is_empty() {
                "empty response".into()
            } else {
                "incomplete response head".into()
            },
        });
    };
    // Nothing may follow the response: the next check must read its own answer.
    let reusable = h.keep_alive && end == Some(buf.len());
    let body = if head_request {
        Vec::new()
    } else if h.chunked {
        chunks.out
    } else {
        // The body in place: the head taken off the front, anything after it off the end.
        let end = h
            .content_length
            .map_or(buf.len(), |len| buf.len().min(h.body_start + len));
        buf.truncate(end);
        buf.drain(..h.body_start);
        buf
    };
    Ok(Response {
        status: h.status,
        reason: h.reason,
        location: h.location,
        body,
        reusable,
    })
}

#[cfg(test)]
mod tests;

/// Content-Length as RFC 9112 (6.3) reads it: one whole number of bytes; a list or repeated
/// header only when every value is the same. A negative, signed, empty or non-numeric value,
/// and values that disagree, leave the end of the body unknown: the check fails.
#[cfg(test)]
mod content_length_tests;

#[cfg(test)]
mod httparse_tests;

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod proxy_tests;

#[cfg(test)]
mod status_tests;
