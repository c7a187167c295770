//! Shutdown, and the end of every task and socket with the last handle
//! (issue point 10).

mod support;

use std::time::Duration;

use keepalive::{Manager, Target};
use support::{until, within, Blackhole, Gate, Server};

#[tokio::test]
async fn shutdown_fails_pending_closes_idle_and_refuses_new_work() {
    let mut server = Server::start("127.0.0.1").await;
    let hole = Blackhole::start();
    let manager = Manager::builder()
        .max_per_host(1)
        .resolver(Gate::default())
        .build();
    let target = Target::new("http", "127.0.0.1", server.port());

    let loaned = manager.allocate(target.clone()).await.unwrap();
    let mut loaned_side = server.accepted().await;
    let idle_target = Target::new("tcp", "127.0.0.1", server.port());
    drop(manager.allocate(idle_target.clone()).await.unwrap());
    let mut idle_side = server.accepted().await;
    let pending = [
        manager.allocate(target.clone()), // queued behind max_per_host
        manager.allocate(Target::new("http", "a.example", 80)), // resolving
        manager.allocate(Target::new("http", "127.0.0.1", hole.port)), // connecting
    ];
    let s = manager.stats();
    assert_eq!(
        (s.open, s.idle, s.in_use, s.connecting, s.queued),
        (3, 1, 1, 1, 2)
    );

    within("shutdown", manager.shutdown()).await;
    for allocation in pending {
        let err = within("a pending allocation", allocation).await.unwrap_err();
        assert!(err.is_shutdown() && err.function() == "allocate", "{err}");
    }
    idle_side.client_closed().await;
    let s = manager.stats();
    assert_eq!(
        (s.open, s.idle, s.in_use, s.connecting, s.queued),
        (1, 0, 1, 0, 0)
    );
    assert!(manager.allocate(idle_target).await.unwrap_err().is_shutdown());

    drop(loaned); // closed, not pooled
    loaned_side.client_closed().await;
    assert_eq!(manager.stats().open, 0);
    within("a second shutdown", manager.shutdown()).await;
}

#[tokio::test]
async fn the_last_handle_ends_every_task_and_socket() {
    let mut server = Server::start("127.0.0.1").await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks = metrics.num_alive_tasks();
    {
        let manager = Manager::builder()
            .keep_alive(Duration::from_secs(600))
            .resolver(Gate::default())
            .build();
        let target = Target::new("http", "127.0.0.1", server.port());
        let conn = manager.allocate(target.clone()).await.unwrap();
        drop(
            manager
                .allocate(Target::new("tcp", "127.0.0.1", server.port()))
                .await
                .unwrap(),
        );
        let resolving = manager.allocate(Target::new("http", "a.example", 80));
        assert!(metrics.num_alive_tasks() > tasks);
        drop(manager);
        drop(resolving);
        // A connection outlives its manager and still works.
        assert_eq!(conn.peer_addr().unwrap(), server.addr);
        drop(conn);
    }
    let (mut a, mut b) = (server.accepted().await, server.accepted().await);
    a.client_closed().await;
    b.client_closed().await;
    until("every task to end", || metrics.num_alive_tasks() == tasks).await;
}

#[tokio::test]
async fn drain_refuses_new_work_fails_the_queue_and_waits_for_the_loans() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("tcp", "127.0.0.1", server.addr.port());
    let loaned = manager.allocate(target.clone()).await.unwrap();
    let queued = manager.allocate(target.clone());
    let draining = tokio::spawn({
        let manager = manager.clone();
        async move { manager.drain(Duration::from_secs(30)).await }
    });
    let err = within("the queued request", queued).await.unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    let err = manager.allocate(target).await.unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    assert!(!draining.is_finished(), "a loan is out");
    assert_eq!(manager.stats().loans, 1);
    // The last loan's end ends the drain, and its connection closes.
    drop(loaned);
    assert_eq!(within("the drain", draining).await.unwrap(), 0);
    assert_eq!(manager.stats().open, 0);
}

#[tokio::test]
async fn drain_returns_at_its_deadline_and_shuts_the_loans_down_under_their_users() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    let target = Target::new("tcp", "127.0.0.1", server.addr.port());
    let fds = support::open_fds();
    let mut writer = manager.allocate(target.clone()).await.unwrap();
    let mut reader = manager.allocate(target.clone()).await.unwrap();
    drop(manager.allocate(target).await.unwrap()); // idle: closed by the drain
                                                   // One user is reading (nothing will come) when the deadline comes.
    let read = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let read = reader.read(&mut buf).await;
        (read, reader)
    });
    assert_eq!(
        within("the drain", manager.drain(Duration::from_millis(100))).await,
        2
    );
    // Shut down under them: the read in progress ends, a write fails.
    let (read, reader) = within("the read to end", read).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        writer.write_all(b"x").await.is_err(),
        "a write after the cut fails"
    );
    let (mut a, mut b) = (server.accepted().await, server.accepted().await);
    a.client_closed().await;
    b.client_closed().await;
    assert_eq!(manager.stats().open, 2, "still theirs until dropped");
    drop((writer, reader));
    assert_eq!(manager.stats().open, 0);
    until("every descriptor back", || support::open_fds() <= fds).await;
    // Nothing out: at once.
    assert_eq!(within("a second drain", manager.drain(Duration::MAX)).await, 0);
}
