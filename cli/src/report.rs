//! The bench summary: counts, rates, latency percentiles from an HDR
//! histogram, the pool's stats and close reasons, and what it knows of the
//! server's idle limit, as text or one JSON object.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use keepalive::{Stats, Target};

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
    /// Requests sent a second time after meeting a server's close on a
    /// reused connection.
    pub(crate) retries: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
    pub(crate) stats: Stats,
    /// What the pool knows of each host's idle limit.
    pub(crate) hosts: Vec<HostLimit>,
    /// Requests answered, by the HTTP version they came over.
    pub(crate) protocols: BTreeMap<&'static str, u64>,
}

/// A host's server idle limit as the pool knows it, and how many of its
/// connections the pool retired before that limit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostLimit {
    pub(crate) target: String,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) retired: u64,
}

impl HostLimit {
    /// Every key's, from `stats_per_key`.
    pub(crate) fn all(per_key: &[(Target, Stats)]) -> Vec<HostLimit> {
        per_key
            .iter()
            .map(|(target, stats)| HostLimit::from_stats(target, stats))
            .collect()
    }

    /// From a snapshot taken with `Manager::stats_for(target)` or
    /// `stats_per_key`.
    pub(crate) fn from_stats(target: &Target, stats: &Stats) -> HostLimit {
        HostLimit {
            target: target.to_string(),
            idle_timeout: stats.server_idle_timeout,
            retired: stats.closes.server_limit,
        }
    }

    /// `http://h:80: idle limit 1.50 s, 3 connections retired before it`.
    pub(crate) fn text(&self) -> String {
        let limit = self
            .idle_timeout
            .map_or_else(|| "not known".to_owned(), format_latency);
        format!(
            "{}: idle limit {limit}, {} connections retired before it",
            self.target, self.retired
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target,
            "idle_timeout_secs": self.idle_timeout.map(|d| d.as_secs_f64()),
            "retired_before_limit": self.retired,
        })
    }
}

impl Summary {
    pub(crate) fn requests(&self) -> u64 {
        self.ok + self.failed()
    }

    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum::<u64>()
    }

    /// Completed requests per second: failures do not count.
    pub(crate) fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
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

    /// `HTTP/2 (1000 requests)`, the versions that answered.
    fn protocols_text(&self) -> String {
        let each: Vec<String> = self
            .protocols
            .iter()
            .map(|(v, n)| format!("{v} ({n} requests)"))
            .collect();
        match each.is_empty() {
            true => "none answered".to_owned(),
            false => each.join(", "),
        }
    }

    /// The text summary; failures come first when there are any.
    pub(crate) fn text(&self) -> String {
        let us = |v: u64| format_latency(Duration::from_micros(v));
        let mut text = format!("url          {}\n", self.url);
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self.errors.iter().map(|(k, n)| format!("{n} {k}")).collect();
            text += &format!(
                "FAILED       {} of {} requests ({})\n",
                self.failed(),
                self.requests(),
                kinds.join(", ")
            );
        }
        text += &format!(
            "requests     {ok} completed in {elapsed:.2?} with {c} workers: {rate:.0} requests/s\n\
             latency      p50 {p50}  p90 {p90}  p99 {p99}  max {max}\n\
             retries      {retries} requests sent again after a reused connection's close\n\
             protocol     {protocols} over {connects} connections\n\
             connections  {connects} opened, {reuse:.2}% of allocations reused, {stale} stale discarded\n\
             closes       {closes}\n\
             dns lookups  {dns}\n",
            ok = self.ok,
            elapsed = self.elapsed,
            c = self.concurrency,
            rate = self.per_second(),
            p50 = us(self.percentile(0.5)),
            p90 = us(self.percentile(0.9)),
            p99 = us(self.percentile(0.99)),
            max = us(self.latency.max()),
            retries = self.retries,
            connects = self.stats.connects,
            protocols = self.protocols_text(),
            reuse = self.reuse_ratio() * 100.0,
            stale = self.stats.stale_discarded,
            closes = closes_text(&self.stats),
            dns = self.stats.dns_lookups,
        );
        if let Some(reachable) = self.stats.fleet_reachable {
            text += &format!(
                "fleet        {} connects waited for the fleet ({} in all), {} opened without it, Redis {}\n",
                self.stats.fleet_waits,
                format_latency(self.stats.fleet_wait_time),
                self.stats.fleet_bypassed,
                if reachable { "reachable" } else { "unreachable" }
            );
        }
        for host in &self.hosts {
            text += &format!("server       {}\n", host.text());
        }
        text
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let closes: BTreeMap<&str, u64> = self.stats.closes.iter().collect();
        serde_json::json!({
            "url": self.url,
            "concurrency": self.concurrency,
            "requests": self.requests(),
            "ok": self.ok,
            "failed": self.failed(),
            "errors": self.errors,
            "retries": self.retries,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "requests_per_sec": self.per_second(),
            "latency_us": {
                "p50": self.percentile(0.5),
                "p90": self.percentile(0.9),
                "p99": self.percentile(0.99),
                "max": self.latency.max(),
                "mean": self.latency.mean(),
            },
            "protocols": self.protocols,
            "connections_opened": self.stats.connects,
            "reuse_ratio": self.reuse_ratio(),
            "stale_discarded": self.stats.stale_discarded,
            "closes": closes,
            "server_limits": self.hosts.iter().map(HostLimit::json).collect::<Vec<_>>(),
            "dns_lookups": self.stats.dns_lookups,
            "fleet": self.stats.fleet_reachable.map(|reachable| serde_json::json!({
                "waits": self.stats.fleet_waits,
                "wait_secs": self.stats.fleet_wait_time.as_secs_f64(),
                "bypassed": self.stats.fleet_bypassed,
                "reachable": reachable,
            })),
        })
    }
}

/// The close reasons that happened, `3 idle_timeout, 1 evicted`, or `none`.
pub(crate) fn closes_text(stats: &Stats) -> String {
    let happened: Vec<String> = stats
        .closes
        .iter()
        .filter(|&(_, n)| n > 0)
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    if happened.is_empty() {
        "none".to_owned()
    } else {
        happened.join(", ")
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
            retries: 1,
            elapsed: Duration::from_secs(2),
            latency,
            stats,
            hosts: vec![HostLimit {
                target: "http://127.0.0.1:1".into(),
                idle_timeout: Some(Duration::from_millis(1500)),
                retired: 3,
            }],
            protocols: [("HTTP/1.1", 98)].into(),
        };
        assert_eq!(summary.requests(), 100);
        assert_eq!(summary.per_second(), 49.0, "completed requests only");
        assert_eq!(summary.reuse_ratio(), 0.96);
        let json = summary.json();
        assert_eq!(json["errors"]["connect"], 2);
        assert_eq!(json["latency_us"]["p50"], 500);
        assert_eq!(json["server_limits"][0]["idle_timeout_secs"], 1.5);
        assert_eq!(json["server_limits"][0]["retired_before_limit"], 3);
        assert_eq!(json["protocols"]["HTTP/1.1"], 98);
        let text = summary.text();
        assert!(
            text.contains("protocol     HTTP/1.1 (98 requests) over 4 connections"),
            "{text}"
        );
        assert!(
            text.contains("49 requests/s") && text.contains("FAILED       2 of 100 requests (2 connect)"),
            "{text}"
        );
        assert!(
            text.find("FAILED") < text.find("requests     "),
            "failures first: {text}"
        );
        assert!(
            text.contains("idle limit 1.50 s, 3 connections retired"),
            "{text}"
        );
        assert_eq!(format_latency(Duration::from_micros(12_345)), "12.3 ms");
    }
}
