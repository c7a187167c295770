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
//! # Recovery
//!
//! Each observation replaces the last: a socket the server kept open for
//! longer proves the limit longer, so a spurious early close (a server
//! restart closing everything) is corrected by the next idle close at the
//! real limit. Sockets past the learned limit stay in the pool (never
//! handed out) until they are checked out or the server closes them, which
//! is how that evidence arrives. Without a new observation or hint, a
//! learned limit lapses [`RELEARN_AFTER`] after it was learned, and the
//! key is treated as unknown again.

use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Actions, CloseReason, Handles, State};
use crate::deadline::Deadline;

/// Closes sooner than this after a socket's return teach nothing.
pub(crate) const MIN_OBSERVATION: Duration = Duration::from_millis(50);
/// A learned limit with no newer observation or hint is dropped after this.
pub(crate) const RELEARN_AFTER: Duration = Duration::from_secs(60);
/// The smallest safety margin before a server's idle limit.
pub(crate) const MIN_MARGIN: Duration = Duration::from_millis(100);

/// How long before a server's idle limit `limit` its sockets are retired:
/// the larger of 10% of it and [`MIN_MARGIN`].
pub(crate) fn margin(limit: Duration) -> Duration {
    (limit / 10).max(MIN_MARGIN)
}

/// A key's server idle limit, if one is known.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ServerLimit {
    /// The limit, and when it was learned or last confirmed.
    known: Option<(Duration, Instant)>,
}

impl ServerLimit {
    /// The limit, unless none is known or it lapsed.
    pub(super) fn limit(&self, now: Instant) -> Option<Duration> {
        let (limit, at) = self.known?;
        (!Deadline::after(at, RELEARN_AFTER).is_reached(now)).then_some(limit)
    }

    fn learn(&mut self, limit: Duration, now: Instant) {
        self.known = Some((limit, now));
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
        let limit = match (entry.server_idle_timeout, learned) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
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
    fn a_learned_limit_lapses_unless_confirmed() {
        let now = Instant::now();
        let mut server = ServerLimit::default();
        assert_eq!(server.limit(now), None);
        server.learn(Duration::from_secs(2), now);
        assert_eq!(
            server.limit(now + RELEARN_AFTER / 2),
            Some(Duration::from_secs(2))
        );
        assert_eq!(server.limit(now + RELEARN_AFTER), None);
        server.learn(Duration::from_secs(3), now + RELEARN_AFTER);
        assert_eq!(server.limit(now + RELEARN_AFTER), Some(Duration::from_secs(3)));
    }
}
