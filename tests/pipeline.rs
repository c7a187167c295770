//! The extension points: a custom transport, a protocol step on the pool's
//! own dialing, and an object whose death is its own task's end. Every
//! guarantee of the pool holds for them: limits, timeouts (the protocol
//! step counted as connecting, aborted on cancel), close reasons, recycle,
//! and learning from an object that dies while idle.

mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use keepalive::{Dial, FromCache, Health, Manager, Pooled, Protocol, Stream, Target, Transport};
use support::{until, within, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Dials every target at one address; records what it was asked.
#[derive(Clone)]
struct Fixed {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    remaining: Arc<Mutex<Option<Duration>>>,
}

impl Transport for Fixed {
    type Stream = TcpStream;

    async fn connect(&self, dial: Dial<'_>) -> io::Result<TcpStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.remaining.lock().unwrap() = dial.remaining();
        assert!(dial.addrs().is_empty(), "no lookup was asked for");
        if dial.target().port() == 9 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "port 9 is refused here",
            ));
        }
        TcpStream::connect(self.addr).await
    }
}

#[tokio::test]
async fn a_custom_transport_replaces_dialing_under_the_same_limits() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resolver = Table::default();
    let fixed = Fixed {
        addr: listener.local_addr().unwrap(),
        calls: Arc::default(),
        remaining: Arc::default(),
    };
    let manager = Manager::builder()
        .transport(fixed.clone())
        .resolver(resolver.clone())
        .max_per_host(1)
        .timeout(Duration::from_secs(30))
        .build();
    let a = Target::new("tcp", "a.example", 1);
    let held = within("connect", manager.allocate(a.clone())).await.unwrap();
    let remaining = fixed
        .remaining
        .lock()
        .unwrap()
        .expect("the request has a deadline");
    assert!(remaining <= Duration::from_secs(30) && remaining > Duration::from_secs(20));
    // Per-host limit: the second request for a waits, another key does not.
    let waiting = manager.allocate(a.clone());
    let b = within("connect b", manager.allocate(Target::new("tcp", "b.example", 1)))
        .await
        .unwrap();
    assert_eq!(manager.stats().queued, 1);
    drop(held);
    assert_eq!(
        within("the waiter", waiting).await.unwrap().from_cache(),
        FromCache::Deferred
    );
    drop(b);
    assert_eq!(resolver.calls(), 0, "the transport finds its own way");
    assert_eq!(fixed.calls.load(Ordering::SeqCst), 2);
    let err = manager
        .allocate(Target::new("tcp", "c.example", 9))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "connect");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(
        source.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::PermissionDenied
    );
    assert_eq!(manager.stats().open, 2);
}

/// A protocol that says hello and waits for the server's answer.
#[derive(Debug)]
struct Hello;

impl Protocol<Stream> for Hello {
    type Conn = Stream;
    type Error = io::Error;

    async fn handshake(&self, _: &Target, mut stream: Stream) -> io::Result<Stream> {
        stream.write_all(b"HELLO\n").await?;
        let mut answer = [0; 3];
        stream.read_exact(&mut answer).await?;
        match &answer {
            b"OK\n" => Ok(stream),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "refused")),
        }
    }
}

/// Accepts one connection and reads the greeting.
async fn greeted(listener: &TcpListener) -> TcpStream {
    let (mut side, _) = within("an accept", listener.accept()).await.unwrap();
    let mut hello = [0; 6];
    within("the greeting", side.read_exact(&mut hello)).await.unwrap();
    assert_eq!(&hello, b"HELLO\n");
    side
}

#[tokio::test]
async fn the_protocol_step_runs_once_per_connection_inside_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::new("tcp", "127.0.0.1", listener.local_addr().unwrap().port());
    let manager = Manager::builder().protocol(Hello).build();

    // Silence: the step is counted as connecting, and times out.
    let silent = manager
        .allocate(target.clone())
        .timeout(Duration::from_millis(300));
    let mut side = greeted(&listener).await;
    assert_eq!(manager.stats().connecting, 1);
    let err = within("the timeout", silent).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        within("the aborted step's close", side.read(&mut [0; 1]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(manager.stats().open, 0);

    // Cancelled mid-step: aborted at once.
    let cancelled = manager.allocate(target.clone());
    let mut side = greeted(&listener).await;
    drop(cancelled);
    assert_eq!(
        within("the cancelled step's close", side.read(&mut [0; 1]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(manager.stats().open, 0);

    // Refused: a "handshake" error with the step's own error as source.
    let refused = manager.allocate(target.clone());
    let mut side = greeted(&listener).await;
    side.write_all(b"NO\n").await.unwrap();
    let err = within("the refusal", refused).await.unwrap_err();
    assert_eq!(err.function(), "handshake");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(
        source.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(manager.stats().open, 0);

    // Greeted: once, then reused without another greeting.
    let first = manager.allocate(target.clone());
    let mut side = greeted(&listener).await;
    side.write_all(b"OK\n").await.unwrap();
    drop(within("the greeted connection", first).await.unwrap());
    let again = manager.allocate(target.clone()).await.unwrap();
    assert_eq!(again.from_cache(), FromCache::Immediate);
    drop(again);
    drop(side);
    until("the closed connection to leave", || manager.stats().open == 0).await;
    assert_eq!(manager.stats().connects, 1);
}

/// An object that, like hyper's `SendRequest`, lives by a task of its own:
/// the task owns the socket and ends when the server closes it.
struct Tasked {
    state: Arc<TaskState>,
    uses: u32,
}

#[derive(Default)]
struct TaskState {
    ended: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Pooled for Tasked {
    fn check(&mut self) -> Health {
        if self.state.ended.load(Ordering::Acquire) {
            Health::Closed
        } else {
            Health::Usable
        }
    }

    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        *self.state.waker.lock().unwrap() = Some(cx.waker().clone());
        self.check()
    }

    fn recycle(&mut self) -> bool {
        self.uses += 1;
        self.uses < 3
    }
}

#[derive(Debug)]
struct Spawn;

impl Protocol<Stream> for Spawn {
    type Conn = Tasked;
    type Error = io::Error;

    async fn handshake(&self, _: &Target, mut stream: Stream) -> io::Result<Tasked> {
        let state = Arc::new(TaskState::default());
        let task_state = state.clone();
        tokio::spawn(async move {
            let _ = stream.read(&mut [0; 1]).await;
            task_state.ended.store(true, Ordering::Release);
            if let Some(waker) = task_state.waker.lock().unwrap().take() {
                waker.wake();
            }
        });
        Ok(Tasked { state, uses: 0 })
    }
}

#[tokio::test]
async fn an_object_whose_task_ends_while_idle_is_closed_and_teaches_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::new("tcp", "127.0.0.1", listener.local_addr().unwrap().port());
    let manager = Manager::builder().protocol(Spawn).build();
    drop(manager.allocate(target.clone()).await.unwrap());
    let (side, _) = listener.accept().await.unwrap();
    // Idle a while, then closed by the server: the task's end is the event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(side);
    until("the dead object to leave", || manager.stats().open == 0).await;
    let stats = manager.stats_for(&target);
    assert_eq!(stats.closes.closed_by_peer, 1);
    assert!(stats.server_idle_timeout.is_some(), "learned from the task's end");

    // recycle() refuses the object on its third return.
    for _ in 0..3 {
        drop(manager.allocate(target.clone()).await.unwrap());
    }
    let stats = manager.stats_for(&target);
    assert_eq!(
        (stats.connects, stats.reuses, stats.closes.recycle_refused),
        (2, 2, 1)
    );
}
