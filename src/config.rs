//! [`Builder`], the validated private [`Config`], and the defaults.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::manager::Manager;
use crate::resolver::{Resolve, SystemResolver};

/// Sockets per connection key, idle + in use + connecting (the original's 4).
pub const DEFAULT_MAX_PER_HOST: usize = 4;
/// Sockets of the whole manager (the original's 128).
pub const DEFAULT_MAX_OPEN: usize = 128;
/// How long a pooled socket may stay idle (the original's 15 s).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long an allocation may take, from `allocate()` to its result (the
/// original's 120 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a connect attempt runs alone before the next address is tried
/// too (RFC 8305's recommended 250 ms).
pub const DEFAULT_HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);

/// Settings for a [`Manager`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = keepalive::Manager::builder()
///     .max_per_host(8)
///     .max_open(256)
///     .keep_alive(Duration::from_secs(30))
///     .timeout(Duration::from_secs(10))
///     .build();
/// assert_eq!(manager.stats().open, 0);
/// # }
/// ```
#[must_use = "a Builder does nothing until build() is called"]
pub struct Builder {
    config: Config,
}

/// The settings a manager runs with, checked by [`Builder::build`].
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) max_per_host: usize,
    pub(crate) max_open: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) timeout: Duration,
    pub(crate) bind_address: Option<IpAddr>,
    pub(crate) max_queued: usize,
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) happy_eyeballs_delay: Duration,
    pub(crate) dns_ttl: Option<Duration>,
    /// `None`: [`crate::tls`]'s default, built on first use.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_per_host: DEFAULT_MAX_PER_HOST,
            max_open: DEFAULT_MAX_OPEN,
            keep_alive: DEFAULT_KEEP_ALIVE,
            timeout: DEFAULT_TIMEOUT,
            bind_address: None,
            max_queued: usize::MAX,
            resolver: Arc::new(SystemResolver),
            happy_eyeballs_delay: DEFAULT_HAPPY_EYEBALLS_DELAY,
            dns_ttl: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Config {
    /// Panics, naming the setting, on a zero limit or duration.
    #[track_caller]
    fn check(&self) {
        let zero = [
            ("max_per_host", self.max_per_host == 0),
            ("max_open", self.max_open == 0),
            ("keep_alive", self.keep_alive.is_zero()),
            ("timeout", self.timeout.is_zero()),
            ("max_queued", self.max_queued == 0),
            ("happy_eyeballs_delay", self.happy_eyeballs_delay.is_zero()),
            ("dns_ttl", self.dns_ttl.is_some_and(|d| d.is_zero())),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            panic!("keepalive::Builder: {name} must not be zero");
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_per_host", &self.max_per_host)
            .field("max_open", &self.max_open)
            .field("keep_alive", &self.keep_alive)
            .field("timeout", &self.timeout)
            .field("bind_address", &self.bind_address)
            .field("max_queued", &self.max_queued)
            .field("happy_eyeballs_delay", &self.happy_eyeballs_delay)
            .field("dns_ttl", &self.dns_ttl)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            config: Config::default(),
        }
    }

    /// The most sockets per connection key, counting idle, in use and
    /// connecting ones. Defaults to [`DEFAULT_MAX_PER_HOST`] (4).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().max_per_host(1);
    /// # drop(builder);
    /// ```
    pub fn max_per_host(mut self, n: usize) -> Self {
        self.config.max_per_host = n;
        self
    }

    /// The most sockets of the whole manager: idle + in use + connecting.
    /// When it is reached and a request for another key waits, the least
    /// recently used idle socket is closed to make room. Defaults to
    /// [`DEFAULT_MAX_OPEN`] (128).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().max_open(16);
    /// # drop(builder);
    /// ```
    pub fn max_open(mut self, n: usize) -> Self {
        self.config.max_open = n;
        self
    }

    /// How long a pooled socket may stay unused before it is closed.
    /// Defaults to [`DEFAULT_KEEP_ALIVE`] (15 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().keep_alive(std::time::Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn keep_alive(mut self, d: Duration) -> Self {
        self.config.keep_alive = d;
        self
    }

    /// How long an allocation may take, from `allocate()` to its result,
    /// unless the request sets its own with
    /// [`Allocation::timeout`](crate::Allocation::timeout). Defaults to
    /// [`DEFAULT_TIMEOUT`] (120 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().timeout(std::time::Duration::from_secs(3));
    /// # drop(builder);
    /// ```
    pub fn timeout(mut self, d: Duration) -> Self {
        self.config.timeout = d;
        self
    }

    /// The local address every socket binds to before connecting. Defaults
    /// to none: the system picks.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().bind_address([127, 0, 0, 2].into());
    /// # drop(builder);
    /// ```
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.config.bind_address = Some(ip);
        self
    }

    /// The most requests that may wait (for a name lookup or for a socket)
    /// at once; more fail with [`Error::is_queue_full`]. This bounds memory
    /// when a host is down. Defaults to unlimited.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().max_queued(10_000);
    /// # drop(builder);
    /// ```
    ///
    /// [`Error::is_queue_full`]: crate::Error::is_queue_full
    pub fn max_queued(mut self, n: usize) -> Self {
        self.config.max_queued = n;
        self
    }

    /// When a name has several addresses, how long one connect attempt runs
    /// alone before the next address is tried as well (Happy Eyeballs,
    /// RFC 8305). A failed attempt starts the next one at once. Defaults to
    /// [`DEFAULT_HAPPY_EYEBALLS_DELAY`] (250 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().happy_eyeballs_delay(std::time::Duration::from_millis(100));
    /// # drop(builder);
    /// ```
    pub fn happy_eyeballs_delay(mut self, d: Duration) -> Self {
        self.config.happy_eyeballs_delay = d;
        self
    }

    /// Keeps each successful name lookup for `d`: within that time a host
    /// is not looked up again. Failed lookups are never kept. Defaults to
    /// off: every request that needs a connection looks the name up (shared
    /// with concurrent requests for it).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().dns_ttl(std::time::Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn dns_ttl(mut self, d: Duration) -> Self {
        self.config.dns_ttl = Some(d);
        self
    }

    /// The TLS configuration for `https` targets. Defaults to one that
    /// trusts Mozilla's root certificates (the `webpki-roots` crate) and
    /// verifies every server's certificate and name.
    ///
    /// There is no switch that turns verification off: who needs that
    /// builds a `ClientConfig` with their own verifier. Use
    /// [`keepalive::rustls`](crate::rustls) so the versions match.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use keepalive::rustls::{ClientConfig, RootCertStore};
    ///
    /// let provider = Arc::new(keepalive::rustls::crypto::ring::default_provider());
    /// let config = ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(RootCertStore::empty()) // add your own CA here
    ///     .with_no_client_auth();
    /// let builder = keepalive::Manager::builder().tls_config(Arc::new(config));
    /// # drop(builder);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, c: Arc<rustls::ClientConfig>) -> Self {
        self.config.tls = Some(c);
        self
    }

    /// The name resolver. Defaults to [`SystemResolver`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().resolver(keepalive::SystemResolver);
    /// # drop(builder);
    /// ```
    pub fn resolver(mut self, r: impl Resolve) -> Self {
        self.config.resolver = Arc::new(r);
        self
    }

    /// Builds the manager and starts its background task.
    ///
    /// # Panics
    ///
    /// When a limit or duration is zero (the message names the setting), or
    /// when called outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = keepalive::Manager::builder().max_open(8).build();
    /// # drop(manager);
    /// # }
    /// ```
    #[track_caller]
    pub fn build(self) -> Manager {
        self.config.check();
        Manager::start(self.config)
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Builder").field(&self.config).finish()
    }
}
