//! Interop with a real server: nginx on loopback, configured like real
//! deployments (issue #6). Thousands of requests through the pool with
//! idle gaps just under and just over nginx's keep-alive timeout: no
//! request may fail because a pooled socket was already closed, reuse must
//! match what nginx allows, and nginx's own log must show the connection
//! numbers the pool's stats imply. It speaks HTTP with `keepalive-http`.

mod support;

use keepalive_http as http1;

use std::collections::BTreeMap;
use std::time::Duration;

use keepalive::{Manager, Target};
use support::nginx::{free_port, unavailable, Nginx};

/// `n` GETs with `c` workers, no retries; returns the failures.
async fn burst(manager: &Manager, target: &Target, n: usize, c: usize) -> Vec<String> {
    let request = http1::request("GET", &format!("127.0.0.1:{}", target.port()), "/");
    let workers: Vec<_> = (0..c)
        .map(|w| {
            let (manager, target, request) = (manager.clone(), target.clone(), request.clone());
            tokio::spawn(async move {
                let mut failures = vec![];
                let mut buf = Vec::new();
                for _ in (w..n).step_by(c) {
                    let mut conn = match manager.allocate(target.clone()).await {
                        Ok(conn) => conn,
                        Err(e) => {
                            failures.push(e.to_string());
                            continue;
                        }
                    };
                    match http1::exchange(&mut conn, &request, false, &mut buf, &mut |_| {}).await {
                        Ok(out) if out.status == 200 => http1::settle(conn, &out),
                        Ok(out) => failures.push(format!("status {}", out.status)),
                        Err(e) => {
                            failures.push(format!("{e} (from {:?})", conn.from_cache()));
                            conn.discard();
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = vec![];
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    failures
}

/// Requests per connection number, from nginx's log.
fn per_connection(log: &[(u64, u64, u16)]) -> BTreeMap<u64, u64> {
    let mut counts = BTreeMap::new();
    for &(connection, nth, status) in log {
        assert_eq!(status, 200);
        let seen = counts.entry(connection).or_insert(0);
        *seen += 1;
        assert_eq!(nth, *seen, "nginx counts requests per connection in order");
    }
    counts
}

fn start(name: &str, server: &str, files: &[(&str, String)], port: u16) -> Option<Nginx> {
    match Nginx::start(name, server, files, &[port]) {
        Ok(nginx) => Some(nginx),
        Err(why) => {
            unavailable(&why);
            None
        }
    }
}

const BODY: &str = "location / { return 200 \"ok\\n\"; }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_gaps_under_and_over_keepalive_timeout_never_fail() {
    let port = free_port();
    let server = format!(
        "server {{ listen 127.0.0.1:{port}; keepalive_timeout 1s; keepalive_requests 1000000; {BODY} }}"
    );
    let Some(nginx) = start("timeout", &server, &[], port) else {
        return;
    };
    let manager = Manager::builder()
        .max_per_host(8)
        .keep_alive(Duration::from_secs(60))
        .build();
    let target = Target::new("http", "127.0.0.1", port);
    let mut failures = burst(&manager, &target, 1000, 8).await;
    let first = manager.stats().connects;
    assert!((1..=8).contains(&first));
    let mut expected_connects = first;
    for (gap, over) in [(600, false), (1500, true), (600, false), (1500, true)] {
        tokio::time::sleep(Duration::from_millis(gap)).await; // the idle gap is the behaviour under test
        let before = manager.stats();
        failures.extend(burst(&manager, &target, 1000, 8).await);
        let after = manager.stats();
        if over {
            // nginx closed every idle socket; the pool dropped them all.
            assert_eq!(before.idle, 0, "closed sockets are not kept");
            assert!(after.connects > before.connects);
        } else {
            assert_eq!(
                after.connects, before.connects,
                "a gap under the timeout reuses every socket"
            );
        }
        expected_connects = after.connects;
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let log = nginx.log();
    assert_eq!(log.len(), 5000);
    let connections = per_connection(&log);
    assert_eq!(
        connections.len() as u64,
        expected_connects,
        "nginx saw exactly the pool's connects"
    );
    assert_eq!(manager.stats().reuses + manager.stats().connects, 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_requests_3_gives_three_requests_per_connection() {
    let port = free_port();
    let server = format!("server {{ listen 127.0.0.1:{port}; keepalive_requests 3; {BODY} }}");
    let Some(nginx) = start("requests", &server, &[], port) else {
        return;
    };
    let manager = Manager::builder().max_per_host(4).build();
    let failures = burst(&manager, &Target::new("http", "127.0.0.1", port), 3000, 4).await;
    assert!(failures.is_empty(), "{failures:?}");
    let connections = per_connection(&nginx.log());
    assert!(
        connections.values().all(|&n| n <= 3),
        "never more than nginx allows"
    );
    let stats = manager.stats();
    assert_eq!(connections.len() as u64, stats.connects);
    // nginx closed each connection after its third response (the pool
    // closed it on `Connection: close`, counted as the server's doing);
    // the ones still open at the end served fewer, one per worker at most.
    let full = connections.values().filter(|&&n| n == 3).count() as u64;
    assert_eq!(full, stats.closes.connection_close, "{stats:?}");
    assert_eq!(stats.closes.discarded, 0, "{stats:?}");
    assert_eq!(
        stats.connects,
        stats.closes.connection_close + stats.idle as u64,
        "{stats:?}"
    );
    assert!(stats.idle <= 4 && stats.connects >= 1000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_0_closes_after_every_response() {
    let port = free_port();
    let server = format!("server {{ listen 127.0.0.1:{port}; keepalive_timeout 0; {BODY} }}");
    let Some(nginx) = start("no-keepalive", &server, &[], port) else {
        return;
    };
    let manager = Manager::new();
    let failures = burst(&manager, &Target::new("http", "127.0.0.1", port), 1000, 4).await;
    assert!(failures.is_empty(), "{failures:?}");
    let connections = per_connection(&nginx.log());
    assert_eq!(connections.len(), 1000);
    assert!(connections.values().all(|&n| n == 1));
    assert_eq!((manager.stats().connects, manager.stats().reuses), (1000, 0));
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_connections_are_pooled_and_dropped_when_nginx_closes_them() {
    use keepalive::rustls::{self, ClientConfig, RootCertStore};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("keepalive-nginx-https-{}", std::process::id()));
    let server = format!(
        "server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; keepalive_timeout 1s; keepalive_requests 1000000; {BODY} }}",
        d = dir.display()
    );
    let files = [("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())];
    let Some(nginx) = start("https", &server, &files, port) else {
        return;
    };
    assert_eq!(nginx.dir(), dir);
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let config =
        ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let manager = Manager::builder()
        .max_per_host(4)
        .tls_config(std::sync::Arc::new(config))
        .build();
    let target = Target::new("https", "127.0.0.1", port);
    let mut failures = burst(&manager, &target, 1000, 4).await;
    let first = manager.stats().connects;
    assert!((1..=4).contains(&first));
    tokio::time::sleep(Duration::from_millis(1500)).await; // over nginx's keep-alive timeout
    assert_eq!(manager.stats().idle, 0, "TLS sockets nginx closed were dropped");
    failures.extend(burst(&manager, &target, 1000, 4).await);
    assert!(failures.is_empty(), "{failures:?}");
    let connections = per_connection(&nginx.log());
    assert_eq!(connections.len() as u64, manager.stats().connects);
    assert!(manager.stats().connects <= 8);
}
