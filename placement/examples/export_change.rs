//! Writes one layout change as JSON for `placement/tools/optimum.py`, which computes the exact
//! least movement of the change with an integer program and compares the rebalance with it.
//!
//! `cargo run --release -p placement --example export_change -- ZONES NODES CORES CHANGE PGS OUT`
//! builds `ZONES` zones of `NODES` nodes of `CORES` cores (weight 1, nvme, default policies) at
//! `PGS` placement groups, applies `CHANGE` (`add-core`: one more core on the last node,
//! `remove-core`: one less on the first, `weight`: the first core of the first node at weight 2,
//! `add-node`: a node like the first in the first zone) through the incremental rebalance, and
//! writes the previous and new tables of the nvme tier, the members' zones and nodes, the
//! targets that define a valid table (`placement::valid_targets`), the moves and
//! `placement::movement_lower_bound`.

use std::fmt::Write as _;

use placement::layout::CoreSpec;
use placement::{plan, Layout, LayoutFile, Tier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: export_change ZONES NODES CORES add-core|remove-core|weight|add-node PGS OUT";
    assert_eq!(args.len(), 6, "{usage}");
    let number = |i: usize| -> u64 { args[i].parse().expect(usage) };
    let (zones, nodes, cores, pgs) = (number(0), number(1), number(2) as u16, number(4) as u32);
    let mut f = LayoutFile::single_node(cores, "10.0.0.1", 7100);
    f.placement_groups = pgs;
    f.nodes.clear();
    for z in 0..zones {
        for n in 0..nodes {
            let id = z * nodes + n + 1;
            let mut node = LayoutFile::single_node(cores, &format!("10.0.{z}.{}", n + 1), 7100)
                .nodes
                .remove(0);
            node.id = id;
            node.zone = format!("z{z}");
            f.nodes.push(node);
        }
    }
    let old = Layout::from_file(&f).expect("valid layout");
    let mut g = f.clone();
    g.version += 1;
    match args[3].as_str() {
        "add-core" => {
            *g.nodes
                .last_mut()
                .and_then(|n| n.cores.as_mut())
                .expect("a node") += 1;
        }
        "remove-core" => *g.nodes[0].cores.as_mut().expect("shorthand") -= 1,
        "weight" => {
            let count = g.nodes[0].cores.take().expect("shorthand");
            g.nodes[0].core_list = (0..count)
                .map(|index| CoreSpec {
                    index,
                    weight: Some(if index == 0 { 2 } else { 1 }),
                    tier: None,
                })
                .collect();
        }
        "add-node" => {
            let mut node = g.nodes[0].clone();
            node.id = 10_000;
            "10.9.9.9".clone_into(&mut node.address);
            g.nodes.push(node);
        }
        _ => panic!("{usage}"),
    }
    let new = Layout::from_file_and_state(&g, Some(&old.state())).expect("valid change");
    let state = old.state();
    let before = state
        .tables
        .iter()
        .find(|t| t.tier == Tier::Nvme)
        .expect("an nvme table");
    let (ot, nt) = (
        old.table(Tier::Nvme).expect("nvme"),
        new.table(Tier::Nvme).expect("nvme"),
    );
    assert_eq!(
        ot.depth(),
        nt.depth(),
        "the change altered the default policies"
    );
    let members = nt.members();
    let index_of = |id| {
        members
            .iter()
            .position(|m| m.id == id)
            .map_or(-1, |i| i as i64)
    };
    let rows = |t: &placement::table::Table| -> Vec<Vec<i64>> {
        (0..t.placement_groups())
            .map(|pg| t.row(pg).iter().map(|&id| index_of(id)).collect())
            .collect()
    };
    let (lo, hi) = placement::valid_targets(before, nt);
    let moves = plan(&old, &new).expect("comparable").moves.len();
    let bound = placement::movement_lower_bound(before, nt);
    let mut out = String::new();
    let zn: Vec<[u32; 2]> = members.iter().map(|m| [m.zone, m.node]).collect();
    write!(
        out,
        "{{\"pgs\": {pgs}, \"depth\": {}, \"members\": {zn:?}, \"old\": {:?}, \"new\": {:?}, \
         \"lo\": {lo:?}, \"hi\": {hi:?}, \"moves\": {moves}, \"lower_bound\": {bound}}}",
        nt.depth(),
        rows(ot),
        rows(nt),
    )
    .expect("write to a String");
    std::fs::write(&args[5], out).expect("write OUT");
    println!("{moves} moves, lower bound {bound}: written to {}", args[5]);
}
