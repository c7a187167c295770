//! The TCP options set on every socket the pool opens: no Nagle delay, TCP
//! keepalive, and (Linux) `TCP_USER_TIMEOUT`, so that a peer that vanished
//! without a FIN or RST is found dead by the kernel.

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Linux's largest TCP_KEEPIDLE and TCP_KEEPINTVL, in seconds.
const MAX_KEEPALIVE_SECS: u64 = 32_767;
/// The largest TCP_USER_TIMEOUT Linux takes: an int of milliseconds
/// (24.8 days).
const MAX_USER_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);
/// Linux's largest TCP_KEEPCNT.
const MAX_KEEPALIVE_RETRIES: u32 = 127;

/// The TCP options set on every socket the pool opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpOptions {
    /// SO_KEEPALIVE on, with this idle time (TCP_KEEPIDLE).
    pub(crate) keepalive: Option<Duration>,
    /// TCP_KEEPINTVL.
    pub(crate) keepalive_interval: Option<Duration>,
    /// TCP_KEEPCNT.
    pub(crate) keepalive_retries: Option<u32>,
    /// TCP_USER_TIMEOUT (Linux).
    pub(crate) user_timeout: Option<Duration>,
}

/// Sets the options on a connected socket.
///
/// # Errors
///
/// What `setsockopt` says.
pub(super) fn apply(tcp: &TcpStream, options: &TcpOptions) -> io::Result<()> {
    // Request/response protocols lose a round trip to Nagle's algorithm.
    tcp.set_nodelay(true)?;
    let socket = SockRef::from(tcp);
    if let Some(idle) = options.keepalive {
        let mut keepalive = TcpKeepalive::new().with_time(whole_seconds(idle));
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            if let Some(interval) = options.keepalive_interval {
                keepalive = keepalive.with_interval(whole_seconds(interval));
            }
            if let Some(retries) = options.keepalive_retries {
                keepalive = keepalive.with_retries(retries.min(MAX_KEEPALIVE_RETRIES));
            }
        }
        socket.set_tcp_keepalive(&keepalive)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(timeout) = options.user_timeout {
        socket.set_tcp_user_timeout(Some(timeout.clamp(Duration::from_millis(1), MAX_USER_TIMEOUT)))?;
    }
    Ok(())
}

/// `d` in whole seconds, rounded up, from 1 to [`MAX_KEEPALIVE_SECS`]: what
/// the kernel accepts.
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    Duration::from_secs(secs.clamp(1, MAX_KEEPALIVE_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_what_the_kernel_accepts() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(1500)), Duration::from_secs(2));
        assert_eq!(
            whole_seconds(Duration::MAX),
            Duration::from_secs(MAX_KEEPALIVE_SECS)
        );
    }

    #[tokio::test]
    async fn the_options_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let options = TcpOptions {
            keepalive: Some(Duration::from_millis(1500)),
            keepalive_interval: Some(Duration::MAX),
            keepalive_retries: Some(1000),
            user_timeout: Some(Duration::from_secs(7)),
        };
        let mut longest = options;
        longest.user_timeout = Some(Duration::MAX);
        apply(&tcp, &longest).unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(
            SockRef::from(&tcp).tcp_user_timeout().unwrap(),
            Some(MAX_USER_TIMEOUT)
        );
        apply(&tcp, &options).unwrap();
        let socket = SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        assert!(tcp.nodelay().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(2));
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(MAX_KEEPALIVE_SECS)
            );
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), MAX_KEEPALIVE_RETRIES);
            assert_eq!(socket.tcp_user_timeout().unwrap(), Some(Duration::from_secs(7)));
        }
    }
}
