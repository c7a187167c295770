//! [`send`]: one request through the pool, with Go's retry rule.
//!
//! A request is sent again, once, on another connection, when its method
//! is idempotent (RFC 9110 9.2.2: `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`,
//! `DELETE`) and it failed on a reused connection before any byte of its
//! response arrived: the server's idle close met it on the way. The
//! request is a head this crate wrote, with no body, so it can always be
//! replayed. Nothing else is retried: not a failure on a fresh connection,
//! not one after the response had begun. [`Outcome::retried`] and
//! [`SendError`] say whether it was.

use keepalive::{FromCache, Manager, Target};

use crate::{exchange, settle, Error, Outcome};

/// Whether a request with `method` may be sent twice (RFC 9110 9.2.2).
///
/// # Examples
///
/// ```
/// assert!(keepalive_http::is_idempotent("GET"));
/// assert!(!keepalive_http::is_idempotent("POST"));
/// ```
pub fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
}

/// Why [`send`] failed, and whether the request had been sent twice.
///
/// # Examples
///
/// ```
/// let err = keepalive_http::SendError::Pool { error: keepalive::Error::Cancelled, retried: false };
/// assert!(!err.retried());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// No connection: the allocation failed.
    Pool {
        /// The pool's error.
        error: keepalive::Error,
        /// The request had been tried once already.
        retried: bool,
    },
    /// The exchange on a connection failed.
    Http {
        /// What went wrong.
        error: Error,
        /// The request had been tried once already.
        retried: bool,
    },
    /// The whole request (getting a connection, sending, and reading the
    /// response to its end) took longer than [`send_timeout`]'s limit. A
    /// connection it was using is closed, never pooled mid-response.
    Timeout {
        /// The limit.
        after: std::time::Duration,
    },
}

impl SendError {
    /// The request was sent a second time under the retry rule.
    ///
    /// # Examples
    ///
    /// See [`SendError`].
    pub fn retried(&self) -> bool {
        match self {
            SendError::Pool { retried, .. } | SendError::Http { retried, .. } => *retried,
            SendError::Timeout { .. } => false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let again = if self.retried() { " (after one retry)" } else { "" };
        match self {
            SendError::Pool { .. } => write!(f, "no connection{again}"),
            SendError::Http { .. } => write!(f, "HTTP exchange failed{again}"),
            SendError::Timeout { after } => {
                write!(f, "timed out after {after:?} before the response was complete")
            }
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Pool { error, .. } => Some(error),
            SendError::Http { error, .. } => Some(error),
            SendError::Timeout { .. } => None,
        }
    }
}

/// Sends `request` (a head from [`request`](crate::request), whose method
/// is `method`) to `target` on a connection from `manager`, reads the
/// response (body bytes to `sink`), and gives the connection back with
/// [`settle`].
///
/// A request is sent again, once, on another connection, when its method
/// is idempotent ([`is_idempotent`]: RFC 9110 9.2.2) and it failed on a
/// reused connection before any byte of its response arrived: the
/// server's idle close met it on the way (the pool, seeing that close,
/// learns the server's idle limit from it, so the next requests do not
/// meet it). The request is a head this crate wrote, with no body, so it
/// can always be replayed. Nothing else is retried: not a failure on a
/// fresh connection, not one after the response had begun.
/// [`Outcome::retried`] and [`SendError::retried`] say whether it was.
///
/// # Errors
///
/// [`SendError::Pool`] when no connection could be had,
/// [`SendError::Http`] when the exchange failed (after the retry, if one
/// was allowed).
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// tokio::spawn(async move {
///     let (mut s, _) = listener.accept().await.unwrap();
///     let mut buf = [0; 1024];
///     while let Ok(1..) = s.read(&mut buf).await {
///         s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
///     }
/// });
/// let manager = keepalive::Manager::new();
/// let target = keepalive::Target::new("http", "127.0.0.1", port);
/// let request = keepalive_http::request("GET", &format!("127.0.0.1:{port}"), "/");
/// let outcome = keepalive_http::send(&manager, &target, "GET", &request, &mut Vec::new(), &mut |_| {}).await?;
/// assert_eq!((outcome.status, outcome.retried), (200, false));
/// # Ok(())
/// # }
/// ```
pub async fn send(
    manager: &Manager,
    target: &Target,
    method: &str,
    request: &[u8],
    buf: &mut Vec<u8>,
    sink: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Outcome, SendError> {
    let mut retried = false;
    loop {
        let conn = manager
            .allocate(target.clone())
            .await
            .map_err(|error| SendError::Pool { error, retried })?;
        let reused = conn.from_cache() != FromCache::Fresh;
        let head_request = method == "HEAD";
        let mut guard = Exchanging(Some(conn));
        let result = exchange(guard.conn(), request, head_request, buf, sink).await;
        let conn = guard.done();
        match result {
            Ok(mut outcome) => {
                outcome.retried = retried;
                outcome.from = Some(conn.from_cache());
                settle(conn, &outcome);
                return Ok(outcome);
            }
            // The connection saw the close itself: dropping it tells the
            // pool (an observation of the server's idle limit).
            Err(error) if reused && !retried && error.is_retryable() && is_idempotent(method) => {
                conn.discard();
                retried = true;
            }
            Err(error) => {
                conn.discard();
                return Err(SendError::Http { error, retried });
            }
        }
    }
}

/// A connection in the middle of an exchange: if the exchange is dropped
/// before it ends (a timeout, a cancelled request), the connection is
/// discarded, never pooled with half a response on its way.
struct Exchanging(Option<keepalive::Connection>);

impl Exchanging {
    fn conn(&mut self) -> &mut keepalive::Connection {
        self.0
            .as_mut()
            .expect("a connection is held until the exchange ends")
    }

    /// The exchange ended: the connection is the caller's to settle.
    fn done(mut self) -> keepalive::Connection {
        self.0
            .take()
            .expect("a connection is held until the exchange ends")
    }
}

impl Drop for Exchanging {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.discard();
        }
    }
}

/// [`send`] within `timeout` for the whole request: getting a connection
/// (the pool's own timeout still applies; the earlier wins), sending, and
/// reading the response to its end. A `timeout` too large for the clock
/// means none.
///
/// # Errors
///
/// As [`send`], and [`SendError::Timeout`] when the time ran out; the
/// connection the request was using, if any, is closed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A server that accepts and never answers.
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let manager = keepalive::Manager::new();
/// let target = keepalive::Target::new("http", "127.0.0.1", port);
/// let request = keepalive_http::request("GET", &format!("127.0.0.1:{port}"), "/");
/// let err = keepalive_http::send_timeout(&manager, &target, "GET", &request, &mut Vec::new(), &mut |_| {}, Duration::from_millis(50))
///     .await
///     .unwrap_err();
/// assert!(matches!(err, keepalive_http::SendError::Timeout { .. }));
/// assert_eq!(manager.stats().idle, 0); // never pooled mid-response
/// # drop(listener);
/// # Ok(())
/// # }
/// ```
pub async fn send_timeout(
    manager: &Manager,
    target: &Target,
    method: &str,
    request: &[u8],
    buf: &mut Vec<u8>,
    sink: &mut (dyn FnMut(&[u8]) + Send),
    timeout: std::time::Duration,
) -> Result<Outcome, SendError> {
    let sending = send(manager, target, method, request, buf, sink);
    match tokio::time::Instant::now().checked_add(timeout) {
        Some(deadline) => tokio::time::timeout_at(deadline, sending)
            .await
            .unwrap_or(Err(SendError::Timeout { after: timeout })),
        None => sending.await,
    }
}
