//! The retry rule: a request the server provably did not process is sent
//! again, on another connection (or, for a refused HTTP/2 stream, the same
//! one), when
//!
//! * hyper handed it back unsent (the connection closed before it was
//!   written), or
//! * over HTTP/2, whatever its method, when the client holds its body in
//!   whole (none, or one of known size up to 64 KiB, read first and kept):
//!   the server refused its stream (`REFUSED_STREAM`, RFC 9113 section 8.7) or ended
//!   it with a GOAWAY of code `NO_ERROR` (it was above the GOAWAY's last
//!   stream id), or
//! * its method is idempotent (RFC 9110 9.2.2: `GET`, `HEAD`, `OPTIONS`,
//!   `TRACE`, `PUT`, `DELETE`), it has no body, and it failed on a reused
//!   connection before any byte of its response arrived: the server's idle
//!   close met it on the way (Go's `Transport` rule; over HTTP/2, a
//!   connection lost without GOAWAY).
//!
//! Nothing else is retried: not a request on a fresh connection that
//! failed otherwise (the server saw it fail, not a race), not one whose
//! body the client does not hold and hyper did not hand back, not one whose response had begun, not a
//! stream a GOAWAY with an error code ended or reset with another code
//! (it may have been processed). At most [`MAX_ATTEMPTS`] sends in all.

use http::Method;

/// RFC 9110 9.2.2.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Sends of one request at most, every rule together.
pub(crate) const MAX_ATTEMPTS: usize = 10;

/// Whether hyper's HTTP/2 error says the server did not process the
/// stream: `REFUSED_STREAM`, or a GOAWAY of code `NO_ERROR` from the
/// server (h2 ends the streams above its last stream id with it).
pub(crate) fn is_refused(error: &hyper::Error) -> bool {
    let Some(h2) = std::error::Error::source(error).and_then(|e| e.downcast_ref::<h2::Error>()) else {
        return false;
    };
    match h2.reason() {
        Some(h2::Reason::REFUSED_STREAM) => h2.is_remote(),
        Some(h2::Reason::NO_ERROR) => h2.is_go_away() && h2.is_remote(),
        _ => false,
    }
}

/// What a request's retries need: where it goes, and a copy of it when
/// the client holds its body in whole.
pub(crate) struct Resend {
    pub(crate) target: keepalive::Target,
    pub(crate) host: Option<http::HeaderValue>,
    /// Idempotent and without a body: HTTP/1.1's rule applies.
    pub(crate) lost_race_rule: bool,
    pub(crate) copy: Option<(http::request::Parts, crate::replay::Replay)>,
}

/// How an attempt failed, for the rule.
pub(crate) struct Failure<R> {
    pub(crate) error: crate::Error,
    /// The request, when hyper handed it back unsent.
    pub(crate) unsent: Option<R>,
    /// It ran on a connection from the pool, not a fresh one.
    pub(crate) reused: bool,
    /// Some byte of the response had arrived.
    pub(crate) responded: bool,
    /// HTTP/2: the server refused the stream ([`is_refused`]).
    pub(crate) refused: bool,
}

impl<R> Failure<R> {
    /// The request to send again, if the rule allows: the one hyper handed
    /// back, or else the copy `copy` makes (kept only for replayable
    /// requests), asked for only when the rule takes it.
    /// `lost_race_rule`: the request is idempotent and has no body, so
    /// HTTP/1.1's rule may send it again.
    pub(crate) fn retry(
        self,
        lost_race_rule: bool,
        copy: impl FnOnce() -> Option<R>,
    ) -> Result<R, crate::Error> {
        if let Some(req) = self.unsent {
            return Ok(req);
        }
        let lost_race = lost_race_rule && self.reused && !self.responded;
        match self.refused || lost_race {
            true => copy().ok_or(self.error),
            false => Err(self.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods_are_rfc_9110s() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PURGE"] {
            assert!(!is_idempotent(&m.parse().unwrap()), "{m}");
        }
    }
}
