//! The keep-alive race against real servers (issue #10): Apache httpd,
//! Node.js, lighttpd and nginx, each with a 1 s idle limit, behind a relay
//! that delays every byte and every close by 25 ms each way. A request sent
//! just before the server's limit meets the server's close on its way; the
//! pool must never send one into that window: Apache and Node announce
//! their limit (`Keep-Alive: timeout=`), lighttpd and nginx do not and the
//! pool learns it from their closes. No request is retried; none may fail.
//! Reuse on short gaps goes on as before.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use keepalive::{Manager, Target};
use keepalive_relay::Relay;
use support::servers::{self, Process};
use support::{until, within};

/// The relay's delay each way.
const DELAY: Duration = Duration::from_millis(25);
/// The idle limit every server is configured with.
const IDLE: Duration = Duration::from_secs(1);
const WORKERS: usize = 8;

/// One GET, no retry; the connection goes back with the server's hints.
async fn get(manager: &Manager, target: &Target, request: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    let mut conn = manager
        .allocate(target.clone())
        .await
        .map_err(|e| e.to_string())?;
    let from = conn.from_cache();
    match within(
        "a response",
        keepalive_http::exchange(&mut conn, request, false, buf, &mut |_| {}),
    )
    .await
    {
        Ok(outcome) if outcome.status == 200 => {
            keepalive_http::settle(conn, &outcome);
            Ok(())
        }
        Ok(outcome) => Err(format!("status {}", outcome.status)),
        Err(e) => Err(format!("{e} (on a {from:?} connection)")),
    }
}

/// `WORKERS` workers, each sending a request, then one after each of its
/// gaps; returns the failures.
async fn load(manager: &Manager, target: &Target, request: &[u8], gaps: Vec<Vec<Duration>>) -> Vec<String> {
    let workers: Vec<_> = gaps
        .into_iter()
        .map(|gaps| {
            let (manager, target, request) = (manager.clone(), target.clone(), request.to_vec());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut failures = vec![];
                failures.extend(get(&manager, &target, &request, &mut buf).await.err());
                for gap in gaps {
                    tokio::time::sleep(gap).await; // the idle gap is the behaviour under test
                    failures.extend(get(&manager, &target, &request, &mut buf).await.err());
                }
                failures
            })
        })
        .collect();
    let mut failures = vec![];
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    failures
}

/// `n` gaps per worker, spread evenly over `(lo, hi)` across all workers.
fn spread(lo: Duration, hi: Duration, n: usize) -> Vec<Vec<Duration>> {
    let total = (WORKERS * n) as u32;
    (0..WORKERS)
        .map(|w| {
            (0..n)
                .map(|i| {
                    let k = (i * WORKERS + w) as u32;
                    lo + (hi - lo) * (2 * k + 1) / (2 * total)
                })
                .collect()
        })
        .collect()
}

/// What a server does with idle connections, as seen through the relay.
struct Spec {
    /// When its idle closes come, idle time measured by the client.
    closes: (Duration, Duration),
    /// It announces its limit in `Keep-Alive: timeout=`.
    announces: bool,
}

/// The whole scenario against a server on `port`; returns the pool for
/// the caller's own checks.
async fn race(port: u16, spec: Spec) -> Manager {
    let relay = Relay::start(([127, 0, 0, 1], port).into(), DELAY).await.unwrap();
    let target = Target::new("http", "127.0.0.1", relay.addr().port());
    let request = keepalive_http::request("GET", &format!("127.0.0.1:{port}"), "/index.html");
    let manager = Manager::builder()
        .max_per_host(16)
        .keep_alive(Duration::from_secs(60))
        .build();

    // Short gaps: every worker reuses its connection.
    let short = vec![vec![Duration::from_millis(50); 10]; WORKERS];
    let mut failures = load(&manager, &target, &request, short).await;
    let connects = manager.stats().connects;
    assert!(
        connects <= WORKERS as u64,
        "short gaps reuse: {:?}",
        manager.stats()
    );
    if spec.announces {
        assert_eq!(
            manager.stats_for(&target).server_idle_timeout,
            Some(IDLE),
            "told by the header"
        );
    }

    // The server closes the idle connections; then ten new ones, each
    // returned right after its exchange, 100 ms apart, and closed by the
    // server in turn: the pool sees where its closes fall.
    let all_closed = || manager.stats_for(&target).idle == 0;
    until("the server to close every idle connection", all_closed).await;
    let mut held = vec![];
    for _ in 0..10 {
        held.push(manager.allocate(target.clone()).await.unwrap());
    }
    let mut buf = Vec::new();
    for mut conn in held {
        let outcome = keepalive_http::exchange(&mut conn, &request, false, &mut buf, &mut |_| {})
            .await
            .unwrap();
        keepalive_http::settle(conn, &outcome);
        tokio::time::sleep(Duration::from_millis(100)).await; // staggering the returns is the scenario
    }
    until("the server to close every idle connection", all_closed).await;
    let learned = manager
        .stats_for(&target)
        .server_idle_timeout
        .expect("a limit, learned or told");
    assert!(
        learned <= spec.closes.0 + Duration::from_millis(150),
        "learned {learned:?}"
    );

    // The race: gaps spread over the window where a request meets the
    // server's close on its way, from 2 × DELAY before its earliest close
    // to its latest.
    let before = manager.stats_for(&target);
    let window = spread(spec.closes.0 - 2 * DELAY, spec.closes.1, 3);
    failures.extend(load(&manager, &target, &request, window).await);
    let after = manager.stats_for(&target);
    assert!(
        failures.is_empty(),
        "{} failed: {:?}\n{after:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        after.closes.server_limit > before.closes.server_limit,
        "the pool retired connections before the server's limit: {after:?}"
    );

    // Short gaps again: reuse as before.
    let before = manager.stats();
    let short = vec![vec![Duration::from_millis(50); 5]; WORKERS];
    let failures = load(&manager, &target, &request, short).await;
    assert!(failures.is_empty(), "{failures:?}");
    let after = manager.stats();
    assert!(
        after.connects - before.connects <= WORKERS as u64,
        "{before:?}\n{after:?}"
    );
    assert!(after.reuses - before.reuses >= (WORKERS * 5) as u64 - WORKERS as u64);
    drop(relay);
    manager
}

/// A server that is missing: skipped loudly, or a failure in CI.
fn started(name: &str, result: Result<Process, String>) -> Option<Process> {
    result.map_err(|why| support::skip_or_fail(name, &why)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_announces_its_limit_and_no_request_meets_its_close() {
    let Some(apache) = started("Apache httpd", servers::apache(IDLE.as_secs())) else {
        return;
    };
    let spec = Spec {
        closes: (IDLE, IDLE + Duration::from_millis(50)),
        announces: true,
    };
    race(apache.port, spec).await;
    // Apache counted several requests on its connections: reuse, seen by
    // the server.
    let log = servers::apache_log(&apache);
    assert!(log.iter().all(|&(_, _, status)| status == 200));
    let mut per_connection: BTreeMap<u16, u64> = BTreeMap::new();
    for &(port, _, _) in &log {
        *per_connection.entry(port).or_default() += 1;
    }
    let most = log.iter().map(|&(_, k, _)| k).max().unwrap_or(0);
    assert!(
        most >= 10,
        "a connection served 11 requests or more: {per_connection:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_announces_its_limit_and_no_request_meets_its_close() {
    let Some(node) = started("Node.js", servers::node(IDLE.as_millis() as u64)) else {
        return;
    };
    // Node 20 closes about a second after the limit it announces.
    let spec = Spec {
        closes: (IDLE, 2 * IDLE + Duration::from_millis(50)),
        announces: true,
    };
    race(node.port, spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lighttpd_is_learned_and_no_request_meets_its_close() {
    let Some(lighttpd) = started("lighttpd", servers::lighttpd(IDLE.as_secs())) else {
        return;
    };
    // Its once-a-second idle check closes anywhere in a second's band.
    let spec = Spec {
        closes: (IDLE, 2 * IDLE + Duration::from_millis(50)),
        announces: false,
    };
    race(lighttpd.port, spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_is_learned_and_no_request_meets_its_close() {
    let port = support::nginx::free_port();
    let server = format!(
        "server {{ listen 127.0.0.1:{port}; keepalive_timeout 1s; keepalive_requests 100000; \
         location / {{ return 200 \"ok\\n\"; }} }}"
    );
    let nginx = match support::nginx::Nginx::start("race", &server, &[], &[port]) {
        Ok(nginx) => nginx,
        Err(why) => return support::nginx::unavailable(&why),
    };
    let spec = Spec {
        closes: (IDLE, IDLE + Duration::from_millis(50)),
        announces: false,
    };
    let manager = race(port, spec).await;
    // nginx's log agrees: every request it saw succeeded, and connections
    // carried many requests each.
    let log = nginx.log();
    assert!(log.iter().all(|&(_, _, status)| status == 200));
    assert_eq!(
        log.len() as u64,
        manager.stats().connects + manager.stats().reuses
    );
    assert!(
        log.iter().any(|&(_, nth, _)| nth >= 10),
        "reuse, as nginx counts it"
    );
}
