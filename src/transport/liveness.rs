//! What the kernel knows of a socket that nobody is reading: the
//! [`Pooled`] checks of Tokio's `TcpStream` and `UnixStream` and of a TLS
//! stream over TCP.
//!
//! `check` is a non-blocking `recv(MSG_PEEK)`, which does not wait for the
//! runtime to have noticed a FIN or a reset. `watch` polls the socket once
//! for readability with the pool's waker; Tokio's reactor keeps that waker
//! and wakes it if the peer closes, resets or writes while the socket is
//! idle.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::pooled::{Health, Pooled};

/// How many times one check reads pending TLS records, or re-polls after
/// draining them (or after a spurious readiness), before it gives up and
/// calls the socket unusable.
const MAX_ROUNDS: usize = 16;

impl Pooled for TcpStream {
    fn check(&mut self) -> Health {
        peek_now(SockRef::from(&*self))
    }

    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        match poll_peek_once(self, cx) {
            Poll::Pending => Health::Usable,
            Poll::Ready(Ok(0)) => Health::Closed,
            Poll::Ready(Ok(_)) => Health::Unread,
            Poll::Ready(Err(e)) => failed(&e),
        }
    }

    fn abort(&mut self) {
        reset_on_close(SockRef::from(&*self));
    }
}

impl Pooled for UnixStream {
    fn check(&mut self) -> Health {
        peek_now(SockRef::from(&*self))
    }

    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        // Tokio's UnixStream has no poll_peek: wait for readiness, then
        // peek through `try_io`, which clears a readiness that was spurious.
        for _ in 0..MAX_ROUNDS {
            match self.poll_read_ready(cx) {
                Poll::Pending => return Health::Usable,
                Poll::Ready(Err(e)) => return failed(&e),
                Poll::Ready(Ok(())) => {}
            }
            let peeked = self.try_io(Interest::READABLE, || {
                let mut byte = [MaybeUninit::<u8>::uninit()];
                SockRef::from(&*self).peek(&mut byte)
            });
            match peeked {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return failed(&e),
                Ok(0) => return Health::Closed,
                Ok(_) => return Health::Unread,
            }
        }
        Health::Unread
    }

    fn abort(&mut self) {
        reset_on_close(SockRef::from(&*self));
    }
}

/// SO_LINGER 0, so that unread data does not leave the socket lingering in
/// the kernel. Failing to set it only means a normal close.
pub(super) fn reset_on_close(socket: SockRef<'_>) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

impl Health {
    /// What the kernel says of `socket` now, by a non-blocking `MSG_PEEK`
    /// of one byte: the checkout check of the pool's own TCP and Unix
    /// streams, for an object whose socket another task reads through a
    /// shared reference (hyper's connection task, say), so that its
    /// [`Pooled::check`] cannot lend the socket by `&mut`. It takes no
    /// readiness from that task and does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use keepalive::Health;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let client = std::sync::Arc::new(tokio::net::TcpStream::connect(listener.local_addr()?).await?);
    /// let (server, _) = listener.accept().await?;
    /// assert_eq!(Health::peek(&*client), Health::Usable);
    /// drop(server);
    /// client.readable().await?; // its FIN has arrived
    /// assert_eq!(Health::peek(&*client), Health::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peek(socket: &impl std::os::fd::AsFd) -> Health {
        peek_now(SockRef::from(socket))
    }
}

/// A non-blocking `MSG_PEEK` of one byte.
fn peek_now(socket: SockRef<'_>) -> Health {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    match socket.peek(&mut byte) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Health::Usable,
        Err(e) => failed(&e),
        Ok(0) => Health::Closed,
        Ok(_) => Health::Unread,
    }
}

/// A socket error's meaning: `ETIMEDOUT` is the kernel giving up on a peer
/// that stopped answering (keepalive probes or the user timeout); anything
/// else (a reset, say) is the peer's close.
fn failed(e: &io::Error) -> Health {
    if e.raw_os_error() == Some(libc::ETIMEDOUT) {
        Health::DeadPeer
    } else {
        Health::Closed
    }
}

/// Polls for readability once with `cx`'s waker, which Tokio keeps and
/// wakes when the socket becomes readable.
fn poll_peek_once(tcp: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    // Unconstrained: Tokio's cooperative budget must not turn this one
    // poll into a spurious Pending (and a spurious wake) in a busy task.
    let mut peek = tokio::task::unconstrained(std::future::poll_fn(|cx| tcp.poll_peek(cx, &mut buf)));
    Pin::new(&mut peek).poll(cx)
}

/// TLS over TCP: bytes on the socket may be records that carry no data
/// (session tickets), so they are read and handed to rustls before a
/// verdict. Records are read and decrypted without blocking, straight
/// from the socket (no waiting for the reactor); any plaintext,
/// close_notify or protocol error means the stream cannot be reused. For
/// TLS inside TLS (an `https` target through an HTTPS proxy), the inner
/// records are the outer stream's plaintext, read the same way.
#[cfg(keepalive_tls)]
pub(super) mod tls {
    use super::*;
    use crate::transport::TlsInTls;
    use rustls::ClientConnection;
    use tokio_rustls::client::TlsStream;

    /// What rustls already holds says about the stream, if anything.
    fn verdict(conn: &mut ClientConnection) -> Option<Health> {
        match conn.process_new_packets() {
            Err(_) => Some(Health::Closed),
            Ok(state) if state.plaintext_bytes_to_read() > 0 => Some(Health::Unread),
            Ok(state) if state.peer_has_closed() => Some(Health::Closed),
            Ok(_) => None,
        }
    }

    /// Drains records into `conn` through `read_tls` until none is left.
    fn drain(
        conn: &mut ClientConnection,
        mut read_tls: impl FnMut(&mut ClientConnection) -> io::Result<usize>,
    ) -> Health {
        if let Some(health) = verdict(conn) {
            return health;
        }
        for _ in 0..MAX_ROUNDS {
            match read_tls(conn) {
                Ok(0) => return Health::Closed,
                Ok(_) => {
                    if let Some(health) = verdict(conn) {
                        return health;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Health::Usable,
                Err(e) => return failed(&e),
            }
        }
        Health::Unread
    }

    pub(in crate::transport) fn check(tls: &mut TlsStream<TcpStream>) -> Health {
        let (tcp, conn) = tls.get_mut();
        drain(conn, |conn| conn.read_tls(&mut &*SockRef::from(&*tcp)))
    }

    pub(in crate::transport) fn check_nested(tls: &mut TlsInTls) -> Health {
        let (outer, inner) = tls.get_mut();
        let (tcp, outer) = outer.get_mut();
        drain(inner, |inner| {
            inner.read_tls(&mut Plaintext {
                tcp: &*tcp,
                conn: &mut *outer,
            })
        })
    }

    /// The outer stream's plaintext as a non-blocking `io::Read`: what
    /// rustls holds, else one more record from the socket.
    struct Plaintext<'a> {
        tcp: &'a TcpStream,
        conn: &'a mut ClientConnection,
    }

    impl io::Read for Plaintext<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            for _ in 0..MAX_ROUNDS {
                match self.conn.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    done => return done,
                }
                if self.conn.read_tls(&mut &*SockRef::from(self.tcp))? == 0 {
                    return Ok(0);
                }
                self.conn
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Waits for the socket with the pool's waker; when it has bytes,
    /// `check` says what they mean. What rustls already holds needs no
    /// system call.
    fn watch_with<S>(
        tls: &mut S,
        cx: &mut Context<'_>,
        parts: impl Fn(&mut S) -> (&TcpStream, &mut ClientConnection),
        check: impl Fn(&mut S) -> Health,
    ) -> Health {
        if let Some(health) = verdict(parts(tls).1) {
            return health;
        }
        for _ in 0..MAX_ROUNDS {
            match poll_peek_once(parts(tls).0, cx) {
                Poll::Pending => return Health::Usable,
                Poll::Ready(Ok(0)) => return Health::Closed,
                Poll::Ready(Err(e)) => return failed(&e),
                Poll::Ready(Ok(_)) => match check(tls) {
                    Health::Usable => {}
                    health => return health,
                },
            }
        }
        Health::Unread
    }

    pub(in crate::transport) fn watch(tls: &mut TlsStream<TcpStream>, cx: &mut Context<'_>) -> Health {
        watch_with(
            tls,
            cx,
            |tls| {
                let (tcp, conn) = tls.get_mut();
                (&*tcp, conn)
            },
            check,
        )
    }

    pub(in crate::transport) fn watch_nested(tls: &mut TlsInTls, cx: &mut Context<'_>) -> Health {
        watch_with(
            tls,
            cx,
            |tls| {
                let (outer, inner) = tls.get_mut();
                (outer.get_ref().0, inner)
            },
            check_nested,
        )
    }
}
