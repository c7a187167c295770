//! [`Deadline`]: "now + d" for any duration, where a time past what
//! `Instant` can hold means "never". Every deadline of the crate (request
//! timeouts, keep-alive, lifetimes, lookup caching, Happy Eyeballs) is
//! made here, so `Duration::MAX` means "no limit" everywhere and nowhere
//! panics.

use std::time::Duration;

use tokio::time::Instant;

/// A point in time, or never. Orders as a time would: `Never` is later
/// than every `At`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Deadline {
    /// At this instant.
    At(Instant),
    /// Too far away for an `Instant`.
    Never,
}

impl Deadline {
    /// `now + d`, saturating to [`Deadline::Never`].
    pub(crate) fn after(now: Instant, d: Duration) -> Deadline {
        now.checked_add(d).map_or(Deadline::Never, Deadline::At)
    }

    /// The instant, unless it is never.
    pub(crate) fn instant(self) -> Option<Instant> {
        match self {
            Deadline::At(at) => Some(at),
            Deadline::Never => None,
        }
    }

    /// Whether `now` has reached it.
    pub(crate) fn is_reached(self, now: Instant) -> bool {
        self.instant().is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_never_and_order_last() {
        let now = Instant::now();
        assert_eq!(Deadline::after(now, Duration::MAX), Deadline::Never);
        let soon = Deadline::after(now, Duration::from_secs(1));
        assert_eq!(soon.instant(), Some(now + Duration::from_secs(1)));
        assert!(soon < Deadline::Never);
        assert!(!Deadline::Never.is_reached(now));
        assert!(soon.is_reached(now + Duration::from_secs(1)));
        assert!(!soon.is_reached(now));
    }
}
