//! The `tracing` feature (issue #11): the pool's decisions arrive as
//! events with their fields, caught by a collecting subscriber.
#![cfg(feature = "tracing")]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepalive::{Manager, Target};
use support::{until, Server};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One event: its message and fields, as text.
type Event = BTreeMap<String, String>;

/// A layer that keeps every `keepalive` event.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

struct Fields<'a>(&'a mut Event);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "keepalive" {
            let mut fields = Event::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

impl Collect {
    fn find(&self, message: &str) -> Vec<Event> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| e.get("message").is_some_and(|m| m == message))
            .cloned()
            .collect()
    }
}

#[tokio::test]
async fn the_pools_decisions_are_events_with_their_fields() {
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = Server::start("127.0.0.1").await;
    let target = Target::new("tcp", "127.0.0.1", server.port());
    let other = Target::new("echo", "127.0.0.1", server.port());
    let manager = Manager::builder().max_open(1).max_queued(1).build();

    // Connect, reuse, then a server idle limit told by the user.
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let accepted = server.accepted().await;
    conn.set_server_idle_timeout(Duration::from_secs(3));
    drop(conn);
    let conn = manager.allocate(target.clone()).await.unwrap();
    drop(conn);
    // Eviction for another key, then a request that times out in the queue
    // and one refused because the queue is full.
    let held = manager.allocate(other.clone()).await.unwrap();
    server.accepted().await;
    let waiting = manager.allocate(other.clone()).timeout(Duration::from_millis(50));
    let refused = manager.allocate(other.clone()).await.unwrap_err();
    assert!(refused.is_queue_full());
    assert!(waiting.await.unwrap_err().is_timeout());
    drop(held);
    drop(accepted);

    let started = collect.find("connect started");
    assert_eq!(started.len(), 2, "{started:?}");
    assert_eq!(started[0]["target"], target.to_string());
    let finished = collect.find("connect finished");
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0]["ok"], "true");
    assert!(finished[0]["elapsed_us"].parse::<u64>().is_ok());
    let reuses = collect.find("reuse");
    assert_eq!(reuses.len(), 1);
    assert_eq!(reuses[0]["from"], "immediate");
    let learned = collect.find("server idle limit learned");
    assert_eq!(learned[0]["limit_ms"], "3000");
    assert_eq!(learned[0]["target"], target.to_string());
    until("the eviction's close event", || !collect.find("close").is_empty()).await;
    let closes = collect.find("close");
    assert_eq!(closes[0]["reason"], "evicted");
    assert!(closes[0]["target"].contains(&target.to_string()), "{closes:?}");
    let full = collect.find("queue full");
    assert_eq!(
        (full[0]["limit"].as_str(), full[0]["target"].clone()),
        ("1", other.to_string())
    );
    let timeouts = collect.find("timeout");
    assert_eq!(timeouts[0]["after_ms"], "50");
}

#[tokio::test]
async fn proxy_events_never_carry_the_credentials() {
    use keepalive::Proxy;
    use support::proxy::{ConnectOptions, ConnectProxy};
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start("127.0.0.1").await;
    // alice:s3cret
    let proxy = ConnectProxy::start(ConnectOptions {
        require: Some("Basic YWxpY2U6czNjcmV0".to_owned()),
        ..ConnectOptions::default()
    })
    .await;
    let manager = Manager::new();
    let via = |password: &str| {
        Target::new("tcp", "127.0.0.1", server.port())
            .via(Proxy::http("127.0.0.1", proxy.port()).basic_auth("alice", password))
    };
    manager.allocate(via("s3cret")).await.unwrap().discard();
    let err = manager.allocate(via("wr0ng")).await.unwrap_err();
    assert_eq!(err.proxy_status(), Some(407));

    let opened = collect.find("proxy tunnel opened");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["proxy"], "http");
    let failed = collect.find("proxy step failed");
    assert_eq!(failed[0]["status"], "407", "{failed:?}");
    let events = collect.0.lock().unwrap();
    assert!(events.len() >= 6, "{events:?}");
    for event in events.iter() {
        let text = format!("{event:?}");
        for secret in ["s3cret", "wr0ng", "YWxpY2U6czNjcmV0", "YWxpY2U6d3Iwbmc"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
