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
//! # A lost request is an observation too
//!
//! Before the first idle close is seen, a request sent just before the
//! server's limit meets its close: the loan of a socket that came from the
//! pool ends in end of stream or a reset before any byte was read. That
//! socket had been idle a known age when it was handed out, and the server
//! closed it at about that age, so the loss teaches the limit like an idle
//! close does ([`State::lost`]): each key loses at most the requests in
//! flight on reused sockets when the first one dies. The same care holds:
//! a close within [`MIN_OBSERVATION`] of the return teaches nothing, and
//! neither does a loan that lasted more than a quarter of that idle age
//! (its user held the connection open while the server's idle clock ran
//! on), nor the close of a fresh connection.
//!
//! # A server restart
//!
//! A server that restarts closes every idle connection at one instant:
//! each close is an observation at its connection's idle age. Connections
//! of one age (returned together) teach that age, no shorter; connections
//! of different ages teach a band, and so a limit below the youngest (down
//! to half of it), exactly as lighttpd's once-a-second sweep does, which
//! also closes connections of different ages at one instant and whose
//! band must be kept (`tests/idle_limits.rs`). The pool cannot tell the
//! two apart, and keeps to the side that loses no request: such a limit
//! only retires sockets early, and expires within 2 × [`WINDOW`].
//!
//! # Several observations, and recovery
//!
//! Servers do not all close at one instant: lighttpd checks idle
//! connections once a second, so its closes fall anywhere in a band about
//! a second wide; behind a load balancer, backends differ. The pool keeps
//! the smallest and the largest close of the last [`WINDOW`] to [`WINDOW`]
//! × 2 (two windows, the current one and the one before) and takes as the
//! limit the smallest close less the width of that band (never less than
//! half the smallest): a server that closes at one instant (nginx, Apache)
//! is taken at its word, one that closes in a band is assumed to close as
//! early below the smallest close seen as the band is wide. What the
//! server says (`Keep-Alive: timeout=`) is kept apart and taken as it is;
//! the smaller of the two wins.
//!
//! A spurious early close (a server restart closing everything) thus stops
//! cutting reuse for its key at most `2 × WINDOW` (60 s) after it happened,
//! while a limit the server keeps showing is never forgotten. Sockets past
//! the limit stay in the pool (never handed out) until a checkout finds
//! them or the server closes them, which is how new observations keep
//! coming.
//!
//! The pool measures idle time from a socket's return: a connection held
//! on loan long after its last response makes the server's close look
//! early. Return connections promptly, as an HTTP client does.

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

/// A key's server idle limit, if one is known: what the server told (its
/// `Keep-Alive: timeout=` hints) and what its closes showed, each kept for
/// the current window and the one before.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ServerLimit {
    told: Windows,
    seen: Windows,
}

impl ServerLimit {
    /// The limit, unless none is known or what was known expired: the
    /// smallest hint, or the smallest close widened by the spread of the
    /// closes, whichever is smaller.
    pub(super) fn limit(&self, now: Instant) -> Option<Duration> {
        let told = self.told.range(now).map(|(least, _)| least);
        let seen = self.seen.range(now).map(|(least, most)| {
            // A server whose closes spread over a band (lighttpd's
            // once-a-second check) may close as early below the smallest
            // close seen as the band is wide; never below half of it.
            least.saturating_sub(most - least).max(least / 2)
        });
        smaller(told, seen)
    }

    /// The server closed an idle socket after `idle_for`.
    fn observe(&mut self, idle_for: Duration, now: Instant) {
        self.seen.add(idle_for, now);
    }

    /// The server said it closes after `limit`.
    fn tell(&mut self, limit: Duration, now: Instant) {
        self.told.add(limit, now);
    }
}

/// The smallest and largest of the values of the current window and the
/// one before.
#[derive(Clone, Copy, Debug, Default)]
struct Windows {
    /// (start of the current window, its range, the previous one's).
    known: Option<(Instant, Range, Range)>,
}

/// The smallest and largest of some durations, if any.
type Range = Option<(Duration, Duration)>;

impl Windows {
    fn range(&self, now: Instant) -> Range {
        let (start, current, previous) = self.known?;
        let age = now.saturating_duration_since(start);
        if age < WINDOW {
            union(current, previous)
        } else if age < WINDOW * 2 {
            current
        } else {
            None
        }
    }

    fn add(&mut self, value: Duration, now: Instant) {
        let (start, current, previous) = self.known.unwrap_or((now, None, None));
        let age = now.saturating_duration_since(start);
        let (start, current, previous) = if age < WINDOW {
            (start, current, previous)
        } else if age < WINDOW * 2 {
            (start + WINDOW, None, current)
        } else {
            (now, None, None)
        };
        self.known = Some((start, union(current, Some((value, value))), previous));
    }
}

fn union(a: Range, b: Range) -> Range {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
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
            let idle_for = idle_for.min(self.limits.keep_alive);
            self.update_limit(key, now, out, |server| server.observe(idle_for, now));
        }
    }

    /// A loan of a socket of `key` that had been idle `idle_for` when it
    /// was handed out at `lent_at` ended in the server's close before any
    /// answer: the server's idle close met the request on its way, so its
    /// limit is at most about `idle_for`. It counts only if the loan ended
    /// within a quarter of that age: a connection its user held open for
    /// long kept the server's idle clock running, and teaches nothing.
    pub(super) fn observe_loss(
        &mut self,
        key: usize,
        (lent_at, idle_for): (Instant, Duration),
        now: Instant,
        out: &mut Actions<P>,
    ) {
        if now.saturating_duration_since(lent_at) <= idle_for / 4 {
            self.observe_idle_close(key, idle_for, now, out);
        }
    }

    /// The server said it closes `key`'s idle sockets after `limit`
    /// (capped at `keep_alive`).
    pub(super) fn teach(&mut self, key: usize, limit: Duration, now: Instant, out: &mut Actions<P>) {
        let limit = limit.min(self.limits.keep_alive);
        self.update_limit(key, now, out, |server| server.tell(limit, now));
    }

    fn update_limit(
        &mut self,
        key: usize,
        now: Instant,
        out: &mut Actions<P>,
        f: impl FnOnce(&mut ServerLimit),
    ) {
        let k = &mut self.keys[key];
        // Comparing before and after serves only the tracing event: a
        // hint comes with every response, so without the feature the
        // update is all there is.
        let before = cfg!(feature = "tracing").then(|| k.server.limit(now));
        f(&mut k.server);
        let Some(before) = before else {
            return;
        };
        match k.server.limit(now) {
            Some(limit) if before != Some(limit) => out.push(Action::Learned {
                target: k.target.clone(),
                limit,
            }),
            _ => {}
        }
    }

    /// When the idle socket `idx`, idle since `since` and fit at `now`,
    /// turns unfit, if it ever does: its lifetime's end, or its server's
    /// idle limit less the margin.
    pub(super) fn fit_until(&self, idx: usize, since: Instant, now: Instant) -> Option<Instant> {
        let entry = &self.sockets[idx];
        let learned = self.keys[entry.key].server.limit(now);
        let limit = smaller(entry.server_idle_timeout, learned);
        let by_server = limit.and_then(|l| since.checked_add(l.saturating_sub(margin(l))));
        [entry.expires.instant(), by_server].into_iter().flatten().min()
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
    fn the_limit_is_the_smallest_recent_close_widened_by_their_spread() {
        let now = Instant::now();
        let (secs, ms) = (Duration::from_secs, Duration::from_millis);
        let mut server = ServerLimit::default();
        assert_eq!(server.limit(now), None);
        // A restart closes a socket after 200 ms; the real limit is 2 s.
        server.observe(ms(200), now);
        assert_eq!(server.limit(now), Some(ms(200)));
        // The real limit keeps showing; the spurious close ages out.
        for t in [35, 65, 95] {
            server.observe(secs(2), now + secs(t));
        }
        assert_eq!(server.limit(now + secs(95)), Some(secs(2)));
        // A band of closes (lighttpd): as early below the smallest as the
        // band is wide, never below half of the smallest.
        server.observe(ms(2300), now + secs(96));
        assert_eq!(server.limit(now + secs(96)), Some(ms(1700)));
        server.observe(ms(5000), now + secs(97));
        assert_eq!(server.limit(now + secs(97)), Some(secs(1)));
        // What the server says counts as it is, and the smaller wins.
        server.tell(ms(1500), now + secs(97));
        assert_eq!(server.limit(now + secs(97)), Some(secs(1)));
        server.tell(ms(800), now + secs(97));
        assert_eq!(server.limit(now + secs(97)), Some(ms(800)));
        // Nothing new for two windows: forgotten.
        assert_eq!(server.limit(now + secs(97) + WINDOW * 2), None);
    }
}
