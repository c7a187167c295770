//! One manager's membership of a fleet: taking a slot before a connect
//! (`admit`), giving it back after the socket is closed (`Slot`'s drop),
//! the heartbeat, and the messages of the other members.
//!
//! Its two tasks, the keeper and the listener, are `tasks.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::membership::{KeyUse, Membership, OnWanted, CALL_TIMEOUT, RETRY};
use super::{scripts, tasks, Fleet};
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let redis = ConnectionManager::new_lazy_with_config(fleet.client.clone(), config).map_err(|e| {
            Error::FleetUrl {
                input: fleet.shown.clone(),
                reason: e.to_string(),
            }
        })?;
        let ns = format!("keepalive:fleet:{}", fleet.name);
        let id = format!("{:x}-{}", rand_id(), std::process::id());
        let (releases, release_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Membership {
            max: if fleet.max_per_host_set {
                fleet.max_per_host
            } else {
                max_per_host
            },
            heartbeat: format!("{ns}:member:{id}"),
            ns,
            id,
            redis,
            acquire: Script::new(scripts::ACQUIRE),
            renew: Script::new(scripts::RENEW),
            next_token: AtomicU64::new(1),
            held: Mutex::default(),
            dirty: AtomicBool::new(false),
            waiting: Mutex::default(),
            keys: Mutex::default(),
            on_wanted,
            releases,
            available: AtomicBool::new(true),
            lease_ok_until: Mutex::new(None),
            closed: AtomicBool::new(false),
            shutdown: Notify::new(),
            left: AtomicBool::new(false),
            left_notify: Notify::new(),
            fleet,
        });
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
        let mut on_wait = Some(on_wait);
        let inner = &self.inner;
        let key: Arc<str> = target.to_string().into();
        let (turn, user) = inner.use_key(&key, target);
        // Past the local deadline this member's heartbeat may be gone, and
        // a slot taken now would not count for the others: renew first.
        if lock(&inner.lease_ok_until).is_none_or(|until| Instant::now() >= until) {
            tasks::renew(inner).await;
        }
        let mut waited = false;
        let started = Instant::now();
        let _turn = match turn.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                // Another request of this member for the key is asking:
                // wait for it (a socket coming back may serve this one).
                if let Some(on_wait) = on_wait.take() {
                    on_wait();
                }
                waited = true;
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
        let waiting = Waiting::join(inner, &key);
        let bypassed = loop {
            let notified = waiting.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match inner.try_acquire(&key, token).await {
                Ok(true) => {
                    inner.reached();
                    break false;
                }
                Ok(false) => {
                    inner.reached();
                    if let Some(on_wait) = on_wait.take() {
                        event!(DEBUG, target = %target, "fleet full: waiting");
                        on_wait();
                    }
                    waited = true;
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
                Err(reason) => {
                    inner.unreachable(&reason);
                    if !inner.fleet.fail_open {
                        return Err(Error::FleetUnavailable { reason });
                    }
                    event!(WARN, target = %target, reason = %reason, "fleet unavailable: failing open");
                    inner.dirty.store(true, Ordering::Relaxed);
                    break true;
                }
            }
        };
        pending.armed = false;
        lock(&inner.held).insert(token, key.clone());
        if waited {
            event!(DEBUG, target = %target, waited_ms = started.elapsed().as_millis() as u64, "fleet slot after a wait");
        }
        Ok(Admission {
            slot: Slot {
                inner: inner.clone(),
                key,
                token,
                _user: user,
            },
            waited: waited.then(|| started.elapsed()),
            bypassed,
        })
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

/// A member id that another process is unlikely to draw: the clock's
/// nanoseconds mixed with this process's address space.
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
