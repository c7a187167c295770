//! A URL split into the pool's target and the request head to send.

use keepalive::Target;

/// A URL split into what the pool and the request need.
#[derive(Clone, Debug)]
pub(crate) struct Url {
    pub(crate) text: String,
    pub(crate) target: Target,
    /// The request head for a GET of this URL.
    pub(crate) request: Vec<u8>,
}

impl Url {
    /// Parses `text` as an http or https URL.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Url, String> {
        let target: Target = text.parse().map_err(|e: keepalive::Error| e.to_string())?;
        if !matches!(target.scheme(), "http" | "https") {
            return Err(format!("{text}: only http and https URLs can be fetched"));
        }
        let uri: ::http::Uri = text.parse().map_err(|e| format!("{text}: {e}"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or("", |a| a.as_str());
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        Ok(Url {
            text: text.to_owned(),
            target,
            request: keepalive_http::request("GET", host, if path.is_empty() { "/" } else { path }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Url;

    #[test]
    fn urls_give_a_target_and_a_request_line() {
        let url = Url::parse("http://user@127.0.0.1:8080/a/b?c=d").unwrap();
        assert_eq!(url.target.port(), 8080);
        let head = String::from_utf8(url.request).unwrap();
        assert!(
            head.starts_with("GET /a/b?c=d HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{head}"
        );
        let bare = String::from_utf8(Url::parse("https://[::1]").unwrap().request).unwrap();
        assert!(bare.starts_with("GET / HTTP/1.1\r\nHost: [::1]\r\n"), "{bare}");
        assert!(Url::parse("ftp://x:21/").is_err());
        assert!(Url::parse("not a url").is_err());
    }
}
