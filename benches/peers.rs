//! The same warm checkout through keepalive, bb8 and deadpool, measured in
//! one run, so the figures compare as ratios.
//!
//! Run with `cargo bench --bench peers`. Every pool holds TCP sockets to a
//! loopback listener and does the same work per checkout: a liveness check
//! with a non-blocking `MSG_PEEK` (keepalive always does it; bb8 does it in
//! `is_valid` with `test_on_check_out`, deadpool in `recycle`), then the
//! socket is returned. Groups:
//!
//! * `peers_single`: one task, one socket.
//! * `peers_contended`: 16 tasks on a two-thread runtime, at most 4 sockets.

mod common;

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;

use common::{silent_listener, split_over_tasks, two_threads};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tokio::net::TcpStream;

/// The liveness check every pool runs at checkout.
fn alive(stream: &TcpStream) -> io::Result<()> {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    match socket2::SockRef::from(stream).peek(&mut byte) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Ok(_) => Err(io::ErrorKind::ConnectionAborted.into()),
        Err(e) => Err(e),
    }
}

struct Tcp(SocketAddr);

impl bb8::ManageConnection for Tcp {
    type Connection = TcpStream;
    type Error = io::Error;

    async fn connect(&self) -> io::Result<TcpStream> {
        TcpStream::connect(self.0).await
    }

    async fn is_valid(&self, conn: &mut TcpStream) -> io::Result<()> {
        alive(conn)
    }

    fn has_broken(&self, _conn: &mut TcpStream) -> bool {
        false
    }
}

impl deadpool::managed::Manager for Tcp {
    type Type = TcpStream;
    type Error = io::Error;

    async fn create(&self) -> io::Result<TcpStream> {
        TcpStream::connect(self.0).await
    }

    async fn recycle(
        &self,
        conn: &mut TcpStream,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<io::Error> {
        Ok(alive(conn)?)
    }
}

/// The three pools, each limited to `size` sockets to one listener.
struct Pools {
    keepalive: keepalive::Manager,
    target: keepalive::Target,
    bb8: bb8::Pool<Tcp>,
    deadpool: deadpool::managed::Pool<Tcp>,
}

impl Pools {
    async fn new(addr: SocketAddr, size: usize) -> Pools {
        let keepalive = keepalive::Manager::builder()
            .max_per_host(size)
            .keep_alive(Duration::from_secs(3600))
            .build();
        let target = keepalive::Target::new("tcp", "127.0.0.1", addr.port());
        let bb8 = bb8::Pool::builder()
            .max_size(size as u32)
            .test_on_check_out(true)
            .build(Tcp(addr))
            .await
            .unwrap();
        let deadpool = deadpool::managed::Pool::builder(Tcp(addr))
            .max_size(size)
            .build()
            .unwrap();
        // Warm every pool to `size` sockets.
        let mut held = vec![];
        for _ in 0..size {
            held.push(keepalive.allocate(target.clone()).await.unwrap());
        }
        let mut held_bb8 = vec![];
        for _ in 0..size {
            held_bb8.push(bb8.get().await.unwrap());
        }
        let mut held_dp = vec![];
        for _ in 0..size {
            held_dp.push(deadpool.get().await.unwrap());
        }
        drop((held, held_bb8, held_dp));
        Pools {
            keepalive,
            target,
            bb8,
            deadpool,
        }
    }

    async fn keepalive_once(&self) {
        drop(self.keepalive.allocate(self.target.clone()).await.unwrap());
    }

    async fn bb8_once(&self) {
        drop(self.bb8.get().await.unwrap());
    }

    async fn deadpool_once(&self) {
        drop(self.deadpool.get().await.unwrap());
    }
}

fn single(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = silent_listener();
    let pools = rt.block_on(Pools::new(listener.local_addr().unwrap(), 1));
    let mut group = c.benchmark_group("peers_single");
    group.throughput(Throughput::Elements(1));
    group.bench_function("keepalive", |b| b.to_async(&rt).iter(|| pools.keepalive_once()));
    group.bench_function("bb8", |b| b.to_async(&rt).iter(|| pools.bb8_once()));
    group.bench_function("deadpool", |b| b.to_async(&rt).iter(|| pools.deadpool_once()));
    group.finish();
    assert_eq!(pools.keepalive.stats().connects, 1);
}

/// Measures `once` on the pools from 16 tasks.
fn contend<F, Fut>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    once: F,
) where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    group.bench_function(name, |b| {
        b.to_async(rt)
            .iter_custom(|iters| split_over_tasks(iters, 16, once.clone()))
    });
}

fn contended(c: &mut Criterion) {
    let rt = two_threads();
    let listener = silent_listener();
    let pools: &'static Pools = Box::leak(Box::new(
        rt.block_on(Pools::new(listener.local_addr().unwrap(), 4)),
    ));
    let mut group = c.benchmark_group("peers_contended");
    group.throughput(Throughput::Elements(1));
    contend(&mut group, &rt, "keepalive", move || pools.keepalive_once());
    contend(&mut group, &rt, "bb8", move || pools.bb8_once());
    contend(&mut group, &rt, "deadpool", move || pools.deadpool_once());
    group.finish();
    assert!(pools.keepalive.stats().open <= 4);
}

criterion_group!(benches, single, contended);
criterion_main!(benches);
