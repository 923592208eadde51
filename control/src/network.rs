//! The voters' transport: Raft messages and forwarded proposals over TCP, every frame
//! authenticated with the cluster secret (HMAC-SHA256) and bound to its connection and place
//! in it, so a frame cannot be forged, replayed on another connection, reordered or reflected.
//! Wire format in control/DESIGN.md.
//!
//! It owns the bytes on the socket, the client side openraft calls ([`Peers`], [`Peer`]) and
//! the accept loop ([`serve`]). What a request does is the node's business ([`Handler`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::codec::{self, Kind};
use crate::map::{ClusterMap, Command, Outcome};
use crate::{limits, NodeId, TypeConfig};

type HmacSha256 = Hmac<Sha256>;

/// Magic of the greeting a server sends on accept: "PCRH".
pub const HELLO_MAGIC: [u8; 4] = *b"PCRH";
/// Magic of every frame: "PCRW".
pub const FRAME_MAGIC: [u8; 4] = *b"PCRW";
/// The wire format this build speaks.
pub const WIRE_VERSION: u16 = 2;
const NONCE_BYTES: usize = 16;
const HELLO_BYTES: usize = 8 + NONCE_BYTES;
pub(crate) const MAC_BYTES: usize = 32;
/// magic, version, direction, sequence, body length, header MAC, body MAC.
const FRAME_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 8 + 2 * MAC_BYTES;
/// Direction field of a request and of a response: a request cannot be sent back as an answer.
const DIRECTION_REQUEST: u16 = 1;
const DIRECTION_RESPONSE: u16 = 2;

/// The shared secret of a cluster's voters.
#[derive(Clone)]
pub struct Secret(Arc<Vec<u8>>);

impl Secret {
    /// At least 16 bytes: a secret that short would be guessed.
    pub fn new(bytes: &[u8]) -> Result<Secret, WireError> {
        if bytes.len() < 16 {
            return Err(WireError::WeakSecret { len: bytes.len() });
        }
        Ok(Secret(Arc::new(bytes.to_vec())))
    }

    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_BYTES] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(tag).is_ok()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the cluster secret is {len} bytes: at least 16 are needed")]
    WeakSecret { len: usize },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("not a control-plane peer (magic {0:02x?})")]
    Magic([u8; 4]),
    #[error("wire version {0} is not {WIRE_VERSION}")]
    Version(u16),
    #[error("frame refused: {0}")]
    Refused(&'static str),
    #[error("frame of {size_bytes} bytes is over the bound of {max_bytes}")]
    TooLarge { size_bytes: u64, max_bytes: usize },
    #[error("message body: {0}")]
    Body(#[from] codec::CodecError),
}

/// A connection's authentication state: the server's nonce and the next sequence number.
struct Session {
    nonce: [u8; NONCE_BYTES],
    seq: u64,
}

async fn timed<T>(
    limit: std::time::Duration,
    f: impl Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| WireError::Timeout(limit))?
}

async fn write_frame(
    stream: &mut TcpStream,
    secret: &Secret,
    session: &Session,
    direction: u16,
    body: &[u8],
) -> Result<(), WireError> {
    let mut head = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    head.extend_from_slice(&FRAME_MAGIC);
    head.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    head.extend_from_slice(&direction.to_le_bytes());
    head.extend_from_slice(&session.seq.to_le_bytes());
    head.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let fields = head.clone();
    head.extend_from_slice(&secret.mac(&[b"head", &session.nonce, &fields]));
    head.extend_from_slice(&secret.mac(&[b"body", &session.nonce, &fields, body]));
    assert_eq!(head.len(), FRAME_HEADER_BYTES);
    head.extend_from_slice(body);
    stream.write_all(&head).await?;
    Ok(())
}

/// Reads one frame of `direction` at the session's sequence number; its header is
/// authenticated before the body is read, so nobody without the secret makes us allocate.
async fn read_frame(
    stream: &mut TcpStream,
    secret: &Secret,
    session: &Session,
    direction: u16,
) -> Result<Vec<u8>, WireError> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut head).await?;
    let fields = &head[..24];
    if !secret.verify(&[b"head", &session.nonce, fields], &head[24..56]) {
        return Err(WireError::Refused(
            "header not signed with the cluster secret",
        ));
    }
    let magic: [u8; 4] = head[..4].try_into().expect("4 bytes");
    if magic != FRAME_MAGIC {
        return Err(WireError::Magic(magic));
    }
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    if u16::from_le_bytes([head[6], head[7]]) != direction {
        return Err(WireError::Refused("frame in the wrong direction"));
    }
    if u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) != session.seq {
        return Err(WireError::Refused(
            "frame out of sequence (replayed or lost)",
        ));
    }
    let len = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
    if len > limits::FRAME_BYTES_MAX as u64 {
        return Err(WireError::TooLarge {
            size_bytes: len,
            max_bytes: limits::FRAME_BYTES_MAX,
        });
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    if !secret.verify(&[b"body", &session.nonce, fields, &body], &head[56..88]) {
        return Err(WireError::Refused(
            "body not signed with the cluster secret",
        ));
    }
    Ok(body)
}

/// What a voter asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A proposal forwarded by a voter that is not the leader; `hops` it has taken.
    Propose {
        command: Command,
        hops: u8,
    },
    /// A linearizable read of the map forwarded by a voter that is not the leader.
    ReadMap {
        hops: u8,
    },
    /// A follower's (any node's, or an administrator's) wait for the map this voter applied
    /// after log index `after`: answered once it has, or after `limits::WATCH_WAIT` with the
    /// map it has (the follower asks again).
    WatchMap {
        after: u64,
    },
    /// An administrator's change of the voters, forwarded by a voter that is not the leader
    /// (`ControlNode::change_voters`): every voter of the new set, with its control address
    /// when it is not yet a member.
    ChangeVoters {
        voters: BTreeMap<NodeId, Option<String>>,
        hops: u8,
    },
}

/// The answers, one per request kind.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(Result<Outcome, ProposeError>),
    ReadMap(Result<ClusterMap, ProposeError>),
    WatchMap(Result<Watched, ProposeError>),
    ChangeVoters(Result<BTreeMap<NodeId, String>, ProposeError>),
}

/// A voter's answer to a follower: its applied map, the log index it is at, the leader it
/// knows of, and the voters of the membership it knows (each with its control address), so
/// a follower finds the voters made after its config was written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watched {
    pub index: u64,
    pub leader: Option<NodeId>,
    pub map: ClusterMap,
    pub voters: BTreeMap<NodeId, String>,
}

/// Why a proposal got no outcome, or a read no map. Only the leader commits and confirms
/// reads: a follower forwards once, and a node that cannot says who leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader is known yet (an election is under way or a majority is down)")]
    NoLeader,
    #[error("this node is not the leader: the leader is node {leader} at {address}")]
    NotLeader { leader: NodeId, address: String },
    #[error("the leader, node {leader} at {address}, did not answer: {reason}")]
    LeaderUnreachable {
        leader: NodeId,
        address: String,
        reason: String,
    },
    #[error(
        "not committed within {timeout_ms} ms (a majority of the voters may be down); it may \
         still commit: read the map before proposing again"
    )]
    TimedOut { timeout_ms: u64 },
    #[error("the leader could not confirm its leadership with a majority: {reason}")]
    NoQuorum { reason: String },
    #[error("the control plane stopped: {reason}")]
    Stopped { reason: String },
    #[error("the voters were not changed: {reason}")]
    VotersRefused { reason: String },
}

/// What the server side does with a request (the node implements it).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// Accepts connections from peers on `listener` until the returned task is aborted (which
/// aborts every connection it serves), at most `CONNECTIONS_MAX` at once.
pub fn serve<H: Handler>(
    listener: TcpListener,
    secret: Secret,
    handler: Arc<H>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(limits::CONNECTIONS_MAX));
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                Some(_) = connections.join_next() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "control plane: accept failed");
                    tokio::time::sleep(limits::ACCEPT_RETRY_PAUSE).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "control plane: too many connections, one refused");
                continue;
            };
            let (secret, handler) = (secret.clone(), handler.clone());
            connections.spawn(async move {
                if let Err(e) = serve_connection(stream, &secret, &*handler).await {
                    tracing::debug!(%peer, error = %e, "control plane: connection closed");
                }
                drop(slot);
            });
        }
    })
}

async fn serve_connection<H: Handler>(
    mut stream: TcpStream,
    secret: &Secret,
    handler: &H,
) -> Result<(), WireError> {
    stream.set_nodelay(true)?;
    let mut session = Session {
        nonce: [0; NONCE_BYTES],
        seq: 0,
    };
    rand::thread_rng().fill_bytes(&mut session.nonce);
    let mut hello = Vec::with_capacity(HELLO_BYTES);
    hello.extend_from_slice(&HELLO_MAGIC);
    hello.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    hello.extend_from_slice(&[0, 0]);
    hello.extend_from_slice(&session.nonce);
    stream.write_all(&hello).await?;
    loop {
        let body = timed(
            limits::FRAME_TIMEOUT,
            read_frame(&mut stream, secret, &session, DIRECTION_REQUEST),
        )
        .await?;
        let request: Request = codec::decode(Kind::Message, &body)?;
        let response = handler.handle(request).await;
        let body = codec::encode(Kind::Message, &response)?;
        write_frame(&mut stream, secret, &session, DIRECTION_RESPONSE, &body).await?;
        session.seq += 1;
    }
}

/// One open connection to a peer.
struct Connection {
    stream: TcpStream,
    session: Session,
}

async fn connect(address: &str) -> Result<Connection, WireError> {
    let mut stream = timed(limits::CONNECT_TIMEOUT, async {
        Ok(TcpStream::connect(address).await?)
    })
    .await?;
    stream.set_nodelay(true)?;
    let mut hello = [0u8; HELLO_BYTES];
    timed(limits::CONNECT_TIMEOUT, async {
        stream.read_exact(&mut hello).await?;
        Ok(())
    })
    .await?;
    let magic: [u8; 4] = hello[..4].try_into().expect("4 bytes");
    if magic != HELLO_MAGIC {
        return Err(WireError::Magic(magic));
    }
    let version = u16::from_le_bytes([hello[4], hello[5]]);
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    Ok(Connection {
        stream,
        session: Session {
            nonce: hello[8..].try_into().expect("nonce bytes"),
            seq: 0,
        },
    })
}

/// The client side to one peer: one connection, opened when needed and dropped on any error.
pub struct Peer {
    target: NodeId,
    address: String,
    secret: Secret,
    connection: Option<Connection>,
}

/// Why a call got no answer, told apart because openraft backs off from an unreachable peer.
#[derive(Debug)]
enum CallError {
    Unreachable(WireError),
    Failed(WireError),
}

impl Peer {
    pub fn new(target: NodeId, address: String, secret: Secret) -> Peer {
        Peer {
            target,
            address,
            secret,
            connection: None,
        }
    }

    async fn call(
        &mut self,
        request: &Request,
        limit: std::time::Duration,
    ) -> Result<Response, CallError> {
        let body =
            codec::encode(Kind::Message, request).map_err(|e| CallError::Failed(e.into()))?;
        if self.connection.is_none() {
            self.connection = Some(
                connect(&self.address)
                    .await
                    .map_err(CallError::Unreachable)?,
            );
        }
        let conn = self.connection.as_mut().expect("connected above");
        let secret = &self.secret;
        let answer = timed(limit, async {
            write_frame(
                &mut conn.stream,
                secret,
                &conn.session,
                DIRECTION_REQUEST,
                &body,
            )
            .await?;
            let body =
                read_frame(&mut conn.stream, secret, &conn.session, DIRECTION_RESPONSE).await?;
            Ok(codec::decode::<Response>(Kind::Message, &body)?)
        })
        .await;
        match answer {
            Ok(response) => {
                conn.session.seq += 1;
                Ok(response)
            }
            Err(e) => {
                self.connection = None;
                Err(CallError::Failed(e))
            }
        }
    }

    /// One request whose answer `pick` takes out of the response of its kind (`None`: an
    /// answer of another kind); no answer counts as the peer unreachable.
    async fn ask<T>(
        &mut self,
        request: &Request,
        limit: std::time::Duration,
        pick: impl FnOnce(Response) -> Option<Result<T, ProposeError>>,
    ) -> Result<T, ProposeError> {
        let (leader, address) = (self.target, self.address.clone());
        let unreachable = |e: WireError| ProposeError::LeaderUnreachable {
            leader,
            address,
            reason: e.to_string(),
        };
        match self.call(request, limit).await {
            Ok(response) => pick(response)
                .unwrap_or_else(|| Err(unreachable(WireError::Refused("answer of another kind")))),
            Err(CallError::Unreachable(e) | CallError::Failed(e)) => Err(unreachable(e)),
        }
    }

    /// Sends a proposal to this peer (the leader) and returns its answer.
    pub async fn propose(&mut self, command: Command, hops: u8) -> Result<Outcome, ProposeError> {
        let request = Request::Propose { command, hops };
        self.ask(&request, limits::PROPOSE_TIMEOUT, |r| match r {
            Response::Propose(answer) => Some(answer),
            _ => None,
        })
        .await
    }

    /// Asks this peer (the leader) for the map as of now.
    pub async fn read_map(&mut self, hops: u8) -> Result<ClusterMap, ProposeError> {
        let request = Request::ReadMap { hops };
        self.ask(&request, limits::PROPOSE_TIMEOUT, |r| match r {
            Response::ReadMap(answer) => Some(answer),
            _ => None,
        })
        .await
    }

    /// Asks this voter for its applied map once it is past log index `after` (a follower's
    /// long poll: `Request::WatchMap`).
    pub async fn watch_map(&mut self, after: u64) -> Result<Watched, ProposeError> {
        let request = Request::WatchMap { after };
        self.ask(&request, limits::WATCH_CALL_TIMEOUT, |r| match r {
            Response::WatchMap(answer) => Some(answer),
            _ => None,
        })
        .await
    }

    /// Asks this peer (the leader) to change the voters (`Request::ChangeVoters`); the voters
    /// once changed.
    pub async fn change_voters(
        &mut self,
        voters: BTreeMap<NodeId, Option<String>>,
        hops: u8,
    ) -> Result<BTreeMap<NodeId, String>, ProposeError> {
        let request = Request::ChangeVoters { voters, hops };
        self.ask(&request, limits::PROPOSE_TIMEOUT, |r| match r {
            Response::ChangeVoters(answer) => Some(answer),
            _ => None,
        })
        .await
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

fn rpc_error<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Failed(e) => RPCError::Network(NetworkError::new(&e)),
    }
}

fn wrong_kind() -> WireError {
    WireError::Refused("answer of another kind")
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(&Request::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::AppendEntries(r)) => r.map_err(|e| self.remote(e)),
            Ok(_) => Err(rpc_error(CallError::Failed(wrong_kind()))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .call(&Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::InstallSnapshot(r)) => r.map_err(|e| self.remote(e)),
            Ok(_) => Err(rpc_error(CallError::Failed(wrong_kind()))),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await {
            Ok(Response::Vote(r)) => r.map_err(|e| self.remote(e)),
            Ok(_) => Err(rpc_error(CallError::Failed(wrong_kind()))),
            Err(e) => Err(rpc_error(e)),
        }
    }
}

/// Makes a [`Peer`] for each voter openraft replicates to.
#[derive(Debug, Clone)]
pub struct Peers {
    pub secret: Secret,
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer::new(target, node.addr.clone(), self.secret.clone())
    }
}

/// A fatal Raft error as a proposal's answer.
pub fn stopped(e: &Fatal<NodeId>) -> ProposeError {
    ProposeError::Stopped {
        reason: e.to_string(),
    }
}
