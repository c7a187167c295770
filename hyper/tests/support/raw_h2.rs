//! A scripted HTTP/2 server written frame by frame, for what real servers
//! do rarely and hyper's server never does on request: refusing a stream,
//! a GOAWAY above a stream, no SETTINGS at all, floods. Each stream's
//! HEADERS takes the next [`Act`] of the script (`Answer` when it is
//! empty); a response is `:status 200` (HPACK static index 8) with no body.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// SETTINGS identifiers (RFC 9113 section 6.5.2).
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// HTTP/2 error codes (RFC 9113 section 7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const INTERNAL_ERROR: u32 = 0x2;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// What the server does with a stream.
#[derive(Clone, Copy, Debug)]
pub enum Act {
    /// `:status 200`, no body.
    Answer,
    /// RST_STREAM with this code.
    Reset(u32),
    /// GOAWAY whose last stream id is the one before this stream, with this
    /// code; the connection then closes once the client has read it.
    GoAway(u32),
    /// `:status 200`; then, once `go` is notified, with `goaway` a GOAWAY
    /// (last stream: this one, NO_ERROR) and with `close` the
    /// connection's end (FIN); then a word on `done`.
    AnswerThenLeave { goaway: bool, close: bool },
    /// Nothing, ever.
    Ignore,
    /// 10,000 PINGs, then the answer.
    PingFlood,
    /// HEADERS without END_HEADERS, then CONTINUATION frames forever.
    ContinuationFlood,
    /// `:status 200` and a header of this many bytes.
    BigHeader(usize),
}

/// What the server says when a connection opens.
#[derive(Clone, Copy, Debug)]
pub enum Greeting {
    /// SETTINGS with these (identifier, value) pairs.
    Settings(&'static [(u16, u32)]),
    /// Nothing at all (it reads, and never answers).
    Silent,
}

/// The server: its port, its script, and what it saw.
pub struct RawH2 {
    pub port: u16,
    script: Arc<Mutex<VecDeque<Act>>>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Streams whose HEADERS arrived.
    pub streams: Arc<AtomicUsize>,
    /// A word for each `AnswerThenLeave` done: its bytes are in the
    /// client's socket (a blocking receive, for a test that must not let
    /// its runtime run meanwhile).
    pub done: Option<std::sync::mpsc::Receiver<()>>,
    /// What `AnswerThenLeave` waits for before it leaves.
    pub go: Arc<tokio::sync::Notify>,
    /// The accepting task, stopped (its listener closed) on drop.
    accepting: Option<tokio::task::AbortHandle>,
}

impl Drop for RawH2 {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
    }
}

impl RawH2 {
    pub async fn start(greeting: Greeting, script: impl IntoIterator<Item = Act>) -> RawH2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (left, done) = std::sync::mpsc::channel();
        let go = Arc::new(tokio::sync::Notify::new());
        let mut server = RawH2 {
            done: Some(done),
            go: go.clone(),
            accepting: None,
            port: listener.local_addr().unwrap().port(),
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            connections: Arc::default(),
            streams: Arc::default(),
        };
        let (script, connections, streams) = (
            server.script.clone(),
            server.connections.clone(),
            server.streams.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let conn = Conn {
                    socket,
                    script: script.clone(),
                    streams: streams.clone(),
                    left: left.clone(),
                    go: go.clone(),
                };
                tokio::spawn(conn.serve(greeting));
            }
        });
        server.accepting = Some(task.abort_handle());
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

/// A [`RawH2`] on a thread and runtime of its own, for a test whose own
/// runtime must not run while the server acts; stopped on drop.
pub struct Elsewhere {
    pub port: u16,
    pub go: Arc<tokio::sync::Notify>,
    pub done: std::sync::mpsc::Receiver<()>,
    pub connections: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Elsewhere {
    pub fn start(greeting: Greeting, script: Vec<Act>) -> Elsewhere {
        let (started, on_start) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut server = RawH2::start(greeting, script).await;
                let done = server.done.take().unwrap();
                let _ = started.send((server.port, server.go.clone(), done, server.connections.clone()));
                let _ = stopped.await;
            });
        });
        let (port, go, done, connections) = on_start.recv().unwrap();
        Elsewhere {
            port,
            go,
            done,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Conn {
    left: std::sync::mpsc::Sender<()>,
    go: Arc<tokio::sync::Notify>,
    socket: TcpStream,
    script: Arc<Mutex<VecDeque<Act>>>,
    streams: Arc<AtomicUsize>,
}

impl Conn {
    async fn serve(mut self, greeting: Greeting) {
        let mut preface = [0; 24];
        if self.socket.read_exact(&mut preface).await.is_err() {
            return;
        }
        if let Greeting::Settings(pairs) = greeting {
            let payload: Vec<u8> = pairs
                .iter()
                .flat_map(|(id, value)| [&id.to_be_bytes()[..], &value.to_be_bytes()].concat())
                .collect();
            self.frame(SETTINGS, 0, 0, &payload).await;
        }
        while let Some((kind, flags, stream, _)) = self.read_frame().await {
            let silent = matches!(greeting, Greeting::Silent);
            match kind {
                SETTINGS if flags & ACK == 0 && !silent => self.frame(SETTINGS, ACK, 0, &[]).await,
                HEADERS => {
                    self.streams.fetch_add(1, Ordering::SeqCst);
                    let act = self.script.lock().unwrap().pop_front().unwrap_or(Act::Answer);
                    if !self.act(act, stream).await {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// Does `act` for `stream`; false when the connection is to end.
    async fn act(&mut self, act: Act, stream: u32) -> bool {
        match act {
            Act::Answer => {
                self.frame(HEADERS, END_HEADERS | END_STREAM, stream, &[0x88])
                    .await
            }
            Act::Reset(code) => self.frame(RST_STREAM, 0, stream, &code.to_be_bytes()).await,
            Act::GoAway(code) => {
                let last = stream.saturating_sub(2);
                let payload = [last.to_be_bytes(), code.to_be_bytes()].concat();
                self.frame(GOAWAY, 0, 0, &payload).await;
                // Until the client closes: what it read is all it gets.
                while self.read_frame().await.is_some() {}
                return false;
            }
            Act::AnswerThenLeave { goaway, close } => {
                self.frame(HEADERS, END_HEADERS | END_STREAM, stream, &[0x88])
                    .await;
                self.go.notified().await;
                if goaway {
                    let payload = [stream.to_be_bytes(), NO_ERROR.to_be_bytes()].concat();
                    self.frame(GOAWAY, 0, 0, &payload).await;
                }
                if close {
                    let _ = self.socket.shutdown().await;
                }
                self.delivered(close).await;
                let _ = self.left.send(());
                if close {
                    return false;
                }
            }
            Act::Ignore => {}
            Act::BigHeader(n) => {
                // A literal header, not indexed, new name "x", value n bytes.
                let mut block = vec![0x88, 0x00, 0x01, b'x'];
                block.extend(hpack_length(n));
                block.extend(std::iter::repeat_n(b'y', n));
                // In frames of at most 16 KiB, the default SETTINGS_MAX_FRAME_SIZE.
                let chunks: Vec<&[u8]> = block.chunks(16 << 10).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    let kind = if i == 0 { HEADERS } else { CONTINUATION };
                    let end = if i + 1 == chunks.len() { END_HEADERS } else { 0 };
                    let flags = end | if i == 0 { END_STREAM } else { 0 };
                    self.frame(kind, flags, stream, chunk).await;
                }
            }
            Act::PingFlood => {
                for i in 0..10_000u64 {
                    self.frame(PING, 0, 0, &i.to_be_bytes()).await;
                }
                self.frame(HEADERS, END_HEADERS | END_STREAM, stream, &[0x88])
                    .await;
            }
            Act::ContinuationFlood => {
                self.frame(HEADERS, 0, stream, &[0x88]).await;
                // A header of 156 bytes, over and over, never ending the
                // block: at most 100,000 frames (16 MB), or until the
                // client closes.
                let block = [&[0x40, 0x01, b'x', 0x7f, 0x1d][..], &[b'y'; 156][..]].concat();
                let frame = [&header(CONTINUATION, 0, stream, block.len())[..], &block].concat();
                for _ in 0..100_000 {
                    if self.socket.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                return false;
            }
        }
        true
    }

    /// Until the client's kernel has everything written (and, after a
    /// shutdown, the FIN): no unacknowledged bytes, and FIN_WAIT2. The
    /// kernel's state has no event to await; it is polled, bounded.
    async fn delivered(&self, fin: bool) {
        use std::os::fd::AsRawFd;
        let fd = self.socket.as_raw_fd();
        let settled = || {
            let mut unacked: libc::c_int = 0;
            let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            // SAFETY: both calls write into values of our own of the
            // sizes they are given, on a socket this connection owns.
            let ok = unsafe {
                libc::ioctl(fd, libc::TIOCOUTQ, &mut unacked) == 0
                    && libc::getsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_INFO,
                        (&mut info as *mut libc::tcp_info).cast(),
                        &mut len,
                    ) == 0
            };
            const FIN_WAIT2: u8 = 5;
            ok && unacked == 0 && (!fin || info.tcpi_state == FIN_WAIT2)
        };
        let deadline = tokio::time::Instant::now() + super::DEADLINE;
        while !settled() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await; // the kernel's state has no event
        }
    }

    async fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let bytes = [&header(kind, flags, stream, payload.len())[..], payload].concat();
        let _ = self.socket.write_all(&bytes).await;
    }

    /// The next frame's type, flags, stream and payload; `None` at the end.
    async fn read_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0; 9];
        self.socket.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        self.socket.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream, payload))
    }
}

/// An HPACK string length of `n`, no Huffman (RFC 7541 section 5.1, a
/// 7-bit prefix).
fn hpack_length(mut n: usize) -> Vec<u8> {
    if n < 127 {
        return vec![n as u8];
    }
    let mut out = vec![127];
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
    out
}

/// A frame header (RFC 9113 section 4.1).
fn header(kind: u8, flags: u8, stream: u32, len: usize) -> [u8; 9] {
    let len = (len as u32).to_be_bytes();
    let id = stream.to_be_bytes();
    [len[1], len[2], len[3], kind, flags, id[0], id[1], id[2], id[3]]
}
