//! Real servers for keepalive-hyper's tests: the workspace's own process
//! helpers (tests/support/servers.rs and nginx.rs, shared by path), and
//! HTTP/2 configurations of nginx, Apache httpd (mod_http2) and Node.js's
//! `http2` module. `.ci/run` installs the servers; without one, a test
//! fails under `CI=true` and says so loudly elsewhere.

use std::path::Path;
use std::process::Command;

pub use super::DEADLINE;

#[path = "../../../tests/support/servers.rs"]
pub mod servers;

#[path = "../../../tests/support/nginx.rs"]
pub mod nginx;

use servers::{binary, workdir, Process};

/// Fails under `CI=true`; elsewhere says loudly that the test is skipped.
pub fn skip_or_fail(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required in CI: {why}");
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: {what} is not available ({why}); `bash .ci/run` installs it !!!!!!!!\n"
    );
}

/// A certificate for 127.0.0.1 signed by a throwaway CA, written to
/// `dir` as cert.pem and key.pem; the client configuration trusting the CA.
pub fn certificate(dir: &Path) -> std::sync::Arc<keepalive::rustls::ClientConfig> {
    use keepalive::rustls::{self, ClientConfig, RootCertStore};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem() + &ca.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// nginx serving HTTP/2 over TLS (`listen ... ssl http2`) with `streams`
/// streams a connection and `keepalive_timeout idle_secs`; its access log
/// has one line per request with its connection's number.
#[allow(clippy::type_complexity)]
pub fn nginx_h2(
    streams: u32,
    idle_secs: u64,
) -> Result<(nginx::Nginx, u16, std::sync::Arc<keepalive::rustls::ClientConfig>), String> {
    let port = nginx::free_port();
    let dir = std::env::temp_dir().join(format!("keepalive-nginx-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tls = certificate(&dir);
    let files = [
        (
            "cert.pem",
            std::fs::read_to_string(dir.join("cert.pem")).map_err(|e| e.to_string())?,
        ),
        (
            "key.pem",
            std::fs::read_to_string(dir.join("key.pem")).map_err(|e| e.to_string())?,
        ),
    ];
    let d = dir.display();
    let server = format!(
        "server {{ listen 127.0.0.1:{port} ssl http2; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; \
         http2_max_concurrent_streams {streams}; keepalive_timeout {idle_secs}s; keepalive_requests 1000000; \
         location / {{ return 200 \"ok\\n\"; }} }}"
    );
    let nginx = nginx::Nginx::start("h2", &server, &files, &[port])?;
    Ok((nginx, port, tls))
}

/// Apache httpd (event MPM, mod_ssl, mod_http2) with `H2MaxSessionStreams
/// streams` and `KeepAliveTimeout idle_secs`: h2 (and http/1.1) by ALPN on
/// the first port, h2c by prior knowledge (`H2Direct`) on the second. Its
/// access log has the client's port, the protocol and the status per
/// request. The client configuration trusts its certificate.
#[allow(clippy::type_complexity)]
pub fn apache_h2(
    streams: u32,
    idle_secs: u64,
) -> Result<(Process, u16, std::sync::Arc<keepalive::rustls::ClientConfig>), String> {
    let bin = binary(&["/usr/sbin/apache2", "/usr/sbin/httpd"]).ok_or("no apache2 binary")?;
    let modules = ["/usr/lib/apache2/modules", "/usr/lib/httpd/modules"]
        .into_iter()
        .find(|d| Path::new(d).join("mod_http2.so").exists())
        .ok_or("no mod_http2")?;
    let dir = workdir("apache-h2")?;
    let tls = certificate(&dir);
    let (port, h2c) = (nginx::free_port(), nginx::free_port());
    let d = dir.display();
    let conf = format!(
        "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nListen 127.0.0.1:{h2c}\n\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         LoadModule ssl_module {modules}/mod_ssl.so\nLoadModule http2_module {modules}/mod_http2.so\n\
         User nobody\nGroup nogroup\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
         DocumentRoot {d}/www\nKeepAlive On\nKeepAliveTimeout {idle_secs}\nMaxKeepAliveRequests 100000\n\
         H2MaxSessionStreams {streams}\n\
         LogFormat \"%{{remote}}p %H %>s\" h2\nCustomLog {d}/access.log h2\n\
         <Directory {d}/www>\n  Require all granted\n</Directory>\n\
         <VirtualHost 127.0.0.1:{port}>\n  Protocols h2 http/1.1\n  SSLEngine on\n\
           SSLCertificateFile {d}/cert.pem\n  SSLCertificateKeyFile {d}/key.pem\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:{h2c}>\n  Protocols h2c http/1.1\n  H2Direct on\n</VirtualHost>\n"
    );
    std::fs::write(dir.join("httpd.conf"), conf).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg("-f").arg(dir.join("httpd.conf")).arg("-DFOREGROUND");
    let process = Process::spawn("apache2", command, dir, &[port, h2c])?;
    Ok((process, h2c, tls))
}

/// Node.js's `http2` server, h2c, with `streams` streams a connection,
/// closing a session idle for `idle_ms` with GOAWAY (`session.close()`);
/// its log has the client's port per request.
pub fn node_h2(streams: u32, idle_ms: u64) -> Result<Process, String> {
    let bin = binary(&["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"]).ok_or("no node binary")?;
    let dir = workdir("node-h2")?;
    let port = nginx::free_port();
    let log = dir.join("access.log");
    let script = format!(
        "const http2 = require('http2');\nconst fs = require('fs');\n\
         const server = http2.createServer({{ settings: {{ maxConcurrentStreams: {streams} }} }});\n\
         server.on('session', (s) => s.setTimeout({idle_ms}, () => s.close()));\n\
         server.on('stream', (stream) => {{\n\
           fs.appendFileSync({log:?}, stream.session.socket.remotePort + '\\n');\n\
           stream.respond({{ ':status': 200 }});\n  stream.end('ok\\n');\n}});\n\
         server.listen({port}, '127.0.0.1');\n"
    );
    std::fs::write(dir.join("server.js"), script).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg(dir.join("server.js"));
    Process::spawn("node", command, dir, &[port])
}

/// The distinct values of each log line's first field: the connections
/// (by number or by client port) that carried the logged requests.
pub fn connections_in(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let firsts: std::collections::HashSet<&str> =
        text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    firsts.len()
}
