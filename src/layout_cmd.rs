//! `percore layout check|show|diff|apply`: the operator's view of a layout file and of the
//! cluster's placement state (the stored PG tables; see placement/README.md). Reads files,
//! prints, and `apply` writes the new state atomically; all placement logic is in the
//! `placement` crate.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use placement::{plan, plan_states, Layout, Plan, Scheme, State};

#[derive(Subcommand)]
pub enum LayoutCommand {
    /// Validate a layout file and print a summary: policies, the spread each storage class
    /// achieves, the balance of the PG tables, and warnings.
    Check {
        /// The layout file (TOML).
        file: PathBuf,
    },
    /// Print the policies of a layout and, with --bucket and --key, where an object lands.
    Show {
        /// The layout file (TOML).
        file: PathBuf,
        #[arg(long, requires = "key")]
        bucket: Option<String>,
        #[arg(long, requires = "bucket")]
        key: Option<String>,
        /// Storage class of the object.
        #[arg(long, default_value = "STANDARD")]
        class: String,
        /// Size of the object in bytes (small objects are replicated).
        #[arg(long, default_value_t = 1 << 20)]
        size: u64,
    },
    /// Print the movement plan from OLD to NEW: a summary and the first moves. Each is a layout
    /// file (its stateless tables) or a state file; a state OLD and a layout NEW preview what
    /// `apply` would do.
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Moves to list (0: only the summary).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Move the cluster to the layout file NEW: rebalance the PG tables from their previous
    /// version with the fewest moves (or, with no state yet, start from the stateless tables)
    /// and print the plan. With --config (a node of a cluster with a control plane), propose
    /// the new version to the control plane, whose nodes move the data live; with --state,
    /// write the new tables to that state file.
    Apply {
        /// The state file (the stored PG tables); created if missing.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        state: Option<PathBuf>,
        /// A node's config file (with `[control]`): propose through its control plane.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The new layout file (TOML); its version must be greater than the state's.
        new: PathBuf,
        /// Moves to list (0: only the summary).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the plan without writing the state.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(cmd: &LayoutCommand) -> anyhow::Result<()> {
    match cmd {
        LayoutCommand::Check { file } => check(file),
        LayoutCommand::Show {
            file,
            bucket,
            key,
            class,
            size,
        } => {
            let layout = load(file)?;
            print_policies(&layout);
            if let (Some(bucket), Some(key)) = (bucket, key) {
                locate(&layout, bucket, key, class, *size)?;
            }
            Ok(())
        }
        LayoutCommand::Diff { old, new, limit } => diff(old, new, *limit),
        LayoutCommand::Apply {
            state,
            config,
            new,
            limit,
            dry_run,
        } => match (state, config) {
            (Some(state), _) => apply(state, new, *limit, *dry_run),
            (None, Some(config)) => propose(config, new, *limit, *dry_run),
            (None, None) => unreachable!("clap requires --state or --config"),
        },
    }
}

fn load(path: &Path) -> anyhow::Result<Layout> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Layout::from_toml_str(&text)
        .with_context(|| format!("{} is not a valid layout", path.display()))
}

fn check(path: &Path) -> anyhow::Result<()> {
    let layout = load(path)?;
    let mut tiers: BTreeMap<String, usize> = BTreeMap::new();
    for c in layout.cores() {
        *tiers.entry(c.tier.to_string()).or_default() += 1;
    }
    let tiers: Vec<String> = tiers.iter().map(|(t, n)| format!("{n} {t}")).collect();
    println!(
        "{}: layout version {}, {} placement groups, balance slack {} %",
        path.display(),
        layout.version(),
        layout.placement_groups(),
        layout.balance_slack_percent()
    );
    println!(
        "  {} zones, {} nodes, {} cores ({})",
        layout.zones().len(),
        layout.nodes().len(),
        layout.cores().len(),
        tiers.join(", ")
    );
    print_policies(&layout);
    println!("spread (the worst placement group of each class):");
    for r in layout.reports() {
        let [zone, node, core] = r.pgs_distinct;
        println!(
            "  {:<14} {:<12} {}  [PGs in distinct zones {zone}, nodes {node}, cores only {core}]",
            r.class,
            r.scheme.to_string(),
            r.worst
        );
    }
    println!("balance (fullest core / fair share, by table prefix):");
    for t in layout.tables() {
        let widths: Vec<String> = (1..=t.depth())
            .filter(|w| [1, 2, 3, 4, 6, 8, 12, 16, 24, 32].contains(w) || *w == t.depth())
            .map(|w| format!("w={w} {:.3}", t.balance(w).max_over_share))
            .collect();
        println!(
            "  {}: {} cores, {} positions: {}",
            t.tier(),
            t.members().len(),
            t.depth(),
            widths.join(", ")
        );
    }
    for w in layout.warnings() {
        println!("WARNING: {w}");
    }
    println!("ok");
    Ok(())
}

fn print_policies(layout: &Layout) {
    println!("policies:");
    for (class, p) in layout.policies() {
        let small = match p.scheme {
            Scheme::Ec { .. } if p.small_object_bytes > 0 => format!(
                ", {} under {} bytes",
                Scheme::Replicas(p.small_replicas),
                p.small_object_bytes
            ),
            _ => String::new(),
        };
        let origin = if p.explicit {
            "layout file"
        } else {
            "default rule"
        };
        println!("  {class:<14} {} on {}{small} ({origin})", p.scheme, p.tier);
    }
}

fn locate(layout: &Layout, bucket: &str, key: &str, class: &str, size: u64) -> anyhow::Result<()> {
    let pg = layout.pg_of(bucket.as_bytes(), key.as_bytes());
    let policy = layout.policy_for(class, size)?;
    let placed = layout.cores_for(pg, &policy)?;
    println!(
        "object {bucket}/{key} ({size} bytes, {class}): placement group {pg}, {} on {}",
        policy.scheme, policy.tier
    );
    println!("  {}", placed.spread);
    for (i, id) in placed.cores.iter().enumerate() {
        let core = &layout.cores()[layout.core_index(*id).expect("a placed core exists")];
        let (address, port) = layout.endpoint(*id).expect("a placed core exists");
        let role = if i == 0 { " (primary)" } else { "" };
        println!(
            "  fragment {i}: core {id} at {address}:{port}, zone {}{role}",
            layout.zones()[core.zone as usize]
        );
    }
    Ok(())
}

/// A file given to `diff`: a layout (TOML) or a state (stored tables).
enum Input {
    Layout(Box<Layout>),
    State(State),
}

fn load_input(path: &Path) -> anyhow::Result<Input> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if State::is_state(&bytes) {
        let state = State::decode(&bytes)
            .with_context(|| format!("{} is not a valid state file", path.display()))?;
        return Ok(Input::State(state));
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is neither a layout nor a state file", path.display()))?;
    let layout = Layout::from_toml_str(&text)
        .with_context(|| format!("{} is not a valid layout", path.display()))?;
    Ok(Input::Layout(Box::new(layout)))
}

fn diff(old: &Path, new: &Path, limit: usize) -> anyhow::Result<()> {
    let p = match (load_input(old)?, load_input(new)?) {
        (Input::Layout(a), Input::Layout(b)) => {
            if a.policies() != b.policies() {
                println!(
                    "note: policies differ; they apply to objects written from the new version on"
                );
            }
            plan(&a, &b)?
        }
        (Input::State(a), Input::State(b)) => plan_states(&a, &b)?,
        (Input::Layout(a), Input::State(b)) => plan_states(&a.state(), &b)?,
        (Input::State(a), Input::Layout(_)) => {
            // Rebalance from the state, as `apply` would.
            let text = std::fs::read_to_string(new)?;
            let b = Layout::from_toml_str_and_state(&text, Some(&a))
                .with_context(|| format!("{} cannot follow {}", new.display(), old.display()))?;
            plan_states(&a, &b.state())?
        }
    };
    print_plan(&p, limit);
    Ok(())
}

fn print_plan(p: &Plan, limit: usize) {
    println!(
        "layout {} -> {}: {} of {} fragment slots move ({:.2} %); lower bound for the new loads: {}",
        p.old_version,
        p.new_version,
        p.moves.len(),
        p.slots,
        p.moved_fraction() * 100.0,
        p.lower_bound
    );
    let per_core = p.per_core();
    let mut busiest: Vec<_> = per_core.iter().collect();
    busiest.sort_by_key(|(id, (i, o))| (std::cmp::Reverse(i + o), **id));
    for (id, (received, given)) in busiest.iter().take(limit) {
        println!("  core {id}: receives {received}, gives {given}");
    }
    for m in p.moves.iter().take(limit) {
        println!(
            "  move {} pg {} fragment {}: {} -> {}",
            m.tier, m.pg, m.fragment, m.from, m.to
        );
    }
    if p.moves.len() > limit {
        println!("  ... {} more moves", p.moves.len() - limit);
    }
}

fn apply(state_path: &Path, new: &Path, limit: usize, dry_run: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(new).with_context(|| format!("reading {}", new.display()))?;
    let previous = match std::fs::read(state_path) {
        Ok(bytes) => Some(
            State::decode(&bytes)
                .with_context(|| format!("{} is not a valid state file", state_path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", state_path.display()));
        }
    };
    let layout = Layout::from_toml_str_and_state(&text, previous.as_ref())
        .with_context(|| format!("{} is not a valid next layout", new.display()))?;
    let state = layout.state();
    match &previous {
        None => println!(
            "{}: no state yet: the stateless tables of layout version {} start the cluster",
            state_path.display(),
            layout.version()
        ),
        Some(old) if old.layout_version == layout.version() => {
            println!(
                "{} already holds the tables of layout version {}: nothing to do",
                state_path.display(),
                layout.version()
            );
            return Ok(());
        }
        Some(old) => {
            print_plan(&plan_states(old, &state)?, limit);
            for (table, stats) in layout.tables().iter().zip(layout.rebalance_stats()) {
                println!(
                    "  {}: {} slots without a core, {} spread repairs, {} balance moves \
                     ({} shed over the bound, {} position swaps), {} taken back, {} left \
                     unbalanced by spread",
                    table.tier(),
                    stats.orphaned,
                    stats.spread_repairs,
                    stats.balance_moves,
                    stats.shed,
                    stats.swaps,
                    stats.undone,
                    stats.stuck
                );
            }
        }
    }
    for w in layout.warnings() {
        println!("WARNING: {w}");
    }
    if dry_run {
        println!("dry run: {} not written", state_path.display());
        return Ok(());
    }
    write_atomically(state_path, &state.encode())?;
    println!(
        "{}: tables of layout version {} written",
        state_path.display(),
        layout.version()
    );
    Ok(())
}

/// `apply --config`: the next layout version proposed to the control plane of the node whose
/// config is `config`, planned from the map's current version.
fn propose(config: &Path, new: &Path, limit: usize, dry_run: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(new).with_context(|| format!("reading {}", new.display()))?;
    Proposal::open(config)?.submit(&text, &new.display().to_string(), limit, dry_run)?;
    Ok(())
}

/// A layout change proposed through a node's control plane (`layout apply --config`, `node
/// add|drain|remove`): the map's current layout, and the next version planned from it. The
/// map's first version is the node's own layout (its file and state), proposed first: the file
/// workflow bootstraps it.
pub struct Proposal {
    runtime: tokio::runtime::Runtime,
    voters: control::Voters,
    /// The map's current layout (or the node's own, before the map has one) and its file.
    pub base: Layout,
    pub base_text: String,
    /// The map as read.
    pub map: control::ClusterMap,
    first: Option<control::map::LayoutVersion>,
}

impl Proposal {
    /// Reads the replicated map through the control plane `config` names.
    pub fn open(config: &Path) -> anyhow::Result<Proposal> {
        use control::map::LayoutVersion;
        let file = crate::node_config::NodeFile::load(config)?;
        let control = file
            .control
            .as_ref()
            .with_context(|| {
                format!(
                    "{} has no [control]: a cluster without a control plane changes layouts \
                     with `layout apply --state` and a restart",
                    config.display()
                )
            })?
            .resolve(Path::new("/"))
            .with_context(|| config.display().to_string())?;
        let (layout_path, own) = crate::membership::layout_of(&file, config)?;
        let own_text = std::fs::read_to_string(&layout_path)
            .with_context(|| format!("reading {}", layout_path.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the client's runtime")?;
        let voters = control.voters_from(None);
        let map = runtime
            .block_on(control::follow::read_any(&voters))
            .context("reading the replicated map")?;
        let (base, base_text, first) = if let Some(v) = map.current_layout() {
            let layout = v.layout().map_err(anyhow::Error::msg)?;
            (layout, v.layout_toml.clone(), None)
        } else {
            let first = LayoutVersion::of(&own_text, &own);
            (own, own_text, Some(first))
        };
        Ok(Proposal {
            runtime,
            voters,
            base,
            base_text,
            map,
            first,
        })
    }

    /// Whether node `id` is a voter of the control plane, as a voter that answers says.
    pub fn is_voter(&self, id: u64) -> anyhow::Result<bool> {
        let voters = self
            .runtime
            .block_on(control::follow::voters_any(&self.voters))
            .context("asking the voters")?;
        Ok(voters.contains_key(&id))
    }

    /// The base layout's file, to edit into the next version.
    pub fn base_file(&self) -> anyhow::Result<placement::LayoutFile> {
        toml::from_str(&self.base_text).context("the map's layout file does not parse")
    }

    /// Plans `text` (named `what`) from the base, refuses what the nodes could not move, and
    /// proposes it (after the node's own layout when the map has none). Returns the version
    /// committed, `None` on a dry run.
    pub fn submit(
        &self,
        text: &str,
        what: &str,
        limit: usize,
        dry_run: bool,
    ) -> anyhow::Result<Option<u64>> {
        use control::map::{Applied, Command, LayoutVersion};
        let base = &self.base;
        let next = Layout::from_toml_str_and_state(text, Some(&base.state()))
            .with_context(|| format!("{what} is not a valid next layout"))?;
        print_plan(&plan_states(&base.state(), &next.state())?, limit);
        for w in next.warnings() {
            println!("WARNING: {w}");
        }
        // What the nodes could not route: refused here, before a change that would never move.
        if base.policies().get("STANDARD") != next.policies().get("STANDARD") {
            anyhow::bail!(
                "{what} changes the STANDARD policy: the nodes cannot move data to another \
                 policy while they serve"
            );
        }
        let next = std::sync::Arc::new(next);
        if let Err(e) =
            cluster::moves::Transition::new(std::sync::Arc::new(base.clone()), next.clone())
        {
            anyhow::bail!("{what}: {e}");
        }
        // A node of a build that cannot decode the change's map entries would stop following
        // the map in the middle of the change (an upgrade under way).
        let levels = control_levels(base.nodes().iter().chain(next.nodes()));
        if let Some(refusal) = mixed_builds(&levels) {
            anyhow::bail!("{refusal}");
        }
        if dry_run {
            println!("dry run: nothing proposed");
            return Ok(None);
        }
        let commit = |command: Command| -> anyhow::Result<Applied> {
            match self
                .runtime
                .block_on(control::follow::propose_any(&self.voters, command))
            {
                Ok(Ok(applied)) => Ok(applied),
                Ok(Err(refusal)) => anyhow::bail!("refused by the cluster: {refusal}"),
                Err(e) => Err(e).context("the control plane did not commit the layout"),
            }
        };
        if let Some(first) = &self.first {
            let version = first.version;
            commit(Command::ProposeLayout(first.clone()))?;
            println!(
                "layout version {version} (the nodes' until now) committed to the control plane"
            );
        }
        match commit(Command::ProposeLayout(LayoutVersion::of(text, &next)))? {
            Applied::LayoutCommitted {
                version,
                groups_moving: 0,
            } => println!("layout version {version} committed: no placement group moves"),
            Applied::LayoutCommitted {
                version,
                groups_moving,
            } => println!(
                "layout version {version} committed: {groups_moving} placement groups move; \
                 the nodes move the data now (`percore control status --data DATA` shows how \
                 far)"
            ),
            other => println!("committed: {other:?}"),
        }
        Ok(Some(next.version()))
    }
}

/// Each node's answer to `ControlLevel` (once per node id, in order): its build's level, 0 for a
/// build from before the question (it refuses the request's kind), or why it did not answer.
fn control_levels<'a>(
    nodes: impl Iterator<Item = &'a placement::Node>,
) -> Vec<(u64, Result<u64, String>)> {
    let mut asked = std::collections::BTreeSet::new();
    nodes
        .filter(|n| asked.insert(n.id))
        .map(|n| (n.id, control_level_of(&n.address, n.base_port)))
        .collect()
}

/// The control level of the node whose first core listens at `address`:`port`.
fn control_level_of(address: &str, port: u16) -> Result<u64, String> {
    use std::net::ToSocketAddrs;
    let addr = (address, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    // A short connect first: the blocking client's own waits 5 s for a silent host.
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut client =
        engine::client::BlockingClient::connect(addr, 0).map_err(|e| format!("{addr}: {e}"))?;
    // A node that takes the connection and never answers (hung) counts as not answering.
    client
        .set_read_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| format!("{addr}: {e}"))?;
    match client.call(&proto::Request::ControlLevel) {
        Ok(proto::Response::ControlLevel(level)) => Ok(level),
        Ok(proto::Response::Error { code, message })
            if proto::unknown_kind_refused(code, &message).is_some() =>
        {
            Ok(0)
        }
        Ok(other) => Err(format!("{addr}: unexpected answer {other:?}")),
        Err(e) => Err(format!("{addr}: {e}")),
    }
}

/// Why a layout change must wait, if the nodes that answered run builds of different control
/// levels: a node of the older one could not decode the change's entries and would stop
/// following the map in the middle of it. Nodes that did not answer are not counted (a change
/// may be what removes a dead node).
fn mixed_builds(levels: &[(u64, Result<u64, String>)]) -> Option<String> {
    let answered: Vec<(u64, u64)> = levels
        .iter()
        .filter_map(|(node, l)| l.as_ref().ok().map(|l| (*node, *l)))
        .collect();
    let min = answered.iter().map(|(_, l)| *l).min()?;
    let max = answered.iter().map(|(_, l)| *l).max()?;
    if min == max {
        return None;
    }
    let each: Vec<String> = answered
        .iter()
        .map(|(node, l)| match l {
            0 => format!("node {node}: a build from before levels"),
            l => format!("node {node}: level {l}"),
        })
        .collect();
    Some(format!(
        "the nodes run builds that read different control-map encodings ({}): a node of the \
         older build could not follow this change; finish upgrading every node (one at a time \
         works) and apply again",
        each.join(", ")
    ))
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, renames it over `path` and
/// syncs the directory: a crash leaves the old state or the new one, never a torn file (and a
/// torn file would fail the state's length and checksum checks anyway).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_waits_while_the_nodes_builds_differ() {
        let down = || Err("no answer".to_string());
        assert_eq!(mixed_builds(&[(1, Ok(1)), (2, Ok(1)), (3, down())]), None);
        assert_eq!(
            mixed_builds(&[(1, Ok(0)), (2, Ok(0))]),
            None,
            "one build, older"
        );
        assert_eq!(
            mixed_builds(&[(1, down()), (2, down())]),
            None,
            "nobody answered"
        );
        let refusal = mixed_builds(&[(1, Ok(1)), (2, Ok(0)), (3, down())]).expect("mixed");
        assert!(
            refusal.contains("node 1: level 1, node 2: a build from before levels)"),
            "{refusal}"
        );
    }

    /// A port that answers the first frame as a build from before `ControlLevel` does: an
    /// error under request id 0 naming the unknown kind, then the connection closed.
    fn older_build_port() -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            // The caller's first connection only probes the port: it closes without a frame.
            let (mut conn, frame) = loop {
                let (mut conn, _) = listener.accept().unwrap();
                let mut inbuf = bytes::BytesMut::new();
                let mut chunk = [0u8; 4096];
                let frame = loop {
                    if let Some(f) = proto::decode_frame(&mut inbuf).unwrap() {
                        break Some(f);
                    }
                    let n = conn.read(&mut chunk).unwrap();
                    if n == 0 {
                        break None;
                    }
                    inbuf.extend_from_slice(&chunk[..n]);
                };
                if let Some(f) = frame {
                    break (conn, f);
                }
            };
            assert_eq!(
                frame.message,
                proto::Message::Request(proto::Request::ControlLevel)
            );
            let refusal = proto::Response::Error {
                code: proto::ErrorCode::BadRequest,
                message: "unknown message kind 24".into(),
            };
            let mut out = bytes::BytesMut::new();
            proto::encode_response(0, 0, &refusal, &mut out);
            conn.write_all(&out).unwrap();
        });
        port
    }

    #[test]
    fn nodes_say_their_control_level() {
        assert_eq!(control_level_of("127.0.0.1", older_build_port()), Ok(0));
        let dir = std::env::temp_dir().join(format!("percore-level-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut cfg = engine::NodeConfig::simple(1, &dir, 1);
        cfg.segment_bytes = 1 << 20;
        cfg.io_memory_bytes = 1 << 20;
        cfg.listen = Some((std::net::Ipv4Addr::LOCALHOST.into(), port));
        let node = engine::Node::start(&cfg).unwrap();
        assert_eq!(
            control_level_of("127.0.0.1", port),
            Ok(proto::CONTROL_LEVEL)
        );
        node.shutdown();
        assert!(
            control_level_of("127.0.0.1", port).is_err(),
            "nobody listens"
        );
        // Connections taken (the kernel's backlog) and never answered: a hung node.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung_port = hung.local_addr().unwrap().port();
        let asked = std::time::Instant::now();
        assert!(control_level_of("127.0.0.1", hung_port).is_err());
        assert!(asked.elapsed() < std::time::Duration::from_secs(20));
        drop(hung);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
