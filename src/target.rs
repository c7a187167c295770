//! [`Target`]: where to connect, and the connection key pooled sockets are
//! grouped by.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use crate::error::Error;

/// Where to connect: scheme, host and port, plus the final destination when
/// the connection goes through a proxy ([`Target::for_target`]).
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
/// // Through a proxy: a different connection key.
/// let proxied = Target::new("http", "127.0.0.1", 3128).for_target("https", "example.com", 443);
/// assert_ne!(proxied, Target::new("http", "127.0.0.1", 3128));
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
    /// the original's `for_*` triple would equal the target itself, so that
    /// both spellings are one key.
    via: Option<Endpoint>,
    /// The key's hash, computed once so that pool lookups hash one `u64`.
    hash: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Endpoint {
    scheme: Arc<str>,
    host: Arc<str>,
    port: u16,
    /// What the host is, or why the endpoint is unusable.
    kind: Result<HostKind, Arc<str>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum HostKind {
    Literal(IpAddr),
    Name,
}

impl fmt::Display for Endpoint {
    /// `scheme://host:port`, an IPv6 literal in brackets, so that the text
    /// parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Ok(HostKind::Literal(IpAddr::V6(_))) => {
                write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
            }
            _ => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

impl Endpoint {
    fn new(scheme: String, host: String, port: u16) -> Endpoint {
        let scheme = scheme.to_ascii_lowercase();
        let (host, kind) = classify_host(host);
        let kind = if scheme.is_empty() {
            Err("empty scheme".into())
        } else if !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            Err(format!("scheme {scheme:?} has characters a URL scheme cannot have").into())
        } else if port == 0 {
            Err("port 0".into())
        } else {
            kind
        };
        Endpoint {
            scheme: scheme.into(),
            host: host.into(),
            port,
            kind,
        }
    }
}

/// Strips IPv6 brackets, lower-cases names, and says what the host is.
fn classify_host(host: String) -> (String, Result<HostKind, Arc<str>>) {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => (inner.to_owned(), Ok(HostKind::Literal(IpAddr::V6(ip)))),
            Err(_) => (
                host.clone(),
                Err(format!("{host:?} is not an IPv6 literal").into()),
            ),
        };
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return (host, Ok(HostKind::Literal(ip)));
    }
    let name = host.to_ascii_lowercase();
    let kind = check_dns_name(&name).map(|()| HostKind::Name);
    (name, kind)
}

/// RFC 1123 host names: dot-separated labels of 1 to 63 letters, digits and
/// hyphens, not starting or ending with a hyphen, 253 characters at most
/// (one trailing dot allowed). A last label of digits only is refused, as
/// URL parsers do, because resolvers read such names as IPv4 numbers.
fn check_dns_name(name: &str) -> Result<(), Arc<str>> {
    let bad = |why: &str| Err(format!("host {name:?} {why}").into());
    if name.is_empty() {
        return Err("empty host".into());
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.len() > 253 {
        return bad("is longer than 253 characters");
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("has a label that is empty or longer than 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return bad("is neither an IP literal nor a DNS name (RFC 1123)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("has a label that starts or ends with '-'");
        }
    }
    let last = trimmed.rsplit('.').next().unwrap_or(trimmed);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return bad("is not a valid IPv4 literal");
    }
    Ok(())
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
        Target::build(Endpoint::new(scheme.into(), host.into(), port), None)
    }

    /// The original's `for_scheme` / `for_addr` / `for_port`: the final
    /// destination when this connection goes to a proxy. It is part of the
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
        let via = Endpoint::new(scheme.into(), host.into(), port);
        Target::build(self.inner.endpoint.clone(), Some(via))
    }

    fn build(endpoint: Endpoint, via: Option<Endpoint>) -> Target {
        let via = via.filter(|v| *v != endpoint);
        let mut hasher = key_hasher().build_hasher();
        endpoint.hash(&mut hasher);
        via.hash(&mut hasher);
        let hash = hasher.finish();
        Target {
            inner: Arc::new(Inner { endpoint, via, hash }),
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

    /// Checks every part; the error says what was wrong.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let via = self.inner.via.as_ref().map(|v| &v.kind);
        for kind in std::iter::once(&self.inner.endpoint.kind).chain(via) {
            if let Err(reason) = kind {
                return Err(Error::invalid_target(self.to_string(), reason.to_string()));
            }
        }
        Ok(())
    }

    /// The host as an IP address when it is a literal: literals are never
    /// sent to the resolver.
    pub(crate) fn literal(&self) -> Option<IpAddr> {
        match self.inner.endpoint.kind {
            Ok(HostKind::Literal(ip)) => Some(ip),
            _ => None,
        }
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.hash == other.inner.hash
                && self.inner.endpoint == other.inner.endpoint
                && self.inner.via == other.inner.via)
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
    /// target has a different final destination.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.endpoint)?;
        if let Some(via) = &self.inner.via {
            write!(f, " for {via}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

impl FromStr for Target {
    type Err = Error;

    /// Parses `scheme://host[:port][/path…]`. The path, query and any user
    /// information are ignored. Ports default to 80 for `http` and 443 for
    /// `https`; other schemes need an explicit port. The form `Display`
    /// writes for a proxied target, `A for B`, parses as
    /// `A.parse()?.for_target(B's scheme, host, port)`.
    ///
    /// # Errors
    ///
    /// An error with [`Error::is_invalid_target`] when the text is no URL,
    /// has no scheme or host, has no port and no default, or names a bad
    /// host.
    fn from_str(s: &str) -> Result<Target, Error> {
        if let Some((proxy, destination)) = s.split_once(" for ") {
            let via = parse_url(destination)?;
            let target = parse_url(proxy)?.for_target(via.scheme(), via.host(), via.port());
            target.validate()?;
            return Ok(target);
        }
        parse_url(s)
    }
}

/// One `scheme://host[:port][/path…]`.
fn parse_url(s: &str) -> Result<Target, Error> {
    let bad = |reason: &str| Error::invalid_target(s.to_owned(), reason.to_owned());
    if !s.contains("://") {
        return Err(bad("not a URL of the form scheme://host[:port]"));
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    // The port as written: `Uri::port` hides ports that overflow u16.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = host_port.rsplit_once(']').map_or(host_port, |(_, rest)| rest);
    let explicit = match after_host.rsplit_once(':') {
        Some((_, digits)) => Some(
            digits
                .parse::<u16>()
                .map_err(|_| bad("port is not a number from 0 to 65535"))?,
        ),
        None => None,
    };
    let port = match (explicit, scheme.to_ascii_lowercase().as_str()) {
        (Some(port), _) => port,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, _) => return Err(bad("no port, and the scheme has no default port")),
    };
    let target = Target::new(scheme, host, port);
    target.validate()?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_spellings_are_one_key() {
        let a = Target::new("HTTP", "[::1]", 80);
        let b: Target = "http://[::1]/x".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.inner.hash, b.inner.hash);
        let same_via = Target::new("http", "::1", 80).for_target("http", "::1", 80);
        assert_eq!(a, same_via);
    }

    #[test]
    fn display_parses_back_including_proxied_ipv6() {
        for target in [
            Target::new("http", "::1", 8080),
            Target::new("http", "127.0.0.1", 3128).for_target("https", "::1", 443),
            Target::new("http", "[::1]", 3128).for_target("https", "[2001:db8::1]", 8443),
            Target::new("https", "proxy.example", 443).for_target("http", "origin.example", 80),
        ] {
            let text = target.to_string();
            let again: Target = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(again, target, "{text}");
        }
        assert_eq!(
            Target::new("http", "127.0.0.1", 1)
                .for_target("http", "::1", 2)
                .to_string(),
            "http://127.0.0.1:1 for http://[::1]:2"
        );
        assert!("http://a.example:1 for nonsense".parse::<Target>().is_err());
    }

    #[test]
    fn bad_parts_are_reported_not_panicked() {
        for (t, needle) in [
            (Target::new("", "a.example", 1), "empty scheme"),
            (Target::new("http", "", 1), "empty host"),
            (Target::new("http", "a.example", 0), "port 0"),
            (Target::new("http", "a_b.example", 1), "RFC 1123"),
            (Target::new("http", "-a.example", 1), "'-'"),
            (Target::new("http", "[1.2.3.4]", 1), "IPv6"),
            (Target::new("http", "1.2.3", 1), "IPv4"),
            (
                Target::new("http", "a.example", 1).for_target("x", "", 2),
                "empty host",
            ),
        ] {
            let err = t.validate().unwrap_err();
            assert!(err.is_invalid_target(), "{t:?}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn urls_parse_with_default_ports() {
        let t: Target = "https://Example.com/path?q".parse().unwrap();
        assert_eq!((t.scheme(), t.host(), t.port()), ("https", "example.com", 443));
        let t: Target = "postgres://db.internal:5432".parse().unwrap();
        assert_eq!(t.port(), 5432);
        for bad in [
            "ftp//x",
            "ftp://x",
            "http://",
            "http://a b",
            "://x:1",
            "http://[::1:80",
            "http://a:99999",
            "http://a:0",
        ] {
            let err = bad.parse::<Target>().unwrap_err();
            assert!(err.is_invalid_target(), "{bad}: {err}");
        }
    }

    #[test]
    fn display_brackets_ipv6() {
        let t = Target::new("http", "::1", 8080).for_target("https", "a.example", 443);
        assert_eq!(t.to_string(), "http://[::1]:8080 for https://a.example:443");
    }
}
