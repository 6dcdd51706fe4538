//! A response's head and the framing of its body: the head parsed with `httparse` (at most
//! [`MAX_HEADERS`] fields), Content-Length read as RFC 9112 says, a chunked body decoded as it
//! arrives, and where the whole response ends.

use super::HttpError;

/// The parsed head of a response.
pub(super) struct Head {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) location: Option<String>,
    pub(super) content_length: Option<usize>,
    pub(super) chunked: bool,
    /// The server keeps the connection open after it (HTTP/1.1 without `Connection:
    /// close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub(super) keep_alive: bool,
    /// Where the body starts in the buffer.
    pub(super) body_start: usize,
}

/// Where the response ends in `buf`, once its head tells and it is all there; `None` while
/// more is needed, or when only the close can tell. A chunked body is decoded into `chunks`
/// as it comes (each byte once).
pub(super) fn response_end(
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
pub(super) const MAX_HEADERS: usize = 128;

impl Head {
    /// An interim response (1xx other than 101 Switching Protocols, which lvs never asks
    /// for): the final one follows it.
    pub(super) fn interim(&self) -> bool {
        (100..=199).contains(&self.status) && self.status != 101
    }
}

/// Parses a response head (`httparse`) once it is complete; `Ok(None)` while more is needed.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
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
pub(super) fn content_length(v: &str) -> Result<usize, HttpError> {
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
pub(super) struct Dechunk {
    /// The decoded body so far.
    pub(super) out: Vec<u8>,
    /// How far the chunked body has been read.
    pub(super) pos: usize,
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
    pub(super) fn advance(&mut self, raw: &[u8]) -> Result<Option<usize>, HttpError> {
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
pub(super) fn line_end(buf: &[u8]) -> Option<(usize, usize)> {
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
pub(super) fn chunk_size(
    buf: &[u8],
) -> Result<httparse::Status<(usize, u64)>, httparse::InvalidChunkSize> {
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
pub(super) fn dechunk(raw: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut d = Dechunk::default();
    let end = d.advance(raw).ok().flatten();
    (d.out, end)
}

#[cfg(test)]
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
