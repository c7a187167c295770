//! TLS for `https`: verified handshakes, pooling, liveness (issue #4).
#![cfg(feature = "tls")]

mod support;

use keepalive::{FromCache, Manager, Target};
use support::tls::{mute_listener, Cert, TlsServer, HANDSHAKE_TIMEOUT};
use support::{within, Cmd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn manager(server: &TlsServer) -> Manager {
    Manager::builder()
        .tls_config(server.client.clone())
        .keep_alive(std::time::Duration::from_secs(600))
        .build()
}

#[tokio::test]
async fn https_is_verified_pooled_and_reused_for_an_equal_target() {
    let mut server = TlsServer::start(Cert::Good).await;
    let manager = manager(&server);
    for host in ["127.0.0.1", "localhost"] {
        let target = Target::new("https", host, server.port());
        let mut conn = within("a TLS connection", manager.allocate(target.clone()))
            .await
            .unwrap();
        assert_eq!(conn.from_cache(), FromCache::Fresh);
        let port = conn.local_addr().unwrap().port();
        conn.write_all(b"ping").await.unwrap();
        let mut echo = [0; 4];
        conn.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        drop(conn);
        server.accepted().await;
        // Session tickets the server sent after the handshake are not
        // "unread data": the socket is pooled and handed out again.
        let again = manager.allocate(target).await.unwrap();
        assert_eq!(again.from_cache(), FromCache::Immediate, "{host}");
        assert_eq!(again.local_addr().unwrap().port(), port);
    }
    // Plain TCP to the same port is another key.
    let plain = manager
        .allocate(Target::new("http", "127.0.0.1", server.port()))
        .await
        .unwrap();
    assert_eq!(plain.from_cache(), FromCache::Fresh);
    assert_eq!(manager.stats().connects, 3);
}

/// The `rustls::Error` an `Error::Tls` keeps as its source.
fn rustls_cause(err: &keepalive::Error) -> &keepalive::rustls::Error {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<keepalive::rustls::Error>())
        .unwrap_or_else(|| panic!("no rustls::Error source: {err:?}"))
}

#[tokio::test]
async fn an_untrusted_issuer_fails_with_function_tls() {
    let server = TlsServer::start(Cert::Good).await;
    let manager = Manager::new(); // Mozilla's roots do not include the test CA.
    let err = within(
        "the failure",
        manager.allocate(Target::new("https", "127.0.0.1", server.port())),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "tls");
    assert!(
        rustls_cause(&err).to_string().contains("UnknownIssuer"),
        "{err:?}"
    );
    assert_eq!(manager.stats().open, 0);
}

#[tokio::test]
async fn an_expired_certificate_fails_with_function_tls() {
    let server = TlsServer::start(Cert::Expired).await;
    let manager = manager(&server);
    let err = manager
        .allocate(Target::new("https", "127.0.0.1", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "tls");
    assert!(
        rustls_cause(&err).to_string().to_lowercase().contains("expired"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_wrong_name_fails_with_function_tls() {
    let server = TlsServer::start(Cert::WrongName).await;
    let manager = manager(&server);
    let err = manager
        .allocate(Target::new("https", "127.0.0.1", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "tls");
    assert!(
        rustls_cause(&err).to_string().contains("not valid for name"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_tls_times_out_while_connecting() {
    let (port, _listener) = mute_listener().await;
    let manager = Manager::builder().timeout(HANDSHAKE_TIMEOUT).build();
    let allocation = manager.allocate(Target::new("https", "127.0.0.1", port));
    assert_eq!(manager.stats().connecting, 1);
    let err = within("the timeout", allocation).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let s = manager.stats();
    assert_eq!((s.open, s.connecting, s.connects), (0, 0, 0));
}

#[tokio::test]
async fn an_idle_tls_socket_is_discarded_on_close_notify_or_a_bare_fin() {
    let mut server = TlsServer::start(Cert::Good).await;
    let manager = manager(&server);
    let target = Target::new("https", "127.0.0.1", server.port());
    for (round, cmd) in [Cmd::HalfClose, Cmd::Reset].into_iter().enumerate() {
        drop(manager.allocate(target.clone()).await.unwrap());
        let mut side = server.accepted().await;
        side.send(cmd);
        side.client_closed().await;
        support::until("the pool to drop it", || manager.stats().open == 0).await;
        assert_eq!(manager.stats().stale_discarded, round as u64 + 1);
        let conn = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Fresh);
        conn.discard();
        server.accepted().await.client_closed().await;
    }
}

#[tokio::test]
async fn a_tls_connection_dropped_with_unread_plaintext_is_closed() {
    let mut server = TlsServer::start(Cert::Good).await;
    let manager = manager(&server);
    let target = Target::new("https", "127.0.0.1", server.port());
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let mut side = server.accepted().await;
    conn.write_all(b"ping").await.unwrap();
    let mut half = [0; 2];
    conn.read_exact(&mut half).await.unwrap(); // the record's other two bytes wait in rustls
    drop(conn);
    side.client_closed().await;
    let s = manager.stats();
    assert_eq!((s.open, s.idle, s.stale_discarded), (0, 0, 1));
}

#[tokio::test]
async fn session_tickets_do_not_make_an_unused_connection_stale() {
    let mut server = TlsServer::start(Cert::Good).await;
    let manager = manager(&server);
    let target = Target::new("https", "127.0.0.1", server.port());
    let conn = manager.allocate(target.clone()).await.unwrap();
    let port = conn.local_addr().unwrap().port();
    drop(conn); // no I/O: the server's TLS 1.3 tickets are still unread
    let _side = server.accepted().await;
    // The tickets reach the idle socket and wake the watch; it must keep it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
    while tokio::time::Instant::now() < deadline && manager.stats().idle == 1 {
        tokio::task::yield_now().await;
    }
    let again = manager.allocate(target).await.unwrap();
    assert_eq!(again.from_cache(), FromCache::Immediate);
    assert_eq!(again.local_addr().unwrap().port(), port);
    assert_eq!(manager.stats().stale_discarded, 0);
}

#[tokio::test]
async fn certificate_failures_are_said_in_plain_words() {
    let port = |server: &TlsServer| server.port();
    let cases = [
        (
            Cert::Good,
            false,
            "the certificate for 127.0.0.1 is signed by an unknown authority".to_owned(),
        ),
        (
            Cert::Expired,
            true,
            "the certificate for 127.0.0.1 expired on 2001-01-01".to_owned(),
        ),
        (
            Cert::NotYetValid,
            true,
            "the certificate for 127.0.0.1 is not valid until 2099-01-01".to_owned(),
        ),
        (
            Cert::WrongName,
            true,
            "the certificate is for other.example, not for 127.0.0.1".to_owned(),
        ),
        (
            Cert::CaAsServer,
            true,
            "the server for 127.0.0.1 presented a CA certificate as its own".to_owned(),
        ),
    ];
    for (kind, trusted, words) in cases {
        let server = TlsServer::start(kind).await;
        let manager = if trusted { manager(&server) } else { Manager::new() };
        let target = Target::new("https", "127.0.0.1", port(&server));
        let err = within("the failure", manager.allocate(target.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.function(), "tls");
        assert_eq!(err.to_string(), format!("tls for {target} failed: {words}"));
        // rustls's own error stays the source, for those who want it.
        let _ = rustls_cause(&err);
    }
}

#[tokio::test]
async fn an_added_root_is_trusted_beside_the_default_ones() {
    let server = TlsServer::start(Cert::Good).await;
    let target = Target::new("https", "127.0.0.1", server.port());
    let manager = Manager::builder().add_root_certificate(server.ca.clone()).build();
    let conn = within("a TLS connection", manager.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    drop(conn);
    // A root that does not parse: no panic, and every https request
    // fails saying which root.
    let bad = keepalive::rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
    let manager = Manager::builder().add_root_certificate(bad).build();
    let err = within("the failure", manager.allocate(target)).await.unwrap_err();
    assert_eq!(err.function(), "tls");
    assert!(
        err.to_string()
            .contains("root certificate 1 given to add_root_certificate does not parse"),
        "{err}"
    );
    assert_eq!(manager.stats().open, 0);
}

/// A TLS server with `server`'s certificate whose ALPN list is `alpn`; it
/// holds each connection it accepts until the test ends.
async fn alpn_server(server: &TlsServer, alpn: &[&[u8]]) -> u16 {
    let mut config = (*server.server).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.extend(acceptor.accept(tcp).await.ok());
        }
    });
    port
}

#[tokio::test]
async fn alpn_offers_the_builders_protocols_and_the_stream_says_the_servers_choice() {
    let server = TlsServer::start(Cert::Good).await;
    let mut own = (*server.client).clone();
    own.alpn_protocols = vec![b"http/1.1".to_vec()];
    let own = std::sync::Arc::new(own);
    type Case<'a> = (
        &'a [&'a [u8]],
        &'a std::sync::Arc<keepalive::rustls::ClientConfig>,
        Option<&'a [u8]>,
    );
    let cases: [Case; 4] = [
        (&[b"h2"], &server.client, Some(b"h2")),
        (&[], &server.client, None),
        // The server chooses, by its own order.
        (&[b"http/1.1", b"h2"], &server.client, Some(b"http/1.1")),
        // A configuration that names protocols itself keeps them.
        (&[b"h2", b"http/1.1"], &own, Some(b"http/1.1")),
    ];
    for (offered, client, chosen) in cases {
        let port = alpn_server(&server, offered).await;
        let manager = Manager::builder()
            .tls_config(client.clone())
            .alpn_protocols(["h2", "http/1.1"])
            .build();
        let conn = within(
            "a TLS connection",
            manager.allocate(Target::new("https", "localhost", port)),
        )
        .await
        .unwrap();
        assert_eq!(conn.alpn_protocol(), chosen, "server offers {offered:?}");
    }
}

#[tokio::test]
async fn the_default_provider_offers_x25519mlkem768_first_and_installs_no_process_default() {
    use keepalive::rustls::crypto::{aws_lc_rs, CryptoProvider};
    // A server that accepts the post-quantum hybrid and nothing else.
    let pq_only = CryptoProvider {
        kx_groups: vec![aws_lc_rs::kx_group::X25519MLKEM768],
        ..aws_lc_rs::default_provider()
    };
    let server = TlsServer::start_with(Cert::Good, std::sync::Arc::new(pq_only)).await;
    let target = Target::new("https", "127.0.0.1", server.port());
    // The default configuration, trusting the test's CA as well.
    let manager = Manager::builder().add_root_certificate(server.ca.clone()).build();
    let conn = within("a post-quantum handshake", manager.allocate(target.clone()))
        .await
        .unwrap();
    drop(conn);
    // ring (linked into this test too) has no such group: the server
    // really refuses the classical exchanges.
    let classical = Manager::builder().tls_config(server.client.clone()).build();
    let err = within("the refusal", classical.allocate(target))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "tls", "{err}");
    // Both providers are in this binary, and keepalive named its own
    // rather than installing rustls's process default.
    assert!(CryptoProvider::get_default().is_none());
}
