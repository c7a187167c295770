//! [`Stats`]: the snapshot `State` keeps the counts for.

/// A snapshot of a manager's counts, from [`Manager::stats`](crate::Manager::stats).
///
/// The gauges (`open` to `queued`) add up at every moment the pool's lock
/// is free: `open == idle + in_use + connecting`, never above `max_open`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stats = keepalive::Manager::new().stats();
/// assert_eq!((stats.open, stats.connects), (0, 0));
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sockets connected or connecting: idle + in use + connecting.
    pub open: usize,
    /// Sockets in the pool, ready for reuse.
    pub idle: usize,
    /// Sockets on loan as `Connection`s.
    pub in_use: usize,
    /// Sockets in TCP connect (or TLS handshake).
    pub connecting: usize,
    /// Requests neither served nor connecting: waiting for a name lookup or
    /// for a slot.
    pub queued: usize,
    /// Sockets connected since the manager started.
    pub connects: u64,
    /// Allocations served from the pool (immediate + deferred).
    pub reuses: u64,
    /// Sockets found closed, reset, carrying unread data, or after an I/O
    /// error, and dropped instead of reused.
    pub stale_discarded: u64,
    /// Calls of [`Resolve::resolve`](crate::Resolve::resolve).
    pub dns_lookups: u64,
}
