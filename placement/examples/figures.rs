//! Prints the balance and movement figures quoted in README.md: for several cluster shapes,
//! max/mean fragments per core of each prefix of the stateless (initial) table, then the moves
//! caused by adding or removing one core, adding one node, doubling one core's weight and
//! changing another tier, against the theoretical minimum: stateless tables of both versions
//! (the old design) and the incremental rebalance (`Layout::from_file_and_state`), with the
//! balance the rebalanced table keeps.
//!
//! `cargo run --release -p placement --example figures [SLACK_PERCENT]` (default 10).

use std::time::Instant;

use placement::layout::NodeSpec;
use placement::{plan, Layout, LayoutFile, Scheme, Tier};

/// `zones` zones, `nodes` nodes spread round-robin over them, `cores` cores each.
fn file(zones: usize, nodes: usize, cores: u16, slack: u32) -> LayoutFile {
    let mut f = LayoutFile::single_node(cores, "10.0.0.1", 7100);
    f.balance_slack_percent = slack;
    f.nodes.clear();
    for n in 0..nodes {
        let mut node =
            LayoutFile::single_node(cores, &format!("10.0.{}.{}", n / 250, n % 250 + 1), 7100)
                .nodes
                .remove(0);
        node.id = n as u64 + 1;
        node.zone = format!("z{}", n % zones);
        f.nodes.push(node);
    }
    f
}

fn main() {
    let slack: u32 = std::env::args()
        .nth(1)
        .map_or(10, |a| a.parse().expect("SLACK_PERCENT"));
    println!("balance_slack_percent = {slack}");
    let shapes = [
        (1, 1, 12),
        (1, 1, 32),
        (3, 3, 8),
        (3, 6, 4),
        (1, 10, 10),
        (5, 10, 10),
        (3, 30, 8),
        (5, 100, 10),
        (10, 200, 8),
    ];
    println!("| cores | zones × nodes × cores | build ms | max/mean w=1 | w=3 | w=6 | w=12 |");
    println!("|---|---|---|---|---|---|---|");
    let mut layouts = Vec::new();
    for (zones, nodes, cores) in shapes {
        let f = file(zones, nodes, cores, slack);
        let t = Instant::now();
        let layout = Layout::from_file(&f).expect("valid");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let table = &layout.tables()[0];
        let b = |w: usize| {
            if w <= table.depth() {
                format!("{:.3}", table.balance(w).max_over_share)
            } else {
                "-".to_owned()
            }
        };
        println!(
            "| {} | {zones} × {nodes} × {cores} | {ms:.0} | {} | {} | {} | {} |",
            layout.cores().len(),
            b(1),
            b(3),
            b(6),
            b(12)
        );
        for w in layout.warnings() {
            println!("  warning: {w}");
        }
        layouts.push((zones, f, layout));
    }
    println!();
    println!(
        "| cores | change | minimum | lower bound | moved | forced by the bound | \
         stateless: moved / min | rebalanced: moved / min | moved / lower bound | \
         moved / (min + forced) | spread repairs / shed | max/mean w=1 / w=6 / deepest | \
         stateless max/mean | fullest prefix: rebalanced / stateless | rebalance ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (zones, f, layout) in &layouts {
        for (what, new_file) in changes(*zones, f, layout) {
            report(layout, &new_file, what);
        }
    }
}

/// The changes measured on each shape: (label, new file).
fn changes(zones: usize, f: &LayoutFile, old: &Layout) -> Vec<(&'static str, LayoutFile)> {
    let mut out = Vec::new();
    let bumped = || {
        let mut g = f.clone();
        g.version += 1;
        g
    };
    // Add a core to the last node.
    let mut add = bumped();
    *add.nodes
        .last_mut()
        .expect("a node")
        .cores
        .as_mut()
        .expect("shorthand") += 1;
    out.push(("add 1 core", add));
    // Remove the last core of the first node.
    let mut remove = bumped();
    *remove.nodes[0].cores.as_mut().expect("shorthand") -= 1;
    out.push(("remove 1 core", remove));
    // Add a node like the others, in the first zone (only when zones stay balanced enough).
    if f.nodes.len() >= zones * 2 || zones == 1 {
        let mut grow = bumped();
        let mut node = grow.nodes[0].clone();
        node.id = 10_000;
        "10.9.9.9".clone_into(&mut node.address);
        grow.nodes.push(node);
        out.push(("add 1 node", grow));
    }
    // Double the weight of the first node's cores... of one core: list the first node's cores.
    let mut heavier = bumped();
    let n = heavier.nodes[0].cores.take().expect("shorthand");
    heavier.nodes[0].core_list = (0..n)
        .map(|i| placement::layout::CoreSpec {
            index: i,
            weight: Some(if i == 0 { 2 } else { 1 }),
            tier: None,
        })
        .collect();
    out.push(("weight 1 → 2", heavier));
    // Another tier's zone: an hdd node joins (its own zone); the nvme table must not move.
    let mut hdd = bumped();
    hdd.nodes.push(NodeSpec {
        id: 20_000,
        address: "10.9.9.10".into(),
        base_port: 7100,
        zone: "cold".into(),
        cores: Some(12),
        weight: None,
        removed: false,
        tier: Some(Tier::Hdd),
        core_list: Vec::new(),
    });
    // Pin the classes the default rule would move to hdd, so only the zone is new.
    for class in ["GLACIER", "DEEP_ARCHIVE"] {
        let scheme = old.policies()[class].scheme;
        let (ec, replicas) = match scheme {
            Scheme::Ec { k, m } => (Some(format!("{k}+{m}")), None),
            Scheme::Replicas(n) => (None, Some(n)),
        };
        hdd.policies.insert(
            class.into(),
            placement::layout::PolicySpec {
                ec,
                replicas,
                tier: Some(Tier::Nvme),
                ..Default::default()
            },
        );
    }
    hdd.policies.insert(
        "COLD".into(),
        placement::layout::PolicySpec {
            ec: Some("8+4".into()),
            tier: Some(Tier::Hdd),
            ..Default::default()
        },
    );
    out.push(("hdd zone added", hdd));
    out
}

fn report(old: &Layout, new_file: &LayoutFile, what: &str) {
    let stateless = Layout::from_file(new_file).expect("valid");
    let n = old.cores().len();
    let nvme = |l: &Layout| l.table(Tier::Nvme).map(placement::table::Table::depth);
    let nvme_classes = |l: &Layout| -> Vec<String> {
        l.policies()
            .iter()
            .filter(|(_, p)| p.tier == Tier::Nvme)
            .map(|(c, p)| format!("{c} {}", p.scheme))
            .collect()
    };
    if nvme(old) != nvme(&stateless) || nvme_classes(old) != nvme_classes(&stateless) {
        println!("| {n} | {what} | (default policies change) | | | | | | | | | | | | |");
        return;
    }
    let t = Instant::now();
    let new = Layout::from_file_and_state(new_file, Some(&old.state())).expect("valid");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let minimum = minimum(old, &new);
    let forced = forced(old, &new);
    let bound: u64 = old
        .state()
        .tables
        .iter()
        .filter_map(|t| {
            new.table(t.tier)
                .map(|n| placement::movement_lower_bound(t, n))
        })
        .sum();
    let (a, b) = (
        plan(old, &stateless).expect("plan"),
        plan(old, &new).expect("plan"),
    );
    let ratio = |moves: usize| {
        if minimum == 0.0 {
            format!("{moves} moves")
        } else {
            format!("{:.3}", moves as f64 / minimum)
        }
    };
    let table = new.table(Tier::Nvme).expect("nvme");
    let fresh = stateless.table(Tier::Nvme).expect("nvme");
    let stats = new.rebalance_stats()[0];
    let repairs = format!("{} / {}", stats.spread_repairs, stats.shed);
    println!(
        "| {n} | {what} | {minimum:.0} | {bound} | {} | {forced} | {} | {} ({:.2} %) | {} | {} | \
         {repairs} | {:.3} / {:.3} / {:.3} | {:.3} / {:.3} / {:.3} | {:.3} / {:.3} | {ms:.0} |",
        b.moves.len(),
        ratio(a.moves.len()),
        ratio(b.moves.len()),
        b.moved_fraction() * 100.0,
        if bound == 0 {
            format!("{} moves", b.moves.len())
        } else {
            format!("{:.3}", b.moves.len() as f64 / bound as f64)
        },
        if minimum == 0.0 {
            "-".to_owned()
        } else {
            format!("{:.3}", b.moves.len() as f64 / (minimum + forced as f64))
        },
        table.balance(1).max_over_share,
        table.balance(6.min(table.depth())).max_over_share,
        table.balance(table.depth()).max_over_share,
        fresh.balance(1).max_over_share,
        fresh.balance(6.min(fresh.depth())).max_over_share,
        fresh.balance(fresh.depth()).max_over_share,
        table.fullest_prefix(),
        fresh.fullest_prefix(),
    );
}

/// The least any table could move for the change, in fragments of the compared tiers: the
/// larger of what sat on cores that left and the growth of the cores whose fair share grew (an
/// added core: its fair share; a removed core: what it held; another tier: 0).
fn minimum(old: &Layout, new: &Layout) -> f64 {
    let mut total = 0.0;
    for t in old.tables() {
        let Some(n) = new.table(t.tier()) else {
            continue;
        };
        let slots = (t.depth() as u64 * u64::from(old.placement_groups())) as f64;
        let weight = |tab: &placement::table::Table| -> u64 {
            tab.members().iter().map(|m| u64::from(m.weight)).sum()
        };
        let (wo, wn) = (weight(t) as f64, weight(n) as f64);
        let loads = t.loads(t.depth());
        let (mut departed, mut grown) = (0.0, 0.0);
        for (i, m) in t.members().iter().enumerate() {
            if !n.members().iter().any(|x| x.id == m.id) {
                departed += loads[i] as f64;
            }
        }
        for m in n.members() {
            let before = t
                .members()
                .iter()
                .find(|x| x.id == m.id)
                .map_or(0.0, |x| f64::from(x.weight) / wo);
            let growth = f64::from(m.weight) / wn - before;
            if growth > 0.0 {
                grown += growth * slots;
            }
        }
        total += f64::max(departed, grown);
    }
    total
}

/// What the balance bound forces on its own: over the table prefixes, the largest total excess
/// of the old loads of cores whose share shrank over their new bound (each such slot must move,
/// whatever the new cores can take).
fn forced(old: &Layout, new: &Layout) -> u64 {
    let mut total = 0;
    for t in old.tables() {
        let Some(n) = new.table(t.tier()) else {
            continue;
        };
        let weight = |tab: &placement::table::Table| -> u64 {
            tab.members().iter().map(|m| u64::from(m.weight)).sum()
        };
        let (wo, wn) = (weight(t), weight(n));
        let mut worst = 0;
        for width in 1..=t.depth() {
            let loads = t.loads(width);
            let mut excess = 0;
            for (m, &load) in t.members().iter().zip(&loads) {
                let Some(x) = n.members().iter().find(|x| x.id == m.id) else {
                    continue;
                };
                if u64::from(x.weight) * wo < u64::from(m.weight) * wn {
                    let pgs = old.placement_groups();
                    let cap =
                        placement::table::capacity(width, pgs, x.weight, wn, n.slack_permille());
                    excess += load.saturating_sub(cap);
                }
            }
            worst = worst.max(excess);
        }
        total += worst;
    }
    total
}
