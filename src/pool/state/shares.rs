//! Shared loans: an object lent to several users at once (the streams of
//! an HTTP/2 connection), up to its [`Poolable::capacity`].
//!
//! A shared object counts once, like any other: against `max_per_host`
//! and `max_open`, and in `in_use` while any loan of it is out. While
//! lent it stays in its entry (`kept`) and each loan holds a handle
//! ([`Poolable::share`]); the key lists it in `shared` so that a request
//! looks there first, before the idle list (Go's `CanTakeNewRequest`,
//! Envoy's capacity accounting). A handle is never closed: its loan's end
//! ([`State::end_share`]) gives the slot to the key's first waiter at once;
//! the last loan's end returns the object whole, through
//! [`State::put_back`], so every rule of a return (health, lifetime, uses,
//! learned limits, the fleet) holds for it as for a socket lent whole. A
//! loan that ends badly (discarded, an error, a stale check) retires the
//! object: it takes no new loan and closes with its last one.

use tokio::time::Instant;

use super::stats::CloseReason;
use super::{Actions, FromCache, Handles, Health, Hints, Poolable, SocketId, State};

impl<P: Handles> State<P> {
    /// Lends a socket just counted in use: a shared object stays in its
    /// entry and the loan takes a handle of it; any other goes whole.
    pub(super) fn lend(&mut self, idx: usize, mut socket: P::Socket) -> P::Socket {
        let Some(share) = socket.share() else {
            return socket;
        };
        let entry = &mut self.sockets[idx];
        entry.kept = Some(socket);
        entry.loans = 1;
        let key = entry.key;
        self.keys[key].shared.push(idx);
        share
    }

    /// Notes what a new connection of `key` can serve: what the key's
    /// next connects are expected to.
    pub(super) fn learn_capacity(&mut self, key: usize, socket: &P::Socket) {
        let k = &mut self.keys[key];
        k.expect = socket.capacity().max(1);
    }

    /// Whether a shared object of `key` has room for one more loan.
    pub(super) fn has_spare_share(&self, key: usize) -> bool {
        self.keys[key].shared.iter().any(|&idx| self.has_room(idx))
    }

    fn has_room(&self, idx: usize) -> bool {
        let entry = &self.sockets[idx];
        entry
            .kept
            .as_ref()
            .is_some_and(|kept| entry.loans < kept.capacity())
    }

    /// `allocate`'s fast path for shared objects: a handle of one of
    /// `key`'s with room for another loan, counted as a reuse. Objects
    /// past their lifetime or out of uses are retired on the way. The
    /// caller checks the handle after dropping the lock and gives a stale
    /// one back with [`State::revoke`].
    pub(super) fn share_out(&mut self, key: usize, now: Instant) -> Option<(P::Socket, SocketId)> {
        let mut i = 0;
        while let Some(&idx) = self.keys[key].shared.get(i) {
            let entry = &self.sockets[idx];
            if entry.expires.is_reached(now) {
                self.retire(idx, CloseReason::Lifetime);
            } else if entry.remaining_uses == Some(0) {
                self.retire(idx, CloseReason::UsesSpent);
            } else if !self.has_room(idx) {
                i += 1;
            } else if let Some(share) = self.sockets[idx].kept.as_mut().and_then(|k| k.share()) {
                self.count_share(idx);
                return Some((share, self.socket_id(idx)));
            } else {
                self.retire(idx, CloseReason::Discarded);
            }
        }
        None
    }

    /// Counts one more loan of shared object `idx`, a reuse.
    fn count_share(&mut self, idx: usize) {
        let entry = &mut self.sockets[idx];
        entry.loans += 1;
        if let Some(n) = &mut entry.remaining_uses {
            *n = n.saturating_sub(1);
        }
        let key = entry.key;
        self.extra_loans += 1;
        self.counts.reuses += 1;
        self.keys[key].counts.reuses += 1;
    }

    /// [`State::share_out`], checked under the lock: for a request that
    /// is placed or waited.
    pub(super) fn take_share(
        &mut self,
        key: usize,
        now: Instant,
        out: &mut Actions<P>,
    ) -> Option<(P::Socket, SocketId)> {
        while let Some((mut share, sid)) = self.share_out(key, now) {
            let health = share.check();
            if health == Health::Usable {
                return Some((share, sid));
            }
            self.revoke_share(sid, share, health, now, out);
        }
        None
    }

    /// Gives free loans of `key`'s shared objects to its waiters, first
    /// come first served.
    pub(super) fn serve_shares(&mut self, key: usize, now: Instant, out: &mut Actions<P>) {
        while let Some(&waiter) = self.keys[key].waiters.front() {
            let Some((share, sid)) = self.take_share(key, now, out) else {
                break;
            };
            self.keys[key].waiters.pop_front();
            self.queued -= 1;
            self.deliver(waiter, share, sid, FromCache::Deferred, out);
        }
        self.update_eligible(key);
    }

    /// Undoes a loan of a shared object whose check found it stale: not a
    /// reuse after all, and the object takes no more loans.
    pub(super) fn revoke_share(
        &mut self,
        sid: SocketId,
        share: P::Socket,
        health: Health,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        drop(share);
        let idx = sid.index as usize;
        let key = self.sockets[idx].key;
        self.counts.reuses -= 1;
        self.keys[key].counts.reuses -= 1;
        self.retire(idx, super::sockets::stale_at_checkout(health));
        self.release_loan(sid, now, out);
    }

    /// A loan of a shared object ended, its handle dropped: `ended` says
    /// why the object must take no more loans (discarded, an error, the
    /// server's close), `None` when the loan ended normally. The slot goes
    /// to the key's first waiter; the last loan's end returns the object.
    pub(crate) fn end_share(
        &mut self,
        sid: SocketId,
        ended: Option<CloseReason>,
        hints: Hints,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let Some(key) = self.live_socket(sid) else {
            return;
        };
        let idx = sid.index as usize;
        self.note_hints(key, idx, hints, now, out);
        if let Some(reason) = ended {
            self.retire(idx, reason);
        }
        self.release_loan(sid, now, out);
        if self.live_socket(sid).is_some() {
            self.serve_shares(key, now, out);
        }
        self.serve_waiters(out);
    }

    /// Ends one loan of shared object `sid`. The last one's end closes a
    /// retired object, or returns it whole to the pool.
    fn release_loan(&mut self, sid: SocketId, now: Instant, out: &mut Actions<P>) {
        let idx = sid.index as usize;
        let entry = &mut self.sockets[idx];
        if entry.loans > 1 {
            entry.loans -= 1;
            self.extra_loans -= 1;
            return;
        }
        let mut kept = entry.kept.take().expect("a shared object on loan is kept");
        entry.loans = 0;
        let key = entry.key;
        self.keys[key].shared.retain(|&i| i != idx);
        match self.sockets[idx].retired.take() {
            Some(reason) => {
                self.in_use -= 1;
                let reset = matches!(reason, CloseReason::Unread | CloseReason::UnsolicitedData);
                self.close_with(idx, kept, reason, reset, out);
            }
            None => {
                let health = kept.watch(sid.token());
                self.put_back(sid, kept, health, Hints::default(), now, out);
            }
        }
    }

    /// Shared object `idx` takes no more loans; it closes, for the first
    /// reason given, with its last loan.
    pub(super) fn retire(&mut self, idx: usize, reason: CloseReason) {
        let entry = &mut self.sockets[idx];
        entry.retired.get_or_insert(reason);
        let key = entry.key;
        self.keys[key].shared.retain(|&i| i != idx);
    }
}
