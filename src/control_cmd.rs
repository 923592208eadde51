//! `percore control status --data DIR`: what each voter of the control plane a clustered
//! node follows says now: reachable or not, the leader it knows, its applied log index and
//! the users in its map. `percore control voters --data DIR [ID[=HOST:PORT]…]`: the voters,
//! or a change of them. Both ask with the cluster secret (the node's `control.toml`).

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::control_plane::Settings;

#[derive(clap::Subcommand)]
pub enum ControlCommand {
    /// Each voter: up or unreachable, the leader it knows, its log index, its users.
    /// Exits 1 when a voter does not answer.
    Status {
        /// The data directory of a clustered node (`percore serve --config` with [control]).
        #[arg(long, default_value = "./percore-data")]
        data: PathBuf,
    },
    /// The control plane's voters; given a list, make it the voters (1, 3 or 5 of them). A
    /// node that is not yet a member is given with its control address, ID=HOST:PORT (its
    /// `[control] listen`, where it must be running); it catches up before it votes. To
    /// replace dead voter 3 by node 5: `percore control voters 1 2 5=10.0.0.5:9300`.
    Voters {
        /// The data directory of a clustered node (`percore serve --config` with [control]).
        #[arg(long, default_value = "./percore-data")]
        data: PathBuf,
        /// The new voters: ID, or ID=HOST:PORT for a node not yet a member.
        #[arg(value_parser = parse_voter)]
        voters: Vec<(u64, Option<String>)>,
    },
}

fn parse_voter(arg: &str) -> Result<(u64, Option<String>), String> {
    let (id, address) = match arg.split_once('=') {
        Some((id, address)) => (id, Some(address)),
        None => (arg, None),
    };
    let id = id
        .parse()
        .map_err(|_| format!("{id:?} is not a node id (ID or ID=HOST:PORT)"))?;
    if let Some(a) = address {
        if a.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("{a:?} is not IP:PORT"));
        }
    }
    Ok((id, address.map(str::to_owned)))
}

/// How long one voter may take to answer.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Prints every voter's state; `false` when one did not answer.
pub fn run(cmd: &ControlCommand) -> anyhow::Result<bool> {
    match cmd {
        ControlCommand::Status { data } => status(data),
        ControlCommand::Voters { data, voters } => change_voters(data, voters).map(|()| true),
    }
}

fn client(data: &Path) -> anyhow::Result<(Settings, tokio::runtime::Runtime)> {
    let Some(settings) = crate::control_plane::client_of(data)? else {
        bail!(
            "{}: no control.toml: this is not the data directory of a node with [control]",
            data.display()
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client's runtime")?;
    Ok((settings, runtime))
}

fn print_voters(voters: &BTreeMap<u64, String>) {
    let list: Vec<String> = voters.iter().map(|(id, a)| format!("{id} ({a})")).collect();
    println!("voters: {}", list.join(", "));
}

/// Prints the voters, or makes `wanted` the voters (when given).
fn change_voters(data: &Path, wanted: &[(u64, Option<String>)]) -> anyhow::Result<()> {
    let (settings, runtime) = client(data)?;
    let voters = settings.voters_from(None);
    if wanted.is_empty() {
        let current = runtime
            .block_on(control::follow::voters_any(&voters))
            .context("asking the voters")?;
        print_voters(&current);
        return Ok(());
    }
    let asked: BTreeMap<u64, Option<String>> = wanted.iter().cloned().collect();
    if asked.len() != wanted.len() {
        bail!("a node is named twice");
    }
    let changed = runtime
        .block_on(control::follow::change_voters_any(&voters, asked))
        .context("changing the voters")?;
    print_voters(&changed);
    println!(
        "every node learns the new voters from the control plane; keep [control.voters] in new \
         nodes' configs up to date (any voter that answers will do)"
    );
    Ok(())
}

fn status(data: &Path) -> anyhow::Result<bool> {
    let (settings, runtime) = client(data)?;
    let mut all_up = true;
    let mut members = None;
    let mut newest: Option<(u64, control::ClusterMap)> = None;
    for (id, address) in &settings.voters {
        let mut peer = control::network::Peer::new(*id, address.clone(), settings.secret.clone());
        let asked =
            runtime.block_on(async { tokio::time::timeout(ASK_TIMEOUT, peer.watch_map(0)).await });
        match asked {
            Ok(Ok(w)) => {
                println!(
                    "voter {id} {address}: up, leader {}, log index {}, users {}",
                    w.leader
                        .map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
                    w.index,
                    w.map.users.len()
                );
                if newest.as_ref().is_none_or(|(i, _)| w.index > *i) {
                    members = Some(w.voters);
                    newest = Some((w.index, w.map));
                }
            }
            Ok(Err(e)) => {
                all_up = false;
                println!("voter {id} {address}: unreachable ({e})");
            }
            Err(_) => {
                all_up = false;
                println!(
                    "voter {id} {address}: unreachable (no answer within {}s)",
                    ASK_TIMEOUT.as_secs()
                );
            }
        }
    }
    let members = members.filter(|m| !m.is_empty());
    if let Some(members) = &members {
        print_voters(members);
    }
    if let Some((_, map)) = newest {
        print_layouts(&map);
        for id in removed_voters(&map, members.as_ref()) {
            println!(
                "node {id}: removed from the layout but still a voter of the control plane: \
                 replace it there (`percore control voters`, README \"Replace a dead voter\")"
            );
        }
    }
    Ok(all_up)
}

/// The voters of `members` that the map's current layout marks removed.
fn removed_voters(map: &control::ClusterMap, members: Option<&BTreeMap<u64, String>>) -> Vec<u64> {
    let (Some(members), Some(layout)) =
        (members, map.current_layout().and_then(|l| l.layout().ok()))
    else {
        return Vec::new();
    };
    layout
        .nodes()
        .iter()
        .filter(|n| n.removed && members.contains_key(&n.id))
        .map(|n| n.id)
        .collect()
}

/// The map's layout and the change in progress: what an operator growing, shrinking, draining
/// or replacing nodes watches.
pub fn print_layouts(map: &control::ClusterMap) {
    use control::map::GroupPhase;
    if map.current == 0 {
        println!("layout: none in the map yet (the nodes route by their layout files)");
        for (id, d) in &map.demoted {
            print_demoted(*id, *d);
        }
        return;
    }
    println!("layout: version {}", map.current);
    let layout = |v: u64| map.layouts.get(&v).and_then(|l| l.layout().ok());
    let in_progress = map.change.as_ref().filter(|c| !c.is_done());
    if let Some(c) = &map.change {
        let count = |p: GroupPhase| c.groups_in(p);
        let state = if c.is_done() { "done" } else { "in progress" };
        println!(
            "change: version {} -> {} {state}: {} of {} placement groups done ({} pending, {} \
             moving, {} handing over, {} cut over)",
            c.from_version,
            c.to_version,
            count(GroupPhase::Done),
            c.groups.len(),
            count(GroupPhase::Pending),
            count(GroupPhase::Moving),
            count(GroupPhase::Handoff),
            count(GroupPhase::CutOver),
        );
        // Nodes the change deletes from the file (the last ones): when they may be stopped.
        let nodes = |v: u64| -> Vec<u64> {
            layout(v)
                .map(|l| l.nodes().iter().map(|n| n.id).collect())
                .unwrap_or_default()
        };
        let staying = nodes(c.to_version);
        for node in nodes(c.from_version) {
            if staying.contains(&node) {
                continue;
            }
            if c.is_done() {
                println!("node {node}: left the layout, its data moved: it can be stopped");
            } else {
                println!(
                    "node {node}: leaving the layout: do not stop it before the change is done \
                     (it may hold the only copies of what has not moved yet)"
                );
            }
        }
    }
    let Some(current) = layout(map.current) else {
        return;
    };
    // The layout the change in progress starts from: what a node was before it.
    let before = in_progress.and_then(|c| layout(c.from_version));
    let drained = |l: &placement::Layout, id: u64| {
        l.cores()
            .iter()
            .filter(|c| l.nodes()[c.node as usize].id == id)
            .all(|c| c.weight == 0)
    };
    for node in current.nodes() {
        let id = node.id;
        // Whether the change in progress removes or drains it (its data moves now).
        let changing = before.as_ref().is_some_and(|b| {
            let was = b.nodes().iter().find(|n| n.id == id);
            if node.removed {
                !was.is_some_and(|n| n.removed)
            } else {
                was.is_some() && !drained(b, id)
            }
        });
        match (node.removed, drained(&current, id), changing) {
            (true, _, true) => println!(
                "node {id}: removed: the change rebuilds what it held from the other copies; \
                 it must stay stopped"
            ),
            (true, _, false) => {
                println!("node {id}: removed: it can be stopped and its data wiped");
            }
            (false, true, true) => println!(
                "node {id}: draining: do not stop it before the change is done (it may hold \
                 the only copies of what has not moved yet)"
            ),
            (false, true, false) => println!(
                "node {id}: drained, it holds no data: `percore node remove {id}` takes it out"
            ),
            (false, false, _) => {}
        }
        if let Some(d) = map.demoted.get(&id).filter(|_| !node.removed) {
            print_demoted(id, *d);
        }
    }
}

fn print_demoted(id: u64, d: control::map::Demotion) {
    match d {
        control::map::Demotion::Demoted => println!(
            "node {id}: demoted: the control plane's leader could not reach it past its \
             lease, so its cores no longer serialize conditional writes (the next core of each \
             of its placement groups does); it still stores and serves data"
        ),
        control::map::Demotion::Restoring => println!(
            "node {id}: restoring: it is back; once every node has applied that, it \
             serializes conditional writes again (those of its placement groups wait until \
             then)"
        ),
    }
}
