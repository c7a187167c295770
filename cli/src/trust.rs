//! Which servers' certificates the command trusts, as curl and OpenSSL
//! decide it: `--cacert FILE`, else the `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! environment variables, else the pool's own (Mozilla's roots);
//! `--insecure` trusts any certificate, with a warning on every run.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use keepalive::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use keepalive::rustls::crypto::{self, CryptoProvider};
use keepalive::rustls::pki_types::pem::PemObject;
use keepalive::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use keepalive::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The TLS configuration for the pool, or `None` for the pool's default.
/// `env` reads an environment variable.
///
/// # Errors
///
/// A file or directory that cannot be read, or that holds no certificate.
pub(crate) fn config(
    cacert: Option<&Path>,
    insecure: bool,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<Arc<ClientConfig>>, String> {
    let provider = Arc::new(crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    if insecure {
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        return Ok(Some(Arc::new(config)));
    }
    let mut roots = RootCertStore::empty();
    match (cacert, env("SSL_CERT_FILE"), env("SSL_CERT_DIR")) {
        (Some(file), _, _) => add_file(&mut roots, file, "--cacert")?,
        (None, None, None) => return Ok(None),
        (None, file, dir) => {
            if let Some(file) = file {
                add_file(&mut roots, Path::new(&file), "SSL_CERT_FILE")?;
            }
            if let Some(dir) = dir {
                add_dir(&mut roots, Path::new(&dir))?;
            }
        }
    }
    Ok(Some(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    )))
}

/// Adds every PEM certificate of `file` to `roots`; `what` names where it
/// was given.
fn add_file(roots: &mut RootCertStore, file: &Path, what: &str) -> Result<(), String> {
    let pem = std::fs::read(file).map_err(|e| format!("{what} {}: {e}", file.display()))?;
    let added = add_pem(roots, &pem);
    if added == 0 {
        return Err(format!("{what} {}: no PEM certificate in it", file.display()));
    }
    Ok(())
}

/// Adds the certificates of every file in `dir` (OpenSSL's hashed links
/// and bundles alike); files with none are passed over.
fn add_dir(roots: &mut RootCertStore, dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("SSL_CERT_DIR {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        if let Ok(pem) = std::fs::read(entry.path()) {
            add_pem(roots, &pem);
        }
    }
    Ok(())
}

/// Adds the certificates in `pem`; returns how many it added.
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> usize {
    CertificateDer::pem_slice_iter(pem)
        .flatten()
        .filter(|cert| roots.add(cert.clone()).is_ok())
        .count()
}

/// `--insecure`: any certificate, for any name, is taken; the handshake's
/// signatures are still checked, so the connection is at least to the
/// holder of the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
