//! The fleet's part in the state (feature `fleet`): what a connect's
//! admission cost, and an idle socket given up for another member.
//!
//! The fleet's room itself is taken by the connect step, which holds the
//! request's local room (it counts as connecting) while it waits, so the
//! local limits hold as they are. While one request of a key waits for
//! the fleet, the key has no room for another new socket here: the
//! others wait in this manager's queue, served by sockets as they come
//! back, and only one request per key and member stands in the fleet's
//! queue (see `State::host_has_room`).
//! Pure data like the rest of the state; built, and covered by the model
//! test, with the `fleet` feature only, so the default build's state is
//! as it was.

use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Actions, CloseReason, FromCache, Handles, Phase, RequestId, SocketId, State};
use crate::target::Target;

/// How long another member's demand for a key lasts when this manager
/// has no idle socket for it: a waiter that is still waiting says so
/// again within 500 ms.
pub(crate) const WANTED_FOR: Duration = Duration::from_secs(1);

impl<P: Handles> State<P> {
    /// `request`'s connect waits for room in the fleet: a socket of its key
    /// returned meanwhile, with no other taker, goes to it instead (its
    /// connect is aborted, which takes it out of the fleet's queue).
    pub(crate) fn fleet_waiting(&mut self, request: RequestId) {
        // A warm connect takes no returned socket: it waits for its own.
        if self
            .live_request(request)
            .is_some_and(|slot| self.requests[slot].warm)
        {
            return;
        }
        if let Some(key) = self.connecting_key(request) {
            self.keys[key].fleet_waiting.push_back(request);
            self.update_eligible(key);
        }
    }

    /// Whether another member asked for `key` within [`WANTED_FOR`]: the
    /// socket being returned is closed for it (once per demand).
    pub(super) fn wanted_elsewhere(&mut self, key: usize, now: Instant) -> bool {
        self.keys[key]
            .fleet_wanted
            .take()
            .is_some_and(|until| now < until)
    }

    /// The oldest of `key`'s requests still waiting for the fleet, if any.
    pub(super) fn next_fleet_waiter(&mut self, key: usize) -> Option<RequestId> {
        while let Some(&request) = self.keys[key].fleet_waiting.front() {
            if self.connecting_key(request) == Some(key) {
                return Some(request);
            }
            self.keys[key].fleet_waiting.pop_front();
        }
        None
    }

    /// Hands `socket`, just returned, to the oldest of `key`'s requests
    /// that wait for the fleet ([`State::next_fleet_waiter`] found one).
    pub(super) fn serve_fleet_waiter(
        &mut self,
        key: usize,
        socket: P::Socket,
        sid: SocketId,
        out: &mut Actions<P>,
    ) {
        let request = self.keys[key]
            .fleet_waiting
            .pop_front()
            .expect("called with a waiting request");
        let slot = request.slot();
        let Phase::Connecting(task) =
            std::mem::replace(&mut self.requests[slot].phase, Phase::Connecting(None))
        else {
            unreachable!("requests waiting for the fleet are connecting");
        };
        out.list.extend(task.map(Action::Abort));
        self.connect_ended(key);
        self.release_slot(key, out);
        let socket = self.hand_out(sid, socket);
        self.deliver(request, socket, sid, FromCache::Deferred, out);
    }

    /// Counts how `request`'s connect was admitted by the fleet: after a
    /// wait of `waited`, and without Redis when `bypassed`.
    /// The key's other requests may then start.
    pub(crate) fn fleet_admitted(
        &mut self,
        request: RequestId,
        waited: Option<Duration>,
        bypassed: bool,
        out: &mut Actions<P>,
    ) {
        let Some(slot) = self.live_request(request) else {
            return;
        };
        let key = self.requests[slot].key;
        self.keys[key].fleet_waiting.retain(|r| *r != request);
        self.update_eligible(key);
        self.serve_waiters(out);
        for counts in [&mut self.counts, &mut self.keys[key].counts] {
            if let Some(waited) = waited {
                counts.fleet_waits += 1;
                counts.fleet_wait_time += waited;
            }
            counts.fleet_bypassed += u64::from(bypassed);
        }
    }

    /// Another member of the fleet waits for `target`'s key: closes the
    /// key's oldest idle socket, or, with none idle, the next one returned
    /// within [`WANTED_FOR`] (instead of keeping it, or handing it to a
    /// later waiter of this manager), so that the freed slot goes to the
    /// fleet's earliest waiter. Returns whether one was closed now.
    pub(crate) fn release_idle(&mut self, target: &Target, now: Instant, out: &mut Actions<P>) -> bool {
        let Some(&key) = self.key_index.get(target) else {
            return false;
        };
        let Some(idx) = self.keys[key].idle.head() else {
            if self.keys[key].open > 0 {
                self.keys[key].fleet_wanted = Some(now + WANTED_FOR);
            }
            return false;
        };
        let (socket, _) = self.unidle(idx);
        self.close(idx, socket, CloseReason::FleetReleased, out);
        self.serve_waiters(out);
        true
    }
}
