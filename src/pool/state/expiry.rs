//! The background task's pass ([`State::expire`]): idle sockets past
//! keep-alive, requests past their deadline, and the keys kept warm or
//! looked up again, each at its time.

use tokio::time::Instant;

use super::{Actions, CloseReason, Handles, Phase, RequestId, Staged, State};
use crate::deadline::Deadline;
use crate::error::Error;

impl<P: Handles> State<P> {
    /// Closes idle sockets past keep-alive, fails requests past their
    /// deadline, refills the keys kept warm (closing their idle sockets
    /// past their lifetime or server limit) and starts the `refresh_dns`
    /// lookups that are due. Returns when to call again.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Actions<P>) -> Option<Instant> {
        self.expire_idle(now, out);
        self.expire_requests(now, out);
        self.serve_waiters(out);
        let warm_due = self.keep_keys_warm(now, out);
        let refresh_due = self.refresh_names(now, out);
        let idle_due = self
            .lru
            .head()
            .and_then(|i| self.sockets[i].idle.as_ref())
            .and_then(|(_, since)| Deadline::after(*since, self.limits.keep_alive).instant());
        let request_due = self.deadlines.first().map(|&(d, _)| d);
        self.armed = [idle_due, request_due, warm_due, refresh_due]
            .into_iter()
            .flatten()
            .min();
        self.armed
    }

    /// Closes the idle sockets past keep-alive, oldest first.
    fn expire_idle(&mut self, now: Instant, out: &mut Actions<P>) {
        while let Some(idx) = self.lru.head() {
            let since = self.sockets[idx]
                .idle
                .as_ref()
                .expect("sockets on the LRU list are idle")
                .1;
            if !Deadline::after(since, self.limits.keep_alive).is_reached(now) {
                break;
            }
            let (socket, _) = self.unidle(idx);
            self.close(idx, socket, CloseReason::IdleTimeout, out);
        }
    }

    /// Fails the requests past their deadline, saying what each was doing.
    fn expire_requests(&mut self, now: Instant, out: &mut Actions<P>) {
        while let Some(&(deadline, raw)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let id = RequestId::from_raw(raw);
            let req = &self.requests[id.slot()];
            let target = self.keys[req.key].target.to_string();
            let in_proxy = match &req.phase {
                Phase::Connecting(Some(task)) => task.in_proxy(),
                _ => false,
            };
            let req = self.abandon(id, out);
            let error = Error::Timeout {
                target,
                after: req.timeout,
                in_proxy,
            };
            self.failed(req, error, now, out);
        }
    }
}
