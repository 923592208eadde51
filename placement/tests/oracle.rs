//! The PG tables against a naive oracle: the table rule of `placement::table` written the slow,
//! obvious way (every candidate pair scored from scratch with `hash::rendezvous_key`, sorted
//! globally, taken greedily; spread classes from hash maps of zone and node names; capacities
//! from the documented formula), on random layouts. The fast builder uses deferred acceptance,
//! cached seeds and scratch arrays; both must give the same table, slot for slot.

mod common;

use std::collections::HashMap;

use placement::hash::rendezvous_key;
use placement::layout::PolicySpec;
use placement::policy::waterfill_max;
use placement::{CoreId, Layout, LayoutFile, Tier};
use proptest::prelude::*;

/// The documented capacity: max(⌈s⌉, ⌊s × (100 + slack%) / 100⌋), s = prefix × P × w / W.
fn capacity(prefix: u64, pgs: u64, weight: u64, total: u64, slack_percent: u64) -> u64 {
    let num = prefix * pgs * weight;
    let ceil = num.div_ceil(total);
    let slack = num * (100 + slack_percent) / (total * 100);
    ceil.max(slack)
}

struct OracleCore {
    id: CoreId,
    weight: u32,
    zone: String,
    node: u64,
}

/// The table of `tier`, row-major, computed the slow way.
fn oracle_table(layout: &Layout, tier: Tier, depth: usize) -> Vec<CoreId> {
    let cores: Vec<OracleCore> = layout
        .cores()
        .iter()
        .filter(|c| c.tier == tier)
        .map(|c| OracleCore {
            id: c.id,
            weight: c.weight,
            zone: layout.zones()[c.zone as usize].clone(),
            node: c.id.node,
        })
        .collect();
    let pgs = layout.placement_groups() as usize;
    let total: u64 = cores.iter().map(|c| u64::from(c.weight)).sum();
    let slack = u64::from(layout.balance_slack_percent());
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); pgs];
    let mut loads = vec![0u64; cores.len()];
    for position in 0..depth {
        let classes: Vec<Vec<usize>> = rows.iter().map(|row| eligible(&cores, row)).collect();
        let mut pairs = Vec::new();
        for (pg, class) in classes.iter().enumerate() {
            for &c in class {
                let key = rendezvous_key(pg as u32, position as u8, cores[c].id, cores[c].weight);
                pairs.push((key, cores[c].id, pg, c));
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let caps: Vec<u64> = cores
            .iter()
            .map(|c| {
                let w = u64::from(c.weight);
                capacity(position as u64 + 1, pgs as u64, w, total, slack)
            })
            .collect();
        let mut taken = vec![None; pgs];
        for &(_, _, pg, c) in &pairs {
            if taken[pg].is_none() && loads[c] < caps[c] {
                taken[pg] = Some(c);
                loads[c] += 1;
            }
        }
        // PGs whose eligible cores were all full take their best one anyway.
        for (pg, slot) in taken.iter_mut().enumerate() {
            if slot.is_none() {
                let best = pairs
                    .iter()
                    .find(|p| p.2 == pg)
                    .expect("a class is never empty");
                *slot = Some(best.3);
                loads[best.3] += 1;
            }
        }
        for (row, slot) in rows.iter_mut().zip(taken) {
            row.push(slot.expect("filled"));
        }
    }
    rows.into_iter()
        .flat_map(|r| r.into_iter().map(|c| cores[c].id))
        .collect()
}

/// Unused cores whose (row fragments in their zone, row fragments on their node) is least.
fn eligible(cores: &[OracleCore], row: &[usize]) -> Vec<usize> {
    let mut zone_count: HashMap<&str, u32> = HashMap::new();
    let mut node_count: HashMap<u64, u32> = HashMap::new();
    for &c in row {
        *zone_count.entry(&cores[c].zone).or_default() += 1;
        *node_count.entry(cores[c].node).or_default() += 1;
    }
    let class_of = |c: &OracleCore| {
        (
            zone_count.get(c.zone.as_str()).copied().unwrap_or(0),
            node_count.get(&c.node).copied().unwrap_or(0),
        )
    };
    let free: Vec<usize> = (0..cores.len()).filter(|c| !row.contains(c)).collect();
    let best = free
        .iter()
        .map(|&c| class_of(&cores[c]))
        .min()
        .expect("free cores remain");
    free.into_iter()
        .filter(|&c| class_of(&cores[c]) == best)
        .collect()
}

/// Random layouts: 1-3 zones, 1-5 nodes, 1-4 cores each, weights 1-3, some hdd cores, P of 16
/// to 256, any slack.
fn layouts() -> impl Strategy<Value = LayoutFile> {
    let core = (1u32..=3, prop::bool::weighted(0.2));
    let node = (0usize..3, prop::collection::vec(core, 1..=4));
    (
        prop::collection::vec(node, 1..=5),
        prop::sample::select(vec![16u32, 64, 256]),
        prop::sample::select(vec![0u32, 10, 50, 1000]),
        prop::option::of(1u8..=4),
    )
        .prop_map(|(nodes, pgs, slack, replicas)| {
            let mut f = LayoutFile::single_node(1, "127.0.0.1", 7100);
            f.placement_groups = pgs;
            f.balance_slack_percent = slack;
            f.nodes = nodes
                .iter()
                .enumerate()
                .map(|(i, (zone, cores))| {
                    let cores: Vec<(u32, Tier)> = cores
                        .iter()
                        .map(|&(w, hdd)| (w, if hdd { Tier::Hdd } else { Tier::Nvme }))
                        .collect();
                    common::node_with(i as u64 + 1, &format!("z{zone}"), &cores)
                })
                .collect();
            if let Some(r) = replicas {
                f.policies.insert(
                    "REDUCED_REDUNDANCY".to_owned(),
                    PolicySpec {
                        replicas: Some(r),
                        ..PolicySpec::default()
                    },
                );
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tables_match_the_oracle(file in layouts()) {
        // Layouts the validation rejects (a policy wider than its tier) are not this test's
        // business; `layout_file.rs` covers them.
        let Ok(layout) = Layout::from_file(&file) else { return Ok(()) };
        for table in layout.tables() {
            let fast: Vec<CoreId> =
                (0..layout.placement_groups()).flat_map(|pg| table.row(pg).to_vec()).collect();
            let slow = oracle_table(&layout, table.tier(), table.depth());
            prop_assert_eq!(fast, slow, "tier {}", table.tier());
        }
    }

    /// Spread: every prefix of every row is as spread as the layout allows: the fullest zone
    /// holds the water-filling minimum over zones, and within each zone the fullest node the
    /// water-filling minimum over that zone's nodes. In particular, distinct zones whenever there
    /// are enough zones, and distinct nodes whenever a zone has enough nodes.
    #[test]
    fn every_prefix_is_spread_as_well_as_possible(file in layouts()) {
        let Ok(layout) = Layout::from_file(&file) else { return Ok(()) };
        for table in layout.tables() {
            let tier_cores: Vec<_> = layout.cores().iter().filter(|c| c.tier == table.tier()).collect();
            let zone_caps = counts(tier_cores.iter().map(|c| c.zone));
            for pg in 0..layout.placement_groups() {
                let row = table.row_indices(pg, table.depth());
                for width in 1..=row.len() {
                    let prefix: Vec<_> = row[..width].iter().map(|&i| &layout.cores()[i as usize]).collect();
                    let mut ids: Vec<_> = prefix.iter().map(|c| c.id).collect();
                    ids.sort();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), width, "distinct cores");
                    let zones = counts(prefix.iter().map(|c| c.zone));
                    prop_assert_eq!(
                        zones.values().max().copied(),
                        Some(waterfill_max(&zone_caps.values().copied().collect::<Vec<_>>(), width))
                    );
                    for (&zone, &in_zone) in &zones {
                        let node_caps = counts(tier_cores.iter().filter(|c| c.zone == zone).map(|c| c.node));
                        let nodes = counts(prefix.iter().filter(|c| c.zone == zone).map(|c| c.node));
                        prop_assert_eq!(
                            nodes.values().max().copied().unwrap_or(0),
                            waterfill_max(&node_caps.values().copied().collect::<Vec<_>>(), in_zone)
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The incremental rebalance keeps the same spread property, on the same random layouts
    /// (weights, hdd cores, extra policies): one node grows by a new two-core node in its zone
    /// or loses its last core, and the new tables are rebalanced from the stored ones.
    /// Rebalancing twice gives the same bytes.
    #[test]
    fn rebalanced_tables_are_spread_as_well_as_possible(
        file in layouts(),
        grow in any::<bool>(),
        which in 0usize..5,
    ) {
        let Ok(layout) = Layout::from_file(&file) else { return Ok(()) };
        let mut next = file.clone();
        next.version += 1;
        let n = which % next.nodes.len();
        if grow {
            let zone = next.nodes[n].zone.clone();
            next.nodes.push(common::node_with(100, &zone, &[(2, Tier::Nvme), (1, Tier::Hdd)]));
        } else if next.nodes[n].core_list.len() > 1 {
            next.nodes[n].core_list.pop();
        } else {
            return Ok(());
        }
        if Layout::from_file(&next).is_err() {
            return Ok(());
        }
        let state = layout.state();
        let new = Layout::from_file_and_state(&next, Some(&state)).unwrap();
        common::assert_spread(&new);
        let again = Layout::from_file_and_state(&next, Some(&state)).unwrap();
        prop_assert_eq!(new.state().encode(), again.state().encode());
    }
}

fn counts(ids: impl Iterator<Item = u32>) -> std::collections::BTreeMap<u32, usize> {
    let mut m = std::collections::BTreeMap::new();
    for id in ids {
        *m.entry(id).or_default() += 1;
    }
    m
}
