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
}

impl Error {
    pub(crate) fn from_pool(e: keepalive::Error) -> Error {
        Error { kind: Kind::Pool(e) }
    }

    pub(crate) fn from_hyper(e: hyper::Error) -> Error {
        Error { kind: Kind::Hyper(e) }
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
            Kind::Hyper(_) => None,
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
            Kind::Pool(_) => None,
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
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Pool(_) => f.write_str("no connection for the request"),
            Kind::Hyper(_) => f.write_str("the HTTP/1.1 exchange failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Pool(e) => Some(e),
            Kind::Hyper(e) => Some(e),
        }
    }
}
