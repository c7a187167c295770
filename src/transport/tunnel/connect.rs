//! HTTP `CONNECT` (RFC 9110 9.3.6): the request, and the reply head, read
//! to its end and not one byte further: what follows belongs to the
//! tunnel.
//!
//! Over plain TCP the head is found by peeking, and only its bytes are
//! taken from the kernel. Over TLS to the proxy it is read a byte at a
//! time from rustls's plaintext (no system call per byte); what follows
//! stays in rustls for the tunnel.

#[cfg(keepalive_tls)]
use tokio::io::AsyncRead;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Failure, MAX_REPLY_HEAD};
use crate::error::Error;
use crate::proxy::Proxy;
use crate::target::Target;

/// Interim (1xx) replies skipped before the final one.
const MAX_INTERIM: usize = 4;

/// `CONNECT` through an HTTP proxy on a plain socket.
pub(super) async fn over_tcp(tcp: &mut TcpStream, proxy: &Proxy, target: &Target) -> Result<(), Error> {
    negotiate(tcp, proxy, target, async |tcp: &mut TcpStream| {
        peek_head(tcp).await
    })
    .await
}

/// `CONNECT` inside a stream (TLS to an HTTPS proxy).
#[cfg(keepalive_tls)]
pub(super) async fn over_stream<S>(stream: &mut S, proxy: &Proxy, target: &Target) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    negotiate(stream, proxy, target, async |stream: &mut S| {
        read_head(stream).await
    })
    .await
}

/// Sends the request, then reads reply heads with `next_head` until the
/// final one (interim 1xx replies skipped), which must open the tunnel.
async fn negotiate<S>(
    stream: &mut S,
    proxy: &Proxy,
    target: &Target,
    mut next_head: impl AsyncFnMut(&mut S) -> Result<Vec<u8>, Failure>,
) -> Result<(), Error>
where
    S: AsyncWrite + Unpin,
{
    let fail = |f: Failure| f.into_error(target, proxy);
    send(stream, proxy, target).await.map_err(fail)?;
    for _ in 0..=MAX_INTERIM {
        let head = next_head(stream).await.map_err(fail)?;
        if judge(&head).map_err(fail)? {
            return Ok(());
        }
    }
    Err(fail(Failure::new(
        "the proxy sent interim replies and no final one",
    )))
}

/// `CONNECT host:port HTTP/1.1`, the port always explicit and an IPv6
/// literal in brackets, with `Host` and, with credentials,
/// `Proxy-Authorization: Basic`.
fn request(proxy: &Proxy, target: &Target) -> String {
    let authority = match target.literal() {
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", target.port()),
        _ => format!("{}:{}", target.host(), target.port()),
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(credentials) = proxy.basic_authorization() {
        request.push_str("Proxy-Authorization: ");
        request.push_str(&credentials);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, proxy: &Proxy, target: &Target) -> Result<(), Failure> {
    let request = request(proxy, target);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| Failure::io("sending CONNECT", e))?;
    stream
        .flush()
        .await
        .map_err(|e| Failure::io("sending CONNECT", e))
}

/// Where a head ends in `buf` (after its empty line; a bare LF is taken
/// as CRLF, as lenient HTTP parsers do), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| match (buf[i], buf.get(i + 1), buf.get(i + 2)) {
        (b'\n', Some(b'\n'), _) => Some(i + 2),
        (b'\n', Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    })
}

/// Fails at once on bytes that cannot start an HTTP/1.x status line,
/// rather than waiting for an end of head that may never come.
fn plausible(head: &[u8]) -> Result<(), Failure> {
    const START: &[u8] = b"HTTP/1.";
    let n = head.len().min(START.len());
    if head[..n] == START[..n] {
        return Ok(());
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    Err(Failure::new(format!(
        "the proxy's reply is no HTTP/1.x status line: {:?}",
        printable(line)
    )))
}

fn too_long() -> Failure {
    Failure::new(format!("the proxy's reply head is over {MAX_REPLY_HEAD} bytes"))
}

fn closed(after: usize) -> Failure {
    Failure::new(format!(
        "the proxy closed the connection after {after} bytes of its reply, before the head's end"
    ))
}

/// The reply head from a socket: peeks, takes what belongs to the head,
/// and leaves the rest in the kernel. Every round takes at least one
/// byte, so a head split across segments never spins.
async fn peek_head(tcp: &mut TcpStream) -> Result<Vec<u8>, Failure> {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let n = tcp
            .peek(&mut buf)
            .await
            .map_err(|e| Failure::io("reading the reply", e))?;
        if n == 0 {
            return Err(closed(head.len()));
        }
        let from = head.len().saturating_sub(2);
        let before = head.len();
        head.extend_from_slice(&buf[..n]);
        let end = head_end(&head, from);
        let take = end.map_or(n, |end| end - before);
        if let Some(end) = end {
            head.truncate(end);
        }
        tcp.read_exact(&mut buf[..take])
            .await
            .map_err(|e| Failure::io("reading the reply", e))?;
        plausible(&head)?;
        if head.len() > MAX_REPLY_HEAD {
            return Err(too_long());
        }
        if end.is_some() {
            return Ok(head);
        }
    }
}

/// The reply head from a stream, a byte at a time.
#[cfg(keepalive_tls)]
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, Failure> {
    let mut head = Vec::with_capacity(256);
    loop {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(closed(head.len())),
            Err(e) => return Err(Failure::io("reading the reply", e)),
        };
        head.push(byte);
        plausible(&head)?;
        if byte == b'\n' && head_end(&head, head.len().saturating_sub(3)).is_some() {
            return Ok(head);
        }
        if head.len() > MAX_REPLY_HEAD {
            return Err(too_long());
        }
    }
}

/// Reads a reply head: `Ok(true)` opens the tunnel (any 2xx), `Ok(false)`
/// is an interim 1xx to skip, anything else is the proxy's refusal or
/// garbage. Header fields are not needed: a 2xx reply to `CONNECT` has no
/// content whatever its fields say (RFC 9110 9.3.6), and a refusal closes
/// the socket with its body unread.
fn judge(head: &[u8]) -> Result<bool, Failure> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let status = parse_status_line(line).ok_or_else(|| {
        Failure::new(format!(
            "the proxy's reply is no HTTP/1.x status line: {:?}",
            printable(line)
        ))
    })?;
    match status {
        200..=299 => Ok(true),
        100..=199 if status != 101 => Ok(false),
        _ => {
            let phrase = printable(line.get(13..).unwrap_or_default());
            let mut reason = format!("the proxy refused the tunnel: {status}");
            if !phrase.is_empty() {
                reason.push(' ');
                reason.push_str(&phrase);
            }
            Err(Failure::new(reason).with_status(status))
        }
    }
}

/// `HTTP/1.x SSS[ reason]`: the status, if the line is one.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ")?;
    if !minor.is_ascii_digit() || rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.len() > 3 && rest[3] != b' ' {
        return None;
    }
    let status = rest[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&status).then_some(status)
}

/// What a proxy sent, fit for an error message: printable ASCII, at most
/// 100 characters.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '?' })
        .take(100)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(parse_status_line(b"HTTP/1.0 407"), Some(407));
        assert_eq!(parse_status_line(b"HTTP/1.1 2000"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status_line(b"HTTP/2 200"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 099 x"), None);
    }

    #[test]
    fn heads_end_after_the_empty_line() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nrest", 0), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nrest", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn requests_name_the_port_and_bracket_ipv6() {
        let proxy = Proxy::http("p", 1);
        let v6 = request(&proxy, &Target::new("https", "::1", 8443));
        assert!(
            v6.starts_with("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"),
            "{v6}"
        );
        let name = request(&proxy.basic_auth("u", "p"), &Target::new("http", "a.example", 80));
        assert!(name.starts_with("CONNECT a.example:80 HTTP/1.1\r\n"), "{name}");
        assert!(name.contains("Proxy-Authorization: Basic dTpw\r\n"), "{name}");
        assert!(name.ends_with("\r\n\r\n"));
    }
}
