//! The `keepalive` command end to end: its own server, its bench summary,
//! and `get` (issue #5).

mod support;

use std::process::Command;

use support::{json, run, Serve, BIN};

#[test]
fn bench_without_a_url_loads_its_own_server() {
    let summary = json(&run(&["bench", "-n", "3000", "-c", "4", "--json"]));
    assert_eq!(summary["requests"], 3000);
    assert_eq!(summary["ok"], 3000);
    assert!(summary["errors"].as_object().unwrap().is_empty());
    assert!(summary["connections_opened"].as_u64().unwrap() <= 4);
    assert!(summary["latency_us"]["p99"].as_u64().unwrap() >= summary["latency_us"]["p50"].as_u64().unwrap());
    let text = run(&["bench", "-n", "200", "-c", "2"]);
    let text = String::from_utf8(text.stdout).unwrap();
    for field in [
        "requests/s",
        "p50",
        "p99",
        "max",
        "opened",
        "reused",
        "stale discarded",
        "dns lookups",
    ] {
        assert!(text.contains(field), "{field} missing from:\n{text}");
    }
}

#[test]
fn a_bench_where_every_request_fails_says_so_first_and_exits_non_zero() {
    let out = run(&["bench", "http://127.0.0.1:1/", "-n", "300", "-c", "4"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("FAILED       300 of 300 requests (300 connect)"),
        "{text}"
    );
    assert!(
        lines[2].contains("0 completed") && lines[2].ends_with(" 0 requests/s"),
        "{text}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&run(&["bench", "http://127.0.0.1:1/", "-n", "50", "--json"]).stdout).unwrap();
    assert_eq!(
        (summary["failed"].as_u64(), summary["requests_per_sec"].as_f64()),
        (Some(50), Some(0.0))
    );
}

#[test]
fn the_servers_keep_alive_hint_reaches_the_pool_and_the_summary() {
    let server = Serve::start(&["--idle-close", "2", "--announce"]);
    let summary = json(&run(&["bench", &server.url, "-n", "200", "-c", "2", "--json"]));
    assert_eq!(summary["ok"], 200);
    let limit = &summary["server_limits"][0];
    assert_eq!(limit["idle_timeout_secs"], 2.0, "{summary}");
    assert_eq!(limit["retired_before_limit"], 0);
    assert_eq!(summary["closes"]["server_limit"], 0);
    let out = run(&["get", &server.url, &server.url]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("idle limit 2.00 s, 0 connections retired before it"),
        "{stderr}"
    );
}

#[test]
fn the_servers_connection_close_is_counted_as_its_close() {
    let server = Serve::start(&["--close-after", "3"]);
    let summary = json(&run(&["bench", &server.url, "-n", "30", "-c", "1", "--json"]));
    assert_eq!(summary["ok"], 30);
    assert_eq!(summary["closes"]["connection_close"], 10, "{summary}");
    assert_eq!(summary["closes"]["discarded"], 0, "{summary}");
}

#[test]
fn connection_close_from_the_server_is_honoured() {
    let server = Serve::start(&["--close-after", "3"]);
    let summary = json(&run(&["bench", &server.url, "-n", "30", "-c", "1", "--json"]));
    assert_eq!(summary["ok"], 30);
    assert_eq!(
        summary["connections_opened"], 10,
        "a new connection after every third response"
    );
    assert_eq!(summary["stale_discarded"], 0);
}

#[test]
fn get_prints_one_line_per_request_and_fails_loudly() {
    let server = Serve::start(&[]);
    let dir = std::env::temp_dir().join(format!("keepalive-cli-{}", std::process::id()));
    let out = run(&["get", &server.url, "--repeat", "3", "-o", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("200  14 B  fresh"), "{lines:?}");
    assert!(
        lines[1].contains("immediate") && lines[2].contains("immediate"),
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&dir).unwrap(),
        "Hello, world!\n".repeat(3)
    );
    let _ = std::fs::remove_file(&dir);

    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = run(&["get", &server.url, &format!("http://127.0.0.1:{refused}/")]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("error  connect: connect to"), "{text}");
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for args in [
        &["bench", "not a url"][..],
        &["bench", "-c", "0"],
        &["bench", "-d", "-1"],
        &["get", "ftp://x:1/"],
        &["serve", "--close-after", "0"],
        &["frobnicate"],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?}: no message");
    }
}

/// A one-thread HTTP/1.1 server that answers every request with 200 and
/// keeps each request head it read.
fn recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        kept.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..end]).into_owned());
                        buf.drain(..end + 4);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                }
            });
        }
    });
    (url, heads)
}

#[test]
fn a_urls_password_is_sent_as_basic_auth_and_never_shown() {
    const PASSWORD: &str = "s3cretPW";
    let (addr, heads) = recording_server();
    let url = format!("http://alice:{PASSWORD}@{addr}/f1");
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let runs = [
        run(&["get", &url, &url]),
        run(&["bench", &url, "-n", "20", "-c", "2"]),
        run(&["bench", &url, "-n", "20", "-c", "2", "--json"]),
        run(&["get", &format!("http://alice:{PASSWORD}@127.0.0.1:{refused}/")]),
        run(&["get", &format!("ftp://alice:{PASSWORD}@127.0.0.1:21/")]),
        run(&["get", &format!("http://alice:{PASSWORD}@[::1/")]),
        run(&["bench", "--help"]),
        run(&["get", "--help"]),
    ];
    for out in &runs {
        for text in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(text);
            assert!(!text.contains(PASSWORD), "the password is shown: {text}");
        }
    }
    assert!(runs[0].status.success());
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 42, "every request reached the server");
    for head in heads.iter() {
        // base64("alice:s3cretPW")
        assert!(
            head.contains("\r\nAuthorization: Basic YWxpY2U6czNjcmV0UFc="),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nHost: {addr}\r\n")), "{head}");
    }
}

#[test]
fn unix_socket_as_curl_does() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("keepalive-cli-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let host = String::from_utf8_lossy(&buf[..end]).contains("\r\nHost: docker\r\n");
                buf.drain(..end + 4);
                let body = if host { "docker" } else { "other" };
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = stream.write_all(reply.as_bytes());
            }
        }
    });
    let out = run(&[
        "get",
        "--unix-socket",
        path.to_str().unwrap(),
        "http://docker/v1/info",
        "--repeat",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("200  6 B")).count(),
        3,
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains("immediate")).count(),
        2,
        "one connection: {stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_silent_server_times_out_saying_so_and_where() {
    // Accepts, reads, and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/f1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let out = run(&["get", "--timeout", "1", &url]);
    // A bound that fails the test, not a timing claim: without the
    // timeout the command would wait forever.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("timed out after 1s") && stdout.contains(&url),
        "{stdout}"
    );
    let out = run(&["bench", &url, "-n", "2", "-c", "2", "--timeout", "0.5", "--json"]);
    assert_eq!(out.status.code(), Some(1), "failed requests");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["errors"]["timeout"], 2, "{summary}");
}

/// A blocking HTTPS server with a self-signed certificate for 127.0.0.1;
/// returns its address and the certificate as PEM.
fn self_signed_server() -> (String, String) {
    use keepalive::rustls;
    use std::io::{Read, Write};
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key.into())
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = tls.read(&mut chunk) {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                }
            });
        }
    });
    (addr, pem)
}

#[test]
fn a_self_signed_server_is_reached_with_cacert_or_insecure_and_refused_in_plain_words() {
    let (addr, pem) = self_signed_server();
    let url = format!("https://{addr}/");
    let dir = std::env::temp_dir().join(format!("keepalive-cli-trust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server.pem");
    std::fs::write(&file, &pem).unwrap();

    let refused = run(&["get", &url]);
    assert_eq!(refused.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(stdout.contains("is signed by an unknown authority"), "{stdout}");
    assert!(
        !stdout.contains("UnknownIssuer"),
        "this project's words, not rustls's: {stdout}"
    );

    let trusted = run(&["get", "--cacert", file.to_str().unwrap(), &url]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stdout)
    );

    let by_env = Command::new(BIN)
        .args(["get", &url])
        .env("SSL_CERT_FILE", &file)
        .output()
        .unwrap();
    assert!(
        by_env.status.success(),
        "{}",
        String::from_utf8_lossy(&by_env.stdout)
    );
    let by_dir = Command::new(BIN)
        .args(["get", &url])
        .env("SSL_CERT_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        by_dir.status.success(),
        "{}",
        String::from_utf8_lossy(&by_dir.stdout)
    );

    let insecure = run(&["get", "-k", &url]);
    assert!(insecure.status.success());
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("warning: --insecure"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /metrics` from `port`, once it listens (bounded: 10 s).
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing served metrics on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn bench_serves_its_pools_metrics_for_prometheus_while_it_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["bench", "-d", "2", "-c", "4", "--json", "--metrics", &addr])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = scrape(port);
    let output = child.wait_with_output().unwrap();
    let report = json(&output);
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    let gauge = text
        .lines()
        .find(|l| l.starts_with("http_client_open_connections{") && l.contains("state=\"active\""))
        .unwrap_or_else(|| panic!("no open-connections gauge in:\n{text}"));
    assert!(
        gauge.contains("pool_name=\"bench\"") && gauge.contains("url_scheme=\"http\""),
        "{gauge}"
    );
    assert!(
        text.contains("http_client_request_time_in_queue_count{"),
        "{text}"
    );
    // An address already in use is a clear error, not a panic.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let out = run(&["bench", "-n", "10", "--metrics", &busy_addr]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--metrics") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
