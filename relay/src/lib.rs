//! A TCP relay on loopback that delays every byte and every close by a
//! fixed time in each direction: the latency of a real network, for tests
//! and benchmarks on a kernel without `tc netem`.
//!
//! A close (FIN) travels like data: the far side sees it `delay` after it
//! was sent, after the bytes sent before it. A reset, or a write the far
//! side refuses, resets the other side too. This is what makes the
//! keep-alive race real on loopback: a server's idle close is still on its
//! way when the client sends its next request.
//!
//! ```
//! use std::time::Duration;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let relay = keepalive_relay::Relay::start(server.local_addr()?, Duration::from_millis(20)).await?;
//! let mut client = tokio::net::TcpStream::connect(relay.addr()).await?;
//! let (mut upstream, _) = server.accept().await?;
//! let sent = tokio::time::Instant::now();
//! client.write_all(b"hi").await?;
//! let mut got = [0; 2];
//! upstream.read_exact(&mut got).await?;
//! assert!(sent.elapsed() >= Duration::from_millis(20));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A running relay; it and every connection through it end when it is
/// dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on `127.0.0.1` and relays each connection to `upstream`,
    /// delaying each direction by `delay`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr, delay: Duration) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when the relay is dropped) ends every
            // connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            connections.spawn(relay(client, upstream, delay));
                        }
                        Err(_) => return,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Relay { addr, accepted, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections clients opened through the relay.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What travels through one direction of the relay.
enum Item {
    Bytes(Vec<u8>),
    /// The sender closed its side (FIN).
    Fin,
    /// The sender failed (a reset): pass a reset on.
    Reset,
}

async fn relay(client: TcpStream, upstream: SocketAddr, delay: Duration) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (to_server, to_server_rx) = mpsc::unbounded_channel();
    let (to_client, to_client_rx) = mpsc::unbounded_channel();
    tokio::join!(
        read(client_read, to_server, delay),
        write(to_server_rx, server_write),
        read(server_read, to_client, delay),
        write(to_client_rx, client_write),
    );
}

/// Reads one direction, stamping each item with the time it may arrive.
async fn read(mut from: OwnedReadHalf, to: mpsc::UnboundedSender<(Instant, Item)>, delay: Duration) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let item = match from.read(&mut buf).await {
            Ok(0) => Item::Fin,
            Ok(n) => Item::Bytes(buf[..n].to_vec()),
            Err(_) => Item::Reset,
        };
        let last = !matches!(item, Item::Bytes(_));
        if to.send((Instant::now() + delay, item)).is_err() || last {
            return;
        }
    }
}

/// Writes one direction, each item at its time.
async fn write(mut items: mpsc::UnboundedReceiver<(Instant, Item)>, mut to: OwnedWriteHalf) {
    while let Some((at, item)) = items.recv().await {
        tokio::time::sleep_until(at).await;
        match item {
            Item::Bytes(bytes) => {
                if to.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Item::Fin => {
                let _ = to.shutdown().await;
                return;
            }
            Item::Reset => break,
        }
    }
    // The far side failed or reset, or this side refused a write: reset
    // this side when it closes.
    reset(to.as_ref());
}

/// Makes the socket's close a reset (SO_LINGER 0).
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_and_closes_arrive_a_delay_later_in_order() {
        let delay = Duration::from_millis(30);
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay::start(server.local_addr().unwrap(), delay).await.unwrap();
        let mut client = TcpStream::connect(relay.addr()).await.unwrap();
        let (mut upstream, _) = server.accept().await.unwrap();
        // Server to client: a response, then a close right behind it.
        let sent = Instant::now();
        upstream.write_all(b"response").await.unwrap();
        drop(upstream);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"response");
        assert!(
            sent.elapsed() >= delay,
            "the close came {:?} after it was sent",
            sent.elapsed()
        );
    }
}
