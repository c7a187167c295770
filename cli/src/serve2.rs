//! The built-in server's HTTP/2 (`serve --http2`): hyper's h2c server,
//! the same body for every request, the stream limit of `--max-streams`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::serve::{Options, BODY};

/// A stream limit when none is given: RFC 9113's recommended minimum.
const DEFAULT_STREAMS: u32 = 100;

/// Serves one connection over HTTP/2 by prior knowledge until it ends.
pub(crate) async fn connection(stream: TcpStream, options: Options) {
    let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
        let body = match req.method() == http::Method::HEAD {
            true => Bytes::new(),
            false => Bytes::from_static(BODY.as_bytes()),
        };
        Ok::<_, Infallible>(http::Response::new(Full::new(body)))
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(options.max_streams.unwrap_or(DEFAULT_STREAMS))
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
