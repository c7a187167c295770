//! HTTP/2 streams the server refused or cut short, against a server
//! written frame by frame (support/raw_h2.rs): what is sent again
//! (REFUSED_STREAM, a GOAWAY of code NO_ERROR above the stream: whatever
//! the method, bounded), what is not (other codes), and that each case
//! leaves the pool as it was.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use keepalive_hyper::Client;
use support::raw_h2::{Act, Greeting, RawH2, ENHANCE_YOUR_CALM, INTERNAL_ERROR, NO_ERROR, REFUSED_STREAM};
use support::{until, within};

fn h2c() -> Client {
    Client::builder().http2_prior_knowledge().build()
}

fn post(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(url).body(Full::default()).unwrap()
}

#[tokio::test]
async fn refused_streams_are_sent_again_whatever_the_method() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(REFUSED_STREAM); 3]).await;
    let client = h2c();
    let response = within("the response", client.request(post(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!((client.retries(), server.streams()), (3, 4));
    // Refused on the same connection: nothing was wrong with it.
    assert_eq!((server.connections(), client.stats().connects), (1, 1));
}

#[tokio::test]
async fn refusals_past_ten_attempts_fail_with_the_last() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(REFUSED_STREAM); 12]).await;
    let client = h2c();
    let err = within("the error", client.request(post(&server.url("/"))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!((client.retries(), server.streams()), (9, 10));
    // The connection still serves.
    let ok = within("the next", client.request(post(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(client.stats().connects, 1);
}

#[tokio::test]
async fn a_stream_reset_with_another_code_is_not_sent_again() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(INTERNAL_ERROR)]).await;
    let client = h2c();
    let err = within("the error", client.request(post(&server.url("/"))))
        .await
        .unwrap_err();
    assert!(err.pool().is_none(), "{err}");
    assert_eq!((client.retries(), server.streams()), (0, 1));
    let ok = within("the next", client.request(post(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let stats = client.stats();
    assert_eq!((stats.connects, stats.loans), (1, 1));
    drop(ok);
    assert_eq!(client.stats().loans, 0);
}

#[tokio::test]
async fn a_refused_request_with_a_body_of_unknown_length_is_not_sent_again() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(REFUSED_STREAM)]).await;
    let client: Client<Unsized> = Client::builder().http2_prior_knowledge().build();
    let body = Unsized(Some(Bytes::from_static(b"data")));
    let req = http::Request::post(server.url("/")).body(body).unwrap();
    let err = within("the error", client.request(req)).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(client.retries(), 0);
}

#[tokio::test]
async fn a_goaway_of_no_error_above_the_stream_sends_it_again_on_another_connection() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::GoAway(NO_ERROR)]).await;
    let client = h2c();
    let response = within("the response", client.request(post(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!((client.retries(), server.connections()), (1, 2));
    drop(response);
    until("the first connection's close", || {
        client.stats().closes.goaway == 1
    })
    .await;
    let stats = client.stats();
    assert_eq!((stats.connects, stats.open, stats.loans), (2, 1, 0));
}

#[tokio::test]
async fn a_goaway_with_an_error_code_is_not_sent_again() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::GoAway(ENHANCE_YOUR_CALM)]).await;
    let client = h2c();
    let err = within("the error", client.request(post(&server.url("/"))))
        .await
        .unwrap_err();
    assert!(err.pool().is_none(), "{err}");
    assert_eq!(client.retries(), 0);
    until("the connection's close", || client.stats().open == 0).await;
    let ok = within("the next", client.request(post(&server.url("/"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(client.stats().connects, 2);
}

/// A body of one chunk whose length is not known in advance.
struct Unsized(Option<Bytes>);

impl hyper::body::Body for Unsized {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// On a current-thread runtime hyper's task runs only when the test
/// yields; the test blocks instead while the server (on a thread of its
/// own) sends its GOAWAY or FIN, so the pool's checkout check alone sees
/// them: the idle connection is not lent, and no request is sent into it.
#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_whose_goaway_or_fin_arrived_is_never_lent_before_hypers_task_runs() {
    use support::raw_h2::Elsewhere;
    for (goaway, close) in [(true, false), (false, true), (true, true)] {
        let server = Elsewhere::start(
            Greeting::Settings(&[]),
            vec![Act::AnswerThenLeave { goaway, close }],
        );
        let client = h2c();
        let first = within("the answer", client.request(post(&server.url("/"))))
            .await
            .unwrap();
        http_body_util::BodyExt::collect(first.into_body()).await.unwrap();
        assert_eq!(client.stats().idle, 1);
        server.go.notify_one();
        // Blocking: the runtime, hyper's task with it, stands still.
        server.done.recv_timeout(support::DEADLINE).unwrap();
        let second = within("the answer", client.request(post(&server.url("/"))))
            .await
            .unwrap();
        assert_eq!(second.status(), 200);
        let case = format!("goaway {goaway}, close {close}");
        assert_eq!(
            client.retries(),
            0,
            "{case}: a request was sent into the leaving connection"
        );
        let stats = client.stats();
        assert_eq!(
            (
                stats.connects,
                server.connections.load(std::sync::atomic::Ordering::SeqCst)
            ),
            (2, 2),
            "{case}"
        );
        let reason = if goaway {
            stats.closes.goaway
        } else {
            stats.closes.found_dead
        };
        assert_eq!(reason, 1, "{case}: {:?}", stats.closes);
    }
}

#[tokio::test]
async fn a_refused_request_with_a_small_body_of_known_size_is_sent_again() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(REFUSED_STREAM); 2]).await;
    let client = h2c();
    let req = http::Request::post(server.url("/"))
        .body(Full::new(Bytes::from_static(
            b"a body the client keeps a copy of",
        )))
        .unwrap();
    let response = within("the response", client.request(req)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!((client.retries(), server.streams()), (2, 3));
}

#[tokio::test]
async fn a_refused_request_with_a_body_past_64_kib_is_not_sent_again() {
    let server = RawH2::start(Greeting::Settings(&[]), [Act::Reset(REFUSED_STREAM)]).await;
    let client = h2c();
    let req = http::Request::post(server.url("/"))
        .body(Full::new(Bytes::from(vec![b'x'; 64 * 1024 + 1])))
        .unwrap();
    let err = within("the error", client.request(req)).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!((client.retries(), server.streams()), (0, 1));
}
