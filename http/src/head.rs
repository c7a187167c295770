//! The response head: status, body framing, persistence and the server's
//! `Keep-Alive` hints.

use std::time::Duration;

use crate::Error;

/// The largest response head accepted, in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 100;

/// How the body of a response is delimited (RFC 9112 §6.3).
///
/// # Examples
///
/// ```
/// use keepalive_http::{parse_head, Framing};
/// let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false)?.unwrap();
/// assert_eq!(head.framing, Framing::Length(5));
/// # Ok::<(), keepalive_http::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes.
    UntilClose,
}

/// What a server announced in `Keep-Alive: timeout=N, max=M` (RFC 2068
/// §19.7.1.1, still sent by Apache httpd and Node.js).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let hints = keepalive_http::KeepAlive::parse(b"timeout=5, max=100");
/// assert_eq!(hints.timeout, Some(Duration::from_secs(5)));
/// assert_eq!(hints.max, Some(100));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepAlive {
    /// How long the server keeps the connection open while idle.
    pub timeout: Option<Duration>,
    /// How many more requests the server accepts on the connection.
    pub max: Option<u32>,
}

impl KeepAlive {
    /// Reads a `Keep-Alive` header value leniently: parameters separated by
    /// commas or semicolons, names in any case, values optionally quoted;
    /// whatever does not parse is ignored, never an error. Values too large
    /// saturate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use keepalive_http::KeepAlive;
    /// let hints = KeepAlive::parse(b"Timeout=\"2\";junk;max=x");
    /// assert_eq!(hints.timeout, Some(Duration::from_secs(2)));
    /// assert_eq!(hints.max, None);
    /// assert_eq!(KeepAlive::parse(b"\xff\xfe"), KeepAlive::default());
    /// ```
    pub fn parse(value: &[u8]) -> KeepAlive {
        let mut hints = KeepAlive::default();
        let text = String::from_utf8_lossy(value);
        for param in text.split([',', ';']) {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').trim();
            let Some(n) = leading_number(value) else {
                continue;
            };
            match name.trim() {
                name if name.eq_ignore_ascii_case("timeout") => {
                    hints.timeout = Some(Duration::from_secs(n));
                }
                name if name.eq_ignore_ascii_case("max") => {
                    hints.max = Some(u32::try_from(n).unwrap_or(u32::MAX));
                }
                _ => {}
            }
        }
        hints
    }
}

/// The whole-number part of a decimal (`"5"`, `"5.5"`), saturating at
/// `u64::MAX`; `None` when it does not start with a digit.
fn leading_number(value: &str) -> Option<u64> {
    let digits = value.split_once('.').map_or(value, |(whole, _)| whole);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// A parsed response head.
///
/// # Examples
///
/// ```
/// let head = keepalive_http::parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false)?.unwrap();
/// assert_eq!((head.status, head.keep_alive, head.len), (204, true, 27));
/// # Ok::<(), keepalive_http::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// The server allows another request on this connection.
    pub keep_alive: bool,
    /// The head's length in bytes, blank line included.
    pub len: usize,
    /// The server's `Keep-Alive` hints, if it sent the header.
    pub hints: KeepAlive,
}

impl Head {
    /// An interim response (100 Continue, 103 Early Hints): the real one
    /// follows on the same connection.
    ///
    /// # Examples
    ///
    /// ```
    /// let head = keepalive_http::parse_head(b"HTTP/1.1 100 Continue\r\n\r\n", false)?.unwrap();
    /// assert!(head.is_interim());
    /// # Ok::<(), keepalive_http::Error>(())
    /// ```
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Parses a response head at the start of `buf`: `None` until it is
/// complete. `head_request` says the request was HEAD, whose response has
/// no body whatever its headers say.
///
/// # Errors
///
/// A head that is not HTTP/1.x, larger than [`MAX_HEAD`], or with a bad
/// Content-Length.
///
/// # Examples
///
/// ```
/// use keepalive_http::parse_head;
/// assert!(parse_head(b"HTTP/1.1 200 OK\r\n", false)?.is_none()); // not complete yet
/// let head = parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", true)?.unwrap();
/// assert!(head.keep_alive);
/// # Ok::<(), keepalive_http::Error>(())
/// ```
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf).map_err(Error::Head)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.expect("httparse sets the code of a complete head");
    let http11 = response.version == Some(1);
    let fields = Fields::scan(response.headers)?;
    let framing = fields.framing(status, head_request);
    let persistent = if http11 {
        !fields.close
    } else {
        fields.keep_alive && !fields.close
    };
    Ok(Some(Head {
        status,
        framing,
        keep_alive: persistent && framing != Framing::UntilClose && status != 101,
        len,
        hints: fields.hints,
    }))
}

/// What a response head's fields say of its framing and persistence.
#[derive(Default)]
struct Fields {
    length: Option<u64>,
    chunked: bool,
    coded: bool,
    close: bool,
    keep_alive: bool,
    hints: KeepAlive,
}

impl Fields {
    /// Reads the fields that matter here; conflicting lengths are an error.
    #[inline]
    fn scan(headers: &[httparse::Header<'_>]) -> Result<Fields, Error> {
        let mut fields = Fields::default();
        for header in headers {
            let value = std::str::from_utf8(header.value).unwrap_or("");
            if header.name.eq_ignore_ascii_case("content-length") {
                let n = value.trim().parse::<u64>().map_err(|_| Error::BadContentLength)?;
                if fields.length.is_some_and(|m| m != n) {
                    return Err(Error::BadContentLength);
                }
                fields.length = Some(n);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                fields.coded = true;
                fields.chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    fields.close |= token.eq_ignore_ascii_case("close");
                    fields.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if header.name.eq_ignore_ascii_case("keep-alive") {
                fields.hints = KeepAlive::parse(header.value);
            }
        }
        Ok(fields)
    }

    /// How the body is delimited: RFC 9112 §6.3, in order.
    #[inline]
    fn framing(&self, status: u16, head_request: bool) -> Framing {
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else if self.chunked {
            Framing::Chunked
        } else if self.coded {
            Framing::UntilClose
        } else if let Some(n) = self.length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        }
    }
}
