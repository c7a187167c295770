//! The pooled object: hyper's `SendRequest` (HTTP/1.1, lent whole, or
//! HTTP/2, shared by many requests at once) with its connection task, and
//! its share of the socket (`wire.rs`). The idle event is the task's end:
//! hyper reads while idle, and ends on a FIN, a reset or stray bytes.
//!
//! The same task gives an HTTP/1.1 connection back: a loan whose response
//! has come is parked with it, and the task returns it to the pool as soon
//! as hyper is ready for the next request (the response body read from the
//! socket), within the poll that made it ready, before the user's task has
//! even seen the body's end. So a request sent right after the previous
//! body was read finds the connection idle, and no task is spawned per
//! request. An HTTP/2 stream's loan is held by its response body instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use hyper::body::Body;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use keepalive::{Health, Pooled};

use crate::lock::lock;
use crate::wire::{on_socket, Wire};

/// What hyper's boxed body errors are.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the client can send from any task: the bounds of
/// `Client<B>`, named once for the crate's own items.
pub(crate) trait SendBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> SendBody for B where B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// A connection on loan.
pub(crate) type Loan<B> = keepalive::Connection<Conn<B>>;

pub(crate) use crate::replay::{Body2, Outgoing, Payload};

/// hyper's sending half, of either version.
pub(crate) enum Sender<B>
where
    B: SendBody,
{
    Http1(http1::SendRequest<Payload<B>>),
    Http2(http2::SendRequest<Body2<B>>),
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
    /// with the error; over HTTP/2 the user's body is pinned in hyper's
    /// box, so only a request held in whole can be sent again.
    pub(crate) async fn send(
        &mut self,
        req: http::Request<Outgoing<B>>,
    ) -> Result<http::Response<Incoming>, Unsent<B>> {
        let (parts, body) = req.into_parts();
        match self {
            Sender::Http1(s) => {
                let Some(body) = body.into_http1() else {
                    // A key's connections keep their protocol; if its
                    // server changed its mind, the copy is not sent.
                    let why = "a copy held for HTTP/2 met an HTTP/1.1 connection";
                    return Err(Unsent {
                        error: crate::Error::body(why.into()),
                        request: None,
                    });
                };
                let sending = s.try_send_request(http::Request::from_parts(parts, body));
                sending.await.map_err(|mut e| Unsent {
                    request: e.take_message().map(|r| r.map(Outgoing::Payload)),
                    error: crate::Error::from_hyper(e.into_error()),
                })
            }
            Sender::Http2(s) => {
                let sending = s.try_send_request(http::Request::from_parts(parts, body.into_http2()));
                sending.await.map_err(|e: TrySendError<_>| Unsent {
                    request: None,
                    error: crate::Error::from_hyper(e.into_error()),
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
    pub(crate) error: crate::Error,
    pub(crate) request: Option<http::Request<Outgoing<B>>>,
}

/// A pooled HTTP connection: HTTP/1.1, lent whole, or HTTP/2, lent to up
/// to its stream limit of requests at once.
pub(crate) struct Conn<B>
where
    B: SendBody,
{
    pub(crate) send: Sender<B>,
    pub(crate) wire: Arc<Wire>,
    pub(crate) task: Arc<Task<B>>,
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

    /// What hyper's task has seen of the connection: a GOAWAY first (the
    /// server's doing, even if the connection has closed since), then
    /// its end.
    fn seen(&self) -> Health {
        if self.wire.is_going_away() {
            Health::GoingAway
        } else if self.task.dead_peer.load(Ordering::Acquire) {
            Health::DeadPeer
        } else if self.is_gone() {
            Health::Closed
        } else {
            Health::Usable
        }
    }
}

impl<B> Pooled for Conn<B>
where
    B: SendBody,
{
    fn check(&mut self) -> Health {
        let seen = self.seen();
        if seen != Health::Usable {
            return seen;
        }
        match self.send.is_http2() {
            // Bytes waiting on an idle HTTP/2 connection may be harmless
            // frames (PING, WINDOW_UPDATE), which hyper's task answers.
            true => self.wire.check_http2(),
            false => on_socket!(&self.wire.socket, s => Health::peek(s), stream => lock(stream).check()),
        }
    }

    /// The task's end is the event: hyper reads while the connection is
    /// idle and ends on a FIN, a reset or stray bytes, so no system call
    /// is needed here (the checkout check makes one).
    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        self.task.register(cx.waker());
        self.seen()
    }

    /// An HTTP/1.1 connection hyper closed is not reused. An HTTP/2 loan
    /// leaves nothing behind: whether the connection goes on is its health
    /// (a GOAWAY, its end), which the pool asks when the last loan ends.
    fn recycle(&mut self) -> bool {
        self.send.is_http2() || !self.send.is_closed()
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
pub(crate) struct Task<B>
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
    pub(crate) max_streams: AtomicUsize,
    /// HTTP/2: the connection ended because a keep-alive PING went
    /// unanswered (`http2_keep_alive`).
    pub(crate) dead_peer: AtomicBool,
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
            dead_peer: AtomicBool::new(false),
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
    pub(crate) fn release_if_idle(&self) {
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
    pub(crate) fn end(&self) {
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
