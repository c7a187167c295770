//! Real proxies in front of a real server (issue #15, point 6): tinyproxy
//! (with and without Basic auth), squid (Basic auth through
//! `basic_ncsa_auth`) and microsocks (SOCKS5, with and without a
//! password), each in front of nginx over `http` and `https`, all started
//! here on loopback. Requests through each are sequential on one pooled
//! tunnel (nginx's log shows them on one connection; squid's shows one
//! `CONNECT`), and wrong credentials give the proxy's answer.

// nginx's https server and TLS through the tunnels need the `tls` feature.
#![cfg(feature = "tls")]

mod support;

use std::sync::Arc;

use keepalive::{Manager, Proxy, Target};
use keepalive_http as http1;

use support::nginx::{free_port, Nginx};
use support::real_proxies::{microsocks, squid, squid_log, tinyproxy, unavailable};
use support::servers::Process;
use support::within;

/// Sequential requests per scheme and proxy.
const N: usize = 5;

/// nginx with an `http` and an `https` server, and a client TLS
/// configuration that trusts its certificate.
struct Origin {
    nginx: Nginx,
    http: u16,
    https: u16,
    tls: Arc<keepalive::rustls::ClientConfig>,
}

fn origin(name: &str) -> Option<Origin> {
    use keepalive::rustls::{self, ClientConfig, RootCertStore};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (http, https) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("keepalive-nginx-{name}-{}", std::process::id()));
    let body = "location / { return 200 \"ok\\n\"; }";
    let servers = format!(
        "server {{ listen 127.0.0.1:{http}; keepalive_timeout 60s; {body} }}\n\
         server {{ listen 127.0.0.1:{https} ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; keepalive_timeout 60s; {body} }}",
        d = dir.display()
    );
    let files = [("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())];
    let nginx = match Nginx::start(name, &servers, &files, &[http, https]) {
        Ok(nginx) => nginx,
        Err(why) => {
            support::nginx::unavailable(&why);
            return None;
        }
    };
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let tls = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Origin {
        nginx,
        http,
        https,
        tls: Arc::new(tls),
    })
}

fn started(what: &str, process: Result<Process, String>) -> Option<Process> {
    match process {
        Ok(process) => Some(process),
        Err(why) => {
            unavailable(what, &why);
            None
        }
    }
}

/// `N` sequential GETs to `target`; each must be a 200.
async fn get_n(manager: &Manager, target: &Target) {
    let request = http1::request("GET", &format!("127.0.0.1:{}", target.port()), "/");
    let mut buf = Vec::new();
    for i in 0..N {
        let mut conn = within("a connection through the proxy", manager.allocate(target.clone()))
            .await
            .unwrap_or_else(|e| panic!("{target}: request {i}: {e}"));
        let out = within(
            "a response",
            http1::exchange(&mut conn, &request, false, &mut buf, &mut |_| {}),
        )
        .await
        .unwrap_or_else(|e| panic!("{target}: request {i}: {e}"));
        assert_eq!(out.status, 200, "{target}");
        http1::settle(conn, &out);
    }
    let stats = manager.stats_for(target);
    assert_eq!(
        (stats.connects, stats.reuses),
        (1, N as u64 - 1),
        "{target}: one tunnel, reused"
    );
}

/// Both schemes through `proxy`; nginx sees each scheme's `N` requests on
/// one connection.
async fn both_schemes(origin: &Origin, proxy: &Proxy) {
    let manager = Manager::builder().tls_config(origin.tls.clone()).build();
    for port in [origin.http, origin.https] {
        let scheme = if port == origin.https { "https" } else { "http" };
        let target = Target::new(scheme, "127.0.0.1", port).via(proxy.clone());
        let before = origin.nginx.log().len();
        get_n(&manager, &target).await;
        // nginx logs a request after its response.
        support::until("nginx to log the requests", || {
            origin.nginx.log().len() >= before + N
        })
        .await;
        let log = origin.nginx.log();
        let connections: std::collections::BTreeSet<u64> = log[before..].iter().map(|&(c, _, _)| c).collect();
        assert_eq!(connections.len(), 1, "{target}: nginx saw {connections:?}");
    }
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_with_and_without_basic_auth() {
    let Some(origin) = origin("tinyproxy") else { return };
    let Some(open) = started("tinyproxy", tinyproxy("tinyproxy-open", None)) else {
        return;
    };
    both_schemes(&origin, &Proxy::http("127.0.0.1", open.port)).await;

    let Some(guarded) = started(
        "tinyproxy",
        tinyproxy("tinyproxy-auth", Some(("alice", "s3cret"))),
    ) else {
        return;
    };
    let proxy = Proxy::http("127.0.0.1", guarded.port);
    both_schemes(&origin, &proxy.clone().basic_auth("alice", "s3cret")).await;
    let manager = Manager::new();
    for proxy in [proxy.clone(), proxy.basic_auth("alice", "wrong")] {
        let target = Target::new("https", "127.0.0.1", origin.https).via(proxy);
        let err = within("tinyproxy's refusal", manager.allocate(target))
            .await
            .unwrap_err();
        // tinyproxy 1.11 answers a CONNECT without valid credentials with
        // 401, not 407: the error gives the proxy's own status.
        assert_eq!(err.function(), "proxy", "{err}");
        assert!(matches!(err.proxy_status(), Some(401 | 407)), "{err}");
    }
    assert_eq!(manager.stats().open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squid_with_basic_ncsa_auth_logs_one_connect_for_a_pooled_tunnel() {
    let Some(origin) = origin("squid") else { return };
    let Some(squid) = started("squid", squid("alice", "s3cret")) else {
        return;
    };
    let proxy = Proxy::http("127.0.0.1", squid.port).basic_auth("alice", "s3cret");
    let manager = Manager::builder().tls_config(origin.tls.clone()).build();
    let target = Target::new("https", "127.0.0.1", origin.https).via(proxy.clone());
    get_n(&manager, &target).await;
    // squid writes a tunnel's line when it closes.
    manager.shutdown().await;
    support::until("squid to log the tunnel", || {
        squid_log(&squid).iter().any(|(method, _)| method == "CONNECT")
    })
    .await;
    let connects: Vec<_> = squid_log(&squid)
        .into_iter()
        .filter(|(m, _)| m == "CONNECT")
        .collect();
    assert_eq!(connects.len(), 1, "{N} requests, one CONNECT: {connects:?}");
    assert!(connects[0].1.ends_with("/200"), "{connects:?}");
    support::until("nginx to log the requests", || origin.nginx.log().len() >= N).await;
    assert_eq!(origin.nginx.log().len(), N);

    // Plain http through squid, tunnelled too.
    both_schemes(&origin, &proxy).await;

    let manager = Manager::new();
    let wrong = Proxy::http("127.0.0.1", squid.port).basic_auth("alice", "wrong");
    let err = within("squid's refusal", manager.allocate(target.clone().via(wrong)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.function(), err.proxy_status()),
        ("proxy", Some(407)),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsocks_with_and_without_a_password() {
    let Some(origin) = origin("microsocks") else {
        return;
    };
    let Some(open) = started("microsocks", microsocks("microsocks-open", None)) else {
        return;
    };
    both_schemes(&origin, &Proxy::socks5("127.0.0.1", open.port)).await;
    let local: Proxy = format!("socks5://127.0.0.1:{}", open.port).parse().unwrap();
    both_schemes(&origin, &local).await;

    let Some(guarded) = started(
        "microsocks",
        microsocks("microsocks-auth", Some(("bob", "hunter2"))),
    ) else {
        return;
    };
    let proxy = Proxy::socks5("127.0.0.1", guarded.port);
    both_schemes(&origin, &proxy.clone().basic_auth("bob", "hunter2")).await;
    let manager = Manager::new();
    let target = Target::new("https", "127.0.0.1", origin.https);
    let err = within(
        "microsocks' refusal",
        manager.allocate(target.clone().via(proxy.clone())),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "proxy", "{err}");
    let err = within(
        "microsocks' refusal",
        manager.allocate(target.via(proxy.basic_auth("bob", "wrong"))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.function(), "proxy", "{err}");
    assert!(
        err.to_string().contains("refused the user name and password"),
        "{err}"
    );
    assert_eq!(manager.stats().open, 0);
}
