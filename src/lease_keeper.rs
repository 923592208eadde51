//! Failover of conditional writes (issue 14 item 4; cluster/DESIGN.md, "Failover of
//! conditional writes"): the node whose control-plane voter leads grants every node a lease to
//! serialize conditional writes, and demotes a node it could not reach for longer than any
//! lease it may hold.
//!
//! - Every `LEASE_GRANT_EVERY`, the leader confirms its leadership with a quorum
//!   (`Confirmer`), then sends `Request::Lease` to one core of each node of the
//!   current layout that is neither removed nor demoted. The lease runs `LEASE` from the
//!   confirmation, less the time taken since: a leader that lost its quorum grants nothing a
//!   new one could overlap for longer than `LEASE` after the new one's election.
//! - A node's cores refuse `MetaPutIf` once its lease ran out (`engine::LayoutGate`).
//! - A node whose last acknowledged grant (or this leader's start, whichever is later) is
//!   more than `LEASE + LEASE_MARGIN` old is demoted (`Command::Demote`): by then it serializes
//!   nothing, so each of its groups' next core may start (`Backend::serializes`), with no
//!   moment at which both accept.
//!
//! Owns: the grants and the demotion. Does not own: routing around demoted nodes (the
//! backend, from the map), nor giving a node that came back its role again (not built: a
//! demoted node stays demoted; a restore needs a gap in which no core serializes, as a layout
//! change's `Handoff` has).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::backend::Backend;
use control::follow::Voters;
use control::map::{ClusterMap, Command};
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

/// What the lease keeper of a voter needs.
pub struct LeaseTask {
    pub leadership: Leadership,
    pub confirmer: Confirmer,
    pub voters: Voters,
    pub backend: Arc<Backend>,
    pub applied: Applied,
}

impl LeaseTask {
    /// Grants and demotes while this voter leads, until the task is dropped.
    pub async fn run(self) {
        let mut led_since: Option<Instant> = None;
        let mut granted: BTreeMap<u64, Instant> = BTreeMap::new();
        loop {
            tokio::time::sleep(LEASE_GRANT_EVERY).await;
            if !self.leadership.leads() {
                led_since = None;
                granted.clear();
                continue;
            }
            let since = *led_since.get_or_insert_with(Instant::now);
            let Some(map) = self.applied.borrow().as_ref().map(|(_, m)| m.clone()) else {
                continue;
            };
            let confirmed_at = Instant::now();
            if !self.confirmer.confirm(GRANT_TIMEOUT).await {
                tracing::debug!("leases: leadership not confirmed, nothing granted");
                continue;
            }
            let nodes = serializing_nodes(&map, &self.backend);
            self.grant(&nodes, confirmed_at, &mut granted).await;
            for node in nodes {
                let last = granted.get(&node).copied().unwrap_or(since).max(since);
                if last.elapsed() > LEASE + LEASE_MARGIN {
                    self.demote(node, last.elapsed()).await;
                }
            }
        }
    }

    /// Sends every node of `nodes` its lease at once; records when each answer came.
    async fn grant(
        &self,
        nodes: &[u64],
        confirmed_at: Instant,
        granted: &mut BTreeMap<u64, Instant>,
    ) {
        let calls = nodes.iter().filter_map(|&node| {
            let core = self.core_of(node)?;
            let backend = self.backend.clone();
            Some(async move {
                let left = LEASE.saturating_sub(confirmed_at.elapsed());
                let request = Request::Lease {
                    duration_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX),
                };
                let answer = tokio::time::timeout(GRANT_TIMEOUT, backend.call(core, request)).await;
                (node, matches!(answer, Ok(Ok(Response::MapApplied { .. }))))
            })
        });
        for (node, ok) in futures::future::join_all(calls).await {
            if ok {
                granted.insert(node, Instant::now());
            }
        }
    }

    /// One core of `node` in this process's backend (a node answers for all of its cores).
    fn core_of(&self, node: u64) -> Option<usize> {
        (0..self.backend.core_count()).find(|&c| self.backend.node_of(c) == Some(node))
    }

    async fn demote(&self, node: u64, unreached: Duration) {
        tracing::warn!(
            node,
            unreached_s = unreached.as_secs(),
            "leases: node {node} was not reached past its lease: it is demoted, the next core \
             of each of its placement groups serializes their conditional writes"
        );
        if let Err(e) = control::follow::propose_any(&self.voters, Command::Demote { node }).await {
            tracing::warn!(node, error = %e, "leases: the demotion was not committed");
        }
    }
}

/// The nodes that may serialize conditional writes: those of the map's current layout (or,
/// before the map holds one, of the layout this process routes by: the nodes' files) that are
/// neither removed nor demoted.
fn serializing_nodes(map: &ClusterMap, backend: &Backend) -> Vec<u64> {
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
        .filter(|n| !n.removed && !map.demoted.contains(&n.id))
        .map(|n| n.id)
        .collect()
}
