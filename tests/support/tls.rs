//! A TLS echo server on loopback with certificates generated here, signed
//! by a throwaway CA, and the client configuration that trusts that CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keepalive::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use keepalive::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{within, Accepted, Cmd};

/// What the server's certificate is like.
#[derive(Clone, Copy, Debug)]
pub enum Cert {
    /// For localhost, 127.0.0.1 and ::1, valid now.
    Good,
    /// For the same names, but it expired in 2001.
    Expired,
    /// Valid now, for other.example only.
    WrongName,
    /// For the same names, valid from 2099 on.
    NotYetValid,
    /// The CA's own certificate, for the same names, presented as the
    /// server's.
    CaAsServer,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA and a server certificate of the given kind, signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki(kind: Cert) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keepalive test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    if let Cert::CaAsServer = kind {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        return Pki {
            ca: cert.der().clone(),
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        };
    }
    let names: Vec<String> = match kind {
        Cert::WrongName => vec!["other.example".into()],
        _ => vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
    };
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names).unwrap();
    if let Cert::Expired = kind {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    if let Cert::NotYetValid = kind {
        params.not_before = rcgen::date_time_ymd(2099, 1, 1);
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    }
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.der().clone(),
        chain: vec![cert.der().clone(), ca.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// A TLS echo server with a certificate of the given kind.
pub struct TlsServer {
    pub addr: SocketAddr,
    /// A client configuration that trusts this server's CA.
    pub client: Arc<ClientConfig>,
    /// The CA's certificate, DER-encoded.
    pub ca: CertificateDer<'static>,
    /// The server's own configuration, for another server (a proxy) with
    /// the same certificate.
    pub server: Arc<ServerConfig>,
    accepted: mpsc::UnboundedReceiver<Accepted>,
}

impl TlsServer {
    pub async fn start(kind: Cert) -> TlsServer {
        TlsServer::start_with(kind, provider()).await
    }

    /// With the server's side on `server_provider` (its key exchanges, say).
    pub async fn start_with(kind: Cert, server_provider: Arc<rustls::crypto::CryptoProvider>) -> TlsServer {
        let pki = pki(kind);
        let ca = pki.ca.clone();
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server = ServerConfig::builder_with_provider(server_provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain, pki.key)
            .unwrap();
        let server = Arc::new(server);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (accepted, cmd_rx, closed_tx) = Accepted::new(peer);
                    let _ = tx.send(accepted);
                    serve(tls, cmd_rx).await;
                    let _ = closed_tx.send(());
                });
            }
        });
        TlsServer {
            addr,
            client: Arc::new(client),
            ca,
            server,
            accepted,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next connection whose handshake completed.
    pub async fn accepted(&mut self) -> Accepted {
        within("a TLS handshake", self.accepted.recv())
            .await
            .expect("server alive")
    }
}

async fn serve(mut tls: tokio_rustls::server::TlsStream<TcpStream>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = tls.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err() { return },
            },
            cmd = cmds.recv() => match cmd {
                // A TLS close: close_notify, then FIN.
                Some(Cmd::HalfClose) => { let _ = tls.shutdown().await; }
                // The TCP connection closes under TLS: FIN, no close_notify.
                Some(Cmd::Reset) => {
                    let _ = socket2::SockRef::from(tls.get_ref().0).shutdown(std::net::Shutdown::Write);
                }
                Some(Cmd::Send(bytes)) => {
                    let sent = async { tls.write_all(bytes).await?; tls.flush().await }.await;
                    if sent.is_err() { return }
                }
                None => {}
            },
        }
    }
}

/// A listener that accepts TCP and never says a word of TLS.
pub async fn mute_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    (port, task)
}

/// Long enough for a loopback handshake, short enough for a test.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);
