//! No descriptor outlives its use when hyper's task and the pool share a
//! socket: reuse, the server's idle close, stray bytes while idle, a
//! response dropped before its body, a Unix socket, and a client dropped
//! with connections idle. One test in its own binary, so no other test's
//! sockets blur the count of this process's descriptors.

mod support;

use keepalive::Target;
use keepalive_hyper::Client;
use support::{body_of, get, open_fds, until, within, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn every_path_gives_back_its_descriptors() {
    let origin = Origin::start().await;
    let dir = std::env::temp_dir().join(format!("keepalive-hyper-leaks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("origin.sock");
    let before = open_fds();
    // Its task owns it, and closes it when its one connection ends.
    let unix = tokio::net::UnixListener::bind(&path).unwrap();
    {
        let client: Client = Client::new();
        let url = origin.url("/");

        // One connection for three requests, then the server's close while
        // it is idle: hyper's task ends, and the pool closes its share.
        let (mut side, response) = tokio::join!(origin.answered(b"ok"), client.request(get(&url)));
        body_of(response.unwrap()).await;
        for _ in 0..2 {
            let serve = async {
                side.request().await.unwrap();
                side.respond("", b"ok").await;
            };
            let ((), response) = tokio::join!(serve, client.request(get(&url)));
            body_of(response.unwrap()).await;
        }
        assert_eq!(client.stats().connects, 1);
        until("the connection back in the pool", || client.stats().idle == 1).await;
        drop(side);
        until("the closed connection to leave", || client.stats().open == 0).await;

        // Bytes nobody asked for while the connection is idle.
        let (mut side, response) = tokio::join!(origin.answered(b"ok"), client.request(get(&url)));
        body_of(response.unwrap()).await;
        until("the connection back in the pool", || client.stats().idle == 1).await;
        side.stream.write_all(b"junk").await.unwrap();
        until("the connection with stray bytes to leave", || {
            client.stats().open == 0
        })
        .await;
        let mut rest = Vec::new();
        let _ = within("the client's close", side.stream.read_to_end(&mut rest)).await;
        drop(side);

        // A response dropped before its body arrived closes the connection.
        let serve = async {
            let mut side = origin.accept().await;
            side.request().await.unwrap();
            side.stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok")
                .await
                .unwrap();
            side
        };
        let (mut side, response) = tokio::join!(serve, client.request(get(&url)));
        drop(response.unwrap());
        until("the abandoned connection to leave", || client.stats().open == 0).await;
        let _ = within("the client's close", side.stream.read_to_end(&mut rest)).await;
        drop(side);

        // A Unix socket, left idle in the pool when the client goes, with a
        // TCP connection idle beside it.
        tokio::spawn(async move {
            let (mut stream, _) = unix.accept().await.unwrap();
            let mut buf = [0; 4096];
            while let Ok(1..) = stream.read(&mut buf).await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nlocal")
                    .await;
            }
        });
        let target = Target::unix(&path);
        let response = client.send(target, get("/")).await.unwrap();
        assert_eq!(body_of(response).await, "local");
        let (side, response) = tokio::join!(origin.answered(b"ok"), client.request(get(&url)));
        body_of(response.unwrap()).await;
        until("both connections back in the pool", || client.stats().idle == 2).await;
        drop(client);
        drop(side);
    }
    until("every descriptor to be closed", || open_fds() <= before).await;
    assert_eq!(open_fds(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
