//! [`Body`]: a response body as this crate hands it out, so that a
//! whole-request timeout can end it with this crate's [`Error`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::Error;

/// A loan a response body holds, whatever its request body type: boxed
/// once, behind a mutex only to keep `Body` `Sync` (never contended), so
/// that a body without one (HTTP/1.1's) carries 16 bytes of `None`.
pub(crate) type Held = Box<std::sync::Mutex<dyn Send>>;

/// A response body: hyper's, read through this crate, whose errors are
/// this crate's [`Error`]. With a [`ClientBuilder::timeout`](crate::ClientBuilder::timeout),
/// the next frame after the deadline is an error with
/// [`is_timeout`](Error::is_timeout), and the connection is closed, never
/// pooled mid-response.
///
/// Reading it to its end gives the connection back to the pool (over
/// HTTP/2, its stream: the connection serves others meanwhile); dropping
/// it before the whole body arrived closes an HTTP/1.1 connection, and
/// resets only the stream of an HTTP/2 one.
///
/// # Examples
///
/// ```
/// use http_body_util::BodyExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let url = format!("http://{}/", listener.local_addr()?);
/// # tokio::spawn(async move {
/// #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// #     let (mut s, _) = listener.accept().await.unwrap();
/// #     let mut b = [0; 4096];
/// #     while let Ok(1..) = s.read(&mut b).await {
/// #         let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
/// #     }
/// # });
/// let client: keepalive_hyper::Client = keepalive_hyper::Client::new();
/// let response = client.request(http::Request::get(url).body(Default::default())?).await?;
/// let body: keepalive_hyper::Body = response.into_body();
/// assert_eq!(&body.collect().await?.to_bytes()[..], b"hello");
/// # Ok(())
/// # }
/// ```
pub struct Body {
    inner: Incoming,
    /// An HTTP/2 stream's loan of its connection, ended with the body.
    loan: Option<Held>,
    /// When the whole request's time runs out, and its length; boxed, so
    /// that a body without a timeout is hyper's and 8 bytes.
    deadline: Option<Box<(Pin<Box<Sleep>>, Duration)>>,
    /// The deadline passed: the body ended with a timeout error.
    timed_out: bool,
}

impl Body {
    /// hyper's body, ended by `deadline` (the instant, and the timeout it
    /// ends) if there is one.
    pub(crate) fn new(inner: Incoming, deadline: Option<(Instant, Duration)>, loan: Option<Held>) -> Body {
        Body {
            inner,
            loan,
            deadline: deadline.map(|(at, after)| Box::new((Box::pin(tokio::time::sleep_until(at)), after))),
            timed_out: false,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Some(deadline) = &mut this.deadline {
            let (sleep, after) = &mut **deadline;
            if sleep.as_mut().poll(cx).is_ready() && !this.inner.is_end_stream() {
                this.timed_out = true;
                return Poll::Ready(Some(Err(Error::timed_out(*after, true))));
            }
        }
        let frame = Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(Error::from_hyper);
        // The stream's end (or its error) ends its loan at once: its slot
        // goes to the next request.
        if this.loan.is_some()
            && (matches!(frame, Poll::Ready(None | Some(Err(_)))) || this.inner.is_end_stream())
        {
            this.loan = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("timeout", &self.deadline.as_ref().map(|d| d.1))
            .field("timed_out", &self.timed_out)
            .finish_non_exhaustive()
    }
}
