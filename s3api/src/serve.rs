//! The HTTP server: accepts connections on a tokio listener (TCP_NODELAY on each), serves them
//! with hyper (HTTP/1.1 and HTTP/2) through the s3s service, and on shutdown stops accepting and
//! drains in-flight requests (bounded by a timeout). A node runs the same connections on its
//! cores instead (`serve_cores`): `Shared` and `Connection` serve both.
//!
//! Hostile connections must not starve clients. Each connection lives under [`HttpLimits`]:
//! - a header-read timeout (hyper's, on its tokio timer): a client sending its headers a byte
//!   at a time is cut when it runs out, however many bytes it sent;
//! - an idle timeout: a connection with no request in flight is closed (gracefully: HTTP/2 gets
//!   a GOAWAY);
//! - a body-progress timeout, both ways: a request body that stops arriving answers
//!   RequestTimeout (`http_body`), a client that stops reading its response (the socket stays
//!   full) is disconnected (`http_conns::Metered`);
//! - a global and a per-client-address cap on connections, where the oldest idle connection
//!   makes room for a new one (`http_conns`).
//!
//! With [`crate::tls::Tls`] the connections are HTTPS: the handshake runs in the connection's
//! task, under the header-read timeout and counted idle for the caps like unsent headers, and
//! each request over it carries the [`crate::tls::SecureTransport`] extension.
//!
//! An `OPTIONS` naming a bucket is a CORS preflight, answered here (s3s routes none), and a
//! response to a request with an `Origin` gets its bucket's CORS headers (`cors`).
//!
//! Every response gets an `x-amz-request-id`, error bodies a `<RequestId>`, and a failed
//! request one log line (`http_log`).
//!
//! Auth fixes that must act before or after s3s live here too (rules in `access.rs` docs): a
//! malformed `x-amz-content-sha256` is refused before s3s (which calls it a bad signature), a
//! SigV4 request dated by `Date` alone gets the `x-amz-date` s3s requires, and a wrong chunk
//! signature, which s3s's stream error makes the handler call IncompleteBody, is re-answered
//! 403 SignatureDoesNotMatch.
//!
//! For the bucket-policy gate (`authz`), every request carries the client's address
//! ([`crate::authz::Peer`], `aws:SourceIp`) and a [`crate::authz::HideMissing`] flag: when the
//! gate sets it (a caller allowed to read but not to list), the request's 404 is answered 403
//! AccessDenied, so the caller cannot tell a missing key from a forbidden one.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto::{Builder, Connection as HttpConnection};
use s3s::service::S3Service;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::authz::{HideMissing, Peer};
use crate::http_body::{BodyFault, BodyGuard, RequestBody, ResponseBody};
use crate::http_conns::{Caps, ConnState, Metered, Registry, Ticket};
use crate::tls::{SecureTransport, Tls};
use crate::{http_log, limits};

/// The connection limits and timeouts of one server (`percore serve --help` names the flags).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub connections_max: usize,
    pub connections_per_client_max: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_progress_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            connections_max: limits::CONNECTIONS_MAX,
            connections_per_client_max: limits::CONNECTIONS_PER_CLIENT_MAX,
            header_read_timeout: limits::HEADER_READ_TIMEOUT,
            idle_timeout: limits::IDLE_TIMEOUT,
            body_progress_timeout: limits::BODY_PROGRESS_TIMEOUT,
        }
    }
}

impl HttpLimits {
    /// Refuses zero caps and zero timeouts (a zero would serve nothing or cut everything).
    pub fn check(&self) -> Result<(), String> {
        if self.connections_max == 0 || self.connections_per_client_max == 0 {
            return Err("connection caps must be positive".to_owned());
        }
        if self.connections_per_client_max > self.connections_max {
            return Err(format!(
                "--connections-per-client-max ({}) exceeds --connections-max ({})",
                self.connections_per_client_max, self.connections_max
            ));
        }
        for (name, t) in [
            ("--header-read-timeout-secs", self.header_read_timeout),
            ("--idle-timeout-secs", self.idle_timeout),
            ("--body-timeout-secs", self.body_progress_timeout),
        ] {
            if t.is_zero() {
                return Err(format!("{name} must be positive"));
            }
        }
        Ok(())
    }
}

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

/// GetObjectAttributes shows its ETag unquoted (S3 does; s3s quotes every ETag): its handler
/// marks the response (`attributes::UNQUOTED_ETAG_HEADER`), whose small XML body is rewritten.
fn unquote_etag(response: &mut http::Response<s3s::Body>) {
    if response
        .headers_mut()
        .remove(crate::attributes::UNQUOTED_ETAG_HEADER)
        .is_none()
    {
        return;
    }
    let Some(body) = response.body().bytes() else {
        return;
    };
    if let Some(unquoted) = crate::attributes::unquote_etag(&body) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, unquoted.len().into());
        *response.body_mut() = s3s::Body::from(bytes::Bytes::from(unquoted));
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

/// What a server serves: the s3s service, and the CORS front that answers preflights (which
/// s3s does not route) and stamps cross-origin responses (`cors`).
#[derive(Clone)]
pub struct Service {
    pub s3: S3Service,
    pub cors: Arc<crate::cors::Front>,
    /// Browser POST uploads, served before s3s (`post_upload`).
    pub post: Arc<crate::post_upload::Post>,
    /// Where a request refused as routed by an old layout waits for the newer map (`rerun`).
    pub backend: Arc<cluster::backend::Backend>,
}

/// How long an accept loop at the cap with every connection busy waits before looking again
/// (a connection turning idle wakes nobody).
pub(crate) const ROOM_POLL: Duration = Duration::from_millis(50);

/// Serves `listener` until `shutdown`; over TLS when `tls` is given. (`percore gateway`; a node
/// serves on its cores, `serve_cores`.)
pub async fn serve(
    listener: TcpListener,
    service: Service,
    shutdown: impl Future<Output = ()>,
    limits: HttpLimits,
    tls: Option<Arc<Tls>>,
) {
    let shared = Shared::new(service, limits, tls);
    let builder = shared.builder(Exec::Tokio);
    let mut stop = shared.stop.clone();
    let accepting = async {
        loop {
            tokio::select! {
                () = shared.registry.room(ROOM_POLL) => {}
                () = stopped(&mut stop) => break,
            }
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        accept_failed(&e, &shared.registry).await;
                        continue;
                    }
                },
                () = stopped(&mut stop) => break,
            };
            // Without it a response written in two pieces waits ~40 ms for a delayed ACK.
            let _ = stream.set_nodelay(true);
            if let Some(connection) = shared.connection(&builder, peer) {
                tokio::spawn(connection.run(stream));
            }
        }
    };
    tokio::join!(accepting, shared.stop_after(shutdown));
    drop(listener);
    shared.drain().await;
}

/// What every accept loop of one server shares: the service, the limits, the connection
/// registry (caps are per server, whichever core accepted), and the stop signal.
pub(crate) struct Shared {
    pub(crate) service: Service,
    pub(crate) limits: HttpLimits,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) registry: Arc<Registry>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn new(service: Service, limits: HttpLimits, tls: Option<Arc<Tls>>) -> Shared {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        Shared {
            service,
            limits,
            tls,
            registry: Registry::new(Caps {
                connections_max: limits.connections_max,
                per_client_max: limits.connections_per_client_max,
            }),
            stop_tx,
            stop,
        }
    }

    /// hyper's connection builder, its HTTP/2 streams run by `exec`.
    pub(crate) fn builder(&self, exec: Exec) -> Builder<Exec> {
        let mut builder = Builder::new(exec);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        builder
    }

    /// An accepted connection from `peer`, admitted under the caps (`None`: refused).
    pub(crate) fn connection(
        &self,
        builder: &Builder<Exec>,
        peer: SocketAddr,
    ) -> Option<Connection> {
        let ticket = match self.registry.admit(peer.ip()) {
            Ok(t) => t,
            Err(refused) => {
                tracing::debug!(%peer, ?refused, "connection refused");
                return None;
            }
        };
        Some(Connection {
            builder: builder.clone(),
            service: self.service.clone(),
            limits: self.limits,
            ticket,
            peer,
            stop: self.stop.clone(),
            tls: self.tls.as_ref().map(|tls| tls.acceptor()),
        })
    }

    /// Tells every accept loop and connection to stop once `shutdown` ends.
    pub(crate) async fn stop_after(&self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let _ = self.stop_tx.send(true);
    }

    /// Waits for the connections to close (after the stop), at most `DRAIN_TIMEOUT`.
    pub(crate) async fn drain(&self) {
        let _ = self.stop_tx.send(true);
        if tokio::time::timeout(DRAIN_TIMEOUT, self.registry.drained())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
        }
        let (shed, refused) = self.registry.counters();
        if shed + refused > 0 {
            tracing::info!(shed, refused, "connections shed or refused at the caps");
        }
    }
}

/// Who runs a connection's HTTP/2 streams: tokio's pool (`percore gateway`), or the core whose
/// executor serves the connection (`serve_cores`), with the tokio runtime entered for the
/// timers and spawns the service uses.
#[derive(Clone)]
pub(crate) enum Exec {
    Tokio,
    Core(tokio::runtime::Handle),
}

impl<F> hyper::rt::Executor<F> for Exec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        match self {
            Exec::Tokio => {
                tokio::spawn(future);
            }
            Exec::Core(runtime) => {
                glommio::spawn_local(crate::serve_cores::InRuntime::new(
                    runtime.clone(),
                    async move {
                        future.await;
                    },
                ))
                .detach();
            }
        }
    }
}

/// A failed accept. Out of file descriptors (EMFILE, ENFILE): the oldest idle connection is
/// closed so the next accept can succeed.
pub(crate) async fn accept_failed(e: &std::io::Error, registry: &Registry) {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    let out_of_files = matches!(e.raw_os_error(), Some(EMFILE | ENFILE));
    if out_of_files && registry.shed_oldest_idle() {
        tracing::warn!(error = %e, "out of file descriptors: closed the oldest idle connection");
    } else {
        tracing::warn!(error = %e, "accept failed");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// One accepted connection and what it needs to serve itself.
pub(crate) struct Connection {
    builder: Builder<Exec>,
    service: Service,
    limits: HttpLimits,
    ticket: Ticket,
    peer: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
    /// The acceptor current when the connection was accepted (a reload changes later ones).
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Connection {
    /// Runs the TLS handshake if any (cut at the header-read timeout, when the connection is
    /// shed or the server stops), then serves the connection.
    pub(crate) async fn run<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let io = Metered::new(stream, Arc::clone(&self.ticket.state));
        let Some(acceptor) = self.tls.take() else {
            return self.serve(io, false).await;
        };
        let state = Arc::clone(&self.ticket.state);
        let timeout = self.limits.header_read_timeout;
        let handshake = tokio::select! {
            done = tokio::time::timeout(timeout, acceptor.accept(io)) => done,
            () = state.shed() => return,
            () = stopped(&mut self.stop) => return,
        };
        match handshake {
            Ok(Ok(tls)) => self.serve(tls, true).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    /// Serves the connection until it ends, is shed, stays idle past the idle timeout, or the
    /// server stops (the last two close it gracefully, within `DRAIN_TIMEOUT`). `secure`: it
    /// came over TLS.
    async fn serve<I>(mut self, io: I, secure: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let state = Arc::clone(&self.ticket.state);
        let svc = {
            let state = Arc::clone(&state);
            let service = self.service.clone();
            let body_timeout = self.limits.body_progress_timeout;
            let peer = self.peer.ip();
            hyper::service::service_fn(move |req| {
                handle(
                    service.clone(),
                    Arc::clone(&state),
                    body_timeout,
                    (secure, peer),
                    req,
                )
            })
        };
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), svc)
            .into_owned();
        tokio::pin!(conn);
        let idle_timeout = self.limits.idle_timeout;
        let unread_timeout = self.limits.body_progress_timeout;
        let ended = loop {
            let wait = match (state.idle_for(), state.unread_for()) {
                (Some(idle), _) => idle_timeout.saturating_sub(idle),
                (None, Some(unread)) => unread_timeout.saturating_sub(unread),
                (None, None) => idle_timeout.min(unread_timeout),
            };
            tokio::select! {
                ended = conn.as_mut() => break Some(ended),
                () = state.shed() => break None,
                () = stopped(&mut self.stop) => {
                    break closing(conn.as_mut(), HttpConnection::graceful_shutdown).await;
                }
                () = tokio::time::sleep(wait) => {
                    if state.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                        break closing(conn.as_mut(), HttpConnection::graceful_shutdown).await;
                    }
                    if state.unread_for().is_some_and(|unread| unread >= unread_timeout) {
                        tracing::debug!(peer = %self.peer, "client stopped reading");
                        break None;
                    }
                }
            }
        };
        if let Some(Err(e)) = ended {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
        drop(self.ticket);
    }
}

/// Ends when the server stops.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the server is gone: stop too.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// Asks hyper to close the connection after its requests in flight (`close`: the connection
/// type's `graceful_shutdown`) and waits, at most `DRAIN_TIMEOUT`.
async fn closing<C: Future>(
    mut conn: std::pin::Pin<&mut C>,
    close: impl FnOnce(std::pin::Pin<&mut C>),
) -> Option<C::Output> {
    close(conn.as_mut());
    tokio::time::timeout(DRAIN_TIMEOUT, conn).await.ok()
}

/// One request: counted in flight on its connection until its response body is dropped,
/// its body guarded (`http_body`), its response stamped and logged (`http_log`).
async fn handle(
    service: Service,
    conn: Arc<ConnState>,
    body_timeout: Duration,
    (secure, peer): (bool, std::net::IpAddr),
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<ResponseBody>, s3s::HttpError> {
    let in_flight = conn.begin();
    let request_id = http_log::new_request_id();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let (parts, body) = req.into_parts();
    let preflight = if method == http::Method::OPTIONS {
        service.cors.preflight(&parts, &request_id).await
    } else {
        None
    };
    let cross_origin = service.cors.actual(&parts);
    let req = http::Request::from_parts(parts, body);
    let mut response = if method == http::Method::GET && uri.path() == crate::metrics::PATH {
        metrics_response()
    } else if let Some(mut preflight) = preflight {
        // Its body, if any, is not read: close rather than take it for the next request.
        if declares_body(req.headers()) {
            preflight.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        preflight
    } else {
        let expect = expects_continue(req.headers());
        let declares_body = declares_body(req.headers());
        let mut guard = BodyGuard::new();
        // Whether the body was read whole before the request ran.
        let mut read_before = false;
        // The budget a large body read whole takes, until the request has run (`kept_body`).
        let mut _kept = Kept::Streamed;
        let aws_chunked = req
            .headers()
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
        let refused = bad_content_sha256(req.headers(), &request_id)
            .or_else(|| session_token_refused(&req, &request_id));
        let mut response = if let Some(refused) = refused {
            refused
        } else {
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(Arc::clone(&guard));
            if secure {
                parts.extensions.insert(SecureTransport);
            }
            let hide_missing = HideMissing::default();
            parts.extensions.insert(hide_missing.clone());
            parts.extensions.insert(Peer(peer));
            if let Some(amz_date) = crate::access::amz_date_from_date(&parts.headers) {
                parts.headers.insert("x-amz-date", amz_date);
                parts.extensions.insert(crate::access::AmzDateFromDate);
            }
            let mut body = RequestBody::new(body, Arc::clone(&guard), body_timeout);
            if aws_chunked {
                body = body.aws_chunked();
            }
            // In a process that follows a control plane, a request can run again as it came
            // (`rerun`) if it has no body, or one read whole before it runs (`kept_body`: the
            // read passes the same checks; each run gets the bytes through a guard of its own,
            // as the first run's body would have). Elsewhere a refused request cannot be
            // routed again, and nothing is kept.
            let reruns = service.backend.can_catch_up();
            let kept = if reruns {
                kept_body(
                    &parts.headers,
                    declares_body,
                    service.backend.transition().is_some(),
                )
            } else {
                Kept::Streamed
            };
            let (body, whole) = if let Kept::Streamed = kept {
                (Ok(body), None)
            } else {
                _kept = kept;
                match body.read_whole().await {
                    Ok(whole) => {
                        guard = BodyGuard::new();
                        parts.extensions.insert(Arc::clone(&guard));
                        let mut body =
                            RequestBody::replay(whole.clone(), Arc::clone(&guard), body_timeout);
                        if aws_chunked {
                            body = body.aws_chunked();
                        }
                        (Ok(body), Some(whole))
                    }
                    // The guard holds the fault (answered below), if it was one of ours.
                    Err(_) => (Err(()), None),
                }
            };
            read_before = whole.is_some();
            let mut response = match body {
                Err(()) => error_response(
                    http::StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "The request body ended before its declared length.",
                    &request_id,
                ),
                Ok(body) => {
                    let again = (reruns && (!declares_body || whole.is_some())).then(|| Again {
                        head: parts.clone(),
                        body: whole,
                        aws_chunked,
                        body_timeout,
                    });
                    let request = http::Request::from_parts(parts, s3s::Body::http_body(body));
                    if let Some(bucket) = service.post.target(&request) {
                        let served = service.post.serve(bucket, request, &request_id);
                        crate::authz::with_gate_reads(served).await
                    } else {
                        let ran;
                        (ran, guard) = rerun(&service, request, guard, again).await;
                        ran?
                    }
                }
            };
            apply_status(&mut response);
            unquote_etag(&mut response);
            // A caller the bucket policy lets read but not list learns nothing from a 404.
            if hide_missing.is_set() && response.status() == http::StatusCode::NOT_FOUND {
                response = error_response(
                    http::StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "Access Denied",
                    &request_id,
                );
            }
            if let Some(fault) = guard.fault() {
                response = fault_response(fault, &request_id);
            } else if aws_chunked && chunk_signature_mismatch(&response) {
                response = error_response(
                    http::StatusCode::FORBIDDEN,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you \
                     provided: a chunk signature of the aws-chunked body is wrong.",
                    &request_id,
                );
            }
            response
        };
        let failed = response.status().is_client_error() || response.status().is_server_error();
        // A body left unread would be taken for the next request: close instead.
        if close_after(expect, response.status())
            || (failed && declares_body && !read_before && !guard.ended())
        {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        if let Some(cross_origin) = cross_origin {
            service.cors.decorate(cross_origin, &mut response).await;
        }
        response
    };
    http_log::finish(&mut response, &request_id, &method, &uri);
    Ok(response.map(|body| ResponseBody::new(body, in_flight)))
}

/// How a request's body reaches its handler (`kept_body`).
enum Kept {
    /// Streamed through once: the request cannot run again.
    Streamed,
    /// Read whole first: a small body.
    Small,
    /// Read whole first: a larger one, during a layout change, with the room it takes in the
    /// process's budget (given back when this drops).
    Held { _room: HeldBody },
}

/// Whether a request's body is read whole before it runs, so that it can run again
/// (`rerun`): a declared length up to `RERUN_BODY_BYTES_MAX`, or, while a layout change is in
/// progress in this process's map (`changing`), up to `RERUN_CHANGE_BODY_BYTES_MAX` if the
/// process's budget for such bodies has room. A client that sends `Expect: 100-continue`
/// (botocore does, for every PutObject) then gets its go-ahead before the request's checks:
/// a refusal costs it the bytes sent.
fn kept_body(headers: &http::HeaderMap, declares_body: bool, changing: bool) -> Kept {
    if !declares_body || headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Kept::Streamed;
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(bytes) if bytes <= limits::RERUN_BODY_BYTES_MAX => Kept::Small,
        Some(bytes) if changing && bytes <= limits::RERUN_CHANGE_BODY_BYTES_MAX => {
            HeldBody::take(&HELD_BYTES, bytes)
                .map_or(Kept::Streamed, |room| Kept::Held { _room: room })
        }
        _ => Kept::Streamed,
    }
}

/// Bytes of the bodies over `RERUN_BODY_BYTES_MAX` read whole in this process (`HeldBody`).
static HELD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Room a body read whole during a layout change takes in its process's budget
/// (`RERUN_HELD_BYTES_MAX`), given back when the request has run.
struct HeldBody {
    budget: &'static AtomicU64,
    bytes: u64,
}

impl HeldBody {
    /// `bytes` of `budget`, if it has that much room left.
    fn take(budget: &'static AtomicU64, bytes: u64) -> Option<HeldBody> {
        budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes)
                    .filter(|&after| after <= limits::RERUN_HELD_BYTES_MAX)
            })
            .ok()
            .map(|_| HeldBody { budget, bytes })
    }
}

impl Drop for HeldBody {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What a request needs to run again (`rerun`): its head as s3s got it, and its body if it
/// has one (read whole before the first run).
struct Again {
    head: http::request::Parts,
    body: Option<Bytes>,
    aws_chunked: bool,
    body_timeout: Duration,
}

impl Again {
    /// The request again, with a body guard of its own (returned) for the checks of its body.
    fn request(&self) -> (http::Request<s3s::Body>, Arc<BodyGuard>) {
        let guard = BodyGuard::new();
        let mut head = self.head.clone();
        head.extensions.insert(Arc::clone(&guard));
        let body = match &self.body {
            None => s3s::Body::empty(),
            Some(whole) => {
                let mut body =
                    RequestBody::replay(whole.clone(), Arc::clone(&guard), self.body_timeout);
                if self.aws_chunked {
                    body = body.aws_chunked();
                }
                s3s::Body::http_body(body)
            }
        };
        (http::Request::from_parts(head, body), guard)
    }
}

/// Runs a request through s3s. When it answered 503 because a node refused one of its frames
/// as routed by an old layout, and it can run again as it came (`again`: no body, or one
/// read whole before the first run, `kept_body`), it runs again once this process applied the
/// map that node named (`Backend::caught_up`), at most `REROUTES_MAX` times: the client gets
/// the answer of the newer routing instead of a 503 to retry. A request whose body streamed
/// still answers 503 (SDKs retry 503s). The run that was refused did nothing it must not do
/// twice: a core that refuses a frame runs nothing of it, and a write whose head a core
/// refused never commits (cluster/DESIGN.md). Returns the response and the body guard of the
/// last run.
async fn rerun(
    service: &Service,
    request: http::Request<s3s::Body>,
    guard: Arc<BodyGuard>,
    again: Option<Again>,
) -> (
    Result<http::Response<s3s::Body>, s3s::HttpError>,
    Arc<BodyGuard>,
) {
    let call = |request| {
        cluster::backend::noting_refusals(crate::authz::with_gate_reads(service.s3.call(request)))
    };
    let (mut response, mut refused_at) = call(request).await;
    let (mut guard, mut reruns, mut gave_up, mut applied) = (guard, 0, None, 0);
    while let (Some(index), Some(again)) = (refused_at, again.as_ref()) {
        if response.as_ref().map(http::Response::status).ok()
            != Some(http::StatusCode::SERVICE_UNAVAILABLE)
        {
            break;
        }
        if reruns == REROUTES_MAX {
            gave_up = Some("refused_again");
            break;
        }
        if index > applied {
            if !service.backend.caught_up(index).await {
                gave_up = Some("not_applied");
                break;
            }
            applied = index;
        } else {
            // The node raised its floor for a map it is still applying (it waits for what it
            // admitted under the floor before), and names the map before, which this process
            // has: the next refusal, once it is done, names the new one.
            tokio::time::sleep(cluster::limits::REROUTE_BEHIND_PAUSE).await;
        }
        reruns += 1;
        tracing::debug!(
            index,
            reruns,
            "a request refused by an old layout runs again"
        );
        let request;
        (request, guard) = again.request();
        (response, refused_at) = call(request).await;
    }
    match gave_up {
        Some(why) => crate::metrics::global().request_rerouted(why),
        None if reruns > 0 => crate::metrics::global().request_rerouted("served"),
        None => {}
    }
    (response, guard)
}

/// How many times one request is run again after layout refusals. A change of 256 groups
/// takes 16 steps, and a process without a voter to follow learns of each by a refusal (two
/// reruns were measured not to be enough). A run that lasts longer than a step (a body of
/// megabytes, a loaded machine) can be overtaken by the next one: a 1 MiB PUT through a pure
/// gateway in CI was refused 9 times in one drain when the bound was 8. Each run waits for
/// its map first (`Backend::caught_up`), so the bound is on steps, not on a busy loop.
const REROUTES_MAX: usize = 32;

/// Whether a request says it has a body.
fn declares_body(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// The answer to a request whose body was aborted (the handler's own error is replaced: s3s
/// reports a cut body as InternalError).
fn fault_response(fault: BodyFault, request_id: &str) -> http::Response<s3s::Body> {
    let (code, message) = match fault {
        BodyFault::TooLarge => (
            "MaxMessageLengthExceeded",
            format!(
                "Your request was too big: a body read whole is at most {} bytes.",
                limits::XML_BODY_BYTES_MAX
            ),
        ),
        BodyFault::Stalled => (
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the \
             timeout period."
                .to_owned(),
        ),
        BodyFault::Incomplete => (
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP \
             header: the aws-chunked body ended before its final zero-length chunk."
                .to_owned(),
        ),
        BodyFault::BadDigest(header) => (
            "BadDigest",
            format!("The {header} you specified did not match what we received."),
        ),
    };
    error_response(http::StatusCode::BAD_REQUEST, code, &message, request_id)
}

/// Whether a response is the handler's IncompleteBody for a body whose chunk signature s3s
/// found wrong. s3s 0.14 reports it as a stream error of a private type that handlers read as
/// a cut body; AWS answers 403 SignatureDoesNotMatch. The error's text is s3s's (pinned in
/// Cargo.lock); the handler in `s3.rs` puts it in the message.
fn chunk_signature_mismatch(response: &http::Response<s3s::Body>) -> bool {
    if response.status() != http::StatusCode::BAD_REQUEST {
        return false;
    }
    let Some(body) = response.body().bytes() else {
        return false;
    };
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"<Code>IncompleteBody</Code>") && has(b"AwsChunkedStreamError: SignatureMismatch")
}

/// An S3 XML error, for what is refused or re-answered outside s3s.
pub(crate) fn error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let mut response = http::Response::new(s3s::Body::from(http_log::error_body(
        code, message, request_id,
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

/// What `x-amz-content-sha256` may be (AWS): a lowercase hex SHA-256 or one of the named
/// payload modes. s3s refuses anything else as SignatureDoesNotMatch (403), which tells the
/// client its key is wrong; AWS answers 400 InvalidArgument, checked here before s3s runs.
fn content_sha256_valid(value: &[u8]) -> bool {
    const MODES: [&[u8]; 6] = [
        b"UNSIGNED-PAYLOAD",
        b"STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        b"STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        b"STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
    ];
    let hex = value.len() == 64 && value.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    hex || MODES.contains(&value)
}

/// The refusal of a request signed with temporary credentials (`x-amz-security-token`, or
/// `X-Amz-Security-Token` in a presigned URL): percore has no STS, so a session token would
/// otherwise be ignored and the request judged by its access key alone. (Browser POST forms
/// refuse the field the same way, `post_upload`.)
fn session_token_refused<B>(
    req: &http::Request<B>,
    request_id: &str,
) -> Option<http::Response<s3s::Body>> {
    let in_query = req.uri().query().is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            name.eq_ignore_ascii_case("X-Amz-Security-Token")
        })
    });
    if !in_query && !req.headers().contains_key("x-amz-security-token") {
        return None;
    }
    Some(error_response(
        http::StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        "x-amz-security-token: temporary credentials (session tokens) are not supported; \
         sign with a user's access key and no session token.",
        request_id,
    ))
}

/// The refusal of a request whose `x-amz-content-sha256` is malformed (several count as one).
fn bad_content_sha256(
    headers: &http::HeaderMap,
    request_id: &str,
) -> Option<http::Response<s3s::Body>> {
    let mut values = headers.get_all("x-amz-content-sha256").iter();
    let first = values.next()?;
    if values.next().is_none() && content_sha256_valid(first.as_bytes()) {
        return None;
    }
    Some(error_response(
        http::StatusCode::BAD_REQUEST,
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, \
         STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, \
         STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, \
         STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
        request_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(length: Option<u64>, chunked: bool) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(n) = length {
            h.insert(http::header::CONTENT_LENGTH, n.into());
        }
        if chunked {
            h.insert(
                http::header::TRANSFER_ENCODING,
                http::HeaderValue::from_static("chunked"),
            );
        }
        h
    }

    /// Which bodies are read whole so that their request can run again: small ones always,
    /// larger ones up to the bound only while a change is in progress, never a body without a
    /// declared length.
    #[test]
    fn bodies_are_kept_by_size_and_while_a_layout_changes() {
        let kept = |length, chunked, changing| match kept_body(
            &headers(length, chunked),
            true,
            changing,
        ) {
            Kept::Streamed => "streamed",
            Kept::Small => "small",
            Kept::Held { .. } => "held",
        };
        let small = limits::RERUN_BODY_BYTES_MAX;
        let large = limits::RERUN_CHANGE_BODY_BYTES_MAX;
        assert_eq!(kept(Some(small), false, false), "small");
        assert_eq!(kept(Some(small + 1), false, false), "streamed");
        assert_eq!(kept(Some(small + 1), false, true), "held");
        assert_eq!(kept(Some(large), false, true), "held");
        assert_eq!(kept(Some(large + 1), false, true), "streamed");
        assert_eq!(kept(Some(1), true, true), "streamed");
        assert_eq!(kept(None, false, true), "streamed");
        assert!(matches!(
            kept_body(&headers(Some(1), false), false, true),
            Kept::Streamed
        ));
    }

    /// The held bodies' budget is never exceeded, and what a request held comes back when
    /// it ends.
    #[test]
    fn held_bodies_stay_within_their_budget() {
        static BUDGET: AtomicU64 = AtomicU64::new(0);
        let max = limits::RERUN_HELD_BYTES_MAX;
        let body = limits::RERUN_CHANGE_BODY_BYTES_MAX;
        let held: Vec<HeldBody> = (0..max / body)
            .map(|_| HeldBody::take(&BUDGET, body).expect("room for it"))
            .collect();
        assert_eq!(BUDGET.load(Ordering::Acquire), max / body * body);
        assert!(HeldBody::take(&BUDGET, max - BUDGET.load(Ordering::Acquire) + 1).is_none());
        drop(held);
        assert_eq!(BUDGET.load(Ordering::Acquire), 0);
        assert!(HeldBody::take(&BUDGET, max).is_some());
        assert_eq!(
            BUDGET.load(Ordering::Acquire),
            0,
            "given back at once when dropped"
        );
        assert!(HeldBody::take(&BUDGET, max + 1).is_none());
    }
}
