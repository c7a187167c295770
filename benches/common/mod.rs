//! Helpers shared by the benches.
#![allow(dead_code)] // Each bench uses part of this module.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A listener with a deep accept queue that never accepts: the kernel
/// completes the handshakes into its queue, so idle client sockets cost no
/// server-side descriptors in this process and no server code runs during
/// a measurement.
pub(crate) fn silent_listener() -> std::net::TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(4096).unwrap();
    socket.into()
}

/// A multi-thread runtime with one worker per core of this machine.
pub(crate) fn two_threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `iters` calls of `once` split over `tasks` tasks, and returns the
/// time they took, scaled to exactly `iters` calls.
pub(crate) async fn split_over_tasks<F, Fut>(iters: u64, tasks: u64, once: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_task = iters.div_ceil(tasks);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let once = once.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    once().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    start.elapsed().mul_f64(iters as f64 / (per_task * tasks) as f64)
}
