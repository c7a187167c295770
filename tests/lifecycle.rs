//! The life cycle of a pooled socket (issue #9): any duration up to
//! `Duration::MAX`, `max_lifetime`, `set_remaining_uses`, and every close
//! counted by its reason, manager-wide and per key, adding up.

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Stats, Target};
use support::{within, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One echo round trip on a connection, so that it is a clean exchange.
async fn echo(conn: &mut keepalive::Connection) {
    conn.write_all(b"ping").await.unwrap();
    let mut back = [0; 4];
    within("the echo", conn.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"ping");
}

/// `connects == idle + in_use + closes.total()`: every socket that
/// connected is open or was closed for one reason.
fn adds_up(s: &Stats) {
    assert_eq!(
        s.connects,
        (s.idle + s.in_use) as u64 + s.closes.total(),
        "opened = open + closes: {s:?}"
    );
}

#[tokio::test]
async fn every_duration_up_to_max_is_valid_and_means_never() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::builder()
        .timeout(Duration::MAX)
        .keep_alive(Duration::MAX)
        .dns_ttl(Duration::MAX)
        .happy_eyeballs_delay(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .tcp_keepalive(Duration::MAX)
        .tcp_keepalive_interval(Duration::MAX)
        .tcp_keepalive_retries(u32::MAX)
        .tcp_user_timeout(Duration::MAX)
        .build();
    // A literal, then a name through the system resolver (cached "forever").
    for host in ["127.0.0.1", "localhost"] {
        let target = Target::new("http", host, server.port());
        let allocation = manager.allocate(target.clone()).timeout(Duration::MAX);
        let mut conn = within("a connection", allocation).await.unwrap();
        server.accepted().await;
        echo(&mut conn).await;
        drop(conn); // back to the pool: no keep-alive deadline to overflow
        let conn = within("a reuse", manager.allocate(target)).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Immediate);
    }
    let stats = manager.stats();
    assert_eq!((stats.connects, stats.reuses, stats.idle), (2, 2, 2));
    adds_up(&stats);
}

#[tokio::test]
async fn a_socket_past_max_lifetime_is_never_handed_out_again() {
    let mut server = Server::start("127.0.0.1").await;
    let target = Target::new("tcp", "127.0.0.1", server.port());
    let lifetime = Duration::from_secs(60);
    let manager = Manager::builder()
        .max_lifetime(lifetime)
        .keep_alive(lifetime * 10)
        .max_per_host(2)
        .build();

    // One idle in the pool, one on loan, both born now.
    let mut idle = manager.allocate(target.clone()).await.unwrap();
    let mut on_loan = manager.allocate(target.clone()).await.unwrap();
    let mut first = server.accepted().await;
    let mut second = server.accepted().await;
    echo(&mut idle).await;
    echo(&mut on_loan).await;
    drop(idle);

    // Move the clock past the lifetime with no I/O in flight, then let it
    // run again.
    tokio::time::pause();
    tokio::time::advance(lifetime).await;
    tokio::time::resume();

    // The one on loan is closed when it comes back ...
    drop(on_loan);
    // ... and the idle one is closed when found, and a new one connects.
    let fresh = within("a new connection", manager.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(fresh.from_cache(), FromCache::Fresh);
    first.client_closed().await;
    second.client_closed().await;
    let stats = manager.stats();
    assert_eq!(stats.closes.lifetime, 2, "{stats:?}");
    assert_eq!(manager.stats_for(&target).closes.lifetime, 2);
    adds_up(&stats);
}

#[tokio::test]
async fn remaining_uses_bound_the_hand_outs() {
    let mut server = Server::start("127.0.0.1").await;
    let target = Target::new("tcp", "127.0.0.1", server.port());
    let manager = Manager::new();

    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let mut accepted = server.accepted().await;
    echo(&mut conn).await;
    conn.set_remaining_uses(2);
    drop(conn);
    for _ in 0..2 {
        let mut conn = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Immediate);
        echo(&mut conn).await;
    }
    // Both uses spent: the second return closed it.
    accepted.client_closed().await;
    assert_eq!(manager.stats().closes.uses_spent, 1);

    // Zero: closed on return instead of pooled.
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    let mut accepted = server.accepted().await;
    conn.set_remaining_uses(0);
    drop(conn);
    accepted.client_closed().await;
    let stats = manager.stats();
    assert_eq!((stats.closes.uses_spent, stats.idle), (2, 0));
    adds_up(&stats);
}

#[tokio::test]
async fn every_close_has_a_reason_and_they_add_up() {
    let mut server = Server::start("127.0.0.1").await;
    let a = Target::new("tcp", "127.0.0.1", server.port());
    let b = Target::new("echo", "127.0.0.1", server.port());
    let manager = Manager::builder().max_open(1).build();

    // Discarded by the user.
    manager.allocate(a.clone()).await.unwrap().discard();
    server.accepted().await.client_closed().await;

    // Returned with bytes unread.
    let mut conn = manager.allocate(a.clone()).await.unwrap();
    let mut accepted = server.accepted().await;
    conn.write_all(b"unread").await.unwrap();
    let mut one = [0; 1];
    conn.read_exact(&mut one).await.unwrap();
    drop(conn);
    accepted.client_closed().await;

    // Evicted for another key under max_open 1.
    let conn = manager.allocate(a.clone()).await.unwrap();
    let mut accepted = server.accepted().await;
    drop(conn);
    let other = manager.allocate(b.clone()).await.unwrap();
    accepted.client_closed().await;
    server.accepted().await;

    // Closed by the server while idle.
    drop(other);
    let mut a_again = manager.allocate(a.clone()).await.unwrap(); // evicts b's
    let accepted = server.accepted().await;
    echo(&mut a_again).await;
    drop(a_again);
    accepted.send(support::Cmd::Reset);
    support::until("the reset to be seen", || {
        manager.stats().closes.closed_by_peer == 1
    })
    .await;

    // Shutdown closes what is idle.
    let conn = manager.allocate(b.clone()).await.unwrap();
    server.accepted().await;
    drop(conn);
    manager.shutdown().await;

    let s = manager.stats();
    let c = s.closes;
    assert_eq!(
        (c.discarded, c.unread, c.evicted, c.closed_by_peer, c.shutdown),
        (1, 1, 2, 1, 1),
        "{c:?}"
    );
    assert_eq!(s.stale_discarded, c.closed_by_peer + c.unread);
    adds_up(&s);
    // Per key: a's closes and b's add up to the manager's.
    let (sa, sb) = (manager.stats_for(&a), manager.stats_for(&b));
    adds_up(&sa);
    adds_up(&sb);
    assert_eq!(sa.closes.total() + sb.closes.total(), c.total());
    assert_eq!((sa.closes.unread, sb.closes.shutdown), (1, 1));
}

#[tokio::test]
async fn keep_alive_expiry_is_counted_as_idle_timeout() {
    let mut server = Server::start("127.0.0.1").await;
    let target = Target::new("tcp", "127.0.0.1", server.port());
    let keep_alive = Duration::from_secs(30);
    let manager = Manager::builder().keep_alive(keep_alive).build();
    let conn = manager.allocate(target.clone()).await.unwrap();
    let mut accepted = server.accepted().await;
    drop(conn);
    tokio::time::pause();
    tokio::time::advance(keep_alive).await;
    tokio::time::resume();
    accepted.client_closed().await;
    let s = manager.stats_for(&target);
    assert_eq!((s.closes.idle_timeout, s.idle), (1, 0));
    adds_up(&s);
}
