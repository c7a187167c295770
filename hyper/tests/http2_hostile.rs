//! Hostile HTTP/2 servers, written frame by frame (support/raw_h2.rs):
//! each is a clear error, leaves the pool's counts where they were, and
//! the next request works. One test runs them in turn, so that the
//! process's descriptors can be counted before and after.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use keepalive_hyper::Client;
use support::raw_h2::*;
use support::{open_fds, until, within};

fn h2c(timeout: Duration) -> Client {
    Client::builder()
        .pool(keepalive::Manager::builder().timeout(timeout))
        .http2_prior_knowledge()
        .http2_max_header_list_size(16 << 10)
        .timeout(timeout)
        .build()
}

fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::default()).unwrap()
}

/// The pool holds nothing for the client: no loan, nothing queued.
fn settled(client: &Client, what: &str) {
    let stats = client.stats();
    assert_eq!(
        (stats.loans, stats.in_use, stats.queued),
        (0, 0, 0),
        "{what}: {stats:?}"
    );
}

async fn zero_streams() {
    let server = RawH2::start(Greeting::Settings(&[(MAX_CONCURRENT_STREAMS, 0)]), []).await;
    let client = h2c(Duration::from_secs(5));
    let err = within("the error", client.request(get(&server.url("/"))))
        .await
        .unwrap_err();
    let pool = err.pool().expect("the pool's error");
    assert_eq!(pool.function(), "handshake", "{err}");
    let words = format!("{:?}", std::error::Error::source(pool));
    assert!(words.contains("SETTINGS_MAX_CONCURRENT_STREAMS 0"), "{words}");
    until("the close", || client.stats().open == 0).await;
    settled(&client, "zero streams");
}

async fn no_settings_at_all() {
    let server = RawH2::start(Greeting::Silent, []).await;
    let client = h2c(Duration::from_millis(300));
    let err = within("the error", client.request(get(&server.url("/"))))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.pool().is_some(), "{err}");
    until("the close", || client.stats().open == 0).await;
    settled(&client, "no settings");
}

async fn every_stream_reset() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(INTERNAL_ERROR); 3]).await;
    let client = h2c(Duration::from_secs(5));
    for _ in 0..3 {
        let err = within("the error", client.request(get(&server.url("/"))))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("reset the stream with INTERNAL_ERROR"),
            "{err}"
        );
    }
    let ok = within("the next", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(ok);
    assert_eq!((client.stats().connects, client.retries()), (1, 0));
    settled(&client, "resets");
}

async fn a_window_that_never_opens() {
    let greeting = Greeting::Settings(&[(INITIAL_WINDOW_SIZE, 0)]);
    let server = RawH2::start(greeting, [Act::Ignore]).await;
    let client = h2c(Duration::from_millis(300));
    let post = http::Request::post(server.url("/"))
        .body(Full::new(Bytes::from_static(b"never sent")))
        .unwrap();
    let err = within("the error", client.request(post)).await.unwrap_err();
    assert!(err.is_timeout() && err.pool().is_none(), "{err}");
    settled(&client, "window");
    // The stream was reset; the connection serves the next request.
    let ok = within("the next", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(client.stats().connects, 1);
}

async fn a_ping_flood() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::PingFlood]).await;
    let client = h2c(Duration::from_secs(5));
    match within("the answer", client.request(get(&server.url("/")))).await {
        Ok(response) => assert_eq!(response.status(), 200),
        Err(err) => assert!(err.to_string().contains("GOAWAY"), "{err}"),
    }
    let ok = within("the next", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(ok);
    settled(&client, "ping flood");
}

async fn a_continuation_flood() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::ContinuationFlood]).await;
    let client = h2c(Duration::from_secs(5));
    let err = within("the error", client.request(get(&server.url("/"))))
        .await
        .unwrap_err();
    assert!(err.pool().is_none(), "{err}");
    until("the close", || client.stats().open == 0).await;
    let ok = within("the next", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(ok);
    assert_eq!(client.stats().connects, 2);
    settled(&client, "continuation flood");
}

async fn headers_past_the_limit() {
    // 20 KiB against a limit of 16: that stream alone fails (h2 ends the
    // whole connection only for a list several times past the limit).
    let server = RawH2::start(Greeting::Settings(&[]), [Act::BigHeader(20 << 10)]).await;
    let client = h2c(Duration::from_secs(5));
    let err = within("the error", client.request(get(&server.url("/"))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reset the stream"), "{err}");
    let ok = within("the next", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(ok);
    assert_eq!(client.stats().connects, 1);
    settled(&client, "big header");
}

#[tokio::test]
async fn hostile_http2_servers_are_clear_errors_and_leave_nothing_behind() {
    let before = open_fds();
    zero_streams().await;
    no_settings_at_all().await;
    every_stream_reset().await;
    a_window_that_never_opens().await;
    a_ping_flood().await;
    a_continuation_flood().await;
    headers_past_the_limit().await;
    // Each server's sockets close as its tasks see the client's closes.
    until("descriptors back to where they were", || open_fds() <= before).await;
}

#[tokio::test]
async fn keep_alive_pings_close_a_connection_whose_server_stopped_answering() {
    // The server answers requests but never PINGs: a frozen peer, as far
    // as keep-alive can tell.
    let server = RawH2::start(Greeting::Settings(&[]), []).await;
    let client: Client = Client::builder()
        .http2_prior_knowledge()
        .http2_keep_alive(Duration::from_millis(100), Duration::from_millis(100))
        .build();
    let ok = within("the answer", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(ok);
    until("the dead peer's close", || client.stats().closes.dead_peer == 1).await;
    assert_eq!(client.stats().open, 0);
    let ok = within("the next", client.request(get(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(client.stats().connects, 2);
}
