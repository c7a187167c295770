//! [`Target`]: where to connect, and the connection key pooled sockets are
//! grouped by.

pub(crate) mod endpoint;
mod parse;

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::error::Error;
use crate::proxy::Proxy;
pub(crate) use endpoint::{Endpoint, HostKind};

/// Where to connect: scheme, host and port, plus the final destination when
/// the caller talks to a forward proxy itself ([`Target::for_target`]), or
/// the [`Proxy`] the pool tunnels through ([`Target::via`]).
///
/// Two targets share pooled sockets only if they are equal: the connection
/// key is the whole value. Cloning is one reference-count increment, so
/// passing a `Target` by value to [`Manager::allocate`] on every call is
/// cheap.
///
/// Hosts are normalised when the target is built: IPv6 literals lose their
/// brackets (`[::1]` and `::1` are the same target) and names are
/// lower-cased, since DNS names are case-insensitive. Scheme `https` means
/// TLS; every other scheme is plain TCP.
///
/// A `Target` can hold bad input (an empty host, port 0, …); the error is
/// reported when the target is allocated, as [`Error::is_invalid_target`].
///
/// # Examples
///
/// ```
/// use keepalive::Target;
///
/// let direct = Target::new("http", "[::1]", 8080);
/// assert_eq!(direct.host(), "::1");
/// assert_eq!(direct, "http://[::1]:8080/index.html".parse()?);
///
/// // To a forward proxy for a destination: a different connection key.
/// let proxied = Target::new("http", "127.0.0.1", 3128).for_target("https", "example.com", 443);
/// assert_ne!(proxied, Target::new("http", "127.0.0.1", 3128));
///
/// // Through a tunnel the pool opens: a different key again.
/// let tunnelled = Target::new("https", "example.com", 443).via(keepalive::Proxy::http("127.0.0.1", 3128));
/// assert_eq!(tunnelled.host(), "example.com");
/// # Ok::<(), keepalive::Error>(())
/// ```
///
/// [`Manager::allocate`]: crate::Manager::allocate
#[derive(Clone)]
pub struct Target {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    /// The final destination when it differs from `endpoint`; `None` when
    /// the `for_target` triple would equal the target itself, so that
    /// both spellings are one key.
    destination: Option<Endpoint>,
    /// The proxy the target is reached through ([`Target::via`]).
    proxy: Option<Proxy>,
    /// The key's hash, computed once so that pool lookups hash one `u64`.
    hash: u64,
}

/// One random hasher per process, so that hostile host names cannot be
/// chosen to collide in the pool's map.
fn key_hasher() -> &'static std::collections::hash_map::RandomState {
    static HASHER: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    HASHER.get_or_init(Default::default)
}

impl Target {
    /// A target from its parts. The host may be a name, an IPv4 literal, or
    /// an IPv6 literal with or without brackets.
    ///
    /// This never fails: bad parts are reported by [`Manager::allocate`] as
    /// an error with [`Error::is_invalid_target`].
    ///
    /// # Examples
    ///
    /// ```
    /// let t = keepalive::Target::new("HTTPS", "Example.COM", 443);
    /// assert_eq!((t.scheme(), t.host(), t.port()), ("https", "example.com", 443));
    /// ```
    ///
    /// [`Manager::allocate`]: crate::Manager::allocate
    pub fn new(scheme: impl Into<String>, host: impl Into<String>, port: u16) -> Target {
        Target::build(Endpoint::new(scheme.into(), host.into(), port), None, None)
    }

    /// A Unix domain socket at `path`: scheme `unix`, [`host`](Target::host)
    /// the path, [`port`](Target::port) 0. `"unix:///run/app.sock"` parses
    /// to the same target. The pool's [`Dialer`](crate::Dialer) connects
    /// to it with no lookup; everything else (limits, reuse, the checkout
    /// check and the idle watch, close reasons, learning) is as for TCP.
    ///
    /// A path that is not UTF-8 is reported by
    /// [`Manager::allocate`](crate::Manager::allocate) as an invalid
    /// target.
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::Target;
    /// let t = Target::unix("/run/app.sock");
    /// assert_eq!((t.scheme(), t.host(), t.port()), ("unix", "/run/app.sock", 0));
    /// assert_eq!(t, "unix:///run/app.sock".parse()?);
    /// assert_eq!(t.to_string(), "unix:///run/app.sock");
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    pub fn unix(path: impl AsRef<Path>) -> Target {
        let path = path.as_ref();
        let endpoint = match path.to_str() {
            Some(text) => Endpoint::unix(text.to_owned()),
            None => Endpoint {
                kind: Err("socket path is not UTF-8".into()),
                ..Endpoint::unix(path.to_string_lossy().into_owned())
            },
        };
        Target::build(endpoint, None, None)
    }

    /// The final destination when this connection goes to a forward proxy
    /// chosen by the caller (no tunnel: see [`Target::via`] for those). It is part of the
    /// connection key, so a proxy connection made for one destination is
    /// never reused for another.
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::Target;
    /// let a = Target::new("http", "127.0.0.1", 3128).for_target("http", "a.example", 80);
    /// let b = Target::new("http", "127.0.0.1", 3128).for_target("http", "b.example", 80);
    /// assert_ne!(a, b);
    /// assert_eq!(a.host(), "127.0.0.1");
    /// ```
    pub fn for_target(self, scheme: impl Into<String>, host: impl Into<String>, port: u16) -> Target {
        let destination = Endpoint::new(scheme.into(), host.into(), port);
        Target::build(
            self.inner.endpoint.clone(),
            Some(destination),
            self.inner.proxy.clone(),
        )
    }

    /// This target reached through `proxy`: the pool connects to the
    /// proxy (resolving its name and racing its addresses like any host's),
    /// opens a tunnel to this target's host and port (`CONNECT`, or a
    /// SOCKS5 CONNECT), and then speaks to the target as if connected
    /// directly: TLS for `https`, with the target's host as the server
    /// name. The pooled connection is the tunnel.
    ///
    /// The proxy with its credentials is part of the key, so a tunnel is
    /// never handed to another destination, proxy or set of credentials.
    /// The target's name is resolved by the proxy, except for a
    /// `socks5://` proxy, for which the pool resolves it.
    ///
    /// The tunnel is the [`Dialer`](crate::Dialer)'s: a custom
    /// [`Transport`](crate::Transport) is handed the target with its
    /// proxy, and the proxy's addresses.
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::{Proxy, Target};
    /// let target = Target::new("https", "example.com", 443).via(Proxy::http("127.0.0.1", 3128));
    /// assert_eq!(target.to_string(), "https://example.com:443 via http://127.0.0.1:3128");
    /// assert_eq!(target.host(), "example.com");
    /// ```
    pub fn via(self, proxy: Proxy) -> Target {
        Target::build(
            self.inner.endpoint.clone(),
            self.inner.destination.clone(),
            Some(proxy),
        )
    }

    /// The proxy this target is reached through, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::{Proxy, Target};
    /// assert_eq!(Target::new("http", "a.example", 80).proxy(), None);
    /// let proxy = Proxy::socks5("127.0.0.1", 1080);
    /// assert_eq!(Target::new("http", "a.example", 80).via(proxy.clone()).proxy(), Some(&proxy));
    /// ```
    pub fn proxy(&self) -> Option<&Proxy> {
        self.inner.proxy.as_ref()
    }

    fn build(endpoint: Endpoint, destination: Option<Endpoint>, proxy: Option<Proxy>) -> Target {
        let destination = destination.filter(|v| *v != endpoint);
        let mut hasher = key_hasher().build_hasher();
        endpoint.hash(&mut hasher);
        destination.hash(&mut hasher);
        proxy.hash(&mut hasher);
        let hash = hasher.finish();
        Target {
            inner: Arc::new(Inner {
                endpoint,
                destination,
                proxy,
                hash,
            }),
        }
    }

    /// The scheme, lower-cased.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Target::new("http", "localhost", 80).scheme(), "http");
    /// ```
    pub fn scheme(&self) -> &str {
        &self.inner.endpoint.scheme
    }

    /// The host: a lower-cased name, or an IP literal without brackets.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Target::new("http", "[::1]", 80).host(), "::1");
    /// ```
    pub fn host(&self) -> &str {
        &self.inner.endpoint.host
    }

    /// The port.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Target::new("http", "localhost", 8080).port(), 8080);
    /// ```
    pub fn port(&self) -> u16 {
        self.inner.endpoint.port
    }

    /// True when the scheme asks for TLS (`https`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(keepalive::Target::new("https", "localhost", 443).is_tls());
    /// ```
    pub fn is_tls(&self) -> bool {
        self.scheme() == "https"
    }

    /// True for a Unix domain socket target (scheme `unix`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(keepalive::Target::unix("/run/app.sock").is_unix());
    /// ```
    pub fn is_unix(&self) -> bool {
        self.inner.endpoint.kind == Ok(HostKind::Path)
    }

    /// Checks every part; the error says what was wrong.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let destination = self.inner.destination.as_ref().map(|v| &v.kind);
        for kind in std::iter::once(&self.inner.endpoint.kind).chain(destination) {
            if let Err(reason) = kind {
                return Err(Error::invalid_target(self.to_string(), reason.to_string()));
            }
        }
        if let Some(proxy) = &self.inner.proxy {
            if self.is_unix() {
                let reason = "a Unix socket cannot be reached through a proxy".to_owned();
                return Err(Error::invalid_target(self.to_string(), reason));
            }
            if let Some(reason) = proxy.problem() {
                return Err(Error::invalid_target(self.to_string(), reason));
            }
        }
        Ok(())
    }

    /// The host as an IP address when it is a literal: literals are never
    /// sent to the resolver.
    pub(crate) fn literal(&self) -> Option<IpAddr> {
        literal(&self.inner.endpoint)
    }

    /// Where the socket goes: the proxy's endpoint for a target reached
    /// through one, else the target's own. Its host is what the pool looks
    /// up; the target's own is then the proxy's to resolve.
    pub(crate) fn dial_endpoint(&self) -> &Endpoint {
        match &self.inner.proxy {
            Some(proxy) => proxy.endpoint(),
            None => &self.inner.endpoint,
        }
    }

    /// [`Target::dial_endpoint`]'s host as an IP address when it is a
    /// literal.
    pub(crate) fn dial_literal(&self) -> Option<IpAddr> {
        literal(self.dial_endpoint())
    }
}

fn literal(endpoint: &Endpoint) -> Option<IpAddr> {
    match endpoint.kind {
        Ok(HostKind::Literal(ip)) => Some(ip),
        _ => None,
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.hash == other.inner.hash
                && self.inner.endpoint == other.inner.endpoint
                && self.inner.destination == other.inner.destination
                && self.inner.proxy == other.inner.proxy)
    }
}

impl Eq for Target {}

impl Hash for Target {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.inner.hash);
    }
}

/// A map keyed by [`Target`] that uses the hash each target computed once,
/// with a per-process random key, instead of hashing it again.
pub(crate) type TargetMap<V> = std::collections::HashMap<Target, V, std::hash::BuildHasherDefault<Prehashed>>;

/// The hasher of [`TargetMap`]: passes `Target`'s precomputed hash through.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    /// Only `write_u64` is used by `Target`; other input is still mixed in
    /// rather than ignored.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

impl fmt::Display for Target {
    /// `scheme://host:port`, with `for scheme://host:port` appended when the
    /// target has a different final destination, and `via` its proxy
    /// (with `***` for a password) when it has one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.endpoint)?;
        if let Some(destination) = &self.inner.destination {
            write!(f, " for {destination}")?;
        }
        if let Some(proxy) = &self.inner.proxy {
            write!(f, " via {proxy}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

#[cfg(test)]
mod tests;
