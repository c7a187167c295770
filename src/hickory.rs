//! [`HickoryResolver`]: DNS straight from a name server of your choice, with
//! hickory-resolver's cache, which honours each record's TTL (feature
//! `hickory`).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::resolver::{Resolve, ResolveFuture};

/// A [`Resolve`] built on [hickory-resolver](https://docs.rs/hickory-resolver).
///
/// Unlike the [`SystemResolver`](crate::SystemResolver), it speaks DNS itself:
/// it can be pointed at any name server (a local one on a non-standard
/// port, say), and it caches answers for exactly as long as their records'
/// TTLs allow. An `NXDOMAIN` answer is an error of kind `NotFound`; an
/// answer with no address fails the allocation with "… has no address".
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let dns = keepalive::HickoryResolver::with_name_server("127.0.0.1:5353".parse().unwrap())?;
/// let manager = keepalive::Manager::builder().resolver(dns).build();
/// # drop(manager);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// Queries only the name server at `addr`: over UDP, and over TCP when
    /// an answer is truncated.
    ///
    /// # Errors
    ///
    /// When hickory cannot build the resolver.
    ///
    /// # Examples
    ///
    /// ```
    /// let dns = keepalive::HickoryResolver::with_name_server("127.0.0.1:53".parse().unwrap());
    /// assert!(dns.is_ok());
    /// ```
    pub fn with_name_server(addr: SocketAddr) -> io::Result<HickoryResolver> {
        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
            .into_iter()
            .map(|mut c| {
                c.port = addr.port();
                c
            })
            .collect();
        let server = NameServerConfig::new(addr.ip(), true, connections);
        let config = ResolverConfig::from_name_servers(vec![server]);
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map_err(io::Error::other)?;
        Ok(HickoryResolver { inner })
    }

    /// Uses the system's name servers (`/etc/resolv.conf` on Unix).
    ///
    /// # Errors
    ///
    /// When the system configuration cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let dns = keepalive::HickoryResolver::from_system_conf()?;
    /// # drop(dns);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_system_conf() -> io::Result<HickoryResolver> {
        let inner = TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map_err(io::Error::other)?;
        Ok(HickoryResolver { inner })
    }

    /// Wraps a resolver built with hickory's own builder, for every option
    /// hickory has (DNS over TLS, search domains, cache size…).
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::hickory_resolver::{config::ResolverConfig, net::runtime::TokioRuntimeProvider, TokioResolver};
    /// let inner = TokioResolver::builder_with_config(ResolverConfig::default(), TokioRuntimeProvider::default()).build()?;
    /// let dns = keepalive::HickoryResolver::from_resolver(inner);
    /// # drop(dns);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_resolver(inner: TokioResolver) -> HickoryResolver {
        HickoryResolver { inner }
    }
}

impl Resolve for HickoryResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        let (inner, host) = (self.inner.clone(), host.to_owned());
        Box::pin(async move {
            match inner.lookup_ip(host.as_str()).await {
                Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                Err(e) if e.is_nx_domain() => Err(io::Error::new(io::ErrorKind::NotFound, e)),
                Err(e) if e.is_no_records_found() => Ok(Vec::new()),
                Err(e) => Err(io::Error::other(e)),
            }
        })
    }
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver").finish_non_exhaustive()
    }
}
