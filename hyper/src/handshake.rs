//! The protocol step: hyper's handshake on a stream the pool dialed,
//! HTTP/1.1 or HTTP/2 by prior knowledge, and the task that drives hyper's
//! connection.

use std::future::{poll_fn, Future};
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use keepalive::{Protocol, Stream, Target};

use crate::conn::{Body2, Conn, SendBody, Sender, Task};
use crate::live::Live;
use crate::settings::{Boxed, Http2Settings};
use crate::wire::{SharedIo, Wire};

/// Which HTTP the client speaks on a new connection, and its HTTP/2
/// stream limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) offer: Offer,
    /// Each HTTP/2 connection's settings, its stream limit among them.
    pub(crate) http2: Http2Settings,
}

/// What a client offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// `https`: `h2` and `http/1.1` by ALPN, the server chooses; `http`
    /// and `unix`: HTTP/1.1.
    Negotiate,
    /// HTTP/1.1 alone (ALPN offers `http/1.1`).
    Http1Only,
    /// HTTP/2 without negotiation: h2c on `http` and `unix`; on `https`,
    /// ALPN offers `h2` alone.
    Http2Only,
}

impl Version {
    /// The protocols ALPN offers to `https` targets.
    #[cfg(feature = "tls")]
    pub(crate) fn alpn(&self) -> &'static [&'static str] {
        match self.offer {
            Offer::Negotiate => &["h2", "http/1.1"],
            Offer::Http1Only => &["http/1.1"],
            Offer::Http2Only => &["h2"],
        }
    }
}

/// What a connection is assumed to take before the server's SETTINGS
/// said: RFC 9113's recommended minimum for servers, and hyper's initial
/// limit.
const DEFAULT_STREAMS: usize = 100;

/// The protocol step: hyper's handshake on a pooled stream (HTTP/1.1, or
/// HTTP/2 by prior knowledge), and its connection task.
pub(crate) struct Http<B> {
    version: Version,
    /// The client's live connections, each added as it is made.
    live: Arc<Live>,
    body: PhantomData<fn() -> B>,
}

impl<B> Http<B> {
    pub(crate) fn new(version: Version, live: Arc<Live>) -> Http<B> {
        Http {
            version,
            live,
            body: PhantomData,
        }
    }

    /// Whether `target`'s connections may speak HTTP/2: by prior
    /// knowledge, or by ALPN on `https`.
    fn may_speak_http2(&self, target: &Target) -> bool {
        match self.version.offer {
            Offer::Http1Only => false,
            Offer::Http2Only => true,
            Offer::Negotiate => target.is_tls(),
        }
    }

    /// Whether the connection `stream` to `target` speaks HTTP/2: on
    /// `https`, as ALPN chose.
    ///
    /// # Errors
    ///
    /// With prior knowledge, an `https` server that chose no protocol.
    fn speaks_http2(&self, target: &Target, stream: &Stream) -> io::Result<bool> {
        if !target.is_tls() {
            return Ok(self.may_speak_http2(target));
        }
        match (stream.alpn_protocol(), self.version.offer) {
            (Some(b"h2"), _) => Ok(true),
            (None, Offer::Http2Only) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server chose no protocol by ALPN, and http2_prior_knowledge needs it to agree to h2",
            )),
            _ => Ok(false),
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
        let conn = match self.speaks_http2(target, &stream)? {
            true => handshake2(stream, &self.version.http2).await?,
            false => handshake1(stream).await.map_err(io::Error::other)?,
        };
        self.live.add(&conn.wire);
        Ok(conn)
    }

    /// Before a key's first connection: its stream limit where it may
    /// speak HTTP/2 (so a burst to a new `https` key waits for one ALPN
    /// answer), else 1. The pool then learns it from each connection.
    fn expected_capacity(&self, target: &Target) -> usize {
        match self.may_speak_http2(target) {
            true => self
                .version
                .http2
                .max_streams
                .map_or(DEFAULT_STREAMS, |n| n.max(1) as usize),
            false => 1,
        }
    }
}

/// hyper's HTTP/1.1 handshake, and its connection task.
async fn handshake1<B: SendBody>(stream: Stream) -> Result<Conn<B>, hyper::Error> {
    let (io, wire) = SharedIo::new(stream, false);
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
async fn handshake2<B: SendBody>(stream: Stream, settings: &Http2Settings) -> io::Result<Conn<B>> {
    let (io, wire) = SharedIo::new(stream, true);
    let (send, connection) = settings
        .builder()
        .handshake::<_, Body2<B>>(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    let mut connection = Box::pin(connection);
    first_settings(&wire, &mut connection).await?;
    if connection.current_max_send_streams() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server allows 0 streams at once (SETTINGS_MAX_CONCURRENT_STREAMS 0)",
        ));
    }
    let cap = settings.max_streams.map_or(usize::MAX, |n| n as usize);
    let task = Arc::new(Task::default());
    task.max_streams
        .store(connection.current_max_send_streams().min(cap), Ordering::Release);
    let shared = task.clone();
    tokio::spawn(async move {
        let ended = poll_fn(|cx| {
            let progress = connection.as_mut().poll(cx);
            let limit = connection.current_max_send_streams().min(cap);
            shared.max_streams.store(limit, Ordering::Release);
            progress
        })
        .await;
        // hyper's keep-alive PING went unanswered.
        if ended.is_err_and(|e| e.is_timeout()) {
            shared.dead_peer.store(true, Ordering::Release);
        }
        shared.end();
    });
    Ok(Conn {
        send: Sender::Http2(send),
        wire,
        task,
    })
}

/// hyper's HTTP/2 connection, before it is spawned.
type Connection2<B> = Pin<Box<http2::Connection<TokioIo<SharedIo>, Body2<B>, Boxed>>>;

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
