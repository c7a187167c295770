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

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tokio::net::TcpStream;

/// A listener with a deep accept queue that never accepts: the kernel
/// completes the handshakes, and no server code runs during the bench.
fn silent_listener() -> std::net::TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(1024).unwrap();
    socket.into()
}

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

/// Runs `iters` checkouts split over 16 tasks and returns the time taken.
fn contend<F>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    pools: &'static Pools,
    once: F,
) where
    F: Fn(&'static Pools) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Copy
        + Send
        + 'static,
{
    const TASKS: u64 = 16;
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let per_task = iters.div_ceil(TASKS);
            let start = Instant::now();
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            once(pools).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed().mul_f64(iters as f64 / (per_task * TASKS) as f64)
        })
    });
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = silent_listener();
    let pools: &'static Pools = Box::leak(Box::new(
        rt.block_on(Pools::new(listener.local_addr().unwrap(), 4)),
    ));
    let mut group = c.benchmark_group("peers_contended");
    group.throughput(Throughput::Elements(1));
    contend(&mut group, &rt, "keepalive", pools, |p| {
        Box::pin(p.keepalive_once())
    });
    contend(&mut group, &rt, "bb8", pools, |p| Box::pin(p.bb8_once()));
    contend(&mut group, &rt, "deadpool", pools, |p| {
        Box::pin(p.deadpool_once())
    });
    group.finish();
    assert!(pools.keepalive.stats().open <= 4);
}

criterion_group!(benches, single, contended);
criterion_main!(benches);
