//! The keep-alive race from the first encounter ("cold"): one client per
//! worker, nothing primed, so no pool has seen its server's idle close.
//!
//! ```text
//! cargo build --release && cargo run --release -p keepalive-compare -- race-cold [--t SECS] [--d MS] [--runs R]
//! ```
//!
//! The server closes connections idle for T (`keepalive serve --idle-close
//! T`, its own process) behind a relay that delays each direction by D.
//! Each of `WORKERS` workers has a client of its own (a `Manager`, a
//! `keepalive_hyper::Client`, a hyper-util `Client`, a `reqwest::Client`)
//! and sends 12 requests: the first at once, then each after a gap, in a
//! scrambled order: 9 gaps in the race window (T − 2D, T), 2 short ones
//! and 1 past the limit. Reported, for the window requests: how many
//! failed before any retry (the request met the close), how many the
//! client retried, and how many failed after the retry (what the user
//! sees). keepalive retries with `keepalive_http::send`'s rule and
//! keepalive-hyper with its own; hyper-util and reqwest retry only
//! requests never written, invisibly.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use keepalive_relay::Relay;

use crate::Load;

/// Workers (and clients) per run.
const WORKERS: usize = 8;
/// The clients compared.
const CLIENTS: [&str; 4] = ["keepalive", "keepalive-hyper", "hyper-util", "reqwest"];

/// What one request came to.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    sent: usize,
    lost: usize,
    retried: usize,
    failed: usize,
    /// The most requests one client lost before any retry.
    worst: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.lost += other.lost;
        self.retried += other.retried;
        self.failed += other.failed;
        self.worst = self.worst.max(other.worst);
    }
}

pub(crate) fn main(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let (mut t, mut d, mut runs) = (1.5, 25.0, 2usize);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<f64>())) {
            ("--t", Some(Ok(v))) if v >= 1.0 => t = v,
            ("--d", Some(Ok(v))) if v > 0.0 => d = v,
            ("--runs", Some(Ok(v))) if v >= 1.0 => runs = v as usize,
            _ => {
                return Err(
                    "usage: keepalive-compare race-cold [--t SECONDS] [--d MILLISECONDS] [--runs R]".into(),
                )
            }
        }
    }
    let runtime = crate::runtime()?;
    let t = Duration::from_secs_f64(t);
    let d = Duration::from_secs_f64(d / 1000.0);
    runtime.block_on(cold(t, d, runs))
}

async fn cold(t: Duration, d: Duration, runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (mut server, url) = crate::start_server(&["--idle-close", &t.as_secs_f64().to_string()]).await?;
    println!(
        "server: keepalive serve, idle close {t:?} (own process), behind a relay delaying each way by {d:?}; \
         {WORKERS} workers, one client each, nothing primed, 12 requests per worker (9 in the window), {runs} runs"
    );
    println!();
    println!("| client | window requests | failed before retry | most by one client | retried | failed after retry |");
    println!("|---|---|---|---|---|---|");
    for client in CLIENTS {
        let mut total = Tally::default();
        for run in 0..runs {
            total.add(one_run(client, &url, t, d, run).await?);
        }
        let retried = match client {
            "keepalive" | "keepalive-hyper" => total.retried.to_string(),
            _ => "not visible".to_owned(),
        };
        println!(
            "| {client} | {} | {} | {} | {retried} | {} |",
            total.sent, total.lost, total.worst, total.failed
        );
    }
    server.kill().await?;
    Ok(())
}

/// One run: a fresh relay, `WORKERS` workers with a client each.
async fn one_run(
    client: &str,
    url: &str,
    t: Duration,
    d: Duration,
    run: usize,
) -> Result<Tally, Box<dyn std::error::Error>> {
    let upstream: http::Uri = url.parse()?;
    let upstream = upstream.authority().ok_or("no authority")?.as_str().parse()?;
    let relay = Relay::start(upstream, d).await?;
    let relayed = format!("http://{}/", relay.addr());
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        // A client of its own, as a crawler's many processes or hosts have.
        let load = Arc::new(Load::new(client, &relayed, 1).await?);
        let gaps = gaps(t, d, w + run * WORKERS);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut buf = Vec::new();
            let _ = attempt(&load, &mut buf).await; // the first request: fresh
            for (gap, in_window) in gaps {
                tokio::time::sleep(gap).await;
                let (lost, retried, failed) = attempt(&load, &mut buf).await;
                if in_window {
                    tally.sent += 1;
                    tally.lost += usize::from(lost);
                    tally.retried += usize::from(retried);
                    tally.failed += usize::from(failed);
                }
            }
            tally.worst = tally.lost;
            tally
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        total.add(w.await?);
    }
    Ok(total)
}

/// One GET with the client's own retry: (met the close, retried, failed
/// in the end).
async fn attempt(load: &Load, buf: &mut Vec<u8>) -> (bool, bool, bool) {
    match load {
        Load::Keepalive {
            manager,
            target,
            request,
        } => match keepalive_http::send(manager, target, "GET", request, buf, &mut |_| {}).await {
            Ok(outcome) => (outcome.retried, outcome.retried, false),
            Err(e) => (true, e.retried(), true),
        },
        Load::KeepaliveHyper { client, uri } => {
            let before = client.retries();
            let result = async {
                let req = http::Request::get(uri.clone()).body(Empty::new())?;
                client.request(req).await?.into_body().collect().await?;
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }
            .await;
            let retried = client.retries() > before;
            (retried || result.is_err(), retried, result.is_err())
        }
        other => {
            let failed = other.once(None, None, buf).await.is_err();
            (failed, false, failed)
        }
    }
}

/// Worker `w`'s 11 gaps after its first request, each with whether it is
/// in the race window: 9 spread over (T − 2D, T), 2 short, 1 past T, in
/// an order scrambled per worker.
fn gaps(t: Duration, d: Duration, w: usize) -> Vec<(Duration, bool)> {
    let window = t - 2 * d;
    let mut gaps: Vec<(Duration, bool)> = (0..9)
        .map(|i| (window + (2 * d).mul_f64((i as f64 + 0.5) / 9.0), true))
        .collect();
    gaps.push((t / 20, false));
    gaps.push((t / 5, false));
    gaps.push((t + 4 * d, false));
    // A fixed shuffle per worker: rotate, then interleave from both ends.
    let turn = w % gaps.len();
    gaps.rotate_left(turn);
    let mut order = Vec::with_capacity(gaps.len());
    while !gaps.is_empty() {
        order.push(gaps.remove(0));
        if let Some(last) = gaps.pop() {
            order.push(last);
        }
    }
    order
}
