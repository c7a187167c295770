//! Every pool decision, as plain data: no clock reads, no spawning, no
//! waiting.
//!
//! `State` is what the manager's one mutex guards. Its methods take the
//! current time and push [`Action`]s (deliver a socket, fail a request,
//! start a connect or a lookup, close a socket, abort a task) that the
//! caller carries out after dropping the lock. It is generic over
//! [`Handles`], so unit tests drive it with fake sockets and responders,
//! and it imports nothing from the modules above it: the public types it
//! defines ([`RequestId`], [`FromCache`], [`Stats`]) are re-exported by
//! them.
//!
//! One system call does happen under the lock: when a socket is handed to
//! a request that waited ([`State::put_back`] with a waiter, and the idle
//! sockets `take_idle` goes through), [`Poolable::check`] asks the kernel
//! whether it is still usable (a non-blocking `recv(MSG_PEEK)`, or reading
//! pending TLS records). It never blocks. The hot path, `allocate` finding
//! an idle socket, makes that check after the lock is dropped
//! ([`State::checkout`], then [`State::revoke`] if it was stale).
//!
//! The decisions live in `sockets.rs` (checkout, return, idle events),
//! `connects.rs` (a connect's success), `shares.rs` (objects lent to
//! several users at once), `requests.rs` (requests, placement,
//! cancellation), `lookups.rs` (shared name lookups), `room.rs` (the rule
//! for room under the limits, and the queue it serves), `expiry.rs` (the
//! background task's pass), `warm.rs` (`keep_warm`) and `refresh.rs`
//! (`refresh_dns`); `keys.rs` is a key's life (made on first use, dormant,
//! forgotten); the bookkeeping they share is here. At the edge:
//! `inputs.rs` (what the state is given: limits, the socket trait, new
//! requests), `ids.rs` and `actions.rs` (what it decides); `stats.rs` is
//! the snapshot, `server_limit.rs` what it learns of a server's idle
//! limit, and `idle_lists.rs` and `dns_cache.rs` the structures only it
//! uses.
//!
//! # Where each limit is enforced
//!
//! * `max_per_host` and `max_open`: [`State::room`] is the one rule ("may
//!   a new socket of this key open?"), and [`State::claim_room`] acts on
//!   it, evicting the least recently used idle socket when only
//!   `max_open` is in the way. It is asked by `place` (a request with
//!   addresses), `serve_waiters` (queued requests, oldest first across
//!   keys), `connected` (a socket whose request left, kept only with
//!   `Room::Free`) and `can_start_now` (would a new request wait?).
//!   `update_eligible` keeps the set of keys blocked only by `max_open`.
//! * `max_queued`: `request`, before a request that would wait is stored.
//! * `keep_alive` and request deadlines: `expire`, which the background
//!   task calls at the time it returns.
//!
//! # Invariants (checked after every step by `check` in the tests)
//!
//! * `open == idle + in_use + connecting == Σ key.open`, `open <= max_open`,
//!   every `key.open <= max_per_host`.
//! * A key with waiters has no idle socket, and no shared object with room
//!   for another loan.
//! * A shared object on loan has `1 ..= capacity` loans, is counted once
//!   (in `in_use`), and is idle iff it has none; it is in its key's
//!   `shared` list iff it is on loan and not retired.
//! * `eligible` holds exactly the keys with waiters beyond what their
//!   connects in flight are expected to serve, and room under
//!   `max_per_host`; when it is non-empty, `open == max_open` and no socket
//!   is idle (otherwise `serve_waiters` would have served them).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use slab::Slab;
use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::error::Error;
use crate::target::{Target, TargetMap};
pub(crate) use actions::{Action, Actions, TaskOwner};
use dns_cache::DnsCache;
use idle_lists::{Ends, Linked, Links};
pub(crate) use ids::{LookupId, SocketId, NO_SLOT};
pub(crate) use inputs::{Addrs, Dialed, Handles, Health, Hints, Limits, NewRequest, Poolable, Staged};
use room::Room;
pub(crate) use stats::CloseReason;
pub(crate) use warm::WarmPlan;
// Public types the state defines, re-exported by the modules that present
// them (`loan`, `manager`).
pub use actions::FromCache;
pub use ids::RequestId;
pub use stats::{Closes, Stats};

mod actions;
mod connects;
mod dns_cache;
mod expiry;
#[cfg(feature = "fleet")]
mod fleet;
mod idle_lists;
mod ids;
mod inputs;
mod keys;
mod lookups;
mod meters;
mod refresh;
mod requests;
mod room;
mod server_limit;
mod shares;
mod sockets;
mod stats;
mod warm;

/// Per connection key bookkeeping.
struct Key {
    target: Target,
    /// Connects started for this key: with `spread_addresses`, the next
    /// one starts at this place in each family's addresses.
    dialed: usize,
    /// This key's sockets: idle + in use + connecting. Never above
    /// `max_per_host`.
    open: usize,
    /// This key's idle sockets, oldest first.
    idle: Ends,
    /// Requests waiting for a socket of this key, first come first served.
    waiters: VecDeque<RequestId>,
    /// Live requests naming this key, in any phase; the key turns dormant
    /// when this and `open` are zero.
    pending: usize,
    /// `Some(seq of the first waiter)` iff the key is in `State::eligible`.
    eligible: Option<u64>,
    /// `Some(n)` while dormant: the key's place in `State::dormant`.
    dormant: Option<u64>,
    /// What the key's server is known to do with idle connections.
    server: server_limit::ServerLimit,
    /// This key's connect tasks (part of `open`).
    connecting: usize,
    /// How many loans a connection of this key is expected to serve at
    /// once: the protocol's guess until one connected, then what the
    /// latest one could. A connect in flight counts as that many, so a
    /// burst opens one connection per `expect` requests (Envoy's rule).
    expect: usize,
    /// This key's shared objects on loan that may take more loans (not
    /// retired), oldest first: where a request looks before the idle list.
    shared: Vec<usize>,
    /// This key's share of the counters.
    counts: Counts,
    /// This key's metrics' handles.
    #[cfg(feature = "metrics")]
    meters: meters::KeyMeters,
    /// What `keep_warm` asked of this key, while it keeps connections.
    warm: Option<warm::Warm>,
    /// This key's warm connects still waiting for their lookup (the others
    /// count in `open`).
    warm_resolving: usize,
    /// When this key's name is looked up again (`refresh_dns`).
    refresh_at: Option<Instant>,
    /// Until when another member of the fleet waits for this key: the next
    /// socket returned is closed for it instead of kept.
    #[cfg(feature = "fleet")]
    fleet_wanted: Option<Instant>,
    /// This manager's connecting requests that wait for room in the fleet,
    /// oldest first: a socket returned with no other taker goes to one.
    #[cfg(feature = "fleet")]
    fleet_waiting: VecDeque<RequestId>,
}

/// The monotonic counters, kept for the manager and for each key.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    connects: u64,
    reuses: u64,
    dns_lookups: u64,
    closes: Closes,
    #[cfg(feature = "fleet")]
    fleet_waits: u64,
    #[cfg(feature = "fleet")]
    fleet_wait_time: Duration,
    #[cfg(feature = "fleet")]
    fleet_bypassed: u64,
}

/// A connected socket the pool accounts for, idle or on loan.
struct SocketEntry<S> {
    key: usize,
    generation: u32,
    links: [Links; 2],
    /// The socket and the time it went idle, while it is in the pool.
    idle: Option<(S, Instant)>,
    /// A readiness report arrived while the socket was not idle: it may
    /// have raced with the socket's return, so the return asks the kernel.
    event: bool,
    /// When it stops being handed out: its connect time + `max_lifetime`.
    expires: Deadline,
    /// How many more times it may be handed out, when the server said.
    remaining_uses: Option<u32>,
    /// The server's idle limit for this socket, when the server said.
    server_idle_timeout: Option<Duration>,
    /// While on loan from the pool (not fresh): when it was handed out,
    /// and how long it had been idle then. A loan that ends in the
    /// server's close before any answer is an observation at that age.
    lent: Option<(Instant, Duration)>,
    /// A shared object while any loan of it is out: the object itself
    /// (each loan holds a handle of it), how many loans are, and why it
    /// takes no more when it is retired (it closes with its last loan).
    /// Idle iff no loans: then the object is in `idle`, like any other.
    kept: Option<S>,
    loans: usize,
    retired: Option<CloseReason>,
    /// The address it connected to, when the pool's own dialer made it.
    peer: Option<SocketAddr>,
    /// On loan when its address left its name's answer: closed as it
    /// comes back (`refresh_dns`).
    gone: bool,
    /// When it connected.
    opened: Instant,
    /// A second descriptor of its socket, when the pool lends the stream
    /// itself: `drain` shuts a loan down with it at its deadline.
    handle: Option<std::os::fd::OwnedFd>,
}

impl<S> Linked for SocketEntry<S> {
    fn links(&mut self) -> &mut [Links; 2] {
        &mut self.links
    }
}

struct Request<P: Handles> {
    id: RequestId,
    key: usize,
    /// Arrival order, for fairness between keys.
    seq: u64,
    deadline: Deadline,
    timeout: Duration,
    /// When `allocate` was called, for the time in queue.
    start: Instant,
    /// Who hears the outcome: `None` for a warm connect nobody awaits.
    responder: Option<P::Responder>,
    /// A connect for `keep_warm`: it never takes an idle socket or a share,
    /// never queues, and its connection goes idle (or to a waiter).
    warm: bool,
    phase: Phase<P>,
}

enum Phase<P: Handles> {
    /// Waiting for a shared name lookup.
    Resolving(LookupId),
    /// Waiting in its key's queue for a socket.
    Queued(Addrs),
    /// Its connect task is running; the task handle arrives with `attach`.
    Connecting(Option<P::Task>),
}

struct Lookup<P: Handles> {
    generation: u32,
    host: Arc<str>,
    port: u16,
    /// Requests waiting for the answer, in arrival order.
    waiting: Vec<RequestId>,
    task: Option<P::Task>,
    /// Asked by `refresh_dns`: kept when its requests leave.
    refresh: bool,
}

/// The pool: sockets, keys, requests and lookups, and the counts that
/// `stats()` reports.
pub(crate) struct State<P: Handles> {
    limits: Limits,
    keys: Slab<Key>,
    key_index: TargetMap<usize>,
    /// Dormant keys, oldest first, as (key, its `dormant` number); entries
    /// whose number no longer matches are stale and skipped.
    dormant: VecDeque<(usize, u64)>,
    dormant_count: usize,
    next_dormant: u64,
    sockets: Slab<SocketEntry<P::Socket>>,
    /// Every idle socket, least recently used first.
    lru: Ends,
    requests: Slab<Request<P>>,
    /// Request deadlines that can be reached, earliest first; entries are
    /// (deadline, id).
    deadlines: BTreeSet<(Instant, u64)>,
    /// Keys whose first waiter could connect but for `max_open`, by the
    /// arrival order of that waiter.
    eligible: BTreeSet<(u64, usize)>,
    /// Keys that `keep_warm` keeps connections for.
    warm_keys: BTreeSet<usize>,
    /// Keys' next `refresh_dns` lookups, earliest first; an entry whose
    /// key's `refresh_at` differs is stale.
    refresh_due: BTreeSet<(Instant, usize)>,
    lookups: Slab<Lookup<P>>,
    lookup_index: HashMap<(Arc<str>, u16), LookupId>,
    /// Positive answers kept for `dns_ttl`.
    dns_cache: DnsCache,
    /// The time the background task will next wake, if it sleeps.
    armed: Option<Instant>,
    next_seq: u64,
    next_generation: u32,
    shut_down: bool,
    idle: usize,
    in_use: usize,
    connecting: usize,
    queued: usize,
    /// Loans beyond the first of each shared object: `Stats::loans` is
    /// `in_use` plus these.
    extra_loans: usize,
    counts: Counts,
    /// The pool's name in its metrics (`pool.name`).
    #[cfg(feature = "metrics")]
    name: Option<Arc<str>>,
}

impl<P: Handles> State<P> {
    pub(crate) fn new(limits: Limits) -> State<P> {
        State {
            limits,
            keys: Slab::new(),
            key_index: TargetMap::default(),
            dormant: VecDeque::new(),
            dormant_count: 0,
            next_dormant: 0,
            sockets: Slab::new(),
            lru: Ends::default(),
            requests: Slab::new(),
            deadlines: BTreeSet::new(),
            eligible: BTreeSet::new(),
            warm_keys: BTreeSet::new(),
            refresh_due: BTreeSet::new(),
            lookups: Slab::new(),
            lookup_index: HashMap::new(),
            dns_cache: DnsCache::new(limits.dns_ttl),
            armed: None,
            next_seq: 0,
            next_generation: 0,
            shut_down: false,
            idle: 0,
            in_use: 0,
            connecting: 0,
            queued: 0,
            extra_loans: 0,
            counts: Counts::default(),
            #[cfg(feature = "metrics")]
            name: None,
        }
    }

    /// Names the pool in its metrics' series (`Builder::name`).
    #[cfg(feature = "metrics")]
    pub(crate) fn set_name(&mut self, name: Option<Arc<str>>) {
        self.name = name;
    }

    pub(super) fn open(&self) -> usize {
        self.idle + self.in_use + self.connecting
    }

    /// Fails every pending request with `Error::Shutdown`, aborts their
    /// tasks, and closes every idle socket. Sockets on loan are closed as
    /// they come back.
    pub(crate) fn shutdown(&mut self, out: &mut Actions<P>) {
        self.shut_down = true;
        let ids: Vec<RequestId> = self.requests.iter().map(|(_, r)| r.id).collect();
        for id in ids {
            let req = self.abandon(id, out);
            Self::answer(req, Error::Shutdown, out);
        }
        for key in std::mem::take(&mut self.warm_keys) {
            self.keys[key].warm = None;
        }
        self.refresh_due.clear();
        // The refreshes' lookups, which no request holds.
        for l in self.lookups.drain() {
            out.list.extend(l.task.map(Action::Abort));
        }
        self.lookup_index.clear();
        while let Some(idx) = self.lru.head() {
            let (socket, _) = self.unidle(idx);
            self.close(idx, socket, CloseReason::Shutdown, out);
        }
    }

    /// The second descriptors of the streams lent whole that are out now:
    /// what `Manager::drain` shuts down at its deadline.
    pub(crate) fn loan_handles(&self) -> impl Iterator<Item = &std::os::fd::OwnedFd> {
        self.sockets
            .iter()
            .filter(|(_, e)| e.idle.is_none() && e.kept.is_none())
            .filter_map(|(_, e)| e.handle.as_ref())
    }

    /// Shut down, with no loan left out: what `Manager::drain` waits for.
    pub(crate) fn is_drained(&self) -> bool {
        self.shut_down && self.in_use + self.extra_loans == 0
    }

    /// Fails a request with `error`; a warm connect nobody awaits fails
    /// quietly.
    fn answer(req: Request<P>, error: Error, out: &mut Actions<P>) {
        if let Some(responder) = req.responder {
            out.push(Action::Fail { responder, error });
        }
    }

    /// A request's connect, lookup or time failed at `now`: it is failed
    /// with `error`, and a warm one makes its key's refills back off.
    fn failed(&mut self, req: Request<P>, error: Error, now: Instant, out: &mut Actions<P>) {
        if req.warm {
            self.warm_failed(req.key, now);
        }
        Self::answer(req, error, out);
    }

    /// A socket or connect attempt of `key` is gone. A key kept warm is
    /// refilled by the background task, which this wakes.
    pub(super) fn release_slot(&mut self, key: usize, out: &mut Actions<P>) {
        self.keys[key].open -= 1;
        self.meter_gauges(key);
        if self.keys[key].warm.is_some() {
            out.rearm = true;
        }
        self.update_eligible(key);
        self.forget_key_if_unused(key);
    }

    /// A connect of `key` ended (connected, failed or abandoned).
    pub(super) fn connect_ended(&mut self, key: usize) {
        self.connecting -= 1;
        self.keys[key].connecting -= 1;
    }

    /// Notes a time the background task must wake by.
    pub(super) fn arm(&mut self, at: Instant, out: &mut Actions<P>) {
        if self.armed.is_none_or(|armed| at < armed) {
            self.armed = Some(at);
            out.rearm = true;
        }
    }
}

#[cfg(test)]
mod tests;
