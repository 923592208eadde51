//! The incremental step: the PG table of a tier for a new layout version, computed from the
//! previous version's table so that as few slots as possible change core. The first table of a
//! cluster is the stateless one of `table`; every later one comes from here, so a table depends
//! on the history of the layout and is stored (`state`).
//!
//! # The rule
//! Positions are settled one after the other, position r for all PGs before r + 1; within a
//! position, PGs in increasing order and cores by member (id) order break every tie. No RNG.
//!
//! 1. **Keep.** Every slot starts on its previous core. Slots of cores that left the tier (or
//!    changed tier) and positions new to the table are empty.
//! 2. **Targets.** For each core and table prefix w (positions 0..w), with s its fair share of the
//!    prefix now and s' before (from the stored weights), the load must end within
//!    `lo ..= hi`:
//!    `lo = min(⌊s⌋, previous load + ⌊max(0, s − s')⌋)` for a new core or one whose weight rose
//!    (a new core: ⌊s⌋), 0 for the others: they need not gain anything (when a core leaves,
//!    the survivors get its slots and no more);
//!    `hi = capacity(w)` (the stateless table's load bound, max(⌈s⌉, ⌊s × (1 + slack)⌋)) if the
//!    core's share shrank, else max(capacity, previous load): only shrinking cores must shed.
//!    So a change that leaves a core's share alone never moves its slots for balance, and a
//!    change that leaves every share alone (another tier, addresses, zone names) moves nothing.
//!    Where spread pins a zone or node to another share than the weights give it (`share`),
//!    `lo` is at most that share and `hi` at least it: a new core of a zone that spread keeps
//!    below its fair share does not chase it, and the cores of a node that spread keeps above
//!    theirs do not shed what spread brings straight back. A core that spread forces to ρ × its
//!    fair share at some prefix has `hi` at least ⌊ρ × s⌋ at every prefix
//!    (`share::forced_ratios`): the prefixes in between are not held to a bound that only
//!    trades inside rows could keep, for a fullest core no less full.
//! 3. **Spread repair.** A slot that is empty, or whose prefix is no longer as spread as the new
//!    layout allows (the water-filling maximum per zone, and per node within each zone, of
//!    `tests/oracle.rs`), takes the core that keeps the most later prefixes spread, then one
//!    short of `lo`, then one with room under `hi` over every later prefix (given the later
//!    slots as they stand), then the neediest (largest s − load), then the smallest id. If that
//!    core has no room, the row's core of the latest later position j that has room moves up
//!    to the slot and a core with room takes j, when the row stays as spread (`trade_in`: one
//!    more slot changes now, where the full core would shed it later by a trade of two).
//!    Before the positions, rows that a node joining their zone left unspread (their slots all
//!    still have a core) are repaired *ahead*, in one move each: positions in order, a row is
//!    repaired at an early position (usually the first copy of the duplicated node) while a
//!    core that must gain is short of its floor over that prefix, rows whose core there is
//!    over its bound first; the others are repaired where they broke. A core still short of
//!    an early floor is then moved earlier in a repaired row (`repair_ahead`, `advance`). The
//!    table is computed with and without this and the one with fewer moves plus slots off
//!    target wins (never one further over a bound).
//! 4. **Balance.** Cores above `hi` give one slot of this position at a time, along the
//!    shortest *chain* (at most `CHAIN_MOVES_MAX` moves, breadth first over cores): the slot of
//!    one row goes to c₁, c₁ hands its slot of another row to c₂, and so on to a core with room,
//!    the cores that must gain first, then the neediest. Then cores below `lo` take one slot at
//!    a time the same way from the least needy core that may give (one above its own `lo`, or
//!    one less needy by more than a slot: leveling). A slot only moves if every prefix of its
//!    row that was spread stays spread. A shedding core no chain frees may give directly to a
//!    core less loaded by more than one slot, or move to a later position of a row whose core
//!    leaves the row (the receiver itself, trading places, or a core that need not gain): two
//!    slots change and both count; the latest such position over all rows and receivers, since
//!    a trade only relieves the prefixes up to it. A core gives a slot it was given in this
//!    rebalance before one it held (that slot moves once either way); a core no chain frees is
//!    not searched again at this position until another core has shed down to its range (only
//!    that makes a new sink). When nothing works the core stays where it is for this position
//!    (spread beats balance, as in the stateless table) and `Stats::stuck` counts it.
//! 5. **Undo.** After the last position, each changed slot goes back to its previous core where
//!    the row stays as spread and every load stays in its range, alone or with the slot that
//!    core holds now in the same row (`undo`): positions settled one at a time leave changes
//!    that later positions made unneeded. Then a row changed in two slots or more goes back to
//!    its previous row but at most one slot where that holds (`undo_rows`): 3 zones × 2 nodes
//!    × 4 cores, a node joins, 7167 → 6817 moves (the bound is 6303).
//!
//! The plan between two versions is the set of slots whose core differs (a slot changed twice
//! is one move; `Stats` counts the steps' changes):
//! the slots of departed cores, the growth of growing cores, the excess of shrunk cores over
//! their bound, and the spread repairs a layout change forces (a new zone that changes the
//! water-filling of every row, say). README.md has the measured figures.

use std::collections::BTreeSet;

use crate::policy::waterfill_max;
use crate::state::StateTable;
use crate::table::{capacity, Member};

const UNSET: u32 = u32::MAX;

/// Slack of the float shares of `share` when rounded to whole fragments.
const SHARE_TOLERANCE: f64 = 1e-6;

/// Most moves in one chain (a slot handed on from core to core across rows, see `balance`).
const CHAIN_MOVES_MAX: usize = 4;

/// Most passes of step 5 over the changed slots (each pass only takes changes back).
const UNDO_PASSES: usize = 4;

/// How good a replacement core is for a slot under repair, best largest: its prefix is spread,
/// later spread prefixes kept, not already later in the row, short of its target, room under
/// its bound, need.
type RepairKey = (bool, u32, bool, bool, bool, i128);

/// What one rebalance of a tier did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Slots that had no core: their core left the tier, or the position is new.
    pub orphaned: u64,
    /// Slots moved because their row's prefix was no longer as spread as possible.
    pub spread_repairs: u64,
    /// Slots moved for balance (step 4), swaps included.
    pub balance_moves: u64,
    /// Of those, moves that swapped two positions of a row (each counts two slots above).
    pub swaps: u64,
    /// Of those, chains: a slot handed on across rows (c₁ gives to c₂ in one row, c₂ to c₃ in
    /// another...), each move counted above.
    pub chains: u64,
    /// Of those, slots given by cores above their bound.
    pub shed: u64,
    /// (position, core) pairs left outside `lo ..= hi` because every move would break spread.
    pub stuck: u64,
    /// Changed slots given back to their previous core at the end (step 5), not counted above
    /// any more; for whole rows (`undo_rows`), how many fewer slots of the row differ.
    pub undone: u64,
}

/// The table of `members` (sorted by id) for `pgs` PGs and `depth` positions, starting from
/// `previous`: member index per slot, row-major, and what it took.
pub(crate) fn rebalance(
    members: &[Member],
    pgs: u32,
    depth: usize,
    slack_permille: u64,
    previous: &StateTable,
) -> (Vec<u32>, Stats) {
    assert!(members.len() >= depth);
    assert_eq!(previous.slots.len(), pgs as usize * previous.depth);
    let run = |ahead: bool| {
        let mut r = Rebalancer::new(members, pgs, depth, slack_permille, previous);
        let repaired = ahead && r.repair_ahead();
        for position in 0..depth {
            r.settle(position);
        }
        assert!(r.slots.iter().all(|&s| s != UNSET));
        r.undo();
        r.undo_rows();
        (repaired, r)
    };
    // With the repairs ahead when they apply (a node joined a zone), and without: the one with
    // the fewer moves plus slots still off target (each would take a move to fix). Ahead wins
    // on every shape measured (a node joins 1 zone × 10 nodes: 4537 moves against 7818; 5
    // zones × 2 nodes: 5975 + 639 off against 6802 + 653; 3 zones × 2 nodes: 7167 + 892 against
    // 8021 + 872), and the greedy ahead it replaced did not (6262 and 7523 + 630 on the first
    // two); the comparison stays, so a shape where it loses costs time, not moves. Both are
    // deterministic.
    let (repaired, ahead) = run(true);
    if !repaired {
        return (ahead.slots, ahead.stats);
    }
    let (_, plain) = run(false);
    let key = |r: &Rebalancer| {
        let moved = r
            .slots
            .iter()
            .zip(&r.carried)
            .filter(|(a, b)| a != b)
            .count();
        r.off_target() + moved as u64
    };
    // Never a core further over its bound than without: balance beats movement.
    let worse = ahead.worst_excess() > plain.worst_excess();
    let best = if !worse && key(&ahead) <= key(&plain) {
        ahead
    } else {
        plain
    };
    (best.slots, best.stats)
}

/// The water-filling spread check of whole rows, with scratch counters.
struct SpreadCheck<'a> {
    members: &'a [Member],
    /// Max fragments in one zone for a prefix of w, w = 0..=depth.
    zone_max: Vec<u8>,
    /// Per zone, max fragments on one node for k fragments in the zone, k = 0..=cores in zone.
    node_max: Vec<Vec<u8>>,
    zone_count: Vec<u8>,
    node_count: Vec<u8>,
    zone_node_top: Vec<u8>,
}

impl<'a> SpreadCheck<'a> {
    fn new(members: &'a [Member], depth: usize) -> SpreadCheck<'a> {
        let (zones, nodes) = crate::table::domain_counts(members);
        let mut zone_cores = vec![0usize; zones];
        let mut node_cores = vec![0usize; nodes];
        for m in members {
            zone_cores[m.zone as usize] += 1;
            node_cores[m.node as usize] += 1;
        }
        let caps: Vec<usize> = zone_cores.iter().copied().filter(|&c| c > 0).collect();
        let zone_max = (0..=depth).map(|w| waterfill_max(&caps, w) as u8).collect();
        let node_max = (0..zones)
            .map(|z| {
                let mut in_zone: Vec<(u32, usize)> = members
                    .iter()
                    .filter(|m| m.zone as usize == z)
                    .map(|m| (m.node, node_cores[m.node as usize]))
                    .collect();
                in_zone.dedup();
                let caps: Vec<usize> = in_zone.iter().map(|&(_, c)| c).collect();
                (0..=zone_cores[z].min(depth))
                    .map(|k| waterfill_max(&caps, k) as u8)
                    .collect()
            })
            .collect();
        SpreadCheck {
            members,
            zone_max,
            node_max,
            zone_count: vec![0; zones],
            node_count: vec![0; nodes],
            zone_node_top: vec![0; zones],
        }
    }

    /// Bit i set: the prefix of `row` of width i + 1 holds distinct cores and is as spread as
    /// the tier allows. An empty slot or a repeated core ends the checked part.
    fn mask(&mut self, row: &[u32]) -> u32 {
        let mut mask = 0u32;
        let (mut top, mut bad_zones) = (0u8, 0usize);
        let mut seen = 0;
        for (i, &m) in row.iter().enumerate() {
            if m == UNSET || row[..i].contains(&m) {
                break;
            }
            seen = i + 1;
            let member = &self.members[m as usize];
            let (z, n) = (member.zone as usize, member.node as usize);
            let before = self.zone_count[z] as usize;
            let was_ok = self.zone_node_top[z] == self.node_max[z][before];
            self.zone_count[z] += 1;
            self.node_count[n] += 1;
            top = top.max(self.zone_count[z]);
            self.zone_node_top[z] = self.zone_node_top[z].max(self.node_count[n]);
            let now_ok = self.zone_node_top[z] == self.node_max[z][before + 1];
            match (was_ok, now_ok) {
                (true, false) => bad_zones += 1,
                (false, true) => bad_zones -= 1,
                _ => {}
            }
            if top == self.zone_max[i + 1] && bad_zones == 0 {
                mask |= 1 << i;
            }
        }
        for &m in &row[..seen] {
            let member = &self.members[m as usize];
            self.zone_count[member.zone as usize] = 0;
            self.zone_node_top[member.zone as usize] = 0;
            self.node_count[member.node as usize] = 0;
        }
        mask
    }
}

struct Rebalancer<'a> {
    members: &'a [Member],
    /// The previous table on the new members (`carry_over`): what a slot held before.
    carried: Vec<u32>,
    pgs: usize,
    depth: usize,
    total_weight: i128,
    /// Per prefix w = 0..=depth and member: ⌊fair share⌋, the growth of the share to gain
    /// (⌊max(0, s − s')⌋), the load bound, the previous load.
    share_floor: Vec<Vec<u64>>,
    growth: Vec<Vec<u64>>,
    cap: Vec<Vec<u64>>,
    prev_load: Vec<Vec<u64>>,
    /// Per member: its share shrank (it must shed down to its bound), grew (it must gain).
    shrank: Vec<bool>,
    grew: Vec<bool>,
    slots: Vec<u32>,
    /// Per prefix w = 0..=depth and member: the load of the current slots.
    current: Vec<Vec<u64>>,
    /// Per row, its spread mask (`SpreadCheck::mask`), kept in step with `slots`.
    row_mask: Vec<u32>,
    /// Per dense node id, its members (increasing).
    node_members: Vec<Vec<u32>>,
    /// Loads of the settled positions.
    settled: Vec<u64>,
    check: SpreadCheck<'a>,
    stats: Stats,
}

/// The previous table mapped onto the new members: slots (empty where the core left or the
/// position is new), previous loads per prefix w = 0..=depth, and the number of empty slots.
pub(crate) fn carry_over(
    members: &[Member],
    pgs: usize,
    depth: usize,
    previous: &StateTable,
) -> (Vec<u32>, Vec<Vec<u64>>, u64) {
    let to_new: Vec<u32> = previous
        .members
        .iter()
        .map(|(id, _)| {
            members
                .binary_search_by_key(id, |m| m.id)
                .map_or(UNSET, |i| i as u32)
        })
        .collect();
    let mut slots = vec![UNSET; pgs * depth];
    let mut orphaned = 0;
    let mut prev_load = vec![vec![0u64; members.len()]; depth + 1];
    for pg in 0..pgs {
        for r in 0..depth {
            let m = if r < previous.depth {
                to_new[previous.slots[pg * previous.depth + r] as usize]
            } else {
                UNSET
            };
            slots[pg * depth + r] = m;
            if m == UNSET {
                orphaned += 1;
            } else {
                prev_load[r + 1][m as usize] += 1;
            }
        }
    }
    for w in 1..=depth {
        let (before, from) = prev_load.split_at_mut(w);
        for (load, earlier) in from[0].iter_mut().zip(&before[w - 1]) {
            *load += earlier;
        }
    }
    (slots, prev_load, orphaned)
}

/// Step 2's inputs per prefix w = 0..=depth and member: ⌊s⌋, ⌊max(0, s − s')⌋ and the load
/// bound; per member: whether its share shrank, and whether it must gain.
struct Targets {
    share_floor: Vec<Vec<u64>>,
    growth: Vec<Vec<u64>>,
    cap: Vec<Vec<u64>>,
    shrank: Vec<bool>,
    grew: Vec<bool>,
}

fn targets(
    members: &[Member],
    pgs: u32,
    depth: usize,
    slack_permille: u64,
    previous: &StateTable,
) -> Targets {
    let n = members.len();
    let prev_weight: Vec<u64> = members
        .iter()
        .map(|m| {
            previous
                .members
                .binary_search_by_key(&m.id, |(id, _)| *id)
                .map_or(0, |i| u64::from(previous.members[i].1))
        })
        .collect();
    let prev_total: u64 = previous.members.iter().map(|(_, w)| u64::from(*w)).sum();
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let mut t = Targets {
        share_floor: vec![vec![0u64; n]; depth + 1],
        growth: vec![vec![0u64; n]; depth + 1],
        cap: vec![vec![0u64; n]; depth + 1],
        shrank: vec![false; n],
        grew: vec![false; n],
    };
    let (total_now, total_before) = (u128::from(total), u128::from(prev_total.max(1)));
    let spread = crate::share::spread_shares(members, pgs, depth);
    let forced = crate::share::forced_ratios(members, pgs, &spread);
    for (w, spread) in spread.iter().enumerate().skip(1) {
        for (c, m) in members.iter().enumerate() {
            let scale = w as u128 * u128::from(pgs);
            let (wt, wp) = (u128::from(m.weight), u128::from(prev_weight[c]));
            t.share_floor[w][c] = (scale * wt / total_now) as u64;
            // s − s' = scale × (wt × W' − wp × W) / (W × W').
            let (now, before) = (wt * total_before, wp * total_now);
            if now > before {
                t.growth[w][c] = (scale * (now - before) / (total_now * total_before)) as u64;
            }
            t.shrank[c] = now < before;
            // Only a new core or one whose own weight rose must gain: the others whose share
            // grows (a core left) get the departed core's slots, no more.
            t.grew[c] = now > before && wt > wp;
            // What spread leaves the core: a growing core need not gain past it, and any core
            // may keep up to it over its bound (see `share`). The tolerance keeps an exact
            // integer share from rounding to the next integer.
            let pinned = spread[c];
            let below = (pinned + SHARE_TOLERANCE).floor() as u64;
            let above = (pinned - SHARE_TOLERANCE).ceil().max(0.0) as u64;
            t.share_floor[w][c] = t.share_floor[w][c].min(below);
            // A core that spread forces over its fair share at some prefix may carry the same
            // ratio at every prefix (see `share::forced_ratios`), rounded down like the bound:
            // a forced ratio of exactly 1 + slack allows no more than the bound.
            let fair = (w as f64) * f64::from(pgs) * f64::from(m.weight) / total as f64;
            let carried = (forced[c] * fair + SHARE_TOLERANCE).floor() as u64;
            t.cap[w][c] = capacity(w, pgs, m.weight, total, slack_permille)
                .max(above)
                .max(carried);
        }
    }
    t
}

/// The load range every prefix ends in, per prefix w = 0..=depth and member, as the rebalance
/// enforces it (`Rebalancer::range` per position sums to this): at least ⌊s⌋ (or the pinned
/// share, or the previous load plus the growth of the share) for a core that must gain, at
/// most its bound. `bound` uses it as the definition of a valid table.
pub(crate) fn prefix_targets(
    members: &[Member],
    pgs: u32,
    depth: usize,
    slack_permille: u64,
    previous: &StateTable,
    prev_load: &[Vec<u64>],
) -> crate::bound::PrefixTargets {
    let t = targets(members, pgs, depth, slack_permille, previous);
    let n = members.len();
    let mut lo = vec![vec![0u64; n]; depth + 1];
    let mut hi = vec![vec![0u64; n]; depth + 1];
    for w in 1..=depth {
        for c in 0..n {
            let bound = if t.shrank[c] {
                t.cap[w][c]
            } else {
                t.cap[w][c].max(prev_load[w][c])
            };
            if t.grew[c] {
                lo[w][c] = t.share_floor[w][c].min(prev_load[w][c] + t.growth[w][c]);
            }
            hi[w][c] = bound.max(lo[w][c]);
        }
    }
    crate::bound::PrefixTargets { lo, hi }
}

impl<'a> Rebalancer<'a> {
    fn new(
        members: &'a [Member],
        pgs: u32,
        depth: usize,
        slack_permille: u64,
        previous: &StateTable,
    ) -> Rebalancer<'a> {
        let (slots, prev_load, orphaned) = carry_over(members, pgs as usize, depth, previous);
        let t = targets(members, pgs, depth, slack_permille, previous);
        let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
        let mut check = SpreadCheck::new(members, depth);
        let row_mask = slots
            .chunks_exact(depth)
            .map(|row| check.mask(row))
            .collect();
        let mut node_members = vec![Vec::new(); crate::table::domain_counts(members).1];
        for (i, m) in members.iter().enumerate() {
            node_members[m.node as usize].push(i as u32);
        }
        Rebalancer {
            members,
            carried: slots.clone(),
            pgs: pgs as usize,
            depth,
            total_weight: i128::from(total),
            share_floor: t.share_floor,
            growth: t.growth,
            cap: t.cap,
            current: prev_load.clone(),
            prev_load,
            shrank: t.shrank,
            grew: t.grew,
            slots,
            row_mask,
            node_members,
            settled: vec![0; members.len()],
            check,
            stats: Stats {
                orphaned,
                ..Stats::default()
            },
        }
    }

    /// s − load of member `c` for prefix `w` with `load` fragments, in units of 1 / W.
    fn need(&self, c: usize, w: usize, load: u64) -> i128 {
        let share = (w * self.pgs) as i128 * i128::from(self.members[c].weight);
        share - i128::from(load) * self.total_weight
    }

    /// The load range of member `c` at `position` (step 2 made per position): at least what
    /// its share's growth asks (never regaining what it gave at earlier positions), at most its
    /// bound, or what it held here before if its share did not shrink.
    fn range(&self, c: usize, position: usize) -> (u64, u64) {
        let w = position + 1;
        let settled = self.settled[c];
        let had_here = self.prev_load[w][c] - self.prev_load[position][c];
        let gained = settled.saturating_sub(self.prev_load[position][c]);
        let lo = if self.grew[c] {
            let want = (had_here + self.growth[w][c]).saturating_sub(gained);
            self.share_floor[w][c].saturating_sub(settled).min(want)
        } else {
            0
        };
        let hi = self.bound(c, w).saturating_sub(settled);
        (lo, hi.max(lo))
    }

    /// The load bound of member `c` over the prefix of width `w`.
    fn bound(&self, c: usize, w: usize) -> u64 {
        if self.shrank[c] {
            self.cap[w][c]
        } else {
            self.cap[w][c].max(self.prev_load[w][c])
        }
    }

    /// How many more slots at `position` member `c` may take without any prefix from
    /// `position + 1` on exceeding its bound, given the current later slots.
    fn headroom(&self, c: usize, position: usize) -> i64 {
        (position + 1..=self.depth)
            .map(|w| self.bound(c, w) as i64 - self.current[w][c] as i64)
            .min()
            .expect("position < depth")
    }

    /// Sets a slot, keeping `current` in step.
    fn set(&mut self, pg: usize, position: usize, m: u32) {
        let slot = &mut self.slots[pg * self.depth + position];
        let old = std::mem::replace(slot, m);
        for w in position + 1..=self.depth {
            if old != UNSET {
                self.current[w][old as usize] -= 1;
            }
            if m != UNSET {
                self.current[w][m as usize] += 1;
            }
        }
        let start = pg * self.depth;
        self.row_mask[pg] = self.check.mask(&self.slots[start..start + self.depth]);
    }

    fn row(&self, pg: usize) -> &[u32] {
        &self.slots[pg * self.depth..(pg + 1) * self.depth]
    }

    /// The floor of member `c` over the prefix of width `w` (0 unless it must gain).
    fn floor(&self, c: usize, w: usize) -> u64 {
        if self.grew[c] {
            self.share_floor[w][c].min(self.prev_load[w][c] + self.growth[w][c])
        } else {
            0
        }
    }

    /// Step 3 ahead of the positions, earliest deadline first (true if it repaired a row). A
    /// row whose slots all have a core but whose prefix of i + 1 is no longer spread (a node
    /// joined its zone) is fixed in one move by a core that must gain at a position j ≤ i where
    /// that makes the row spread up to i + 1 and keeps every spread prefix (usually the first
    /// copy of the duplicated node, or i itself). Positions are taken in order, and a row is
    /// repaired at j only while a core that must gain is still short of its floor over the
    /// prefix j + 1, rows whose core at j is over its bound first (the move sheds it too). The
    /// rest are left to step 3, which repairs them where they broke: one move either way.
    /// Without the floors, the growing cores collect their slots where duplicates sit, late in
    /// the rows, and trade them forward two moves each (1 zone × 10 nodes, a node joins: 1.75×
    /// the least movement). Taking the row where the core is furthest below its floor, as
    /// this did before, spent the rows whose duplicate sits early on later prefixes that any
    /// row could fill, and `advance` then paid two moves per row for the early floors: 6081
    /// moves where 4537 now do (the lower bound is 4460).
    fn repair_ahead(&mut self) -> bool {
        let gaining = self.gaining();
        if gaining.is_empty() {
            return false;
        }
        let full = if self.depth == 32 {
            u32::MAX
        } else {
            (1u32 << self.depth) - 1
        };
        // Broken rows whose slots all have a core: (pg, first broken position).
        let mut broken: Vec<(usize, usize)> = (0..self.pgs)
            .filter(|&pg| self.row_mask[pg] != full && !self.row(pg).contains(&UNSET))
            .map(|pg| (pg, self.row_mask[pg].trailing_ones() as usize))
            .collect();
        let mut repaired = Vec::new();
        let mut trial = [UNSET; crate::limits::WIDTH_MAX];
        for j in 0..self.depth {
            let over = |this: &Self, m: u32| -> i64 {
                (j + 1..=this.depth)
                    .map(|w| this.current[w][m as usize] as i64 - this.bound(m as usize, w) as i64)
                    .max()
                    .expect("j < depth")
            };
            let mut order: Vec<(std::cmp::Reverse<i64>, usize)> = broken
                .iter()
                .enumerate()
                .filter(|(_, &(_, i))| i >= j)
                .map(|(k, &(pg, _))| (std::cmp::Reverse(over(self, self.row(pg)[j]).max(0)), k))
                .collect();
            order.sort_unstable();
            let mut done = vec![false; broken.len()];
            for (_, k) in order {
                let (pg, i) = broken[k];
                let (mask, need) = (self.row_mask[pg], (1u32 << (i + 1)) - 1);
                let mut best: Option<(i64, usize)> = None;
                for c in gaining.iter().map(|&c| c as usize) {
                    let short = self.floor(c, j + 1) as i64 - self.current[j + 1][c] as i64;
                    let room = (j + 1..=self.depth)
                        .map(|w| self.bound(c, w) as i64 - self.current[w][c] as i64)
                        .min()
                        .expect("j < depth");
                    if short <= 0 || room <= 0 || best.is_some_and(|(s, _)| s >= short) {
                        continue;
                    }
                    if self.row(pg).contains(&(c as u32)) {
                        continue;
                    }
                    trial[..self.depth].copy_from_slice(self.row(pg));
                    trial[j] = c as u32;
                    let after = self.check.mask(&trial[..self.depth]);
                    if after & need == need && after & mask == mask {
                        best = Some((short, c));
                    }
                }
                if let Some((_, c)) = best {
                    self.set(pg, j, c as u32);
                    self.stats.spread_repairs += 1;
                    repaired.push((j, pg, i, c));
                    done[k] = true;
                }
            }
            let mut k = 0;
            broken.retain(|_| {
                k += 1;
                !done[k - 1]
            });
        }
        let any = !repaired.is_empty();
        self.advance(repaired);
        any
    }

    /// Step 5, whole rows: a row changed in two slots or more goes back to its previous cores
    /// but at most one slot, where that keeps the row as spread and every load in its range:
    /// the previous row itself, else with one of its changed slots kept, else with one slot on
    /// another core (the least a repair takes). Trades settled position by position leave
    /// rows that a single move would have served once the loads are known.
    fn undo_rows(&mut self) {
        let gaining = self.gaining();
        for pg in 0..self.pgs {
            let start = pg * self.depth;
            let was: Vec<u32> = self.carried[start..start + self.depth].to_vec();
            let now: Vec<u32> = self.row(pg).to_vec();
            let differ = |row: &[u32]| row.iter().zip(&was).filter(|(a, b)| a != b).count();
            let before = differ(&now);
            if before < 2 || was.contains(&UNSET) {
                continue;
            }
            let found = row_candidates(&was, &now, &gaining).find_map(|target| {
                let edits: Vec<(usize, u32)> = (0..target.len())
                    .filter(|&r| now[r] != target[r])
                    .map(|r| (r, target[r]))
                    .collect();
                self.may_change(pg, &edits).then_some(edits)
            });
            if let Some(edits) = found {
                for &(position, m) in &edits {
                    self.set(pg, position, m);
                }
                self.stats.undone += (before - differ(self.row(pg))) as u64;
            }
        }
    }

    /// The members that must gain (a new core, or one whose weight rose), in member order.
    fn gaining(&self) -> Vec<u32> {
        (0..self.members.len() as u32)
            .filter(|&c| self.grew[c as usize])
            .collect()
    }

    /// Step 5: a changed slot goes back to its previous core where the row stays as spread
    /// and no load leaves its range: alone, or with the slot its previous core now holds in
    /// the same row (which takes the slot's current core: a trade taken back, or made one move
    /// instead of two). The positions are settled one at a time, so a slot changed early can
    /// become unneeded by what later positions did (a core that shed at position 3 and was
    /// given slots back at 4).
    fn undo(&mut self) {
        for _ in 0..UNDO_PASSES {
            let before = self.stats.undone;
            for pg in 0..self.pgs {
                for r in 0..self.depth {
                    let start = pg * self.depth;
                    let (now, was) = (self.slots[start + r], self.carried[start + r]);
                    if now == was || was == UNSET {
                        continue;
                    }
                    let other = self.row(pg).iter().position(|&m| m == was);
                    let changes = match other {
                        None => vec![(r, was)],
                        Some(j) => vec![(r, was), (j, now)],
                    };
                    if self.may_change(pg, &changes) {
                        for &(position, m) in &changes {
                            self.set(pg, position, m);
                        }
                        let back = changes
                            .iter()
                            .filter(|&&(position, m)| self.carried[start + position] == m)
                            .count();
                        self.stats.undone += back as u64;
                    }
                }
            }
            if self.stats.undone == before {
                break;
            }
        }
    }

    /// Whether setting `changes` (position, core) in `pg`'s row keeps every spread prefix of
    /// the row and every load within its range over every prefix (or no further out of it).
    fn may_change(&mut self, pg: usize, changes: &[(usize, u32)]) -> bool {
        let mut trial = [UNSET; crate::limits::WIDTH_MAX];
        trial[..self.depth].copy_from_slice(self.row(pg));
        let mut delta: Vec<(u32, usize, i64)> = Vec::new();
        for &(position, m) in changes {
            delta.push((trial[position], position, -1));
            delta.push((m, position, 1));
            trial[position] = m;
        }
        let before = self.row_mask[pg];
        if self.check.mask(&trial[..self.depth]) & before != before {
            return false;
        }
        let mut cores: Vec<u32> = delta.iter().map(|&(c, _, _)| c).collect();
        cores.sort_unstable();
        cores.dedup();
        cores.iter().all(|&c| {
            (1..=self.depth).all(|w| {
                let d: i64 = delta
                    .iter()
                    .filter(|&&(m, position, _)| m == c && position < w)
                    .map(|&(_, _, d)| d)
                    .sum();
                let load = self.current[w][c as usize] as i64;
                let (lo, hi) = (
                    self.floor(c as usize, w) as i64,
                    self.bound(c as usize, w) as i64,
                );
                d == 0 || (d > 0 && load + d <= hi) || (d < 0 && load + d >= lo)
            })
        })
    }

    /// The most any member is over its bound, over the prefixes.
    fn worst_excess(&self) -> u64 {
        (1..=self.depth)
            .flat_map(|w| (0..self.members.len()).map(move |c| (w, c)))
            .map(|(w, c)| self.current[w][c].saturating_sub(self.bound(c, w)))
            .max()
            .unwrap_or(0)
    }

    /// Over the worst prefix, the slots under the floors plus the slots over the bounds.
    fn off_target(&self) -> u64 {
        let n = self.members.len();
        (1..=self.depth)
            .map(|w| {
                (0..n)
                    .map(|c| {
                        let load = self.current[w][c];
                        self.floor(c, w).saturating_sub(load)
                            + load.saturating_sub(self.bound(c, w).max(self.floor(c, w)))
                    })
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    /// The second half of `repair_ahead`: the positions where rows can be repaired in one move
    /// are where the duplicates sit, late in the row, and can leave a growing core short of
    /// its floor over the early prefixes. A repaired row, latest first, then takes the core at
    /// the earliest position j' before its repair where the core is short, and the row's old
    /// core of j' fills the position that broke spread instead: two moves for the row where
    /// one repaired it, one more than before, where the floor would otherwise cost a trade of
    /// two (1 zone × 10 nodes, a node joins: 1565 slots short at w = 10 without this).
    fn advance(&mut self, mut repaired: Vec<(usize, usize, usize, usize)>) {
        repaired.sort_unstable_by_key(|&(j, pg, _, _)| (std::cmp::Reverse(j), pg));
        let mut trial = [UNSET; crate::limits::WIDTH_MAX];
        for (j, pg, i, c) in repaired {
            let short = |this: &Self, w: usize| this.current[w][c] < this.floor(c, w);
            let Some(first) = (1..=j).find(|&w| short(self, w)) else {
                continue;
            };
            let mut row = [UNSET; crate::limits::WIDTH_MAX];
            row[..self.depth].copy_from_slice(self.row(pg));
            let original = row[j];
            debug_assert_eq!(original, c as u32);
            for to in first - 1..j {
                trial[..self.depth].copy_from_slice(&row[..self.depth]);
                let moved = trial[to];
                trial[j] = UNSET;
                trial[to] = c as u32;
                trial[i] = moved;
                if trial[..self.depth].contains(&UNSET) {
                    continue;
                }
                let need = (1u32 << (i + 1)) - 1;
                let mask = self.check.mask(&trial[..self.depth]);
                if mask & need == need && mask & self.row_mask[pg] == self.row_mask[pg] {
                    self.set(pg, to, c as u32);
                    self.set(pg, i, moved);
                    self.stats.spread_repairs += 1;
                    break;
                }
            }
        }
    }

    /// Steps 3 and 4 for one position.
    fn settle(&mut self, position: usize) {
        let n = self.members.len();
        let mut load = vec![0u64; n];
        for pg in 0..self.pgs {
            let m = self.slots[pg * self.depth + position];
            if m != UNSET {
                load[m as usize] += 1;
            }
        }
        for pg in 0..self.pgs {
            self.repair(pg, position, &mut load);
        }
        self.balance(position, &mut load);
        for (s, l) in self.settled.iter_mut().zip(&load) {
            *s += l;
        }
    }

    /// Step 3 for one slot: replace it if empty or no longer spread.
    fn repair(&mut self, pg: usize, position: usize, load: &mut [u64]) {
        let bit = 1u32 << position;
        let mut row = [UNSET; crate::limits::WIDTH_MAX];
        row[..self.depth].copy_from_slice(self.row(pg));
        let row = &mut row[..self.depth];
        let current = row[position];
        if current != UNSET && self.check.mask(row) & bit != 0 {
            return;
        }
        let w = position + 1;
        let later = !((bit << 1) - 1);
        let mut best: Option<(RepairKey, u32, Option<usize>)> = None;
        for c in 0..self.members.len() as u32 {
            if row[..position].contains(&c) {
                continue;
            }
            let dup = row[position + 1..].iter().position(|&m| m == c);
            let mut trial = [UNSET; crate::limits::WIDTH_MAX];
            trial[..self.depth].copy_from_slice(row);
            trial[position] = c;
            if let Some(j) = dup {
                trial[position + 1 + j] = UNSET;
            }
            let mask = self.check.mask(&trial[..self.depth]);
            let cu = c as usize;
            let lo = self.range(cu, position).0;
            let key = (
                mask & bit != 0,
                (mask & later).count_ones(),
                dup.is_none(),
                load[cu] < lo,
                self.headroom(cu, position) > 0,
                self.need(cu, w, self.settled[cu] + load[cu]),
            );
            // Strictly better only: the smallest member wins ties.
            if best.as_ref().is_none_or(|(k, _, _)| key > *k) {
                best = Some((key, c, dup.map(|j| position + 1 + j)));
            }
        }
        let (key, c, dup) = best.expect("a row always has a free core: members >= depth");
        if current != UNSET {
            load[current as usize] -= 1;
            self.stats.spread_repairs += 1;
        }
        // (An empty slot was counted as orphaned when its core left.)
        if !key.4 && dup.is_none() {
            if let Some((j, x, f)) = self.trade_in(position, row, (key.0, key.1)) {
                load[x as usize] += 1;
                self.set(pg, position, x);
                self.set(pg, j, f);
                self.stats.balance_moves += 1;
                self.stats.swaps += 1;
                return;
            }
        }
        load[c as usize] += 1;
        if let Some(j) = dup {
            self.set(pg, j, UNSET);
            self.stats.orphaned += 1;
        }
        self.set(pg, position, c);
    }

    /// For a slot under repair whose best core has no room under its bound: the row's core x
    /// of a later position j moves up to it and a core f with room takes j (one more slot
    /// changes), if both have room and the row stays as spread as with the best core
    /// (`spread`: the slot's prefix spread, and how many later prefixes are). The latest j
    /// first (it relieves the most prefixes), then the neediest f. Filling the slot with the
    /// full core instead makes it shed later, by a trade of two slots (3 zones × 2 nodes × 4
    /// cores, a core removed: the node's other cores refill its slots and are pinned at their
    /// bound).
    fn trade_in(
        &mut self,
        position: usize,
        row: &[u32],
        spread: (bool, u32),
    ) -> Option<(usize, u32, u32)> {
        let bit = 1u32 << position;
        let later = !((bit << 1) - 1);
        let mut best: Option<((usize, i128), u32, u32)> = None;
        for j in (position + 1..self.depth).rev() {
            let x = row[j];
            if x == UNSET || self.headroom(x as usize, position) <= 0 {
                continue;
            }
            if best.is_some() {
                break;
            }
            for f in 0..self.members.len() as u32 {
                if row.contains(&f) || self.headroom(f as usize, j) <= 0 {
                    continue;
                }
                let mut trial = [UNSET; crate::limits::WIDTH_MAX];
                trial[..self.depth].copy_from_slice(row);
                trial[position] = x;
                trial[j] = f;
                let mask = self.check.mask(&trial[..self.depth]);
                if (mask & bit != 0, (mask & later).count_ones()) < spread {
                    continue;
                }
                let need = self.need(f as usize, j + 1, self.current[j + 1][f as usize]);
                if best.as_ref().is_none_or(|(k, _, _)| (j, need) > *k) {
                    best = Some(((j, need), x, f));
                }
            }
        }
        best.map(|((j, _), x, f)| (j, x, f))
    }

    /// Step 4 for one position.
    fn balance(&mut self, position: usize, load: &mut [u64]) {
        let n = self.members.len();
        let (lo, hi): (Vec<u64>, Vec<u64>) = (0..n).map(|c| self.range(c, position)).unzip();
        let mut at: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
        for pg in 0..self.pgs {
            at[self.slots[pg * self.depth + position] as usize].insert(pg as u32);
        }
        self.shed(position, &lo, &hi, &mut at, load);
        self.gain(position, &lo, &mut at, load);
    }

    /// Step 4, first half: cores above their range give slots, the most loaded first, each
    /// along the shortest chain to a core with room, preferring the cores that must gain (each
    /// such slot is one the growing cores would otherwise take from someone else).
    fn shed(
        &mut self,
        position: usize,
        lo: &[u64],
        hi: &[u64],
        at: &mut [BTreeSet<u32>],
        load: &mut [u64],
    ) {
        let n = self.members.len();
        let w = position + 1;
        let mut stuck = vec![false; n];
        // Per core, the count of cores that had shed down to their range when no chain from it
        // was found (a chain needs a sink, and only a core leaving the shedders can become
        // one): until that count grows, the search is not repeated and the core trades.
        let (mut settled_down, mut no_chain) = (0usize, vec![None; n]);
        while let Some(d) = (0..n)
            .filter(|&d| !stuck[d] && load[d] > hi[d])
            .min_by_key(|&d| (self.need(d, w, self.settled[d] + load[d]), d))
        {
            let sink = |this: &Self, c: usize| {
                (this.headroom(c, position) > 0).then(|| {
                    let need = this.need(c, w, this.settled[c] + load[c]);
                    (load[c] < lo[c], this.grew[c], need)
                })
            };
            let chain = if no_chain[d] == Some(settled_down) {
                None
            } else {
                self.chain_from(position, d, at, sink)
            };
            if chain.is_none() {
                no_chain[d] = Some(settled_down);
            }
            if let Some(chain) = chain {
                self.apply(position, &chain, at, load);
                self.stats.shed += 1;
                settled_down += usize::from(load[d] <= hi[d]);
            } else if self.shed_fallback(position, d, lo, at, load) {
                settled_down += usize::from(load[d] <= hi[d]);
                self.stats.shed += 1;
            } else {
                stuck[d] = true;
                self.stats.stuck += 1;
            }
        }
    }

    /// When no chain reaches a core with room: trade places with a later position of a row
    /// (two slots), or level with a core less loaded by more than one slot.
    fn shed_fallback(
        &mut self,
        position: usize,
        d: usize,
        lo: &[u64],
        at: &mut [BTreeSet<u32>],
        load: &mut [u64],
    ) -> bool {
        let n = self.members.len();
        let w = position + 1;
        let need = |this: &Self, c: usize, l: &[u64]| this.need(c, w, this.settled[c] + l[c]);
        let mut receivers: Vec<usize> = (0..n)
            .filter(|&c| c != d && self.headroom(c, position) > 0)
            .collect();
        receivers.sort_by_key(|&c| {
            let key = (load[c] < lo[c], self.grew[c], need(self, c, load));
            (std::cmp::Reverse(key), c)
        });
        let nd = need(self, d, load);
        let mut leveling: Vec<usize> = (0..n)
            .filter(|&c| {
                c != d
                    && self.headroom(c, position) <= 0
                    && need(self, c, load) > nd + self.total_weight
            })
            .collect();
        leveling.sort_by_key(|&c| (std::cmp::Reverse(need(self, c, load)), c));
        receivers.extend(leveling);
        self.move_one(position, &[d], &receivers, at, load, true)
    }

    /// Step 4, second half: cores below their range take one slot at a time, the neediest
    /// first, along the shortest chain from the least needy core that may give (one above its
    /// own floor, or less needy by more than one slot: leveling). Each move lowers Σ need² or a
    /// receiver's shortfall, so this ends; the bound is a backstop.
    fn gain(&mut self, position: usize, lo: &[u64], at: &mut [BTreeSet<u32>], load: &mut [u64]) {
        let n = self.members.len();
        let w = position + 1;
        let mut stuck = vec![false; n];
        for _ in 0..2 * self.pgs {
            let Some(c) = (0..n)
                .filter(|&c| !stuck[c] && load[c] < lo[c] && self.headroom(c, position) > 0)
                .max_by_key(|&c| {
                    let need = self.need(c, w, self.settled[c] + load[c]);
                    (need, std::cmp::Reverse(c))
                })
            else {
                break;
            };
            let nc = self.need(c, w, self.settled[c] + load[c]);
            let donor = |this: &Self, d: usize| {
                let nd = this.need(d, w, this.settled[d] + load[d]);
                let may =
                    load[d] > 0 && (nd + this.total_weight < nc || (load[d] > lo[d] && nd < nc));
                may.then_some(std::cmp::Reverse(nd))
            };
            if let Some(chain) = self.chain_to(position, c, donor) {
                self.apply(position, &chain, at, load);
            } else {
                stuck[c] = true;
                self.stats.stuck += 1;
            }
        }
    }

    /// The PGs of `pgs` (each holding some core at `position`), the ones whose slot there
    /// changed already first: a core that sheds gives back a slot it was just given (that slot
    /// moves once either way) before one it held, which would make two moves (3 zones × 2
    /// nodes × 4 cores, a core removed: the node's cores refilled its slots and shed their own).
    fn changed_first(&self, position: usize, pgs: &BTreeSet<u32>) -> Vec<u32> {
        let index = |pg: u32| pg as usize * self.depth + position;
        let (mut changed, kept): (Vec<u32>, Vec<u32>) = pgs
            .iter()
            .partition(|&&pg| self.slots[index(pg)] != self.carried[index(pg)]);
        changed.extend(kept);
        changed
    }

    /// Makes the moves of a chain: each (pg, core) puts `core` at `position` of `pg`.
    fn apply(
        &mut self,
        position: usize,
        chain: &[(u32, u32)],
        at: &mut [BTreeSet<u32>],
        load: &mut [u64],
    ) {
        for &(pg, to) in chain {
            let from = self.slots[pg as usize * self.depth + position];
            self.set(pg as usize, position, to);
            at[from as usize].remove(&pg);
            at[to as usize].insert(pg);
            load[from as usize] -= 1;
            load[to as usize] += 1;
            self.stats.balance_moves += 1;
        }
        self.stats.chains += u64::from(chain.len() > 1);
    }

    /// The shortest chain of moves at `position` that takes one slot off `d` and gives one to
    /// a sink (`sink` gives its key, best largest, or None), the others handing one on:
    /// d's slot in some row goes to c₁, c₁'s slot in another row to c₂, and so on, every row
    /// keeping its spread prefixes. Breadth first over cores, at most `CHAIN_MOVES_MAX` moves;
    /// rows and cores are visited in increasing order, so the chain is deterministic.
    fn chain_from<K: Ord>(
        &mut self,
        position: usize,
        d: usize,
        at: &[BTreeSet<u32>],
        sink: impl Fn(&Self, usize) -> Option<K>,
    ) -> Option<Vec<(u32, u32)>> {
        let n = self.members.len();
        let mut parent: Vec<(u32, u32)> = vec![(UNSET, UNSET); n];
        let mut visited = vec![false; n];
        let mut unvisited: Vec<usize> = self.node_members.iter().map(Vec::len).collect();
        visited[d] = true;
        unvisited[self.members[d].node as usize] -= 1;
        let mut frontier = vec![d as u32];
        for _ in 0..CHAIN_MOVES_MAX {
            let mut reached = Vec::new();
            for &u in &frontier {
                for pg in self.changed_first(position, &at[u as usize]) {
                    let seen = reached.len();
                    self.reach_from(position, pg, &mut visited, &mut unvisited, &mut reached);
                    for &v in &reached[seen..] {
                        parent[v as usize] = (u, pg);
                    }
                }
            }
            let best = reached
                .iter()
                .filter_map(|&c| sink(self, c as usize).map(|k| (k, std::cmp::Reverse(c))))
                .max();
            if let Some((_, std::cmp::Reverse(mut c))) = best {
                let mut chain = Vec::new();
                while c as usize != d {
                    let (u, pg) = parent[c as usize];
                    chain.push((pg, c));
                    c = u;
                }
                return Some(chain);
            }
            if reached.is_empty() {
                return None;
            }
            reached.sort_unstable();
            frontier = reached;
        }
        None
    }

    /// Marks and appends to `reached` every unvisited core that may replace the core at
    /// `position` of `pg` keeping the row's spread prefixes. Spread only sees a core's node
    /// (and zone), so one check per node stands for all of the node's cores.
    fn reach_from(
        &mut self,
        position: usize,
        pg: u32,
        visited: &mut [bool],
        unvisited: &mut [usize],
        reached: &mut Vec<u32>,
    ) {
        let start = pg as usize * self.depth;
        let mut trial = [UNSET; crate::limits::WIDTH_MAX];
        trial[..self.depth].copy_from_slice(&self.slots[start..start + self.depth]);
        let before = self.row_mask[pg as usize];
        for (node, cores) in self.node_members.iter().enumerate() {
            if unvisited[node] == 0 {
                continue;
            }
            let row = &trial[..self.depth];
            let Some(&probe) = cores.iter().find(|&&v| !row.contains(&v)) else {
                continue;
            };
            let mut t = trial;
            t[position] = probe;
            if self.check.mask(&t[..self.depth]) & before != before {
                continue;
            }
            for &v in cores {
                if !visited[v as usize] && !trial[..self.depth].contains(&v) {
                    visited[v as usize] = true;
                    unvisited[node] -= 1;
                    reached.push(v);
                }
            }
        }
    }

    /// The shortest chain of moves at `position` that gives one slot to `c` from a donor
    /// (`donor` gives its key, best largest, or None), the cores between handing one on; the
    /// moves in any order. Breadth first backwards from `c`, at most `CHAIN_MOVES_MAX` moves.
    fn chain_to<K: Ord>(
        &mut self,
        position: usize,
        c: usize,
        donor: impl Fn(&Self, usize) -> Option<K>,
    ) -> Option<Vec<(u32, u32)>> {
        let n = self.members.len();
        // Per reached core u: its slot in row pg goes to core `to`.
        let mut child: Vec<(u32, u32)> = vec![(UNSET, UNSET); n];
        let mut visited = vec![false; n];
        visited[c] = true;
        let mut frontier = vec![c as u32];
        for _ in 0..CHAIN_MOVES_MAX {
            let mut reached = Vec::new();
            for &v in &frontier {
                for pg in 0..self.pgs {
                    let start = pg * self.depth;
                    let u = self.slots[start + position];
                    if visited[u as usize] || self.slots[start..start + self.depth].contains(&v) {
                        continue;
                    }
                    let mut t = [UNSET; crate::limits::WIDTH_MAX];
                    t[..self.depth].copy_from_slice(&self.slots[start..start + self.depth]);
                    t[position] = v;
                    let before = self.row_mask[pg];
                    if self.check.mask(&t[..self.depth]) & before == before {
                        visited[u as usize] = true;
                        child[u as usize] = (pg as u32, v);
                        reached.push(u);
                    }
                }
            }
            let best = reached
                .iter()
                .filter_map(|&u| donor(self, u as usize).map(|k| (k, std::cmp::Reverse(u))))
                .max();
            if let Some((_, std::cmp::Reverse(mut u))) = best {
                let mut chain = Vec::new();
                while u as usize != c {
                    let (pg, to) = child[u as usize];
                    chain.push((pg, to));
                    u = to;
                }
                return Some(chain);
            }
            if reached.is_empty() {
                return None;
            }
            reached.sort_unstable();
            frontier = reached;
        }
        None
    }

    /// Moves one slot of `position` from the first donor (in order) to the first receiver (in
    /// order) for which some PG keeps every spread prefix of its row; false if none does. A PG
    /// whose row holds the receiver at a later position may swap the two (two slots change);
    /// direct moves are tried first.
    fn move_one(
        &mut self,
        position: usize,
        donors: &[usize],
        receivers: &[usize],
        at: &mut [BTreeSet<u32>],
        load: &mut [u64],
        swaps: bool,
    ) -> bool {
        for swap in [false, swaps] {
            for &d in donors {
                // Direct: the first receiver that fits. A swap: the receiver whose trade goes to
                // the latest position (it relieves `d` over the most prefixes, so it need not
                // trade again at the next positions), the first receiver on a tie.
                let mut best: Option<(usize, u32, Option<usize>)> = None;
                for &c in receivers {
                    // A swap must beat the best so far: only later positions are searched.
                    let after = best.and_then(|(_, _, j)| j).map_or(0, |j| j + 1);
                    let Some((pg, later)) = self.movable(position, d, c, &at[d], swap, after)
                    else {
                        continue;
                    };
                    if best.is_none_or(|(_, _, j)| later > j) {
                        best = Some((c, pg, later));
                    }
                    if !swap || later == Some(self.depth - 1) {
                        break;
                    }
                }
                let Some((c, pg, later)) = best else {
                    continue;
                };
                self.set(pg as usize, position, c as u32);
                self.stats.balance_moves += 1;
                if let Some(j) = later {
                    self.set(pg as usize, j, d as u32);
                    self.stats.balance_moves += 1;
                    self.stats.swaps += 1;
                }
                at[d].remove(&pg);
                at[c].insert(pg);
                load[d] -= 1;
                load[c] += 1;
                return true;
            }
        }
        false
    }

    /// The first PG of `pgs` (holding `d` at `position`) where `c` may replace `d`: directly,
    /// or with `swap`, by moving `d` to a later position j ≥ `after` of the row (returned) whose core
    /// leaves the row: `c` itself (the two trade places), or a core that need not keep it (not
    /// one that must gain). Either way two slots change.
    fn movable(
        &mut self,
        position: usize,
        d: usize,
        c: usize,
        pgs: &BTreeSet<u32>,
        swap: bool,
        after: usize,
    ) -> Option<(u32, Option<usize>)> {
        let mut trial = [UNSET; crate::limits::WIDTH_MAX];
        let c = c as u32;
        // With swaps, the trade to the latest position over all rows: a trade relieves `d`
        // over the prefixes up to j only, and one to an early j left `d` to shed again at the
        // next positions, two moves each time (3 zones × 2 nodes × 4 cores, one removed: 3.5×
        // the minimum moved).
        let mut best: Option<(usize, u32)> = None;
        for pg in self.changed_first(position, pgs) {
            let row = &self.slots[pg as usize * self.depth..(pg as usize + 1) * self.depth];
            debug_assert_eq!(row[position] as usize, d);
            let at = row.iter().position(|&m| m == c);
            if !swap && at.is_some() || at.is_some_and(|j| j < position) {
                continue;
            }
            let before = self.row_mask[pg as usize];
            trial[..self.depth].copy_from_slice(row);
            if !swap {
                trial[position] = c;
                if self.check.mask(&trial[..self.depth]) & before == before {
                    return Some((pg, None));
                }
                continue;
            }
            let first = best.map_or(after.max(position + 1), |(j, _)| j + 1);
            if first >= self.depth {
                break;
            }
            for j in (first..self.depth).rev() {
                let e = row[j];
                if e == UNSET
                    || at.is_some_and(|a| a != j)
                    || (at.is_none() && self.grew[e as usize])
                {
                    continue;
                }
                trial[..self.depth].copy_from_slice(row);
                trial[position] = c;
                trial[j] = d as u32;
                if self.check.mask(&trial[..self.depth]) & before == before {
                    best = Some((j, pg));
                    break;
                }
            }
        }
        best.map(|(j, pg)| (pg, Some(j)))
    }
}

/// The rows `undo_rows` tries for a row that was `was` and is `now`, best first, made one at a
/// time as they are asked for: `was` itself, `was` with one of the changed slots kept, then
/// `was` with one slot on a core the rebalance brought into the row or one of `gaining` (a
/// search over every core found no more on the shapes measured, at twice the time on 1000
/// cores).
fn row_candidates<'r>(
    was: &'r [u32],
    now: &'r [u32],
    gaining: &[u32],
) -> impl Iterator<Item = Vec<u32>> + 'r {
    let with = move |j: usize, c: u32| {
        let mut t = was.to_vec();
        t[j] = c;
        t
    };
    let mut brought: Vec<u32> = now
        .iter()
        .chain(gaining)
        .copied()
        .filter(|c| !was.contains(c))
        .collect();
    brought.sort_unstable();
    brought.dedup();
    let kept = (0..was.len())
        .filter(move |&j| now[j] != was[j])
        .map(move |j| with(j, now[j]));
    let n = brought.len();
    let elsewhere = (0..was.len() * n).filter_map(move |i| {
        let (j, c) = (i / n, brought[i % n]);
        (c != now[j]).then(|| with(j, c))
    });
    std::iter::once(was.to_vec()).chain(kept).chain(elsewhere)
}
