//! The request bodies hyper sends, and the copy the client keeps of a
//! small one so that a request the server provably did not process can be
//! sent again: [`Outgoing`] (the user's body, or a [`Replay`]) and
//! [`Body2`], HTTP/2's form of it.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body_util::{BodyExt, Either, Empty};
use hyper::body::{Body, Frame, SizeHint};

use crate::conn::{BoxError, SendBody};

/// The largest body of known size the client reads in whole and keeps a
/// copy of (API.md: "at most 64 KiB, such as a `Full<Bytes>`").
pub(crate) const MAX_REPLAY: u64 = 64 * 1024;

/// A body the client holds in whole: sent, and kept to send again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Replay {
    data: Option<Bytes>,
    /// Boxed: rare, and the copy travels in every request's future.
    trailers: Option<Box<HeaderMap>>,
}

impl Replay {
    /// Whether it has no data and no trailers.
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.data.take() {
            Some(data) => Some(Frame::data(data)),
            None => self.trailers.take().map(|t| Frame::trailers(*t)),
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// What the client sends: the user's body or none, or (over HTTP/2) a
/// body it holds in whole, boxed so that the common request stays small.
pub(crate) enum Outgoing<B: SendBody> {
    Payload(Payload<B>),
    Replay(Box<Replay>),
}

/// HTTP/1.1's body: the user's, or none.
pub(crate) type Payload<B> = Either<B, Empty<<B as Body>::Data>>;

impl<B: SendBody> Outgoing<B> {
    /// The request body for `replay`: none, or the copy.
    pub(crate) fn from_replay(replay: &Replay) -> Outgoing<B> {
        match replay.is_empty() {
            true => Outgoing::Payload(Either::Right(Empty::new())),
            false => Outgoing::Replay(Box::new(replay.clone())),
        }
    }

    /// HTTP/1.1's form; `None` for a body held in whole (only HTTP/2
    /// connections are given one, and a key's protocol does not change).
    pub(crate) fn into_http1(self) -> Option<Payload<B>> {
        match self {
            Outgoing::Payload(payload) => Some(payload),
            Outgoing::Replay(replay) if replay.is_empty() => Some(Either::Right(Empty::new())),
            Outgoing::Replay(_) => None,
        }
    }

    /// HTTP/2's form.
    pub(crate) fn into_http2(self) -> Body2<B> {
        match self {
            Outgoing::Payload(payload) => Body2::User(Box::pin(payload)),
            Outgoing::Replay(replay) => Body2::Replay(*replay),
        }
    }
}

/// The request body and the copy kept of it, for a request on a
/// connection of the given version: none, or the user's body; `Err` with
/// the body when it is to be read in whole first ([`read_whole`]): over
/// HTTP/2, a body of known size up to [`MAX_REPLAY`].
pub(crate) fn outgoing<B: SendBody>(body: B, http2: bool) -> Result<(Outgoing<B>, Option<Replay>), B> {
    if body.is_end_stream() {
        return Ok((
            Outgoing::Payload(Either::Right(Empty::new())),
            Some(Replay::default()),
        ));
    }
    let small = body.size_hint().exact().is_some_and(|n| n <= MAX_REPLAY);
    match http2 && small {
        true => Err(body),
        false => Ok((Outgoing::Payload(Either::Left(body)), None)),
    }
}

/// Reads `body` in whole: what is sent, and the copy kept.
///
/// # Errors
///
/// The user's body failed.
pub(crate) async fn read_whole<B: SendBody>(body: B) -> Result<(Outgoing<B>, Option<Replay>), BoxError> {
    let collected = body.collect().await.map_err(Into::into)?;
    let trailers = collected.trailers().cloned().map(Box::new);
    let data = collected.to_bytes();
    let replay = Replay {
        data: (!data.is_empty()).then_some(data),
        trailers,
    };
    Ok((Outgoing::from_replay(&replay), Some(replay)))
}

/// HTTP/2's body: the user's (boxed and pinned, as hyper's HTTP/2 needs an
/// `Unpin` body and the user's may not be; its data as `Bytes`), or one
/// held in whole.
pub(crate) enum Body2<B: SendBody> {
    User(Pin<Box<Payload<B>>>),
    Replay(Replay),
}

impl<B: SendBody> Body for Body2<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            // Either's error is boxed already.
            Body2::User(body) => body.as_mut().poll_frame(cx).map(|frame| {
                frame.map(|frame| frame.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
            }),
            Body2::Replay(replay) => Pin::new(replay).poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body2::User(body) => body.is_end_stream(),
            Body2::Replay(replay) => replay.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body2::User(body) => body.size_hint(),
            Body2::Replay(replay) => replay.size_hint(),
        }
    }
}
