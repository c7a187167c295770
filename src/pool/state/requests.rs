//! Request decisions: new requests, placement, connect failures,
//! cancellation, deadlines.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline::Deadline;

use super::{
    Action, Actions, Addrs, FromCache, Handles, NewRequest, Phase, Request, RequestId, Room, SocketId, State,
    TaskOwner,
};

/// What a request is, apart from where it goes: who hears its outcome,
/// its deadline, and whether it is a warm connect.
pub(super) struct Asked<P: Handles> {
    pub(super) responder: Option<P::Responder>,
    pub(super) deadline: Deadline,
    pub(super) timeout: Duration,
    pub(super) start: Instant,
    pub(super) warm: bool,
}

impl<P: Handles> From<NewRequest<P>> for Asked<P> {
    fn from(new: NewRequest<P>) -> Asked<P> {
        Asked {
            responder: Some(new.responder),
            deadline: new.deadline,
            timeout: new.timeout,
            start: new.now,
            warm: false,
        }
    }
}

use crate::error::Error;
use crate::target::Target;

impl<P: Handles> State<P> {
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
        mut new: NewRequest<P>,
        out: &mut Actions<P>,
    ) -> Result<RequestId, Error> {
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        let key = self.intern(target);
        // Until a connection of the key was made, the protocol's guess.
        if self.keys[key].counts.connects == 0 {
            self.keys[key].expect = new.expect.max(1);
        }
        // The name to look up: the proxy's, for a target reached through one.
        let endpoint = target.dial_endpoint();
        let (host, port) = (endpoint.host.clone(), endpoint.port);
        let addrs = new
            .addrs
            .take()
            .or_else(|| self.dns_cache.get(&host, port, new.now));
        let now = new.now;
        let would_wait = addrs.is_none() || !self.can_start_now(key);
        if would_wait && self.queued >= self.limits.max_queued {
            self.forget_key_if_unused(key);
            return Err(Error::QueueFull {
                limit: self.limits.max_queued,
            });
        }
        let (id, queued) = self.store_request(key, Asked::from(new), addrs, (host, port), out);
        if queued {
            self.place(id, now, out);
        }
        self.serve_waiters(out);
        Ok(id)
    }

    /// Stores a new request of `key`: queued for a socket when its
    /// addresses are known, else waiting for the (shared) lookup of
    /// `name`. Returns its id and whether it is queued.
    pub(super) fn store_request(
        &mut self,
        key: usize,
        asked: Asked<P>,
        addrs: Option<Addrs>,
        name: (Arc<str>, u16),
        out: &mut Actions<P>,
    ) -> (RequestId, bool) {
        let id = self.request_id(self.requests.vacant_key());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.keys[key].pending += 1;
        self.track_deadline(asked.deadline, id, out);
        let phase = match addrs {
            Some(addrs) => Phase::Queued(addrs),
            None => {
                match asked.warm {
                    true => self.keys[key].warm_resolving += 1,
                    false => self.queued += 1,
                }
                Phase::Resolving(self.join_lookup(name.0, name.1, id, key, out))
            }
        };
        let queued = matches!(phase, Phase::Queued(_));
        self.requests.insert(Request {
            id,
            key,
            seq,
            deadline: asked.deadline,
            timeout: asked.timeout,
            start: asked.start,
            responder: asked.responder,
            warm: asked.warm,
            phase,
        });
        (id, queued)
    }

    /// A request of `key` leaves its lookup: counted in `queued` no more
    /// (a warm connect, in its key's `warm_resolving`).
    pub(super) fn left_resolving(&mut self, id: RequestId) {
        let req = &self.requests[id.slot()];
        match req.warm {
            true => self.keys[req.key].warm_resolving -= 1,
            false => self.queued -= 1,
        }
    }

    /// Whether a request for `key` would get a socket without waiting.
    fn can_start_now(&self, key: usize) -> bool {
        let k = &self.keys[key];
        k.waiters.is_empty()
            && (self.has_spare_share(key)
                || !k.idle.is_empty()
                || (self.needs_connect(key, 1) && self.room(key) != Room::Full))
    }

    /// Serves a request that has its addresses: a loan of a shared object
    /// with room, else an idle socket of its key, else a new connection if
    /// limits allow and no connect in flight is expected to serve it, else
    /// a place in the queue. The request must not be counted in `queued`
    /// yet.
    pub(super) fn place(&mut self, id: RequestId, now: Instant, out: &mut Actions<P>) {
        let key = self.requests[id.slot()].key;
        if self.requests[id.slot()].warm {
            return self.place_warm(id, out);
        }
        if self.keys[key].waiters.is_empty() {
            let found = match self.take_share(key, now, out) {
                Some(share) => Some(share),
                None => self.take_idle(key, now, out),
            };
            if let Some((socket, sid)) = found {
                self.deliver(id, socket, sid, FromCache::Deferred, out);
                return;
            }
            if self.needs_connect(key, 1) && self.claim_room(key, out) {
                self.start_connect(id, out);
                return;
            }
        }
        self.queued += 1;
        self.keys[key].waiters.push_back(id);
        self.update_eligible(key);
    }

    /// Starts a connect for a request that has room under both limits.
    pub(super) fn start_connect(&mut self, id: RequestId, out: &mut Actions<P>) {
        let req = &mut self.requests[id.slot()];
        let Phase::Queued(addrs) = std::mem::replace(&mut req.phase, Phase::Connecting(None)) else {
            unreachable!("only a request with addresses is connected");
        };
        let (key, deadline) = (req.key, req.deadline);
        let k = &mut self.keys[key];
        let addrs = match self.limits.spread_addresses {
            true => super::inputs::rotated(&addrs, k.dialed),
            false => addrs,
        };
        k.dialed = k.dialed.wrapping_add(1);
        k.open += 1;
        k.connecting += 1;
        self.connecting += 1;
        self.meter_gauges(key);
        out.push(Action::Connect {
            request: id,
            target: self.keys[key].target.clone(),
            addrs,
            deadline,
        });
    }

    /// A connect task's failure: the request fails with `error`, its slot
    /// goes to the next waiter.
    pub(crate) fn connect_failed(
        &mut self,
        request: RequestId,
        error: Error,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        if let Some(key) = self.connecting_key(request) {
            self.connect_ended(key);
            let req = self.finish(request);
            self.failed(req, error, now, out);
            self.release_slot(key, out);
        }
        self.serve_waiters(out);
    }

    /// Cancels a pending request, releasing its queue place, lookup
    /// interest or connect slot. Returns its responder, or `None` when the
    /// request is already complete.
    pub(crate) fn cancel(&mut self, id: RequestId, out: &mut Actions<P>) -> Option<P::Responder> {
        self.live_request(id)?;
        let req = self.abandon(id, out);
        self.serve_waiters(out);
        req.responder
    }

    /// Moves a pending request's deadline to `deadline` if that is
    /// earlier than the one it has.
    pub(crate) fn shorten_deadline(
        &mut self,
        id: RequestId,
        deadline: Deadline,
        timeout: Duration,
        out: &mut Actions<P>,
    ) {
        let Some(slot) = self.live_request(id) else {
            return;
        };
        let earlier = match (deadline.instant(), self.requests[slot].deadline.instant()) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.move_deadline(slot, deadline, timeout, out);
        }
    }

    /// Moves a pending request's deadline.
    pub(crate) fn set_deadline(
        &mut self,
        id: RequestId,
        deadline: Deadline,
        timeout: Duration,
        out: &mut Actions<P>,
    ) {
        if let Some(slot) = self.live_request(id) {
            self.move_deadline(slot, deadline, timeout, out);
        }
    }

    /// Moves the deadline of the live request in `slot`.
    fn move_deadline(&mut self, slot: usize, deadline: Deadline, timeout: Duration, out: &mut Actions<P>) {
        let req = &mut self.requests[slot];
        let id = req.id;
        let before = std::mem::replace(&mut req.deadline, deadline);
        req.timeout = timeout;
        if let Some(at) = before.instant() {
            self.deadlines.remove(&(at, id.raw()));
        }
        self.track_deadline(deadline, id, out);
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

    /// Removes a pending request in any phase, undoing what the phase held.
    pub(super) fn abandon(&mut self, id: RequestId, out: &mut Actions<P>) -> Request<P> {
        let slot = id.slot();
        let key = self.requests[slot].key;
        let phase = std::mem::replace(&mut self.requests[slot].phase, Phase::Connecting(None));
        let connecting = match phase {
            Phase::Resolving(lookup) => {
                self.left_resolving(id);
                self.leave_lookup(lookup, id, out);
                false
            }
            Phase::Queued(_) => {
                self.queued -= 1;
                self.keys[key].waiters.retain(|w| *w != id);
                self.update_eligible(key);
                false
            }
            Phase::Connecting(task) => {
                self.connect_ended(key);
                out.list.extend(task.map(Action::Abort));
                true
            }
        };
        let req = self.finish(id);
        if connecting {
            self.release_slot(key, out);
        }
        req
    }

    /// Notes a request's deadline for `expire`, unless it is never.
    fn track_deadline(&mut self, deadline: Deadline, id: RequestId, out: &mut Actions<P>) {
        if let Some(at) = deadline.instant() {
            self.deadlines.insert((at, id.raw()));
            self.arm(at, out);
        }
    }

    /// Removes a request that is done, with its deadline.
    pub(super) fn finish(&mut self, id: RequestId) -> Request<P> {
        let req = self.requests.remove(id.slot());
        if let Some(at) = req.deadline.instant() {
            self.deadlines.remove(&(at, id.raw()));
        }
        #[cfg(feature = "fleet")]
        let fleet_waiting = &mut self.keys[req.key].fleet_waiting;
        #[cfg(feature = "fleet")]
        if !fleet_waiting.is_empty() {
            fleet_waiting.retain(|r| *r != id);
            self.update_eligible(req.key);
        }
        self.keys[req.key].pending -= 1;
        self.forget_key_if_unused(req.key);
        req
    }

    /// Completes a request with a socket the caller already counts in
    /// `in_use`.
    pub(super) fn deliver(
        &mut self,
        id: RequestId,
        socket: P::Socket,
        sid: SocketId,
        from: FromCache,
        out: &mut Actions<P>,
    ) {
        let req = self.finish(id);
        self.meter_queue(req.key, Some(req.start));
        let responder = req
            .responder
            .expect("only warm connects have no responder, and none is delivered to");
        out.push(Action::Deliver {
            responder,
            socket,
            id: sid,
            target: self.keys[req.key].target.clone(),
            from,
        });
    }

    /// The slot of a live request with this id.
    pub(super) fn live_request(&self, id: RequestId) -> Option<usize> {
        let slot = id.slot();
        self.requests.get(slot).filter(|r| r.id == id).map(|_| slot)
    }

    /// The key of a live request that is connecting.
    pub(super) fn connecting_key(&self, id: RequestId) -> Option<usize> {
        let req = &self.requests[self.live_request(id)?];
        matches!(req.phase, Phase::Connecting(_)).then_some(req.key)
    }

    /// A new id for request slot `slot`; also used for requests served at
    /// once, which are never stored.
    pub(crate) fn request_id(&mut self, slot: usize) -> RequestId {
        self.next_generation = self.next_generation.wrapping_add(1);
        RequestId::new(slot, self.next_generation)
    }
}
