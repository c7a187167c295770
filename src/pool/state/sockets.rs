//! Socket decisions: checkout, return, idle events.

use tokio::time::Instant;

use super::idle_lists::{self as lists, Chain};
use super::{
    Action, Actions, CloseReason, FromCache, Handles, Health, Hints, Poolable, RequestId, SocketId, State,
};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::target::Target;

/// Where a socket was found unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// By the kernel check as it was handed out.
    Checkout,
    /// By an event while it was idle.
    Idle,
    /// As it came back from a loan.
    Return,
}

/// Why a socket whose [`Health`] is not `Usable` is closed.
fn stale_reason(health: Health, found: Found) -> CloseReason {
    match (health, found) {
        (Health::DeadPeer, _) => CloseReason::DeadPeer,
        (Health::GoingAway, _) => CloseReason::Goaway,
        (Health::Unread, Found::Return) => CloseReason::Unread,
        (Health::Unread, _) => CloseReason::UnsolicitedData,
        (_, Found::Checkout) => CloseReason::FoundDead,
        _ => CloseReason::ClosedByPeer,
    }
}

/// Why a socket whose check failed as it was handed out is closed.
pub(super) fn stale_at_checkout(health: Health) -> CloseReason {
    stale_reason(health, Found::Checkout)
}

impl<P: Handles> State<P> {
    /// `allocate`'s fast path: the most recently used idle socket of
    /// `target`'s key that may still be handed out at `now`, counted as in
    /// use and reused, or `None`. Sockets past their lifetime or their
    /// server's idle limit are closed on the way. The caller checks the
    /// socket with [`Poolable::check`] after dropping the lock, so that the
    /// system call does not serialise checkouts, and gives a stale one back
    /// with [`State::revoke`].
    ///
    /// # Errors
    ///
    /// `Error::Shutdown` once the manager is shut down.
    pub(crate) fn checkout(
        &mut self,
        target: &Target,
        now: Instant,
        out: &mut Actions<P>,
    ) -> Result<Option<(P::Socket, SocketId)>, Error> {
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        let Some(&key) = self.key_index.get(target) else {
            return Ok(None);
        };
        if !self.keys[key].shared.is_empty() {
            if let Some(found) = self.share_out(key, now) {
                return Ok(Some(found));
            }
        }
        let Some((socket, sid)) = self.take_fit(key, now, out) else {
            return Ok(None);
        };
        self.meter_queue(key, None);
        Ok(Some((self.hand_out(sid, socket), sid)))
    }

    /// The newest idle socket of `key` that may be handed out at `now`,
    /// closing those past their lifetime or server limit on the way. It
    /// stays accounted for, not yet in use.
    fn take_fit(&mut self, key: usize, now: Instant, out: &mut Actions<P>) -> Option<(P::Socket, SocketId)> {
        // Closing the key's last socket may forget the key, hence `get`.
        while let Some(idx) = self.keys.get(key).and_then(|k| k.idle.tail()) {
            let (socket, since) = self.unidle(idx);
            match self.unfit(idx, since, now) {
                None => {
                    self.sockets[idx].lent = Some((now, now.saturating_duration_since(since)));
                    return Some((socket, self.socket_id(idx)));
                }
                Some(reason) => self.close(idx, socket, reason, out),
            }
        }
        None
    }

    /// Counts a socket just taken from the pool as in use and reused,
    /// spends one of its remaining uses, and lends it (whole, or a handle
    /// of a shared object).
    pub(super) fn hand_out(&mut self, sid: SocketId, socket: P::Socket) -> P::Socket {
        let entry = &mut self.sockets[sid.index as usize];
        if let Some(n) = &mut entry.remaining_uses {
            *n = n.saturating_sub(1);
        }
        let key = entry.key;
        self.in_use += 1;
        self.counts.reuses += 1;
        self.keys[key].counts.reuses += 1;
        self.lend(sid.index as usize, socket)
    }

    /// Undoes a `checkout` whose socket turned out stale: it is closed and
    /// counted by its health instead of as a reuse.
    pub(crate) fn revoke(
        &mut self,
        sid: SocketId,
        socket: P::Socket,
        health: Health,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let Some(key) = self.live_socket(sid) else {
            out.push(Action::untracked_close(socket, CloseReason::FoundDead));
            return;
        };
        if socket.is_share() {
            self.revoke_share(sid, socket, health, now, out);
            self.serve_waiters(out);
            return;
        }
        self.in_use -= 1;
        self.counts.reuses -= 1;
        self.keys[key].counts.reuses -= 1;
        self.close_stale(sid.index as usize, socket, health, Found::Checkout, out);
        self.serve_waiters(out);
    }

    /// Takes the newest idle socket of `key` that is fit and still usable,
    /// closing the others on the way, and hands it out.
    pub(super) fn take_idle(
        &mut self,
        key: usize,
        now: Instant,
        out: &mut Actions<P>,
    ) -> Option<(P::Socket, SocketId)> {
        while let Some((mut socket, sid)) = self.take_fit(key, now, out) {
            let health = socket.check();
            if health == Health::Usable {
                return Some((self.hand_out(sid, socket), sid));
            }
            self.close_stale(sid.index as usize, socket, health, Found::Checkout, out);
        }
        None
    }

    /// A `Connection` came back with a socket worth keeping, and what it
    /// learned on loan. `health` is what [`Poolable::watch`] said, called
    /// by the caller before taking the lock; a waiter gets the socket only
    /// after a fresh `check`.
    pub(crate) fn put_back(
        &mut self,
        sid: SocketId,
        mut socket: P::Socket,
        health: Health,
        hints: Hints,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let Some(key) = self.live_socket(sid) else {
            out.push(Action::untracked_close(socket, CloseReason::Discarded));
            return;
        };
        let idx = sid.index as usize;
        self.in_use -= 1;
        self.note_hints(key, idx, hints, now, out);
        let waiter = self.keys[key].waiters.front().copied();
        match (
            self.return_verdict(key, idx, &mut socket, health, waiter.is_some(), now),
            waiter,
        ) {
            (Ok(()), Some(waiter)) => self.pass_on(key, sid, socket, waiter, out),
            #[cfg(feature = "fleet")]
            (Ok(()), None) if self.next_fleet_waiter(key).is_some() => {
                self.serve_fleet_waiter(key, socket, sid, out);
            }
            (Ok(()), None) => self.make_idle(key, idx, socket, now, out),
            (Err(reason), _) => self.close(idx, socket, reason, out),
        }
        self.serve_waiters(out);
    }

    /// Keeps what a loan learned of its socket and its server.
    pub(super) fn note_hints(
        &mut self,
        key: usize,
        idx: usize,
        hints: Hints,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let entry = &mut self.sockets[idx];
        entry.lent = None;
        if hints.remaining_uses.is_some() {
            entry.remaining_uses = hints.remaining_uses;
        }
        if let Some(limit) = hints.server_idle_timeout {
            entry.server_idle_timeout = Some(limit);
            self.teach(key, limit, now, out);
        }
    }

    /// The one verdict on a returned socket: kept (for a waiter or the
    /// pool), or the reason it is closed. A socket that goes to a waiter,
    /// or that had an event while on loan, is checked again first.
    fn return_verdict(
        &mut self,
        key: usize,
        idx: usize,
        socket: &mut P::Socket,
        mut health: Health,
        has_waiter: bool,
        now: Instant,
    ) -> Result<(), CloseReason> {
        let entry = &mut self.sockets[idx];
        // An event reported between `watch` and now found the socket not yet
        // idle; ask the kernel instead of losing it.
        let missed_event = std::mem::take(&mut entry.event);
        let spent = entry.remaining_uses == Some(0);
        if health == Health::Usable && (has_waiter || missed_event) {
            health = socket.check();
        }
        if self.shut_down {
            Err(CloseReason::Shutdown)
        } else if health != Health::Usable {
            Err(stale_reason(health, Found::Return))
        } else if spent {
            Err(CloseReason::UsesSpent)
        } else if let Some(reason) = self.unfit(idx, now, now) {
            Err(reason)
        } else if self.sockets[idx].gone {
            Err(CloseReason::AddressGone)
        } else if self.wanted_elsewhere(key, now) {
            Err(CloseReason::FleetReleased)
        } else {
            Ok(())
        }
    }

    /// Hands a returned socket straight to the first request waiting for
    /// its key.
    fn pass_on(
        &mut self,
        key: usize,
        sid: SocketId,
        socket: P::Socket,
        waiter: RequestId,
        out: &mut Actions<P>,
    ) {
        self.keys[key].waiters.pop_front();
        self.queued -= 1;
        self.update_eligible(key);
        let socket = self.hand_out(sid, socket);
        self.deliver(waiter, socket, sid, FromCache::Deferred, out);
    }

    /// Puts a returned socket in the pool, on both idle lists, and makes
    /// sure the background task wakes for its keep-alive.
    fn make_idle(&mut self, key: usize, idx: usize, socket: P::Socket, now: Instant, out: &mut Actions<P>) {
        self.idle += 1;
        self.meter_idle(key, true);
        self.sockets[idx].idle = Some((socket, now));
        lists::push_back(&mut self.sockets, &mut self.lru, idx, Chain::Lru);
        lists::push_back(&mut self.sockets, &mut self.keys[key].idle, idx, Chain::ByKey);
        if let Some(at) = Deadline::after(now, self.limits.keep_alive).instant() {
            self.arm(at, out);
        }
        // A warm key's idle socket is closed and replaced when it turns
        // unfit, which may come before keep-alive.
        if self.keys[key].warm.is_some() {
            if let Some(at) = self.fit_until(idx, now, now) {
                self.arm(at, out);
            }
        }
    }

    /// A `Connection` was dropped unfit for reuse (discarded, an I/O error,
    /// end of stream, or its socket taken); the caller closes the socket.
    pub(crate) fn discard(&mut self, sid: SocketId, reason: CloseReason, out: &mut Actions<P>) {
        let Some(key) = self.live_socket(sid) else {
            return;
        };
        self.in_use -= 1;
        let opened = self.sockets.remove(sid.index as usize).opened;
        self.count_close(key, reason, opened);
        self.release_slot(key, out);
        self.serve_waiters(out);
    }

    /// A loan ended in the server's close (end of stream or a reset)
    /// before any byte of an answer: the race with the server's idle
    /// close, lost. The caller closes the socket. For a socket that came
    /// from the pool, that is an observation of the server's idle limit at
    /// the age it had been idle (see `server_limit.rs` for the care taken).
    pub(crate) fn lost(&mut self, sid: SocketId, now: Instant, out: &mut Actions<P>) {
        let Some(key) = self.live_socket(sid) else {
            return;
        };
        if let Some(lent) = self.sockets[sid.index as usize].lent {
            self.observe_loss(key, lent, now, out);
        }
        self.discard(sid, CloseReason::ClosedByPeer, out);
    }

    /// An idle socket became readable: the peer closed it, reset it, sent
    /// bytes, went away (GOAWAY) or stopped answering. A close or GOAWAY
    /// teaches its idle limit. Reports for sockets no longer idle are ignored.
    pub(crate) fn idle_event(&mut self, token: u64, now: Instant, out: &mut Actions<P>) {
        let sid = SocketId::from_token(token);
        let Some(key) = self.live_socket(sid) else {
            return;
        };
        let idx = sid.index as usize;
        let Some((socket, _)) = self.sockets[idx].idle.as_mut() else {
            self.sockets[idx].event = true;
            return;
        };
        let health = socket.watch(token);
        if health != Health::Usable {
            let (socket, since) = self.unidle(idx);
            if matches!(health, Health::Closed | Health::GoingAway) {
                self.observe_idle_close(key, now.saturating_duration_since(since), now, out);
            }
            self.close_stale(idx, socket, health, Found::Idle, out);
            self.serve_waiters(out);
        }
    }

    /// The key of a socket the pool still accounts for.
    pub(super) fn live_socket(&self, sid: SocketId) -> Option<usize> {
        let entry = self.sockets.get(sid.index as usize)?;
        (entry.generation == sid.generation).then_some(entry.key)
    }

    pub(super) fn socket_id(&self, idx: usize) -> SocketId {
        SocketId {
            index: idx as u32,
            generation: self.sockets[idx].generation,
        }
    }

    /// Takes an idle socket off both lists; it stays accounted for.
    pub(super) fn unidle(&mut self, idx: usize) -> (P::Socket, Instant) {
        let key = self.sockets[idx].key;
        lists::unlink(&mut self.sockets, &mut self.lru, idx, Chain::Lru);
        lists::unlink(&mut self.sockets, &mut self.keys[key].idle, idx, Chain::ByKey);
        self.idle -= 1;
        self.meter_idle(key, false);
        self.sockets[idx]
            .idle
            .take()
            .expect("a socket on the idle lists holds its socket")
    }

    /// Closes a socket found unusable.
    fn close_stale(
        &mut self,
        idx: usize,
        socket: P::Socket,
        health: Health,
        found: Found,
        out: &mut Actions<P>,
    ) {
        let reason = stale_reason(health, found);
        self.close_with(idx, socket, reason, health == Health::Unread, out);
    }

    /// Closes a socket that is neither idle nor counted in use any more.
    pub(super) fn close(&mut self, idx: usize, socket: P::Socket, reason: CloseReason, out: &mut Actions<P>) {
        self.close_with(idx, socket, reason, reason == CloseReason::Unread, out);
    }

    pub(super) fn close_with(
        &mut self,
        idx: usize,
        socket: P::Socket,
        reason: CloseReason,
        reset: bool,
        out: &mut Actions<P>,
    ) {
        let entry = self.sockets.remove(idx);
        let key = entry.key;
        self.count_close(key, reason, entry.opened);
        out.push(Action::Close {
            socket,
            reset,
            reason,
            target: Some(self.keys[key].target.clone()),
        });
        self.release_slot(key, out);
    }

    /// Without the `fleet` feature no other member can want a key.
    #[cfg(not(feature = "fleet"))]
    #[inline(always)]
    fn wanted_elsewhere(&mut self, _key: usize, _now: Instant) -> bool {
        false
    }

    /// Counts a connect, for the manager and for its key.
    pub(super) fn count_connect(&mut self, key: usize) {
        self.counts.connects += 1;
        self.keys[key].counts.connects += 1;
    }

    /// Counts a close, for the manager and for its key.
    pub(super) fn count_close(&mut self, key: usize, reason: CloseReason, opened: Instant) {
        self.meter_close(key, reason, opened);
        self.counts.closes.count(reason);
        self.keys[key].counts.closes.count(reason);
    }
}
