//! A small, strict HTTP/1.1 client for one request at a time on a pooled
//! connection: the request line and Host header out, the response head
//! parsed by httparse, the body framed by Content-Length or chunked
//! encoding (or read to end of stream), and the verdict on whether the
//! connection may go back to the pool.
//!
//! Parsing is sans-IO ([`parse_head`], [`Body`]) so that it is tested and
//! fuzzed on byte slices; [`exchange`] drives it over a socket.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest response head accepted.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line extension or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;
/// How much is read from the socket at a time.
const READ_SIZE: usize = 16 * 1024;

/// Why a response could not be read.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The socket failed.
    Io(io::Error),
    /// The server closed the connection; `got` bytes of the response had
    /// arrived.
    Closed { during: &'static str, got: usize },
    /// The response head is not HTTP/1.x.
    Head(httparse::Error),
    /// The response head is larger than [`MAX_HEAD`].
    HeadTooLarge,
    /// A Content-Length that is not a number, or several that disagree.
    BadContentLength,
    /// Chunked encoding that breaks the grammar.
    BadChunk(&'static str),
}

impl HttpError {
    /// A short name, for counting errors by kind.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            HttpError::Io(_) => "io",
            HttpError::Closed { .. } => "closed early",
            HttpError::Head(_) | HttpError::HeadTooLarge => "bad head",
            HttpError::BadContentLength => "bad content-length",
            HttpError::BadChunk(_) => "bad chunk",
        }
    }

    /// True when nothing of a response arrived: a request sent on a reused
    /// connection that the server had just closed, safe to retry.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            HttpError::Closed { got, .. } => *got == 0,
            HttpError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "i/o error: {e}"),
            HttpError::Closed { during, got } => {
                write!(f, "connection closed during the {during} ({got} bytes received)")
            }
            HttpError::Head(e) => write!(f, "bad response head: {e}"),
            HttpError::HeadTooLarge => write!(f, "response head larger than {MAX_HEAD} bytes"),
            HttpError::BadContentLength => f.write_str("bad or conflicting Content-Length"),
            HttpError::BadChunk(why) => write!(f, "bad chunked encoding: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> HttpError {
        HttpError::Io(e)
    }
}

/// How the body of a response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// The server allows another request on this connection.
    pub(crate) keep_alive: bool,
    /// The head's length in bytes, blank line included.
    pub(crate) len: usize,
}

impl Head {
    /// An interim response (100 Continue, 103 Early Hints): the real one
    /// follows on the same connection.
    pub(crate) fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Parses a response head at the start of `buf`: `None` until it is
/// complete. `head_request` says the request was HEAD, whose response has
/// no body whatever its headers say.
///
/// # Errors
///
/// A head that is not HTTP/1.x, too large, or has bad Content-Length.
pub(crate) fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf).map_err(HttpError::Head)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(HttpError::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.expect("a complete head has a status");
    let http11 = response.version == Some(1);
    let (mut length, mut chunked, mut coded) = (None, false, false);
    let (mut close, mut keep_alive) = (false, false);
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("");
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| HttpError::BadContentLength)?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::BadContentLength);
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    // RFC 9112 §6.3, in order.
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if coded {
        Framing::UntilClose
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let persistent = if http11 { !close } else { keep_alive && !close };
    Ok(Some(Head {
        status,
        framing,
        keep_alive: persistent && framing != Framing::UntilClose && status != 101,
        len,
    }))
}

/// A response body being decoded from the bytes that follow the head.
#[derive(Debug)]
pub(crate) struct Body {
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    /// Reading a chunk-size: its value so far and its number of digits.
    Size(u64, u8),
    /// Skipping a chunk extension: the chunk's size, and the bytes skipped
    /// so far.
    Extension(u64, usize),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerStart,
    /// Inside a trailer field; its length so far.
    Trailer(usize),
    TrailerLf,
    EndLf,
    Done,
}

impl Body {
    pub(crate) fn new(framing: Framing) -> Body {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size(0, 0),
            Framing::UntilClose => State::UntilClose,
        };
        Body { state }
    }

    /// True once the whole body was read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as belongs to the body, passing body
    /// bytes to `sink`. Returns how many bytes of `input` it used; bytes
    /// after the end of the body are not used.
    ///
    /// # Errors
    ///
    /// Chunked encoding that breaks the grammar.
    pub(crate) fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize, HttpError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            match self.state {
                State::Length(left) | State::Data(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len() - at);
                    sink(&input[at..at + take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::DataCr,
                        _ => State::Data(left),
                    };
                }
                State::UntilClose => {
                    sink(&input[at..]);
                    at = input.len();
                }
                _ => {
                    self.state = chunk_step(self.state, input[at])?;
                    at += 1;
                }
            }
        }
        Ok(at)
    }

    /// The server closed the connection: fine only for a body read until
    /// close, or one already complete.
    ///
    /// # Errors
    ///
    /// `Closed` when the body was cut short.
    pub(crate) fn end_of_stream(&mut self, got: usize) -> Result<(), HttpError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(HttpError::Closed { during: "body", got }),
        }
    }
}

/// One byte of chunked framing (RFC 9112 §7.1).
fn chunk_step(state: State, byte: u8) -> Result<State, HttpError> {
    let bad = |why| Err(HttpError::BadChunk(why));
    Ok(match (state, byte) {
        (State::Size(value, digits), _) if (byte as char).is_ascii_hexdigit() => {
            if digits >= 16 {
                return bad("chunk size too large");
            }
            let digit = (byte as char).to_digit(16).expect("checked hex digit");
            State::Size(value * 16 + u64::from(digit), digits + 1)
        }
        (State::Size(_, 0), _) => return bad("chunk size missing"),
        (State::Size(value, _), b'\r') => State::SizeLf(value),
        (State::Size(value, _), b';' | b' ' | b'\t') => State::Extension(value, 0),
        (State::Size(..), _) => return bad("invalid character in chunk size"),
        (State::Extension(_, n), _) if n > MAX_LINE => return bad("chunk extension too long"),
        (State::Extension(value, _), b'\r') => State::SizeLf(value),
        (State::Extension(..), b'\n') => return bad("bare LF in a chunk extension"),
        (State::Extension(value, n), _) => State::Extension(value, n + 1),
        (State::SizeLf(0), b'\n') => State::TrailerStart,
        (State::SizeLf(size), b'\n') => State::Data(size),
        (State::DataCr, b'\r') => State::DataLf,
        (State::DataLf, b'\n') => State::Size(0, 0),
        (State::TrailerStart, b'\r') => State::EndLf,
        (State::TrailerStart, _) => State::Trailer(1),
        (State::Trailer(n), _) if n > MAX_LINE => return bad("trailer field too long"),
        (State::Trailer(_), b'\r') => State::TrailerLf,
        (State::Trailer(_), b'\n') => return bad("bare LF in a trailer field"),
        (State::Trailer(n), _) => State::Trailer(n + 1),
        (State::TrailerLf, b'\n') => State::TrailerStart,
        (State::EndLf, b'\n') => State::Done,
        _ => return bad("missing CRLF"),
    })
}

/// What one exchange produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    /// The whole response was read, the server allows another request, and
    /// nothing else arrived: the connection may go back to the pool.
    pub(crate) reusable: bool,
}

/// Sends `request` (a complete request head) and reads the response.
/// `buf` is scratch space kept between calls to avoid allocating; body
/// bytes go to `sink`.
///
/// # Errors
///
/// Socket errors, an early close, or a malformed response.
pub(crate) async fn exchange<S>(
    io: &mut S,
    request: &[u8],
    head_request: bool,
    buf: &mut Vec<u8>,
    sink: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Outcome, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request).await?;
    buf.clear();
    let mut got = 0;
    let head = loop {
        if let Some(head) = parse_head(buf, head_request)? {
            if !head.is_interim() {
                break head;
            }
            buf.drain(..head.len);
            continue;
        }
        if read_more(io, buf).await? == 0 {
            return Err(HttpError::Closed { during: "head", got });
        }
        got = buf.len();
    };
    let mut body = Body::new(head.framing);
    let mut body_bytes = 0u64;
    let mut count = |bytes: &[u8]| {
        body_bytes += bytes.len() as u64;
        sink(bytes);
    };
    let mut used = head.len + body.feed(&buf[head.len..], &mut count)?;
    while !body.is_done() {
        buf.clear();
        used = 0;
        if read_more(io, buf).await? == 0 {
            body.end_of_stream(got)?;
            break;
        }
        got += buf.len();
        used = body.feed(buf, &mut count)?;
    }
    let extra = used < buf.len();
    Ok(Outcome {
        status: head.status,
        body_bytes,
        reusable: head.keep_alive && !extra && head.framing != Framing::UntilClose,
    })
}

/// Reads what is available into the spare capacity of `buf`.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    io.read_buf(buf).await
}

/// The request head for a GET (or HEAD) of `path` on `host_header`.
pub(crate) fn request(method: &str, host_header: &str, path: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: keepalive/0.1\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

// A path relative to this file, so that the comparison harness, which
// includes this file with `#[path]`, finds it too.
#[cfg(test)]
#[path = "http/tests.rs"]
mod tests;
