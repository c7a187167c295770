//! The pooled object: what the pool needs of anything it keeps
//! ([`Pooled`]), and the protocol step that makes one from a stream
//! ([`Protocol`], with [`Plain`], the stream itself, as the default).
//!
//! # Which anchors these follow
//!
//! * [`Pooled`] is bb8's `ManageConnection::{is_valid, has_broken}` and
//!   deadpool's `Manager::recycle`, split by *when* the pool asks: a
//!   synchronous [`check`](Pooled::check) at checkout (like hyper's
//!   `SendRequest::is_closed`, it must not wait), a
//!   [`watch`](Pooled::watch) while idle that registers a waker instead of
//!   being polled on a timer (deadpool #191 shows what a pool without
//!   background detection costs), and a [`recycle`](Pooled::recycle) on
//!   return that may refuse the object.
//! * [`Protocol`] is the shape of tower's `Service<Stream>` reduced to
//!   one `async fn`, as tokio-postgres's `connect_raw` takes any stream: it
//!   runs on a stream the pool dialed, so shared lookups, Happy Eyeballs,
//!   TLS and TCP options still apply. Its default, [`Plain`], makes the
//!   stream itself the pooled object: the path `Manager::new()` takes,
//!   monomorphised and unboxed.

use std::future::Future;
use std::task::Context;

use crate::target::Target;

/// The state of a pooled object that is not in use.
///
/// # Examples
///
/// ```
/// use keepalive::Health;
/// assert_ne!(Health::Usable, Health::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Open, nothing to read: may be handed out.
    Usable,
    /// The peer closed or reset it, or it has a pending error. A close
    /// seen while idle teaches the pool its server's idle limit.
    Closed,
    /// The kernel gave up on the peer (`ETIMEDOUT`): TCP keepalive probes
    /// or the user timeout ran out.
    DeadPeer,
    /// Bytes nobody asked for are waiting: the pool closes it (for a
    /// socket, with a reset).
    Unread,
    /// The server said it takes no new requests on it (an HTTP/2 GOAWAY),
    /// while the ones it has may finish: the pool lends it no more and
    /// closes it when its last loan ends, counted as
    /// [`Closes::goaway`](crate::Closes::goaway).
    GoingAway,
}

impl Health {
    /// Whether an I/O error means the peer closed the connection: a reset,
    /// an abort or a broken pipe. The one rule for "the server closed"
    /// that the pool, keepalive-http and keepalive-hyper share; a close
    /// seen this way on a loan before any answer is the race with the
    /// server's idle close, lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use keepalive::Health;
    /// assert!(Health::is_closed_by_peer(&Error::from(ErrorKind::ConnectionReset)));
    /// assert!(!Health::is_closed_by_peer(&Error::from(ErrorKind::TimedOut)));
    /// ```
    pub fn is_closed_by_peer(error: &std::io::Error) -> bool {
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        )
    }
}

/// What the pool needs of an object to keep its promises: a cheap check
/// at checkout, a wake-up when it dies while idle, and a reset on return.
///
/// [`Stream`](crate::Stream), the pool's own sockets, implements it with
/// the kernel's view of the socket; a session over a stream delegates
/// [`check`](Pooled::check) and [`watch`](Pooled::watch) to its stream and
/// adds its own [`recycle`](Pooled::recycle); an object with a task of its
/// own (hyper's `SendRequest`) reports that task's end from `watch`.
///
/// # Examples
///
/// A session over the pool's stream that must not be reused after a
/// protocol error:
///
/// ```
/// use std::task::Context;
/// use keepalive::{Health, Pooled, Protocol, Stream, Target};
///
/// #[derive(Debug)]
/// struct Session {
///     stream: Stream,
///     broken: bool,
/// }
///
/// impl Pooled for Session {
///     fn check(&mut self) -> Health {
///         self.stream.check()
///     }
///     fn watch(&mut self, cx: &mut Context<'_>) -> Health {
///         self.stream.watch(cx)
///     }
///     fn recycle(&mut self) -> bool {
///         !self.broken
///     }
/// }
///
/// #[derive(Debug)]
/// struct Open;
///
/// impl Protocol<Stream> for Open {
///     type Conn = Session;
///     type Error = std::io::Error;
///
///     async fn handshake(&self, _: &Target, stream: Stream) -> std::io::Result<Session> {
///         Ok(Session { stream, broken: false })
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
/// let manager = keepalive::Manager::builder().protocol(Open).build();
/// let mut session = manager.allocate(target.clone()).await?;
/// session.broken = true; // the user left it in a state nobody else wants
/// drop(session);
/// assert_eq!(manager.stats().closes.recycle_refused, 1);
/// # Ok(())
/// # }
/// ```
pub trait Pooled: Send + Unpin + 'static {
    /// Is it usable right now? Called as it is handed out (the hot path of
    /// a checkout, outside the pool's lock, and under it for a request that
    /// waited), so it must not wait: a non-blocking system call at most.
    /// Anything but [`Health::Usable`] closes it, counted by its health.
    fn check(&mut self) -> Health;

    /// Like [`check`](Pooled::check), and arranges for `cx`'s waker to be
    /// woken when the answer may have changed: called when the object goes
    /// idle and again after each wake-up. The pool acts on wake-ups only
    /// while the object is idle, so a spurious one costs a `watch`.
    ///
    /// An object that cannot be watched may return
    /// `check()` without registering the waker; it is then found dead only
    /// at checkout, or by keep-alive.
    fn watch(&mut self, cx: &mut Context<'_>) -> Health;

    /// Called when a loan ends normally, before the object goes back to
    /// the pool: reset what the user left (a session's transaction, a
    /// subscription), or return `false` to close it instead, counted as
    /// [`Closes::recycle_refused`](crate::Closes::recycle_refused). It runs
    /// in `Drop`, so it must not wait. Defaults to `true`.
    fn recycle(&mut self) -> bool {
        true
    }

    /// Called just before the pool drops an object that had unsolicited
    /// bytes waiting, so that closing it does not linger (for sockets:
    /// `SO_LINGER` 0, a reset). Defaults to nothing.
    fn abort(&mut self) {}

    /// Another handle to this same object, for one more user at once: an
    /// object that multiplexes (an HTTP/2 connection's `SendRequest`, a
    /// pipelined session) returns one, and is then lent to up to
    /// [`capacity`](Pooled::capacity) users at a time. The default, `None`,
    /// lends it to one user at a time, whole.
    ///
    /// The pool keeps the object itself while it is shared and gives each
    /// loan a handle; the handles are dropped as their loans end, never
    /// closed or recycled (a [`Connection::discard`](crate::Connection::discard)
    /// on one stops new loans, and the object closes when its last loan
    /// ends). So a handle must not own the transport: the object is closed
    /// when the pool drops the one it kept.
    ///
    /// # Examples
    ///
    /// See [`capacity`](Pooled::capacity).
    fn share(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// How many users a shared object may serve at once (HTTP/2's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, lowered by a cap of the
    /// user's). Asked only of objects whose [`share`](Pooled::share)
    /// returns handles, each time the pool decides whether to lend one
    /// more, so it may change as the object lives (HTTP/2 SETTINGS). A
    /// request finds the object full at this many loans and opens another
    /// connection, within `max_per_host` and `max_open`, or waits in its
    /// key's queue. Defaults to 1. It must not wait.
    ///
    /// # Examples
    ///
    /// A handle of a multiplexed connection, up to 8 requests at once
    /// (`examples/multiplexed.rs` is a whole one, with its socket):
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::task::Context;
    /// use keepalive::{Health, Pooled};
    ///
    /// #[derive(Clone)]
    /// struct Mux {
    ///     /// Set by the connection's reader task when it ends.
    ///     closed: Arc<AtomicBool>,
    /// }
    ///
    /// impl Pooled for Mux {
    ///     fn check(&mut self) -> Health {
    ///         if self.closed.load(Ordering::Acquire) { Health::Closed } else { Health::Usable }
    ///     }
    ///     fn watch(&mut self, _: &mut Context<'_>) -> Health {
    ///         self.check()
    ///     }
    ///     fn share(&self) -> Option<Mux> {
    ///         Some(self.clone())
    ///     }
    ///     fn capacity(&self) -> usize {
    ///         8
    ///     }
    /// }
    ///
    /// let mux = Mux { closed: Arc::new(AtomicBool::new(false)) };
    /// assert_eq!(mux.share().map(|m| m.capacity()), Some(8));
    /// ```
    fn capacity(&self) -> usize {
        1
    }
}

/// The step that makes the pooled object from a stream the pool dialed: a
/// login, a `SELECT`, an HTTP/2 preface, hyper's handshake.
///
/// It runs inside the request's timeout, counted as connecting (in
/// [`Stats::connecting`](crate::Stats::connecting)), and is aborted when
/// the request is cancelled. A failure fails the request with an
/// [`Error`](crate::Error) whose function is `"handshake"` and whose
/// source is this step's error.
///
/// # Examples
///
/// A greeting the server must answer before the stream is pooled:
///
/// ```
/// use keepalive::{Protocol, Stream, Target};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// #[derive(Debug)]
/// struct Hello;
///
/// impl Protocol<Stream> for Hello {
///     type Conn = Stream;
///     type Error = std::io::Error;
///
///     async fn handshake(&self, _target: &Target, mut stream: Stream) -> std::io::Result<Stream> {
///         stream.write_all(b"HELLO\n").await?;
///         let mut ok = [0; 3];
///         stream.read_exact(&mut ok).await?;
///         if &ok != b"OK\n" {
///             return Err(std::io::Error::other("not greeted"));
///         }
///         Ok(stream)
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
/// # tokio::spawn(async move {
/// #     let (mut s, _) = listener.accept().await.unwrap();
/// #     let mut b = [0; 6];
/// #     s.read_exact(&mut b).await.unwrap();
/// #     s.write_all(b"OK\n").await.unwrap();
/// #     std::future::pending::<()>().await;
/// # });
/// let manager = keepalive::Manager::builder().protocol(Hello).build();
/// let conn = manager.allocate(target).await?; // greeted once, then pooled
/// # drop(conn);
/// # Ok(())
/// # }
/// ```
pub trait Protocol<S>: Send + Sync + 'static {
    /// The object the pool keeps and lends.
    type Conn: Pooled;
    /// Why the step failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes the pooled object from a stream connected to `target`.
    fn handshake(
        &self,
        target: &Target,
        stream: S,
    ) -> impl Future<Output = Result<Self::Conn, Self::Error>> + Send;

    /// How many users a connection to `target` is expected to serve at
    /// once, before the pool has made one (Envoy's rule: a connection
    /// being set up counts as the capacity it is expected to have). A
    /// burst of requests for a new key opens one connection per this many
    /// requests, not one each; once a connection is made, its own
    /// [`Pooled::capacity`] is what the pool expects of the key's next
    /// ones. A protocol that may multiplex (HTTP/2 by prior knowledge, or
    /// by ALPN when the server may choose it) says so here; a burst then
    /// waits for the first handshake instead of dialing one connection
    /// each. Defaults to 1: every request may open its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::{Protocol, Stream, Target};
    ///
    /// #[derive(Debug)]
    /// struct Multiplexed;
    ///
    /// impl Protocol<Stream> for Multiplexed {
    ///     type Conn = Stream;
    ///     type Error = std::io::Error;
    ///
    ///     async fn handshake(&self, _: &Target, stream: Stream) -> std::io::Result<Stream> {
    ///         Ok(stream)
    ///     }
    ///
    ///     fn expected_capacity(&self, _: &Target) -> usize {
    ///         100
    ///     }
    /// }
    /// assert_eq!(Multiplexed.expected_capacity(&Target::new("http", "127.0.0.1", 80)), 100);
    /// ```
    fn expected_capacity(&self, target: &Target) -> usize {
        let _ = target;
        1
    }
}

/// The default protocol: no step at all, the stream is the pooled object.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // The same manager as `Manager::new()`.
/// let manager: keepalive::Manager = keepalive::Manager::builder().protocol(keepalive::Plain).build();
/// # drop(manager);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl<S: Pooled> Protocol<S> for Plain {
    type Conn = S;
    type Error = std::convert::Infallible;

    async fn handshake(&self, _: &Target, stream: S) -> Result<S, Self::Error> {
        Ok(stream)
    }
}
