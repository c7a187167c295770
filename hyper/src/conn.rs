//! The pooled object: hyper's `SendRequest` with its connection task, and
//! the socket they share with the pool.
//!
//! hyper's connection task owns the I/O, so the pool cannot simply peek at
//! "its" socket: the task may have closed it, and the descriptor number may
//! belong to another file by then. Instead the pooled object holds a share
//! of the socket ([`Wire`]) that keeps it open as long as the object exists,
//! so the checkout check is always on the right socket, even on a
//! current-thread runtime where hyper's task has not yet run since the
//! server's FIN arrived. For plain TCP and Unix sockets the share is the
//! write half of Tokio's owned split: hyper's task reads its own read half
//! and writes through the shared one by `&`, and the check is a
//! `MSG_PEEK` through `&` too ([`Health::peek`]), so no request takes a
//! lock for its I/O. TLS needs `&mut` for rustls's state, so there hyper's
//! I/O and the check (reading pending records into the same rustls state
//! hyper reads from) take turns on a mutex. The idle event is the task's
//! end: hyper reads while idle, and ends on a FIN, a reset or stray bytes.
//!
//! The same task gives a connection back: a loan whose response has come
//! is parked with it, and the task returns it to the pool as soon as hyper
//! is ready for the next request (the response body read from the socket),
//! within the poll that made it ready, before the user's task has even seen
//! the body's end. So a request sent right after the previous body was
//! read finds the connection idle, and no task is spawned per request.

use std::future::{poll_fn, Future};
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http_body_util::{Either, Empty};
use hyper::body::Body;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keepalive::{Health, Pooled, Protocol, Stream, Target};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{tcp, unix};

use crate::lock::lock;

/// `$plain` with the plain stream, TCP or Unix, by `&` as `$s`, or
/// `$locked` with the locked one as `$l`: one match, statically, as the
/// write path is hot.
macro_rules! on_socket {
    ($socket:expr, $s:ident => $plain:expr, $l:ident => $locked:expr) => {
        match $socket {
            Socket::Tcp(half) => {
                let $s: &tokio::net::TcpStream = half.as_ref();
                $plain
            }
            Socket::Unix(half) => {
                let $s: &tokio::net::UnixStream = half.as_ref();
                $plain
            }
            Socket::Locked($l) => $locked,
        }
    };
}

/// What hyper's boxed body errors are.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the client can send from any task: the bounds of
/// `Client<B>`, named once for the crate's own items.
pub(crate) trait SendBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> SendBody for B where B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// A connection on loan.
pub(crate) type Loan<B> = keepalive::Connection<Conn<B>>;

/// The body hyper sends: the user's, or none (for a request the client
/// may replay, whose body it keeps no copy of because there is none).
pub(crate) type Payload<B> = Either<B, Empty<<B as Body>::Data>>;

/// The body hyper's HTTP/2 sends: boxed and pinned, as its connection
/// needs an `Unpin` body and the user's may not be.
pub(crate) type Payload2<B> = Pin<Box<Payload<B>>>;

/// Which HTTP the client speaks on a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 by prior knowledge on `http` and `unix` targets (h2c), at
    /// most `max_streams` requests at once on a connection (and never
    /// more than the server's `SETTINGS_MAX_CONCURRENT_STREAMS`).
    Http2 { max_streams: Option<u32> },
}

/// What a connection is assumed to take before the server's SETTINGS
/// said: RFC 9113's recommended minimum for servers, and hyper's initial
/// limit.
const DEFAULT_STREAMS: usize = 100;

/// The protocol step: hyper's handshake on a pooled stream (HTTP/1.1, or
/// HTTP/2 by prior knowledge), and its connection task.
pub(crate) struct Http<B> {
    version: Version,
    body: PhantomData<fn() -> B>,
}

impl<B> Http<B> {
    pub(crate) fn new(version: Version) -> Http<B> {
        Http {
            version,
            body: PhantomData,
        }
    }

    /// The HTTP/2 stream limit of ours, if `target` speaks HTTP/2.
    fn http2_for(&self, target: &Target) -> Option<Option<u32>> {
        match self.version {
            Version::Http2 { max_streams } if target.scheme() != "https" => Some(max_streams),
            _ => None,
        }
    }
}

impl<B> std::fmt::Debug for Http<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Http").field(&self.version).finish()
    }
}

impl<B> Protocol<Stream> for Http<B>
where
    B: SendBody,
{
    type Conn = Conn<B>;
    type Error = io::Error;

    async fn handshake(&self, target: &Target, stream: Stream) -> io::Result<Conn<B>> {
        match self.http2_for(target) {
            Some(max_streams) => handshake2(stream, max_streams).await,
            None => handshake1(stream).await.map_err(io::Error::other),
        }
    }

    fn expected_capacity(&self, target: &Target) -> usize {
        match self.http2_for(target) {
            Some(max_streams) => max_streams.map_or(DEFAULT_STREAMS, |n| n.max(1) as usize),
            None => 1,
        }
    }
}

/// hyper's HTTP/1.1 handshake, and its connection task.
async fn handshake1<B: SendBody>(stream: Stream) -> Result<Conn<B>, hyper::Error> {
    let (io, wire) = SharedIo::new(stream);
    let (send, mut connection) = http1::handshake(TokioIo::new(io)).await?;
    let task = Arc::new(Task::default());
    let shared = task.clone();
    tokio::spawn(async move {
        // Its error, if any, is the request's, which hyper reports there.
        let _ = poll_fn(|cx| {
            let progress = Pin::new(&mut connection).poll(cx);
            shared.release_if_idle();
            progress
        })
        .await;
        shared.end();
    });
    Ok(Conn {
        send: Sender::Http1(send),
        wire,
        task,
    })
}

/// hyper's HTTP/2 handshake by prior knowledge, and its connection task.
/// It ends when the server's first frame (its SETTINGS, RFC 9113 section
/// 3.4) has been read, so the connection's stream limit is known before
/// any request is sent; a connection that ends first (a server that does
/// not speak HTTP/2) fails it.
async fn handshake2<B: SendBody>(stream: Stream, max_streams: Option<u32>) -> io::Result<Conn<B>> {
    let (io, wire) = SharedIo::new(stream);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    let (send, connection) = builder
        .handshake::<_, Payload2<B>>(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    let mut connection = Box::pin(connection);
    first_settings(&wire, &mut connection).await?;
    let cap = max_streams.map_or(usize::MAX, |n| n as usize);
    let task = Arc::new(Task::default());
    task.max_streams
        .store(connection.current_max_send_streams().min(cap), Ordering::Release);
    let shared = task.clone();
    tokio::spawn(async move {
        let _ = poll_fn(|cx| {
            let progress = connection.as_mut().poll(cx);
            let limit = connection.current_max_send_streams().min(cap);
            shared.max_streams.store(limit, Ordering::Release);
            progress
        })
        .await;
        shared.end();
    });
    Ok(Conn {
        send: Sender::Http2(send),
        wire,
        task,
    })
}

/// hyper's HTTP/2 connection, before it is spawned.
type Connection2<B> = Pin<Box<http2::Connection<TokioIo<SharedIo>, Payload2<B>, TokioExecutor>>>;

/// Waits for the server's first frame, which must be SETTINGS. hyper
/// reads the socket on a task of its own; the wire says when the first
/// frame's header (9 bytes) has been read. Meanwhile `connection` is
/// polled, so that its end (a server that closed) ends the wait.
async fn first_settings<B: SendBody>(wire: &Wire, connection: &mut Connection2<B>) -> io::Result<()> {
    let first_frame = wire.first_frame.notified();
    tokio::pin!(first_frame);
    let settled = poll_fn(|cx| {
        if first_frame.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        connection.as_mut().poll(cx).map(Err)
    })
    .await;
    let why = match settled {
        Ok(()) if wire.starts_with_settings() => return Ok(()),
        Ok(()) => "its first bytes are not a SETTINGS frame".to_string(),
        Err(Ok(())) => "it closed the connection".to_string(),
        Err(Err(e)) => e.to_string(),
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server did not answer the HTTP/2 preface with its SETTINGS: {why}"),
    ))
}

/// hyper's sending half, of either version.
pub(crate) enum Sender<B>
where
    B: SendBody,
{
    Http1(http1::SendRequest<Payload<B>>),
    Http2(http2::SendRequest<Payload2<B>>),
}

impl<B> Sender<B>
where
    B: SendBody,
{
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(s) => s.is_closed(),
            Sender::Http2(s) => s.is_closed(),
        }
    }

    fn is_ready(&self) -> bool {
        match self {
            Sender::Http1(s) => s.is_ready(),
            Sender::Http2(s) => s.is_ready(),
        }
    }

    /// Waits until hyper takes a request, or says the connection closed.
    pub(crate) async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::Http1(s) => s.ready().await,
            Sender::Http2(s) => s.ready().await,
        }
    }

    /// Sends `req`. Over HTTP/1.1 a request hyper did not send comes back
    /// with the error; over HTTP/2 its body is pinned in hyper's box, so
    /// only a replayable request's copy can be sent again.
    pub(crate) async fn send(
        &mut self,
        req: http::Request<Payload<B>>,
    ) -> Result<http::Response<Incoming>, Unsent<B>> {
        match self {
            Sender::Http1(s) => s.try_send_request(req).await.map_err(|mut e| Unsent {
                request: e.take_message(),
                error: e.into_error(),
            }),
            Sender::Http2(s) => {
                let (parts, body) = req.into_parts();
                let sending = s.try_send_request(http::Request::from_parts(parts, Box::pin(body)));
                sending.await.map_err(|e: TrySendError<_>| Unsent {
                    request: None,
                    error: e.into_error(),
                })
            }
        }
    }

    /// Whether this is an HTTP/2 connection, lent to many requests at once.
    pub(crate) fn is_http2(&self) -> bool {
        matches!(self, Sender::Http2(_))
    }
}

/// Why hyper did not complete an exchange, and the request when hyper
/// handed it back unsent.
pub(crate) struct Unsent<B: SendBody> {
    pub(crate) error: hyper::Error,
    pub(crate) request: Option<http::Request<Payload<B>>>,
}

/// A pooled HTTP connection: HTTP/1.1, lent whole, or HTTP/2, lent to up
/// to its stream limit of requests at once.
pub(crate) struct Conn<B>
where
    B: SendBody,
{
    pub(crate) send: Sender<B>,
    wire: Arc<Wire>,
    task: Arc<Task<B>>,
}

impl<B> Conn<B>
where
    B: SendBody,
{
    /// Bytes read from the socket since it connected: unchanged across a
    /// failed exchange means no byte of the response arrived.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.wire.read.load(Ordering::Relaxed)
    }

    /// Notes whether the last response said the server closes the
    /// connection after it (`Connection: close`, or HTTP/1.0 without
    /// keep-alive): its close is then the server's doing, counted as
    /// `Closes::connection_close`. Kept with the task, so that the pooled
    /// object stays as small as it was (a larger one is moved by memcpy).
    pub(crate) fn set_server_closes(&self, closes: bool) {
        self.task.server_closes.store(closes, Ordering::Relaxed);
    }

    /// hyper's connection task has ended, or its request channel closed.
    fn is_gone(&self) -> bool {
        self.task.is_ended() || self.send.is_closed()
    }
}

impl<B> Pooled for Conn<B>
where
    B: SendBody,
{
    fn check(&mut self) -> Health {
        if self.is_gone() {
            return Health::Closed;
        }
        if self.send.is_http2() {
            // Bytes waiting on an idle HTTP/2 connection may be harmless
            // frames (PING, WINDOW_UPDATE): hyper's task reads them.
            return Health::Usable;
        }
        on_socket!(&self.wire.socket, s => Health::peek(s), stream => lock(stream).check())
    }

    /// The task's end is the event: hyper reads while the connection is
    /// idle and ends on a FIN, a reset or stray bytes, so no system call
    /// is needed here (the checkout check makes one).
    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        self.task.register(cx.waker());
        if self.is_gone() {
            Health::Closed
        } else {
            Health::Usable
        }
    }

    fn recycle(&mut self) -> bool {
        !self.send.is_closed()
    }

    fn share(&self) -> Option<Conn<B>> {
        match &self.send {
            Sender::Http1(_) => None,
            Sender::Http2(send) => Some(Conn {
                send: Sender::Http2(send.clone()),
                wire: self.wire.clone(),
                task: self.task.clone(),
            }),
        }
    }

    fn capacity(&self) -> usize {
        match self.send {
            Sender::Http1(_) => 1,
            Sender::Http2(_) => self.task.max_streams.load(Ordering::Acquire),
        }
    }

    fn abort(&mut self) {
        // SO_LINGER 0, so that unread data does not leave the socket
        // lingering in the kernel; failing only means a normal close.
        on_socket!(
            &self.wire.socket,
            s => {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            },
            stream => lock(stream).abort()
        )
    }
}

/// The pooled object's share of the socket: it keeps the socket open as
/// long as the object exists, and counts the bytes hyper's task read.
struct Wire {
    socket: Socket,
    /// Written by hyper's task alone.
    read: AtomicU64,
    /// Notified once, when the first 9 bytes (a frame header) have been
    /// read: HTTP/2's handshake waits for the server's SETTINGS.
    first_frame: tokio::sync::Notify,
    /// Those first 9 bytes, kept as they are read.
    head: Mutex<Vec<u8>>,
}

/// The socket, as both sides reach it.
enum Socket {
    /// The write half of a plain TCP stream: hyper writes through it by
    /// `&`, the check peeks through it.
    Tcp(tcp::OwnedWriteHalf),
    /// The same for a Unix socket.
    Unix(unix::OwnedWriteHalf),
    /// TLS: rustls's state needs `&mut`, so hyper's I/O and the check take
    /// turns.
    Locked(Arc<Mutex<Stream>>),
}

/// hyper's half of the socket.
struct SharedIo {
    read: Reader,
    wire: Arc<Wire>,
}

/// What hyper's task reads from: its own read half, or the locked stream.
enum Reader {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
    Locked(Arc<Mutex<Stream>>),
}

impl Wire {
    /// Keeps the first 9 bytes read, and says when they are all there.
    fn keep_head(&self, bytes: &[u8]) {
        let mut head = lock(&self.head);
        let want = 9 - head.len().min(9);
        head.extend_from_slice(&bytes[..bytes.len().min(want)]);
        if head.len() == 9 {
            self.first_frame.notify_one();
        }
    }

    /// Whether the first frame read is a SETTINGS frame on stream 0, as
    /// RFC 9113 section 3.4 requires of a server's preface.
    fn starts_with_settings(&self) -> bool {
        let head = lock(&self.head);
        head.len() == 9 && head[3] == 0x4 && head[5..9] == [0, 0, 0, 0]
    }
}

impl SharedIo {
    /// hyper's half and the pooled object's share of `stream`.
    fn new(stream: Stream) -> (SharedIo, Arc<Wire>) {
        let (read, socket) = match stream.into_tcp() {
            Ok(tcp) => {
                let (read, write) = tcp.into_split();
                (Reader::Tcp(read), Socket::Tcp(write))
            }
            Err(stream) => match stream.into_unix() {
                Ok(unix) => {
                    let (read, write) = unix.into_split();
                    (Reader::Unix(read), Socket::Unix(write))
                }
                Err(stream) => {
                    let stream = Arc::new(Mutex::new(stream));
                    (Reader::Locked(stream.clone()), Socket::Locked(stream))
                }
            },
        };
        let wire = Arc::new(Wire {
            socket,
            read: AtomicU64::new(0),
            first_frame: tokio::sync::Notify::new(),
            head: Mutex::new(Vec::new()),
        });
        (
            SharedIo {
                read,
                wire: wire.clone(),
            },
            wire,
        )
    }

    /// Writes by `&`: Tokio's readiness, then a non-blocking write, which
    /// clears a readiness that was spurious.
    fn poll_write_with(
        cx: &mut Context<'_>,
        ready: impl Fn(&mut Context<'_>) -> Poll<io::Result<()>>,
        write: impl Fn() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Err(e) = std::task::ready!(ready(cx)) {
                return Poll::Ready(Err(e));
            }
            match write() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for SharedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let SharedIo { read, wire } = self.get_mut();
        let before = buf.filled().len();
        let result = match read {
            Reader::Tcp(half) => Pin::new(half).poll_read(cx, buf),
            Reader::Unix(half) => Pin::new(half).poll_read(cx, buf),
            Reader::Locked(stream) => Pin::new(&mut *lock(stream)).poll_read(cx, buf),
        };
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            // One writer: no read-modify-write needed.
            let before = wire.read.load(Ordering::Relaxed);
            wire.read.store(before + n, Ordering::Relaxed);
            if before < 9 {
                wire.keep_head(&buf.filled()[buf.filled().len() - n as usize..]);
            }
        }
        result
    }
}

impl AsyncWrite for SharedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        on_socket!(
            &self.wire.socket,
            s => Self::poll_write_with(cx, |cx| s.poll_write_ready(cx), || s.try_write(buf)),
            stream => Pin::new(&mut *lock(stream)).poll_write(cx, buf)
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_socket!(
            &self.wire.socket,
            s => Self::poll_write_with(cx, |cx| s.poll_write_ready(cx), || s.try_write_vectored(bufs)),
            stream => Pin::new(&mut *lock(stream)).poll_write_vectored(cx, bufs)
        )
    }

    fn is_write_vectored(&self) -> bool {
        match &self.wire.socket {
            Socket::Tcp(_) | Socket::Unix(_) => true,
            Socket::Locked(stream) => lock(stream).is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.wire.socket {
            // A socket has nothing of its own to flush.
            Socket::Tcp(_) | Socket::Unix(_) => Poll::Ready(Ok(())),
            Socket::Locked(stream) => Pin::new(&mut *lock(stream)).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket!(
            &self.wire.socket,
            s => Poll::Ready(socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write)),
            stream => Pin::new(&mut *lock(stream)).poll_shutdown(cx)
        )
    }
}

/// Gives `loan` back to the pool once hyper is ready for the next request
/// on it, or closes it if hyper closes the connection first (the response
/// dropped early, or the server said close). hyper's connection task does
/// it; if hyper is ready already, it happens here.
pub(crate) fn release_when_idle<B>(loan: Loan<B>)
where
    B: SendBody,
{
    // Most often hyper has read the whole response with its head: then
    // the loan goes back now, with no parking.
    if is_settled(&loan) {
        return settle(loan);
    }
    let task = loan.task.clone();
    *lock(&task.parked) = Some(loan);
    task.has_parked.store(true, Ordering::Release);
    task.release_if_idle();
}

/// hyper is done with the loan's exchange: ready for another request, or
/// closed.
fn is_settled<B>(loan: &Loan<B>) -> bool
where
    B: SendBody,
{
    loan.send.is_ready() || loan.send.is_closed()
}

/// Gives a settled loan back to the pool if hyper is ready for another
/// request on it, or else (hyper closed the connection) closes it.
fn settle<B>(loan: Loan<B>)
where
    B: SendBody,
{
    match (
        loan.send.is_ready(),
        loan.task.server_closes.load(Ordering::Relaxed),
    ) {
        (true, _) => drop(loan),
        (false, true) => loan.server_said_close(),
        (false, false) => loan.discard(),
    }
}

/// What the pooled object and hyper's connection task share: the task's
/// end with the waker of the pool's idle watch, and the loan waiting for
/// the connection to be ready again.
struct Task<B>
where
    B: SendBody,
{
    ended: AtomicBool,
    waker: Mutex<Option<Waker>>,
    parked: Mutex<Option<Loan<B>>>,
    /// A loan is in `parked`: lets the connection task's every poll skip
    /// the lock when none is.
    has_parked: AtomicBool,
    /// The last response said the server closes the connection.
    server_closes: AtomicBool,
    /// HTTP/2: the lower of the server's SETTINGS_MAX_CONCURRENT_STREAMS
    /// and the client's cap, as hyper's task last saw it.
    max_streams: AtomicUsize,
}

impl<B> Default for Task<B>
where
    B: SendBody,
{
    fn default() -> Self {
        Task {
            ended: AtomicBool::new(false),
            waker: Mutex::new(None),
            parked: Mutex::new(None),
            has_parked: AtomicBool::new(false),
            server_closes: AtomicBool::new(false),
            max_streams: AtomicUsize::new(1),
        }
    }
}

impl<B> Task<B>
where
    B: SendBody,
{
    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Returns the parked loan to the pool if hyper is ready for another
    /// request, or closes it if hyper closed the connection. The loan is
    /// dropped after the slot's lock is released.
    fn release_if_idle(&self) {
        if !self.has_parked.load(Ordering::Acquire) {
            return;
        }
        let loan = {
            let mut slot = lock(&self.parked);
            match &*slot {
                Some(loan) if is_settled(loan) => {
                    self.has_parked.store(false, Ordering::Release);
                    slot.take()
                }
                _ => None,
            }
        };
        if let Some(loan) = loan {
            settle(loan);
        }
    }

    /// The task ended: wake the idle watch, and close a parked loan.
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
        let parked = lock(&self.parked).take();
        self.has_parked.store(false, Ordering::Release);
        if let Some(loan) = parked {
            loan.discard();
        }
    }

    fn register(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}
