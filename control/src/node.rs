//! One voter of the control plane: its storage, its openraft instance, its listener, and the
//! proposal path (commit on the leader, forward once from a follower, else name the leader).
//!
//! It owns the life of a voter: start from a directory (bootstrapping a pristine one with the
//! configured voters), stop (Raft shut down, port closed, connections dropped). It does not
//! decide what a command does (`map`) nor how bytes travel (`network`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::{BasicNode, ChangeMembers, Raft, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::map::{ClusterMap, Command, Outcome};
use crate::network::{
    self, Handler, Peer, Peers, ProposeError, Request, Response, Secret, Watched,
};
use crate::store::{self, StoreError};
use crate::{limits, NodeId, TypeConfig};

/// Raft timing and log compaction of a voter.
#[derive(Debug, Clone)]
pub struct Timing {
    pub heartbeat: Duration,
    /// An election starts after a random silence in this range.
    pub election_min: Duration,
    pub election_max: Duration,
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind the snapshot (a follower further behind gets the
    /// snapshot).
    pub entries_kept_after_snapshot: u64,
    /// How long the leader waits for a proposal to commit before answering `TimedOut`.
    pub propose_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(500),
            election_max: Duration::from_millis(1000),
            snapshot_every_entries: 1000,
            entries_kept_after_snapshot: 100,
            propose_timeout: Duration::from_secs(10),
        }
    }
}

/// What a voter needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This voter: its node id in the layout.
    pub id: NodeId,
    /// Where its peers reach it (`host:port`); it listens there.
    pub listen: String,
    /// Every voter of the cluster and its address, this one included: 1, 3 or 5.
    pub voters: BTreeMap<NodeId, String>,
    pub secret: Secret,
    /// The voter's directory (its store is `DIR/raft/`).
    pub dir: PathBuf,
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("listening on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
}

/// A running voter.
pub struct ControlNode {
    id: NodeId,
    raft: Raft<TypeConfig>,
    map: watch::Receiver<Arc<ClusterMap>>,
    server: tokio::task::JoinHandle<()>,
    local_addr: std::net::SocketAddr,
    /// Authenticates forwarded proposals.
    secret: Secret,
    propose_timeout: Duration,
}

impl std::fmt::Debug for ControlNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlNode")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

struct Serve {
    raft: Raft<TypeConfig>,
    map: watch::Receiver<Arc<ClusterMap>>,
    secret: Secret,
    propose_timeout: Duration,
}

impl Handler for Serve {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(r) => Response::AppendEntries(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(self.raft.install_snapshot(r).await)
            }
            Request::Propose { command, hops } => Response::Propose(
                propose(
                    &self.raft,
                    &self.secret,
                    self.propose_timeout,
                    command,
                    hops,
                )
                .await,
            ),
            Request::ReadMap { hops } => Response::ReadMap(
                read_map(
                    &self.raft,
                    &self.map,
                    &self.secret,
                    self.propose_timeout,
                    hops,
                )
                .await
                .map(|m| (*m).clone()),
            ),
            Request::WatchMap { after } => {
                Response::WatchMap(watch_map(&self.raft, &self.map, after).await)
            }
            Request::ChangeVoters { voters, hops } => Response::ChangeVoters(
                change_voters(&self.raft, &self.secret, self.propose_timeout, voters, hops).await,
            ),
        }
    }
}

/// The applied map once it is past log index `after`, or after `limits::WATCH_WAIT` the map
/// as it is (module docs of `follow`). The index is read before the map, and the map is
/// published before openraft counts its entries applied, so the map holds at least every
/// entry up to the index answered.
async fn watch_map(
    raft: &Raft<TypeConfig>,
    map: &watch::Receiver<Arc<ClusterMap>>,
    after: u64,
) -> Result<Watched, ProposeError> {
    let waited = raft
        .wait(Some(limits::WATCH_WAIT))
        .applied_index_at_least(Some(after + 1), "a follower's watch")
        .await;
    let metrics = match waited {
        Ok(m) => m,
        Err(openraft::metrics::WaitError::Timeout(..)) => raft.metrics().borrow().clone(),
        Err(openraft::metrics::WaitError::ShuttingDown) => {
            return Err(ProposeError::Stopped {
                reason: "the voter is shutting down".into(),
            })
        }
    };
    let map = map.borrow().clone();
    Ok(Watched {
        index: metrics.last_applied.map_or(0, |l| l.index),
        leader: metrics.current_leader,
        map: (*map).clone(),
        voters: voters_of(metrics.membership_config.membership()),
    })
}

/// The voters of a membership, each with its address.
fn voters_of(membership: &openraft::Membership<NodeId, BasicNode>) -> BTreeMap<NodeId, String> {
    membership
        .voter_ids()
        .map(|id| {
            let address = membership
                .get_node(&id)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            (id, address)
        })
        .collect()
}

fn check_config(config: &NodeConfig) -> Result<(), NodeError> {
    if config.timing.propose_timeout >= limits::PROPOSE_TIMEOUT {
        return Err(NodeError::Config(format!(
            "propose_timeout {:?} must be under the forwarding deadline {:?}",
            config.timing.propose_timeout,
            limits::PROPOSE_TIMEOUT
        )));
    }
    if ![1, 3, 5].contains(&config.voters.len()) {
        return Err(NodeError::Config(format!(
            "{} voters: a control plane has 1, 3 or 5",
            config.voters.len()
        )));
    }
    match config.voters.get(&config.id) {
        Some(address) if *address != config.listen => Err(NodeError::Config(format!(
            "node {} listens on {} but the voters list it at {address}",
            config.id, config.listen
        ))),
        // Not a founding voter: it joins once the voters add it (`change_voters`).
        Some(_) | None => Ok(()),
    }
}

fn raft_config(timing: &Timing) -> Result<openraft::Config, NodeError> {
    let ms = |d: Duration| d.as_millis() as u64;
    openraft::Config {
        cluster_name: "percore-control".into(),
        heartbeat_interval: ms(timing.heartbeat),
        election_timeout_min: ms(timing.election_min),
        election_timeout_max: ms(timing.election_max),
        max_payload_entries: limits::APPEND_ENTRIES_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(timing.snapshot_every_entries),
        max_in_snapshot_log_to_keep: timing.entries_kept_after_snapshot,
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|e| NodeError::Config(e.to_string()))
}

/// Whether one voter leads, as of its latest metrics (`ControlNode::leadership`).
#[derive(Clone)]
pub struct Leadership {
    id: NodeId,
    metrics: watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
}

impl Leadership {
    pub fn leads(&self) -> bool {
        self.metrics.borrow().current_leader == Some(self.id)
    }
}

/// Confirms that one voter still leads, with a quorum (`ControlNode::confirmer`): what a lease
/// the leader grants is measured from.
#[derive(Clone)]
pub struct Confirmer(Raft<TypeConfig>);

impl Confirmer {
    /// Whether this voter led, confirmed by a quorum, at some moment after the call began
    /// (within `timeout`).
    pub async fn confirm(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.0.ensure_linearizable()).await,
            Ok(Ok(_))
        )
    }
}

impl ControlNode {
    /// Opens the voter's directory, listens, and starts Raft. A pristine directory of a
    /// founding voter (one of `config.voters`) is bootstrapped with them (every founding voter
    /// may do so: the same membership everywhere is safe); a directory holding a log resumes
    /// from it. A node that is not one of `config.voters` starts empty and waits for the
    /// voters to add it ([`ControlNode::change_voters`]).
    pub async fn start(config: NodeConfig) -> Result<ControlNode, NodeError> {
        check_config(&config)?;
        let raft_config = Arc::new(raft_config(&config.timing)?);
        let dir = config.dir.clone();
        let (log, sm) = match tokio::task::spawn_blocking(move || store::open(&dir)).await {
            Ok(opened) => opened?,
            Err(e) if e.is_cancelled() => return Err(StoreError::Cancelled.into()),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let map = sm.subscribe();
        let deadline = tokio::time::Instant::now() + crate::limits::BIND_WAIT_MAX;
        let listener = loop {
            match TcpListener::bind(&config.listen).await {
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                bound => {
                    break bound.map_err(|source| NodeError::Listen {
                        address: config.listen.clone(),
                        source,
                    })?
                }
            }
        };
        let local_addr = listener.local_addr().map_err(|source| NodeError::Listen {
            address: config.listen.clone(),
            source,
        })?;
        let peers = Peers {
            secret: config.secret.clone(),
        };
        let raft = Raft::new(config.id, raft_config, peers, log, sm)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(id, address)| (*id, BasicNode::new(address)))
            .collect();
        // Before serving, so no peer's message reaches a voter between its start and its
        // bootstrap: with `initialize` after `serve`, one run of tests/cluster.rs in a few
        // panicked openraft's engine (its assertion that a follower has no leader state).
        // Asked first: `initialize` on a directory holding a log refuses and logs an ERROR
        // ("Can not initialize") at every restart, which reads like damage.
        let pristine = match raft.is_initialized().await {
            Ok(initialized) => !initialized,
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(NodeError::Raft(e.to_string()));
            }
        };
        // Only a founding voter bootstraps. A joining one must not: its own first membership
        // would carry the same log id as the cluster's, and Raft would take the two for one.
        let founding = config.voters.contains_key(&config.id);
        let initialized = if pristine && founding {
            raft.initialize(members).await
        } else {
            Ok(())
        };
        match initialized {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(NodeError::Raft(e.to_string()));
            }
        }
        let server = network::serve(
            listener,
            config.secret.clone(),
            Arc::new(Serve {
                raft: raft.clone(),
                map: map.clone(),
                secret: config.secret.clone(),
                propose_timeout: config.timing.propose_timeout,
            }),
        );
        Ok(ControlNode {
            id: config.id,
            raft,
            map,
            server,
            local_addr,
            secret: config.secret.clone(),
            propose_timeout: config.timing.propose_timeout,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the voter listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// The map as this voter has applied it, and every later one: a follower's may lag the
    /// leader's by the entries in flight.
    pub fn map(&self) -> watch::Receiver<Arc<ClusterMap>> {
        self.map.clone()
    }

    /// The leader this voter knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this voter leads, for a task that outlives a borrow of it (the layout mover).
    pub fn leadership(&self) -> Leadership {
        Leadership {
            id: self.id,
            metrics: self.raft.metrics(),
        }
    }

    /// The voters of the committed membership.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// A handle that confirms this voter's leadership (`Confirmer`).
    pub fn confirmer(&self) -> Confirmer {
        Confirmer(self.raft.clone())
    }

    /// openraft's own handle, for metrics and waiting.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Commits `command` through the leader: here if this voter leads, else forwarded once to
    /// the leader it knows. The outcome is the map's answer (applied, or refused and why).
    pub async fn propose(&self, command: Command) -> Result<Outcome, ProposeError> {
        propose(&self.raft, &self.secret, self.propose_timeout, command, 0).await
    }

    /// Like [`ControlNode::propose`] but never forwards: a follower answers who leads.
    pub async fn propose_here(&self, command: Command) -> Result<Outcome, ProposeError> {
        propose(
            &self.raft,
            &self.secret,
            self.propose_timeout,
            command,
            limits::FORWARD_HOPS_MAX,
        )
        .await
    }

    /// The committed map as of this call: the leader confirms its leadership with a majority
    /// and waits until it has applied everything committed before (a follower asks the
    /// leader), so the map holds every command acknowledged before the call.
    pub async fn read_map(&self) -> Result<Arc<ClusterMap>, ProposeError> {
        read_map(&self.raft, &self.map, &self.secret, self.propose_timeout, 0).await
    }

    /// Makes `voters` the control plane's voters, through the leader (forwarded once from a
    /// follower): each node not yet a member (given with its control address) is added as a
    /// learner and caught up first, then the membership changes in one joint step; voters
    /// left out stop being members. The new set has 1, 3 or 5 voters. Answers the voters once
    /// changed.
    pub async fn change_voters(
        &self,
        voters: BTreeMap<NodeId, Option<String>>,
    ) -> Result<BTreeMap<NodeId, String>, ProposeError> {
        change_voters(&self.raft, &self.secret, self.propose_timeout, voters, 0).await
    }

    /// Stops the voter: Raft shut down, the port closed, every connection dropped.
    pub async fn stop(mut self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "control plane: raft shutdown");
        }
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for ControlNode {
    /// A voter dropped without `stop` still closes its port: the server task holds a Raft
    /// handle, and aborting it lets openraft's core end once the last handle is gone.
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn propose(
    raft: &Raft<TypeConfig>,
    secret: &Secret,
    timeout: Duration,
    command: Command,
    hops: u8,
) -> Result<Outcome, ProposeError> {
    let written = tokio::time::timeout(timeout, raft.client_write(command.clone()))
        .await
        .map_err(|_| ProposeError::TimedOut {
            timeout_ms: timeout.as_millis() as u64,
        })?;
    let forward = match written {
        Ok(written) => {
            return Ok(written
                .data
                .expect("a command's entry answers with its outcome"))
        }
        Err(RaftError::Fatal(e)) => return Err(network::stopped(&e)),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            unreachable!("no membership change is proposed here: {e}")
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f,
    };
    forward_to(forward, hops, secret)?
        .propose(command, hops + 1)
        .await
}

/// The leader to forward to, once: a request that already took its hop answers who leads.
fn forward_to(
    forward: ForwardToLeader<NodeId, BasicNode>,
    hops: u8,
    secret: &Secret,
) -> Result<Peer, ProposeError> {
    let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) else {
        return Err(ProposeError::NoLeader);
    };
    if hops >= limits::FORWARD_HOPS_MAX {
        return Err(ProposeError::NotLeader {
            leader,
            address: node.addr,
        });
    }
    Ok(Peer::new(leader, node.addr, secret.clone()))
}

async fn read_map(
    raft: &Raft<TypeConfig>,
    map: &watch::Receiver<Arc<ClusterMap>>,
    secret: &Secret,
    timeout: Duration,
    hops: u8,
) -> Result<Arc<ClusterMap>, ProposeError> {
    let confirmed = tokio::time::timeout(timeout, raft.ensure_linearizable())
        .await
        .map_err(|_| ProposeError::TimedOut {
            timeout_ms: timeout.as_millis() as u64,
        })?;
    let forward = match confirmed {
        // The state machine has applied up to the read point: the watch holds it.
        Ok(_) => return Ok(map.borrow().clone()),
        Err(RaftError::Fatal(e)) => return Err(network::stopped(&e)),
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
            return Err(ProposeError::NoQuorum {
                reason: e.to_string(),
            })
        }
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => f,
    };
    let remote = forward_to(forward, hops, secret)?
        .read_map(hops + 1)
        .await?;
    Ok(Arc::new(remote))
}

/// Why a voter set cannot be asked for, given the current membership: its size, or a node
/// whose address is missing or differs from its member's.
fn check_voters(
    wanted: &BTreeMap<NodeId, Option<String>>,
    membership: &openraft::Membership<NodeId, BasicNode>,
) -> Result<(), String> {
    if ![1, 3, 5].contains(&wanted.len()) {
        return Err(format!(
            "{} voters asked for: a control plane has 1, 3 or 5",
            wanted.len()
        ));
    }
    for (id, address) in wanted {
        match (membership.get_node(id), address) {
            (None, None) => {
                return Err(format!(
                    "node {id} is not a member of the control plane: give its control address \
                     (ID=HOST:PORT, its `[control] listen`)"
                ))
            }
            (Some(node), Some(address)) if node.addr != *address => {
                return Err(format!(
                    "node {id} is a member at {}, not at {address}",
                    node.addr
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

async fn change_voters(
    raft: &Raft<TypeConfig>,
    secret: &Secret,
    timeout: Duration,
    wanted: BTreeMap<NodeId, Option<String>>,
    hops: u8,
) -> Result<BTreeMap<NodeId, String>, ProposeError> {
    let refused = |reason: String| ProposeError::VotersRefused { reason };
    let confirmed = tokio::time::timeout(timeout, raft.ensure_linearizable())
        .await
        .map_err(|_| ProposeError::TimedOut {
            timeout_ms: timeout.as_millis() as u64,
        })?;
    match confirmed {
        Ok(_) => {}
        Err(RaftError::Fatal(e)) => return Err(network::stopped(&e)),
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
            return Err(ProposeError::NoQuorum {
                reason: e.to_string(),
            })
        }
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
            return forward_to(f, hops, secret)?
                .change_voters(wanted, hops + 1)
                .await
        }
    }
    let membership = raft.metrics().borrow().membership_config.clone();
    let membership = membership.membership();
    check_voters(&wanted, membership).map_err(refused)?;
    let written = |e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>| match e {
        RaftError::Fatal(e) => network::stopped(&e),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => refused(e.to_string()),
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            forward_to(f, limits::FORWARD_HOPS_MAX, secret)
                .err()
                .unwrap_or(ProposeError::NoLeader)
        }
    };
    for (id, address) in &wanted {
        let Some(address) = address else { continue };
        if membership.get_node(id).is_some() {
            continue;
        }
        let node = BasicNode::new(address);
        match tokio::time::timeout(timeout, raft.add_learner(*id, node, true)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(written(e)),
            Err(_) => {
                // Not caught up: take it out again, so a retry may name another address.
                let removed = ChangeMembers::RemoveNodes([*id].into());
                let _ = tokio::time::timeout(timeout, raft.change_membership(removed, true)).await;
                return Err(refused(format!(
                    "node {id} at {address} did not catch up within {} ms: is it running, with \
                     `[control] listen = \"{address}\"` and the cluster secret?",
                    timeout.as_millis()
                )));
            }
        }
    }
    let ids: BTreeSet<NodeId> = wanted.keys().copied().collect();
    let changed = tokio::time::timeout(timeout, raft.change_membership(ids, false))
        .await
        .map_err(|_| ProposeError::TimedOut {
            timeout_ms: timeout.as_millis() as u64,
        })?
        .map_err(written)?;
    let membership = changed
        .membership
        .expect("a membership change answers with the membership");
    Ok(voters_of(&membership))
}
