//! Built without the `tls` feature, an `https` target fails with a clear
//! error instead of connecting in plain text. `.ci/run` runs this file with
//! `--no-default-features`.
#![cfg(not(feature = "tls"))]

mod support;

use keepalive::{Manager, Target};
use support::Server;

#[tokio::test]
async fn https_without_tls_is_a_clear_error_not_plain_text() {
    let server = Server::start("127.0.0.1").await;
    let manager = Manager::new();
    let err = manager
        .allocate(Target::new("https", "127.0.0.1", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.function(), "tls");
    assert!(err.to_string().contains("\"tls\" feature"), "{err}");
    assert_eq!(server.pending_accepts(), 0, "nothing was sent in plain text");
    assert_eq!(manager.stats().open, 0);
}
