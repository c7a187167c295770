//! [`Http2Settings`]: the client's HTTP/2 settings, as hyper's `http2`
//! builder names them, applied to each new HTTP/2 connection.

use std::time::Duration;

use hyper::client::conn::http2;

/// The HTTP/2 settings a [`ClientBuilder`](crate::ClientBuilder) was given;
/// `None` leaves hyper's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Http2Settings {
    /// At most this many requests at once on a connection (and never more
    /// than the server's `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub(crate) max_streams: Option<u32>,
    pub(crate) initial_stream_window_size: Option<u32>,
    pub(crate) initial_connection_window_size: Option<u32>,
    pub(crate) adaptive_window: bool,
    pub(crate) max_frame_size: Option<u32>,
    pub(crate) max_header_list_size: Option<u32>,
    /// PING after this much silence, idle or busy; close without a reply
    /// within the second.
    pub(crate) keep_alive: Option<(Duration, Duration)>,
}

impl Http2Settings {
    /// hyper's builder for a new connection, with these settings.
    pub(crate) fn builder(&self) -> http2::Builder<Boxed> {
        let mut builder = http2::Builder::new(Boxed);
        builder.timer(hyper_util::rt::TokioTimer::new());
        builder
            .initial_stream_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .adaptive_window(self.adaptive_window)
            .max_frame_size(self.max_frame_size);
        if let Some(max) = self.max_header_list_size {
            builder.max_header_list_size(max);
        }
        if let Some((interval, timeout)) = self.keep_alive {
            builder
                .keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        builder
    }
}

/// hyper's HTTP/2 executor: each future hyper spawns (one a request) goes
/// to Tokio boxed. hyper's future type holds its whole connection task,
/// kilobytes, so spawning it by value copies all of that four times a
/// request; a box is one allocation of it (hyper-util's `Exec` boxes too).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Boxed;

impl<F> hyper::rt::Executor<F> for Boxed
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Box::pin(fut));
    }
}
