//! [`Manager::drain`]: a graceful stop, for a shutdown sequence.

use std::time::Duration;

use crate::manager::Manager;
use crate::pooled::Protocol;
use crate::transport::Transport;

impl<P, T> Manager<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    /// Stops taking requests (`allocate` fails with `is_shutdown()`),
    /// fails the queued and connecting requests as
    /// [`shutdown`](Manager::shutdown) does, closes the idle connections and
    /// each loan as it comes back, and waits for the loans to end, at most
    /// `deadline` (a duration too long for the clock: until they end).
    /// Returns how many loans were still out then (0 when all ended, at
    /// once when none was out). At the deadline, the pool's own streams
    /// still out (the `Plain` protocol on the pool's `Dialer`) are shut
    /// down both ways under their users: reads end, writes fail; dropping
    /// them afterwards is fine. Other pooled objects close when their
    /// users drop them (keepalive-hyper's `Client::drain` cuts its own).
    /// The future is `Send`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let target = keepalive::Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    /// use std::time::Duration;
    /// let manager = keepalive::Manager::new();
    /// let conn = manager.allocate(target).await?;
    /// let draining = tokio::spawn({
    ///     let manager = manager.clone();
    ///     async move { manager.drain(Duration::from_secs(30)).await }
    /// });
    /// drop(conn); // the last loan ends: the drain is done
    /// assert_eq!(draining.await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn drain(&self, deadline: Duration) -> usize {
        let until = tokio::time::Instant::now().checked_add(deadline);
        let drained = self.shared.drained.notified();
        tokio::pin!(drained);
        // Registered before the check, so that no end is missed between.
        drained.as_mut().enable();
        self.shutdown().await;
        loop {
            let out = self.stats().loans;
            if out == 0 {
                return 0;
            }
            let timed_out = match until {
                Some(at) => tokio::time::timeout_at(at, drained.as_mut()).await.is_err(),
                None => {
                    drained.as_mut().await;
                    false
                }
            };
            if timed_out {
                return self.cut_loans();
            }
            drained.set(self.shared.drained.notified());
            drained.as_mut().enable();
        }
    }

    /// At a drain's deadline: the loans still out, each of the pool's own
    /// streams among them shut down both ways under its user (through the
    /// second descriptor the pool keeps of it, under the lock, so that the
    /// socket is still the loan's). Returns how many loans were out.
    fn cut_loans(&self) -> usize {
        let state = self.shared.lock();
        for handle in state.loan_handles() {
            let _ = socket2::SockRef::from(handle).shutdown(std::net::Shutdown::Both);
        }
        state.stats().loans
    }
}
