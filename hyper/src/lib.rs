//! hyper's HTTP/1.1 and HTTP/2 client on [`keepalive`]'s pool.
//!
//! hyper does the HTTP; the pool does everything else, with all its
//! guarantees: per-host and total limits with fair queueing, the checkout
//! check (an idle connection whose FIN, RST or stray bytes arrived before
//! the request is never used, even on a current-thread runtime where
//! hyper's own task has not run since), learned server idle limits and
//! `Keep-Alive: timeout=, max=` hints (a request is not sent into the
//! server's idle close), lifetimes, TCP keepalive, TLS, Unix sockets,
//! stats and close reasons. hyper's handshake runs once per connection,
//! not per request: the pooled object is hyper's `SendRequest` with its
//! connection task.
//!
//! HTTP/2 (ALPN on `https`, or
//! [`http2_prior_knowledge`](ClientBuilder::http2_prior_knowledge)) lends
//! one connection to many requests at once, up to its stream limit, and
//! opens more within `max_per_host`; refused streams are sent again; the
//! client is a `tower_service::Service` for tonic's clients.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("http://{}/", listener.local_addr()?);
//! # tokio::spawn(async move {
//! #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! #     while let Ok((mut s, _)) = listener.accept().await {
//! #         tokio::spawn(async move {
//! #             let mut b = [0; 4096];
//! #             while let Ok(1..) = s.read(&mut b).await {
//! #                 let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
//! #             }
//! #         });
//! #     }
//! # });
//! let client = keepalive_hyper::Client::<Empty<Bytes>>::with_builder(
//!     keepalive::Manager::builder().max_per_host(8),
//! );
//! for _ in 0..3 {
//!     let req = http::Request::get(&url).body(Empty::new())?;
//!     let response = client.request(req).await?;
//!     assert_eq!(response.status(), 200);
//!     // Read to its end: the connection goes back to the pool.
//!     response.into_body().collect().await?;
//! }
//! let stats = client.stats();
//! assert_eq!((stats.connects, stats.reuses), (1, 2));
//! # Ok(())
//! # }
//! ```
//!
//! # Retries
//!
//! A request is sent again, once, on another connection, when hyper hands
//! it back unsent (the connection closed before it was written), or when
//! its method is idempotent (RFC 9110 9.2.2: `GET`, `HEAD`, `OPTIONS`,
//! `TRACE`, `PUT`, `DELETE`), it has no body, and it failed on a reused
//! connection before any byte of its response arrived: the server's idle
//! close met it on the way. This is the rule of Go's `Transport`; nothing
//! else is retried. [`Client::retries`] counts them. Such a close is also
//! reported to the pool ([`keepalive::Connection::lost_race`]), which
//! learns the server's idle limit from it: each target loses at most the
//! requests already in flight when it first meets the close.
//!
//! # Layout
//!
//! * `client.rs`: [`Client`] and what builds it, the request path: the
//!   copy for the retry, the whole request's deadline.
//! * `builder.rs`: [`ClientBuilder`], the pool's settings and the
//!   client's own.
//! * `origin.rs`: what a request URI names (the target, `Host`, Basic
//!   authentication from its user information), the origins a client
//!   remembers, the request in origin form, and [`unix_uri`].
//! * `body.rs`: [`Body`], the response body as this crate hands it out.
//! * `attempt.rs`: one exchange on a loaned connection, the return of the
//!   connection when its body is done, and what the pool is told.
//! * `conn.rs`: the protocol step (hyper's handshake and connection task)
//!   and the pooled object, which shares the socket with hyper's task so
//!   that the pool's checks are always on the right socket.
//! * `retry.rs`: the retry rule.
//! * `error.rs`: [`Error`], in plain words.
//! * `lock.rs`: the one way the crate takes a mutex.
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod attempt;
mod body;
mod builder;
mod client;
mod conn;
mod control;
mod error;
mod frames;
mod handshake;
mod live;
mod lock;
mod origin;
mod replay;
mod retry;
mod service;
mod settings;
mod wire;

pub use body::Body;
pub use builder::ClientBuilder;
pub use client::Client;
pub use error::Error;
pub use origin::unix_uri;
