//! Live data movement under a layout change (cluster/DESIGN.md, "Layout changes"): routing by
//! two layout versions while placement groups move (`Transition`, `Placement`, `Cores`: what
//! every call of the backend routes by), and the mover that copies a group's records and fragments from
//! their old cores to their new ones, verifies them, cuts the group over and retires the old
//! fragments (`Mover`).
//!
//! A moving group goes `Pending → Moving → Handoff → CutOver → Done` (the phases of the
//! control plane's change, control/DESIGN.md):
//! - **Pending**: routed by the old layout alone, as before the change.
//! - **Moving**: writes go to the union of the old and the new cores of every position and
//!   are acknowledged once the old replica set *and* the new one each have a write quorum;
//!   metadata reads need a read quorum of each set and take the newest; fragment reads try the
//!   old core of a position, then the new one. The mover copies only once no operation routed
//!   as Pending is in flight for the group (the fence), so every write acknowledged before the
//!   copy read is in the old read quorum the copy reads, and every later one in both sets.
//! - **Handoff**: routed as Moving, but conditional writes wait: once no operation routed as
//!   Moving is in flight, the mover copies what the old row's authority holds to the new
//!   row's first core, which serializes them from CutOver on (`Placement::serializer`).
//! - **CutOver**: the mover has copied and verified the group: reads and writes use the new
//!   cores alone.
//! - **Done**: once no operation routed with both rows is in flight, the old cores' fragments
//!   of the group are deleted (after the new ones are checked once more).
//!
//! Groups the change does not move route by the old layout's rows, which are the new ones.
//! A `Placement` (`Backend::place`, `meta_cores`, `route_in`) knows the change; a plain core
//! list passed as `Cores` is one row and routes as given. Conditional writes
//! (`Backend::meta_put_if_in`) go to one core, `Placement::serializer`.
//!
//! Owns: the per-group phase and the operations in flight under each phase (this process's
//! fence; across gateways it is the control plane's, see cluster/DESIGN.md), the union of
//! cores, the mover and its progress. Does not own: which records reference which fragments
//! (the layer above says, through a [`Catalog`]), committing phases to the cluster map, nor
//! deleting metadata records from cores that left a group (the engine has no purge request
//! yet: they stay, older than what their new replicas hold).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use placement::{CoreId, Layout, Tier};
use proto::{ErrorCode, FragmentId, MetaVersion, Request, Response};

use crate::backend::{repair_request, stable_hash, Backend, BackendError, Route, Standing, View};
use crate::ec::Policy;
use crate::limits::{
    MOVE_ATTEMPTS_MAX, MOVE_BATCH_REQUESTS_MAX, MOVE_CALL_TRIES_MAX, MOVE_COPY_BATCH_BYTES_MAX,
    MOVE_COPY_BATCH_RECORDS_MAX, MOVE_FENCE_POLLS_MAX, MOVE_FENCE_POLL_MS, MOVE_RETRY_PAUSE_MS,
    MOVE_STRIPES_PER_ROUND_MAX, SCAN_BATCH_MAX,
};

/// Where a moving placement group is (the control plane's `GroupPhase`, same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Pending = 0,
    Moving = 1,
    /// Routed as `Moving`, but no core takes conditional writes: the role of serializing them
    /// passes from the old row's authority to the new row's (`Placement::serializer`).
    Handoff = 2,
    CutOver = 3,
    Done = 4,
}

const PHASES: usize = 5;

impl Phase {
    fn of(n: u8) -> Phase {
        match n {
            0 => Phase::Pending,
            1 => Phase::Moving,
            2 => Phase::Handoff,
            3 => Phase::CutOver,
            4 => Phase::Done,
            _ => unreachable!("a phase is stored as 0..5"),
        }
    }

    /// The phase before this one.
    pub fn previous(self) -> Option<Phase> {
        match self {
            Phase::Pending => None,
            Phase::Moving => Some(Phase::Pending),
            Phase::Handoff => Some(Phase::Moving),
            Phase::CutOver => Some(Phase::Handoff),
            Phase::Done => Some(Phase::CutOver),
        }
    }

    /// The phase after this one.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Pending => Some(Phase::Moving),
            Phase::Moving => Some(Phase::Handoff),
            Phase::Handoff => Some(Phase::CutOver),
            Phase::CutOver => Some(Phase::Done),
            Phase::Done => None,
        }
    }

    /// Whether operations routed under this phase use both rows.
    fn both_rows(self) -> bool {
        matches!(self, Phase::Moving | Phase::Handoff)
    }
}

/// Why a layout change cannot be routed or moved.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("this layout change is refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("fragment {id:?} read back from {core} differs from what was copied")]
    Verify { id: FragmentId, core: String },
    #[error("record {key:?} on {core} is older than what was copied")]
    VerifyRecord { key: Bytes, core: String },
    #[error("the control plane did not confirm the phase: {0}")]
    Unconfirmed(String),
    #[error("placement group {pg}: operations that {phase:?} must wait for still in flight")]
    Fence { pg: u32, phase: Phase },
    #[error("placement group {pg}: {attempts} attempts failed, the last: {last}")]
    Attempts {
        pg: u32,
        attempts: u32,
        last: String,
    },
}

/// One moving group: its phase and the operations routed under each phase not finished yet.
/// Atomics, not a lock, on the path of every operation: an operation counts itself under the
/// phase it read, then reads the phase again and backs out if it changed; the mover stores
/// the new phase, then waits for the old phase's count to reach zero. Both sides are
/// sequentially consistent, so either the operation sees the new phase or the mover sees
/// the operation (the fence).
struct GroupState {
    phase: AtomicU8,
    in_flight: [AtomicU32; PHASES],
    /// Conditional writes in flight on the core that serializes them, by the phase they chose
    /// it under (`Placement::serialize`): the handoff waits for these alone.
    serialized: [AtomicU32; PHASES],
}

impl GroupState {
    fn new() -> GroupState {
        GroupState {
            phase: AtomicU8::new(Phase::Pending as u8),
            in_flight: std::array::from_fn(|_| AtomicU32::new(0)),
            serialized: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn phase(&self) -> Phase {
        Phase::of(self.phase.load(Ordering::SeqCst))
    }

    /// The phase an operation is routed under, counted in `counts` until it leaves.
    fn enter(&self, counts: &[AtomicU32; PHASES]) -> Phase {
        loop {
            let phase = self.phase();
            counts[phase as usize].fetch_add(1, Ordering::SeqCst);
            if self.phase() == phase {
                return phase;
            }
            counts[phase as usize].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether nothing that reaching `phase` must exclude is in flight: the copy (`Moving`)
    /// waits for every operation routed by the old row alone; the handoff for the conditional
    /// writes serialized by the old authority; the retirement (`CutOver`) for every operation
    /// routed with both rows (a conditional write waiting out the handoff holds a placement
    /// routed as `Moving` or `Handoff`, and is served once the group is past it); `Done` for
    /// those routed as `CutOver`.
    fn fenced(&self, phase: Phase) -> bool {
        let zero =
            |counts: &[AtomicU32; PHASES], p: Phase| counts[p as usize].load(Ordering::SeqCst) == 0;
        match phase {
            Phase::Pending => true,
            Phase::Moving => zero(&self.in_flight, Phase::Pending),
            Phase::Handoff => zero(&self.serialized, Phase::Moving),
            Phase::CutOver => {
                zero(&self.in_flight, Phase::Moving) && zero(&self.in_flight, Phase::Handoff)
            }
            Phase::Done => zero(&self.in_flight, Phase::CutOver),
        }
    }
}

/// A layout change as the gateways route it: both versions, the union of their cores (the
/// backend's core indices), and the phase of every group the change moves.
pub struct Transition {
    old: Arc<Layout>,
    new: Arc<Layout>,
    cores: Vec<CoreId>,
    /// Core index of each layout → index in `cores`.
    old_index: Vec<usize>,
    new_index: Vec<usize>,
    tier: Tier,
    depth: usize,
    meta_replicas: usize,
    /// Every group the change moves (the keys never change).
    groups: BTreeMap<u32, GroupState>,
}

impl Transition {
    /// The change from `old` to `new`, every moving group `Pending`. Refused when the two do
    /// not make one change that this slice moves: versions not increasing, another number of
    /// placement groups, a STANDARD policy on another tier or shallower, moves in another
    /// tier, or core numbers that change (hints name cores by their index in the union, which
    /// must stay the new layout's own: old cores first, new ones appended).
    pub fn new(old: Arc<Layout>, new: Arc<Layout>) -> Result<Transition, MoveError> {
        let refuse = |m: String| Err(MoveError::Refused(m));
        let plan = placement::plan(&old, &new).map_err(|e| MoveError::Refused(e.to_string()))?;
        let standard = |l: &Layout| l.policies().get("STANDARD").map(|p| p.tier);
        let tier = match (standard(&old), standard(&new)) {
            (Some(a), Some(b)) if a == b => a,
            _ => return refuse("both versions need a STANDARD policy on one tier".into()),
        };
        if let Some(m) = plan.moves.iter().find(|m| m.tier != tier) {
            return refuse(format!(
                "it moves tier {} (only the STANDARD tier {tier} moves yet)",
                m.tier
            ));
        }
        let depth = old
            .table(tier)
            .expect("STANDARD's tier has a table")
            .depth();
        let mut cores: Vec<CoreId> = old.cores().iter().map(|c| c.id).collect();
        for c in new.cores() {
            if !cores.contains(&c.id) {
                cores.push(c.id);
            }
        }
        let index = |l: &Layout| -> Vec<usize> {
            l.cores()
                .iter()
                .map(|c| cores.iter().position(|u| *u == c.id).expect("in the union"))
                .collect()
        };
        let (old_index, new_index) = (index(&old), index(&new));
        if new_index.iter().enumerate().any(|(i, u)| i != *u) {
            return refuse(
                "it renumbers cores (a node deleted before the last, or cores reordered): a node \
                 leaves by staying in the file marked `removed = true` (`percore node remove`), \
                 so every core keeps its number"
                    .into(),
            );
        }
        let groups = plan
            .moves
            .iter()
            .map(|m| (m.pg, GroupState::new()))
            .collect();
        Ok(Transition {
            meta_replicas: depth.min(3),
            old,
            new,
            cores,
            old_index,
            new_index,
            tier,
            depth,
            groups,
        })
    }

    pub fn old_layout(&self) -> &Arc<Layout> {
        &self.old
    }

    pub fn new_layout(&self) -> &Arc<Layout> {
        &self.new
    }

    /// Every core of both versions: the old layout's in its order, then the new ones.
    pub fn cores(&self) -> &[CoreId] {
        &self.cores
    }

    /// The tier whose table the change moves (the STANDARD policy's).
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The groups the change moves, in order.
    pub fn groups(&self) -> Vec<u32> {
        self.groups.keys().copied().collect()
    }

    /// The phase of group `pg`; `None` when the change does not move it.
    pub fn phase(&self, pg: u32) -> Option<Phase> {
        self.groups.get(&pg).map(GroupState::phase)
    }

    /// Moves group `pg` to `to`: the next phase, or the one it is in (a mover that restarted
    /// repeats itself; nothing changes). Going back or skipping a phase is a bug. One mover
    /// per group advances it (the control plane's change serializes them).
    pub fn advance(&self, pg: u32, to: Phase) {
        let g = self.groups.get(&pg).expect("only moving groups advance");
        let phase = g.phase();
        assert!(
            phase == to || phase.next() == Some(to),
            "group {pg}: {phase:?} cannot go to {to:?}"
        );
        g.phase.store(to as u8, Ordering::SeqCst);
    }

    /// Waits (polling, bounded: `MOVE_FENCE_POLLS_MAX`) until nothing that group `pg`'s
    /// reaching `phase` must exclude is in flight here: the fence of `phase` (each phase's
    /// in `GroupState::fenced`).
    pub async fn fence(&self, pg: u32, phase: Phase) -> Result<(), MoveError> {
        let Some(g) = self.groups.get(&pg) else {
            return Ok(());
        };
        for _ in 0..MOVE_FENCE_POLLS_MAX {
            if g.fenced(phase) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(MOVE_FENCE_POLL_MS)).await;
        }
        Err(MoveError::Fence { pg, phase })
    }

    /// Operations routed as `phase` in group `pg` not finished yet.
    pub fn in_flight(&self, pg: u32, phase: Phase) -> u32 {
        self.groups
            .get(&pg)
            .map_or(0, |g| g.in_flight[phase as usize].load(Ordering::SeqCst))
    }

    /// (groups done, groups moved by the change).
    pub fn done(&self) -> (usize, usize) {
        let done = self
            .groups
            .values()
            .filter(|g| g.phase() == Phase::Done)
            .count();
        (done, self.groups.len())
    }

    /// Whether union core `core` belongs to a node the new layout removes (`NodeSpec::removed`):
    /// the node is out, dead or stopped, so the change neither reads from it, retires on it,
    /// nor waits for it.
    pub fn leaves(&self, core: usize) -> bool {
        let Some(id) = self.cores.get(core) else {
            return false;
        };
        self.new
            .core_index(*id)
            .is_some_and(|i| self.new.nodes()[self.new.cores()[i].node as usize].removed)
    }

    /// Whether `target` lost its place in a stripe stored on the old row `stripe` of a group
    /// cut over already (a fragment hint for it is obsolete: the mover moved that position).
    pub fn left(&self, stripe: &[usize], target: usize) -> bool {
        self.groups
            .iter()
            .filter(|(_, g)| g.phase() >= Phase::CutOver)
            .any(|(&pg, _)| {
                let (old, new) = self.rows(pg, stripe.len().min(self.depth));
                old == stripe && !new.contains(&target)
            })
    }

    /// The replica sets (first `n` positions) group `pg`'s writes reach a write quorum of now:
    /// the old row, both rows while it moves, the new row from its cut-over.
    pub(crate) fn meta_sets(&self, pg: u32, n: usize) -> Vec<Vec<usize>> {
        let (old, new) = self.rows(pg, n);
        match self.phase(pg) {
            None | Some(Phase::Pending) => vec![old],
            Some(p) if p.both_rows() => vec![old, new],
            Some(_) => vec![new],
        }
    }

    /// The first `n` positions of group `pg`'s row in each version, as union indices.
    fn rows(&self, pg: u32, n: usize) -> (Vec<usize>, Vec<usize>) {
        let row = |l: &Layout, map: &[usize]| -> Vec<usize> {
            l.table(self.tier)
                .expect("checked in Transition::new")
                .row_indices(pg, n)
                .iter()
                .map(|&i| map[i as usize])
                .collect()
        };
        (
            row(&self.old, &self.old_index),
            row(&self.new, &self.new_index),
        )
    }

    /// Where `route`'s first `n` positions live now, counted in flight until dropped.
    pub(crate) fn place(self: &Arc<Self>, route: Route<'_>, n: usize) -> Placement {
        assert!(
            n <= self.depth,
            "a policy never spans more cores than the table"
        );
        let pg = route.pg(&self.old);
        let (old, new) = self.rows(pg, n);
        let phase = self.groups.get(&pg).map(|g| g.enter(&g.in_flight));
        Placement {
            pg,
            phase,
            old,
            new,
            transition: phase.map(|_| self.clone()),
            held: None,
        }
    }
}

/// Where one route's positions live for one operation (`Backend::place`): its group's rows in
/// both versions and the phase it was routed under, which the operation holds (the mover's
/// fence waits for it) until this is dropped. Outside a layout change, or in a group it does
/// not move, one row.
pub struct Placement {
    pg: u32,
    /// `None`: the group does not move (or no change is in progress).
    phase: Option<Phase>,
    old: Vec<usize>,
    /// The new version's row; empty when `phase` is `None` (the rows are the same).
    new: Vec<usize>,
    transition: Option<Arc<Transition>>,
    /// The backend's view it was routed by, outside a change: held so that a change starting
    /// meanwhile waits for it (`Backend::begin_change`).
    pub(crate) held: Option<Arc<View>>,
}

impl Drop for Placement {
    fn drop(&mut self) {
        if let (Some(t), Some(phase)) = (&self.transition, self.phase) {
            let g = t.groups.get(&self.pg).expect("placed in a moving group");
            let before = g.in_flight[phase as usize].fetch_sub(1, Ordering::SeqCst);
            assert!(before > 0, "an operation leaves a phase it entered");
        }
    }
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("pg", &self.pg)
            .field("phase", &self.phase)
            .field("old", &self.old)
            .field("new", &self.new)
            .finish_non_exhaustive()
    }
}

impl Placement {
    pub fn pg(&self) -> u32 {
        self.pg
    }

    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The cores of the row reads and writes end at (the new one from `Moving` on): what a
    /// caller that needs one list (a hint, a repair) uses.
    pub fn cores(&self) -> &[usize] {
        match self.phase {
            None | Some(Phase::Pending) => &self.old,
            _ => &self.new,
        }
    }
}

/// The rows of one operation (`Cores::rows`): one, or two while its group moves.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    rows: [&'a [usize]; 2],
    len: usize,
}

impl<'a> Rows<'a> {
    fn one(row: &'a [usize]) -> Rows<'a> {
        Rows {
            rows: [row, &[]],
            len: 1,
        }
    }
}

impl<'a> std::ops::Deref for Rows<'a> {
    type Target = [&'a [usize]];

    fn deref(&self) -> &[&'a [usize]] {
        &self.rows[..self.len]
    }
}

/// The cores one operation's calls go to, position by position: a row a caller chose (a core
/// list: the scrub's, the mover's, a test's) or a `Placement`, which is two rows while its
/// group moves. Writes need a write quorum of every row, reads a read quorum of every row.
pub trait Cores {
    /// The rows, the old one first.
    fn rows(&self) -> Rows<'_>;

    /// Every core of the rows, each once, the first row's first.
    fn union(&self) -> Cow<'_, [usize]> {
        let rows = self.rows();
        if let [one] = *rows {
            return Cow::Borrowed(one);
        }
        let mut out: Vec<usize> = Vec::new();
        for row in rows.iter() {
            for c in *row {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        }
        Cow::Owned(out)
    }

    /// The core that serializes conditional writes: the first row's first. While a group
    /// moves that is the old row's (its new one may not hold the record before the copy).
    fn authority(&self) -> usize {
        self.rows()[0][0]
    }

    /// The row reads and writes end at (the new one while a group moves).
    fn last_row(&self) -> &[usize] {
        let rows = self.rows();
        rows[rows.len() - 1]
    }

    /// The cores a read of position `i` tries, in order: the old row's first, then the new
    /// one's. While a group moves the old row holds every fragment (those written before the
    /// move, and every later write goes to both rows); its retirement waits for the reads
    /// routed with both rows. A new core lacks what the mover has not copied yet: asking it
    /// first cost most reads of a moving group a second round trip (bench/README.md, "Layout
    /// change"). Only a version written from the group's cut-over on, found by a read routed
    /// before it, is on the new row alone, and is read there second.
    fn fragment_cores(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(2);
        for row in self.rows().iter() {
            if !out.contains(&row[i]) {
                out.push(row[i]);
            }
        }
        out
    }

    /// The cores a read of a replicated fragment of `n` copies tries: the first `n` of every
    /// row, the old row's first (as `fragment_cores`).
    fn replica_cores(&self, n: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::with_capacity(n);
        for row in self.rows().iter() {
            for c in &row[..n] {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        }
        out
    }
}

impl Cores for [usize] {
    fn rows(&self) -> Rows<'_> {
        Rows::one(self)
    }
}

impl Cores for Vec<usize> {
    fn rows(&self) -> Rows<'_> {
        Rows::one(self)
    }
}

impl<const N: usize> Cores for [usize; N] {
    fn rows(&self) -> Rows<'_> {
        Rows::one(self)
    }
}

/// Whether the records placed by `a` and `b` are written to the same cores with the same
/// quorums: the same number of rows, each holding the same cores (in any order: the order
/// matters to conditional writes alone). Two records so placed can share one write
/// (`Backend::meta_pair`).
pub fn same_cores(a: &(impl Cores + ?Sized), b: &(impl Cores + ?Sized)) -> bool {
    // A row holds each core once, and a few of them: compared in place, on every PUT.
    let same = |x: &[usize], y: &[usize]| x.len() == y.len() && x.iter().all(|c| y.contains(c));
    let (a, b) = (a.rows(), b.rows());
    a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| same(x, y))
}

impl Cores for Placement {
    /// The first row's first core that stays: a node the change removes is dead or stopped
    /// (every gateway routes by the same change, so they agree on it).
    fn authority(&self) -> usize {
        let row = self.rows()[0];
        self.transition
            .as_ref()
            .and_then(|t| row.iter().copied().find(|&c| !t.leaves(c)))
            .unwrap_or(row[0])
    }

    /// The old row before the group moves, both while it moves, the new one from its cut-over.
    fn rows(&self) -> Rows<'_> {
        match self.phase {
            None | Some(Phase::Pending) => Rows::one(&self.old),
            Some(p) if p.both_rows() => Rows {
                rows: [&self.old, &self.new],
                len: 2,
            },
            Some(_) => Rows::one(&self.new),
        }
    }
}

impl Placement {
    /// The core that serializes this group's conditional writes, if one does now: the old
    /// row's first core that stays through `Moving`, the new row's first from `CutOver` on,
    /// none in `Handoff` (cluster/DESIGN.md, "Conditional writes change hands once"); each
    /// time by the nodes' `standing` (a demoted node's core is skipped; one on its way back
    /// stops the walk: none). Chosen by the group's phase at the time, not the one this
    /// placement was routed under.
    pub fn serializer(&self, standing: &(dyn Fn(usize) -> Standing + Sync)) -> Option<usize> {
        let phase = self.transition.as_ref().and_then(|t| t.phase(self.pg));
        match self.pick(phase, standing) {
            Choice::Core(core, _) => Some(core),
            Choice::Wait(_) | Choice::NoneUsable(_) => None,
        }
    }

    /// `serializer`, counted in flight under the phase that chose it until the choice is
    /// dropped (the handoff waits for those chosen under `Moving`), or why none serializes:
    /// for a conditional write (`serializer` counts nothing: the scrub's and the lifecycle's
    /// choice of a primary, a restore's hand-back).
    pub(crate) fn choose(&self, standing: &(dyn Fn(usize) -> Standing + Sync)) -> Choice {
        let Some(t) = &self.transition else {
            return self.pick(None, standing);
        };
        let g = t.groups.get(&self.pg).expect("a placed group moves");
        let phase = g.enter(&g.serialized);
        let guard = Serialized {
            transition: t.clone(),
            pg: self.pg,
            phase,
        };
        match self.pick(Some(phase), standing) {
            Choice::Core(core, None) => Choice::Core(core, Some(guard)),
            other => other,
        }
    }

    /// The serializer under the group's `phase` (`None`: not moving) and the nodes'
    /// `standing`, uncounted.
    fn pick(&self, phase: Option<Phase>, standing: &(dyn Fn(usize) -> Standing + Sync)) -> Choice {
        let walk = |row: &[usize], leaves: &dyn Fn(usize) -> bool| -> Choice {
            for &c in row {
                if leaves(c) {
                    continue;
                }
                match standing(c) {
                    Standing::Serves => return Choice::Core(c, None),
                    Standing::Skipped => {}
                    Standing::Waits => {
                        return Choice::Wait(waiting(format!(
                            "a node of placement group {}'s row is on its way back from a \
                             demotion",
                            self.pg
                        )))
                    }
                }
            }
            Choice::NoneUsable(waiting(format!(
                "every core of placement group {}'s row is on a demoted node",
                self.pg
            )))
        };
        let Some(t) = &self.transition else {
            return walk(&self.old, &|_| false);
        };
        match phase {
            None | Some(Phase::Pending | Phase::Moving) => walk(&self.old, &|c| t.leaves(c)),
            Some(Phase::Handoff) => Choice::Wait(waiting(format!(
                "placement group {} is handing its conditional writes to another core",
                self.pg
            ))),
            Some(Phase::CutOver | Phase::Done) => walk(&self.new, &|_| false),
        }
    }
}

/// The error of a conditional write that found no serializer (`why`): 503.
fn waiting(why: String) -> BackendError {
    BackendError::Quorum {
        what: "conditional write",
        got: 0,
        need: 1,
        of: 1,
        last: why,
    }
}

/// What `Placement::choose` found.
pub(crate) enum Choice {
    /// The serializer, and the count of the choice under its group's phase (during a change).
    Core(usize, Option<Serialized>),
    /// None now, one later (a handoff, a restore): the error if the wait runs out.
    Wait(BackendError),
    /// None: every core of the row is on a demoted node.
    NoneUsable(BackendError),
}

/// A conditional write on its group's serializer, counted under the phase that chose it.
pub(crate) struct Serialized {
    transition: Arc<Transition>,
    pg: u32,
    phase: Phase,
}

impl Drop for Serialized {
    fn drop(&mut self) {
        let g = self
            .transition
            .groups
            .get(&self.pg)
            .expect("a moving group");
        let before = g.serialized[self.phase as usize].fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a conditional write leaves a phase it entered");
    }
}

impl Backend {
    /// Where `route`'s first `n` positions (of the STANDARD tier's row) live for one
    /// operation: by both versions during a layout change (`Backend::moving`), else the
    /// plain row. Hold it until the operation ends.
    pub fn place(&self, route: Route<'_>, n: usize) -> Placement {
        let view = self.view();
        if let Some(t) = &view.transition {
            return t.place(route, n);
        }
        let mut placement = Placement::row(self.route_n(route, n));
        placement.held = view.holdable().then(|| arc_swap::Guard::into_inner(view));
        placement
    }

    /// `place` for `route`'s metadata records.
    pub fn place_meta(&self, route: Route<'_>) -> Placement {
        self.place(route, self.replicas())
    }
}

impl Placement {
    /// One row, routed by no change (a core list the caller chose).
    pub fn row(cores: Vec<usize>) -> Placement {
        Placement {
            pg: 0,
            phase: None,
            old: cores,
            new: Vec::new(),
            transition: None,
            held: None,
        }
    }
}

/// What the layer above tells the mover about its records: which group a record belongs to
/// and which fragments it references. The cluster layer moves opaque records; the object
/// layer knows their formats.
pub trait Catalog: Send + Sync {
    /// The route of a metadata record, `None` for records no object route owns (hints).
    fn route<'k>(&self, key: &'k [u8]) -> Option<Route<'k>>;
    /// The placement group of a metadata record under `layout` (what the mover filters by):
    /// its route's, unless the catalog can place records whose route it cannot borrow from
    /// their key.
    fn group(&self, key: &[u8], layout: &Layout) -> Option<u32> {
        self.route(key).map(|r| r.pg(layout))
    }
    /// The stripes a live record references (an object head's data): fragment i of each on
    /// position i of the record's group.
    fn stripes(&self, key: &[u8], value: &Bytes) -> Vec<Stripe>;
    /// The key prefixes of records that belong to a live record, on its cores and in its
    /// group, under keys `route` cannot place (an upload's parts, keyed by the upload alone):
    /// the mover moves them with it. None by default.
    fn dependents(&self, _key: &[u8], _value: &Bytes) -> Vec<Bytes> {
        Vec::new()
    }
    /// The stripes a live dependent record references, told by its owner (`owner`: the key
    /// and value `dependents` was asked of).
    fn dependent_stripes(
        &self,
        _owner: (&[u8], &Bytes),
        _key: &[u8],
        _value: &Bytes,
    ) -> Vec<Stripe> {
        Vec::new()
    }
    /// Key prefixes of records whose data records sorting before them may come to reference
    /// while a pass scans (an upload's parts, which its completion's head takes over, then
    /// removes the upload): a pass scans them before every other record, so it meets the data
    /// under one owner or the other. None by default.
    fn scan_first(&self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// One stripe a record references: its policy and its fragments, position by position (EC
/// shards' ids end in their index, as `records::fragment_id` makes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    pub policy: Policy,
    pub ids: Vec<FragmentId>,
}

/// What a mover did, for status and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Groups this mover took to `Done`.
    pub groups: u64,
    /// Metadata records copied (and read back) to new cores.
    pub records: u64,
    /// Fragments copied (and read back) to new cores.
    pub fragments: u64,
    /// Fragment bytes copied.
    pub bytes: u64,
    /// Fragments the new core already read back whole (its checksum checked by the core):
    /// written there by a write during the move, or by a mover before a crash.
    pub in_place: u64,
    /// Fragments deleted from the cores that left their position.
    pub retired: u64,
}

/// How a mover takes a group to a phase, and learns that no operation routed under the phase
/// before can still be in flight anywhere: the fence. `LocalPhases` (the gateways of this
/// process share the `Transition`) is the default; a cluster's control plane commits the phase
/// in its map and waits for every node to apply it.
pub trait Phases: Send + Sync {
    /// Takes group `pg` of `transition` to `to` (or keeps it there: a restarted mover repeats
    /// itself); once this returns, `transition` (this process's) is there too.
    fn advance<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pg: u32,
        to: Phase,
    ) -> futures::future::BoxFuture<'a, Result<(), MoveError>>;
    /// Returns once nothing that group `pg`'s reaching `phase` must exclude is in flight
    /// anywhere (`Transition::fence`).
    fn fence<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pg: u32,
        phase: Phase,
    ) -> futures::future::BoxFuture<'a, Result<(), MoveError>>;
    /// `advance` for every group of `pgs` (a mover step's groups): one after the other unless
    /// the implementation does better (a cluster commits them together and waits for the
    /// nodes once).
    fn advance_groups<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pgs: &'a [u32],
        to: Phase,
    ) -> futures::future::BoxFuture<'a, Result<(), MoveError>> {
        Box::pin(async move {
            for &pg in pgs {
                self.advance(transition, pg, to).await?;
            }
            Ok(())
        })
    }
}

/// The fence in one process: the phase stored in the shared `Transition`, and a wait for the
/// operations it counts under a phase.
pub struct LocalPhases;

impl Phases for LocalPhases {
    fn advance<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pg: u32,
        to: Phase,
    ) -> futures::future::BoxFuture<'a, Result<(), MoveError>> {
        transition.advance(pg, to);
        Box::pin(std::future::ready(Ok(())))
    }

    fn fence<'a>(
        &'a self,
        transition: &'a Arc<Transition>,
        pg: u32,
        phase: Phase,
    ) -> futures::future::BoxFuture<'a, Result<(), MoveError>> {
        Box::pin(transition.fence(pg, phase))
    }
}

/// How a mover runs.
#[derive(Debug, Clone, Copy)]
pub struct MoverConfig {
    /// Fragment bytes copied per second at most (the configured limit).
    pub rate_bytes_per_s: u64,
    /// Groups one step takes through a phase together (`MOVE_GROUPS_PER_STEP`; at least 1).
    pub groups_per_step: usize,
}

impl MoverConfig {
    /// The default step at `rate_bytes_per_s`.
    pub fn at_rate(rate_bytes_per_s: u64) -> MoverConfig {
        MoverConfig {
            rate_bytes_per_s,
            groups_per_step: crate::limits::MOVE_GROUPS_PER_STEP,
        }
    }
}

/// Moves the groups of a layout change: see the module doc. Every request it makes is
/// background work (the cores' low-share queue). Restartable: a new mover continues from the
/// groups' phases and what the cores hold (copies are idempotent: records keep their HLC,
/// fragments already on their new core are not copied again).
pub struct Mover<'a> {
    backend: &'a Backend,
    transition: Arc<Transition>,
    catalog: &'a dyn Catalog,
    config: MoverConfig,
    phases: Arc<dyn Phases>,
    progress: Mutex<Progress>,
    /// When the rate limit lets the next copy start.
    next_at: Mutex<Option<tokio::time::Instant>>,
}

/// Which work a mover step does, by the phase its groups are in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `Pending` or `Moving` (a mover that stopped there): copy, then `Handoff`.
    Copy,
    /// `Handoff`: hand the old authority's records to the new one, then `CutOver`.
    Handoff,
    /// `CutOver`: retire, then `Done`.
    Retire,
}

impl Stage {
    fn of(phase: Option<Phase>) -> Stage {
        match phase {
            Some(Phase::Pending | Phase::Moving) | None => Stage::Copy,
            Some(Phase::Handoff) => Stage::Handoff,
            Some(Phase::CutOver | Phase::Done) => Stage::Retire,
        }
    }
}

/// Which of a group's passes runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Copy and verify, before the cut-over.
    Copy,
    /// Check again and delete the old fragments, after it.
    Retire,
}

impl<'a> Mover<'a> {
    /// A mover over `backend` (which must route by a transition: `Backend::moving`).
    pub fn new(backend: &'a Backend, catalog: &'a dyn Catalog, config: MoverConfig) -> Mover<'a> {
        let transition = backend
            .transition()
            .expect("a mover runs on a backend routing a layout change");
        Mover::of_change(backend, transition, catalog, config)
    }

    /// A mover of `transition` over `backend` (which routes by it, or did: a backend that
    /// took the change's end meanwhile answers for the cores it kept).
    pub fn of_change(
        backend: &'a Backend,
        transition: Arc<Transition>,
        catalog: &'a dyn Catalog,
        config: MoverConfig,
    ) -> Mover<'a> {
        assert!(config.rate_bytes_per_s > 0, "a rate limit above zero");
        assert!(config.groups_per_step > 0, "a step moves a group at least");
        Mover {
            backend,
            transition,
            catalog,
            config,
            phases: Arc::new(LocalPhases),
            progress: Mutex::new(Progress::default()),
            next_at: Mutex::new(None),
        }
    }

    /// The same mover taking groups from phase to phase through `phases` (a cluster's control
    /// plane) instead of this process's transition alone.
    pub fn with_phases(mut self, phases: Arc<dyn Phases>) -> Mover<'a> {
        self.phases = phases;
        self
    }

    pub fn progress(&self) -> Progress {
        *self.progress.lock().expect("progress lock")
    }

    fn count(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().expect("progress lock"));
    }

    /// Moves every group to `Done`.
    pub async fn run(&self) -> Result<Progress, MoveError> {
        while self.step().await?.is_some() {}
        Ok(self.progress())
    }

    /// Takes the first group not done one step forward: to `Handoff` (through `Moving` and the
    /// copy), to `CutOver` (the old authority's records handed to the new one), or to `Done`
    /// (the retirement), with the groups after it in the same stage (up to `groups_per_step`
    /// in all: their phases committed together, the fence waited for once), retrying a failed
    /// step after a pause (`MOVE_ATTEMPTS_MAX` times). Returns the first group and the phase
    /// the step reached; `None` once every group is done.
    pub async fn step(&self) -> Result<Option<(u32, Phase)>, MoveError> {
        let t = &self.transition;
        let mut left = t
            .groups()
            .into_iter()
            .filter(|&pg| t.phase(pg) != Some(Phase::Done));
        let Some(first) = left.next() else {
            return Ok(None);
        };
        let stage = Stage::of(t.phase(first));
        let pgs: Vec<u32> = std::iter::once(first)
            .chain(left.filter(|&pg| Stage::of(t.phase(pg)) == stage))
            .take(self.config.groups_per_step)
            .collect();
        let mut last = String::new();
        for attempt in 0..MOVE_ATTEMPTS_MAX {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(MOVE_RETRY_PAUSE_MS)).await;
            }
            match crate::backend::in_background(self.phase_step(&pgs, stage)).await {
                Ok(to) => return Ok(Some((first, to))),
                Err(e) => {
                    tracing::info!(pg = first, groups = pgs.len(), attempt, error = %e, "layout change: a step failed; it is tried again");
                    last = e.to_string();
                }
            }
        }
        Err(MoveError::Attempts {
            pg: first,
            attempts: MOVE_ATTEMPTS_MAX,
            last,
        })
    }

    /// One step of groups `pgs` in `stage`. Each stage first (re)commits the phase it works
    /// in (a mover that restarted there repeats it, a no-op, and learns that every node is
    /// there), then waits for the operations routed under the phase before (the fence), works,
    /// and commits the next phase.
    async fn phase_step(&self, pgs: &[u32], stage: Stage) -> Result<Phase, MoveError> {
        let (t, phases) = (&self.transition, &self.phases);
        let (at, to) = match stage {
            Stage::Copy => (Phase::Moving, Phase::Handoff),
            Stage::Handoff => (Phase::Handoff, Phase::CutOver),
            Stage::Retire => (Phase::CutOver, Phase::Done),
        };
        phases.advance_groups(t, pgs, at).await?;
        for &pg in pgs {
            // Copy: every write routed by the old layout alone has ended, so the copy's read
            // quorum sees all of them. Handoff: no conditional write can still reach the old
            // authority. Retire: no operation routed with both rows may still land on an old
            // core or fall back to one.
            phases.fence(t, pg, at).await?;
        }
        match stage {
            Stage::Copy => self.pass(pgs, Pass::Copy).await?,
            Stage::Handoff => self.hand_over(pgs).await?,
            Stage::Retire => self.pass(pgs, Pass::Retire).await?,
        }
        phases.advance_groups(t, pgs, to).await?;
        if to == Phase::Done {
            self.count(|p| p.groups += pgs.len() as u64);
        }
        Ok(to)
    }

    /// The handoff of groups `pgs`: every record of each group that its old authority (the
    /// core that serialized its conditional writes until `Moving`) holds is copied to the new
    /// one, with its HLC, and read back. A conditional write the old authority accepted may
    /// have failed to reach any other replica (its gateway stopped, or lost the answers): the
    /// new authority must refuse a create over it too, as the old one would have. One scan
    /// per old authority for all the step's groups that have it; a group whose authority
    /// stays, or whose old one leaves with a removed node, has nothing to hand over.
    async fn hand_over(&self, pgs: &[u32]) -> Result<(), MoveError> {
        let t = &self.transition;
        let mut by_source: BTreeMap<usize, BTreeMap<u32, usize>> = BTreeMap::new();
        let usable = |c: usize| self.backend.standing_of(c) != Standing::Skipped;
        for &pg in pgs {
            let (old, new) = t.rows(pg, t.meta_replicas);
            // As `Placement::serializer` chooses: cores of demoted nodes are skipped.
            let from = old.iter().copied().find(|&c| !t.leaves(c) && usable(c));
            let to = new.iter().copied().find(|&c| usable(c));
            if let (Some(from), Some(to)) = (from, to) {
                if from != to {
                    by_source.entry(from).or_default().insert(pg, to);
                }
            }
        }
        let empty = Bytes::new();
        for (source, groups) in by_source {
            let mut cursor: Option<Bytes> = None;
            loop {
                let (entries, next) = self
                    .scan_page(&[source], &[vec![source]], &empty, cursor.clone())
                    .await?;
                let copies = entries.into_iter().filter_map(|(key, v)| {
                    let to = self
                        .catalog
                        .group(&key, &t.old)
                        .and_then(|g| groups.get(&g));
                    to.map(|&to| (to, key, v))
                });
                self.copy_records(copies.collect()).await?;
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// One pass over groups `pgs`' records: read from a read quorum of each group's old
    /// metadata row (`Copy`) or its new one (`Retire`); records copied to the new cores of the
    /// moved metadata positions, fragments of live records to the new cores of the moved
    /// fragment positions, and, when retiring, the old copies of those fragments deleted.
    /// One merged scan of the cores of every group's source for the whole step, holding a read
    /// quorum of each source: a scan per group read every record of its cores (theirs and
    /// every other group's) once per group, so a move of G groups read the cores' metadata
    /// about G / (cores / replicas) times over, which was most of a move's work next to the
    /// foreground (bench/move.py). A core outside a record's replicas can only hold an older
    /// copy of it (left by an earlier change), which the newest one outranks.
    async fn pass(&self, pgs: &[u32], pass: Pass) -> Result<(), MoveError> {
        let t = &self.transition;
        let meta = t.meta_replicas;
        // Each group's old row, new row and moved metadata positions.
        let mut groups: BTreeMap<u32, [Vec<usize>; 3]> = BTreeMap::new();
        let mut sets: Vec<Vec<usize>> = Vec::new();
        for &pg in pgs {
            let (old, new) = t.rows(pg, t.depth);
            let source = if pass == Pass::Copy {
                &old[..meta]
            } else {
                &new[..meta]
            };
            let mut set = source.to_vec();
            set.sort_unstable();
            sets.push(set);
            let moved_meta: Vec<usize> = (0..meta).filter(|&i| old[i] != new[i]).collect();
            groups.insert(pg, [old, new, moved_meta]);
        }
        sets.sort_unstable();
        sets.dedup();
        let mut cores: Vec<usize> = sets.iter().flatten().copied().collect();
        cores.sort_unstable();
        cores.dedup();
        // The records `scan_first` names, then the rest. In key order alone, a multipart
        // upload completed while the copy pass ran was missed: the pass read its object's head
        // before the completion wrote it and its upload record after the completion removed
        // it, so neither listed the parts' data, and reads after the cut-over found it on the
        // old cores only (object simulation, shrink, seed 20054). Read first, the upload is
        // still there (its parts are copied as its dependents) or its head was written before
        // it went (and the later scan finds the head).
        let first = self.catalog.scan_first();
        let scope = (&cores[..], &sets[..], &groups);
        for prefix in &first {
            self.pass_scan(scope, prefix, &[], pass).await?;
        }
        self.pass_scan(scope, &Bytes::new(), &first, pass).await
    }

    /// `pass`'s scan of the records under `prefix` (all: empty), but those under a prefix of
    /// `skip`.
    #[allow(clippy::type_complexity)]
    async fn pass_scan(
        &self,
        (cores, sets, groups): (&[usize], &[Vec<usize>], &BTreeMap<u32, [Vec<usize>; 3]>),
        prefix: &Bytes,
        skip: &[Bytes],
        pass: Pass,
    ) -> Result<(), MoveError> {
        let t = &self.transition;
        let meta = t.meta_replicas;
        let mut cursor: Option<Bytes> = None;
        loop {
            let (entries, next) = self.scan_page(cores, sets, prefix, cursor.clone()).await?;
            let mut page = Vec::with_capacity(entries.len());
            let mut copies = Vec::new();
            for (key, v) in entries {
                if skip.iter().any(|s| key.starts_with(s)) {
                    continue;
                }
                let Some(rows) = self
                    .catalog
                    .group(&key, &t.old)
                    .and_then(|g| groups.get(&g))
                else {
                    continue;
                };
                if pass == Pass::Copy {
                    let [_, new, moved_meta] = rows;
                    copies.extend(moved_meta.iter().map(|&i| (new[i], key.clone(), v.clone())));
                }
                page.push((key, v, rows));
            }
            // The page's records first, in batches; then their stripes, together; then the
            // dependents of each.
            self.copy_records(copies).await?;
            let stripes =
                page.iter()
                    .filter(|(_, v, _)| !v.deleted)
                    .flat_map(|(key, v, [old, new, _])| {
                        let stripes = self.catalog.stripes(key, &v.value);
                        stripes.into_iter().map(|s| (s, &old[..], &new[..]))
                    });
            self.move_stripes_in_rounds(stripes, pass).await?;
            for (key, v, [old, new, moved_meta]) in page {
                if v.deleted {
                    continue;
                }
                let source = if pass == Pass::Copy {
                    &old[..meta]
                } else {
                    &new[..meta]
                };
                for prefix in self.catalog.dependents(&key, &v.value) {
                    let rows = (&old[..], &new[..], source, &moved_meta[..]);
                    self.pass_dependents(&prefix, (&key, &v.value), rows, pass)
                        .await?;
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// A page of every record under `prefix` after `cursor`, tombstones included, merged from a
    /// read quorum of `source` (one replica set; its cores hold other groups' records too).
    async fn scan_page(
        &self,
        cores: &[usize],
        sets: &[Vec<usize>],
        prefix: &Bytes,
        cursor: Option<Bytes>,
    ) -> Result<(Vec<(Bytes, MetaVersion)>, Option<Bytes>), BackendError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let page = self
                .backend
                .meta_scan_sets(
                    cores,
                    sets.to_vec(),
                    true,
                    prefix,
                    cursor.clone(),
                    SCAN_BATCH_MAX,
                )
                .await;
            match page {
                // A lost message costs the page, not the step (as for `call`).
                Err(
                    BackendError::Quorum { .. }
                    | BackendError::Down { .. }
                    | BackendError::Remote(_),
                ) if tries < MOVE_CALL_TRIES_MAX => {}
                page => return page,
            }
        }
    }

    /// `pass` over the records under `prefix` that belong to `owner` (`Catalog::dependents`):
    /// read from the same read quorum of `source`, copied to the metadata cores that enter,
    /// their stripes moved.
    async fn pass_dependents(
        &self,
        prefix: &Bytes,
        owner: (&[u8], &Bytes),
        (old, new, source, moved_meta): (&[usize], &[usize], &[usize], &[usize]),
        pass: Pass,
    ) -> Result<(), MoveError> {
        let mut cursor: Option<Bytes> = None;
        loop {
            let (entries, next) = self
                .scan_page(source, &[source.to_vec()], prefix, cursor.clone())
                .await?;
            if pass == Pass::Copy {
                let copies = entries.iter().flat_map(|(key, v)| {
                    moved_meta.iter().map(|&i| (new[i], key.clone(), v.clone()))
                });
                self.copy_records(copies.collect()).await?;
            }
            let stripes = entries
                .iter()
                .filter(|(_, v)| !v.deleted)
                .flat_map(|(key, v)| self.catalog.dependent_stripes(owner, key, &v.value))
                .map(|stripe| (stripe, old, new));
            self.move_stripes_in_rounds(stripes, pass).await?;
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Copies each `(core, key, v)`: version `v` of `key` written to `core` (same HLC: a newer
    /// write there wins), then read back: the core must hold it or a newer version. The writes
    /// to one core go in batches (`MOVE_COPY_BATCH_RECORDS_MAX` records, about
    /// `MOVE_COPY_BATCH_BYTES_MAX`), each batch's read-backs in one more, instead of two round
    /// trips per record and core (each waking threads on two nodes). Measured in
    /// bench/README.md (the move): faster moves, the GET tail during them unchanged.
    async fn copy_records(
        &self,
        copies: Vec<(usize, Bytes, MetaVersion)>,
    ) -> Result<(), MoveError> {
        let mut by_core: BTreeMap<usize, Vec<(Bytes, MetaVersion)>> = BTreeMap::new();
        for (core, key, v) in copies {
            by_core.entry(core).or_default().push((key, v));
        }
        for (core, records) in by_core {
            let mut rest = &records[..];
            while !rest.is_empty() {
                let mut n = 0;
                let mut bytes = 0;
                while n < rest.len()
                    && n < MOVE_COPY_BATCH_RECORDS_MAX
                    && (n == 0 || bytes < MOVE_COPY_BATCH_BYTES_MAX)
                {
                    bytes += rest[n].0.len() + rest[n].1.value.len();
                    n += 1;
                }
                let (batch, after) = rest.split_at(n);
                self.copy_batch(core, batch).await?;
                rest = after;
            }
        }
        Ok(())
    }

    /// One batch of `copy_records` to `core`.
    async fn copy_batch(
        &self,
        core: usize,
        records: &[(Bytes, MetaVersion)],
    ) -> Result<(), MoveError> {
        let writes = records
            .iter()
            .map(|(key, v)| repair_request(key, v))
            .collect();
        for answer in self.batch(core, writes).await? {
            expect_done(Ok(answer))?;
        }
        let reads = records
            .iter()
            .map(|(key, _)| Request::MetaGetVersioned { key: key.clone() })
            .collect();
        for ((key, v), back) in records.iter().zip(self.batch(core, reads).await?) {
            if !holds_at_least(back, v)? {
                return Err(MoveError::VerifyRecord {
                    key: key.clone(),
                    core: self.backend.core_name(core),
                });
            }
        }
        self.count(|p| p.records += records.len() as u64);
        Ok(())
    }

    /// `parts` to `core` as one batch, each in the core's background queue (the mover's
    /// requests are background work); their answers in order.
    async fn batch(&self, core: usize, parts: Vec<Request>) -> Result<Vec<Response>, MoveError> {
        let n = parts.len();
        let parts = parts
            .into_iter()
            .map(|r| Request::Background(Box::new(r)))
            .collect();
        match self.call(core, Request::Batch(parts)).await? {
            Response::Batch(answers) if answers.len() == n => Ok(answers),
            other => Err(expect_done(Ok(other))
                .err()
                .unwrap_or(BackendError::Protocol)
                .into()),
        }
    }

    /// `move_stripes` over `stripes`, `MOVE_STRIPES_PER_ROUND_MAX` at a time (a page's
    /// objects may be large: their stripes are not all held at once).
    async fn move_stripes_in_rounds<'s>(
        &self,
        stripes: impl Iterator<Item = (Stripe, &'s [usize], &'s [usize])>,
        pass: Pass,
    ) -> Result<(), MoveError> {
        let mut round = Vec::new();
        for stripe in stripes {
            round.push(stripe);
            if round.len() == MOVE_STRIPES_PER_ROUND_MAX {
                self.move_stripes(&round, pass).await?;
                round.clear();
            }
        }
        self.move_stripes(&round, pass).await
    }

    /// Every moved position of the stripes of a page of records: its fragment copied (or
    /// found) on the new core and verified; when retiring, then deleted from the old core
    /// unless that core holds the same fragment in the new row. Whether each fragment is in
    /// place already is asked in one batch per destination core (`VerifyFragment`, which
    /// reads it whole and checks it there without sending it), and the retirements go in one
    /// batch per old core once every fragment of the page is in place; fragments not in place
    /// are copied one at a time (`copy_fragment`). A retire pass finds nearly every fragment
    /// in place, so its two round trips per fragment become a few per page.
    ///
    /// A fragment the destination holds whole is in place: a write during the move put it
    /// there, or this mover before a crash (a fragment is written whole or not at all).
    /// Comparing it with the old copy would need that copy, which a retirement interrupted by
    /// a crash may have deleted already (and rebuilding it from the old row then lacks
    /// shards: the first version failed so, shrink seed 13).
    async fn move_stripes(
        &self,
        stripes: &[(Stripe, &[usize], &[usize])],
        pass: Pass,
    ) -> Result<(), MoveError> {
        let mut moved = Vec::new();
        for (s, (stripe, old, new)) in stripes.iter().enumerate() {
            let width = stripe.policy.width();
            assert_eq!(stripe.ids.len(), width, "one fragment id per position");
            moved.extend((0..width).filter(|&i| old[i] != new[i]).map(|i| (s, i)));
        }
        let checks = moved.iter().map(|&(s, i)| {
            let (stripe, _, new) = &stripes[s];
            (new[i], Request::VerifyFragment { id: stripe.ids[i] })
        });
        let placed = self.batches(checks.collect()).await?;
        let mut retire = Vec::new();
        for (&(s, i), answer) in moved.iter().zip(placed) {
            let (stripe, old, new) = &stripes[s];
            let width = stripe.policy.width();
            let present = match answer {
                Response::Done => {
                    self.count(|p| p.in_place += 1);
                    true
                }
                Response::Error {
                    code: ErrorCode::NotFound | ErrorCode::Corrupt,
                    ..
                } => self.copy_fragment(stripe, i, &old[..width], new[i]).await?,
                other => return Err(expect_done(Ok(other)).unwrap_err().into()),
            };
            if present && pass == Pass::Retire && self.retires(stripe, i, old, new) {
                retire.push((old[i], Request::DeleteFragment { id: stripe.ids[i] }));
            }
        }
        for answer in self.batches(retire).await? {
            self.retired(answer)?;
        }
        Ok(())
    }

    /// Counts an old core's answer to `DeleteFragment`: gone already is as good.
    fn retired(&self, answer: Response) -> Result<(), MoveError> {
        match answer {
            Response::Done => self.count(|p| p.retired += 1),
            Response::Error {
                code: ErrorCode::NotFound,
                ..
            } => {}
            other => return Err(expect_done(Ok(other)).unwrap_err().into()),
        }
        Ok(())
    }

    /// Whether retiring position `i` of `stripe` deletes its old fragment: not when the old
    /// core holds the same fragment at another position of the new row, nor when it is a
    /// removed node's (its copies go with it: it is dead or will be wiped).
    fn retires(&self, stripe: &Stripe, i: usize, old: &[usize], new: &[usize]) -> bool {
        let width = stripe.policy.width();
        let kept = match stripe.policy {
            Policy::Replicas(_) => new[..width].contains(&old[i]),
            Policy::Ec { .. } => false,
        };
        !kept && !self.transition.leaves(old[i])
    }

    /// `(core, request)` pairs sent as batches, one core's in order, at most
    /// `MOVE_BATCH_REQUESTS_MAX` requests each; the answers in the order of `requests`.
    /// For requests whose answers carry no data.
    async fn batches(&self, requests: Vec<(usize, Request)>) -> Result<Vec<Response>, MoveError> {
        let mut by_core: BTreeMap<usize, Vec<(usize, Request)>> = BTreeMap::new();
        for (n, (core, request)) in requests.into_iter().enumerate() {
            by_core.entry(core).or_default().push((n, request));
        }
        let mut answers: Vec<Option<Response>> = Vec::new();
        answers.resize_with(by_core.values().map(Vec::len).sum(), || None);
        for (core, mut requests) in by_core {
            while !requests.is_empty() {
                let rest = requests.split_off(requests.len().min(MOVE_BATCH_REQUESTS_MAX));
                let (order, parts): (Vec<usize>, Vec<Request>) = requests.into_iter().unzip();
                for (n, answer) in order.into_iter().zip(self.batch(core, parts).await?) {
                    answers[n] = Some(answer);
                }
                requests = rest;
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.expect("every request answered"))
            .collect())
    }

    /// Fragment `i` of `stripe` copied to `dest` from the old row and read back whole;
    /// `false` when it is gone everywhere.
    async fn copy_fragment(
        &self,
        stripe: &Stripe,
        i: usize,
        old: &[usize],
        dest: usize,
    ) -> Result<bool, MoveError> {
        let id = stripe.ids[i];
        let Some(data) = self.source(stripe, i, old).await? else {
            return Ok(false);
        };
        let want = stable_hash(&[&data]);
        self.pace(data.len() as u64).await;
        let len = data.len() as u64;
        expect_done(self.call(dest, Request::PutFragment { id, data }).await)?;
        let back = self.read(dest, id).await?;
        if back.is_none_or(|b| stable_hash(&[&b]) != want) {
            return Err(MoveError::Verify {
                id,
                core: self.backend.core_name(dest),
            });
        }
        self.count(|p| {
            p.fragments += 1;
            p.bytes += len;
        });
        Ok(true)
    }

    /// The bytes of fragment `i`: from its old core, else (missing or damaged there) from
    /// another replica or decoded from k other shards of the old row. `None`: gone everywhere.
    async fn source(
        &self,
        stripe: &Stripe,
        i: usize,
        old: &[usize],
    ) -> Result<Option<Bytes>, MoveError> {
        let id = stripe.ids[i];
        match self.read(old[i], id).await {
            Ok(Some(b)) => return Ok(Some(b)),
            Ok(None) => {}
            // A dead node's copy is rebuilt from the others (replacing a dead node).
            Err(MoveError::Backend(e)) if self.transition.leaves(old[i]) => {
                tracing::debug!(error = %e, "layout change: the old core is gone, its fragment is rebuilt");
            }
            Err(e) => return Err(e),
        }
        let rebuilt = match stripe.policy {
            Policy::Replicas(_) => {
                let others: Vec<usize> = old.iter().copied().filter(|&c| c != old[i]).collect();
                self.backend.read_whole(&others, id).await
            }
            // Every other shard of the old row is a source, the destination's too when it
            // holds one (excluding it left a stripe written with k shards, one of them on the
            // destination, unrebuildable: 3 → 4 nodes, a node down at the write).
            Policy::Ec { k, m } => self.backend.rebuild_shard(usize::MAX, id, k, m, old).await,
        };
        match rebuilt {
            Ok(b) => Ok(Some(b)),
            Err(BackendError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The whole fragment `id` on `core`; `None` when the core answers it is missing or
    /// damaged.
    async fn read(&self, core: usize, id: FragmentId) -> Result<Option<Bytes>, MoveError> {
        let request = Request::GetFragment {
            id,
            offset_bytes: 0,
            len_bytes: None,
        };
        match self.call(core, request).await? {
            Response::Fragment(b) => Ok(Some(b)),
            Response::Error {
                code: ErrorCode::NotFound | ErrorCode::Corrupt,
                ..
            } => Ok(None),
            other => Err(expect_done(Ok(other)).unwrap_err().into()),
        }
    }

    /// One request of the mover to `core`, tried again at once (`MOVE_CALL_TRIES_MAX` in all,
    /// past the core's down mark) when it got no answer: every request the mover makes is
    /// idempotent, and one lost message used to fail the whole step, whose retry redid every
    /// group of it (under 3 % loss a step of three groups failed 100 times in a row).
    async fn call(&self, core: usize, request: Request) -> Result<Response, BackendError> {
        let mut result = self.backend.call(core, request.clone()).await;
        for _ in 1..MOVE_CALL_TRIES_MAX {
            match &result {
                Err(BackendError::Down { .. } | BackendError::Remote(_)) => {}
                _ => break,
            }
            result = self.backend.call_anyway(core, request.clone()).await;
        }
        result
    }

    /// Waits until copying `bytes` more keeps the mover under its rate limit.
    async fn pace(&self, bytes: u64) {
        let cost = Duration::from_nanos(
            (u128::from(bytes) * 1_000_000_000 / u128::from(self.config.rate_bytes_per_s)) as u64,
        );
        let start = {
            let mut next = self.next_at.lock().expect("rate lock");
            let now = tokio::time::Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + cost);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// Whether a core's answer to `MetaGetVersioned`, read back after `repair_request`, holds
/// version `v` or a newer one.
pub(crate) fn holds_at_least(back: Response, v: &MetaVersion) -> Result<bool, BackendError> {
    let held = match back {
        Response::MetaVersioned(held) => held,
        other => {
            return Err(expect_done(Ok(other))
                .err()
                .unwrap_or(BackendError::Protocol))
        }
    };
    Ok(held
        .as_ref()
        .is_some_and(|h| (h.hlc, !h.deleted, &h.value) >= (v.hlc, !v.deleted, &v.value)))
}

/// `Ok` for `Done`, the core's error otherwise.
pub(crate) fn expect_done(r: Result<Response, BackendError>) -> Result<(), BackendError> {
    match r? {
        Response::Done => Ok(()),
        Response::Error {
            code: ErrorCode::NotFound,
            ..
        } => Err(BackendError::NotFound),
        Response::Error {
            code: ErrorCode::NoSpace,
            ..
        } => Err(BackendError::NoSpace),
        Response::Error { code, message } => Err(BackendError::Core { code, message }),
        _ => Err(BackendError::Protocol),
    }
}
