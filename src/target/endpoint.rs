//! [`Endpoint`]: one `scheme://host:port` (a target's own, its final
//! destination, or a proxy's) and what its host is, checked as it is
//! made. Targets and proxies are built of endpoints; this file imports
//! neither, so that they do not import each other.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// The scheme of Unix domain socket targets.
pub(super) const UNIX: &str = "unix";

/// One `scheme://host:port`: a target's own, its final destination, or a
/// proxy's.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    pub(super) scheme: Arc<str>,
    pub(crate) host: Arc<str>,
    pub(crate) port: u16,
    /// What the host is, or why the endpoint is unusable.
    pub(crate) kind: Result<HostKind, Arc<str>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HostKind {
    Literal(IpAddr),
    Name,
    /// A Unix domain socket's path (scheme `unix`).
    Path,
}

impl fmt::Display for Endpoint {
    /// `scheme://host:port`, an IPv6 literal in brackets, so that the text
    /// parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            _ if &*self.scheme == UNIX => write!(f, "{UNIX}://{}", self.host),
            Ok(HostKind::Literal(IpAddr::V6(_))) => {
                write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
            }
            _ => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

impl Endpoint {
    pub(crate) fn new(scheme: String, host: String, port: u16) -> Endpoint {
        let scheme = scheme.to_ascii_lowercase();
        if scheme == UNIX {
            return Endpoint::unix(host);
        }
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

impl Endpoint {
    /// A Unix socket at `path`; its port is always 0.
    pub(super) fn unix(path: String) -> Endpoint {
        let kind = if path.is_empty() {
            Err("empty socket path".into())
        } else if path.contains('\0') {
            Err("socket path contains a NUL byte".into())
        } else {
            Ok(HostKind::Path)
        };
        Endpoint {
            scheme: UNIX.into(),
            host: path.into(),
            port: 0,
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
