//! [`Dialer`]: the pool's own transport.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};

use super::happy_eyeballs::{self, Plan};
use super::tcp::TcpOptions;
use super::tunnel::Tunnel;
use super::{Dial, Stream, Transport};
use crate::error::Error;
use crate::resolver::Resolve;
use crate::target::Target;

/// The pool's own transport, used unless the builder is given another:
/// for `unix` targets a Unix domain socket at the path; for the others TCP
/// to the addresses the pool resolved (Happy Eyeballs between them, the
/// builder's bind address and TCP options on every socket), for a target
/// [`via`](crate::Target::via) a proxy the tunnel through it, and a TLS
/// handshake for `https`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // The same manager as `Manager::new()`.
/// let manager: keepalive::Manager<keepalive::Plain, keepalive::Dialer> =
///     keepalive::Manager::builder().transport(keepalive::Dialer).build();
/// # drop(manager);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Dialer;

/// The builder's settings for [`Dialer`].
#[derive(Clone)]
pub(crate) struct DialOptions {
    pub(crate) bind: Option<IpAddr>,
    pub(crate) happy_eyeballs_delay: Duration,
    pub(crate) tcp: TcpOptions,
    /// `None`: [`crate::transport::tls`]'s default, built on first use.
    #[cfg(keepalive_tls)]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// Roots trusted as well as the default ones
    /// (`Builder::add_root_certificate`), folded into `tls` as the manager
    /// is built unless a configuration of the user's is there.
    #[cfg(keepalive_tls)]
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Why `extra_roots` could not be used: every TLS handshake fails with it.
    #[cfg(keepalive_tls)]
    pub(crate) tls_failure: Option<String>,
    /// ALPN protocols offered to `https` targets (`Builder::alpn_protocols`),
    /// unless the configuration names its own.
    #[cfg(keepalive_tls)]
    pub(crate) alpn: Vec<Vec<u8>>,
    /// The target's configuration when it differs from `tls` (it offers
    /// `alpn`; `tls`, for proxies, then offers `http/1.1`).
    #[cfg(keepalive_tls)]
    pub(crate) tls_target: Option<Arc<rustls::ClientConfig>>,
    /// The builder's resolver, for a `socks5://` proxy's destination.
    pub(crate) resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for DialOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialOptions")
            .field("bind", &self.bind)
            .field("happy_eyeballs_delay", &self.happy_eyeballs_delay)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

#[cfg(keepalive_tls)]
impl DialOptions {
    /// Folds the added roots and the ALPN offer into the configurations,
    /// once, as the manager is built; a configuration of the user's wins
    /// over the roots, and one that names ALPN protocols over the offer.
    pub(crate) fn settle_tls(&mut self) {
        if self.tls.is_none() && !self.extra_roots.is_empty() {
            match super::tls::with_extra_roots(&self.extra_roots) {
                Ok(config) => self.tls = Some(config),
                Err(reason) => self.tls_failure = Some(reason),
            }
        }
        if self.alpn.is_empty() {
            return;
        }
        let base = self.tls.clone().unwrap_or_else(super::tls::default_config);
        if base.alpn_protocols.is_empty() {
            self.tls_target = Some(super::tls::offering(&base, self.alpn.clone()));
            self.tls = Some(super::tls::offering(&base, vec![b"http/1.1".to_vec()]));
        }
    }

    /// The configuration for a handshake with `target` itself.
    ///
    /// # Errors
    ///
    /// `Error::Tls` when an added root did not parse.
    pub(crate) fn tls_for(&self, target: &Target) -> Result<Arc<rustls::ClientConfig>, Error> {
        match &self.tls_target {
            Some(config) if self.tls_failure.is_none() => Ok(config.clone()),
            _ => self.tls_for_proxy(target),
        }
    }

    /// The configuration for a handshake with the `https` proxy on the way
    /// to `target`: no ALPN offer of the target's.
    ///
    /// # Errors
    ///
    /// `Error::Tls` when an added root did not parse.
    pub(crate) fn tls_for_proxy(&self, target: &Target) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(reason) = &self.tls_failure {
            return Err(Error::Tls {
                target: target.to_string(),
                reason: reason.clone(),
                source: None,
            });
        }
        Ok(self.tls.clone().unwrap_or_else(super::tls::default_config))
    }
}

#[cfg(not(keepalive_tls))]
impl DialOptions {
    /// Without TLS there are no roots to fold in.
    pub(crate) fn settle_tls(&mut self) {}
}

impl Transport for Dialer {
    type Stream = Stream;

    fn needs_addresses(&self, target: &Target) -> bool {
        !target.is_unix()
    }

    async fn connect(&self, dial: Dial<'_>) -> io::Result<Stream> {
        let target = dial.target;
        if target.is_unix() {
            // The pool makes the OS error an `Error::Connect` for the target.
            let unix = UnixStream::connect(target.host()).await?;
            dial.progress.keep_handle(&unix);
            return Ok(Stream::unix(unix));
        }
        let plan = Plan {
            bind: dial.options.bind,
            delay: dial.options.happy_eyeballs_delay,
            tcp: dial.options.tcp,
        };
        // Through a proxy, `dial.addrs` are the proxy's.
        let tcp = happy_eyeballs::connect_first(target, dial.addrs, plan)
            .await
            .map_err(in_io)?;
        if let Ok(peer) = tcp.peer_addr() {
            dial.progress.set_dialed(peer);
        }
        dial.progress.keep_handle(&tcp);
        let Some(proxy) = target.proxy() else {
            return secure(dial.options, target, tcp).await.map_err(in_io);
        };
        match super::tunnel::open(&dial, proxy, tcp).await.map_err(in_io)? {
            Tunnel::Tcp(tcp) => secure(dial.options, target, tcp).await.map_err(in_io),
            #[cfg(keepalive_tls)]
            Tunnel::Tls(outer) if target.is_tls() => {
                let tls = dial.options.tls_for(target).map_err(in_io)?;
                let inner = super::tls::handshake(tls, target, *outer).await.map_err(in_io)?;
                Ok(Stream::tls_in_tls(inner))
            }
            #[cfg(keepalive_tls)]
            Tunnel::Tls(outer) => Ok(Stream::tls(*outer)),
        }
    }
}

/// A complete [`Error`] carried through `io::Error`, which the pool takes
/// back out as it is (see `Error::from_transport`).
fn in_io(error: Error) -> io::Error {
    io::Error::other(error)
}

/// TLS over the socket for `https` targets; plain TCP for the others.
#[cfg(keepalive_tls)]
async fn secure(options: &DialOptions, target: &Target, tcp: TcpStream) -> Result<Stream, Error> {
    if !target.is_tls() {
        return Ok(Stream::tcp(tcp));
    }
    let tls = options.tls_for(target)?;
    let stream = super::tls::handshake(tls, target, tcp).await?;
    Ok(Stream::tls(stream))
}

/// Plain TCP: `allocate` refuses `https` targets without the `tls` feature.
#[cfg(not(keepalive_tls))]
async fn secure(_: &DialOptions, _: &Target, tcp: TcpStream) -> Result<Stream, Error> {
    Ok(Stream::tcp(tcp))
}
