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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keepalive::{Protocol, Stream, Target};

use crate::conn::{Conn, Payload2, SendBody, Sender, Task};
use crate::wire::{SharedIo, Wire};

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
async fn handshake2<B: SendBody>(stream: Stream, max_streams: Option<u32>) -> io::Result<Conn<B>> {
    let (io, wire) = SharedIo::new(stream, true);
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
