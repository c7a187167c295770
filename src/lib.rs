#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! * `manager`: [`Manager`], the handle, and [`Stats`] / [`Closes`].
//! * `config/`: [`Builder`] and the defaults (`mod.rs`), and the settings
//!   of the pool's own dialing (`dial.rs`).
//! * `target/`: [`Target`], the connection key (`mod.rs`), and reading it
//!   from URLs and hosts (`parse.rs`).
//! * `proxy`: [`Proxy`], a proxy a target is reached through, part of its
//!   key, with its credentials (never shown); `redact`: URLs and texts
//!   with their passwords as `***`.
//! * `loan/`: what a user holds: [`Allocation`] and [`RequestId`]
//!   (`allocation.rs`), [`Connection`] and [`FromCache`], returned on
//!   drop with the server's hints (`connection.rs`), and its byte-stream
//!   side, which notes errors, end of stream and a lost race
//!   (`stream_io.rs`).
//! * `error`: [`Error`].
//! * `fleet/` (feature `fleet`): `Fleet`, one per-host limit for many
//!   processes kept in Redis (`mod.rs`), the member that speaks to Redis
//!   (`member.rs`), its keeper and listener tasks (`tasks.rs`) and its Lua
//!   scripts (`scripts.rs`).
//! * `deadline`: "now + d" for any duration, saturating to "never".
//! * `resolver`: [`Resolve`] and the [`SystemResolver`].
//! * `hickory` (feature `hickory`): `HickoryResolver`.
//! * `trace`: the `tracing` events (feature `tracing`), nothing without it.
//!
//! The connect pipeline, in the order an object is made:
//!
//! * `transport/`: [`Transport`], the extension point for dialing, and
//!   [`Dialer`], the pool's own (`dialer.rs`): Happy Eyeballs
//!   (`happy_eyeballs.rs`) with the TCP options every socket gets
//!   (`tcp.rs`), the proxy step (`tunnel/`: `CONNECT` in `connect.rs`,
//!   SOCKS5 in `socks5.rs`), TLS (`tls.rs`, feature `tls`, on by default)
//!   and Unix sockets; [`Stream`], what it makes (`stream.rs`), and the
//!   kernel's view of an idle socket (`liveness.rs`).
//! * `pooled`: [`Pooled`], what the pool needs of anything it keeps,
//!   [`Protocol`], the step that makes it from a stream, and [`Plain`].
//!
//! The pool itself:
//!
//! * `pool/state/`: every decision as pure data (`sockets.rs`,
//!   `requests.rs`, `server_limit.rs`, `stats.rs`, `fleet.rs` for a fleet
//!   member's part; `inputs.rs`, `ids.rs` and `actions.rs` for the types
//!   at its edge; the idle lists and the lookup cache it keeps), with no
//!   I/O, clock reads or spawning.
//! * `pool/`: the shell that carries the decisions out: the shared state
//!   behind one lock (`mod.rs`), the tasks (`tasks.rs`), and the pooled
//!   object with its idle watch (`idle_watch.rs`).
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod config;
mod deadline;
mod error;
#[cfg(feature = "fleet")]
mod fleet;
#[cfg(feature = "hickory")]
mod hickory;
mod loan;
mod lock;
mod manager;
mod pool;
mod pooled;
mod proxy;
mod redact;
mod resolver;
mod target;
mod trace;
mod transport;

pub use config::{
    Builder, DEFAULT_HAPPY_EYEBALLS_DELAY, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_OPEN, DEFAULT_MAX_PER_HOST,
    DEFAULT_TCP_KEEPALIVE, DEFAULT_TCP_KEEPALIVE_INTERVAL, DEFAULT_TCP_KEEPALIVE_RETRIES,
    DEFAULT_TCP_USER_TIMEOUT, DEFAULT_TIMEOUT,
};
pub use error::Error;
#[cfg(feature = "fleet")]
pub use fleet::{Fleet, DEFAULT_FLEET_LEASE};
#[cfg(feature = "hickory")]
pub use hickory::HickoryResolver;
/// The hickory-resolver crate, re-exported so that users of
/// [`HickoryResolver::from_resolver`] match its version.
#[cfg(feature = "hickory")]
pub use hickory_resolver;
pub use loan::{Allocation, Connection, FromCache, RequestId};
pub use manager::{Closes, Manager, Stats};
pub use pooled::{Health, Plain, Pooled, Protocol};
pub use proxy::Proxy;
pub use resolver::{Resolve, ResolveFuture, SystemResolver};
/// The rustls crate, re-exported so that a configuration given to
/// [`Builder::tls_config`] matches the version keepalive uses.
#[cfg(feature = "tls")]
pub use rustls;
pub use target::Target;
pub use transport::{Dial, Dialer, Stream, Transport};
