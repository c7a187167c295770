//! One exchange on a loaned connection: hyper's request, what the pool
//! is told of the outcome (the server's hints, a lost race, a discard),
//! and how it failed, for the retry rule.

use http::{Request, Response};
use hyper::body::Incoming;
use keepalive::FromCache;

use crate::body::Held;
use crate::conn::{release_when_idle, Loan, Outgoing, SendBody, Unsent};
use crate::retry::Failure;

/// A response, and for HTTP/2 the loan its body holds until its end (an
/// HTTP/1.1 connection is handed back by hyper's task instead).
pub(crate) type Answer = (Response<Incoming>, Option<Held>);

/// One exchange on a loaned connection; on success the connection is
/// handed back when the response body has been read.
pub(crate) async fn attempt<B>(
    mut conn: Loan<B>,
    req: Request<Outgoing<B>>,
) -> Result<Answer, Failure<Request<Outgoing<B>>>>
where
    B: SendBody,
{
    let reused = conn.from_cache() != FromCache::Fresh;
    let read_before = conn.bytes_read();
    if let Err(error) = conn.send.ready().await {
        // hyper's task saw the server's close before the request went out.
        conn.lost_race();
        return Err(Failure {
            error: crate::Error::from_hyper(error),
            unsent: Some(req),
            reused,
            responded: false,
            refused: false,
        });
    }
    // From here the request is hyper's: if this future is dropped (a
    // timeout, a cancelled request), the connection is closed, never pooled
    // with a response on its way.
    let mut in_flight = InFlight(Some(conn));
    let result = in_flight.loan().send.send(req).await;
    let mut conn = in_flight.done();
    match result {
        Ok(response) if conn.send.is_http2() => Ok((response, Some(Box::new(std::sync::Mutex::new(conn))))),
        Ok(response) => {
            take_hints(&mut conn, &response);
            release_when_idle(conn);
            Ok((response, None))
        }
        Err(e) => Err(failed(conn, e, reused, read_before)),
    }
}

/// A loan whose request hyper has: dropped before the exchange ends, an
/// HTTP/1.1 loan is discarded (a response may be on its way); an HTTP/2
/// loan only ends, as hyper resets the one stream and the connection
/// goes on serving the others.
struct InFlight<B: SendBody>(Option<Loan<B>>);

impl<B: SendBody> InFlight<B> {
    fn loan(&mut self) -> &mut Loan<B> {
        self.0.as_mut().expect("the loan is held until the exchange ends")
    }

    /// The exchange ended: the loan is the caller's again.
    fn done(mut self) -> Loan<B> {
        self.0.take().expect("the loan is held until the exchange ends")
    }
}

impl<B: SendBody> Drop for InFlight<B> {
    fn drop(&mut self) {
        match self.0.take() {
            Some(loan) if !loan.send.is_http2() => loan.discard(),
            _ => {}
        }
    }
}

/// A request hyper could not complete: the pool is told whether the
/// server closed before any answer (the race with its idle close, which
/// the pool cannot see in hyper's reads) or the connection is done for.
/// An HTTP/2 stream's failure ends its loan alone: the connection's own
/// end (a close, a GOAWAY) reaches the pool through its health.
fn failed<B>(conn: Loan<B>, e: Unsent<B>, reused: bool, read_before: u64) -> Failure<Request<Outgoing<B>>>
where
    B: SendBody,
{
    let responded = conn.bytes_read() != read_before;
    let http2 = conn.send.is_http2();
    match () {
        _ if http2 => drop(conn),
        _ if !responded && e.error.hyper().is_some_and(is_close) => conn.lost_race(),
        _ => conn.discard(),
    }
    Failure {
        refused: http2 && e.error.hyper().is_some_and(crate::retry::is_refused),
        error: e.error,
        unsent: e.request,
        reused,
        responded,
    }
}

/// Whether hyper's error is the server's close (end of stream, a reset, or
/// the connection closed before the request went out), not a bad response.
fn is_close(error: &hyper::Error) -> bool {
    let reset = std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .is_some_and(keepalive::Health::is_closed_by_peer);
    reset || error.is_incomplete_message() || error.is_canceled() || error.is_closed()
}

/// The server's `Keep-Alive: timeout=, max=` hints, for the pool.
fn take_hints<B>(conn: &mut Loan<B>, response: &Response<Incoming>)
where
    B: SendBody,
{
    const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
    conn.set_server_closes(server_closes(response));
    let Some(value) = response.headers().get(KEEP_ALIVE) else {
        return;
    };
    let hints = keepalive_http::KeepAlive::parse(value.as_bytes());
    if let Some(timeout) = hints.timeout {
        conn.set_server_idle_timeout(timeout);
    }
    if let Some(max) = hints.max {
        conn.set_remaining_uses(max);
    }
}

/// Whether the server closes the connection after `response`: it said
/// `Connection: close`, or answered HTTP/1.0 without `keep-alive` (RFC 9112
/// section 9.3), as hyper decides it.
fn server_closes(response: &Response<Incoming>) -> bool {
    let http10 = response.version() == http::Version::HTTP_10;
    // One lookup on the common path: a response with no `Connection`.
    let Some(first) = response.headers().get(http::header::CONNECTION) else {
        return http10;
    };
    let tokens = std::iter::once(first)
        .chain(
            response
                .headers()
                .get_all(http::header::CONNECTION)
                .iter()
                .skip(1),
        )
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let (mut close, mut keep_alive) = (false, false);
    for token in tokens {
        close |= token.eq_ignore_ascii_case("close");
        keep_alive |= token.eq_ignore_ascii_case("keep-alive");
    }
    close || (http10 && !keep_alive)
}
