#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

// The layout (ARCHITECTURE.md has the whole map): `manager` is the handle
// and what builds it; `config/` the builder and defaults; `loan/` what a
// user holds (Allocation, Connection); `pool/` the one lock and the tasks
// that carry out the decisions of `pool/state/`, which is pure data;
// `pooled` what the pool needs of an object; `transport/` how a stream is
// made; `target/`, `proxy` and `redact` the keys; `fleet/` the Redis-kept
// limit; `error`, `resolver`, `hickory`, `deadline`, `lock` and `trace`
// the leaves.

mod config;
mod deadline;
mod drain;
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
mod warm;

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
#[cfg(feature = "metrics")]
/// The metrics crate, re-exported so that a recorder installed for the
/// pool's metrics (feature `metrics`) matches the version keepalive uses.
pub use metrics;
pub use pooled::{Health, Plain, Pooled, Protocol};
pub use proxy::Proxy;
pub use redact::redact_url;
pub use resolver::{Resolve, ResolveFuture, SystemResolver};
/// The rustls crate, re-exported so that a configuration given to
/// [`Builder::tls_config`] matches the version keepalive uses.
#[cfg(keepalive_tls)]
pub use rustls;
pub use target::Target;
pub use transport::{Dial, Dialer, Stream, Transport};

// The topic documents under docs/ are not part of the rendered crate docs,
// but their examples are compiled and run as doctests, like the README's.
#[cfg(doctest)]
#[doc = include_str!("../docs/extending.md")]
mod extending_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/proxies.md")]
mod proxies_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/http2.md")]
mod http2_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/operating.md")]
mod operating_md {}
#[cfg(all(doctest, feature = "fleet"))]
#[doc = include_str!("../docs/fleet.md")]
mod fleet_md {}
