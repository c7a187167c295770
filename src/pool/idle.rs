//! A pooled socket and its "still usable?" checks, and the wake-ups that
//! report an idle socket's events to the background task without a task or
//! thread per socket.
//!
//! When a socket goes idle, the pool polls it once for readability with a
//! waker of its own (built once per socket). Tokio's reactor keeps that
//! waker; if the peer closes, resets or writes while the socket is idle, the
//! waker puts the socket's token on [`Signal`]'s list and wakes the
//! background task, which checks the socket and drops it.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::ReadBuf;
use tokio::sync::Notify;

use super::state::{Health, Poolable};
use crate::stream::Stream;

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
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(PoisonError::into_inner))
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
            self.signal
                .ready
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.token);
            self.signal.notify.notify_one();
        }
    }
}

/// A connected socket as the pool holds it.
#[derive(Debug)]
pub(crate) struct PooledSocket {
    pub(crate) stream: Stream,
    signal: Arc<Signal>,
    /// Built the first time the socket goes idle, then reused.
    watcher: Option<(Arc<SocketWake>, Waker)>,
}

impl PooledSocket {
    pub(crate) fn new(stream: Stream, signal: Arc<Signal>) -> PooledSocket {
        PooledSocket {
            stream,
            signal,
            watcher: None,
        }
    }

    /// Closes with SO_LINGER 0 when `reset`, so that unread data does not
    /// leave the socket lingering in the kernel; otherwise a normal close.
    pub(crate) fn close(self, reset: bool) {
        if reset {
            // Failing to set the option only means a normal close.
            let _ = SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO));
        }
    }

    fn waker(&mut self, token: u64) -> &Arc<SocketWake> {
        if self.watcher.as_ref().is_none_or(|(w, _)| w.token != token) {
            let wake = Arc::new(SocketWake {
                token,
                idle: AtomicBool::new(false),
                signal: self.signal.clone(),
            });
            self.watcher = Some((wake.clone(), Waker::from(wake)));
        }
        &self.watcher.as_ref().expect("set just above").0
    }
}

impl Poolable for PooledSocket {
    fn check(&mut self) -> Health {
        if let Some((wake, _)) = &self.watcher {
            wake.idle.store(false, Ordering::Release);
        }
        let mut byte = [MaybeUninit::<u8>::uninit()];
        match SockRef::from(self.stream.tcp()).peek(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Health::Usable,
            Ok(0) | Err(_) => Health::Closed,
            Ok(_) => Health::Unread,
        }
    }

    fn watch(&mut self, token: u64) -> Health {
        self.waker(token).idle.store(true, Ordering::Release);
        let (_, waker) = self.watcher.as_ref().expect("made by waker()");
        let tcp = self.stream.tcp();
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        // Unconstrained: Tokio's cooperative budget must not turn this one
        // poll into a spurious Pending (and a spurious wake) in a busy task.
        let mut peek = tokio::task::unconstrained(std::future::poll_fn(|cx| tcp.poll_peek(cx, &mut buf)));
        match Pin::new(&mut peek).poll(&mut Context::from_waker(waker)) {
            Poll::Pending => Health::Usable,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Health::Closed,
            Poll::Ready(Ok(_)) => Health::Unread,
        }
    }
}
