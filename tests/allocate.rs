//! Allocate, reuse, addresses, bad input (issue points 1, 9, 11, 12).

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Stats, Target};
use support::{within, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn stats(open: usize, idle: usize, in_use: usize, connects: u64, reuses: u64) -> Stats {
    let mut s = Stats::default();
    (s.open, s.idle, s.in_use, s.connects, s.reuses) = (open, idle, in_use, connects, reuses);
    // Sockets are lent whole: one loan each.
    s.loans = in_use;
    s
}

#[tokio::test]
async fn drop_returns_the_socket_and_the_next_allocate_reuses_it() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    let target = Target::new("http", "127.0.0.1", server.port());

    let mut conn = within("allocate", manager.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    assert_eq!(manager.stats(), stats(1, 0, 1, 1, 0));
    let port = conn.local_addr().unwrap().port();
    assert_eq!(server.accepted().await.peer.port(), port);
    conn.write_all(b"ping").await.unwrap();
    let mut echo = [0; 4];
    conn.read_exact(&mut echo).await.unwrap();
    drop(conn);
    assert_eq!(manager.stats(), stats(1, 1, 0, 1, 0));

    for round in 1..=3 {
        let conn = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Immediate);
        assert_eq!(conn.local_addr().unwrap().port(), port, "same socket");
        assert_eq!(manager.stats(), stats(1, 0, 1, 1, round));
    }
    assert_eq!(manager.stats(), stats(1, 1, 0, 1, 3));
    assert_eq!(server.pending_accepts(), 0, "no second connection");
}

#[tokio::test]
async fn targets_that_differ_do_not_share_sockets() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    let plain = Target::new("http", "127.0.0.1", server.port());
    let proxied = plain.clone().for_target("https", "a.example", 443);
    let other_scheme = Target::new("tcp", "127.0.0.1", server.port());
    drop(manager.allocate(plain.clone()).await.unwrap());
    for t in [proxied, other_scheme] {
        assert_eq!(manager.allocate(t).await.unwrap().from_cache(), FromCache::Fresh);
    }
    // Equal spellings do share.
    let same = Target::new("HTTP", "127.0.0.1", server.port()).for_target("http", "127.0.0.1", server.port());
    assert_eq!(
        manager.allocate(same).await.unwrap().from_cache(),
        FromCache::Immediate
    );
    assert_eq!(manager.stats().connects, 3);
}

#[tokio::test]
async fn ipv6_literals_with_and_without_brackets() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("SKIPPED: this machine has no ::1");
        return;
    };
    drop(listener);
    let mut server = Server::start("::1").await;
    let manager = Manager::new();
    let conn = manager
        .allocate(Target::new("http", "[::1]", server.port()))
        .await
        .unwrap();
    assert_eq!(conn.peer_addr().unwrap(), server.addr);
    assert_eq!(server.accepted().await.peer, conn.local_addr().unwrap());
    drop(conn);
    let again = manager
        .allocate(Target::new("http", "::1", server.port()))
        .await
        .unwrap();
    assert_eq!(again.from_cache(), FromCache::Immediate);
    assert_eq!(
        manager.stats().dns_lookups,
        0,
        "literals never reach the resolver"
    );
}

#[tokio::test]
async fn bind_address_is_the_local_address_of_every_socket() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().bind_address([127, 0, 0, 2].into()).build();
    let target = Target::new("http", "127.0.0.1", server.port());
    let (a, b) = tokio::join!(manager.allocate(target.clone()), manager.allocate(target));
    for conn in [a.unwrap(), b.unwrap()] {
        assert_eq!(
            conn.local_addr().unwrap().ip(),
            std::net::IpAddr::from([127, 0, 0, 2])
        );
        let _ = conn;
    }
    for _ in 0..2 {
        assert_eq!(
            server.accepted().await.peer.ip(),
            std::net::IpAddr::from([127, 0, 0, 2])
        );
    }
}

#[tokio::test]
async fn bind_address_of_the_other_family_is_a_clear_error() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().bind_address("::1".parse().unwrap()).build();
    let err = manager
        .allocate(Target::new("http", "127.0.0.1", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "connect");
    assert!(
        format!("{:?}", std::error::Error::source(&err)).contains("family"),
        "{err:?}"
    );
    assert_eq!(manager.stats().open, 0);
}

#[tokio::test]
async fn bad_input_is_an_error_never_a_panic() {
    let manager = Manager::new();
    for target in [
        Target::new("", "127.0.0.1", 80),
        Target::new("http", "", 80),
        Target::new("http", "127.0.0.1", 0),
        Target::new("http", "not a host", 80),
        Target::new("http", "[::1", 80),
        Target::new("http", "999.1.1.1", 80),
        Target::new("http", "a..b", 80),
        Target::new("http", "x".repeat(64) + ".example", 80),
        Target::new("http", "127.0.0.1", 80).for_target("http", "", 80),
    ] {
        let err = manager.allocate(target.clone()).await.unwrap_err();
        assert!(err.is_invalid_target(), "{target:?}: {err}");
        assert_eq!(err.function(), "allocate");
        assert!(err.to_string().starts_with("invalid target"), "{err}");
    }
    for text in [
        "ftp//x",
        "",
        "http://",
        "gopher://host",
        "http://host:99999",
        "http://[::1",
    ] {
        let err = text.parse::<Target>().unwrap_err();
        assert!(err.is_invalid_target(), "{text:?}: {err}");
    }
    assert_eq!(manager.stats(), Stats::default(), "nothing was queued or opened");
}

#[tokio::test]
async fn a_refused_connection_fails_at_once_with_econnrefused() {
    let port = support::refused_port().await;
    let manager = Manager::new();
    let err = within(
        "refusal",
        manager.allocate(Target::new("http", "127.0.0.1", port)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "connect");
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    assert!(!err.is_timeout());
    // The cause is the io::Error itself, as error reporters walk it.
    let cause = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the source is the io::Error");
    assert_eq!(cause.raw_os_error(), Some(libc::ECONNREFUSED));
    assert_eq!(manager.stats(), Stats::default());
}

#[tokio::test]
async fn names_go_through_the_system_resolver() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    // `localhost` may resolve to ::1 first, where nothing listens: the
    // connect moves on to the next address.
    let conn = within(
        "localhost",
        manager.allocate(Target::new("http", "localhost", server.port())),
    )
    .await
    .unwrap();
    assert!(conn.peer_addr().unwrap().ip().is_loopback());
    assert_eq!(manager.stats().dns_lookups, 1);
    drop(conn);
    let again = manager
        .allocate(Target::new("http", "LOCALHOST", server.port()))
        .await
        .unwrap();
    assert_eq!(
        again.from_cache(),
        FromCache::Immediate,
        "names are case-insensitive"
    );
}

#[tokio::test]
async fn a_shorter_timeout_at_most_wins() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::new("http", "127.0.0.1", listener.local_addr().unwrap().port());
    let manager = Manager::builder().max_per_host(1).build();
    let held = manager.allocate(target.clone()).await.unwrap();
    // The builder's 120 s would let it wait; 50 ms does not.
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        manager
            .allocate(target.clone())
            .timeout_at_most(Duration::from_millis(50)),
    )
    .await
    .expect("the shorter timeout ends the wait")
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    drop(held);
}
