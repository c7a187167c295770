//! [`ClientBuilder`]: a client's settings, the pool's among them; its
//! `build` lives with the [`Client`](crate::Client) it makes.

use std::fmt;
use std::time::Duration;

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
}

impl ClientBuilder {
    pub(crate) fn new() -> ClientBuilder {
        ClientBuilder {
            pool: keepalive::Manager::builder(),
            timeout: None,
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

    /// The pool's settings and the whole request's timeout, for
    /// [`ClientBuilder::build`].
    pub(crate) fn into_parts(self) -> (keepalive::Builder, Option<Duration>) {
        (self.pool, self.timeout)
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("pool", &self.pool)
            .field("timeout", &self.timeout)
            .finish()
    }
}
