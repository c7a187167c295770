//! [`Proxy`]: a proxy a target is reached through, and part of its key.
//! How the tunnel is opened is the dialer's (`transport/tunnel/`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;

use crate::error::Error;
use crate::target::endpoint::Endpoint;

/// A proxy that a [`Target`](crate::Target) is reached through
/// ([`Target::via`](crate::Target::via)): an HTTP proxy that opens a
/// `CONNECT` tunnel, the same over TLS to the proxy, or a SOCKS5 proxy.
///
/// The proxy, with its credentials, is part of the target's connection
/// key: a tunnel is never handed to another destination, another proxy, or
/// the same proxy with other credentials.
///
/// `Debug` and `Display` never show the password (nor its base64): they
/// write `***` in its place, and so do the pool's errors and tracing
/// events.
///
/// Ports: [`FromStr`] defaults to 80 for `http://`, 443 for `https://` and
/// 1080 for `socks5://` and `socks5h://`, as Go and reqwest do.
///
/// # Examples
///
/// ```
/// use keepalive::{Proxy, Target};
///
/// let proxy = Proxy::http("127.0.0.1", 3128).basic_auth("alice", "s3cret");
/// assert_eq!(proxy.to_string(), "http://alice:***@127.0.0.1:3128");
/// assert_eq!(proxy, "http://alice:s3cret@127.0.0.1:3128".parse()?);
///
/// let target = Target::new("https", "example.com", 443).via(proxy.clone());
/// assert_eq!(target.proxy(), Some(&proxy));
/// assert_ne!(target, Target::new("https", "example.com", 443));
/// assert!(!format!("{target:?}").contains("s3cret"));
/// # Ok::<(), keepalive::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(PartialEq, Eq, Hash)]
struct Inner {
    kind: Kind,
    /// Where the proxy listens; its scheme is the kind's.
    endpoint: Endpoint,
    auth: Option<Credentials>,
}

/// The kinds of proxy and how each is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Plain TCP to the proxy, then `CONNECT`.
    Http,
    /// TLS to the proxy, then `CONNECT`.
    Https,
    /// SOCKS5 (RFC 1928); `remote_dns`: the proxy resolves the
    /// destination's name (`socks5h`), else the pool does.
    Socks5 { remote_dns: bool },
}

impl Kind {
    fn scheme(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Socks5 { remote_dns: true } => "socks5h",
            Kind::Socks5 { remote_dns: false } => "socks5",
        }
    }
}

/// A user name and password: Basic for HTTP proxies, RFC 1929 for SOCKS5.
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Proxy {
    fn new(kind: Kind, host: String, port: u16) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                kind,
                endpoint: Endpoint::new(kind.scheme().to_owned(), host, port),
                auth: None,
            }),
        }
    }

    /// An HTTP proxy: plain TCP to it, then `CONNECT host:port`.
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy = keepalive::Proxy::http("proxy.internal", 3128);
    /// assert_eq!(proxy.to_string(), "http://proxy.internal:3128");
    /// ```
    pub fn http(host: impl Into<String>, port: u16) -> Proxy {
        Proxy::new(Kind::Http, host.into(), port)
    }

    /// An HTTPS proxy: TLS to it (verified as any `https` target is, with
    /// the builder's TLS configuration and the proxy's host as the server
    /// name), then `CONNECT` inside that TLS. An `https` target through it
    /// is TLS inside TLS.
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy = keepalive::Proxy::https("proxy.example", 443);
    /// assert_eq!(proxy.to_string(), "https://proxy.example:443");
    /// ```
    pub fn https(host: impl Into<String>, port: u16) -> Proxy {
        Proxy::new(Kind::Https, host.into(), port)
    }

    /// A SOCKS5 proxy (RFC 1928) that resolves the destination's name
    /// itself (`socks5h://`). `"socks5://…".parse()` gives one whose
    /// destination the pool resolves.
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy = keepalive::Proxy::socks5("127.0.0.1", 1080);
    /// assert_eq!(proxy.to_string(), "socks5h://127.0.0.1:1080");
    /// ```
    pub fn socks5(host: impl Into<String>, port: u16) -> Proxy {
        Proxy::new(Kind::Socks5 { remote_dns: true }, host.into(), port)
    }

    /// The same proxy with credentials: `Proxy-Authorization: Basic` for
    /// HTTP proxies, username/password authentication (RFC 1929) for
    /// SOCKS5.
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy = keepalive::Proxy::socks5("127.0.0.1", 1080).basic_auth("bob", "hunter2");
    /// assert_eq!(format!("{proxy:?}"), "Proxy(socks5h://bob:***@127.0.0.1:1080)");
    /// ```
    pub fn basic_auth(self, user: impl Into<String>, password: impl Into<String>) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                kind: self.inner.kind,
                endpoint: self.inner.endpoint.clone(),
                auth: Some(Credentials {
                    user: user.into(),
                    password: password.into(),
                }),
            }),
        }
    }

    /// The proxy's scheme: `http`, `https`, `socks5h` (the proxy
    /// resolves names) or `socks5` (the pool does).
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy: keepalive::Proxy = "socks5://127.0.0.1:1080".parse()?;
    /// assert_eq!(proxy.scheme(), "socks5");
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    pub fn scheme(&self) -> &'static str {
        self.inner.kind.scheme()
    }

    /// The proxy's host: a lower-cased name, or an IP literal without
    /// brackets.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Proxy::http("[::1]", 3128).host(), "::1");
    /// ```
    pub fn host(&self) -> &str {
        &self.inner.endpoint.host
    }

    /// The proxy's port.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(keepalive::Proxy::http("127.0.0.1", 3128).port(), 3128);
    /// ```
    pub fn port(&self) -> u16 {
        self.inner.endpoint.port
    }

    /// The `Proxy-Authorization` value (`Basic …`) for these credentials,
    /// when there are some, for a client that sends plain `http` requests
    /// to an HTTP proxy itself (absolute-form, as curl does) instead of
    /// through a tunnel; tunnels send it themselves. The value is as
    /// secret as the password.
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy = keepalive::Proxy::http("127.0.0.1", 3128).basic_auth("u", "p");
    /// assert_eq!(proxy.proxy_authorization().as_deref(), Some("Basic dTpw"));
    /// assert_eq!(keepalive::Proxy::http("127.0.0.1", 3128).proxy_authorization(), None);
    /// ```
    pub fn proxy_authorization(&self) -> Option<String> {
        self.basic_authorization()
    }

    pub(crate) fn kind(&self) -> Kind {
        self.inner.kind
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.inner.auth.as_ref()
    }

    /// The `Proxy-Authorization` value, when there are credentials.
    pub(crate) fn basic_authorization(&self) -> Option<String> {
        let auth = self.inner.auth.as_ref()?;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.user, auth.password));
        Some(format!("Basic {token}"))
    }

    /// `text` (something a proxy sent) with the password and its Basic
    /// token replaced by `***`: a hostile proxy may echo them back.
    pub(crate) fn redact(&self, text: &str) -> String {
        let Some(auth) = &self.inner.auth else {
            return text.to_owned();
        };
        let mut text = text.to_owned();
        if let Some(basic) = self.basic_authorization() {
            let token = &basic["Basic ".len()..];
            text = text.replace(token, "***");
        }
        if !auth.password.is_empty() {
            text = text.replace(&auth.password, "***");
        }
        text
    }

    /// Why this proxy cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Err(reason) = &self.inner.endpoint.kind {
            return Some(format!("proxy {self}: {reason}"));
        }
        let auth = self.inner.auth.as_ref()?;
        if matches!(self.inner.kind, Kind::Socks5 { .. }) {
            // RFC 1929: each is one length byte, then the bytes.
            if auth.user.is_empty() || auth.user.len() > 255 || auth.password.len() > 255 {
                return Some(format!(
                    "proxy {self}: a SOCKS5 user name must be 1 to 255 bytes, and a password at most 255"
                ));
            }
        } else if auth.user.contains(':') {
            return Some(format!("proxy {self}: a Basic user name cannot contain ':'"));
        }
        None
    }
}

impl fmt::Display for Proxy {
    /// `scheme://[user:***@]host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = self.inner.endpoint.to_string();
        match &self.inner.auth {
            None => f.write_str(&endpoint),
            Some(auth) => {
                let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", &endpoint));
                write!(f, "{scheme}://{}:***@{rest}", auth.user)
            }
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self})")
    }
}

impl FromStr for Proxy {
    type Err = Error;

    /// Parses `scheme://[user:password@]host[:port][/]`, with `http`,
    /// `https`, `socks5h` (the proxy resolves names) or `socks5` (the pool
    /// resolves them). User and password are percent-decoded, as in curl.
    ///
    /// # Errors
    ///
    /// An error with [`Error::is_invalid_target`] for another scheme, no
    /// host, a bad port or host, a path, or bad percent-encoding. The
    /// error's text shows `***` for the password.
    ///
    /// # Examples
    ///
    /// ```
    /// let proxy: keepalive::Proxy = "socks5h://[::1]:1080".parse()?;
    /// assert_eq!(proxy, keepalive::Proxy::socks5("::1", 1080));
    /// let err = "ftp://user:pw@proxy:21".parse::<keepalive::Proxy>().unwrap_err();
    /// assert!(err.is_invalid_target() && !err.to_string().contains("pw"));
    /// # Ok::<(), keepalive::Error>(())
    /// ```
    fn from_str(s: &str) -> Result<Proxy, Error> {
        let shown = crate::redact::url(s, "a proxy URL");
        let bad = |reason: &str| Error::invalid_target(shown.clone(), reason.to_owned());
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("not a proxy URL of the form scheme://[user:password@]host[:port]"))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Kind::Http, 80),
            "https" => (Kind::Https, 443),
            "socks5h" => (Kind::Socks5 { remote_dns: true }, 1080),
            "socks5" => (Kind::Socks5 { remote_dns: false }, 1080),
            _ => return Err(bad("the proxy scheme must be http, https, socks5 or socks5h")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(bad("a proxy URL has no path, query or fragment"));
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port).map_err(&bad)?;
        let port = port.unwrap_or(default_port);
        let proxy = Proxy::new(kind, host.to_owned(), port);
        let proxy = match userinfo {
            None => proxy,
            Some(userinfo) => {
                let (user, password) = decode_userinfo(userinfo).map_err(&bad)?;
                proxy.basic_auth(user, password)
            }
        };
        match proxy.problem() {
            Some(reason) => Err(bad(&reason)),
            None => Ok(proxy),
        }
    }
}

/// `user[:password]`, percent-decoded.
fn decode_userinfo(userinfo: &str) -> Result<(String, String), &'static str> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| "the user or password is not UTF-8 once percent-decoded")
    };
    Ok((decode(user)?, decode(password)?))
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 literal without its ']'")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("junk after the IPv6 literal")?),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        None => None,
        Some(digits) => Some(
            digits
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or("the port is not a number from 1 to 65535")?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_with_its_default_port() {
        let cases = [
            ("http://p.example", Proxy::http("p.example", 80)),
            ("HTTPS://p.example", Proxy::https("p.example", 443)),
            ("socks5h://p.example", Proxy::socks5("p.example", 1080)),
            ("http://[::1]:3128/", Proxy::http("::1", 3128)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Proxy>().unwrap(), want, "{text}");
        }
        let local: Proxy = "socks5://127.0.0.1:1080".parse().unwrap();
        assert_eq!(local.kind(), Kind::Socks5 { remote_dns: false });
        assert_ne!(local, Proxy::socks5("127.0.0.1", 1080));
    }

    #[test]
    fn decodes_credentials_and_never_shows_the_password() {
        let proxy: Proxy = "http://al%40ice:p%3Ass@h:1".parse().unwrap();
        assert_eq!(proxy, Proxy::http("h", 1).basic_auth("al@ice", "p:ss"));
        assert_eq!(proxy.to_string(), "http://al@ice:***@h:1");
        let header = proxy.basic_authorization().unwrap();
        let token = header.strip_prefix("Basic ").unwrap();
        let echoed = format!("407 for {header} and p:ss");
        let redacted = proxy.redact(&echoed);
        assert!(
            !redacted.contains(token) && !redacted.contains("p:ss"),
            "{redacted}"
        );
    }

    #[test]
    fn bad_urls_are_errors_without_the_password() {
        for text in [
            "ftp://u:topsecret@h:1",
            "http://u:topsecret@:1",
            "http://u:topsecret@h:0",
            "http://u:topsecret@h:99999",
            "http://u:topsecret@h:1/path",
            "http://u:topsecret@[::1",
            "http://u:%ff@h:1",
            "http://u:top#secret@h:1",
            "u:topsecret@h:1",
        ] {
            let err = text.parse::<Proxy>().unwrap_err();
            assert!(err.is_invalid_target(), "{text}: {err}");
            assert!(!err.to_string().contains("topsecret"), "{text}: {err}");
            assert!(!format!("{err:?}").contains("topsecret"), "{text}: {err:?}");
        }
        let long = "x".repeat(256);
        let err = format!("socks5h://{long}:pw@h:1").parse::<Proxy>().unwrap_err();
        assert!(err.to_string().contains("255"), "{err}");
    }
}
