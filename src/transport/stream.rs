//! [`Stream`]: the byte stream the pool's own [`Dialer`](crate::Dialer)
//! makes: TCP, TLS over TCP (feature `tls`), or a Unix domain socket,
//! behind one type so the pool treats them alike.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

#[cfg(keepalive_tls)]
use super::TlsInTls;
use crate::pooled::{Health, Pooled};

/// A connected stream from the pool's [`Dialer`](crate::Dialer): what a
/// [`Connection`](crate::Connection) reads and writes, and what a
/// [`Protocol`](crate::Protocol) step on the pool's dialing receives.
///
/// It is [`Pooled`]: [`check`](Pooled::check) asks the kernel (a
/// non-blocking `MSG_PEEK`; for TLS, reading pending records so that
/// session tickets do not count as data) and [`watch`](Pooled::watch)
/// registers for readability with the reactor. A session built on it
/// delegates both to it.
///
/// # Examples
///
/// ```
/// use keepalive::{Health, Pooled};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
/// let manager = keepalive::Manager::new();
/// let mut conn = manager.allocate(target).await?;
/// let stream: &mut keepalive::Stream = &mut conn;
/// assert_eq!(stream.check(), Health::Usable);
/// assert!(stream.peer_addr()?.ip().is_loopback());
/// # Ok(())
/// # }
/// ```
pub struct Stream {
    inner: Inner,
}

enum Inner {
    Tcp(TcpStream),
    /// Boxed: rustls's state is large.
    #[cfg(keepalive_tls)]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// TLS to an `https` target inside TLS to an HTTPS proxy.
    #[cfg(keepalive_tls)]
    TlsInTls(Box<TlsInTls>),
    Unix(UnixStream),
}

/// Calls `$f` on the inner stream, whichever it is.
macro_rules! each {
    ($inner:expr, $s:ident => $f:expr) => {
        match $inner {
            Inner::Tcp($s) => $f,
            #[cfg(keepalive_tls)]
            Inner::Tls($s) => $f,
            #[cfg(keepalive_tls)]
            Inner::TlsInTls($s) => $f,
            Inner::Unix($s) => $f,
        }
    };
}

impl Stream {
    pub(crate) fn tcp(tcp: TcpStream) -> Stream {
        Stream {
            inner: Inner::Tcp(tcp),
        }
    }

    #[cfg(keepalive_tls)]
    pub(crate) fn tls(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Stream {
        Stream {
            inner: Inner::Tls(Box::new(tls)),
        }
    }

    #[cfg(keepalive_tls)]
    pub(crate) fn tls_in_tls(tls: TlsInTls) -> Stream {
        Stream {
            inner: Inner::TlsInTls(Box::new(tls)),
        }
    }

    pub(crate) fn unix(unix: UnixStream) -> Stream {
        Stream {
            inner: Inner::Unix(unix),
        }
    }

    /// The application protocol the server chose by ALPN during TLS (such
    /// as `b"h2"`), for a TLS stream whose handshake offered some
    /// (`Builder::alpn_protocols`, feature `tls`);
    /// through an `https` proxy, the target's choice. `None` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = keepalive::Manager::new().allocate(target).await?;
    /// assert_eq!(conn.alpn_protocol(), None); // plain TCP
    /// # Ok(())
    /// # }
    /// ```
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.inner {
            #[cfg(keepalive_tls)]
            Inner::Tls(s) => s.get_ref().1.alpn_protocol(),
            #[cfg(keepalive_tls)]
            Inner::TlsInTls(s) => s.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }

    /// The TCP socket underneath (for TLS, the one it runs over; through a
    /// proxy, the socket to the proxy); `None` for a Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = keepalive::Manager::new().allocate(target).await?;
    /// assert!(conn.as_tcp().unwrap().nodelay()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.inner {
            Inner::Tcp(s) => Some(s),
            #[cfg(keepalive_tls)]
            Inner::Tls(s) => Some(s.get_ref().0),
            #[cfg(keepalive_tls)]
            Inner::TlsInTls(s) => Some(s.get_ref().0.get_ref().0),
            Inner::Unix(_) => None,
        }
    }

    /// The TCP stream itself, when this is one with nothing on top (no
    /// TLS; a tunnel through a proxy without TLS is plain TCP to the
    /// proxy); the stream back otherwise. For an object with a task of its
    /// own that reads the socket through a shared reference, checked with
    /// [`Health::peek`].
    ///
    /// # Errors
    ///
    /// The stream itself, unchanged, when it is TLS or a Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// struct Own;
    /// impl keepalive::Protocol<keepalive::Stream> for Own {
    ///     type Conn = tokio::net::TcpStream;
    ///     type Error = std::io::Error;
    ///     async fn handshake(&self, _: &keepalive::Target, s: keepalive::Stream) -> std::io::Result<Self::Conn> {
    ///         s.into_tcp().map_err(|_| std::io::Error::other("not plain TCP"))
    ///     }
    /// }
    /// let manager = keepalive::Manager::builder().protocol(Own).build();
    /// let conn = manager.allocate(target).await?;
    /// assert!(conn.nodelay()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_tcp(self) -> Result<TcpStream, Stream> {
        match self.inner {
            Inner::Tcp(s) => Ok(s),
            inner => Err(Stream { inner }),
        }
    }

    /// The Unix stream itself, when this is one; the stream back otherwise.
    ///
    /// # Errors
    ///
    /// The stream itself, unchanged, when it is not a Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join(format!("keepalive-into-unix-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// # let listener = tokio::net::UnixListener::bind(&path)?;
    /// struct Own;
    /// impl keepalive::Protocol<keepalive::Stream> for Own {
    ///     type Conn = tokio::net::UnixStream;
    ///     type Error = std::io::Error;
    ///     async fn handshake(&self, _: &keepalive::Target, s: keepalive::Stream) -> std::io::Result<Self::Conn> {
    ///         s.into_unix().map_err(|_| std::io::Error::other("not a Unix socket"))
    ///     }
    /// }
    /// let manager = keepalive::Manager::builder().protocol(Own).build();
    /// let conn = manager.allocate(keepalive::Target::unix(&path)).await?;
    /// assert!(conn.peer_addr()?.as_pathname().is_some());
    /// # drop((conn, listener));
    /// # std::fs::remove_file(&path)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_unix(self) -> Result<UnixStream, Stream> {
        match self.inner {
            Inner::Unix(s) => Ok(s),
            inner => Err(Stream { inner }),
        }
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// As `getpeername(2)`; `ErrorKind::Unsupported` for a Unix socket,
    /// which has no IP address.
    ///
    /// # Examples
    ///
    /// See [`Stream`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.ip_socket()?.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`; `ErrorKind::Unsupported` for a Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let conn = keepalive::Manager::new().allocate(target).await?;
    /// assert!(conn.local_addr()?.ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ip_socket()?.local_addr()
    }

    fn ip_socket(&self) -> io::Result<&TcpStream> {
        self.as_tcp()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "a Unix socket has no IP address"))
    }
}

impl Pooled for Stream {
    fn check(&mut self) -> Health {
        match &mut self.inner {
            Inner::Tcp(s) => s.check(),
            #[cfg(keepalive_tls)]
            Inner::Tls(s) => super::liveness::tls::check(s),
            #[cfg(keepalive_tls)]
            Inner::TlsInTls(s) => super::liveness::tls::check_nested(s),
            Inner::Unix(s) => s.check(),
        }
    }

    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        match &mut self.inner {
            Inner::Tcp(s) => s.watch(cx),
            #[cfg(keepalive_tls)]
            Inner::Tls(s) => super::liveness::tls::watch(s, cx),
            #[cfg(keepalive_tls)]
            Inner::TlsInTls(s) => super::liveness::tls::watch_nested(s, cx),
            Inner::Unix(s) => s.watch(cx),
        }
    }

    fn abort(&mut self) {
        match &mut self.inner {
            Inner::Tcp(s) => s.abort(),
            #[cfg(keepalive_tls)]
            Inner::Tls(s) => super::liveness::reset_on_close(socket2::SockRef::from(s.get_ref().0)),
            #[cfg(keepalive_tls)]
            Inner::TlsInTls(s) => {
                super::liveness::reset_on_close(socket2::SockRef::from(s.get_ref().0.get_ref().0))
            }
            Inner::Unix(s) => s.abort(),
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Tcp(_) => "tcp",
            #[cfg(keepalive_tls)]
            Inner::Tls(_) => "tls",
            #[cfg(keepalive_tls)]
            Inner::TlsInTls(_) => "tls-in-tls",
            Inner::Unix(_) => "unix",
        };
        f.debug_struct("Stream")
            .field("kind", &kind)
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.get_mut().inner, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(&mut self.get_mut().inner, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(&mut self.get_mut().inner, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each!(&self.inner, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.get_mut().inner, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.get_mut().inner, s => Pin::new(s).poll_shutdown(cx))
    }
}
