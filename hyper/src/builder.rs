//! [`ClientBuilder`]: a client's settings, the pool's among them; its
//! `build` lives with the [`Client`](crate::Client) it makes.

use std::fmt;
use std::time::Duration;

use crate::handshake::{Offer, Version};
use crate::settings::Http2Settings;

/// Settings for a [`Client`](crate::Client): the pool's ([`pool`](ClientBuilder::pool))
/// and the client's own.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
///     .pool(keepalive::Manager::builder().max_per_host(8))
///     .timeout(Duration::from_secs(10))
///     .build();
/// # drop(client);
/// # }
/// ```
#[must_use = "a ClientBuilder does nothing until build() is called"]
pub struct ClientBuilder {
    pool: keepalive::Builder,
    timeout: Option<Duration>,
    version: Version,
}

impl ClientBuilder {
    pub(crate) fn new() -> ClientBuilder {
        ClientBuilder {
            pool: keepalive::Manager::builder(),
            timeout: None,
            version: Version {
                offer: Offer::Negotiate,
                http2: Http2Settings::default(),
            },
        }
    }

    /// The pool's settings: limits, timeouts, learning, TLS, the resolver,
    /// … Defaults to keepalive's defaults.
    ///
    /// # Examples
    ///
    /// See [`ClientBuilder`].
    pub fn pool(mut self, builder: keepalive::Builder) -> ClientBuilder {
        self.pool = builder;
        self
    }

    /// The whole request's time, from the call of `request` or `send` to
    /// the end of the response body, as reqwest's `timeout`. Defaults to
    /// none: the pool's own `timeout` still bounds getting a connection,
    /// and the earlier of the two wins there. Before a connection is handed
    /// over, the error is the pool's ([`Error::pool`](crate::Error::pool)
    /// is `Some`, with `is_timeout()`); after, the request fails, or the
    /// [`Body`](crate::Body)'s next frame does, with an error whose
    /// [`is_timeout`](crate::Error::is_timeout) is true, and the connection
    /// is closed, never pooled mid-response. A duration too long for the
    /// clock means none.
    ///
    /// # Examples
    ///
    /// See [`ClientBuilder`].
    pub fn timeout(mut self, d: Duration) -> ClientBuilder {
        self.timeout = Some(d);
        self
    }

    /// HTTP/1.1 alone: `https` targets offer `http/1.1` alone by ALPN.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder().http1_only().build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http1_only(mut self) -> ClientBuilder {
        self.version.offer = Offer::Http1Only;
        self
    }

    /// HTTP/2 without negotiation (prior knowledge): h2c on `http` and
    /// `unix` targets, gRPC's usual case; on `https`, ALPN offers `h2`
    /// alone (RFC 9113 section 3.3), and a server that does not agree fails
    /// the request (function `"tls"` when it refuses the offer,
    /// `"handshake"` when it chooses no protocol).
    ///
    /// Without it (and without [`http1_only`](ClientBuilder::http1_only)),
    /// `https` targets offer `h2` and `http/1.1` by ALPN and the server
    /// chooses; `http` and `unix` targets speak HTTP/1.1.
    ///
    /// An HTTP/2 connection is lent to many requests at once, up to its
    /// stream limit (the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, or
    /// [`http2_max_concurrent_streams`](ClientBuilder::http2_max_concurrent_streams)
    /// if lower); it counts once against `max_per_host` and `max_open`; a
    /// request for a key whose connections are all full opens another
    /// while the key is under `max_per_host`, else waits in the key's
    /// queue. A burst to a new key dials one connection per stream limit,
    /// not one per request.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .pool(keepalive::Manager::builder().max_per_host(4))
    ///     .http2_prior_knowledge()
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_prior_knowledge(mut self) -> ClientBuilder {
        self.version.offer = Offer::Http2Only;
        self
    }

    /// At most `n` requests at once on one HTTP/2 connection: the lower of
    /// `n` and the server's `SETTINGS_MAX_CONCURRENT_STREAMS` (default:
    /// the server's). `0` is taken as 1.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_prior_knowledge()
    ///     .http2_max_concurrent_streams(32)
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_max_concurrent_streams(mut self, n: u32) -> ClientBuilder {
        self.version.http2.max_streams = Some(n.max(1));
        self
    }

    /// PINGs an HTTP/2 connection that has received nothing for `interval`,
    /// idle or busy, and closes it when no reply comes within `timeout`: a
    /// dead NAT entry or a frozen server is found within `interval +
    /// timeout`, and the next request takes another connection. Default
    /// off. An `interval` too long for the clock means never.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_keep_alive(std::time::Duration::from_secs(30), std::time::Duration::from_secs(10))
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> ClientBuilder {
        self.version.http2.keep_alive = std::time::Instant::now()
            .checked_add(interval)
            .and_then(|at| at.checked_add(timeout))
            .map(|_| (interval, timeout));
        self
    }

    /// Each HTTP/2 stream's initial flow-control window, in bytes (hyper's
    /// `initial_stream_window_size`; default hyper's, 2 MiB).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_initial_stream_window_size(1 << 20)
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_initial_stream_window_size(mut self, size: u32) -> ClientBuilder {
        self.version.http2.initial_stream_window_size = Some(size);
        self
    }

    /// Each HTTP/2 connection's initial flow-control window, in bytes
    /// (hyper's `initial_connection_window_size`; default hyper's, 5 MiB).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_initial_connection_window_size(4 << 20)
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_initial_connection_window_size(mut self, size: u32) -> ClientBuilder {
        self.version.http2.initial_connection_window_size = Some(size);
        self
    }

    /// Sizes the flow-control windows from the measured bandwidth-delay
    /// product (hyper's `adaptive_window`; default off); the fixed window
    /// sizes are then ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_adaptive_window(true)
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_adaptive_window(mut self, on: bool) -> ClientBuilder {
        self.version.http2.adaptive_window = on;
        self
    }

    /// The largest frame payload this client accepts, in bytes (hyper's
    /// `max_frame_size`; default hyper's, 16 KiB).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_max_frame_size(1 << 16)
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_max_frame_size(mut self, size: u32) -> ClientBuilder {
        self.version.http2.max_frame_size = Some(size);
        self
    }

    /// The largest response header list this client accepts, in bytes
    /// (hyper's `max_header_list_size`; default hyper's, 16 KiB): a
    /// response past it fails that request alone.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .http2_max_header_list_size(64 << 10)
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn http2_max_header_list_size(mut self, size: u32) -> ClientBuilder {
        self.version.http2.max_header_list_size = Some(size);
        self
    }

    /// The pool's settings (with the ALPN offer), the whole request's
    /// timeout, and the HTTP versions, for [`ClientBuilder::build`].
    pub(crate) fn into_parts(self) -> (keepalive::Builder, Option<Duration>, Version) {
        #[cfg(feature = "tls")]
        let pool = self.pool.alpn_protocols(self.version.alpn());
        #[cfg(not(feature = "tls"))]
        let pool = self.pool;
        (pool, self.timeout, self.version)
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("pool", &self.pool)
            .field("timeout", &self.timeout)
            .field("version", &self.version)
            .finish()
    }
}
