//! The keep-alive race from the first encounter: a manager that has never
//! seen its server's idle close loses at most the one request that meets
//! it, learns the limit from that loss, and (through `keepalive_http::send`)
//! sends the request again; later gaps in the race window then take fresh
//! connections. A server restart, which closes every idle connection at
//! once, teaches no limit shorter than the age those connections had.
//! (Connections of different ages closed at once teach a band, as
//! lighttpd's sweep does: see `pool/state/server_limit.rs`.)

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keepalive::{FromCache, Manager, Target};
use keepalive_relay::Relay;
use support::{until, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The server's idle limit.
const IDLE: Duration = Duration::from_millis(800);
/// The relay's delay, each way.
const DELAY: Duration = Duration::from_millis(25);

/// An HTTP/1.1 server answering `ok` on every request, closing a
/// connection idle for `idle` (`None`: never), and closing every
/// connection at once when `restart` is sent.
async fn server(idle: Option<Duration>, restart: watch::Receiver<u32>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            // A connection accepted after a restart lives on.
            let mut restart = restart.clone();
            restart.borrow_and_update();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0; 4096];
                loop {
                    let idle_close = async {
                        match idle {
                            Some(d) => tokio::time::sleep(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    let n = tokio::select! {
                        read = socket.read(&mut chunk) => match read {
                            Ok(n @ 1..) => n,
                            _ => return,
                        },
                        () = idle_close => return,
                        _ = restart.changed() => return,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// One GET with the retry rule: (failed before any retry, retried, failed
/// after it).
async fn get(manager: &Manager, target: &Target, request: &[u8]) -> (bool, bool, bool) {
    let sent = within(
        "a request",
        keepalive_http::send(manager, target, "GET", request, &mut Vec::new(), &mut |_| {}),
    )
    .await;
    match sent {
        Ok(outcome) => (outcome.retried, outcome.retried, false),
        Err(e) => (true, e.retried(), true),
    }
}

#[tokio::test]
async fn a_cold_manager_loses_at_most_one_request_and_learns_from_it() {
    let (_restart, restart) = watch::channel(0);
    let (upstream, _) = server(Some(IDLE), restart).await;
    let relay = Relay::start(upstream, DELAY).await.unwrap();
    let target = Target::new("http", "127.0.0.1", relay.addr().port());
    let request = keepalive_http::request("GET", &relay.addr().to_string(), "/");
    let manager = Manager::new();
    let (mut lost, mut retried, mut failed) = (0, 0, 0);
    assert_eq!(get(&manager, &target, &request).await, (false, false, false));
    // Gaps all in the race window (IDLE - 2 DELAY, IDLE), nothing primed.
    for gap in [760, 790, 770, 780, 765, 795] {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let (l, r, f) = get(&manager, &target, &request).await;
        (lost, retried, failed) = (
            lost + usize::from(l),
            retried + usize::from(r),
            failed + usize::from(f),
        );
        if lost == 1 && l {
            let learned = manager.stats_for(&target).server_idle_timeout;
            let learned = learned.expect("the first loss teaches the limit");
            assert!(
                learned <= IDLE && learned >= Duration::from_millis(500),
                "{learned:?}"
            );
        }
    }
    assert!(lost <= 1, "{lost} requests met the server's close");
    assert_eq!(failed, 0, "none failed after the retry");
    assert_eq!(retried, lost);
    let stats = manager.stats_for(&target);
    assert!(stats.server_idle_timeout.is_some());
    assert!(
        stats.closes.server_limit >= 4,
        "later gaps retire sockets: {:?}",
        stats.closes
    );
}

#[tokio::test]
async fn a_server_restart_teaches_no_limit_shorter_than_the_connections_age() {
    let (restart_tx, restart) = watch::channel(0);
    let (upstream, accepted) = server(None, restart).await;
    let target = Target::new("http", "127.0.0.1", upstream.port());
    let request = keepalive_http::request("GET", &upstream.to_string(), "/");
    let manager = Manager::new();
    // Three connections, returned together, idle 300 ms when the server
    // restarts.
    let conns = [
        manager.allocate(target.clone()).await.unwrap(),
        manager.allocate(target.clone()).await.unwrap(),
        manager.allocate(target.clone()).await.unwrap(),
    ];
    until("three connections", || accepted.load(Ordering::SeqCst) == 3).await;
    for mut conn in conns {
        let outcome = keepalive_http::exchange(&mut conn, &request, false, &mut Vec::new(), &mut |_| {})
            .await
            .unwrap();
        keepalive_http::settle(conn, &outcome);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the connections' idle age is the scenario
    restart_tx.send_replace(1);
    until("every idle connection to close", || manager.stats().open == 0).await;
    assert_eq!(manager.stats().closes.closed_by_peer, 3);
    let learned = manager
        .stats_for(&target)
        .server_idle_timeout
        .expect("a close was seen");
    assert!(
        learned >= Duration::from_millis(300),
        "the connections had been idle 300 ms; learned {learned:?}"
    );
    // And the pool goes on reusing within that age.
    drop(manager.allocate(target.clone()).await.unwrap());
    let again = manager.allocate(target).await.unwrap();
    assert_eq!(again.from_cache(), FromCache::Immediate);
}
