//! One manager's membership of a fleet: taking a slot before a connect
//! (`admit`), giving it back after the socket is closed (`Slot`'s drop),
//! the heartbeat, and the messages of the other members.
//!
//! Its two tasks, the keeper and the listener, are `tasks.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::membership::{KeyUse, Membership, OnWanted, CALL_TIMEOUT, RETRY};
use super::{tasks, Fleet};
use crate::error::Error;
use crate::lock::lock;
use crate::target::Target;
use crate::trace::event;

/// A manager's membership; its tasks end when it is dropped.
pub(crate) struct Member {
    inner: Arc<Membership>,
}

/// A slot taken for a connection; dropped (after the socket is closed,
/// being the last field of the pooled socket), it is given back.
pub(crate) struct Slot {
    inner: Arc<Membership>,
    key: Arc<str>,
    token: u64,
    /// The key's entry in the member, kept while the slot is.
    _user: KeyUser,
}

/// One user of a key's entry; the entry goes with its last user.
struct KeyUser {
    inner: Arc<Membership>,
    key: Arc<str>,
}

impl Drop for KeyUser {
    fn drop(&mut self) {
        let mut keys = lock(&self.inner.keys);
        if let Some(entry) = keys.get_mut(&self.key) {
            entry.users -= 1;
            if entry.users == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("key", &self.key)
            .field("token", &self.token)
            .finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.inner.held).remove(&self.token);
        let _ = self.inner.releases.send((self.key.clone(), self.token));
    }
}

/// How a connect was admitted.
#[derive(Debug)]
pub(crate) struct Admission {
    /// The slot, held until the connection closes.
    pub(crate) slot: Slot,
    /// How long the request waited for the fleet, if it had to.
    pub(crate) waited: Option<Duration>,
    /// Redis could not be reached: admitted under the local limits only.
    pub(crate) bypassed: bool,
}

impl Member {
    /// Joins the fleet: starts the keeper and the listener on the current
    /// runtime. `max_per_host` is the builder's, for a fleet that set none.
    pub(crate) fn start(fleet: Fleet, max_per_host: usize, on_wanted: OnWanted) -> Result<Member, Error> {
        let redis = connect(&fleet)?;
        let max = if fleet.max_per_host_set {
            fleet.max_per_host
        } else {
            max_per_host
        };
        let (releases, release_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Membership::new(fleet, max, redis, on_wanted, releases));
        tokio::spawn(tasks::keep(inner.clone(), release_rx));
        tokio::spawn(tasks::listen(inner.clone()));
        Ok(Member { inner })
    }

    /// A slot for a new connection to `target`: at once when the fleet has
    /// room and nobody waits before this request; else when a slot is
    /// freed and this request is the earliest waiter. Dropping the future
    /// takes the request out of the queue. `on_wait` runs once, when the
    /// request first has to wait.
    ///
    /// # Errors
    ///
    /// `Error::FleetUnavailable` when Redis cannot be reached and the fleet
    /// does not fail open.
    pub(crate) async fn admit(&self, target: &Target, on_wait: impl FnOnce()) -> Result<Admission, Error> {
        let inner = &self.inner;
        let mut wait = Wait {
            on_wait: Some(on_wait),
            waited: false,
        };
        let key: Arc<str> = target.to_string().into();
        let (turn, user) = inner.use_key(&key, target);
        self.renew_if_lapsed().await;
        let started = Instant::now();
        let _turn = match turn.try_lock() {
            Ok(turn) => turn,
            // Another request of this member for the key is asking: wait
            // for it (a socket coming back may serve this one).
            Err(_) => {
                wait.begin();
                turn.lock().await
            }
        };
        let token = inner.next_token.fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending {
            inner,
            key: key.clone(),
            token,
            armed: true,
        };
        let bypassed = self.acquire(target, &key, token, &mut wait).await?;
        pending.armed = false;
        if wait.waited {
            event!(DEBUG, target = %target, waited_ms = started.elapsed().as_millis() as u64, "fleet slot after a wait");
        }
        let slot = self.hold(key, token, user);
        let waited = wait.waited.then(|| started.elapsed());
        Ok(Admission {
            slot,
            waited,
            bypassed,
        })
    }

    /// Past the local deadline this member's heartbeat may be gone, and a
    /// slot taken now would not count for the others: renews first.
    async fn renew_if_lapsed(&self) {
        let inner = &self.inner;
        if lock(&inner.lease_ok_until).is_none_or(|until| Instant::now() >= until) {
            tasks::renew(inner).await;
        }
    }

    /// The slot `token` of `key`, granted: held until the connection
    /// closes.
    fn hold(&self, key: Arc<str>, token: u64, user: KeyUser) -> Slot {
        lock(&self.inner.held).insert(token, key.clone());
        Slot {
            inner: self.inner.clone(),
            key,
            token,
            _user: user,
        }
    }

    /// Asks Redis for the slot `token` of `key` until it is granted (or a
    /// freed slot's message, or `RETRY`, says to ask again). Returns whether
    /// it was granted without Redis (unreachable, failing open).
    async fn acquire(
        &self,
        target: &Target,
        key: &Arc<str>,
        token: u64,
        wait: &mut Wait<impl FnOnce()>,
    ) -> Result<bool, Error> {
        let inner = &self.inner;
        let waiting = Waiting::join(inner, key);
        loop {
            let notified = waiting.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match inner.try_acquire(key, token).await {
                Ok(true) => {
                    inner.reached();
                    return Ok(false);
                }
                Ok(false) => {
                    inner.reached();
                    if wait.on_wait.is_some() {
                        event!(DEBUG, target = %target, "fleet full: waiting");
                    }
                    wait.begin();
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
                Err(error) => return self.unreachable(target, error),
            }
        }
    }

    /// Redis could not be reached for `target`'s slot: fail, or go on under
    /// the local limits alone (`Ok(true)`: bypassed) when the fleet fails
    /// open.
    fn unreachable(&self, target: &Target, error: Error) -> Result<bool, Error> {
        let inner = &self.inner;
        inner.unreachable(&error);
        if !inner.fleet.fail_open {
            return Err(error);
        }
        event!(WARN, target = %target, reason = %error, "fleet unavailable: failing open");
        let _ = target;
        inner.dirty.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// Leaves the fleet: the keeper sends the releases still queued and
    /// removes the heartbeat, so this member's slots stop counting now
    /// rather than after its lease. Waits for that, two call timeouts at
    /// most.
    pub(crate) async fn leave(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        inner.shutdown.notify_waiters();
        let left = async {
            loop {
                let notified = inner.left_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if inner.left.load(Ordering::Acquire) {
                    return;
                }
                // The keeper may be between its checks: wake it again.
                inner.shutdown.notify_waiters();
                notified.await;
            }
        };
        let _ = tokio::time::timeout(2 * CALL_TIMEOUT, left).await;
    }

    /// How many keys this member keeps state for.
    pub(crate) fn keys(&self) -> usize {
        lock(&self.inner.keys).len()
    }

    /// Whether the last call to Redis succeeded.
    pub(crate) fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::Relaxed)
    }
}

/// The fleet's Redis, reconnecting, each call bounded by `CALL_TIMEOUT`;
/// connected on first use.
fn connect(fleet: &Fleet) -> Result<ConnectionManager, Error> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(fleet.client.clone(), config).map_err(|e| Error::FleetUrl {
        input: fleet.shown.clone(),
        reason: e.to_string(),
    })
}

impl Drop for Member {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.shutdown.notify_waiters();
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("fleet", &self.inner.fleet)
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// Whether a request for a slot has had to wait, and what it runs the
/// first time it does.
struct Wait<F: FnOnce()> {
    on_wait: Option<F>,
    waited: bool,
}

impl<F: FnOnce()> Wait<F> {
    /// The request waits (again).
    fn begin(&mut self) {
        if let Some(on_wait) = self.on_wait.take() {
            on_wait();
        }
        self.waited = true;
    }
}

/// A request not yet granted: dropped armed (cancelled, timed out), it
/// takes its token out of the queue, or gives back a slot whose grant it
/// never heard of.
struct Pending<'a> {
    inner: &'a Arc<Membership>,
    key: Arc<str>,
    token: u64,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.inner.releases.send((self.key.clone(), self.token));
        }
    }
}

/// A waiting request's place in `Membership::waiting`, left on drop.
struct Waiting<'a> {
    inner: &'a Membership,
    key: Arc<str>,
    notify: Arc<Notify>,
}

impl<'a> Waiting<'a> {
    fn join(inner: &'a Membership, key: &Arc<str>) -> Waiting<'a> {
        let mut waiting = lock(&inner.waiting);
        let entry = waiting
            .entry(key.clone())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Waiting {
            inner,
            key: key.clone(),
            notify: entry.0.clone(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.inner.waiting);
        if let Some(entry) = waiting.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                waiting.remove(&self.key);
            }
        }
    }
}

impl Membership {
    /// The key's entry, made if new, with one user more: its turn, and the
    /// user that gives the entry up when dropped.
    fn use_key(
        self: &Arc<Membership>,
        key: &Arc<str>,
        target: &Target,
    ) -> (Arc<tokio::sync::Mutex<()>>, KeyUser) {
        let mut keys = lock(&self.keys);
        let entry = keys.entry(key.clone()).or_insert_with(|| KeyUse {
            target: target.clone(),
            turn: Arc::default(),
            users: 0,
        });
        entry.users += 1;
        let turn = entry.turn.clone();
        let user = KeyUser {
            inner: self.clone(),
            key: key.clone(),
        };
        (turn, user)
    }
}
