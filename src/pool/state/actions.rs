//! What `State` decides: the actions its caller carries out once the lock
//! is dropped, and how a delivered loan was obtained.

use std::sync::Arc;
use std::time::Duration;

use super::ids::{LookupId, RequestId, SocketId};
use super::inputs::{Addrs, Handles};
use super::stats::CloseReason;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::target::Target;

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
    /// A warm connect is done: its connection is in the pool (or went to
    /// a waiter), or it found no room, or it was stopped. The caller drops
    /// the responder, which is how the one waiting for it hears.
    Warmed(P::Responder),
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
