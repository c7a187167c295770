//! `proxy`: what a proxy costs a request through the pool. One GET at a
//! time to the built-in server, direct, through tinyproxy (HTTP
//! `CONNECT`) and through microsocks (SOCKS5), both started here on
//! loopback:
//!
//! * warm: every request on the one pooled connection (tunnel);
//! * new: every request on a new connection, so through a proxy a new
//!   tunnel (connect to the proxy, its handshake, its connect to the
//!   server) per request.
//!
//! ```text
//! cargo build --release && cargo run --release -p keepalive-compare -- proxy [--n N] [--rounds R]
//! ```
//!
//! Medians of per-request latency over the rounds (routes in rotated
//! order), with ratios to direct; "tunnel cost" is a new request through
//! the proxy minus a warm one through it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use keepalive::{Manager, Proxy, Target};
use keepalive_http as http1;
use tokio::time::Instant;

const ROUTES: [&str; 3] = ["direct", "tinyproxy", "microsocks"];

pub(crate) fn main(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: keepalive-compare proxy [--n N] [--rounds R]";
    let (n, rounds) = crate::n_and_rounds(&mut args, usage)?;
    crate::runtime()?.block_on(measure(n, rounds))
}

/// A proxy process on a free port, killed on drop.
struct Running {
    _child: tokio::process::Child,
    port: u16,
    _dir: Option<TempDir>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn listening(port: u16, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {port}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn tinyproxy() -> Result<Running, Box<dyn std::error::Error>> {
    let port = free_port()?;
    let dir = TempDir(std::env::temp_dir().join(format!("keepalive-bench-tinyproxy-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let conf = dir.0.join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!("Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 200\nLogLevel Error\n"),
    )?;
    let child = tokio::process::Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("tinyproxy (apt-get install tinyproxy): {e}"))?;
    listening(port, "tinyproxy").await?;
    Ok(Running {
        _child: child,
        port,
        _dir: Some(dir),
    })
}

async fn microsocks() -> Result<Running, Box<dyn std::error::Error>> {
    let port = free_port()?;
    let child = tokio::process::Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("microsocks (apt-get install microsocks): {e}"))?;
    listening(port, "microsocks").await?;
    Ok(Running {
        _child: child,
        port,
        _dir: None,
    })
}

/// Median latency in µs of `n` sequential GETs; with `fresh`, each on a
/// new connection.
async fn latency(
    target: &Target,
    request: &[u8],
    n: usize,
    fresh: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let manager = Manager::builder().max_per_host(1).build();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 1 {
        let start = Instant::now();
        let mut conn = manager.allocate(target.clone()).await?;
        let out = http1::exchange(&mut conn, request, false, &mut buf, &mut |_| {}).await?;
        if out.status != 200 {
            return Err(format!("{target}: status {}", out.status).into());
        }
        if fresh {
            conn.discard();
        } else {
            http1::settle(conn, &out);
        }
        // The first request of a warm run opens the connection.
        if i > 0 || fresh {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    manager.shutdown().await;
    times.truncate(n);
    Ok(crate::median_f64(times))
}

async fn measure(n: usize, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (mut server, url) = crate::start_server(&[]).await?;
    let tiny = tinyproxy().await?;
    let socks = microsocks().await?;
    let direct: Target = url.parse()?;
    let targets = [
        direct.clone(),
        direct.clone().via(Proxy::http("127.0.0.1", tiny.port)),
        direct.clone().via(Proxy::socks5("127.0.0.1", socks.port)),
    ];
    let request = http1::request("GET", &format!("127.0.0.1:{}", direct.port()), "/");
    let fresh_n = (n / 5).max(10);
    println!("server: {url} (keepalive serve, own process); tinyproxy and microsocks on loopback");
    println!(
        "{rounds} rounds; per round {n} warm and {fresh_n} new-connection GETs per route, one at a time"
    );
    println!();
    let mut warm = vec![Vec::new(); ROUTES.len()];
    let mut new = vec![Vec::new(); ROUTES.len()];
    for round in 0..rounds {
        for k in 0..ROUTES.len() {
            let i = (k + round) % ROUTES.len();
            warm[i].push(latency(&targets[i], &request, n, false).await?);
            new[i].push(latency(&targets[i], &request, fresh_n, true).await?);
        }
    }
    let warm: Vec<f64> = warm.into_iter().map(crate::median_f64).collect();
    let new: Vec<f64> = new.into_iter().map(crate::median_f64).collect();
    println!("| route | warm request | vs direct | new connection + request | vs direct | tunnel cost |");
    println!("|---|---|---|---|---|---|");
    for (i, route) in ROUTES.iter().enumerate() {
        let cost = match i {
            0 => "-".to_owned(),
            _ => format!("{:.0} µs", new[i] - warm[i]),
        };
        println!(
            "| {route} | {:.1} µs | {:.2}x | {:.1} µs | {:.2}x | {cost} |",
            warm[i],
            warm[i] / warm[0],
            new[i],
            new[i] / new[0]
        );
    }
    server.kill().await?;
    Ok(())
}
