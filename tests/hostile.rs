//! A hostile server, one behaviour per connection: for each, the error or
//! discard the pool must produce, then stats back at zero and this
//! process's open descriptors back where they started (issue #6). One test
//! in its own binary, so that no other test's sockets blur the count.

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Stats, Target};
use support::{open_fds, until, within, Blackhole, Cmd, Server};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Asserts that the pool holds nothing and every descriptor opened since
/// `baseline` was closed.
async fn settled(manager: &Manager, baseline: usize, after: &str) {
    until(&format!("the pool to settle after {after}"), || {
        let s = manager.stats();
        s.open == 0 && s.queued == 0
    })
    .await;
    until(&format!("descriptors to return after {after}"), || {
        open_fds() <= baseline
    })
    .await;
}

#[tokio::test]
async fn every_hostile_behaviour_ends_clean() {
    let mut server = Server::start("127.0.0.1").await;
    let hole = Blackhole::start();
    let slammer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slam_port = slammer.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = slammer.accept().await {
            drop(s); // accept, then close at once
        }
    });
    let baseline = open_fds();
    let manager = Manager::builder()
        .keep_alive(Duration::from_secs(600))
        .timeout(Duration::from_millis(300))
        .build();
    let target = Target::new("http", "127.0.0.1", server.port());

    // Idle connections closed, reset, or written to by the server.
    for (i, (what, cmd)) in [
        ("a FIN on an idle socket", Cmd::HalfClose),
        ("a reset of an idle socket", Cmd::Reset),
        (
            "unsolicited bytes on an idle socket",
            Cmd::Send(b"HTTP/1.1 408 Request Timeout\r\n\r\n"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        drop(manager.allocate(target.clone()).await.unwrap());
        let mut side = server.accepted().await;
        side.send(cmd);
        side.client_closed().await;
        settled(&manager, baseline, what).await;
        assert_eq!(manager.stats().stale_discarded, i as u64 + 1, "{what}");
    }

    // Accepted and closed at once: the user reads the end of the stream,
    // and the socket is closed, not pooled.
    let slam = Target::new("http", "127.0.0.1", slam_port);
    let mut conn = within("a connect", manager.allocate(slam.clone())).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    let mut buf = [0; 16];
    let n = within("the close", conn.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "the server sent nothing and closed");
    drop(conn);
    settled(&manager, baseline, "accept-and-close").await;
    // Returned without a read: the pool sees the close and drops it.
    drop(within("a connect", manager.allocate(slam)).await.unwrap());
    settled(&manager, baseline, "accept-and-close, unread").await;

    // Never accepted: the connect times out.
    let err = within(
        "the timeout",
        manager.allocate(Target::new("http", "127.0.0.1", hole.port)),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout() && err.function() == "connect", "{err}");
    settled(&manager, baseline, "a full backlog").await;

    // Accepted, then silent through the TLS handshake.
    #[cfg(feature = "tls")]
    {
        let (mute, server_task) = support::tls::mute_listener().await;
        let baseline = open_fds();
        let err = within(
            "the timeout",
            manager.allocate(Target::new("https", "127.0.0.1", mute)),
        )
        .await
        .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        until("the pool to settle after a stalled handshake", || {
            manager.stats().open == 0
        })
        .await;
        // The server task still holds its side of the connection: only the
        // client's descriptor must be gone.
        until("the client's descriptor to close", || open_fds() <= baseline + 1).await;
        server_task.abort();
        let _ = server_task.await;
    }

    let s = manager.stats();
    let mut zero = Stats::default();
    (zero.stale_discarded, zero.connects, zero.closes) = (s.stale_discarded, s.connects, s.closes);
    assert_eq!(s, zero, "nothing open, in use, connecting or queued");
    // Every socket that connected was closed for a reason: FIN, RST and
    // accept-and-close are the server's closes, the stray bytes its data.
    assert_eq!(s.connects, s.closes.total(), "{:?}", s.closes);
    assert_eq!(
        (
            s.closes.closed_by_peer,
            s.closes.unsolicited_data,
            s.closes.discarded
        ),
        (3, 1, 1)
    );
    drop(manager);
    until("every descriptor to close", || open_fds() <= baseline).await;
}
