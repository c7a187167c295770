//! The types at `State`'s boundary: what it needs of sockets, the ids it
//! hands out, and the decisions it asks its caller to carry out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::stats::CloseReason;
use crate::deadline::Deadline;
use crate::error::Error;
pub(crate) use crate::object::Health;
use crate::target::Target;

/// Identifies one request, for [`Manager::deallocate`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = keepalive::Manager::new();
/// let a = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 9));
/// let b = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 9));
/// assert_ne!(a.id(), b.id());
/// # }
/// ```
///
/// [`Manager::deallocate`]: crate::Manager::deallocate
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// Slot number of requests the pool never stored.
pub(crate) const NO_SLOT: usize = u32::MAX as usize;

impl RequestId {
    /// The id of a request that failed before the pool saw it.
    pub(crate) const NONE: RequestId = RequestId(NO_SLOT as u64);

    /// The id for the pool's request slot `slot`: the slot in the low half,
    /// a generation in the high half, so that an id is not confused with a
    /// later request in the same slot.
    pub(crate) fn new(slot: usize, generation: u32) -> RequestId {
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        RequestId((u64::from(generation) << 32) | u64::from(slot))
    }

    pub(crate) fn slot(self) -> usize {
        self.0 as u32 as usize
    }

    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    pub(crate) fn from_raw(raw: u64) -> RequestId {
        RequestId(raw)
    }
}

/// How an allocation got its socket.
///
/// # Examples
///
/// ```
/// use keepalive::FromCache;
/// assert_ne!(FromCache::Fresh, FromCache::Immediate);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromCache {
    /// Newly connected for this request.
    Fresh,
    /// An idle pooled socket was ready when `allocate` was called.
    Immediate,
    /// The request waited, then got a socket another user returned.
    Deferred,
}

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
    /// The [`Error::function`](crate::Error::function) of a timeout now:
    /// `"connect"`, or `"proxy"` while a tunnel is being opened.
    fn during(&self) -> &'static str {
        "connect"
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

/// A socket's place in the pool: its slab index and a generation, so that
/// a stale readiness report for a reused index is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl SocketId {
    /// The value a socket's readiness report carries.
    pub(crate) fn token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub(super) fn from_token(token: u64) -> SocketId {
        SocketId {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

/// A name lookup's place in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LookupId {
    pub(super) index: usize,
    pub(super) generation: u32,
}

/// Who a spawned task belongs to, for [`State::attach`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum TaskOwner {
    Connect(RequestId),
    Lookup(LookupId),
}

/// A decision for the caller to carry out once the lock is dropped.
pub(crate) enum Action<P: Handles> {
    /// Hand `socket` to the request behind `responder`.
    Deliver {
        responder: P::Responder,
        socket: P::Socket,
        id: SocketId,
        target: Target,
        from: FromCache,
    },
    /// Complete a request with an error.
    Fail { responder: P::Responder, error: Error },
    /// Start connecting for `request`; report with `connected` or
    /// `connect_failed`, and `attach` the task.
    Connect {
        request: RequestId,
        target: Target,
        addrs: Addrs,
        /// The request's deadline, which the transport may want to know.
        deadline: Deadline,
    },
    /// Start looking `host` up; report with `resolved`, and `attach` the task.
    Resolve {
        lookup: LookupId,
        host: Arc<str>,
        port: u16,
    },
    /// Close a socket of `target` (`None` for one the pool no longer
    /// accounts for); `reset` closes it with SO_LINGER 0.
    Close {
        socket: P::Socket,
        reset: bool,
        reason: CloseReason,
        target: Option<Target>,
    },
    /// Nothing to do but tell: `target`'s server idle limit is now taken
    /// to be `limit` (for the `tracing` feature's event).
    Learned { target: Target, limit: Duration },
    /// Abort a task whose work nobody wants any more.
    Abort(P::Task),
}

impl<P: Handles> Action<P> {
    /// Closes a socket the pool no longer accounts for (its entry is gone:
    /// a report that raced with its removal).
    pub(super) fn untracked_close(socket: P::Socket, reason: CloseReason) -> Action<P> {
        Action::Close {
            socket,
            reset: false,
            reason,
            target: None,
        }
    }
}

/// The decisions of one call, plus whether the background task must wake
/// earlier than it planned.
pub(crate) struct Actions<P: Handles> {
    pub(crate) list: Vec<Action<P>>,
    pub(crate) rearm: bool,
}

impl<P: Handles> Actions<P> {
    /// No decisions yet; allocates nothing until one is pushed.
    pub(crate) fn new() -> Actions<P> {
        Actions {
            list: Vec::new(),
            rearm: false,
        }
    }

    pub(super) fn push(&mut self, action: Action<P>) {
        self.list.push(action);
    }
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
}
