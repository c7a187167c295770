//! [`Connection`]: a socket on loan, returned to the pool when dropped;
//! `stream_io.rs` is its byte-stream side.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use crate::pool::state::FromCache;
use crate::pool::state::{CloseReason, Hints, Poolable, SocketId};
use crate::pool::{Shared, Watched};
use crate::pooled::Pooled;
use crate::target::Target;
use crate::transport::Stream;

/// Whether the socket may go back to the pool when the connection drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reuse {
    /// Nothing seen that rules reuse out.
    Eligible,
    /// The peer ended the stream, or the user shut it down or discarded it.
    Finished,
    /// An I/O error: counted as a stale discard.
    Failed,
    /// The object's [`Pooled::recycle`] refused it.
    Refused,
    /// The server said it closes the connection after this response.
    ServerClosed,
}

/// What a loan has heard from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// Nothing yet.
    None,
    /// Some bytes.
    Some,
    /// The server's close (end of stream or a reset) before any byte: the
    /// race with its idle close, lost. `reported` when the user said so
    /// ([`Connection::lost_race`]) rather than the stream showing it.
    Lost { reported: bool },
}

/// A connected socket (or another pooled object) on loan from a
/// [`Manager`](crate::Manager).
///
/// It is typed by the object it holds, whatever made it: `Connection`
/// alone is a [`Stream`] on loan (the default manager's), a manager built
/// with [`Builder::protocol`](crate::Builder::protocol) lends
/// `Connection<P::Conn>`, and one with a
/// [`Builder::transport`](crate::Builder::transport) of Tokio's
/// `TcpStream` lends `Connection<TcpStream>`. It dereferences to that
/// object. When the object is a byte stream, the connection is one too,
/// and notes what it sees on the way (an error, end of stream) to decide
/// whether the object may be reused.
///
/// Read and write it with Tokio's `AsyncReadExt` / `AsyncWriteExt`. Dropping
/// it gives the socket back: it goes back to the pool for the
/// next request for an equal [`Target`], unless it is closed, has unread
/// data waiting, saw an I/O error or end of stream, was shut down for
/// writing, or the manager is shut down; then it is closed.
///
/// Only drop it back into the pool after a complete exchange: a socket
/// holding half a response looks, to the next user, like garbage. The pool
/// discards sockets with unread bytes, but it cannot see a request you wrote
/// whose answer has not arrived yet. Call [`Connection::discard`] when in
/// doubt.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let port = listener.local_addr()?.port();
/// # tokio::spawn(async move {
/// #     let (mut s, _) = listener.accept().await.unwrap();
/// #     let mut b = [0; 4];
/// #     s.read_exact(&mut b).await.unwrap();
/// #     s.write_all(b"pong").await.unwrap();
/// #     std::future::pending::<()>().await;
/// # });
/// let manager = keepalive::Manager::new();
/// let mut conn = manager.allocate(keepalive::Target::new("tcp", "127.0.0.1", port)).await?;
/// conn.write_all(b"ping").await?;
/// let mut answer = [0; 4];
/// conn.read_exact(&mut answer).await?;
/// assert_eq!(&answer, b"pong");
/// drop(conn); // back to the pool
/// assert_eq!(manager.stats().idle, 1);
/// # Ok(())
/// # }
/// ```
pub struct Connection<C: Pooled = Stream> {
    /// `None` only while dropping.
    socket: Option<Watched<C>>,
    id: SocketId,
    target: Target,
    from_cache: FromCache,
    pub(super) reuse: Reuse,
    /// What this loan has read, for the race with the server's idle close.
    pub(super) answer: Answer,
    /// What the user said about the socket, handed back with it.
    hints: Hints,
    shared: Arc<Shared<C>>,
}

impl Connection {
    /// The remote address.
    ///
    /// # Errors
    ///
    /// As `getpeername(2)`: after the peer reset the connection, say;
    /// `ErrorKind::Unsupported` for a Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = keepalive::Manager::new().allocate(target).await?;
    /// assert_eq!(conn.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Stream::peer_addr(self)
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`; `ErrorKind::Unsupported` for a Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = keepalive::Manager::new().allocate(target).await?;
    /// assert!(conn.local_addr()?.ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Stream::local_addr(self)
    }
}

impl<C: Pooled> Connection<C> {
    pub(crate) fn new(
        shared: Arc<Shared<C>>,
        socket: Watched<C>,
        id: SocketId,
        target: Target,
        from_cache: FromCache,
    ) -> Connection<C> {
        Connection {
            socket: Some(socket),
            id,
            target,
            from_cache,
            reuse: Reuse::Eligible,
            answer: Answer::None,
            hints: Hints::default(),
            shared,
        }
    }

    /// How this connection was obtained.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let conn = manager.allocate(target.clone()).await?;
    /// assert_eq!(conn.from_cache(), keepalive::FromCache::Fresh);
    /// drop(conn);
    /// let conn = manager.allocate(target).await?;
    /// assert_eq!(conn.from_cache(), keepalive::FromCache::Immediate);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_cache(&self) -> FromCache {
        self.from_cache
    }

    /// The target this connection was allocated for.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = keepalive::Manager::new().allocate(target.clone()).await?;
    /// assert_eq!(conn.target(), &target);
    /// # Ok(())
    /// # }
    /// ```
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Closes the connection; the socket is never reused.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// manager.allocate(target).await?.discard();
    /// assert_eq!(manager.stats().open, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn discard(mut self) {
        self.reuse = Reuse::Finished;
    }

    /// Tells the pool that the server closes this connection after `d`
    /// idle, as HTTP's `Keep-Alive: timeout=N` says: once back in the pool
    /// it is not handed out after `d` less a safety margin (the larger of
    /// 10% and 100 ms), and the limit is taken as the server's for every
    /// connection of this [`Target`] (see
    /// [`Builder::learn_idle_timeouts`](crate::Builder::learn_idle_timeouts)),
    /// capped at `keep_alive`. A `d` within the margin (zero, say) closes
    /// the connection when it comes back. Nothing happens until the
    /// connection is dropped; the last call wins.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let mut conn = manager.allocate(target.clone()).await?;
    /// // ... the response said `Keep-Alive: timeout=5` ...
    /// conn.set_server_idle_timeout(std::time::Duration::from_secs(5));
    /// drop(conn);
    /// assert_eq!(manager.stats_for(&target).server_idle_timeout, Some(std::time::Duration::from_secs(5)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_server_idle_timeout(&mut self, d: Duration) {
        self.hints.server_idle_timeout = Some(d);
    }

    /// Closes the connection because the server said it closes it after
    /// this response (HTTP's `Connection: close`, or an HTTP/1.0 response
    /// without `keep-alive`): like [`discard`](Connection::discard), but
    /// counted as [`Closes::connection_close`](crate::Closes::connection_close),
    /// the server's doing, not the user's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let conn = manager.allocate(target).await?;
    /// // ... the response said `Connection: close` ...
    /// conn.server_said_close();
    /// assert_eq!(manager.stats().closes.connection_close, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn server_said_close(mut self) {
        self.reuse = Reuse::ServerClosed;
    }

    /// Tells the pool that the server accepts `n` more requests on this
    /// connection, as HTTP's `Keep-Alive: max=N` says: it is handed out at
    /// most `n` more times, then closed when it comes back; `0` closes it
    /// when it comes back instead of pooling it. The last call wins.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let mut conn = manager.allocate(target).await?;
    /// conn.set_remaining_uses(0); // the server said `Keep-Alive: max=0`
    /// drop(conn);
    /// assert_eq!(manager.stats().closes.uses_spent, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_remaining_uses(&mut self, n: u32) {
        self.hints.remaining_uses = Some(n);
    }

    pub(super) fn object(&self) -> &C {
        &self
            .socket
            .as_ref()
            .expect("a live connection holds its object")
            .object
    }

    pub(super) fn object_mut(&mut self) -> &mut C {
        &mut self
            .socket
            .as_mut()
            .expect("a live connection holds its object")
            .object
    }

    /// Closes the connection because the server closed or reset it before
    /// any answer to what was sent on this loan: the race with the
    /// server's idle close, lost. For a connection that came from the pool
    /// (not [`FromCache::Fresh`]) this is an observation of the server's
    /// idle limit at the age the connection had been idle (see
    /// [`Builder::learn_idle_timeouts`](crate::Builder::learn_idle_timeouts)),
    /// so the next requests do not meet the same close.
    ///
    /// A connection that is itself a byte stream notes this on its own (end
    /// of stream or a reset before any byte was read on the loan); an
    /// object whose reads the pool does not see (hyper's connection, a
    /// session) reports it with this call.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let conn = manager.allocate(target).await?;
    /// // ... the request met the server's close before any answer ...
    /// conn.lost_race();
    /// assert_eq!(manager.stats().closes.closed_by_peer, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn lost_race(mut self) {
        self.answer = Answer::Lost { reported: true };
        self.reuse = Reuse::Finished;
    }
}

impl<C: Pooled> Deref for Connection<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.object()
    }
}

impl<C: Pooled> DerefMut for Connection<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.object_mut()
    }
}

impl<C: Pooled> Drop for Connection<C> {
    fn drop(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        let (id, hints) = (self.id, self.hints);
        // Seen on a fresh connection, a close before any answer is a server
        // that refuses work (closed as discarded or an I/O error), not the
        // race with an idle close.
        let lost = match self.answer {
            Answer::Lost { reported } => reported || self.from_cache != FromCache::Fresh,
            Answer::None | Answer::Some => false,
        };
        if socket.is_share() {
            return self.end_share(socket, lost);
        }
        if lost {
            let _slot = socket.close_before_forgotten();
            let now = Instant::now();
            self.shared.decide(|state, out| state.lost(id, now, out));
            return;
        }
        self.end_whole(socket, id, hints);
    }
}

impl<C: Pooled> Connection<C> {
    /// The end of a loan of a whole object: back to the pool, or closed
    /// for the reason the loan saw.
    fn end_whole(&mut self, mut socket: Watched<C>, id: SocketId, hints: Hints) {
        if self.reuse == Reuse::Eligible && !socket.object.recycle() {
            self.reuse = Reuse::Refused;
        }
        let reason = match self.reuse {
            Reuse::Refused => CloseReason::RecycleRefused,
            Reuse::Eligible => {
                // Checked, and watched for events, before taking the lock.
                let health = socket.watch(id.token());
                let now = Instant::now();
                self.shared
                    .decide(|state, out| state.put_back(id, socket, health, hints, now, out));
                return;
            }
            Reuse::Finished => CloseReason::Discarded,
            Reuse::ServerClosed => CloseReason::ConnectionClose,
            Reuse::Failed => CloseReason::IoError,
        };
        // Closed before the pool forgets it, so the count of open sockets
        // never runs behind the real one; its fleet slot goes back after.
        let _slot = socket.close_before_forgotten();
        self.shared.decide(|state, out| state.discard(id, reason, out));
    }

    /// The end of a loan of a shared object: its handle is dropped, never
    /// closed, and the pool told why the object must take no more loans,
    /// if it must.
    fn end_share(&mut self, mut socket: Watched<C>, lost: bool) {
        if self.reuse == Reuse::Eligible && !socket.object.recycle() {
            self.reuse = Reuse::Refused;
        }
        drop(socket);
        let ended = match self.reuse {
            _ if lost => Some(CloseReason::ClosedByPeer),
            Reuse::Eligible => None,
            Reuse::Refused => Some(CloseReason::RecycleRefused),
            Reuse::Finished => Some(CloseReason::Discarded),
            Reuse::ServerClosed => Some(CloseReason::ConnectionClose),
            Reuse::Failed => Some(CloseReason::IoError),
        };
        let (id, hints, now) = (self.id, self.hints, Instant::now());
        self.shared
            .decide(|state, out| state.end_share(id, ended, hints, now, out));
    }
}

impl<C: Pooled + fmt::Debug> fmt::Debug for Connection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("from_cache", &self.from_cache)
            .field("object", self.object())
            .finish()
    }
}
