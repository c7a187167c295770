//! A connect's success: the new socket goes to its request (or, for a
//! warm connect or a request that left, to a waiter or the pool).

use tokio::time::Instant;

use super::{
    Action, Actions, CloseReason, Dialed, FromCache, Handles, Hints, Poolable, RequestId, Room, SocketEntry,
    SocketId, State,
};
use crate::deadline::Deadline;
use crate::target::Target;

impl<P: Handles> State<P> {
    /// A connect task's success: `socket`, connected to `peer` when the
    /// pool's own dialer made it.
    pub(crate) fn connected(
        &mut self,
        request: RequestId,
        target: &Target,
        (socket, dialed): (P::Socket, Dialed),
        now: Instant,
        out: &mut Actions<P>,
    ) {
        if let Some(key) = self.connecting_key(request) {
            self.connect_ended(key);
            let sid = self.new_socket(key, dialed, now, out);
            self.learn_capacity(key, &socket);
            if self.requests[request.slot()].warm {
                self.warm_connected(request, sid, socket, now, out);
                self.serve_waiters(out);
                return;
            }
            let socket = self.lend(sid.index as usize, socket);
            self.deliver(request, socket, sid, FromCache::Fresh, out);
            self.serve_shares(key, now, out);
        } else {
            self.connected_unasked(target, socket, dialed, now, out);
        }
        self.serve_waiters(out);
    }

    /// A connect finished for a request that left (cancelled or timed
    /// out) before this report, whose slot was released then. The socket
    /// is kept if there is still room for it; no eviction for a socket
    /// nobody asked for.
    fn connected_unasked(
        &mut self,
        target: &Target,
        mut socket: P::Socket,
        dialed: Dialed,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let key = self.intern(target);
        self.learn_capacity(key, &socket);
        if !self.shut_down && self.room(key) == Room::Free {
            self.keys[key].open += 1;
            self.meter_gauges(key);
            let sid = self.new_socket(key, dialed, now, out);
            let health = socket.watch(sid.token());
            self.put_back(sid, socket, health, Hints::default(), now, out);
            return;
        }
        let reason = if self.shut_down {
            CloseReason::Shutdown
        } else {
            CloseReason::Unneeded
        };
        self.count_connect(key);
        self.count_close(key, reason, now);
        out.push(Action::Close {
            socket,
            reset: false,
            reason,
            target: Some(target.clone()),
        });
        self.forget_key_if_unused(key);
    }

    /// Accounts for a socket of `key` connected at `now`, as its dialer
    /// described it: in use (lent or put back at once by the caller), and
    /// its name's refresh scheduled when the dialer noted its address.
    fn new_socket(&mut self, key: usize, dialed: Dialed, now: Instant, out: &mut Actions<P>) -> SocketId {
        self.in_use += 1;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.count_connect(key);
        let expires = match self.limits.lifetime(self.next_generation) {
            Some(d) => Deadline::after(now, d),
            None => Deadline::Never,
        };
        let idx = self.sockets.insert(SocketEntry {
            key,
            generation: self.next_generation,
            links: Default::default(),
            idle: None,
            event: false,
            expires,
            remaining_uses: None,
            server_idle_timeout: None,
            lent: None,
            kept: None,
            loans: 0,
            retired: None,
            peer: dialed.peer,
            gone: false,
            opened: now,
            handle: dialed.handle,
        });
        if self.sockets[idx].peer.is_some() {
            self.schedule_refresh(key, now, out);
        }
        self.socket_id(idx)
    }
}
