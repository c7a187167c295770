//! Name resolution: the shared lookup, literals, Happy Eyeballs, failures,
//! the answer cache (issue #3).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keepalive::{FromCache, Manager, Target};
use support::{until, within, Blackhole, Gate, Server, Table};
use tokio::time::Instant;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn concurrent_requests_for_a_cold_name_share_one_lookup() {
    let server = Server::start("127.0.0.1").await;
    let gate = Gate::default();
    let manager = Manager::builder().resolver(gate.clone()).build();
    let target = Target::new("http", "shared.example", server.port());
    let allocations: Vec<_> = (0..100).map(|_| manager.allocate(target.clone())).collect();
    assert_eq!((manager.stats().dns_lookups, manager.stats().queued), (1, 100));
    until("the lookup to start", || gate.calls.load(Ordering::SeqCst) == 1).await;
    gate.release();
    for a in allocations {
        drop(within("a connection", a).await.unwrap());
    }
    assert_eq!(gate.calls.load(Ordering::SeqCst), 1, "exactly one resolve call");
}

#[tokio::test]
async fn every_waiter_gets_the_shared_lookups_failure() {
    let table = Table::with_delay(Duration::from_millis(20));
    let manager = Manager::builder().resolver(table.clone()).build();
    let target = Target::new("http", "missing.example", 80);
    let allocations: Vec<_> = (0..50).map(|_| manager.allocate(target.clone())).collect();
    for a in allocations {
        let err = within("the failure", a).await.unwrap_err();
        assert_eq!(err.function(), "resolve");
        assert!(err.to_string().contains("missing.example"), "{err}");
    }
    assert_eq!(table.calls(), 1);
    assert_eq!(manager.stats().queued, 0);
}

#[tokio::test]
async fn an_empty_answer_says_the_host_has_no_address() {
    let table = Table::default();
    table.set("empty.example", &[]);
    let manager = Manager::builder().resolver(table).build();
    let err = manager
        .allocate(Target::new("http", "empty.example", 80))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "resolve");
    assert_eq!(err.to_string(), "empty.example has no address");
}

#[tokio::test]
async fn literals_never_reach_the_resolver() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::default();
    let manager = Manager::builder().resolver(table.clone()).build();
    drop(
        manager
            .allocate(Target::new("http", "127.0.0.1", server.port()))
            .await
            .unwrap(),
    );
    for host in ["::1", "[::1]"] {
        // Whether or not ::1 answers here, no lookup is made.
        let _ = manager.allocate(Target::new("http", host, server.port())).await;
    }
    assert_eq!((table.calls(), manager.stats().dns_lookups), (0, 0));
}

#[tokio::test]
async fn lookups_take_no_max_open_slot() {
    let server = Server::start("127.0.0.1").await;
    let gate = Gate::default();
    let manager = Manager::builder().max_open(1).resolver(gate.clone()).build();
    let held = manager
        .allocate(Target::new("http", "127.0.0.1", server.port()))
        .await
        .unwrap();
    let mut waiting = manager.allocate(Target::new("http", "named.example", server.port()));
    until("the lookup to start while max_open is full", || {
        gate.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    gate.release();
    until("the answer to queue the request", || {
        manager.stats().dns_lookups == 1
    })
    .await;
    let s = manager.stats();
    assert_eq!((s.open, s.queued), (1, 1));
    drop(held);
    assert_eq!(
        within("the freed slot", &mut waiting).await.unwrap().from_cache(),
        FromCache::Fresh
    );
}

#[tokio::test]
async fn the_request_timeout_covers_the_lookup() {
    let gate = Gate::default();
    let manager = Manager::builder().resolver(gate.clone()).build();
    let err = within(
        "the timeout",
        manager
            .allocate(Target::new("http", "slow.example", 80))
            .timeout(Duration::from_millis(30)),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(manager.stats().queued, 0);
    until("the abandoned lookup to be dropped", || {
        gate.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn happy_eyeballs_starts_the_next_address_after_the_delay_and_closes_the_loser() {
    let server = Server::start("127.0.0.1").await;
    let hole = Blackhole::start();
    let table = Table::default();
    table.set("he.example", &[local(hole.port), local(server.port())]);
    let delay = Duration::from_millis(50);
    let manager = Manager::builder()
        .resolver(table)
        .happy_eyeballs_delay(delay)
        .build();
    let start = Instant::now();
    let conn = within(
        "the second address",
        manager.allocate(Target::new("http", "he.example", 1)),
    )
    .await
    .unwrap();
    assert_eq!(conn.peer_addr().unwrap(), server.addr);
    assert!(
        start.elapsed() >= delay,
        "the second attempt waited for the delay"
    );
    until("the losing attempt to be closed", || {
        support::connecting_to(hole.port) == 0
    })
    .await;
}

#[tokio::test]
async fn a_failed_attempt_starts_the_next_address_at_once() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::default();
    table.set(
        "fast.example",
        &[local(support::refused_port().await), local(server.port())],
    );
    // With a delay far beyond the test's deadline, only the failure can
    // start the second attempt in time.
    let manager = Manager::builder()
        .resolver(table)
        .happy_eyeballs_delay(Duration::from_secs(600))
        .build();
    let conn = within(
        "the second address",
        manager.allocate(Target::new("http", "fast.example", 1)),
    )
    .await
    .unwrap();
    assert_eq!(conn.peer_addr().unwrap(), server.addr);
}

#[tokio::test]
async fn when_every_address_fails_the_error_lists_them_with_the_first_errno() {
    let (a, b) = (
        local(support::refused_port().await),
        local(support::refused_port().await),
    );
    let table = Table::default();
    table.set("down.example", &[a, b]);
    let manager = Manager::builder().resolver(table).build();
    let err = manager
        .allocate(Target::new("http", "down.example", 1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.function(), err.raw_os_error()),
        ("connect", Some(libc::ECONNREFUSED))
    );
    let text = err.to_string();
    assert!(
        text.contains(&a.to_string()) && text.contains(&b.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_bind_address_keeps_only_its_family() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::default();
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    table.set("mixed.example", &[v6, local(server.port())]);
    table.set("v6only.example", &[v6]);
    let manager = Manager::builder()
        .resolver(table)
        .bind_address([127, 0, 0, 1].into())
        .build();
    let conn = manager
        .allocate(Target::new("http", "mixed.example", 1))
        .await
        .unwrap();
    assert_eq!(conn.peer_addr().unwrap(), server.addr);
    let err = manager
        .allocate(Target::new("http", "v6only.example", 1))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "connect");
    assert!(
        format!("{:?}", std::error::Error::source(&err)).contains("family"),
        "{err:?}"
    );
}

#[tokio::test]
async fn dns_ttl_keeps_positive_answers_only() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::default();
    table.set("cached.example", &[local(server.port())]);
    let manager = Manager::builder()
        .resolver(table.clone())
        .dns_ttl(Duration::from_secs(3600))
        .build();
    let target = Target::new("http", "cached.example", server.port());
    for _ in 0..3 {
        // Discarded, so each allocation needs a new connection.
        manager.allocate(target.clone()).await.unwrap().discard();
    }
    assert_eq!(
        (
            table.calls(),
            manager.stats().dns_lookups,
            manager.stats().connects
        ),
        (1, 1, 3)
    );
    for _ in 0..2 {
        assert!(manager
            .allocate(Target::new("http", "nope.example", 80))
            .await
            .is_err());
    }
    assert_eq!(table.calls(), 3, "errors are not cached");
}

#[tokio::test]
async fn without_dns_ttl_or_after_it_names_are_looked_up_again() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::default();
    table.set("fresh.example", &[local(server.port())]);
    let target = Target::new("http", "fresh.example", server.port());
    let uncached = Manager::builder().resolver(table.clone()).build();
    uncached.allocate(target.clone()).await.unwrap().discard();
    uncached.allocate(target.clone()).await.unwrap().discard();
    assert_eq!(table.calls(), 2);

    let ttl = Duration::from_millis(100);
    let cached = Manager::builder().resolver(table.clone()).dns_ttl(ttl).build();
    cached.allocate(target.clone()).await.unwrap().discard();
    tokio::time::sleep(ttl * 2).await; // the behaviour under test: time passing
    cached.allocate(target).await.unwrap().discard();
    assert_eq!(table.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_allocations_to_ten_cold_names_make_ten_lookups() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::with_delay(Duration::from_millis(50));
    for i in 0..10 {
        table.set(&format!("n{i}.example"), &[local(server.port())]);
    }
    let manager = Manager::builder().resolver(table.clone()).build();
    let start = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (manager, target) = (
                manager.clone(),
                Target::new("http", format!("n{}.example", i % 10), 80),
            );
            tokio::spawn(async move { drop(manager.allocate(target).await.unwrap()) })
        })
        .collect();
    for t in tasks {
        within("an allocation", t).await.unwrap();
    }
    println!(
        "1000 allocations, 10 cold names, 50 ms resolver: {} lookups in {:?}",
        table.calls(),
        start.elapsed()
    );
    assert_eq!((table.calls(), manager.stats().dns_lookups), (10, 10));
}

/// Listeners on 127.0.0.1, .2 and .3 with one port (a name's three
/// servers); the kernel completes connections into their backlogs.
async fn three_servers() -> (u16, Vec<tokio::net::TcpListener>) {
    for _ in 0..20 {
        let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let (Ok(second), Ok(third)) = (
            tokio::net::TcpListener::bind(("127.0.0.2", port)).await,
            tokio::net::TcpListener::bind(("127.0.0.3", port)).await,
        ) else {
            continue;
        };
        return (port, vec![first, second, third]);
    }
    panic!("no port free on 127.0.0.1, .2 and .3 at once");
}

#[tokio::test]
async fn spread_addresses_gives_each_new_connection_the_next_address_in_turn() {
    for (spread, expected) in [(true, [2, 1, 1]), (false, [4, 0, 0])] {
        let (port, _listeners) = three_servers().await;
        let table = Table::default();
        let addrs: Vec<std::net::SocketAddr> = (1..=3).map(|i| ([127, 0, 0, i], port).into()).collect();
        table.set("pods.example", &addrs);
        let manager = Manager::builder()
            .resolver(table)
            .spread_addresses(spread)
            .max_per_host(4)
            .build();
        let target = Target::new("tcp", "pods.example", port);
        let mut held = Vec::new();
        let mut landed = [0; 3];
        for _ in 0..4 {
            let conn = within("a connection", manager.allocate(target.clone()))
                .await
                .unwrap();
            let std::net::IpAddr::V4(ip) = conn.peer_addr().unwrap().ip() else {
                panic!("an IPv4 peer");
            };
            landed[usize::from(ip.octets()[3]) - 1] += 1;
            held.push(conn);
        }
        assert_eq!(landed, expected, "spread_addresses({spread})");
    }
}

/// The last octet of the address `conn` is connected to.
fn pod(conn: &keepalive::Connection) -> u8 {
    match conn.peer_addr().unwrap().ip() {
        std::net::IpAddr::V4(ip) => ip.octets()[3],
        other => panic!("an IPv4 peer, not {other}"),
    }
}

#[tokio::test]
async fn refresh_dns_follows_servers_that_leave_the_answer() {
    let (port, _listeners) = three_servers().await;
    let pods =
        |last: &[u8]| -> Vec<SocketAddr> { last.iter().map(|&i| ([127, 0, 0, i], port).into()).collect() };
    let table = Table::default();
    table.set("pods.example", &pods(&[1, 2, 3]));
    let manager = Manager::builder()
        .resolver(table.clone())
        .spread_addresses(true)
        .refresh_dns(Duration::from_millis(100))
        .max_per_host(3)
        .build();
    let target = Target::new("tcp", "pods.example", port);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(
            within("a connection", manager.allocate(target.clone()))
                .await
                .unwrap(),
        );
    }
    conns.sort_by_key(pod);
    assert_eq!(conns.iter().map(pod).collect::<Vec<_>>(), [1, 2, 3]);
    // .2 stays on loan; .1 and .3 go idle. Then .2 and .3 leave the answer.
    let on_loan = conns.remove(1);
    drop(conns);
    table.set("pods.example", &pods(&[1]));
    let gone = || manager.stats_for(&target).closes.address_gone;
    until("the idle connection to .3 to close", || gone() == 1).await;
    let stats = manager.stats_for(&target);
    assert_eq!(
        (stats.idle, stats.in_use),
        (1, 1),
        "the one on loan is not closed under its user"
    );
    drop(on_loan);
    assert_eq!(gone(), 2, "closed as it came back");
    // New connections go where the fresh answer says.
    let a = manager.allocate(target.clone()).await.unwrap();
    let b = manager.allocate(target.clone()).await.unwrap();
    assert_eq!((pod(&a), a.from_cache(), pod(&b)), (1, FromCache::Immediate, 1));
    // An empty answer closes nothing; lookups go on while connections do.
    table.set("pods.example", &[]);
    let calls = table.calls();
    until("two more refreshes", || table.calls() >= calls + 2).await;
    assert_eq!((gone(), manager.stats_for(&target).in_use), (2, 2));
    assert!(manager.stats_for(&target).dns_lookups >= 3);
}

#[tokio::test]
async fn refresh_dns_stops_when_a_key_has_no_connection_and_skips_literals() {
    let server = Server::start("127.0.0.1").await;
    let table = Table::default();
    table.set("one.example", &[server.addr]);
    let manager = Manager::builder()
        .resolver(table.clone())
        .refresh_dns(Duration::from_millis(50))
        .build();
    let conn = manager
        .allocate(Target::new("tcp", "one.example", server.port()))
        .await
        .unwrap();
    until("a refresh", || table.calls() >= 2).await;
    conn.discard();
    // The next refresh finds no connection and ends the schedule.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls = table.calls();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(table.calls(), calls, "no lookups for a key with no connection");
    let literal = manager
        .allocate(Target::new("tcp", "127.0.0.1", server.port()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        (table.calls(), manager.stats().dns_lookups as usize),
        (calls, calls)
    );
    drop(literal);
}
