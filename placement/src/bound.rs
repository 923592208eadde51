//! A lower bound on the slots any valid new table must change, given the previous table and
//! the new tier: the honest "theoretical minimum" that the rebalance's movement is measured
//! against. It deliberately does not build a table; it is a relaxation that only counts.
//!
//! # What "valid" means
//! A new table of the tier's members, P rows of `depth` distinct cores, at least as good as the
//! rebalanced table it is compared with, such that
//!
//! - **spread**: every prefix of every row is as spread as the tier allows (the check of
//!   `rebalance::SpreadCheck` and `tests/oracle.rs`: the fullest zone holds the water-filling
//!   maximum over zones, and in each zone the fullest node the water-filling maximum over the
//!   zone's nodes for the fragments the zone holds);
//! - **balance**: for every prefix w and member c, `lo_w(c) ≤ load_w(c) ≤ hi_w(c)` with the
//!   targets the rebalance enforces (`rebalance::prefix_targets`: the bound, raised to the
//!   previous load for cores whose share did not shrink and to the share spread pins; the floor
//!   of a new or heavier core), each widened to the compared table's own load where that table
//!   misses it (a new core a few slots short of its floor where only trades would get it
//!   there). So the compared table is always in the class, and the bound answers: how little
//!   could any table move that is as spread as it and as close to every target.
//!
//! # The bound
//! For a window of positions `a..b`, write O(c) for the slots of the window that member c held
//! before and N(c) for what it holds after. A slot of the window that keeps its core counts in
//! both, so at most min(O(c), N(c)) of c's slots are kept, and the window changes at least
//! Σ_c max(0, N(c) − O(c)) slots (slots of departed cores and new positions included: the
//! N(c) sum to (b − a) × P, the O(c) to that minus those slots). We minimise that sum over every
//! N a valid table can have, relaxed to boxes that each valid table satisfies:
//!
//! - per member: `lo_b − hi_a ≤ N(c) ≤ hi_b − lo_a`, and N(c) ≤ P (a row holds c once);
//! - per node and per zone: the same with the group's prefix range, `max(P × m_w, Σ lo_w)` to
//!   `min(P × M_w, Σ hi_w)`, where `m_w ..= M_w` is what spread lets the group hold of a row's
//!   prefix of w, and per row `max(0, m_b − M_a) ..= min(b − a, M_b − m_a)` times P;
//! - in total, exactly (b − a) × P.
//!
//! The boxes nest (members in nodes in zones), and the minimum of Σ max(0, N − O) over nested
//! boxes with a fixed total has a closed form, bottom up (`Cost`). Changes in disjoint windows
//! are disjoint slots, so the bound is the best sum over a partition of the positions into
//! windows (a small dynamic program). The group boxes are what the per-member counts miss: a
//! node that spread pins to one fragment of every row's first six positions, and whose bound
//! caps it below that at five, must gain in position 5 what it sheds in 0..5: both count.
//!
//! # The LP relaxation
//! The windows are minimised one by one, each with its own best N; a table has one N per
//! position, shared by all the windows. The linear program over the per-position counts
//! N(c, r) ≥ 0 ties them: minimise Σ_{c, r} max(0, N(c, r) − O(c, r)) subject to Σ_c N(c, r)
//! = P for each position r, and for every member, node and zone and every prefix w, the
//! group's Σ_{r < w} N in its prefix box above. Every valid table's counts satisfy these, so the
//! optimum (rounded up, less half a slot for the solver's rounding) is a lower bound too, and
//! never below any sum of windows. It is what shows trades: a node whose fragments must go from
//! position 6 to 11 of rows (its bound at w = 7..11, its pinned share at w = 12) gains at 11
//! what it loses at 6, where each window alone saw only one side (3 zones × 2 nodes × 4 cores,
//! a core removed: 3999 by windows, 4121 by the LP). The LP has 2 × members × depth variables
//! and (members + nodes + zones) × depth + depth rows, solved by `microlp` (simplex, pure
//! Rust): 20 ms for 100 cores, 5 s for 1000 in release. The bound is the larger of the two.
//!
//! Where the targets and spread contradict each other (`share` only estimates the pinned
//! shares, and a heavy core's floor can pass one slot per row), the targets are clamped into
//! the spread range: "valid" then means spread and the targets as far as spread allows, a
//! wider class, so the bound stays a lower bound. A window box left empty keeps its lower end.

use crate::policy::waterfill_max;
use crate::state::StateTable;
use crate::table::{domain_counts, Member, Table};

/// Slack subtracted from the LP optimum before rounding up (see `relaxation`).
const LP_MARGIN: f64 = 0.5;

/// Per prefix w = 0..=depth and member, the range the rebalance keeps the load in.
pub(crate) struct PrefixTargets {
    pub lo: Vec<Vec<u64>>,
    pub hi: Vec<Vec<u64>>,
}

/// The least number of slots any valid table of `new`'s members (see the module doc: spread,
/// and every prefix load within the targets or no further from them than `new`'s) changes
/// from `previous`, the stored table of the same tier, over the positions both have (as
/// [`crate::plan`] counts moves). `new` itself is always such a table.
pub fn movement_lower_bound(previous: &StateTable, new: &Table) -> u64 {
    let members = new.members();
    let (pgs, depth) = (new.placement_groups(), new.depth());
    let (_, old_load, _) = crate::rebalance::carry_over(members, pgs as usize, depth, previous);
    let targets = widened_targets(previous, new, &old_load);
    // Positions new to a deeper table are filled, not moved (`plan` counts the old depth).
    let counted = depth.min(previous.depth);
    lower_bound(members, u64::from(pgs), counted, &old_load, &targets)
}

/// The load range of every prefix that defines the valid class of [`movement_lower_bound`]:
/// per prefix w = 0..=depth and member of `new` (in its order), (lo, hi). For checking the
/// bound from outside, as `tools/optimum.py` does with an exact integer program.
pub fn valid_targets(previous: &StateTable, new: &Table) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let members = new.members();
    let (_, old_load, _) = crate::rebalance::carry_over(
        members,
        new.placement_groups() as usize,
        new.depth(),
        previous,
    );
    let t = widened_targets(previous, new, &old_load);
    (t.lo, t.hi)
}

/// The rebalance's targets, widened to `new`'s own loads where it misses them (module doc).
fn widened_targets(previous: &StateTable, new: &Table, old_load: &[Vec<u64>]) -> PrefixTargets {
    let mut targets = crate::rebalance::prefix_targets(
        new.members(),
        new.placement_groups(),
        new.depth(),
        new.slack_permille(),
        previous,
        old_load,
    );
    for w in 1..=new.depth() {
        for (c, load) in new.loads(w).into_iter().enumerate() {
            targets.lo[w][c] = targets.lo[w][c].min(load);
            targets.hi[w][c] = targets.hi[w][c].max(load);
        }
    }
    targets
}

/// How far `new` is from the targets of the rebalance (module doc), over the worst prefix:
/// (Σ over members of the shortfall under the floor, Σ of the excess over the bound).
pub fn target_violations(previous: &StateTable, new: &Table) -> (u64, u64) {
    let members = new.members();
    let (pgs, depth) = (new.placement_groups(), new.depth());
    let (_, old_load, _) = crate::rebalance::carry_over(members, pgs as usize, depth, previous);
    let t = crate::rebalance::prefix_targets(
        members,
        pgs,
        depth,
        new.slack_permille(),
        previous,
        &old_load,
    );
    let (mut short, mut over) = (0, 0);
    for w in 1..=depth {
        let load = new.loads(w);
        let (mut s, mut o) = (0, 0);
        for (c, &l) in load.iter().enumerate() {
            s += t.lo[w][c].saturating_sub(l);
            o += l.saturating_sub(t.hi[w][c]);
        }
        short = u64::max(short, s);
        over = u64::max(over, o);
    }
    (short, over)
}

/// The bound over positions `0..depth` from the previous loads per prefix (member indices) and
/// the targets (both at least `depth` + 1 prefixes long): the better of the window bound and
/// the LP relaxation.
pub(crate) fn lower_bound(
    members: &[Member],
    pgs: u64,
    depth: usize,
    old_load: &[Vec<u64>],
    targets: &PrefixTargets,
) -> u64 {
    let tree = Tree::new(members, depth);
    // best[b]: the most the positions 0..b are shown to change, windows ending at b.
    let mut best = vec![0u64; depth + 1];
    for b in 1..=depth {
        best[b] = (0..b)
            .map(|a| best[a] + tree.window(pgs, a, b, old_load, targets))
            .max()
            .expect("b >= 1");
    }
    let relaxed = relaxation(&tree, members.len(), pgs, depth, old_load, targets);
    best[depth].max(relaxed.unwrap_or(0))
}

/// The LP relaxation (module doc), rounded: None if the solver finds no solution (the boxes
/// contradict each other: no valid table exists, and the window bound stands alone).
fn relaxation(
    tree: &Tree,
    n: usize,
    pgs: u64,
    depth: usize,
    old: &[Vec<u64>],
    t: &PrefixTargets,
) -> Option<u64> {
    use microlp::{ComparisonOp, OptimizationDirection, Problem};
    if depth == 0 || n == 0 {
        return Some(0);
    }
    let p = pgs as f64;
    let held = |c: usize, r: usize| (old[r + 1][c] - old[r][c]) as f64;
    let mut lp = Problem::new(OptimizationDirection::Minimize);
    // N(c, r) = O(c, r) − lost(c, r) + gained(c, r): Σ gained is the objective, and at the
    // optimum one of the two is 0 (written this way, no row per (c, r) is needed).
    let lost: Vec<Vec<_>> = (0..n)
        .map(|c| {
            (0..depth)
                .map(|r| lp.add_var(0.0, (0.0, held(c, r))))
                .collect()
        })
        .collect();
    let gained: Vec<Vec<_>> = (0..n)
        .map(|_| (0..depth).map(|_| lp.add_var(1.0, (0.0, p))).collect())
        .collect();
    let terms = |cells: &mut dyn Iterator<Item = (usize, usize)>| {
        cells
            .flat_map(|(c, r)| [(lost[c][r], -1.0), (gained[c][r], 1.0)])
            .collect::<Vec<_>>()
    };
    for r in 0..depth {
        let row = terms(&mut (0..n).map(|c| (c, r)));
        let before: f64 = (0..n).map(|c| held(c, r)).sum();
        lp.add_constraint(&row, ComparisonOp::Eq, p - before);
    }
    for g in tree.groups() {
        for (w, held_before) in old.iter().enumerate().take(depth + 1).skip(1) {
            let (lo, hi) = prefix_box(pgs, w, g.range, g.id, &g.cores, t);
            let row = terms(&mut g.cores.iter().flat_map(|&c| (0..w).map(move |r| (c, r))));
            let before: f64 = g.cores.iter().map(|&c| held_before[c] as f64).sum();
            if lo == hi {
                lp.add_constraint(&row, ComparisonOp::Eq, lo as f64 - before);
            } else {
                lp.add_constraint(&row, ComparisonOp::Ge, lo as f64 - before);
                lp.add_constraint(&row, ComparisonOp::Le, hi as f64 - before);
            }
        }
    }
    let value = lp.solve().ok()?.objective();
    // Any valid table moves a whole number of slots ≥ the LP optimum; half a slot of margin
    // absorbs the solver's rounding.
    Some((value - LP_MARGIN).ceil().max(0.0) as u64)
}

/// The minimum of Σ max(0, N − O) over a subtree as a function of its total x, on
/// `lo ..= hi`: `base + max(0, x − knee)`.
#[derive(Debug, Clone, Copy)]
struct Cost {
    base: u64,
    knee: u64,
    lo: u64,
    hi: u64,
}

impl Cost {
    /// A member that held `old` slots of the window, on any N.
    fn leaf(old: u64) -> Cost {
        Cost {
            base: 0,
            knee: old,
            lo: 0,
            hi: u64::MAX,
        }
    }

    /// Children side by side: the sum of their costs, minimised over the split of x.
    fn sum(children: impl Iterator<Item = Cost>) -> Cost {
        children.fold(
            Cost {
                base: 0,
                knee: 0,
                lo: 0,
                hi: 0,
            },
            |acc, c| Cost {
                base: acc.base + c.base,
                knee: acc.knee + c.knee,
                lo: acc.lo + c.lo,
                hi: acc.hi.saturating_add(c.hi),
            },
        )
    }

    /// Restricted to x in `lo ..= hi` as well. An empty range (the targets contradict spread or
    /// each other) keeps the lower end: see the module doc.
    fn within(self, lo: u64, hi: u64) -> Cost {
        let lo = self.lo.max(lo);
        let hi = self.hi.min(hi).max(lo);
        let knee = self.knee.clamp(lo, hi);
        Cost {
            base: self.base + lo.saturating_sub(self.knee),
            knee,
            lo,
            hi,
        }
    }

    fn at(self, x: u64) -> u64 {
        self.base + x.saturating_sub(self.knee)
    }
}

/// A member, node or zone: its per-row spread range per prefix (`range[w][id]`) and members.
struct Group<'a> {
    range: &'a [Vec<(u64, u64)>],
    id: usize,
    cores: Vec<usize>,
}

/// The members grouped by zone and node, with what spread lets each group hold of a prefix.
struct Tree {
    /// Per zone, its nodes: dense node id and members (indices).
    zones: Vec<Vec<(usize, Vec<usize>)>>,
    /// Per prefix w = 0..=depth, per zone and per node (dense ids): fewest and most fragments
    /// of a row's prefix spread allows.
    zone_range: Vec<Vec<(u64, u64)>>,
    node_range: Vec<Vec<(u64, u64)>>,
    /// The same per member: at most one, at least one when its node's fewest fragments
    /// leave no core of the node out.
    core_range: Vec<Vec<(u64, u64)>>,
}

impl Tree {
    fn new(members: &[Member], depth: usize) -> Tree {
        let (zones, nodes) = domain_counts(members);
        let mut tree: Vec<Vec<(usize, Vec<usize>)>> = vec![Vec::new(); zones];
        let mut node_slot = vec![usize::MAX; nodes];
        for (i, m) in members.iter().enumerate() {
            let (z, n) = (m.zone as usize, m.node as usize);
            if node_slot[n] == usize::MAX {
                node_slot[n] = tree[z].len();
                tree[z].push((n, Vec::new()));
            }
            tree[z][node_slot[n]].1.push(i);
        }
        let zone_caps: Vec<usize> = tree
            .iter()
            .map(|z| z.iter().map(|(_, c)| c.len()).sum())
            .collect();
        let mut zone_range = vec![vec![(0, 0); zones]; depth + 1];
        let mut node_range = vec![vec![(0, 0); nodes]; depth + 1];
        let mut core_range = vec![vec![(0, 0); members.len()]; depth + 1];
        for w in 1..=depth {
            zone_range[w] = ranges(&zone_caps, w);
            for (z, zone) in tree.iter().enumerate() {
                let caps: Vec<usize> = zone.iter().map(|(_, c)| c.len()).collect();
                let (fewest, most) = zone_range[w][z];
                let mut per_node = vec![(u64::MAX, 0u64); caps.len()];
                for k in fewest..=most {
                    let k = (k as usize).min(zone_caps[z]);
                    for (acc, r) in per_node.iter_mut().zip(ranges(&caps, k)) {
                        *acc = (acc.0.min(r.0), acc.1.max(r.1));
                    }
                }
                for ((id, cores), r) in zone.iter().zip(per_node) {
                    node_range[w][*id] = r;
                    let out = cores.len() as u64 - 1;
                    for &c in cores {
                        core_range[w][c] = (r.0.saturating_sub(out), r.1.min(1));
                    }
                }
            }
        }
        Tree {
            zones: tree,
            zone_range,
            node_range,
            core_range,
        }
    }

    /// Every group the boxes apply to: each member, node and zone.
    fn groups(&self) -> Vec<Group<'_>> {
        let mut out = Vec::new();
        for (z, zone) in self.zones.iter().enumerate() {
            for (id, cores) in zone {
                for &c in cores {
                    out.push(Group {
                        range: &self.core_range,
                        id: c,
                        cores: vec![c],
                    });
                }
                out.push(Group {
                    range: &self.node_range,
                    id: *id,
                    cores: cores.clone(),
                });
            }
            out.push(Group {
                range: &self.zone_range,
                id: z,
                cores: zone.iter().flat_map(|(_, c)| c).copied().collect(),
            });
        }
        out
    }

    /// The bound for the slots of positions `a..b`.
    fn window(&self, pgs: u64, a: usize, b: usize, old: &[Vec<u64>], t: &PrefixTargets) -> u64 {
        let span = (b - a) as u64;
        // A group's window box from its per-row range and its prefix totals.
        let group = |cost: Cost, range: &[Vec<(u64, u64)>], id: usize, cores: &[usize]| {
            let (ma, mb) = (range[a][id], range[b][id]);
            let (lo_a, hi_a) = prefix_box(pgs, a, range, id, cores, t);
            let (lo_b, hi_b) = prefix_box(pgs, b, range, id, cores, t);
            let row_lo = pgs * mb.0.saturating_sub(ma.1);
            let row_hi = pgs * span.min(mb.1.saturating_sub(ma.0));
            let lo = row_lo.max(lo_b.saturating_sub(hi_a));
            let hi = row_hi.min(hi_b.saturating_sub(lo_a));
            cost.within(lo, hi)
        };
        let zones = self.zones.iter().enumerate().map(|(z, zone)| {
            let nodes = zone.iter().map(|(id, cores)| {
                let leaves = cores.iter().map(|&c| {
                    let leaf = Cost::leaf(old[b][c] - old[a][c]);
                    group(leaf, &self.core_range, c, &[c])
                });
                group(Cost::sum(leaves), &self.node_range, *id, cores)
            });
            let all: Vec<usize> = zone.iter().flat_map(|(_, c)| c).copied().collect();
            group(Cost::sum(nodes), &self.zone_range, z, &all)
        });
        let total = span * pgs;
        Cost::sum(zones).within(total, total).at(total)
    }
}

/// What a valid table's prefix of width `w` holds on the group `cores` (`range` is its
/// per-row spread range, `id` its index there): the targets' sums clamped into what spread
/// allows (spread wins where they contradict it: a heavy core's floor past one slot per row).
fn prefix_box(
    pgs: u64,
    w: usize,
    range: &[Vec<(u64, u64)>],
    id: usize,
    cores: &[usize],
    t: &PrefixTargets,
) -> (u64, u64) {
    let (low, high) = (pgs * range[w][id].0, pgs * range[w][id].1);
    let sum = |v: &[Vec<u64>]| cores.iter().map(|&c| v[w][c]).sum::<u64>();
    let lo = sum(&t.lo).clamp(low, high);
    (lo, sum(&t.hi).clamp(lo, high))
}

/// For `k` fragments of a spread row over domains of `caps` cores, the fewest and the most
/// each domain holds: at most the water-filling maximum L, at least what the others cannot
/// take at L each. Zero caps (unused dense ids) hold nothing.
fn ranges(caps: &[usize], k: usize) -> Vec<(u64, u64)> {
    let used: Vec<usize> = caps.iter().copied().filter(|&c| c > 0).collect();
    let top = waterfill_max(&used, k);
    let room: usize = caps.iter().map(|&c| c.min(top)).sum();
    caps.iter()
        .map(|&c| {
            let most = c.min(top);
            (k.saturating_sub(room - most) as u64, most as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{CoreId, Tier};

    /// Cores of one node in one zone, with weights.
    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Member {
                id: CoreId {
                    node: 1,
                    index: i as u16,
                },
                layout_index: i as u32,
                zone: 0,
                node: 0,
                weight,
            })
            .collect()
    }

    /// The bound from `old`'s table of `slots` to `new`'s table of `now` (both member indices,
    /// row-major, `depth` deep, `pgs` rows).
    fn bound(old: &[Member], slots: &[u32], new: &[Member], now: &[u32], depth: usize) -> u64 {
        let previous = StateTable {
            tier: Tier::Nvme,
            depth,
            members: old.iter().map(|m| (m.id, m.weight)).collect(),
            slots: slots.to_vec(),
        };
        let pgs = (slots.len() / depth) as u32;
        let table = Table::from_slots(Tier::Nvme, new, pgs, depth, 100, now);
        movement_lower_bound(&previous, &table)
    }

    #[test]
    fn an_added_core_takes_its_floor() {
        // A, B hold 2 of 4 rows each; C joins: ⌊4 / 3⌋ = 1 slot, A and B may keep 2 (bound 2).
        let (old, new) = (members(&[1, 1]), members(&[1; 3]));
        assert_eq!(bound(&old, &[0, 1, 0, 1], &new, &[0, 1, 2, 1], 1), 1);
        // A table that leaves C empty is compared with tables as short: nothing need move.
        assert_eq!(bound(&old, &[0, 1, 0, 1], &new, &[0, 1, 0, 1], 1), 0);
    }

    #[test]
    fn a_removed_core_gives_what_it_held() {
        // C held 1 of 4 slots; A and B may keep what they had.
        let (old, new) = (members(&[1; 3]), members(&[1, 1]));
        assert_eq!(bound(&old, &[0, 1, 2, 0], &new, &[0, 1, 1, 0], 1), 1);
        // Twice as deep, C held 3 of (A C) (B C) (C A) (B A). Every row holds both A and B, and
        // each holds 2 of position 0 (its bound), so (C A) becomes (A B): four slots change.
        // The bound counts loads per position, not rows: it sees the three slots C held (A
        // could take position 0 of the third row if B gave up position 0 elsewhere for free).
        let slots = [0, 2, 1, 2, 2, 0, 1, 0];
        let now = [0, 1, 1, 0, 0, 1, 1, 0];
        assert_eq!(bound(&old, &slots, &new, &now, 2), 3);
    }

    #[test]
    fn a_pinned_core_pays_twice() {
        // Two cores, depth 2: every row holds both, so A holds exactly 4 of 8 slots at w = 2.
        // B's weight goes 1 → 2: A's bound at w = 1 is 2 (share 4 / 3), A held 4 there. Two rows
        // must put A at position 1 instead of 0: four slots change, though no prefix alone
        // shows more than two.
        let old = members(&[1, 1]);
        let slots = [0, 1, 0, 1, 0, 1, 0, 1];
        let now = [1, 0, 1, 0, 0, 1, 0, 1];
        assert_eq!(bound(&old, &slots, &members(&[1, 2]), &now, 2), 4);
    }

    #[test]
    fn an_unchanged_tier_moves_nothing() {
        let m = members(&[1, 2, 1]);
        let slots = [0, 1, 1, 2, 2, 0, 1, 0];
        assert_eq!(bound(&m, &slots, &m, &slots, 2), 0);
    }
}
