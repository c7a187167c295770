//! rustls glue (feature `tls`): the default client configuration, the
//! handshake, and rustls errors as [`Error::Tls`].

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::{CertificateDer, ServerName};
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
    CONFIG.get_or_init(|| config_with(mozilla_roots())).clone()
}

/// The default configuration trusting `extra` roots as well as Mozilla's,
/// for `Builder::add_root_certificate`.
///
/// # Errors
///
/// The words for a root that does not parse, naming it by its place.
pub(crate) fn with_extra_roots(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = mozilla_roots();
    for (i, der) in extra.iter().enumerate() {
        roots.add(der.clone()).map_err(|e| {
            format!(
                "root certificate {} given to add_root_certificate does not parse ({e})",
                i + 1
            )
        })?;
    }
    Ok(config_with(roots))
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The provider the pool names (never rustls's process default, so a
/// program that links another provider as well does not panic): aws-lc-rs
/// with feature `tls` (the default), which offers the post-quantum hybrid
/// X25519MLKEM768 first; ring with feature `ring` alone.
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "tls")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "tls"))]
    rustls::crypto::ring::default_provider()
}

/// The pool's client configuration over `roots`: [`provider`], safe
/// protocol versions, no client certificate.
fn config_with(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A copy of `base` that offers `alpn` (protocols, most preferred first).
pub(crate) fn offering(base: &ClientConfig, alpn: Vec<Vec<u8>>) -> Arc<ClientConfig> {
    let mut config = base.clone();
    config.alpn_protocols = alpn;
    Arc::new(config)
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
        .map_err(|(reason, cause)| failure(target, &reason, cause))
}

/// The handshake with `host` (an IP literal when `literal` is set): the
/// reason and cause on failure.
pub(crate) async fn to_server<IO>(
    config: Arc<ClientConfig>,
    host: &str,
    literal: Option<IpAddr>,
    io: IO,
) -> Result<TlsStream<IO>, (String, io::Error)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = match literal {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(host.to_owned()).map_err(|e| {
            (
                "bad server name".to_owned(),
                io::Error::new(io::ErrorKind::InvalidInput, e),
            )
        })?,
    };
    TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| (in_plain_words(&e, host), e))
}

/// What a failed handshake with `host` means, in plain words: the
/// certificate's problem when it has one (rustls's own words stay in the
/// error's source).
fn in_plain_words(cause: &io::Error, host: &str) -> String {
    use rustls::CertificateError as Cert;
    let certificate = cause
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(c) => Some(c),
            _ => None,
        });
    let Some(certificate) = certificate else {
        return "the handshake failed".to_owned();
    };
    match certificate {
        Cert::UnknownIssuer => format!("the certificate for {host} is signed by an unknown authority"),
        Cert::ExpiredContext { not_after, .. } => {
            format!(
                "the certificate for {host} expired on {}",
                utc_date(not_after.as_secs())
            )
        }
        Cert::Expired => format!("the certificate for {host} has expired"),
        Cert::NotValidYetContext { not_before, .. } => {
            format!(
                "the certificate for {host} is not valid until {}",
                utc_date(not_before.as_secs())
            )
        }
        Cert::NotValidYet => format!("the certificate for {host} is not valid yet"),
        Cert::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
            format!("the certificate is for {}, not for {host}", names.join(", "))
        }
        Cert::NotValidForName => format!("the certificate is not for {host}"),
        // webpki's CaUsedAsEndEntity, which rustls passes on as "other".
        Cert::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            format!("the server for {host} presented a CA certificate as its own")
        }
        _ => format!("the certificate for {host} was refused"),
    }
}

/// A name as rustls presents it (`DnsName("a.example")`,
/// `IpAddress(127.0.0.1)`), without the wrapping.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

/// `YYYY-MM-DD` (UTC) of a Unix time in seconds: Howard Hinnant's
/// days-to-civil algorithm, so that no calendar crate is needed for one
/// date in a message.
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
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

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_the_calendars() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(978_307_200), "2001-01-01");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29");
        assert_eq!(super::utc_date(4_102_444_800), "2100-01-01");
    }
}
