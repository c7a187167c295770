//! Warm checkout and return: the pool's hot path.
//!
//! Run with `cargo bench --bench checkout`. Groups:
//!
//! * `warm/1_key`: allocate + drop of one idle socket, single task.
//! * `warm/10k_idle_1k_keys`: the same with 10,000 idle sockets over 1,000
//!   keys in the pool, rotating through the keys; the ratio to `1_key`
//!   shows whether checkout cost grows with the pool (it should not).
//! * `contended/16_tasks_max_per_host_4`: 16 tasks on a two-thread runtime
//!   allocate and drop through one key limited to 4 sockets.
//!
//! Each measures one allocate + drop per element, so criterion's elem/s is
//! ops/s. The servers are listeners that never accept: the kernel completes
//! the handshakes into their accept queues, so 10,000 idle client sockets
//! cost no server-side descriptors in this process.

mod common;

use std::time::Duration;

use common::{silent_listener, split_over_tasks, two_threads};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keepalive::{FromCache, Manager, Target};

/// `keys` distinct connection keys spread over `listeners`.
fn keys(listeners: &[std::net::TcpListener], keys: usize) -> Vec<Target> {
    (0..keys)
        .map(|i| {
            let port = listeners[i % listeners.len()].local_addr().unwrap().port();
            Target::new("http", "127.0.0.1", port).for_target("http", format!("k{i}.example"), 80)
        })
        .collect()
}

/// Fills the pool with `per_key` idle sockets for every target.
async fn fill(manager: &Manager, targets: &[Target], per_key: usize) {
    for chunk in targets.chunks(100) {
        let allocations = chunk
            .iter()
            .flat_map(|t| (0..per_key).map(|_| manager.allocate(t.clone())));
        let mut held = vec![];
        for a in allocations.collect::<Vec<_>>() {
            held.push(a.await.expect("connect to a loopback listener"));
        }
    }
    assert_eq!(manager.stats().idle, targets.len() * per_key);
}

fn warm(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listeners: Vec<_> = (0..4).map(|_| silent_listener()).collect();
    let mut group = c.benchmark_group("warm");
    group.throughput(Throughput::Elements(1));

    let one = keys(&listeners, 1);
    let manager = rt.block_on(async {
        let m = Manager::builder().keep_alive(Duration::from_secs(3600)).build();
        fill(&m, &one, 1).await;
        m
    });
    group.bench_function("1_key", |b| {
        b.to_async(&rt).iter(|| async {
            let conn = manager.allocate(one[0].clone()).await.unwrap();
            debug_assert_eq!(conn.from_cache(), FromCache::Immediate);
        })
    });
    drop(manager);

    let many = keys(&listeners, 1000);
    let manager = rt.block_on(async {
        let m = Manager::builder()
            .max_per_host(10)
            .max_open(10_000)
            .keep_alive(Duration::from_secs(3600))
            .build();
        fill(&m, &many, 10).await;
        m
    });
    let mut next = 0;
    group.bench_function("10k_idle_1k_keys", |b| {
        b.to_async(&rt).iter(|| {
            next = (next + 1) % many.len();
            let allocation = manager.allocate(many[next].clone());
            async move {
                let conn = allocation.await.unwrap();
                debug_assert_eq!(conn.from_cache(), FromCache::Immediate);
            }
        })
    });
    assert_eq!(
        manager.stats().connects,
        10_000,
        "no socket was lost along the way"
    );
    group.finish();
}

fn contended(c: &mut Criterion) {
    let rt = two_threads();
    let listener = silent_listener();
    let target = keys(std::slice::from_ref(&listener), 1).remove(0);
    let manager = rt.block_on(async {
        let m = Manager::builder()
            .max_per_host(4)
            .keep_alive(Duration::from_secs(3600))
            .build();
        fill(&m, std::slice::from_ref(&target), 4).await;
        m
    });
    let mut group = c.benchmark_group("contended");
    group.throughput(Throughput::Elements(1));
    group.bench_function("16_tasks_max_per_host_4", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (manager, target) = (manager.clone(), target.clone());
            split_over_tasks(iters, 16, move || {
                let allocation = manager.allocate(target.clone());
                async move { drop(allocation.await.unwrap()) }
            })
        })
    });
    assert!(manager.stats().open <= 4);
    group.finish();
}

criterion_group!(benches, warm, contended);
criterion_main!(benches);
