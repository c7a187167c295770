//! `keep_warm`: keys that keep n connections open, idle or on loan.
//!
//! A warm connect is a request that only connects: it never takes an idle
//! socket or a share and never queues (with no room left by `max_per_host`
//! or `max_open` it ends at once, and it never evicts), and its connection
//! goes to the key's first waiter or into the pool, like a returned one.
//! So a request never waits behind it. A key kept warm is refilled by
//! [`State::expire`], which the background task calls: it wakes when one
//! of the key's sockets or connects goes (`release_slot`), and at the time
//! an idle warm socket reaches its lifetime or its server's idle limit,
//! which closes it then rather than at its next checkout. A failed warm
//! connect backs off: 1 s, doubling up to 60 s, each wait drawn from its
//! upper half.

use std::time::Duration;

use tokio::time::Instant;

use super::idle_lists::{self as lists, Chain};
use super::requests::Asked;
use super::{Action, Actions, Addrs, Handles, Poolable, RequestId, Room, SocketId, State};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::target::Target;

/// The first wait after a failed warm connect, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What `keep_warm` asked of a key, and how its refills fare.
pub(crate) struct Warm {
    /// Connections to keep, idle or on loan (capped at `max_per_host`).
    n: usize,
    /// What a warm connect of this key is, as `keep_warm`'s caller said.
    plan: WarmPlan,
    /// Warm connects that failed in a row, and until when refills wait.
    failures: u32,
    retry_at: Option<Instant>,
}

/// How a key's warm connects are made: their addresses when the key needs
/// no lookup (an IP literal, or a transport that finds its own way), their
/// timeout, and the loans a connection is expected to serve.
#[derive(Clone)]
pub(crate) struct WarmPlan {
    pub(crate) addrs: Option<Addrs>,
    pub(crate) timeout: Duration,
    pub(crate) expect: usize,
}

#[cfg(test)]
impl Warm {
    /// Until when refills wait after failures, if they do.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

impl<P: Handles> State<P> {
    /// Keeps `n` connections of `target`'s key from now on (0: stops, and
    /// cancels the warm connects in flight) and starts the connects missing
    /// now, each answered through a responder from `answer`: with
    /// [`Action::Warmed`] once its connection is in the pool (or when it
    /// found no room), with a failure otherwise. Returns how many started.
    ///
    /// # Errors
    ///
    /// `Error::Shutdown` once shut down.
    pub(crate) fn keep_warm(
        &mut self,
        target: &Target,
        n: usize,
        plan: WarmPlan,
        now: Instant,
        answer: &mut dyn FnMut() -> P::Responder,
        out: &mut Actions<P>,
    ) -> Result<usize, Error> {
        if self.shut_down {
            return Err(Error::Shutdown);
        }
        if n == 0 {
            self.stop_warm(target, out);
            return Ok(0);
        }
        let key = self.intern(target);
        if self.keys[key].counts.connects == 0 {
            self.keys[key].expect = plan.expect.max(1);
        }
        let (failures, retry_at) = self.keys[key]
            .warm
            .as_ref()
            .map_or((0, None), |w| (w.failures, w.retry_at));
        self.keys[key].warm = Some(Warm {
            n,
            plan,
            failures,
            retry_at,
        });
        self.warm_keys.insert(key);
        let started = self.refill(key, now, &mut || Some(answer()), out);
        self.serve_waiters(out);
        Ok(started)
    }

    /// Stops keeping `target`'s key warm: its warm connects in flight are
    /// cancelled (their callers hear [`Action::Warmed`]); its connections
    /// stay.
    pub(crate) fn stop_warm(&mut self, target: &Target, out: &mut Actions<P>) {
        let Some(&key) = self.key_index.get(target) else {
            return;
        };
        self.keys[key].warm = None;
        self.warm_keys.remove(&key);
        let warm: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.key == key && r.warm)
            .map(|(_, r)| r.id)
            .collect();
        for id in warm {
            let req = self.abandon(id, out);
            out.list.extend(req.responder.map(Action::Warmed));
        }
        self.serve_waiters(out);
        self.forget_key_if_unused(key);
    }

    /// How many connections `key` lacks: its `n`, capped at
    /// `max_per_host`, less what is open or on its way, and no more than
    /// `max_open` leaves free (counting every key's warm lookups).
    fn missing(&self, key: usize) -> usize {
        let k = &self.keys[key];
        let Some(warm) = &k.warm else {
            return 0;
        };
        let have = k.open + k.warm_resolving;
        let lack = warm.n.min(self.limits.max_per_host).saturating_sub(have);
        lack.min(self.limits.max_open.saturating_sub(self.open_or_coming()))
    }

    /// Connections open, plus the warm connects waiting for a lookup,
    /// which will open one each if there is room then.
    pub(super) fn open_or_coming(&self) -> usize {
        let resolving: usize = self.warm_keys.iter().map(|&k| self.keys[k].warm_resolving).sum();
        self.open() + resolving
    }

    /// Starts the warm connects `key` lacks, unless it backs off until
    /// later than `now`; each one's responder from `answer`.
    fn refill(
        &mut self,
        key: usize,
        now: Instant,
        answer: &mut dyn FnMut() -> Option<P::Responder>,
        out: &mut Actions<P>,
    ) -> usize {
        let Some(warm) = &self.keys[key].warm else {
            return 0;
        };
        if warm.retry_at.is_some_and(|at| at > now) {
            return 0;
        }
        let plan = warm.plan.clone();
        let missing = self.missing(key);
        for _ in 0..missing {
            self.start_warm(key, &plan, now, answer(), out);
        }
        missing
    }

    /// One warm connect of `key`: looked up first when it needs it.
    fn start_warm(
        &mut self,
        key: usize,
        plan: &WarmPlan,
        now: Instant,
        responder: Option<P::Responder>,
        out: &mut Actions<P>,
    ) {
        let endpoint = self.keys[key].target.dial_endpoint();
        let (host, port) = (endpoint.host.clone(), endpoint.port);
        let addrs = plan
            .addrs
            .clone()
            .or_else(|| self.dns_cache.get(&host, port, now));
        let asked = Asked {
            responder,
            deadline: Deadline::after(now, plan.timeout),
            timeout: plan.timeout,
            start: now,
            warm: true,
        };
        let (id, queued) = self.store_request(key, asked, addrs, (host, port), out);
        if queued {
            self.place(id, now, out);
        }
    }

    /// A warm connect with its addresses: it connects if its key has room
    /// under both limits without evicting anything, else it is done.
    pub(super) fn place_warm(&mut self, id: RequestId, out: &mut Actions<P>) {
        let key = self.requests[id.slot()].key;
        if !self.shut_down && self.room(key) == Room::Free {
            self.start_connect(id, out);
            return;
        }
        let req = self.finish(id);
        out.list.extend(req.responder.map(Action::Warmed));
    }

    /// A warm connect succeeded: its socket, just accounted for in use,
    /// goes to the key's first waiter or into the pool, as a returned one
    /// does.
    pub(super) fn warm_connected(
        &mut self,
        request: RequestId,
        sid: SocketId,
        mut socket: P::Socket,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let req = self.finish(request);
        if let Some(warm) = &mut self.keys[req.key].warm {
            warm.failures = 0;
            warm.retry_at = None;
        }
        out.list.extend(req.responder.map(Action::Warmed));
        let health = socket.watch(sid.token());
        self.put_back(sid, socket, health, Default::default(), now, out);
        if self.keys.contains(req.key) {
            self.serve_shares(req.key, now, out);
        }
    }

    /// A warm connect of `key` failed: refills wait, longer each time.
    pub(super) fn warm_failed(&mut self, key: usize, now: Instant) {
        let seed = self.limits.jitter_seed ^ key as u64;
        if let Some(warm) = &mut self.keys[key].warm {
            warm.failures = warm.failures.saturating_add(1);
            let wait = backoff(warm.failures, seed);
            warm.retry_at = Deadline::after(now, wait).instant();
        }
    }

    /// The background task's part: refills every key kept warm, and closes
    /// their idle sockets past their lifetime or their server's idle limit
    /// (a checkout would not hand them out). Returns when to come back.
    pub(super) fn keep_keys_warm(&mut self, now: Instant, out: &mut Actions<P>) -> Option<Instant> {
        if self.shut_down {
            return None;
        }
        let keys: Vec<usize> = self.warm_keys.iter().copied().collect();
        let mut due: Option<Instant> = None;
        // Closes first, so that each refill sees all the room there is.
        for &key in &keys {
            due = [due, self.close_unfit_idle(key, now, out)]
                .into_iter()
                .flatten()
                .min();
        }
        for &key in &keys {
            self.refill(key, now, &mut || None, out);
            let retry = self.keys[key].warm.as_ref().and_then(|w| w.retry_at);
            due = [due, retry.filter(|_| self.missing(key) > 0)]
                .into_iter()
                .flatten()
                .min();
        }
        self.serve_waiters(out);
        due
    }

    /// Closes `key`'s idle sockets that may no longer be handed out;
    /// returns the earliest time one of the others turns unfit.
    fn close_unfit_idle(&mut self, key: usize, now: Instant, out: &mut Actions<P>) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let mut at = self.keys[key].idle.head();
        while let Some(idx) = at {
            at = lists::next(&mut self.sockets, idx, Chain::ByKey);
            let since = self.sockets[idx].idle.as_ref().map(|(_, since)| *since);
            let since = since.expect("sockets on a key's idle list are idle");
            match self.unfit(idx, since, now) {
                Some(reason) => {
                    let (socket, _) = self.unidle(idx);
                    self.close(idx, socket, reason, out);
                }
                None => due = [due, self.fit_until(idx, since, now)].into_iter().flatten().min(),
            }
        }
        due
    }
}

/// The wait after the `failures`-th failure in a row: 1 s doubling up to
/// 60 s, drawn from the upper half of that (from `seed` and the count), so that keys and managers do not retry in step.
fn backoff(failures: u32, seed: u64) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    let cap = (FIRST_BACKOFF * (1 << doublings)).min(MAX_BACKOFF);
    cap.mul_f64(0.5 + 0.5 * super::inputs::draw(seed, u64::from(failures)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute_with_jitter() {
        for seed in 0..50 {
            let waits: Vec<Duration> = (1..=10).map(|f| backoff(f, seed)).collect();
            assert!((Duration::from_millis(500)..=FIRST_BACKOFF).contains(&waits[0]));
            assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&waits[1]));
            assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
            assert!(waits[9] >= MAX_BACKOFF / 2);
        }
        assert_ne!(backoff(3, 1), backoff(3, 2), "jittered per seed");
    }
}
