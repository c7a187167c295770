//! A URL's user information as HTTP Basic authentication, as curl and
//! reqwest send it: `http://user:password@host/` asks with
//! `Authorization: Basic`, and the user information never reaches `Host`.

use base64::Engine;

/// A URL's authority split at its last `@`: the user information, if any,
/// and `host[:port]`.
///
/// # Examples
///
/// ```
/// assert_eq!(keepalive_http::split_userinfo("alice:pw@h:8080"), (Some("alice:pw"), "h:8080"));
/// assert_eq!(keepalive_http::split_userinfo("h"), (None, "h"));
/// ```
pub fn split_userinfo(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    }
}

/// The `Authorization` value for a URL's user information `user[:password]`:
/// `Basic` and the base64 of `user:password`, each part percent-decoded
/// first. `None` when a part is not UTF-8 once decoded.
///
/// # Examples
///
/// ```
/// assert_eq!(keepalive_http::basic_authorization("alice:s3cret").as_deref(), Some("Basic YWxpY2U6czNjcmV0"));
/// assert_eq!(keepalive_http::basic_authorization("a%40b:p%3Aw").as_deref(), Some("Basic YUBiOnA6dw=="));
/// ```
pub fn basic_authorization(userinfo: &str) -> Option<String> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .ok()
            .map(|p| p.into_owned())
    };
    let pair = format!("{}:{}", decode(user)?, decode(password)?);
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}
