//! Request and response bodies as the HTTP server hands them to s3s and to hyper.
//!
//! - [`RequestBody`] aborts a body that brings no byte for the progress timeout while the
//!   server waits for it, and bounds bodies that are read whole (XML) once s3s has named the
//!   operation ([`check_body_limit`], called from the access gate in `access.rs`).
//! - [`ResponseBody`] keeps its request counted as in flight on its connection until hyper has
//!   written the last byte (or the connection died), so a long GET is never taken for idle.
//!
//! Why the XML bound is ours: s3s 0.14 reads such bodies through `http_body_util::Limited` but
//! recognises only its own `BodySizeLimitExceeded` error, so a body over `xml_max_body_size`
//! answered InternalError (500, measured: a 25 MiB DeleteObjects). Here a declared length over
//! [`XML_BODY_BYTES_MAX`] is refused before any byte is read, and a chunked body is cut at it;
//! `serve` turns the cut (and a stalled body) into the right 400.
//!
//! Does not decide which error reaches the client (`serve`) nor log anything (`http_log`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use s3s::access::S3AccessContext;
use s3s::{s3_error, S3Result};

use crate::http_conns::InFlight;
use crate::limits::XML_BODY_BYTES_MAX;

/// What happened to one request's body, shared between the body, the access check and `serve`.
#[derive(Debug)]
pub struct BodyGuard {
    limit_bytes: AtomicU64,
    read_bytes: AtomicU64,
    ended: AtomicBool,
    too_large: AtomicBool,
    timed_out: AtomicBool,
}

/// Why a request body was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Over the bound of a body read whole.
    TooLarge,
    /// No byte for the progress timeout.
    Stalled,
}

impl BodyGuard {
    pub fn new() -> Arc<BodyGuard> {
        Arc::new(BodyGuard {
            limit_bytes: AtomicU64::new(u64::MAX),
            read_bytes: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            too_large: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
        })
    }

    /// Bounds the body from now on.
    pub fn limit(&self, bytes: u64) {
        self.limit_bytes.store(bytes, Ordering::Release);
    }

    /// Why the body was aborted, if it was.
    pub fn fault(&self) -> Option<BodyFault> {
        if self.too_large.load(Ordering::Acquire) {
            Some(BodyFault::TooLarge)
        } else if self.timed_out.load(Ordering::Acquire) {
            Some(BodyFault::Stalled)
        } else {
            None
        }
    }

    /// Whether the whole body was read.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// The error a [`RequestBody`] ends with.
#[derive(Debug)]
pub enum BodyError {
    Fault(BodyFault),
    Transport(hyper::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Fault(BodyFault::TooLarge) => write!(f, "request body over its bound"),
            BodyError::Fault(BodyFault::Stalled) => write!(f, "request body stalled"),
            BodyError::Transport(e) => write!(f, "reading the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// hyper's request body with a progress timeout and an optional size bound.
pub struct RequestBody {
    inner: hyper::body::Incoming,
    guard: Arc<BodyGuard>,
    progress_timeout: Duration,
    /// Armed when the reader starts waiting for the client, disarmed by each frame: time the
    /// server spends not asking for the body (a slow disk) is not charged to the client.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl RequestBody {
    pub fn new(
        inner: hyper::body::Incoming,
        guard: Arc<BodyGuard>,
        progress_timeout: Duration,
    ) -> RequestBody {
        RequestBody {
            inner,
            guard,
            progress_timeout,
            stall: None,
        }
    }

    fn fail(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let flag = match fault {
            BodyFault::TooLarge => &self.guard.too_large,
            BodyFault::Stalled => &self.guard.timed_out,
        };
        flag.store(true, Ordering::Release);
        self.stall = None;
        Poll::Ready(Some(Err(BodyError::Fault(fault))))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.guard.fault().is_some() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.stall = None;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    let read = self.guard.read_bytes.fetch_add(len, Ordering::AcqRel) + len;
                    if read > self.guard.limit_bytes.load(Ordering::Acquire) {
                        return self.fail(BodyFault::TooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.stall = None;
                Poll::Ready(Some(Err(BodyError::Transport(e))))
            }
            Poll::Ready(None) => {
                self.stall = None;
                self.guard.ended.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = self.progress_timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    return self.fail(BodyFault::Stalled);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.guard.fault().is_some() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request in flight until it is dropped.
pub struct ResponseBody {
    inner: s3s::Body,
    _in_flight: InFlight,
}

impl ResponseBody {
    pub fn new(inner: s3s::Body, in_flight: InFlight) -> ResponseBody {
        ResponseBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = <s3s::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Operations whose body streams to the handler (objects, parts); every other body is read
/// whole and bounded by [`XML_BODY_BYTES_MAX`].
fn streams_body(operation: &str) -> bool {
    matches!(operation, "PutObject" | "UploadPart" | "PostObject")
}

/// Bounds bodies read whole, once the operation is known and before a body is read (called from
/// the access gate, `access.rs`, which s3s runs then).
pub fn check_body_limit(cx: &mut S3AccessContext<'_>) -> S3Result<()> {
    if streams_body(cx.s3_op().name()) {
        return Ok(());
    }
    let declared = cx
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > XML_BODY_BYTES_MAX as u64) {
        return Err(s3_error!(
            MaxMessageLengthExceeded,
            "Your request was too big: a {} body is at most {XML_BODY_BYTES_MAX} bytes.",
            cx.s3_op().name()
        ));
    }
    if let Some(guard) = cx.extensions_mut().get::<Arc<BodyGuard>>() {
        guard.limit(XML_BODY_BYTES_MAX as u64);
    }
    Ok(())
}
