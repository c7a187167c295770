//! [`Allocation`]: a pending request for a connection, and its [`RequestId`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::Connection;
use crate::deadline::Deadline;
use crate::error::Error;
pub use crate::pool::state::RequestId;
use crate::pool::Shared;
use crate::pooled::Pooled;
use crate::transport::Stream;

/// A pending request for a connection: a future of
/// `Result<Connection<C>, Error>`, typed like the [`Connection`] by the
/// object it will hold.
///
/// The request starts when [`Manager::allocate`] is called, not when the
/// future is first polled: lookups and connects proceed in the background,
/// and the timeout counts from `allocate()`.
///
/// # Cancel safety
///
/// Dropping an `Allocation` before it completes cancels the request at
/// once: it loses its place in the queue, its interest in a name lookup, and
/// its connect attempt, which is aborted so that its slot goes to the next
/// request. A socket that was already connected for it goes to the idle
/// pool.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let port = listener.local_addr()?.port();
/// let manager = keepalive::Manager::new();
/// let allocation = manager
///     .allocate(keepalive::Target::new("http", "127.0.0.1", port))
///     .timeout(Duration::from_secs(5));
/// let conn = allocation.await?;
/// # drop(conn);
/// # Ok(())
/// # }
/// ```
///
/// [`Manager::allocate`]: crate::Manager::allocate
#[must_use = "dropping an Allocation cancels the request"]
pub struct Allocation<C: Pooled = Stream> {
    id: RequestId,
    start: Instant,
    inner: Inner<C>,
}

enum Inner<C: Pooled> {
    /// Decided inside `allocate`; taken by the first poll.
    Ready(Option<Result<Connection<C>, Error>>),
    /// Waiting for the pool.
    Waiting {
        rx: oneshot::Receiver<Result<Connection<C>, Error>>,
        shared: Arc<Shared<C>>,
    },
}

impl<C: Pooled> Allocation<C> {
    /// A request decided at once, at `start`: served from the pool under
    /// `id`, or failed before the pool saw it (`id` is `None`).
    pub(crate) fn ready(
        id: Option<RequestId>,
        start: Instant,
        result: Result<Connection<C>, Error>,
    ) -> Allocation<C> {
        Allocation {
            id: id.unwrap_or(RequestId::NONE),
            start,
            inner: Inner::Ready(Some(result)),
        }
    }

    pub(crate) fn waiting(
        id: RequestId,
        start: Instant,
        rx: oneshot::Receiver<Result<Connection<C>, Error>>,
        shared: Arc<Shared<C>>,
    ) -> Allocation<C> {
        Allocation {
            id,
            start,
            inner: Inner::Waiting { rx, shared },
        }
    }

    /// This request's id, for [`Manager::deallocate`](crate::Manager::deallocate).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = keepalive::Manager::new();
    /// let allocation = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 9));
    /// let id = allocation.id();
    /// # drop(allocation); let _ = id;
    /// # }
    /// ```
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Sets this request's timeout, counted from `allocate()`; it replaces
    /// the builder's. A timeout already past fails the request promptly;
    /// `Duration::MAX` (or any time too far for an `Instant`) means none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::builder().max_per_host(1).build();
    /// let held = manager.allocate(target.clone()).await?;
    /// // The only socket is on loan: this request waits, then gives up.
    /// let err = manager.allocate(target).timeout(Duration::from_millis(10)).await.unwrap_err();
    /// assert!(err.is_timeout());
    /// # drop(held);
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(self, d: Duration) -> Allocation<C> {
        if let Inner::Waiting { shared, .. } = &self.inner {
            let (id, deadline) = (self.id, Deadline::after(self.start, d));
            shared.decide(|state, out| state.set_deadline(id, deadline, d, out));
        }
        self
    }
}

impl<C: Pooled> Allocation<C> {
    /// Shortens this request's timeout to `d`, counted from `allocate()`,
    /// when that ends earlier than the timeout it has (the builder's, or
    /// one set with [`timeout`](Allocation::timeout)); a later one changes
    /// nothing. For a layer above the pool with a deadline of its own
    /// (keepalive-hyper's whole-request timeout): the earlier wins, and the
    /// error is still the pool's, with [`Error::is_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::builder().max_per_host(1).timeout(Duration::from_millis(10)).build();
    /// let held = manager.allocate(target.clone()).await?;
    /// // The builder's 10 ms is earlier than an hour: it still applies.
    /// let err = manager.allocate(target).timeout_at_most(Duration::from_secs(3600)).await.unwrap_err();
    /// assert!(err.is_timeout());
    /// # drop(held);
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout_at_most(self, d: Duration) -> Allocation<C> {
        if let Inner::Waiting { shared, .. } = &self.inner {
            let (id, deadline) = (self.id, Deadline::after(self.start, d));
            shared.decide(|state, out| state.shorten_deadline(id, deadline, d, out));
        }
        self
    }
}

impl<C: Pooled> Future for Allocation<C> {
    type Output = Result<Connection<C>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &mut this.inner {
            Inner::Ready(result) => result.take().unwrap_or(Err(Error::Cancelled)),
            Inner::Waiting { rx, .. } => match Pin::new(rx).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result.unwrap_or(Err(Error::Shutdown)),
            },
        };
        this.inner = Inner::Ready(None);
        Poll::Ready(result)
    }
}

impl<C: Pooled> Drop for Allocation<C> {
    fn drop(&mut self) {
        if let Inner::Waiting { shared, .. } = &self.inner {
            let id = self.id;
            // The responder comes back while the lock is held; it is dropped
            // after `act` returns, outside the lock.
            let responder = shared.decide(|state, out| state.cancel(id, out));
            drop(responder);
        }
    }
}

impl<C: Pooled> fmt::Debug for Allocation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner {
            Inner::Ready(Some(_)) => "ready",
            Inner::Ready(None) => "done",
            Inner::Waiting { .. } => "waiting",
        };
        f.debug_struct("Allocation")
            .field("id", &self.id)
            .field("state", &state)
            .finish()
    }
}
