//! The pool's metrics (feature `metrics`), recorded where the state changes
//! so that they stay exact: each key's gauges are set under the lock at
//! every change of its open or idle count, and its closes, connection
//! durations and times in queue are recorded as they happen. The names and
//! labels are OpenTelemetry's for HTTP clients (`server.address`,
//! `server.port`, `url.scheme`), plus `pool.name` when the builder named
//! the pool. A key's handles are registered once, when the key is made,
//! so a recording is an atomic operation, and a branch on an empty handle
//! without a recorder installed (benches/PERFORMANCE.md has the cost).
//! Without the feature every method is empty.

#[cfg(feature = "metrics")]
use std::time::Duration;

use tokio::time::Instant;

use super::{CloseReason, Handles, State};

#[cfg(feature = "metrics")]
pub(crate) use on::KeyMeters;

#[cfg(feature = "metrics")]
mod on {
    use std::sync::Arc;

    use metrics::{Gauge, Histogram, Label};

    use crate::target::Target;

    /// `server.address`, `server.port`, `url.scheme` (and `pool.name`).
    pub(crate) type Labels = Arc<[Label]>;

    /// One key's handles, registered when the key is made.
    pub(crate) struct KeyMeters {
        /// The key's idle sockets: the gauges' split of its `open`.
        pub(super) idle_count: usize,
        pub(super) labels: Labels,
        pub(super) idle: Gauge,
        pub(super) active: Gauge,
        pub(super) in_queue: Histogram,
        pub(super) duration: Histogram,
    }

    impl KeyMeters {
        pub(crate) fn new(target: &Target, name: Option<&Arc<str>>) -> KeyMeters {
            let mut labels = vec![
                Label::new("server.address", target.host().to_owned()),
                Label::new("server.port", target.port().to_string()),
                Label::new("url.scheme", target.scheme().to_owned()),
            ];
            labels.extend(name.map(|n| Label::new("pool.name", n.to_string())));
            let state = |s: &'static str| {
                let mut l = labels.clone();
                l.push(Label::new("http.connection.state", s));
                l
            };
            KeyMeters {
                idle_count: 0,
                idle: metrics::gauge!("http.client.open_connections", state("idle")),
                active: metrics::gauge!("http.client.open_connections", state("active")),
                in_queue: metrics::histogram!("http.client.request.time_in_queue", labels.clone()),
                duration: metrics::histogram!("http.client.connection.duration", labels.clone()),
                labels: labels.into(),
            }
        }
    }
}

impl<P: Handles> State<P> {
    /// `key`'s open connections by state, after a change of its counts:
    /// `idle`, and `active` (on loan or connecting).
    #[inline(always)]
    pub(super) fn meter_gauges(&self, key: usize) {
        #[cfg(feature = "metrics")]
        {
            let k = &self.keys[key];
            let idle = k.meters.idle_count;
            k.meters.idle.set(idle as f64);
            k.meters.active.set(k.open.saturating_sub(idle) as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = key;
    }

    /// One of `key`'s sockets went idle (`true`) or left the idle list.
    #[inline(always)]
    pub(super) fn meter_idle(&mut self, key: usize, went_idle: bool) {
        #[cfg(feature = "metrics")]
        {
            let count = &mut self.keys[key].meters.idle_count;
            *count = if went_idle { *count + 1 } else { *count - 1 };
            self.meter_gauges(key);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (key, went_idle);
    }

    /// A connection of `key`, opened at `opened`, closed for `reason`.
    #[inline(always)]
    pub(super) fn meter_close(&self, key: usize, reason: CloseReason, opened: Instant) {
        #[cfg(feature = "metrics")]
        {
            let m = &self.keys[key].meters;
            m.duration.record(opened.elapsed().as_secs_f64());
            let mut labels = m.labels.to_vec();
            labels.push(metrics::Label::new("reason", reason.name()));
            metrics::counter!("keepalive.connections.closed", labels).increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (key, reason, opened);
    }

    /// A request of `key`, made at `since`, got its connection now (at
    /// once: `None`).
    #[inline(always)]
    pub(super) fn meter_queue(&self, key: usize, since: Option<Instant>) {
        #[cfg(feature = "metrics")]
        {
            let waited = since.map_or(Duration::ZERO, |s| s.elapsed());
            self.keys[key].meters.in_queue.record(waited.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (key, since);
    }
}
