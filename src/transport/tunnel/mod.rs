//! The proxy step, between the TCP connect and TLS to the target: a
//! tunnel through an HTTP proxy (`CONNECT`, `connect.rs`), over TLS to an
//! HTTPS proxy, or through a SOCKS5 proxy (`socks5.rs`).
//!
//! Every failure here is an [`Error::Proxy`]; while the step runs, the
//! connect's [`Progress`] says so, so that a timeout names `"proxy"`.

mod connect;
mod socks5;

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::{Dial, Progress};
use crate::error::Error;
use crate::proxy::{Kind, Proxy};
use crate::target::Target;
#[cfg(feature = "tracing")]
use crate::trace::event;

/// The size a proxy's reply head may reach; a longer one is refused (as
/// curl refuses a CONNECT reply over 100 KiB, with a tighter bound here:
/// a tunnel's reply carries no content).
pub(crate) const MAX_REPLY_HEAD: usize = 16 * 1024;

/// Opens the tunnel to `dial.target()` through its proxy, on `tcp`, the
/// socket to the proxy. TLS to the target, if any, is the dialer's next
/// step.
pub(super) async fn open(dial: &Dial<'_>, proxy: &Proxy, tcp: TcpStream) -> Result<Tunnel, Error> {
    #[cfg(feature = "tracing")]
    let (target, started) = (dial.target, std::time::Instant::now());
    let tunnel = {
        let _step = InProxy::enter(dial.progress);
        through(dial, proxy, tcp).await
    };
    #[cfg(feature = "tracing")]
    match &tunnel {
        Ok(_) => {
            let elapsed_us = started.elapsed().as_micros() as u64;
            event!(DEBUG, target = %target, proxy = proxy.scheme(), elapsed_us, "proxy tunnel opened");
        }
        Err(Error::Proxy { status, reason, .. }) => {
            event!(DEBUG, target = %target, status = status.unwrap_or(0), reason = %reason, "proxy step failed");
        }
        Err(_) => {}
    }
    tunnel
}

/// An open tunnel: plain TCP to the proxy, or TLS to it.
pub(super) enum Tunnel {
    Tcp(TcpStream),
    #[cfg(keepalive_tls)]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The proxy's own step, by kind.
async fn through(dial: &Dial<'_>, proxy: &Proxy, mut tcp: TcpStream) -> Result<Tunnel, Error> {
    let target = dial.target;
    match proxy.kind() {
        Kind::Http => {
            connect::over_tcp(&mut tcp, proxy, target).await?;
            Ok(Tunnel::Tcp(tcp))
        }
        #[cfg(keepalive_tls)]
        Kind::Https => {
            let tls = dial.options.tls_for_proxy(target)?;
            let endpoint = proxy.endpoint();
            let literal = match endpoint.kind {
                Ok(crate::target::endpoint::HostKind::Literal(ip)) => Some(ip),
                _ => None,
            };
            let mut outer = super::tls::to_server(tls, &endpoint.host, literal, tcp)
                .await
                .map_err(|(reason, cause)| {
                    Failure::new(format!("TLS to the proxy failed: {reason}"))
                        .caused_by(cause)
                        .into_error(target, proxy)
                })?;
            connect::over_stream(&mut outer, proxy, target).await?;
            Ok(Tunnel::Tls(Box::new(outer)))
        }
        #[cfg(not(keepalive_tls))]
        Kind::Https => {
            Err(Failure::new("this build has no TLS for an HTTPS proxy").into_error(target, proxy))
        }
        Kind::Socks5 { remote_dns } => {
            socks5::handshake(&mut tcp, proxy, target, remote_dns, &*dial.options.resolver).await?;
            Ok(Tunnel::Tcp(tcp))
        }
    }
}

/// Marks the connect as in the proxy step until dropped (also when the
/// step's future is dropped half-way).
struct InProxy<'a>(&'a Progress);

impl<'a> InProxy<'a> {
    fn enter(progress: &'a Progress) -> InProxy<'a> {
        progress.set_in_proxy(true);
        InProxy(progress)
    }
}

impl Drop for InProxy<'_> {
    fn drop(&mut self) {
        self.0.set_in_proxy(false);
    }
}

/// A proxy step's failure before it is tied to its target: the words, the
/// proxy's status, the cause.
#[derive(Debug)]
pub(crate) struct Failure {
    reason: String,
    status: Option<u16>,
    source: Option<io::Error>,
}

impl Failure {
    pub(crate) fn new(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            status: None,
            source: None,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Failure {
        self.status = Some(status);
        self
    }

    pub(crate) fn caused_by(mut self, source: io::Error) -> Failure {
        self.source = Some(source);
        self
    }

    /// A failed read or write: the proxy closed, reset, or the socket
    /// failed.
    pub(crate) fn io(doing: &str, e: io::Error) -> Failure {
        let reason = match e.kind() {
            io::ErrorKind::UnexpectedEof => format!("the proxy closed the connection while {doing}"),
            _ => format!("{doing} failed"),
        };
        Failure::new(reason).caused_by(e)
    }

    /// The [`Error::Proxy`] for `target`, with anything the proxy echoed
    /// of the credentials redacted.
    pub(crate) fn into_error(self, target: &Target, proxy: &Proxy) -> Error {
        Error::Proxy {
            target: target.to_string(),
            status: self.status,
            reason: proxy.redact(&self.reason),
            source: self.source.map(Arc::new),
        }
    }
}
