//! [`Manager::keep_warm`]: connections opened before they are asked for,
//! and replaced when they close.

use std::future::{poll_fn, Future};
use std::task::Poll;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::Error;
use crate::loan::Connection;
use crate::manager::{direct_addrs, reachable, Manager};
use crate::pool::state::WarmPlan;
use crate::pooled::{Pooled, Protocol};
use crate::target::Target;
use crate::trace::event;
use crate::transport::Transport;

/// What one warm connect of the first fill says: its sender dropped when it
/// is done, or its failure.
type Heard<C> = oneshot::Receiver<Result<Connection<C>, Error>>;

impl<P, T> Manager<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    /// Opens connections to `target` until `n` are open for its key (idle
    /// or on loan; `n` is capped at `max_per_host` and at what `max_open`
    /// leaves free: no other key's connection is closed for it), and keeps
    /// that many from then on: one that closes for any reason (the server's
    /// close, `keep_alive`, `max_lifetime`, a learned server limit: an idle
    /// warm connection past its lifetime or its server's idle limit is
    /// closed and replaced at once) is replaced in the background; a failed
    /// replacement is retried after 1 s, doubling up to 60 s, jittered.
    ///
    /// A request never waits for it: it takes the first connection that is
    /// free, warm or not, and connects itself when there is room.
    /// `keep_warm(target, 0)` stops, and cancels the warm connects in
    /// flight; a later call sets `n` (a smaller one closes nothing). Each
    /// warm connect is bounded by the builder's `timeout` and counts in
    /// `Stats::connects`. The future is `Send`.
    ///
    /// # Errors
    ///
    /// The first error of the connects this call started (an invalid
    /// target, a lookup, connect or handshake failure, a timeout), which
    /// also stops keeping the key warm; `is_shutdown()` after `shutdown` or
    /// `drain`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// let manager = keepalive::Manager::new();
    /// manager.keep_warm(target.clone(), 2).await?;
    /// assert_eq!(manager.stats_for(&target).idle, 2);
    /// let conn = manager.allocate(target).await?;
    /// assert_eq!(conn.from_cache(), keepalive::FromCache::Immediate);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn keep_warm(&self, target: Target, n: usize) -> Result<(), Error> {
        reachable(&target)?;
        let shared = &self.shared;
        let plan = WarmPlan {
            addrs: direct_addrs(&*shared.maker, &target),
            timeout: shared.config.timeout,
            expect: shared.maker.expected_capacity(&target),
        };
        let mut heard: Vec<Heard<P::Conn>> = Vec::new();
        let mut answer = || {
            let (responder, rx) = oneshot::channel();
            heard.push(rx);
            responder
        };
        let now = Instant::now();
        let started = shared.decide(|state, out| state.keep_warm(&target, n, plan, now, &mut answer, out))?;
        event!(DEBUG, target = %target, n = n as u64, started = started as u64, "keep warm");
        let _ = started;
        if let Err(error) = first_error(heard).await {
            event!(WARN, target = %target, error = %error, "keep warm failed; stopped");
            self.stop_warm(&target);
            return Err(error);
        }
        Ok(())
    }

    /// Stops keeping `target`'s key warm, as `keep_warm(target, 0)` does.
    fn stop_warm(&self, target: &Target) {
        self.shared.decide(|state, out| state.stop_warm(target, out));
    }
}

/// Waits for every warm connect of a fill; the first failure, in time,
/// ends the wait. A connect that is done drops its sender.
async fn first_error<C: Pooled>(mut heard: Vec<Heard<C>>) -> Result<(), Error> {
    poll_fn(|cx| {
        let mut i = 0;
        while i < heard.len() {
            match std::pin::Pin::new(&mut heard[i]).poll(cx) {
                Poll::Ready(Ok(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(_) => drop(heard.swap_remove(i)),
                Poll::Pending => i += 1,
            }
        }
        match heard.is_empty() {
            true => Poll::Ready(Ok(())),
            false => Poll::Pending,
        }
    })
    .await
}
