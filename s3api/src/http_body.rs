//! Request and response bodies as the HTTP server hands them to s3s and to hyper.
//!
//! - [`RequestBody`] aborts a body that brings no byte for the progress timeout while the
//!   server waits for it, and bounds bodies that are read whole (XML) once s3s has named the
//!   operation ([`check_body_limit`], called from the access gate in `access.rs`).
//! - [`ResponseBody`] keeps its request counted as in flight on its connection until hyper has
//!   written the last byte (or the connection died), so a long GET is never taken for idle.
//!
//! - The same bodies are checked against their `Content-MD5` and `x-amz-checksum-*` headers
//!   ([`check_body_digests`], also from the gate): the digests are computed as the bytes pass
//!   and a mismatch fails the body at its end, so s3s, which reads such a body whole before it
//!   calls the handler, never calls it (found on main: a DeleteObjects with a wrong Content-MD5
//!   deleted its objects). `serve` answers 400 BadDigest; a malformed value is refused by the
//!   gate before any byte is read (InvalidDigest for Content-MD5, InvalidRequest for a checksum).
//!   Object bodies (PutObject, UploadPart) are checked by their handlers in `s3.rs`, and the
//!   `x-amz-checksum-*` of CompleteMultipartUpload, the whole object's, in `multipart.rs`.
//!
//! - An aws-chunked body (`x-amz-content-sha256: STREAMING-…`) must end with its zero-length
//!   chunk ([`ChunkFraming`] follows the framing as the bytes pass). s3s 0.14 takes a body that
//!   stops between two chunks for a complete one, so an upload cut before its final chunk was
//!   stored; here such a body fails at its end (the handler stores nothing, `serve` answers
//!   400 IncompleteBody). Parsing and signatures stay s3s's.
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
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use md5::{Digest as _, Md5};
use s3s::access::S3AccessContext;
use s3s::{s3_error, S3Result};

use crate::checksum::{self, Algo, Hashers};
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
    incomplete: AtomicBool,
    /// Set by the gate for bodies read whole that name digests; taken at the body's end.
    digests: Mutex<Option<DigestCheck>>,
    /// The header whose digest did not match.
    bad_digest: Mutex<Option<&'static str>>,
}

/// The digests a body must match and their computation so far.
struct DigestCheck {
    md5: Option<([u8; 16], Md5)>,
    hashers: Hashers,
    expected: Vec<(Algo, String)>,
}

impl fmt::Debug for DigestCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestCheck")
            .field("md5", &self.md5.as_ref().map(|(want, _)| hex::encode(want)))
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl DigestCheck {
    fn update(&mut self, data: &[u8]) {
        if let Some((_, h)) = &mut self.md5 {
            h.update(data);
        }
        self.hashers.update(data);
    }

    /// The header whose digest does not match, if one does not.
    fn mismatch(self) -> Option<&'static str> {
        if let Some((want, h)) = self.md5 {
            let got: [u8; 16] = h.finalize().into();
            if got != want {
                return Some("Content-MD5");
            }
        }
        let computed = self.hashers.finish();
        self.expected.iter().find_map(|(algo, want)| {
            let got = computed.iter().find(|s| s.algo() == *algo)?;
            (got.base64() != *want).then_some(algo.header())
        })
    }
}

/// Why a request body was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Over the bound of a body read whole.
    TooLarge,
    /// No byte for the progress timeout.
    Stalled,
    /// The body does not match the digest in the named header.
    BadDigest(&'static str),
    /// An aws-chunked body ended before its final zero-length chunk.
    Incomplete,
}

impl BodyGuard {
    pub fn new() -> Arc<BodyGuard> {
        Arc::new(BodyGuard {
            limit_bytes: AtomicU64::new(u64::MAX),
            read_bytes: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            too_large: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            incomplete: AtomicBool::new(false),
            digests: Mutex::new(None),
            bad_digest: Mutex::new(None),
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
        } else if self.incomplete.load(Ordering::Acquire) {
            Some(BodyFault::Incomplete)
        } else {
            let bad = *self
                .bad_digest
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            bad.map(BodyFault::BadDigest)
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
            BodyError::Fault(BodyFault::Incomplete) => {
                write!(f, "aws-chunked body ended before its final chunk")
            }
            BodyError::Fault(BodyFault::BadDigest(header)) => {
                write!(f, "request body does not match its {header}")
            }
            BodyError::Transport(e) => write!(f, "reading the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Where a request body's bytes come from.
enum Source {
    /// The client's connection.
    Incoming(hyper::body::Incoming),
    /// A body read whole before its request ran (`None` once sent).
    Kept(Option<Bytes>),
}

impl Source {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self {
            Source::Incoming(body) => Pin::new(body).poll_frame(cx),
            Source::Kept(kept) => Poll::Ready(kept.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Source::Incoming(body) => body.is_end_stream(),
            Source::Kept(kept) => kept.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Source::Incoming(body) => body.size_hint(),
            Source::Kept(kept) => SizeHint::with_exact(kept.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// hyper's request body with a progress timeout and an optional size bound.
pub struct RequestBody {
    inner: Source,
    guard: Arc<BodyGuard>,
    progress_timeout: Duration,
    /// Armed when the reader starts waiting for the client, disarmed by each frame: time the
    /// server spends not asking for the body (a slow disk) is not charged to the client.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set for aws-chunked bodies.
    framing: Option<ChunkFraming>,
    finished: bool,
}

impl RequestBody {
    pub fn new(
        inner: hyper::body::Incoming,
        guard: Arc<BodyGuard>,
        progress_timeout: Duration,
    ) -> RequestBody {
        RequestBody {
            inner: Source::Incoming(inner),
            guard,
            progress_timeout,
            stall: None,
            framing: None,
            finished: false,
        }
    }

    /// A body read whole before its request ran (`read_whole`), passed to a run of the request
    /// through the same checks (`guard`: that run's).
    pub fn replay(whole: Bytes, guard: Arc<BodyGuard>, progress_timeout: Duration) -> RequestBody {
        RequestBody {
            inner: Source::Kept(Some(whole)),
            guard,
            progress_timeout,
            stall: None,
            framing: None,
            finished: false,
        }
    }

    /// The whole body, read through this body's checks (the progress timeout; the aws-chunked
    /// framing): for a small body that a request may need to run again with (`serve::rerun`).
    pub async fn read_whole(mut self) -> Result<Bytes, BodyError> {
        let mut pieces = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut self).poll_frame(cx)).await
        {
            if let Ok(data) = frame?.into_data() {
                pieces.push(data);
            }
        }
        // A small body usually comes in one frame: kept as it came, not copied.
        if pieces.len() == 1 {
            return Ok(pieces.pop().expect("one piece"));
        }
        Ok(pieces.concat().into())
    }

    /// Follows the body's aws-chunked framing: it must end with its zero-length chunk.
    #[must_use]
    pub fn aws_chunked(mut self) -> RequestBody {
        self.framing = Some(ChunkFraming::default());
        self
    }

    /// The checks of a body's end, once (the last frame or the end of the stream, whichever
    /// comes first: a reader may stop at `is_end_stream`).
    fn finish(&mut self) -> Option<BodyFault> {
        if std::mem::replace(&mut self.finished, true) {
            return None;
        }
        self.guard.ended.store(true, Ordering::Release);
        if self.framing.as_ref().is_some_and(|f| !f.complete()) {
            return Some(BodyFault::Incomplete);
        }
        let check = self
            .guard
            .digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        check
            .and_then(DigestCheck::mismatch)
            .map(BodyFault::BadDigest)
    }

    fn fail(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match fault {
            BodyFault::TooLarge => self.guard.too_large.store(true, Ordering::Release),
            BodyFault::Stalled => self.guard.timed_out.store(true, Ordering::Release),
            BodyFault::Incomplete => self.guard.incomplete.store(true, Ordering::Release),
            BodyFault::BadDigest(header) => {
                *self
                    .guard
                    .bad_digest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(header);
            }
        }
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
        match self.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.stall = None;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    let read = self.guard.read_bytes.fetch_add(len, Ordering::AcqRel) + len;
                    if read > self.guard.limit_bytes.load(Ordering::Acquire) {
                        return self.fail(BodyFault::TooLarge);
                    }
                    let mut digests = self
                        .guard
                        .digests
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if let Some(check) = digests.as_mut() {
                        check.update(data);
                    }
                    drop(digests);
                    if let Some(framing) = &mut self.framing {
                        framing.update(data);
                    }
                }
                if self.inner.is_end_stream() {
                    if let Some(fault) = self.finish() {
                        return self.fail(fault);
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
                if let Some(fault) = self.finish() {
                    return self.fail(fault);
                }
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

/// Where an aws-chunked body is in its framing: `hex-size[;chunk-signature=…]\r\n`, the data,
/// `\r\n`, …, and a zero-length chunk (then trailers, which are s3s's business). Malformed
/// framing is left to s3s, which refuses it.
#[derive(Debug, Default)]
struct ChunkFraming {
    state: FrameState,
    size: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum FrameState {
    /// Reading the hex size.
    #[default]
    Size,
    /// After the size, up to the end of the line.
    Line,
    /// Bytes of data and its CRLF still to come.
    Data(u64),
    /// The zero-length chunk was seen.
    Final,
    /// Not aws-chunked framing (s3s answers it).
    Malformed,
}

impl ChunkFraming {
    fn update(&mut self, mut data: &[u8]) {
        while let Some((&b, rest)) = data.split_first() {
            match &mut self.state {
                FrameState::Final | FrameState::Malformed => return,
                FrameState::Data(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = FrameState::Size;
                    }
                    data = &data[n..];
                    continue;
                }
                FrameState::Size => {
                    if let Some(d) = (b as char).to_digit(16) {
                        match self.size.checked_mul(16) {
                            Some(v) => self.size = v + u64::from(d),
                            None => self.state = FrameState::Malformed,
                        }
                    } else if b == b';' || b == b'\r' {
                        self.state = FrameState::Line;
                    } else {
                        self.state = FrameState::Malformed;
                    }
                }
                FrameState::Line => {
                    if b == b'\n' {
                        self.state = if self.size == 0 {
                            FrameState::Final
                        } else {
                            FrameState::Data(self.size.saturating_add(2))
                        };
                        self.size = 0;
                    }
                }
            }
            data = rest;
        }
    }

    /// Whether the body may end here: after the zero-length chunk (or malformed, which s3s
    /// refuses anyway).
    fn complete(&self) -> bool {
        matches!(self.state, FrameState::Final | FrameState::Malformed)
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
/// whole and bounded by [`XML_BODY_BYTES_MAX`]. (Browser POST forms never reach s3s: the
/// `post_upload` front serves them, streaming the file itself.)
fn streams_body(operation: &str) -> bool {
    matches!(operation, "PutObject" | "UploadPart")
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

/// Arms the digest check of a body read whole (module docs): `Content-MD5` must be the base64
/// of 16 bytes (else InvalidDigest), each `x-amz-checksum-*` the base64 of its width (else
/// InvalidRequest). Called from the access gate, before a byte of the body is read.
pub fn check_body_digests(cx: &mut S3AccessContext<'_>) -> S3Result<()> {
    if streams_body(cx.s3_op().name()) {
        return Ok(());
    }
    let headers = cx.headers();
    let b64 = |v: &http::HeaderValue| {
        v.to_str().ok().and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        })
    };
    let md5 = match headers.get("content-md5") {
        None => None,
        Some(v) => {
            let want: [u8; 16] = b64(v).and_then(|raw| raw.try_into().ok()).ok_or_else(|| {
                s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
            })?;
            Some((want, Md5::new()))
        }
    };
    let mut expected = Vec::new();
    // CompleteMultipartUpload's x-amz-checksum-* is the whole object's (checked in multipart.rs).
    let body_checksums = if cx.s3_op().name() == "CompleteMultipartUpload" {
        Vec::new()
    } else {
        checksum::requested(headers)?
    };
    for algo in body_checksums {
        let Some(v) = headers.get(algo.header()) else {
            continue;
        };
        match b64(v) {
            Some(raw) if raw.len() == algo.value_bytes() => {
                expected.push((algo, v.to_str().unwrap_or_default().trim().to_owned()));
            }
            _ => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Value for {} header is invalid.",
                    algo.header()
                ))
            }
        }
    }
    if md5.is_none() && expected.is_empty() {
        return Ok(());
    }
    let aws_chunked = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
    if aws_chunked {
        // The bytes passing here are still chunk-encoded (s3s decodes them later).
        return Err(s3_error!(
            NotImplemented,
            "Content-MD5 and x-amz-checksum-* on an aws-chunked {} body are not supported; \
             send it unchunked",
            cx.s3_op().name()
        ));
    }
    let algos: Vec<Algo> = expected.iter().map(|(a, _)| *a).collect();
    let check = DigestCheck {
        md5,
        hashers: Hashers::new(&algos),
        expected,
    };
    if let Some(guard) = cx.extensions_mut().get::<Arc<BodyGuard>>() {
        *guard.digests.lock().unwrap_or_else(PoisonError::into_inner) = Some(check);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(pieces: &[&[u8]]) -> bool {
        let mut f = ChunkFraming::default();
        for p in pieces {
            f.update(p);
        }
        f.complete()
    }

    fn read(body: RequestBody) -> Result<Bytes, BodyError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(body.read_whole())
    }

    /// A body read whole before its request ran goes through the checks again when a run
    /// reads it: the bytes come back as they were, and a fault is the new guard's.
    #[test]
    fn a_replayed_body_passes_the_checks_again() {
        let whole =
            Bytes::from_static(b"5;chunk-signature=00\r\nhello\r\n0;chunk-signature=00\r\n\r\n");
        let guard = BodyGuard::new();
        let body = RequestBody::replay(whole.clone(), guard.clone(), Duration::from_secs(1));
        assert_eq!(read(body.aws_chunked()).unwrap(), whole);
        assert!(guard.ended() && guard.fault().is_none());

        let cut = whole.slice(..whole.len() - 30);
        let guard = BodyGuard::new();
        let body = RequestBody::replay(cut, guard.clone(), Duration::from_secs(1));
        assert!(matches!(
            read(body.aws_chunked()),
            Err(BodyError::Fault(BodyFault::Incomplete))
        ));
        assert_eq!(guard.fault(), Some(BodyFault::Incomplete));

        let guard = BodyGuard::new();
        guard.limit(3);
        let body = RequestBody::replay(whole, guard.clone(), Duration::from_secs(1));
        assert!(read(body).is_err());
        assert_eq!(guard.fault(), Some(BodyFault::TooLarge));
    }

    #[test]
    fn aws_chunked_framing_needs_its_final_chunk() {
        let sig = b";chunk-signature=0123abcd";
        let mut whole = Vec::new();
        for data in [&b"hello world"[..], b"abc", b""] {
            whole.extend_from_slice(format!("{:x}", data.len()).as_bytes());
            whole.extend_from_slice(sig);
            whole.extend_from_slice(b"\r\n");
            whole.extend_from_slice(data);
            whole.extend_from_slice(b"\r\n");
        }
        assert!(framing(&[&whole]));
        // Byte by byte too.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert!(framing(&bytes));
        // Cut anywhere before the zero-length chunk's line ends.
        let final_line = whole.len() - 2;
        for cut in 0..final_line {
            assert!(!framing(&[&whole[..cut]]), "cut at {cut}");
        }
        // Unsigned chunks with trailers.
        assert!(framing(&[
            b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
        ]));
        assert!(!framing(&[b"3\r\nabc\r\n"]));
        // Not aws-chunked at all: s3s refuses it.
        assert!(framing(&[b"hello"]));
    }
}
