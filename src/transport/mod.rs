//! The transport: how the pool gets a stream to a target. [`Transport`] is
//! the extension point; [`Dialer`], the default, is the pool's own dialing:
//! shared name lookups, Happy Eyeballs over TCP with the builder's TCP
//! options, TLS for `https`, and Unix domain sockets for `unix` targets.
//!
//! # Which anchors this follows
//!
//! hyper-util's connector is a `tower::Service<Uri>`: given where to go,
//! return a stream. [`Transport::connect`] is that, as one `async fn` (no
//! `poll_ready`: the pool's limits are the back-pressure), given the
//! [`Target`] and the request's remaining time rather than a URI. Unlike a
//! connector, a transport does not pick the pooled object's type: the
//! [`Protocol`](crate::Protocol) step on top does.

mod dialer;
mod happy_eyeballs;
mod liveness;
mod stream;
mod tcp;
#[cfg(keepalive_tls)]
pub(crate) mod tls;
mod tunnel;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use dialer::DialOptions;
pub use dialer::Dialer;
pub use stream::Stream;
pub(crate) use tcp::TcpOptions;

/// TLS to an `https` target inside the tunnel, which is TLS to an HTTPS
/// proxy: what [`Stream`] holds then, and what the liveness checks read.
#[cfg(keepalive_tls)]
pub(crate) type TlsInTls =
    tokio_rustls::client::TlsStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

use crate::deadline::Deadline;
use crate::target::Target;

/// Dials a target: the pool's connect step, replaceable.
///
/// The pool calls [`connect`](Transport::connect) when a request has room
/// to open a connection; the call runs inside the request's timeout and is
/// aborted (the future dropped) when the request is cancelled or times out.
/// An error fails the request with function `"connect"` and the error as
/// its source.
///
/// # Examples
///
/// A dialer that reaches every target through one local relay port:
///
/// ```
/// use keepalive::{Dial, Transport};
/// use tokio::net::TcpStream;
///
/// #[derive(Debug)]
/// struct Relay(std::net::SocketAddr);
///
/// impl Transport for Relay {
///     type Stream = TcpStream;
///
///     async fn connect(&self, _dial: Dial<'_>) -> std::io::Result<TcpStream> {
///         TcpStream::connect(self.0).await
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let manager = keepalive::Manager::builder()
///     .transport(Relay(listener.local_addr()?))
///     .build();
/// let conn = manager.allocate(keepalive::Target::new("tcp", "anywhere.example", 1)).await?;
/// # drop(conn);
/// # Ok(())
/// # }
/// ```
///
/// With [`Plain`](crate::Plain) as the protocol (the default) the stream itself is
/// pooled, so it must be [`Pooled`](crate::Pooled); Tokio's `TcpStream`
/// and `UnixStream` are.
pub trait Transport: Send + Sync + 'static {
    /// The stream it makes.
    type Stream: Send + 'static;

    /// Whether the pool looks `target`'s host up first (shared by every
    /// request waiting for the same name, kept for `dns_ttl`) and passes
    /// the addresses in [`Dial::addrs`]. Defaults to `false`: the
    /// transport finds its own way.
    fn needs_addresses(&self, target: &Target) -> bool {
        let _ = target;
        false
    }

    /// Opens a stream to `dial.target()`.
    fn connect(&self, dial: Dial<'_>) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// What a [`Transport`] is asked to connect to.
///
/// # Examples
///
/// ```
/// use keepalive::Dial;
///
/// fn describe(dial: &Dial<'_>) -> String {
///     format!("{} within {:?}", dial.target(), dial.remaining())
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Dial<'a> {
    pub(crate) target: &'a Target,
    pub(crate) addrs: &'a [SocketAddr],
    pub(crate) deadline: Deadline,
    pub(crate) options: &'a DialOptions,
    pub(crate) progress: &'a Progress,
}

/// Where a connect is, for the error of a timeout that stops it: set by
/// the [`Dialer`] around a proxy's tunnel step; and what the dialer tells
/// the pool of the socket it made.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    in_proxy: AtomicBool,
    /// The address the pool's own dialer connected to (a proxy's, for a
    /// target via one), for `refresh_dns`.
    dialed: std::sync::OnceLock<SocketAddr>,
    /// Set by the pool when it lends the dialer's streams themselves: the
    /// dialer then keeps a second descriptor of the socket, with which
    /// `drain` shuts it down under its user at the deadline.
    wants_handle: AtomicBool,
    handle: std::sync::Mutex<Option<std::os::fd::OwnedFd>>,
}

impl Progress {
    /// Marks the start (`true`) or the end of the proxy step.
    pub(crate) fn set_in_proxy(&self, on: bool) {
        self.in_proxy.store(on, Ordering::Relaxed);
    }

    /// Whether the proxy step is running.
    pub(crate) fn in_proxy(&self) -> bool {
        self.in_proxy.load(Ordering::Relaxed)
    }

    /// Notes the address the connect reached.
    pub(crate) fn set_dialed(&self, addr: SocketAddr) {
        let _ = self.dialed.set(addr);
    }

    /// The address the connect reached, if the pool's dialer noted it.
    pub(crate) fn dialed(&self) -> Option<SocketAddr> {
        self.dialed.get().copied()
    }

    /// Asks the dialer for a second descriptor of the socket it makes.
    pub(crate) fn want_handle(&self) {
        self.wants_handle.store(true, Ordering::Relaxed);
    }

    /// Keeps a second descriptor of `socket`, if the pool asked for one
    /// (failing to make one only means the socket cannot be cut).
    pub(crate) fn keep_handle(&self, socket: &impl std::os::fd::AsFd) {
        if self.wants_handle.load(Ordering::Relaxed) {
            *crate::lock::lock(&self.handle) = socket.as_fd().try_clone_to_owned().ok();
        }
    }

    /// The second descriptor the dialer kept, if any.
    pub(crate) fn take_handle(&self) -> Option<std::os::fd::OwnedFd> {
        crate::lock::lock(&self.handle).take()
    }
}

impl Dial<'_> {
    /// The target of the request.
    ///
    /// # Examples
    ///
    /// See [`Dial`].
    pub fn target(&self) -> &Target {
        self.target
    }

    /// The addresses the pool resolved for the target, in order of
    /// preference, when [`Transport::needs_addresses`] said so (or the
    /// host is an IP literal); empty otherwise.
    ///
    /// # Examples
    ///
    /// See [`Dial`].
    pub fn addrs(&self) -> &[SocketAddr] {
        self.addrs
    }

    /// The time the request has left; `None` when it has no deadline. The
    /// pool enforces it anyway; a transport may pass it to a system of its
    /// own.
    ///
    /// # Examples
    ///
    /// See [`Dial`].
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .instant()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}
