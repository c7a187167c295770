//! Loopback servers and helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // Each test binary uses part of this module.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepalive::{Resolve, ResolveFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

pub mod nginx;
pub mod proxy;
pub mod real_proxies;
pub mod servers;
#[cfg(feature = "tls")]
pub mod tls;

/// The longest any awaited event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A test that needs something the machine lacks: fails under `CI=true`;
/// elsewhere it says so on the real standard error, which the test harness
/// does not capture (`eprintln!` would be swallowed when the test passes),
/// and the caller returns early.
pub fn skip_or_fail(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required in CI: {why}");
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let banner = format!(
        "\n!!!!!!!! SKIPPED {test}: {what} is not available ({why}); `bash .ci/run` installs it !!!!!!!!\n\n"
    );
    use std::io::Write;
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// Polls a condition that has no event to await (a pool-internal discard),
/// failing the test after [`DEADLINE`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// What the test tells one server-side connection to do.
#[derive(Debug)]
pub enum Cmd {
    /// Send FIN but keep reading, so the test sees when the client closes.
    HalfClose,
    /// Close with SO_LINGER 0: the client gets a reset.
    Reset,
    /// Write bytes nobody asked for.
    Send(&'static [u8]),
}

/// One accepted connection, seen from the server.
#[derive(Debug)]
pub struct Accepted {
    /// The client's address: its port identifies the client socket.
    pub peer: SocketAddr,
    cmd: mpsc::UnboundedSender<Cmd>,
    closed: Option<oneshot::Receiver<()>>,
}

impl Accepted {
    /// The test's handle on a connection just accepted from `peer`, with
    /// the server side's ends: where commands arrive, and what to signal
    /// when the client has closed.
    pub fn new(peer: SocketAddr) -> (Accepted, mpsc::UnboundedReceiver<Cmd>, oneshot::Sender<()>) {
        let (cmd, cmds) = mpsc::unbounded_channel();
        let (closed_tx, closed) = oneshot::channel();
        (
            Accepted {
                peer,
                cmd,
                closed: Some(closed),
            },
            cmds,
            closed_tx,
        )
    }

    pub fn send(&self, cmd: Cmd) {
        self.cmd.send(cmd).expect("server connection task is alive");
    }

    /// Resolves when the client closed its end (EOF or reset on read).
    pub async fn client_closed(&mut self) {
        let rx = self.closed.take().expect("client_closed awaited once");
        within("the client to close its socket", rx).await.ok();
    }
}

/// An echo server on loopback that reports every accepted connection and
/// obeys [`Cmd`]s per connection.
pub struct Server {
    pub addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Accepted>,
    /// Connections open right now, and the most at once.
    pub live: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start(ip: &str) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (l, p) = (live.clone(), peak.clone());
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let (accepted, cmd_rx, closed_tx) = Accepted::new(peer);
                let _ = tx.send(accepted);
                let l = l.clone();
                tokio::spawn(async move {
                    serve(stream, cmd_rx).await;
                    l.fetch_sub(1, Ordering::SeqCst);
                    let _ = closed_tx.send(());
                });
            }
        });
        Server {
            addr,
            accepted,
            live,
            peak,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next accepted connection.
    pub async fn accepted(&mut self) -> Accepted {
        within("the server to accept", self.accepted.recv())
            .await
            .expect("server alive")
    }

    /// How many connections were accepted and not yet taken with
    /// `accepted()`.
    pub fn pending_accepts(&self) -> usize {
        self.accepted.len()
    }
}

async fn serve(mut stream: TcpStream, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if stream.write_all(&buf[..n]).await.is_err() { return },
            },
            cmd = cmds.recv() => match cmd {
                Some(Cmd::HalfClose) => { let _ = stream.shutdown().await; }
                Some(Cmd::Reset) => {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return;
                }
                Some(Cmd::Send(bytes)) => { let _ = stream.write_all(bytes).await; }
                None => {}
            },
        }
    }
}

/// A port on which nothing listens: connecting is refused.
pub async fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A listener whose accept queue is full and never drained: a connect to
/// it hangs (the SYN is dropped), as to a host that does not answer.
pub struct Blackhole {
    pub port: u16,
    _listener: socket2::Socket,
    _fillers: Vec<std::net::TcpStream>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // With backlog 0 Linux queues one finished handshake; fill that
        // place so that later SYNs are dropped.
        let filler = std::net::TcpStream::connect_timeout(&addr, DEADLINE).expect("first connect is queued");
        let fillers = vec![filler];
        Blackhole {
            port: addr.port(),
            _listener: listener,
            _fillers: fillers,
        }
    }
}

/// A resolver that counts calls and answers with loopback after the test
/// releases it, and reports when a lookup future is dropped unfinished.
#[derive(Clone)]
pub struct Gate {
    pub calls: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicUsize>,
    release: Arc<tokio::sync::watch::Sender<bool>>,
    pub hosts: Arc<Mutex<HashSet<String>>>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            calls: Default::default(),
            dropped: Default::default(),
            release: Arc::new(tokio::sync::watch::channel(false).0),
            hosts: Default::default(),
        }
    }
}

impl Gate {
    /// Lets every lookup, present and future, answer.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}

/// Counts a lookup future dropped before it finished.
struct DropFlag {
    dropped: Arc<AtomicUsize>,
    finished: bool,
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.finished {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Resolve for Gate {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.hosts.lock().unwrap().insert(host.to_owned());
        let mut release = self.release.subscribe();
        let mut flag = DropFlag {
            dropped: self.dropped.clone(),
            finished: false,
        };
        Box::pin(async move {
            let _ = release.wait_for(|open| *open).await;
            flag.finished = true;
            drop(flag);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        })
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// The kernel's TCP state (hex, as in /proc/net/tcp) of the IPv4 loopback
/// connection from `local_port` to `remote_port`, if any. Both ports are
/// matched: an earlier connection that used the same ephemeral port may
/// still linger in TIME_WAIT.
pub fn tcp_state(local_port: u16, remote_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{local_port:04X}");
    let remote = format!("0100007F:{remote_port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1) == Some(&local.as_str()) && cols.get(2) == Some(&remote.as_str()))
            .then(|| cols[3].to_owned())
    })
}

/// CLOSE_WAIT in /proc/net/tcp: the peer's FIN has arrived.
pub const CLOSE_WAIT: &str = "08";

/// A resolver that answers from a fixed table after an optional delay, and
/// counts its calls. Names not in the table fail with `NotFound`.
#[derive(Clone, Default)]
pub struct Table {
    pub calls: Arc<AtomicUsize>,
    answers: Arc<Mutex<std::collections::HashMap<String, Vec<SocketAddr>>>>,
    delay: Duration,
}

impl Table {
    pub fn with_delay(delay: Duration) -> Table {
        Table {
            delay,
            ..Table::default()
        }
    }

    pub fn set(&self, host: &str, addrs: &[SocketAddr]) -> &Table {
        self.answers
            .lock()
            .unwrap()
            .insert(host.to_owned(), addrs.to_vec());
        self
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Resolve for Table {
    fn resolve(&self, host: &str, _port: u16) -> ResolveFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers.lock().unwrap().get(host).cloned();
        let delay = self.delay;
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            answer.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

/// How many of this process's IPv4 loopback sockets are connecting
/// (SYN_SENT) to `remote_port`.
pub fn connecting_to(remote_port: u16) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let needle = format!("0100007F:{remote_port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.get(2) == Some(&needle.as_str()) && cols.get(3) == Some(&"02")
        })
        .count()
}
