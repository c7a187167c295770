//! Tunnels through proxies, pooled (issue #15): the `CONNECT` request
//! byte for byte, the tunnel reused and keyed by destination, proxy and
//! credentials, bytes after the reply head kept for the tunnel, a reply
//! head split across reads, an idle tunnel closed by the origin never
//! handed out, TLS inside TLS through an HTTPS proxy, and SOCKS5 with
//! every bound-address type. The proxies are the tests' own
//! (`support/proxy.rs`); real ones are in `tests/real_proxies.rs`,
//! hostile ones in `tests/proxy_hostile.rs`.

mod support;

use std::time::Duration;

use keepalive::{FromCache, Manager, Proxy, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::proxy::{ConnectOptions, ConnectProxy, Hostile, Socks5Options, Socks5Proxy, Step};
use support::{tcp_state, until, within, Server, Table, CLOSE_WAIT};

/// Writes `ping` and expects it echoed: the tunnel reaches the echo
/// server and nothing else is in the stream.
async fn echo(conn: &mut keepalive::Connection) {
    within("an echo through the tunnel", async {
        conn.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    })
    .await;
}

/// A manager whose resolver knows no name: any lookup of the target's
/// host by the pool would fail the request.
fn manager_resolving_nothing() -> (Manager, Table) {
    let table = Table::default();
    let manager = Manager::builder().resolver(table.clone()).build();
    (manager, table)
}

#[tokio::test]
async fn connect_is_sent_as_rfc_9110_says_and_the_tunnel_is_pooled() {
    let origin = Server::start("127.0.0.1").await;
    let proxy = ConnectProxy::start(ConnectOptions::default()).await;
    let (manager, table) = manager_resolving_nothing();
    let target = Target::new("tcp", "origin.test", origin.port()).via(Proxy::http("127.0.0.1", proxy.port()));
    for round in 0..3 {
        let mut conn = within("a tunnel", manager.allocate(target.clone()))
            .await
            .unwrap();
        let want = if round == 0 {
            FromCache::Fresh
        } else {
            FromCache::Immediate
        };
        assert_eq!(conn.from_cache(), want, "round {round}");
        assert_eq!(
            conn.peer_addr().unwrap(),
            proxy.addr,
            "the socket goes to the proxy"
        );
        echo(&mut conn).await;
    }
    let port = origin.port();
    assert_eq!(
        proxy.seen.requests(),
        [format!(
            "CONNECT origin.test:{port} HTTP/1.1\r\nHost: origin.test:{port}\r\n\r\n"
        )],
        "one CONNECT for three uses, with the port explicit"
    );
    assert_eq!(
        table.calls(),
        0,
        "the proxy resolves the destination, never the pool"
    );
    let stats = manager.stats_for(&target);
    assert_eq!((stats.connects, stats.reuses, stats.idle), (1, 2, 1));
}

#[tokio::test]
async fn credentials_go_in_proxy_authorization_and_ipv6_in_brackets() {
    let expected = "Basic YWxpY2U6czNjcmV0"; // alice:s3cret
    let proxy = ConnectProxy::start(ConnectOptions {
        require: Some(expected.to_owned()),
        ..ConnectOptions::default()
    })
    .await;
    let manager = Manager::new();
    // No origin on this port: the proxy answers 502 once it has judged
    // the credentials, which is enough to see the request.
    let target = Target::new("https", "::1", 9);
    let good = Proxy::http("127.0.0.1", proxy.port()).basic_auth("alice", "s3cret");
    let err = within("the proxy's answer", manager.allocate(target.clone().via(good)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.function(), err.proxy_status()),
        ("proxy", Some(502)),
        "{err}"
    );
    let bad = Proxy::http("127.0.0.1", proxy.port()).basic_auth("alice", "wrong");
    let err = within("the proxy's answer", manager.allocate(target.via(bad)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.function(), err.proxy_status()),
        ("proxy", Some(407)),
        "{err}"
    );
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            !text.contains("wrong") && !text.contains("YWxpY2U6d3Jvbmc"),
            "{text}"
        );
    }
    let requests = proxy.seen.requests();
    assert_eq!(
        requests[0],
        format!("CONNECT [::1]:9 HTTP/1.1\r\nHost: [::1]:9\r\nProxy-Authorization: {expected}\r\n\r\n")
    );
    assert_eq!(manager.stats().open, 0);
}

#[tokio::test]
async fn a_tunnel_is_never_handed_to_another_destination_proxy_or_credentials() {
    let (a, b) = (Server::start("127.0.0.1").await, Server::start("127.0.0.1").await);
    let (p, q) = (
        ConnectProxy::start(ConnectOptions::default()).await,
        ConnectProxy::start(ConnectOptions::default()).await,
    );
    let manager = Manager::new();
    let via_p = Proxy::http("127.0.0.1", p.port());
    let targets = [
        Target::new("tcp", "localhost", a.port()).via(via_p.clone()),
        Target::new("tcp", "localhost", b.port()).via(via_p.clone()),
        Target::new("tcp", "localhost", a.port()).via(Proxy::http("127.0.0.1", q.port())),
        Target::new("tcp", "localhost", a.port()).via(via_p.clone().basic_auth("u", "1")),
        Target::new("tcp", "localhost", a.port()).via(via_p.basic_auth("u", "2")),
        Target::new("tcp", "localhost", a.port()),
    ];
    for (i, target) in targets.iter().enumerate() {
        let mut conn = within("a connection", manager.allocate(target.clone()))
            .await
            .unwrap();
        assert_eq!(
            conn.from_cache(),
            FromCache::Fresh,
            "target {i} ({target}) got another key's tunnel"
        );
        echo(&mut conn).await;
    }
    assert_eq!(manager.stats().idle, targets.len());
    assert_eq!((p.seen.accepted(), q.seen.accepted()), (4, 1));
}

#[tokio::test]
async fn bytes_after_the_reply_head_belong_to_the_tunnel() {
    let origin = Server::start("127.0.0.1").await;
    let proxy = ConnectProxy::start(ConnectOptions {
        early: b"HELLO",
        ..ConnectOptions::default()
    })
    .await;
    let manager = Manager::new();
    let target = Target::new("tcp", "localhost", origin.port()).via(Proxy::http("127.0.0.1", proxy.port()));
    let mut conn = within("a tunnel", manager.allocate(target)).await.unwrap();
    let mut hello = [0u8; 5];
    within("the early bytes", conn.read_exact(&mut hello))
        .await
        .unwrap();
    assert_eq!(&hello, b"HELLO");
    echo(&mut conn).await;
}

#[tokio::test]
async fn a_reply_head_split_across_reads_opens_the_tunnel() {
    // Each part is read by the client before the next is sent.
    let parts: [&[u8]; 4] = [
        b"HTTP/1.1 200 Conn",
        b"ection established\r\nVia: t\r\n",
        b"\r",
        b"\nTAIL",
    ];
    let mut script = vec![Step::ReadHead];
    for part in parts {
        script.extend([Step::Send(part.to_vec()), Step::Drained]);
    }
    script.push(Step::Silence);
    let proxy = Hostile::start(script).await;
    let manager = Manager::new();
    let target = Target::new("tcp", "localhost", 9).via(Proxy::http("127.0.0.1", proxy.port()));
    let mut conn = within("a tunnel", manager.allocate(target)).await.unwrap();
    let mut tail = [0u8; 4];
    within("the tunnel's first bytes", conn.read_exact(&mut tail))
        .await
        .unwrap();
    assert_eq!(&tail, b"TAIL");
}

#[tokio::test]
async fn an_idle_tunnel_whose_origin_closed_is_never_handed_out() {
    let mut origin = Server::start("127.0.0.1").await;
    let proxy = ConnectProxy::start(ConnectOptions::default()).await;
    let manager = Manager::new();
    let target = Target::new("tcp", "localhost", origin.port()).via(Proxy::http("127.0.0.1", proxy.port()));
    let mut conn = within("a tunnel", manager.allocate(target.clone()))
        .await
        .unwrap();
    echo(&mut conn).await;
    let local = conn.local_addr().unwrap().port();
    drop(conn);
    // The origin's FIN crosses the proxy and reaches the pooled socket.
    origin.accepted().await.send(support::Cmd::HalfClose);
    until("the FIN through the tunnel", || {
        tcp_state(local, proxy.port()).as_deref() == Some(CLOSE_WAIT) || manager.stats().idle == 0
    })
    .await;
    let mut conn = within("a fresh tunnel", manager.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    echo(&mut conn).await;
    let stats = manager.stats_for(&target);
    assert_eq!(stats.connects, 2);
    assert_eq!(
        stats.closes.closed_by_peer + stats.closes.found_dead,
        1,
        "{stats:?}"
    );
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn https_through_an_https_proxy_is_tls_inside_tls_and_pooled() {
    use support::tls::{Cert, TlsServer};
    let mut origin = TlsServer::start(Cert::Good).await;
    let proxy = ConnectProxy::start(ConnectOptions {
        tls: Some(origin.server.clone()),
        ..ConnectOptions::default()
    })
    .await;
    let manager = Manager::builder().tls_config(origin.client.clone()).build();
    let target =
        Target::new("https", "localhost", origin.port()).via(Proxy::https("127.0.0.1", proxy.port()));
    for _ in 0..3 {
        let mut conn = within("a tunnel", manager.allocate(target.clone()))
            .await
            .unwrap();
        echo(&mut conn).await;
    }
    assert_eq!(proxy.seen.accepted(), 1, "three uses of one tunnel");
    assert_eq!(manager.stats_for(&target).reuses, 2);
    // A close_notify from the origin, inside the tunnel's TLS: the idle
    // watch (or the checkout check) must see it through both layers.
    origin.accepted().await.send(support::Cmd::HalfClose);
    until("the inner close to be noticed", || manager.stats().idle == 0).await;
    let mut conn = within("a fresh tunnel", manager.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    echo(&mut conn).await;
    assert_eq!(proxy.seen.accepted(), 2);

    // Plain http through the same HTTPS proxy: TLS to the proxy only.
    let plain = Server::start("127.0.0.1").await;
    let target = Target::new("http", "localhost", plain.port()).via(Proxy::https("localhost", proxy.port()));
    let mut conn = within("a tunnel", manager.allocate(target)).await.unwrap();
    echo(&mut conn).await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn an_https_proxy_with_an_untrusted_certificate_is_a_proxy_error() {
    use support::tls::{Cert, TlsServer};
    let origin = TlsServer::start(Cert::Good).await;
    let proxy = ConnectProxy::start(ConnectOptions {
        tls: Some(origin.server.clone()),
        ..ConnectOptions::default()
    })
    .await;
    // The default roots do not trust the test CA.
    let manager = Manager::new();
    let target =
        Target::new("https", "localhost", origin.port()).via(Proxy::https("127.0.0.1", proxy.port()));
    let err = within("the TLS failure", manager.allocate(target))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "proxy", "{err}");
    assert!(err.to_string().contains("TLS to the proxy"), "{err}");
    assert_eq!(manager.stats().open, 0);
}

#[tokio::test]
async fn socks5_consumes_every_bound_address_type_exactly() {
    let origin = Server::start("127.0.0.1").await;
    for atyp in [1, 3, 4] {
        let proxy = Socks5Proxy::start(Socks5Options {
            require: None,
            bound_atyp: atyp,
        })
        .await;
        let (manager, table) = manager_resolving_nothing();
        let target =
            Target::new("tcp", "origin.test", origin.port()).via(Proxy::socks5("127.0.0.1", proxy.port()));
        for _ in 0..2 {
            let mut conn = within("a SOCKS5 tunnel", manager.allocate(target.clone()))
                .await
                .unwrap();
            echo(&mut conn).await;
        }
        assert_eq!(
            proxy.seen.accepted(),
            1,
            "BND.ADDR type {atyp}: the tunnel is pooled"
        );
        let mut want = vec![5, 1, 0, 3, 11];
        want.extend_from_slice(b"origin.test");
        want.extend_from_slice(&origin.port().to_be_bytes());
        assert_eq!(
            proxy.seen.requests(),
            [String::from_utf8_lossy(&want)],
            "a name as ATYP 3"
        );
        assert_eq!(table.calls(), 0);
    }
}

#[tokio::test]
async fn socks5_with_a_password_and_socks5_resolving_locally() {
    let origin = Server::start("127.0.0.1").await;
    let proxy = Socks5Proxy::start(Socks5Options {
        require: Some(("bob", "hunter2")),
        bound_atyp: 1,
    })
    .await;
    let table = Table::default();
    table.set("origin.test", &["127.0.0.1:1".parse().unwrap()]);
    let manager = Manager::builder().resolver(table.clone()).build();
    let local: Proxy = format!("socks5://bob:hunter2@127.0.0.1:{}", proxy.port())
        .parse()
        .unwrap();
    let target = Target::new("tcp", "origin.test", origin.port()).via(local);
    let mut conn = within("a SOCKS5 tunnel", manager.allocate(target)).await.unwrap();
    echo(&mut conn).await;
    let mut want = vec![5, 1, 0, 1, 127, 0, 0, 1];
    want.extend_from_slice(&origin.port().to_be_bytes());
    assert_eq!(
        proxy.seen.requests(),
        [String::from_utf8_lossy(&want)],
        "an address as ATYP 1"
    );
    assert_eq!(table.calls(), 1, "socks5:// resolves the destination in the pool");

    let wrong = Proxy::socks5("127.0.0.1", proxy.port()).basic_auth("bob", "nope");
    let err = within(
        "the refusal",
        manager.allocate(Target::new("tcp", "localhost", origin.port()).via(wrong)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "proxy");
    assert!(
        err.to_string().contains("refused the user name and password"),
        "{err}"
    );
    let none = Proxy::socks5("127.0.0.1", proxy.port());
    let err = within(
        "the refusal",
        manager.allocate(Target::new("tcp", "localhost", origin.port()).via(none)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("requires authentication"), "{err}");
    assert_eq!(manager.stats().open, 1, "only the good tunnel, idle");
}

#[test]
fn a_unix_target_cannot_go_through_a_proxy() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let target = Target::unix("/run/x.sock").via(Proxy::http("127.0.0.1", 3128));
        let err = Manager::new().allocate(target).await.unwrap_err();
        assert!(err.is_invalid_target(), "{err}");
    });
}

#[tokio::test]
async fn a_tunnel_counts_as_one_socket_is_connecting_while_set_up_and_is_aborted_on_cancel() {
    let origin = Server::start("127.0.0.1").await;
    let good = ConnectProxy::start(ConnectOptions::default()).await;
    let manager = Manager::builder().max_per_host(1).build();
    let target = Target::new("tcp", "localhost", origin.port()).via(Proxy::http("127.0.0.1", good.port()));
    let held = within("a tunnel", manager.allocate(target.clone()))
        .await
        .unwrap();
    let waiting = manager.allocate(target.clone());
    let stats = manager.stats_for(&target);
    assert_eq!(
        (stats.open, stats.in_use, stats.queued),
        (1, 1, 1),
        "one tunnel is one socket: {stats:?}"
    );
    drop(held);
    let conn = within("the returned tunnel", waiting).await.unwrap();
    assert_eq!(conn.from_cache(), FromCache::Deferred);
    drop(conn);

    // A proxy that reads the request and says nothing: the request is
    // connecting until cancelled, and cancelling closes the socket.
    let silent = Hostile::start(vec![Step::ReadHead, Step::Silence]).await;
    let target = Target::new("tcp", "localhost", origin.port()).via(Proxy::http("127.0.0.1", silent.port()));
    let pending = manager.allocate(target.clone());
    until("the CONNECT to reach the proxy", || {
        silent.seen.requests().len() == 1
    })
    .await;
    let stats = manager.stats_for(&target);
    assert_eq!((stats.open, stats.connecting), (1, 1), "{stats:?}");
    assert!(manager.deallocate(pending.id()));
    let err = within("the cancelled request", pending).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    until("the tunnel's socket to close", || {
        manager.stats_for(&target).open == 0
    })
    .await;
    assert_eq!(manager.stats().connecting, 0);
}

#[tokio::test]
async fn the_pool_learns_an_origins_idle_limit_through_the_tunnel() {
    let mut origin = Server::start("127.0.0.1").await;
    let proxy = ConnectProxy::start(ConnectOptions::default()).await;
    let manager = Manager::new();
    let target = Target::new("tcp", "localhost", origin.port()).via(Proxy::http("127.0.0.1", proxy.port()));
    let mut conn = within("a tunnel", manager.allocate(target.clone()))
        .await
        .unwrap();
    echo(&mut conn).await;
    drop(conn);
    assert_eq!(manager.stats_for(&target).server_idle_timeout, None);
    // An idle gap the pool can learn from (closes within 50 ms of the
    // return teach nothing): the gap is the stimulus, not a wait.
    let accepted = origin.accepted().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The origin closes the idle connection: the FIN comes through the
    // proxy, and the pool takes it as the server's idle limit.
    accepted.send(support::Cmd::HalfClose);
    until("the idle close to be learned", || {
        manager.stats_for(&target).server_idle_timeout.is_some()
    })
    .await;
    let stats = manager.stats_for(&target);
    assert_eq!((stats.idle, stats.closes.closed_by_peer), (0, 1), "{stats:?}");
    let learned = stats.server_idle_timeout.unwrap();
    assert!(
        learned >= Duration::from_millis(300) && learned < Duration::from_secs(5),
        "{learned:?}"
    );
}
