//! What a layout achieves, for people: per storage class and scheme, the worst spread over all
//! PGs and how many PGs reach each level; and the warnings `percore layout check` and `percore
//! serve` print (one copy, no zone or node tolerance, forced imbalance, unused tiers).

use std::collections::BTreeSet;
use std::fmt;

use crate::layout::{Layout, Tier};
use crate::policy::Scheme;
use crate::spread::Spread;
use crate::table::capacity;

/// The achieved spread of one (storage class, scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReport {
    pub class: String,
    pub scheme: Scheme,
    pub tier: Tier,
    /// The worst PG, level by level.
    pub worst: Spread,
    /// PGs whose fragments are in distinct zones, in distinct nodes (not zones), in distinct
    /// cores only: indexed by `Domain as usize`.
    pub pgs_distinct: [u32; 3],
}

/// Something an operator should know about a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Objects of this class have one copy: losing one core loses them.
    SingleCopy { class: String, scheme: Scheme },
    /// The tier spans several zones but some PG does not survive losing a zone.
    NoZoneTolerance {
        class: String,
        scheme: Scheme,
        zones: usize,
    },
    /// The tier spans several nodes but some PG does not survive losing a node.
    NoNodeTolerance {
        class: String,
        scheme: Scheme,
        nodes: usize,
    },
    /// Spread forces some core past the balance bound (e.g. a small zone).
    Unbalanced {
        tier: Tier,
        width: usize,
        max_over_share_permille: u64,
    },
    /// Cores of a tier no policy uses.
    UnusedTier { tier: Tier, cores: usize },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SingleCopy { class, scheme } => write!(
                f,
                "{class} keeps ONE copy ({scheme}): losing a single core loses data; \
                 add cores or nodes for redundancy"
            ),
            Warning::NoZoneTolerance {
                class,
                scheme,
                zones,
            } => write!(
                f,
                "{class} ({scheme}) does not survive the loss of a zone although the tier spans \
                 {zones} zones"
            ),
            Warning::NoNodeTolerance {
                class,
                scheme,
                nodes,
            } => write!(
                f,
                "{class} ({scheme}) does not survive the loss of a node although the tier spans \
                 {nodes} nodes"
            ),
            Warning::Unbalanced {
                tier,
                width,
                max_over_share_permille,
            } => write!(
                f,
                "tier {tier}: spread forces a core to {}.{:03}x its fair share of the first \
                 {width} positions (zones or nodes of unequal size)",
                max_over_share_permille / 1000,
                max_over_share_permille % 1000
            ),
            Warning::UnusedTier { tier, cores } => {
                write!(f, "tier {tier}: {cores} cores but no storage class uses it")
            }
        }
    }
}

/// One report per (class, scheme) of the layout, in class order.
pub(crate) fn policy_reports(layout: &Layout) -> Vec<PolicyReport> {
    let mut reports = Vec::new();
    for (class, policy) in layout.policies() {
        let table = layout
            .table(policy.tier)
            .expect("every policy's tier has a table");
        for scheme in policy.schemes() {
            let mut worst: Option<Spread> = None;
            let mut pgs_distinct = [0u32; 3];
            for pg in 0..layout.placement_groups() {
                let s = layout.spread(table.row_indices(pg, scheme.width()), scheme);
                pgs_distinct[s.distinct as usize] += 1;
                worst = Some(worst.map_or(s, |w| w.min(s)));
            }
            reports.push(PolicyReport {
                class: class.clone(),
                scheme,
                tier: policy.tier,
                worst: worst.expect("at least one PG"),
                pgs_distinct,
            });
        }
    }
    reports
}

pub(crate) fn warnings(layout: &Layout) -> Vec<Warning> {
    let mut out = Vec::new();
    for r in layout.reports() {
        let (zones, nodes) = tier_domains(layout, r.tier);
        let (class, scheme) = (r.class.clone(), r.scheme);
        if scheme.tolerance() == 0 {
            out.push(Warning::SingleCopy { class, scheme });
        } else if zones >= 2 && r.worst.zone_failures == 0 {
            out.push(Warning::NoZoneTolerance {
                class,
                scheme,
                zones,
            });
        } else if nodes >= 2 && r.worst.node_failures == 0 {
            out.push(Warning::NoNodeTolerance {
                class,
                scheme,
                nodes,
            });
        }
    }
    for table in layout.tables() {
        let widths: BTreeSet<usize> = layout
            .policies()
            .values()
            .filter(|p| p.tier == table.tier())
            .flat_map(|p| p.schemes().into_iter().map(Scheme::width))
            .collect();
        for width in widths {
            // Within capacity everywhere means the balance bound holds (rounding of tiny shares
            // aside); past it, spread forced the load (rule 4 of `table`).
            let loads = table.loads(width);
            let total_weight: u64 = table.members().iter().map(|m| u64::from(m.weight)).sum();
            let over = table.members().iter().zip(&loads).any(|(m, &load)| {
                let pgs = layout.placement_groups();
                load > capacity(width, pgs, m.weight, total_weight, table.slack_permille())
            });
            if over {
                let ratio = table.balance(width).max_over_share;
                out.push(Warning::Unbalanced {
                    tier: table.tier(),
                    width,
                    max_over_share_permille: (ratio * 1000.0).round() as u64,
                });
            }
        }
    }
    let used: BTreeSet<Tier> = layout
        .tables()
        .iter()
        .map(crate::table::Table::tier)
        .collect();
    let present: BTreeSet<Tier> = layout
        .cores()
        .iter()
        .filter(|c| c.weight > 0)
        .map(|c| c.tier)
        .collect();
    for tier in present.difference(&used) {
        out.push(Warning::UnusedTier {
            tier: *tier,
            cores: layout.tier_cores(*tier).count(),
        });
    }
    out
}

/// Zones and nodes the cores of `tier` span.
fn tier_domains(layout: &Layout, tier: Tier) -> (usize, usize) {
    let cores = layout
        .cores()
        .iter()
        .filter(|c| c.tier == tier && c.weight > 0);
    let zones: BTreeSet<u32> = cores.clone().map(|c| c.zone).collect();
    let nodes: BTreeSet<u32> = cores.map(|c| c.node).collect();
    (zones.len(), nodes.len())
}
