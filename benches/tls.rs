//! Fresh TLS connections versus warm reuse of pooled ones.
//!
//! Run with `cargo bench --bench tls`. The server is a rustls acceptor in
//! the same process (its half of each handshake runs on the same two
//! cores), with a certificate generated at start-up:
//!
//! * `tls/fresh_handshake`: allocate + discard, so every allocation is a
//!   TCP connect and a full TLS 1.3 handshake.
//! * `tls/warm_reuse`: allocate + drop of a pooled TLS connection.

mod common;

use std::sync::Arc;

use common::two_threads;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keepalive::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use keepalive::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use keepalive::{FromCache, Manager, Target};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A server certificate for 127.0.0.1 and a client config that trusts it.
fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn tls(c: &mut Criterion) {
    let rt = two_threads();
    let (server, client) = configs();
    let (manager, target) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = [0; 64];
                        while let Ok(1..) = tls.read(&mut buf).await {}
                    }
                });
            }
        });
        let manager = Manager::builder().tls_config(client).build();
        (manager, Target::new("https", "127.0.0.1", port))
    });
    let mut group = c.benchmark_group("tls");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fresh_handshake", |b| {
        b.to_async(&rt).iter(|| async {
            let conn = manager.allocate(target.clone()).await.unwrap();
            debug_assert_eq!(conn.from_cache(), FromCache::Fresh);
            conn.discard();
        })
    });
    group.bench_function("warm_reuse", |b| {
        b.to_async(&rt).iter(|| async {
            drop(manager.allocate(target.clone()).await.unwrap());
        })
    });
    group.finish();
    assert_eq!(manager.stats().stale_discarded, 0);
}

criterion_group!(benches, tls);
criterion_main!(benches);
