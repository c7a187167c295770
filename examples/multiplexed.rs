//! A multiplexed protocol on keepalive: one connection serves several
//! users at once, as HTTP/2 streams or a pipelined Redis connection do.
//!
//! The protocol is a small tagged line protocol: a request is `ID TEXT\n`,
//! the answer `ID ANSWER\n`, in any order; the server's greeting,
//! `HELLO max=N\n`, says how many requests it takes at once (HTTP/2's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`).
//!
//! * The pooled object, [`Mux`], is a handle: [`Pooled::share`] clones it,
//!   and [`Pooled::capacity`] is the server's `max`. The pool lends one
//!   connection to up to that many users at once, counts it once against
//!   `max_per_host` and `max_open`, opens another when all are full (while
//!   there is room), and queues requests first come first served when
//!   there is none. Each loan's end gives its slot back at once.
//! * The protocol step, [`Tagged`], reads the greeting, so the capacity is
//!   known before any request is sent, and starts the reader task that
//!   hands each answer to its caller.
//!   [`Protocol::expected_capacity`] tells the pool what to expect before a
//!   connection exists, so a burst dials one connection per `max`
//!   requests, not one each.
//! * Liveness: the reader task's end (a FIN, a reset) is the idle event;
//!   the checkout check also peeks the socket when no answer is due, so a
//!   connection whose FIN had arrived is never lent, even before the task
//!   ran.
//!
//! ```text
//! cargo run --example multiplexed
//! ```
//!
//! `cargo test` runs the tests at the bottom against a server they start.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use keepalive::{Health, Manager, Pooled, Protocol, Stream, Target};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

/// A handle of one multiplexed connection: cheap to clone, and every
/// clone sends on the same socket.
#[derive(Clone, Debug)]
pub struct Mux {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    /// Callers waiting for their answer, by request id.
    waiting: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    next_id: AtomicU64,
    /// The reader task ended: the connection is gone.
    closed: AtomicBool,
    /// The pool's idle watch, woken when the reader task ends.
    waker: Mutex<Option<Waker>>,
    /// The server's `max`.
    max: usize,
}

impl Mux {
    /// Sends `text` and waits for its answer, while other users of the same
    /// connection do the same.
    ///
    /// # Errors
    ///
    /// The socket's write error, or `ConnectionReset` when the connection
    /// closed before the answer came.
    pub async fn call(&self, text: &str) -> io::Result<String> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiting).insert(id, tx);
        let line = format!("{id} {text}\n");
        if let Err(e) = self.inner.writer.lock().await.write_all(line.as_bytes()).await {
            lock(&self.inner.waiting).remove(&id);
            return Err(e);
        }
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionReset, "the connection closed"))
    }

    fn health(&self) -> Health {
        if self.inner.closed.load(Ordering::Acquire) {
            return Health::Closed;
        }
        // With no answer due, anything to read is a FIN, a reset or stray
        // bytes: the kernel says so before the reader task has run.
        if lock(&self.inner.waiting).is_empty() {
            if let Ok(writer) = self.inner.writer.try_lock() {
                return Health::peek(writer.as_ref());
            }
        }
        Health::Usable
    }
}

impl Pooled for Mux {
    fn check(&mut self) -> Health {
        self.health()
    }

    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        *lock(&self.inner.waker) = Some(cx.waker().clone());
        self.health()
    }

    fn share(&self) -> Option<Mux> {
        Some(self.clone())
    }

    fn capacity(&self) -> usize {
        self.inner.max
    }
}

/// The protocol step: the server's greeting, then the reader task.
#[derive(Debug)]
pub struct Tagged {
    /// What the pool expects a new connection to take at once.
    pub expected: usize,
}

impl Protocol<Stream> for Tagged {
    type Conn = Mux;
    type Error = io::Error;

    async fn handshake(&self, _: &Target, stream: Stream) -> io::Result<Mux> {
        let tcp = stream
            .into_tcp()
            .map_err(|_| io::Error::other("a plain TCP target is needed"))?;
        let (read, writer) = tcp.into_split();
        let mut read = BufReader::new(read);
        let mut greeting = String::new();
        read.read_line(&mut greeting).await?;
        let max = greeting
            .trim_end()
            .strip_prefix("HELLO max=")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("not greeted: {greeting:?}"))
            })?;
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(writer),
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waker: Mutex::new(None),
            max,
        });
        tokio::spawn(read_answers(read, Arc::downgrade(&inner)));
        Ok(Mux { inner })
    }

    fn expected_capacity(&self, _: &Target) -> usize {
        self.expected
    }
}

/// Hands each answer to its caller until the connection ends or every
/// handle is gone; then fails the callers still waiting and wakes the
/// pool's idle watch.
async fn read_answers(mut read: BufReader<OwnedReadHalf>, inner: std::sync::Weak<Inner>) {
    let mut line = String::new();
    loop {
        line.clear();
        let Ok(n) = read.read_line(&mut line).await else {
            break;
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let answer = line.trim_end().split_once(' ');
        let caller = answer
            .and_then(|(id, _)| id.parse().ok())
            .and_then(|id| lock(&inner.waiting).remove(&id));
        match (n, caller, answer) {
            (0, _, _) | (_, None, _) => break,
            (_, Some(caller), Some((_, text))) => {
                let _ = caller.send(text.to_string());
            }
            (_, Some(_), None) => break,
        }
    }
    if let Some(inner) = inner.upgrade() {
        inner.closed.store(true, Ordering::Release);
        lock(&inner.waiting).clear();
        if let Some(waker) = lock(&inner.waker).take() {
            waker.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A server of the protocol on `listener`: greets with `max`, answers
/// each request with its text in capitals, each on a task of its own (so
/// answers come in any order), and closes the connection after answering
/// `bye`.
pub fn serve(listener: tokio::net::TcpListener, max: usize) -> Arc<Served> {
    let served = Arc::new(Served::default());
    let shared = served.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_one(socket, max, shared.clone()));
        }
    });
    served
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Served {
    /// Connections accepted so far.
    pub accepted: AtomicU64,
    /// Notified when the server closes a connection after `bye`.
    pub closed: tokio::sync::Notify,
}

async fn serve_one(socket: tokio::net::TcpStream, max: usize, served: Arc<Served>) {
    let (read, write) = socket.into_split();
    let write = Arc::new(tokio::sync::Mutex::new(write));
    let _ = write
        .lock()
        .await
        .write_all(format!("HELLO max={max}\n").as_bytes())
        .await;
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some((id, "bye")) = line.split_once(' ') {
            let mut write = write.lock().await;
            let _ = write.write_all(format!("{id} BYE\n").as_bytes()).await;
            let _ = write.shutdown().await;
            served.closed.notify_one();
            return;
        }
        let write = write.clone();
        tokio::spawn(async move {
            let answer = match line.split_once(' ') {
                Some((id, text)) => format!("{id} {}\n", text.to_uppercase()),
                None => "bad request\n".to_string(),
            };
            let _ = write.lock().await.write_all(answer.as_bytes()).await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    let served = serve(listener, 4);
    let manager = Manager::builder()
        .max_per_host(2)
        .protocol(Tagged { expected: 4 })
        .build();
    let calls = (0..8).map(|i| {
        let (manager, target) = (manager.clone(), target.clone());
        tokio::spawn(async move {
            let mux = manager.allocate(target).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(mux.call(&format!("hello {i}")).await?)
        })
    });
    for call in calls.collect::<Vec<_>>() {
        println!("{}", call.await??);
    }
    let stats = manager.stats();
    println!(
        "8 requests, {} connections at the server; pool: {} connects, {} reuses",
        served.accepted.load(Ordering::SeqCst),
        stats.connects,
        stats.reuses
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive::{Connection, FromCache};

    async fn setup(max: usize, max_per_host: usize) -> (Manager<Tagged>, Target, Arc<Served>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::new("tcp", "127.0.0.1", listener.local_addr().unwrap().port());
        let counts = serve(listener, max);
        let manager = Manager::builder()
            .max_per_host(max_per_host)
            .protocol(Tagged { expected: max })
            .build();
        (manager, target, counts)
    }

    async fn hold(manager: &Manager<Tagged>, target: &Target, n: usize) -> Vec<Connection<Mux>> {
        let allocations: Vec<_> = (0..n).map(|_| manager.allocate(target.clone())).collect();
        let mut loans = Vec::new();
        for allocation in allocations {
            loans.push(allocation.await.unwrap());
        }
        loans
    }

    #[tokio::test]
    async fn a_burst_shares_connections_up_to_their_capacity_and_each_counts_once() {
        let (manager, target, counts) = setup(4, 2).await;
        let loans = hold(&manager, &target, 8).await;
        let stats = manager.stats();
        assert_eq!(
            counts.accepted.load(Ordering::SeqCst),
            2,
            "two connections at the server"
        );
        assert_eq!((stats.open, stats.in_use, stats.loans), (2, 2, 8));
        assert_eq!((stats.connects, stats.reuses), (2, 6));
        // All 8 at once, on two shared sockets, each loan ending in its task.
        let calls: Vec<_> = loans
            .into_iter()
            .enumerate()
            .map(|(i, loan)| tokio::spawn(async move { loan.call(&format!("x{i}")).await }))
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), format!("X{i}"));
        }
        let stats = manager.stats();
        assert_eq!((stats.idle, stats.in_use, stats.loans), (2, 0, 0));
        let again = manager.allocate(target).await.unwrap();
        assert_eq!(again.from_cache(), FromCache::Immediate);
    }

    #[tokio::test]
    async fn a_request_for_full_connections_waits_and_gets_the_first_slot_freed() {
        let (manager, target, _) = setup(2, 1).await;
        let mut loans = hold(&manager, &target, 2).await;
        // `allocate` decides at once: both streams are taken and
        // max_per_host is 1, so it waits.
        let waiting = manager.allocate(target.clone());
        assert_eq!(manager.stats().queued, 1);
        drop(loans.pop());
        let third = waiting.await.unwrap();
        assert_eq!(third.from_cache(), FromCache::Deferred);
        assert_eq!(third.call("late").await.unwrap(), "LATE");
        let stats = manager.stats();
        assert_eq!((stats.open, stats.loans, stats.queued), (1, 2, 0));
    }

    #[tokio::test]
    async fn a_discarded_loan_retires_its_connection_which_closes_with_the_last_loan() {
        let (manager, target, counts) = setup(4, 1).await;
        let mut loans = hold(&manager, &target, 2).await;
        loans.pop().unwrap().discard();
        // The retired connection takes no new loan, and max_per_host 1
        // leaves no room for another: the request waits.
        let waiting = manager.allocate(target.clone());
        assert_eq!(manager.stats().queued, 1);
        assert_eq!(
            loans[0].call("still").await.unwrap(),
            "STILL",
            "the other loan goes on"
        );
        drop(loans);
        // Its last loan closed it; the waiter opened a new connection.
        let fresh = waiting.await.unwrap();
        assert_eq!(fresh.from_cache(), FromCache::Fresh);
        assert_eq!(fresh.call("new").await.unwrap(), "NEW");
        let stats = manager.stats();
        assert_eq!((stats.closes.discarded, stats.connects, stats.open), (1, 2, 1));
        assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_never_lent() {
        let (manager, target, counts) = setup(4, 2).await;
        let loan = manager.allocate(target.clone()).await.unwrap();
        // The server answers, then closes the connection.
        let closed = counts.closed.notified();
        assert_eq!(loan.call("bye").await.unwrap(), "BYE");
        closed.await;
        drop(loan);
        let next = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(
            next.from_cache(),
            FromCache::Fresh,
            "the closed connection was not lent"
        );
        assert_eq!(next.call("b").await.unwrap(), "B");
        let stats = manager.stats();
        assert_eq!((stats.stale_discarded, stats.connects), (1, 2));
        assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    }
}
