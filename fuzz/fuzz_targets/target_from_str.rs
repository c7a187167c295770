//! `Target::from_str` on arbitrary text: an error or a target, never a
//! panic; a parsed target survives `Display` and parsing again, alone and
//! as the proxy of another (`for_target`), IPv6 literals included, and
//! through a `Proxy` (`T via P`) unless the proxy has a password, which
//! `Display` writes as `***`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn round_trips(target: &keepalive::Target) {
    if target.proxy().is_some_and(|p| p.proxy_authorization().is_some()) {
        return;
    }
    let text = target.to_string();
    let again: keepalive::Target = text.parse().expect("a target's Display parses");
    assert_eq!(&again, target, "{text}");
}

fuzz_target!(|text: &str| {
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(target) = first.parse::<keepalive::Target>() else {
        return;
    };
    assert!(!target.host().is_empty() && target.port() != 0);
    round_trips(&target);
    if let Ok(via) = second.parse::<keepalive::Target>() {
        round_trips(&target.clone().for_target(via.scheme(), via.host(), via.port()));
    }
});
