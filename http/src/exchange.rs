//! One request and its response over a byte stream, and what the
//! connection is fit for afterwards.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{parse_head, Body, Error, Framing, KeepAlive};

/// How much is read from the socket at a time.
const READ_SIZE: usize = 16 * 1024;

/// What one exchange produced.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut client, mut server) = tokio::io::duplex(1024);
/// tokio::spawn(async move {
///     use tokio::io::{AsyncReadExt, AsyncWriteExt};
///     let mut req = [0; 512];
///     let _ = server.read(&mut req).await;
///     let _ = server.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
///     std::future::pending::<()>().await;
/// });
/// let request = keepalive_http::request("GET", "example.test", "/");
/// let outcome = keepalive_http::exchange(&mut client, &request, false, &mut Vec::new(), &mut |_| {}).await?;
/// assert_eq!((outcome.status, outcome.body_bytes, outcome.reusable), (200, 2, true));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The final response's status code.
    pub status: u16,
    /// Body bytes received (after chunked decoding).
    pub body_bytes: u64,
    /// The whole response was read, the server allows another request, and
    /// nothing else arrived: the connection may go back to the pool.
    pub reusable: bool,
    /// The server closes the connection after this response: it said
    /// `Connection: close`, answered HTTP/1.0 without `keep-alive`, or
    /// delimited the body by closing. [`settle`](crate::settle) counts
    /// such a close as the server's
    /// ([`Closes::connection_close`](keepalive::Closes::connection_close)).
    pub server_closes: bool,
    /// The server's `Keep-Alive` hints on the final response.
    pub hints: KeepAlive,
    /// The request was sent a second time under [`send`](crate::send)'s
    /// retry rule; always `false` from [`exchange`] itself.
    pub retried: bool,
    /// How [`send`](crate::send) got the connection the response came on;
    /// `None` from [`exchange`] itself.
    pub from: Option<keepalive::FromCache>,
}

/// Sends `request` (a complete request head, see [`request`]) and reads
/// the response. `head_request` says the request was HEAD. `buf` is
/// scratch space kept between calls so that a loop of exchanges does not
/// allocate; body bytes go to `sink`.
///
/// # Errors
///
/// Socket errors, an early close, or a malformed response.
///
/// # Examples
///
/// See [`Outcome`], and the crate's front page for an exchange on a pooled
/// connection.
// One function past 40 lines, on purpose: the head and the body are read
// in one state machine. Split into futures of their own (read_head,
// read_body), the exchange took about 130 more instructions per request
// under callgrind (1,745 against 1,679 per poll, two polls a request).
pub async fn exchange<S>(
    io: &mut S,
    request: &[u8],
    head_request: bool,
    buf: &mut Vec<u8>,
    sink: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Outcome, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request).await?;
    buf.clear();
    let mut got = 0;
    let head = loop {
        if let Some(head) = parse_head(buf, head_request)? {
            if !head.is_interim() {
                break head;
            }
            buf.drain(..head.len);
            continue;
        }
        if read_more(io, buf).await? == 0 {
            return Err(Error::Closed { during: "head", got });
        }
        got = buf.len();
    };
    let mut body = Body::new(head.framing);
    let mut body_bytes = 0u64;
    let mut count = |bytes: &[u8]| {
        body_bytes += bytes.len() as u64;
        sink(bytes);
    };
    let mut used = head.len + body.feed(&buf[head.len..], &mut count)?;
    while !body.is_done() {
        buf.clear();
        used = 0;
        if read_more(io, buf).await? == 0 {
            body.end_of_stream(got)?;
            break;
        }
        got += buf.len();
        used = body.feed(buf, &mut count)?;
    }
    let extra = used < buf.len();
    Ok(Outcome {
        status: head.status,
        body_bytes,
        reusable: head.keep_alive && !extra && head.framing != Framing::UntilClose,
        server_closes: !head.keep_alive && head.status != 101,
        hints: head.hints,
        retried: false,
        from: None,
    })
}

/// Reads what is available into the spare capacity of `buf`.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    io.read_buf(buf).await
}

/// The request head for a GET (or HEAD, or any method without a body) of
/// `path` on `host_header`. It says `Connection: keep-alive`, which
/// HTTP/1.1 implies but some servers (Apache httpd) want before they
/// announce their limits in a `Keep-Alive` header.
///
/// # Examples
///
/// ```
/// let head = keepalive_http::request("GET", "127.0.0.1:8080", "/a?b");
/// assert!(head.starts_with(b"GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
/// assert!(head.ends_with(b"Connection: keep-alive\r\n\r\n"));
/// ```
pub fn request(method: &str, host_header: &str, path: &str) -> Vec<u8> {
    authorized_request(method, host_header, path, None)
}

/// [`request`] with an `Authorization` header when `authorization` is
/// given (from [`basic_authorization`](crate::basic_authorization) of a
/// URL's user information, say).
///
/// # Examples
///
/// ```
/// let head = keepalive_http::authorized_request("GET", "h", "/", Some("Basic dTpw"));
/// assert!(String::from_utf8(head).unwrap().contains("\r\nAuthorization: Basic dTpw\r\n"));
/// ```
pub fn authorized_request(
    method: &str,
    host_header: &str,
    path: &str,
    authorization: Option<&str>,
) -> Vec<u8> {
    let authorization = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\n{authorization}User-Agent: keepalive/0.1\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// The request head for a plain `http` request sent to an HTTP proxy that
/// forwards it, as curl does: the request target in absolute form
/// (RFC 9112 3.2.2), `Host` as usual, and `Proxy-Authorization` (from
/// [`keepalive::Proxy::proxy_authorization`]) on every request, since the
/// proxy may judge each one. The connection is pooled under a
/// [`Target`](keepalive::Target) for the proxy with
/// [`for_target`](keepalive::Target::for_target) naming the origin, so it
/// is never used for another origin.
///
/// # Examples
///
/// ```
/// let head = keepalive_http::forward_request("GET", "http://a.example:8080/x?y", "a.example:8080", Some("Basic dTpw"));
/// let text = String::from_utf8(head).unwrap();
/// assert!(text.starts_with("GET http://a.example:8080/x?y HTTP/1.1\r\nHost: a.example:8080\r\n"));
/// assert!(text.contains("\r\nProxy-Authorization: Basic dTpw\r\n"));
/// ```
pub fn forward_request(
    method: &str,
    absolute_uri: &str,
    host_header: &str,
    proxy_authorization: Option<&str>,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {absolute_uri} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: keepalive/0.1\r\nAccept: */*\r\n"
    );
    if let Some(credentials) = proxy_authorization {
        head.push_str("Proxy-Authorization: ");
        head.push_str(credentials);
        head.push_str("\r\n");
    }
    head.push_str("Connection: keep-alive\r\n\r\n");
    head.into_bytes()
}
