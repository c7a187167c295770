//! The builder's settings for running in production: connections spread
//! over a name's addresses, the name looked up again, lifetimes that do
//! not all end together, and the pool's name in its metrics.

use std::sync::Arc;
use std::time::Duration;

use super::Builder;

impl<P, T> Builder<P, T> {
    /// Shortens each connection's [`max_lifetime`](Builder::max_lifetime)
    /// by a part drawn uniformly, per connection, from 0 to this fraction
    /// of it, so that connections opened together (at start, after a
    /// deploy) do not all expire and reconnect at the same instant (Go
    /// asks for this in golang/go #54429). Defaults to 0.0; no effect
    /// without `max_lifetime`.
    ///
    /// # Panics
    ///
    /// [`build`](Builder::build) panics, naming the setting, for a value
    /// outside `0.0..=1.0` or NaN.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// // Lifetimes spread over 4 to 5 minutes.
    /// let builder = keepalive::Manager::builder()
    ///     .max_lifetime(Duration::from_secs(300))
    ///     .max_lifetime_jitter(0.2);
    /// # drop(builder);
    /// ```
    pub fn max_lifetime_jitter(mut self, fraction: f64) -> Self {
        self.config.max_lifetime_jitter = fraction;
        self
    }

    /// New connections of a key take its resolved addresses in turn: the
    /// key's k-th new connection (counted from 0) starts at place k (modulo
    /// their number) in each family's addresses, and Happy Eyeballs' fallback
    /// goes on in that order, instead of every connection starting at the
    /// first address. For a name that resolves to several servers (a
    /// Kubernetes headless service, DNS round robin), so that the first
    /// server to answer does not get every connection. Defaults to false.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().spread_addresses(true);
    /// # drop(builder);
    /// ```
    pub fn spread_addresses(mut self, on: bool) -> Self {
        self.config.spread_addresses = on;
        self
    }

    /// Looks each key's name up again this often while the key has
    /// connections (default: never). The lookups bypass the
    /// [`dns_ttl`](Builder::dns_ttl) cache and refresh it, count in
    /// `Stats::dns_lookups`, and new connections use the fresh answer. An
    /// idle connection whose server's address is no longer in the answer
    /// is closed, and one on loan is closed when it comes back (both
    /// counted in `Closes::address_gone`), so a pool follows servers that
    /// move (a Kubernetes headless service whose pods are replaced). A
    /// failed lookup or an empty answer closes nothing. For a target via a
    /// proxy, the proxy's name is looked up; IP literals, Unix sockets and
    /// connections made by another [`Transport`](crate::Transport) (whose
    /// address the pool does not know) never are. Each answer is checked
    /// against every pooled connection, under the pool's lock: meant for a
    /// service's few names, not a crawler's thousands.
    ///
    /// # Panics
    ///
    /// [`build`](Builder::build) panics on zero, naming the setting.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder()
    ///     .spread_addresses(true)
    ///     .refresh_dns(std::time::Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn refresh_dns(mut self, every: impl Into<Option<Duration>>) -> Self {
        self.config.refresh_dns = every.into();
        self
    }

    /// Names the pool in its metrics (feature `metrics`): every series
    /// gets the label `pool.name`, so that two managers in one process
    /// keep their gauges apart. Default: none (no such label).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().name("payments");
    /// # drop(builder);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(Arc::from(name.into()));
        self
    }
}
