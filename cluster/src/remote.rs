//! The client of a core on another node: `proto` frames over TCP to the core's own port. A
//! small pool of connections per core (the core serves one request at a time per connection,
//! so concurrency is connections), each call bounded by a timeout. Called on a core's thread
//! (thread-per-core serving), the exchange runs on that core's own connections
//! (`engine::peers`), so the answer wakes the request on its thread; elsewhere (the gateway
//! role, background work on tokio) on tokio's.
//!
//! Owns: the concurrency bound, the tokio pool, framing, timeouts, the layout-version check of
//! answers. Does not own retries or liveness (the backend marks a core down after a failed
//! call).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use engine::peers::{self, PeerError, PeerLimits};
use proto::{decode_frame, encode_request, ErrorCode, Message, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::{
    REMOTE_CALL_TIMEOUT, REMOTE_CONNECTIONS_MAX, REMOTE_CONNECT_TIMEOUT, REMOTE_IDLE_MAX,
    REMOTE_QUEUE_TIMEOUT,
};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("core {addr} is unreachable: {message}")]
    Unreachable { addr: SocketAddr, message: String },
    #[error("core {addr} did not answer within {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("core {addr} is busy: every connection stayed in use for {after:?}")]
    Busy { addr: SocketAddr, after: Duration },
    #[error("core {addr} answered with a bad frame: {message}")]
    Protocol { addr: SocketAddr, message: String },
    /// The core's build predates the request's kind: it refused the frame (and, in builds
    /// before `ErrorCode::UnknownKind`, closed the connection). Not a fault of the core: the
    /// caller may say the same in kinds it knows (`Backend::call_core`).
    #[error("core {addr} does not know message kind {kind} (an older build)")]
    UnknownKind { addr: SocketAddr, kind: u16 },
    /// `index`: the control-map log index the refusing node applied (0: it follows no map,
    /// or its build does not say), whose map `Request::ControlMap` fetches from it.
    #[error(
        "layout mismatch: core {addr} refused a request this process routed by layout {ours} \
         ({theirs}); this process takes the newer layout from the control plane's map, which \
         that node answers too (or, without a control plane, from the same layout file on \
         every node)"
    )]
    LayoutMismatch {
        addr: SocketAddr,
        ours: u64,
        theirs: String,
        index: u64,
    },
}

struct Conn {
    stream: TcpStream,
    inbuf: BytesMut,
}

/// One remote core: its address and a pool of connections to it.
pub struct RemoteCore {
    addr: SocketAddr,
    /// The layout version frames are stamped with: the one the core was taken from, raised
    /// when a layout change that keeps the core ends (`Backend::finish_change`).
    layout_version: AtomicU64,
    idle: Mutex<Vec<Conn>>,
    /// Calls in flight, whichever thread they run on.
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RemoteCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteCore({})", self.addr)
    }
}

impl RemoteCore {
    pub fn new(addr: SocketAddr, layout_version: u64) -> RemoteCore {
        RemoteCore {
            addr,
            layout_version: AtomicU64::new(layout_version),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(REMOTE_CONNECTIONS_MAX)),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stamps this core's frames with `version` from now on.
    pub fn set_layout_version(&self, version: u64) {
        self.layout_version.store(version, Ordering::Relaxed);
    }

    /// The layout version this core's frames are stamped with.
    pub fn layout_version(&self) -> u64 {
        self.layout_version.load(Ordering::Relaxed)
    }

    /// Stamps this core's frames with `version` from now on, unless they are stamped with a
    /// newer one already.
    pub fn raise_layout_version(&self, version: u64) {
        self.layout_version.fetch_max(version, Ordering::Relaxed);
    }

    /// Sends one request and waits for its answer, on a pooled connection. A connection that
    /// failed or timed out is dropped, never reused (its stream position is unknown), and the
    /// idle ones with it. A refusal the core answered under the request's id (a layout it does
    /// not serve, a kind its build does not know) leaves the connection whole: the core reads
    /// on, and the caller may ask again in other words at once.
    pub async fn call(&self, request: &Request) -> Result<Response, RemoteError> {
        let acquired =
            tokio::time::timeout(REMOTE_QUEUE_TIMEOUT, self.permits.clone().acquire_owned()).await;
        let Ok(permit) = acquired else {
            return Err(RemoteError::Busy {
                addr: self.addr,
                after: REMOTE_QUEUE_TIMEOUT,
            });
        };
        let permit = permit.expect("the semaphore is never closed");
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if engine::runtime::on_core_thread() {
            return self.call_on_core(id, request, permit).await;
        }
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        let exchanged =
            tokio::time::timeout(REMOTE_CALL_TIMEOUT, self.exchange(&mut conn, id, request))
                .await
                .unwrap_or(Err(RemoteError::Timeout {
                    addr: self.addr,
                    after: REMOTE_CALL_TIMEOUT,
                }));
        let (result, whole) = match exchanged {
            Ok(frame) => {
                let whole = frame.answers(id);
                (self.answer(id, frame), whole)
            }
            Err(e) => (Err(e), false),
        };
        let mut idle = self.idle.lock().expect("pool lock");
        if whole {
            if idle.len() < REMOTE_IDLE_MAX {
                idle.push(conn);
            }
        } else {
            // The peer probably restarted or died: its other idle connections are dead too,
            // and each would fail one more call.
            idle.clear();
        }
        drop(idle);
        result
    }

    /// `call`'s exchange on the calling core's own connections (`engine::peers`): the same
    /// frames, timeouts and reuse of a connection, and the permit held until the exchange ends
    /// even if this call is dropped first.
    async fn call_on_core(
        &self,
        id: u64,
        request: &Request,
        permit: OwnedSemaphorePermit,
    ) -> Result<Response, RemoteError> {
        let mut frame = BytesMut::new();
        encode_request(id, self.layout_version(), request, &mut frame);
        let answer = peers::exchange(peers::Exchange {
            addr: self.addr,
            request_id: id,
            frame,
            limits: PeerLimits {
                connect_timeout: REMOTE_CONNECT_TIMEOUT,
                call_timeout: REMOTE_CALL_TIMEOUT,
                idle_max: REMOTE_IDLE_MAX,
            },
            hold: Box::new(permit),
        });
        let addr = self.addr;
        match answer.await {
            Ok(Ok(frame)) => self.answer(id, frame),
            Ok(Err(PeerError::Unreachable(message))) => {
                Err(RemoteError::Unreachable { addr, message })
            }
            Ok(Err(PeerError::Timeout(after))) => Err(RemoteError::Timeout { addr, after }),
            Ok(Err(PeerError::Protocol(message))) => Err(RemoteError::Protocol { addr, message }),
            Err(stopped) => Err(RemoteError::Unreachable {
                addr,
                message: format!("this core stopped before the answer came ({stopped})"),
            }),
        }
    }

    async fn connect(&self) -> Result<Conn, RemoteError> {
        let unreachable = |message: String| RemoteError::Unreachable {
            addr: self.addr,
            message,
        };
        let stream = tokio::time::timeout(REMOTE_CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| {
                unreachable(format!(
                    "connect timed out after {REMOTE_CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| unreachable(e.to_string()))?;
        // Without it a frame written in two pieces waits for the peer's delayed ACK.
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Conn {
            stream,
            inbuf: BytesMut::with_capacity(64 * 1024),
        })
    }

    /// Writes the request and reads the first frame that comes back.
    async fn exchange(
        &self,
        conn: &mut Conn,
        id: u64,
        request: &Request,
    ) -> Result<proto::Frame, RemoteError> {
        let broken = |message: String| RemoteError::Unreachable {
            addr: self.addr,
            message,
        };
        let mut out = BytesMut::new();
        encode_request(
            id,
            self.layout_version.load(Ordering::Relaxed),
            request,
            &mut out,
        );
        conn.stream
            .write_all(&out)
            .await
            .map_err(|e| broken(e.to_string()))?;
        loop {
            match decode_frame(&mut conn.inbuf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    return Err(RemoteError::Protocol {
                        addr: self.addr,
                        message: e.to_string(),
                    })
                }
            }
            let n = conn
                .stream
                .read_buf(&mut conn.inbuf)
                .await
                .map_err(|e| broken(e.to_string()))?;
            if n == 0 {
                return Err(broken("connection closed".into()));
            }
        }
    }

    fn answer(&self, id: u64, frame: proto::Frame) -> Result<Response, RemoteError> {
        let refused = |theirs, index| RemoteError::LayoutMismatch {
            addr: self.addr,
            ours: self.layout_version.load(Ordering::Relaxed),
            theirs,
            index,
        };
        match frame.message {
            Message::Response(Response::LayoutRefused { message, index }) => {
                Err(refused(message, index))
            }
            // A node of an earlier build: a refusal without its map index.
            Message::Response(Response::Error {
                code: ErrorCode::LayoutMismatch,
                message,
            }) => Err(refused(message, 0)),
            // A refusal of the request's kind comes under its id, or under id 0 from builds
            // before `ErrorCode::UnknownKind` (which then closed the connection).
            Message::Response(Response::Error { code, message })
                if frame.request_id == id || frame.request_id == 0 =>
            {
                match proto::unknown_kind_refused(code, &message) {
                    Some(kind) => Err(RemoteError::UnknownKind {
                        addr: self.addr,
                        kind,
                    }),
                    None if frame.request_id == id => Ok(Response::Error { code, message }),
                    None => Err(RemoteError::Protocol {
                        addr: self.addr,
                        message,
                    }),
                }
            }
            Message::Response(r) if frame.request_id == id => Ok(r),
            _ => Err(RemoteError::Protocol {
                addr: self.addr,
                message: format!("answer to request {id} expected"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use proto::{encode_response, ProtoError};
    use tokio::net::TcpListener;

    use super::*;

    /// What the fake core answers to each request, in order.
    #[derive(Clone, Copy)]
    enum Answer {
        /// A kind its build does not know, refused under the request's id; it reads on.
        UnknownKindUnderId,
        /// A layout it does not serve, refused under the request's id; it reads on.
        LayoutRefused,
        Done,
        /// As builds before `ErrorCode::UnknownKind` did: the refusal under id 0, then the
        /// connection closed.
        UnknownKindThenClose,
        /// A hung core: reads the request and never answers (the connection stays open).
        Silent,
    }

    /// A core on a port of its own that answers `script` in order, one request at a time
    /// whatever the connection; counts the connections it accepts.
    async fn fake_core(script: Vec<Answer>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let (script, next) = (script.clone(), next.clone());
                tokio::spawn(async move {
                    let mut inbuf = BytesMut::new();
                    loop {
                        let frame = loop {
                            if let Some(f) = decode_frame(&mut inbuf).unwrap() {
                                break f;
                            }
                            if stream.read_buf(&mut inbuf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        };
                        let what = script[next.fetch_add(1, Ordering::Relaxed)];
                        if matches!(what, Answer::Silent) {
                            let mut sink = Vec::new();
                            let _ = stream.read_to_end(&mut sink).await;
                            return;
                        }
                        let unknown = Response::Error {
                            code: ErrorCode::UnknownKind,
                            message: ProtoError::UnknownKind(999).to_string(),
                        };
                        let (id, response) = match what {
                            Answer::UnknownKindUnderId => (frame.request_id, unknown),
                            Answer::UnknownKindThenClose => (0, unknown),
                            Answer::LayoutRefused => (
                                frame.request_id,
                                Response::LayoutRefused {
                                    message: "layout 2 here".into(),
                                    index: 7,
                                },
                            ),
                            Answer::Done => (frame.request_id, Response::Done),
                            Answer::Silent => unreachable!("answered above"),
                        };
                        let mut out = BytesMut::new();
                        encode_response(id, 1, &response, &mut out);
                        stream.write_all(&out).await.unwrap();
                        if matches!(what, Answer::UnknownKindThenClose) {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// The same script, asked from a tokio task and from a core's thread (`engine::peers`).
    fn refusal_script() -> Vec<Answer> {
        use Answer::*;
        vec![
            UnknownKindUnderId,
            LayoutRefused,
            Done,
            UnknownKindThenClose,
            Done,
        ]
    }

    #[tokio::test]
    async fn a_refusal_under_the_request_id_keeps_the_connection() {
        let (addr, accepted) = fake_core(refusal_script()).await;
        let (answers, counts) = ask_the_refusal_script(&RemoteCore::new(addr, 1), &accepted).await;
        check_the_refusal_script(&answers, counts);
    }

    /// A future polled with a tokio runtime entered, as `s3api`'s core-served connections are
    /// (`RemoteCore::call` waits for its permit on a tokio timer).
    struct Entered<F> {
        runtime: tokio::runtime::Handle,
        future: std::pin::Pin<Box<F>>,
    }

    impl<F: std::future::Future> std::future::Future for Entered<F> {
        type Output = F::Output;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<F::Output> {
            let _entered = self.runtime.enter();
            self.future.as_mut().poll(cx)
        }
    }

    /// Runs `work` on the executor of a core (a one-core node of its own) with `runtime`
    /// entered, and returns its output.
    fn on_a_core<T, Fut>(
        runtime: &tokio::runtime::Runtime,
        work: impl FnOnce() -> Fut + Send + Sync + 'static,
    ) -> T
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = engine::NodeConfig::simple(1, dir.path(), 1);
        cfg.segment_bytes = 1 << 20;
        cfg.io_memory_bytes = 1 << 20;
        let node = engine::Node::start(&cfg).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = runtime.handle().clone();
        node.handles()[0]
            .spawn(move || async move {
                let on_core = engine::runtime::on_core_thread();
                let out = Entered {
                    runtime: handle,
                    future: Box::pin(work()),
                }
                .await;
                let _ = tx.send((on_core, out));
            })
            .unwrap();
        let (on_core, out) = rx.recv_timeout(Duration::from_secs(120)).unwrap();
        node.shutdown();
        assert!(on_core, "the work ran on the core's thread");
        out
    }

    #[test]
    fn on_a_core_a_refusal_under_the_request_id_keeps_the_connection() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (addr, accepted) = runtime.block_on(fake_core(refusal_script()));
        let (answers, counts, idle_after) = on_a_core(&runtime, move || async move {
            let (answers, counts) =
                ask_the_refusal_script(&RemoteCore::new(addr, 1), &accepted).await;
            (answers, counts, engine::peers::idle_connections(addr))
        });
        check_the_refusal_script(&answers, counts);
        assert_eq!(
            idle_after, 1,
            "the core's own connection went back to its pool"
        );
    }

    #[test]
    fn on_a_core_a_hung_or_absent_core_is_an_error_in_bounded_time() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (addr, accepted) = runtime.block_on(fake_core(vec![Answer::Silent, Answer::Done]));
        let absent = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (hung, then, gone) = on_a_core(&runtime, move || async move {
            let core = RemoteCore::new(addr, 1);
            let hung = core.call(&Request::Stats).await;
            let then = core.call(&Request::Stats).await;
            let gone = RemoteCore::new(absent, 1).call(&Request::Stats).await;
            (hung, then, gone)
        });
        assert!(
            matches!(hung, Err(RemoteError::Timeout { after, .. }) if after == REMOTE_CALL_TIMEOUT),
            "{hung:?}"
        );
        assert!(matches!(then, Ok(Response::Done)), "{then:?}");
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            2,
            "the connection that timed out is not reused"
        );
        assert!(
            matches!(gone, Err(RemoteError::Unreachable { .. })),
            "{gone:?}"
        );
    }

    /// What the refusal script's five calls answered, and the connections accepted after the
    /// third and the fifth. (Checked by the caller: a panic on a core's thread aborts.)
    async fn ask_the_refusal_script(
        core: &RemoteCore,
        accepted: &AtomicUsize,
    ) -> (Vec<Result<Response, RemoteError>>, [usize; 2]) {
        let mut answers = Vec::new();
        let mut counts = [0; 2];
        for i in 0..5 {
            answers.push(core.call(&Request::Stats).await);
            if i == 2 || i == 4 {
                counts[i / 4] = accepted.load(Ordering::Relaxed);
            }
        }
        (answers, counts)
    }

    fn check_the_refusal_script(answers: &[Result<Response, RemoteError>], counts: [usize; 2]) {
        assert!(
            matches!(answers[0], Err(RemoteError::UnknownKind { kind: 999, .. })),
            "{answers:?}"
        );
        assert!(
            matches!(
                answers[1],
                Err(RemoteError::LayoutMismatch { index: 7, .. })
            ),
            "{answers:?}"
        );
        assert!(matches!(answers[2], Ok(Response::Done)), "{answers:?}");
        assert_eq!(
            counts[0], 1,
            "refusals under the request's id reuse the connection"
        );
        // An older build's refusal comes under id 0 and closes: the connection is dropped
        // and the next call opens another.
        assert!(
            matches!(answers[3], Err(RemoteError::UnknownKind { kind: 999, .. })),
            "{answers:?}"
        );
        assert!(matches!(answers[4], Ok(Response::Done)), "{answers:?}");
        assert_eq!(counts[1], 2);
    }
}
