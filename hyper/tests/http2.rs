//! keepalive-hyper's HTTP/2 by prior knowledge (h2c) against hyper's own
//! HTTP/2 server on loopback, started by each test with a stream limit of
//! its choosing: requests share connections up to the limit, spread over
//! more connections within `max_per_host`, wait in the pool's queue beyond
//! that, and free their stream as their body ends.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keepalive_hyper::Client;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

/// An h2c server allowing `streams` streams per connection, whose every
/// response waits at `barrier` first (so a test sees requests at once),
/// and which never answers `/never`;
/// returns its URL and the number of connections it accepted.
async fn h2c(streams: u32, barrier: Option<Arc<Barrier>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let barrier = barrier.clone();
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let barrier = barrier.clone();
                async move {
                    if req.uri().path() == "/never" {
                        std::future::pending::<()>().await;
                    }
                    if let Some(barrier) = barrier {
                        barrier.wait().await;
                    }
                    let answer = format!("{} {:?}", req.uri().path(), req.version());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(answer))))
                }
            });
            tokio::spawn(async move {
                let _ = http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(streams)
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    (url, accepted)
}

fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::default()).unwrap()
}

#[tokio::test]
async fn requests_share_a_connection_and_the_version_is_http2() {
    let (url, accepted) = h2c(100, None).await;
    let client: Client = Client::builder().http2_prior_knowledge().build();
    for _ in 0..3 {
        let response = client.request(get(&url)).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"/ HTTP/2.0");
    }
    let stats = client.stats();
    assert_eq!(
        (stats.connects, stats.reuses, stats.idle, stats.loans),
        (1, 2, 1, 0)
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_burst_spreads_at_the_servers_stream_limit_within_max_per_host() {
    // 64 requests, a server limit of 8 streams, max_per_host 4: 4
    // connections of 8 streams each carry 32 at once (the barrier lets none
    // answer before 32 are in), the other 32 wait in the pool's queue and
    // take the streams the first ones free.
    let barrier = Arc::new(Barrier::new(32));
    let (url, accepted) = h2c(8, Some(barrier)).await;
    let client: Client = Client::builder()
        .pool(keepalive::Manager::builder().max_per_host(4))
        .http2_prior_knowledge()
        .build();
    let requests: Vec<_> = (0..64)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{url}{i}"));
            tokio::spawn(async move {
                let response = client.request(get(&url)).await?;
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, keepalive_hyper::Error>(body)
            })
        })
        .collect();
    for (i, request) in requests.into_iter().enumerate() {
        let body = request.await.unwrap().unwrap();
        assert_eq!(body, format!("/{i} HTTP/2.0"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4, "connections at the server");
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reuses), (4, 60));
    assert_eq!((stats.open, stats.idle, stats.in_use, stats.loans), (4, 4, 0, 0));
}

#[tokio::test]
async fn a_cap_of_ours_below_the_servers_limit_opens_more_connections() {
    let barrier = Arc::new(Barrier::new(6));
    let (url, accepted) = h2c(100, Some(barrier)).await;
    let client: Client = Client::builder()
        .pool(keepalive::Manager::builder().max_per_host(3))
        .http2_prior_knowledge()
        .http2_max_concurrent_streams(2)
        .build();
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.request(get(&url)).await?.into_body().collect().await })
        })
        .collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_response_held_unread_holds_its_stream_and_a_dropped_one_frees_it() {
    let (url, _) = h2c(1, None).await;
    let client: Client = Client::builder()
        .pool(keepalive::Manager::builder().max_per_host(1))
        .http2_prior_knowledge()
        .build();
    let held = client.request(get(&url)).await.unwrap();
    assert_eq!((client.stats().in_use, client.stats().loans), (1, 1));
    // The one stream is taken: the next request waits in the pool.
    let next = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.request(get(&url)).await.map(|r| r.status()) }
    });
    drop(held);
    assert_eq!(next.await.unwrap().unwrap(), 200);
    let stats = client.stats();
    assert_eq!(
        (stats.connects, stats.closes.total()),
        (1, 0),
        "the stream was reset, not the connection"
    );
}

#[tokio::test]
async fn a_server_that_does_not_speak_http2_fails_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    let client: Client = Client::builder().http2_prior_knowledge().build();
    let error = client.request(get(&url)).await.unwrap_err();
    let pool = error.pool().expect("the pool's error");
    assert_eq!(pool.function(), "handshake", "{error}");
    let stats = client.stats();
    assert_eq!((stats.open, stats.loans, stats.queued), (0, 0, 0));
}

#[tokio::test]
async fn a_request_that_times_out_frees_its_stream_not_the_connection() {
    let (url, accepted) = h2c(100, None).await;
    let client: Client = Client::builder()
        .http2_prior_knowledge()
        .timeout(std::time::Duration::from_millis(200))
        .build();
    let error = client.request(get(&format!("{url}never"))).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let stats = client.stats();
    assert_eq!(
        (stats.loans, stats.idle),
        (0, 1),
        "the stream's loan ended, the connection is idle"
    );
    let response = client.request(get(&url)).await.unwrap();
    response.into_body().collect().await.unwrap();
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reuses, stats.closes.total()), (1, 1, 0));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// An h2c server that, after answering `/bye`, shuts its connection down
/// gracefully (a GOAWAY, then the close once its streams are done), and
/// notifies `closed` when it has.
async fn h2c_saying_goodbye() -> (String, Arc<AtomicUsize>, Arc<tokio::sync::Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(tokio::sync::Notify::new());
    let (count, done) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let bye = Arc::new(tokio::sync::Notify::new());
            let said = bye.clone();
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                if req.uri().path() == "/bye" {
                    said.notify_one();
                }
                async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok")))) }
            });
            let done = done.clone();
            tokio::spawn(async move {
                let conn =
                    http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(socket), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = bye.notified() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                        done.notify_one();
                    }
                }
            });
        }
    });
    (url, accepted, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_sent_goaway_on_is_never_lent_again_and_counted() {
    let (url, accepted, closed) = h2c_saying_goodbye().await;
    let client: Client = Client::builder().http2_prior_knowledge().build();
    let response = client.request(get(&format!("{url}bye"))).await.unwrap();
    response.into_body().collect().await.unwrap();
    closed.notified().await;
    // The pool's idle watch sees the connection end, after its GOAWAY.
    support::until("the closed connection leaves the pool", || {
        client.stats().open == 0
    })
    .await;
    let stats = client.stats();
    assert_eq!(
        (stats.closes.goaway, stats.closes.total()),
        (1, 1),
        "{:?}",
        stats.closes
    );
    let response = client.request(get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!((client.stats().connects, accepted.load(Ordering::SeqCst)), (2, 2));
}

#[tokio::test]
async fn a_connection_past_its_lifetime_takes_no_new_stream_and_closes_when_its_streams_end() {
    let (url, accepted) = h2c(100, None).await;
    let client: Client = Client::builder()
        .pool(keepalive::Manager::builder().max_lifetime(std::time::Duration::from_millis(500)))
        .http2_prior_knowledge()
        .build();
    // A stream held open on the first connection.
    let held = {
        let (client, url) = (client.clone(), format!("{url}never"));
        tokio::spawn(async move { client.request(get(&url)).await })
    };
    support::until("the held stream", || client.stats().loans == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(550)).await; // the lifetime is what is tested
    let response = client.request(get(&url)).await.unwrap();
    response.into_body().collect().await.unwrap();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the old connection took no new stream"
    );
    assert_eq!(client.stats().closes.lifetime, 0, "its stream still runs");
    held.abort();
    support::until("the old connection's close", || {
        client.stats().closes.lifetime == 1
    })
    .await;
    assert_eq!(client.stats().open, 1);
}

#[tokio::test]
async fn shutdown_lets_an_open_stream_finish_then_closes_and_refuses_new_requests() {
    let (url, _) = h2c(100, None).await;
    let client: Client = Client::builder().http2_prior_knowledge().build();
    let response = client.request(get(&url)).await.unwrap();
    client.shutdown().await;
    // The response on loan still reads to its end.
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"/ HTTP/2.0");
    support::until("the connection's close", || client.stats().open == 0).await;
    let err = client.request(get(&url)).await.unwrap_err();
    assert!(err.pool().is_some_and(keepalive::Error::is_shutdown), "{err}");
}

#[tokio::test]
async fn drain_waits_for_the_open_streams_and_refuses_new_requests() {
    let (url, _) = h2c(100, None).await;
    let client: Client = Client::builder().http2_prior_knowledge().build();
    let responses = [
        client.request(get(&url)).await.unwrap(),
        client.request(get(&url)).await.unwrap(),
    ];
    assert_eq!(client.stats().loans, 2);
    let mut draining = std::pin::pin!(client.drain(std::time::Duration::from_secs(30)));
    // Its first poll shuts the pool; it then waits for the two streams.
    assert_eq!(poll_once(draining.as_mut()), None);
    let err = client.request(get(&url)).await.unwrap_err();
    assert!(err.pool().is_some_and(keepalive::Error::is_shutdown), "{err}");
    for response in responses {
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(draining.await, 0);
    support::until("the connection's close", || client.stats().open == 0).await;
}

/// `fut`'s output if it is ready at this poll.
fn poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

#[tokio::test]
async fn warm_http2_connections_have_their_handshake_done_and_share_the_load() {
    let barrier = Arc::new(Barrier::new(8));
    let (url, accepted) = h2c(4, Some(barrier)).await;
    let builder = keepalive::Manager::builder().max_per_host(2);
    let client: Client = Client::builder().pool(builder).http2_prior_knowledge().build();
    let target: keepalive::Target = url.trim_end_matches('/').parse().unwrap();
    client.keep_warm(target.clone(), 2).await.unwrap();
    assert_eq!((client.stats().idle, accepted.load(Ordering::SeqCst)), (2, 2));
    // Eight at once, four streams each: both warm connections, no new one.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), url.clone());
        requests.spawn(async move { client.request(get(&url)).await.map(|r| r.version()) });
    }
    while let Some(version) = requests.join_next().await {
        assert_eq!(version.unwrap().unwrap(), http::Version::HTTP_2);
    }
    let stats = client.stats();
    assert_eq!(
        (stats.connects, stats.reuses),
        (2, 8),
        "every request on a warm connection"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn drain_cuts_what_is_still_running_at_its_deadline() {
    let (url, _) = h2c(100, None).await;
    let client: Client = Client::builder().http2_prior_knowledge().build();
    let done = client.request(get(&url)).await.unwrap();
    let stuck = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.request(get(&format!("{url}never"))).await }
    });
    support::until("both streams out", || client.stats().loans == 2).await;
    drop(done);
    // One stream still out at the deadline: its connection is shut down
    // under it, so the request fails instead of hanging.
    assert_eq!(client.drain(std::time::Duration::from_millis(100)).await, 1);
    // Its connection lost, a GET is sent again, which the drained pool
    // refuses: that is the error it ends with.
    let error = support::within("the stuck request to fail", stuck)
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.pool().is_some_and(keepalive::Error::is_shutdown), "{error}");
    support::until("every connection closed", || client.stats().open == 0).await;
    assert_eq!(client.stats().loans, 0);
}

#[tokio::test]
async fn drain_cuts_an_http1_body_still_being_read_at_its_deadline() {
    let origin = support::Origin::start().await;
    let client: Client = Client::new();
    let url = origin.url("/");
    let server = tokio::spawn(async move {
        let mut side = origin.accept().await;
        side.request().await.unwrap();
        // A body of 10 bytes, of which 3 are sent; then silence.
        use tokio::io::AsyncWriteExt;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        side.stream.write_all(head).await.unwrap();
        side
    });
    let response = client.request(get(&url)).await.unwrap();
    let _side = server.await.unwrap();
    assert_eq!(client.drain(std::time::Duration::from_millis(100)).await, 1);
    let body = support::within("the body to fail", response.into_body().collect()).await;
    assert!(body.is_err(), "the cut body ends in an error");
    support::until("the connection closed", || client.stats().open == 0).await;
}
