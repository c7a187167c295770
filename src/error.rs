//! [`Error`]: the one error type of the crate.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why an allocation failed.
///
/// Every error names the step that failed ([`Error::function`]:
/// `"resolve"`, `"connect"`, `"proxy"`, `"tls"`, `"handshake"`, `"fleet"`
/// or `"allocate"`) and, where the system gave one, the errno
/// ([`Error::raw_os_error`]). The underlying error, if any, is the
/// [`source`](std::error::Error::source).
///
/// The enum and each of its struct variants are `#[non_exhaustive]`: match
/// on variants with `..`, or better on the `is_*` predicates, so that a new
/// variant or field is not a breaking change.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = keepalive::Manager::new();
/// let err = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 0)).await.unwrap_err();
/// assert!(err.is_invalid_target());
/// assert_eq!(err.function(), "allocate");
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The target has an empty scheme or host, port 0, a bad literal, a host
    /// that is no DNS name, or the text was no URL.
    #[non_exhaustive]
    InvalidTarget {
        /// The target or text as given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The name lookup failed.
    #[non_exhaustive]
    Resolve {
        /// The host that was looked up.
        host: String,
        /// The resolver's error; shared by every request that waited on the
        /// same lookup.
        source: Arc<io::Error>,
    },
    /// The name lookup succeeded but gave no address to connect to.
    #[non_exhaustive]
    NoAddress {
        /// The host that was looked up.
        host: String,
        /// Why none of the answers could be used, if some were given.
        detail: String,
    },
    /// Connecting failed: every address was refused, unreachable, or none
    /// could be used.
    #[non_exhaustive]
    Connect {
        /// The target being connected.
        target: String,
        /// The address whose failure is the `source`: the first to fail.
        addr: Option<SocketAddr>,
        /// Every address tried, in the order the attempts started.
        tried: Vec<SocketAddr>,
        /// The system's error.
        source: Arc<io::Error>,
    },
    /// The request had no connection when its timeout expired.
    #[non_exhaustive]
    Timeout {
        /// The target requested.
        target: String,
        /// The request's timeout.
        after: Duration,
        /// A proxy was still opening its tunnel ([`Error::function`] is
        /// then `"proxy"`); else the request was waiting for room or a
        /// lookup, connecting, in TLS or a protocol step (`"connect"`).
        in_proxy: bool,
    },
    /// The TLS layer is missing or failed.
    #[non_exhaustive]
    Tls {
        /// The target requested.
        target: String,
        /// Which step failed: the handshake, the server name, or a build
        /// without TLS.
        reason: String,
        /// The cause, where there is one: for a failed handshake the
        /// `io::Error` tokio-rustls reports, whose inner error is the
        /// `rustls::Error` (an untrusted issuer, an expired certificate, a
        /// name mismatch, ...). [`source`](std::error::Error::source)
        /// returns that inner error itself.
        source: Option<Arc<io::Error>>,
    },
    /// The protocol step ([`Protocol::handshake`](crate::Protocol::handshake))
    /// on a connected stream failed: a refused login, say.
    #[non_exhaustive]
    Handshake {
        /// The target requested.
        target: String,
        /// The protocol step's error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The proxy step failed: the proxy refused the tunnel, sent something
    /// that is no valid reply, closed the connection, or its TLS failed.
    #[non_exhaustive]
    Proxy {
        /// The target requested (its proxy shown without the password).
        target: String,
        /// The proxy's HTTP status when it refused a `CONNECT` with one
        /// (407, 403, 502, ...).
        status: Option<u16>,
        /// What went wrong, in words; nothing of the credentials.
        reason: String,
        /// The system's or the TLS layer's error, where there is one.
        source: Option<Arc<io::Error>>,
    },
    /// A fleet's Redis URL is not one (feature `fleet`).
    #[non_exhaustive]
    FleetUrl {
        /// The URL as given, its password as `***`.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The fleet's Redis could not be reached, and the fleet does not fail
    /// open (feature `fleet`).
    #[non_exhaustive]
    FleetUnavailable {
        /// What went wrong talking to Redis, in words.
        reason: String,
        /// Redis's own error, where there is one (none for a call that
        /// got no answer in time).
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The request was cancelled with [`Manager::deallocate`](crate::Manager::deallocate).
    Cancelled,
    /// The manager is shut down.
    Shutdown,
    /// `max_queued` requests are already waiting.
    #[non_exhaustive]
    QueueFull {
        /// The configured `max_queued`.
        limit: usize,
    },
}

impl fmt::Display for Error {
    /// Lower-case, naming what failed and for which target; the cause is
    /// not repeated (it is the [`source`](std::error::Error::source)).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTarget { input, reason } => write!(f, "invalid target {input}: {reason}"),
            Error::Resolve { host, .. } => write!(f, "resolve {host} failed"),
            Error::NoAddress { host, detail } => write!(f, "{host} has no address{detail}"),
            Error::Connect { target, tried, .. } => {
                write!(f, "connect to {target} failed{}", tried_list(tried))
            }
            Error::Timeout {
                target,
                after,
                in_proxy: true,
            } => write!(
                f,
                "allocation for {target} timed out after {after:?} in the proxy step"
            ),
            Error::Timeout { target, after, .. } => {
                write!(f, "allocation for {target} timed out after {after:?}")
            }
            Error::Proxy { target, reason, .. } => write!(f, "proxy for {target} failed: {reason}"),
            Error::FleetUrl { input, reason } => write!(f, "bad fleet URL {input}: {reason}"),
            Error::FleetUnavailable { reason, .. } => write!(f, "the fleet's Redis is unavailable: {reason}"),
            Error::Tls { target, reason, .. } => write!(f, "tls for {target} failed: {reason}"),
            Error::Handshake { target, .. } => write!(f, "protocol handshake with {target} failed"),
            Error::Cancelled => f.write_str("allocation cancelled"),
            Error::Shutdown => f.write_str("connection manager is shut down"),
            Error::QueueFull { limit } => write!(f, "queue full: {limit} requests are already waiting"),
        }
    }
}

impl std::error::Error for Error {
    /// The error this one wraps, as its own type: the `io::Error` of a
    /// lookup or a connect (not the `Arc` it is shared in), and for TLS the
    /// `rustls::Error` itself when the handshake failed on one.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. } | Error::Connect { source, .. } => Some(&**source),
            Error::Handshake { source, .. }
            | Error::FleetUnavailable {
                source: Some(source), ..
            } => Some(&**source),
            Error::Proxy {
                source: Some(source), ..
            } => Some(&**source),
            Error::Tls {
                source: Some(source), ..
            } => match source.get_ref() {
                Some(inner) => Some(inner),
                None => Some(&**source),
            },
            _ => None,
        }
    }
}

/// The step an [`Error`] belongs to: what [`Error::function`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Resolve,
    Connect,
    Proxy,
    Tls,
    Handshake,
    Fleet,
    Allocate,
}

impl Step {
    /// The name [`Error::function`] gives.
    fn name(self) -> &'static str {
        match self {
            Step::Resolve => "resolve",
            Step::Connect => "connect",
            Step::Proxy => "proxy",
            Step::Tls => "tls",
            Step::Handshake => "handshake",
            Step::Fleet => "fleet",
            Step::Allocate => "allocate",
        }
    }
}

/// `" (tried a, b)"`, or nothing when no address was tried.
fn tried_list(tried: &[SocketAddr]) -> String {
    if tried.is_empty() {
        return String::new();
    }
    let list: Vec<String> = tried.iter().map(ToString::to_string).collect();
    format!(" (tried {})", list.join(", "))
}

impl Error {
    /// An error for a target that cannot be used, with
    /// [`is_invalid_target`](Error::is_invalid_target) true: for a
    /// [`Transport`](crate::Transport), a [`Protocol`](crate::Protocol) or
    /// a layer above the pool (an HTTP client that reads targets from
    /// URIs) whose own checks refuse one. `input` is shown in the message:
    /// leave any password out of it.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = keepalive::Error::invalid_target("/relative", "the URI is not absolute");
    /// assert!(err.is_invalid_target());
    /// assert_eq!(err.to_string(), "invalid target /relative: the URI is not absolute");
    /// ```
    pub fn invalid_target(input: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidTarget {
            input: input.into(),
            reason: reason.into(),
        }
    }

    /// The fleet's Redis could not be reached: `reason` in words, and
    /// Redis's own error as the source where there is one.
    #[cfg(feature = "fleet")]
    pub(crate) fn fleet_unavailable(reason: impl Into<String>, source: Option<redis::RedisError>) -> Error {
        Error::FleetUnavailable {
            reason: reason.into(),
            source: source.map(|e| Arc::new(e) as Arc<dyn std::error::Error + Send + Sync>),
        }
    }

    /// A transport's failure: the [`Error`] it carried through the
    /// `io::Error` (as the pool's own dialer does), or `Error::Connect`
    /// around it.
    pub(crate) fn from_transport(target: &impl fmt::Display, e: io::Error) -> Error {
        if let Some(error) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            return error.clone();
        }
        Error::Connect {
            target: target.to_string(),
            addr: None,
            tried: Vec::new(),
            source: Arc::new(e),
        }
    }

    /// A protocol step's failure; an [`Error`] it returned stays itself.
    pub(crate) fn handshake<E: std::error::Error + Send + Sync + 'static>(
        target: &impl fmt::Display,
        e: E,
    ) -> Error {
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        match boxed.downcast::<Error>() {
            Ok(error) => *error,
            Err(source) => Error::Handshake {
                target: target.to_string(),
                source: Arc::from(source),
            },
        }
    }

    /// The step that failed: `"resolve"`, `"connect"`, `"proxy"` (opening
    /// a tunnel through a [`Proxy`](crate::Proxy)), `"tls"`, `"handshake"`
    /// (a [`Protocol`](crate::Protocol) step), `"fleet"` (a fleet's Redis)
    /// or `"allocate"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Error::Cancelled.function(), "allocate");
    /// ```
    pub fn function(&self) -> &'static str {
        self.step().name()
    }

    /// The step that failed, as data.
    fn step(&self) -> Step {
        match self {
            Error::Resolve { .. } | Error::NoAddress { .. } => Step::Resolve,
            Error::Connect { .. } | Error::Timeout { in_proxy: false, .. } => Step::Connect,
            Error::Proxy { .. } | Error::Timeout { in_proxy: true, .. } => Step::Proxy,
            Error::FleetUrl { .. } | Error::FleetUnavailable { .. } => Step::Fleet,
            Error::Tls { .. } => Step::Tls,
            Error::Handshake { .. } => Step::Handshake,
            Error::InvalidTarget { .. } | Error::Cancelled | Error::Shutdown | Error::QueueFull { .. } => {
                Step::Allocate
            }
        }
    }

    /// The errno behind the error, if any: `ECONNREFUSED` for a refused
    /// connection, `ETIMEDOUT` for a timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::builder().max_per_host(1).build();
    /// let held = manager.allocate(target.clone()).await?;
    /// let err = manager.allocate(target).timeout(Duration::from_millis(1)).await.unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
    /// # drop(held);
    /// # Ok(())
    /// # }
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Resolve { source, .. } | Error::Connect { source, .. } => source.raw_os_error(),
            Error::Timeout { .. } => Some(libc::ETIMEDOUT),
            Error::Proxy {
                source: Some(source), ..
            } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when a new connection was refused because the fleet's Redis
    /// could not be reached and the fleet does not fail open
    /// (`Fleet::fail_open(false)`, feature `fleet`). Its
    /// [`function`](Error::function) is `"fleet"`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # #[cfg(feature = "fleet")]
    /// # {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// // A fleet whose Redis does not answer, which does not fail open.
    /// let fleet = keepalive::Fleet::redis(&format!("redis://127.0.0.1:{port}")).unwrap().fail_open(false);
    /// let manager = keepalive::Manager::builder().fleet(fleet).build();
    /// let err = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 9)).await.unwrap_err();
    /// assert!(err.is_fleet_unavailable());
    /// assert_eq!(err.function(), "fleet");
    /// assert!(std::error::Error::source(&err).is_some()); // Redis's own error
    /// # }
    /// # }
    /// ```
    pub fn is_fleet_unavailable(&self) -> bool {
        matches!(self, Error::FleetUnavailable { .. })
    }

    /// The HTTP status with which a proxy refused the tunnel (407 for
    /// missing or wrong credentials, 403, 502, ...); `None` for every other
    /// error. Its [`function`](Error::function) is `"proxy"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A proxy that wants credentials nobody gave it.
    /// let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let port = proxy.local_addr()?.port();
    /// tokio::spawn(async move {
    ///     let (mut s, _) = proxy.accept().await.unwrap();
    ///     let mut head = [0; 1024];
    ///     let _ = s.read(&mut head).await;
    ///     let _ = s.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n").await;
    /// });
    /// let target = keepalive::Target::new("http", "a.example", 80).via(keepalive::Proxy::http("127.0.0.1", port));
    /// let err = keepalive::Manager::new().allocate(target).await.unwrap_err();
    /// assert_eq!((err.proxy_status(), err.function()), (Some(407), "proxy"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn proxy_status(&self) -> Option<u16> {
        match self {
            Error::Proxy { status, .. } => *status,
            _ => None,
        }
    }

    /// True when the request had no connection by its deadline: function
    /// `"connect"` with `ETIMEDOUT`, or function `"proxy"` when a proxy was
    /// still opening the tunnel.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!keepalive::Error::Shutdown.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True when the request was cancelled by
    /// [`Manager::deallocate`](crate::Manager::deallocate).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(keepalive::Error::Cancelled.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// True when the manager was shut down before or while the request
    /// waited.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(keepalive::Error::Shutdown.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Error::Shutdown)
    }

    /// True when `max_queued` requests were already waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::builder().max_per_host(1).max_queued(1).build();
    /// let held = manager.allocate(target.clone()).await?;
    /// let waiting = manager.allocate(target.clone()); // the one place in the queue
    /// assert!(manager.allocate(target).await.unwrap_err().is_queue_full());
    /// # drop((held, waiting));
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_queue_full(&self) -> bool {
        matches!(self, Error::QueueFull { .. })
    }

    /// True when the target itself was bad: empty scheme or host, port 0, a
    /// bad literal, a host that is no DNS name, or text that is no URL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!("ftp//x".parse::<keepalive::Target>().unwrap_err().is_invalid_target());
    /// ```
    pub fn is_invalid_target(&self) -> bool {
        matches!(self, Error::InvalidTarget { .. })
    }
}
