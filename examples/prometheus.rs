//! The pool's metrics published for Prometheus: the exporter is installed
//! as the process's recorder before the pool makes its first connection,
//! serves `/metrics`, and this example scrapes itself once to show what
//! Prometheus would read.
//!
//! ```text
//! cargo run --example prometheus --features metrics [ADDR]
//! ```
//!
//! ADDR defaults to 127.0.0.1:9464 (Prometheus' conventional exporter
//! port); the example serves a few connections of its own on loopback.

use std::io::{Read, Write};
use std::net::SocketAddr;

use keepalive::{Manager, Target};
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => "127.0.0.1:9464".parse()?,
    };
    // First the recorder: the pool registers its series with the recorder
    // installed when it first meets a target.
    PrometheusBuilder::new().with_http_listener(addr).install()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = Target::new("tcp", "127.0.0.1", listener.local_addr()?.port());
    tokio::spawn(async move {
        let mut accepted = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            accepted.push(socket); // kept open: the pool owns the other end
        }
    });
    let manager = Manager::builder().name("example").build();
    let first = manager.allocate(target.clone()).await?;
    let second = manager.allocate(target.clone()).await?;
    drop(manager.allocate(target.clone()).await?); // back to the pool: idle
    first.discard(); // closed: counted by reason, its duration recorded
    drop(second);

    let scrape = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .await??;
    for line in scrape
        .lines()
        .filter(|l| l.starts_with("http_client") || l.starts_with("keepalive"))
    {
        println!("{line}");
    }
    Ok(())
}
