//! The pool's metrics (feature `metrics`) under concurrent load, read back
//! from a recording recorder and compared with the pool's own counts: the
//! gauges exact, a close counted once by its reason, one connection
//! duration per close, one time in queue per connection handed over, and
//! nothing for a failed connect. One test: the recorder is the process's.
#![cfg(feature = "metrics")]

mod support;

use std::collections::HashMap;

use keepalive::{Manager, Target};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use support::{refused_port, within, Server};

/// One series: its name, its labels but `server.port` (sorted), its port.
type Series = (String, Vec<(String, String)>, u16);

fn series(key: &metrics::Key) -> Series {
    let mut port = 0;
    let mut labels = Vec::new();
    for label in key.labels() {
        match label.key() {
            "server.port" => port = label.value().parse().unwrap(),
            k => labels.push((k.to_owned(), label.value().to_owned())),
        }
    }
    labels.sort();
    (key.name().to_owned(), labels, port)
}

fn has(s: &Series, key: &str, value: &str) -> bool {
    s.1.iter().any(|(k, v)| k == key && v == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_the_pools_counts_under_load() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");
    let servers = [Server::start("127.0.0.1").await, Server::start("127.0.0.1").await];
    let targets: Vec<Target> = servers
        .iter()
        .map(|s| Target::new("tcp", "127.0.0.1", s.port()))
        .collect();
    let manager = Manager::builder()
        .name("test")
        .max_per_host(3)
        .max_open(5)
        .build();
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let (manager, targets) = (manager.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100usize {
                let conn = manager.allocate(targets[(task + i) % 2].clone()).await.unwrap();
                if (task * 100 + i) % 7 == 0 {
                    conn.discard();
                }
            }
        }));
    }
    for t in tasks {
        within("the load", t).await.unwrap();
    }
    let refused = Target::new("tcp", "127.0.0.1", refused_port().await);
    assert!(manager.allocate(refused.clone()).await.is_err());
    // Two on loan (taken from the idle ones), the rest back: read once
    // (reading resets the recorder).
    let held = [
        manager.allocate(targets[0].clone()).await.unwrap(),
        manager.allocate(targets[0].clone()).await.unwrap(),
    ];
    let snapshot = snapshotter.snapshot().into_vec();
    let mut gauges: HashMap<(u16, String), f64> = HashMap::new();
    let mut closed: HashMap<(u16, String), u64> = HashMap::new();
    let mut recorded: HashMap<(u16, String), usize> = HashMap::new();
    for (ck, _, _, value) in snapshot {
        let s = series(ck.key());
        assert!(
            has(&s, "pool.name", "test") && has(&s, "url.scheme", "tcp"),
            "{s:?}"
        );
        assert!(has(&s, "server.address", "127.0.0.1"), "{s:?}");
        match (ck.kind(), value) {
            (MetricKind::Gauge, DebugValue::Gauge(v)) => {
                let state = s.1.iter().find(|(k, _)| k == "http.connection.state").unwrap();
                gauges.insert((s.2, state.1.clone()), v.into_inner());
            }
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                let reason = s.1.iter().find(|(k, _)| k == "reason").unwrap();
                closed.insert((s.2, reason.1.clone()), n);
            }
            (MetricKind::Histogram, DebugValue::Histogram(values)) => {
                assert!(values.iter().all(|v| v.into_inner() >= 0.0));
                recorded.insert((s.2, s.0.clone()), values.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for target in &targets {
        let port = target.port();
        let stats = manager.stats_for(target);
        assert_eq!(gauges[&(port, "idle".into())], stats.idle as f64, "idle gauge");
        assert_eq!(
            gauges[&(port, "active".into())],
            (stats.open - stats.idle) as f64,
            "active"
        );
        for (reason, n) in stats.closes.iter() {
            assert_eq!(
                closed.get(&(port, reason.into())).copied().unwrap_or(0),
                n,
                "{reason}"
            );
        }
        let durations = recorded[&(port, "http.client.connection.duration".into())];
        assert_eq!(durations as u64, stats.closes.total(), "a duration per close");
        let queue = recorded[&(port, "http.client.request.time_in_queue".into())];
        assert_eq!(
            queue as u64,
            stats.connects + stats.reuses,
            "a time in queue per hand-over"
        );
    }
    let total: u64 = targets
        .iter()
        .map(|t| manager.stats_for(t).connects + manager.stats_for(t).reuses)
        .sum();
    assert_eq!(total, 802);
    assert_eq!(manager.stats_for(&targets[0]).in_use, held.len());
    let port = refused.port();
    for name in [
        "http.client.connection.duration",
        "http.client.request.time_in_queue",
    ] {
        assert_eq!(
            recorded.get(&(port, name.into())).copied().unwrap_or(0),
            0,
            "{name}: a failed connect"
        );
    }
}
