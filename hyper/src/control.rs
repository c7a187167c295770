//! What a client tells of its pool, and its controls: counts, retries and
//! shutdown, drain and warm-up, for a pool its users cannot reach
//! otherwise.

use std::sync::atomic::Ordering;

use keepalive::{Stats, Target};

use hyper::body::Body as SendBody;

use crate::conn::BoxError;
use crate::Client;

impl<B> Client<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// The pool's counts: sockets, requests, connects, reuses, closes by
    /// reason.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// assert_eq!(client.stats().open, 0);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.manager.stats()
    }

    /// The same counts for one target, with its server's idle limit as
    /// the pool knows it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// let target = keepalive::Target::new("http", "127.0.0.1", 8080);
    /// assert_eq!(client.stats_for(&target).connects, 0);
    /// # }
    /// ```
    pub fn stats_for(&self, target: &Target) -> Stats {
        self.shared.manager.stats_for(target)
    }

    /// The same counts for every target with an open connection or a
    /// pending request, and every target whose server's idle limit the
    /// pool learned; in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// assert!(client.stats_per_key().is_empty());
    /// # }
    /// ```
    pub fn stats_per_key(&self) -> Vec<(Target, Stats)> {
        self.shared.manager.stats_per_key()
    }

    /// How many requests were sent a second time under the retry rule.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// assert_eq!(client.retries(), 0);
    /// # }
    /// ```
    pub fn retries(&self) -> u64 {
        self.shared.retries.load(Ordering::Relaxed)
    }

    /// Shuts the client's pool down, as [`keepalive::Manager::shutdown`]
    /// does: queued requests fail, idle connections close, connects in
    /// progress are aborted, and later requests fail with
    /// [`Error::pool`](crate::Error::pool) `Some` and `is_shutdown()`. Responses on loan go on
    /// until their body ends; their connections then close. Every clone of
    /// the client shares the pool, so it is shut for all of them.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// client.shutdown().await;
    /// let req = http::Request::get("http://127.0.0.1:1/").body(Default::default()).unwrap();
    /// let err = client.request(req).await.unwrap_err();
    /// assert!(err.pool().is_some_and(|e| e.is_shutdown()));
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.shared.manager.shutdown().await;
    }

    /// Drains the client's pool, as [`keepalive::Manager::drain`] does:
    /// no new requests (they fail with [`Error::pool`](crate::Error::pool)
    /// `Some` and `is_shutdown()`), queued ones failed, idle connections
    /// closed, and responses on loan (HTTP/2 streams count one each) given
    /// until `deadline` to end. Returns how many were still out then; at
    /// the deadline their connections' sockets are shut down under them,
    /// so requests and bodies still in progress fail and every connection
    /// closes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// assert_eq!(client.drain(std::time::Duration::from_secs(30)).await, 0);
    /// # }
    /// ```
    pub async fn drain(&self, deadline: std::time::Duration) -> usize {
        let left = self.shared.manager.drain(deadline).await;
        if left > 0 {
            self.shared.live.cut();
        }
        left
    }

    /// Keeps `n` connections to `target` open in the client's pool, as
    /// [`keepalive::Manager::keep_warm`] does: opened now (an `https`
    /// connection with its TLS and ALPN done, an HTTP/2 one with its
    /// handshake), replaced when they close, stopped with 0. A request
    /// takes the first free connection, warm or not, and never waits for
    /// a warm one to open.
    ///
    /// # Errors
    ///
    /// The first error of the connects this call started, which also stops
    /// keeping `target` warm.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// let target = keepalive::Target::new("http", "127.0.0.1", listener.local_addr()?.port());
    /// client.keep_warm(target.clone(), 2).await?;
    /// assert_eq!(client.stats_for(&target).idle, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn keep_warm(&self, target: Target, n: usize) -> Result<(), keepalive::Error> {
        self.shared.manager.keep_warm(target, n).await
    }
}
