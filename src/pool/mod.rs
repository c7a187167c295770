//! The pool's shared state and the one place its lock is taken.
//!
//! [`Shared`] is owned jointly by every `Manager` clone, pending
//! `Allocation` and `Connection`. Its `State` decides; [`Shared::carry_out`]
//! carries the decisions out after the lock is dropped: sending results,
//! spawning lookups and connects, closing sockets, aborting tasks.

mod idle_watch;
mod pipeline;
pub(crate) mod state;
mod tasks;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) use idle_watch::{Signal, Watched};
use pipeline::Dialing;
pub(crate) use pipeline::{Make, Pipeline};
use state::{
    Action, Actions, Addrs, CloseReason, FromCache, Handles, Limits, LookupId, RequestId, Staged, State,
    TaskOwner,
};

use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::loan::Connection;
use crate::pooled::Pooled;
use crate::target::Target;
use crate::trace::event;
use crate::transport::Progress;

/// What completes an allocation.
pub(crate) type Responder<C> = oneshot::Sender<Result<Connection<C>, Error>>;

/// The live types behind [`State`] for a pool of `C`s (its model test
/// drives it with fakes).
pub(crate) struct Live<C>(PhantomData<fn() -> C>);

impl<C: Pooled> Handles for Live<C> {
    type Socket = Watched<C>;
    type Responder = Responder<C>;
    type Task = Spawned;
}

/// A lookup or connect task, and for a connect the step it is in.
pub(crate) struct Spawned {
    handle: JoinHandle<()>,
    progress: Option<Arc<Progress>>,
}

impl Staged for Spawned {
    fn in_proxy(&self) -> bool {
        self.progress.as_ref().is_some_and(|p| p.in_proxy())
    }
}

/// The state every handle of one manager shares.
pub(crate) struct Shared<C: Pooled> {
    state: Mutex<State<Live<C>>>,
    pub(crate) config: Config,
    /// How new objects are made: the manager's transport and protocol.
    pub(crate) maker: Arc<dyn Make<C>>,
    pub(crate) signal: Arc<Signal>,
    /// Notified when, the pool shut down, its last loan has ended
    /// (`Manager::drain` waits for it).
    pub(crate) drained: tokio::sync::Notify,
    /// This manager's membership of its fleet, if it has one; the error
    /// fails every connect when the membership could not start.
    #[cfg(feature = "fleet")]
    pub(crate) fleet: Option<Result<Arc<crate::fleet::Member>, Error>>,
    /// The runtime the manager was built in: tasks are spawned there even
    /// when a `Connection` is dropped on another thread.
    runtime: tokio::runtime::Handle,
}

impl<C: Pooled> std::fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: Pooled> Shared<C> {
    /// Creates the shared state and starts the background task.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[track_caller]
    pub(crate) fn start(config: Config, maker: Arc<dyn Make<C>>) -> Arc<Shared<C>> {
        let runtime = tokio::runtime::Handle::try_current()
            .expect("keepalive::Manager must be created inside a Tokio runtime");
        let shared = Arc::new_cyclic(|weak: &Weak<Shared<C>>| {
            #[cfg(not(feature = "fleet"))]
            let _ = weak;
            Shared {
                state: Mutex::new(new_state(&config)),
                #[cfg(feature = "fleet")]
                fleet: join_fleet(&config, weak.clone()),
                config,
                maker,
                signal: Arc::new(Signal::default()),
                drained: tokio::sync::Notify::new(),
                runtime,
            }
        });
        let drive = tasks::drive(Arc::downgrade(&shared), shared.signal.clone());
        shared.runtime.spawn(drive);
        shared
    }

    /// The lock (see [`crate::lock`] for why poisoning is ignored).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<Live<C>>> {
        crate::lock::lock(&self.state)
    }

    /// Carries out decisions made under the lock, which must be released:
    /// one small step per [`Action`]. Returns the handles of aborted
    /// tasks, for `shutdown` to await.
    pub(crate) fn carry_out(self: &Arc<Self>, actions: Actions<Live<C>>) -> Vec<JoinHandle<()>> {
        if actions.rearm {
            self.signal.notify.notify_one();
        }
        let mut aborted = Vec::new();
        let mut started = Vec::new();
        for action in actions.list {
            match action {
                Action::Deliver {
                    responder,
                    socket,
                    id,
                    target,
                    from,
                } => self.deliver(responder, Connection::new(self.clone(), socket, id, target, from)),
                Action::Fail { responder, error } => fail(responder, error),
                // Dropped: the one waiting for a warm connect hears it is done.
                Action::Warmed(responder) => drop(responder),
                Action::Connect {
                    request,
                    target,
                    addrs,
                    deadline,
                } => started.push(self.spawn_connect(request, target, addrs, deadline)),
                Action::Resolve { lookup, host, port } => {
                    started.push(self.spawn_resolve(lookup, host, port))
                }
                Action::Close {
                    socket,
                    reset,
                    reason,
                    target,
                } => close(socket, reset, reason, target),
                Action::Learned { target, limit } => learned(&target, limit),
                Action::Abort(task) => aborted.push(abort(task)),
            }
        }
        self.attach(started);
        aborted
    }

    /// Hands a loan to the request that waited for it.
    fn deliver(&self, responder: Responder<C>, conn: Connection<C>) {
        if conn.from_cache() != FromCache::Fresh {
            event!(TRACE, target = %conn.target(), from = ?conn.from_cache(), "reuse");
        }
        // A receiver that is gone drops the connection here, which returns
        // it to the pool.
        let _ = responder.send(Ok(conn));
    }

    /// Starts a connect task for `request`.
    fn spawn_connect(
        self: &Arc<Self>,
        request: RequestId,
        target: Target,
        addrs: Addrs,
        deadline: Deadline,
    ) -> (TaskOwner, Spawned) {
        let progress = Arc::new(Progress::default());
        if self.maker.lends_streams() {
            progress.want_handle();
        }
        let dial = Dialing {
            target,
            addrs,
            deadline,
            progress: progress.clone(),
        };
        let task = tasks::connect(Arc::downgrade(self), request, dial);
        let spawned = Spawned {
            handle: self.runtime.spawn(task),
            progress: Some(progress),
        };
        (TaskOwner::Connect(request), spawned)
    }

    /// Starts the shared lookup `lookup` of `host`.
    fn spawn_resolve(self: &Arc<Self>, lookup: LookupId, host: Arc<str>, port: u16) -> (TaskOwner, Spawned) {
        let task = tasks::resolve(Arc::downgrade(self), lookup, host, port);
        let spawned = Spawned {
            handle: self.runtime.spawn(task),
            progress: None,
        };
        (TaskOwner::Lookup(lookup), spawned)
    }

    /// Gives the tasks just started to their requests and lookups, under
    /// the lock; a task whose owner left meanwhile is aborted.
    fn attach(&self, started: Vec<(TaskOwner, Spawned)>) {
        if started.is_empty() {
            return;
        }
        let orphans: Vec<_> = {
            let mut state = self.lock();
            started
                .into_iter()
                .filter_map(|(owner, task)| state.attach(owner, task))
                .collect()
        };
        for task in orphans {
            task.handle.abort();
        }
    }

    /// Another member of the fleet waits for `target`: gives up one idle
    /// socket of it.
    #[cfg(feature = "fleet")]
    fn release_for_fleet(self: &Arc<Self>, target: &Target) {
        let now = tokio::time::Instant::now();
        if self.decide(|state, out| state.release_idle(target, now, out)) {
            event!(DEBUG, target = %target, "idle connection released for the fleet");
        }
    }

    /// `stats` with whether the fleet's Redis answered last time, for a
    /// member of a fleet, and, for the whole manager's (`whole`), how many
    /// keys the member keeps state for.
    pub(crate) fn with_fleet(&self, stats: state::Stats, whole: bool) -> state::Stats {
        #[cfg(feature = "fleet")]
        if let Some(fleet) = &self.fleet {
            let mut stats = stats;
            stats.fleet_reachable = Some(fleet.as_ref().is_ok_and(|m| m.is_available()));
            if whole {
                stats.fleet_keys = fleet.as_ref().map_or(0, |m| m.keys());
            }
            return stats;
        }
        #[cfg(not(feature = "fleet"))]
        let _ = whole;
        stats
    }

    /// Locks, lets `f` decide, unlocks, and carries the decisions out.
    pub(crate) fn decide<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut State<Live<C>>, &mut Actions<Live<C>>) -> R,
    ) -> R {
        let mut actions = Actions::new();
        let (result, drained) = {
            let mut state = self.lock();
            let result = f(&mut state, &mut actions);
            (result, state.is_drained())
        };
        if actions.rearm || !actions.list.is_empty() {
            self.carry_out(actions);
        }
        if drained {
            self.drained.notify_waiters();
        }
        result
    }
}

impl<C: Pooled> Drop for Shared<C> {
    fn drop(&mut self) {
        // Ends the background task, which holds only a weak reference.
        self.signal.close();
    }
}

/// The pool's state, with the builder's settings.
fn new_state<C: Pooled>(config: &Config) -> State<Live<C>> {
    #[allow(unused_mut)]
    let mut state = State::new(limits(config));
    #[cfg(feature = "metrics")]
    state.set_name(config.name.clone());
    state
}

/// The state's limits, from the builder's settings.
fn limits(config: &Config) -> Limits {
    Limits {
        max_per_host: config.max_per_host,
        max_open: config.max_open,
        keep_alive: config.keep_alive,
        max_queued: config.max_queued,
        dns_ttl: config.dns_ttl,
        max_lifetime: config.max_lifetime,
        max_lifetime_jitter: config.max_lifetime_jitter,
        // A seed per manager, so that its draws are its own; the state's
        // decisions stay a function of their inputs.
        jitter_seed: {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        },
        learn_idle_timeouts: config.learn_idle_timeouts,
        spread_addresses: config.spread_addresses,
        refresh_dns: config.refresh_dns,
    }
}

/// This manager's membership of its fleet, if the builder named one.
#[cfg(feature = "fleet")]
fn join_fleet<C: Pooled>(
    config: &Config,
    weak: Weak<Shared<C>>,
) -> Option<Result<Arc<crate::fleet::Member>, Error>> {
    let fleet = config.fleet.clone()?;
    let on_wanted = Box::new(move |target: &Target| {
        if let Some(shared) = weak.upgrade() {
            shared.release_for_fleet(target);
        }
    });
    Some(crate::fleet::Member::start(fleet, config.max_per_host, on_wanted).map(Arc::new))
}

/// Completes a request with an error.
fn fail<C: Pooled>(responder: Responder<C>, error: Error) {
    #[cfg(feature = "tracing")]
    if let Error::Timeout { target, after, .. } = &error {
        let during = error.function();
        event!(DEBUG, target = %target, after_ms = after.as_millis() as u64, during = during, "timeout");
    }
    let _ = responder.send(Err(error));
}

/// Closes a socket, for `reason`.
fn close<C: Pooled>(socket: Watched<C>, reset: bool, reason: CloseReason, target: Option<Target>) {
    event!(DEBUG, target = ?target, reason = reason.name(), "close");
    let _ = (reason, target);
    socket.close(reset);
}

/// Tells that `target`'s server idle limit is now taken to be `limit`.
fn learned(target: &Target, limit: Duration) {
    event!(INFO, target = %target, limit_ms = limit.as_millis() as u64, "server idle limit learned");
    let _ = (target, limit);
}

/// Aborts a task whose work nobody wants any more.
fn abort(task: Spawned) -> JoinHandle<()> {
    task.handle.abort();
    task.handle
}
