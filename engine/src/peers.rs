//! A core's own connections to other nodes' cores, for requests made on the core's thread
//! (thread-per-core serving: an S3 request that needs a core of another node). The request
//! goes out and its answer comes back through this core's io_uring, so the answer wakes the
//! waiting request on its own thread. Without this, the tokio client (`cluster::remote`) read
//! the answer on a tokio thread, which then woke the core: one more thread's wake-up per
//! remote call, on every cluster GET and PUT (#16: no tokio hop on the hot path).
//!
//! Shape: one task per connection ("worker"), owning its glommio socket, which the core's
//! executor runs beside its other tasks. A caller hands a worker one request and awaits a
//! `Send` oneshot for the answer, so its own future stays `Send` (s3s needs that) while the
//! socket never leaves the thread. Idle workers wait in a per-thread list by address; one
//! that failed ends, and the idle ones of its address with it (their peer probably restarted).
//!
//! Owns: connecting, the per-thread pool, framing, the timeouts of one exchange. Does not own
//! what an answer means, the concurrency bound (the caller's permit, held until the worker
//! answered: `Exchange::hold`) or retries: `cluster::remote`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_channel::oneshot;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use hashbrown::HashMap;
use proto::{decode_frame, Frame};

/// The read size of a worker (the core's own server reads as much at a time).
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// One request for another core.
pub struct Exchange {
    pub addr: SocketAddr,
    /// The id the request is encoded under: an answer under another id leaves the connection
    /// out of step, and it is closed.
    pub request_id: u64,
    /// The encoded request (`proto::encode_request`).
    pub frame: BytesMut,
    pub limits: PeerLimits,
    /// Dropped once the worker has answered: the caller's permit, so that a caller that
    /// stopped waiting does not free its place while the connection is still in use.
    pub hold: Box<dyn std::any::Any + Send>,
}

#[derive(Clone, Copy, Debug)]
pub struct PeerLimits {
    pub connect_timeout: Duration,
    /// From the request's first byte written to its answer's last byte read.
    pub call_timeout: Duration,
    /// Idle connections this core keeps to one address.
    pub idle_max: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Protocol(String),
}

pub type Answer = Result<Frame, PeerError>;

struct Job {
    exchange: Exchange,
    reply: oneshot::Sender<Answer>,
}

thread_local! {
    /// Idle workers of this core by address: handing one a job wakes it.
    static IDLE: RefCell<HashMap<SocketAddr, Vec<oneshot::Sender<Job>>>> =
        RefCell::new(HashMap::new());
}

/// Sends `exchange` on one of this core's connections to its address (an idle one, or a new
/// one) and returns where its answer comes: always an answer or an error within the limits'
/// timeouts, or `Canceled` if the core stops first.
///
/// # Panics
/// When not called on a core's thread (`crate::runtime::on_core_thread`): a bug of the caller.
pub fn exchange(exchange: Exchange) -> oneshot::Receiver<Answer> {
    assert!(
        crate::runtime::on_core_thread(),
        "peers::exchange is for a core's thread"
    );
    let addr = exchange.addr;
    let (reply, answer) = oneshot::channel();
    let mut job = Job { exchange, reply };
    while let Some(idle) = IDLE.with(|m| m.borrow_mut().get_mut(&addr).and_then(Vec::pop)) {
        match idle.send(job) {
            Ok(()) => return answer,
            // Its worker is gone (the core is stopping): try the next.
            Err(back) => job = back,
        }
    }
    glommio::spawn_local(worker(job)).detach();
    answer
}

/// The idle connections this thread holds to `addr` (tests).
pub fn idle_connections(addr: SocketAddr) -> usize {
    IDLE.with(|m| m.borrow().get(&addr).map_or(0, Vec::len))
}

struct Conn {
    stream: TcpStream,
    inbuf: BytesMut,
    /// What one read fills (glommio reads into a slice: `inbuf`'s spare room is not one).
    chunk: Vec<u8>,
}

/// One connection's life: connects for its first job, answers jobs one at a time, waits idle
/// between them, and ends on the first failure or when not wanted idle.
async fn worker(first: Job) {
    let addr = first.exchange.addr;
    let limits = first.exchange.limits;
    let mut conn = None;
    let mut job = first;
    loop {
        let Job { exchange, reply } = job;
        let answer = answer(&mut conn, &exchange).await;
        let whole = matches!(&answer, Ok(frame) if frame.answers(exchange.request_id));
        let _ = reply.send(answer);
        drop(exchange.hold);
        if !whole {
            // The peer probably restarted or died: its other idle connections are dead too,
            // and each would fail one more call.
            let _ = IDLE.try_with(|m| m.borrow_mut().remove(&addr));
            return;
        }
        let (wake, next) = oneshot::channel();
        let kept = IDLE
            .try_with(|m| {
                let mut m = m.borrow_mut();
                let idle = m.entry(addr).or_default();
                let room = idle.len() < limits.idle_max;
                if room {
                    idle.push(wake);
                }
                room
            })
            .unwrap_or(false);
        if !kept {
            return;
        }
        match next.await {
            Ok(next) => job = next,
            // Dropped from the idle list: a sibling failed, or the core stops.
            Err(oneshot::Canceled) => return,
        }
    }
}

/// Connects if needed, then one exchange, all within the limits' timeouts. A connection that
/// failed or timed out is dropped (its stream position is unknown).
async fn answer(conn: &mut Option<Conn>, exchange: &Exchange) -> Answer {
    let limits = exchange.limits;
    let c = match conn {
        Some(c) => c,
        None => conn.insert(connect(exchange.addr, limits.connect_timeout).await?),
    };
    let timed_out = async {
        glommio::timer::sleep(limits.call_timeout).await;
        Err(PeerError::Timeout(limits.call_timeout))
    };
    let result = futures_lite::future::or(send_and_read(c, &exchange.frame), timed_out).await;
    if result.is_err() {
        *conn = None;
    }
    result
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, PeerError> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| PeerError::Unreachable(e.to_string()))?;
    // Without it a frame written in two pieces waits for the peer's delayed ACK.
    stream
        .set_nodelay(true)
        .map_err(|e| PeerError::Unreachable(e.to_string()))?;
    Ok(Conn {
        stream,
        inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        chunk: vec![0; READ_CHUNK_BYTES],
    })
}

/// Writes the request and reads the first frame that comes back.
async fn send_and_read(conn: &mut Conn, frame: &[u8]) -> Answer {
    let broken = |e: std::io::Error| PeerError::Unreachable(e.to_string());
    conn.stream.write_all(frame).await.map_err(broken)?;
    loop {
        match decode_frame(&mut conn.inbuf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(PeerError::Protocol(e.to_string())),
        }
        let n = conn.stream.read(&mut conn.chunk).await.map_err(broken)?;
        conn.inbuf.extend_from_slice(&conn.chunk[..n]);
        if n == 0 {
            return Err(PeerError::Unreachable("connection closed".into()));
        }
    }
}
