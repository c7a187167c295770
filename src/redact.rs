//! Credentials kept out of what the crate shows: a URL, or a text that may
//! hold a URL's password, with the password as `***`.

/// `url` as errors and `Debug` may show it: any user information before
/// the host becomes `user:***@` (`:***@` when it has no `:`, since a bare
/// user information may be the secret itself). The user information ends
/// at the last `@`, wherever it stands, so a password holding `/`, `?` or
/// `#` is hidden too (at worst more is hidden than needed). `what` names
/// the input when it has no `scheme://`: "(a proxy URL with credentials)".
pub(crate) fn url(url: &str, what: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // No URL structure: nothing to tell a password from.
        return match url.contains('@') {
            true => format!("({what} with credentials)"),
            false => url.to_owned(),
        };
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// `url` with any password in it as `***`, as this crate shows URLs: the
/// user information before the host becomes `user:***@`. For programs on
/// the pool that print or log the URLs they were given (keepalive-http,
/// keepalive-hyper and the `keepalive` command use it), so that one rule
/// hides passwords everywhere.
///
/// # Examples
///
/// ```
/// assert_eq!(keepalive::redact_url("http://alice:s3cret@127.0.0.1:8080/x"), "http://alice:***@127.0.0.1:8080/x");
/// assert_eq!(keepalive::redact_url("https://example.com/"), "https://example.com/");
/// ```
pub fn redact_url(url: &str) -> String {
    self::url(url, "a URL")
}

/// `text` with the password of `url`, if it has one, as `***`.
#[cfg(feature = "fleet")]
pub(crate) fn text(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(password) => text.replace(password, "***"),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_show_whatever_they_hold() {
        for (input, shown) in [
            ("http://u:p@h:1/x", "http://u:***@h:1/x"),
            ("http://u:pa#ss@h:1", "http://u:***@h:1"),
            ("http://u:a/b?c@h:1", "http://u:***@h:1"),
            ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
            ("redis://pw@h:6379", "redis://:***@h:6379"),
            ("http://h:1/", "http://h:1/"),
            ("u:pw@h:1", "(a URL with credentials)"),
        ] {
            assert_eq!(super::url(input, "a URL"), shown, "{input}");
        }
    }
}
