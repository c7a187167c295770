//! `State` on its own, with fake sockets and a clock the tests move: the
//! decisions for each situation, then random sequences of every event with
//! the invariants checked after each step.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

/// Fake plumbing: responders and tasks are numbers, sockets carry a health
/// the test sets.
struct Fake;

impl Handles for Fake {
    type Socket = FakeSocket;
    type Responder = u32;
    type Task = RequestOrLookup;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestOrLookup {
    Request(RequestId),
    Lookup(LookupId),
}

impl Staged for RequestOrLookup {}

struct FakeSocket {
    name: u32,
    health: Rc<Cell<Health>>,
    /// Loans it may serve at once; above 1 it is shared.
    capacity: usize,
    share: bool,
}

impl FakeSocket {
    fn new(name: u32, health: Rc<Cell<Health>>, target: &Target) -> FakeSocket {
        FakeSocket {
            name,
            health,
            capacity: capacity_of(target),
            share: false,
        }
    }
}

impl Poolable for FakeSocket {
    fn check(&mut self) -> Health {
        self.health.get()
    }

    fn watch(&mut self, _token: u64) -> Health {
        self.health.get()
    }

    fn share(&mut self) -> Option<FakeSocket> {
        (self.capacity > 1).then(|| FakeSocket {
            name: self.name,
            health: self.health.clone(),
            capacity: self.capacity,
            share: true,
        })
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn is_share(&self) -> bool {
        self.share
    }
}

/// What a connection of `target` can serve at once: keys 3 and 4 are
/// multiplexed (HTTP/2's streams), the others lent whole.
fn capacity_of(target: &Target) -> usize {
    match target.port() {
        1003 => 2,
        1004 => 3,
        _ => 1,
    }
}

/// What the protocol expects of a connection of `target` before one has
/// connected: right for key 3, too high for key 4 and for key 1 (an ALPN
/// offer of h2 that the server answers with HTTP/1.1).
fn expected_of(target: &Target) -> usize {
    match target.port() {
        1001 => 4,
        1003 => 2,
        1004 => 8,
        _ => 1,
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Got { socket: u32, from: FromCache },
    Failed(&'static str),
}

/// The state plus everything its actions did.
struct Sim {
    state: State<Fake>,
    now: Instant,
    next_name: u32,
    /// Connect tasks running, by request, and lookups running.
    connecting: Vec<(RequestId, Target)>,
    resolving: Vec<LookupId>,
    aborted: Vec<RequestOrLookup>,
    outcomes: HashMap<u32, Outcome>,
    /// Sockets on loan: name -> (id, health).
    loaned: HashMap<u32, (SocketId, Rc<Cell<Health>>)>,
    /// Shared objects on loan: name -> (id, loans out).
    shares: HashMap<u32, (SocketId, usize)>,
    /// Health of every socket the pool may hold, by name.
    healths: HashMap<u32, Rc<Cell<Health>>>,
    closed: Vec<u32>,
    /// Connected sockets not yet closed: the model's open sockets.
    alive: std::collections::HashSet<u32>,
    /// Request ids by responder label.
    ids: HashMap<u32, RequestId>,
    /// Successful connects: the model's `connects`.
    connected: u64,
    /// Each socket's connect time, and the uses it has left when the
    /// user said (`set_remaining_uses`).
    born: HashMap<u32, Instant>,
    uses_left: HashMap<u32, u32>,
    /// Closes by reason, as the actions and the discards the model made
    /// say: the model's `closes`.
    closes: HashMap<CloseReason, u64>,
    /// The reason each closed socket was closed for.
    close_reason: HashMap<u32, CloseReason>,
    /// The fleet's part: each socket's key, the keys another member wants
    /// (until when), and the admissions counted (waits, wait time,
    /// bypasses).
    key_of: HashMap<u32, Target>,
    wanted: HashMap<Target, Instant>,
    fleet: (u64, Duration, u64),
    /// Connecting requests that wait for the fleet's room.
    fleet_waiting: std::collections::HashSet<RequestId>,
    /// What `keep_warm` asked of each key kept warm.
    warm: HashMap<Target, usize>,
    /// The first address each connect in flight was given, and how many
    /// lookups were answered.
    dialed: HashMap<RequestId, SocketAddr>,
    answers: u32,
}

const KEEP_ALIVE: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);

fn target(i: usize) -> Target {
    Target::new("http", "127.0.0.1", 1000 + i as u16)
}

fn named(i: usize) -> Target {
    Target::new("http", format!("h{i}.example"), 80)
}

impl Sim {
    fn new(max_per_host: usize, max_open: usize) -> Sim {
        Sim::with_lifetime(max_per_host, max_open, None)
    }

    fn with_lifetime(max_per_host: usize, max_open: usize, max_lifetime: Option<Duration>) -> Sim {
        Sim {
            state: State::new(Limits {
                max_per_host,
                max_open,
                keep_alive: KEEP_ALIVE,
                max_queued: usize::MAX,
                dns_ttl: None,
                max_lifetime,
                max_lifetime_jitter: 0.0,
                jitter_seed: 0,
                learn_idle_timeouts: true,
                spread_addresses: false,
                refresh_dns: None,
            }),
            now: Instant::now(),
            next_name: 0,
            connecting: vec![],
            resolving: vec![],
            aborted: vec![],
            outcomes: HashMap::new(),
            loaned: HashMap::new(),
            shares: HashMap::new(),
            healths: HashMap::new(),
            closed: vec![],
            alive: Default::default(),
            ids: HashMap::new(),
            connected: 0,
            born: HashMap::new(),
            uses_left: HashMap::new(),
            closes: HashMap::new(),
            close_reason: HashMap::new(),
            key_of: HashMap::new(),
            wanted: HashMap::new(),
            fleet: (0, Duration::ZERO, 0),
            fleet_waiting: Default::default(),
            warm: HashMap::new(),
            dialed: HashMap::new(),
            answers: 0,
        }
    }

    /// A socket goes to a request: never one past its lifetime or with no
    /// uses left; a reuse spends one use.
    fn handed_out(&mut self, name: u32, from: FromCache) {
        if from == FromCache::Fresh {
            return;
        }
        if let Some(lifetime) = self.state.limits.max_lifetime {
            assert!(
                self.now < self.born[&name] + lifetime,
                "socket {name} handed out past its lifetime"
            );
        }
        if let Some(n) = self.uses_left.get_mut(&name) {
            assert!(*n > 0, "socket {name} handed out with no uses left");
            *n -= 1;
        }
    }

    /// A socket closed for `reason`.
    fn closed_for(&mut self, name: u32, reason: CloseReason) {
        if reason == CloseReason::FleetReleased {
            // The demand is spent (a warm connection can meet it too).
            self.wanted.remove(&self.key_of[&name]);
        }
        self.alive.remove(&name);
        self.closed.push(name);
        *self.closes.entry(reason).or_default() += 1;
        assert!(self.close_reason.insert(name, reason).is_none(), "closed twice");
    }

    fn apply(&mut self, actions: Actions<Fake>) {
        for action in actions.list {
            match action {
                Action::Deliver {
                    responder,
                    socket,
                    id,
                    from,
                    ..
                } => {
                    self.lent(&socket, id);
                    self.handed_out(socket.name, from);
                    let got = Outcome::Got {
                        socket: socket.name,
                        from,
                    };
                    assert!(self.outcomes.insert(responder, got).is_none(), "answered twice");
                }
                Action::Fail { responder, error } => {
                    let why = match error {
                        Error::Timeout { .. } => "timeout",
                        Error::Shutdown => "shutdown",
                        Error::Connect { .. } => "connect",
                        Error::Resolve { .. } | Error::NoAddress { .. } => "resolve",
                        _ => "other",
                    };
                    assert!(self.outcomes.insert(responder, Outcome::Failed(why)).is_none());
                }
                Action::Connect {
                    request,
                    target,
                    addrs,
                    ..
                } => {
                    self.dialed.extend(addrs.first().map(|a| (request, *a)));
                    assert!(self
                        .state
                        .attach(TaskOwner::Connect(request), RequestOrLookup::Request(request))
                        .is_none());
                    self.connecting.push((request, target));
                }
                Action::Resolve { lookup, .. } => {
                    assert!(self
                        .state
                        .attach(TaskOwner::Lookup(lookup), RequestOrLookup::Lookup(lookup))
                        .is_none());
                    self.resolving.push(lookup);
                }
                Action::Close { socket, reason, .. } => self.closed_for(socket.name, reason),
                Action::Learned { .. } => {}
                Action::Warmed(responder) => {
                    let done = Outcome::Failed("warmed");
                    assert!(self.outcomes.insert(responder, done).is_none(), "answered twice");
                }
                Action::Abort(task) => {
                    self.aborted.push(task);
                    match task {
                        RequestOrLookup::Request(r) => {
                            self.connecting.retain(|(c, _)| *c != r);
                            self.fleet_waiting.remove(&r);
                        }
                        RequestOrLookup::Lookup(l) => self.resolving.retain(|x| *x != l),
                    }
                }
            }
        }
        self.check();
    }

    /// `allocate`: checkout, else a request. Returns the label.
    fn allocate(&mut self, target: &Target, label: u32) {
        let mut out = Actions::new();
        let mut hit = self.state.checkout(target, self.now, &mut out);
        // As `Manager::allocate` does: check outside the lock, revoke a
        // stale socket, try again.
        while let Ok(Some((mut socket, id))) = hit {
            let health = socket.check();
            if health == Health::Usable {
                hit = Ok(Some((socket, id)));
                break;
            }
            self.state.revoke(id, socket, health, self.now, &mut out);
            hit = self.state.checkout(target, self.now, &mut out);
        }
        match hit {
            Ok(Some((socket, id))) => {
                self.lent(&socket, id);
                self.handed_out(socket.name, FromCache::Immediate);
                let got = Outcome::Got {
                    socket: socket.name,
                    from: FromCache::Immediate,
                };
                self.outcomes.insert(label, got);
            }
            Ok(None) => {
                let addrs = target
                    .literal()
                    .map(|ip| Arc::from([SocketAddr::new(ip, target.port())]));
                let new = NewRequest {
                    responder: label,
                    now: self.now,
                    deadline: Deadline::after(self.now, TIMEOUT),
                    timeout: TIMEOUT,
                    addrs,
                    expect: expected_of(target),
                };
                match self.state.request(target, new, &mut out) {
                    Ok(id) => {
                        self.ids.insert(label, id);
                    }
                    Err(_) => {
                        self.outcomes.insert(label, Outcome::Failed("refused"));
                    }
                }
            }
            Err(_) => {
                self.outcomes.insert(label, Outcome::Failed("shutdown"));
            }
        }
        self.apply(out);
    }

    /// Finishes the connect started for `request`.
    fn connect(&mut self, i: usize, ok: bool) {
        let (request, target) = self.connecting.remove(i);
        self.fleet_waiting.remove(&request);
        let mut out = Actions::new();
        if ok {
            let health = Rc::new(Cell::new(Health::Usable));
            self.next_name += 1;
            self.connected += 1;
            self.alive.insert(self.next_name);
            self.born.insert(self.next_name, self.now);
            self.key_of.insert(self.next_name, target.clone());
            self.healths.insert(self.next_name, health.clone());
            let socket = FakeSocket::new(self.next_name, health, &target);
            let dialed = Dialed {
                peer: self.dialed.remove(&request),
                handle: None,
            };
            self.state
                .connected(request, &target, (socket, dialed), self.now, &mut out);
        } else {
            let error = Error::Connect {
                target: target.to_string(),
                addr: None,
                tried: vec![],
                source: Arc::new(std::io::ErrorKind::ConnectionRefused.into()),
            };
            self.state.connect_failed(request, error, self.now, &mut out);
        }
        self.apply(out);
    }

    fn resolve(&mut self, i: usize, ok: bool) {
        let lookup = self.resolving.remove(i);
        // With refresh_dns, the names move between two addresses.
        self.answers += 1;
        let moves = self.state.limits.refresh_dns.is_some();
        let last = if moves && self.answers % 2 == 0 { 2 } else { 1 };
        let answer = if ok {
            Ok(vec![SocketAddr::from(([127, 0, 0, last], 80))])
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        };
        let mut out = Actions::new();
        self.state.resolved(lookup, answer, self.now, &mut out);
        self.apply(out);
    }

    /// Drops the connection holding socket `name`.
    fn give_back(&mut self, name: u32) {
        self.give_back_with(name, Hints::default());
    }

    /// Drops the connection holding socket `name` after the user gave the
    /// pool `hints`; checks the close reason the model expects.
    fn give_back_with(&mut self, name: u32, hints: Hints) {
        let (id, health) = self.loaned.remove(&name).expect("on loan");
        if let Some(n) = hints.remaining_uses {
            self.uses_left.insert(name, n);
        }
        let expected = if self.state.shut_down {
            Some(CloseReason::Shutdown)
        } else {
            match health.get() {
                Health::Unread => Some(CloseReason::Unread),
                Health::Closed => Some(CloseReason::ClosedByPeer),
                Health::DeadPeer => Some(CloseReason::DeadPeer),
                Health::GoingAway => Some(CloseReason::Goaway),
                Health::Usable if self.uses_left.get(&name) == Some(&0) => Some(CloseReason::UsesSpent),
                Health::Usable
                    if self
                        .state
                        .limits
                        .max_lifetime
                        .is_some_and(|l| self.now >= self.born[&name] + l) =>
                {
                    Some(CloseReason::Lifetime)
                }
                Health::Usable => None,
            }
        };
        let mut out = Actions::new();
        let mut socket = FakeSocket::new(name, health, &self.key_of[&name]);
        let seen = socket.watch(id.token());
        let key = self.key_of[&name].clone();
        let wanted = self.wanted.get(&key).is_some_and(|until| self.now < *until);
        self.state.put_back(id, socket, seen, hints, self.now, &mut out);
        self.apply(out);
        match (expected, self.close_reason.get(&name)) {
            (Some(reason), got) => assert_eq!(got, Some(&reason), "socket {name}"),
            // Another member wants the key: the socket is closed for it,
            // not kept; the demand is spent.
            (None, Some(CloseReason::FleetReleased)) => {
                assert!(wanted, "socket {name} released for a key nobody wanted");
                self.wanted.remove(&key);
            }
            (None, None) => {
                assert!(
                    !wanted,
                    "socket {name} kept while another member waits for its key"
                );
                self.wanted.remove(&key);
            }
            (None, Some(_)) => {}
        }
    }

    #[cfg(feature = "fleet")]
    /// Another member of the fleet waits for `target`'s key: an idle
    /// socket of the key is closed now, or the next one returned.
    fn fleet_wants(&mut self, target: &Target) {
        let idle = self.state.stats_for(target, self.now).idle;
        let open = self.state.stats_for(target, self.now).open;
        let before = self.closes.get(&CloseReason::FleetReleased).copied().unwrap_or(0);
        let mut out = Actions::new();
        let released = self.state.release_idle(target, self.now, &mut out);
        self.apply(out);
        assert_eq!(released, idle > 0, "an idle socket is released iff there is one");
        let after = self.closes.get(&CloseReason::FleetReleased).copied().unwrap_or(0);
        assert_eq!(after - before, u64::from(released));
        if !released && open > 0 {
            self.wanted
                .insert(target.clone(), self.now + super::fleet::WANTED_FOR);
        }
    }

    #[cfg(feature = "fleet")]
    /// A connect in flight was admitted by the fleet: after `waited`, or
    /// without Redis.
    fn fleet_admitted(&mut self, i: usize, waited: Option<Duration>, bypassed: bool) {
        let (request, _) = self.connecting[i].clone();
        self.fleet_waiting.remove(&request);
        if let Some(waited) = waited {
            self.fleet.0 += 1;
            self.fleet.1 += waited;
        }
        self.fleet.2 += u64::from(bypassed);
        let mut out = Actions::new();
        self.state.fleet_admitted(request, waited, bypassed, &mut out);
        self.apply(out);
    }

    fn discard(&mut self, name: u32, reason: CloseReason) {
        let (id, _) = self.loaned.remove(&name).expect("on loan");
        let mut out = Actions::new();
        self.state.discard(id, reason, &mut out);
        self.closed_for(name, reason);
        self.apply(out);
    }

    /// The loan of `name` ended in the server's close before any answer.
    fn lose(&mut self, name: u32) {
        let (id, _) = self.loaned.remove(&name).expect("on loan");
        let mut out = Actions::new();
        self.state.lost(id, self.now, &mut out);
        self.closed_for(name, CloseReason::ClosedByPeer);
        self.apply(out);
    }

    fn cancel(&mut self, label: u32) -> bool {
        let Some(&id) = self.ids.get(&label) else {
            return false;
        };
        let mut out = Actions::new();
        let responder = self.state.cancel(id, &mut out);
        if responder.is_some() {
            self.outcomes.insert(label, Outcome::Failed("cancelled"));
        }
        self.apply(out);
        responder.is_some()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        let mut out = Actions::new();
        self.state.expire(self.now, &mut out);
        self.apply(out);
        self.check_warm(None);
    }

    /// `keep_warm(target, n)`: the connects it starts are answered under
    /// new labels. Returns how many started.
    fn keep_warm(&mut self, target: &Target, n: usize, next_label: &mut u32) -> usize {
        let plan = WarmPlan {
            addrs: target
                .literal()
                .map(|ip| Arc::from([SocketAddr::new(ip, target.port())])),
            timeout: TIMEOUT,
            expect: expected_of(target),
        };
        let mut out = Actions::new();
        let mut answer = || {
            *next_label += 1;
            *next_label
        };
        let started = self
            .state
            .keep_warm(target, n, plan, self.now, &mut answer, &mut out)
            .unwrap_or(0);
        match n {
            0 => self.warm.remove(target),
            n => self.warm.insert(target.clone(), n),
        };
        self.apply(out);
        self.check_warm(Some(target));
        started
    }

    /// Right after `keep_warm` (for its key) or the background task's pass
    /// (for all), every key kept warm and not backing off has its connections (open, or on
    /// their way) unless `max_open` leaves no room, or the fleet none.
    fn check_warm(&self, only: Option<&Target>) {
        let s = &self.state;
        if s.shut_down {
            return;
        }
        for (target, n) in self.warm.iter().filter(|(t, _)| only.is_none_or(|o| o == *t)) {
            let Some(&key) = s.key_index.get(target) else {
                panic!("a key kept warm was forgotten");
            };
            let k = &s.keys[key];
            let Some(warm) = &k.warm else {
                continue; // its first fill failed, which stops it
            };
            let backing_off = warm.retry_at().is_some_and(|at| at > self.now);
            let fleet_full = self
                .connecting
                .iter()
                .any(|(r, t)| self.fleet_waiting.contains(r) && t == target);
            let have = k.open + k.warm_resolving;
            assert!(
                have >= (*n).min(s.limits.max_per_host) || s.open_or_coming() >= s.limits.max_open || backing_off || fleet_full,
                "key {target} kept warm at {n} has {have}: open {} of {}, retry {:?} now {:?}, waiters {}, pending {}",
                s.open(),
                s.limits.max_open,
                warm.retry_at(),
                self.now,
                k.waiters.len(),
                k.pending
            );
        }
    }

    /// The server closes idle socket `name`; the reactor reports it.
    fn server_closes(&mut self, name: u32) {
        self.healths[&name].set(Health::Closed);
        let Some(idx) = self
            .state
            .sockets
            .iter()
            .find_map(|(i, e)| e.idle.as_ref().filter(|(s, _)| s.name == name).map(|_| i))
        else {
            return;
        };
        let token = self.state.socket_id(idx).token();
        let mut out = Actions::new();
        self.state.idle_event(token, self.now, &mut out);
        self.apply(out);
        assert_eq!(self.close_reason.get(&name), Some(&CloseReason::ClosedByPeer));
    }

    /// A loan began: of a socket whole, or of a shared object.
    fn lent(&mut self, socket: &FakeSocket, id: SocketId) {
        if socket.share {
            self.shares.entry(socket.name).or_insert((id, 0)).1 += 1;
        } else {
            self.loaned.insert(socket.name, (id, socket.health.clone()));
        }
    }

    /// One loan of shared object `name` ends; `ended` says why the object
    /// must take no more.
    fn end_share(&mut self, name: u32, ended: Option<CloseReason>, hints: Hints) {
        let (id, n) = self
            .shares
            .get_mut(&name)
            .map(|e| {
                e.1 -= 1;
                (e.0, e.1)
            })
            .expect("on loan");
        if n == 0 {
            self.shares.remove(&name);
        }
        if let Some(n) = hints.remaining_uses {
            self.uses_left.insert(name, n);
        }
        let mut out = Actions::new();
        self.state.end_share(id, ended, hints, self.now, &mut out);
        self.apply(out);
        if n == 0 && ended.is_some() {
            // Closed for the first reason it was retired for.
            assert!(
                self.close_reason.contains_key(&name),
                "retired, closed with its last loan"
            );
        }
    }

    fn outcome(&self, label: u32) -> Option<&Outcome> {
        self.outcomes.get(&label)
    }

    /// Every invariant of `State`, from its module docs.
    fn check(&self) {
        let s = &self.state;
        let l = s.limits;
        assert_eq!(s.open(), s.idle + s.in_use + s.connecting);
        let stats = s.stats();
        assert_eq!(
            (stats.fleet_waits, stats.fleet_wait_time, stats.fleet_bypassed),
            self.fleet,
            "the fleet's admissions are counted"
        );
        assert!(
            s.open() <= l.max_open,
            "open {} > max_open {}",
            s.open(),
            l.max_open
        );
        let per_key: usize = s.keys.iter().map(|(_, k)| k.open).sum();
        assert_eq!(per_key, s.open());
        // Every key with something open or pending is listed, and the
        // listed gauges add up to the manager's.
        let listed = s.stats_per_key(self.now);
        let sum = |f: fn(&Stats) -> usize| listed.iter().map(|(_, st)| f(st)).sum::<usize>();
        assert_eq!(
            (
                sum(|st| st.open),
                sum(|st| st.idle),
                sum(|st| st.in_use),
                sum(|st| st.connecting)
            ),
            (stats.open, stats.idle, stats.in_use, stats.connecting),
            "stats_per_key adds up to stats"
        );
        assert_eq!(
            sum(|st| st.queued),
            stats.queued,
            "stats_per_key counts every request"
        );
        for (target, st) in &listed {
            assert_eq!(st.open, s.stats_for(target, self.now).open);
        }
        assert_eq!(
            s.in_use,
            self.loaned.len() + self.shares.len(),
            "in use = on loan"
        );
        let shared_loans: usize = self.shares.values().map(|(_, n)| n).sum();
        assert_eq!(stats.loans, self.loaned.len() + shared_loans, "loans");
        for (idx, e) in &s.sockets {
            // Idle iff no loans; a shared object on loan is kept, within
            // its capacity, counted once.
            assert_eq!(e.kept.is_some(), e.loans > 0);
            assert!(e.idle.is_none() || e.loans == 0);
            if let Some(kept) = &e.kept {
                assert!(e.loans <= kept.capacity, "loans over capacity");
                assert_eq!(self.shares.get(&kept.name).map(|(_, n)| *n), Some(e.loans));
            }
            let listed = s.keys[e.key].shared.contains(&idx);
            assert_eq!(
                listed,
                e.kept.is_some() && e.retired.is_none(),
                "the key's shared list"
            );
        }
        assert_eq!(s.connecting, self.connecting.len(), "connecting = connect tasks");
        let mut waiting = 0;
        for (key, k) in &s.keys {
            assert!(k.open <= l.max_per_host, "key over max_per_host");
            assert_eq!(s.key_index[&k.target], key);
            waiting += k.waiters.len();
            // A key one of whose requests waits for the fleet has no room
            // for another new socket: its extra room depends on the fleet.
            let fleet_full = self
                .connecting
                .iter()
                .any(|(r, t)| self.fleet_waiting.contains(r) && s.key_index[t] == key);
            let connecting = s
                .requests
                .iter()
                .filter(|(_, r)| r.key == key && matches!(r.phase, Phase::Connecting(_)))
                .count();
            assert_eq!(k.connecting, connecting, "the key's connects");
            // A connect in flight is counted as the loans it is expected to
            // serve: only waiters beyond those need a connection.
            let beyond = k.waiters.len() > k.connecting * (k.expect - 1);
            if !k.waiters.is_empty() {
                assert!(k.idle.is_empty(), "a waiter while its key has an idle socket");
                assert!(!s.has_spare_share(key), "a waiter while a shared object has room");
                let room =
                    k.open < l.max_per_host && !fleet_full && (s.open() < l.max_open || !s.lru.is_empty());
                assert!(
                    !(room && beyond),
                    "a request waits while a slot it could use is free"
                );
            }
            assert_eq!(
                k.eligible.is_some(),
                !k.waiters.is_empty() && k.open < l.max_per_host && !fleet_full && beyond
            );
            let pending = s.requests.iter().filter(|(_, r)| r.key == key).count();
            assert_eq!(k.pending, pending);
        }
        let resolving = |warm: bool, key: Option<usize>| {
            s.requests
                .iter()
                .filter(|(_, r)| matches!(r.phase, Phase::Resolving(_)) && r.warm == warm)
                .filter(|(_, r)| key.is_none_or(|k| r.key == k))
                .count()
        };
        assert_eq!(s.queued, waiting + resolving(false, None));
        for (key, k) in &s.keys {
            assert_eq!(k.warm_resolving, resolving(true, Some(key)), "warm lookups");
            assert_eq!(k.warm.is_some(), s.warm_keys.contains(&key), "warm keys listed");
        }
        let idle_entries = s.sockets.iter().filter(|(_, e)| e.idle.is_some()).count();
        assert_eq!(s.idle, idle_entries);
        assert_eq!(s.deadlines.len(), s.requests.len());
        assert_eq!(s.lookups.len(), s.lookup_index.len());
        assert_eq!(s.lookups.len(), self.resolving.len());
        // The stats agree with the model, built from what the actions did.
        let stats = s.stats();
        let pending: Vec<RequestId> = self
            .ids
            .iter()
            .filter(|(l, _)| !self.outcomes.contains_key(l))
            .map(|(_, id)| *id)
            .collect();
        let asked_connecting = self
            .connecting
            .iter()
            .filter(|(r, _)| pending.contains(r))
            .count();
        assert_eq!(stats.open, self.alive.len() + self.connecting.len(), "open");
        let on_loan = self.loaned.len() + self.shares.len();
        assert_eq!(stats.idle, self.alive.len() - on_loan, "idle");
        assert_eq!(stats.in_use, on_loan, "in use");
        assert_eq!(stats.connecting, self.connecting.len(), "connecting");
        assert_eq!(stats.queued, pending.len() - asked_connecting, "queued");
        assert_eq!(stats.connects, self.connected, "connects");
        // Every close has a reason, counted once; they add up.
        for (reason, n) in stats.closes.each() {
            assert_eq!(n, self.closes.get(&reason).copied().unwrap_or(0), "{reason:?}");
        }
        assert_eq!(
            stats.connects,
            (stats.idle + stats.in_use) as u64 + stats.closes.total(),
            "opened = open + closes"
        );
        assert_eq!(stats.closes.total(), self.closed.len() as u64);
        assert_eq!(stats.stale_discarded, stats.closes.stale());
    }
}

#[test]
fn a_returned_socket_is_reused_immediately() {
    let mut sim = Sim::new(2, 10);
    sim.allocate(&target(0), 1);
    sim.connect(0, true);
    assert_eq!(
        sim.outcome(1),
        Some(&Outcome::Got {
            socket: 1,
            from: FromCache::Fresh
        })
    );
    sim.give_back(1);
    sim.allocate(&target(0), 2);
    assert_eq!(
        sim.outcome(2),
        Some(&Outcome::Got {
            socket: 1,
            from: FromCache::Immediate
        })
    );
    assert_eq!((sim.state.counts.connects, sim.state.counts.reuses), (1, 1));
}

#[test]
fn a_shared_object_takes_loans_up_to_its_capacity_and_counts_once() {
    // Key 3's connections serve 2 loans at once, as expected.
    let mut sim = Sim::new(2, 10);
    for label in 1..=5 {
        sim.allocate(&target(3), label);
    }
    assert_eq!(
        sim.connecting.len(),
        2,
        "one connect per 2 requests, within max_per_host"
    );
    sim.connect(0, true);
    sim.connect(0, true);
    let got = |sim: &Sim, label| match sim.outcome(label) {
        Some(Outcome::Got { socket, .. }) => Some(*socket),
        _ => None,
    };
    assert_eq!(
        (1..=4).map(|l| got(&sim, l)).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(1), Some(2)]
    );
    assert_eq!(got(&sim, 5), None, "both connections full: it waits");
    let stats = sim.state.stats();
    assert_eq!(
        (stats.open, stats.in_use, stats.loans, stats.queued),
        (2, 2, 4, 1)
    );
    assert_eq!((stats.connects, stats.reuses), (2, 2));
    // One loan's end gives its slot to the waiter at once.
    sim.end_share(2, None, Hints::default());
    assert_eq!(got(&sim, 5), Some(2));
    // The last loans' ends return the object whole, idle.
    sim.end_share(1, None, Hints::default());
    sim.end_share(1, None, Hints::default());
    assert_eq!((sim.state.stats().idle, sim.state.stats().loans), (1, 2));
    // A discarded loan retires its object: no new loans, closed with its
    // last one.
    sim.end_share(2, Some(CloseReason::Discarded), Hints::default());
    sim.allocate(&target(3), 6);
    assert_eq!(got(&sim, 6), Some(1), "the idle one, not the retired one");
    sim.end_share(2, None, Hints::default());
    assert_eq!(sim.close_reason.get(&2), Some(&CloseReason::Discarded));
}

#[test]
fn a_burst_waits_for_one_handshake_when_the_protocol_may_multiplex() {
    // Key 1 expects 4 loans a connection (an ALPN offer of h2); the server
    // chooses HTTP/1.1: the others then connect for themselves.
    let mut sim = Sim::new(3, 10);
    for label in 1..=3 {
        sim.allocate(&target(1), label);
    }
    assert_eq!(
        (sim.connecting.len(), sim.state.queued),
        (1, 2),
        "one dial for the burst"
    );
    sim.connect(0, true);
    assert_eq!(
        (sim.connecting.len(), sim.state.queued),
        (2, 0),
        "learned: one loan each"
    );
    // Key 4 expects 8 and gets 3: the burst of 5 learns it and opens a
    // second connection for the other 2 requests.
    for label in 4..=8 {
        sim.allocate(&target(4), label);
    }
    assert_eq!(sim.connecting.len(), 3);
    let first = sim
        .connecting
        .iter()
        .position(|(_, t)| *t == target(4))
        .expect("key 4 connects");
    sim.connect(first, true);
    let stats = sim.state.stats_for(&target(4), sim.now);
    assert_eq!(
        (stats.in_use, stats.loans, stats.connecting, stats.queued),
        (1, 3, 1, 1)
    );
}

#[test]
fn waiters_are_served_in_order_with_the_returned_socket() {
    let mut sim = Sim::new(1, 10);
    sim.allocate(&target(0), 1);
    sim.connect(0, true);
    for label in 2..=4 {
        sim.allocate(&target(0), label);
    }
    assert_eq!(sim.state.queued, 3);
    for label in 2..=4 {
        let holder = label - 1;
        let Some(Outcome::Got { socket, .. }) = sim.outcome(holder).cloned() else {
            panic!("{holder} holds the socket");
        };
        sim.give_back(socket);
        assert_eq!(
            sim.outcome(label),
            Some(&Outcome::Got {
                socket: 1,
                from: FromCache::Deferred
            })
        );
    }
}

#[test]
fn max_open_evicts_the_least_recently_used_idle_socket() {
    let mut sim = Sim::new(4, 2);
    for (label, key) in [(1, 0), (2, 1)] {
        sim.allocate(&target(key), label);
        sim.connect(0, true);
    }
    sim.give_back(1); // key 0's socket idles first
    sim.give_back(2);
    sim.allocate(&target(2), 3);
    assert_eq!(sim.closed, [1], "the least recently used socket");
    assert_eq!(sim.connecting.len(), 1);
}

#[test]
fn requests_blocked_by_max_open_are_served_oldest_first_across_keys() {
    let mut sim = Sim::new(4, 1);
    sim.allocate(&target(0), 1);
    sim.connect(0, true);
    sim.allocate(&target(1), 2);
    sim.allocate(&target(2), 3);
    sim.allocate(&target(1), 4);
    assert_eq!(sim.state.queued, 3);
    sim.discard(1, CloseReason::Discarded);
    assert_eq!(sim.connecting[0].1, target(1), "the oldest waiter, label 2");
    sim.connect(0, false);
    assert_eq!(sim.outcome(2), Some(&Outcome::Failed("connect")));
    assert_eq!(sim.connecting[0].1, target(2), "then label 3");
}

#[test]
fn a_timed_out_connect_is_aborted_and_its_slot_reused() {
    let mut sim = Sim::new(1, 10);
    sim.allocate(&target(0), 1);
    sim.advance(TIMEOUT / 2);
    sim.allocate(&target(0), 2);
    sim.advance(TIMEOUT / 2);
    assert_eq!(sim.outcome(1), Some(&Outcome::Failed("timeout")));
    assert_eq!(sim.aborted, [RequestOrLookup::Request(sim.ids[&1])]);
    assert_eq!(
        sim.connecting[0].0, sim.ids[&2],
        "the waiter connects in its place"
    );
}

#[test]
fn a_connect_that_finishes_after_its_request_left_is_pooled_if_there_is_room() {
    let mut sim = Sim::new(1, 10);
    sim.allocate(&target(0), 1);
    let (request, t) = sim.connecting[0].clone();
    assert!(sim.cancel(1));
    // The task's report raced with the cancellation.
    let mut out = Actions::new();
    let health = Rc::new(Cell::new(Health::Usable));
    sim.alive.insert(99);
    sim.connected += 1;
    sim.state.connected(
        request,
        &t,
        (FakeSocket::new(99, health, &t), Dialed::default()),
        sim.now,
        &mut out,
    );
    sim.apply(out);
    assert_eq!((sim.state.idle, sim.state.counts.connects), (1, 1));
}

#[test]
fn one_lookup_serves_every_request_for_a_name() {
    let mut sim = Sim::new(1, 10);
    for label in 1..=3 {
        sim.allocate(&named(0), label);
    }
    assert_eq!(
        (
            sim.state.counts.dns_lookups,
            sim.resolving.len(),
            sim.state.queued
        ),
        (1, 1, 3)
    );
    sim.resolve(0, true);
    assert_eq!((sim.connecting.len(), sim.state.queued), (1, 2));
    sim.allocate(&named(1), 4);
    sim.resolve(0, false);
    assert_eq!(sim.outcome(4), Some(&Outcome::Failed("resolve")));
}

#[test]
fn stale_idle_sockets_are_closed_on_report_and_at_checkout() {
    let mut sim = Sim::new(2, 10);
    for label in [1, 2] {
        sim.allocate(&target(0), label);
        sim.connect(0, true);
    }
    sim.give_back(1);
    sim.give_back(2);
    sim.server_closes(1);
    assert_eq!((sim.state.idle, sim.state.stats().stale_discarded), (1, 1));
    sim.healths[&2].set(Health::Unread); // not reported yet
    sim.allocate(&target(0), 3);
    assert_eq!(sim.outcome(3), None, "the stale socket was not handed out");
    assert_eq!((sim.state.stats().stale_discarded, sim.connecting.len()), (2, 1));
}

#[test]
fn a_warm_key_is_filled_refilled_and_never_makes_a_request_wait() {
    let mut sim = Sim::new(3, 4);
    let mut labels = 100;
    assert_eq!(sim.keep_warm(&target(0), 2, &mut labels), 2);
    sim.connect(0, true);
    sim.connect(0, true);
    assert_eq!(
        sim.outcome(101),
        Some(&Outcome::Failed("warmed")),
        "the fill hears"
    );
    assert_eq!(sim.state.idle, 2, "warm connections go idle");
    sim.allocate(&target(0), 1);
    let immediate = Outcome::Got {
        socket: 2,
        from: FromCache::Immediate,
    };
    assert_eq!(sim.outcome(1), Some(&immediate));
    // The server closes the idle one: the background pass replaces it.
    sim.server_closes(1);
    sim.advance(Duration::ZERO);
    assert_eq!(sim.connecting.len(), 1, "one replacement");
    // A failed replacement backs off a second or less, then tries again.
    sim.connect(0, false);
    sim.advance(Duration::ZERO);
    assert_eq!(sim.connecting.len(), 0, "backing off");
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.connecting.len(), 1, "tried again");
    // A request while a warm connect is in flight connects itself.
    sim.allocate(&target(0), 2);
    assert_eq!(
        sim.connecting.len(),
        2,
        "the request did not wait for the warm connect"
    );
    // Stopped: its connect in flight is cancelled and nothing is replaced.
    assert_eq!(sim.keep_warm(&target(0), 0, &mut labels), 0);
    assert_eq!(sim.connecting.len(), 1);
    sim.give_back(2);
    sim.server_closes(2);
    sim.advance(Duration::ZERO);
    assert_eq!(sim.connecting.len(), 1);
}

#[test]
fn refresh_dns_closes_what_left_the_answer_idle_now_on_loan_when_back() {
    let mut sim = Sim::new(3, 10);
    sim.state.limits.refresh_dns = Some(Duration::from_secs(5));
    let t = named(0);
    sim.allocate(&t, 1);
    sim.allocate(&t, 2);
    sim.resolve(0, true); // the first answer: 127.0.0.1, for both
    sim.connect(0, true);
    sim.connect(0, true);
    sim.give_back(1);
    assert_eq!(sim.state.stats().dns_lookups, 1);
    // Not yet due; then due: one lookup, whose answer moved to .2.
    sim.advance(Duration::from_secs(4));
    assert!(sim.resolving.is_empty());
    sim.advance(Duration::from_secs(1));
    assert_eq!((sim.resolving.len(), sim.state.stats().dns_lookups), (1, 2));
    sim.resolve(0, true);
    assert_eq!(
        sim.close_reason.get(&1),
        Some(&CloseReason::AddressGone),
        "idle: closed"
    );
    assert_eq!(sim.close_reason.get(&2), None, "on loan: not under its user");
    sim.give_back(2);
    assert_eq!(
        sim.close_reason.get(&2),
        Some(&CloseReason::AddressGone),
        "closed as it came back"
    );
    // No connection left: the next due time ends the schedule.
    sim.advance(Duration::from_secs(5));
    sim.advance(Duration::from_secs(5));
    assert!(sim.resolving.is_empty());
    assert_eq!(sim.state.stats().closes.address_gone, 2);
}

#[test]
fn a_warm_connect_takes_no_room_it_would_have_to_evict_for() {
    let mut sim = Sim::new(2, 2);
    sim.allocate(&target(1), 1);
    sim.connect(0, true);
    sim.give_back(1);
    let mut labels = 100;
    // Room for one under max_open; the idle socket of key 1 is not evicted.
    assert_eq!(sim.keep_warm(&target(0), 2, &mut labels), 1);
    assert_eq!((sim.state.idle, sim.connecting.len()), (1, 1));
}

#[test]
fn a_servers_idle_close_teaches_its_key_only_and_not_when_immediate() {
    let mut sim = Sim::new(2, 10);
    for (label, key) in [(1, 0), (2, 1)] {
        sim.allocate(&target(key), label);
        sim.connect(0, true);
    }
    sim.give_back(1);
    sim.give_back(2);
    // Key 1's socket closed 10 ms after its return: a final-response close,
    // no lesson.
    sim.now += Duration::from_millis(10);
    sim.server_closes(2);
    assert_eq!(sim.state.stats_for(&target(1), sim.now).server_idle_timeout, None);
    // Key 0's closed after 2 s idle: learned, for key 0 alone.
    sim.now += Duration::from_secs(2);
    sim.server_closes(1);
    let learned = sim.state.stats_for(&target(0), sim.now).server_idle_timeout;
    assert_eq!(learned, Some(Duration::from_millis(2010)));
    assert_eq!(sim.state.stats_for(&target(1), sim.now).server_idle_timeout, None);
    // A socket of key 0 idle for 1.5 s is still handed out; one idle for
    // 1.9 s (within the 201 ms margin) is retired and a connect starts.
    sim.allocate(&target(0), 3);
    sim.connect(0, true);
    sim.give_back(3);
    sim.advance(Duration::from_millis(1500));
    sim.allocate(&target(0), 4);
    assert!(matches!(sim.outcome(4), Some(Outcome::Got { socket: 3, .. })));
    sim.give_back(3);
    sim.advance(Duration::from_millis(1900));
    sim.allocate(&target(0), 5);
    assert_eq!(sim.outcome(5), None, "not handed out");
    assert_eq!(sim.connecting.len(), 1);
    assert_eq!(sim.close_reason.get(&3), Some(&CloseReason::ServerLimit));
}

#[test]
fn a_request_lost_on_a_reused_socket_teaches_the_limit_unless_held_long() {
    let mut sim = Sim::new(2, 10);
    for key in 0..3 {
        sim.allocate(&target(key), 10 + key as u32);
        sim.connect(0, true);
    }
    // Sockets are named in connect order.
    let (a, b, fresh) = (1, 2, 3);
    sim.give_back(a);
    sim.give_back(b);
    sim.advance(Duration::from_secs(1));
    // Key 0: reused after 1 s idle, the answer is the server's close.
    sim.allocate(&target(0), 20);
    assert!(matches!(sim.outcome(20), Some(Outcome::Got { socket, .. }) if *socket == a));
    sim.now += Duration::from_millis(60);
    sim.lose(a);
    let learned = sim.state.stats_for(&target(0), sim.now).server_idle_timeout;
    assert_eq!(learned, Some(Duration::from_secs(1)));
    // Key 1: held on loan 2 s before its close: the server's idle clock
    // ran on; no lesson.
    sim.allocate(&target(1), 21);
    sim.now += Duration::from_secs(2);
    sim.lose(b);
    assert_eq!(sim.state.stats_for(&target(1), sim.now).server_idle_timeout, None);
    // Key 2: a fresh socket's close is no idle limit.
    sim.lose(fresh);
    assert_eq!(sim.state.stats_for(&target(2), sim.now).server_idle_timeout, None);
    assert_eq!(sim.state.stats().closes.closed_by_peer, 3);
}

#[test]
fn shutdown_fails_everything_pending_and_closes_idle_sockets() {
    let mut sim = Sim::new(1, 10);
    sim.allocate(&target(0), 1);
    sim.connect(0, true);
    sim.allocate(&target(1), 2);
    sim.connect(0, true);
    sim.give_back(2);
    sim.allocate(&target(0), 3);
    sim.allocate(&named(0), 4);
    let mut out = Actions::new();
    sim.state.shutdown(&mut out);
    sim.apply(out);
    assert_eq!(sim.outcome(3), Some(&Outcome::Failed("shutdown")));
    assert_eq!(sim.outcome(4), Some(&Outcome::Failed("shutdown")));
    assert_eq!(sim.closed, [2]);
    sim.give_back(1);
    assert_eq!(sim.closed, [2, 1], "returned after shutdown: closed");
    assert_eq!(sim.state.open(), 0);
}

/// One event in a generated sequence. Indices pick among what exists when
/// the event is applied (modulo its size).
#[derive(Clone, Debug)]
// The fleet's operations do nothing without the `fleet` feature.
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
enum Op {
    Allocate {
        key: usize,
        named: bool,
    },
    ConnectDone {
        pick: usize,
        ok: bool,
    },
    LookupDone {
        pick: usize,
        ok: bool,
    },
    /// Drop a loaned connection: 0 back to the pool, 1 with unread data,
    /// 2 discarded, 3 back with `set_remaining_uses(pick % 3)`, 4 back with
    /// `set_server_idle_timeout(pick % 8 s)`, 5 refused by the object's
    /// `recycle`, 6 lost to the server's close before any answer.
    Drop {
        pick: usize,
        how: u8,
    },
    /// Drop an `Allocation` or call `deallocate`.
    Cancel {
        pick: usize,
    },
    Advance {
        secs: u64,
    },
    /// The server closes an idle socket and the reactor reports it.
    ServerCloses {
        pick: usize,
    },
    /// Another member of the fleet waits for a key.
    FleetWants {
        key: usize,
    },
    /// A connect in flight finds the fleet full and waits.
    FleetWaiting {
        pick: usize,
    },
    /// A connect in flight is admitted by the fleet, after a wait of
    /// `wait_ms` (none for 0), or without Redis.
    FleetAdmitted {
        pick: usize,
        wait_ms: u64,
        bypassed: bool,
    },
    /// `keep_warm` for a key (0 stops).
    KeepWarm {
        key: usize,
        n: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize, prop::bool::weighted(0.25)).prop_map(|(key, named)| Op::Allocate { key, named }),
        2 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, ok)| Op::ConnectDone { pick, ok }),
        1 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, ok)| Op::LookupDone { pick, ok }),
        3 => (any::<usize>(), 0..7u8).prop_map(|(pick, how)| Op::Drop { pick, how }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (0..12u64).prop_map(|secs| Op::Advance { secs }),
        1 => any::<usize>().prop_map(|pick| Op::ServerCloses { pick }),
        1 => (0..3usize).prop_map(|key| Op::FleetWants { key }),
        1 => any::<usize>().prop_map(|pick| Op::FleetWaiting { pick }),
        1 => (any::<usize>(), 0..3u64, any::<bool>())
            .prop_map(|(pick, wait_ms, bypassed)| Op::FleetAdmitted { pick, wait_ms, bypassed }),
        1 => (0..5usize, 0..4usize).prop_map(|(key, n)| Op::KeepWarm { key, n }),
    ]
}

impl Sim {
    fn apply_op(&mut self, op: &Op, next_label: &mut u32) {
        match *op {
            Op::Allocate { key, named: n } => {
                *next_label += 1;
                let t = if n { named(key) } else { target(key) };
                self.allocate(&t, *next_label);
            }
            Op::ConnectDone { pick, ok } if !self.connecting.is_empty() => {
                self.connect(pick % self.connecting.len(), ok);
            }
            Op::LookupDone { pick, ok } if !self.resolving.is_empty() => {
                self.resolve(pick % self.resolving.len(), ok);
            }
            Op::Drop { pick, how } if !self.loaned.is_empty() || !self.shares.is_empty() => {
                let mut names: Vec<u32> = self.loaned.keys().chain(self.shares.keys()).copied().collect();
                names.sort_unstable();
                let name = names[pick % names.len()];
                if self.shares.contains_key(&name) {
                    return self.drop_share(name, pick, how);
                }
                match how {
                    0 => self.give_back(name),
                    1 => {
                        self.healths[&name].set(Health::Unread);
                        self.give_back(name);
                    }
                    2 => self.discard(name, CloseReason::Discarded),
                    // The race with the server's idle close, lost.
                    6 => self.lose(name),
                    // A custom object whose `recycle` refused it.
                    5 => self.discard(name, CloseReason::RecycleRefused),
                    3 => {
                        let hints = Hints {
                            remaining_uses: Some((pick % 3) as u32),
                            ..Hints::default()
                        };
                        self.give_back_with(name, hints);
                    }
                    _ => {
                        let hints = Hints {
                            server_idle_timeout: Some(Duration::from_secs((pick % 8) as u64)),
                            ..Hints::default()
                        };
                        self.give_back_with(name, hints);
                    }
                }
            }
            Op::Cancel { pick } if *next_label > 0 => {
                self.cancel(1 + (pick % *next_label as usize) as u32);
            }
            Op::Advance { secs } => self.advance(Duration::from_secs(secs)),
            Op::KeepWarm { key, n } => {
                let t = if key == 4 { named(key) } else { target(key) };
                self.keep_warm(&t, n, next_label);
            }
            #[cfg(feature = "fleet")]
            Op::FleetWants { key } => self.fleet_wants(&target(key)),
            #[cfg(feature = "fleet")]
            Op::FleetWaiting { pick } if !self.connecting.is_empty() => {
                let (request, _) = self.connecting[pick % self.connecting.len()].clone();
                // A warm connect takes no returned socket: not listed.
                let warm = self.state.requests[request.slot()].warm;
                if !warm && self.fleet_waiting.insert(request) {
                    self.state.fleet_waiting(request);
                    self.check();
                }
            }
            #[cfg(feature = "fleet")]
            Op::FleetAdmitted {
                pick,
                wait_ms,
                bypassed,
            } if !self.connecting.is_empty() => {
                let waited = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
                self.fleet_admitted(pick % self.connecting.len(), waited, bypassed);
            }
            Op::ServerCloses { pick } if self.next_name > 0 => {
                let name = 1 + (pick % self.next_name as usize) as u32;
                let lent = self.loaned.contains_key(&name) || self.shares.contains_key(&name);
                if !lent && self.alive.contains(&name) {
                    self.server_closes(name);
                }
            }
            _ => {}
        }
    }

    /// Ends one loan of shared object `name`, as `Op::Drop`'s `how` says.
    fn drop_share(&mut self, name: u32, pick: usize, how: u8) {
        let (ended, hints) = match how {
            1 => {
                // The connection died (GOAWAY, a reset) while shared.
                self.healths[&name].set(Health::Closed);
                (None, Hints::default())
            }
            2 => (Some(CloseReason::Discarded), Hints::default()),
            3 => {
                let hints = Hints {
                    remaining_uses: Some((pick % 3) as u32),
                    ..Hints::default()
                };
                (None, hints)
            }
            4 => {
                // The server sent GOAWAY: no new loans, closed with the last.
                self.healths[&name].set(Health::GoingAway);
                (None, Hints::default())
            }
            5 => (Some(CloseReason::RecycleRefused), Hints::default()),
            6 => (Some(CloseReason::ClosedByPeer), Hints::default()),
            _ => (None, Hints::default()),
        };
        self.end_share(name, ended, hints);
    }

    /// Gives everything back (waiters may receive what is returned), fails
    /// what is in flight, and lets every timer run out.
    fn drain(&mut self) {
        let mut labels = u32::MAX / 2;
        for target in self.warm.keys().cloned().collect::<Vec<_>>() {
            self.keep_warm(&target, 0, &mut labels);
        }
        loop {
            if let Some(&name) = self.loaned.keys().min() {
                self.give_back(name);
            } else if let Some(&name) = self.shares.keys().min() {
                self.end_share(name, None, Hints::default());
            } else if !self.connecting.is_empty() {
                self.connect(0, false);
            } else if !self.resolving.is_empty() {
                self.resolve(0, false);
            } else {
                break;
            }
        }
        self.advance(TIMEOUT + KEEP_ALIVE);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random sequences of every event over three keys with small limits,
    /// with or without a `max_lifetime`, and connections returned with
    /// `set_remaining_uses` and `set_server_idle_timeout` hints: after each
    /// step `Sim::check` asserts the limits, that no request waits while a
    /// slot it could use is free, that the stats agree with the model
    /// (close reasons included, and `connects == open sockets + closes`);
    /// no socket is handed out past its lifetime or uses; at the end
    /// nothing lingers.
    #[test]
    fn random_event_sequences_keep_every_invariant(
        max_per_host in 1..=3usize,
        max_open in 1..=4usize,
        max_lifetime in prop::option::of(5..40u64),
        refresh in any::<bool>(),
        ops in prop::collection::vec(op(), 1..250),
    ) {
        let lifetime = max_lifetime.map(Duration::from_secs);
        let mut sim = Sim::with_lifetime(max_per_host, max_open, lifetime);
        sim.state.limits.refresh_dns = refresh.then(|| Duration::from_secs(5));
        let mut labels = 0;
        for op in &ops {
            sim.apply_op(op, &mut labels);
        }
        sim.drain();
        let s = sim.state.stats();
        prop_assert_eq!((s.open, s.queued, s.in_use), (0, 0, 0), "{:?}", s);
        let idle_keys = sim.state.keys.iter().all(|(_, k)| k.open == 0 && k.pending == 0 && k.dormant.is_some());
        prop_assert!(idle_keys, "keys still in use");
        prop_assert_eq!(sim.state.dormant_count, sim.state.keys.len());
        prop_assert!(sim.alive.is_empty(), "sockets linger");
        let answered = (1..=labels).all(|l| sim.outcomes.contains_key(&l));
        prop_assert!(answered, "a request was never answered");
    }
}
