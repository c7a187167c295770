//! Soak: a million allocate/drop cycles over loopback, with random
//! cancellations and a server that closes connections now and then;
//! prints resident memory and open descriptors at the start and at the
//! end, which must be flat.
//!
//! Run with `cargo run --release --example soak [-- CYCLES]`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keepalive::{Manager, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The server closes a connection after this many messages on it.
const CLOSE_EVERY: u64 = 997;
/// One allocation in this many is cancelled before it completes.
const CANCEL_EVERY: u64 = 50;
const WORKERS: u64 = 16;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// An echo server that closes each connection after `CLOSE_EVERY` messages.
async fn server() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0; 64];
                for _ in 0..CLOSE_EVERY {
                    match s.read(&mut buf).await {
                        Ok(n @ 1..) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    Ok(port)
}

/// Cycles until `left` runs out; counts errors.
async fn worker(manager: Manager, target: Target, left: Arc<AtomicU64>, errors: Arc<AtomicU64>) {
    let mut n = 0u64;
    while left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
        .is_ok()
    {
        n += 1;
        let allocation = manager.allocate(target.clone());
        if n % CANCEL_EVERY == 0 {
            // Cancelled at whatever stage it is in: queued, connecting, done.
            tokio::task::yield_now().await;
            drop(allocation);
            continue;
        }
        let Ok(mut conn) = allocation.await else {
            errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let mut echo = [0; 4];
        let ok = conn.write_all(b"ping").await.is_ok() && conn.read_exact(&mut echo).await.is_ok();
        if !ok {
            // The server closed it under us: that connection is done.
            conn.discard();
        }
    }
}

async fn cycles(manager: &Manager, target: &Target, count: u64) -> u64 {
    let left = Arc::new(AtomicU64::new(count));
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(worker(
                manager.clone(),
                target.clone(),
                left.clone(),
                errors.clone(),
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    errors.load(Ordering::Relaxed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let port = server().await?;
    let manager = Manager::builder()
        .max_per_host(4)
        .keep_alive(Duration::from_secs(5))
        .build();
    let target = Target::new("tcp", "127.0.0.1", port);
    // Warm up, so that the start figures include the runtime and the pool.
    cycles(&manager, &target, 20_000).await;
    let (rss0, fds0) = (rss_kib(), fds());
    println!("start: rss {rss0} KiB, open fds {fds0}");
    let started = Instant::now();
    let errors = cycles(&manager, &target, total).await;
    let elapsed = started.elapsed();
    let (rss1, fds1) = (rss_kib(), fds());
    let s = manager.stats();
    println!("end:   rss {rss1} KiB, open fds {fds1}");
    println!(
        "{total} cycles in {elapsed:.1?}: {errors} allocation errors; connects {}, reuses {}, stale discarded {}; open {} (idle {}), queued {}",
        s.connects, s.reuses, s.stale_discarded, s.open, s.idle, s.queued
    );
    println!(
        "rss change {:+} KiB, fd change {:+}",
        rss1 as i64 - rss0 as i64,
        fds1 as i64 - fds0 as i64
    );
    Ok(())
}
