//! http and https negotiate checks over a small HTTP/1.1 client.
//!
//! As ldirectord's `check_http`: the request goes to the real (at the check port) with
//! `Host:` set to `virtualhost` or the real's address (with the port when it is not the
//! scheme's, as in a URL), the path percent-encoded; interim answers (`100 Continue`, `103
//! Early Hints`) are skipped, heads and chunk sizes are read with `httparse`; the check passes
//! on a final 2xx status and,
//! when `receive` is set, the regex matching the body. Redirects are followed (at most
//! [`MAX_REDIRECTS`]), a relative `Location` resolved against the request as RFC 3986 says
//! ([`super::url`]), only on the same host, and always to the same real. The whole exchange,
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

use super::{connector::Connector, tls};
use crate::config::model::HttpMethod;

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
    /// A status other than 2xx.
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
    /// The connection kept for the next check, if any (plain http only).
    kept: Mutex<Option<Kept>>,
    /// ldirectord's `http_proxy`: `path` is an absolute URL asked of the real as a proxy.
    proxied: bool,
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
            kept: Mutex::new(None),
            proxied: false,
        })
    }

    /// The check of ldirectord's `http_proxy` service: `url` (absolute, `http://`) fetched
    /// through the real as an HTTP proxy (LWP's `proxy`): the request line carries the whole
    /// URL and `Host:` its authority. A redirect is the proxied server's answer, a failure
    /// like any other non-2xx status (it is not followed).
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
            if matches!(resp.status, 301 | 302 | 303 | 307 | 308) && !self.proxied {
                let location = resp.location.clone().unwrap_or_default();
                if location.is_empty() {
                    return Err(HttpError::Status {
                        status: resp.status,
                        reason: resp.reason,
                    });
                }
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
            if !(200..300).contains(&resp.status) {
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
            Some(c) => c.connect_stream(addr, self.timeout).await,
            None => TcpStream::connect(addr).await,
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

/// The parsed head of a response.
struct Head {
    status: u16,
    reason: String,
    location: Option<String>,
    content_length: Option<usize>,
    chunked: bool,
    /// The server keeps the connection open after it (HTTP/1.1 without `Connection:
    /// close`, or HTTP/1.0 with `Connection: keep-alive`).
    keep_alive: bool,
    /// Where the body starts in the buffer.
    body_start: usize,
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

/// Where the response ends in `buf`, once its head tells and it is all there; `None` while
/// more is needed, or when only the close can tell. A chunked body is decoded into `chunks`
/// as it comes (each byte once).
fn response_end(
    h: &Head,
    buf: &[u8],
    head_request: bool,
    chunks: &mut Dechunk,
) -> Result<Option<usize>, HttpError> {
    if head_request || matches!(h.status, 100..=199 | 204 | 304) {
        return Ok(Some(h.body_start));
    }
    if h.chunked {
        Ok(chunks
            .advance(&buf[h.body_start..])?
            .map(|n| h.body_start + n))
    } else if let Some(len) = h.content_length {
        Ok((buf.len() - h.body_start >= len).then_some(h.body_start + len))
    } else {
        Ok(None)
    }
}

/// The most header fields a response head may have (as Perl's LWP, ldirectord's client).
const MAX_HEADERS: usize = 128;

impl Head {
    /// An interim response (1xx other than 101 Switching Protocols, which lvs never asks
    /// for): the final one follows it.
    fn interim(&self) -> bool {
        (100..=199).contains(&self.status) && self.status != 101
    }
}

/// Parses a response head (`httparse`) once it is complete; `Ok(None)` while more is needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let malformed = |reason: String| HttpError::Malformed { reason };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let end = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response(&mut resp, buf)
    {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(malformed(format!("more than {MAX_HEADERS} header fields")));
        }
        Err(httparse::Error::Version) => {
            return Err(malformed("not an http response".into()));
        }
        Err(e) => return Err(malformed(format!("bad response head: {e}"))),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(malformed("bad status line".into()));
    };
    let http10 = version == 0;
    let mut head = Head {
        status,
        reason: resp.reason.unwrap_or_default().trim().to_string(),
        location: None,
        content_length: None,
        chunked: false,
        keep_alive: !http10,
        body_start: end,
    };
    let mut transfer_encoding = false;
    for field in resp.headers.iter() {
        let value = String::from_utf8_lossy(field.value);
        let value = value.trim();
        let name = field.name;
        if name.eq_ignore_ascii_case("location") {
            head.location = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112, 6.3: a list, or the header repeated, only with one value throughout.
            for v in value.split(',') {
                let len = content_length(v.trim())?;
                match head.content_length {
                    Some(first) if first != len => {
                        return Err(malformed(format!(
                            "conflicting Content-Length values {first} and {len}, the end of \
                             the body is unknown"
                        )));
                    }
                    _ => head.content_length = Some(len),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked when it is the last coding applied.
            transfer_encoding = true;
            head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if http10 && token.eq_ignore_ascii_case("keep-alive") {
                    head.keep_alive = true;
                }
            }
        }
    }
    if transfer_encoding {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); a body not chunked
        // last ends at the close.
        head.content_length = None;
        if !head.chunked {
            head.keep_alive = false;
        }
    }
    Ok(Some(head))
}

/// One Content-Length value: digits only (no sign, no space inside), that fit a `usize`.
fn content_length(v: &str) -> Result<usize, HttpError> {
    match v.parse::<usize>() {
        Ok(len) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Ok(len),
        _ => {
            // Quoted and escaped, and cut short: it comes from the server and goes to a log.
            let shown: String = v.chars().take(32).collect();
            Err(HttpError::Malformed {
                reason: format!(
                    "invalid Content-Length {shown:?}: not a whole number of bytes, the end of \
                     the body is unknown"
                ),
            })
        }
    }
}

/// A chunked body decoded as it arrives: each call goes on where the last one stopped.
#[derive(Default)]
struct Dechunk {
    /// The decoded body so far.
    out: Vec<u8>,
    /// How far the chunked body has been read.
    pos: usize,
    state: ChunkState,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum ChunkState {
    /// Before a chunk-size line.
    #[default]
    Size,
    /// In a chunk's data, with this many bytes to come.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last chunk, in the trailer fields.
    Trailer,
    /// Complete, this long.
    Done,
}

impl Dechunk {
    /// Decodes what `raw` (the chunked body so far, a longer slice of the same bytes at each
    /// call) has beyond the last call; the whole chunked body's length once its end has come.
    fn advance(&mut self, raw: &[u8]) -> Result<Option<usize>, HttpError> {
        loop {
            let rest = &raw[self.pos..];
            match self.state {
                ChunkState::Done => return Ok(Some(self.pos)),
                ChunkState::Size => match chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.pos += n;
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => {
                        return Err(HttpError::Malformed {
                            reason: "bad chunk size".into(),
                        });
                    }
                },
                ChunkState::Data(left) => {
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&rest[..take]);
                    self.pos += take;
                    let left = left - take as u64;
                    if left > 0 {
                        self.state = ChunkState::Data(left);
                        return Ok(None);
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => match line_end(rest) {
                    Some((0, n)) => {
                        self.pos += n;
                        self.state = ChunkState::Size;
                    }
                    Some(_) => {
                        return Err(HttpError::Malformed {
                            reason: "chunk longer than its size".into(),
                        });
                    }
                    None => return Ok(None),
                },
                ChunkState::Trailer => match line_end(rest) {
                    Some((len, n)) => {
                        self.pos += n;
                        if len == 0 {
                            self.state = ChunkState::Done;
                        }
                    }
                    None => return Ok(None),
                },
            }
        }
    }
}

/// The first line of `buf`: its length without the line end, and with it (CRLF or a bare LF,
/// RFC 9112 §2.2); `None` before its end has come.
fn line_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.iter().position(|&b| b == b'\n')?;
    let len = if lf > 0 && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((len, lf + 1))
}

/// A chunk-size line (`httparse`), also when it ends in a bare LF. The line is cut at its
/// first LF before `httparse` reads it: `httparse` takes any byte, LF included, as part of a
/// chunk extension, so a bare LF after one would otherwise reach into the chunk's data.
fn chunk_size(buf: &[u8]) -> Result<httparse::Status<(usize, u64)>, httparse::InvalidChunkSize> {
    let Some((len, n)) = line_end(buf) else {
        // Not all there yet: only a size that is already wrong is refused.
        return httparse::parse_chunk_size(buf).map(|_| httparse::Status::Partial);
    };
    let size = if n == len + 2 {
        httparse::parse_chunk_size(&buf[..n])?
    } else {
        let mut line = buf[..len].to_vec();
        line.extend_from_slice(b"\r\n");
        httparse::parse_chunk_size(&line)?
    };
    match size {
        httparse::Status::Complete((_, size)) => Ok(httparse::Status::Complete((n, size))),
        httparse::Status::Partial => Err(httparse::InvalidChunkSize),
    }
}

/// Decodes a whole chunked body at once (for the tests): the body, and its length once it is
/// complete.
#[cfg(test)]
fn dechunk(raw: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut d = Dechunk::default();
    let end = d.advance(raw).ok().flatten();
    (d.out, end)
}

#[cfg(test)]
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::{ipv6_loopback, wait_until, within};
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tokio::net::TcpListener;

    /// A check's run, bounded in the test.
    trait RunWithin {
        /// Runs the check once; fails the test if it runs for more than 15 s (every check
        /// here has a timeout of at most a few seconds).
        async fn run_within(&self) -> Result<String, HttpError>;
    }

    impl RunWithin for HttpCheck {
        async fn run_within(&self) -> Result<String, HttpError> {
            within(15, "an http check to end", self.run()).await
        }
    }

    /// A bounded in-test server: answers each connection via `respond(request) -> bytes`;
    /// `None` means "accept, read, and never answer". Stops when the test's runtime ends.
    async fn serve(
        respond: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                seen.fetch_add(1, Ordering::SeqCst);
                let respond = respond.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while find(&req, b"\r\n\r\n").is_none() {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    match respond(&String::from_utf8_lossy(&req)) {
                        Some(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            let _ = s.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        (addr, count)
    }

    /// A keep-alive server: answers every request of a connection with `respond(request)`
    /// until the client closes (or, when `close_after` is set, closes after that many answers
    /// on a connection). Returns the address, the connections accepted and the requests seen.
    async fn serve_keep_alive(
        respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
        close_after: Option<usize>,
    ) -> (SocketAddr, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, log) = (count.clone(), requests.clone());
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                seen.fetch_add(1, Ordering::SeqCst);
                let (respond, log) = (respond.clone(), log.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    let mut answered = 0;
                    loop {
                        let Some(end) = find(&req, b"\r\n\r\n") else {
                            match s.read(&mut b).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&b[..n]),
                            }
                            continue;
                        };
                        let text = String::from_utf8_lossy(&req[..end]).to_string();
                        req.drain(..end + 4);
                        log.lock().unwrap().push(text.clone());
                        let _ = s.write_all(&respond(&text)).await;
                        answered += 1;
                        if text.contains("Connection: close") || close_after == Some(answered) {
                            let _ = s.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        (addr, count, requests)
    }

    fn ok(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn params<'a>(
        addr: SocketAddr,
        request: Option<&'a str>,
        receive: Option<&str>,
    ) -> HttpParams<'a> {
        HttpParams {
            addr,
            https: false,
            method: HttpMethod::Get,
            request,
            virtual_host: None,
            receive: receive.map(|r| Regex::new(r).unwrap()),
            verify_tls: false,
            timeout: Duration::from_secs(2),
            interval: Duration::from_secs(10),
            connector: None,
            digest: None,
        }
    }

    #[tokio::test]
    async fn a_short_interval_reuses_the_connection_until_it_is_old() {
        let (addr, conns, requests) = serve_keep_alive(|_| ok("up"), None).await;
        let check = short_interval_check(addr, Some("up"));
        for _ in 0..3 {
            check.run_within().await.unwrap();
        }
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "one connection for three checks"
        );
        assert!(
            requests
                .lock()
                .unwrap()
                .iter()
                .all(|r| !r.contains("Connection: close"))
        );
        // A connection as old as the next check would find it too old: its last request
        // asks to close, and the next check connects afresh.
        check.kept.lock().unwrap().as_mut().unwrap().since -= REUSE_FOR;
        check.run_within().await.unwrap();
        assert!(requests.lock().unwrap()[3].contains("Connection: close"));
        assert!(check.kept.lock().unwrap().is_none());
        check.run_within().await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_connection_closed_by_the_server_is_replaced_within_the_check() {
        // The server closes each connection after one answer, without saying so.
        let (addr, conns, _) = serve_keep_alive(|_| ok("up"), Some(1)).await;
        let check = short_interval_check(addr, None);
        check.run_within().await.unwrap();
        // Let the server's close arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        check.run_within().await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_wrote_to_since_is_not_used() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let seen = conns.clone();
        let late = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let late_sent = late.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
                let late_sent = late_sent.clone();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    loop {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let _ = s.write_all(&ok("up")).await;
                        if first {
                            // A late answer of its own, the connection left open.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            let _ = s
                                .write_all(
                                    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n",
                                )
                                .await;
                            late_sent.store(true, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let check = short_interval_check(addr, Some("up"));
        check.run_within().await.unwrap();
        wait_until(
            10,
            "the server's late answer on the kept connection",
            || late.load(Ordering::SeqCst),
        )
        .await;
        check.run_within().await.unwrap();
        assert_eq!(
            conns.load(Ordering::SeqCst),
            2,
            "the second check connected afresh"
        );
        // Bytes after an answer, read with it: the connection is not kept.
        let (addr, _, _) = serve_keep_alive(
            |_| [ok("up"), b"HTTP/1.1 408 Request Timeout\r\n\r\n".to_vec()].concat(),
            None,
        )
        .await;
        let check = short_interval_check(addr, Some("up"));
        check.run_within().await.unwrap();
        assert!(check.kept.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn no_reuse_when_the_server_says_close_or_http_1_0_or_the_interval_is_long() {
        let answers: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nup",
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nup",
            // No length: the end of the body is the close.
            b"HTTP/1.1 200 OK\r\n\r\nup",
        ];
        for answer in answers {
            let (addr, _, _) = serve_keep_alive(move |_| answer.to_vec(), Some(1)).await;
            let check = short_interval_check(addr, Some("up"));
            check.run_within().await.unwrap();
            assert!(check.kept.lock().unwrap().is_none(), "{answer:?}");
        }
        // ldirectord's default interval: a connection per check, asking to close.
        let (addr, conns, requests) = serve_keep_alive(|_| ok("up"), None).await;
        let check = HttpCheck::new(params(addr, None, None)).unwrap();
        check.run_within().await.unwrap();
        check.run_within().await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        assert!(
            requests
                .lock()
                .unwrap()
                .iter()
                .all(|r| r.contains("Connection: close"))
        );
    }

    /// A plain-http check of `addr` at a 1 s interval: its connections are kept.
    fn short_interval_check(addr: SocketAddr, receive: Option<&str>) -> HttpCheck {
        HttpCheck::new(HttpParams {
            interval: Duration::from_secs(1),
            ..params(addr, None, receive)
        })
        .unwrap()
    }

    #[test]
    fn request_forms() {
        assert_eq!(request_path("index.html"), "/index.html");
        assert_eq!(request_path("/a/b?c"), "/a/b?c");
        assert_eq!(request_path("http://10.0.0.1:80/x.html"), "/x.html");
        assert_eq!(request_path("HTTPS://host"), "/");
        assert_eq!(request_path("http://host?q=1"), "/?q=1");
    }

    #[test]
    fn chunked_decoding() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            (b"Wikipedia".to_vec(), Some(28))
        );
        assert_eq!(
            dechunk(b"1\r\nW\r\n0\r\nX-Trailer: 1\r\n\r\nmore"),
            (b"W".to_vec(), Some(25))
        );
        assert_eq!(dechunk(b"4\r\nWi"), (b"Wi".to_vec(), None));
        assert_eq!(dechunk(b"1\r\nW\r\n0\r\n"), (b"W".to_vec(), None));
    }

    #[tokio::test]
    async fn ok_with_receive_and_host_header() {
        let (addr, _) = serve(|req| {
            let good = req.starts_with("GET /check.html HTTP/1.1\r\n")
                && req.contains("\r\nHost: www.example.com:")
                && req.contains("Connection: close");
            Some(ok(if good {
                "alive and well"
            } else {
                "bad request"
            }))
        })
        .await;
        let mut p = params(addr, Some("check.html"), Some("alive"));
        p.virtual_host = Some("www.example.com");
        let msg = HttpCheck::new(p).unwrap().run_within().await.unwrap();
        assert_eq!(msg, "200 OK");
    }

    #[tokio::test]
    async fn host_defaults_to_real_address() {
        let (addr, _) = serve(|req| {
            Some(ok(if req.contains("\r\nHost: 127.0.0.1:") {
                "yes"
            } else {
                "no"
            }))
        })
        .await;
        HttpCheck::new(params(addr, None, Some("^yes$")))
            .unwrap()
            .run_within()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn ipv6_real_gets_bracketed_host() {
        if !ipv6_loopback("ipv6_real_gets_bracketed_host") {
            return;
        }
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while find(&req, b"\r\n\r\n").is_none() {
                let n = s.read(&mut b).await.unwrap();
                assert_ne!(n, 0, "the request ended early: {req:?}");
                req.extend_from_slice(&b[..n]);
            }
            let req = String::from_utf8_lossy(&req).to_string();
            let body = if req.contains("\r\nHost: [::1]:") {
                "v6"
            } else {
                "no"
            };
            s.write_all(&ok(body)).await.unwrap();
            req
        });
        HttpCheck::new(params(addr, None, Some("^v6$")))
            .unwrap()
            .run_within()
            .await
            .unwrap();
        let req = within(10, "the [::1] server's end", server).await.unwrap();
        assert!(req.starts_with("GET / HTTP/1.1\r\n"), "{req}");
    }

    #[tokio::test]
    async fn wrong_status_fails() {
        let (addr, _) = serve(|_| {
            Some(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec())
        })
        .await;
        let err = HttpCheck::new(params(addr, None, None))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::Status { status: 503, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn receive_mismatch_fails() {
        let (addr, _) = serve(|_| Some(ok("maintenance page"))).await;
        let err = HttpCheck::new(params(addr, None, Some("all good")))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::ReceiveMismatch { status: 200, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn dollar_matches_before_a_final_newline_as_in_perl() {
        let (addr, _) = serve(|_| Some(ok("real1\n"))).await;
        HttpCheck::new(params(addr, None, Some("^real[12]$")))
            .unwrap()
            .run_within()
            .await
            .unwrap();
        let err = HttpCheck::new(params(addr, None, Some("^real[23]$")))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::ReceiveMismatch { status: 200, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn head_request_ignores_body() {
        // The answer announces a body that never comes, and the connection stays open: a
        // client reading the body would wait for its whole timeout.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while find(&req, b"\r\n\r\n").is_none() {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let answer: &[u8] = if req.starts_with(b"HEAD / ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
            } else {
                b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n"
            };
            s.write_all(answer).await.unwrap();
            // Held open until the client closes (bounded by the test's runtime).
            let _ = s.read(&mut b).await;
        });
        let mut p = params(addr, None, None);
        p.method = HttpMethod::Head;
        p.timeout = Duration::from_secs(60);
        let check = HttpCheck::new(p).unwrap();
        let msg = within(
            10,
            "a HEAD check to end at the response head (its timeout is 60 s)",
            check.run(),
        )
        .await
        .unwrap();
        assert_eq!(msg, "200 OK");
        server.abort();
    }

    #[tokio::test]
    async fn chunked_body_matches() {
        let (addr, _) = serve(|_| {
            Some(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n3\r\nbar\r\n0\r\n\r\n"
                    .to_vec(),
            )
        })
        .await;
        HttpCheck::new(params(addr, None, Some("foobar")))
            .unwrap()
            .run_within()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn redirect_to_same_host_is_followed() {
        let (addr, count) = serve(move |req| {
            Some(if req.starts_with("GET / ") {
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/real\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            } else if req.starts_with("GET /real ") {
                b"HTTP/1.1 301 Moved\r\nLocation: final\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else if req.starts_with("GET /final ") {
                ok("landed")
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
            })
        })
        .await;
        HttpCheck::new(params(addr, None, Some("landed")))
            .unwrap()
            .run_within()
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    /// keepalived's `digest`: the body's MD5 must be the one configured (after a chunked
    /// body is decoded); a wrong one fails naming both.
    #[tokio::test]
    async fn digest_of_the_body() {
        let (addr, _) = serve(|_| {
            Some(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
                    .to_vec(),
            )
        })
        .await;
        // md5("hello")
        let good = parse_digest("5d41402abc4b2a76b9719d911017c592").unwrap();
        HttpCheck::new(HttpParams {
            digest: Some(good),
            ..params(addr, None, None)
        })
        .unwrap()
        .run_within()
        .await
        .unwrap();
        let bad = parse_digest("9B3A0C85A887A256D6939DA88AABD8CD").unwrap();
        let err = HttpCheck::new(HttpParams {
            digest: Some(bad),
            ..params(addr, None, None)
        })
        .unwrap()
        .run_within()
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "status 200, body MD5 5d41402abc4b2a76b9719d911017c592 is not \
             9b3a0c85a887a256d6939da88aabd8cd"
        );
        assert!(parse_digest("5d41402abc4b2a76b9719d911017c59").is_none());
        assert!(parse_digest("5d41402abc4b2a76b9719d911017c59g").is_none());
    }

    #[tokio::test]
    async fn relative_locations_are_resolved_as_rfc_3986_says() {
        let (addr, count) = serve(move |req| {
            Some(if req.starts_with("GET /a/b/c HTTP") {
                b"HTTP/1.1 302 Found\r\nLocation: ?q=1\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else if req.starts_with("GET /a/b/c?q=1 HTTP") {
                b"HTTP/1.1 303 See Other\r\nLocation: ../x#frag\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            } else if req.starts_with("GET /a/x HTTP") {
                b"HTTP/1.1 307 Temporary\r\nLocation: //127.0.0.1/y/./z/../w\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            } else if req.starts_with("GET /y/w HTTP") {
                ok("landed")
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
            })
        })
        .await;
        HttpCheck::new(params(addr, Some("/a/b/c"), Some("landed")))
            .unwrap()
            .run_within()
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 4);
        // A network-path reference to another host is not followed.
        let (addr, _) =
            serve(|_| Some(b"HTTP/1.1 302 Found\r\nLocation: //example.com/x\r\n\r\n".to_vec()))
                .await;
        let err = HttpCheck::new(params(addr, None, None))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                HttpError::Redirect {
                    reason: "different host",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn redirect_elsewhere_or_looping_fails() {
        let (addr, _) = serve(|_| {
            Some(b"HTTP/1.1 302 Found\r\nLocation: http://example.com/\r\n\r\n".to_vec())
        })
        .await;
        let err = HttpCheck::new(params(addr, None, None))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                HttpError::Redirect {
                    reason: "different host",
                    ..
                }
            ),
            "{err:?}"
        );

        let (addr, count) =
            serve(|_| Some(b"HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n".to_vec())).await;
        let err = HttpCheck::new(params(addr, None, None))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                HttpError::Redirect {
                    reason: "too many redirects",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(count.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn timeout_when_server_never_answers() {
        let (addr, _) = serve(|_| None).await;
        let mut p = params(addr, None, None);
        p.timeout = Duration::from_millis(300);
        let start = std::time::Instant::now();
        let err = HttpCheck::new(p).unwrap().run_within().await.unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn large_body_is_cut_without_hanging() {
        // A 1 MiB body on a connection the server keeps open: reading stops at 64 KiB.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await;
                let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\nSTART".to_vec();
                resp.resize(resp.len() + 1048576 - 8, b'x');
                resp.extend_from_slice(b"END");
                // The client stops reading, so this write blocks; hold the socket open.
                let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&resp)).await;
            }
        });
        let mut p = params(addr, None, Some("START"));
        p.timeout = Duration::from_secs(3);
        let start = std::time::Instant::now();
        HttpCheck::new(p).unwrap().run_within().await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(2), "did not hang");
        let mut p = params(addr, None, Some("END"));
        p.timeout = Duration::from_secs(3);
        let err = HttpCheck::new(p).unwrap().run_within().await.unwrap_err();
        assert!(matches!(err, HttpError::ReceiveMismatch { .. }), "{err:?}");
        server.abort();
    }

    #[tokio::test]
    async fn refused_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = HttpCheck::new(params(addr, None, None))
            .unwrap()
            .run_within()
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
    }

    /// An https server with a fresh self-signed certificate for 127.0.0.1.
    async fn serve_tls(body: &'static str) -> SocketAddr {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while find(&req, b"\r\n\r\n").is_none() {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let _ = s.write_all(&ok(body)).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn https_without_verification_passes() {
        let addr = serve_tls("secure hello").await;
        let mut p = params(addr, Some("/"), Some("secure"));
        p.https = true;
        let msg = HttpCheck::new(p).unwrap().run_within().await.unwrap();
        assert_eq!(msg, "200 OK");
    }

    #[tokio::test]
    async fn https_with_verification_rejects_self_signed() {
        let addr = serve_tls("secure hello").await;
        let mut p = params(addr, Some("/"), Some("secure"));
        p.https = true;
        p.verify_tls = true;
        let err = HttpCheck::new(p).unwrap().run_within().await.unwrap_err();
        assert!(matches!(err, HttpError::Tls { .. }), "{err:?}");
    }
}

/// Content-Length as RFC 9112 (6.3) reads it: one whole number of bytes; a list or repeated
/// header only when every value is the same. A negative, signed, empty or non-numeric value,
/// and values that disagree, leave the end of the body unknown: the check fails.
#[cfg(test)]
mod content_length_tests {
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
        let head = |v: &str| {
            parse_head(format!("HTTP/1.1 200 OK\r\nContent-Length:{v}\r\n\r\n").as_bytes())
        };
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
}

#[cfg(test)]
mod httparse_tests {
    use super::*;
    use tokio::{net::TcpListener, sync::oneshot};

    const DEADLINE: Duration = Duration::from_secs(5);

    fn params<'a>(
        addr: SocketAddr,
        request: Option<&'a str>,
        receive: Option<&str>,
    ) -> HttpParams<'a> {
        HttpParams {
            addr,
            https: false,
            method: HttpMethod::Get,
            request,
            virtual_host: None,
            receive: receive.map(|r| Regex::new(r).unwrap()),
            verify_tls: false,
            timeout: Duration::from_secs(3),
            interval: Duration::from_secs(10),
            connector: None,
            digest: None,
        }
    }

    /// A server on loopback for one connection: reads the request head, then writes `parts`
    /// one by one, 30 ms apart (so the client reads them separately), and closes. The
    /// request comes back on the channel.
    async fn serve_parts(parts: Vec<&'static [u8]>) -> (SocketAddr, oneshot::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let served = async {
                let (mut s, _) = listener.accept().await.ok()?;
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut b).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    req.extend_from_slice(&b[..n]);
                }
                let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
                for part in parts {
                    s.write_all(part).await.ok()?;
                    s.flush().await.ok()?;
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                s.shutdown().await.ok()
            };
            // Never longer than the test's deadline.
            let _ = tokio::time::timeout(DEADLINE, served).await;
        });
        (addr, rx)
    }

    /// Runs the check (within [`DEADLINE`]) and returns its outcome and the request seen.
    async fn check(
        parts: Vec<&'static [u8]>,
        request: Option<&str>,
        receive: Option<&str>,
    ) -> (Result<String, HttpError>, String, SocketAddr) {
        let (addr, req) = serve_parts(parts).await;
        let check = HttpCheck::new(params(addr, request, receive)).unwrap();
        let outcome = tokio::time::timeout(DEADLINE, check.run())
            .await
            .expect("the http check did not end within 5 s");
        let req = tokio::time::timeout(DEADLINE, req)
            .await
            .expect("the server saw no request within 5 s")
            .expect("the server saw no request");
        (outcome, req, addr)
    }

    #[tokio::test]
    async fn early_hints_before_the_answer_pass() {
        let (outcome, ..) = check(
            vec![
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup",
            ],
            None,
            Some("^up$"),
        )
        .await;
        assert_eq!(outcome.unwrap(), "200 OK");
    }

    #[tokio::test]
    async fn continue_then_the_answer_in_one_read_pass() {
        let (outcome, ..) = check(
            vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup"],
            None,
            Some("^up$"),
        )
        .await;
        assert_eq!(outcome.unwrap(), "200 OK");
    }

    #[tokio::test]
    async fn host_carries_a_port_that_is_not_the_default() {
        let (outcome, req, addr) = check(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
            None,
            None,
        )
        .await;
        outcome.unwrap();
        let host = format!("\r\nHost: 127.0.0.1:{}\r\n", addr.port());
        assert!(req.contains(&host), "{host:?} not in {req:?}");
        // The default ports are left out, as in a URL.
        let on = |port, https, vhost| {
            let mut p = params(SocketAddr::from(([10, 0, 0, 2], port)), None, None);
            p.https = https;
            p.virtual_host = vhost;
            HttpCheck::new(p).unwrap().request("/", true)
        };
        assert!(on(80, false, None).contains("\r\nHost: 10.0.0.2\r\n"));
        assert!(on(443, true, None).contains("\r\nHost: 10.0.0.2\r\n"));
        assert!(on(443, false, None).contains("\r\nHost: 10.0.0.2:443\r\n"));
        assert!(on(8080, false, Some("www.x.y")).contains("\r\nHost: www.x.y:8080\r\n"));
        assert!(on(8080, false, Some("www.x.y:81")).contains("\r\nHost: www.x.y:81\r\n"));
        assert!(on(8080, false, Some("::1")).contains("\r\nHost: [::1]:8080\r\n"));
    }

    #[tokio::test]
    async fn the_request_path_is_percent_encoded() {
        let (outcome, req, _) = check(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
            Some("/my page/\u{e9}t\u{e9}.html?q=a b&r=%20#frag"),
            None,
        )
        .await;
        outcome.unwrap();
        assert!(
            req.starts_with("GET /my%20page/%C3%A9t%C3%A9.html?q=a%20b&r=%20 HTTP/1.1\r\n"),
            "{req:?}"
        );
        assert_eq!(
            request_path("a\"<>\\^`{|}\u{7f}"),
            "/a%22%3C%3E%5C%5E%60%7B%7C%7D%7F"
        );
        assert_eq!(request_path("http://h/\u{e9}"), "/%C3%A9");
        // A non-ASCII request right where a scheme would end.
        assert_eq!(
            request_path("\u{e9}\u{e9}\u{e9}\u{e9}"),
            "/%C3%A9%C3%A9%C3%A9%C3%A9"
        );
    }

    #[tokio::test]
    async fn a_chunked_body_split_across_reads_is_decoded_once() {
        let (outcome, ..) = check(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi",
                b"ki\r\n5;ext=1\r",
                b"\npedia\r\n",
                // A chunk-size line ending in a bare LF (RFC 9112 section 2.2).
                b"3\n",
                b"-up\r\n0\r\n\r\n",
            ],
            None,
            Some("^Wikipedia-up$"),
        )
        .await;
        assert_eq!(outcome.unwrap(), "200 OK");
    }

    #[tokio::test]
    async fn a_body_chunked_only_by_name_is_not_dechunked() {
        // "notchunked" is not chunked: the body ends at the close.
        let (outcome, ..) = check(
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\n2\r\nup\r\n0\r\n\r\n"],
            None,
            Some("^2\r\nup\r\n0\r\n\r\n$"),
        )
        .await;
        assert_eq!(outcome.unwrap(), "200 OK");
    }

    #[tokio::test]
    async fn a_lf_only_head_ends_at_its_first_empty_line() {
        let (outcome, ..) = check(
            vec![b"HTTP/1.1 200 OK\nContent-Length: 10\n\nab\r\n\r\ncdef"],
            None,
            Some("^ab\r\n\r\ncdef$"),
        )
        .await;
        assert_eq!(outcome.unwrap(), "200 OK");
    }

    #[tokio::test]
    async fn bad_or_conflicting_content_lengths_are_refused() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nup"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nup",
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nup",
        ] {
            let (outcome, ..) = check(vec![answer], None, None).await;
            assert!(
                matches!(outcome, Err(HttpError::Malformed { .. })),
                "{:?}: {outcome:?}",
                String::from_utf8_lossy(answer)
            );
        }
        // The same length twice is one length.
        let (outcome, ..) = check(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nup"],
            None,
            Some("^up$"),
        )
        .await;
        outcome.unwrap();
    }

    #[test]
    fn a_chunked_body_fed_a_byte_at_a_time_is_decoded_once() {
        let raw = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n3\n-up\r\n0\r\nX-T: 1\r\n\r\nnext";
        let mut d = Dechunk::default();
        let mut end = None;
        for n in 0..=raw.len() {
            end = d.advance(&raw[..n]).unwrap();
            if end.is_some() {
                assert_eq!(n, raw.len() - 4, "complete as soon as the trailer ends");
                break;
            }
        }
        assert_eq!(end, Some(raw.len() - 4));
        assert_eq!(d.out, b"Wikipedia-up");
        // Bad sizes and chunks longer than their size are errors, not a shorter body.
        for bad in [&b"zz\r\n"[..], b"2\r\nabc\r\n", b"1ffffffffffffffff\r\n"] {
            assert!(Dechunk::default().advance(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_reason_with_a_bare_cr_is_refused() {
        let (outcome, ..) = check(
            vec![b"HTTP/1.1 503 a\r.\rMAIL FROM:<x@y>\r\nContent-Length: 0\r\n\r\n"],
            None,
            None,
        )
        .await;
        assert!(
            matches!(outcome, Err(HttpError::Malformed { .. })),
            "{outcome:?}"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No bytes make the head parser or the chunked decoder panic.
        #[test]
        fn heads_and_chunks_take_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_head(&buf);
            let mut d = Dechunk::default();
            for n in 0..=buf.len() {
                if d.advance(&buf[..n]).is_err() {
                    break;
                }
            }
        }

        /// A body sent in chunks of any sizes (extensions, bare-LF size lines, trailers)
        /// and read in pieces of any sizes is decoded to itself, once.
        #[test]
        fn chunked_bodies_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..50, 1..20),
            bare_lf in any::<bool>(),
            ext in any::<bool>(),
            trailer in any::<bool>(),
            reads in proptest::collection::vec(1usize..40, 1..40),
        ) {
            let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
            let mut raw = Vec::new();
            let mut rest = &body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                raw.extend_from_slice(format!("{n:x}").as_bytes());
                if ext {
                    raw.extend_from_slice(b";x=y");
                }
                raw.extend_from_slice(eol);
                raw.extend_from_slice(&rest[..n]);
                raw.extend_from_slice(b"\r\n");
                rest = &rest[n..];
                i += 1;
            }
            raw.extend_from_slice(b"0\r\n");
            if trailer {
                raw.extend_from_slice(b"X-T: 1\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            let len = raw.len();
            raw.extend_from_slice(b"HTTP/1.1 200 OK\r\n"); // what follows is not its body
            let mut d = Dechunk::default();
            let mut end = None;
            let mut have = 0;
            let mut r = 0;
            while end.is_none() && have < raw.len() {
                have = (have + reads[r % reads.len()]).min(raw.len());
                r += 1;
                end = d.advance(&raw[..have]).unwrap();
            }
            prop_assert_eq!(end, Some(len));
            prop_assert_eq!(d.out, body);
        }

        /// A head of any status, reason and fields is read as written.
        #[test]
        fn heads_round_trip(
            status in 100u16..=999,
            reason in "[ -~]{0,20}",
            len in proptest::option::of(0usize..100_000),
            lf_only in any::<bool>(),
        ) {
            let eol = if lf_only { "\n" } else { "\r\n" };
            let mut head = format!("HTTP/1.1 {status} {reason}{eol}Server: x{eol}");
            if let Some(l) = len {
                head.push_str(&format!("Content-Length: {l}{eol}"));
            }
            head.push_str(eol);
            let h = parse_head(head.as_bytes()).unwrap().expect("a complete head");
            prop_assert_eq!(h.status, status);
            prop_assert_eq!(h.reason, reason.trim());
            prop_assert_eq!(h.content_length, len);
            prop_assert_eq!(h.body_start, head.len());
            prop_assert!(parse_head(&head.as_bytes()[..head.len() - 1]).unwrap().is_none());
        }
    }
}

#[cfg(test)]
#[path = "http_proxy_tests.rs"]
mod proxy_tests;
