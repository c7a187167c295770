//! [`Error`]: why a request failed, from the pool or from hyper.

use std::fmt;

/// Why a request failed: the pool gave it no connection
/// ([`pool`](Error::pool)), or hyper's exchange on the connection failed
/// ([`hyper`](Error::hyper)). The cause is the
/// [`source`](std::error::Error::source).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client = keepalive_hyper::Client::<http_body_util::Empty<bytes::Bytes>>::new();
/// let req = http::Request::get("/no-authority").body(Default::default()).unwrap();
/// let err = client.request(req).await.unwrap_err();
/// assert!(err.pool().unwrap().is_invalid_target());
/// # }
/// ```
#[derive(Debug)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The allocation failed.
    Pool(keepalive::Error),
    /// The exchange failed.
    Hyper(hyper::Error),
    /// The whole request's time ran out after a connection was handed
    /// over: waiting for the response (`body` false), or for its body's
    /// end.
    Timeout { after: std::time::Duration, body: bool },
    /// The request's body could not be sent: the user's body failed as
    /// the client read it (to keep a copy), or the copy met a connection
    /// that cannot carry it.
    Body(crate::conn::BoxError),
}

impl Error {
    pub(crate) fn from_pool(e: keepalive::Error) -> Error {
        Error { kind: Kind::Pool(e) }
    }

    pub(crate) fn from_hyper(e: hyper::Error) -> Error {
        Error { kind: Kind::Hyper(e) }
    }

    pub(crate) fn body(e: crate::conn::BoxError) -> Error {
        Error { kind: Kind::Body(e) }
    }

    pub(crate) fn timed_out(after: std::time::Duration, body: bool) -> Error {
        Error {
            kind: Kind::Timeout { after, body },
        }
    }

    /// The pool's error when the request never reached a connection: the
    /// allocation failed (an invalid target, a refused connect, a timeout,
    /// a full queue, …).
    ///
    /// # Examples
    ///
    /// See [`Error`].
    pub fn pool(&self) -> Option<&keepalive::Error> {
        match &self.kind {
            Kind::Pool(e) => Some(e),
            Kind::Hyper(_) | Kind::Timeout { .. } | Kind::Body(_) => None,
        }
    }

    /// hyper's error when the exchange on a connection failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = keepalive_hyper::Client::<http_body_util::Empty<bytes::Bytes>>::new();
    /// let req = http::Request::get("/").body(Default::default()).unwrap();
    /// assert!(client.request(req).await.unwrap_err().hyper().is_none());
    /// # }
    /// ```
    pub fn hyper(&self) -> Option<&hyper::Error> {
        match &self.kind {
            Kind::Hyper(e) => Some(e),
            Kind::Pool(_) | Kind::Timeout { .. } | Kind::Body(_) => None,
        }
    }

    /// True when the request ran out of time: the pool's timeout (no
    /// connection in time), or hyper's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = keepalive_hyper::Client::<http_body_util::Empty<bytes::Bytes>>::new();
    /// let req = http::Request::get("/").body(Default::default()).unwrap();
    /// assert!(!client.request(req).await.unwrap_err().is_timeout());
    /// # }
    /// ```
    pub fn is_timeout(&self) -> bool {
        match &self.kind {
            Kind::Pool(e) => e.is_timeout(),
            Kind::Hyper(e) => e.is_timeout(),
            Kind::Timeout { .. } => true,
            Kind::Body(_) => false,
        }
    }
}

impl fmt::Display for Error {
    /// What failed and where, in plain words; the cause is the
    /// [`source`](std::error::Error::source), with its own words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Pool(e) => pool_failure(e, f),
            Kind::Hyper(e) if e.is_timeout() => f.write_str("the HTTP exchange timed out"),
            Kind::Hyper(e) => match http2_words(e) {
                Some(words) => write!(f, "the HTTP/2 exchange failed: {words}"),
                None => f.write_str("the HTTP exchange failed"),
            },
            Kind::Timeout { after, body: false } => {
                write!(f, "timed out after {after:?} waiting for the response")
            }
            Kind::Timeout { after, body: true } => {
                write!(f, "timed out after {after:?} before the response body ended")
            }
            Kind::Body(_) => f.write_str("the request body could not be sent"),
        }
    }
}

/// What an HTTP/2 error of the server's or of h2's says, in words: the
/// stream reset or the GOAWAY, and its code.
fn http2_words(e: &hyper::Error) -> Option<String> {
    let h2 = std::error::Error::source(e)?.downcast_ref::<h2::Error>()?;
    let reason = h2.reason()?;
    let by = if h2.is_remote() {
        "the server"
    } else {
        "this client"
    };
    Some(match () {
        _ if h2.is_go_away() => format!("{by} ended the connection with GOAWAY {reason:?}"),
        _ if reason == h2::Reason::REFUSED_STREAM => format!("{by} refused the stream (REFUSED_STREAM)"),
        _ if h2.is_reset() => format!("{by} reset the stream with {reason:?}"),
        _ => format!("{reason:?}"),
    })
}

/// Why the pool gave the request no connection, and for which target.
fn pool_failure(e: &keepalive::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use keepalive::Error as Pool;
    match e {
        Pool::InvalidTarget { .. } => f.write_str("the request's URI names no target this client can reach"),
        Pool::Resolve { host, .. } => write!(f, "name lookup of {host} failed"),
        Pool::NoAddress { host, .. } => write!(f, "name lookup of {host} found no address"),
        Pool::Connect {
            target, addr, source, ..
        } if source.kind() == std::io::ErrorKind::ConnectionRefused => match addr {
            Some(addr) => write!(f, "connection to {addr} refused"),
            None => write!(f, "connection to {target} refused"),
        },
        Pool::Connect { target, .. } => write!(f, "could not connect to {target}"),
        Pool::Timeout { target, after, .. } => write!(
            f,
            "timed out after {after:?} waiting for a connection to {target}"
        ),
        Pool::Tls { target, .. } => write!(f, "TLS with {target} failed"),
        Pool::Proxy { target, .. } => write!(f, "the proxy for {target} failed"),
        Pool::Handshake { target, .. } => write!(f, "the HTTP handshake with {target} failed"),
        _ if e.is_shutdown() => f.write_str("the client's pool is shut down"),
        _ if e.is_queue_full() => f.write_str("too many requests are waiting for a connection"),
        _ => f.write_str("no connection for the request"),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Pool(e) => Some(e),
            Kind::Hyper(e) => Some(e),
            Kind::Timeout { .. } => None,
            Kind::Body(e) => Some(&**e),
        }
    }
}
