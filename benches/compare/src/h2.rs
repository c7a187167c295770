//! `h2`: the same GET load over HTTP/2 by prior knowledge (h2c), through
//! keepalive-hyper, hyper-util's legacy client (`http2_only`), reqwest
//! (`http2_prior_knowledge`) and hyper's bare HTTP/2 on one and on four
//! connections shared by all workers (no pool: the floors), against an
//! h2c server (hyper's, in its own process: this binary's `h2-serve`
//! mode) whose stream limit is `--streams`.
//!
//! ```text
//! keepalive-compare h2 [--secs S] [--rounds R] [--c C] [--streams N] [--max-per-host K]
//! ```
//!
//! keepalive-hyper runs with `max_per_host` K (default 4): it spreads over
//! up to K connections at the server's stream limit, where hyper-util and
//! reqwest keep one connection and queue the rest inside hyper.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::Instant;

use crate::{cpu_time_us, median, median_f64, Measure, WARM_UP};

const CLIENTS: [&str; 5] = ["keepalive-hyper", "hyper-util", "reqwest", "h2conn", "h2conn-4"];
/// Where hyper-util and h2conn are in [`CLIENTS`], for the ratios.
const HYPER_UTIL: usize = 1;
const H2CONN: usize = 3;
const BODY: &str = "Hello, world!\n";

/// The flags of the mode.
struct Flags {
    secs: Duration,
    rounds: usize,
    levels: Vec<usize>,
    streams: u32,
    max_per_host: usize,
}

fn flags(mut args: impl Iterator<Item = String>) -> Result<Flags, Box<dyn std::error::Error>> {
    let usage =
        "usage: keepalive-compare h2 [--secs S] [--rounds R] [--c C] [--streams N] [--max-per-host K]";
    let mut f = Flags {
        secs: Duration::from_secs(3),
        rounds: 3,
        levels: vec![16, 64, 256],
        streams: 100,
        max_per_host: 4,
    };
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<f64>())) {
            ("--secs", Some(Ok(v))) if v > 0.0 => f.secs = Duration::from_secs_f64(v),
            ("--rounds", Some(Ok(v))) if v >= 1.0 => f.rounds = v as usize,
            ("--c", Some(Ok(v))) if v >= 1.0 => f.levels = vec![v as usize],
            ("--streams", Some(Ok(v))) if v >= 1.0 => f.streams = v as u32,
            ("--max-per-host", Some(Ok(v))) if v >= 1.0 => f.max_per_host = v as usize,
            _ => return Err(usage.into()),
        }
    }
    Ok(f)
}

pub(crate) fn main(args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let f = flags(args)?;
    crate::runtime()?.block_on(compare(f))
}

async fn compare(f: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let streams = f.streams.to_string();
    let (mut server, url) = start_server(&[&streams]).await?;
    println!(
        "server: {url} (hyper h2c, own process, {} streams a connection); keepalive-hyper max_per_host {}; {} rounds of {:?}",
        f.streams, f.max_per_host, f.rounds, f.secs
    );
    println!();
    println!("| c | client | requests/s | p99 | CPU/request | errors | connections | rps vs hyper-util | CPU vs hyper-util | CPU vs h2conn |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &c in &f.levels {
        let mut results: Vec<Vec<(Measure, Extra)>> = vec![Vec::new(); CLIENTS.len()];
        for round in 0..f.rounds {
            for k in 0..CLIENTS.len() {
                let i = (k + round) % CLIENTS.len();
                results[i].push(run(CLIENTS[i], &url, c, f.secs, f.max_per_host).await?);
            }
        }
        table(c, &results);
    }
    server.kill().await?;
    Ok(())
}

/// Errors and the connections the client ended with (the most any round
/// saw), beside the measure.
#[derive(Clone, Copy, Debug, Default)]
struct Extra {
    errors: u64,
    connections: usize,
}

fn table(c: usize, results: &[Vec<(Measure, Extra)>]) {
    let ratio = |i: usize, peer: usize, of: fn(&Measure) -> f64| {
        median_f64(
            results[i]
                .iter()
                .zip(&results[peer])
                .map(|((m, _), (p, _))| of(m) / of(p))
                .collect(),
        )
    };
    for (i, name) in CLIENTS.iter().enumerate() {
        let m = median(results[i].iter().map(|(m, _)| *m).collect());
        let errors: u64 = results[i].iter().map(|(_, e)| e.errors).sum();
        let connections = results[i].iter().map(|(_, e)| e.connections).max().unwrap_or(0);
        println!(
            "| {c} | {name} | {:.0} | {} µs | {:.2} µs | {errors} | {connections} | {:.2}x | {:.2}x | {:.2}x |",
            m.rps,
            m.p99,
            m.cpu_us,
            ratio(i, HYPER_UTIL, |m| m.rps),
            ratio(i, HYPER_UTIL, |m| m.cpu_us),
            ratio(i, H2CONN, |m| m.cpu_us),
        );
    }
}

/// Runs `client` with `c` workers: a warm-up, then `secs` measured. Errors
/// (warm-up included) are counted, not fatal.
async fn run(
    client: &str,
    url: &str,
    c: usize,
    secs: Duration,
    max_per_host: usize,
) -> Result<(Measure, Extra), Box<dyn std::error::Error>> {
    let load = Arc::new(Load::new(client, url, c, max_per_host).await?);
    let warm_until = Instant::now() + WARM_UP;
    let end = warm_until + secs;
    let errors = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..c)
        .map(|w| {
            let (load, errors) = (load.clone(), errors.clone());
            tokio::spawn(async move { load.worker(w, warm_until, end, &errors).await })
        })
        .collect();
    tokio::time::sleep_until(warm_until).await;
    let cpu_before = cpu_time_us();
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut count = 0u64;
    for w in workers {
        let (n, h) = w.await?;
        count += n;
        latency.add(&h)?;
    }
    let cpu = cpu_time_us() - cpu_before;
    let measure = Measure {
        rps: count as f64 / secs.as_secs_f64(),
        p99: latency.value_at_quantile(0.99),
        cpu_us: cpu / count.max(1) as f64,
    };
    let extra = Extra {
        errors: errors.load(Ordering::Relaxed) as u64,
        connections: load.connections(),
    };
    Ok((measure, extra))
}

pub(crate) type LegacyClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;
type H2Send = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// One client, set up for a load.
pub(crate) enum Load {
    KeepaliveHyper {
        client: keepalive_hyper::Client<Empty<Bytes>>,
        uri: http::Uri,
    },
    HyperUtil {
        client: Box<LegacyClient>,
        uri: http::Uri,
    },
    Reqwest {
        client: reqwest::Client,
        url: String,
    },
    /// hyper's bare HTTP/2 connections, shared round-robin by the workers.
    H2Conn {
        sends: Vec<H2Send>,
        uri: http::Uri,
    },
}

impl Load {
    pub(crate) async fn new(
        client: &str,
        url: &str,
        c: usize,
        max_per_host: usize,
    ) -> Result<Load, Box<dyn std::error::Error>> {
        let uri: http::Uri = url.parse()?;
        Ok(match client {
            "keepalive-hyper" => Load::KeepaliveHyper {
                client: keepalive_hyper::Client::builder()
                    .pool(
                        keepalive::Manager::builder()
                            .max_per_host(max_per_host)
                            .max_open(c.max(128)),
                    )
                    .http2_prior_knowledge()
                    .build(),
                uri,
            },
            "hyper-util" => Load::HyperUtil {
                client: Box::new(
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                        .http2_only(true)
                        .build_http(),
                ),
                uri,
            },
            "reqwest" => Load::Reqwest {
                client: reqwest::Client::builder().http2_prior_knowledge().build()?,
                url: url.to_owned(),
            },
            "h2conn" | "h2conn-4" => {
                let n = if client == "h2conn" { 1 } else { 4 };
                let addr: std::net::SocketAddr = uri.authority().ok_or("no authority")?.as_str().parse()?;
                let mut sends = Vec::new();
                for _ in 0..n {
                    sends.push(h2_conn(addr).await?);
                }
                Load::H2Conn { sends, uri }
            }
            other => return Err(format!("unknown client {other}").into()),
        })
    }

    /// Requests keepalive-hyper sent again (its retry rule); 0 for the
    /// others, which do not say.
    pub(crate) fn retries(&self) -> u64 {
        match self {
            Load::KeepaliveHyper { client, .. } => client.retries(),
            _ => 0,
        }
    }

    /// The connections the client holds now, where it says.
    fn connections(&self) -> usize {
        match self {
            Load::KeepaliveHyper { client, .. } => client.stats().open,
            Load::H2Conn { sends, .. } => sends.len(),
            // One a origin, by their design (hyper-util's pool for HTTP/2).
            Load::HyperUtil { .. } | Load::Reqwest { .. } => 1,
        }
    }

    /// Requests until `end`; counts and times those that start after
    /// `warm_until`; errors are counted in `errors`.
    async fn worker(
        &self,
        w: usize,
        warm_until: Instant,
        end: Instant,
        errors: &AtomicUsize,
    ) -> (u64, hdrhistogram::Histogram<u64>) {
        let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        let mut count = 0;
        loop {
            let start = Instant::now();
            if start >= end {
                return (count, latency);
            }
            if self.once(w).await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if start >= warm_until {
                count += 1;
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = latency.record(us.max(1));
            }
        }
    }

    /// One GET with this client, for worker `w`.
    pub(crate) async fn once(&self, w: usize) -> Result<(), String> {
        let body = match self {
            Load::KeepaliveHyper { client, uri } => {
                let req = http::Request::get(uri.clone())
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let response = client.request(req).await.map_err(|e| e.to_string())?;
                bytes_of(response.into_body()).await?
            }
            Load::HyperUtil { client, uri } => {
                let response = client.get(uri.clone()).await.map_err(|e| e.to_string())?;
                bytes_of(response.into_body()).await?
            }
            Load::Reqwest { client, url } => {
                let response = client.get(url).send().await.map_err(|e| e.to_string())?;
                response.bytes().await.map_err(|e| e.to_string())?
            }
            Load::H2Conn { sends, uri } => {
                let mut send = sends[w % sends.len()].clone();
                send.ready().await.map_err(|e| e.to_string())?;
                let req = http::Request::get(uri.clone())
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let response = send.send_request(req).await.map_err(|e| e.to_string())?;
                bytes_of(response.into_body()).await?
            }
        };
        match &body[..] == BODY.as_bytes() {
            true => Ok(()),
            false => Err(format!("unexpected body {body:?}")),
        }
    }
}

/// `h2-profile CLIENT C SECS [STREAMS]`: one client alone, for `perf`
/// and callgrind.
pub(crate) fn profile(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: keepalive-compare h2-profile CLIENT C SECS [STREAMS]";
    let client = args.next().ok_or(usage)?;
    let c: usize = args.next().ok_or(usage)?.parse()?;
    let secs: f64 = args.next().ok_or(usage)?.parse()?;
    let streams = args.next().unwrap_or_else(|| "100".to_owned());
    crate::runtime()?.block_on(async {
        let (mut server, url) = start_server(&[&streams]).await?;
        let (m, extra) = run(&client, &url, c, Duration::from_secs_f64(secs), 4).await?;
        println!(
            "{client} c={c}: {:.0} requests/s, {:.2} µs CPU/request, {} errors, {} connections",
            m.rps, m.cpu_us, extra.errors, extra.connections
        );
        server.kill().await?;
        Ok(())
    })
}

/// A response body read to its end.
async fn bytes_of<B>(body: B) -> Result<Bytes, String>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Display,
{
    Ok(body.collect().await.map_err(|e| e.to_string())?.to_bytes())
}

/// hyper's HTTP/2 handshake on a new connection, with its task.
async fn h2_conn(addr: std::net::SocketAddr) -> Result<H2Send, Box<dyn std::error::Error>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Starts this binary's `h2-serve` mode with `streams`, in its own
/// process; its child and URL.
pub(crate) async fn start_server(
    args: &[&str],
) -> Result<(tokio::process::Child, String), Box<dyn std::error::Error>> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.arg("h2-serve").args(args);
    crate::spawn_server(command).await
}

/// `h2-serve STREAMS [IDLE_MS [fin]]`: hyper's h2c server on loopback,
/// answering every request with [`BODY`], `STREAMS` streams a connection;
/// with `IDLE_MS`, a connection with no request in flight for that long is
/// shut down gracefully (hyper's: GOAWAY, PING, the final GOAWAY, then its
/// close), or with `fin` closed with no GOAWAY at all, as a load balancer
/// or a server that drops idle sockets does. Prints its URL.
pub(crate) fn serve(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: keepalive-compare h2-serve STREAMS [IDLE_MS]";
    let streams: u32 = args.next().ok_or(usage)?.parse()?;
    let idle = args
        .next()
        .map(|ms| ms.parse().map(Duration::from_millis))
        .transpose()?;
    let fin = args.next().as_deref() == Some("fin");
    crate::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}/", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve_connection(tcp, streams, idle, fin));
        }
    })
}

/// One h2c connection; with `idle`, shut down gracefully (or, with `fin`,
/// closed) once no request has been in flight for that long.
async fn serve_connection(tcp: tokio::net::TcpStream, streams: u32, idle: Option<Duration>, fin: bool) {
    let busy = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (in_flight, seen) = (busy.clone(), last.clone());
    let service = hyper::service::service_fn(move |_: http::Request<hyper::body::Incoming>| {
        in_flight.fetch_add(1, Ordering::SeqCst);
        let (in_flight, seen) = (in_flight.clone(), seen.clone());
        async move {
            *seen.lock().unwrap() = Instant::now();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                BODY.as_bytes(),
            ))))
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .max_concurrent_streams(streams)
        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let Some(idle) = idle else {
        let _ = conn.await;
        return;
    };
    let mut shutting = false;
    loop {
        let at = *last.lock().unwrap() + idle;
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(at), if !shutting => {
                let quiet = busy.load(Ordering::SeqCst) == 0 && last.lock().unwrap().elapsed() >= idle;
                if quiet && fin {
                    return;
                }
                if quiet {
                    conn.as_mut().graceful_shutdown();
                    shutting = true;
                }
            }
        }
    }
}
