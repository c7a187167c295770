//! `Target::from_str` on arbitrary text: an error or a target, never a
//! panic; a parsed target survives `Display` and parsing again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(target) = text.parse::<keepalive::Target>() {
        assert!(!target.host().is_empty() && target.port() != 0);
        let again: keepalive::Target = target.to_string().parse().expect("a target's Display parses");
        assert_eq!(again, target);
    }
});
