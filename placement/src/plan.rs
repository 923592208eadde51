//! The movement plan between two layout versions: every (tier, PG, fragment position) whose
//! core differs, as a move from the old core to the new. The plan is minimal by construction for
//! the new tables: a slot that keeps its core never moves, and a slot that changes core must.
//! How much the tables themselves change is the table rule's business (`table`); the plan's
//! `lower_bound` says how close that is to the least any table with the new loads could move.

use std::collections::BTreeMap;

use crate::error::PlacementError;
use crate::layout::{CoreId, Layout, Tier};
use crate::state::State;

/// One fragment position of one PG changing core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Move {
    pub tier: Tier,
    pub pg: u32,
    /// Position in the PG's row: fragment (or replica) index.
    pub fragment: u8,
    pub from: CoreId,
    pub to: CoreId,
}

/// The moves from one layout version to the next, and their accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub old_version: u64,
    pub new_version: u64,
    /// By tier, PG, fragment.
    pub moves: Vec<Move>,
    /// Slots compared (PG × positions present in both tables, all tiers).
    pub slots: u64,
    /// The fewest moves any assignment reaching the new table's per-position loads would need:
    /// Σ over tiers, positions and cores of max(0, new load − old load).
    pub lower_bound: u64,
}

impl Plan {
    /// Moved slots / compared slots.
    pub fn moved_fraction(&self) -> f64 {
        if self.slots == 0 {
            0.0
        } else {
            self.moves.len() as f64 / self.slots as f64
        }
    }

    /// Fragments each core receives and gives away.
    pub fn per_core(&self) -> BTreeMap<CoreId, (u64, u64)> {
        let mut out: BTreeMap<CoreId, (u64, u64)> = BTreeMap::new();
        for m in &self.moves {
            out.entry(m.to).or_default().0 += 1;
            out.entry(m.from).or_default().1 += 1;
        }
        out
    }
}

/// The moves that take `old` to `new`. Tiers new in `new` have nothing to move; positions past
/// the old depth hold no fragments yet.
pub fn plan(old: &Layout, new: &Layout) -> Result<Plan, PlacementError> {
    let view = |l: &Layout| -> Vec<(Tier, usize, Vec<CoreId>)> {
        l.tables()
            .iter()
            .map(|t| (t.tier(), t.depth(), t.slots().to_vec()))
            .collect()
    };
    plan_views(
        (old.version(), old.placement_groups(), &view(old)),
        (new.version(), new.placement_groups(), &view(new)),
    )
}

/// [`plan`] between two stored states (see `state`).
pub fn plan_states(old: &State, new: &State) -> Result<Plan, PlacementError> {
    let view = |s: &State| -> Vec<(Tier, usize, Vec<CoreId>)> {
        s.tables
            .iter()
            .map(|t| (t.tier, t.depth, t.cores()))
            .collect()
    };
    plan_views(
        (old.layout_version, old.placement_groups, &view(old)),
        (new.layout_version, new.placement_groups, &view(new)),
    )
}

/// (version, P, per tier: (tier, depth, slots row-major)).
type View<'a> = (u64, u32, &'a [(Tier, usize, Vec<CoreId>)]);

fn plan_views(old: View<'_>, new: View<'_>) -> Result<Plan, PlacementError> {
    let ((old_version, pgs, old_tables), (new_version, new_pgs, new_tables)) = (old, new);
    if pgs != new_pgs {
        return Err(PlacementError::PlacementGroupsChanged {
            old: pgs,
            new: new_pgs,
        });
    }
    if new_version <= old_version {
        return Err(PlacementError::VersionNotIncreasing {
            old: old_version,
            new: new_version,
        });
    }
    let mut moves = Vec::new();
    let (mut slots, mut lower_bound) = (0u64, 0u64);
    for (tier, depth, old_slots) in old_tables {
        let (tier, depth) = (*tier, *depth);
        let (_, new_depth, new_slots) = new_tables
            .iter()
            .find(|t| t.0 == tier)
            .ok_or(PlacementError::TierRemoved { tier })?;
        if *new_depth < depth {
            return Err(PlacementError::DepthShrunk {
                tier,
                old: depth,
                new: *new_depth,
            });
        }
        // Per position: load deltas, for the lower bound.
        let mut delta: Vec<BTreeMap<CoreId, i64>> = vec![BTreeMap::new(); depth];
        for pg in 0..pgs {
            let a = &old_slots[pg as usize * depth..][..depth];
            let b = &new_slots[pg as usize * new_depth..][..depth];
            for i in 0..depth {
                if a[i] != b[i] {
                    moves.push(Move {
                        tier,
                        pg,
                        fragment: i as u8,
                        from: a[i],
                        to: b[i],
                    });
                    *delta[i].entry(a[i]).or_default() -= 1;
                    *delta[i].entry(b[i]).or_default() += 1;
                }
            }
        }
        slots += u64::from(pgs) * depth as u64;
        lower_bound += delta
            .iter()
            .flat_map(BTreeMap::values)
            .map(|&d| d.max(0) as u64)
            .sum::<u64>();
    }
    assert!(lower_bound <= moves.len() as u64);
    Ok(Plan {
        old_version,
        new_version,
        moves,
        slots,
        lower_bound,
    })
}
