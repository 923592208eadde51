//! A core's TCP listener: frames of the `proto` codec, one request at a time per connection
//! (concurrency comes from several connections and from batches). A malformed frame gets an
//! error response and the connection is closed; nothing a peer sends can panic the core.
//! Every request frame passes the node's [`LayoutGate`] first, read per frame so a change of
//! layout takes effect on connections already open.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use proto::{decode_frame, encode_response, ErrorCode, Message, ProtoError, Request, Response};

use crate::gate::LayoutGate;
use crate::io::GlommioDisk;
use crate::limits::CONNECTIONS_MAX;
use crate::runtime::dispatch;
use crate::store::WeakStore;

const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Request bytes all connections of one core may hold at once; a connection whose next frame
/// does not fit waits before reading its body (backpressure on the sender).
const INFLIGHT_BYTES_MAX: u64 = 256 * 1024 * 1024;
const _: () = assert!(
    INFLIGHT_BYTES_MAX > proto::HEADER_BYTES as u64 + proto::limits::FRAME_BODY_BYTES_MAX as u64
);

/// What a core's listener serves.
#[derive(Clone)]
pub enum Target {
    Store(WeakStore<GlommioDisk>),
    /// The core is offline (damaged partition): every request is answered `Offline`.
    Offline(Rc<str>),
}

pub async fn serve(
    listener: TcpListener,
    store: Target,
    gate: Arc<LayoutGate>,
    stop: Rc<Cell<bool>>,
) {
    let open = Rc::new(Cell::new(0usize));
    let budget = Rc::new(glommio::sync::Semaphore::new(INFLIGHT_BYTES_MAX));
    while !stop.get() {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= CONNECTIONS_MAX {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.set(open.get() + 1);
        let store = store.clone();
        let open2 = open.clone();
        let budget = budget.clone();
        let gate = gate.clone();
        glommio::spawn_local(async move {
            if let Err(e) = connection(stream, &store, &gate, &budget).await {
                tracing::debug!(error = %e, "connection closed");
            }
            open2.set(open2.get() - 1);
        })
        .detach();
    }
}

/// The answer of an offline core to every request.
pub fn offline_response(reason: &str) -> Response {
    Response::Error {
        code: ErrorCode::Offline,
        message: format!("core offline: {reason}"),
    }
}

/// The answer to one request frame stamped with `layout_version`, `None` if the store is gone.
/// A fenced request (`Request::Fenced`) is unwrapped and answered as if it came alone, once its
/// routing epoch passes the gate; it stays counted by the gate until answered.
async fn answer(
    request: Request,
    layout_version: u64,
    store: &Target,
    gate: &LayoutGate,
) -> Option<Response> {
    let (epoch, request) = match request {
        Request::Fenced { epoch, request } => (Some(epoch), *request),
        plain => (None, plain),
    };
    // About the node, not routed: answered whatever layout and epoch the sender has.
    if let Some(answer) = gate.node_answer(&request) {
        return Some(answer);
    }
    if let Some(refused) = gate
        .refusal(layout_version)
        .or_else(|| gate.lease_refusal(&request))
    {
        return Some(refused);
    }
    let _admitted = match epoch.map(|e| gate.admit_fenced(e)) {
        Some(Err(refused)) => return Some(*refused),
        Some(Ok(admitted)) => Some(admitted),
        None => None,
    };
    Some(match store {
        Target::Store(weak) => dispatch(&weak.upgrade()?, request).await,
        Target::Offline(reason) => offline_response(reason),
    })
}

fn proto_error_code(e: &ProtoError) -> ErrorCode {
    match e {
        ProtoError::UnsupportedVersion { .. } => ErrorCode::VersionMismatch,
        ProtoError::TooLarge { .. } => ErrorCode::TooLarge,
        _ => ErrorCode::BadRequest,
    }
}

async fn connection(
    mut stream: TcpStream,
    store: &Target,
    gate: &LayoutGate,
    budget: &Rc<glommio::sync::Semaphore>,
) -> std::io::Result<()> {
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let mut permit = None;
        let frame = loop {
            if permit.is_none() {
                if let Some(body) = proto::peek_body_bytes(&inbuf) {
                    // Oversized lengths are refused by the decoder below, not reserved.
                    let want = u64::from(body.min(proto::limits::FRAME_BODY_BYTES_MAX));
                    permit = budget.clone().acquire_static_permit(want.max(1)).await.ok();
                }
            }
            match decode_frame(&mut inbuf) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => {
                    let r = Response::Error {
                        code: proto_error_code(&e),
                        message: e.to_string(),
                    };
                    out.clear();
                    encode_response(0, gate.version(), &r, &mut out);
                    stream.write_all(&out).await?;
                    return Ok(());
                }
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            inbuf.extend_from_slice(&chunk[..n]);
        };
        let response = match frame.message {
            Message::Request(req) => match answer(req, frame.layout_version, store, gate).await {
                Some(response) => response,
                None => return Ok(()),
            },
            Message::Response(_) => Response::Error {
                code: ErrorCode::BadRequest,
                message: "a core accepts requests only".into(),
            },
            // A newer peer's kind: refused under its id, and the connection reads on (the
            // peer may say the same in kinds this build knows).
            Message::Unknown(kind) => Response::Error {
                code: ErrorCode::UnknownKind,
                message: ProtoError::UnknownKind(kind).to_string(),
            },
        };
        drop(permit);
        out.clear();
        encode_response(frame.request_id, gate.version(), &response, &mut out);
        stream.write_all(&out).await?;
    }
}
