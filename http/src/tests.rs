//! The parser on byte slices, and exchanges over loopback sockets.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body::MAX_LINE;
use crate::*;

fn head(text: &str) -> Head {
    parse_head(text.as_bytes(), false)
        .unwrap()
        .expect("complete head")
}

/// Decodes `input` fed `step` bytes at a time; returns the body and the
/// bytes left over.
fn decode(framing: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, usize), Error> {
    let mut body = Body::new(framing);
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() && !body.is_done() {
        let end = (at + step).min(input.len());
        at += body.feed(&input[at..end], &mut |b| out.extend_from_slice(b))?;
    }
    if !body.is_done() {
        body.end_of_stream(at)?;
    }
    Ok((out, input.len() - at))
}

#[test]
fn framing_follows_rfc_9112() {
    assert_eq!(
        head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").framing,
        Framing::Length(5)
    );
    let chunked = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(
        chunked.framing,
        Framing::Chunked,
        "chunked wins over Content-Length"
    );
    let gz = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!((gz.framing, gz.keep_alive), (Framing::UntilClose, false));
    for status in ["204 No Content", "304 Not Modified", "100 Continue"] {
        let h = head(&format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n"));
        assert_eq!(h.framing, Framing::Empty, "{status}");
    }
    let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(h.framing, Framing::Empty, "HEAD has no body");
    let none = head("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!((none.framing, none.keep_alive), (Framing::UntilClose, false));
}

#[test]
fn persistence_follows_the_version_and_connection_header() {
    assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n").keep_alive);
}

#[test]
fn bad_heads_are_errors() {
    assert!(
        parse_head(b"HTTP/1.1 200 OK\r\nContent", false)
            .unwrap()
            .is_none(),
        "partial"
    );
    for bad in [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "garbage\r\n\r\n",
    ] {
        assert!(parse_head(bad.as_bytes(), false).is_err(), "{bad:?}");
    }
    let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD + 1));
    assert!(matches!(
        parse_head(huge.as_bytes(), false),
        Err(Error::HeadTooLarge)
    ));
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let wire = b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\nNEXT";
    for step in [1, 2, 7, wire.len()] {
        let (body, left) = decode(Framing::Chunked, wire, step).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
        assert_eq!(left, 4, "bytes after the body are not consumed");
    }
}

#[test]
fn bad_chunks_are_errors() {
    for bad in [
        &b"\r\n"[..],
        b"zz\r\n",
        b"5\r\nabcdeXY",
        b"5\nabcde\r\n",
        b"11111111111111111\r\n",
        b"0\r\nTrailer: x\r\nbroken\n\r\n",
    ] {
        assert!(
            matches!(decode(Framing::Chunked, bad, 3), Err(Error::BadChunk(_))),
            "{bad:?}"
        );
    }
    let long_ext = [b"1;".to_vec(), vec![b'a'; MAX_LINE + 2]].concat();
    assert!(decode(Framing::Chunked, &long_ext, 100).is_err());
}

#[test]
fn content_length_bodies_stop_at_their_length_and_detect_early_close() {
    let (body, left) = decode(Framing::Length(5), b"helloEXTRA", 3).unwrap();
    assert_eq!((body.as_slice(), left), (&b"hello"[..], 5));
    assert!(matches!(
        decode(Framing::Length(10), b"short", 2),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        decode(Framing::Chunked, b"5\r\nab", 2),
        Err(Error::Closed { .. })
    ));
    let (body, _) = decode(Framing::UntilClose, b"all of it", 4).unwrap();
    assert_eq!(body, b"all of it");
}

/// A server that answers each request (read until a blank line) with the
/// next scripted response, then does what the script says.
async fn scripted(responses: Vec<&'static [u8]>, close_after: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 4096];
        for response in responses {
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            s.write_all(response).await.unwrap();
        }
        if close_after {
            drop(s);
        } else {
            std::future::pending::<()>().await;
        }
    });
    addr
}

async fn run(responses: Vec<&'static [u8]>, close_after: bool) -> Vec<Result<Outcome, Error>> {
    let n = responses.len();
    let addr = scripted(responses, close_after).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = request("GET", "127.0.0.1", "/");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let r = exchange(&mut s, &req, false, &mut buf, &mut |_| {}).await;
        let stop = r.is_err();
        out.push(r);
        if stop {
            break;
        }
    }
    out
}

#[tokio::test]
async fn exchanges_over_a_socket_decide_reuse() {
    let results = run(
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\nok\r\n0\r\nT: v\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        ],
        false,
    )
    .await;
    let outcomes: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        outcomes[0],
        Outcome {
            status: 200,
            body_bytes: 2,
            reusable: true,
            server_closes: false,
            hints: KeepAlive::default(),
            retried: false,
            from: None,
        }
    );
    assert_eq!(
        outcomes[1],
        Outcome {
            status: 200,
            body_bytes: 2,
            reusable: true,
            server_closes: false,
            hints: KeepAlive::default(),
            retried: false,
            from: None,
        }
    );
    assert_eq!(
        outcomes[2],
        Outcome {
            status: 404,
            body_bytes: 1,
            reusable: false,
            server_closes: true,
            hints: KeepAlive::default(),
            retried: false,
            from: None,
        }
    );
}

#[tokio::test]
async fn extra_bytes_after_a_response_forbid_reuse() {
    let results = run(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK"], false).await;
    assert!(!results[0].as_ref().unwrap().reusable);
}

#[tokio::test]
async fn a_body_read_until_close_is_complete_but_not_reusable() {
    let results = run(vec![b"HTTP/1.1 200 OK\r\n\r\nall of it"], true).await;
    assert_eq!(
        results[0].as_ref().unwrap(),
        &Outcome {
            status: 200,
            body_bytes: 9,
            reusable: false,
            server_closes: true,
            hints: KeepAlive::default(),
            retried: false,
            from: None,
        }
    );
}

#[tokio::test]
async fn early_close_and_length_mismatch_are_errors() {
    let results = run(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], true).await;
    assert!(matches!(results[0], Err(Error::Closed { during: "body", .. })));
    let results = run(vec![b"HTTP/1.1 200 OK\r\nContent-Le"], true).await;
    let err = results.into_iter().next().unwrap().unwrap_err();
    assert!(matches!(err, Error::Closed { during: "head", got } if got > 0));
    assert!(!err.is_retryable(), "part of a response arrived");
}

#[tokio::test]
async fn a_closed_connection_before_any_byte_is_retryable() {
    let results = run(vec![b""], true).await;
    let err = results.into_iter().next().unwrap().unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[test]
fn keep_alive_hints_are_read_leniently() {
    let h = head("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.hints.timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(h.hints.max, Some(100));
    let h = head("HTTP/1.1 200 OK\r\nKEEP-ALIVE:  Max = 3 ; TIMEOUT = \"7.9\" \r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        (h.hints.timeout, h.hints.max),
        (Some(std::time::Duration::from_secs(7)), Some(3))
    );
    for junk in [
        "timeout",
        "timeout=",
        "=5",
        "timeout=-1",
        "timeout=abc, max=",
        "\"",
        ",,,;;;",
        "timeout==5",
        "max=1e3",
    ] {
        let text = format!("HTTP/1.1 200 OK\r\nKeep-Alive: {junk}\r\nContent-Length: 0\r\n\r\n");
        let h = head(&text);
        assert!(
            h.hints.timeout.is_none() && h.hints.max.is_none(),
            "{junk}: {:?}",
            h.hints
        );
        assert!(h.keep_alive, "junk hints do not change persistence");
    }
    let huge = KeepAlive::parse(b"timeout=99999999999999999999999, max=99999999999");
    assert_eq!(
        (huge.timeout, huge.max),
        (Some(std::time::Duration::from_secs(u64::MAX)), Some(u32::MAX))
    );
    assert_eq!(KeepAlive::parse(&[0xff, b'=', 0x80]), KeepAlive::default());
}
