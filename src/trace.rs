//! Events for the `tracing` feature: the pool's decisions as `tracing`
//! events with target `keepalive`. Without the feature the macro expands
//! to nothing, so its arguments are not even evaluated: zero cost.
//!
//! | event | level | fields |
//! |---|---|---|
//! | `connect started` | debug | `target` |
//! | `connect finished` | debug | `target`, `elapsed_us`, `ok` |
//! | `proxy tunnel opened` | debug | `target`, `proxy` (its scheme), `elapsed_us` |
//! | `proxy step failed` | debug | `target`, `status` (the proxy's, or 0), `reason` |
//! | `reuse` | trace | `target`, `from` (`immediate`, `deferred`) |
//! | `close` | debug | `target`, `reason` (a field name of `Closes`) |
//! | `queue full` | warn | `target`, `limit` |
//! | `timeout` | debug | `target`, `after_ms`, `during` (`connect`, `proxy`) |
//! | `fleet full: waiting` | debug | `target` (feature `fleet`) |
//! | `fleet slot after a wait` | debug | `target`, `waited_ms` |
//! | `fleet unavailable: failing open` | warn | `target`, `reason` |
//! | `fleet unreachable` / `fleet reachable again` | warn / info | `fleet` (its name), `reason`, `cause` (Redis's error) |
//! | `fleet slots put back` | info | `fleet`, `slots` (after Redis lost them) |
//! | `idle connection released for the fleet` | debug | `target` |
//! | `server idle limit learned` | info | `target`, `limit_ms` |
//!
//! A target's text never shows a proxy's password (`***`), and no event
//! carries a proxy's credentials in any form.

/// `tracing::event!` with the feature, nothing without it.
#[cfg(feature = "tracing")]
macro_rules! event {
    ($level:ident, $($rest:tt)*) => {
        tracing::event!(target: "keepalive", tracing::Level::$level, $($rest)*)
    };
}

/// `tracing::event!` with the feature, nothing without it.
#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($($rest:tt)*) => {};
}

pub(crate) use event;
