#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! * `manager`: [`Manager`], the handle, and [`Stats`] / [`Closes`].
//! * `config`: [`Builder`] and the defaults.
//! * `target`: [`Target`], the connection key.
//! * `allocation`: [`Allocation`] and [`RequestId`].
//! * `connection`: [`Connection`] and [`FromCache`]; return on drop, with
//!   the server's hints.
//! * `error`: [`Error`].
//! * `deadline`: "now + d" for any duration, saturating to "never".
//! * `resolver`: [`Resolve`] and the [`SystemResolver`].
//! * `hickory` (feature `hickory`): `HickoryResolver`.
//! * `stream`: the byte stream under a connection, TCP or TLS.
//! * `tls` (feature `tls`, on by default): the rustls handshake and the
//!   default configuration.
//! * `trace`: the `tracing` events (feature `tracing`), nothing without it.
//! * `pool`: the shared state behind one lock (`pool/mod.rs`); every
//!   decision as pure data in `pool/state/` (`sockets.rs`, `requests.rs`,
//!   `learning.rs`, `stats.rs`, and `boundary.rs` for the types at its
//!   edge); the idle lists (`pool/lists.rs`); the tasks that carry
//!   decisions out (`pool/tasks.rs`); the pooled socket and its liveness
//!   checks (`pool/socket.rs`); connects (`pool/happy_eyeballs.rs`) and
//!   the TCP options every socket gets (`pool/tcp.rs`).
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
