//! Reading targets from URLs (`FromStr`); hosts are checked where
//! endpoints are made (`endpoint.rs`).

use std::str::FromStr;

use super::Target;
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
