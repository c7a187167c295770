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

/// Idle time before the first TCP keepalive probe (reqwest's 15 s).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(15);
/// Time between TCP keepalive probes (reqwest's 15 s).
pub const DEFAULT_TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Unanswered TCP keepalive probes before the kernel gives up (reqwest's 3).
pub const DEFAULT_TCP_KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data (or keepalive probes) may go unacknowledged before
/// the kernel gives up on the connection: Linux's `TCP_USER_TIMEOUT`
/// (reqwest's 30 s).
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for a [`Manager`].
///
/// Every duration may be anything from 1 ns to `Duration::MAX`; a deadline
/// too far for an `Instant` means "never" (so `Duration::MAX` turns a
/// limit off), never a panic or an overflow. Zero is a programming error
/// that [`Builder::build`] reports. The `Option` settings take a value or
/// `None` (turning the feature off), as reqwest's builder does.
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
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) learn_idle_timeouts: bool,
    pub(crate) tcp: TcpOptions,
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
            max_lifetime: None,
            learn_idle_timeouts: true,
            tcp: TcpOptions::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// The TCP options set on every socket the pool opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpOptions {
    /// SO_KEEPALIVE on, with this idle time (TCP_KEEPIDLE).
    pub(crate) keepalive: Option<Duration>,
    /// TCP_KEEPINTVL.
    pub(crate) keepalive_interval: Option<Duration>,
    /// TCP_KEEPCNT.
    pub(crate) keepalive_retries: Option<u32>,
    /// TCP_USER_TIMEOUT (Linux).
    pub(crate) user_timeout: Option<Duration>,
}

impl Default for TcpOptions {
    fn default() -> TcpOptions {
        TcpOptions {
            keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            keepalive_interval: Some(DEFAULT_TCP_KEEPALIVE_INTERVAL),
            keepalive_retries: Some(DEFAULT_TCP_KEEPALIVE_RETRIES),
            user_timeout: Some(DEFAULT_TCP_USER_TIMEOUT),
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
            ("max_lifetime", self.max_lifetime.is_some_and(|d| d.is_zero())),
            ("tcp_keepalive", self.tcp.keepalive.is_some_and(|d| d.is_zero())),
            (
                "tcp_keepalive_interval",
                self.tcp.keepalive_interval.is_some_and(|d| d.is_zero()),
            ),
            ("tcp_keepalive_retries", self.tcp.keepalive_retries == Some(0)),
            (
                "tcp_user_timeout",
                self.tcp.user_timeout.is_some_and(|d| d.is_zero()),
            ),
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
            .field("max_lifetime", &self.max_lifetime)
            .field("learn_idle_timeouts", &self.learn_idle_timeouts)
            .field("tcp", &self.tcp)
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

    /// The most time a socket is used, from its connect: one older than
    /// this is never handed out again (closed when it comes back, or when
    /// found idle past it), so that DNS changes and load balancers that
    /// balance only new connections are picked up on busy keys. `None`
    /// turns it off. Defaults to off.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().max_lifetime(std::time::Duration::from_secs(300));
    /// # drop(builder);
    /// ```
    pub fn max_lifetime(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = d.into();
        self
    }

    /// Learn each server's idle limit from the idle connections it closes,
    /// and retire that key's idle sockets a safety margin before it (the
    /// larger of 10% of the limit and 100 ms), so that a request never
    /// meets the server's close on its way. One observation is enough; a
    /// close within 50 ms of a socket's return teaches nothing. The limit
    /// used is the smallest close of the last 30 to 60 s, less the width
    /// of the band the closes fall in (servers such as lighttpd close
    /// anywhere in a second-wide band; never less than half the smallest),
    /// so a spurious early close (a restart) stops cutting reuse within
    /// 60 s, and a limit nothing confirms is forgotten within 60 s. The
    /// limit is per connection key and never above `keep_alive`.
    /// [`Connection::set_server_idle_timeout`](crate::Connection::set_server_idle_timeout)
    /// teaches it up front whatever this says. Defaults to on.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().learn_idle_timeouts(false);
    /// # drop(builder);
    /// ```
    pub fn learn_idle_timeouts(mut self, on: bool) -> Self {
        self.config.learn_idle_timeouts = on;
        self
    }

    /// TCP keepalive (SO_KEEPALIVE) on every socket, with this idle time
    /// before the first probe (TCP_KEEPIDLE, whole seconds, rounded up, at
    /// most 32,767 s), so that a peer that vanished without a FIN or RST (a
    /// dropped NAT entry, a powered-off server) is found dead by the kernel
    /// and its idle socket leaves the pool. `None` turns keepalive off.
    /// Defaults to [`DEFAULT_TCP_KEEPALIVE`] (15 s).
    ///
    /// With the defaults, an idle socket whose peer went silent is closed
    /// about 15 s + 30 s after its last traffic: probes start after 15 s,
    /// and `tcp_user_timeout` (30 s), not the retry count, ends them (Linux
    /// lets `TCP_USER_TIMEOUT` decide when unanswered probes end a
    /// connection). With `tcp_user_timeout(None)` it is 15 s +
    /// `interval × retries` = 60 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_keepalive(std::time::Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn tcp_keepalive(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.tcp.keepalive = d.into();
        self
    }

    /// Time between TCP keepalive probes (TCP_KEEPINTVL, whole seconds,
    /// rounded up, at most 32,767 s). `None` leaves the system's default.
    /// Defaults to [`DEFAULT_TCP_KEEPALIVE_INTERVAL`] (15 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_keepalive_interval(std::time::Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn tcp_keepalive_interval(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.tcp.keepalive_interval = d.into();
        self
    }

    /// Unanswered TCP keepalive probes before the kernel gives up on the
    /// peer (TCP_KEEPCNT, at most 127). Only counts when
    /// `tcp_user_timeout` is off: on Linux a set user timeout decides
    /// instead. `None` leaves the system's default. Defaults to
    /// [`DEFAULT_TCP_KEEPALIVE_RETRIES`] (3).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_keepalive_retries(5);
    /// # drop(builder);
    /// ```
    pub fn tcp_keepalive_retries(mut self, n: impl Into<Option<u32>>) -> Self {
        self.config.tcp.keepalive_retries = n.into();
        self
    }

    /// How long data written to a socket (or keepalive probes) may go
    /// unacknowledged before the kernel gives up and the connection fails
    /// with `ETIMEDOUT` (Linux `TCP_USER_TIMEOUT`, milliseconds; ignored
    /// elsewhere). A request written to a peer that vanished then fails
    /// with an I/O error within this time instead of retransmitting for
    /// about 15 minutes. `None` turns it off. Defaults to
    /// [`DEFAULT_TCP_USER_TIMEOUT`] (30 s).
    ///
    /// What a user gets with each combination (Linux):
    ///
    /// | keepalive | user timeout | idle peer gone silent | write to it |
    /// |---|---|---|---|
    /// | on (idle I) | on (U) | closed about I + U after the last traffic | fails after about U |
    /// | on (idle I, interval V, retries N) | off | closed after I + V × N | retransmits for ~15 min |
    /// | off | on (U) | stays until `keep_alive`, then closed | fails after about U |
    /// | off | off | stays until `keep_alive`, then closed | retransmits for ~15 min |
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_user_timeout(std::time::Duration::from_secs(10));
    /// # drop(builder);
    /// ```
    pub fn tcp_user_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.tcp.user_timeout = d.into();
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
