//! No file descriptor outlives its use. One test in its own binary, so no
//! other test's sockets blur the count of this process's descriptors.

mod support;

use std::time::Duration;

use keepalive::{Manager, Target};
use support::{open_fds, until, within, Blackhole, Cmd, Gate, Server};

#[tokio::test]
async fn every_fault_path_gives_back_its_descriptors() {
    let mut server = Server::start("127.0.0.1").await;
    let hole = Blackhole::start();
    let refused = support::refused_port().await;
    let before = open_fds();
    {
        let manager = Manager::builder()
            .max_open(2)
            .timeout(Duration::from_millis(100))
            .keep_alive(Duration::from_secs(600))
            .resolver(Gate::default())
            .build();
        let hanging = Target::new("http", "127.0.0.1", hole.port);
        // A connect that times out, one that is cancelled, one refused.
        assert!(within("timeout", manager.allocate(hanging.clone()))
            .await
            .unwrap_err()
            .is_timeout());
        drop(manager.allocate(hanging));
        assert!(manager
            .allocate(Target::new("http", "127.0.0.1", refused))
            .await
            .is_err());
        // A lookup that is abandoned.
        drop(manager.allocate(Target::new("http", "a.example", 80)));
        // Idle sockets closed by the server, reset, and written to.
        let target = Target::new("http", "127.0.0.1", server.port());
        for cmd in [Cmd::HalfClose, Cmd::Reset, Cmd::Send(b"junk")] {
            drop(manager.allocate(target.clone()).await.unwrap());
            let mut side = server.accepted().await;
            side.send(cmd);
            side.client_closed().await;
            until("the stale socket to go", || manager.stats().open == 0).await;
        }
        assert_eq!(manager.stats().stale_discarded, 3);
        // One idle and one loaned socket when the manager goes.
        let loaned = manager.allocate(target.clone()).await.unwrap();
        drop(
            manager
                .allocate(Target::new("tcp", "127.0.0.1", server.port()))
                .await
                .unwrap(),
        );
        drop(manager);
        drop(loaned);
    }
    until("every descriptor to be closed", || open_fds() <= before).await;
    assert_eq!(open_fds(), before);
}
