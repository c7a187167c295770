//! A URL split into the pool's target and the request head to send,
//! through a proxy when one applies.

use keepalive::Target;

use crate::proxy::Proxies;

/// A URL split into what the pool and the request need.
#[derive(Clone, Debug)]
pub(crate) struct Url {
    /// The URL as the command shows it: any password as `***`.
    pub(crate) text: String,
    pub(crate) target: Target,
    /// The request head for a GET of this URL.
    pub(crate) request: Vec<u8>,
    /// The path and query, and the Basic authentication the URL's user
    /// information asks for: the same request for hyper.
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    /// Forwarded by an HTTP proxy (absolute form), not tunnelled.
    pub(crate) forwarded: bool,
}

impl Url {
    /// Parses `text` as an http or https URL, reached through the proxy
    /// `proxies` choose for it, as curl does: an `https` URL (or any URL
    /// through a SOCKS5 proxy) through a tunnel, a plain `http` URL
    /// through an HTTP proxy forwarded (the request in absolute form with
    /// `Proxy-Authorization`, pooled per proxy and origin with
    /// `for_target`).
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with it.
    pub(crate) fn parse_via(text: &str, proxies: &Proxies) -> Result<Url, String> {
        let shown = keepalive::redact_url(text);
        let target: Target = text.parse().map_err(|e: keepalive::Error| e.to_string())?;
        if !matches!(target.scheme(), "http" | "https") {
            return Err(format!("{shown}: only http and https URLs can be fetched"));
        }
        let uri: ::http::Uri = text.parse().map_err(|_| format!("{shown}: not a URL"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = if path.is_empty() { "/" } else { path };
        let (userinfo, host) = keepalive_http::split_userinfo(uri.authority().map_or("", |a| a.as_str()));
        // The user information is sent as Basic authentication, as curl
        // sends it; it never reaches `Host`.
        let authorization =
            match userinfo {
                Some(userinfo) => Some(keepalive_http::basic_authorization(userinfo).ok_or_else(|| {
                    format!("{shown}: the user or password is not UTF-8 once percent-decoded")
                })?),
                None => None,
            };
        let direct = keepalive_http::authorized_request("GET", host, path, authorization.as_deref());
        let mut forwarded = false;
        let (target, request) = match proxies.for_url(target.scheme(), target.host()) {
            None => (target, direct),
            Some(proxy) if target.scheme() == "http" && matches!(proxy.scheme(), "http" | "https") => {
                let absolute = format!("http://{host}{path}");
                let credentials = proxy.proxy_authorization();
                let request = keepalive_http::forward_request("GET", &absolute, host, credentials.as_deref());
                let request = with_authorization(request, authorization.as_deref());
                let via = Target::new(proxy.scheme(), proxy.host(), proxy.port()).for_target(
                    "http",
                    target.host(),
                    target.port(),
                );
                forwarded = true;
                (via, request)
            }
            Some(proxy) => (target.via(proxy.clone()), direct),
        };
        Ok(Url {
            text: shown,
            target,
            request,
            path: path.to_owned(),
            authorization,
            forwarded,
        })
    }
}

/// `head` (a complete request head) with an `Authorization` field added
/// before its end, when there is one.
fn with_authorization(mut head: Vec<u8>, authorization: Option<&str>) -> Vec<u8> {
    if let Some(authorization) = authorization {
        head.truncate(head.len().saturating_sub(2));
        head.extend_from_slice(format!("Authorization: {authorization}\r\n\r\n").as_bytes());
    }
    head
}

impl Url {
    /// The same request sent over the Unix socket at `path` instead, as
    /// curl's `--unix-socket` does: the URL still gives the `Host` header
    /// and the path; no proxy applies.
    pub(crate) fn over_unix(self, path: &std::path::Path) -> Url {
        Url {
            text: format!("{} (via {})", self.text, path.display()),
            target: Target::unix(path),
            forwarded: false,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Url;

    fn parse(text: &str) -> Result<Url, String> {
        Url::parse_via(text, &crate::proxy::Proxies::default())
    }

    #[test]
    fn urls_give_a_target_and_a_request_line() {
        let url = parse("http://user@127.0.0.1:8080/a/b?c=d").unwrap();
        assert_eq!(url.target.port(), 8080);
        let head = String::from_utf8(url.request).unwrap();
        assert!(
            head.starts_with("GET /a/b?c=d HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{head}"
        );
        let bare = String::from_utf8(parse("https://[::1]").unwrap().request).unwrap();
        assert!(bare.starts_with("GET / HTTP/1.1\r\nHost: [::1]\r\n"), "{bare}");
        assert!(parse("ftp://x:21/").is_err());
        assert!(parse("not a url").is_err());
    }

    #[test]
    fn https_tunnels_and_http_is_forwarded_through_an_http_proxy() {
        let proxies = crate::proxy::Proxies::from(Some("http://u:p@127.0.0.1:3128"), |_| None).unwrap();
        let https = Url::parse_via("https://a.example/x", &proxies).unwrap();
        assert_eq!(https.target.proxy().map(|p| p.port()), Some(3128));
        assert!(String::from_utf8(https.request)
            .unwrap()
            .starts_with("GET /x HTTP/1.1\r\n"));
        let http = Url::parse_via("http://a.example:8080/x?y", &proxies).unwrap();
        assert_eq!(http.target.proxy(), None);
        assert_eq!(
            http.target.to_string(),
            "http://127.0.0.1:3128 for http://a.example:8080"
        );
        let head = String::from_utf8(http.request).unwrap();
        assert!(
            head.starts_with("GET http://a.example:8080/x?y HTTP/1.1\r\nHost: a.example:8080\r\n"),
            "{head}"
        );
        assert!(head.contains("Proxy-Authorization: Basic dTpw\r\n"), "{head}");
        let with_user = Url::parse_via("http://alice:pw@a.example/x", &proxies).unwrap();
        let head = String::from_utf8(with_user.request).unwrap();
        assert!(
            head.contains("\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nProxy-Authorization: Basic dTpw\r\n"), "{head}");
        let socks = crate::proxy::Proxies::from(Some("socks5h://127.0.0.1:1080"), |_| None).unwrap();
        let http = Url::parse_via("http://a.example/", &socks).unwrap();
        assert!(http.target.proxy().is_some(), "SOCKS5 tunnels http too");
    }
}
