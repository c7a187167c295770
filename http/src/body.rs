//! A response body decoded from the bytes that follow the head: by length,
//! chunked (extensions and trailers skipped), or until the server closes.

use crate::{Error, Framing};

/// The longest chunk-size line extension or trailer line accepted.
pub(crate) const MAX_LINE: usize = 8 * 1024;

/// A response body being decoded from the bytes that follow the head.
///
/// Sans-IO: feed it whatever arrived, in pieces of any size; it says how
/// many bytes were body (the rest belong to the next response, which on a
/// pooled connection means the connection must not be reused).
///
/// # Examples
///
/// ```
/// use keepalive_http::{Body, Framing};
/// let mut body = Body::new(Framing::Chunked);
/// let mut out = Vec::new();
/// let used = body.feed(b"3\r\nabc\r\n0\r\n\r\nextra", &mut |b| out.extend_from_slice(b))?;
/// assert!(body.is_done());
/// assert_eq!((out.as_slice(), used), (&b"abc"[..], 13));
/// # Ok::<(), keepalive_http::Error>(())
/// ```
#[derive(Debug)]
pub struct Body {
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
    /// A decoder for a body framed by `framing`.
    ///
    /// # Examples
    ///
    /// ```
    /// let body = keepalive_http::Body::new(keepalive_http::Framing::Empty);
    /// assert!(body.is_done());
    /// ```
    pub fn new(framing: Framing) -> Body {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size(0, 0),
            Framing::UntilClose => State::UntilClose,
        };
        Body { state }
    }

    /// True once the whole body was read.
    ///
    /// # Examples
    ///
    /// ```
    /// let body = keepalive_http::Body::new(keepalive_http::Framing::Length(1));
    /// assert!(!body.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as belongs to the body, passing body
    /// bytes to `sink`. Returns how many bytes of `input` it used; bytes
    /// after the end of the body are not used.
    ///
    /// # Errors
    ///
    /// Chunked encoding that breaks the grammar.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut body = keepalive_http::Body::new(keepalive_http::Framing::Length(2));
    /// assert_eq!(body.feed(b"okNEXT", &mut |_| {})?, 2);
    /// # Ok::<(), keepalive_http::Error>(())
    /// ```
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize, Error> {
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
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive_http::{Body, Framing};
    /// assert!(Body::new(Framing::UntilClose).end_of_stream(9).is_ok());
    /// assert!(Body::new(Framing::Length(5)).end_of_stream(9).is_err());
    /// ```
    pub fn end_of_stream(&mut self, got: usize) -> Result<(), Error> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(Error::Closed { during: "body", got }),
        }
    }
}

/// One byte of chunked framing (RFC 9112 §7.1).
fn chunk_step(state: State, byte: u8) -> Result<State, Error> {
    let bad = |why| Err(Error::BadChunk(why));
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
