//! Reading targets: URLs (`FromStr`) and hosts (IP literals, RFC 1123
//! names).

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use super::{HostKind, Target};
use crate::error::Error;
use crate::proxy::Proxy;

/// How a Unix socket URL starts: `unix:///run/app.sock` is the path
/// `/run/app.sock`.
const UNIX_PREFIX: &str = "unix://";

impl FromStr for Target {
    type Err = Error;

    /// Parses `scheme://host[:port][/path…]`, or `unix://` followed by a
    /// socket's path. The path, query and any user information are
    /// ignored. Ports default to 80 for `http` and 443 for
    /// `https`; other schemes need an explicit port. The form `Display`
    /// writes for a proxied target, `A for B`, parses as
    /// `A.parse()?.for_target(B's scheme, host, port)`, and `T via P`
    /// parses as `T.parse()?.via(P.parse()?)` (see [`Proxy`]'s `FromStr`;
    /// a password `Display` wrote as `***` is read as `***`).
    ///
    /// # Errors
    ///
    /// An error with [`Error::is_invalid_target`] when the text is no URL,
    /// has no scheme or host, has no port and no default, or names a bad
    /// host.
    fn from_str(s: &str) -> Result<Target, Error> {
        if let Some((target, proxy)) = s.rsplit_once(" via ") {
            let target = target.parse::<Target>()?.via(proxy.parse::<Proxy>()?);
            target.validate()?;
            return Ok(target);
        }
        if let Some((proxy, destination)) = s.split_once(" for ") {
            let via = parse_url(destination)?;
            let target = parse_url(proxy)?.for_target(via.scheme(), via.host(), via.port());
            target.validate()?;
            return Ok(target);
        }
        parse_url(s)
    }
}

/// One `scheme://host[:port][/path…]`, or `unix://path`.
fn parse_url(s: &str) -> Result<Target, Error> {
    let bad = |reason: &str| Error::invalid_target(crate::redact::url(s, "a URL"), reason.to_owned());
    if let Some(path) = s
        .get(..UNIX_PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(UNIX_PREFIX))
        .map(|_| &s[UNIX_PREFIX.len()..])
    {
        let target = Target::unix(path);
        target.validate()?;
        return Ok(target);
    }
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
    let explicit = written_port(uri.authority().map_or("", |a| a.as_str())).map_err(bad)?;
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

/// The port as written in `authority`, if any: `Uri::port` hides ports
/// that overflow u16.
fn written_port(authority: &str) -> Result<Option<u16>, &'static str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = host_port.rsplit_once(']').map_or(host_port, |(_, rest)| rest);
    match after_host.rsplit_once(':') {
        Some((_, digits)) => match digits.parse::<u16>() {
            Ok(port) => Ok(Some(port)),
            Err(_) => Err("port is not a number from 0 to 65535"),
        },
        None => Ok(None),
    }
}

/// Strips IPv6 brackets, lower-cases names, and says what the host is.
pub(super) fn classify_host(host: String) -> (String, Result<HostKind, Arc<str>>) {
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
