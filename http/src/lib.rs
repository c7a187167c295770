//! A small, strict HTTP/1.1 exchange for connections from a
//! [`keepalive::Manager`]: the request head out, the response head parsed
//! by httparse, the body framed by Content-Length or chunked encoding (or
//! read to end of stream), the server's `Keep-Alive` hints, and the verdict
//! on whether the connection may go back to the pool.
//!
//! It is the HTTP layer of the `keepalive` command, its tests, its
//! comparison harness and its fuzz targets, and it is meant for programs
//! that write their own HTTP/1.1 client on `keepalive`: one request at a
//! time per connection, no HTTP/2, no request bodies beyond what you write
//! yourself.
//!
//! ```
//! use keepalive::{Manager, Target};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A loopback server that answers every request on a connection.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let port = listener.local_addr()?.port();
//! tokio::spawn(async move {
//!     while let Ok((mut socket, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let mut buf = [0; 1024];
//!             while let Ok(1..) = socket.read(&mut buf).await {
//!                 let reply = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=99\r\nContent-Length: 2\r\n\r\nok";
//!                 let _ = socket.write_all(reply).await;
//!             }
//!         });
//!     }
//! });
//!
//! let manager = Manager::new();
//! let target = Target::new("http", "127.0.0.1", port);
//! let request = keepalive_http::request("GET", &format!("127.0.0.1:{port}"), "/");
//! let mut buf = Vec::new();
//! for _ in 0..3 {
//!     let mut conn = manager.allocate(target.clone()).await?;
//!     let mut body = Vec::new();
//!     let outcome = keepalive_http::exchange(&mut conn, &request, false, &mut buf, &mut |b| {
//!         body.extend_from_slice(b)
//!     })
//!     .await?;
//!     assert_eq!((outcome.status, body.as_slice()), (200, &b"ok"[..]));
//!     // Back to the pool with the server's hints, or closed if unfit.
//!     keepalive_http::settle(conn, &outcome);
//! }
//! let stats = manager.stats_for(&target);
//! assert_eq!(stats.connects, 1);
//! // The server's `Keep-Alive: timeout=5` taught the pool its idle limit.
//! assert_eq!(stats.server_idle_timeout, Some(std::time::Duration::from_secs(5)));
//! # Ok(())
//! # }
//! ```
//!
//! # Retries
//!
//! [`send`] is the exchange through the pool with Go's retry rule: a
//! request with an idempotent method (RFC 9110 9.2.2) that failed on a
//! reused connection before any byte of its response (the server's idle
//! close met it on the way) is sent again once, on another connection;
//! nothing else is retried, and [`Outcome::retried`] tells. The pool
//! learns the server's idle limit from that close, so each key loses at
//! most the requests already in flight when it first meets it.
//!
//! # Layout
//!
//! * `head`: [`parse_head`], [`Head`], [`Framing`], [`KeepAlive`] hints.
//! * `body`: [`Body`], the sans-IO body decoder.
//! * `exchange`: [`exchange`] over any `AsyncRead + AsyncWrite`,
//!   [`Outcome`], [`request`], and [`settle`] for pooled connections.
//! * `send`: [`send`], one request through the pool with the retry rule
//!   (a request that met the server's idle close on a reused connection is
//!   sent again once, if idempotent).
//! * `error`: [`Error`].
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod body;
mod credentials;
mod error;
mod exchange;
mod head;
mod send;

pub use body::Body;
pub use credentials::{basic_authorization, split_userinfo};
pub use error::Error;
pub use exchange::{authorized_request, exchange, forward_request, request, Outcome};
pub use head::{parse_head, Framing, Head, KeepAlive, MAX_HEAD};
pub use send::{is_idempotent, send, send_timeout, SendError};

/// Ends an exchange on a pooled connection: a reusable one goes back to
/// the pool, carrying the server's hints (`Keep-Alive: timeout=` and
/// `max=`) to it; one the server closes is closed as the server's doing
/// ([`Connection::server_said_close`](keepalive::Connection::server_said_close));
/// any other is discarded.
///
/// # Examples
///
/// See the crate's front page.
pub fn settle(mut conn: keepalive::Connection, outcome: &Outcome) {
    if outcome.server_closes {
        conn.server_said_close();
        return;
    }
    if !outcome.reusable {
        conn.discard();
        return;
    }
    if let Some(timeout) = outcome.hints.timeout {
        conn.set_server_idle_timeout(timeout);
    }
    if let Some(max) = outcome.hints.max {
        conn.set_remaining_uses(max);
    }
}

#[cfg(test)]
mod tests;
