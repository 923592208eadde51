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
//!   it chose before) or holds no lease, the records of its groups that their substitutes hold
//!   are copied to it (`cluster::restore::hand_back`: a create a substitute accepted may not
//!   have reached any other replica yet), then it serializes again (`Command::Reinstate`) and
//!   its grants let its cores serialize.
//! - Every node reached gets a lease, a demoted one's `serializes: false`: a node's gateway
//!   routes conditional writes only under a lease (its map may be stale otherwise).
//!
//! Owns: the grants, the demotion and the restore. Does not own: routing by the nodes'
//! standing (the backend, from the map).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::backend::Backend;
use cluster::moves::Catalog;
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
    /// Which placement group a record belongs to (the records a node gets back).
    pub catalog: Arc<dyn Catalog>,
    pub applied: Applied,
}

/// A node's records being handed back (`LeaseTask::handed_back`).
type HandBack = tokio::task::JoinHandle<Result<u64, cluster::backend::BackendError>>;

/// One round's view, from which each node's next step is decided (`Round::decide`): pure, so
/// the rules are tested with any clock.
struct Round<'a> {
    /// The nodes leased this round.
    nodes: &'a [u64],
    heard: &'a BTreeMap<u64, Heard>,
    /// When this leader began leading: a node not heard since is counted from then.
    since: Instant,
    now: Instant,
}

impl Round<'_> {
    /// Whether node `n`'s lease, from any leader, must have run out.
    fn expired(&self, n: u64) -> bool {
        let heard = self.heard.get(&n).and_then(|h| h.at);
        let last = heard.unwrap_or(self.since).max(self.since);
        self.now.saturating_duration_since(last) > LEASE + LEASE_MARGIN
    }

    /// What to propose for `node`, whose standing in the map is `standing` (and, if it is
    /// `Restoring`, was so at map index `restoring_at`).
    fn decide(&self, node: u64, standing: Option<Demotion>, restoring_at: u64) -> Option<Command> {
        match standing {
            None | Some(Demotion::Restoring) if self.expired(node) => {
                Some(Command::Demote { node })
            }
            Some(Demotion::Demoted)
                if self
                    .heard
                    .get(&node)
                    .is_some_and(|h| h.rounds >= ROUNDS_BEFORE_RESTORE) =>
            {
                Some(Command::Restore { node })
            }
            // Every node routes by a map where it is on its way back (and ended what it chose
            // before), or holds no lease and routes nothing.
            Some(Demotion::Restoring)
                if self.nodes.iter().all(|&n| {
                    self.expired(n)
                        || self
                            .heard
                            .get(&n)
                            .is_some_and(|h| h.applied >= restoring_at)
                }) =>
            {
                Some(Command::Reinstate { node })
            }
            _ => None,
        }
    }
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
        // Node → its records being handed back before it is reinstated (`handed_back`).
        let mut handing: BTreeMap<u64, HandBack> = BTreeMap::new();
        loop {
            tokio::time::sleep(LEASE_GRANT_EVERY).await;
            if !self.leadership.leads() {
                led_since = None;
                heard.clear();
                restoring_at.clear();
                handing.clear();
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
            let round = Round {
                nodes: &nodes,
                heard: &heard,
                since,
                now: Instant::now(),
            };
            let mut decided = Vec::new();
            for &node in &nodes {
                let standing = map.demoted.get(&node).copied();
                let at = if standing == Some(Demotion::Restoring) {
                    *restoring_at.entry(node).or_insert(index)
                } else {
                    restoring_at.remove(&node);
                    0
                };
                decided.push((node, round.decide(node, standing, at)));
            }
            // A copy for a node no longer on its way back is not waited for.
            handing.retain(|n, _| map.demoted.get(n) == Some(&Demotion::Restoring));
            for (node, command) in decided {
                let Some(command) = command else {
                    continue;
                };
                if let Command::Reinstate { .. } = command {
                    if !self.handed_back(node, &mut handing) {
                        continue;
                    }
                }
                restoring_at.remove(&node);
                self.propose(node, command).await;
            }
        }
    }

    /// Whether node `node`'s groups' records were handed back from the cores that serialized
    /// them while it was demoted (`cluster::restore::hand_back`), so it may be reinstated. The
    /// copy runs in a task of its own (it scans the other nodes' cores, and grants must go on
    /// meanwhile): the first call starts it, later ones look; a failed copy is started again.
    fn handed_back(&self, node: u64, handing: &mut BTreeMap<u64, HandBack>) -> bool {
        let running = handing.entry(node).or_insert_with(|| {
            let (backend, catalog) = (self.backend.clone(), self.catalog.clone());
            tokio::spawn(
                async move { cluster::restore::hand_back(&backend, &*catalog, node).await },
            )
        });
        if !running.is_finished() {
            return false;
        }
        let Some(done) = handing.remove(&node) else {
            return false;
        };
        match futures::FutureExt::now_or_never(done) {
            Some(Ok(Ok(copied))) => {
                tracing::info!(
                    node,
                    copied,
                    "leases: the records its substitutes accepted were handed back to node \
                     {node}"
                );
                true
            }
            Some(Ok(Err(e))) => {
                tracing::warn!(node, error = %e, "leases: handing records back failed; tried again");
                false
            }
            _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(at: Option<Instant>, applied: u64, rounds: u32) -> Heard {
        Heard {
            at,
            applied,
            rounds,
        }
    }

    #[test]
    fn a_node_silent_past_its_lease_and_the_margin_is_demoted_counting_from_the_election() {
        let since = Instant::now();
        let limit = LEASE + LEASE_MARGIN;
        let nodes = [1, 2];
        let heard = BTreeMap::from([(1, heard(Some(since), 5, 1))]);
        let at = |after: Duration| Round {
            nodes: &nodes,
            heard: &heard,
            since,
            now: since + after,
        };
        // Node 2, never heard, is counted from the election: not demoted before the limit.
        assert_eq!(at(limit).decide(2, None, 0), None);
        let late = at(limit + Duration::from_millis(1));
        assert_eq!(late.decide(2, None, 0), Some(Command::Demote { node: 2 }));
        assert_eq!(late.decide(1, None, 0), Some(Command::Demote { node: 1 }));
        // A node on its way back that goes silent again is demoted again.
        assert_eq!(
            late.decide(1, Some(Demotion::Restoring), 7),
            Some(Command::Demote { node: 1 })
        );
        // A demoted node stays demoted while silent (nothing to propose).
        assert_eq!(late.decide(1, Some(Demotion::Demoted), 0), None);
    }

    #[test]
    fn a_demoted_node_is_restored_after_answering_enough_rounds_in_a_row() {
        let since = Instant::now();
        let nodes = [1, 2];
        for (rounds, want) in [
            (ROUNDS_BEFORE_RESTORE - 1, None),
            (ROUNDS_BEFORE_RESTORE, Some(Command::Restore { node: 2 })),
        ] {
            let heard = BTreeMap::from([(2, heard(Some(since), 3, rounds))]);
            let round = Round {
                nodes: &nodes,
                heard: &heard,
                since,
                now: since + LEASE_GRANT_EVERY,
            };
            assert_eq!(
                round.decide(2, Some(Demotion::Demoted), 0),
                want,
                "{rounds}"
            );
        }
    }

    /// The restore fence: a restoring node serializes again only once every node has either
    /// applied the map in which it is restoring, or holds no lease any more.
    #[test]
    fn a_restoring_node_is_reinstated_only_once_every_node_applied_its_restore_or_lost_its_lease() {
        let since = Instant::now();
        let nodes = [1, 2, 3];
        let restoring_at = 10;
        let now = since + LEASE_GRANT_EVERY;
        let decide = |heard: &BTreeMap<u64, Heard>, now: Instant| {
            Round {
                nodes: &nodes,
                heard,
                since,
                now,
            }
            .decide(2, Some(Demotion::Restoring), restoring_at)
        };
        let behind = BTreeMap::from([
            (1, heard(Some(now), 10, 4)),
            (2, heard(Some(now), 10, 4)),
            (3, heard(Some(now), 9, 4)),
        ]);
        assert_eq!(
            decide(&behind, now),
            None,
            "node 3 routes by a map before the restore"
        );
        let caught_up = BTreeMap::from([
            (1, heard(Some(now), 11, 4)),
            (2, heard(Some(now), 10, 4)),
            (3, heard(Some(now), 10, 4)),
        ]);
        assert_eq!(
            decide(&caught_up, now),
            Some(Command::Reinstate { node: 2 })
        );
        // Node 3, still behind, goes silent: once its lease must have run out, it no longer
        // holds the reinstatement back (the others still answer).
        let silent = BTreeMap::from([
            (1, heard(Some(now), 10, 4)),
            (2, heard(Some(now), 10, 4)),
            (3, heard(Some(since), 9, 0)),
        ]);
        let limit = since + LEASE + LEASE_MARGIN;
        assert_eq!(decide(&silent, limit), None);
        let later = limit + Duration::from_millis(1);
        let fresh = BTreeMap::from([
            (1, heard(Some(later), 10, 5)),
            (2, heard(Some(later), 10, 5)),
            (3, heard(Some(since), 9, 0)),
        ]);
        assert_eq!(decide(&fresh, later), Some(Command::Reinstate { node: 2 }));
    }
}
