//! The `keepalive` command.
//!
//! For now `keepalive bench` runs a short demonstration against an echo
//! server it starts on loopback: a fresh connect, an immediate reuse, then
//! concurrent workers exchanging messages through one manager, and the
//! pool's stats. The full HTTP benchmarking tool is issue #5.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use keepalive::{Manager, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const USAGE: &str =
    "usage: keepalive bench\n\n  bench   run a demo against a loopback echo server this command starts";
const EXCHANGES: usize = 20_000;
const WORKERS: usize = 16;
const MAX_PER_HOST: usize = 4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["bench"] => {}
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keepalive: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keepalive: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An echo server on an ephemeral loopback port.
async fn echo_server() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    if socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// One request/response exchange on a pooled connection.
async fn exchange(
    manager: &Manager,
    target: &Target,
) -> Result<keepalive::FromCache, Box<dyn std::error::Error>> {
    let mut conn = manager.allocate(target.clone()).await?;
    conn.write_all(b"ping").await?;
    let mut answer = [0; 4];
    conn.read_exact(&mut answer).await?;
    Ok(conn.from_cache())
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let port = echo_server().await?;
    let target = Target::new("tcp", "127.0.0.1", port);
    let manager = Manager::builder()
        .max_per_host(MAX_PER_HOST)
        .keep_alive(Duration::from_secs(5))
        .build();
    println!("echo server on 127.0.0.1:{port}");
    println!("first allocation:  {:?}", exchange(&manager, &target).await?);
    println!("second allocation: {:?}", exchange(&manager, &target).await?);

    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (manager, target) = (manager.clone(), target.clone());
            tokio::spawn(async move {
                for _ in 0..EXCHANGES / WORKERS {
                    exchange(&manager, &target).await.map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let elapsed = start.elapsed();
    let s = manager.stats();
    println!(
        "{EXCHANGES} exchanges, {WORKERS} workers, max_per_host {MAX_PER_HOST}: {:.0} exchanges/s in {elapsed:.2?}",
        EXCHANGES as f64 / elapsed.as_secs_f64()
    );
    println!(
        "stats: open {} idle {} in_use {} connects {} reuses {} stale_discarded {} dns_lookups {}",
        s.open, s.idle, s.in_use, s.connects, s.reuses, s.stale_discarded, s.dns_lookups
    );
    manager.shutdown().await;
    Ok(())
}
