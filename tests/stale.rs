//! Idle sockets the peer closes, resets or writes to are never handed out
//! (issue point 7).

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Target};
use support::{until, within, Cmd, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A manager whose keep-alive is far beyond any test, so only liveness
/// checks can close a socket.
fn manager() -> Manager {
    Manager::builder().keep_alive(Duration::from_secs(600)).build()
}

#[tokio::test]
async fn an_idle_socket_the_server_closes_is_dropped_without_a_checkout() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = manager();
    let target = Target::new("http", "127.0.0.1", server.port());
    drop(manager.allocate(target.clone()).await.unwrap());
    let mut accepted = server.accepted().await;
    accepted.send(Cmd::HalfClose);
    // The server keeps reading: it sees the pool close its end.
    accepted.client_closed().await;
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 1));
    assert_eq!(
        manager.allocate(target).await.unwrap().from_cache(),
        FromCache::Fresh
    );
}

#[tokio::test]
async fn an_idle_socket_the_server_resets_is_dropped_without_a_checkout() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = manager();
    let target = Target::new("http", "127.0.0.1", server.port());
    drop(manager.allocate(target.clone()).await.unwrap());
    let mut accepted = server.accepted().await;
    accepted.send(Cmd::Reset);
    accepted.client_closed().await; // the server's side is gone
    until("the pool to drop the reset socket", || manager.stats().open == 0).await;
    assert_eq!(manager.stats().stale_discarded, 1);
    assert_eq!(
        manager.allocate(target).await.unwrap().from_cache(),
        FromCache::Fresh
    );
}

#[tokio::test]
async fn an_idle_socket_that_receives_bytes_is_reset_without_a_checkout() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = manager();
    let target = Target::new("http", "127.0.0.1", server.port());
    drop(manager.allocate(target.clone()).await.unwrap());
    let mut accepted = server.accepted().await;
    accepted.send(Cmd::Send(b"surprise"));
    accepted.client_closed().await;
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 1));
}

/// The check at checkout asks the kernel: a FIN that arrived while the
/// runtime was not polling is still seen. The server is a plain thread, and
/// the test blocks the only runtime thread from the FIN until `allocate`.
#[tokio::test(flavor = "current_thread")]
async fn the_checkout_check_sees_a_fin_the_runtime_has_not_polled() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        wait.recv().unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        (listener, stream) // the listener stays open for the next connect
    });
    let manager = manager();
    let target = Target::new("http", "127.0.0.1", port);
    let conn = manager.allocate(target.clone()).await.unwrap();
    let local = conn.local_addr().unwrap().port();
    drop(conn);
    assert_eq!(manager.stats().idle, 1);

    // From here to `allocate`, no `.await`: the runtime polls nothing.
    go.send(()).unwrap();
    let _server_side = server.join().unwrap();
    let deadline = std::time::Instant::now() + support::DEADLINE;
    while support::tcp_state(local, port).as_deref() != Some(support::CLOSE_WAIT) {
        assert!(
            std::time::Instant::now() < deadline,
            "FIN never reached the client socket"
        );
        std::thread::yield_now();
    }
    let allocation = manager.allocate(target);
    let s = manager.stats();
    assert_eq!((s.idle, s.stale_discarded), (0, 1), "found stale at checkout");

    let conn = within("a fresh connect", allocation).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    assert_ne!(conn.local_addr().unwrap().port(), local);
}

#[tokio::test]
async fn a_connection_dropped_with_unread_bytes_is_closed_not_pooled() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = manager();
    let target = Target::new("http", "127.0.0.1", server.port());
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let mut accepted = server.accepted().await;
    conn.write_all(b"ping").await.unwrap();
    let mut half = [0; 2];
    conn.read_exact(&mut half).await.unwrap(); // two echoed bytes stay unread
    drop(conn);
    accepted.client_closed().await;
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 1));
    assert_eq!(
        manager.allocate(target).await.unwrap().from_cache(),
        FromCache::Fresh
    );
}

#[tokio::test]
async fn a_connection_dropped_after_an_io_error_is_closed_not_pooled() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = manager();
    let target = Target::new("http", "127.0.0.1", server.port());
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let mut accepted = server.accepted().await;
    accepted.send(Cmd::Reset);
    accepted.client_closed().await;
    let mut buf = [0; 8];
    assert!(conn.read(&mut buf).await.is_err(), "a reset reads as an error");
    drop(conn);
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 1));
}

#[tokio::test]
async fn a_connection_that_read_end_of_stream_is_closed_not_pooled() {
    let mut server = Server::start("127.0.0.1").await;
    let manager = manager();
    let mut conn = manager
        .allocate(Target::new("http", "127.0.0.1", server.port()))
        .await
        .unwrap();
    let mut accepted = server.accepted().await;
    accepted.send(Cmd::HalfClose);
    let mut buf = [0; 8];
    assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
    drop(conn);
    accepted.client_closed().await;
    let s = manager.stats();
    // The user saw the end of the stream: a normal close, not a stale find.
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 0));
}
