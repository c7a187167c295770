//! `keep_warm` over real sockets: connections opened before anyone asks,
//! replaced when the server closes them or they age out, never a wait for
//! a request, stopped by 0, by a failed first fill and by shutdown.

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Target};
use support::{refused_port, until, within, Cmd, Server, Table};

fn target(server: &Server) -> Target {
    Target::new("tcp", "127.0.0.1", server.port())
}

#[tokio::test]
async fn fills_hands_out_at_once_and_replaces_what_the_server_closes() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    within("the fill", manager.keep_warm(target(&server), 3))
        .await
        .unwrap();
    let mut first = vec![];
    for _ in 0..3 {
        first.push(server.accepted().await);
    }
    let stats = manager.stats_for(&target(&server));
    assert_eq!((stats.idle, stats.connects), (3, 3));
    let conn = manager.allocate(target(&server)).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Immediate);
    // The server closes an idle one: a fourth connection replaces it.
    let idle = first
        .iter()
        .position(|a| a.peer != conn.local_addr().unwrap())
        .unwrap();
    first[idle].send(Cmd::Reset);
    let replacement = server.accepted().await;
    until("the replacement to go idle", || {
        manager.stats_for(&target(&server)).idle == 2
    })
    .await;
    let stats = manager.stats_for(&target(&server));
    assert_eq!((stats.open, stats.connects, stats.closes.total()), (3, 4, 1));
    // Stopped: a close is no longer replaced, and what is open stays.
    manager.keep_warm(target(&server), 0).await.unwrap();
    replacement.send(Cmd::Reset);
    until("the close to be seen", || {
        manager.stats_for(&target(&server)).open == 2
    })
    .await;
    drop(conn);
    let stats = manager.stats_for(&target(&server));
    assert_eq!((stats.idle, stats.connects), (2, 4));
    assert_eq!(server.pending_accepts(), 0, "no connection after the stop");
}

#[tokio::test]
async fn a_connection_past_its_lifetime_is_closed_idle_and_replaced() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::builder()
        .max_lifetime(Duration::from_millis(300))
        .build();
    manager.keep_warm(target(&server), 1).await.unwrap();
    let mut old = server.accepted().await;
    // Nobody asks for it: the pool itself closes and replaces it.
    old.client_closed().await;
    server.accepted().await;
    until("the replacement", || {
        manager.stats_for(&target(&server)).idle == 1
    })
    .await;
    assert_eq!(manager.stats_for(&target(&server)).closes.lifetime, 1);
}

#[tokio::test]
async fn a_request_never_waits_for_a_warm_connect() {
    let mut server = Server::start("127.0.0.1").await;
    let table = Table::with_delay(Duration::from_millis(100));
    table.set("warm.test", &[server.addr]);
    let manager = Manager::builder().max_per_host(4).resolver(table.clone()).build();
    let named = Target::new("tcp", "warm.test", server.port());
    let warming = tokio::spawn({
        let (manager, named) = (manager.clone(), named.clone());
        async move { manager.keep_warm(named, 2).await }
    });
    until("the warm connects' lookup", || table.calls() == 1).await;
    // With room, a request connects itself when the answer comes, beside
    // the warm connects (had it waited for one of theirs: Deferred).
    let conn = within(
        "a request beside the warm connects",
        manager.allocate(named.clone()),
    )
    .await
    .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    within("the fill", warming).await.unwrap().unwrap();
    for _ in 0..3 {
        server.accepted().await;
    }
    let stats = manager.stats_for(&named);
    assert_eq!(
        (stats.open, stats.idle, stats.in_use, stats.dns_lookups),
        (3, 2, 1, 1)
    );
}

#[tokio::test]
async fn a_failed_first_fill_is_the_error_and_stops_keeping_warm() {
    let port = refused_port().await;
    let manager = Manager::new();
    let target = Target::new("tcp", "127.0.0.1", port);
    let error = manager.keep_warm(target.clone(), 2).await.unwrap_err();
    let source = std::error::Error::source(&error).map(|s| s.to_string());
    assert!(source.is_some_and(|s| s.contains("refused")), "{error}");
    let stats = manager.stats_for(&target);
    assert_eq!(
        (stats.open, stats.connecting),
        (0, 0),
        "no retry after a failed fill"
    );
}

#[tokio::test]
async fn bad_input_is_an_error_and_shutdown_ends_it() {
    let manager = Manager::new();
    let bad = Target::new("tcp", "", 80);
    assert!(manager.keep_warm(bad, 1).await.is_err());
    let mut server = Server::start("127.0.0.1").await;
    manager.keep_warm(target(&server), 1).await.unwrap();
    let mut warm = server.accepted().await;
    manager.shutdown().await;
    warm.client_closed().await;
    let after = manager.keep_warm(target(&server), 1).await.unwrap_err();
    assert!(after.is_shutdown());
    assert_eq!(server.pending_accepts(), 0, "nothing replaced after shutdown");
}

#[tokio::test]
async fn a_warm_connection_returned_from_a_loan_is_replaced_at_its_lifetime() {
    let mut server = Server::start("127.0.0.1").await;
    let mut other = Server::start("127.0.0.1").await;
    let manager = Manager::builder()
        .max_lifetime(Duration::from_millis(800))
        .keep_alive(Duration::from_secs(60))
        .build();
    // An older idle connection: the background task's next keep-alive
    // expiry is its, a minute away.
    drop(manager.allocate(target(&other)).await.unwrap());
    manager.keep_warm(target(&server), 1).await.unwrap();
    let mut old = server.accepted().await;
    let conn = manager.allocate(target(&server)).await.unwrap();
    // While it is on loan the background task plans again (another idle
    // connection is reset), without it.
    let second = manager.allocate(target(&other)).await.unwrap();
    let first = manager.allocate(target(&other)).await.unwrap();
    drop((first, second));
    other.accepted().await;
    other.accepted().await.send(Cmd::Reset);
    until("the reset to be seen", || {
        manager.stats_for(&target(&other)).closes.closed_by_peer == 1
    })
    .await;
    // Back and idle: it still ends at its lifetime, long before
    // keep-alive, without anyone asking for it.
    drop(conn);
    old.client_closed().await;
    server.accepted().await;
    assert_eq!(manager.stats_for(&target(&server)).closes.lifetime, 1);
}
