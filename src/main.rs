//! `percore`: the one binary. Subcommands:
//! - `serve`: one node with its S3 gateway (the embedded default);
//! - `key create`: add a user to a data directory;
//! - `node`: run a storage node (its cores and their TCP ports), no S3 gateway;
//! - `stats`: print the counters of a running node's cores;
//! - `layout check|show|diff`: inspect layout files (`layout_cmd`).
//!
//! The cluster commands (`gateway`, `dev`, `status`) come with the cluster issue.

mod layout_cmd;
mod node_config;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use engine::{Node, NodeConfig};

#[derive(Parser)]
#[command(
    name = "percore",
    version,
    about = "percore: an S3-compatible object store built like a database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run percore on this machine: the storage cores and the S3 endpoint, until SIGTERM or
    /// Ctrl-C (which drains in-flight requests). Prints the endpoint and the root credentials.
    Serve(ServeArgs),
    /// Manage users' keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run a storage node: one glommio core per partition, each on its own TCP port
    /// (base port + core index), until SIGTERM or Ctrl-C.
    Node(NodeArgs),
    /// Print the counters of a running node's cores.
    Stats {
        /// Address of core 0 (later cores are on the next ports).
        #[arg(long, default_value = "127.0.0.1:7100")]
        listen: SocketAddr,
        /// Number of cores to ask.
        #[arg(long, default_value_t = 1)]
        cores: u16,
    },
    /// Check, show and compare layout files (the cluster map; see placement/README.md).
    #[command(subcommand)]
    Layout(layout_cmd::LayoutCommand),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a user with a new access key and secret key, kept in DIR/users.toml.
    Create {
        /// The user's name.
        name: String,
        /// The data directory of `percore serve`.
        #[arg(long, default_value = "./percore-data")]
        data: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Node settings in TOML (data dir, listen address, one [[core]] table per disk partition
    /// with its dir and CPU, …; see README). Flags given here win over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: credentials, users, and the partitions (DIR/core-N) unless the config
    /// file places them. [default: ./percore-data]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address of the S3 endpoint. [default: 127.0.0.1:9000]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Cores: a count (e.g. 4), or a list of CPUs to pin one core each to (e.g. 0,2-3).
    /// Default: the config file's [[core]] tables, else one per CPU.
    #[arg(long)]
    cores: Option<String>,
    /// Extra users: a TOML file of [[user]] tables with name, access_key, secret_key.
    #[arg(long)]
    users: Option<PathBuf>,
    /// The region reported to clients. [default: us-east-1]
    #[arg(long)]
    region: Option<String>,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN); path style always works.
    #[arg(long)]
    domain: Option<String>,
    /// glommio I/O memory per core in KiB; must fit RLIMIT_MEMLOCK (see tuning/README.md).
    /// [default: 2048]
    #[arg(long)]
    io_memory_kib: Option<usize>,
}

/// `percore serve`'s settings once flags, the config file and defaults are merged.
struct ServeSettings {
    data: PathBuf,
    listen: SocketAddr,
    /// One entry per core: its partition dir and the CPU it is pinned to.
    cores: Vec<engine::CoreConfig>,
    users: Option<PathBuf>,
    region: String,
    domain: Option<String>,
    io_memory_kib: usize,
}

impl ServeSettings {
    fn resolve(args: &ServeArgs) -> anyhow::Result<ServeSettings> {
        let file = match &args.config {
            Some(path) => node_config::NodeFile::load(path)?,
            None => node_config::NodeFile::default(),
        };
        let data = args
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("./percore-data"));
        let cores = if args.cores.is_some() || file.cores.is_empty() {
            parse_cores(args.cores.as_deref())?
                .into_iter()
                .enumerate()
                .map(|(i, cpu)| engine::CoreConfig {
                    index: i as u32,
                    dir: data.join(format!("core-{i}")),
                    cpu,
                })
                .collect()
        } else {
            file.cores
                .iter()
                .enumerate()
                .map(|(i, c)| engine::CoreConfig {
                    index: i as u32,
                    dir: c.dir.clone(),
                    cpu: c.cpu,
                })
                .collect()
        };
        let io_memory_kib = args.io_memory_kib.or(file.io_memory_kib).unwrap_or(2048);
        if io_memory_kib == 0 {
            bail!("--io-memory-kib must be positive");
        }
        Ok(ServeSettings {
            data,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000))),
            cores,
            users: args.users.clone().or(file.users),
            region: args
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            domain: args.domain.clone().or(file.domain),
            io_memory_kib,
        })
    }
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Data directory; core N keeps its partition in DIR/core-N.
    #[arg(long, default_value = "./percore-data")]
    data: PathBuf,
    /// Number of cores (partitions). Default: one per CPU.
    #[arg(long)]
    cores: Option<u32>,
    /// Pin core N to CPU N (off by default so tests can oversubscribe small machines).
    #[arg(long)]
    pin: bool,
    /// Address of core 0's port; core N listens on port + N.
    #[arg(long, default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    /// This node's id (partitions remember their owner).
    #[arg(long, default_value_t = 1)]
    node_id: u64,
    /// Segment size in MiB (fixed when a partition is created).
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Space each core may use, in MiB (default: as much as the device has).
    #[arg(long)]
    capacity_mib: Option<u64>,
    /// glommio I/O memory per core in KiB; must fit RLIMIT_MEMLOCK (see tuning/README.md).
    #[arg(long, default_value_t = 4096)]
    io_memory_kib: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::Key(KeyCommand::Create { name, data }) => {
            let user = gateway::creds::create_user(&data, &name)?;
            println!("user: {}", user.name);
            println!("access_key: {}", user.access_key);
            println!("secret_key: {}", user.secret_key);
            println!("(restart percore serve to load it)");
            Ok(())
        }
        Command::Node(args) => run_node(&args),
        Command::Stats { listen, cores } => stats(listen, cores),
        Command::Layout(cmd) => layout_cmd::run(&cmd),
    }
}

fn run_node(args: &NodeArgs) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u32;
    let cores = args.cores.unwrap_or(cpus);
    if cores == 0 || cores > 1024 {
        bail!("--cores must be between 1 and 1024");
    }
    if u32::from(args.listen.port()) + cores > 65_535 {
        bail!("--listen port + cores exceeds 65535");
    }
    let mut cfg = NodeConfig::simple(args.node_id, &args.data, cores);
    for c in &mut cfg.cores {
        c.cpu = args.pin.then_some(c.index as usize % cpus as usize);
    }
    cfg.segment_bytes = args
        .segment_mib
        .checked_mul(1 << 20)
        .context("segment size")?;
    cfg.capacity_bytes_per_core = args
        .capacity_mib
        .map_or(u64::MAX, |m| m.saturating_mul(1 << 20));
    cfg.io_memory_bytes = args.io_memory_kib * 1024;
    cfg.listen = Some((args.listen.ip(), args.listen.port()));
    let node = Node::start(&cfg).context("starting the node")?;
    // Before the "ready" line: a stop sent right after it must drain, not kill.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers")?;
    print_endpoints(args.listen.ip(), args.listen.port(), cores);
    let _ = signals.forever().next();
    eprintln!("percore: stopping (draining queued requests, final checkpoint)");
    node.shutdown();
    Ok(())
}

/// `--cores`: a count, or a CPU list like `0,2-3` (one pinned core per CPU).
fn parse_cores(spec: Option<&str>) -> anyhow::Result<Vec<Option<usize>>> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let Some(spec) = spec else {
        return Ok(vec![None; cpus]);
    };
    if let Ok(n) = spec.parse::<usize>() {
        if n == 0 || n > 1024 {
            bail!("--cores must be between 1 and 1024");
        }
        return Ok(vec![None; n]);
    }
    let mut list = Vec::new();
    for part in spec.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
        if a > b || b >= 4096 {
            bail!("--cores: bad CPU range {part:?}");
        }
        list.extend((a..=b).map(Some));
    }
    if list.is_empty() || list.len() > 1024 {
        bail!("--cores: between 1 and 1024 CPUs");
    }
    Ok(list)
}

/// Objects are routed over the node's cores by their count: a data directory keeps the count
/// it was created with (DIR/node.toml), and a different `--cores` is refused rather than
/// making stored objects unreachable. Growing a node is a layout change (cluster issue).
fn check_core_count(data: &std::path::Path, cores: usize) -> anyhow::Result<()> {
    let path = data.join("node.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = text
                .lines()
                .find_map(|l| l.strip_prefix("cores = "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .with_context(|| format!("{}: no `cores = N` line", path.display()))?;
            if found != cores {
                bail!(
                    "{} was created with {found} cores; start it with --cores {found} \
                     (changing the core count of a node is not supported yet)",
                    data.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data)?;
            std::fs::write(
                &path,
                format!("# written by percore serve; do not edit\ncores = {cores}\n"),
            )
            .with_context(|| format!("writing {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::resolve(args)?;
    check_core_count(&settings.data, settings.cores.len())?;
    let mut users = gateway::creds::Users::default();
    let root = gateway::creds::root_user(&settings.data)?;
    users.add(root.clone()).map_err(anyhow::Error::msg)?;
    for u in gateway::creds::data_dir_users(&settings.data)? {
        users.add(u).map_err(anyhow::Error::msg)?;
    }
    if let Some(path) = &settings.users {
        for u in gateway::creds::users_file(path)? {
            users
                .add(u)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
    }
    let mut cfg = NodeConfig::simple(1, &settings.data, settings.cores.len() as u32);
    cfg.cores.clone_from(&settings.cores);
    cfg.io_memory_bytes = settings.io_memory_kib * 1024;
    let node = Node::start(&cfg).context("starting the storage cores")?;
    if settings.cores.len() == 1 {
        eprintln!("percore: WARNING: one core keeps ONE copy of every object: no redundancy");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("percore-gateway")
        .build()
        .context("starting the gateway runtime")?;
    let service = gateway::service(
        node.handles().to_vec(),
        users,
        &settings.region,
        settings.domain.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(settings.listen))
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    // The handlers are in place before the endpoint is printed: whoever reads it may stop the
    // server at once, and that must drain, not kill it.
    let shutdown = {
        let _entered = runtime.enter();
        shutdown_signal()?
    };
    println!("endpoint: http://{}", listener.local_addr()?);
    println!("region: {}", settings.region);
    println!("access_key: {}", root.access_key);
    println!("secret_key: {}", root.secret_key);
    println!("cores: {}", settings.cores.len());
    runtime.block_on(gateway::serve::serve(listener, service, shutdown));
    eprintln!("percore: stopping (drained requests; final checkpoint)");
    drop(runtime);
    node.shutdown();
    Ok(())
}

/// Registers SIGTERM and SIGINT now (inside a tokio runtime) and returns the future that ends
/// at the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn print_endpoints(ip: IpAddr, base: u16, cores: u32) {
    for i in 0..cores {
        println!("core {i}: {}", SocketAddr::new(ip, base + i as u16));
    }
    println!("ready");
}

fn stats(listen: SocketAddr, cores: u16) -> anyhow::Result<()> {
    for i in 0..cores {
        let addr = SocketAddr::new(listen.ip(), listen.port() + i);
        let mut c = engine::client::BlockingClient::connect(addr, 0)
            .with_context(|| format!("connecting to core {i} at {addr}"))?;
        let r = c.call(&proto::Request::Stats)?;
        println!("core {i} ({addr}): {r:?}");
    }
    Ok(())
}
