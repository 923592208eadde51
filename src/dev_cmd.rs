//! `percore dev --nodes N --data DIR --listen-base PORT`: a local cluster for tests and demos.
//! Writes the cluster's files into DIR, starts one `percore serve --config DIR/node-I.toml`
//! child process per node, prints each endpoint and the shared credentials, and stops the
//! children on Ctrl-C or SIGTERM.
//!
//! Files in DIR: `cluster.toml` (the layout: N nodes on 127.0.0.1, ids 1..N, node I alone in
//! zone "zone-I", C cores each), `node-I.toml` (node I's config), `node-I/` (its data:
//! credentials copied from DIR, partitions core-0..), `node-I.log` (its stderr), and
//! `credentials.toml` (the root keys, generated once and copied into every node's data dir).
//!
//! Ports: node I's S3 endpoint is PORT + I - 1; its cores listen from
//! base_port = PORT + N + (I - 1) × C (core i on base_port + i); the control plane's voters
//! (nodes 1..=V, V = 3 with three nodes or more, else 1) listen on PORT + N + N × C + I - 1.
//! So N nodes of C cores use PORT ..= PORT + N + N × C + V - 1.
//!
//! The control plane: `control.secret` (generated once, mode 0600) and a `[control]` section
//! in each new node config naming the V voters, so the users created with `percore user …
//! --data DIR/node-I` live in the replicated map and sign on every node.
//!
//! Re-running `dev` on the same DIR restarts the same cluster with its data: the layout's
//! nodes must match the flags (other edits of cluster.toml, such as policies, and edits of the
//! node configs, such as `capacity_mib`, are kept). A child that exits on its own is reported
//! and the others keep running (tests kill a node and restart it themselves).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use placement::layout::NodeSpec;
use placement::LayoutFile;

use crate::node_config::NodeFile;

/// Most nodes `dev` starts (each is a process with its own cores).
const NODES_MAX: u16 = 64;
/// Most cores per node.
const CORES_PER_NODE_MAX: u16 = 64;
/// Placement groups of a dev cluster. Small on purpose: a layout builds its PG tables when a
/// node starts, and in a debug build (`percore layout check`, measured on the 2-vCPU dev
/// machine) P = 256 takes 0.01 s for 3 nodes × 2 cores and 0.10 s for 16 × 4, against 0.12 s
/// and 1.0 s at the default 4096. 256 PGs still give every core of a 64-core dev cluster four
/// primaries and a table balanced within 10 % up to ~24 cores.
const DEV_PLACEMENT_GROUPS: u32 = 256;
/// How long the children may take to print their endpoints (debug builds on small machines).
const STARTUP_WAIT_MAX: Duration = Duration::from_secs(120);
/// How long a child may take to stop after SIGTERM (it drains S3 requests for up to 30 s,
/// then checkpoints) before it is killed.
const STOP_WAIT_MAX: Duration = Duration::from_secs(45);
/// How often the supervisor looks at its children and at the signals.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(clap::Args)]
pub struct DevArgs {
    /// Number of nodes (separate processes), 1..=64.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Directory of the cluster: its layout, node configs, data and logs.
    #[arg(long, default_value = "./percore-dev")]
    data: PathBuf,
    /// S3 port of node 1; node I's is PORT + I - 1, the core ports follow them.
    #[arg(long, default_value_t = 9000)]
    listen_base: u16,
    /// Cores (partitions) per node, 1..=64.
    #[arg(long, default_value_t = 2)]
    cores_per_node: u16,
}

/// The ports of a dev cluster (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    listen_base: u16,
    nodes: u16,
    cores_per_node: u16,
}

impl Ports {
    /// How many of the nodes are voters of the control plane.
    fn voters(self) -> u16 {
        if self.nodes >= 3 {
            3
        } else {
            1
        }
    }

    /// Voter `id`'s control port (ids from 1, at most `voters`).
    fn control(self, id: u16) -> u16 {
        self.listen_base + self.nodes + self.nodes * self.cores_per_node + id - 1
    }

    fn new(args: &DevArgs) -> anyhow::Result<Ports> {
        if !(1..=NODES_MAX).contains(&args.nodes) {
            bail!("--nodes must be between 1 and {NODES_MAX}");
        }
        if !(1..=CORES_PER_NODE_MAX).contains(&args.cores_per_node) {
            bail!("--cores-per-node must be between 1 and {CORES_PER_NODE_MAX}");
        }
        if args.listen_base == 0 {
            bail!("--listen-base must be a port number, not 0");
        }
        let (n, c) = (u32::from(args.nodes), u32::from(args.cores_per_node));
        let voters = if n >= 3 { 3 } else { 1 };
        let last = u32::from(args.listen_base) + n + n * c + voters - 1;
        if last > 65_535 {
            bail!(
                "{} nodes of {} cores need ports {}..={last}: above 65535; choose a lower \
                 --listen-base",
                args.nodes,
                args.cores_per_node,
                args.listen_base
            );
        }
        Ok(Ports {
            listen_base: args.listen_base,
            nodes: args.nodes,
            cores_per_node: args.cores_per_node,
        })
    }

    /// Node `id`'s S3 port (ids from 1).
    fn s3(self, id: u16) -> u16 {
        self.listen_base + id - 1
    }

    /// Node `id`'s core 0 port.
    fn core_base(self, id: u16) -> u16 {
        self.listen_base + self.nodes + (id - 1) * self.cores_per_node
    }

    /// Every port the cluster listens on, with what it is for.
    fn all(self) -> Vec<(u16, String)> {
        let mut ports = Vec::new();
        for id in 1..=self.nodes {
            ports.push((self.s3(id), format!("node {id}'s S3 endpoint")));
            for i in 0..self.cores_per_node {
                ports.push((self.core_base(id) + i, format!("node {id}'s core {i}")));
            }
        }
        for id in 1..=self.voters() {
            ports.push((self.control(id), format!("node {id}'s control plane")));
        }
        ports
    }
}

/// The layout of a dev cluster.
fn layout_file(ports: Ports) -> LayoutFile {
    LayoutFile {
        format: placement::limits::FORMAT_VERSION,
        version: 1,
        placement_groups: DEV_PLACEMENT_GROUPS,
        balance_slack_percent: placement::limits::BALANCE_SLACK_PERCENT_DEFAULT,
        orphan_grace_secs: None,
        nodes: (1..=ports.nodes)
            .map(|id| NodeSpec {
                id: u64::from(id),
                address: "127.0.0.1".to_owned(),
                base_port: ports.core_base(id),
                zone: format!("zone-{id}"),
                cores: Some(ports.cores_per_node),
                weight: None,
                removed: false,
                tier: None,
                core_list: Vec::new(),
            })
            .collect(),
        policies: std::collections::BTreeMap::new(),
    }
}

fn toml_path(p: &Path) -> anyhow::Result<String> {
    let s = p
        .to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))?;
    Ok(toml::Value::String(s.to_owned()).to_string())
}

/// One node of the cluster as `dev` runs it.
struct DevNode {
    id: u16,
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

/// The cluster secret of the control plane, in DIR.
const SECRET_FILE: &str = "control.secret";

/// Writes DIR's cluster secret once (random, mode 0600).
fn control_secret(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(SECRET_FILE);
    if path.exists() {
        return Ok(());
    }
    let secret = s3api::creds::random_string(48, s3api::creds::SECRET_KEY_CHARS)
        .context("generating the cluster secret")?;
    s3api::creds::write_private(&path, format!("{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes (or checks) DIR's cluster files and returns the nodes.
fn prepare(dir: &Path, ports: Ports) -> anyhow::Result<Vec<DevNode>> {
    control_secret(dir)?;
    let layout_path = dir.join("cluster.toml");
    let wanted = layout_file(ports);
    match std::fs::read_to_string(&layout_path) {
        Ok(text) => {
            let found: LayoutFile = toml::from_str(&text)
                .with_context(|| format!("parsing {}", layout_path.display()))?;
            if found.nodes != wanted.nodes {
                bail!(
                    "{} holds another cluster ({} nodes; node 1's cores from port {}): start \
                     it with the flags it was created with, or use another --data",
                    dir.display(),
                    found.nodes.len(),
                    found.nodes.first().map_or(0, |n| n.base_port)
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = format!(
                "# A local cluster written by `percore dev` (see README, \"Run a multi-node \
                 cluster\").\n# Do not edit its nodes: `percore node add|drain|remove|replace` \
                 changes them through the control plane\n# (README, \"Grow or shrink a running \
                 cluster\"). Policies may be added.\n{}",
                wanted.to_toml_string()
            );
            std::fs::write(&layout_path, text)
                .with_context(|| format!("writing {}", layout_path.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", layout_path.display())),
    }
    crate::membership::load_layout(&layout_path, None)?;
    let mut nodes = Vec::new();
    for id in 1..=ports.nodes {
        let node = DevNode {
            id,
            config: dir.join(format!("node-{id}.toml")),
            data: dir.join(format!("node-{id}")),
            log: dir.join(format!("node-{id}.log")),
        };
        if node.config.exists() {
            let file = NodeFile::load(&node.config)?;
            if file.node_id != Some(u64::from(id)) || file.layout.as_deref() != Some(&layout_path) {
                bail!(
                    "{}: expected node_id = {id} and layout = {}",
                    node.config.display(),
                    layout_path.display()
                );
            }
        } else {
            let mut text = format!(
                "# Node {id} of the `percore dev` cluster in this directory: \
                 percore serve --config THIS_FILE\ndata = {}\nlisten = \"127.0.0.1:{}\"\n\
                 layout = {}\nnode_id = {id}\n",
                toml_path(&node.data)?,
                ports.s3(id),
                toml_path(&layout_path)?
            );
            // One line (an inline table), so keys appended to the file stay top-level keys.
            let voters: Vec<String> = (1..=ports.voters())
                .map(|v| format!("{v} = \"127.0.0.1:{}\"", ports.control(v)))
                .collect();
            let _ = writeln!(
                text,
                "control = {{ secret_file = {}, voters = {{ {} }} }}",
                toml_path(&dir.join(SECRET_FILE))?,
                voters.join(", ")
            );
            std::fs::write(&node.config, text)
                .with_context(|| format!("writing {}", node.config.display()))?;
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// The root keys, generated once in DIR and copied (with the users file, if any) into every
/// node's data dir: the nodes of a cluster share their users.
fn share_credentials(dir: &Path, nodes: &[DevNode]) -> anyhow::Result<s3api::creds::User> {
    let root = s3api::creds::root_user(dir)?;
    // The file names of `s3api::creds` (credentials.toml: root keys; users.toml: `percore
    // key create`). With the keys in the environment there is no file: children inherit it.
    for name in ["credentials.toml", "users.toml"] {
        let from = dir.join(name);
        if !from.exists() {
            continue;
        }
        for node in nodes {
            std::fs::create_dir_all(&node.data)
                .with_context(|| format!("creating {}", node.data.display()))?;
            let to = node.data.join(name);
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(root)
}

/// Fails when a port of the cluster is taken (a child would fail later, less clearly).
fn check_ports_free(ports: Ports) -> anyhow::Result<()> {
    for (port, what) in ports.all() {
        std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!("port {port} ({what}) is in use: is this cluster already running?")
        })?;
    }
    Ok(())
}

/// What the children's stdout readers report.
enum Event {
    Line(usize, String),
    Closed,
}

struct Running {
    node: DevNode,
    child: Child,
    endpoint: Option<String>,
    exited: bool,
}

fn spawn(node: DevNode, index: usize, events: &mpsc::Sender<Event>) -> anyhow::Result<Running> {
    let exe = std::env::current_exe().context("finding the percore binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting node {}", node.id))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let tx = events.clone();
    // Reads until the child closes its stdout, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(Event::Line(index, line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Event::Closed);
    });
    Ok(Running {
        node,
        child,
        endpoint: None,
        exited: false,
    })
}

pub fn run(args: &DevArgs) -> anyhow::Result<()> {
    let ports = Ports::new(args)?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let dir = args
        .data
        .canonicalize()
        .with_context(|| format!("resolving {}", args.data.display()))?;
    let nodes = prepare(&dir, ports)?;
    let root = share_credentials(&dir, &nodes)?;
    check_ports_free(ports)?;
    // Installed before any child starts: a stop at any time reaches every child.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers")?;
    let (tx, events) = mpsc::channel();
    let mut running = Vec::new();
    for (index, node) in nodes.into_iter().enumerate() {
        match spawn(node, index, &tx) {
            Ok(r) => running.push(r),
            Err(e) => {
                stop_all(&mut running);
                return Err(e);
            }
        }
    }
    drop(tx);
    if let Err(e) = wait_ready(&mut running, &events, &mut signals) {
        stop_all(&mut running);
        return Err(e);
    }
    for r in &running {
        println!(
            "node {}: endpoint {} pid {} config {}",
            r.node.id,
            r.endpoint.as_deref().unwrap_or("?"),
            r.child.id(),
            r.node.config.display()
        );
    }
    println!("layout: {}", dir.join("cluster.toml").display());
    println!("logs: {}", dir.join("node-*.log").display());
    println!("access_key: {}", root.access_key);
    println!("secret_key: {}", root.secret_key);
    println!("ready");
    let outcome = supervise(&mut running, &events, &mut signals);
    stop_all(&mut running);
    outcome
}

/// Waits until every child printed its endpoint; fails if one exits first, on a signal, or
/// after `STARTUP_WAIT_MAX`.
fn wait_ready(
    running: &mut [Running],
    events: &mpsc::Receiver<Event>,
    signals: &mut signal_hook::iterator::Signals,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_WAIT_MAX;
    while running.iter().any(|r| r.endpoint.is_none()) {
        if signals.pending().next().is_some() {
            bail!("stopped by a signal while the nodes were starting");
        }
        if Instant::now() > deadline {
            let late: Vec<String> = running
                .iter()
                .filter(|r| r.endpoint.is_none())
                .map(|r| format!("node {} (log {})", r.node.id, r.node.log.display()))
                .collect();
            bail!(
                "not started within {}s: {}",
                STARTUP_WAIT_MAX.as_secs(),
                late.join(", ")
            );
        }
        match events.recv_timeout(POLL_INTERVAL) {
            Ok(Event::Line(i, line)) => {
                if let Some(ep) = line.strip_prefix("endpoint: ") {
                    running[i].endpoint = Some(ep.trim().to_owned());
                }
            }
            Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL_INTERVAL),
        }
        for r in running.iter_mut() {
            if r.endpoint.is_none() {
                if let Some(status) = r.child.try_wait().context("waiting for a node")? {
                    r.exited = true;
                    bail!(
                        "node {} exited while starting ({status}); its log {}:\n{}",
                        r.node.id,
                        r.node.log.display(),
                        log_tail(&r.node.log)
                    );
                }
            }
        }
    }
    Ok(())
}

/// Runs until a signal; reports children that exit on their own and keeps the others.
fn supervise(
    running: &mut [Running],
    events: &mpsc::Receiver<Event>,
    signals: &mut signal_hook::iterator::Signals,
) -> anyhow::Result<()> {
    loop {
        if let Some(sig) = signals.pending().next() {
            eprintln!("percore dev: signal {sig}: stopping every node");
            return Ok(());
        }
        // Lines after the banner are not ours to interpret; the channel only keeps the
        // readers unblocked.
        while events.try_recv().is_ok() {}
        for r in running.iter_mut().filter(|r| !r.exited) {
            if let Some(status) = r.child.try_wait().context("waiting for a node")? {
                r.exited = true;
                println!(
                    "node {}: exited ({status}); the others keep running. Restart it with: \
                     percore serve --config {}",
                    r.node.id,
                    r.node.config.display()
                );
            }
        }
        if running.iter().all(|r| r.exited) {
            bail!("every node of the cluster has exited");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// SIGTERM to every running child, a bounded wait, then SIGKILL to the rest.
fn stop_all(running: &mut [Running]) {
    for r in running.iter_mut().filter(|r| !r.exited) {
        // std has no SIGTERM and `unsafe` (libc::kill) is denied outside the engine's I/O
        // module: the kill(1) command sends it, as the Rust test harness does.
        let _ = Command::new("kill")
            .args(["-TERM", &r.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let deadline = Instant::now() + STOP_WAIT_MAX;
    loop {
        for r in running.iter_mut().filter(|r| !r.exited) {
            if let Ok(Some(_)) = r.child.try_wait() {
                r.exited = true;
            }
        }
        if running.iter().all(|r| r.exited) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    for r in running.iter_mut().filter(|r| !r.exited) {
        eprintln!(
            "percore dev: node {} did not stop within {}s: killing it",
            r.node.id,
            STOP_WAIT_MAX.as_secs()
        );
        let _ = r.child.kill();
        let _ = r.child.wait();
        r.exited = true;
    }
}

/// The last lines of a child's log, for a startup failure.
fn log_tail(path: &Path) -> String {
    const LINES: usize = 15;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, base: u16, cores: u16) -> DevArgs {
        DevArgs {
            nodes,
            data: PathBuf::from("unused"),
            listen_base: base,
            cores_per_node: cores,
        }
    }

    #[test]
    fn port_plan() {
        let p = Ports::new(&args(3, 9000, 2)).expect("valid");
        assert_eq!((p.s3(1), p.s3(3)), (9000, 9002));
        assert_eq!((p.core_base(1), p.core_base(3)), (9003, 9007));
        let all: Vec<u16> = p.all().into_iter().map(|(port, _)| port).collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!((p.control(1), p.control(3)), (9009, 9011));
        assert_eq!(sorted, (9000..=9011).collect::<Vec<_>>());
        assert_eq!(all.len(), 12);
        let one = Ports::new(&args(2, 9000, 2)).expect("valid");
        assert_eq!((one.voters(), one.control(1)), (1, 9006));
    }

    #[test]
    fn ports_above_65535_are_refused() {
        assert!(Ports::new(&args(3, 65_524, 2)).is_ok());
        let err = format!("{:#}", Ports::new(&args(3, 65_525, 2)).unwrap_err());
        assert!(err.contains("65536") && err.contains("65535"), "{err}");
        assert!(Ports::new(&args(0, 9000, 2)).is_err());
        assert!(Ports::new(&args(3, 9000, 0)).is_err());
    }

    #[test]
    fn the_layout_is_valid_and_spread() {
        let p = Ports::new(&args(3, 9000, 2)).expect("valid");
        let layout = placement::Layout::from_file(&layout_file(p)).expect("valid layout");
        assert_eq!((layout.nodes().len(), layout.zones().len()), (3, 3));
        assert_eq!(layout.cores().len(), 6);
    }

    #[test]
    fn another_cluster_in_the_dir_is_refused() {
        let dir = std::env::temp_dir().join(format!("percore-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p3 = Ports::new(&args(3, 9000, 2)).expect("valid");
        let nodes = prepare(&dir, p3).expect("first");
        assert_eq!(nodes.len(), 3);
        // The control plane's voters are in each config, and keys appended to it stay
        // top-level keys (tests and operators append `capacity_mib` and the like).
        let config = &nodes[2].config;
        let control = NodeFile::load(config)
            .expect("loads")
            .control
            .expect("[control]");
        assert_eq!(control.voters.len(), 3);
        assert_eq!(control.voters["3"], "127.0.0.1:9011");
        let text = std::fs::read_to_string(config).expect("read");
        std::fs::write(config, text + "capacity_mib = 3\n").expect("append");
        assert_eq!(NodeFile::load(config).expect("loads").capacity_mib, Some(3));
        assert!(dir.join(SECRET_FILE).exists());
        let again = prepare(&dir, p3).expect("same cluster again");
        assert_eq!(again[2].config, dir.join("node-3.toml"));
        let p4 = Ports::new(&args(4, 9000, 2)).expect("valid");
        let err = format!("{:#}", prepare(&dir, p4).err().expect("refused"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(err.contains("another cluster"), "{err}");
    }
}
