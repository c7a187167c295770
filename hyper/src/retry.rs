//! The retry rule, as Go's `Transport` has it: a request is sent again,
//! once, on another connection, when
//!
//! * hyper handed it back unsent (the connection closed before it was
//!   written), or
//! * its method is idempotent (RFC 9110 9.2.2: `GET`, `HEAD`, `OPTIONS`,
//!   `TRACE`, `PUT`, `DELETE`), it has no body, and it failed on a reused
//!   connection before any byte of its response arrived: the server's idle
//!   close met it on the way.
//!
//! Nothing else is retried: not a request on a fresh connection (the
//! server saw it fail, not a race), not one with a body, not one whose
//! response had begun.

use http::Method;

/// RFC 9110 9.2.2.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// How an attempt failed, for the rule.
pub(crate) struct Failure<R> {
    pub(crate) error: hyper::Error,
    /// The request, when hyper handed it back unsent.
    pub(crate) unsent: Option<R>,
    /// It ran on a connection from the pool, not a fresh one.
    pub(crate) reused: bool,
    /// Some byte of the response had arrived.
    pub(crate) responded: bool,
}

impl<R> Failure<R> {
    /// The request to send again, if the rule allows: the one hyper handed
    /// back, or else the copy `copy` makes (kept only for replayable
    /// requests), asked for only when the rule takes it.
    pub(crate) fn retry(self, copy: impl FnOnce() -> Option<R>) -> Result<R, hyper::Error> {
        if let Some(req) = self.unsent {
            return Ok(req);
        }
        match self.reused && !self.responded {
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
