//! Failover of conditional writes (issue 14 item 4; cluster/DESIGN.md, "Failover of
//! conditional writes"): the node whose control-plane voter leads grants every node a lease to
//! serialize conditional writes, and demotes a node it could not reach for longer than any
//! lease it may hold.
//!
//! - Every `LEASE_GRANT_EVERY`, the leader confirms its leadership with a quorum
//!   (`Confirmer`), then sends `Request::Lease` to one core of each node of the current
//!   layout that is not removed. The lease runs `LEASE` from the confirmation, less the time
//!   taken since: a leader that lost its quorum grants nothing a new one could overlap for
//!   longer than `LEASE` after the new one's election.
//! - A node's cores refuse `MetaPutIf` once its lease ran out, or under a demoted node's lease
//!   (`engine::LayoutGate`).
//! - A node whose last acknowledged grant (or this leader's start, whichever is later) is
//!   more than `LEASE + LEASE_MARGIN` old is demoted (`Command::Demote`): by then it serializes
//!   nothing, so each of its groups' next core may start (`Placement::choose` skips it), with
//!   no moment at which both accept.
//! - A demoted node that answers `ROUNDS_BEFORE_RESTORE` grants in a row is on its way back
//!   (`Command::Restore`): no core serializes the groups it heads. Once every node either
//!   answered a grant having applied that map (its follower then ended the conditional writes
//!   it chose before) or holds no lease, it serializes again (`Command::Reinstate`) and its
//!   grants let its cores serialize.
//! - Every node reached gets a lease, a demoted one's `serializes: false`: a node's gateway
//!   routes conditional writes only under a lease (its map may be stale otherwise).
//!
//! Owns: the grants, the demotion and the restore. Does not own: routing by the nodes'
//! standing (the backend, from the map).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::backend::Backend;
use control::follow::Voters;
use control::map::{ClusterMap, Command, Demotion};
use control::{Confirmer, Leadership};
use proto::{Request, Response};
use tokio::time::Instant;

use crate::layout_mover::Applied;

/// How long a grant lets a node serialize conditional writes, from the leader's confirmation.
pub const LEASE: Duration = Duration::from_secs(4);
/// Between two rounds of grants.
pub const LEASE_GRANT_EVERY: Duration = Duration::from_secs(1);
/// Added to `LEASE` before a node is demoted: clocks that tick at slightly different rates,
/// and a grant delivered late.
pub const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// A grant that took longer than this is not counted (the lease it gave is shorter than half).
const GRANT_TIMEOUT: Duration = Duration::from_secs(2);

const _: () = assert!(GRANT_TIMEOUT.as_millis() * 2 <= LEASE.as_millis());
const _: () = assert!(LEASE_GRANT_EVERY.as_millis() * 2 <= LEASE.as_millis());

/// Grant rounds in a row a demoted node must answer before it is brought back.
const ROUNDS_BEFORE_RESTORE: u32 = 3;

/// What the lease keeper of a voter needs.
pub struct LeaseTask {
    pub leadership: Leadership,
    pub confirmer: Confirmer,
    pub voters: Voters,
    pub backend: Arc<Backend>,
    pub applied: Applied,
}

/// What this leader heard from one node.
#[derive(Default, Clone, Copy)]
struct Heard {
    /// When its last grant was acknowledged.
    at: Option<Instant>,
    /// The map index it said it had applied then.
    applied: u64,
    /// Grant rounds it answered in a row.
    rounds: u32,
}

impl LeaseTask {
    /// Grants, demotes and restores while this voter leads, until the task is dropped.
    pub async fn run(self) {
        let mut led_since: Option<Instant> = None;
        let mut heard: BTreeMap<u64, Heard> = BTreeMap::new();
        // Node → the map index at which this leader saw it `Restoring`.
        let mut restoring_at: BTreeMap<u64, u64> = BTreeMap::new();
        loop {
            tokio::time::sleep(LEASE_GRANT_EVERY).await;
            if !self.leadership.leads() {
                led_since = None;
                heard.clear();
                restoring_at.clear();
                continue;
            }
            let since = *led_since.get_or_insert_with(Instant::now);
            let Some((index, map)) = self.applied.borrow().clone() else {
                continue;
            };
            let confirmed_at = Instant::now();
            if !self.confirmer.confirm(GRANT_TIMEOUT).await {
                tracing::debug!("leases: leadership not confirmed, nothing granted");
                continue;
            }
            let nodes = layout_nodes(&map, &self.backend);
            self.grant(&nodes, &map, confirmed_at, &mut heard).await;
            // Whether node `n`'s lease (any leader's) must have run out.
            let expired = |n: u64| {
                let last = heard.get(&n).and_then(|h| h.at).unwrap_or(since).max(since);
                last.elapsed() > LEASE + LEASE_MARGIN
            };
            for &node in &nodes {
                match map.demoted.get(&node) {
                    None | Some(Demotion::Restoring) if expired(node) => {
                        restoring_at.remove(&node);
                        self.propose(node, Command::Demote { node }).await;
                    }
                    Some(Demotion::Demoted)
                        if heard
                            .get(&node)
                            .is_some_and(|h| h.rounds >= ROUNDS_BEFORE_RESTORE) =>
                    {
                        self.propose(node, Command::Restore { node }).await;
                    }
                    Some(Demotion::Restoring) => {
                        let at = *restoring_at.entry(node).or_insert(index);
                        // Every node routes by a map where it is on its way back (and ended
                        // what it chose before), or holds no lease and routes nothing.
                        let fenced = nodes
                            .iter()
                            .all(|&n| expired(n) || heard.get(&n).is_some_and(|h| h.applied >= at));
                        if fenced {
                            restoring_at.remove(&node);
                            self.propose(node, Command::Reinstate { node }).await;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends every node of `nodes` its lease at once (a demoted node's does not let its cores
    /// serialize); records what each answered.
    async fn grant(
        &self,
        nodes: &[u64],
        map: &ClusterMap,
        confirmed_at: Instant,
        heard: &mut BTreeMap<u64, Heard>,
    ) {
        let calls = nodes.iter().filter_map(|&node| {
            let core = self.core_of(node)?;
            let backend = self.backend.clone();
            let serializes = !map.demoted.contains_key(&node);
            Some(async move {
                let left = LEASE.saturating_sub(confirmed_at.elapsed());
                let request = Request::Lease {
                    duration_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX),
                    serializes,
                };
                let answer = tokio::time::timeout(GRANT_TIMEOUT, backend.call(core, request)).await;
                match answer {
                    Ok(Ok(Response::MapApplied { index, .. })) => (node, Some(index)),
                    _ => (node, None),
                }
            })
        });
        for (node, answer) in futures::future::join_all(calls).await {
            let h = heard.entry(node).or_default();
            match answer {
                Some(index) => {
                    h.at = Some(Instant::now());
                    h.applied = index;
                    h.rounds = h.rounds.saturating_add(1);
                }
                None => h.rounds = 0,
            }
        }
    }

    /// One core of `node` in this process's backend (a node answers for all of its cores).
    fn core_of(&self, node: u64) -> Option<usize> {
        (0..self.backend.core_count()).find(|&c| self.backend.node_of(c) == Some(node))
    }

    async fn propose(&self, node: u64, command: Command) {
        if let Command::Demote { .. } = command {
            tracing::warn!(
                node,
                "leases: node {node} was not reached past its lease: it is demoted, the next \
                 core of each of its placement groups serializes their conditional writes"
            );
        } else {
            tracing::info!(node, ?command, "leases: node {node} is back");
        }
        match control::follow::propose_any(&self.voters, command).await {
            Ok(Ok(_)) => {}
            Ok(Err(refused)) => tracing::debug!(node, %refused, "leases: refused"),
            Err(e) => tracing::warn!(node, error = %e, "leases: not committed"),
        }
    }
}

/// The nodes of the map's current layout (or, before the map holds one, of the layout this
/// process routes by: the nodes' files) that are not removed.
fn layout_nodes(map: &ClusterMap, backend: &Backend) -> Vec<u64> {
    let layout = match map.current_layout().and_then(|l| l.layout().ok()) {
        Some(l) => Arc::new(l),
        None => match backend.layout() {
            Some(l) => l,
            None => return Vec::new(),
        },
    };
    layout
        .nodes()
        .iter()
        .filter(|n| !n.removed)
        .map(|n| n.id)
        .collect()
}
