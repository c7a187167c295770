//! Proxies written for the tests, on loopback: an HTTP `CONNECT` proxy
//! that forwards (optionally behind TLS, optionally asking for
//! credentials), a SOCKS5 proxy with a chosen bound-address type, and
//! hostile proxies that answer with a script. Each records what clients
//! sent, so tests can check the requests byte for byte.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test proxy saw: every request head (CONNECT) or request bytes
/// (SOCKS5), in order.
#[derive(Clone, Default)]
pub struct Seen {
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    pub accepted: Arc<AtomicUsize>,
}

impl Seen {
    pub fn requests(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn push(&self, bytes: Vec<u8>) {
        self.requests.lock().unwrap().push(bytes);
    }
}

/// Accepts on a loopback port of its own, counting connections in the
/// returned [`Seen`], and runs `serve` on each in a task of its own.
async fn listen<F, Fut>(serve: F) -> (SocketAddr, Seen, tokio::task::JoinHandle<()>)
where
    F: Fn(TcpStream, SocketAddr, Seen) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            record.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp, peer, record.clone()));
        }
    });
    (addr, seen, task)
}

/// Reads up to and including the empty line; `None` when the client
/// closed first.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.ok()?;
        head.push(byte);
    }
    Some(head)
}

/// `host:port` of a `CONNECT` head, as a loopback address to forward to:
/// the tests only ever tunnel to loopback names and literals.
fn destination(head: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(head).ok()?;
    let authority = text.strip_prefix("CONNECT ")?.split(' ').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host {
        "localhost" | "origin.test" => Some(SocketAddr::from(([127, 0, 0, 1], port))),
        literal => Some(SocketAddr::new(literal.parse().ok()?, port)),
    }
}

/// How a [`ConnectProxy`] answers.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The `Proxy-Authorization` value it demands, if any (else 407).
    pub require: Option<String>,
    /// TLS to the proxy, with this server configuration.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Bytes sent right after the 200 head, in the same write, before
    /// anything the origin sends: they belong to the tunnel.
    pub early: &'static [u8],
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            require: None,
            tls: None,
            early: b"",
        }
    }
}

/// A forwarding HTTP `CONNECT` proxy.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    pub seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    pub async fn start(options: ConnectOptions) -> ConnectProxy {
        let (addr, seen, task) = listen(move |tcp, _, record| {
            let options = options.clone();
            async move {
                match options.tls.clone() {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            serve_connect(tls, &options, &record).await;
                        }
                    }
                    None => serve_connect(tcp, &options, &record).await,
                }
            }
        })
        .await;
        ConnectProxy { addr, seen, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connect<S>(mut client: S, options: &ConnectOptions, seen: &Seen)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    seen.push(head.clone());
    if let Some(want) = &options.require {
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let line = format!("proxy-authorization: {}\r\n", want.to_ascii_lowercase());
        if !text.contains(&line) {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
    }
    let Some(to) = destination(&head) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let Ok(mut origin) = TcpStream::connect(to).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    let mut reply = b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec();
    reply.extend_from_slice(options.early);
    if client.write_all(&reply).await.is_err() || client.flush().await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
}

/// How a [`Socks5Proxy`] answers.
#[derive(Clone, Copy)]
pub struct Socks5Options {
    /// (user, password) it demands with RFC 1929, if any.
    pub require: Option<(&'static str, &'static str)>,
    /// The address type of BND.ADDR in its CONNECT reply: 1, 3 or 4.
    pub bound_atyp: u8,
}

/// A forwarding SOCKS5 proxy; records each CONNECT request's bytes.
pub struct Socks5Proxy {
    pub addr: SocketAddr,
    pub seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Socks5Proxy {
    pub async fn start(options: Socks5Options) -> Socks5Proxy {
        let (addr, seen, task) = listen(move |tcp, _, record| async move {
            let _ = serve_socks5(tcp, options, &record).await;
        })
        .await;
        Socks5Proxy { addr, seen, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_socks5(mut client: TcpStream, options: Socks5Options, seen: &Seen) -> std::io::Result<()> {
    let mut hello = [0u8; 2];
    client.read_exact(&mut hello).await?;
    let mut methods = vec![0u8; usize::from(hello[1])];
    client.read_exact(&mut methods).await?;
    match options.require {
        None => client.write_all(&[5, 0]).await?,
        Some((user, password)) => {
            if !methods.contains(&2) {
                return client.write_all(&[5, 0xff]).await;
            }
            client.write_all(&[5, 2]).await?;
            let mut head = [0u8; 2];
            client.read_exact(&mut head).await?;
            let mut got_user = vec![0u8; usize::from(head[1])];
            client.read_exact(&mut got_user).await?;
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut got_password = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut got_password).await?;
            if got_user != user.as_bytes() || got_password != password.as_bytes() {
                return client.write_all(&[1, 1]).await;
            }
            client.write_all(&[1, 0]).await?;
        }
    }
    let mut request = vec![0u8; 4];
    client.read_exact(&mut request).await?;
    let to = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            request.extend_from_slice(&ip);
            std::net::IpAddr::from(ip)
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            request.extend_from_slice(&ip);
            std::net::IpAddr::from(ip)
        }
        _ => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            request.push(len[0]);
            request.extend_from_slice(&name);
            std::net::IpAddr::from([127, 0, 0, 1])
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    request.extend_from_slice(&port);
    seen.push(request);
    let Ok(mut origin) = TcpStream::connect((to, u16::from_be_bytes(port))).await else {
        return client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    };
    let mut reply = vec![5, 0, 0, options.bound_atyp];
    match options.bound_atyp {
        1 => reply.extend_from_slice(&[127, 0, 0, 1]),
        4 => reply.extend_from_slice(&[0; 15].iter().copied().chain([1]).collect::<Vec<_>>()),
        _ => {
            reply.push(9);
            reply.extend_from_slice(b"bound.dns");
        }
    }
    reply.extend_from_slice(&[0x1f, 0x90]);
    client.write_all(&reply).await?;
    tokio::io::copy_bidirectional(&mut client, &mut origin).await?;
    Ok(())
}

/// One step of a hostile proxy's script, per connection.
#[derive(Clone, Debug)]
pub enum Step {
    /// Read the client's request: a head for HTTP, or `n` bytes.
    ReadHead,
    Read(usize),
    /// Send these bytes.
    Send(Vec<u8>),
    /// Wait until the client has read everything sent so far (its
    /// receive queue is empty and every byte was acknowledged).
    Drained,
    /// Close the connection.
    Close,
    /// Keep the connection open and say nothing until the client closes.
    Silence,
}

/// A proxy that answers every connection with the same script.
pub struct Hostile {
    pub addr: SocketAddr,
    pub seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    pub async fn start(script: Vec<Step>) -> Hostile {
        let (addr, seen, task) = listen(move |tcp, peer, record| {
            let script = script.clone();
            async move {
                let _ = play(tcp, peer, script, &record).await;
            }
        })
        .await;
        Hostile { addr, seen, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn play(mut tcp: TcpStream, peer: SocketAddr, script: Vec<Step>, seen: &Seen) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let local = tcp.local_addr()?;
    for step in script {
        match step {
            Step::ReadHead => match read_head(&mut tcp).await {
                Some(head) => seen.push(head),
                None => return Ok(()),
            },
            Step::Read(n) => {
                let mut buf = vec![0u8; n];
                tcp.read_exact(&mut buf).await?;
                seen.push(buf);
            }
            Step::Send(bytes) => tcp.write_all(&bytes).await?,
            Step::Drained => {
                super::until("the client to read what the proxy sent", || {
                    queues(local.port(), peer.port()).is_some_and(|(tx, _)| tx == 0)
                        && queues(peer.port(), local.port()).is_some_and(|(_, rx)| rx == 0)
                })
                .await
            }
            Step::Close => return Ok(()),
            Step::Silence => {
                let mut sink = [0u8; 64];
                while tcp.read(&mut sink).await? > 0 {}
                return Ok(());
            }
        }
    }
    Ok(())
}

/// (send queue, receive queue) of the IPv4 loopback socket from
/// `local_port` to `remote_port`, from /proc/net/tcp.
fn queues(local_port: u16, remote_port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{local_port:04X}");
    let remote = format!("0100007F:{remote_port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(1) != Some(&local.as_str()) || cols.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = cols.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}
