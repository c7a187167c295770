//! [`Manager`]: the cheap, cloneable handle users allocate through, and
//! [`Stats`].

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::{Builder, Config};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::loan::{Allocation, Connection, FromCache};
use crate::pool::state::{Actions, Addrs, Health, NewRequest, Poolable, RequestId, SocketId, State, NO_SLOT};
pub use crate::pool::state::{Closes, Stats};
use crate::pool::{Live, Make, Pipeline, Shared, Watched};
use crate::pooled::{Plain, Pooled, Protocol};
use crate::target::Target;
use crate::trace::event;
use crate::transport::{Dialer, Transport};

/// A connection manager: pooled keep-alive sockets, per-host and total
/// limits, a queue, shared name lookups, and liveness checks.
///
/// Cloning gives another handle to the same pool. The pool, its background
/// task and its sockets end when the last `Manager`, [`Allocation`] and
/// [`Connection`] are dropped.
///
/// The type parameters say what it pools: `P`, the [`Protocol`] step that
/// makes the pooled object, on streams from `T`, the
/// [`Transport`]. The defaults, [`Plain`] on the pool's own [`Dialer`],
/// pool the [`Stream`](crate::Stream)s it dials: `Manager` alone names
/// that manager. [`Builder::protocol`] and [`Builder::transport`] choose
/// others; every limit, the queue, timeouts, liveness checks, learning and
/// the stats apply to them unchanged.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
/// let manager = keepalive::Manager::new();
/// let conn = manager.allocate(target.clone()).await?;
/// let port = conn.local_addr()?.port();
/// drop(conn);
/// let again = manager.allocate(target).await?;
/// assert_eq!(again.local_addr()?.port(), port); // the same socket
/// # Ok(())
/// # }
/// ```
pub struct Manager<P = Plain, T = Dialer>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    pub(crate) shared: Arc<Shared<P::Conn>>,
    /// The manager is named by what makes its objects; its pool knows
    /// them only as the objects.
    made_by: PhantomData<fn() -> (P, T)>,
}

impl<P, T> Clone for Manager<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    fn clone(&self) -> Self {
        Manager {
            shared: self.shared.clone(),
            made_by: PhantomData,
        }
    }
}

impl Manager {
    /// A manager with every default.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (current-thread or multi-thread).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = keepalive::Manager::new();
    /// # drop(manager);
    /// # }
    /// ```
    #[track_caller]
    pub fn new() -> Manager {
        Builder::new().build()
    }

    /// A builder for a manager with other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = keepalive::Manager::builder().max_per_host(2).build();
    /// # drop(manager);
    /// # }
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<P, T> Manager<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    #[track_caller]
    pub(crate) fn start(config: Config, protocol: P, transport: T) -> Manager<P, T> {
        let pipeline = Pipeline {
            protocol,
            transport,
            options: config.dial.clone(),
        };
        Manager {
            shared: Shared::start(config, Arc::new(pipeline)),
            made_by: PhantomData,
        }
    }

    /// Asks for a connection to `target`.
    ///
    /// A live idle socket for an equal target is handed out at once
    /// ([`FromCache::Immediate`]) without a lookup or a task. Otherwise the
    /// request looks the host up (names only; literals never reach the
    /// resolver), then connects if the per-host and total limits allow, or
    /// waits for a socket another user returns ([`FromCache::Deferred`]) or
    /// for a slot.
    ///
    /// # Errors
    ///
    /// The returned future fails with an [`Error`]: an invalid target, a
    /// lookup or connect failure, a timeout, a full queue, cancellation or
    /// shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let manager = keepalive::Manager::new();
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = manager.allocate(target).await?;
    /// assert_eq!(conn.from_cache(), keepalive::FromCache::Fresh);
    /// # Ok(())
    /// # }
    /// ```
    pub fn allocate(&self, target: Target) -> Allocation<P::Conn> {
        // The one clock read of a checkout: the request's start, the time
        // idle sockets are judged at, and its deadline's base.
        let start = Instant::now();
        if let Err(error) = reachable(&target) {
            return Allocation::ready(None, start, Err(error));
        }
        let shared = &self.shared;
        loop {
            let begin = |state: &mut State<Live<P::Conn>>, out: &mut Actions<Live<P::Conn>>| {
                Self::begin(state, &*shared.maker, &target, start, shared.config.timeout, out)
            };
            match shared.decide(begin) {
                // Checked outside the lock, so checkouts do not queue behind
                // each other's system calls.
                Ok(Outcome::Hit(mut socket, sid, id)) => match socket.check() {
                    Health::Usable => return self.lend_idle(socket, sid, id, target, start),
                    stale => shared.decide(|state, out| state.revoke(sid, socket, stale, start, out)),
                },
                Ok(Outcome::Waiting(id, rx)) => return Allocation::waiting(id, start, rx, shared.clone()),
                Err(error) => return refused(&target, start, error),
            }
        }
    }

    /// An idle object, checked, on loan at once.
    fn lend_idle(
        &self,
        socket: Watched<P::Conn>,
        sid: SocketId,
        id: RequestId,
        target: Target,
        start: Instant,
    ) -> Allocation<P::Conn> {
        event!(TRACE, target = %target, from = "immediate", "reuse");
        let conn = Connection::new(self.shared.clone(), socket, sid, target, FromCache::Immediate);
        Allocation::ready(Some(id), start, Ok(conn))
    }

    /// Under the lock: an idle socket, or a new request.
    fn begin(
        state: &mut State<Live<P::Conn>>,
        maker: &dyn Make<P::Conn>,
        target: &Target,
        start: Instant,
        timeout: std::time::Duration,
        out: &mut Actions<Live<P::Conn>>,
    ) -> Result<Outcome<P, T>, Error> {
        if let Some((socket, sid)) = state.checkout(target, start, out)? {
            return Ok(Outcome::Hit(socket, sid, state.request_id(NO_SLOT)));
        }
        // Only a miss pays for a channel: the warm path allocates nothing.
        let (responder, rx) = oneshot::channel();
        let addrs = direct_addrs(maker, target);
        let new = NewRequest {
            responder,
            now: start,
            deadline: Deadline::after(start, timeout),
            timeout,
            addrs,
            expect: maker.expected_capacity(target),
        };
        let id = state.request(target, new, out)?;
        Ok(Outcome::Waiting(id, rx))
    }

    /// Cancels a pending request from anywhere. Its [`Allocation`] then
    /// completes with an error for which [`Error::is_cancelled`] is true.
    ///
    /// Returns `true` when a pending request was cancelled, `false` when
    /// the id is unknown or its request already completed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let manager = keepalive::Manager::builder().resolver(Never).build();
    /// # #[derive(Debug)] struct Never;
    /// # impl keepalive::Resolve for Never {
    /// #     fn resolve(&self, _: &str, _: u16) -> keepalive::ResolveFuture { Box::pin(std::future::pending()) }
    /// # }
    /// let allocation = manager.allocate(keepalive::Target::new("http", "slow.example", 80));
    /// assert!(manager.deallocate(allocation.id()));
    /// assert!(allocation.await.unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub fn deallocate(&self, id: RequestId) -> bool {
        let responder = self.shared.decide(|state, out| state.cancel(id, out));
        match responder {
            Some(responder) => {
                let _ = responder.send(Err(Error::Cancelled));
                true
            }
            None => false,
        }
    }

    /// Shuts the manager down: every pending allocation fails with
    /// [`Error::is_shutdown`], every idle socket is closed, in-flight
    /// lookups and connects are aborted, and later allocations fail the
    /// same way. Connections still on loan are closed when dropped.
    ///
    /// It returns when the aborted tasks have ended, so no socket of the
    /// manager is open then but those on loan.
    ///
    /// # Cancel safety
    ///
    /// The shutdown itself happens before the first `.await`; cancelling
    /// the call only skips waiting for aborted tasks to end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = keepalive::Manager::new();
    /// manager.shutdown().await;
    /// let err = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 80)).await.unwrap_err();
    /// assert!(err.is_shutdown());
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        let mut actions = Actions::new();
        self.shared.lock().shutdown(&mut actions);
        for task in self.shared.carry_out(actions) {
            let _ = task.await;
        }
        // A fleet member leaves: its slots are given back and its
        // heartbeat removed, so the others need not wait for its lease.
        #[cfg(feature = "fleet")]
        if let Some(Ok(member)) = &self.shared.fleet {
            member.leave().await;
        }
    }

    /// A snapshot of the counts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(keepalive::Manager::new().stats(), keepalive::Stats::default());
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        let stats = self.shared.lock().stats();
        self.shared.with_fleet(stats, true)
    }

    /// The same snapshot for one connection key: the sockets, requests,
    /// counters and close reasons of targets equal to `target`, and what
    /// the pool knows of its server's idle limit. Zeros for a key the pool
    /// does not know; a key with nothing open or pending is remembered
    /// until 1,024 newer such keys are.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let conn = manager.allocate(target.clone()).await?;
    /// assert_eq!(manager.stats_for(&target).in_use, 1);
    /// drop(conn);
    /// let stats = manager.stats_for(&target);
    /// assert_eq!((stats.idle, stats.connects), (1, 1));
    /// let other = keepalive::Target::new("http", "127.0.0.1", 9);
    /// assert_eq!(manager.stats_for(&other), keepalive::Stats::default());
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats_for(&self, target: &Target) -> Stats {
        let now = Instant::now();
        let stats = self.shared.lock().stats_for(target, now);
        self.shared.with_fleet(stats, false)
    }

    /// The same snapshot as [`stats_for`](Manager::stats_for) for every
    /// key with an open connection or a pending request, and every key the
    /// pool remembers because it learned its server's idle limit; in no
    /// particular order. A crawler lists its hosts with it without
    /// rebuilding their targets.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// let conn = manager.allocate(target.clone()).await?;
    /// let per_key = manager.stats_per_key();
    /// assert_eq!(per_key.len(), 1);
    /// assert_eq!((&per_key[0].0, per_key[0].1.in_use), (&target, 1));
    /// # drop(conn);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats_per_key(&self) -> Vec<(Target, Stats)> {
        let now = Instant::now();
        let per_key = self.shared.lock().stats_per_key(now);
        per_key
            .into_iter()
            .map(|(target, stats)| (target, self.shared.with_fleet(stats, false)))
            .collect()
    }
}

impl<P, T> Builder<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    /// Builds the manager and starts its background task.
    ///
    /// # Panics
    ///
    /// When a limit or duration is zero (the message names the setting), or
    /// when called outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = keepalive::Manager::builder().max_open(8).build();
    /// # drop(manager);
    /// # }
    /// ```
    #[track_caller]
    pub fn build(self) -> Manager<P, T> {
        let (config, protocol, transport) = self.into_parts();
        Manager::start(config, protocol, transport)
    }
}

/// The addresses of a target that needs no lookup: a literal, or one whose
/// transport finds its own way (none). For a target via a proxy, the
/// socket goes to the proxy.
pub(crate) fn direct_addrs<C: Pooled>(maker: &dyn Make<C>, target: &Target) -> Option<Addrs> {
    match target.dial_literal() {
        Some(ip) => Some(Arc::from([SocketAddr::new(ip, target.dial_endpoint().port)])),
        None if !maker.needs_addresses(target) => Some(Arc::from([])),
        None => None,
    }
}

/// Whether `target` can be reached by this build at all: a valid target,
/// and TLS compiled in when it needs TLS.
pub(crate) fn reachable(target: &Target) -> Result<(), Error> {
    target.validate()?;
    let https_proxy = target
        .proxy()
        .is_some_and(|p| p.kind() == crate::proxy::Kind::Https);
    if (target.is_tls() || https_proxy) && cfg!(not(keepalive_tls)) {
        return Err(Error::Tls {
            target: target.to_string(),
            reason: "this build of keepalive has no TLS (the \"tls\" feature is off)".into(),
            source: None,
        });
    }
    Ok(())
}

/// A request the pool refused at once (shut down, queue full).
fn refused<C: Pooled>(target: &Target, start: Instant, error: Error) -> Allocation<C> {
    #[cfg(feature = "tracing")]
    if let Error::QueueFull { limit } = &error {
        event!(WARN, target = %target, limit = *limit as u64, "queue full");
    }
    let _ = target;
    Allocation::ready(None, start, Err(error))
}

/// What `allocate` found under the lock.
enum Outcome<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    /// An idle object, still to be checked, and the request's id.
    Hit(Watched<P::Conn>, SocketId, RequestId),
    /// A request that waits for the pool.
    Waiting(RequestId, oneshot::Receiver<Result<Connection<P::Conn>, Error>>),
}

impl Default for Manager {
    /// Same as [`Manager::new`].
    #[track_caller]
    fn default() -> Manager {
        Manager::new()
    }
}

impl<P, T> fmt::Debug for Manager<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}
