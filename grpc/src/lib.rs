//! gRPC on keepalive's pool: tonic's generated client running on
//! [`keepalive_hyper::Client`] over HTTP/2 by prior knowledge (h2c), so
//! that calls spread over up to `max_per_host` connections at each
//! connection's stream limit, where tonic's own `Channel` keeps one.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (addr, _) = keepalive_grpc_example::start_server(8, None).await?;
//! let pool = keepalive::Manager::builder().max_per_host(4);
//! let mut echo = keepalive_grpc_example::client(&format!("http://{addr}"), pool)?;
//! let reply = echo.say(keepalive_grpc_example::echo::SayRequest { text: "hi".into() }).await?;
//! assert_eq!(reply.into_inner().text, "hi");
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

/// The `echo` service's messages, client and server, as tonic generates
/// them from `proto/echo.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod echo {
    tonic::include_proto!("echo");
}

use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{SayReply, SayRequest};

/// The gRPC client: tonic's generated one on keepalive-hyper.
pub type Client = EchoClient<keepalive_hyper::Client<tonic::body::Body>>;

/// tonic's generated client for the server at `origin`
/// (`http://host:port`), on a keepalive-hyper client with `pool`'s
/// settings speaking h2c.
///
/// # Errors
///
/// `origin` is no valid URI.
///
/// # Examples
///
/// See the [crate docs](crate).
pub fn client(origin: &str, pool: keepalive::Builder) -> Result<Client, http::uri::InvalidUri> {
    let http: keepalive_hyper::Client<tonic::body::Body> = keepalive_hyper::Client::builder()
        .pool(pool)
        .http2_prior_knowledge()
        .build();
    Ok(EchoClient::with_origin(http, origin.parse()?))
}

/// The service: answers each call with its text and the caller's port (its
/// connection), after waiting at the barrier, if any, so that a test sees
/// calls in flight together.
#[derive(Debug)]
struct Service {
    barrier: Option<Arc<Barrier>>,
}

#[tonic::async_trait]
impl Echo for Service {
    async fn say(&self, request: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
        let connection = request.remote_addr().map_or(0, |a| u64::from(a.port()));
        if let Some(barrier) = &self.barrier {
            barrier.wait().await;
        }
        Ok(Response::new(SayReply {
            text: request.into_inner().text,
            connection,
        }))
    }
}

/// Starts tonic's server on loopback with `max_streams` streams a
/// connection (SETTINGS_MAX_CONCURRENT_STREAMS), every call waiting at
/// `barrier` first; returns its address and the number of connections it
/// has accepted.
///
/// # Errors
///
/// The listener could not be bound.
///
/// # Examples
///
/// See the [crate docs](crate).
pub async fn start_server(
    max_streams: u32,
    barrier: Option<Arc<Barrier>>,
) -> std::io::Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let incoming = TcpListenerStream::new(listener).map(move |conn| {
        count.fetch_add(1, Ordering::SeqCst);
        conn
    });
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(max_streams)
        .add_service(EchoServer::new(Service { barrier }))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    Ok((addr, accepted))
}
