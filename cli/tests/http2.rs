//! The command over HTTP/2: `serve --http2` serves h2c, `bench --http2`
//! and `get --http2` speak it, and the report says which protocol ran and
//! over how many connections.

mod support;

use support::{json, run, Serve};

#[test]
fn bench_spreads_h2c_over_max_per_host_connections_at_the_servers_stream_limit() {
    let server = Serve::start(&["--http2", "--max-streams", "8"]);
    let args = [
        "bench",
        &server.url,
        "--http2",
        "-n",
        "2000",
        "-c",
        "32",
        "--max-per-host",
        "2",
        "--json",
    ];
    let summary = json(&run(&args));
    assert_eq!(summary["ok"], 2000, "{summary}");
    assert_eq!(summary["protocols"]["HTTP/2"], 2000, "{summary}");
    // 32 workers, 8 streams a connection, 2 connections allowed: both
    // opened, no more.
    assert_eq!(summary["connections_opened"], 2, "{summary}");
    let text = run(&["bench", &server.url, "--http2", "-n", "100", "-c", "4"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("protocol     HTTP/2 (100 requests) over 1 connections"),
        "{text}"
    );
}

#[test]
fn bench_http2_without_a_url_serves_itself_h2c() {
    let summary = json(&run(&["bench", "--http2", "-n", "500", "-c", "8", "--json"]));
    assert_eq!(summary["protocols"]["HTTP/2"], 500, "{summary}");
    assert_eq!(summary["connections_opened"], 1, "{summary}");
}

#[test]
fn get_says_the_protocol_where_http1_says_how_the_connection_was_had() {
    let h2 = Serve::start(&["--http2"]);
    let out = run(&["get", "--http2", &h2.url, &h2.url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.matches("200  14 B  HTTP/2  ").count(), 2, "{stdout}");
    let h1 = Serve::start(&[]);
    let out = run(&["get", "--http1", &h1.url]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("200  14 B  fresh  "));
    // HTTP/1.1 to a server that speaks h2c alone: a clear error, no hang.
    let out = run(&["get", "--http1", "--timeout", "5", &h2.url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("error  "), "{stdout}");
}

#[test]
fn http1_and_http2_together_are_refused_by_the_parser() {
    let out = run(&["get", "--http1", "--http2", "http://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
