//! What the pool knows of each key's server idle limit, and the rules that
//! keep a socket from being handed out when it should not be: its
//! lifetime, and the server's idle limit (learned from the server's own
//! closes, or told by the user with `Connection::set_server_idle_timeout`).
//!
//! # Learning
//!
//! When the server closes (FIN or RST) an idle socket of a key, the time it
//! had been idle is that server's idle limit: one observation is enough.
//! From then on an idle socket of that key is not handed out once it has
//! been idle for the limit less a safety margin ([`margin`]: the larger of
//! 10% of the limit and 100 ms); it is closed and the request gets another
//! socket or a new one. A close within [`MIN_OBSERVATION`] of the socket's
//! return is not an idle limit (servers close right after a final
//! response). The limit never exceeds `keep_alive`.
//!
//! # Several observations, and recovery
//!
//! Servers do not all close at one instant: lighttpd checks idle
//! connections once a second, so its closes fall anywhere in a band a
//! second wide above its limit; behind a load balancer, backends differ.
//! The limit the pool uses is therefore the smallest observation (or hint)
//! of the last [`WINDOW`] to [`WINDOW`] × 2: observations are kept in two
//! windows, the current one and the one before. A spurious early close (a
//! server restart closing everything) thus stops cutting reuse for its key
//! at most `2 × WINDOW` (60 s) after it happened, while a real limit that
//! the server keeps showing is never forgotten. Sockets past the limit stay
//! in the pool (never handed out) until a checkout finds them or the server
//! closes them, which is how new observations keep coming.

use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Actions, CloseReason, Handles, State};

/// Closes sooner than this after a socket's return teach nothing.
pub(crate) const MIN_OBSERVATION: Duration = Duration::from_millis(50);
/// Observations are kept for one to two of these: see the module docs.
pub(crate) const WINDOW: Duration = Duration::from_secs(30);
/// The smallest safety margin before a server's idle limit.
pub(crate) const MIN_MARGIN: Duration = Duration::from_millis(100);

/// How long before a server's idle limit `limit` its sockets are retired:
/// the larger of 10% of it and [`MIN_MARGIN`].
pub(crate) fn margin(limit: Duration) -> Duration {
    (limit / 10).max(MIN_MARGIN)
}

/// A key's server idle limit, if one is known: the smallest observation
/// of the current window and of the one before.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ServerLimit {
    /// (start of the current window, its smallest, the previous window's).
    known: Option<(Instant, Option<Duration>, Option<Duration>)>,
}

impl ServerLimit {
    /// The limit, unless none is known or what was known expired.
    pub(super) fn limit(&self, now: Instant) -> Option<Duration> {
        let (start, current, previous) = self.known?;
        let age = now.saturating_duration_since(start);
        if age < WINDOW {
            smaller(current, previous)
        } else if age < WINDOW * 2 {
            current
        } else {
            None
        }
    }

    fn learn(&mut self, limit: Duration, now: Instant) {
        let (start, current, previous) = self.known.unwrap_or((now, None, None));
        let age = now.saturating_duration_since(start);
        let (start, current, previous) = if age < WINDOW {
            (start, current, previous)
        } else if age < WINDOW * 2 {
            (start + WINDOW, None, current)
        } else {
            (now, None, None)
        };
        self.known = Some((start, smaller(current, Some(limit)), previous));
    }
}

/// The smaller of two optional limits.
fn smaller(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<P: Handles> State<P> {
    /// The server closed an idle socket of `key` after `idle_for`: learn
    /// from it, when learning is on and the close was not immediate.
    pub(super) fn observe_idle_close(
        &mut self,
        key: usize,
        idle_for: Duration,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        if self.limits.learn_idle_timeouts && idle_for >= MIN_OBSERVATION {
            self.teach(key, idle_for, now, out);
        }
    }

    /// Takes `limit` (capped at `keep_alive`) as `key`'s server idle limit.
    pub(super) fn teach(&mut self, key: usize, limit: Duration, now: Instant, out: &mut Actions<P>) {
        let limit = limit.min(self.limits.keep_alive);
        let k = &mut self.keys[key];
        let before = k.server.limit(now);
        k.server.learn(limit, now);
        if cfg!(feature = "tracing") && before != Some(limit) {
            out.push(Action::Learned {
                target: k.target.clone(),
                limit,
            });
        }
    }

    /// Why the idle socket `idx`, idle since `since`, must not be handed
    /// out at `now`, if it must not: past its lifetime, or too close to
    /// its server's idle limit.
    pub(super) fn unfit(&self, idx: usize, since: Instant, now: Instant) -> Option<CloseReason> {
        let entry = &self.sockets[idx];
        if entry.expires.is_reached(now) {
            return Some(CloseReason::Lifetime);
        }
        let learned = self.keys[entry.key].server.limit(now);
        let limit = smaller(entry.server_idle_timeout, learned)?;
        let idle_for = now.saturating_duration_since(since);
        (idle_for >= limit.saturating_sub(margin(limit))).then_some(CloseReason::ServerLimit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_tenth_or_a_hundred_milliseconds() {
        assert_eq!(margin(Duration::from_secs(5)), Duration::from_millis(500));
        assert_eq!(margin(Duration::from_millis(500)), MIN_MARGIN);
    }

    #[test]
    fn the_limit_is_the_smallest_recent_observation_and_spurious_ones_expire() {
        let now = Instant::now();
        let secs = Duration::from_secs;
        let mut server = ServerLimit::default();
        assert_eq!(server.limit(now), None);
        // A restart closes a socket after 200 ms; the real limit is 2 s.
        server.learn(Duration::from_millis(200), now);
        server.learn(secs(2), now + secs(5));
        assert_eq!(server.limit(now + secs(5)), Some(Duration::from_millis(200)));
        // The real limit keeps showing; the spurious one ages out.
        for t in [35, 65, 95] {
            server.learn(secs(2), now + secs(t));
        }
        assert_eq!(server.limit(now + secs(95)), Some(secs(2)));
        // A band of closes (lighttpd): the smallest counts.
        server.learn(Duration::from_millis(2700), now + secs(96));
        server.learn(Duration::from_millis(2050), now + secs(97));
        assert_eq!(server.limit(now + secs(97)), Some(Duration::from_millis(2000)));
        // Nothing new for two windows: forgotten.
        assert_eq!(server.limit(now + secs(97) + WINDOW * 2), None);
    }
}
