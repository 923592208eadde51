//! The share of a table prefix that spread leaves each core: its fair share, unless the
//! water-filling spread of every row pins its zone or node to more (or less) than the weights
//! would give it.
//!
//! Spread fixes how many fragments of a row's prefix each zone holds, to within one: with five
//! equal zones, every prefix of five positions holds exactly one fragment per zone, so a zone
//! of 30 cores next to four of 20 holds P fragments of positions 0..5 like the others, and its
//! cores cannot reach their fair share (nor the others' get down to theirs). Within a zone the
//! same holds for nodes: a node of 3 cores next to one of 4, with two fragments of each row in
//! the zone, holds one per row. The rebalance asks a growing core for no more than this share
//! and lets a core keep up to it over its bound (`rebalance`): without it, the bound made cores
//! of a pinned node shed slots that spread brought straight back (3 zones × 2 nodes × 4 cores,
//! one core removed: 3.5× the minimum moved, balance unchanged). `forced_ratios` carries the
//! largest such ratio of a core to every prefix of the table, where spread does not pin it.
//!
//! The shares come from the per-row ranges (a zone holds between its fewest and its most
//! fragments of a spread prefix in every row; a node, over every count its zone may hold,
//! between its fewest and most), water-filled by weight in one nested fill: one level λ for
//! the whole tier, each node at λ × its weight clamped into its range, each zone the sum of its
//! nodes clamped into the zone's range (a zone so clamped levels its own nodes at the λ that
//! gives the clamped sum), λ such that the zones sum to the prefix; then cores by weight within
//! a node. Filling the zones by weight first and their nodes after, as this did before, pinned
//! a node too high: 3 zones × 2 nodes × 2 cores, a core removed and another's weight doubled,
//! gave the lone core of its node 2/3 P of the first five positions because its sibling node
//! was capped at P, when the other zones can take that (balance 1.53 at w = 5; the stateless
//! table has 1.11, the nested fill allows 1.10). Only exactly rounded IEEE operations in a
//! fixed order: the same on every machine. It deliberately does not look at a table; it is a
//! function of the members, P and the prefix.

use crate::policy::waterfill_max;
use crate::table::{domain_counts, Member};

/// Bisection steps of [`fill`]: enough to pin λ far below one fragment.
const FILL_STEPS: u32 = 96;

/// Per prefix w = 0..=depth and member, the share of positions 0..w spread leaves it.
pub(crate) fn spread_shares(members: &[Member], pgs: u32, depth: usize) -> Vec<Vec<f64>> {
    let (zones, nodes) = domain_counts(members);
    let mut zone_cores = vec![0usize; zones];
    let mut node_cores = vec![0usize; nodes];
    let mut node_weight = vec![0f64; nodes];
    for m in members {
        zone_cores[m.zone as usize] += 1;
        node_cores[m.node as usize] += 1;
        node_weight[m.node as usize] += f64::from(m.weight);
    }
    // Per zone, its nodes (dense node ids), in first-seen order.
    let mut zone_nodes: Vec<Vec<usize>> = vec![Vec::new(); zones];
    for m in members {
        let list = &mut zone_nodes[m.zone as usize];
        if !list.contains(&(m.node as usize)) {
            list.push(m.node as usize);
        }
    }
    let p = f64::from(pgs);
    let mut out = vec![vec![0f64; members.len()]; depth + 1];
    for (w, shares) in out.iter_mut().enumerate().skip(1) {
        let zone_range = count_ranges(&zone_cores, w);
        let groups: Vec<Zone> = zone_nodes
            .iter()
            .enumerate()
            .filter(|(_, list)| !list.is_empty())
            .map(|(z, list)| {
                // What a node may hold over every count its zone may hold of a row.
                let caps: Vec<usize> = list.iter().map(|&n| node_cores[n]).collect();
                let (fewest, most) = zone_range[z];
                let mut range = vec![(f64::INFINITY, 0f64); list.len()];
                for k in fewest..=most.min(zone_cores[z]) {
                    for (acc, r) in range.iter_mut().zip(count_ranges(&caps, k)) {
                        *acc = (acc.0.min(r.0 as f64 * p), acc.1.max(r.1 as f64 * p));
                    }
                }
                Zone {
                    lo: fewest as f64 * p,
                    hi: most as f64 * p,
                    nodes: list.clone(),
                    weight: list.iter().map(|&n| node_weight[n]).collect(),
                    range,
                }
            })
            .collect();
        let mut node_load = vec![0f64; nodes];
        let total = w as f64 * p;
        let top = groups
            .iter()
            .flat_map(|z| z.weight.iter().zip(&z.range).map(|(&wt, r)| r.1 / wt))
            .fold(0f64, f64::max);
        let lambda = bisect(top, total, |l| groups.iter().map(|z| z.load(l)).sum());
        for z in &groups {
            for (&n, load) in z.nodes.iter().zip(z.node_loads(lambda)) {
                node_load[n] = load;
            }
        }
        for (share, m) in shares.iter_mut().zip(members) {
            let n = m.node as usize;
            *share = node_load[n] * f64::from(m.weight) / node_weight[n];
        }
    }
    out
}

/// Per member, the largest ratio of its pinned share (`spread_shares`) to its fair share over every
/// prefix, at least 1: the load spread forces on it, whatever any table does.
///
/// The bound lets the core carry that ratio at every prefix. Spread fixes how much of a row a
/// pinned node holds at some prefixes only (3 zones × 2 nodes, a node of 3 cores next to one
/// of 4: exactly one fragment per row at w = 6 and two at w = 12, 1.28× the cores' share);
/// in between, say w = 3, the node is free. Holding the prefixes in between to the 1.1 bound
/// cost a trade inside each of hundreds of rows (the node's fragment moved behind the other
/// node's, two moves each) that left the fullest core exactly as full: removing a core of that
/// node moved 2.3× what the core held (4738 slots at P = 4096, 1.15× the lower bound of those
/// targets), for a balance no better at the prefix that fills the disks first.
pub(crate) fn forced_ratios(members: &[Member], pgs: u32, spread: &[Vec<f64>]) -> Vec<f64> {
    let total: f64 = members.iter().map(|m| f64::from(m.weight)).sum();
    let mut ratio = vec![1f64; members.len()];
    for (w, shares) in spread.iter().enumerate().skip(1) {
        for ((r, m), &pinned) in ratio.iter_mut().zip(members).zip(shares) {
            let fair = (w as f64) * f64::from(pgs) * f64::from(m.weight) / total;
            *r = r.max(pinned / fair);
        }
    }
    ratio
}

/// A zone of the nested water-filling: what it may hold of a prefix (`lo ..= hi`), its nodes
/// with their weights and what each may hold.
struct Zone {
    lo: f64,
    hi: f64,
    nodes: Vec<usize>,
    weight: Vec<f64>,
    range: Vec<(f64, f64)>,
}

impl Zone {
    /// Its nodes' loads at level λ, each clamped into its range, before the zone's own clamp.
    fn inner(&self, lambda: f64) -> f64 {
        self.weight
            .iter()
            .zip(&self.range)
            .map(|(&wt, &(lo, hi))| (lambda * wt).clamp(lo, hi.max(lo)))
            .sum()
    }

    /// Its load at the global level λ: its nodes' sum, clamped into the zone's range.
    fn load(&self, lambda: f64) -> f64 {
        self.inner(lambda).clamp(self.lo, self.hi.max(self.lo))
    }

    /// Its nodes' loads at the global level λ: where the zone's range clamps its sum, the
    /// nodes are levelled at the zone's own λ that gives the clamped sum.
    fn node_loads(&self, lambda: f64) -> Vec<f64> {
        let inner = self.inner(lambda);
        let hi = self.hi.max(self.lo);
        let own = if (self.lo..=hi).contains(&inner) {
            lambda
        } else {
            let top = self
                .weight
                .iter()
                .zip(&self.range)
                .map(|(&wt, r)| r.1 / wt)
                .fold(0f64, f64::max);
            bisect(top, inner.clamp(self.lo, hi), |l| self.inner(l))
        };
        self.weight
            .iter()
            .zip(&self.range)
            .map(|(&wt, &(lo, hi))| (own * wt).clamp(lo, hi.max(lo)))
            .collect()
    }
}

/// The least λ in `0 ..= top` (by bisection) with `f(λ) ≥ total`, f non-decreasing; `top`
/// where f cannot grow further.
fn bisect(top: f64, total: f64, f: impl Fn(f64) -> f64) -> f64 {
    let (mut a, mut b) = (0f64, top);
    for _ in 0..FILL_STEPS {
        let mid = f64::midpoint(a, b);
        if f(mid) < total {
            a = mid;
        } else {
            b = mid;
        }
    }
    b
}

/// For `k` fragments of a spread row over domains of `caps` cores (zero caps allowed: an unused
/// dense id), the fewest and the most each domain holds: at most the water-filling maximum L,
/// at least what the others cannot take at L each.
fn count_ranges(caps: &[usize], k: usize) -> Vec<(usize, usize)> {
    let used: Vec<usize> = caps.iter().copied().filter(|&c| c > 0).collect();
    let top = waterfill_max(&used, k);
    let room: usize = caps.iter().map(|&c| c.min(top)).sum();
    caps.iter()
        .map(|&c| {
            let most = c.min(top);
            (k.saturating_sub(room - most), most)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(shape: &[(u32, u32, u32)]) -> Vec<Member> {
        // (zone, node, cores)
        let mut out = Vec::new();
        for &(zone, node, cores) in shape {
            for _ in 0..cores {
                out.push(Member {
                    id: crate::CoreId {
                        node: u64::from(node),
                        index: out.len() as u16,
                    },
                    layout_index: out.len() as u32,
                    zone,
                    node,
                    weight: 1,
                });
            }
        }
        out
    }

    /// Three zones of 2 nodes of 4 cores, the first node with 3.
    fn pinned_node() -> Vec<Member> {
        members(&[
            (0, 0, 3),
            (0, 1, 4),
            (1, 2, 4),
            (1, 3, 4),
            (2, 4, 4),
            (2, 5, 4),
        ])
    }

    #[test]
    fn unconstrained_shares_are_fair() {
        let m = members(&[(0, 0, 4), (1, 1, 4), (2, 2, 4)]);
        let s = spread_shares(&m, 4096, 4);
        for (w, shares) in s.iter().enumerate().skip(1) {
            for &x in shares {
                assert!((x - w as f64 * 4096.0 / 12.0).abs() < 1e-6, "{w}: {x}");
            }
        }
    }

    #[test]
    fn a_pinned_node_keeps_its_row_share() {
        // Three zones of 2 nodes, one node with 3 cores: 4 of 12 fragments per zone, 2 per
        // node, so each of the 3 cores holds 2P / 3 of the 12 positions (fair: 12P / 23).
        let m = pinned_node();
        let s = spread_shares(&m, 4096, 12);
        assert!((s[12][0] - 2.0 * 4096.0 / 3.0).abs() < 1e-6);
        assert!((s[12][3] - 2.0 * 4096.0 / 4.0).abs() < 1e-6);
        // Five zones, one of 30 cores: one fragment per zone at w = 5.
        let m = members(&[(0, 0, 30), (1, 1, 20), (2, 2, 20), (3, 3, 20), (4, 4, 20)]);
        let s = spread_shares(&m, 4096, 12);
        assert!((s[5][0] - 4096.0 / 30.0).abs() < 1e-6);
        assert!((s[5][40] - 4096.0 / 20.0).abs() < 1e-6);
    }

    #[test]
    fn forced_ratios_are_the_worst_pinned_prefix() {
        // The 3-core node holds 2P of 12 positions and P of 6 with 3 cores: 46/36 of its share
        // (23 cores) at w = 6 and 12, its worst prefix. Its sibling takes up what it cannot
        // hold at some prefixes (23/21 of its share), the other zones nothing over theirs.
        let m = pinned_node();
        let r = forced_ratios(&m, 4096, &spread_shares(&m, 4096, 12));
        for (i, x) in r.iter().enumerate() {
            let want = match i {
                0..3 => 46.0 / 36.0,
                3..7 => 23.0 / 21.0,
                _ => 1.0,
            };
            assert!((x - want).abs() < 1e-9, "{i}: {x}");
        }
        // Nothing pinned: 1 for every core.
        let m = members(&[(0, 0, 4), (1, 1, 4), (2, 2, 4)]);
        let r = forced_ratios(&m, 4096, &spread_shares(&m, 4096, 12));
        assert!(r.iter().all(|&x| (x - 1.0).abs() < 1e-9), "{r:?}");
    }

    #[test]
    fn a_capped_node_leaves_its_share_to_every_zone() {
        // 3 zones × 2 nodes; zone 1 holds node 2 (one core) and node 3 (cores of weight 2 and
        // 1). Of the first five positions a zone holds 1 or 2 per row and each node at most 1,
        // so node 3 holds at most P, short of its weight share. Its shortfall goes to every
        // zone, not to its sibling alone: one level λ = 4P / 9 per unit of weight for the
        // uncapped nodes (9λ + P = 5P), so the lone core holds 4P / 9 (1.07× its fair share
        // 5P / 12), not the 2P / 3 that filling zone 1 by weight first gave it (1.6×).
        let mut m = members(&[
            (0, 0, 2),
            (0, 1, 2),
            (1, 2, 1),
            (1, 3, 2),
            (2, 4, 2),
            (2, 5, 2),
        ]);
        m[5].weight = 2;
        let s = spread_shares(&m, 256, 6);
        assert!((s[5][4] - 4.0 * 256.0 / 9.0).abs() < 1e-6, "{}", s[5][4]);
        assert!((s[5][0] - 4.0 * 256.0 / 9.0).abs() < 1e-6, "{}", s[5][0]);
        assert!((s[5][5] + s[5][6] - 256.0).abs() < 1e-6);
        // At w = 6 every node holds exactly one fragment of every row.
        assert!((s[6][4] - 256.0).abs() < 1e-6, "{}", s[6][4]);
    }
}
