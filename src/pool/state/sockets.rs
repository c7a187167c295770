//! Socket decisions: checkout, return, connect results, idle events.

use tokio::time::Instant;

use super::{
    Action, Actions, FromCache, Handles, Health, Poolable, RequestId, Room, SocketEntry, SocketId, State,
};

use crate::error::Error;
use crate::pool::lists::{self, Chain};
use crate::target::Target;

impl<P: Handles> State<P> {
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
        self.serve_waiters(out);
    }

    /// Takes the newest idle socket of `key` that is still usable, closing
    /// stale ones on the way. The caller counts it as in use.
    pub(super) fn take_idle(&mut self, key: usize, out: &mut Actions<P>) -> Option<(P::Socket, SocketId)> {
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
            // No eviction for a socket nobody asked for.
            if !self.shut_down && self.room(key) == Room::Free {
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
        self.serve_waiters(out);
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
                self.update_eligible(key);
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
        self.serve_waiters(out);
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
        self.serve_waiters(out);
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

    pub(super) fn new_socket(&mut self, key: usize) -> SocketId {
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
    pub(super) fn unidle(&mut self, idx: usize) -> (P::Socket, Instant) {
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
    pub(super) fn close(&mut self, idx: usize, socket: P::Socket, health: Health, out: &mut Actions<P>) {
        let key = self.sockets.remove(idx).key;
        out.push(Action::Close {
            socket,
            reset: health == Health::Unread,
        });
        self.release_slot(key);
    }

    /// Closes the least recently used idle socket, if any, to make room.
    pub(super) fn evict_lru(&mut self, out: &mut Actions<P>) -> bool {
        let Some(idx) = self.lru.head() else {
            return false;
        };
        let (socket, _) = self.unidle(idx);
        self.close(idx, socket, Health::Closed, out);
        true
    }
}
