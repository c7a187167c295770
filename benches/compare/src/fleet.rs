//! `fleet`: what the fleet costs. One GET at a time to the built-in
//! server through a manager with a fleet (a `redis-server` started here on
//! loopback) and through one without, alternating:
//!
//! * new: every request on a new connection, so with the fleet one
//!   script call to take a slot (and a batched release after the close);
//! * warm: every request on the one pooled connection: no Redis at all.
//!
//! ```text
//! cargo build --release && cargo run --release -p keepalive-compare -- fleet [--n N] [--rounds R]
//! ```

use std::process::Stdio;
use std::time::Duration;

use keepalive::{Fleet, Manager, Target};
use keepalive_http as http1;
use tokio::time::Instant;

pub(crate) fn main(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: keepalive-compare fleet [--n N] [--rounds R]";
    let (n, rounds) = crate::n_and_rounds(&mut args, usage)?;
    crate::runtime()?.block_on(measure(n, rounds))
}

/// Median latency in µs of `n` sequential GETs; with `fresh`, each on a
/// new connection.
async fn latency(
    manager: &Manager,
    target: &Target,
    request: &[u8],
    n: usize,
    fresh: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut times = Vec::with_capacity(n);
    // A first request opens the warm connection (and the fleet's
    // membership) outside the measure.
    for i in 0..=n {
        let start = Instant::now();
        let mut conn = manager.allocate(target.clone()).await?;
        let out = http1::exchange(&mut conn, request, false, &mut buf, &mut |_| {}).await?;
        if out.status != 200 {
            return Err(format!("status {}", out.status).into());
        }
        if fresh {
            conn.discard();
        } else {
            http1::settle(conn, &out);
        }
        if i > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(crate::median_f64(times))
}

async fn measure(n: usize, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (mut server, url) = crate::start_server(&[]).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("redis-server (apt-get install redis-server): {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not listen".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let target: Target = url.parse()?;
    let request = http1::request("GET", &format!("127.0.0.1:{}", target.port()), "/");
    let fleet = Fleet::redis(&format!("redis://127.0.0.1:{port}/"))?.max_per_host(4);
    let off = Manager::builder().max_per_host(1).build();
    let on = Manager::builder().max_per_host(1).fleet(fleet).build();
    let fresh_n = (n / 5).max(10);
    println!("server: {url} (keepalive serve, own process); redis-server on 127.0.0.1:{port}");
    println!(
        "{rounds} rounds, alternating; per round {n} warm and {fresh_n} new-connection GETs, one at a time"
    );
    println!();
    let (mut warm, mut new) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..rounds {
        for k in 0..2 {
            let i = (k + round) % 2;
            let manager = if i == 0 { &off } else { &on };
            new[i].push(latency(manager, &target, &request, fresh_n, true).await?);
            warm[i].push(latency(manager, &target, &request, n, false).await?);
        }
    }
    let [warm_off, warm_on] = warm.map(crate::median_f64);
    let [new_off, new_on] = new.map(crate::median_f64);
    println!("| request | fleet off | fleet on | on vs off | on - off |");
    println!("|---|---|---|---|---|");
    println!(
        "| new connection + GET | {new_off:.1} µs | {new_on:.1} µs | {:.2}x | {:.0} µs |",
        new_on / new_off,
        new_on - new_off
    );
    println!(
        "| warm GET (pooled) | {warm_off:.1} µs | {warm_on:.1} µs | {:.2}x | {:.1} µs |",
        warm_on / warm_off,
        warm_on - warm_off
    );
    let stats = on.stats();
    println!();
    println!(
        "fleet member: {} connects, {} reuses, {} fleet waits, Redis reachable: {:?}",
        stats.connects, stats.reuses, stats.fleet_waits, stats.fleet_reachable
    );
    on.shutdown().await;
    server.kill().await?;
    redis.kill().await?;
    Ok(())
}
