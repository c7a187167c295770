//! [`Client`]: requests on pooled connections, with the retry rule.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body as SendBody;
use keepalive::{Allocation, FromCache, Manager, Target};
use tokio::time::Instant;

use crate::attempt::attempt;
use crate::body::Body;
use crate::builder::ClientBuilder;
use crate::conn::{BoxError, Conn, Outgoing};
use crate::error::Error;
use crate::handshake::{Http, Version};
use crate::live::Live;
use crate::origin::{self, to_form, Origin, Origins};
use crate::replay::{self, Replay};
use crate::retry::{self, Failure, Resend};

/// An HTTP/1.1 client: hyper on keepalive's pool.
///
/// Cloning gives another handle to the same pool. Every setting of the
/// pool is available through [`Client::with_builder`].
///
/// # Examples
///
/// ```
/// use http_body_util::{BodyExt, Empty};
/// use bytes::Bytes;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let url = format!("http://{}/", listener.local_addr()?);
/// # tokio::spawn(async move {
/// #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// #     while let Ok((mut s, _)) = listener.accept().await {
/// #         tokio::spawn(async move {
/// #             let mut b = [0; 4096];
/// #             while let Ok(1..) = s.read(&mut b).await {
/// #                 let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
/// #             }
/// #         });
/// #     }
/// # });
/// let client = keepalive_hyper::Client::<Empty<Bytes>>::new();
/// let req = http::Request::get(url).body(Empty::new())?;
/// let body = client.request(req).await?.into_body().collect().await?.to_bytes();
/// assert_eq!(&body[..], b"hello");
/// # Ok(())
/// # }
/// ```
pub struct Client<B = Full<Bytes>>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    pub(crate) shared: Arc<Shared<B>>,
}

pub(crate) struct Shared<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    pub(crate) manager: Manager<Http<B>>,
    /// The origins of the URIs requested, so that a request to a known one
    /// builds no `Target` and no `Host` header.
    origins: Origins,
    pub(crate) retries: AtomicU64,
    /// [`ClientBuilder::timeout`]: a whole request's time.
    timeout: Option<Duration>,
    /// The connections made, for a drain to cut at its deadline.
    pub(crate) live: Arc<Live>,
}

impl<B> Clone for Client<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn clone(&self) -> Self {
        Client {
            shared: self.shared.clone(),
        }
    }
}

impl<B> std::fmt::Debug for Client<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("manager", &self.shared.manager)
            .field("retries", &self.retries())
            .finish()
    }
}

impl<B> Client<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A client with every pool setting at its default.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// # drop(client);
    /// # }
    /// ```
    #[track_caller]
    pub fn new() -> Client<B> {
        Client::with_builder(Manager::builder())
    }

    /// A client on a pool with the builder's settings: limits, timeouts,
    /// learning, TLS, the resolver, …
    ///
    /// # Panics
    ///
    /// As [`keepalive::Builder::build`]: a zero setting, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client =
    ///     keepalive_hyper::Client::with_builder(keepalive::Manager::builder().max_per_host(8));
    /// # drop(client);
    /// # }
    /// ```
    #[track_caller]
    pub fn with_builder(builder: keepalive::Builder) -> Client<B> {
        ClientBuilder::new().pool(builder).build()
    }

    #[track_caller]
    pub(crate) fn start(pool: keepalive::Builder, timeout: Option<Duration>, version: Version) -> Client<B> {
        let live = Arc::new(Live::default());
        Client {
            shared: Arc::new(Shared {
                manager: pool.protocol(Http::new(version, live.clone())).build(),
                origins: Origins::default(),
                retries: AtomicU64::new(0),
                timeout,
                live,
            }),
        }
    }

    /// Sends `req` to the target its URI names (scheme, host and port: an
    /// absolute URI is required) and returns the response. The connection
    /// goes back to the pool when the response body has been read from the
    /// socket to its end, whether or not the caller read it: a response
    /// dropped after its whole body had arrived (a small body often comes
    /// with its head) leaves the connection to the next request; one
    /// dropped before its body's end closes it. On any runtime,
    /// [`stats`](Client::stats) shows the connection idle as soon as the
    /// caller has read the body to its end.
    ///
    /// # Errors
    ///
    /// [`Error::pool`] when the URI names no target or no connection could
    /// be had; [`Error::hyper`] when the exchange failed, after the retry
    /// the crate docs describe.
    ///
    /// # Examples
    ///
    /// See [`Client`].
    pub async fn request(&self, req: Request<B>) -> Result<Response<Body>, Error> {
        let deadline = self.deadline();
        let origin = self.shared.origins.of(req.uri());
        self.exchange(origin, req, deadline).await
    }

    /// Sends `req` to `target`: a Unix socket, say, or any target other
    /// than the one the URI names. The URI may then be a path alone.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url: http::Uri = format!("http://{}/", listener.local_addr()?).parse()?;
    /// # tokio::spawn(async move {
    /// #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// #     while let Ok((mut s, _)) = listener.accept().await {
    /// #         tokio::spawn(async move {
    /// #             let mut b = [0; 4096];
    /// #             while let Ok(1..) = s.read(&mut b).await {
    /// #                 let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
    /// #             }
    /// #         });
    /// #     }
    /// # });
    /// # let port = url.port_u16().unwrap();
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
    /// let target = keepalive::Target::new("http", "127.0.0.1", port);
    /// let req = http::Request::get("/").body(Default::default())?;
    /// assert_eq!(client.send(target, req).await?.status(), 200);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, target: Target, req: Request<B>) -> Result<Response<Body>, Error> {
        let deadline = self.deadline();
        let shown = || keepalive::redact_url(&req.uri().to_string());
        let userinfo = req
            .uri()
            .authority()
            .and_then(|a| keepalive_http::split_userinfo(a.as_str()).0);
        let authorization = userinfo
            .map(|u| origin::authorization(u, &shown).map(Box::new))
            .transpose();
        let known = authorization.map(|authorization| Origin {
            target,
            host: HeaderValue::from_static(""),
            authorization,
        });
        self.exchange(known.map(|o| (o, false)), req, deadline).await
    }

    /// When a request started now must end, with its timeout; `None`
    /// without one (or one too long for the clock).
    fn deadline(&self) -> Option<(Instant, Duration)> {
        let timeout = self.shared.timeout?;
        Instant::now().checked_add(timeout).map(|at| (at, timeout))
    }

    /// The request path to `known`, the target with the `Host` header for
    /// it if known. The retry, rare, is a future of its own on the heap,
    /// so that this one holds one attempt's state.
    async fn exchange(
        &self,
        known: Result<(Origin, bool), keepalive::Error>,
        req: Request<B>,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<Response<Body>, Error> {
        let (target, host, mut parts, body) = prepare(known, req)?;
        let conn = self
            .allocate(target.clone(), deadline)
            .await
            .map_err(Error::from_pool)?;
        let http2 = conn.send.is_http2();
        let (body, replay) = match replay::outgoing(body, http2) {
            Ok(outgoing) => outgoing,
            // Rare, and boxed, so that the common future stays small.
            Err(body) => Box::pin(replay::read_whole(body)).await.map_err(Error::body)?,
        };
        let reused = conn.from_cache() != FromCache::Fresh;
        let (lost_race_rule, copy) = copy_if_needed(&parts, replay, http2, reused);
        to_form(&mut parts, &target, host.clone(), http2);
        let exchange = attempt(conn, Request::from_parts(parts, body));
        // A timed exchange is boxed, so that the common untimed one is small.
        let outcome = match deadline {
            None => exchange.await,
            Some(deadline) => Box::pin(within(deadline, exchange)).await?,
        };
        match outcome {
            Ok((response, loan)) => Ok(response.map(|body| Body::new(body, deadline, loan))),
            Err(failure) => {
                let resend = Resend {
                    target,
                    host,
                    lost_race_rule,
                    copy,
                };
                Box::pin(self.again(resend, failure, deadline)).await
            }
        }
    }

    /// A connection to `target`, by the deadline if there is one (the
    /// pool's own timeout still applies: the earlier wins, and the error is
    /// the pool's).
    /// Not an `async fn`: the caller awaits the pool's own future, with
    /// no layer of ours around it.
    fn allocate(&self, target: Target, deadline: Option<(Instant, Duration)>) -> Allocation<Conn<B>> {
        let allocation = self.shared.manager.allocate(target);
        match deadline {
            Some((at, _)) => allocation.timeout_at_most(at.saturating_duration_since(Instant::now())),
            None => allocation,
        }
    }

    /// The retry rule after a first attempt's `failure`: the request hyper
    /// handed back, or else the copy of one whose body the client holds,
    /// on another connection (or, refused, the same one), while the rule
    /// allows, up to `MAX_ATTEMPTS` sends.
    async fn again(
        &self,
        resend: Resend,
        mut failure: Failure<Request<Outgoing<B>>>,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<Response<Body>, Error> {
        for _ in 1..retry::MAX_ATTEMPTS {
            let copy = || {
                let (parts, replay) = resend.copy.as_ref()?;
                Some(Request::from_parts(parts.clone(), Outgoing::from_replay(replay)))
            };
            let (mut parts, body) = failure.retry(resend.lost_race_rule, copy)?.into_parts();
            self.shared.retries.fetch_add(1, Ordering::Relaxed);
            let target = resend.target.clone();
            let conn = self.allocate(target, deadline).await.map_err(Error::from_pool)?;
            let http2 = conn.send.is_http2();
            to_form(&mut parts, &resend.target, resend.host.clone(), http2);
            let req = Request::from_parts(parts, body);
            let outcome = match deadline {
                None => attempt(conn, req).await,
                Some(deadline) => Box::pin(within(deadline, attempt(conn, req))).await?,
            };
            match outcome {
                Ok((response, loan)) => return Ok(response.map(|body| Body::new(body, deadline, loan))),
                Err(again) => failure = again,
            }
        }
        Err(failure.error)
    }
}

impl Client {
    /// A builder for a client with other settings: the pool's, and the
    /// client's own [`timeout`](ClientBuilder::timeout).
    /// `Client::with_builder(b)` is `Client::builder().pool(b).build()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client: keepalive_hyper::Client = keepalive_hyper::Client::builder()
    ///     .timeout(std::time::Duration::from_secs(30))
    ///     .build();
    /// # drop(client);
    /// # }
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// The client, with its pool started.
    ///
    /// # Panics
    ///
    /// As [`keepalive::Builder::build`]: a zero setting, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// See [`ClientBuilder`].
    #[track_caller]
    pub fn build<B>(self) -> Client<B>
    where
        B: SendBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (pool, timeout, version) = self.into_parts();
        Client::start(pool, timeout, version)
    }
}

impl<B> Default for Client<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Same as [`Client::new`].
    #[track_caller]
    fn default() -> Client<B> {
        Client::new()
    }
}

/// Whether HTTP/1.1's lost-race rule applies (an idempotent request
/// without a body), and a copy of the request where a rule may send it
/// again (HTTP/2's refusals, or that rule on a reused connection), taken
/// before our `Host` header goes in: the user's parts are cheaper to copy.
#[allow(clippy::type_complexity)]
fn copy_if_needed(
    parts: &http::request::Parts,
    replay: Option<Replay>,
    http2: bool,
    reused: bool,
) -> (bool, Option<(http::request::Parts, Replay)>) {
    let lost_race_rule = retry::is_idempotent(&parts.method) && replay.as_ref().is_some_and(Replay::is_empty);
    let needed = http2 || lost_race_rule && reused;
    let copy = replay.filter(|_| needed).map(|replay| (parts.clone(), replay));
    (lost_race_rule, copy)
}

/// The request's target, its `Host` header if known, and its parts with
/// the `Authorization` its URI asked for (the request's own header, if it
/// has one, wins).
#[allow(clippy::type_complexity)]
fn prepare<B>(
    known: Result<(Origin, bool), keepalive::Error>,
    req: Request<B>,
) -> Result<(Target, Option<HeaderValue>, http::request::Parts, B), Error> {
    let (origin, host_known) = known.map_err(Error::from_pool)?;
    let (mut parts, body) = req.into_parts();
    if let Some(authorization) = origin.authorization {
        parts.headers.entry(AUTHORIZATION).or_insert(*authorization);
    }
    Ok((origin.target, host_known.then_some(origin.host), parts, body))
}

/// `attempt` by the deadline. A request cut short closes its connection
/// (the attempt's guard), never pools it.
async fn within<T>((at, after): (Instant, Duration), attempt: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout_at(at, attempt)
        .await
        .map_err(|_| Error::timed_out(after, false))
}
