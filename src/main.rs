//! `percore`: the one binary. Subcommands:
//! - `serve`: one node with its S3 gateway (the embedded default);
//! - `key create`: add a user to a data directory;
//! - `node`: run a storage node (its cores and their TCP ports), no S3 gateway;
//! - `stats`: print the counters of a running node's cores.
//!
//! The cluster commands (`gateway`, `dev`, `status`) come with the cluster issue.

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
    /// Data directory: partitions in DIR/core-N, credentials in DIR/credentials.toml.
    #[arg(long, default_value = "./percore-data")]
    data: PathBuf,
    /// Address of the S3 endpoint.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Cores: a count (e.g. 4), or a list of CPUs to pin one core each to (e.g. 0,2-3).
    /// Default: one per CPU.
    #[arg(long)]
    cores: Option<String>,
    /// Extra users: a TOML file of [[user]] tables with name, access_key, secret_key.
    #[arg(long)]
    users: Option<PathBuf>,
    /// The region reported to clients.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN); path style always works.
    #[arg(long)]
    domain: Option<String>,
    /// glommio I/O memory per core in KiB; must fit RLIMIT_MEMLOCK (see tuning/README.md).
    #[arg(long, default_value_t = 2048)]
    io_memory_kib: usize,
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
    print_endpoints(args.listen.ip(), args.listen.port(), cores);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers")?;
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
    let cores = parse_cores(args.cores.as_deref())?;
    check_core_count(&args.data, cores.len())?;
    let mut users = gateway::creds::Users::default();
    let root = gateway::creds::root_user(&args.data)?;
    users.add(root.clone()).map_err(anyhow::Error::msg)?;
    for u in gateway::creds::data_dir_users(&args.data)? {
        users.add(u).map_err(anyhow::Error::msg)?;
    }
    if let Some(path) = &args.users {
        for u in gateway::creds::users_file(path)? {
            users
                .add(u)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
    }
    let mut cfg = NodeConfig::simple(1, &args.data, cores.len() as u32);
    for (c, cpu) in cfg.cores.iter_mut().zip(&cores) {
        c.cpu = *cpu;
    }
    cfg.io_memory_bytes = args.io_memory_kib * 1024;
    let node = Node::start(&cfg).context("starting the storage cores")?;
    if cores.len() == 1 {
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
        &args.region,
        args.domain.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("endpoint: http://{}", listener.local_addr()?);
    println!("region: {}", args.region);
    println!("access_key: {}", root.access_key);
    println!("secret_key: {}", root.secret_key);
    println!("cores: {}", cores.len());
    runtime.block_on(gateway::serve::serve(listener, service, shutdown_signal()));
    eprintln!("percore: stopping (drained requests; final checkpoint)");
    drop(runtime);
    node.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
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
