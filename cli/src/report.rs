//! The bench summary: counts, rates, latency percentiles from an HDR
//! histogram, and the pool's stats, as text or one JSON object.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use keepalive::Stats;

/// Latencies are recorded in microseconds, up to a minute, to three
/// significant figures.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What one bench run measured.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) url: String,
    pub(crate) concurrency: usize,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
    pub(crate) stats: Stats,
}

impl Summary {
    pub(crate) fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    pub(crate) fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Allocations served from the pool, out of all allocations.
    pub(crate) fn reuse_ratio(&self) -> f64 {
        let all = self.stats.reuses + self.stats.connects;
        if all == 0 {
            0.0
        } else {
            self.stats.reuses as f64 / all as f64
        }
    }

    fn percentile(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    pub(crate) fn text(&self) -> String {
        let errors = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            let kinds: Vec<String> = self.errors.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!("{} ({})", self.errors.values().sum::<u64>(), kinds.join(", "))
        };
        let us = |v: u64| format_latency(Duration::from_micros(v));
        format!(
            "url          {url}\n\
             requests     {requests} in {elapsed:.2?} with {c} workers: {rate:.0} requests/s\n\
             errors       {errors}\n\
             latency      p50 {p50}  p90 {p90}  p99 {p99}  max {max}\n\
             connections  {connects} opened, {reuse:.2}% of allocations reused, {stale} stale discarded\n\
             dns lookups  {dns}\n",
            url = self.url,
            requests = self.requests(),
            elapsed = self.elapsed,
            c = self.concurrency,
            rate = self.per_second(),
            p50 = us(self.percentile(0.5)),
            p90 = us(self.percentile(0.9)),
            p99 = us(self.percentile(0.99)),
            max = us(self.latency.max()),
            connects = self.stats.connects,
            reuse = self.reuse_ratio() * 100.0,
            stale = self.stats.stale_discarded,
            dns = self.stats.dns_lookups,
        )
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "concurrency": self.concurrency,
            "requests": self.requests(),
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "requests_per_sec": self.per_second(),
            "latency_us": {
                "p50": self.percentile(0.5),
                "p90": self.percentile(0.9),
                "p99": self.percentile(0.99),
                "max": self.latency.max(),
                "mean": self.latency.mean(),
            },
            "connections_opened": self.stats.connects,
            "reuse_ratio": self.reuse_ratio(),
            "stale_discarded": self.stats.stale_discarded,
            "dns_lookups": self.stats.dns_lookups,
        })
    }
}

/// `850 µs`, `12.3 ms`, `1.20 s`.
pub(crate) fn format_latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_and_rates() {
        let mut latency = histogram();
        for v in 1..=100 {
            latency.record(v * 10).unwrap();
        }
        let mut stats = Stats::default();
        (stats.connects, stats.reuses) = (4, 96);
        let summary = Summary {
            url: "http://127.0.0.1:1/".into(),
            concurrency: 4,
            ok: 98,
            errors: [("connect".to_owned(), 2)].into(),
            elapsed: Duration::from_secs(2),
            latency,
            stats,
        };
        assert_eq!(summary.requests(), 100);
        assert_eq!(summary.per_second(), 50.0);
        assert_eq!(summary.reuse_ratio(), 0.96);
        let json = summary.json();
        assert_eq!(json["errors"]["connect"], 2);
        assert_eq!(json["latency_us"]["p50"], 500);
        let text = summary.text();
        assert!(
            text.contains("50 requests/s") && text.contains("2 (2 connect)"),
            "{text}"
        );
        assert_eq!(format_latency(Duration::from_micros(12_345)), "12.3 ms");
    }
}
