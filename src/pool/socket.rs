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
    /// leave the socket lingering in the kernel; otherwise a normal close
    /// (for TLS, without a close_notify: the socket may be broken, and the
    /// close must not wait for it).
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

/// How many times one check reads pending TLS records, or re-polls after
/// draining them, before it gives up and calls the socket unusable.
const MAX_ROUNDS: usize = 16;

impl Poolable for PooledSocket {
    fn check(&mut self) -> Health {
        if let Some((wake, _)) = &self.watcher {
            wake.idle.store(false, Ordering::Release);
        }
        match &mut self.stream {
            Stream::Tcp(tcp) => peek_now(tcp),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => drain_tls(tls),
        }
    }

    // Only TLS sockets go round the loop (to drain records and look again).
    #[cfg_attr(not(feature = "tls"), allow(clippy::never_loop))]
    fn watch(&mut self, token: u64) -> Health {
        self.waker(token).idle.store(true, Ordering::Release);
        // What rustls already holds needs no system call.
        #[cfg(feature = "tls")]
        if let Stream::Tls(tls) = &mut self.stream {
            if let Some(health) = tls_verdict(tls.get_mut().1) {
                return health;
            }
        }
        for _ in 0..MAX_ROUNDS {
            let (_, waker) = self.watcher.as_ref().expect("made by waker()");
            match (poll_peek_once(self.stream.tcp(), waker), &mut self.stream) {
                (Poll::Pending, _) => return Health::Usable,
                (Poll::Ready(Ok(0)), _) => return Health::Closed,
                (Poll::Ready(Err(e)), _) => return failed(&e),
                // Bytes on a TLS socket may be records that carry no data
                // (session tickets): drain them and look again.
                #[cfg(feature = "tls")]
                (Poll::Ready(Ok(_)), Stream::Tls(tls)) => match drain_tls(tls) {
                    Health::Usable => {}
                    health => return health,
                },
                (Poll::Ready(Ok(_)), _) => return Health::Unread,
            }
        }
        Health::Unread
    }
}

/// What the kernel knows of a TCP socket right now: a non-blocking
/// `MSG_PEEK`, which does not wait for the runtime to have noticed a FIN or
/// a reset.
fn peek_now(tcp: &tokio::net::TcpStream) -> Health {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    match SockRef::from(tcp).peek(&mut byte) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Health::Usable,
        Err(e) => failed(&e),
        Ok(0) => Health::Closed,
        Ok(_) => Health::Unread,
    }
}

/// A socket error's meaning: `ETIMEDOUT` is the kernel giving up on a peer
/// that stopped answering (keepalive probes or the user timeout); anything
/// else (a reset, say) is the peer's close.
fn failed(e: &io::Error) -> Health {
    if e.raw_os_error() == Some(libc::ETIMEDOUT) {
        Health::DeadPeer
    } else {
        Health::Closed
    }
}

/// Polls for readability once with `waker`, which Tokio keeps and wakes
/// when the socket becomes readable.
fn poll_peek_once(tcp: &tokio::net::TcpStream, waker: &Waker) -> Poll<io::Result<usize>> {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    // Unconstrained: Tokio's cooperative budget must not turn this one
    // poll into a spurious Pending (and a spurious wake) in a busy task.
    let mut peek = tokio::task::unconstrained(std::future::poll_fn(|cx| tcp.poll_peek(cx, &mut buf)));
    Pin::new(&mut peek).poll(&mut Context::from_waker(waker))
}

/// What the TLS records rustls has received say: unread application data,
/// a close, an error, or (`None`) nothing that rules reuse out.
#[cfg(feature = "tls")]
fn tls_verdict(conn: &mut rustls::ClientConnection) -> Option<Health> {
    match conn.process_new_packets() {
        Err(_) => Some(Health::Closed),
        Ok(state) if state.plaintext_bytes_to_read() > 0 => Some(Health::Unread),
        Ok(state) if state.peer_has_closed() => Some(Health::Closed),
        Ok(_) => None,
    }
}

/// Reads the TLS records the kernel holds (without waiting for the
/// runtime) and lets rustls process them: a TLS socket is usable when that
/// yields no application data and no close. Session tickets and other
/// handshake messages are consumed, so they do not count as unread data.
#[cfg(feature = "tls")]
fn drain_tls(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Health {
    let (tcp, conn) = tls.get_mut();
    if let Some(health) = tls_verdict(conn) {
        return health;
    }
    for _ in 0..MAX_ROUNDS {
        let socket = SockRef::from(&*tcp);
        match conn.read_tls(&mut &*socket) {
            Ok(0) => return Health::Closed,
            Ok(_) => {
                if let Some(health) = tls_verdict(conn) {
                    return health;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Health::Usable,
            Err(e) => return failed(&e),
        }
    }
    Health::Unread
}
