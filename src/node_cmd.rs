//! `percore node add|drain|remove|replace`: membership changes proposed to a cluster's control
//! plane as the next layout version (README, "Grow or shrink a running cluster"). Each edits
//! the map's current layout file, then plans and proposes it as `layout apply --config` does
//! (`layout_cmd::Proposal`). Core numbers never change: a drained node keeps its cores at
//! weight 0, a removed one stays in the file marked `removed` (hints and the nodes' views name
//! cores by their number).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use placement::layout::NodeSpec;
use placement::{Layout, LayoutFile};

use crate::layout_cmd::Proposal;

#[derive(Subcommand)]
pub enum NodeAction {
    /// Add a node to the cluster: the next layout version gives it its share of the placement
    /// groups. Writes that layout file (--write) to start the new node with.
    Add {
        #[command(flatten)]
        new: NewNode,
        #[command(flatten)]
        common: Common,
    },
    /// Drain a node (or with --zone every node of a zone): weight 0 on its cores, so the next
    /// layout version moves everything off it. `control status` says when it is drained.
    Drain {
        /// The node's id.
        #[arg(required_unless_present = "zone", conflicts_with = "zone")]
        id: Option<u64>,
        /// Drain every node of this zone.
        #[arg(long)]
        zone: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Take a drained node out of the cluster: nothing connects to it any more, and it can be
    /// stopped and wiped. Refused while it still holds data, unless --dead.
    Remove {
        /// The node's id.
        id: u64,
        /// The node is dead and will not come back: the next version rebuilds what it held
        /// from the other copies. Refused when some placement group keeps more of its
        /// fragments on the node than its policy tolerates losing.
        #[arg(long)]
        dead: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Replace a dead node by a new one in one layout version: the dead node is removed, the
    /// new one takes its placement groups, rebuilt from the other copies. Writes that layout
    /// file (--write) to start the new node with.
    Replace {
        /// The dead node's id.
        dead: u64,
        #[command(flatten)]
        new: NewNode,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
pub struct Common {
    /// A node's config file (with `[control]`): the change is proposed through its control
    /// plane.
    #[arg(long)]
    config: PathBuf,
    /// Moves of the plan to list (0: only the summary).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the plan without proposing it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
pub struct NewNode {
    /// The new node's id.
    #[arg(long = "id")]
    id: u64,
    /// Its address (IP or host name).
    #[arg(long)]
    address: String,
    /// The port of its core 0 (core i listens on this port + i).
    #[arg(long)]
    base_port: u16,
    /// Its number of cores.
    #[arg(long, default_value_t = 1)]
    cores: u16,
    /// Its failure domain.
    #[arg(long, default_value = "default")]
    zone: String,
    /// Weight of each of its cores.
    #[arg(long)]
    weight: Option<u32>,
    /// Where to write the new layout file, for the new node's config (`layout = FILE`).
    #[arg(long)]
    write: PathBuf,
}

impl NewNode {
    fn spec(&self) -> NodeSpec {
        NodeSpec {
            id: self.id,
            address: self.address.clone(),
            base_port: self.base_port,
            zone: self.zone.clone(),
            cores: Some(self.cores),
            weight: self.weight,
            removed: false,
            tier: None,
            core_list: Vec::new(),
        }
    }
}

pub fn run(action: &NodeAction) -> anyhow::Result<()> {
    let common = match action {
        NodeAction::Add { common, .. }
        | NodeAction::Drain { common, .. }
        | NodeAction::Remove { common, .. }
        | NodeAction::Replace { common, .. } => common,
    };
    let proposal = Proposal::open(&common.config)?;
    let mut file = proposal.base_file()?;
    file.version = proposal.base.version() + 1;
    let (what, write) = match action {
        NodeAction::Add { new, .. } => {
            add(&mut file, new)?;
            (format!("adding node {}", new.id), Some(&new.write))
        }
        NodeAction::Drain { id, zone, .. } => (drain(&mut file, *id, zone.as_deref())?, None),
        NodeAction::Remove { id, dead, .. } => {
            remove(&proposal, &mut file, *id, *dead)?;
            (format!("removing node {id}"), None)
        }
        NodeAction::Replace { dead, new, .. } => {
            remove(&proposal, &mut file, *dead, true)?;
            add(&mut file, new)?;
            (
                format!("replacing node {dead} by node {}", new.id),
                Some(&new.write),
            )
        }
    };
    let text = file.to_toml_string();
    let committed = proposal.submit(&text, &what, common.limit, common.dry_run)?;
    let gone = match action {
        NodeAction::Remove { id, .. } => Some(*id),
        NodeAction::Replace { dead, .. } => Some(*dead),
        _ => None,
    };
    if let Some(id) = gone.filter(|_| committed.is_some()) {
        if proposal.is_voter(id)? {
            println!(
                "node {id} is a voter of the control plane: replace it there too, by a node \
                 started with `[control] listen = \"HOST:PORT\"`: `percore control voters \
                 --data DATA ID… NEW=HOST:PORT` (README, \"Replace a dead node\")"
            );
        }
    }
    if let (Some(path), Some(version)) = (write, committed) {
        crate::layout_cmd::write_atomically(path, text.as_bytes())?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        println!(
            "{} holds layout version {version}: start the new node with `layout = \"{}\"` in \
             its config",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

fn node_mut(file: &mut LayoutFile, id: u64) -> anyhow::Result<&mut NodeSpec> {
    let version = file.version - 1;
    file.nodes
        .iter_mut()
        .find(|n| n.id == id)
        .with_context(|| format!("node {id} is not in layout version {version}"))
}

fn add(file: &mut LayoutFile, new: &NewNode) -> anyhow::Result<()> {
    if file.nodes.iter().any(|n| n.id == new.id) {
        bail!(
            "node {} is in layout version {} already (a removed node's id is not reused)",
            new.id,
            file.version - 1
        );
    }
    file.nodes.push(new.spec());
    Ok(())
}

/// Weight 0 on every core of the node (or of the zone's nodes); returns what it does.
fn drain(file: &mut LayoutFile, id: Option<u64>, zone: Option<&str>) -> anyhow::Result<String> {
    let version = file.version - 1;
    let ids: Vec<u64> = match (id, zone) {
        (Some(id), _) => vec![node_mut(file, id)?.id],
        (None, Some(zone)) => file
            .nodes
            .iter()
            .filter(|n| n.zone == zone && !n.removed)
            .map(|n| n.id)
            .collect(),
        (None, None) => bail!("name a node or a zone"),
    };
    if ids.is_empty() {
        bail!("no node of layout version {version} is in zone {zone:?}");
    }
    for id in &ids {
        let node = node_mut(file, *id)?;
        if node.removed {
            bail!("node {id} was removed from the cluster already");
        }
        node.weight = Some(0);
        for core in &mut node.core_list {
            core.weight = Some(0);
        }
    }
    Ok(match zone {
        Some(zone) => format!("draining zone {zone} (nodes {ids:?})"),
        None => format!("draining node {}", ids[0]),
    })
}

/// Marks the node removed: refused while it holds data (a drained node does not, once its
/// change is done), unless `dead` and every placement group can lose its fragments there.
fn remove(proposal: &Proposal, file: &mut LayoutFile, id: u64, dead: bool) -> anyhow::Result<()> {
    let base = &proposal.base;
    let node = node_mut(file, id)?;
    if node.removed {
        bail!("node {id} was removed from the cluster already");
    }
    node.removed = true;
    if let Some(change) = proposal.map.change.as_ref().filter(|c| !c.is_done()) {
        bail!(
            "a layout change (version {} to {}) is in progress, {} placement groups left: wait \
             until `percore control status` says it is done",
            change.from_version,
            change.to_version,
            change.groups_left()
        );
    }
    let holds = holdings(base, id);
    if holds.is_empty() {
        return Ok(());
    }
    if !dead {
        bail!(
            "node {id} still holds data ({}): drain it first (`percore node drain {id}`), or, \
             if it is dead, remove it with --dead",
            holds[0].0
        );
    }
    if let Some((what, _)) = holds.iter().find(|(_, lost)| *lost) {
        bail!(
            "node {id} holds {what}: removing it would lose data. Bring it back and drain it \
             instead"
        );
    }
    Ok(())
}

/// What node `id` holds in `layout`, per storage class and scheme: a description of the worst
/// placement group, and whether losing the node loses that group's data (more fragments on it
/// than the scheme tolerates, or every metadata replica).
fn holdings(layout: &Layout, id: u64) -> Vec<(String, bool)> {
    let on_node = |cores: &[placement::CoreId]| cores.iter().filter(|c| c.node == id).count();
    let mut out = Vec::new();
    for (class, policy) in layout.policies() {
        for scheme in policy.schemes() {
            let p = placement::Policy {
                scheme,
                tier: policy.tier,
            };
            let worst = (0..layout.placement_groups())
                .filter_map(|pg| {
                    let placed = layout.cores_for(pg, &p).ok()?;
                    Some((on_node(placed.cores), pg))
                })
                .max();
            if let Some((n, pg)) = worst.filter(|(n, _)| *n > 0) {
                let lost = n > scheme.tolerance();
                out.push((
                    format!(
                        "{n} of the {} fragments of placement group {pg} under {class} ({scheme})",
                        scheme.width()
                    ),
                    lost,
                ));
            }
        }
    }
    // The metadata replicas (the first positions of STANDARD's row): the mover reads each
    // group's records from a read quorum of them.
    if let Some(standard) = layout.policies().get("STANDARD") {
        let meta = standard.depth().min(3);
        let quorum = meta / 2 + 1;
        let p = placement::Policy {
            scheme: placement::Scheme::Replicas(meta as u8),
            tier: standard.tier,
        };
        let worst = (0..layout.placement_groups())
            .filter_map(|pg| Some((on_node(layout.cores_for(pg, &p).ok()?.cores), pg)))
            .max();
        if let Some((n, pg)) = worst.filter(|(n, _)| *n > 0) {
            out.push((
                format!("{n} of the {meta} metadata replicas of placement group {pg}"),
                n > meta - quorum,
            ));
        }
    }
    out.sort_by_key(|(_, lost)| !lost);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(nodes: u64, extra: &str) -> LayoutFile {
        use std::fmt::Write as _;
        let mut text = String::from("format = 1\nversion = 1\nplacement_groups = 64\n");
        for n in 1..=nodes {
            let _ = write!(
                text,
                "[[node]]\nid = {n}\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 2\nzone = \
                 \"z{n}\"\n",
                7000 + 10 * n
            );
        }
        text.push_str(extra);
        toml::from_str(&text).unwrap()
    }

    fn layout(nodes: u64, extra: &str) -> Layout {
        Layout::from_file(&file(nodes, extra)).unwrap()
    }

    #[test]
    fn a_node_holding_what_its_policy_cannot_lose_is_reported_as_lost() {
        // Three replicas on three nodes: one node's loss loses nothing.
        let three = layout(3, "");
        let held = holdings(&three, 2);
        assert!(
            !held.is_empty() && held.iter().all(|(_, lost)| !lost),
            "{held:?}"
        );
        // One copy: the node holds the only copy of some groups.
        let single = layout(
            3,
            "[policy.STANDARD]\nreplicas = 1\n[policy.REDUCED_REDUNDANCY]\nreplicas = 1\n",
        );
        let held = holdings(&single, 2);
        assert!(held[0].1, "{held:?}");
        assert!(
            held[0].0.contains("STANDARD") || held[0].0.contains("REDUCED"),
            "{held:?}"
        );
    }

    #[test]
    fn drain_sets_weight_0_on_a_node_or_a_zone_and_add_refuses_a_known_id() {
        let mut f = file(4, "");
        f.version = 2;
        f.nodes[1].core_list = vec![placement::layout::CoreSpec {
            index: 0,
            weight: Some(3),
            tier: None,
        }];
        f.nodes[1].cores = None;
        assert_eq!(drain(&mut f, Some(2), None).unwrap(), "draining node 2");
        assert_eq!(f.nodes[1].weight, Some(0));
        assert_eq!(
            f.nodes[1].core_list[0].weight,
            Some(0),
            "explicit core weights too"
        );
        assert!(f
            .nodes
            .iter()
            .filter(|n| n.id != 2)
            .all(|n| n.weight.is_none()));
        let said = drain(&mut f, None, Some("z3")).unwrap();
        assert!(said.contains("zone z3") && said.contains("[3]"), "{said}");
        assert_eq!(f.nodes[2].weight, Some(0));
        assert!(drain(&mut f, None, Some("nowhere")).is_err());
        assert!(drain(&mut f, Some(9), None).is_err());
        f.nodes[3].removed = true;
        assert!(drain(&mut f, Some(4), None).is_err(), "a removed node");
        let new = NewNode {
            id: 1,
            address: "127.0.0.1".into(),
            base_port: 9000,
            cores: 2,
            zone: "z9".into(),
            weight: None,
            write: PathBuf::from("unused"),
        };
        assert!(add(&mut f, &new).is_err(), "node 1 exists");
        let new = NewNode { id: 9, ..new };
        add(&mut f, &new).unwrap();
        let drained = Layout::from_file(&f).unwrap();
        assert!(holdings(&drained, 2).is_empty() && holdings(&drained, 3).is_empty());
        assert!(!holdings(&drained, 9).is_empty());
    }

    #[test]
    fn a_drained_node_holds_nothing() {
        let mut f = file(4, "");
        f.nodes[3].weight = Some(0);
        let drained = Layout::from_file(&f).unwrap();
        assert!(holdings(&drained, 4).is_empty());
        assert!(!holdings(&drained, 3).is_empty());
    }
}
