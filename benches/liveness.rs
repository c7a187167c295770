//! How fast an idle socket the server closes leaves the pool, with no
//! checkout to find it: from the server's FIN to the server reading the
//! pool's close. The goal is within 50 ms; the watch is
//! event-driven, so this is a reactor round trip.
//!
//! Run with `cargo bench --bench liveness`.

mod common;

use std::time::{Duration, Instant};

use common::two_threads;
use criterion::{criterion_group, criterion_main, Criterion};
use keepalive::{Manager, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fin_to_close(c: &mut Criterion) {
    let rt = two_threads();
    let (listener, manager, target) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::new("tcp", "127.0.0.1", listener.local_addr().unwrap().port());
        let manager = Manager::builder().keep_alive(Duration::from_secs(3600)).build();
        (listener, manager, target)
    });
    let mut group = c.benchmark_group("liveness");
    group.sample_size(20);
    group.bench_function("fin_to_close", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (listener, manager, target) = (&listener, manager.clone(), target.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    drop(manager.allocate(target.clone()).await.unwrap());
                    let (mut server_side, _) = listener.accept().await.unwrap();
                    let start = Instant::now();
                    server_side.shutdown().await.unwrap();
                    let mut buf = [0; 1];
                    // EOF (or a reset) once the pool has closed its end.
                    let _ = server_side.read(&mut buf).await;
                    total += start.elapsed();
                }
                assert_eq!(manager.stats().open, 0);
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, fin_to_close);
criterion_main!(benches);
