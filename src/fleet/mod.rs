//! [`Fleet`] (feature `fleet`): one per-host limit for many processes,
//! kept in Redis. The settings live here; the member that speaks to Redis
//! is `member.rs`, its two tasks `tasks.rs`, its scripts `scripts.rs`.
//!
//! # How it works
//!
//! Per key (a target's text, as `Display` writes it) Redis holds the
//! slots in use, one per open connection of any member (idle, in use or
//! connecting), and a queue of waiting requests ordered by a ticket from
//! one counter, so the earliest waiter of any member is served first. Each
//! member has a heartbeat key that expires after `lease` unless renewed;
//! slots and queue entries of a member whose heartbeat is gone do not
//! count. One Lua script takes a slot or queues (one round trip to open a
//! connection); the slot goes back after the socket is closed, batched
//! with the member's other releases in one pipelined round trip; reuse of
//! a pooled connection never calls Redis. Only one request per member and
//! key asks Redis at a time (a turn per key); while it waits in the
//! fleet's queue, the member's other requests for that key wait for the
//! turn or in the pool's queue, served by its connections as they come
//! back, so each member stands in the fleet's queue once per key. A member renews its heartbeat with
//! one command per `lease / 3`, however many connections it holds.
//!
//! Waiting requests are woken by a publish when a slot is freed (and poll
//! every 250 ms in case a message is lost). A request that must wait also
//! publishes that its key is wanted (at most every 500 ms per key): a
//! member holding an idle connection for that key closes one, so idle
//! connections never starve another member. The bound from the demand to
//! the idle close is the publish's delivery, milliseconds on a local
//! network; with a lost message, the next 250 ms retry publishes again.
//!
//! # Clocks
//!
//! Expiry is Redis's: heartbeats are keys with a `PX` time to live, which
//! Redis counts by its own clock, so the members' clocks do not matter.
//! Each member keeps a monotonic deadline, its last successful renewal
//! plus `lease`, past which it knows its lease may be gone; when it can
//! reach Redis again and finds its heartbeat gone (expired, or Redis
//! restarted empty), it puts every connection it still holds back.
//!
//! # Honest limits
//!
//! This is a politeness limit, not a lock for correctness. One Redis node
//! is assumed (a primary; Redis Cluster is not supported: the scripts read
//! heartbeat keys they are not given). As Martin Kleppmann's critique of
//! Redlock explains, leases over an asynchronous network can only promise
//! so much:
//!
//! * a failover to a replica that had not yet received the latest slots,
//!   or Redis restarted empty, forgets connections until their members
//!   put them back (within a renewal period, `lease / 3`): meanwhile the
//!   fleet may open more than `max_per_host`;
//! * a member that is paused (a stopped process, a long GC-like stall, a
//!   network split from Redis) for longer than `lease` loses its slots in
//!   Redis while its connections may still be open: the others may open
//!   theirs on top;
//! * with `fail_open(true)` (the default), members that cannot reach
//!   Redis open connections under their own limits only.
//!
//! In every case the fault is over-admission for a while, never a lost
//! request: a request waits at most its own timeout, and fails only as it
//! would without the fleet (or, with `fail_open(false)`, with
//! [`Error::is_fleet_unavailable`] at once).

mod member;
mod membership;
mod scripts;
mod tasks;

use std::fmt;
use std::time::Duration;

pub(crate) use member::{Member, Slot};

use crate::error::Error;

/// The lease when none is set: a member that dies stops counting within
/// this.
pub const DEFAULT_FLEET_LEASE: Duration = Duration::from_secs(10);

/// Many managers, in many processes or machines, sharing one per-host
/// limit through Redis (feature `fleet`).
///
/// Managers built with equal `Fleet`s (the same Redis and
/// [`name`](Fleet::name)) behave, per key, like one pool with the fleet's
/// [`max_per_host`](Fleet::max_per_host): a request beyond it waits, first
/// come first served across the fleet, within its timeout, and is served
/// as soon as any member's connection for that key closes. `docs/fleet.md`
/// in the repository says how, and what a failover, a network split or a
/// paused member can do.
///
/// `Debug` never shows the password of the URL.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let fleet = keepalive::Fleet::redis("redis://:s3cret@127.0.0.1:6379/0")?
///     .name("crawler")
///     .max_per_host(4)
///     .lease(Duration::from_secs(5))
///     .fail_open(true);
/// assert!(!format!("{fleet:?}").contains("s3cret"));
/// # let _ = keepalive::Manager::builder().fleet(fleet);
/// # Ok::<(), keepalive::Error>(())
/// ```
#[derive(Clone)]
pub struct Fleet {
    pub(crate) client: redis::Client,
    /// The URL as `Debug` shows it: the password as `***`.
    pub(crate) shown: String,
    pub(crate) name: String,
    pub(crate) max_per_host: usize,
    /// Whether `max_per_host` was given; else the builder's applies.
    pub(crate) max_per_host_set: bool,
    pub(crate) lease: Duration,
    pub(crate) fail_open: bool,
}

impl Fleet {
    /// A fleet coordinated by the Redis at `url`:
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` is
    /// refused: this build has no TLS for Redis). Defaults: name
    /// `"keepalive"`, `max_per_host` the builder's, lease
    /// [`DEFAULT_FLEET_LEASE`], fail open.
    ///
    /// Nothing connects yet: the first connection of a manager built with
    /// the fleet does.
    ///
    /// # Errors
    ///
    /// A URL that is not a Redis URL, with function `"fleet"`; its text
    /// never shows the password.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = keepalive::Fleet::redis("http://user:pw@127.0.0.1:6379").unwrap_err();
    /// assert_eq!(err.function(), "fleet");
    /// assert!(!err.to_string().contains("pw"));
    /// ```
    pub fn redis(url: &str) -> Result<Fleet, Error> {
        let shown = crate::redact::url(url, "a URL");
        let bad = |reason: String| Error::FleetUrl {
            input: shown.clone(),
            reason,
        };
        if !url.starts_with("redis://") {
            return Err(bad("a fleet URL starts with redis://".into()));
        }
        let client = redis::Client::open(url).map_err(|e| bad(crate::redact::text(&e.to_string(), url)))?;
        Ok(Fleet {
            client,
            shown,
            name: "keepalive".into(),
            max_per_host: 0,
            max_per_host_set: false,
            lease: DEFAULT_FLEET_LEASE,
            fail_open: true,
        })
    }

    /// Managers with the same Redis and name share limits; other names on
    /// the same Redis are apart. Defaults to `"keepalive"`.
    ///
    /// # Examples
    ///
    /// ```
    /// let fleet = keepalive::Fleet::redis("redis://127.0.0.1:6379")?.name("api-clients");
    /// # let _ = fleet;
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Fleet {
        self.name = name.into();
        self
    }

    /// Open connections per key across the fleet: idle, in use and
    /// connecting, of every member. Defaults to the builder's
    /// `max_per_host`; each member's own `max_per_host` still applies.
    ///
    /// # Panics
    ///
    /// When the builder is built, if `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let fleet = keepalive::Fleet::redis("redis://127.0.0.1:6379")?.max_per_host(2);
    /// # let _ = fleet;
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    pub fn max_per_host(mut self, n: usize) -> Fleet {
        self.max_per_host = n;
        self.max_per_host_set = true;
        self
    }

    /// How long a member's connections keep counting after it stops
    /// renewing (it died, or cannot reach Redis): at most 30 s, at least
    /// 300 ms; default [`DEFAULT_FLEET_LEASE`]. It renews every third of
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// let fleet = keepalive::Fleet::redis("redis://127.0.0.1:6379")?.lease(std::time::Duration::from_secs(3));
    /// # let _ = fleet;
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    pub fn lease(mut self, d: Duration) -> Fleet {
        self.lease = d.clamp(Duration::from_millis(300), Duration::from_secs(30));
        self
    }

    /// When Redis cannot be reached: `true` (the default) opens
    /// connections under the member's own limits only (counted in
    /// [`Stats::fleet_bypassed`](crate::Stats::fleet_bypassed), with a
    /// `tracing` warning); `false` fails new connections at once with
    /// [`Error::is_fleet_unavailable`]. Reuse of pooled connections goes on
    /// either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let strict = keepalive::Fleet::redis("redis://127.0.0.1:6379")?.fail_open(false);
    /// # let _ = strict;
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    pub fn fail_open(mut self, on: bool) -> Fleet {
        self.fail_open = on;
        self
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("redis", &self.shown)
            .field("name", &self.name)
            .field("max_per_host", &self.max_per_host)
            .field("lease", &self.lease)
            .field("fail_open", &self.fail_open)
            .finish()
    }
}
