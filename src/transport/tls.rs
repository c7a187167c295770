//! rustls glue (feature `tls`): the default client configuration, the
//! handshake, and rustls errors as [`Error::Tls`].

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::Error;
use crate::target::Target;

/// The configuration used when the builder is given none: Mozilla's root
/// certificates (webpki-roots), safe default protocol versions, no client
/// certificate. Built once per process.
pub(crate) fn default_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// The TLS client handshake over a connected stream (a socket, or a
/// tunnel through a proxy). The server name is the target's host; an IP
/// literal is verified against the certificate's IP addresses.
///
/// # Errors
///
/// `Error::Tls`, naming the reason: an untrusted issuer, an expired
/// certificate, a name mismatch, a protocol error, or the connection
/// closing during the handshake.
pub(crate) async fn handshake<IO>(
    config: Arc<ClientConfig>,
    target: &Target,
    io: IO,
) -> Result<TlsStream<IO>, Error>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    to_server(config, target.host(), target.literal(), io)
        .await
        .map_err(|(reason, cause)| failure(target, reason, cause))
}

/// The handshake with `host` (an IP literal when `literal` is set): the
/// reason and cause on failure.
pub(crate) async fn to_server<IO>(
    config: Arc<ClientConfig>,
    host: &str,
    literal: Option<IpAddr>,
    io: IO,
) -> Result<TlsStream<IO>, (&'static str, io::Error)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = match literal {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(host.to_owned())
            .map_err(|e| ("bad server name", io::Error::new(io::ErrorKind::InvalidInput, e)))?,
    };
    TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| ("handshake", e))
}

/// `Error::Tls` keeping `cause` (for a handshake, tokio-rustls's
/// `io::Error` around the `rustls::Error`) as its source.
fn failure(target: &Target, reason: &str, cause: io::Error) -> Error {
    Error::Tls {
        target: target.to_string(),
        reason: reason.to_owned(),
        source: Some(Arc::new(cause)),
    }
}
