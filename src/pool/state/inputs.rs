//! What `State` is given: its limits, the types of the handles it holds
//! (sockets, responders, tasks) and what it needs of them, new requests,
//! and what a loan learned of its socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline::Deadline;
pub(crate) use crate::pooled::Health;

/// The concrete types `State` works with.
pub(crate) trait Handles {
    /// A connected socket.
    type Socket: Poolable;
    /// The sending half that completes one request.
    type Responder;
    /// A handle to an in-flight lookup or connect task, to abort it.
    type Task: Staged;
}

/// What an in-flight task can say about where it is, for a timeout's
/// error.
pub(crate) trait Staged {
    /// Whether a tunnel is being opened now: a timeout is then the proxy
    /// step's ([`Error::function`](crate::Error::function) `"proxy"`).
    fn in_proxy(&self) -> bool {
        false
    }
}

/// What the pool needs to know about a socket.
pub(crate) trait Poolable {
    /// What the kernel knows right now, without waiting for the runtime to
    /// notice: used whenever a socket is handed out.
    fn check(&mut self) -> Health;
    /// Like `check`, and arranges for `token` to reach
    /// [`State::idle_event`] when the socket becomes readable while idle.
    fn watch(&mut self, token: u64) -> Health;
    /// A handle for one more loan of a shared object, which stops
    /// reporting idle events: `None` for an object lent whole.
    fn share(&mut self) -> Option<Self>
    where
        Self: Sized;
    /// How many loans a shared object may serve at once now.
    fn capacity(&self) -> usize;
    /// Whether this is a handle of a shared object (its loan's end is
    /// [`State::end_share`]), not the object itself.
    fn is_share(&self) -> bool;
}

/// What a `Connection` learned about its socket while on loan, handed
/// back with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    /// `Connection::set_remaining_uses`: hand it out at most this many more
    /// times.
    pub(crate) remaining_uses: Option<u32>,
    /// `Connection::set_server_idle_timeout`: the server closes it after
    /// this long idle.
    pub(crate) server_idle_timeout: Option<Duration>,
}

/// The addresses a request connects to, in order of preference.
pub(crate) type Addrs = Arc<[SocketAddr]>;

/// The pool's limits, from the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_per_host: usize,
    pub(crate) max_open: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) max_queued: usize,
    /// How long positive lookup answers are kept; `None`: not at all.
    pub(crate) dns_ttl: Option<Duration>,
    /// A socket older than this (from its connect) is not handed out again.
    pub(crate) max_lifetime: Option<Duration>,
    /// Learn each key's server idle limit from the closes it makes.
    pub(crate) learn_idle_timeouts: bool,
}

/// A new request, as `allocate` hands it over.
pub(crate) struct NewRequest<P: Handles> {
    pub(crate) responder: P::Responder,
    /// When `allocate` was called.
    pub(crate) now: Instant,
    pub(crate) deadline: Deadline,
    pub(crate) timeout: Duration,
    /// `None` when the host is a name that must be looked up first.
    pub(crate) addrs: Option<Addrs>,
    /// How many loans a connection of this key is expected to serve at
    /// once, until one has connected (`Protocol::expected_capacity`).
    pub(crate) expect: usize,
}
