//! The public types are Send + Sync + Unpin and implement Debug.

use keepalive::{
    Allocation, Builder, Connection, Dial, Dialer, Error, FromCache, Health, Manager, Plain, RequestId,
    Stats, Stream, Target,
};

fn assert_traits<T: Send + Sync + Unpin + std::fmt::Debug>() {}

#[test]
fn public_types_are_send_sync_unpin_debug() {
    assert_traits::<Manager>();
    assert_traits::<Builder>();
    assert_traits::<Allocation>();
    assert_traits::<Connection>();
    assert_traits::<Target>();
    assert_traits::<Error>();
    assert_traits::<RequestId>();
    assert_traits::<FromCache>();
    assert_traits::<Stats>();
    // The pipeline's types, and a manager of another object.
    assert_traits::<Stream>();
    assert_traits::<Dialer>();
    assert_traits::<Plain>();
    assert_traits::<Health>();
    assert_traits::<Dial<'static>>();
    assert_traits::<Manager<Plain, Dialer>>();
    assert_traits::<keepalive_hyper::Client>();
    // Loans are typed by what they hold, not by what made it.
    assert_traits::<Connection<tokio::net::TcpStream>>();
    assert_traits::<Allocation<tokio::net::TcpStream>>();
    assert_traits::<keepalive_hyper::Error>();
    assert_traits::<keepalive_hyper::ClientBuilder>();
    assert_traits::<keepalive_hyper::Body>();
}

#[test]
#[should_panic(expected = "max_open must not be zero")]
fn a_zero_limit_panics_naming_the_setting() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _guard = rt.enter();
    let _ = Manager::builder().max_open(0).build();
}

#[test]
fn a_lifetime_jitter_outside_zero_to_one_panics_naming_the_setting() {
    for bad in [-0.1, 1.5, f64::NAN] {
        let panicked = std::panic::catch_unwind(|| {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let _guard = rt.enter();
            let _ = Manager::builder().max_lifetime_jitter(bad).build();
        });
        let message = panicked.expect_err("build() panics");
        let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("max_lifetime_jitter must be within 0.0..=1.0"),
            "{bad}: {text}"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _guard = rt.enter();
    let _ = Manager::builder().max_lifetime_jitter(1.0).build();
}

#[test]
#[should_panic(expected = "inside a Tokio runtime")]
fn a_manager_outside_a_runtime_panics_with_a_clear_message() {
    let _ = Manager::new();
}
