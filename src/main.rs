//! `percore`: the one binary. Subcommands:
//! - `node`: run a storage node (its cores and their TCP ports), no S3 gateway;
//! - `stats`: print the counters of a running node's cores.
//!
//! The S3 gateway (`serve`, `gateway`) and the cluster commands come with their issues.

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
