//! Which proxy a URL goes through: `--proxy`, else the environment, read
//! as curl reads it.
//!
//! * `--proxy URL` is used for every URL; `--proxy ""` means none.
//! * Otherwise `https_proxy` / `HTTPS_PROXY` for `https` URLs, `http_proxy`
//!   for `http` URLs, then `all_proxy` / `ALL_PROXY`. Like curl, the
//!   upper-case `HTTP_PROXY` is not read (a CGI program gets the request's
//!   `Proxy:` header under that name: "httpoxy"); the command says so when
//!   it is set.
//! * `no_proxy` / `NO_PROXY`, for `--proxy` and the environment alike: a
//!   comma-separated list of `*`, host names (matching the name and its
//!   subdomains, with or without a leading dot), IP addresses and CIDR
//!   ranges.
//! * A proxy URL without a scheme is an HTTP proxy, as in curl.

use std::net::IpAddr;

use keepalive::Proxy;

/// The proxies the command was given.
#[derive(Debug, Default)]
pub(crate) struct Proxies {
    /// `--proxy`: `Some(None)` when it was given empty.
    flag: Option<Option<Proxy>>,
    https: Option<Proxy>,
    http: Option<Proxy>,
    all: Option<Proxy>,
    no_proxy: Vec<String>,
}

impl Proxies {
    /// From `--proxy` and this process's environment.
    ///
    /// # Errors
    ///
    /// A proxy URL that does not parse, naming where it came from.
    pub(crate) fn new(flag: Option<&str>) -> Result<Proxies, String> {
        if std::env::var_os("HTTP_PROXY").is_some() && std::env::var_os("http_proxy").is_none() {
            eprintln!("keepalive: HTTP_PROXY is not read, as in curl (httpoxy); set http_proxy instead");
        }
        Proxies::from(flag, |name| std::env::var(name).ok())
    }

    /// From `--proxy` and an environment given as a lookup.
    pub(crate) fn from(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Proxies, String> {
        let var = |names: &[&str]| -> Result<Option<Proxy>, String> {
            for name in names {
                match env(name).filter(|v| !v.trim().is_empty()) {
                    Some(value) => return parse(&value).map(Some).map_err(|e| format!("{name}: {e}")),
                    None => continue,
                }
            }
            Ok(None)
        };
        let flag = match flag {
            None => None,
            Some(text) if text.trim().is_empty() => Some(None),
            Some(text) => Some(Some(parse(text).map_err(|e| format!("--proxy: {e}"))?)),
        };
        let no_proxy = env("no_proxy")
            .or_else(|| env("NO_PROXY"))
            .map(|list| {
                list.split(',')
                    .map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|entry| !entry.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Proxies {
            flag,
            https: var(&["https_proxy", "HTTPS_PROXY"])?,
            http: var(&["http_proxy"])?,
            all: var(&["all_proxy", "ALL_PROXY"])?,
            no_proxy,
        })
    }

    /// The proxy for a URL of `scheme` to `host`, if any.
    pub(crate) fn for_url(&self, scheme: &str, host: &str) -> Option<&Proxy> {
        let chosen = match &self.flag {
            Some(flag) => flag.as_ref(),
            None => match scheme {
                "https" => self.https.as_ref(),
                _ => self.http.as_ref(),
            }
            .or(self.all.as_ref()),
        }?;
        (!self.bypassed(host)).then_some(chosen)
    }

    /// Whether `NO_PROXY` names `host`.
    fn bypassed(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            if let (Some(ip), Some((net, bits))) = (ip, entry.split_once('/')) {
                return in_range(ip, net, bits);
            }
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            host == entry || (ip.is_none() && host.ends_with(&format!(".{entry}")))
        })
    }
}

/// A proxy URL; with no scheme, an HTTP proxy.
fn parse(text: &str) -> Result<Proxy, String> {
    let text = text.trim();
    let owned;
    let text = if text.contains("://") {
        text
    } else {
        owned = format!("http://{text}");
        &owned
    };
    text.parse::<Proxy>().map_err(|e| e.to_string())
}

/// Whether `ip` is in `net/bits`.
fn in_range(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let proxies = Proxies::from(
            None,
            env(&[
                ("https_proxy", "http://s.example:1"),
                ("HTTP_PROXY", "http://ignored.example:2"),
                ("ALL_PROXY", "socks5h://all.example:3"),
                ("NO_PROXY", "internal.example, .corp, 10.0.0.0/8, ::1"),
            ]),
        )
        .unwrap();
        let host = |scheme, host| proxies.for_url(scheme, host).map(|p| p.host().to_owned());
        assert_eq!(host("https", "a.example").as_deref(), Some("s.example"));
        assert_eq!(
            host("http", "a.example").as_deref(),
            Some("all.example"),
            "HTTP_PROXY is not read"
        );
        for bypassed in [
            "internal.example",
            "x.internal.example",
            "a.corp",
            "10.1.2.3",
            "[::1]",
        ] {
            assert_eq!(host("https", bypassed), None, "{bypassed}");
        }
        assert!(host("https", "notinternal.example").is_some());
        assert!(host("https", "11.0.0.1").is_some());
    }

    #[test]
    fn the_flag_wins_and_empty_means_none() {
        let environment = env(&[("http_proxy", "http://e.example:1"), ("no_proxy", "*")]);
        let proxies = Proxies::from(Some("p.example:3128"), &environment).unwrap();
        assert_eq!(
            proxies.for_url("http", "a.example"),
            None,
            "no_proxy=* applies to --proxy too"
        );
        let proxies = Proxies::from(
            Some("p.example:3128"),
            env(&[("http_proxy", "http://e.example:1")]),
        )
        .unwrap();
        assert_eq!(
            proxies.for_url("http", "a.example"),
            Some(&Proxy::http("p.example", 3128))
        );
        let proxies = Proxies::from(Some(""), env(&[("http_proxy", "http://e.example:1")])).unwrap();
        assert_eq!(proxies.for_url("http", "a.example"), None);
        let err = Proxies::from(Some("ftp://u:secret@p:1"), env(&[])).unwrap_err();
        assert!(err.starts_with("--proxy:") && !err.contains("secret"), "{err}");
    }
}
