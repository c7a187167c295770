//! What a fleet member (`member.rs`) and its two tasks (`tasks.rs`)
//! share: the Redis connection and its scripts, the slots held, the
//! requests waiting by key, the keys in use, and how a call to Redis is
//! bounded in time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::{scripts, Fleet};
use crate::error::Error;
use crate::target::Target;
use crate::trace::event;

/// How often a waiting request asks again without a message.
pub(super) const RETRY: Duration = Duration::from_millis(250);
/// Releases sent in one round trip at most.
pub(super) const MAX_BATCH: usize = 256;
/// The longest a call to Redis may take before it counts as unreachable.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// What to do when another member wants a key this one may hold idle.
pub(super) type OnWanted = Box<dyn Fn(&Target) + Send + Sync>;

/// The wake-up of a key's waiting requests, and how many there are.
type Waiters = (Arc<Notify>, usize);

/// What a member and its two tasks share: the Redis connection and
/// scripts, the slots held, the requests waiting, the keys in use.
pub(super) struct Membership {
    pub(super) fleet: Fleet,
    pub(super) max: usize,
    /// `keepalive:fleet:<name>`.
    pub(super) ns: String,
    pub(super) id: String,
    pub(super) heartbeat: String,
    pub(super) redis: ConnectionManager,
    pub(super) acquire: Script,
    pub(super) renew: Script,
    pub(super) next_token: AtomicU64,
    /// Every slot this member holds (token → key), including those taken
    /// while Redis was away: what it puts back when Redis lost them.
    pub(super) held: Mutex<HashMap<u64, Arc<str>>>,
    /// Slots were taken without Redis: put them back when it answers.
    pub(super) dirty: AtomicBool,
    /// Waiting requests' wake-ups by key, with how many wait.
    pub(super) waiting: Mutex<HashMap<Arc<str>, Waiters>>,
    /// What this member keeps of each key while a connect of it asks or
    /// a slot of it is held, and no longer: a crawler's hosts come and go.
    pub(super) keys: Mutex<HashMap<Arc<str>, KeyUse>>,
    pub(super) on_wanted: OnWanted,
    pub(super) releases: mpsc::UnboundedSender<(Arc<str>, u64)>,
    pub(super) available: AtomicBool,
    /// The last successful renewal's start plus the lease: past it, this
    /// member's slots may be gone from Redis.
    pub(super) lease_ok_until: Mutex<Option<Instant>>,
    pub(super) closed: AtomicBool,
    pub(super) shutdown: Notify,
    /// Set by the keeper when it has left the fleet.
    pub(super) left: AtomicBool,
    pub(super) left_notify: Notify,
}

/// A key's target, for the listener to release idle connections of the
/// key when another member wants it, and its turn: only the holder asks
/// Redis, so this member stands in the fleet's queue once per key, and
/// its other requests for the key wait here in order.
pub(super) struct KeyUse {
    pub(super) target: Target,
    pub(super) turn: Arc<tokio::sync::Mutex<()>>,
    /// Connects asking and slots held.
    pub(super) users: usize,
}

impl Membership {
    /// A new member of `fleet`, under a fresh id, with `max` slots per key.
    pub(super) fn new(
        fleet: Fleet,
        max: usize,
        redis: ConnectionManager,
        on_wanted: OnWanted,
        releases: mpsc::UnboundedSender<(Arc<str>, u64)>,
    ) -> Membership {
        let ns = format!("keepalive:fleet:{}", fleet.name);
        let id = format!("{:x}-{}", rand_id(), std::process::id());
        Membership {
            max,
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
        }
    }
}

impl Membership {
    pub(super) fn key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{key}", self.ns)
    }

    pub(super) async fn try_acquire(&self, key: &str, token: u64) -> Result<bool, Error> {
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

    pub(super) fn token_name(&self, token: u64) -> String {
        format!("{}:{token}", self.id)
    }

    pub(super) fn reached(&self) {
        if !self.available.swap(true, Ordering::Relaxed) {
            event!(INFO, fleet = %self.fleet.name, "fleet reachable again");
        }
    }

    pub(super) fn unreachable(&self, error: &Error) {
        if self.available.swap(false, Ordering::Relaxed) {
            let cause = std::error::Error::source(error).map(ToString::to_string);
            event!(WARN, fleet = %self.fleet.name, reason = %error, cause = ?cause, "fleet unreachable");
            let _ = cause;
        }
        let _ = error;
    }
}

/// A Redis call that takes too long is a failure, as a refused one; a
/// refusal keeps Redis's error as the source.
pub(super) async fn within<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::fleet_unavailable("a call failed", Some(e))),
        Err(_) => Err(Error::fleet_unavailable(
            format!("no answer within {CALL_TIMEOUT:?}"),
            None,
        )),
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
