//! gRPC on keepalive's pool: starts tonic's server on loopback with a
//! stream limit of 8, makes 64 unary calls at once with tonic's generated
//! client on keepalive-hyper (`max_per_host(4)`), and prints how they were
//! spread over connections.
//!
//! `cargo run -p keepalive-grpc-example --example grpc`

use std::collections::BTreeMap;

use keepalive_grpc_example::echo::SayRequest;
use keepalive_grpc_example::{client, start_server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, accepted) = start_server(8, None).await?;
    let echo = client(
        &format!("http://{addr}"),
        keepalive::Manager::builder().max_per_host(4),
    )?;
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let mut echo = echo.clone();
            tokio::spawn(async move {
                echo.say(SayRequest {
                    text: format!("call {i}"),
                })
                .await
            })
        })
        .collect();
    let mut by_connection = BTreeMap::new();
    for call in calls {
        let reply = call.await??.into_inner();
        *by_connection.entry(reply.connection).or_insert(0) += 1;
    }
    println!(
        "64 calls over {} connections (server accepted {}):",
        by_connection.len(),
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    );
    for (port, calls) in by_connection {
        println!("  client port {port}: {calls} calls");
    }
    Ok(())
}
