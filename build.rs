//! `keepalive_tls`: TLS support is on, with either provider: feature `tls`
//! (the default: aws-lc-rs, with the post-quantum key exchange first) or
//! feature `ring` (for platforms that cannot build aws-lc-rs).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(keepalive_tls)");
    if std::env::var_os("CARGO_FEATURE_TLS").is_some() || std::env::var_os("CARGO_FEATURE_RING").is_some() {
        println!("cargo::rustc-cfg=keepalive_tls");
    }
}
