//! The mover of a clustered node (cluster/DESIGN.md, "Layout changes"): while this node's
//! voter leads and the committed map has a change not done, it moves the change's groups with
//! the object layer's catalog, taking each group from phase to phase through the control plane
//! ([`ControlPhases`]): the phase is committed in the map, then the mover waits until every
//! node of both layouts has applied it (each node's follower reports a map's log index on its
//! cores only once it routes by it and the operations it routed under the phase before have
//! ended). A new leader's mover continues where the last one stopped: the phases are in the
//! map, and the copies are idempotent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cluster::backend::Backend;
use cluster::moves::{MoveError, Mover, MoverConfig, Phase, Phases, Progress, Transition};
use control::map::{ClusterMap, Command, GroupPhase, Refusal};
use control::{Leadership, Voters};
use objects::move_catalog::ObjectCatalog;
use objects::store::Store;
use proto::{Request, Response};

/// The newest map this process applied (its log index), `None` before the first.
pub type Applied = tokio::sync::watch::Receiver<Option<(u64, Arc<ClusterMap>)>>;

/// How often an idle mover looks for a change to move (and a moving one at its leadership).
const MOVER_POLL: Duration = Duration::from_millis(500);
/// How long a committed phase may take to reach this process's follower.
const PHASE_APPLIED_WAIT: Duration = Duration::from_secs(30);
/// How long the mover waits for every node to apply a phase (a node down holds the change:
/// the step fails and is tried again, `MOVE_ATTEMPTS_MAX` times).
const NODES_APPLIED_WAIT: Duration = Duration::from_secs(30);
const NODES_APPLIED_POLL: Duration = Duration::from_millis(50);
/// Fragment bytes a mover copies per second at most.
pub const MOVE_RATE_BYTES_PER_S_DEFAULT: u64 = 64 << 20;

fn group_phase(p: Phase) -> GroupPhase {
    match p {
        Phase::Pending => GroupPhase::Pending,
        Phase::Moving => GroupPhase::Moving,
        Phase::Handoff => GroupPhase::Handoff,
        Phase::CutOver => GroupPhase::CutOver,
        Phase::Done => GroupPhase::Done,
    }
}

/// The fence across processes: a phase committed in the map and applied by every node.
pub struct ControlPhases {
    voters: Voters,
    backend: Arc<Backend>,
    applied: Applied,
}

impl ControlPhases {
    /// The log index at which this process applied a map with group `pg` at `to` or later.
    async fn applied_here(&self, to_version: u64, pg: u32, to: GroupPhase) -> Result<u64, String> {
        let mut applied = self.applied.clone();
        let reached = |a: &Option<(u64, Arc<ClusterMap>)>| {
            a.as_ref().is_some_and(|(_, map)| {
                map.current > to_version
                    || map.change.as_ref().is_some_and(|c| {
                        c.to_version == to_version
                            && c.groups.get(&pg).is_some_and(|g| g.phase >= to)
                    })
            })
        };
        let waited = tokio::time::timeout(PHASE_APPLIED_WAIT, applied.wait_for(reached)).await;
        match waited {
            Ok(Ok(a)) => Ok(a.as_ref().map_or(0, |(index, _)| *index)),
            Ok(Err(_)) => Err("this process stopped following the map".into()),
            Err(_) => Err(format!(
                "this process did not apply it within {} s",
                PHASE_APPLIED_WAIT.as_secs()
            )),
        }
    }

    /// Waits until every node of both layouts answers that it applied log index `index`.
    async fn nodes_applied(&self, t: &Transition, index: u64) -> Result<(), String> {
        // One core per node: the node answers for all of its cores. A node the change removes
        // is not waited for: the operator said it is out (dead or stopped), and every other
        // node's cores refuse its frames once they route by the new layout alone.
        let mut nodes: Vec<(u64, usize)> = Vec::new();
        for (i, c) in t.cores().iter().enumerate() {
            if !t.leaves(i) && !nodes.iter().any(|(n, _)| *n == c.node) {
                nodes.push((c.node, i));
            }
        }
        let deadline = tokio::time::Instant::now() + NODES_APPLIED_WAIT;
        for (node, core) in nodes {
            loop {
                let last = match self.backend.call(core, Request::MapApplied).await {
                    Ok(Response::MapApplied { index: at, .. }) if at >= index => break,
                    Ok(Response::MapApplied { index: at, .. }) => format!("it is at {at}"),
                    Ok(other) => format!("it answered {other:?}"),
                    Err(e) => e.to_string(),
                };
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "node {node} did not apply log index {index} within {} s: {last}",
                        NODES_APPLIED_WAIT.as_secs()
                    ));
                }
                tokio::time::sleep(NODES_APPLIED_POLL).await;
            }
        }
        Ok(())
    }
}

impl Phases for ControlPhases {
    fn advance<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pg: u32,
        to: Phase,
    ) -> Pin<Box<dyn Future<Output = Result<(), MoveError>> + Send + 'a>> {
        Box::pin(async move {
            let to_version = transition.new_layout().version();
            let phase = group_phase(to);
            let command = Command::UpdateChange {
                to_version,
                pg,
                phase,
            };
            match control::follow::propose_any(&self.voters, command).await {
                Ok(Ok(_)) => {}
                // Another mover (a leader before this one) took it further already.
                Ok(Err(Refusal::PhaseOrder { from, .. })) if from >= phase => {}
                Ok(Err(r)) => return Err(MoveError::Unconfirmed(r.to_string())),
                Err(e) => return Err(MoveError::Unconfirmed(e.to_string())),
            }
            let index = self
                .applied_here(to_version, pg, phase)
                .await
                .map_err(MoveError::Unconfirmed)?;
            self.nodes_applied(transition, index)
                .await
                .map_err(MoveError::Unconfirmed)
        })
    }

    /// The groups' phases in one command (`UpdateChanges`: one commit, one map for every
    /// follower to apply), then one wait for this process and one for every node.
    fn advance_groups<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pgs: &'a [u32],
        to: Phase,
    ) -> Pin<Box<dyn Future<Output = Result<(), MoveError>> + Send + 'a>> {
        Box::pin(async move {
            let to_version = transition.new_layout().version();
            let phase = group_phase(to);
            let command = Command::UpdateChanges {
                to_version,
                pgs: pgs.to_vec(),
                phase,
            };
            // Groups a mover before this one took further already are left where they are.
            match control::follow::propose_any(&self.voters, command).await {
                Ok(Ok(_)) => {}
                Ok(Err(r)) => return Err(MoveError::Unconfirmed(r.to_string())),
                Err(e) => return Err(MoveError::Unconfirmed(e.to_string())),
            }
            let mut index = 0;
            for &pg in pgs {
                let at = self
                    .applied_here(to_version, pg, phase)
                    .await
                    .map_err(MoveError::Unconfirmed)?;
                index = index.max(at);
            }
            self.nodes_applied(transition, index)
                .await
                .map_err(MoveError::Unconfirmed)
        })
    }

    /// Nothing more to wait for: a node reports a phase applied only once its own fence of
    /// that phase passed (`Transition::fence`).
    fn fence<'a>(
        &'a self,
        _transition: &'a Arc<Transition>,
        _pg: u32,
        _phase: Phase,
    ) -> Pin<Box<dyn Future<Output = Result<(), MoveError>> + Send + 'a>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The mover's figures in `/-/metrics`, with its estimate of the time left: the groups left at
/// the rate this mover took groups to `Done` since it started (none done yet: no estimate).
fn record_progress(p: &Progress, t: &Transition, first_done: usize, elapsed: Duration) {
    let (done, total) = t.done();
    let moved_here = done.saturating_sub(first_done) as u64;
    let left = (total - done) as u64;
    let eta = if moved_here == 0 || left == 0 {
        0
    } else {
        elapsed.as_secs() * left / moved_here
    };
    s3api::metrics::global().record_move(
        &[
            ("records", p.records),
            ("fragments", p.fragments),
            ("bytes", p.bytes),
            ("in_place", p.in_place),
            ("retired", p.retired),
        ],
        eta,
    );
}

/// What a node's mover needs.
pub struct MoverTask {
    pub leadership: Leadership,
    pub voters: Voters,
    pub store: Store,
    pub applied: Applied,
    pub rate_bytes_per_s: u64,
}

impl MoverTask {
    /// Moves every change this node's voter leads through, until the task is dropped.
    pub async fn run(self) {
        loop {
            tokio::time::sleep(MOVER_POLL).await;
            if !self.leadership.leads() {
                continue;
            }
            let backend = self.store.backend().clone();
            let Some(t) = backend.transition() else {
                continue;
            };
            let map = self.applied.borrow().as_ref().map(|(_, m)| m.clone());
            let moving = map
                .and_then(|m| m.change.clone())
                .is_some_and(|c| c.to_version == t.new_layout().version() && !c.is_done());
            if !moving {
                continue;
            }
            self.move_change(&backend, t).await;
        }
    }

    /// Moves `t` (what the backend routes by when this starts: the follower may take the
    /// change's end at any time, so the mover keeps its own handle of it).
    async fn move_change(&self, backend: &Arc<Backend>, t: Arc<Transition>) {
        let to = t.new_layout().version();
        let catalog = ObjectCatalog::new(&self.store);
        let phases = ControlPhases {
            voters: self.voters.clone(),
            backend: backend.clone(),
            applied: self.applied.clone(),
        };
        let config = MoverConfig::at_rate(self.rate_bytes_per_s);
        let mover =
            Mover::of_change(backend, t.clone(), &catalog, config).with_phases(Arc::new(phases));
        tracing::info!(
            to,
            "layout change: this node leads the control plane and moves the data"
        );
        let lost = async {
            while self.leadership.leads() {
                tokio::time::sleep(MOVER_POLL).await;
            }
        };
        let report = async {
            let started = tokio::time::Instant::now();
            let first_done = t.done().0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                record_progress(&mover.progress(), &t, first_done, started.elapsed());
            }
        };
        tokio::select! {
            outcome = mover.run() => match outcome {
                Ok(p) => tracing::info!(
                    to,
                    groups = p.groups,
                    records = p.records,
                    fragments = p.fragments,
                    bytes = p.bytes,
                    "layout change: every group moved"
                ),
                Err(e) => tracing::warn!(to, "layout change: the mover stopped (it starts again): {e}"),
            },
            () = lost => tracing::info!(to, "layout change: this node no longer leads; its mover stops"),
            () = report => {}
        }
        record_progress(&mover.progress(), &t, t.done().0, Duration::ZERO);
    }
}
