//! What the command's tests share: `keepalive serve` on a free port.
#![allow(dead_code, unreachable_pub)] // Each test binary uses part of this module.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_keepalive");

/// `keepalive ARGS`, to its end.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("keepalive runs")
}

/// A successful run's one JSON object.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// `keepalive serve` on a free port, with `args`; killed on drop.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT/`, as the server announced it.
    pub url: String,
    pub port: u16,
}

impl Serve {
    pub fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("keepalive serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("announces its address")
            .to_owned();
        let port = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("announces its port");
        Serve { child, url, port }
    }

    /// The server's root URL with `scheme` (the server itself speaks
    /// plain HTTP only).
    pub fn url_with(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
