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

/// A request with `Expect: 100-continue` whose body was never asked for leaves the connection
/// in a state hyper and the client see differently, so such a connection is closed after the
/// response (the client pays one reconnect):
/// - with `Content-Length: 0` (boto3 and the aws CLI send it for empty objects) the final
///   response comes without a `100 Continue`, as RFC 9110 allows; botocore then kept stale state
///   on that connection and its next request waited for its read timeout (seen: 60 s per
///   request after each empty PUT);
/// - an error answered before the body was read (NoSuchUpload on UploadPart, AccessDenied on a
///   PUT): botocore sends no body after a final response, hyper still expects one and read the
///   start of the next request as that body (seen: 11 of 400 follow-up requests got an empty
///   400). A successful response always read the whole body first.
fn close_after(expect: Option<bool>, status: http::StatusCode) -> bool {
    expect.is_some_and(|empty| empty || status.is_client_error() || status.is_server_error())
}

/// `Some(body is empty)` when the request asks for `100 Continue`.
fn expects_continue(request: &http::HeaderMap) -> Option<bool> {
    let expects = request
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty = request
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    expects.then_some(empty)
}

/// s3s 0.14 answers every successful operation with the status its output implies and drops
/// `S3Response::status`; a handler that needs another one (RestoreObject's 202 Accepted) sets
/// this private header, which is turned into the status here and never reaches the client.
pub const STATUS_HEADER: &str = "x-percore-status";

fn apply_status(response: &mut http::Response<s3s::Body>) {
    let Some(v) = response.headers_mut().remove(STATUS_HEADER) else {
        return;
    };
    let status = v
        .to_str()
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok());
    if let Some(status) = status {
        *response.status_mut() = status;
    }
}

fn metrics_response() -> http::Response<s3s::Body> {
    let mut response = http::Response::new(s3s::Body::from(crate::metrics::global().encode()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
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
                    if req.method() == http::Method::GET && req.uri().path() == crate::metrics::PATH
                    {
                        return Ok(metrics_response());
                    }
                    let expect = expects_continue(req.headers());
                    let mut response = svc.call(req.map(s3s::Body::from)).await?;
                    apply_status(&mut response);
                    if close_after(expect, response.status()) {
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
