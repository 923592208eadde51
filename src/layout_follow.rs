//! A node's or gateway's side of a layout change: its backend routes by the layouts of the
//! committed map (cluster/DESIGN.md, "Layout changes"; control/DESIGN.md, "How nodes follow
//! the map"). Given each newer map, [`LayoutFollower::apply`] brings the backend there:
//! - a change from the version it routes by: it starts routing by both versions
//!   (`Backend::begin_change`) and waits until no operation routed by the old layout alone
//!   is in flight;
//! - each group's phase, one step at a time, waiting after each step for this process's fence
//!   of the phase reached (`Transition::fence`: mostly the operations routed under the phase
//!   before; so that once this process reports the map's index as applied, the mover may
//!   count on it);
//! - a change whose groups are all done: the new layout alone (`Backend::adopt`).
//!
//! Every process following the map runs one (`percore serve` with `[control]`, `percore
//! gateway`), in a task of its own (`control_plane::follow_layouts`). A node's follower also
//! moves its cores' layout gate (`gate_layouts`; which stamps pass: cluster/DESIGN.md, "Across
//! processes"), and the mover (`layout_mover`) waits for every node's applied index.

use std::sync::{Arc, PoisonError};

use cluster::backend::{Backend, Standing};
use cluster::moves::{Phase, Transition};
use control::map::{ClusterMap, Demotion, GroupPhase};
use engine::CoreHandle;
use placement::Layout;

/// Polls of the operations routed before a change (`LIVE_FENCE_POLL_MS` apart) before
/// `apply` gives up; the next map tries again.
const LIVE_FENCE_POLLS_MAX: u32 = 1500;
const LIVE_FENCE_POLL_MS: u64 = 20;

pub struct LayoutFollower {
    backend: Arc<Backend>,
    node_id: Option<u64>,
    /// This node's core handles (none on a gateway): a change may add some of its cores.
    local: Vec<CoreHandle>,
    /// This node's layout gate (none on a gateway): which frames its cores take, and the log
    /// index of the map it applied, which a mover asks for.
    gate: Option<Arc<engine::LayoutGate>>,
    /// This node's data directory (none on a gateway): where the layout it takes is kept.
    data: Option<std::path::PathBuf>,
    /// A raise of the gate's epoch floor whose fenced frames were not all answered within the
    /// wait (`fence_epoch`): waited out before the next raise, which would count new frames
    /// under the same parity.
    undrained: std::sync::Mutex<Option<u64>>,
}

/// The map's demotions as the backend routes by them.
fn standing_of(map: &ClusterMap) -> std::collections::BTreeMap<u64, Standing> {
    map.demoted
        .iter()
        .map(|(node, d)| {
            let s = match d {
                Demotion::Demoted => Standing::Skipped,
                Demotion::Restoring => Standing::Waits,
            };
            (*node, s)
        })
        .collect()
}

fn phase_of(p: GroupPhase) -> Phase {
    match p {
        GroupPhase::Pending => Phase::Pending,
        GroupPhase::Moving => Phase::Moving,
        GroupPhase::Handoff => Phase::Handoff,
        GroupPhase::CutOver => Phase::CutOver,
        GroupPhase::Done => Phase::Done,
    }
}

fn layout_of(map: &ClusterMap, version: u64) -> Result<Arc<Layout>, String> {
    let stored = map
        .layouts
        .get(&version)
        .ok_or_else(|| format!("the map does not keep layout version {version}"))?;
    Ok(Arc::new(stored.layout()?))
}

impl LayoutFollower {
    pub fn new(backend: Arc<Backend>, node_id: Option<u64>, local: Vec<CoreHandle>) -> Self {
        LayoutFollower {
            backend,
            node_id,
            local,
            gate: None,
            data: None,
            undrained: std::sync::Mutex::new(None),
        }
    }

    /// The follower of a node: its cores' gate follows the layouts too, and the layout it
    /// takes at the end of a change is kept in `data` (`map_layout`, `placement_guard`).
    pub fn of_node(mut self, gate: Arc<engine::LayoutGate>, data: &std::path::Path) -> Self {
        self.gate = Some(gate);
        self.data = Some(data.to_path_buf());
        self
    }

    /// A node that follows the control map serializes conditional writes, and routes them,
    /// only under a lease from the control plane's leader (`lease_keeper`). A pure gateway
    /// that follows it stamps its frames from the start (`fence_epoch`): with the epoch of a
    /// map whose current layout is the one it routes by, until it applies a map.
    pub fn follow_the_map(&self) {
        if let Some(gate) = &self.gate {
            self.backend.route_under_gate(gate.clone());
            gate.enforce_leases();
        } else {
            let epoch = file_epoch(self.backend.layout_version());
            self.backend.stamp_epoch(epoch);
        }
    }

    /// Tells the node's cores that the map at log index `index` is applied: `apply`
    /// returned, so the operations this process routed under the phases before have ended.
    /// `sealed` is that map sealed with the cluster secret (`control::follow::seal_map`),
    /// answered to a process the cores refuse (called on a node only: see `is_node`).
    pub fn applied(&self, index: u64, sealed: Option<bytes::Bytes>) {
        if let Some(gate) = &self.gate {
            if let Some(sealed) = sealed {
                gate.set_sealed_map(sealed);
            }
            gate.set_applied(index);
        }
    }

    /// The fence of pure gateways (cluster/DESIGN.md, "Across processes"), once `apply` of
    /// `map` returned and before `applied`: a node's cores refuse frames fenced with a lower
    /// routing epoch than the map's, and this waits until those its cores admitted under the
    /// floor before are answered (so the mover, which waits for the node's applied index, never
    /// copies a group while a pure gateway's write routed under the phase before may land);
    /// a pure gateway stamps its frames with the map's epoch from now on (its own fence of the
    /// operations routed under the phases before is behind it, in `apply`).
    pub async fn fence_epoch(&self, map: &ClusterMap) -> Result<(), String> {
        let epoch = map.routing_epoch();
        if let Some(gate) = &self.gate {
            let drained = |generation| gate.admitted_under(generation) == 0;
            let what = "admitted from pure gateways under the epoch before";
            let undrained = *self
                .undrained
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(generation) = undrained {
                wait_for(|| drained(generation), what).await?;
            }
            let generation = gate.raise_epoch_floor(epoch);
            let waited = wait_for(|| drained(generation), what).await;
            *self
                .undrained
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = waited.is_err().then_some(generation);
            waited
        } else {
            self.backend.stamp_epoch(epoch);
            Ok(())
        }
    }

    /// Whether this follows a node's map (its cores have a gate), not a pure gateway's.
    pub fn is_node(&self) -> bool {
        self.gate.is_some()
    }

    /// See `Backend::catch_up_with`.
    pub fn catch_up_with(&self, catch_up: Arc<dyn cluster::backend::CatchUp>) {
        self.backend.catch_up_with(catch_up);
    }

    /// The cores take frames routed by `floor` or a newer layout version.
    fn gate_layouts(&self, floor: u64, version: u64) {
        if let Some(gate) = &self.gate {
            gate.set_layout(floor, version);
        }
    }

    /// Brings the backend to `map`'s layouts (see the module doc). An error leaves it where
    /// it got to: applying a later map (or this one again) continues from there.
    pub async fn apply(&self, map: &ClusterMap) -> Result<(), String> {
        let b = &self.backend;
        b.set_standing(standing_of(map)).await;
        let Some(change) = &map.change else {
            return self.adopt(map, map.current).await;
        };
        let routed = b.transition();
        let t = match routed {
            Some(t) if t.new_layout().version() == change.to_version => t,
            Some(t) => {
                return Err(format!(
                    "this process routes a change to layout version {}, the map's is to {}: \
                     restart it",
                    t.new_layout().version(),
                    change.to_version
                ))
            }
            // From the old layout, or from the new one (a node started with the new layout
            // file, to join the change).
            None if (b.layout_version() == change.from_version
                || b.layout_version() == change.to_version)
                && !change.is_done() =>
            {
                let old = layout_of(map, change.from_version)?;
                let new = layout_of(map, change.to_version)?;
                let t = Arc::new(Transition::new(old, new).map_err(|e| e.to_string())?);
                // Nothing routes by it yet: its groups go where the map has them at once.
                for (pg, g) in &change.groups {
                    while let Some(at) = t.phase(*pg).filter(|at| *at < phase_of(g.phase)) {
                        t.advance(*pg, at.next().expect("before the map's phase"));
                    }
                }
                let replaced = b.begin_change(t.clone(), self.node_id, self.local.clone())?;
                self.gate_layouts(change.from_version, change.to_version);
                if let Some(replaced) = replaced {
                    wait_for(|| replaced.in_flight() == 0, "routed by the old layout").await?;
                }
                t
            }
            None => return self.adopt(map, change.to_version).await,
        };
        for (pg, g) in &change.groups {
            let to = phase_of(g.phase);
            while let Some(at) = t.phase(*pg).filter(|at| *at < to) {
                let next = at.next().expect("before the map's phase");
                t.advance(*pg, next);
                t.fence(*pg, next).await.map_err(|e| e.to_string())?;
            }
        }
        if change.is_done() {
            return self.adopt(map, change.to_version).await;
        }
        if t.groups()
            .iter()
            .all(|pg| t.phase(*pg) >= Some(Phase::CutOver))
        {
            // Every group routes as the new layout does. The nodes that adopt it once the
            // change is done refuse frames stamped with the old version: this process's are
            // not stale, and from now on they say so.
            b.stamp_frames(change.to_version);
        }
        Ok(())
    }

    /// Routes by the map's layout `version` alone, unless the backend routes by a newer one or
    /// by that very one. The same version with other tables is taken too: a node started with
    /// a layout file of that version has the file's own tables, not the ones the map planned
    /// from the version before.
    async fn adopt(&self, map: &ClusterMap, version: u64) -> Result<(), String> {
        if version == 0 || version < self.backend.layout_version() {
            return Ok(());
        }
        let layout = layout_of(map, version)?;
        let routed = self.backend.layout();
        if routed.is_some_and(|r| {
            r.version() == version && r.placement_digest() == layout.placement_digest()
        }) {
            // Routed by it already (a node restarted with it kept): its cores' gate started
            // at this version alone, and may take the version before too (`floor_of`).
            self.gate_layouts(floor_of(map, version), version);
            return Ok(());
        }
        if let Some(data) = &self.data {
            // Kept before routing by it: a restart after this point starts from it.
            let stored = map.layouts.get(&version).expect("layout_of found it");
            crate::map_layout::keep(data, stored)
                .and_then(|()| crate::placement_guard::keep(data, &layout))
                .map_err(|e| format!("keeping layout version {version}: {e:#}"))?;
        }
        let removed = self
            .node_id
            .is_some_and(|id| layout.nodes().iter().any(|n| n.id == id && n.removed));
        let replaced = self
            .backend
            .adopt(layout, self.node_id, self.local.clone())?;
        self.gate_layouts(floor_of(map, version), version);
        if let Some(replaced) = replaced {
            // Adopted from a plain view (a gateway that missed the change, a removal): an
            // operation routed by the layout before must not send frames stamped as routed by
            // this one (and, from a pure gateway, with this map's epoch) once it is applied.
            wait_for(|| replaced.in_flight() == 0, "routed by the layout before").await?;
        }
        if removed {
            tracing::warn!(
                version,
                "this node was removed from the cluster: its cores serve nothing any more; \
                 stop it"
            );
        }
        Ok(())
    }
}

/// The oldest layout version whose frames a node routing by the map's `version` takes: the
/// version before it, if the change between them moves no group (a drained node removed), else
/// `version` itself. A process that has not adopted `version` yet routes every group where
/// `version` does, and its frames, stamped with the version before, are not stale. Without
/// this, the nodes that adopt a removal first refuse the others' frames until they catch up.
fn floor_of(map: &ClusterMap, version: u64) -> u64 {
    let Some((&before, _)) = map.layouts.range(..version).next_back() else {
        return version;
    };
    let (Ok(old), Ok(new)) = (layout_of(map, before), layout_of(map, version)) else {
        return version;
    };
    match Transition::new(old, new) {
        Ok(t) if t.groups().is_empty() => before,
        _ => version,
    }
}

async fn wait_for(done: impl Fn() -> bool, what: &str) -> Result<(), String> {
    for _ in 0..LIVE_FENCE_POLLS_MAX {
        if done() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(LIVE_FENCE_POLL_MS)).await;
    }
    Err(format!(
        "operations {what} still in flight after {} s",
        u64::from(LIVE_FENCE_POLLS_MAX) * LIVE_FENCE_POLL_MS / 1000
    ))
}

/// The routing epoch of a map whose current layout is `version`, with no change.
fn file_epoch(version: u64) -> u64 {
    let routed = ClusterMap {
        current: version,
        ..ClusterMap::default()
    };
    routed.routing_epoch().max(1)
}

/// A pure gateway without a control plane routes by its layout file for its whole life. It
/// stamps its frames with the epoch at which a change into that file's version ends (the
/// low half all ones, above any step of such a change): nodes that follow a map refuse them
/// from the first step of a change to a later version on (503 to its clients, never a write
/// into the old rows behind the mover's copies), and take them again once it is restarted on
/// the new file after the change. Nodes without a control plane raise no epoch floor.
/// Without it, a write such a gateway acknowledged during a drain was lost ("a stored piece
/// is missing" through a node of the new layout, `test_node_membership.py`).
pub fn fence_by_the_file(backend: &Backend) {
    backend.stamp_epoch(file_epoch(backend.layout_version()) | u64::from(u32::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::backend::Route;
    use control::map::{Applied, Command, LayoutVersion};

    fn layout_text(nodes: usize, version: u64) -> String {
        use std::fmt::Write as _;
        let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 16\n");
        for n in 0..nodes {
            let _ = write!(
                text,
                "[[node]]\nid = {}\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 2\nzone = \
                 \"z{n}\"\n",
                n + 1,
                20_000 + 10 * n,
            );
        }
        text
    }

    /// A map holding versions 1 (3 nodes) and 2 (4 nodes, planned from 1's tables), as
    /// `ProposeLayout` commits them.
    fn map_3_to_4() -> ClusterMap {
        let mut map = ClusterMap::default();
        let v1 = Layout::from_toml_str(&layout_text(3, 1)).unwrap();
        let text2 = layout_text(4, 2);
        let v2 = Layout::from_toml_str_and_state(&text2, Some(&v1.state())).unwrap();
        for (text, l) in [(layout_text(3, 1), &v1), (text2, &v2)] {
            let outcome = map.apply(&Command::ProposeLayout(LayoutVersion::of(&text, l)));
            assert!(
                matches!(outcome, Ok(Applied::LayoutCommitted { .. })),
                "{outcome:?}"
            );
        }
        map
    }

    fn step_all(map: &mut ClusterMap, phase: GroupPhase) {
        let change = map.change.clone().unwrap();
        for pg in change.groups.keys() {
            let outcome = map.apply(&Command::UpdateChange {
                to_version: change.to_version,
                pg: *pg,
                phase,
            });
            assert!(outcome.is_ok(), "{outcome:?}");
        }
    }

    /// Every group of the map's change through every phase.
    fn finish(map: &mut ClusterMap) {
        for phase in [
            GroupPhase::Moving,
            GroupPhase::Handoff,
            GroupPhase::CutOver,
            GroupPhase::Done,
        ] {
            step_all(map, phase);
        }
    }

    #[tokio::test]
    async fn a_gateway_follows_a_change_from_start_to_end() {
        let mut map = map_3_to_4();
        let v1 = layout_of(&map, 1).unwrap();
        let backend = Arc::new(Backend::cluster(v1, None, Vec::new()).unwrap());
        let follower = LayoutFollower::new(backend.clone(), None, Vec::new());
        let held = backend.place(Route::Object("b", "k"), 3);
        // A change whose start waits for an operation routed by the old layout alone.
        let applying = tokio::spawn({
            let map = map.clone();
            async move { follower.apply(&map).await.map(|()| follower) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !applying.is_finished(),
            "the change waits for the operation"
        );
        drop(held);
        let follower = applying.await.unwrap().unwrap();
        let t = backend.transition().expect("routing the change");
        assert_eq!(backend.core_count(), 8);
        let groups = t.groups();
        assert_eq!(
            groups.len(),
            map.change.as_ref().unwrap().groups.len(),
            "the map and the transition move the same groups"
        );
        assert!(groups.iter().all(|pg| t.phase(*pg) == Some(Phase::Pending)));
        // Phases follow the map, each step fenced: an operation routed as Pending holds it.
        let pg = groups[0];
        let key = (0..10_000)
            .map(|i| format!("k{i}"))
            .find(|k| Route::Object("b", k).pg(&layout_of(&map, 1).unwrap()) == pg)
            .unwrap();
        let held = backend.place(Route::Object("b", &key), 3);
        assert_eq!(held.phase(), Some(Phase::Pending));
        step_all(&mut map, GroupPhase::Moving);
        let applying = tokio::spawn({
            let map = map.clone();
            async move { follower.apply(&map).await.map(|()| follower) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!applying.is_finished(), "the phase waits for the operation");
        assert_eq!(t.phase(pg), Some(Phase::Moving));
        drop(held);
        let follower = applying.await.unwrap().unwrap();
        assert!(groups.iter().all(|pg| t.phase(*pg) == Some(Phase::Moving)));
        step_all(&mut map, GroupPhase::Handoff);
        follower.apply(&map).await.unwrap();
        let stamps = backend.frame_stamps();
        assert_eq!(stamps.len(), 8);
        assert!(
            stamps[..6].iter().all(|v| *v == 1) && stamps[6..].iter().all(|v| *v == 2),
            "before the cut-over, frames to the old cores carry the old version: {stamps:?}"
        );
        // Every group cut over: routed as the new layout, and stamped so.
        step_all(&mut map, GroupPhase::CutOver);
        follower.apply(&map).await.unwrap();
        assert_eq!(backend.layout_version(), 1, "still routing the change");
        assert_eq!(backend.frame_stamps(), vec![2; 8]);
        step_all(&mut map, GroupPhase::Done);
        follower.apply(&map).await.unwrap();
        assert!(backend.transition().is_none());
        assert_eq!(backend.layout_version(), 2);
        assert_eq!(backend.core_count(), 8);
        // A later map changes nothing more.
        follower.apply(&map).await.unwrap();
        assert_eq!(backend.layout_version(), 2);
    }

    /// A node started with the new layout's file has that file's own tables; the map's
    /// tables of the same version (planned from the version before) replace them.
    #[tokio::test]
    async fn a_layout_file_of_the_same_version_gives_way_to_the_map_s_tables() {
        let mut map = map_3_to_4();
        finish(&mut map);
        let file = Arc::new(Layout::from_toml_str(&layout_text(4, 2)).unwrap());
        let planned = layout_of(&map, 2).unwrap();
        assert_ne!(file.placement_digest(), planned.placement_digest());
        let backend = Arc::new(Backend::cluster(file, None, Vec::new()).unwrap());
        let follower = LayoutFollower::new(backend.clone(), None, Vec::new());
        follower.apply(&map).await.unwrap();
        let routed = backend.layout().unwrap();
        assert_eq!(routed.placement_digest(), planned.placement_digest());
    }

    /// A node drained (weight 0) by version 2, removed by version 3: the change to 3 moves
    /// nothing, so a node that adopted 3 takes frames routed by 2.
    #[test]
    fn a_removal_that_moves_nothing_keeps_the_floor_at_the_version_before() {
        let mut map = map_3_to_4();
        finish(&mut map);
        let v2 = layout_of(&map, 2).unwrap();
        let drained = layout_text(4, 3).replace("zone = \"z3\"\n", "zone = \"z3\"\nweight = 0\n");
        let removed =
            layout_text(4, 4).replace("zone = \"z3\"\n", "zone = \"z3\"\nremoved = true\n");
        let v3 = Layout::from_toml_str_and_state(&drained, Some(&v2.state())).unwrap();
        commit(&mut map, &drained, &v3);
        finish(&mut map);
        let v4 = Layout::from_toml_str_and_state(&removed, Some(&v3.state())).unwrap();
        commit(&mut map, &removed, &v4);
        assert!(map.change.as_ref().unwrap().is_done(), "nothing to move");
        assert_eq!(floor_of(&map, 4), 3, "the removal moves no group");
        assert_eq!(floor_of(&map, 3), 3, "the drain moves groups");
        assert_eq!(floor_of(&map, 2), 2, "the fourth node took groups");
        assert_eq!(floor_of(&map, 1), 1, "no version before");
    }

    /// A node restarted after it adopted the removal: its gate starts at the removal's
    /// version alone, and the first map it applies lowers the floor to the version before.
    #[tokio::test]
    async fn a_node_restarted_on_a_removal_takes_the_version_before_again() {
        let mut map = map_3_to_4();
        finish(&mut map);
        let v2 = layout_of(&map, 2).unwrap();
        let drained = layout_text(4, 3).replace("zone = \"z3\"\n", "zone = \"z3\"\nweight = 0\n");
        let v3 = Layout::from_toml_str_and_state(&drained, Some(&v2.state())).unwrap();
        commit(&mut map, &drained, &v3);
        finish(&mut map);
        let removed =
            layout_text(4, 4).replace("zone = \"z3\"\n", "zone = \"z3\"\nremoved = true\n");
        let v4 = Layout::from_toml_str_and_state(&removed, Some(&v3.state())).unwrap();
        commit(&mut map, &removed, &v4);
        let kept = layout_of(&map, 4).unwrap();
        let backend = Arc::new(Backend::cluster(kept, None, Vec::new()).unwrap());
        let gate = Arc::new(engine::LayoutGate::new(4));
        // Nothing is written there: the node routes by the map's version 4 already.
        let dir = std::env::temp_dir().join(format!("percore-follow-{}", std::process::id()));
        let follower = LayoutFollower::new(backend, None, Vec::new()).of_node(gate.clone(), &dir);
        follower.apply(&map).await.unwrap();
        assert!(!dir.exists(), "no layout kept");
        assert_eq!((gate.floor(), gate.version()), (3, 4));
    }

    fn commit(map: &mut ClusterMap, text: &str, layout: &Layout) {
        let outcome = map.apply(&Command::ProposeLayout(LayoutVersion::of(text, layout)));
        assert!(
            matches!(outcome, Ok(Applied::LayoutCommitted { .. })),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_gateway_started_after_the_change_adopts_the_new_layout() {
        let mut map = map_3_to_4();
        finish(&mut map);
        let v1 = layout_of(&map, 1).unwrap();
        let backend = Arc::new(Backend::cluster(v1, None, Vec::new()).unwrap());
        let follower = LayoutFollower::new(backend.clone(), None, Vec::new());
        // An operation routed by version 1 alone, in flight: its frames would carry version 2
        // (and, from a pure gateway, the new map's epoch) once the layout is adopted, so the
        // map is applied only once it ended.
        let held = backend.place(Route::Object("b", "k"), 3);
        let applying = tokio::spawn({
            let map = map.clone();
            async move { follower.apply(&map).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !applying.is_finished(),
            "the adoption waits for the operation"
        );
        assert_eq!(backend.layout_version(), 2, "routed by version 2 already");
        drop(held);
        applying.await.unwrap().unwrap();
        assert!(backend.transition().is_none());
        assert_eq!(backend.layout_version(), 2);
        assert_eq!(backend.core_count(), 8);
    }
}
