//! The PG table of one tier: for every placement group an ordered row of `depth` distinct
//! cores; an object of width w uses the first w. Computed once per layout version (a pure
//! function of the tier's cores and P), then a lookup is an index into a flat array.
//!
//! # The rule
//! Positions are filled one after the other, position r for all PGs before position r + 1:
//!
//! 1. **Spread first.** For PG p, the *eligible* cores at position r are the cores not yet in
//!    its row whose (fragments of the row already in the core's zone, fragments already on the
//!    core's node) is smallest, compared zone count first. This is water-filling: every prefix of
//!    a row spreads over zones as evenly as the zones' core counts allow, and within a zone over
//!    nodes as evenly as they allow. Distinct zones whenever there are enough zones, else
//!    distinct nodes, else distinct cores.
//! 2. **Rendezvous order.** Each PG ranks its eligible cores by the weighted rendezvous key
//!    `hash::weighted_key(pair_hash(slot_seed(p, r), core_seed(c)), 1/weight)`, smallest first,
//!    ties by core id. Each position has its own seed, so a change at one position of a row does
//!    not shift the others (an EC fragment keeps its core).
//! 3. **Bounded load.** A core may hold at most `capacity(r + 1)` fragments of positions 0..=r:
//!    max(⌈s⌉, ⌊s × 1.1⌋) with its fair share s = (r + 1) × P × weight / total weight (the slack is
//!    the layout's `balance_slack_percent`, default 10). Within position r the assignment is the unique
//!    *stable* matching in which both PGs and cores prefer smaller keys: equivalently, walk all
//!    (PG, eligible core) pairs by increasing key and give the pair's core to the PG if the PG
//!    has none yet and the core has room. It is computed by PG-proposing deferred acceptance,
//!    whose result does not depend on the order PGs are processed in.
//! 4. **Spread beats balance.** A PG whose eligible cores are all full takes its best eligible
//!    core anyway (this only happens when spread forces load onto a small zone or node).
//!
//! Without (3) this is per-position weighted rendezvous (CRUSH's straw2 in "indep" mode), whose
//! imbalance grows as cores get fewer fragments each; with it max/mean stays within
//! max(1.10, ⌈s⌉ / s) unless spread forces more, at the cost of extra movement when the set
//! changes: a core that is full at one layout and not at the next pulls PGs along (vacancy
//! chains), more so the fewer fragments each core holds. README.md has the measured figures.

use std::collections::BinaryHeap;

use crate::hash;
use crate::layout::{CoreId, Tier};
use crate::limits;

/// A core of the tier, as the table builder sees it. Members are sorted by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: CoreId,
    /// Index into `Layout::cores`.
    pub layout_index: u32,
    /// Dense zone and node ids (any numbering; only equality matters).
    pub zone: u32,
    pub node: u32,
    pub weight: u32,
}

/// The PG table of one tier.
#[derive(Debug, Clone)]
pub struct Table {
    tier: Tier,
    depth: usize,
    pgs: u32,
    slack_permille: u64,
    members: Vec<Member>,
    /// `pgs × depth` core ids, row-major.
    cores: Vec<CoreId>,
    /// The same slots as indices into `Layout::cores`.
    indices: Vec<u32>,
}

/// Load of the cores of a table prefix relative to their fair share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balance {
    /// max over cores of load / fair share (fair share = width × P × weight / total weight).
    pub max_over_share: f64,
    pub min_over_share: f64,
    /// The core with the highest ratio.
    pub fullest: CoreId,
}

impl Table {
    /// Builds the table of `members` (sorted by id, at least `depth` of them) for `pgs` PGs;
    /// `slack_permille` is the load bound above fair share (rule 3).
    pub fn build(
        tier: Tier,
        members: &[Member],
        pgs: u32,
        depth: usize,
        slack_permille: u64,
    ) -> Table {
        assert!((1..=limits::WIDTH_MAX).contains(&depth));
        assert!(
            members.len() >= depth,
            "a policy wider than its tier passed validation"
        );
        assert!(members.windows(2).all(|w| w[0].id < w[1].id));
        assert!(pgs.is_power_of_two() && pgs <= limits::PLACEMENT_GROUPS_MAX);
        let slots = Builder::new(members, pgs as usize, depth, slack_permille).run();
        Table::from_slots(tier, members, pgs, depth, slack_permille, &slots)
    }

    /// A table of explicit slots (member indices, row-major): a rebalanced or a stored one.
    /// Every row must hold `depth` distinct members.
    pub(crate) fn from_slots(
        tier: Tier,
        members: &[Member],
        pgs: u32,
        depth: usize,
        slack_permille: u64,
        slots: &[u32],
    ) -> Table {
        assert!((1..=limits::WIDTH_MAX).contains(&depth));
        assert!(members.windows(2).all(|w| w[0].id < w[1].id));
        assert!(pgs.is_power_of_two() && pgs <= limits::PLACEMENT_GROUPS_MAX);
        assert_eq!(slots.len(), pgs as usize * depth);
        for row in slots.chunks_exact(depth) {
            for (i, &m) in row.iter().enumerate() {
                assert!((m as usize) < members.len(), "slot is a member");
                assert!(!row[..i].contains(&m), "a row holds distinct cores");
            }
        }
        Table {
            tier,
            depth,
            pgs,
            slack_permille,
            members: members.to_vec(),
            cores: slots.iter().map(|&m| members[m as usize].id).collect(),
            indices: slots
                .iter()
                .map(|&m| members[m as usize].layout_index)
                .collect(),
        }
    }

    /// Every slot as an index into [`Table::members`], row-major.
    pub fn member_slots(&self) -> Vec<u32> {
        self.cores
            .iter()
            .map(|id| {
                self.members
                    .binary_search_by_key(id, |m| m.id)
                    .expect("slot is a member") as u32
            })
            .collect()
    }

    /// Every slot, row-major (`placement_groups × depth` cores).
    pub fn slots(&self) -> &[CoreId] {
        &self.cores
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Positions per row: the widest scheme of the policies on this tier.
    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn placement_groups(&self) -> u32 {
        self.pgs
    }

    /// The load bound it was built with, per mille above fair share.
    pub fn slack_permille(&self) -> u64 {
        self.slack_permille
    }

    /// The tier's cores.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The whole row of `pg` (`depth` cores).
    pub fn row(&self, pg: u32) -> &[CoreId] {
        let start = pg as usize * self.depth;
        &self.cores[start..start + self.depth]
    }

    /// The first `width` slots of `pg`'s row as indices into `Layout::cores`.
    pub fn row_indices(&self, pg: u32, width: usize) -> &[u32] {
        assert!(width <= self.depth);
        let start = pg as usize * self.depth;
        &self.indices[start..start + width]
    }

    /// Fragments of positions `0..width` on each member (same order as [`Table::members`]).
    pub fn loads(&self, width: usize) -> Vec<u64> {
        assert!(width <= self.depth);
        let mut loads = vec![0u64; self.members.len()];
        for row in self.cores.chunks_exact(self.depth) {
            for id in &row[..width] {
                let m = self
                    .members
                    .binary_search_by_key(id, |m| m.id)
                    .expect("slot is a member");
                loads[m] += 1;
            }
        }
        loads
    }

    /// Per member (same order as [`Table::members`]), the most its load over its fair share
    /// can be forced by spread at some prefix, at least 1 (a node of 3 cores beside one of 4 in
    /// a zone that holds two fragments of every row: 1.28 for its cores). A rebalanced table
    /// lets a core carry that ratio at every prefix (`rebalance`); the stateless table reaches
    /// at least the largest of them at the prefix that forces it.
    pub fn forced_ratios(&self) -> Vec<f64> {
        let shares = crate::share::spread_shares(&self.members, self.pgs, self.depth);
        crate::share::forced_ratios(&self.members, self.pgs, &shares)
    }

    /// The largest max/mean over every prefix `0..w`, w = 1..=depth: how full the fullest core
    /// is at the prefix where it is fullest.
    pub fn fullest_prefix(&self) -> f64 {
        (1..=self.depth)
            .map(|w| self.balance(w).max_over_share)
            .fold(0f64, f64::max)
    }

    /// The balance of positions `0..width`.
    pub fn balance(&self, width: usize) -> Balance {
        let loads = self.loads(width);
        let total_weight: u64 = self.members.iter().map(|m| u64::from(m.weight)).sum();
        let fragments = width as f64 * f64::from(self.pgs);
        let mut b = Balance {
            max_over_share: 0.0,
            min_over_share: f64::INFINITY,
            fullest: self.members[0].id,
        };
        for (m, &load) in self.members.iter().zip(&loads) {
            let share = fragments * f64::from(m.weight) / total_weight as f64;
            let ratio = load as f64 / share;
            if ratio > b.max_over_share {
                b.max_over_share = ratio;
                b.fullest = m.id;
            }
            b.min_over_share = b.min_over_share.min(ratio);
        }
        b
    }
}

/// The most fragments of positions `0..prefix` a core of `weight` may hold (see the rule).
pub fn capacity(
    prefix: usize,
    pgs: u32,
    weight: u32,
    total_weight: u64,
    slack_permille: u64,
) -> u64 {
    let num = prefix as u128 * u128::from(pgs) * u128::from(weight);
    let den = u128::from(total_weight);
    let fair_ceil = num.div_ceil(den);
    let slack = num * u128::from(1000 + slack_permille) / (den * 1000);
    fair_ceil.max(slack) as u64
}

/// A PG's candidate at one position: ordered by key, then core id (member order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// `weighted_key(..).to_bits()`: keys are finite and ≥ +0.0, so bit order is value order.
    key: u64,
    member: u32,
}

const UNSET: u32 = u32::MAX;

struct Builder<'a> {
    members: &'a [Member],
    core_seeds: Vec<u64>,
    inv_weights: Vec<f64>,
    total_weight: u64,
    slack_permille: u64,
    pgs: usize,
    depth: usize,
    /// Member index per slot, row-major.
    slots: Vec<u32>,
    /// Fragments per member over the positions filled so far.
    loads: Vec<u64>,
    // Scratch for one row: fragments per zone and per node, and the members in it.
    zone_count: Vec<u8>,
    node_count: Vec<u8>,
    in_row: Vec<bool>,
}

/// Zones and nodes the members' dense zone and node indexes span.
pub(crate) fn domain_counts(members: &[Member]) -> (usize, usize) {
    let span = |index: fn(&Member) -> usize| members.iter().map(index).max().map_or(0, |i| i + 1);
    (span(|m| m.zone as usize), span(|m| m.node as usize))
}

impl<'a> Builder<'a> {
    fn new(members: &'a [Member], pgs: usize, depth: usize, slack_permille: u64) -> Builder<'a> {
        let (zones, nodes) = domain_counts(members);
        Builder {
            members,
            core_seeds: members.iter().map(|m| hash::core_seed(m.id)).collect(),
            inv_weights: members.iter().map(|m| 1.0 / f64::from(m.weight)).collect(),
            total_weight: members.iter().map(|m| u64::from(m.weight)).sum(),
            slack_permille,
            pgs,
            depth,
            slots: vec![UNSET; pgs * depth],
            loads: vec![0; members.len()],
            zone_count: vec![0; zones],
            node_count: vec![0; nodes],
            in_row: vec![false; members.len()],
        }
    }

    fn run(mut self) -> Vec<u32> {
        for position in 0..self.depth {
            self.fill_position(position);
        }
        assert!(self.slots.iter().all(|&s| s != UNSET));
        assert_eq!(
            self.loads.iter().sum::<u64>(),
            (self.pgs * self.depth) as u64
        );
        self.slots
    }

    /// Deferred acceptance for one position, then the overflow PGs (rule 3 and 4).
    fn fill_position(&mut self, position: usize) {
        let room: Vec<usize> = self
            .members
            .iter()
            .zip(&self.loads)
            .map(|(m, &load)| {
                let cap = capacity(
                    position + 1,
                    self.pgs as u32,
                    m.weight,
                    self.total_weight,
                    self.slack_permille,
                );
                cap.saturating_sub(load) as usize
            })
            .collect();
        let seeds: Vec<u64> = (0..self.pgs)
            .map(|pg| hash::slot_seed(pg as u32, position as u8))
            .collect();
        let mut last: Vec<Option<Candidate>> = vec![None; self.pgs];
        // Per member, the offers it holds; the worst (largest key) on top.
        let mut held: Vec<BinaryHeap<(u64, u32)>> = vec![BinaryHeap::new(); self.members.len()];
        let mut free: Vec<u32> = (0..self.pgs as u32).rev().collect();
        let mut overflow = Vec::new();
        while let Some(pg) = free.pop() {
            let p = pg as usize;
            let Some(cand) = self.next_candidate(p, position, seeds[p], last[p], Some(&room))
            else {
                overflow.push(pg);
                continue;
            };
            last[p] = Some(cand);
            let m = cand.member as usize;
            let offer = (cand.key, pg);
            if held[m].len() < room[m] {
                held[m].push(offer);
            } else {
                let worst = *held[m]
                    .peek()
                    .expect("room > 0 so a full heap is not empty");
                if offer < worst {
                    held[m].pop();
                    held[m].push(offer);
                    free.push(worst.1);
                } else {
                    free.push(pg);
                }
            }
        }
        for (m, heap) in held.into_iter().enumerate() {
            assert!(heap.len() <= room[m]);
            for (_, pg) in heap {
                self.place(pg as usize, position, m as u32);
            }
        }
        overflow.sort_unstable();
        for pg in overflow {
            let p = pg as usize;
            let best = self
                .next_candidate(p, position, seeds[p], None, None)
                .expect("a row always has an eligible core: members >= depth");
            self.place(p, position, best.member);
        }
    }

    fn place(&mut self, pg: usize, position: usize, member: u32) {
        let slot = &mut self.slots[pg * self.depth + position];
        assert_eq!(*slot, UNSET);
        *slot = member;
        self.loads[member as usize] += 1;
    }

    /// The best eligible candidate of `pg` at `position` strictly after `after`, skipping
    /// members without room when `room` is given.
    fn next_candidate(
        &mut self,
        pg: usize,
        position: usize,
        seed: u64,
        after: Option<Candidate>,
        room: Option<&[usize]>,
    ) -> Option<Candidate> {
        let row = pg * self.depth;
        self.mark_row(row, position, 1);
        let mut class = (u8::MAX, u8::MAX);
        for (i, m) in self.members.iter().enumerate() {
            if !self.in_row[i] {
                class = class.min((
                    self.zone_count[m.zone as usize],
                    self.node_count[m.node as usize],
                ));
            }
        }
        let mut best: Option<Candidate> = None;
        for (i, m) in self.members.iter().enumerate() {
            let eligible = !self.in_row[i]
                && (
                    self.zone_count[m.zone as usize],
                    self.node_count[m.node as usize],
                ) == class
                && room.is_none_or(|r| r[i] > 0);
            if !eligible {
                continue;
            }
            let h = hash::pair_hash(seed, self.core_seeds[i]);
            let key = hash::weighted_key(h, self.inv_weights[i]).to_bits();
            let cand = Candidate {
                key,
                member: i as u32,
            };
            if after.is_none_or(|a| cand > a) && best.is_none_or(|b| cand < b) {
                best = Some(cand);
            }
        }
        self.mark_row(row, position, -1);
        best
    }

    /// Adds (`delta` = 1) or removes (−1) the first `position` slots of a row to the scratch.
    fn mark_row(&mut self, row: usize, position: usize, delta: i8) {
        for &m in &self.slots[row..row + position] {
            let member = &self.members[m as usize];
            let z = &mut self.zone_count[member.zone as usize];
            *z = z.wrapping_add_signed(delta);
            let n = &mut self.node_count[member.node as usize];
            *n = n.wrapping_add_signed(delta);
            self.in_row[m as usize] = delta > 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_formula() {
        // 4096 PGs, 12 equal cores, prefix 6: share 2048, cap 2252.
        assert_eq!(capacity(6, 4096, 1, 12, 100), 2252);
        // Tiny shares round up: share 4.096 → 5 (not ⌊4.5⌋ = 4).
        assert_eq!(capacity(1, 4096, 1, 1000, 100), 5);
        assert_eq!(capacity(1, 4096, 1, 1000, 0), 5);
        // Weighted: share 4096 × 3 / 4 = 3072 → 3379.
        assert_eq!(capacity(1, 4096, 3, 4, 100), 3379);
    }
}
