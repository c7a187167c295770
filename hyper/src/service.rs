//! [`Client`] as a `tower_service::Service`, so that tower stacks and
//! tonic's generated clients run on it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::conn::{BoxError, SendBody};
use crate::{Body, Client, Error};

/// A tower `Service`: `call` is [`Client::request`]. `poll_ready` is
/// always ready, as the pool queues a request that finds no connection
/// (within its limits and timeout) instead of pushing back.
///
/// # Examples
///
/// ```
/// use tower_service::Service;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let url = format!("http://{}/", listener.local_addr()?);
/// # tokio::spawn(async move {
/// #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// #     while let Ok((mut s, _)) = listener.accept().await {
/// #         tokio::spawn(async move {
/// #             let mut b = [0; 4096];
/// #             while let Ok(1..) = s.read(&mut b).await {
/// #                 let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
/// #             }
/// #         });
/// #     }
/// # });
/// let mut client: keepalive_hyper::Client = keepalive_hyper::Client::new();
/// std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
/// let response = client.call(http::Request::get(url).body(Default::default())?).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// ```
impl<B> tower_service::Service<Request<B>> for Client<B>
where
    B: SendBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.request(req).await })
    }
}
