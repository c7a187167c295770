#![cfg(feature = "tls")]
//! keepalive-hyper over `https`: the pool's verified rustls, one handshake
//! (TCP, TLS, hyper) per connection, and a connection the server closed
//! (close_notify and FIN) while idle is never sent a request.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keepalive::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use keepalive::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

mod support;

const DEADLINE: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A throwaway CA, a certificate for `localhost` signed by it, and the
/// client configuration that trusts the CA.
fn pki() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keepalive-hyper test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), ca.der().clone()];
    let key: PrivateKeyDer<'static> = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// An https origin answering `tls` to every request; `close` makes it
/// close every open connection (close_notify, then FIN), each reported on
/// the returned channel.
async fn origin(close: Arc<Notify>) -> (u16, Arc<ClientConfig>, mpsc::UnboundedReceiver<()>) {
    let (server, client) = pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, close, closed_tx) = (acceptor.clone(), close.clone(), closed_tx.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0; 4096];
                loop {
                    tokio::select! {
                        read = tls.read(&mut chunk) => match read {
                            Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        },
                        () = close.notified() => {
                            let _ = tls.shutdown().await;
                            drop(tls);
                            let _ = closed_tx.send(());
                            return;
                        }
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntls";
                        if tls.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, client, closed)
}

#[tokio::test]
async fn https_requests_share_one_verified_connection_and_a_closed_one_is_never_used() {
    let close = Arc::new(Notify::new());
    let (port, tls, mut closed) = origin(close.clone()).await;
    let client =
        keepalive_hyper::Client::<Empty<Bytes>>::with_builder(keepalive::Manager::builder().tls_config(tls));
    let url = format!("https://localhost:{port}/");
    let get = || http::Request::get(&url).body(Empty::new()).unwrap();
    for _ in 0..3 {
        let response = within("a response", client.request(get())).await.unwrap();
        let body = within("the body", response.into_body().collect()).await.unwrap();
        assert_eq!(&body.to_bytes()[..], b"tls");
    }
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reuses), (1, 2));

    // The server closes the idle connection; the next request takes a new
    // one instead of meeting the close.
    close.notify_waiters();
    within("the server's close", closed.recv()).await.unwrap();
    let response = within("a response", client.request(get())).await.unwrap();
    within("the body", response.into_body().collect()).await.unwrap();
    assert_eq!(client.stats().connects, 2);
    assert_eq!(
        client.retries(),
        0,
        "no request was sent into the closed connection"
    );

    // An untrusted name is refused by the pool's TLS, not sent.
    let wrong = http::Request::get(format!("https://127.0.0.1:{port}/"))
        .body(Empty::new())
        .unwrap();
    let err = within("the refusal", client.request(wrong)).await.unwrap_err();
    assert_eq!(err.pool().map(keepalive::Error::function), Some("tls"), "{err}");
}

/// An https origin whose TLS offers `alpn` and which speaks what ALPN
/// chose (HTTP/2 for `h2`, HTTP/1.1 otherwise), every response waiting at
/// `barrier` first; its port, the client configuration trusting it, and
/// the number of connections it accepted.
async fn alpn_origin(
    alpn: &[&[u8]],
    barrier: Option<Arc<tokio::sync::Barrier>>,
) -> (u16, Arc<ClientConfig>, Arc<AtomicUsize>) {
    let (server, client) = pki();
    let mut server = (*server).clone();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (acceptor, barrier) = (acceptor.clone(), barrier.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = service_fn(move |_: http::Request<Incoming>| {
                    let barrier = barrier.clone();
                    async move {
                        if let Some(barrier) = barrier {
                            barrier.wait().await;
                        }
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"alpn"))))
                    }
                });
                let io = TokioIo::new(tls);
                let _ = match h2 {
                    true => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                    false => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    }
                };
            });
        }
    });
    (port, client, accepted)
}

/// `n` GETs to `https://localhost:{port}/` at once; the versions used.
async fn burst(client: &keepalive_hyper::Client<Empty<Bytes>>, port: u16, n: usize) -> Vec<http::Version> {
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let req = http::Request::get(format!("https://localhost:{port}/"))
                .body(Empty::new())
                .unwrap();
            tokio::spawn(async move {
                let response = client.request(req).await.unwrap();
                let version = response.version();
                response.into_body().collect().await.unwrap();
                version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for request in requests {
        versions.push(within("a response", request).await.unwrap());
    }
    versions
}

fn negotiating(tls: Arc<ClientConfig>) -> keepalive_hyper::Client<Empty<Bytes>> {
    keepalive_hyper::Client::builder()
        .pool(keepalive::Manager::builder().tls_config(tls))
        .build()
}

#[tokio::test]
async fn alpn_chooses_http2_and_a_burst_to_a_new_key_dials_once() {
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let (port, tls, accepted) = alpn_origin(&[b"h2", b"http/1.1"], Some(barrier)).await;
    let client = negotiating(tls);
    let versions = burst(&client, port, 8).await;
    assert_eq!(versions, vec![http::Version::HTTP_2; 8]);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one dial, then all 8 at once on it"
    );
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reuses, stats.open), (1, 7, 1));
    // Remembered: the next burst needs no new connection either.
    burst(&client, port, 8).await;
    assert_eq!(client.stats().connects, 1);
}

#[tokio::test]
async fn a_server_choosing_http1_gets_it_and_the_waiting_burst_dials_on() {
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let (port, tls, accepted) = alpn_origin(&[b"http/1.1"], Some(barrier)).await;
    let client = negotiating(tls);
    let versions = burst(&client, port, 4).await;
    assert_eq!(versions, vec![http::Version::HTTP_11; 4]);
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    assert_eq!(client.stats().connects, 4);
}

#[tokio::test]
async fn http1_only_offers_http1_alone() {
    let (port, tls, _) = alpn_origin(&[b"h2", b"http/1.1"], None).await;
    let client = keepalive_hyper::Client::builder()
        .pool(keepalive::Manager::builder().tls_config(tls))
        .http1_only()
        .build();
    assert_eq!(burst(&client, port, 1).await, [http::Version::HTTP_11]);
}

#[tokio::test]
async fn prior_knowledge_over_tls_fails_where_the_server_does_not_agree_to_h2() {
    for (alpn, function) in [(&[&b"http/1.1"[..]][..], "tls"), (&[][..], "handshake")] {
        let (port, tls, _) = alpn_origin(alpn, None).await;
        let client: keepalive_hyper::Client<Empty<Bytes>> = keepalive_hyper::Client::builder()
            .pool(keepalive::Manager::builder().tls_config(tls))
            .http2_prior_knowledge()
            .build();
        let req = http::Request::get(format!("https://localhost:{port}/"))
            .body(Empty::new())
            .unwrap();
        let err = within("the error", client.request(req)).await.unwrap_err();
        assert_eq!(
            err.pool().map(keepalive::Error::function),
            Some(function),
            "{err}"
        );
        assert_eq!(client.stats().open, 0);
    }
}

#[tokio::test]
async fn alpn_inside_a_proxy_tunnel_chooses_http2_and_the_tunnel_is_pooled() {
    let (port, tls, accepted) = alpn_origin(&[b"h2", b"http/1.1"], None).await;
    let (proxy_port, tunnels) = support::connect_proxy().await;
    let target = keepalive::Target::new("https", "localhost", port)
        .via(keepalive::Proxy::http("127.0.0.1", proxy_port));
    let client = negotiating(tls);
    for _ in 0..3 {
        let req = http::Request::get("/").body(Empty::new()).unwrap();
        let response = within("a response", client.send(target.clone(), req))
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        within("the body", response.into_body().collect()).await.unwrap();
    }
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
