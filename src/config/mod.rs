//! [`Builder`], the validated private [`Config`], and the defaults; the
//! settings of the pool's own dialing are in `dial.rs`.

mod dial;
mod production;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::pooled::Plain;
use crate::resolver::{Resolve, SystemResolver};
use crate::transport::{DialOptions, Dialer, TcpOptions};

/// Sockets per connection key, idle + in use + connecting.
pub const DEFAULT_MAX_PER_HOST: usize = 4;
/// Sockets of the whole manager.
pub const DEFAULT_MAX_OPEN: usize = 128;
/// How long a pooled socket may stay idle.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long an allocation may take, from `allocate()` to its result.
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

/// Settings for a [`Manager`](crate::Manager).
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
pub struct Builder<P = Plain, T = Dialer> {
    config: Config,
    protocol: P,
    transport: T,
}

/// The settings a manager runs with, checked by [`Builder::build`].
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) max_per_host: usize,
    pub(crate) max_open: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_queued: usize,
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) dns_ttl: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    /// The largest part of `max_lifetime` a connection's own lifetime is
    /// shortened by, as a fraction (`Builder::max_lifetime_jitter`).
    pub(crate) max_lifetime_jitter: f64,
    /// `Builder::spread_addresses`.
    pub(crate) spread_addresses: bool,
    /// `Builder::refresh_dns`: how often a key's name is looked up again.
    pub(crate) refresh_dns: Option<Duration>,
    /// `Builder::name`: the `pool.name` of the metrics' series.
    pub(crate) name: Option<Arc<str>>,
    pub(crate) learn_idle_timeouts: bool,
    /// The settings of the pool's own dialing ([`Dialer`]).
    pub(crate) dial: DialOptions,
    /// The fleet whose per-host limit this manager shares.
    #[cfg(feature = "fleet")]
    pub(crate) fleet: Option<crate::fleet::Fleet>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_per_host: DEFAULT_MAX_PER_HOST,
            max_open: DEFAULT_MAX_OPEN,
            keep_alive: DEFAULT_KEEP_ALIVE,
            timeout: DEFAULT_TIMEOUT,
            max_queued: usize::MAX,
            resolver: Arc::new(SystemResolver),
            dns_ttl: None,
            max_lifetime: None,
            max_lifetime_jitter: 0.0,
            spread_addresses: false,
            refresh_dns: None,
            name: None,
            learn_idle_timeouts: true,
            dial: DialOptions {
                bind: None,
                happy_eyeballs_delay: DEFAULT_HAPPY_EYEBALLS_DELAY,
                tcp: TcpOptions {
                    keepalive: Some(DEFAULT_TCP_KEEPALIVE),
                    keepalive_interval: Some(DEFAULT_TCP_KEEPALIVE_INTERVAL),
                    keepalive_retries: Some(DEFAULT_TCP_KEEPALIVE_RETRIES),
                    user_timeout: Some(DEFAULT_TCP_USER_TIMEOUT),
                },
                #[cfg(keepalive_tls)]
                tls: None,
                #[cfg(keepalive_tls)]
                extra_roots: Vec::new(),
                #[cfg(keepalive_tls)]
                tls_failure: None,
                #[cfg(keepalive_tls)]
                alpn: Vec::new(),
                #[cfg(keepalive_tls)]
                tls_target: None,
                resolver: Arc::new(SystemResolver),
            },
            #[cfg(feature = "fleet")]
            fleet: None,
        }
    }
}

impl Config {
    /// Panics, naming the setting, on a zero limit or duration, or a
    /// fraction out of its range.
    #[track_caller]
    fn check(&self) {
        if let Some((name, _)) = self.zeros().iter().find(|(_, is_zero)| *is_zero) {
            panic!("keepalive::Builder: {name} must not be zero");
        }
        let jitter = self.max_lifetime_jitter;
        if !(0.0..=1.0).contains(&jitter) {
            panic!("keepalive::Builder: max_lifetime_jitter must be within 0.0..=1.0, not {jitter}");
        }
        #[cfg(feature = "fleet")]
        if self
            .fleet
            .as_ref()
            .is_some_and(|f| f.max_per_host_set && f.max_per_host == 0)
        {
            panic!("keepalive::Builder: the fleet's max_per_host must not be zero");
        }
    }

    /// Each setting that must not be zero, and whether it is.
    fn zeros(&self) -> [(&'static str, bool); 13] {
        [
            ("max_per_host", self.max_per_host == 0),
            ("max_open", self.max_open == 0),
            ("keep_alive", self.keep_alive.is_zero()),
            ("timeout", self.timeout.is_zero()),
            ("max_queued", self.max_queued == 0),
            ("happy_eyeballs_delay", self.dial.happy_eyeballs_delay.is_zero()),
            ("dns_ttl", self.dns_ttl.is_some_and(|d| d.is_zero())),
            ("max_lifetime", self.max_lifetime.is_some_and(|d| d.is_zero())),
            ("refresh_dns", self.refresh_dns.is_some_and(|d| d.is_zero())),
            (
                "tcp_keepalive",
                self.dial.tcp.keepalive.is_some_and(|d| d.is_zero()),
            ),
            (
                "tcp_keepalive_interval",
                self.dial.tcp.keepalive_interval.is_some_and(|d| d.is_zero()),
            ),
            (
                "tcp_keepalive_retries",
                self.dial.tcp.keepalive_retries == Some(0),
            ),
            (
                "tcp_user_timeout",
                self.dial.tcp.user_timeout.is_some_and(|d| d.is_zero()),
            ),
        ]
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("Config");
        f.field("max_per_host", &self.max_per_host)
            .field("max_open", &self.max_open)
            .field("keep_alive", &self.keep_alive)
            .field("timeout", &self.timeout)
            .field("max_queued", &self.max_queued)
            .field("dns_ttl", &self.dns_ttl)
            .field("max_lifetime", &self.max_lifetime)
            .field("max_lifetime_jitter", &self.max_lifetime_jitter)
            .field("spread_addresses", &self.spread_addresses)
            .field("refresh_dns", &self.refresh_dns)
            .field("name", &self.name)
            .field("learn_idle_timeouts", &self.learn_idle_timeouts)
            .field("bind_address", &self.dial.bind)
            .field("happy_eyeballs_delay", &self.dial.happy_eyeballs_delay)
            .field("tcp", &self.dial.tcp);
        #[cfg(feature = "fleet")]
        f.field("fleet", &self.fleet);
        f.finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            config: Config::default(),
            protocol: Plain,
            transport: Dialer,
        }
    }
}

impl<P, T> Builder<P, T> {
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

    /// Shares the per-host limit with every manager of the same
    /// [`Fleet`](crate::Fleet) (feature `fleet`), through Redis.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), keepalive::Error> {
    /// let fleet = keepalive::Fleet::redis("redis://127.0.0.1:6379")?.max_per_host(4);
    /// let manager = keepalive::Manager::builder().max_per_host(8).fleet(fleet).build();
    /// # drop(manager);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "fleet")]
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.config.fleet = Some(fleet);
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
        self.config.dial.resolver = self.config.resolver.clone();
        self
    }
}

impl<P, T> Builder<P, T> {
    /// The checked settings, the protocol and the transport, for
    /// [`Builder::build`].
    ///
    /// # Panics
    ///
    /// When a limit or duration is zero (the message names the setting).
    #[track_caller]
    pub(crate) fn into_parts(mut self) -> (Config, P, T) {
        self.config.check();
        self.config.dial.settle_tls();
        (self.config, self.protocol, self.transport)
    }
}

impl<P, T> Builder<P, T> {
    /// The protocol step that makes the pooled object on each new stream
    /// (a login, hyper's handshake): the manager then lends `Q::Conn`.
    /// Defaults to [`Plain`]: the stream itself.
    ///
    /// # Examples
    ///
    /// See [`Protocol`](crate::Protocol).
    pub fn protocol<Q>(self, protocol: Q) -> Builder<Q, T> {
        Builder {
            config: self.config,
            protocol,
            transport: self.transport,
        }
    }

    /// The transport that dials targets instead of the pool's own
    /// [`Dialer`] (a custom dialer, an in-memory transport for tests). The
    /// dialing settings (`bind_address`, `happy_eyeballs_delay`, the TCP
    /// options, `tls_config`) are the `Dialer`'s and do not apply to
    /// another transport. Defaults to [`Dialer`].
    ///
    /// # Examples
    ///
    /// See [`Transport`](crate::Transport).
    pub fn transport<U>(self, transport: U) -> Builder<P, U> {
        Builder {
            config: self.config,
            protocol: self.protocol,
            transport,
        }
    }
}
impl<P, T> fmt::Debug for Builder<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Builder").field(&self.config).finish()
    }
}
