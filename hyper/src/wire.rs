//! The socket as hyper's task and the pooled object share it.
//!
//! hyper's connection task owns the I/O, so the pool cannot simply peek at
//! "its" socket: the task may have closed it, and the descriptor number may
//! belong to another file by then. Instead the pooled object holds a share
//! of the socket ([`Wire`]) that keeps it open as long as the object exists,
//! so the checkout check is always on the right socket, even on a
//! current-thread runtime where hyper's task has not yet run since the
//! server's FIN arrived. For plain TCP and Unix sockets the share is the
//! write half of Tokio's owned split: hyper's task reads its own read half
//! ([`SharedIo`]) and writes through the shared one by `&`, and the check
//! is a `MSG_PEEK` through `&` too (`Health::peek`), so no request takes a
//! lock for its I/O. TLS needs `&mut` for rustls's state, so there hyper's
//! I/O and the check (reading pending records into the same rustls state
//! hyper reads from) take turns on a mutex.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use keepalive::{Health, Pooled, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{tcp, unix};

use crate::frames::{self, FrameHead, FrameScan};
use crate::lock::lock;

/// `$plain` with the plain stream, TCP or Unix, by `&` as `$s`, or
/// `$locked` with the locked one as `$l`: one match, statically, as the
/// write path is hot.
macro_rules! on_socket {
    ($socket:expr, $s:ident => $plain:expr, $l:ident => $locked:expr) => {
        match $socket {
            $crate::wire::Socket::Tcp(half) => {
                let $s: &tokio::net::TcpStream = half.as_ref();
                $plain
            }
            $crate::wire::Socket::Unix(half) => {
                let $s: &tokio::net::UnixStream = half.as_ref();
                $plain
            }
            $crate::wire::Socket::Locked($l) => $locked,
        }
    };
}

pub(crate) use on_socket;

/// The pooled object's share of the socket: it keeps the socket open as
/// long as the object exists, and counts the bytes hyper's task read.
pub(crate) struct Wire {
    pub(crate) socket: Socket,
    /// Written by hyper's task alone.
    pub(crate) read: AtomicU64,
    /// HTTP/2: notified when the first frame's header has been read (the
    /// handshake waits for the server's SETTINGS), and what was seen.
    pub(crate) first_frame: tokio::sync::Notify,
    first_settings: AtomicBool,
    /// HTTP/2: the server sent GOAWAY.
    goaway: AtomicBool,
    /// HTTP/2: the frames in what hyper's task reads, followed as it
    /// reads (its lock is taken once a read); the checkout check reads on
    /// from there.
    scan: Option<Mutex<FrameScan>>,
}

/// The socket, as both sides reach it.
pub(crate) enum Socket {
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
pub(crate) struct SharedIo {
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
    /// Notes an HTTP/2 frame header hyper's task read.
    fn frame(&self, head: FrameHead) {
        if head.first {
            let settings = head.kind == frames::SETTINGS && head.stream == 0;
            self.first_settings.store(settings, Ordering::Release);
            self.first_frame.notify_one();
        }
        if head.kind == frames::GOAWAY {
            self.goaway.store(true, Ordering::Release);
        }
    }

    /// Whether the first frame read is a SETTINGS frame on stream 0, as
    /// RFC 9113 section 3.4 requires of a server's preface.
    pub(crate) fn starts_with_settings(&self) -> bool {
        self.first_settings.load(Ordering::Acquire)
    }

    /// HTTP/2's checkout check of an idle connection, by what arrived that
    /// hyper's task has not read: a FIN or a reset is its close; a GOAWAY
    /// among the frames, its end (no new stream); other frames (PING,
    /// SETTINGS, WINDOW_UPDATE) are hyper's to answer, and it is usable.
    /// One `MSG_PEEK` of a byte, as for HTTP/1.1, unless bytes are
    /// waiting. Over TLS, the pending records are read into rustls (as for
    /// HTTP/1.1), which sees a close; the frames inside are left to hyper.
    pub(crate) fn check_http2(&self) -> Health {
        on_socket!(
            &self.socket,
            s => match Health::peek(s) {
                Health::Unread => self.pending_goaway(std::os::fd::AsFd::as_fd(s)),
                health => health,
            },
            stream => match lock(stream).check() {
                Health::Unread => Health::Usable,
                health => health,
            }
        )
    }

    /// Whether the frames waiting in the socket (up to 16 KiB of them)
    /// hold a GOAWAY. `recv(2)` with `MSG_PEEK` is the same call for any
    /// stream socket, TCP or Unix: std's `TcpStream::peek` makes it, on a
    /// duplicate of the descriptor (this path is rare: bytes that arrived
    /// on an idle connection before hyper's task read them).
    fn pending_goaway(&self, fd: std::os::fd::BorrowedFd<'_>) -> Health {
        let Some(scan) = &self.scan else {
            return Health::Unread;
        };
        // Out of descriptors: the frames are left to hyper's task.
        let Ok(fd) = fd.try_clone_to_owned() else {
            return Health::Usable;
        };
        let mut buf = vec![0u8; 16 << 10];
        match std::net::TcpStream::from(fd).peek(&mut buf) {
            Ok(0) => Health::Closed,
            Ok(n) if lock(scan).sees_goaway_in(&buf[..n]) => Health::GoingAway,
            Ok(_) => Health::Usable,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Health::Usable,
            // The kernel gave up on a peer that stopped answering.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Health::DeadPeer,
            Err(_) => Health::Closed,
        }
    }

    /// Whether the server sent GOAWAY: the connection takes no new stream.
    pub(crate) fn is_going_away(&self) -> bool {
        self.goaway.load(Ordering::Acquire)
    }
}

impl SharedIo {
    /// hyper's half and the pooled object's share of `stream`; for
    /// `http2`, with the frames followed.
    pub(crate) fn new(stream: Stream, http2: bool) -> (SharedIo, Arc<Wire>) {
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
            first_settings: AtomicBool::new(false),
            goaway: AtomicBool::new(false),
            scan: http2.then(Mutex::default),
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
            if let Some(scan) = &wire.scan {
                lock(scan).feed(&buf.filled()[before..], |head| wire.frame(head));
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
