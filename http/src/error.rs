//! [`Error`]: why a response could not be read.

use std::fmt;
use std::io;

use crate::head::MAX_HEAD;

/// Why an exchange failed.
///
/// # Examples
///
/// ```
/// let err = keepalive_http::parse_head(b"NOT HTTP\r\n\r\n", false).unwrap_err();
/// assert_eq!(err.kind(), "bad head");
/// assert!(!err.is_retryable());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed.
    Io(io::Error),
    /// The server closed the connection; `got` bytes of the response had
    /// arrived, during the `"head"` or the `"body"`.
    Closed {
        /// `"head"` or `"body"`.
        during: &'static str,
        /// Response bytes received before the close.
        got: usize,
    },
    /// The response head is not HTTP/1.x.
    Head(httparse::Error),
    /// The response head is larger than 64 KiB.
    HeadTooLarge,
    /// A Content-Length that is not a number, or several that disagree.
    BadContentLength,
    /// Chunked encoding that breaks the grammar; the text says where.
    BadChunk(&'static str),
}

impl Error {
    /// A short name, for counting errors by kind: `"io"`, `"closed early"`,
    /// `"bad head"`, `"bad content-length"` or `"bad chunk"`.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = keepalive_http::Error::Closed { during: "head", got: 0 };
    /// assert_eq!(err.kind(), "closed early");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io(_) => "io",
            Error::Closed { .. } => "closed early",
            Error::Head(_) | Error::HeadTooLarge => "bad head",
            Error::BadContentLength => "bad content-length",
            Error::BadChunk(_) => "bad chunk",
        }
    }

    /// True when nothing of a response arrived: a request sent on a reused
    /// connection that the server had just closed. Such a request may be
    /// sent again if it is idempotent (RFC 9110 §9.2.2).
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive_http::Error;
    /// assert!(Error::Closed { during: "head", got: 0 }.is_retryable());
    /// assert!(!Error::Closed { during: "head", got: 12 }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Closed { got, .. } => *got == 0,
            Error::Io(e) => keepalive::Health::is_closed_by_peer(e),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(_) => f.write_str("i/o error during an HTTP exchange"),
            Error::Closed { during, got } => {
                write!(f, "connection closed during the {during} ({got} bytes received)")
            }
            Error::Head(_) => f.write_str("bad response head"),
            Error::HeadTooLarge => write!(f, "response head larger than {MAX_HEAD} bytes"),
            Error::BadContentLength => f.write_str("bad or conflicting Content-Length"),
            Error::BadChunk(why) => write!(f, "bad chunked encoding: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Head(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}
