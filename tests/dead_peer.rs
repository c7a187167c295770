//! A peer that vanishes without a FIN or RST (issue #9): in a private
//! network namespace, `iptables` drops every packet of the server's port,
//! so nothing comes back. TCP keepalive finds the idle socket dead and the
//! pool drops it; `TCP_USER_TIMEOUT` makes a write to it fail instead of
//! retransmitting for a quarter of an hour.
//!
//! Each test re-runs itself under `unshare -n` (root, with `iptables` from
//! Debian's packages, which `.ci/run` installs); inside, it brings up the
//! namespace's own loopback. Without them it says so loudly, and fails
//! under `CI=true`.

mod support;

use std::process::Command;
use std::time::Duration;

use keepalive::{Manager, Target};
use support::{until, within, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set in the child that runs inside the namespace.
const INSIDE: &str = "KEEPALIVE_TEST_NETNS";

/// Runs `test` in a fresh network namespace: returns `true` in the child
/// (go on), `false` in the parent after the child passed.
fn in_namespace(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        run("ip", &["link", "set", "lo", "up"]);
        return true;
    }
    let missing: Vec<&str> = ["unshare", "iptables", "ip"]
        .into_iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !missing.is_empty() || !root {
        let why = if root {
            format!("{} not found", missing.join(", "))
        } else {
            "not root".to_owned()
        };
        support::skip_or_fail("a private network namespace", &why);
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new("unshare")
        .arg("-n")
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("unshare runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "inside the namespace:\n{text}");
    assert!(text.contains("1 passed"), "the test ran inside:\n{text}");
    false
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect("command runs");
    assert!(status.success(), "{cmd} {args:?}");
}

/// Drops every packet to and from `port`: the peer is gone without a word.
fn vanish(port: u16) {
    let port = port.to_string();
    run(
        "iptables",
        &["-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"],
    );
    run(
        "iptables",
        &["-A", "INPUT", "-p", "tcp", "--sport", &port, "-j", "DROP"],
    );
}

async fn echo(conn: &mut keepalive::Connection) {
    conn.write_all(b"ping").await.unwrap();
    let mut back = [0; 4];
    within("the echo", conn.read_exact(&mut back)).await.unwrap();
}

#[tokio::test]
async fn an_idle_socket_whose_peer_vanished_leaves_the_pool() {
    if !in_namespace("an_idle_socket_whose_peer_vanished_leaves_the_pool") {
        return;
    }
    let mut server = Server::start("127.0.0.1").await;
    let target = Target::new("tcp", "127.0.0.1", server.port());
    // Probes after 1 s idle, 1 s apart, 2 of them; no user timeout, so the
    // probe count decides.
    let manager = Manager::builder()
        .tcp_keepalive(Duration::from_secs(1))
        .tcp_keepalive_interval(Duration::from_secs(1))
        .tcp_keepalive_retries(2)
        .tcp_user_timeout(None)
        .build();
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let _accepted = server.accepted().await;
    echo(&mut conn).await;
    drop(conn);
    assert_eq!(manager.stats().idle, 1);
    vanish(server.port());
    // About 1 s + 2 × 1 s; the deadline is 10 s.
    until("the dead peer to leave the pool", || manager.stats().idle == 0).await;
    let s = manager.stats_for(&target);
    assert_eq!((s.closes.dead_peer, s.open), (1, 0), "{s:?}");
    assert_eq!(s.connects, s.closes.total());
}

#[tokio::test]
async fn a_write_to_a_vanished_peer_fails_within_the_user_timeout() {
    if !in_namespace("a_write_to_a_vanished_peer_fails_within_the_user_timeout") {
        return;
    }
    let mut server = Server::start("127.0.0.1").await;
    let target = Target::new("tcp", "127.0.0.1", server.port());
    let manager = Manager::builder()
        .tcp_keepalive(None)
        .tcp_user_timeout(Duration::from_secs(2))
        .build();
    let mut conn = manager.allocate(target.clone()).await.unwrap();
    let _accepted = server.accepted().await;
    echo(&mut conn).await;
    vanish(server.port());
    // The write is buffered; the kernel retransmits it unanswered until the
    // user timeout ends the connection, and the read reports it.
    let result = within("the write + read to fail", async {
        conn.write_all(b"ping").await?;
        let mut back = [0; 4];
        conn.read_exact(&mut back).await.map(|_| ())
    })
    .await;
    let err = result.expect_err("a vanished peer cannot answer");
    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT), "{err}");
    drop(conn);
    let s = manager.stats();
    assert_eq!((s.closes.io_error, s.open), (1, 0), "{s:?}");
}
