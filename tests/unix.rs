//! Unix domain sockets: everything that holds for TCP holds for a
//! `Target::unix`: reuse, the checkout check (MSG_PEEK works on Unix
//! stream sockets), the idle watch, limits and queueing, close reasons,
//! learning, and a clear `"connect"` error for a missing or non-socket
//! path.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use keepalive::{FromCache, Manager, Target};
use support::{until, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A listening Unix socket in a directory of its own, removed on drop.
struct UnixServer {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl UnixServer {
    fn start(name: &str) -> UnixServer {
        let dir = std::env::temp_dir().join(format!("keepalive-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.sock");
        let listener = UnixListener::bind(&path).unwrap();
        UnixServer { dir, path, listener }
    }

    fn target(&self) -> Target {
        Target::unix(&self.path)
    }

    async fn accepted(&self) -> UnixStream {
        within("an accept", self.listener.accept()).await.unwrap().0
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request and its answer over a loaned connection.
async fn ping(conn: &mut keepalive::Connection, server: &mut UnixStream) {
    conn.write_all(b"ping").await.unwrap();
    let mut got = [0; 4];
    server.read_exact(&mut got).await.unwrap();
    server.write_all(b"pong").await.unwrap();
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"pong");
}

#[tokio::test]
async fn a_unix_socket_is_pooled_and_reused() {
    let server = UnixServer::start("reuse");
    let manager = Manager::new();
    let target: Target = format!("unix://{}", server.path.display()).parse().unwrap();
    assert_eq!(target, server.target());
    let mut conn = within("connect", manager.allocate(target.clone())).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    assert!(conn.peer_addr().is_err(), "a Unix socket has no IP address");
    let mut side = server.accepted().await;
    ping(&mut conn, &mut side).await;
    drop(conn);
    let mut again = manager.allocate(target.clone()).await.unwrap();
    assert_eq!(again.from_cache(), FromCache::Immediate);
    ping(&mut again, &mut side).await;
    drop(again);
    let stats = manager.stats_for(&target);
    assert_eq!((stats.connects, stats.reuses, stats.idle), (1, 1, 1));
}

#[tokio::test]
async fn the_checkout_check_sees_a_close_the_runtime_has_not_seen() {
    let server = UnixServer::start("checkout");
    let manager = Manager::new();
    drop(manager.allocate(server.target()).await.unwrap());
    let side = server.accepted().await;
    // Closed and allocated again without yielding: the background task has
    // not run, so only the kernel check can know.
    drop(side);
    let conn = manager.allocate(server.target()).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    assert_eq!(manager.stats().closes.found_dead, 1);
}

#[tokio::test]
async fn the_idle_watch_sees_a_close_and_stray_bytes_and_learns_the_limit() {
    let server = UnixServer::start("watch");
    let manager = Manager::new();
    let target = server.target();
    drop(manager.allocate(target.clone()).await.unwrap());
    let side = server.accepted().await;
    // Closed after a while idle: an observation of the server's limit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(side);
    until("the closed socket to leave", || manager.stats().open == 0).await;
    let stats = manager.stats_for(&target);
    assert_eq!(stats.closes.closed_by_peer, 1);
    let learned = stats.server_idle_timeout.expect("a limit learned from the close");
    assert!(learned >= Duration::from_millis(100), "{learned:?}");
    drop(manager.allocate(target.clone()).await.unwrap());
    let mut side = server.accepted().await;
    side.write_all(b"junk").await.unwrap();
    until("the socket with stray bytes to leave", || {
        manager.stats().open == 0
    })
    .await;
    assert_eq!(manager.stats_for(&target).closes.unsolicited_data, 1);
}

#[tokio::test]
async fn limits_and_queueing_hold() {
    let server = UnixServer::start("limits");
    let manager = Manager::builder().max_per_host(1).build();
    let held = manager.allocate(server.target()).await.unwrap();
    let waiting = manager.allocate(server.target());
    let timed_out = manager
        .allocate(server.target())
        .timeout(Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(timed_out.is_timeout());
    assert_eq!(manager.stats().queued, 1);
    drop(held);
    let conn = within("the waiter", waiting).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Deferred);
    assert_eq!(manager.stats().connects, 1);
}

#[tokio::test]
async fn a_missing_or_non_socket_path_is_a_connect_error_with_its_os_error() {
    let server = UnixServer::start("missing");
    let manager = Manager::new();
    let missing = manager
        .allocate(Target::unix(server.dir.join("nope.sock")))
        .await
        .unwrap_err();
    assert_eq!(missing.function(), "connect");
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    assert!(missing.to_string().contains("nope.sock"), "{missing}");
    let file = server.dir.join("plain-file");
    std::fs::write(&file, b"not a socket").unwrap();
    let refused = manager.allocate(Target::unix(&file)).await.unwrap_err();
    assert_eq!(refused.function(), "connect");
    assert_eq!(refused.raw_os_error(), Some(libc::ECONNREFUSED));
    for bad in ["unix://", "unix://a\0b"] {
        let err = bad.parse::<Target>().unwrap_err();
        assert!(err.is_invalid_target(), "{bad:?}: {err}");
    }
    assert_eq!(manager.stats().open, 0);
}
