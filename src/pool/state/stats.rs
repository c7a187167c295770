//! [`Stats`]: the snapshot `State` keeps the counts for, and [`Closes`],
//! why the pool closed each socket it closed.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Handles, Phase, State};
use crate::target::Target;

/// A snapshot of a manager's counts, from
/// [`Manager::stats`](crate::Manager::stats), or of one connection key's,
/// from [`Manager::stats_for`](crate::Manager::stats_for).
///
/// The gauges (`open` to `queued`) add up at every moment the pool's lock
/// is free: `open == idle + in_use + connecting`, never above `max_open`.
/// Every socket that connected is still open or was closed for one reason,
/// so `connects == idle + in_use + closes.total()` (equivalently, counting
/// sockets still connecting as opened: `connects + connecting == open +
/// closes.total()`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stats = keepalive::Manager::new().stats();
/// assert_eq!((stats.open, stats.connects, stats.closes.total()), (0, 0, 0));
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sockets connected or connecting: idle + in use + connecting.
    pub open: usize,
    /// Sockets in the pool, ready for reuse.
    pub idle: usize,
    /// Sockets on loan as `Connection`s: an object lent to several users
    /// at once (an HTTP/2 connection) counts once.
    pub in_use: usize,
    /// Loans out now: equal to `in_use` for objects lent to one user at a
    /// time; for shared objects, every loan (an HTTP/2 connection's open
    /// streams).
    pub loans: usize,
    /// Sockets in TCP connect (or TLS handshake).
    pub connecting: usize,
    /// Requests neither served nor connecting: waiting for a name lookup or
    /// for a slot.
    pub queued: usize,
    /// Sockets connected since the manager started.
    pub connects: u64,
    /// Allocations served from the pool (immediate + deferred).
    pub reuses: u64,
    /// Sockets found closed, reset, dead, carrying unread data, or after an
    /// I/O error, and dropped instead of reused: the sum of the
    /// `closed_by_peer`, `found_dead`, `unsolicited_data`, `dead_peer`,
    /// `unread` and `io_error` closes.
    pub stale_discarded: u64,
    /// Calls of [`Resolve::resolve`](crate::Resolve::resolve).
    pub dns_lookups: u64,
    /// Why each closed socket was closed.
    pub closes: Closes,
    /// For [`Manager::stats_for`](crate::Manager::stats_for): how long the
    /// key's server keeps idle connections, as learned from its closes or
    /// told by `Connection::set_server_idle_timeout`; idle sockets are
    /// retired a margin before it. `None` when nothing is known, and always
    /// in the manager-wide [`Manager::stats`](crate::Manager::stats).
    pub server_idle_timeout: Option<Duration>,
    /// Connects that waited for room in the fleet (feature `fleet`):
    /// every member's connections for the key were at the fleet's
    /// `max_per_host`.
    pub fleet_waits: u64,
    /// The time those connects spent waiting for the fleet, in all.
    pub fleet_wait_time: Duration,
    /// Connects opened under this manager's own limits only because the
    /// fleet's Redis could not be reached (`Fleet::fail_open(true)`).
    pub fleet_bypassed: u64,
    /// For a member of a fleet: whether its Redis answered the last call
    /// (`false`: new connections fail open or fail, as the fleet says).
    /// `None` without a fleet.
    pub fleet_reachable: Option<bool>,
    /// For a member of a fleet, in [`Manager::stats`](crate::Manager::stats)
    /// only: how many keys it keeps fleet state for (a connect asking the
    /// fleet, or a slot held by a connection). A key's state goes with its
    /// last connection, so the hosts of a long crawl cost nothing once
    /// left. 0 without a fleet.
    pub fleet_keys: usize,
}

/// Sockets the pool closed, by reason. Every socket that connected and is
/// no longer open is counted in exactly one field.
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
/// let stats = manager.stats();
/// assert_eq!(stats.closes.discarded, 1);
/// assert_eq!(stats.connects, stats.idle as u64 + stats.in_use as u64 + stats.closes.total());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closes {
    /// Idle for `keep_alive`.
    pub idle_timeout: u64,
    /// Retired a margin before the server's idle limit (learned or told),
    /// so that no request meets the server's close on its way.
    pub server_limit: u64,
    /// Closed (FIN) or reset (RST) by the server while idle in the pool, or
    /// found so when it came back.
    pub closed_by_peer: u64,
    /// Found closed or reset by the kernel check as it was handed out.
    pub found_dead: u64,
    /// The server sent bytes nobody asked for while it was idle.
    pub unsolicited_data: u64,
    /// The peer stopped answering: TCP keepalive probes or the user
    /// timeout ran out (`ETIMEDOUT`).
    pub dead_peer: u64,
    /// Older than `max_lifetime`.
    pub lifetime: u64,
    /// Handed out as many times as `Connection::set_remaining_uses` allowed.
    pub uses_spent: u64,
    /// Closed to make room under `max_open` for another key.
    pub evicted: u64,
    /// Discarded by the user ([`Connection::discard`](crate::Connection::discard)),
    /// shut down for writing, or dropped after reading end of stream.
    pub discarded: u64,
    /// Returned with bytes the user had not read.
    pub unread: u64,
    /// Returned, but its [`Pooled::recycle`](crate::Pooled::recycle)
    /// refused it (a session left mid-transaction, say).
    pub recycle_refused: u64,
    /// Returned after an I/O error.
    pub io_error: u64,
    /// Closed by [`Manager::shutdown`](crate::Manager::shutdown), or
    /// returned after it.
    pub shutdown: u64,
    /// Connected for a request that had left (cancelled or timed out), with
    /// no room to keep it idle.
    pub unneeded: u64,
    /// Idle, and closed because another member of the fleet waited for
    /// its key (feature `fleet`).
    pub fleet_released: u64,
    /// The server said it closes the connection after the response
    /// (`Connection: close`, or HTTP/1.0 without keep-alive):
    /// [`Connection::server_said_close`](crate::Connection::server_said_close).
    pub connection_close: u64,
    /// The server said it takes no new requests on the connection (an
    /// HTTP/2 GOAWAY): closed when its last loan ended, or at once if it
    /// had none ([`Health::GoingAway`](crate::Health::GoingAway)).
    pub goaway: u64,
    /// Its server's address left the answer when the name was looked up
    /// again ([`Builder::refresh_dns`](crate::Builder::refresh_dns)):
    /// closed idle, or as it came back from a loan.
    pub address_gone: u64,
}

impl Closes {
    /// Every close, whatever its reason.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Closes::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.each().iter().map(|(_, n)| n).sum()
    }

    /// Each reason, named as its field, with its count, in the fields'
    /// order: for reports and logs.
    ///
    /// # Examples
    ///
    /// ```
    /// let closes = keepalive::Closes::default();
    /// assert!(closes.iter().any(|(name, n)| name == "evicted" && n == 0));
    /// assert_eq!(closes.iter().count(), 19);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        self.each().into_iter().map(|(reason, n)| (reason.name(), n))
    }

    /// The closes `Stats::stale_discarded` counts.
    pub(crate) fn stale(&self) -> u64 {
        self.closed_by_peer
            + self.found_dead
            + self.unsolicited_data
            + self.dead_peer
            + self.unread
            + self.io_error
    }

    /// Each reason with its count, named as [`CloseReason::name`] names it.
    pub(crate) fn each(&self) -> [(CloseReason, u64); 19] {
        use CloseReason::*;
        [
            (IdleTimeout, self.idle_timeout),
            (ServerLimit, self.server_limit),
            (ClosedByPeer, self.closed_by_peer),
            (FoundDead, self.found_dead),
            (UnsolicitedData, self.unsolicited_data),
            (DeadPeer, self.dead_peer),
            (Lifetime, self.lifetime),
            (UsesSpent, self.uses_spent),
            (Evicted, self.evicted),
            (Discarded, self.discarded),
            (Unread, self.unread),
            (RecycleRefused, self.recycle_refused),
            (IoError, self.io_error),
            (Shutdown, self.shutdown),
            (Unneeded, self.unneeded),
            (FleetReleased, self.fleet_released),
            (ConnectionClose, self.connection_close),
            (Goaway, self.goaway),
            (AddressGone, self.address_gone),
        ]
    }

    /// Counts one close.
    pub(crate) fn count(&mut self, reason: CloseReason) {
        *self.field(reason) += 1;
    }

    fn field(&mut self, reason: CloseReason) -> &mut u64 {
        match reason {
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::ServerLimit => &mut self.server_limit,
            CloseReason::ClosedByPeer => &mut self.closed_by_peer,
            CloseReason::FoundDead => &mut self.found_dead,
            CloseReason::UnsolicitedData => &mut self.unsolicited_data,
            CloseReason::DeadPeer => &mut self.dead_peer,
            CloseReason::Lifetime => &mut self.lifetime,
            CloseReason::UsesSpent => &mut self.uses_spent,
            CloseReason::Evicted => &mut self.evicted,
            CloseReason::Discarded => &mut self.discarded,
            CloseReason::Unread => &mut self.unread,
            CloseReason::RecycleRefused => &mut self.recycle_refused,
            CloseReason::IoError => &mut self.io_error,
            CloseReason::Shutdown => &mut self.shutdown,
            CloseReason::Unneeded => &mut self.unneeded,
            CloseReason::FleetReleased => &mut self.fleet_released,
            CloseReason::ConnectionClose => &mut self.connection_close,
            CloseReason::Goaway => &mut self.goaway,
            CloseReason::AddressGone => &mut self.address_gone,
        }
    }
}

/// Why the pool closed a socket: one per field of [`Closes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CloseReason {
    IdleTimeout,
    ServerLimit,
    ClosedByPeer,
    FoundDead,
    UnsolicitedData,
    DeadPeer,
    Lifetime,
    UsesSpent,
    Evicted,
    Discarded,
    Unread,
    RecycleRefused,
    IoError,
    Shutdown,
    Unneeded,
    FleetReleased,
    ConnectionClose,
    Goaway,
    AddressGone,
}

impl CloseReason {
    /// The name of its field in [`Closes`], for logs and events.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::ServerLimit => "server_limit",
            CloseReason::ClosedByPeer => "closed_by_peer",
            CloseReason::FoundDead => "found_dead",
            CloseReason::UnsolicitedData => "unsolicited_data",
            CloseReason::DeadPeer => "dead_peer",
            CloseReason::Lifetime => "lifetime",
            CloseReason::UsesSpent => "uses_spent",
            CloseReason::Evicted => "evicted",
            CloseReason::Discarded => "discarded",
            CloseReason::Unread => "unread",
            CloseReason::RecycleRefused => "recycle_refused",
            CloseReason::IoError => "io_error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Unneeded => "unneeded",
            CloseReason::FleetReleased => "fleet_released",
            CloseReason::ConnectionClose => "connection_close",
            CloseReason::Goaway => "goaway",
            CloseReason::AddressGone => "address_gone",
        }
    }
}

/// The snapshots of the counts `State` keeps.
impl<P: Handles> State<P> {
    /// The manager-wide snapshot.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            open: self.open(),
            idle: self.idle,
            in_use: self.in_use,
            loans: self.in_use + self.extra_loans,
            connecting: self.connecting,
            queued: self.queued,
            connects: self.counts.connects,
            reuses: self.counts.reuses,
            stale_discarded: self.counts.closes.stale(),
            dns_lookups: self.counts.dns_lookups,
            closes: self.counts.closes,
            server_idle_timeout: None,
            fleet_reachable: None,
            ..self.counts.fleet()
        }
    }

    /// The same snapshot for one key; zeros for a key the pool does not
    /// know (or no longer remembers). Not on a hot path: it walks the
    /// sockets and the pending requests.
    pub(crate) fn stats_for(&self, target: &Target, now: Instant) -> Stats {
        let Some(&key) = self.key_index.get(target) else {
            return Stats::default();
        };
        let mut tally = Tally::default();
        for (_, s) in self.sockets.iter().filter(|(_, s)| s.key == key) {
            tally.socket(s);
        }
        for (_, req) in self.requests.iter().filter(|(_, r)| r.key == key) {
            tally.count(req);
        }
        self.key_stats(key, tally, now)
    }

    /// [`State::stats_for`] for every key with an open connection or a
    /// pending request, and every remembered key whose server's idle limit
    /// is known; one pass over the sockets and requests.
    pub(crate) fn stats_per_key(&self, now: Instant) -> Vec<(Target, Stats)> {
        let mut tallies: HashMap<usize, Tally> = HashMap::new();
        for (_, s) in self.sockets.iter() {
            tallies.entry(s.key).or_default().socket(s);
        }
        for (_, req) in self.requests.iter() {
            tallies.entry(req.key).or_default().count(req);
        }
        self.keys
            .iter()
            .filter(|(_, k)| k.open > 0 || k.pending > 0 || k.server.limit(now).is_some())
            .map(|(key, k)| {
                let tally = tallies.get(&key).copied().unwrap_or_default();
                (k.target.clone(), self.key_stats(key, tally, now))
            })
            .collect()
    }

    /// One key's snapshot, given its idle sockets and requests by phase.
    fn key_stats(&self, key: usize, tally: Tally, now: Instant) -> Stats {
        let k = &self.keys[key];
        Stats {
            open: k.open,
            idle: tally.idle,
            in_use: k.open - tally.idle - tally.connecting,
            loans: k.open - tally.idle - tally.connecting + tally.extra_loans,
            connecting: tally.connecting,
            queued: tally.queued,
            connects: k.counts.connects,
            reuses: k.counts.reuses,
            stale_discarded: k.counts.closes.stale(),
            dns_lookups: k.counts.dns_lookups,
            closes: k.counts.closes,
            server_idle_timeout: k.server.limit(now),
            fleet_reachable: None,
            ..k.counts.fleet()
        }
    }
}

/// A key's idle sockets and its requests by phase, for its snapshot.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    idle: usize,
    /// Loans beyond the first of each shared object.
    extra_loans: usize,
    queued: usize,
    connecting: usize,
}

impl Tally {
    fn socket<S>(&mut self, s: &super::SocketEntry<S>) {
        self.idle += usize::from(s.idle.is_some());
        self.extra_loans += s.loans.saturating_sub(1);
    }

    /// A request, by its phase; a warm connect's lookup is not queued.
    fn count<P: Handles>(&mut self, req: &super::Request<P>) {
        match req.phase {
            Phase::Connecting(_) => self.connecting += 1,
            Phase::Resolving(_) if req.warm => {}
            Phase::Resolving(_) | Phase::Queued(_) => self.queued += 1,
        }
    }
}

impl super::Counts {
    /// The fleet's counters as `Stats` fields (zeros without the feature).
    fn fleet(&self) -> Stats {
        #[cfg(feature = "fleet")]
        return Stats {
            fleet_waits: self.fleet_waits,
            fleet_wait_time: self.fleet_wait_time,
            fleet_bypassed: self.fleet_bypassed,
            ..Stats::default()
        };
        #[cfg(not(feature = "fleet"))]
        Stats::default()
    }
}
