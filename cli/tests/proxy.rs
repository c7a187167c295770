//! The command through a proxy (issue #15, point 5): `--proxy`, and the
//! environment read as curl reads it. A plain `http` URL through an HTTP
//! proxy is forwarded (absolute-form, `Proxy-Authorization` on every
//! request, one pooled connection to the proxy); an `https` URL tunnels
//! with `CONNECT`. The proxy here is the test's own, on threads, and
//! records every byte clients sent it.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::{Serve, BIN};

/// A proxy on threads: `CONNECT host:port` tunnels, an absolute-form
/// request opens a connection to its origin and is passed on as sent.
/// Everything clients send is recorded.
struct TestProxy {
    port: u16,
    accepted: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl TestProxy {
    fn start() -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (count, record) = (accepted.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let record = record.clone();
                std::thread::spawn(move || serve(client, &record));
            }
        });
        TestProxy { port, accepted, sent }
    }

    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(mut client: TcpStream, record: &Arc<Mutex<Vec<u8>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    record.lock().unwrap().extend_from_slice(&head);
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = text.split(' ').nth(1).unwrap_or_default();
    let connect = text.starts_with("CONNECT ");
    let authority = match connect {
        true => target,
        false => target
            .strip_prefix("http://")
            .and_then(|t| t.split('/').next())
            .unwrap_or_default(),
    };
    let Ok(mut origin) = TcpStream::connect(authority) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let relayed = match connect {
        true => client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n"),
        false => origin.write_all(&head),
    };
    if relayed.is_err() {
        return;
    }
    let (mut from_client, mut to_origin) = (client.try_clone().unwrap(), origin.try_clone().unwrap());
    let up_record = record.clone();
    let up = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_client.read(&mut buf) {
            up_record.lock().unwrap().extend_from_slice(&buf[..n]);
            if to_origin.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_origin.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut origin, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    for name in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("keepalive runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn get_forwards_plain_http_through_an_http_proxy_on_one_connection() {
    let server = Serve::start(&[]);
    let proxy = TestProxy::start();
    let flag = format!("http://user:pa%24s@127.0.0.1:{}", proxy.port);
    let out = run(
        &["get", &server.url_with("http"), "--repeat", "3", "--proxy", &flag],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = stdout(&out);
    assert_eq!(
        lines.lines().filter(|l| l.starts_with("200 ")).count(),
        3,
        "{lines}"
    );
    let sent = proxy.sent();
    let request_line = format!("GET http://127.0.0.1:{}/ HTTP/1.1\r\n", server.port);
    assert_eq!(
        count(&sent, &request_line),
        3,
        "absolute-form, every request: {sent}"
    );
    // user:pa$s
    assert_eq!(
        count(&sent, "Proxy-Authorization: Basic dXNlcjpwYSRz\r\n"),
        3,
        "{sent}"
    );
    assert_eq!(proxy.accepted(), 1, "one pooled connection to the proxy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("pa$s") && !stderr.contains("dXNlcjpwYSRz"),
        "{stderr}"
    );
}

#[test]
fn get_reads_the_environment_as_curl_does() {
    let server = Serve::start(&[]);
    let proxy = TestProxy::start();
    let proxy_url = format!("127.0.0.1:{}", proxy.port); // no scheme: an HTTP proxy
    let out = run(&["get", &server.url_with("http")], &[("http_proxy", &proxy_url)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(proxy.accepted(), 1, "http_proxy is used");

    let out = run(
        &["get", &server.url_with("http")],
        &[("http_proxy", &proxy_url), ("NO_PROXY", "localhost,127.0.0.0/8")],
    );
    assert!(out.status.success());
    assert_eq!(proxy.accepted(), 1, "NO_PROXY bypasses the proxy");

    let out = run(&["get", &server.url_with("http")], &[("HTTP_PROXY", &proxy_url)]);
    assert!(out.status.success());
    assert_eq!(proxy.accepted(), 1, "HTTP_PROXY is not read, as in curl");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP_PROXY is not read"));

    let out = run(&["get", &server.url_with("http")], &[("ALL_PROXY", &proxy_url)]);
    assert!(out.status.success());
    assert_eq!(proxy.accepted(), 2, "ALL_PROXY is the fallback");

    // An https URL tunnels: the proxy sees CONNECT (the built-in server
    // speaks no TLS, so the request then fails in TLS, loudly).
    let out = run(
        &["get", &server.url_with("https")],
        &[("HTTPS_PROXY", &proxy_url)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("error  tls:"), "{}", stdout(&out));
    let connect = format!(
        "CONNECT 127.0.0.1:{0} HTTP/1.1\r\nHost: 127.0.0.1:{0}\r\n",
        server.port
    );
    assert_eq!(count(&proxy.sent(), &connect), 1, "{}", proxy.sent());
}

#[test]
fn bench_takes_a_proxy_and_its_built_in_server_ignores_the_environment() {
    let server = Serve::start(&[]);
    let proxy = TestProxy::start();
    let flag = format!("http://127.0.0.1:{}", proxy.port);
    let out = run(
        &[
            "bench",
            &server.url_with("http"),
            "-n",
            "300",
            "-c",
            "2",
            "--proxy",
            &flag,
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["ok"], 300, "{summary}");
    assert!(
        proxy.accepted() <= 2,
        "{} connections to the proxy",
        proxy.accepted()
    );
    assert_eq!(count(&proxy.sent(), "GET http://"), 300);

    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{refused}");
    let out = run(
        &["bench", "-n", "200", "-c", "2", "--json"],
        &[("http_proxy", &dead), ("all_proxy", &dead)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = run(
        &[
            "bench",
            &server.url_with("http"),
            "-n",
            "5",
            "--proxy",
            "ftp://u:hidden@p:1",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--proxy") && !stderr.contains("hidden"),
        "{stderr}"
    );
}

#[test]
fn an_http_url_forwarded_beside_an_https_one_keeps_the_absolute_form() {
    // With an https URL in the list the command would speak through
    // keepalive-hyper (ALPN); a URL the proxy forwards still needs the
    // command's own exchange, which writes the absolute form.
    let server = Serve::start(&[]);
    let proxy = TestProxy::start();
    let flag = format!("http://127.0.0.1:{}", proxy.port);
    let out = run(
        &[
            "get",
            &server.url_with("http"),
            &server.url_with("https"),
            "--proxy",
            &flag,
        ],
        &[],
    );
    let lines = stdout(&out);
    assert!(lines.lines().any(|l| l.starts_with("200 ")), "{lines}");
    assert!(
        lines.contains("error  tls:"),
        "the built-in server speaks no TLS: {lines}"
    );
    let request_line = format!("GET http://127.0.0.1:{}/ HTTP/1.1\r\n", server.port);
    assert_eq!(count(&proxy.sent(), &request_line), 1, "{}", proxy.sent());
}
