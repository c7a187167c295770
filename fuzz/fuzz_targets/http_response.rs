//! keepalive-http's response parser on arbitrary bytes (and its
//! `Keep-Alive` hint parser):
//! the head parser and the body decoder fed in pieces of every size never
//! panic, never use more input than they were given, and agree with
//! themselves however the input is split.
#![no_main]

use keepalive_http as http1;

use libfuzzer_sys::fuzz_target;

/// Decodes `input` as a body with `framing`, fed `step` bytes at a time.
fn decode(framing: http1::Framing, input: &[u8], step: usize) -> Option<(Vec<u8>, usize)> {
    let mut body = http1::Body::new(framing);
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() && !body.is_done() {
        let end = (at + step).min(input.len());
        let used = body.feed(&input[at..end], &mut |b| out.extend_from_slice(b)).ok()?;
        assert!(used <= end - at, "used more than it was given");
        at += used;
    }
    Some((out, at))
}

fuzz_target!(|data: &[u8]| {
    // Any bytes as a `Keep-Alive` value: lenient, never a panic.
    let hints = http1::KeepAlive::parse(data);
    if let Some(timeout) = hints.timeout {
        assert_eq!(timeout.subsec_nanos(), 0, "whole seconds");
    }
    let Some((&control, input)) = data.split_first() else { return };
    let head_request = control & 1 == 1;
    let step = usize::from(control >> 1) + 1;
    let Ok(Some(head)) = http1::parse_head(input, head_request) else {
        // Also decode the raw bytes as a chunked body.
        let whole = decode(http1::Framing::Chunked, input, input.len().max(1));
        assert_eq!(whole, decode(http1::Framing::Chunked, input, step), "split-invariant");
        return;
    };
    assert!(head.len <= input.len());
    let rest = &input[head.len..];
    let whole = decode(head.framing, rest, rest.len().max(1));
    assert_eq!(whole, decode(head.framing, rest, step), "split-invariant");
});
