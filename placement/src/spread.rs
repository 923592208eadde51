//! The failure tolerance a PG's core list achieves: at which level its fragments are all in
//! distinct failure domains, and how many simultaneous failures of zones, nodes and cores it
//! survives under a scheme's tolerance. Pure counting over at most `limits::WIDTH_MAX` entries.

use std::fmt;

use crate::limits;

/// A failure-domain level, coarsest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Zone,
    Node,
    Core,
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Domain::Zone => "zone",
            Domain::Node => "node",
            Domain::Core => "core",
        })
    }
}

/// What one PG's list (a prefix of its table row) achieves under one scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spread {
    /// The coarsest level at which all fragments are in distinct domains (always at least
    /// distinct cores).
    pub distinct: Domain,
    /// Any this many zones may fail together and the object stays readable.
    pub zone_failures: u8,
    /// Same for nodes.
    pub node_failures: u8,
    /// Same for cores (the scheme's own tolerance).
    pub core_failures: u8,
}

impl Spread {
    /// The worse of two spreads, level by level.
    pub fn min(self, other: Spread) -> Spread {
        Spread {
            distinct: self.distinct.max(other.distinct),
            zone_failures: self.zone_failures.min(other.zone_failures),
            node_failures: self.node_failures.min(other.node_failures),
            core_failures: self.core_failures.min(other.core_failures),
        }
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "distinct {}s; survives {} zone, {} node, {} core failures",
            self.distinct, self.zone_failures, self.node_failures, self.core_failures
        )
    }
}

/// The spread of fragments in `zones[i]`, `nodes[i]` (dense domain ids, one entry per
/// fragment, cores all distinct) for a scheme that tolerates `tolerance` lost fragments.
pub fn spread_of(zones: &[u32], nodes: &[u32], tolerance: usize) -> Spread {
    assert_eq!(zones.len(), nodes.len());
    assert!(zones.len() <= limits::WIDTH_MAX);
    assert!(tolerance < zones.len().max(1));
    let (zone_counts, zone_n) = counts_desc(zones);
    let (node_counts, node_n) = counts_desc(nodes);
    let (zone_counts, node_counts) = (&zone_counts[..zone_n], &node_counts[..node_n]);
    let distinct = if zone_counts.iter().all(|&c| c == 1) {
        Domain::Zone
    } else if node_counts.iter().all(|&c| c == 1) {
        Domain::Node
    } else {
        Domain::Core
    };
    Spread {
        distinct,
        zone_failures: survivable(zone_counts, tolerance),
        node_failures: survivable(node_counts, tolerance),
        core_failures: tolerance as u8,
    }
}

/// Multiplicities of the ids, largest first, in a fixed array (no allocation per lookup); the
/// second value is how many there are.
fn counts_desc(ids: &[u32]) -> ([usize; limits::WIDTH_MAX], usize) {
    let mut sorted = [0u32; limits::WIDTH_MAX];
    let sorted = &mut sorted[..ids.len()];
    sorted.copy_from_slice(ids);
    sorted.sort_unstable();
    let mut counts = [0usize; limits::WIDTH_MAX];
    let mut n = 0;
    for run in sorted.chunk_by(|a, b| a == b) {
        counts[n] = run.len();
        n += 1;
    }
    counts[..n].sort_unstable_by(|a, b| b.cmp(a));
    (counts, n)
}

/// The most domains that may fail together: the worst case loses the fullest ones first.
fn survivable(counts_desc: &[usize], tolerance: usize) -> u8 {
    let mut lost = 0;
    let mut failures = 0u8;
    for &c in counts_desc {
        lost += c;
        if lost > tolerance {
            break;
        }
        failures += 1;
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_zones_ec_4_2() {
        let s = spread_of(&[0, 1, 2, 0, 1, 2], &[0, 1, 2, 3, 4, 5], 2);
        assert_eq!(s.distinct, Domain::Node);
        assert_eq!(
            (s.zone_failures, s.node_failures, s.core_failures),
            (1, 2, 2)
        );
    }

    #[test]
    fn one_node() {
        let s = spread_of(&[0, 0, 0], &[0, 0, 0], 2);
        assert_eq!(s.distinct, Domain::Core);
        assert_eq!(
            (s.zone_failures, s.node_failures, s.core_failures),
            (0, 0, 2)
        );
        let single = spread_of(&[0], &[0], 0);
        assert_eq!(
            (
                single.zone_failures,
                single.node_failures,
                single.core_failures
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn distinct_zones() {
        let s = spread_of(&[3, 1, 2], &[7, 1, 4], 1);
        assert_eq!(s.distinct, Domain::Zone);
        assert_eq!((s.zone_failures, s.node_failures), (1, 1));
    }
}
