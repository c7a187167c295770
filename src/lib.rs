//! Client connections with keep-alive: ask for a connection to (scheme,
//! host, port) and get a pooled idle socket at once if one is alive, or a
//! new one within per-host and total limits.
//!
//! `keepalive` is the Rust successor of the Perl module
//! POE::Component::Client::Keepalive, on Tokio.
//!
//! ```
//! use keepalive::{FromCache, Manager, Target};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A loopback echo server to talk to.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let port = listener.local_addr()?.port();
//! tokio::spawn(async move {
//!     while let Ok((mut socket, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let mut buf = [0; 64];
//!             while let Ok(n @ 1..) = socket.read(&mut buf).await {
//!                 let _ = socket.write_all(&buf[..n]).await;
//!             }
//!         });
//!     }
//! });
//!
//! let manager = Manager::builder().max_per_host(2).build();
//! let target = Target::new("tcp", "127.0.0.1", port);
//!
//! // The first allocation connects.
//! let mut conn = manager.allocate(target.clone()).await?;
//! assert_eq!(conn.from_cache(), FromCache::Fresh);
//! conn.write_all(b"hello").await?;
//! let mut echo = [0; 5];
//! conn.read_exact(&mut echo).await?;
//! drop(conn); // a clean exchange: the socket goes back to the pool
//!
//! // The next one for an equal target reuses it, with no lookup or task.
//! let conn = manager.allocate(target).await?;
//! assert_eq!(conn.from_cache(), FromCache::Immediate);
//! assert_eq!(manager.stats().connects, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # What the pool promises
//!
//! * Limits hold under any load: `max_per_host` sockets per connection key
//!   and `max_open` in all, counting idle, in-use and connecting sockets.
//!   When `max_open` is reached and another key waits, the least recently
//!   used idle socket is closed to make room.
//! * Waiters for one key are served first come, first served.
//! * An idle socket the server closed, reset or wrote to is never handed
//!   out: the check at checkout asks the kernel, and idle sockets are
//!   watched so they are dropped as soon as such an event arrives.
//! * Dropping an [`Allocation`] or calling [`Manager::deallocate`] frees
//!   what the request held at once; nothing outlives its use.
//!
//! # Layout
//!
//! * `manager`: [`Manager`], the handle, and [`Stats`].
//! * `config`: [`Builder`] and the defaults.
//! * `target`: [`Target`], the connection key.
//! * `allocation`: [`Allocation`] and [`RequestId`].
//! * `connection`: [`Connection`] and [`FromCache`]; return on drop.
//! * `error`: [`Error`].
//! * `resolver`: [`Resolve`] and the [`SystemResolver`].
//! * `hickory` (feature `hickory`): `HickoryResolver`, DNS from a chosen
//!   name server with TTL-honouring caching.
//! * `stream`: the byte stream under a connection, TCP or TLS.
//! * `tls` (feature `tls`, on by default): the rustls handshake and the
//!   default configuration.
//! * `pool`: the shared state behind one lock (`pool/mod.rs`); every
//!   decision as pure data (`pool/state.rs`, with `state/sockets.rs` and
//!   `state/requests.rs`), and the types at its boundary
//!   (`pool/plumbing.rs`); the idle lists (`pool/lists.rs`); the tasks that
//!   carry decisions out (`pool/tasks.rs`); the idle liveness checks
//!   (`pool/idle.rs`).
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod allocation;
mod config;
mod connection;
mod deadline;
mod error;
#[cfg(feature = "hickory")]
mod hickory;
mod manager;
mod pool;
mod resolver;
mod stream;
mod target;
#[cfg(feature = "tls")]
mod tls;
mod trace;

pub use allocation::{Allocation, RequestId};
pub use config::{
    Builder, DEFAULT_HAPPY_EYEBALLS_DELAY, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_OPEN, DEFAULT_MAX_PER_HOST,
    DEFAULT_TCP_KEEPALIVE, DEFAULT_TCP_KEEPALIVE_INTERVAL, DEFAULT_TCP_KEEPALIVE_RETRIES,
    DEFAULT_TCP_USER_TIMEOUT, DEFAULT_TIMEOUT,
};
pub use connection::{Connection, FromCache};
pub use error::Error;
#[cfg(feature = "hickory")]
pub use hickory::HickoryResolver;
/// The hickory-resolver crate, re-exported so that users of
/// [`HickoryResolver::from_resolver`] match its version.
#[cfg(feature = "hickory")]
pub use hickory_resolver;
pub use manager::{Closes, Manager, Stats};
pub use resolver::{Resolve, ResolveFuture, SystemResolver};
/// The rustls crate, re-exported so that a configuration given to
/// [`Builder::tls_config`] matches the version keepalive uses.
#[cfg(feature = "tls")]
pub use rustls;
pub use target::Target;
