//! One manager's membership of a fleet: taking a slot before a connect
//! (`admit`), giving it back after the socket is closed (`Slot`'s drop),
//! the heartbeat, and the messages of the other members.
//!
//! Two tasks per member: the keeper (renews the heartbeat every third of
//! the lease, sends the releases, puts the slots back when Redis lost
//! them) and the listener (the `freed` and `wanted` channels). Both end
//! when the manager's shared state is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::{scripts, Fleet};
use crate::error::Error;
use crate::target::Target;
use crate::trace::event;

/// How often a waiting request asks again without a message.
const RETRY: Duration = Duration::from_millis(250);
/// Releases sent in one round trip at most.
const MAX_BATCH: usize = 256;
/// The longest a call to Redis may take before it counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// What to do when another member wants a key this one may hold idle.
pub(crate) type OnWanted = Box<dyn Fn(&Target) + Send + Sync>;

/// The wake-up of a key's waiting requests, and how many there are.
type Waiters = (Arc<Notify>, usize);

/// A manager's membership; its tasks end when it is dropped.
pub(crate) struct Member {
    inner: Arc<Inner>,
}

struct Inner {
    fleet: Fleet,
    max: usize,
    /// `keepalive:fleet:<name>`.
    ns: String,
    id: String,
    heartbeat: String,
    redis: ConnectionManager,
    acquire: Script,
    renew: Script,
    next_token: AtomicU64,
    /// Every slot this member holds (token → key), including those taken
    /// while Redis was away: what it puts back when Redis lost them.
    held: Mutex<HashMap<u64, Arc<str>>>,
    /// Slots were taken without Redis: put them back when it answers.
    dirty: AtomicBool,
    /// Waiting requests' wake-ups by key, with how many wait.
    waiting: Mutex<HashMap<Arc<str>, Waiters>>,
    /// The targets of the keys this member asked for, by key.
    targets: Mutex<HashMap<Arc<str>, Target>>,
    /// One turn per key: only the holder asks Redis, so this member
    /// stands in the fleet's queue once per key, and its other requests
    /// for the key wait here in order.
    turns: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    on_wanted: OnWanted,
    releases: mpsc::UnboundedSender<(Arc<str>, u64)>,
    available: AtomicBool,
    /// The last successful renewal's start plus the lease: past it, this
    /// member's slots may be gone from Redis.
    lease_ok_until: Mutex<Option<Instant>>,
    closed: AtomicBool,
    shutdown: Notify,
    /// Set by the keeper when it has left the fleet.
    left: AtomicBool,
    left_notify: Notify,
}

/// A slot taken for a connection; dropped (after the socket is closed,
/// being the last field of the pooled socket), it is given back.
pub(crate) struct Slot {
    inner: Arc<Inner>,
    key: Arc<str>,
    token: u64,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Redis call that takes too long is a failure, as a refused one.
async fn within<T>(call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
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
        let inner = Arc::new(Inner {
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
            targets: Mutex::default(),
            turns: Mutex::default(),
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
        tokio::spawn(keep(inner.clone(), release_rx));
        tokio::spawn(listen(inner.clone()));
        Ok(Member { inner })
    }

    /// A slot for a new connection to `target`: at once when the fleet has
    /// room and nobody waits before this request; else when a slot is
    /// freed and this request is the earliest waiter. Dropping the future
    /// takes the request out of the queue.
    ///
    /// # Errors
    ///
    /// `Error::FleetUnavailable` when Redis cannot be reached and the fleet
    /// does not fail open.
    /// `on_wait` runs once, when the request first has to wait.
    pub(crate) async fn admit(&self, target: &Target, on_wait: impl FnOnce()) -> Result<Admission, Error> {
        let mut on_wait = Some(on_wait);
        let inner = &self.inner;
        let key: Arc<str> = target.to_string().into();
        lock(&inner.targets)
            .entry(key.clone())
            .or_insert_with(|| target.clone());
        // Past the local deadline this member's heartbeat may be gone, and
        // a slot taken now would not count for the others: renew first.
        if lock(&inner.lease_ok_until).is_none_or(|until| Instant::now() >= until) {
            renew(inner).await;
        }
        let mut waited = false;
        let started = Instant::now();
        let turn = lock(&inner.turns).entry(key.clone()).or_default().clone();
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
    inner: &'a Arc<Inner>,
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

/// A waiting request's place in `Inner::waiting`, left on drop.
struct Waiting<'a> {
    inner: &'a Inner,
    key: Arc<str>,
    notify: Arc<Notify>,
}

impl<'a> Waiting<'a> {
    fn join(inner: &'a Inner, key: &Arc<str>) -> Waiting<'a> {
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

impl Inner {
    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{key}", self.ns)
    }

    async fn try_acquire(&self, key: &str, token: u64) -> Result<bool, String> {
        let mut redis = self.redis.clone();
        let mut call = self.acquire.prepare_invoke();
        call.key(self.key("slots", key))
            .key(self.key("queue", key))
            .key(self.key("waiters", key))
            .key(format!("{}:ticket", self.ns))
            // Each member's demand is said at most every 500 ms, not one
            // member's for all.
            .key(format!("{}:{}", self.key("wanted", key), self.id))
            .arg(format!("{}:member:", self.ns))
            .arg(&self.id)
            .arg(self.token_name(token))
            .arg(self.max)
            .arg(&self.ns)
            .arg(key);
        let granted: i64 = within(call.invoke_async(&mut redis)).await?;
        Ok(granted == 1)
    }

    fn token_name(&self, token: u64) -> String {
        format!("{}:{token}", self.id)
    }

    fn reached(&self) {
        if !self.available.swap(true, Ordering::Relaxed) {
            event!(INFO, fleet = %self.fleet.name, "fleet reachable again");
        }
    }

    fn unreachable(&self, reason: &str) {
        if self.available.swap(false, Ordering::Relaxed) {
            event!(WARN, fleet = %self.fleet.name, reason = %reason, "fleet unreachable");
        }
        let _ = reason;
    }
}

/// Renews the heartbeat every third of the lease, sends releases as they
/// come, and puts the slots back when Redis lost them.
async fn keep(inner: Arc<Inner>, mut releases: mpsc::UnboundedReceiver<(Arc<str>, u64)>) {
    let period = inner.fleet.lease / 3;
    let mut next_renewal = Instant::now();
    loop {
        if inner.closed.load(Ordering::Acquire) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_renewal) => {
                next_renewal = Instant::now() + period;
                renew(&inner).await;
            }
            release = releases.recv() => match release {
                Some(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match releases.try_recv() {
                            Ok(release) => batch.push(release),
                            Err(_) => break,
                        }
                    }
                    send_releases(&inner, &batch).await;
                }
                None => break,
            },
            () = inner.shutdown.notified() => break,
        }
    }
    // Leaving: what is left to release, then the heartbeat, so the others
    // need not wait for the lease.
    let mut rest = Vec::new();
    while let Ok(release) = releases.try_recv() {
        rest.push(release);
    }
    for batch in rest.chunks(MAX_BATCH) {
        send_releases(&inner, batch).await;
    }
    let mut redis = inner.redis.clone();
    let _ = within(
        redis::cmd("DEL")
            .arg(&inner.heartbeat)
            .query_async::<i64>(&mut redis),
    )
    .await;
}

/// Gives slots back, or takes tokens out of the queue (whichever each
/// had), in one round trip for the whole batch, and wakes the waiters of
/// each key.
async fn send_releases(inner: &Inner, batch: &[(Arc<str>, u64)]) {
    let mut pipe = redis::pipe();
    let mut keys = std::collections::BTreeSet::new();
    for (key, token) in batch {
        let token = inner.token_name(*token);
        pipe.cmd("HDEL").arg(inner.key("slots", key)).arg(&token).ignore();
        pipe.cmd("ZREM").arg(inner.key("queue", key)).arg(&token).ignore();
        pipe.cmd("HDEL")
            .arg(inner.key("waiters", key))
            .arg(&token)
            .ignore();
        keys.insert(key.clone());
    }
    for key in keys {
        pipe.cmd("PUBLISH")
            .arg(format!("{}:freed", inner.ns))
            .arg(&*key)
            .ignore();
    }
    let mut redis = inner.redis.clone();
    match within(pipe.query_async::<()>(&mut redis)).await {
        Ok(()) => inner.reached(),
        // Redis lost them, or will expire them with the heartbeat: either
        // way the slots stop counting.
        Err(reason) => inner.unreachable(&reason),
    }
}

async fn renew(inner: &Inner) {
    let started = Instant::now();
    let lease_ms = u64::try_from(inner.fleet.lease.as_millis()).unwrap_or(u64::MAX);
    let mut redis = inner.redis.clone();
    let mut call = inner.renew.prepare_invoke();
    call.key(&inner.heartbeat).arg(lease_ms);
    match within(call.invoke_async::<i64>(&mut redis)).await {
        Ok(existed) => {
            inner.reached();
            *lock(&inner.lease_ok_until) = Some(started + inner.fleet.lease);
            // Gone (expired, or Redis restarted empty), or slots taken
            // while Redis was away: put them back.
            if existed == 0 || inner.dirty.swap(false, Ordering::Relaxed) {
                restore(inner).await;
            }
        }
        Err(reason) => inner.unreachable(&reason),
    }
}

/// Puts every slot this member holds back into Redis (after a restart, a
/// lapse of the lease, or connections opened while it was away).
async fn restore(inner: &Inner) {
    let held: Vec<(u64, Arc<str>)> = lock(&inner.held).iter().map(|(t, k)| (*t, k.clone())).collect();
    if held.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (token, key) in &held {
        pipe.cmd("HSET")
            .arg(inner.key("slots", key))
            .arg(inner.token_name(*token))
            .arg(&inner.id)
            .ignore();
    }
    let mut redis = inner.redis.clone();
    match within(pipe.query_async::<()>(&mut redis)).await {
        Ok(()) => {
            event!(INFO, fleet = %inner.fleet.name, slots = held.len() as u64, "fleet slots put back");
            // A slot released while this ran may have been put back after
            // its release: release it again.
            let now = lock(&inner.held).clone();
            for (token, key) in held.into_iter().filter(|(t, _)| !now.contains_key(t)) {
                let _ = inner.releases.send((key, token));
            }
        }
        Err(reason) => {
            inner.dirty.store(true, Ordering::Relaxed);
            inner.unreachable(&reason);
        }
    }
}

/// Follows the `freed` and `wanted` channels, reconnecting while the
/// member lives.
async fn listen(inner: Arc<Inner>) {
    let freed = format!("{}:freed", inner.ns);
    let wanted = format!("{}:wanted", inner.ns);
    while !inner.closed.load(Ordering::Acquire) {
        let subscribed = async {
            let mut pubsub = inner.fleet.client.get_async_pubsub().await?;
            pubsub.subscribe(&freed).await?;
            pubsub.subscribe(&wanted).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(CALL_TIMEOUT, subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    () = inner.shutdown.notified() => return,
                }
            }
        };
        // The waiters may have missed a message while unsubscribed.
        for (notify, _) in lock(&inner.waiting).values() {
            notify.notify_waiters();
        }
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                () = inner.shutdown.notified() => return,
            };
            let Some(message) = message else { break };
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            if message.get_channel_name() == freed {
                if let Some((notify, _)) = lock(&inner.waiting).get(payload.as_str()) {
                    notify.notify_waiters();
                }
                continue;
            }
            // `key\nmember`: a member's own demand is not another's.
            let Some((key, member)) = payload.rsplit_once('\n') else {
                continue;
            };
            if member == inner.id {
                continue;
            }
            let target = lock(&inner.targets).get(key).cloned();
            if let Some(target) = target {
                (inner.on_wanted)(&target);
            }
        }
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
