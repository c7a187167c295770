//! [`Resolve`]: name lookup, and the system resolver used by default.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

/// The future a [`Resolve`] implementation returns: the addresses for one
/// host and port.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>>;

/// Name lookup. The manager calls [`Resolve::resolve`] at most once at a
/// time per host and port: concurrent requests for a name that is being
/// looked up wait for that lookup. IP literals never reach the resolver.
///
/// # Examples
///
/// A resolver that maps every name to loopback:
///
/// ```
/// use keepalive::{Resolve, ResolveFuture};
/// use std::net::SocketAddr;
///
/// #[derive(Debug)]
/// struct Loopback;
///
/// impl Resolve for Loopback {
///     fn resolve(&self, _host: &str, port: u16) -> ResolveFuture {
///         Box::pin(async move { Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]) })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = keepalive::Manager::builder().resolver(Loopback).build();
/// # drop(manager);
/// # }
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// Looks up `host`, giving socket addresses with `port`.
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture;
}

/// The operating system's resolver (`getaddrinfo`, so `/etc/hosts` and
/// `localhost` work), run on Tokio's blocking pool so the runtime never
/// blocks. This is the default.
///
/// # Examples
///
/// ```
/// use keepalive::Resolve;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let addrs = keepalive::SystemResolver.resolve("localhost", 80).await?;
/// assert!(addrs.iter().all(|a| a.ip().is_loopback()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    }
}

impl fmt::Debug for SystemResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemResolver")
    }
}
