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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http_body_util::{Either, Empty};
use hyper::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
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

/// The protocol step: hyper's HTTP/1.1 handshake on a pooled stream, and
/// its connection task.
pub(crate) struct Http1<B>(PhantomData<fn() -> B>);

impl<B> Http1<B> {
    pub(crate) fn new() -> Http1<B> {
        Http1(PhantomData)
    }
}

impl<B> std::fmt::Debug for Http1<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http1")
    }
}

impl<B> Protocol<Stream> for Http1<B>
where
    B: SendBody,
{
    type Conn = Conn<B>;
    type Error = hyper::Error;

    async fn handshake(&self, _: &Target, stream: Stream) -> Result<Conn<B>, hyper::Error> {
        let (io, wire) = SharedIo::new(stream);
        let (send, mut connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
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
        Ok(Conn { send, wire, task })
    }
}

/// A pooled HTTP/1.1 connection.
pub(crate) struct Conn<B>
where
    B: SendBody,
{
    pub(crate) send: SendRequest<Payload<B>>,
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
            wire.read
                .store(wire.read.load(Ordering::Relaxed) + n, Ordering::Relaxed);
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
