//! Hostile proxies (issue #15, points 3 and 7): every failure of the proxy
//! step is an `Error` with function `"proxy"` (a refusal with its status,
//! garbage, an endless head, a close or a silence mid-handshake, each
//! SOCKS5 reply code and method refusal), at once rather than at the
//! timeout unless the proxy is silent, with nothing left open: the stats
//! and this process's descriptors are back to their baseline after each
//! case, and the next request through a good proxy works.
//!
//! One test, so that no other test of this binary opens descriptors
//! while the counts are compared.

mod support;

use std::time::{Duration, Instant};

use keepalive::{Manager, Proxy, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::proxy::{ConnectOptions, ConnectProxy, Hostile, Step};
use support::{open_fds, until, within, Server};

/// What a case must end in.
struct Expect {
    status: Option<u16>,
    /// Words the error's text must contain.
    says: &'static str,
    timeout: bool,
}

fn refusal(status: u16, says: &'static str) -> Expect {
    Expect {
        status: Some(status),
        says,
        timeout: false,
    }
}

fn failure(says: &'static str) -> Expect {
    Expect {
        status: None,
        says,
        timeout: false,
    }
}

/// A reply head, then silence: the client must not wait for a body.
fn answer(head: &str) -> Vec<Step> {
    vec![
        Step::ReadHead,
        Step::Send(head.as_bytes().to_vec()),
        Step::Silence,
    ]
}

fn http_cases() -> Vec<(&'static str, Vec<Step>, Expect)> {
    let endless = {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() < 20_000 {
            head.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        head
    };
    vec![
        (
            "407 over HTTP/1.0, then close",
            vec![
                Step::ReadHead,
                Step::Send(b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n".to_vec()),
                Step::Close,
            ],
            refusal(407, "407 Proxy Authentication Required"),
        ),
        (
            "407 over HTTP/1.1 with a body",
            answer("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 10\r\n\r\nno, sorry."),
            refusal(407, "407"),
        ),
        ("401 without a body", answer("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"), refusal(401, "401")),
        ("403 with a body", answer("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"), refusal(403, "403 Forbidden")),
        (
            "502 with a chunked body",
            answer("HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnope!\r\n0\r\n\r\n"),
            refusal(502, "502 Bad Gateway"),
        ),
        ("503 and close", vec![Step::ReadHead, Step::Send(b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec()), Step::Close], refusal(503, "503")),
        (
            "a reason phrase echoing the credentials",
            answer("HTTP/1.1 407 dXNlcjpzM2NyM3Q= user:s3cr3t s3cr3t\r\n\r\n"),
            refusal(407, "407 ***"),
        ),
        ("garbage with no line end", vec![Step::ReadHead, Step::Send(b"\x16\x03\x01garbage".to_vec()), Step::Silence], failure("no HTTP/1.x status line")),
        ("an SSH banner", answer("SSH-2.0-OpenSSH_9.2\r\n\r\n"), failure("no HTTP/1.x status line")),
        ("HTTP/1.1 2000", answer("HTTP/1.1 2000\r\n\r\n"), failure("no HTTP/1.x status line")),
        ("HTTP/2", answer("HTTP/2 200\r\n\r\n"), failure("no HTTP/1.x status line")),
        ("an endless reply head", vec![Step::ReadHead, Step::Send(endless), Step::Silence], failure("over 16384 bytes")),
        (
            "a close in the middle of the status line",
            vec![Step::ReadHead, Step::Send(b"HTTP/1.1 200 Conn".to_vec()), Step::Close],
            failure("closed the connection"),
        ),
        ("a close before any reply", vec![Step::ReadHead, Step::Close], failure("closed the connection")),
        ("a close before the request was read", vec![Step::Close], failure("")),
        (
            "silence after the request",
            vec![Step::ReadHead, Step::Silence],
            Expect {
                status: None,
                says: "in the proxy step",
                timeout: true,
            },
        ),
        (
            "silence in the middle of the head",
            vec![Step::ReadHead, Step::Send(b"HTTP/1.1 200 OK\r\n".to_vec()), Step::Silence],
            Expect {
                status: None,
                says: "in the proxy step",
                timeout: true,
            },
        ),
    ]
}

/// A SOCKS5 CONNECT reply with `code` and an IPv4 BND.ADDR.
fn socks_reply(code: u8) -> Vec<u8> {
    vec![5, code, 0, 1, 127, 0, 0, 1, 0, 80]
}

fn socks5_cases() -> Vec<(&'static str, Vec<Step>, Expect)> {
    let meanings = [
        "general SOCKS server failure",
        "connection not allowed by ruleset",
        "network unreachable",
        "host unreachable",
        "connection refused",
        "TTL expired",
        "command not supported",
        "address type not supported",
    ];
    // The client's greeting without credentials is 3 bytes; its CONNECT to
    // 127.0.0.1 is 10.
    let mut cases: Vec<(&'static str, Vec<Step>, Expect)> = meanings
        .iter()
        .enumerate()
        .map(|(i, says)| {
            let script = vec![
                Step::Read(3),
                Step::Send(vec![5, 0]),
                Step::Read(10),
                Step::Send(socks_reply(i as u8 + 1)),
                Step::Silence,
            ];
            ("a SOCKS5 reply code", script, failure(says))
        })
        .collect();
    cases.extend([
        (
            "no acceptable method",
            vec![Step::Read(3), Step::Send(vec![5, 0xff]), Step::Silence],
            failure("requires authentication"),
        ),
        (
            "a method that was not offered",
            vec![Step::Read(3), Step::Send(vec![5, 0x02]), Step::Silence],
            failure("not offered"),
        ),
        (
            "SOCKS4 instead",
            vec![Step::Read(3), Step::Send(vec![0, 0x5a]), Step::Silence],
            failure("not SOCKS5"),
        ),
        (
            "a bad address type in the reply",
            vec![
                Step::Read(3),
                Step::Send(vec![5, 0]),
                Step::Read(10),
                Step::Send(vec![5, 0, 0, 9]),
                Step::Silence,
            ],
            failure("address type 9"),
        ),
        (
            "a close in the middle of the reply",
            vec![
                Step::Read(3),
                Step::Send(vec![5, 0]),
                Step::Read(10),
                Step::Send(vec![5, 0, 0, 1, 127]),
                Step::Close,
            ],
            failure("closed the connection"),
        ),
        (
            "silence after the greeting",
            vec![Step::Read(3), Step::Silence],
            Expect {
                status: None,
                says: "in the proxy step",
                timeout: true,
            },
        ),
    ]);
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_of_the_proxy_step_is_a_proxy_error_and_leaves_nothing_open() {
    const TIMEOUT: Duration = Duration::from_millis(400);
    let origin = Server::start("127.0.0.1").await;
    let good = ConnectProxy::start(ConnectOptions::default()).await;
    let manager = Manager::builder().timeout(TIMEOUT).build();
    let working = Target::new("tcp", "127.0.0.1", origin.port()).via(Proxy::http("127.0.0.1", good.port()));
    // Warm up once, so that lazily made things (the runtime's threads)
    // are in the baseline.
    let conn = within("a good tunnel", manager.allocate(working.clone()))
        .await
        .unwrap();
    conn.discard();
    let baseline = open_fds();

    let cases = http_cases()
        .into_iter()
        .map(|c| (c, false))
        .chain(socks5_cases().into_iter().map(|c| (c, true)));
    for ((name, script, expect), socks) in cases {
        let hostile = Hostile::start(script).await;
        let proxy = match socks {
            false => Proxy::http("127.0.0.1", hostile.port()).basic_auth("user", "s3cr3t"),
            true => Proxy::socks5("127.0.0.1", hostile.port()),
        };
        let target = Target::new("tcp", "127.0.0.1", 9).via(proxy);
        let started = Instant::now();
        let err = within(name, manager.allocate(target.clone())).await.unwrap_err();
        let took = started.elapsed();
        let text = err.to_string();
        assert_eq!(err.function(), "proxy", "{name}: {text}");
        assert_eq!(err.proxy_status(), expect.status, "{name}: {text}");
        assert_eq!(err.is_timeout(), expect.timeout, "{name}: {text}");
        assert!(
            text.contains(expect.says),
            "{name}: {text:?} should say {:?}",
            expect.says
        );
        if !expect.timeout {
            assert!(
                took < TIMEOUT,
                "{name}: failed at the timeout, not at once ({took:?})"
            );
        }
        for shown in [
            text,
            format!("{err:?}"),
            format!("{target:?}"),
            format!("{:?}", manager.stats()),
        ] {
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("dXNlcjpzM2NyM3Q"),
                "{name}: {shown}"
            );
        }
        let stats = manager.stats();
        assert_eq!(
            (stats.open, stats.connecting, stats.queued),
            (0, 0, 0),
            "{name}: {stats:?}"
        );
        drop(hostile);
        until(&format!("{name}: descriptors back to {baseline}"), || {
            open_fds() <= baseline
        })
        .await;

        // The next request works.
        let mut conn = within("a good tunnel", manager.allocate(working.clone()))
            .await
            .unwrap();
        conn.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        within("the echo", conn.read_exact(&mut buf)).await.unwrap();
        conn.discard();
    }
    let stats = manager.stats();
    assert_eq!((stats.open, stats.idle), (0, 0), "{stats:?}");
}
