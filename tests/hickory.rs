//! `HickoryResolver` against a tiny DNS responder on loopback (feature
//! `hickory`): answers from the chosen name server, cached for the
//! record's TTL and no longer.
#![cfg(feature = "hickory")]

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepalive::hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use keepalive::hickory_resolver::proto::rr::{rdata::A, RData, Record, RecordType};
use keepalive::{HickoryResolver, Manager, Target};
use support::{within, Server};
use tokio::net::UdpSocket;

/// The TTL of every answer, in seconds.
const TTL: u32 = 1;

/// Answers A queries for `*.example` with 127.0.0.1, `nx.example` with
/// NXDOMAIN, anything else with no records; counts A queries by name.
async fn responder() -> (SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let seen = counts.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let name = q.name().to_ascii().trim_end_matches('.').to_owned();
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            answer.add_query(q.clone());
            if name == "nx.example" {
                answer.metadata.response_code = ResponseCode::NXDomain;
            } else if q.query_type() == RecordType::A && name.ends_with(".example") {
                *seen.lock().unwrap().entry(name).or_insert(0) += 1;
                let a = RData::A(A(Ipv4Addr::LOCALHOST));
                answer.add_answer(Record::from_rdata(q.name().clone(), TTL, a));
            }
            let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
        }
    });
    (addr, counts)
}

#[tokio::test]
async fn answers_come_from_the_chosen_server_and_honour_the_ttl() {
    let server = Server::start("127.0.0.1").await;
    let (dns, counts) = responder().await;
    let manager = Manager::builder()
        .resolver(HickoryResolver::with_name_server(dns).unwrap())
        .build();
    let target = Target::new("http", "ttl.example", server.port());
    for _ in 0..3 {
        // Discarded, so each allocation connects, and looks the name up.
        let conn = within("a connection", manager.allocate(target.clone()))
            .await
            .unwrap();
        assert_eq!(conn.peer_addr().unwrap(), server.addr);
        conn.discard();
    }
    assert_eq!(manager.stats().dns_lookups, 3, "our pool asked three times");
    assert_eq!(
        counts.lock().unwrap()["ttl.example"],
        1,
        "the server was asked once: the TTL held"
    );

    tokio::time::sleep(Duration::from_millis(u64::from(TTL) * 1000 + 300)).await; // the TTL passing is the behaviour under test
    within("a connection", manager.allocate(target))
        .await
        .unwrap()
        .discard();
    assert_eq!(
        counts.lock().unwrap()["ttl.example"],
        2,
        "after the TTL the server is asked again"
    );
}

#[tokio::test]
async fn nxdomain_and_empty_answers_are_resolve_errors_naming_the_host() {
    let (dns, _) = responder().await;
    let manager = Manager::builder()
        .resolver(HickoryResolver::with_name_server(dns).unwrap())
        .build();
    let err = within(
        "nxdomain",
        manager.allocate(Target::new("http", "nx.example", 80)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "resolve", "{err}");
    assert!(err.to_string().contains("nx.example"), "{err}");
    let err = within(
        "no records",
        manager.allocate(Target::new("http", "nothing.test", 80)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "resolve", "{err}");
    assert_eq!(err.to_string(), "nothing.test has no address");
}
