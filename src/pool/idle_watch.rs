//! A pooled object as the pool holds it, and the wake-ups that report an
//! idle object's events to the background task without a task or thread
//! per object.
//!
//! When an object goes idle, the pool calls its [`Pooled::watch`] with a
//! waker of its own (built once per object). For a socket, Tokio's reactor
//! keeps that waker; if the peer closes, resets or writes while the socket
//! is idle, the waker puts the object's token on [`Signal`]'s list and
//! wakes the background task, which checks the object and drops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use tokio::sync::Notify;

use super::state::{Health, Poolable};
use crate::lock::lock;
use crate::pooled::Pooled;

/// How idle sockets and the rest of the pool reach the background task.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Tokens of idle sockets that became readable.
    ready: Mutex<Vec<u64>>,
    /// Wakes the background task: a socket event, an earlier deadline, or
    /// the manager going away.
    pub(crate) notify: Notify,
    /// Set when the manager's shared state is dropped.
    closed: AtomicBool,
}

impl Signal {
    /// Takes the reported tokens.
    pub(crate) fn take_ready(&self) -> Vec<u64> {
        std::mem::take(&mut *lock(&self.ready))
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The waker of one socket.
#[derive(Debug)]
struct SocketWake {
    token: u64,
    /// True while the socket is in the pool; events after a checkout are
    /// the user's business and are not reported.
    idle: AtomicBool,
    signal: Arc<Signal>,
}

impl Wake for SocketWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.idle.load(Ordering::Acquire) {
            lock(&self.signal.ready).push(self.token);
            self.signal.notify.notify_one();
        }
    }
}

/// What outlives a closed object until the pool forgets its socket: the
/// fleet's slot, given back when this drops.
#[must_use = "dropped at once, it gives the fleet's slot back before the socket closes"]
pub(crate) struct Leftover {
    #[cfg(feature = "fleet")]
    _slot: Option<crate::fleet::Slot>,
}

/// A pooled object as the pool holds it, with the waker its idle watch
/// reports through.
#[derive(Debug)]
pub(crate) struct Watched<T> {
    pub(crate) object: T,
    /// Where its idle events go; `None` for a loan's handle of a shared
    /// object, which is never watched (the object the pool keeps is). An
    /// `Option` of an `Arc` is no larger than the `Arc`: the flag costs
    /// the hot path's moves nothing (a `bool` beside it did, measured).
    signal: Option<Arc<Signal>>,
    /// Built the first time the object goes idle, then reused.
    watcher: Option<(Arc<SocketWake>, Waker)>,
    /// The fleet's slot for this connection, given back when it drops:
    /// the last field, so after the object (the socket) is closed.
    #[cfg(feature = "fleet")]
    fleet: Option<crate::fleet::Slot>,
}

impl<T: Pooled> Watched<T> {
    pub(crate) fn new(object: T, signal: Arc<Signal>) -> Watched<T> {
        Watched {
            object,
            signal: Some(signal),
            watcher: None,
            #[cfg(feature = "fleet")]
            fleet: None,
        }
    }

    /// Stops reporting idle events: the object is on loan.
    fn not_idle(&self) {
        if let Some((wake, _)) = &self.watcher {
            wake.idle.store(false, Ordering::Release);
        }
    }

    /// The same, holding `slot` of the fleet until it drops.
    #[cfg(feature = "fleet")]
    pub(crate) fn with_slot(mut self, slot: Option<crate::fleet::Slot>) -> Watched<T> {
        self.fleet = slot;
        self
    }

    /// Drops the object; when `reset`, after [`Pooled::abort`], so that
    /// unread data does not leave a socket lingering in the kernel.
    pub(crate) fn close(mut self, reset: bool) {
        if reset {
            self.object.abort();
        }
    }

    /// Drops the object of a loan whose socket the pool still records,
    /// and returns the fleet's slot, for the caller to drop once the pool
    /// has forgotten the socket: the pool may keep a second descriptor of
    /// it until then (for `drain`), so the socket is closed only then, and
    /// the slot must not go back to the fleet before.
    pub(crate) fn close_before_forgotten(self) -> Leftover {
        #[cfg(feature = "fleet")]
        {
            let Watched { object, fleet, .. } = self;
            drop(object);
            Leftover { _slot: fleet }
        }
        #[cfg(not(feature = "fleet"))]
        {
            drop(self);
            Leftover {}
        }
    }
}

/// The watcher of token `token`, built (reporting to `signal`) the first
/// time, or when the object's token changed.
fn watcher<'a>(
    slot: &'a mut Option<(Arc<SocketWake>, Waker)>,
    token: u64,
    signal: &Arc<Signal>,
) -> &'a (Arc<SocketWake>, Waker) {
    if slot.as_ref().is_none_or(|(w, _)| w.token != token) {
        let wake = Arc::new(SocketWake {
            token,
            idle: AtomicBool::new(false),
            signal: signal.clone(),
        });
        *slot = Some((wake.clone(), Waker::from(wake)));
    }
    slot.as_ref().expect("set just above")
}

impl<T: Pooled> Poolable for Watched<T> {
    fn check(&mut self) -> Health {
        self.not_idle();
        self.object.check()
    }

    fn watch(&mut self, token: u64) -> Health {
        let Some(signal) = &self.signal else {
            return self.object.check();
        };
        let (wake, waker) = watcher(&mut self.watcher, token, signal);
        wake.idle.store(true, Ordering::Release);
        self.object.watch(&mut Context::from_waker(waker))
    }

    fn share(&mut self) -> Option<Self> {
        let object = self.object.share()?;
        self.not_idle();
        Some(Watched {
            object,
            signal: None,
            watcher: None,
            #[cfg(feature = "fleet")]
            fleet: None,
        })
    }

    fn capacity(&self) -> usize {
        self.object.capacity()
    }

    fn is_share(&self) -> bool {
        self.signal.is_none()
    }
}
