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
//! one core removed: 3.5× the minimum moved, balance unchanged).
//!
//! The shares are an estimate from the per-row ranges (a zone holds between its fewest and its
//! most fragments of a spread prefix in every row), water-filled by weight: zones first, then
//! nodes within a zone, then cores by weight within a node. Only exactly rounded IEEE
//! operations in a fixed order: the same on every machine. It deliberately does not look at a
//! table; it is a function of the members, P and the prefix.

use crate::policy::waterfill_max;
use crate::table::{domain_counts, Member};

/// Bisection steps of [`fill`]: enough to pin λ far below one fragment.
const FILL_STEPS: u32 = 96;

/// Per prefix w = 0..=depth and member, the share of positions 0..w spread leaves it.
pub(crate) fn spread_shares(members: &[Member], pgs: u32, depth: usize) -> Vec<Vec<f64>> {
    let (zones, nodes) = domain_counts(members);
    let mut zone_cores = vec![0usize; zones];
    let mut zone_weight = vec![0f64; zones];
    let mut node_cores = vec![0usize; nodes];
    let mut node_weight = vec![0f64; nodes];
    for m in members {
        zone_cores[m.zone as usize] += 1;
        zone_weight[m.zone as usize] += f64::from(m.weight);
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
        let counts = count_ranges(&zone_cores, w);
        let (lo, hi): (Vec<f64>, Vec<f64>) = counts
            .iter()
            .map(|&(a, b)| (a as f64 * p, b as f64 * p))
            .unzip();
        let zone_load = fill(w as f64 * p, &zone_weight, &lo, &hi);
        let mut node_load = vec![0f64; nodes];
        for (z, list) in zone_nodes.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let caps: Vec<usize> = list.iter().map(|&n| node_cores[n]).collect();
            let weights: Vec<f64> = list.iter().map(|&n| node_weight[n]).collect();
            // The zone holds k or k + 1 fragments of a row (f of the rows k + 1) on average.
            let rows = zone_load[z] / p;
            let k = (rows.floor() as usize).min(zone_cores[z]);
            let f = rows - k as f64;
            let at = |k: usize| count_ranges(&caps, k.min(zone_cores[z]));
            let (low, high) = (at(k), at(k + 1));
            let (lo, hi): (Vec<f64>, Vec<f64>) = low
                .iter()
                .zip(&high)
                .map(|(a, b)| {
                    let mix = |x: usize, y: usize| ((1.0 - f) * x as f64 + f * y as f64) * p;
                    (mix(a.0, b.0), mix(a.1, b.1))
                })
                .unzip();
            for (&n, load) in list.iter().zip(fill(zone_load[z], &weights, &lo, &hi)) {
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

/// Splits `total` over domains in proportion to `weights` (λ × weight), each clamped to its
/// `lo ..= hi`: the λ that makes the clamped sum `total`, by bisection. Domains of weight 0
/// get their `lo`.
fn fill(total: f64, weights: &[f64], lo: &[f64], hi: &[f64]) -> Vec<f64> {
    let at = |lambda: f64| -> Vec<f64> {
        weights
            .iter()
            .zip(lo.iter().zip(hi))
            .map(|(&w, (&l, &h))| (lambda * w).clamp(l, h.max(l)))
            .collect()
    };
    let (mut a, mut b) = (0f64, 0f64);
    for ((&w, &l), &h) in weights.iter().zip(lo).zip(hi) {
        if w > 0.0 {
            b = b.max(h.max(l) / w);
        }
    }
    for _ in 0..FILL_STEPS {
        let mid = f64::midpoint(a, b);
        if at(mid).iter().sum::<f64>() < total {
            a = mid;
        } else {
            b = mid;
        }
    }
    at(b)
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
        let m = members(&[
            (0, 0, 3),
            (0, 1, 4),
            (1, 2, 4),
            (1, 3, 4),
            (2, 4, 4),
            (2, 5, 4),
        ]);
        let s = spread_shares(&m, 4096, 12);
        assert!((s[12][0] - 2.0 * 4096.0 / 3.0).abs() < 1e-6);
        assert!((s[12][3] - 2.0 * 4096.0 / 4.0).abs() < 1e-6);
        // Five zones, one of 30 cores: one fragment per zone at w = 5.
        let m = members(&[(0, 0, 30), (1, 1, 20), (2, 2, 20), (3, 3, 20), (4, 4, 20)]);
        let s = spread_shares(&m, 4096, 12);
        assert!((s[5][0] - 4096.0 / 30.0).abs() < 1e-6);
        assert!((s[5][40] - 4096.0 / 20.0).abs() < 1e-6);
    }
}
