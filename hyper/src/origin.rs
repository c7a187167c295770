//! What a request URI names: the pool's target, the `Host` header, and
//! the `Authorization` its user information asks for; the request in
//! origin form; and [`unix_uri`], hyperlocal's form of a URI for a Unix
//! socket.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::Scheme;
use http::Uri;
use keepalive::Target;

use crate::lock::lock;

/// An absolute URI's target, `Host` header, and Basic authentication from
/// its user information.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) target: Target,
    pub(crate) host: HeaderValue,
    /// Boxed: rare, and it keeps the origin small on the request path.
    pub(crate) authorization: Option<Box<HeaderValue>>,
}

/// How many origins, by URI scheme and authority, a client remembers.
const MAX_ORIGINS: usize = 1024;

/// The origins a client has read from URIs, by authority and then scheme,
/// so that a request to a known one builds no `Target` and no `Host`
/// header. FxHash: the key is short and hashed on every request; the map is
/// bounded by [`MAX_ORIGINS`], so even chosen collisions cost little.
#[derive(Default)]
pub(crate) struct Origins {
    known: Mutex<HashMap<Box<str>, Vec<Known>, rustc_hash::FxBuildHasher>>,
}

/// An origin read from a URI, with the URI scheme that named it.
type Known = (Scheme, Origin);

impl Origins {
    /// The origin `uri` names, and whether its `Host` header is known (it
    /// is for an absolute URI).
    pub(crate) fn of(&self, uri: &Uri) -> Result<(Origin, bool), keepalive::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return parse(uri).map(|o| (o, true));
        };
        let mut known = lock(&self.known);
        let found = known
            .get(authority.as_str())
            .and_then(|by_scheme| by_scheme.iter().find(|(s, _)| s == scheme));
        if let Some((_, origin)) = found {
            return Ok((origin.clone(), true));
        }
        let origin = parse(uri)?;
        if known.len() >= MAX_ORIGINS {
            known.clear();
        }
        known
            .entry(authority.as_str().into())
            .or_default()
            .push((scheme.clone(), origin.clone()));
        Ok((origin, true))
    }
}

/// The origin of an absolute `http`, `https` or [`unix_uri`] URI; any other
/// is an invalid target, before a connection is taken. No error shows a
/// password.
pub(crate) fn parse(uri: &Uri) -> Result<Origin, keepalive::Error> {
    let shown = || keepalive::redact_url(&uri.to_string());
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(keepalive::Error::invalid_target(
            shown(),
            "the request URI is not absolute (scheme://host[:port]/…)",
        ));
    };
    let (userinfo, host_port) = keepalive_http::split_userinfo(authority.as_str());
    let target: Target = match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => format!("{scheme}://{host_port}").parse()?,
        "unix" => Target::unix(unhex(authority.host()).ok_or_else(|| {
            keepalive::Error::invalid_target(
                shown(),
                "a unix URI's host is its socket's path in hex, as keepalive_hyper::unix_uri makes it",
            )
        })?),
        _ => {
            return Err(keepalive::Error::invalid_target(
                shown(),
                format!("unsupported scheme {scheme}: this client speaks http, https and unix_uri's URIs"),
            ))
        }
    };
    let host =
        match target.is_unix() {
            true => HeaderValue::from_static("localhost"),
            false => HeaderValue::from_maybe_shared(Bytes::copy_from_slice(host_port.as_bytes())).map_err(
                |_| keepalive::Error::invalid_target(shown(), "the authority is no valid Host header"),
            )?,
        };
    let authorization = userinfo
        .map(|u| authorization(u, &shown).map(Box::new))
        .transpose()?;
    Ok(Origin {
        target,
        host,
        authorization,
    })
}

/// The `Authorization: Basic` a URI's user information asks for, marked
/// sensitive (hyper then keeps it out of HPACK's table and `Debug`).
pub(crate) fn authorization(
    userinfo: &str,
    shown: &dyn Fn() -> String,
) -> Result<HeaderValue, keepalive::Error> {
    let bad = || {
        keepalive::Error::invalid_target(shown(), "the user or password is not UTF-8 once percent-decoded")
    };
    let basic = keepalive_http::basic_authorization(userinfo).ok_or_else(bad)?;
    let mut value = HeaderValue::from_str(&basic).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok(value)
}

/// The request's form for the connection that carries it: origin form
/// over HTTP/1.1, absolute over HTTP/2.
pub(crate) fn to_form(
    parts: &mut http::request::Parts,
    target: &Target,
    known: Option<HeaderValue>,
    http2: bool,
) {
    match http2 {
        true => to_absolute_form(parts, target),
        false => to_origin_form(parts, target, known),
    }
}

/// HTTP/2: the URI gives `:scheme` and `:authority` (and no `Host` header
/// is added, RFC 9113 section 8.3.1): the request's own absolute URI,
/// without user information; a [`unix_uri`]'s is `http://localhost`.
fn to_absolute_form(parts: &mut http::request::Parts, target: &Target) {
    let authority = parts.uri.authority().map(|a| a.as_str());
    if !target.is_unix() && authority.is_some_and(|a| !a.contains('@')) {
        return;
    }
    let authority = match authority {
        _ if target.is_unix() => "localhost".to_owned(),
        Some(a) => keepalive_http::split_userinfo(a).1.to_owned(),
        None => host_of(target)
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_default(),
    };
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let scheme = match target.is_tls() {
        true => Scheme::HTTPS,
        false => Scheme::HTTP,
    };
    if let Ok(uri) = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
    {
        parts.uri = uri;
    }
}

/// HTTP/1.1 to an origin: the request line carries the path alone, and
/// the authority goes to `Host` (unless the request has one): `known`, or
/// made from the URI or the target.
fn to_origin_form(parts: &mut http::request::Parts, target: &Target, known: Option<HeaderValue>) {
    if !parts.headers.contains_key(HOST) {
        let host = match parts.uri.authority() {
            _ if known.is_some() => known,
            // Never the user information (RFC 9110 section 4.2.4).
            Some(authority) => {
                HeaderValue::from_str(keepalive_http::split_userinfo(authority.as_str()).1).ok()
            }
            None if target.is_unix() => Some(HeaderValue::from_static("localhost")),
            None => host_of(target),
        };
        if let Some(host) = host {
            parts.headers.insert(HOST, host);
        }
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
}

/// `host[:port]` of a TCP target, the port only when not the scheme's
/// default.
fn host_of(target: &Target) -> Option<HeaderValue> {
    let default = match target.scheme() {
        "https" => 443,
        _ => 80,
    };
    let host = match target.host().contains(':') {
        true => format!("[{}]", target.host()),
        false => target.host().to_owned(),
    };
    let text = match target.port() == default {
        true => host,
        false => format!("{host}:{}", target.port()),
    };
    HeaderValue::from_str(&text).ok()
}

/// A URI for a request over the Unix socket `socket`, in hyperlocal's form
/// (`unix://<the socket's path in hex>:0<path_and_query>`), so that Docker
/// clients' conventions carry over. [`Client::request`](crate::Client::request)
/// accepts it and sends `Host: localhost`. A `path_and_query` that is no
/// valid one is sent as `/`.
///
/// # Examples
///
/// ```
/// let uri = keepalive_hyper::unix_uri("/run/app.sock", "/v1/info?x=1");
/// assert_eq!(uri.to_string(), "unix://2f72756e2f6170702e736f636b:0/v1/info?x=1");
/// ```
pub fn unix_uri(socket: impl AsRef<std::path::Path>, path_and_query: &str) -> Uri {
    use std::os::unix::ffi::OsStrExt;
    let hex: String = socket
        .as_ref()
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path: http::uri::PathAndQuery = path_and_query
        .parse()
        .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme("unix")
        .authority(format!("{hex}:0"))
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| Uri::from_static("unix://:0/"))
}

/// The path a [`unix_uri`] host names, from its hex.
fn unhex(host: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    if host.is_empty() || host.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..host.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(host.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(std::ffi::OsString::from_vec(bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_becomes_basic_auth_and_leaves_host() {
        let origin = parse(&"http://alice:s3cret@127.0.0.1:8080/x".parse().unwrap()).unwrap();
        assert_eq!(origin.host, "127.0.0.1:8080");
        let auth = *origin.authorization.unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Basic YWxpY2U6czNjcmV0");
        assert_eq!(origin.target.to_string(), "http://127.0.0.1:8080");
    }

    #[test]
    fn other_schemes_and_relative_uris_are_refused_without_the_password() {
        for uri in [
            "ftp://alice:s3cret@h:21/",
            "ws://h/",
            "/relative",
            "unix://localhost/x",
        ] {
            let err = parse(&uri.parse().unwrap()).unwrap_err();
            assert!(err.is_invalid_target(), "{uri}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn unix_uris_round_trip() {
        let uri = unix_uri("/tmp/a b.sock", "/p?q");
        let origin = parse(&uri).unwrap();
        assert_eq!(origin.target, Target::unix("/tmp/a b.sock"));
        assert_eq!(origin.host, "localhost");
        assert_eq!(uri.path_and_query().unwrap(), "/p?q");
    }
}
