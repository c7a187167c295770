//! keepalive-hyper over real sockets, against a scripted HTTP/1.1 origin:
//! one handshake per connection, the checkout check before hyper's task has
//! run, hints, the return of a connection at the end of its body (and the
//! close of one whose response was dropped), limits, timeouts, Unix sockets,
//! a target through a proxy, and the retry rule.

mod support;

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use keepalive::Target;
use keepalive_hyper::Client;
use support::{body_of, get, until, within, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn one_handshake_per_connection() {
    let origin = Origin::start().await;
    let (url, target) = (origin.url("/x"), origin.target());
    origin.serve_all(b"hello");
    let client: Client = Client::new();
    for _ in 0..5 {
        let response = within("a response", client.request(get(&url))).await.unwrap();
        assert_eq!(body_of(response).await, "hello");
    }
    let stats = client.stats_for(&target);
    assert_eq!((stats.connects, stats.reuses, stats.idle), (1, 4, 1));
    assert_eq!(client.retries(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_close_or_stray_bytes_before_the_request_are_seen_before_hyper_runs() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    let client: Client = Client::new();
    let mut connects = 0;
    for case in ["fin", "rst", "junk"] {
        let pending = client.request(get(&url));
        let (side, response) = tokio::join!(origin.answered(b"ok"), pending);
        connects += 1;
        body_of(response.unwrap()).await;
        until("the connection back in the pool", || client.stats().idle == 1).await;
        // No await between the server's act and the request: hyper's task
        // cannot have seen it; only the pool's check on the socket can.
        match case {
            "fin" => drop(side),
            "rst" => {
                socket2::SockRef::from(&side.stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(side);
            }
            _ => assert_eq!(side.stream.try_write(b"junk").unwrap(), 4),
        }
        let next = client.request(get(&url));
        let (fresh, response) = tokio::join!(origin.answered(b"ok"), next);
        connects += 1;
        assert_eq!(body_of(response.unwrap()).await, "ok", "{case}");
        assert_eq!(client.stats().connects, connects, "{case}: a new connection");
        assert_eq!(client.retries(), 0, "{case}: no request was sent into it");
        // Leave nothing idle for the next case.
        until("the fresh connection back", || client.stats().idle == 1).await;
        socket2::SockRef::from(&fresh.stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(fresh);
        until("the pool to be empty", || client.stats().open == 0).await;
    }
    let closes = client.stats().closes;
    // Found by the checkout check (FIN, RST, junk), not by hyper's task;
    // the fresh connections reset at the end of each case by the watch.
    assert_eq!(closes.found_dead, 2, "{closes:?}");
    assert_eq!(closes.unsolicited_data, 1, "{closes:?}");
    assert_eq!(closes.closed_by_peer, 3, "{closes:?}");
}

#[tokio::test]
async fn keep_alive_hints_reach_the_pool() {
    let origin = Origin::start().await;
    let (url, target) = (origin.url("/"), origin.target());
    let client: Client = Client::new();
    let serving = tokio::spawn(async move {
        // As Apache does: the count of requests left goes down.
        let mut side = origin.accept().await;
        for left in (0..3).rev() {
            side.request().await.unwrap();
            let hint = format!("keep-alive: timeout=5, max={left}\r\n");
            side.respond(&hint, b"ok").await;
        }
        side
    });
    for _ in 0..3 {
        body_of(within("a response", client.request(get(&url))).await.unwrap()).await;
    }
    let stats = client.stats_for(&target);
    assert_eq!(stats.server_idle_timeout, Some(Duration::from_secs(5)));
    until("the spent connection to close", || {
        client.stats().closes.uses_spent == 1
    })
    .await;
    assert_eq!(client.stats_for(&target).connects, 1);
    drop(within("the origin", serving).await.unwrap());
}

#[tokio::test]
async fn a_body_read_to_its_end_returns_the_connection_and_a_dropped_one_closes_it() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    let client: Client = Client::new();
    let request = client.request(get(&url));
    let (mut side, response) = tokio::join!(
        async {
            let mut side = origin.accept().await;
            side.request().await.unwrap();
            // A long body, of which only the start is sent.
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\nstart";
            side.stream.write_all(head.as_bytes()).await.unwrap();
            side
        },
        request
    );
    let response = response.unwrap();
    assert_eq!(client.stats().in_use, 1, "on loan while the body is unread");
    drop(response);
    let mut rest = [0; 16];
    assert_eq!(
        within("the client's close", side.stream.read(&mut rest))
            .await
            .unwrap(),
        0
    );
    until("the closed connection to leave", || client.stats().open == 0).await;
    assert_eq!(client.stats().closes.discarded, 1);
}

#[tokio::test]
async fn limits_queue_requests_and_time_them_out() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    let client: Client = Client::with_builder(
        keepalive::Manager::builder()
            .max_per_host(1)
            .timeout(Duration::from_millis(200)),
    );
    let first = client.request(get(&url));
    let (mut side, first) = tokio::join!(
        async {
            let mut side = origin.accept().await;
            side.request().await.unwrap();
            side.stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nha")
                .await
                .unwrap();
            side
        },
        first
    );
    let first = first.unwrap();
    // The only connection is on loan until its body ends: the next waits.
    let err = client.request(get(&url)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.pool().unwrap().is_timeout());
    let second = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move { body_of(client.request(get(&url)).await.unwrap()).await }
    });
    until("the second request to queue", || client.stats().queued == 1).await;
    side.stream.write_all(b"lf").await.unwrap();
    assert_eq!(body_of(first).await, "half");
    side.request().await.unwrap();
    side.respond("", b"second").await;
    assert_eq!(within("the queued request", second).await.unwrap(), "second");
    assert_eq!(client.stats().connects, 1);
}

#[tokio::test]
async fn an_idempotent_request_that_met_the_close_is_retried_once() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    let client: Client = Client::new();
    // Connection A: one exchange, then idle in the pool.
    let (mut a, response) = tokio::join!(origin.answered(b"one"), client.request(get(&url)));
    body_of(response.unwrap()).await;
    until("A back in the pool", || client.stats().idle == 1).await;
    // The race: A passes the checkout check, the server reads the GET and
    // closes without an answer. The GET is sent again on B.
    let (b, response) = tokio::join!(
        async {
            a.request().await.unwrap();
            drop(a);
            let mut b = origin.accept().await;
            b.request().await.unwrap();
            b.respond("", b"two").await;
            b
        },
        client.request(get(&url))
    );
    assert_eq!(body_of(response.unwrap()).await, "two");
    assert_eq!(client.retries(), 1);
    until("B back in the pool", || client.stats().idle == 1).await;

    // A POST with a body that meets the same close is not retried.
    let post = http::Request::post(&url).body(Full::from("data")).unwrap();
    let mut b = b;
    let (_, result) = tokio::join!(
        async {
            b.request().await.unwrap();
            drop(b);
        },
        client.request(post)
    );
    let err = result.unwrap_err();
    assert!(err.hyper().is_some(), "{err}");
    assert_eq!(client.retries(), 1);

    // Nor is a GET that fails on a fresh connection.
    let (_, result) = tokio::join!(
        async {
            let mut c = origin.accept().await;
            c.request().await.unwrap();
        },
        client.request(get(&url))
    );
    assert!(result.unwrap_err().hyper().is_some());
    assert_eq!(client.retries(), 1);
}

#[tokio::test]
async fn unix_sockets_carry_requests() {
    let dir = std::env::temp_dir().join(format!("keepalive-hyper-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let host_is_local = String::from_utf8_lossy(&buf[..end]).contains("host: localhost");
                buf.drain(..end + 4);
                let body = if host_is_local { "local" } else { "no host" };
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                stream.write_all(reply.as_bytes()).await.unwrap();
            }
        }
    });
    let client: Client = Client::new();
    let target = Target::unix(&path);
    for _ in 0..3 {
        let req = http::Request::get("/containers/json")
            .body(Full::default())
            .unwrap();
        let response = within("a response", client.send(target.clone(), req))
            .await
            .unwrap();
        assert_eq!(body_of(response).await, "local");
    }
    let stats = client.stats_for(&target);
    assert_eq!((stats.connects, stats.reuses), (1, 2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_idle_close_ends_hypers_task_and_teaches_the_servers_limit() {
    let origin = Origin::start().await;
    let (url, target) = (origin.url("/"), origin.target());
    let client: Client = Client::new();
    let (side, response) = tokio::join!(origin.answered(b"ok"), client.request(get(&url)));
    body_of(response.unwrap()).await;
    until("the connection back in the pool", || client.stats().idle == 1).await;
    // Idle a while, then the server's idle close: hyper's task sees the
    // FIN and ends, which is the pool's event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(side);
    until("the closed connection to leave", || client.stats().open == 0).await;
    let stats = client.stats_for(&target);
    assert_eq!(stats.closes.closed_by_peer, 1);
    let learned = stats.server_idle_timeout.expect("a limit learned from the close");
    assert!(learned >= Duration::from_millis(100), "{learned:?}");
}

#[tokio::test]
async fn send_through_a_proxy_uses_one_pooled_tunnel_in_origin_form() {
    let origin = Origin::start().await;
    let (proxy_port, tunnels) = support::connect_proxy().await;
    let target = origin
        .target()
        .via(keepalive::Proxy::http("127.0.0.1", proxy_port));
    let url = origin.url("/through");
    let side = tokio::spawn(async move {
        let mut side = origin.accept().await;
        let mut lines = Vec::new();
        for _ in 0..3 {
            let head = side.request().await.unwrap();
            lines.push(head.lines().next().unwrap().to_owned());
            side.respond("", b"ok").await;
        }
        lines
    });
    let client: Client = Client::new();
    for _ in 0..3 {
        let response = within("a response", client.send(target.clone(), get(&url)))
            .await
            .unwrap();
        assert_eq!(body_of(response).await, "ok");
    }
    let lines = within("the origin's requests", side).await.unwrap();
    assert_eq!(
        lines, ["get /through http/1.1"; 3],
        "origin-form inside the tunnel"
    );
    let stats = client.stats_for(&target);
    assert_eq!((stats.connects, stats.reuses), (1, 2));
    assert_eq!(tunnels.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_server_that_does_not_keep_alive_is_counted_as_its_close_not_a_discard() {
    let origin = Origin::start().await;
    let (url, target) = (origin.url("/"), origin.target());
    let client: Client = Client::new();
    let serving = tokio::spawn(async move {
        // An HTTP/1.0 answer without keep-alive, then `Connection: close`.
        let mut side = origin.accept().await;
        side.request().await.unwrap();
        let _ = side
            .stream
            .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        drop(side);
        let mut side = origin.accept().await;
        side.request().await.unwrap();
        side.respond("connection: close\r\n", b"ok").await;
        side
    });
    for _ in 0..2 {
        body_of(within("a response", client.request(get(&url))).await.unwrap()).await;
    }
    until("both connections to close", || {
        client.stats_for(&target).open == 0
    })
    .await;
    let closes = client.stats_for(&target).closes;
    assert_eq!((closes.connection_close, closes.discarded), (2, 0), "{closes:?}");
    drop(within("the origin", serving).await.unwrap());
}

#[tokio::test]
async fn a_uris_user_information_is_basic_auth_and_never_the_host() {
    let origin = Origin::start().await;
    let addr = origin.listener.local_addr().unwrap();
    let client: Client = Client::new();
    let serving = tokio::spawn(async move {
        let mut side = origin.accept().await;
        let head = side.request().await.unwrap();
        side.respond("", b"ok").await;
        (side, head)
    });
    let url = format!("http://alice:s3cret@{addr}/f1");
    body_of(within("a response", client.request(get(&url))).await.unwrap()).await;
    let (_side, head) = within("the origin", serving).await.unwrap();
    // The origin's support lower-cases the head it read.
    let lines: Vec<&str> = head.lines().collect();
    assert!(lines.contains(&format!("host: {addr}").as_str()), "{head}");
    assert!(lines.contains(&"authorization: basic ywxpy2u6cznjcmv0"), "{head}");
}

#[tokio::test]
async fn unix_uris_reach_the_socket_and_other_schemes_no_connection() {
    let dir = std::env::temp_dir().join(format!("keepalive-hyper-unix-uri-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            head.extend_from_slice(&chunk[..n]);
        }
        let host_is_local = String::from_utf8_lossy(&head).contains("host: localhost");
        let body = if host_is_local { "local" } else { "no host" };
        let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        stream.write_all(reply.as_bytes()).await.unwrap();
    });
    let client: Client = Client::new();
    let uri = keepalive_hyper::unix_uri(&path, "/containers/json");
    let req = http::Request::get(uri).body(Full::default()).unwrap();
    let response = within("a response", client.request(req)).await.unwrap();
    assert_eq!(body_of(response).await, "local");
    for uri in ["ftp://127.0.0.1:21/", "unix://localhost/x", "ws://127.0.0.1:1/"] {
        let err = within("an error", client.request(get(uri))).await.unwrap_err();
        assert!(
            err.pool().is_some_and(keepalive::Error::is_invalid_target),
            "{uri}: {err}"
        );
    }
    assert_eq!(client.stats().connects, 1, "no connection for the other schemes");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resolver whose every lookup fails.
#[derive(Debug)]
struct NoSuchName;

impl keepalive::Resolve for NoSuchName {
    fn resolve(&self, _: &str, _: u16) -> keepalive::ResolveFuture {
        Box::pin(async { Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such name")) })
    }
}

#[tokio::test]
async fn errors_say_what_failed_and_where() {
    let refused = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client: Client = Client::with_builder(keepalive::Manager::builder().resolver(NoSuchName));
    let said = |err: keepalive_hyper::Error| {
        assert!(
            std::error::Error::source(&err).is_some(),
            "{err}: the cause is kept"
        );
        err.to_string()
    };
    let err = client
        .request(get(&format!("http://{refused}/")))
        .await
        .unwrap_err();
    assert_eq!(said(err), format!("connection to {refused} refused"));
    let err = client.request(get("http://nowhere.example/")).await.unwrap_err();
    assert_eq!(said(err), "name lookup of nowhere.example failed");
    let err = client.request(get("/relative")).await.unwrap_err();
    assert_eq!(
        said(err),
        "the request's URI names no target this client can reach"
    );
    let err = client.request(get("ftp://127.0.0.1:21/")).await.unwrap_err();
    assert!(std::error::Error::source(&err)
        .unwrap()
        .to_string()
        .contains("unsupported scheme ftp"));
}

#[tokio::test]
async fn the_whole_request_times_out_and_never_pools_its_connection() {
    let origin = Origin::start().await;
    let (url, target) = (origin.url("/"), origin.target());
    let client: Client = Client::builder()
        .pool(keepalive::Manager::builder().max_per_host(1))
        .timeout(Duration::from_millis(300))
        .build();
    let serving = tokio::spawn(async move {
        // The first request gets no answer at all; the second a head and
        // part of its body.
        let mut silent = origin.accept().await;
        silent.request().await.unwrap();
        let mut slow = origin.accept().await;
        slow.request().await.unwrap();
        let _ = slow
            .stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
            .await;
        (origin, silent, slow)
    });
    let err = within("the timeout", client.request(get(&url)))
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.pool().is_none(), "{err}");
    until("the silent connection to close", || {
        client.stats_for(&target).open == 0
    })
    .await;
    let response = within("a head", client.request(get(&url))).await.unwrap();
    let err = within("the body's timeout", response.into_body().collect())
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    until("the slow connection to close", || {
        client.stats_for(&target).open == 0
    })
    .await;
    assert_eq!(client.stats_for(&target).idle, 0, "never pooled mid-response");
    drop(within("the origin", serving).await.unwrap());
}

#[tokio::test]
async fn waiting_for_a_connection_the_timeout_is_the_pools() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    // The pool's own timeout is the earlier here: it wins, as the pool's.
    let client: Client = Client::builder()
        .pool(
            keepalive::Manager::builder()
                .max_per_host(1)
                .timeout(Duration::from_millis(100)),
        )
        .timeout(Duration::from_secs(3600))
        .build();
    let holder = tokio::spawn(async move {
        let mut side = origin.accept().await;
        side.request().await;
        side
    });
    let held = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.request(get(&url)).await }
    });
    until("the one connection to be on loan", || client.stats().in_use == 1).await;
    let err = within("the pool's timeout", client.request(get(&url)))
        .await
        .unwrap_err();
    assert!(err.pool().is_some_and(keepalive::Error::is_timeout), "{err}");
    held.abort();
    drop(within("the origin", holder).await.unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn a_response_dropped_after_its_whole_body_arrived_leaves_the_connection_reusable() {
    let origin = Origin::start().await;
    let (url, target) = (origin.url("/"), origin.target());
    origin.serve_all(b"ok");
    let client: Client = Client::new();
    let response = within("a response", client.request(get(&url))).await.unwrap();
    // The two bytes of its body came with its head: the exchange is whole
    // on the wire, so dropping it unread does not spoil the connection.
    drop(response);
    let again = within("a response", client.request(get(&url))).await.unwrap();
    assert_eq!(body_of(again).await, "ok");
    let stats = client.stats_for(&target);
    assert_eq!((stats.connects, stats.reuses), (1, 1), "{stats:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_connection_is_idle_as_soon_as_its_body_was_read() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    origin.serve_all(b"ok");
    let client: Client = Client::new();
    for _ in 0..3 {
        let response = within("a response", client.request(get(&url))).await.unwrap();
        assert_eq!(body_of(response).await, "ok");
        // No yield to hyper's task between the body's end and this.
        let stats = client.stats();
        assert_eq!((stats.idle, stats.in_use), (1, 0), "{stats:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_that_arrives_in_parts_returns_the_connection_as_it_is_read_to_its_end() {
    let origin = Origin::start().await;
    let url = origin.url("/");
    let client: Client = Client::new();
    let (go_on, wait) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let mut side = origin.accept().await;
        side.request().await.unwrap();
        side.stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab")
            .await
            .unwrap();
        wait.await.unwrap();
        side.stream.write_all(b"cd").await.unwrap();
        side
    });
    let response = within("a response", client.request(get(&url))).await.unwrap();
    let mut body = response.into_body();
    let first = within("the first part", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "ab");
    assert_eq!(client.stats().in_use, 1, "on loan while its body is unread");
    go_on.send(()).unwrap();
    let rest = within("the rest", body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, "cd");
    // No yield to hyper's task between the body's end and this.
    let stats = client.stats();
    assert_eq!((stats.idle, stats.in_use), (1, 0), "{stats:?}");
    drop(within("the origin", serving).await.unwrap());
}
