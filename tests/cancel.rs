//! Timeouts and cancellation at every stage (issue points 6 and 8).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use keepalive::{FromCache, Manager, Stats, Target};
use support::{until, within, Blackhole, Gate, Server};

#[tokio::test]
async fn a_queued_request_times_out_and_leaves_the_queue() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    let held = manager.allocate(target.clone()).await.unwrap();
    let err = within(
        "the timeout",
        manager
            .allocate(target.clone())
            .timeout(Duration::from_millis(50)),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        (err.function(), err.raw_os_error()),
        ("connect", Some(libc::ETIMEDOUT))
    );
    let s = manager.stats();
    assert_eq!((s.open, s.in_use, s.queued), (1, 1, 0));
    drop(held);
    assert_eq!(manager.stats().idle, 1, "nobody waits for the returned socket");
}

#[tokio::test]
async fn a_hanging_connect_times_out_with_the_builder_default_and_frees_its_slot() {
    let hole = Blackhole::start();
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder()
        .max_open(1)
        .timeout(Duration::from_millis(100))
        .build();
    let err = within(
        "the timeout",
        manager.allocate(Target::new("http", "127.0.0.1", hole.port)),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(manager.stats(), Stats::default());
    // The aborted connect's socket is closed, and its slot serves another key.
    let conn = within(
        "the freed slot",
        manager.allocate(Target::new("http", "127.0.0.1", server.port())),
    )
    .await
    .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
}

#[tokio::test]
async fn refused_connections_fail_every_waiter_in_turn() {
    let port = support::refused_port().await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("http", "127.0.0.1", port);
    let allocations: Vec<_> = (0..3).map(|_| manager.allocate(target.clone())).collect();
    for a in allocations {
        let err = within("a refusal", a).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    }
    let s = manager.stats();
    assert_eq!((s.open, s.queued, s.connects), (0, 0, 0));
}

#[tokio::test]
async fn dropping_a_queued_allocation_frees_its_place() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    let held = manager.allocate(target.clone()).await.unwrap();
    let queued = manager.allocate(target.clone());
    let mut behind = manager.allocate(target.clone());
    assert_eq!(manager.stats().queued, 2);
    drop(queued);
    assert_eq!(manager.stats().queued, 1);
    drop(held);
    let conn = within("the next waiter", &mut behind).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Deferred);
}

#[tokio::test]
async fn dropping_a_resolving_allocation_drops_the_lookup_only_when_nobody_else_waits() {
    let server = Server::start("127.0.0.1").await;
    let gate = Gate::default();
    let manager = Manager::builder().resolver(gate.clone()).build();
    let target = Target::new("http", "a.example", server.port());

    let first = manager.allocate(target.clone());
    let mut second = manager.allocate(target.clone());
    let s = manager.stats();
    assert_eq!((s.queued, s.dns_lookups), (2, 1), "one shared lookup");
    drop(first);
    assert_eq!(manager.stats().queued, 1);
    until("the resolver to be called", || {
        gate.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    gate.release();
    let conn = within("the shared lookup", &mut second).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    assert_eq!(gate.dropped.load(Ordering::SeqCst), 0, "the lookup finished");
}

#[tokio::test]
async fn the_last_request_to_leave_a_lookup_drops_it() {
    let gate = Gate::default();
    let manager = Manager::builder().resolver(gate.clone()).build();
    let lonely = manager.allocate(Target::new("http", "b.example", 80));
    until("the resolver to be called", || {
        gate.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(lonely);
    let s = manager.stats();
    assert_eq!((s.queued, s.open, s.dns_lookups), (0, 0, 1));
    until("the lookup future to be dropped", || {
        gate.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn dropping_a_connecting_allocation_aborts_the_connect_and_frees_the_slot_at_once() {
    let hole = Blackhole::start();
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_open(1).build();
    let connecting = manager.allocate(Target::new("http", "127.0.0.1", hole.port));
    let s = manager.stats();
    assert_eq!((s.open, s.connecting), (1, 1));
    let mut next = manager.allocate(Target::new("http", "127.0.0.1", server.port()));
    assert_eq!(manager.stats().queued, 1);
    drop(connecting);
    let s = manager.stats();
    assert_eq!(
        (s.open, s.connecting, s.queued),
        (1, 1, 0),
        "the slot went to the next request at once"
    );
    within("the freed slot", &mut next).await.unwrap();
    server.accepted().await;
}

#[tokio::test]
async fn a_socket_connected_for_a_cancelled_request_goes_to_the_pool() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    let target = Target::new("http", "127.0.0.1", server.port());
    let allocation = manager.allocate(target.clone());
    server.accepted().await;
    until("the connect to complete", || manager.stats().in_use == 1).await;
    drop(allocation); // never polled
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.in_use), (1, 1, 0));
    assert_eq!(
        manager.allocate(target).await.unwrap().from_cache(),
        FromCache::Immediate
    );
}

#[tokio::test]
async fn deallocate_cancels_from_anywhere() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    let held = manager.allocate(target.clone()).await.unwrap();
    let waiting = manager.allocate(target.clone());
    let id = waiting.id();
    let other = manager.clone();
    let cancelled = tokio::spawn(async move { other.deallocate(id) });
    assert!(cancelled.await.unwrap());
    assert!(!manager.deallocate(id), "already cancelled");
    let err = waiting.await.unwrap_err();
    assert!(err.is_cancelled() && err.function() == "allocate", "{err}");
    assert_eq!(manager.stats().queued, 0);
    drop(held);
    assert_eq!(manager.stats().idle, 1);
}

#[tokio::test]
async fn max_queued_bounds_waiting_requests() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).max_queued(2).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    let _held = manager.allocate(target.clone()).await.unwrap();
    let _a = manager.allocate(target.clone());
    let _b = manager.allocate(target.clone());
    let err = manager.allocate(target).await.unwrap_err();
    assert!(err.is_queue_full(), "{err}");
    assert_eq!(manager.stats().queued, 2);
}
