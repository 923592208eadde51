//! Layout builders shared by the integration tests.
#![allow(dead_code)]

use placement::layout::{CoreSpec, NodeSpec, PolicySpec};
use placement::{LayoutFile, Tier};

/// A node spec with `cores` cores of weight 1 on nvme.
pub fn node(id: u64, zone: &str, cores: u16) -> NodeSpec {
    NodeSpec {
        id,
        address: format!("10.0.{}.{}", id / 200, id % 200 + 1),
        base_port: 7100,
        zone: zone.to_owned(),
        cores: Some(cores),
        weight: None,
        removed: false,
        tier: None,
        core_list: Vec::new(),
    }
}

/// A node spec with explicit (weight, tier) cores, indexed from 0.
pub fn node_with(id: u64, zone: &str, cores: &[(u32, Tier)]) -> NodeSpec {
    let mut n = node(id, zone, 0);
    n.cores = None;
    n.core_list = cores
        .iter()
        .enumerate()
        .map(|(i, &(weight, tier))| CoreSpec {
            index: i as u16,
            weight: Some(weight),
            tier: Some(tier),
        })
        .collect();
    n
}

/// `zones` zones with `nodes_per_zone` nodes of `cores` cores each.
pub fn grid(zones: usize, nodes_per_zone: usize, cores: u16) -> LayoutFile {
    let mut f = LayoutFile::single_node(1, "127.0.0.1", 7100);
    f.nodes.clear();
    let mut id = 1;
    for z in 0..zones {
        for _ in 0..nodes_per_zone {
            f.nodes.push(node(id, &format!("z{z}"), cores));
            id += 1;
        }
    }
    f
}

pub fn ec(k: u8, m: u8, tier: Tier) -> PolicySpec {
    PolicySpec {
        ec: Some(format!("{k}+{m}")),
        tier: Some(tier),
        ..PolicySpec::default()
    }
}

pub fn replicas(r: u8, tier: Tier) -> PolicySpec {
    PolicySpec {
        replicas: Some(r),
        tier: Some(tier),
        ..PolicySpec::default()
    }
}

/// Asserts every prefix of every row of every table is as spread as the layout allows: the
/// fullest zone holds the water-filling minimum over zones, and within each zone the fullest
/// node the water-filling minimum over that zone's nodes; cores are distinct.
pub fn assert_spread(layout: &placement::Layout) {
    use placement::policy::waterfill_max;
    for table in layout.tables() {
        let tier_cores: Vec<_> = layout
            .cores()
            .iter()
            .filter(|c| c.tier == table.tier())
            .collect();
        let zone_caps: Vec<usize> = counts(tier_cores.iter().map(|c| c.zone))
            .values()
            .copied()
            .collect();
        let node_caps = |zone: u32| -> Vec<usize> {
            counts(tier_cores.iter().filter(|c| c.zone == zone).map(|c| c.node))
                .values()
                .copied()
                .collect()
        };
        for pg in 0..layout.placement_groups() {
            let row = table.row_indices(pg, table.depth());
            for width in 1..=row.len() {
                let prefix: Vec<_> = row[..width]
                    .iter()
                    .map(|&i| &layout.cores()[i as usize])
                    .collect();
                let mut ids: Vec<_> = prefix.iter().map(|c| c.id).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), width, "pg {pg}: distinct cores");
                let zones = counts(prefix.iter().map(|c| c.zone));
                assert_eq!(
                    zones.values().max().copied(),
                    Some(waterfill_max(&zone_caps, width)),
                    "pg {pg} width {width}: zones"
                );
                for (&zone, &in_zone) in &zones {
                    let nodes = counts(prefix.iter().filter(|c| c.zone == zone).map(|c| c.node));
                    assert_eq!(
                        nodes.values().max().copied().unwrap_or(0),
                        waterfill_max(&node_caps(zone), in_zone),
                        "pg {pg} width {width}: nodes of zone {zone}"
                    );
                }
            }
        }
    }
}

pub fn counts(ids: impl Iterator<Item = u32>) -> std::collections::BTreeMap<u32, usize> {
    let mut m = std::collections::BTreeMap::new();
    for id in ids {
        *m.entry(id).or_default() += 1;
    }
    m
}

/// The balance bound of a prefix of `width` for the smallest fair share: max(1.10, ⌈s⌉ / s).
pub fn balance_bound(table: &placement::table::Table, pgs: u32, width: usize) -> f64 {
    let total: u64 = table.members().iter().map(|m| u64::from(m.weight)).sum();
    let smallest = table
        .members()
        .iter()
        .map(|m| (width as f64) * f64::from(pgs) * f64::from(m.weight) / total as f64)
        .fold(f64::INFINITY, f64::min);
    1.10f64.max(smallest.ceil() / smallest) + 1e-9
}
