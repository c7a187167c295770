//! `h2-race`: the keep-alive race over HTTP/2. hyper's h2c server (this
//! binary's `h2-serve`, own process) ends a connection idle for T, behind
//! a relay that delays every byte and every close by D each way: first
//! with hyper's graceful shutdown (GOAWAY with the largest stream id, a
//! PING, then the final GOAWAY: streams that cross the first are still
//! served), then with a bare close (FIN, no GOAWAY), as load balancers and
//! servers that drop idle sockets do. A request sent after an idle gap in
//! (T − 2D, T) goes out while the close is on its way.
//!
//! ```text
//! keepalive-compare h2-race [--t SECS] [--d MS] [--n N]
//! ```
//!
//! Each client runs `WORKERS` workers, each with a client of its own (so
//! each connection goes idle when its worker does): keepalive-hyper (h2c,
//! its retry rule counted apart), hyper-util (`http2_only`) and reqwest
//! (`http2_prior_knowledge`) with their defaults. Every run starts with a
//! request per worker and an idle period past T; then each worker sends
//! `--n` requests after gaps spread over the scenario's range.

use std::time::Duration;

use keepalive_relay::Relay;
use tokio::time::Instant;

use crate::h2::Load;
use crate::race::{gaps, WORKERS};

pub(crate) fn main(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let (mut t, mut d, mut n) = (1.0, 25.0, 12usize);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<f64>())) {
            ("--t", Some(Ok(v))) if v > 0.0 => t = v,
            ("--d", Some(Ok(v))) if v > 0.0 => d = v,
            ("--n", Some(Ok(v))) if v >= 1.0 => n = v as usize,
            _ => return Err(
                "usage: keepalive-compare h2-race [--t SECS] [--d MILLISECONDS] [--n REQUESTS_PER_WORKER]"
                    .into(),
            ),
        }
    }
    let t = Duration::from_secs_f64(t);
    let d = Duration::from_secs_f64(d / 1000.0);
    crate::runtime()?.block_on(race(t, d, n))
}

async fn race(t: Duration, d: Duration, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let idle_ms = t.as_millis().to_string();
    println!(
        "server: hyper h2c closing connections idle for {t:?} (own process), behind a relay delaying each way \
         by {d:?}; {WORKERS} workers x {n} requests per client and scenario"
    );
    println!();
    println!("| idle close | gaps | client | sent | failed | retried | connections opened | requests/s |");
    println!("|---|---|---|---|---|---|---|---|");
    let scenarios = [
        (format!("race: ({:?}, {:?})", t - 2 * d, t), t - 2 * d, t),
        (format!("short: ({:?}, {:?})", t / 20, t / 5), t / 20, t / 5),
    ];
    for (close, how) in [("graceful GOAWAY", "goaway"), ("FIN, no GOAWAY", "fin")] {
        let (mut server, url) = crate::h2::start_server(&["100", &idle_ms, how]).await?;
        for (name, lo, hi) in &scenarios {
            for client in ["keepalive-hyper", "hyper-util", "reqwest"] {
                let row = run(client, &url, t, d, n, (*lo, *hi)).await?;
                let (sent, failed, retried, opened, elapsed, first) = row;
                let rate = sent as f64 / elapsed.as_secs_f64();
                println!(
                    "| {close} | {name} | {client} | {sent} | {failed} | {retried} | {opened} | {rate:.1} |"
                );
                if let Some(why) = first {
                    eprintln!("  {client}: first failure: {why}");
                }
            }
        }
        server.kill().await?;
    }
    Ok(())
}

/// What one client's run gives: sent, failed, retried, connections
/// opened, its length, and its first failure.
type Outcome = (usize, usize, u64, u64, Duration, Option<String>);

/// One client through a fresh relay: the warm-up, then the gaps.
async fn run(
    client: &str,
    url: &str,
    t: Duration,
    d: Duration,
    n: usize,
    (lo, hi): (Duration, Duration),
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let upstream: http::Uri = url.parse()?;
    let relay = Relay::start(upstream.authority().ok_or("no authority")?.as_str().parse()?, d).await?;
    let relayed = format!("http://{}/", relay.addr());
    let mut loads = Vec::new();
    for _ in 0..WORKERS {
        loads.push(std::sync::Arc::new(Load::new(client, &relayed, 1, 1).await?));
    }
    for load in &loads {
        load.once(0).await?;
    }
    tokio::time::sleep(t + 4 * d + Duration::from_millis(100)).await; // past T: the server closes once
    let start = Instant::now();
    let workers: Vec<_> = loads
        .iter()
        .enumerate()
        .map(|(w, load)| {
            let (load, gaps) = (load.clone(), gaps(lo, hi, n, w));
            tokio::spawn(async move {
                let mut failures = vec![];
                for gap in gaps {
                    tokio::time::sleep(gap).await; // the idle gap is what is measured
                    failures.extend(load.once(0).await.err());
                }
                failures
            })
        })
        .collect();
    let mut failures = vec![];
    for w in workers {
        failures.extend(w.await?);
    }
    let retried = loads.iter().map(|l| l.retries()).sum();
    let elapsed = start.elapsed();
    Ok((
        WORKERS * n,
        failures.len(),
        retried,
        relay.connections(),
        elapsed,
        failures.into_iter().next(),
    ))
}
