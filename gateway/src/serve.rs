//! The HTTP server: accepts connections on a tokio listener (TCP_NODELAY on each), serves them
//! with hyper (HTTP/1.1 and HTTP/2) through the s3s service, and on shutdown stops accepting and
//! drains in-flight requests (bounded by a timeout).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::service::S3Service;
use tokio::net::TcpListener;

use crate::limits::CONNECTIONS_MAX;

/// How long a shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `Expect: 100-continue` with `Content-Length: 0` (boto3 and the aws CLI send it for empty
/// objects) gets its final response without a `100 Continue`, as RFC 9110 allows; botocore then
/// keeps stale state on that connection and its next request on it waits for its read timeout
/// (seen: 60 s per request after each empty PUT). Closing such a connection after the response
/// costs the client one reconnect instead.
fn expects_continue_without_body(headers: &http::HeaderMap) -> bool {
    let expects = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty = headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    expects && empty
}

pub async fn serve(listener: TcpListener, service: S3Service, shutdown: impl Future<Output = ()>) {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without it a response written in two pieces waits ~40 ms for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let svc = service.clone();
        let conn = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let svc = svc.clone();
                async move {
                    let close = expects_continue_without_body(req.headers());
                    let mut response = svc.call(req.map(s3s::Body::from)).await?;
                    if close {
                        response.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, s3s::HttpError>(response)
                }
            }),
        );
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
    }
}
