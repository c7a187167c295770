//! Every pool decision, as plain data: no I/O, no clock reads, no spawning.
//!
//! `State` is what the manager's one mutex guards. Its methods take the
//! current time and push [`Action`]s (deliver a socket, fail a request,
//! start a connect or a lookup, close a socket, abort a task) that the
//! caller carries out after dropping the lock. It is generic over
//! [`Plumbing`], so unit tests drive it with fake sockets and responders.
//!
//! # Invariants (checked after every step by `check` in the tests)
//!
//! * `open == idle + in_use + connecting == Σ key.open`, `open <= max_open`,
//!   every `key.open <= max_per_host`.
//! * A key with waiters has no idle socket.
//! * `eligible` holds exactly the keys with waiters and room under
//!   `max_per_host`; when it is non-empty, `open == max_open` and no socket
//!   is idle (otherwise `pump` would have served them).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use slab::Slab;
use tokio::time::Instant;

use super::lists::{self, Chain, Ends, Linked, Links};
use crate::allocation::RequestId;
use crate::connection::FromCache;
use crate::error::Error;
use crate::manager::Stats;
use crate::target::{Target, TargetMap};

/// The concrete types `State` works with.
pub(crate) trait Plumbing {
    /// A connected socket.
    type Socket: Poolable;
    /// The sending half that completes one request.
    type Responder;
    /// A handle to an in-flight lookup or connect task, to abort it.
    type Task;
}

/// What the pool needs to know about a socket.
pub(crate) trait Poolable {
    /// What the kernel knows right now, without waiting for the runtime to
    /// notice: used whenever a socket is handed out.
    fn check(&mut self) -> Health;
    /// Like `check`, and arranges for `token` to reach
    /// [`State::idle_event`] when the socket becomes readable while idle.
    fn watch(&mut self, token: u64) -> Health;
}

/// The state of a socket that is not in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Open, nothing to read: may be handed out.
    Usable,
    /// The peer closed or reset it, or it has a pending error.
    Closed,
    /// Bytes nobody asked for are waiting: close it with a reset.
    Unread,
}

/// The addresses a request connects to, in order of preference.
pub(crate) type Addrs = Arc<[SocketAddr]>;

/// The pool's limits, from the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_per_host: usize,
    pub(crate) max_open: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) max_queued: usize,
}

/// A socket's place in the pool: its slab index and a generation, so that
/// a stale readiness report for a reused index is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    /// The value a socket's readiness report carries.
    pub(crate) fn token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    fn from_token(token: u64) -> SocketId {
        SocketId {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

/// A name lookup's place in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LookupId {
    index: usize,
    generation: u32,
}

/// Who a spawned task belongs to, for [`State::attach`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum TaskOwner {
    Connect(RequestId),
    Lookup(LookupId),
}

/// A decision for the caller to carry out once the lock is dropped.
pub(crate) enum Action<P: Plumbing> {
    /// Hand `socket` to the request behind `responder`.
    Deliver {
        responder: P::Responder,
        socket: P::Socket,
        id: SocketId,
        target: Target,
        from: FromCache,
    },
    /// Complete a request with an error.
    Fail { responder: P::Responder, error: Error },
    /// Start connecting for `request`; report with `connected` or
    /// `connect_failed`, and `attach` the task.
    Connect {
        request: RequestId,
        target: Target,
        addrs: Addrs,
    },
    /// Start looking `host` up; report with `resolved`, and `attach` the task.
    Resolve {
        lookup: LookupId,
        host: Arc<str>,
        port: u16,
    },
    /// Close a socket; `reset` closes it with SO_LINGER 0.
    Close { socket: P::Socket, reset: bool },
    /// Abort a task whose work nobody wants any more.
    Abort(P::Task),
}

/// The decisions of one call, plus whether the background task must wake
/// earlier than it planned.
pub(crate) struct Actions<P: Plumbing> {
    pub(crate) list: Vec<Action<P>>,
    pub(crate) rearm: bool,
}

impl<P: Plumbing> Actions<P> {
    /// No decisions yet; allocates nothing until one is pushed.
    pub(crate) fn new() -> Actions<P> {
        Actions {
            list: Vec::new(),
            rearm: false,
        }
    }

    fn push(&mut self, action: Action<P>) {
        self.list.push(action);
    }
}

/// A new request, as `allocate` hands it over.
pub(crate) struct NewRequest<P: Plumbing> {
    pub(crate) responder: P::Responder,
    pub(crate) deadline: Instant,
    pub(crate) timeout: Duration,
    /// `None` when the host is a name that must be looked up first.
    pub(crate) addrs: Option<Addrs>,
}

/// Per connection key bookkeeping.
struct Key {
    target: Target,
    /// This key's sockets: idle + in use + connecting. Never above
    /// `max_per_host`.
    open: usize,
    /// This key's idle sockets, oldest first.
    idle: Ends,
    /// Requests waiting for a socket of this key, first come first served.
    waiters: VecDeque<RequestId>,
    /// Live requests naming this key, in any phase; the key is forgotten
    /// when this and `open` are zero.
    pending: usize,
    /// `Some(seq of the first waiter)` iff the key is in `State::eligible`.
    eligible: Option<u64>,
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
}

impl<S> Linked for SocketEntry<S> {
    fn links(&mut self) -> &mut [Links; 2] {
        &mut self.links
    }
}

struct Request<P: Plumbing> {
    id: RequestId,
    key: usize,
    /// Arrival order, for fairness between keys.
    seq: u64,
    deadline: Instant,
    timeout: Duration,
    responder: P::Responder,
    phase: Phase<P>,
}

enum Phase<P: Plumbing> {
    /// Waiting for a shared name lookup.
    Resolving(LookupId),
    /// Waiting in its key's queue for a socket.
    Queued(Addrs),
    /// Its connect task is running; the task handle arrives with `attach`.
    Connecting(Option<P::Task>),
}

struct Lookup<P: Plumbing> {
    generation: u32,
    host: Arc<str>,
    port: u16,
    /// Requests waiting for the answer, in arrival order.
    waiting: Vec<RequestId>,
    task: Option<P::Task>,
}

/// The pool: sockets, keys, requests and lookups, and the counts that
/// `stats()` reports.
pub(crate) struct State<P: Plumbing> {
    limits: Limits,
    keys: Slab<Key>,
    key_index: TargetMap<usize>,
    sockets: Slab<SocketEntry<P::Socket>>,
    /// Every idle socket, least recently used first.
    lru: Ends,
    requests: Slab<Request<P>>,
    /// Request deadlines, earliest first; entries are (deadline, id).
    deadlines: BTreeSet<(Instant, u64)>,
    /// Keys whose first waiter could connect but for `max_open`, by the
    /// arrival order of that waiter.
    eligible: BTreeSet<(u64, usize)>,
    lookups: Slab<Lookup<P>>,
    lookup_index: HashMap<(Arc<str>, u16), LookupId>,
    /// The time the background task will next wake, if it sleeps.
    armed: Option<Instant>,
    next_seq: u64,
    next_generation: u32,
    shut_down: bool,
    idle: usize,
    in_use: usize,
    connecting: usize,
    queued: usize,
    connects: u64,
    reuses: u64,
    stale_discarded: u64,
    dns_lookups: u64,
}

impl<P: Plumbing> State<P> {
    pub(crate) fn new(limits: Limits) -> State<P> {
        State {
            limits,
            keys: Slab::new(),
            key_index: TargetMap::default(),
            sockets: Slab::new(),
            lru: Ends::default(),
            requests: Slab::new(),
            deadlines: BTreeSet::new(),
            eligible: BTreeSet::new(),
            lookups: Slab::new(),
            lookup_index: HashMap::new(),
            armed: None,
            next_seq: 0,
            next_generation: 0,
            shut_down: false,
            idle: 0,
            in_use: 0,
            connecting: 0,
            queued: 0,
            connects: 0,
            reuses: 0,
            stale_discarded: 0,
            dns_lookups: 0,
        }
    }

    fn open(&self) -> usize {
        self.idle + self.in_use + self.connecting
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            open: self.open(),
            idle: self.idle,
            in_use: self.in_use,
            connecting: self.connecting,
            queued: self.queued,
            connects: self.connects,
            reuses: self.reuses,
            stale_discarded: self.stale_discarded,
            dns_lookups: self.dns_lookups,
        }
    }

    /// `allocate`'s fast path: the most recently used idle socket of
    /// `target`'s key, counted as in use and reused, or `None`. The caller
    /// checks it with [`Poolable::check`] after dropping the lock, so that
    /// the system call does not serialise checkouts, and gives a stale one
    /// back with [`State::revoke`].
    ///
    /// # Errors
    ///
    /// `Error::Shutdown` once the manager is shut down.
    pub(crate) fn checkout(&mut self, target: &Target) -> Result<Option<(P::Socket, SocketId)>, Error> {
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        let Some(idx) = self
            .key_index
            .get(target)
            .and_then(|&key| self.keys[key].idle.tail())
        else {
            return Ok(None);
        };
        let (socket, _) = self.unidle(idx);
        self.in_use += 1;
        self.reuses += 1;
        Ok(Some((socket, self.socket_id(idx))))
    }

    /// Undoes a `checkout` whose socket turned out stale: it is closed and
    /// counted in `stale_discarded` instead of `reuses`.
    pub(crate) fn revoke(&mut self, sid: SocketId, socket: P::Socket, health: Health, out: &mut Actions<P>) {
        let Some(_) = self.live_socket(sid) else {
            out.push(Action::Close { socket, reset: false });
            return;
        };
        self.in_use -= 1;
        self.reuses -= 1;
        self.stale_discarded += 1;
        self.close(sid.index as usize, socket, health, out);
        self.pump(out);
    }

    /// Registers a request that `checkout` could not serve. It looks the
    /// host up, connects, or waits, as limits allow.
    ///
    /// # Errors
    ///
    /// `Error::Shutdown` once shut down; `Error::QueueFull` when it would
    /// wait and `max_queued` requests already do.
    pub(crate) fn request(
        &mut self,
        target: &Target,
        new: NewRequest<P>,
        out: &mut Actions<P>,
    ) -> Result<RequestId, Error> {
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        let key = self.intern(target);
        let would_wait = new.addrs.is_none() || !self.can_start(key);
        if would_wait && self.queued >= self.limits.max_queued {
            self.forget_key_if_unused(key);
            return Err(Error::QueueFull {
                limit: self.limits.max_queued,
            });
        }
        let id = self.request_id(self.requests.vacant_key());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.keys[key].pending += 1;
        self.deadlines.insert((new.deadline, id.raw()));
        self.arm(new.deadline, out);
        let phase = match new.addrs {
            Some(addrs) => Phase::Queued(addrs),
            None => {
                self.queued += 1;
                let (host, port) = (Arc::from(target.host()), target.port());
                Phase::Resolving(self.join_lookup(host, port, id, out))
            }
        };
        let queued = matches!(phase, Phase::Queued(_));
        self.requests.insert(Request {
            id,
            key,
            seq,
            deadline: new.deadline,
            timeout: new.timeout,
            responder: new.responder,
            phase,
        });
        if queued {
            self.place(id, out);
        }
        self.pump(out);
        Ok(id)
    }

    /// Whether a request for `key` would get a socket without waiting.
    fn can_start(&self, key: usize) -> bool {
        let k = &self.keys[key];
        k.waiters.is_empty()
            && (!k.idle.is_empty()
                || (k.open < self.limits.max_per_host
                    && (self.open() < self.limits.max_open || !self.lru.is_empty())))
    }

    /// Serves a request that has its addresses: an idle socket of its key,
    /// else a new connection if limits allow, else a place in the queue.
    /// The request must not be counted in `queued` yet.
    fn place(&mut self, id: RequestId, out: &mut Actions<P>) {
        let key = self.requests[id.slot()].key;
        if self.keys[key].waiters.is_empty() {
            if let Some((socket, sid)) = self.take_idle(key, out) {
                self.in_use += 1;
                self.reuses += 1;
                self.deliver(id, socket, sid, FromCache::Deferred, out);
                return;
            }
            if self.keys[key].open < self.limits.max_per_host
                && (self.open() < self.limits.max_open || self.evict_lru(out))
            {
                self.start_connect(id, out);
                return;
            }
        }
        self.queued += 1;
        self.keys[key].waiters.push_back(id);
        self.refresh(key);
    }

    /// Takes the newest idle socket of `key` that is still usable, closing
    /// stale ones on the way. The caller counts it as in use.
    fn take_idle(&mut self, key: usize, out: &mut Actions<P>) -> Option<(P::Socket, SocketId)> {
        // Closing the key's last socket forgets the key when no request
        // names it (a checkout's), hence `get`.
        while let Some(idx) = self.keys.get(key).and_then(|k| k.idle.tail()) {
            let (mut socket, _) = self.unidle(idx);
            let health = socket.check();
            if health == Health::Usable {
                return Some((socket, self.socket_id(idx)));
            }
            self.stale_discarded += 1;
            self.close(idx, socket, health, out);
        }
        None
    }

    /// Starts a connect for a request that has room under both limits.
    fn start_connect(&mut self, id: RequestId, out: &mut Actions<P>) {
        let req = &mut self.requests[id.slot()];
        let Phase::Queued(addrs) = std::mem::replace(&mut req.phase, Phase::Connecting(None)) else {
            unreachable!("only a request with addresses is connected");
        };
        let key = req.key;
        self.keys[key].open += 1;
        self.connecting += 1;
        out.push(Action::Connect {
            request: id,
            target: self.keys[key].target.clone(),
            addrs,
        });
    }

    /// A connect task's success.
    pub(crate) fn connected(
        &mut self,
        request: RequestId,
        target: &Target,
        mut socket: P::Socket,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        self.connects += 1;
        if let Some(key) = self.connecting_key(request) {
            self.connecting -= 1;
            self.in_use += 1;
            let sid = self.new_socket(key);
            self.deliver(request, socket, sid, FromCache::Fresh, out);
        } else {
            // The request left (cancelled or timed out) after the connect
            // finished but before this report, and its slot was released
            // then. Keep the socket if there is still room for it.
            let key = self.intern(target);
            if !self.shut_down
                && self.keys[key].open < self.limits.max_per_host
                && self.open() < self.limits.max_open
            {
                self.keys[key].open += 1;
                self.in_use += 1;
                let sid = self.new_socket(key);
                let health = socket.watch(sid.token());
                self.put_back(sid, socket, health, now, out);
            } else {
                out.push(Action::Close { socket, reset: false });
                self.forget_key_if_unused(key);
            }
        }
        self.pump(out);
    }

    /// A connect task's failure: the request fails with `error`, its slot
    /// goes to the next waiter.
    pub(crate) fn connect_failed(&mut self, request: RequestId, error: Error, out: &mut Actions<P>) {
        if let Some(key) = self.connecting_key(request) {
            self.connecting -= 1;
            let req = self.finish(request);
            out.push(Action::Fail {
                responder: req.responder,
                error,
            });
            self.release_slot(key);
        }
        self.pump(out);
    }

    /// A `Connection` came back with a socket worth keeping. `health` is
    /// what [`Poolable::watch`] said, called by the caller before taking the
    /// lock; a waiter gets the socket only after a fresh `check`.
    pub(crate) fn put_back(
        &mut self,
        sid: SocketId,
        mut socket: P::Socket,
        mut health: Health,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let Some(key) = self.live_socket(sid) else {
            out.push(Action::Close { socket, reset: false });
            return;
        };
        let idx = sid.index as usize;
        self.in_use -= 1;
        let waiter = self.keys[key].waiters.front().copied();
        // An event reported between `watch` and now found the socket not yet
        // idle; ask the kernel instead of losing it.
        let missed_event = std::mem::take(&mut self.sockets[idx].event);
        if health == Health::Usable && (waiter.is_some() || missed_event) {
            health = socket.check();
        }
        if self.shut_down {
            health = Health::Closed;
        }
        match (health, waiter) {
            (Health::Usable, Some(waiter)) => {
                self.keys[key].waiters.pop_front();
                self.queued -= 1;
                self.refresh(key);
                self.in_use += 1;
                self.reuses += 1;
                self.deliver(waiter, socket, sid, FromCache::Deferred, out);
            }
            (Health::Usable, None) => {
                self.idle += 1;
                self.sockets[idx].idle = Some((socket, now));
                lists::push_back(&mut self.sockets, &mut self.lru, idx, Chain::Lru);
                lists::push_back(&mut self.sockets, &mut self.keys[key].idle, idx, Chain::ByKey);
                self.arm(now + self.limits.keep_alive, out);
            }
            (health, _) => {
                if !self.shut_down {
                    self.stale_discarded += 1;
                }
                self.close(idx, socket, health, out);
            }
        }
        self.pump(out);
    }

    /// A `Connection` was dropped unfit for reuse (discarded, an I/O error,
    /// end of stream, or its socket taken); the caller closes the socket.
    /// `stale` counts it in `stale_discarded`.
    pub(crate) fn discard(&mut self, sid: SocketId, stale: bool, out: &mut Actions<P>) {
        let Some(key) = self.live_socket(sid) else {
            return;
        };
        self.in_use -= 1;
        if stale {
            self.stale_discarded += 1;
        }
        self.sockets.remove(sid.index as usize);
        self.release_slot(key);
        self.pump(out);
    }

    /// An idle socket became readable: the peer closed it, reset it, or
    /// sent bytes. Reports for sockets no longer idle are ignored.
    pub(crate) fn idle_event(&mut self, token: u64, out: &mut Actions<P>) {
        let sid = SocketId::from_token(token);
        if self.live_socket(sid).is_none() {
            return;
        }
        let idx = sid.index as usize;
        let Some((socket, _)) = self.sockets[idx].idle.as_mut() else {
            self.sockets[idx].event = true;
            return;
        };
        let health = socket.watch(token);
        if health != Health::Usable {
            let (socket, _) = self.unidle(idx);
            self.stale_discarded += 1;
            self.close(idx, socket, health, out);
            self.pump(out);
        }
    }

    /// Closes idle sockets past keep-alive and fails requests past their
    /// deadline. Returns when to call again.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Actions<P>) -> Option<Instant> {
        while let Some(idx) = self.lru.head() {
            let since = self.sockets[idx]
                .idle
                .as_ref()
                .expect("sockets on the LRU list are idle")
                .1;
            if since + self.limits.keep_alive > now {
                break;
            }
            let (socket, _) = self.unidle(idx);
            self.close(idx, socket, Health::Closed, out);
        }
        while let Some(&(deadline, raw)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let id = RequestId::from_raw(raw);
            let target = self.keys[self.requests[id.slot()].key].target.to_string();
            let req = self.abandon(id, out);
            out.push(Action::Fail {
                responder: req.responder,
                error: Error::Timeout {
                    target,
                    after: req.timeout,
                },
            });
        }
        self.pump(out);
        let idle_due = self
            .lru
            .head()
            .and_then(|i| self.sockets[i].idle.as_ref())
            .map(|(_, since)| *since + self.limits.keep_alive);
        let request_due = self.deadlines.first().map(|&(d, _)| d);
        self.armed = idle_due.into_iter().chain(request_due).min();
        self.armed
    }

    /// Cancels a pending request, releasing its queue place, lookup
    /// interest or connect slot. Returns its responder, or `None` when the
    /// request is already complete.
    pub(crate) fn cancel(&mut self, id: RequestId, out: &mut Actions<P>) -> Option<P::Responder> {
        self.live_request(id)?;
        let req = self.abandon(id, out);
        self.pump(out);
        Some(req.responder)
    }

    /// Moves a pending request's deadline.
    pub(crate) fn set_deadline(
        &mut self,
        id: RequestId,
        deadline: Instant,
        timeout: Duration,
        out: &mut Actions<P>,
    ) {
        let Some(slot) = self.live_request(id) else {
            return;
        };
        let req = &mut self.requests[slot];
        self.deadlines.remove(&(req.deadline, id.raw()));
        req.deadline = deadline;
        req.timeout = timeout;
        self.deadlines.insert((deadline, id.raw()));
        self.arm(deadline, out);
    }

    /// A lookup's answer, for every request waiting on it.
    pub(crate) fn resolved(
        &mut self,
        lookup: LookupId,
        answer: std::io::Result<Vec<SocketAddr>>,
        out: &mut Actions<P>,
    ) {
        let Some(l) = self
            .lookups
            .get(lookup.index)
            .filter(|l| l.generation == lookup.generation)
        else {
            return;
        };
        self.lookup_index.remove(&(l.host.clone(), l.port));
        let l = self.lookups.remove(lookup.index);
        let error = match answer {
            Ok(addrs) if !addrs.is_empty() => {
                let addrs: Addrs = addrs.into();
                for id in l.waiting {
                    self.queued -= 1;
                    self.requests[id.slot()].phase = Phase::Queued(addrs.clone());
                    self.place(id, out);
                }
                self.pump(out);
                return;
            }
            Ok(_) => Error::NoAddress {
                host: l.host.to_string(),
                detail: String::new(),
            },
            Err(e) => Error::Resolve {
                host: l.host.to_string(),
                source: Arc::new(e),
            },
        };
        for id in l.waiting {
            self.queued -= 1;
            let req = self.finish(id);
            out.push(Action::Fail {
                responder: req.responder,
                error: error.clone(),
            });
        }
        self.pump(out);
    }

    /// Stores the handle of a task started for `owner`. Returns it when its
    /// owner is already gone, so the caller aborts it.
    pub(crate) fn attach(&mut self, owner: TaskOwner, task: P::Task) -> Option<P::Task> {
        match owner {
            TaskOwner::Connect(id) => match self.live_request(id).map(|s| &mut self.requests[s].phase) {
                Some(Phase::Connecting(slot @ None)) => *slot = Some(task),
                _ => return Some(task),
            },
            TaskOwner::Lookup(lid) => match self.lookups.get_mut(lid.index) {
                Some(l) if l.generation == lid.generation && l.task.is_none() => l.task = Some(task),
                _ => return Some(task),
            },
        }
        None
    }

    /// Fails every pending request with `Error::Shutdown`, aborts their
    /// tasks, and closes every idle socket. Sockets on loan are closed as
    /// they come back.
    pub(crate) fn shutdown(&mut self, out: &mut Actions<P>) {
        self.shut_down = true;
        let ids: Vec<RequestId> = self.requests.iter().map(|(_, r)| r.id).collect();
        for id in ids {
            let req = self.abandon(id, out);
            out.push(Action::Fail {
                responder: req.responder,
                error: Error::Shutdown,
            });
        }
        while let Some(idx) = self.lru.head() {
            let (socket, _) = self.unidle(idx);
            self.close(idx, socket, Health::Closed, out);
        }
    }

    // ----- helpers -----

    /// Removes a pending request in any phase, undoing what the phase held.
    fn abandon(&mut self, id: RequestId, out: &mut Actions<P>) -> Request<P> {
        let slot = id.slot();
        let key = self.requests[slot].key;
        let phase = std::mem::replace(&mut self.requests[slot].phase, Phase::Connecting(None));
        let connecting = match phase {
            Phase::Resolving(lookup) => {
                self.queued -= 1;
                self.leave_lookup(lookup, id, out);
                false
            }
            Phase::Queued(_) => {
                self.queued -= 1;
                self.keys[key].waiters.retain(|w| *w != id);
                self.refresh(key);
                false
            }
            Phase::Connecting(task) => {
                self.connecting -= 1;
                out.list.extend(task.map(Action::Abort));
                true
            }
        };
        let req = self.finish(id);
        if connecting {
            self.release_slot(key);
        }
        req
    }

    /// Removes a request that is done, with its deadline.
    fn finish(&mut self, id: RequestId) -> Request<P> {
        let req = self.requests.remove(id.slot());
        self.deadlines.remove(&(req.deadline, id.raw()));
        self.keys[req.key].pending -= 1;
        self.forget_key_if_unused(req.key);
        req
    }

    /// Completes a request with a socket the caller already counts in
    /// `in_use`.
    fn deliver(
        &mut self,
        id: RequestId,
        socket: P::Socket,
        sid: SocketId,
        from: FromCache,
        out: &mut Actions<P>,
    ) {
        let req = self.finish(id);
        out.push(Action::Deliver {
            responder: req.responder,
            socket,
            id: sid,
            target: self.keys[req.key].target.clone(),
            from,
        });
    }

    /// The slot of a live request with this id.
    fn live_request(&self, id: RequestId) -> Option<usize> {
        let slot = id.slot();
        self.requests.get(slot).filter(|r| r.id == id).map(|_| slot)
    }

    /// The key of a live request that is connecting.
    fn connecting_key(&self, id: RequestId) -> Option<usize> {
        let req = &self.requests[self.live_request(id)?];
        matches!(req.phase, Phase::Connecting(_)).then_some(req.key)
    }

    /// The key of a socket the pool still accounts for.
    fn live_socket(&self, sid: SocketId) -> Option<usize> {
        let entry = self.sockets.get(sid.index as usize)?;
        (entry.generation == sid.generation).then_some(entry.key)
    }

    /// A new id for request slot `slot`; also used for requests served at
    /// once, which are never stored.
    pub(crate) fn request_id(&mut self, slot: usize) -> RequestId {
        self.next_generation = self.next_generation.wrapping_add(1);
        RequestId::new(slot, self.next_generation)
    }

    fn socket_id(&self, idx: usize) -> SocketId {
        SocketId {
            index: idx as u32,
            generation: self.sockets[idx].generation,
        }
    }

    fn new_socket(&mut self, key: usize) -> SocketId {
        self.next_generation = self.next_generation.wrapping_add(1);
        let idx = self.sockets.insert(SocketEntry {
            key,
            generation: self.next_generation,
            links: Default::default(),
            idle: None,
            event: false,
        });
        self.socket_id(idx)
    }

    /// Takes an idle socket off both lists; it stays accounted for.
    fn unidle(&mut self, idx: usize) -> (P::Socket, Instant) {
        let key = self.sockets[idx].key;
        lists::unlink(&mut self.sockets, &mut self.lru, idx, Chain::Lru);
        lists::unlink(&mut self.sockets, &mut self.keys[key].idle, idx, Chain::ByKey);
        self.idle -= 1;
        self.sockets[idx]
            .idle
            .take()
            .expect("a socket on the idle lists holds its socket")
    }

    /// Closes a socket that is neither idle nor counted in use any more.
    fn close(&mut self, idx: usize, socket: P::Socket, health: Health, out: &mut Actions<P>) {
        let key = self.sockets.remove(idx).key;
        out.push(Action::Close {
            socket,
            reset: health == Health::Unread,
        });
        self.release_slot(key);
    }

    /// Closes the least recently used idle socket, if any, to make room.
    fn evict_lru(&mut self, out: &mut Actions<P>) -> bool {
        let Some(idx) = self.lru.head() else {
            return false;
        };
        let (socket, _) = self.unidle(idx);
        self.close(idx, socket, Health::Closed, out);
        true
    }

    /// A socket or connect attempt of `key` is gone.
    fn release_slot(&mut self, key: usize) {
        self.keys[key].open -= 1;
        self.refresh(key);
        self.forget_key_if_unused(key);
    }

    /// Serves waiters that can connect now, oldest first across keys,
    /// evicting idle sockets when `max_open` is reached.
    fn pump(&mut self, out: &mut Actions<P>) {
        while let Some(&(_, key)) = self.eligible.first() {
            if self.open() >= self.limits.max_open && !self.evict_lru(out) {
                break;
            }
            let id = self.keys[key]
                .waiters
                .pop_front()
                .expect("an eligible key has waiters");
            self.queued -= 1;
            self.start_connect(id, out);
            self.refresh(key);
        }
    }

    /// Keeps `key`'s membership of `eligible` true to its definition.
    fn refresh(&mut self, key: usize) {
        let k = &self.keys[key];
        let want = match k.waiters.front() {
            Some(id) if k.open < self.limits.max_per_host => Some(self.requests[id.slot()].seq),
            _ => None,
        };
        let had = std::mem::replace(&mut self.keys[key].eligible, want);
        if had != want {
            if let Some(seq) = had {
                self.eligible.remove(&(seq, key));
            }
            if let Some(seq) = want {
                self.eligible.insert((seq, key));
            }
        }
    }

    /// The key index for `target`, created on first use.
    fn intern(&mut self, target: &Target) -> usize {
        if let Some(&key) = self.key_index.get(target) {
            return key;
        }
        let key = self.keys.insert(Key {
            target: target.clone(),
            open: 0,
            idle: Ends::default(),
            waiters: VecDeque::new(),
            pending: 0,
            eligible: None,
        });
        self.key_index.insert(target.clone(), key);
        key
    }

    /// Forgets a key nothing refers to, so a crawler's many hosts do not
    /// accumulate.
    fn forget_key_if_unused(&mut self, key: usize) {
        let k = &self.keys[key];
        if k.open == 0 && k.pending == 0 {
            let k = self.keys.remove(key);
            self.key_index.remove(&k.target);
        }
    }

    fn join_lookup(&mut self, host: Arc<str>, port: u16, id: RequestId, out: &mut Actions<P>) -> LookupId {
        let index_key = (host, port);
        if let Some(&lid) = self.lookup_index.get(&index_key) {
            self.lookups[lid.index].waiting.push(id);
            return lid;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let (host, port) = index_key;
        let lid = LookupId {
            index: self.lookups.insert(Lookup {
                generation: self.next_generation,
                host: host.clone(),
                port,
                waiting: vec![id],
                task: None,
            }),
            generation: self.next_generation,
        };
        self.lookup_index.insert((host.clone(), port), lid);
        self.dns_lookups += 1;
        out.push(Action::Resolve {
            lookup: lid,
            host,
            port,
        });
        lid
    }

    /// Drops `id`'s interest in a lookup; the last one out aborts it.
    fn leave_lookup(&mut self, lid: LookupId, id: RequestId, out: &mut Actions<P>) {
        let l = &mut self.lookups[lid.index];
        l.waiting.retain(|w| *w != id);
        if l.waiting.is_empty() {
            let l = self.lookups.remove(lid.index);
            self.lookup_index.remove(&(l.host, l.port));
            out.list.extend(l.task.map(Action::Abort));
        }
    }

    /// Notes a time the background task must wake by.
    fn arm(&mut self, at: Instant, out: &mut Actions<P>) {
        if self.armed.is_none_or(|armed| at < armed) {
            self.armed = Some(at);
            out.rearm = true;
        }
    }
}

#[cfg(test)]
mod tests;
