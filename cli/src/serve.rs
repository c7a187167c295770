//! The built-in HTTP/1.1 server (HTTP/2 in serve2.rs): a small fixed body for every request, and
//! options to drop connections the way real servers do.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The body of every response.
pub(crate) const BODY: &str = "Hello, world!\n";

/// How the server treats connections.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// Close each connection after this many responses (the last one says
    /// `Connection: close`), like nginx's `keepalive_requests`.
    pub(crate) close_after: Option<u64>,
    /// Close a connection that has been idle this long between requests,
    /// without a word, like a server's keep-alive timeout.
    pub(crate) idle_close: Option<Duration>,
    /// Announce the idle limit in `Keep-Alive: timeout=N` (whole seconds,
    /// rounded down), as Apache httpd and Node.js do.
    pub(crate) announce: bool,
    /// Print `peak N connections` whenever the kernel's count of
    /// established connections on the port, taken at each accept, rises.
    pub(crate) report_peak: bool,
    /// Serve HTTP/2 by prior knowledge (h2c, hyper's server) instead.
    pub(crate) http2: bool,
    /// With `http2`: SETTINGS_MAX_CONCURRENT_STREAMS (default 100).
    pub(crate) max_streams: Option<u32>,
}

/// Serves connections from `listener` until the process ends.
///
/// # Errors
///
/// When accepting fails for a reason other than a full descriptor table.
pub(crate) async fn serve(listener: TcpListener, options: Options) -> io::Result<()> {
    let port = listener.local_addr()?.port();
    let mut peak = 0;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors: shed this connection, keep serving.
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => continue,
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        match options.http2 {
            true => {
                tokio::spawn(crate::serve2::connection(stream, options));
            }
            false => {
                tokio::spawn(connection(stream, options));
            }
        }
        if options.report_peak {
            // The lower of two readings: a walk of the kernel's table is not
            // atomic, and one that meets a close and a connect can count
            // both.
            let now = established(port).min(established(port));
            if now > peak {
                peak = now;
                println!("peak {peak} connections");
            }
        }
    }
}

/// Connections in ESTABLISHED on local `port`, from the kernel's tables:
/// one whose client has closed (its FIN arrived) is not counted, whether
/// or not its task has read the end yet.
fn established(port: u16) -> usize {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    cols.get(1).is_some_and(|local| local.ends_with(&wanted)) && cols.get(3) == Some(&"01")
                })
                .count()
        })
        .sum()
}

/// A request head, as far as the server cares.
struct Request {
    len: usize,
    body: usize,
    head: bool,
    close: bool,
}

/// Parses a request head at the start of `buf`; `None` until complete.
fn parse(buf: &[u8]) -> Result<Option<Request>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf).map_err(|_| "bad request head")? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > 64 * 1024 => return Err("request head too large"),
        httparse::Status::Partial => return Ok(None),
    };
    let (mut body, mut close, mut keep_alive) = (0, false, false);
    for h in request.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            body = value.parse().map_err(|_| "bad content-length")?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("request bodies must have a content-length");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= value.eq_ignore_ascii_case("close");
            keep_alive |= value.eq_ignore_ascii_case("keep-alive");
        }
    }
    let http10 = request.version == Some(0);
    Ok(Some(Request {
        len,
        body,
        head: request.method == Some("HEAD"),
        close: close || (http10 && !keep_alive),
    }))
}

fn response(head: bool, close: bool, announce: Option<Duration>) -> String {
    let connection = match (close, announce) {
        (true, _) => "Connection: close\r\n".to_owned(),
        (false, Some(idle)) => format!("Keep-Alive: timeout={}\r\n", idle.as_secs()),
        (false, None) => String::new(),
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n{}",
        BODY.len(),
        if head { "" } else { BODY }
    )
}

async fn connection(mut stream: TcpStream, options: Options) {
    let announce = options.idle_close.filter(|_| options.announce);
    let responses = [false, true].map(|close| [false, true].map(|head| response(head, close, announce)));
    let mut buf = Vec::with_capacity(4096);
    let mut served = 0u64;
    loop {
        let request = loop {
            match parse(&buf) {
                Ok(Some(request)) if buf.len() >= request.len + request.body => break request,
                Ok(_) => {}
                Err(why) => {
                    let reply = format!(
                        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{why}",
                        why.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    return;
                }
            }
            let between_requests = buf.is_empty();
            let read = stream.read_buf(&mut buf);
            let read = match options.idle_close {
                Some(idle) if between_requests => match tokio::time::timeout(idle, read).await {
                    Ok(read) => read,
                    Err(_) => return, // idle too long: close silently
                },
                _ => read.await,
            };
            if !matches!(read, Ok(1..)) {
                return;
            }
        };
        buf.drain(..request.len + request.body);
        served += 1;
        let close = request.close || options.close_after.is_some_and(|k| served >= k);
        let reply = &responses[usize::from(close)][usize::from(request.head)];
        if stream.write_all(reply.as_bytes()).await.is_err() || close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}
