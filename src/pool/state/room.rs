//! The one rule for room ([`State::room`]: may a new socket of this key
//! open?), acting on it ([`State::claim_room`], evicting the least recently
//! used idle socket when only `max_open` is in the way), and the queue it
//! serves: the keys whose first waiter could open a connection, were it
//! not for `max_open` (`eligible`), served oldest first across keys.

use super::{Actions, CloseReason, Handles, State};

/// Whether a new socket of a key fits, from [`State::room`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Room {
    /// Under `max_per_host` and `max_open`.
    Free,
    /// Under `max_per_host`; `max_open` is reached, but an idle socket
    /// (of any key) can be closed for it.
    ByEviction,
    /// No room until a socket of this key, or an in-use one, is released.
    Full,
}

impl<P: Handles> State<P> {
    /// Serves waiters that can connect now, oldest first across keys,
    /// evicting idle sockets when `max_open` is reached.
    pub(super) fn serve_waiters(&mut self, out: &mut Actions<P>) {
        while let Some(&(_, key)) = self.eligible.first() {
            if !self.claim_room(key, out) {
                break;
            }
            let id = self.keys[key]
                .waiters
                .pop_front()
                .expect("an eligible key has waiters");
            self.queued -= 1;
            self.start_connect(id, out);
            self.update_eligible(key);
        }
    }

    /// Whether `key`'s waiters, plus `more` requests, are more than its
    /// connects in flight are expected to serve besides their own
    /// requests: only then does one more connection help. For objects
    /// lent whole (`expect` 1) that is "anyone waits".
    pub(super) fn needs_connect(&self, key: usize, more: usize) -> bool {
        let k = &self.keys[key];
        k.waiters.len() + more > k.connecting * (k.expect - 1)
    }

    /// The per-host limit: `key` may have another socket.
    fn host_has_room(&self, key: usize) -> bool {
        let k = &self.keys[key];
        // While a request of the key waits for the fleet's room, the key
        // is at the fleet's cap: others wait here, with no call to Redis.
        #[cfg(feature = "fleet")]
        if !k.fleet_waiting.is_empty() {
            return false;
        }
        k.open < self.limits.max_per_host
    }

    /// Whether a new socket of `key` fits under both limits: the one rule
    /// for "is there room for a socket of this key".
    pub(super) fn room(&self, key: usize) -> Room {
        if !self.host_has_room(key) {
            Room::Full
        } else if self.open() < self.limits.max_open {
            Room::Free
        } else if !self.lru.is_empty() {
            Room::ByEviction
        } else {
            Room::Full
        }
    }

    /// Makes room for a new socket of `key` if [`State::room`] allows,
    /// closing the least recently used idle socket when that is the way.
    pub(super) fn claim_room(&mut self, key: usize, out: &mut Actions<P>) -> bool {
        match self.room(key) {
            Room::Free => true,
            Room::ByEviction => self.evict_lru(out),
            Room::Full => false,
        }
    }

    /// Keeps `key`'s membership of `eligible` true to its definition: its
    /// first waiter could open a connection, were it not for `max_open`.
    pub(super) fn update_eligible(&mut self, key: usize) {
        let k = &self.keys[key];
        let want = match k.waiters.front() {
            Some(id) if self.host_has_room(key) && self.needs_connect(key, 0) => {
                Some(self.requests[id.slot()].seq)
            }
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

    /// Closes the least recently used idle socket, if any, to make room.
    pub(super) fn evict_lru(&mut self, out: &mut Actions<P>) -> bool {
        let Some(idx) = self.lru.head() else {
            return false;
        };
        let (socket, _) = self.unidle(idx);
        self.close(idx, socket, CloseReason::Evicted, out);
        true
    }
}
