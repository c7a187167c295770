//! The scripted HTTP/1.1 origin and helpers the keepalive-hyper tests
//! share.
#![allow(dead_code, unreachable_pub)] // Each test binary uses part of this module.

pub mod raw_h2;
pub mod real;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use keepalive::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any awaited event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls a pool-internal condition that has no event to await.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// A listening origin whose connections the test drives by hand.
pub struct Origin {
    pub listener: TcpListener,
}

impl Origin {
    pub async fn start() -> Origin {
        Origin {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener.local_addr().unwrap())
    }

    pub fn target(&self) -> Target {
        Target::new("http", "127.0.0.1", self.listener.local_addr().unwrap().port())
    }

    pub async fn accept(&self) -> Side {
        let (stream, _) = within("an accept", self.listener.accept()).await.unwrap();
        Side {
            stream,
            buf: Vec::new(),
        }
    }

    /// Accepts a connection and answers its first request with `body`.
    pub async fn answered(&self, body: &[u8]) -> Side {
        let mut side = self.accept().await;
        side.request().await.unwrap();
        side.respond("", body).await;
        side
    }

    /// Serves every connection with `body`, forever, keeping it open.
    pub fn serve_all(self, body: &'static [u8]) {
        tokio::spawn(async move {
            loop {
                let mut side = self.accept().await;
                tokio::spawn(async move {
                    while side.request().await.is_some() {
                        side.respond("", body).await;
                    }
                });
            }
        });
    }
}

/// The origin's end of one connection.
pub struct Side {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Side {
    /// Reads one request (head, and a body by `content-length`); `None` at
    /// end of stream.
    pub async fn request(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if self.buf.len() >= end + 4 + length {
                    self.buf.drain(..end + 4 + length);
                    return Some(head);
                }
            }
            let mut chunk = [0; 4096];
            match within("a request", self.stream.read(&mut chunk)).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub async fn respond(&mut self, headers: &str, body: &[u8]) {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{headers}\r\n",
            body.len()
        );
        let _ = self.stream.write_all(head.as_bytes()).await;
        let _ = self.stream.write_all(body).await;
    }
}

pub fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::default()).unwrap()
}

pub async fn body_of(response: http::Response<keepalive_hyper::Body>) -> Bytes {
    within("the body", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes()
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// A `CONNECT` proxy: reads the request head, connects to the origin it
/// names, and relays. Counts the tunnels it opened.
pub async fn connect_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(byte) = client.read_u8().await else { return };
                    head.push(byte);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let authority = text.split(' ').nth(1).unwrap_or_default().to_owned();
                let Ok(mut origin) = TcpStream::connect(authority).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
            });
        }
    });
    (port, tunnels)
}
