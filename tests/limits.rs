//! Waiting, per-host and total limits, keep-alive expiry (issue points 2-5, 11).

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Target};
use support::{within, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[tokio::test]
async fn a_waiter_gets_the_returned_socket_first_come_first_served() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("http", "127.0.0.1", server.port());

    let first = manager.allocate(target.clone()).await.unwrap();
    let port = first.local_addr().unwrap().port();
    let mut waiters: Vec<_> = (0..3).map(|_| manager.allocate(target.clone())).collect();
    let s = manager.stats();
    assert_eq!((s.open, s.in_use, s.queued), (1, 1, 3));

    drop(first);
    for (i, waiter) in waiters.iter_mut().enumerate() {
        let conn = within("the waiter in turn", waiter).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Deferred);
        assert_eq!(conn.local_addr().unwrap().port(), port, "the same socket");
        let s = manager.stats();
        assert_eq!(
            (s.open, s.in_use, s.queued, s.reuses),
            (1, 1, 2 - i, i as u64 + 1)
        );
    }
    drop(waiters);
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.in_use, s.queued, s.connects), (1, 1, 0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_per_host_holds_for_a_thousand_concurrent_allocations() {
    const MAX: usize = 4;
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(MAX).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (manager, target) = (manager.clone(), target.clone());
            tokio::spawn(async move {
                let mut conn = manager.allocate(target).await.unwrap();
                let s = manager.stats();
                assert!(s.open <= MAX, "{s:?}");
                conn.write_all(b"hi").await.unwrap();
                let mut buf = [0; 2];
                conn.read_exact(&mut buf).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        within("a worker", t).await.unwrap();
    }
    let peak = server.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(peak <= MAX, "server saw {peak} connections at once");
    let s = manager.stats();
    assert!(s.connects <= MAX as u64 && s.connects >= 1, "{s:?}");
    assert_eq!(s.reuses + s.connects, 1000, "{s:?}");
    assert_eq!(
        (s.open, s.idle, s.in_use, s.queued),
        (s.connects as usize, s.connects as usize, 0, 0)
    );
}

#[tokio::test]
async fn the_for_target_triple_is_part_of_the_per_host_key() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).build();
    let proxy = Target::new("http", "127.0.0.1", server.port());
    let a = manager
        .allocate(proxy.clone().for_target("http", "a.example", 80))
        .await
        .unwrap();
    let b = within(
        "a second key",
        manager.allocate(proxy.for_target("http", "b.example", 80)),
    )
    .await
    .unwrap();
    assert_eq!(
        (a.from_cache(), b.from_cache()),
        (FromCache::Fresh, FromCache::Fresh)
    );
    assert_eq!(manager.stats().open, 2);
}

#[tokio::test]
async fn max_open_closes_the_least_recently_used_idle_socket() {
    let (s1, mut s2, s3) = (
        Server::start("127.0.0.1").await,
        Server::start("127.0.0.1").await,
        Server::start("127.0.0.1").await,
    );
    let manager = Manager::builder().max_open(2).build();
    let [t1, t2, t3] = [&s1, &s2, &s3].map(|s| Target::new("http", "127.0.0.1", s.port()));
    let c1 = manager.allocate(t1.clone()).await.unwrap();
    let port1 = c1.local_addr().unwrap().port();
    drop(c1); // idle first
    drop(manager.allocate(t2.clone()).await.unwrap());
    let mut a2 = s2.accepted().await;
    // Touch t1's socket: now t2's is the least recently used.
    drop(manager.allocate(t1.clone()).await.unwrap());

    let c3 = within("room made by eviction", manager.allocate(t3))
        .await
        .unwrap();
    assert_eq!(c3.from_cache(), FromCache::Fresh);
    a2.client_closed().await; // t2's socket was the one closed
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.in_use, s.connects), (2, 1, 1, 3));
    let c1 = manager.allocate(t1).await.unwrap();
    assert_eq!(c1.from_cache(), FromCache::Immediate);
    assert_eq!(c1.local_addr().unwrap().port(), port1, "t1's socket survived");
}

#[tokio::test]
async fn a_request_blocked_only_by_max_open_is_served_when_a_slot_frees() {
    let (s1, mut s2) = (Server::start("127.0.0.1").await, Server::start("127.0.0.1").await);
    let manager = Manager::builder().max_open(1).build();
    let (t1, t2) = (
        Target::new("http", "127.0.0.1", s1.port()),
        Target::new("http", "127.0.0.1", s2.port()),
    );

    // A slot freed by a discard.
    let held = manager.allocate(t1.clone()).await.unwrap();
    let mut waiting = manager.allocate(t2.clone());
    assert_eq!(manager.stats().queued, 1);
    held.discard();
    let c2 = within("the freed slot", &mut waiting).await.unwrap();
    assert_eq!(c2.from_cache(), FromCache::Fresh);
    s2.accepted().await;

    // A slot freed by a return to the pool: the idle socket is evicted.
    let mut waiting = manager.allocate(t1);
    assert_eq!(manager.stats().queued, 1);
    drop(c2);
    let c1 = within("eviction of the returned socket", &mut waiting)
        .await
        .unwrap();
    assert_eq!(c1.from_cache(), FromCache::Fresh);
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.in_use, s.queued, s.connects), (1, 0, 1, 0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_open_holds_across_keys_under_load() {
    const OPEN: usize = 3;
    let servers = [
        Server::start("127.0.0.1").await,
        Server::start("127.0.0.1").await,
        Server::start("127.0.0.1").await,
        Server::start("127.0.0.1").await,
    ];
    let manager = Manager::builder().max_open(OPEN).max_per_host(2).build();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let manager = manager.clone();
            let target = Target::new("http", "127.0.0.1", servers[i % servers.len()].port());
            tokio::spawn(async move {
                let mut conn = manager.allocate(target).await.unwrap();
                let s = manager.stats();
                assert!(
                    s.open <= OPEN && s.open == s.idle + s.in_use + s.connecting,
                    "{s:?}"
                );
                conn.write_all(b"x").await.unwrap();
                let mut b = [0; 1];
                conn.read_exact(&mut b).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        within("a worker", t).await.unwrap();
    }
    let s = manager.stats();
    assert!(s.open <= OPEN && s.queued == 0 && s.in_use == 0, "{s:?}");
    assert_eq!(s.reuses + s.connects, 400, "{s:?}");
}

#[tokio::test]
async fn an_idle_socket_is_closed_after_keep_alive() {
    let mut server = Server::start("127.0.0.1").await;
    let keep_alive = Duration::from_millis(200);
    let manager = Manager::builder().keep_alive(keep_alive).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    drop(manager.allocate(target.clone()).await.unwrap());
    let returned = Instant::now();
    let mut accepted = server.accepted().await;
    assert_eq!(manager.stats().idle, 1);
    accepted.client_closed().await;
    assert!(
        returned.elapsed() >= keep_alive,
        "closed early: {:?}",
        returned.elapsed()
    );
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 0));
    assert_eq!(
        manager.allocate(target).await.unwrap().from_cache(),
        FromCache::Fresh
    );
}

#[tokio::test]
async fn reuse_postpones_keep_alive() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().keep_alive(Duration::from_secs(1)).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    drop(manager.allocate(target.clone()).await.unwrap());
    let mut accepted = server.accepted().await;
    let start = Instant::now();
    // Each reuse restarts the idle clock: 4 gaps of 300 ms add up to more
    // than the keep-alive of 1 s, and the socket survives.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let conn = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(
            conn.from_cache(),
            FromCache::Immediate,
            "after {:?}",
            start.elapsed()
        );
    }
    accepted.client_closed().await;
    assert_eq!(manager.stats().open, 0);
}
