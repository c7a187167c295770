//! The keep-alive race, side by side: a server that closes connections
//! idle for T (`keepalive serve --idle-close T`, in its own process),
//! behind a relay that delays every byte and every close by D each way.
//! Requests sent after an idle gap in (T − 2D, T) meet the server's close
//! on its way; gaps well under T reuse connections safely.
//!
//! ```text
//! cargo build --release && cargo run --release -p keepalive-compare -- race [--t SECS] [--d MS] [--n N]
//! ```
//!
//! This is the primed mode; `race --cold` (or `race-cold`) is the mode
//! where no pool has seen its server's close (`cold.rs`).
//!
//! Clients, each with a fresh pool and `WORKERS` workers:
//!
//! * `keepalive`: learning on (the default), no hints (the server does not
//!   announce its limit);
//! * `keepalive, learning off`: `learn_idle_timeouts(false)`, no hints;
//! * `keepalive, hints`: learning off, against the same server announcing
//!   `Keep-Alive: timeout=T` (`--announce`), which `keepalive_http::settle`
//!   passes to the pool;
//! * `keepalive-hyper`: hyper on the pool, learning on, with its retry
//!   rule (counted apart: a retried request is not a failure the user
//!   sees, but the table says how many there were);
//! * `hyper-util` and `reqwest` with their defaults (they retry a request
//!   only when it was never written; they ignore `Keep-Alive`).
//!
//! Every run starts with one request per worker and an idle period past T,
//! so that the server closes an idle connection of the key once (the
//! first close the pool learns from); then each worker sends `--n`
//! requests, each after a gap drawn from the scenario's range (evenly
//! spread over it, in a shuffled order). A failure is an error the user
//! sees; no client is asked to retry.

use std::sync::Arc;
use std::time::Duration;

use keepalive_relay::Relay;
use tokio::time::Instant;

use crate::Load;

/// Workers per client.
pub(crate) const WORKERS: usize = 8;

/// One line of the table.
struct Row {
    sent: usize,
    failed: usize,
    /// Requests the client sent again (keepalive-hyper's retry rule).
    retried: u64,
    opened: u64,
    elapsed: Duration,
    first_failure: Option<String>,
}

pub(crate) fn main(args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut args = args.peekable();
    // `race --cold ...` is the cold mode (`race-cold`).
    if args.peek().map(String::as_str) == Some("--cold") {
        return crate::cold::main(args.skip(1));
    }
    let (mut t, mut d, mut n) = (1.0, 25.0, 12usize);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<f64>())) {
            ("--t", Some(Ok(v))) if v >= 1.0 && v.fract() == 0.0 => t = v,
            ("--d", Some(Ok(v))) if v > 0.0 => d = v,
            ("--n", Some(Ok(v))) if v >= 1.0 => n = v as usize,
            _ => {
                return Err(
                    "usage: keepalive-compare race [--t WHOLE_SECONDS] [--d MILLISECONDS] [--n REQUESTS_PER_WORKER]".into(),
                )
            }
        }
    }
    let runtime = crate::runtime()?;
    let t = Duration::from_secs_f64(t);
    let d = Duration::from_secs_f64(d / 1000.0);
    runtime.block_on(race(t, d, n))
}

async fn race(t: Duration, d: Duration, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let secs = format!("{}", t.as_secs());
    let (mut plain, plain_url) = crate::start_server(&["--idle-close", &secs]).await?;
    let (mut announcing, announcing_url) =
        crate::start_server(&["--idle-close", &secs, "--announce"]).await?;
    println!(
        "server: keepalive serve --idle-close {secs} (own process) behind a relay delaying each way by {d:?}; \
         {WORKERS} workers x {n} requests per client and scenario"
    );
    println!();
    println!("| gaps | client | sent | failed | retried | connections opened | requests/s |");
    println!("|---|---|---|---|---|---|---|");
    let scenarios = [
        (format!("race: ({:?}, {:?})", t - 2 * d, t), t - 2 * d, t),
        (format!("short: ({:?}, {:?})", t / 20, t / 5), t / 20, t / 5),
    ];
    let clients = [
        "keepalive",
        "keepalive, learning off",
        "keepalive, hints",
        "keepalive-hyper",
        "hyper-util",
        "reqwest",
    ];
    for (name, lo, hi) in &scenarios {
        for client in clients {
            let url = if client == "keepalive, hints" {
                &announcing_url
            } else {
                &plain_url
            };
            let row = run(client, url, t, d, n, (*lo, *hi)).await?;
            println!(
                "| {name} | {client} | {} | {} | {} | {} | {:.1} |",
                row.sent,
                row.failed,
                row.retried,
                row.opened,
                row.sent as f64 / row.elapsed.as_secs_f64()
            );
            if let Some(why) = row.first_failure {
                eprintln!("  {client}: first failure: {why}");
            }
        }
    }
    plain.kill().await?;
    announcing.kill().await?;
    Ok(())
}

/// One client through a fresh relay: the warm-up, then the gaps.
async fn run(
    client: &str,
    url: &str,
    t: Duration,
    d: Duration,
    n: usize,
    (lo, hi): (Duration, Duration),
) -> Result<Row, Box<dyn std::error::Error>> {
    let upstream: http::Uri = url.parse()?;
    let upstream = upstream.authority().ok_or("no authority")?.as_str().parse()?;
    let relay = Relay::start(upstream, d).await?;
    let relayed = format!("http://{}/", relay.addr());
    let load = match client {
        "keepalive, learning off" | "keepalive, hints" => Load::Keepalive {
            manager: keepalive::Manager::builder()
                .max_per_host(WORKERS)
                .learn_idle_timeouts(false)
                .build(),
            target: relayed.parse()?,
            request: crate::http1::request("GET", &relay.addr().to_string(), "/"),
        },
        "keepalive" => Load::new("keepalive", &relayed, WORKERS).await?,
        other => Load::new(other, &relayed, WORKERS).await?,
    };
    let load = Arc::new(load);
    // Warm-up: a connection per worker, then an idle period past T, so the
    // server closes idle connections once.
    let warm: Vec<_> = (0..WORKERS)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move { load.once(None, None, &mut Vec::new()).await })
        })
        .collect();
    for w in warm {
        w.await??;
    }
    tokio::time::sleep(t + 4 * d + Duration::from_millis(100)).await;

    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let load = load.clone();
            let gaps = gaps(lo, hi, n, w);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut failures = vec![];
                for gap in gaps {
                    tokio::time::sleep(gap).await;
                    if let Err(e) = load.once(None, None, &mut buf).await {
                        failures.push(e);
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = vec![];
    for w in workers {
        failures.extend(w.await?);
    }
    let retried = match &*load {
        Load::KeepaliveHyper { client, .. } => client.retries(),
        _ => 0,
    };
    Ok(Row {
        sent: WORKERS * n,
        failed: failures.len(),
        retried,
        opened: relay.connections(),
        elapsed: start.elapsed(),
        first_failure: failures.into_iter().next(),
    })
}

/// Worker `w`'s `n` gaps: the `WORKERS × n` points evenly spread over
/// `(lo, hi)`, dealt out in a scrambled order so that each worker's gaps
/// cover the range.
pub(crate) fn gaps(lo: Duration, hi: Duration, n: usize, w: usize) -> Vec<Duration> {
    let total = WORKERS * n;
    (0..n)
        .map(|i| {
            // A fixed permutation of 0..total (multiplying by a number
            // coprime to it), so neighbours in time are far apart in gap.
            let k = ((i * WORKERS + w) * coprime(total)) % total;
            lo + (hi - lo).mul_f64((k as f64 + 0.5) / total as f64)
        })
        .collect()
}

/// A multiplier coprime to `total`, near 0.62 of it.
fn coprime(total: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    (total * 62 / 100..total)
        .find(|&m| gcd(m, total) == 1)
        .unwrap_or(1)
}
