//! Target parsing, normalisation and display.

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

#[test]
fn a_proxy_is_part_of_the_key_and_of_the_text() {
    use crate::Proxy;
    let direct = Target::new("https", "a.example", 443);
    let via = direct.clone().via(Proxy::socks5("::1", 1080));
    assert_ne!(direct, via);
    assert_eq!(via.to_string(), "https://a.example:443 via socks5h://[::1]:1080");
    assert_eq!(via, via.to_string().parse::<Target>().unwrap());
    let both = Target::new("http", "p", 3128)
        .for_target("http", "b", 80)
        .via(Proxy::http("q", 8080));
    assert_eq!(both, both.to_string().parse::<Target>().unwrap());
    let secret = direct.clone().via(Proxy::http("q", 8080).basic_auth("u", "pw1"));
    assert_ne!(secret, direct.via(Proxy::http("q", 8080).basic_auth("u", "pw2")));
    assert!(!secret.to_string().contains("pw1") && !format!("{secret:?}").contains("pw1"));
    // The pool looks up the proxy's name, not the target's.
    assert_eq!(&*secret.dial_endpoint().host, "q");
    assert_eq!(secret.dial_endpoint().port, 8080);
}
