//! The comparison harness: one GET load through four clients, side by side
//! in one run, against the built-in server (`keepalive serve`) in its own
//! process.
//!
//! ```text
//! cargo build --release && cargo run --release -p keepalive-compare -- [--secs S] [--rounds R] [--c C]
//! ```
//!
//! Other modes: `h2` (the same load over HTTP/2, h2c; see h2.rs),
//! `h2-race` (the keep-alive race over HTTP/2, h2race.rs),
//! `race` and `race --cold` (the keep-alive race), `proxy`
//! (a request through a pooled tunnel against direct, and the cost of a
//! new tunnel), `fleet` (a new connection and a warm request with the
//! fleet on and off), `profile` (one client alone, for `perf`).
//!
//! Clients, each with `c` workers on a two-thread runtime:
//!
//! * `keepalive`: the `keepalive` command's HTTP/1.1 client (the same
//!   source file) on connections from a `Manager` with `max_per_host = c`.
//! * `keepalive-hyper`: hyper's HTTP/1.1 on the pool (`keepalive_hyper::Client`,
//!   `max_per_host = c`).
//! * `hyper-util`: hyper-util's legacy `Client`, with its own pool.
//! * `hyperconn`: hyper with no pool: each worker keeps one connection
//!   (one handshake) and sends every request on it. The floor for hyper's
//!   protocol.
//! * `reqwest`: `reqwest::Client` (HTTP only).
//! * `raw`: each worker keeps one `TcpStream` and speaks HTTP/1.1 on it
//!   with the same client code as `keepalive`, no pool at all: the physical
//!   limit for this load.
//!
//! For each c in 1, 16, 64 (or only `--c`), every client runs `--secs` (default 3) after a
//! short warm-up, in `--rounds` rounds (default 3) with the client order
//! rotated; the table gives the median requests/s, p99 and client CPU per
//! request (the harness process's user + system time over the measured
//! window, divided by the requests; the server is another process) over
//! the rounds, and the ratios to hyper-util, hyperconn and raw: each the
//! median of the rounds' own ratios, which a machine whose speed drifts
//! between rounds moves less than a ratio of medians.

use keepalive_http as http1;

mod cold;
mod fleet;
mod h2;
mod h2race;
mod proxy;
mod race;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const CLIENTS: [&str; 6] = [
    "keepalive",
    "keepalive-hyper",
    "hyper-util",
    "hyperconn",
    "reqwest",
    "raw",
];
/// Where hyper-util, hyperconn and raw are in [`CLIENTS`], for the ratios.
const HYPER_UTIL: usize = 2;
const HYPERCONN: usize = 3;
const RAW: usize = 5;
const WARM_UP: Duration = Duration::from_millis(500);

/// Requests/s, p99 latency (µs) and client CPU per request (µs) of one
/// measurement.
#[derive(Clone, Copy, Debug)]
struct Measure {
    rps: f64,
    p99: u64,
    cpu_us: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("race") {
        return race::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("race-cold") {
        return cold::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("fleet") {
        return fleet::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("proxy") {
        return proxy::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("h2") {
        return h2::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("h2-race") {
        return h2race::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("h2-profile") {
        return h2::profile(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("h2-serve") {
        return h2::serve(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("profile") {
        return profile(std::env::args().skip(2));
    }
    let mut secs = 3.0;
    let mut rounds = 3;
    let mut only_c = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<f64>())) {
            ("--secs", Some(Ok(v))) if v > 0.0 => secs = v,
            ("--rounds", Some(Ok(v))) if v >= 1.0 => rounds = v as usize,
            ("--c", Some(Ok(v))) if v >= 1.0 => only_c = Some(v as usize),
            _ => return Err("usage: keepalive-compare [--secs S] [--rounds R] [--c C]".into()),
        }
    }
    let runtime = crate::runtime()?;
    let levels = only_c.map_or(CONCURRENCY.to_vec(), |c| vec![c]);
    runtime.block_on(compare(Duration::from_secs_f64(secs), rounds, &levels))
}

async fn compare(secs: Duration, rounds: usize, levels: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let (mut server, url) = start_server(&[]).await?;
    println!("server: {url} (keepalive serve, own process); {rounds} rounds of {secs:?} per client and c");
    println!();
    println!(
        "| c | client | requests/s | p99 | CPU/request | rps vs hyper-util | CPU vs hyper-util | CPU vs hyperconn | rps vs raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &c in levels {
        let mut results: Vec<Vec<Measure>> = vec![Vec::new(); CLIENTS.len()];
        for round in 0..rounds {
            for k in 0..CLIENTS.len() {
                let i = (k + round) % CLIENTS.len();
                results[i].push(run(CLIENTS[i], &url, c, secs).await?);
            }
        }
        // A ratio is the median of the rounds' own ratios: clients of one
        // round run back to back, so a machine that speeds up or slows
        // down between rounds moves both sides of each ratio alike.
        let ratio = |i: usize, peer: usize, of: fn(&Measure) -> f64| {
            median_f64(
                results[i]
                    .iter()
                    .zip(&results[peer])
                    .map(|(m, p)| of(m) / of(p))
                    .collect(),
            )
        };
        for (i, name) in CLIENTS.iter().enumerate() {
            let m = median(results[i].clone());
            println!(
                "| {c} | {name} | {:.0} | {} µs | {:.2} µs | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
                m.rps,
                m.p99,
                m.cpu_us,
                ratio(i, HYPER_UTIL, |m| m.rps),
                ratio(i, HYPER_UTIL, |m| m.cpu_us),
                ratio(i, HYPERCONN, |m| m.cpu_us),
                ratio(i, RAW, |m| m.rps),
            );
        }
    }
    server.kill().await?;
    Ok(())
}

/// The runtime every mode measures on: two worker threads, as the
/// machine has two cores.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// `profile CLIENT C SECS`: one client alone, for `perf record`.
fn profile(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: keepalive-compare profile CLIENT C SECS";
    let client = args.next().ok_or(usage)?;
    let c: usize = args.next().ok_or(usage)?.parse()?;
    let secs: f64 = args.next().ok_or(usage)?.parse()?;
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let (mut server, url) = start_server(&[]).await?;
        let m = run(&client, &url, c, Duration::from_secs_f64(secs)).await?;
        println!(
            "{client} c={c}: {:.0} requests/s, {:.2} µs CPU/request",
            m.rps, m.cpu_us
        );
        server.kill().await?;
        Ok(())
    })
}

fn median(mut runs: Vec<Measure>) -> Measure {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let rps = runs[runs.len() / 2].rps;
    runs.sort_by(|a, b| a.cpu_us.total_cmp(&b.cpu_us));
    let cpu_us = runs[runs.len() / 2].cpu_us;
    runs.sort_by_key(|m| m.p99);
    Measure {
        rps,
        p99: runs[runs.len() / 2].p99,
        cpu_us,
    }
}

/// `[--n N] [--rounds R]` for the one-at-a-time modes: 2,000 requests
/// and 5 rounds unless given.
fn n_and_rounds(
    args: &mut impl Iterator<Item = String>,
    usage: &str,
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let (mut n, mut rounds) = (2000usize, 5usize);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse::<usize>().ok())) {
            ("--n", Some(v)) if v >= 10 => n = v,
            ("--rounds", Some(v)) if v >= 1 => rounds = v,
            _ => return Err(usage.into()),
        }
    }
    Ok((n, rounds))
}

/// The median of some measures.
fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// This process's user + system CPU time so far, in µs.
fn cpu_time_us() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer it is
    // given, which points at one zeroed rusage of our own.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Starts `keepalive serve` (built next to this binary) on a free port,
/// with `args`.
async fn start_server(args: &[&str]) -> Result<(tokio::process::Child, String), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let server = exe.with_file_name("keepalive");
    if !server.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            server.display()
        )
        .into());
    }
    let mut command = tokio::process::Command::new(&server);
    command.args(["serve", "--addr", "127.0.0.1:0"]).args(args);
    spawn_server(command).await
}

/// Spawns a server `command` whose first line on stdout is `listening on
/// URL`; its child (killed on drop) and URL.
async fn spawn_server(
    mut command: tokio::process::Command,
) -> Result<(tokio::process::Child, String), Box<dyn std::error::Error>> {
    let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected server output: {line:?}"))?
        .to_owned();
    Ok((child, url))
}

/// Runs `client` with `c` workers: a warm-up, then `secs` measured.
async fn run(
    client: &str,
    url: &str,
    c: usize,
    secs: Duration,
) -> Result<Measure, Box<dyn std::error::Error>> {
    let load = Load::new(client, url, c).await?;
    let load = Arc::new(load);
    let warm_until = Instant::now() + WARM_UP;
    let end = warm_until + secs;
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move { load.worker(warm_until, end).await })
        })
        .collect();
    tokio::time::sleep_until(warm_until).await;
    let cpu_before = cpu_time_us();
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut count = 0u64;
    for w in workers {
        let (n, h) = w.await??;
        count += n;
        latency.add(&h)?;
    }
    let cpu = cpu_time_us() - cpu_before;
    Ok(Measure {
        rps: count as f64 / secs.as_secs_f64(),
        p99: latency.value_at_quantile(0.99),
        cpu_us: cpu / count.max(1) as f64,
    })
}

/// One client, set up for a load.
enum Load {
    Keepalive {
        manager: keepalive::Manager,
        target: keepalive::Target,
        request: Vec<u8>,
    },
    KeepaliveHyper {
        client: keepalive_hyper::Client<Empty<Bytes>>,
        uri: http::Uri,
    },
    HyperConn {
        addr: std::net::SocketAddr,
        uri: http::Uri,
    },
    Hyper {
        client: Box<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                Empty<Bytes>,
            >,
        >,
        uri: http::Uri,
    },
    Reqwest {
        client: reqwest::Client,
        url: String,
    },
    Raw {
        addr: std::net::SocketAddr,
        request: Vec<u8>,
    },
}

type WorkerResult = Result<(u64, hdrhistogram::Histogram<u64>), String>;

impl Load {
    async fn new(client: &str, url: &str, c: usize) -> Result<Load, Box<dyn std::error::Error>> {
        let uri: http::Uri = url.parse()?;
        let authority = uri.authority().ok_or("no authority")?.as_str().to_owned();
        let request = http1::request("GET", &authority, "/");
        Ok(match client {
            "keepalive" => Load::Keepalive {
                manager: keepalive::Manager::builder()
                    .max_per_host(c)
                    .max_open(c.max(128))
                    .build(),
                target: url.parse()?,
                request,
            },
            "keepalive-hyper" => Load::KeepaliveHyper {
                client: keepalive_hyper::Client::with_builder(
                    keepalive::Manager::builder().max_per_host(c).max_open(c.max(128)),
                ),
                uri,
            },
            "hyperconn" => Load::HyperConn {
                addr: authority.parse()?,
                uri,
            },
            "hyper-util" => Load::Hyper {
                client: Box::new(
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                        .build_http(),
                ),
                uri,
            },
            "reqwest" => Load::Reqwest {
                client: reqwest::Client::builder().build()?,
                url: url.to_owned(),
            },
            _ => Load::Raw {
                addr: authority.parse()?,
                request,
            },
        })
    }

    /// Requests until `end`; counts and times those that start after
    /// `warm_until`.
    async fn worker(&self, warm_until: Instant, end: Instant) -> WorkerResult {
        let mut latency =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        let mut count = 0;
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut raw = match self {
            Load::Raw { addr, .. } => {
                let s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                Some(s)
            }
            _ => None,
        };
        let mut conn = match self {
            Load::HyperConn { addr, .. } => Some(hyper_conn(*addr).await?),
            _ => None,
        };
        loop {
            let start = Instant::now();
            if start >= end {
                return Ok((count, latency));
            }
            self.once(raw.as_mut(), conn.as_mut(), &mut buf).await?;
            if start >= warm_until {
                count += 1;
                let _ = latency.record(
                    u64::try_from(start.elapsed().as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1),
                );
            }
        }
    }

    /// One GET with this client; `raw` is the worker's own socket for
    /// `Load::Raw`, `conn` its own hyper connection for `Load::HyperConn`.
    async fn once(
        &self,
        raw: Option<&mut tokio::net::TcpStream>,
        conn: Option<&mut HyperSend>,
        buf: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Load::Keepalive {
                manager,
                target,
                request,
            } => {
                let mut conn = manager
                    .allocate(target.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let out = http1::exchange(&mut conn, request, false, buf, &mut |_| {})
                    .await
                    .map_err(|e| e.to_string())?;
                http1::settle(conn, &out);
            }
            Load::Hyper { client, uri } => {
                let response = client.get(uri.clone()).await.map_err(|e| e.to_string())?;
                response.into_body().collect().await.map_err(|e| e.to_string())?;
            }
            Load::KeepaliveHyper { client, uri } => {
                let req = http::Request::get(uri.clone())
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let response = client.request(req).await.map_err(|e| e.to_string())?;
                response.into_body().collect().await.map_err(|e| e.to_string())?;
            }
            Load::HyperConn { uri, .. } => {
                let send = conn.ok_or("a hyperconn load needs its connection")?;
                send.ready().await.map_err(|e| e.to_string())?;
                let req = http::Request::get(uri.path())
                    .header(http::header::HOST, uri.authority().map_or("", |a| a.as_str()))
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let response = send.send_request(req).await.map_err(|e| e.to_string())?;
                response.into_body().collect().await.map_err(|e| e.to_string())?;
            }
            Load::Reqwest { client, url } => {
                client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .bytes()
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Load::Raw { request, .. } => {
                let stream = raw.ok_or("a raw load needs its socket")?;
                http1::exchange(stream, request, false, buf, &mut |_| {})
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// One hyper HTTP/1.1 connection of a `hyperconn` worker.
type HyperSend = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Connects and runs hyper's handshake once, with its connection task.
async fn hyper_conn(addr: std::net::SocketAddr) -> Result<HyperSend, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}
