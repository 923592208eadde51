//! `percore`: the one binary. Subcommands:
//! - `serve`: one node with its S3 gateway (the embedded default);
//! - `user create|list|delete`, `user policy set|get|delete`: users of a data directory and
//!   their identity policies (`user_cmd`); `key create` is `user create`'s old name;
//!   `key rotate-master|add-kms`: the master key file (`master_keys_cmd`);
//! - `node`: run a storage node (its cores and their TCP ports), no S3 gateway;
//! - `gateway`: the S3 endpoint of a cluster alone, no cores;
//! - `dev`: a local cluster of N `serve` processes (`dev_cmd`);
//! - `status`: every core of a cluster, up or down (`status_cmd`);
//! - `stats`: print the counters of a running node's cores;
//! - `layout check|show|diff`: inspect layout files (`layout_cmd`).
//!
//! `serve`, `node` and `gateway` join a cluster when their config file names a layout
//! (`cluster.rs`); without one, `serve` is the single node it always was.

/// mimalloc, not glibc's malloc: a request allocates and frees many small buffers on the core
/// that serves it (see s3api/DESIGN.md, "The HTTP edge", for the measurement). Its memory is
/// kept off transparent huge pages (`no_huge_pages`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, before any thread starts. mimalloc
/// asks for them (`madvise(MADV_HUGEPAGE)` on its arenas), so with the usual `madvise` setting
/// the first touch of each fresh 2 MiB of its memory zeroes a whole huge page inside the
/// poll that allocated it: a core stopped for 1 to 14 ms of CPU in one poll of a 256 KiB
/// fragment read while a layout change moved data (s3api/DESIGN.md, "The HTTP edge").
fn no_huge_pages() {
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!("transparent huge pages stay on for this process: {e}");
    }
}

mod control_cmd;
mod control_plane;
mod dev_cmd;
mod layout_cmd;
mod layout_follow;
mod layout_mover;
mod lease_keeper;
mod map_layout;
mod master_keys_cmd;
mod membership;
mod node_cmd;
mod node_config;
mod placement_guard;
mod status_cmd;
mod user_cluster;
mod user_cmd;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use engine::{Node, NodeConfig};
use s3api::cluster_users::ClusterUsers;
use s3api::creds::User;
use s3api::live_users::LiveUsers;

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
    /// Manage users and their identity policies (a running server applies changes within a
    /// second).
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// Manage users' keys (`key create NAME` is `user create NAME`).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run a storage node: one glommio core per partition, each on its own TCP port
    /// (base port + core index), until SIGTERM or Ctrl-C. With --config FILE naming a layout
    /// and node_id: that node of the cluster.
    Node(NodeArgs),
    /// Run a cluster's S3 endpoint alone (no cores): every request goes over TCP to the cores
    /// of the layout named in FILE, until SIGTERM or Ctrl-C (which drains).
    Gateway(GatewayArgs),
    /// Start a local cluster of N nodes on 127.0.0.1 (one `percore serve` process and one zone
    /// per node), print each endpoint and the credentials; Ctrl-C stops them all.
    Dev(dev_cmd::DevArgs),
    /// Ask every core of a cluster for its counters: up or down, per node and core. Exit code
    /// 0 when all are up, 1 when any is down.
    Status(status_cmd::StatusArgs),
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
    /// The control plane of a clustered node (the replicated map of users and layouts).
    #[command(subcommand)]
    Control(control_cmd::ControlCommand),
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
    /// Add a new active master key to DIR/master.keys (SSE-S3); older keys stay, so objects
    /// written under them stay readable. Prints the new key's id.
    RotateMaster {
        /// The data directory of `percore serve`.
        #[arg(long, default_value = "./percore-data")]
        data: PathBuf,
    },
    /// Add a named key to DIR/master.keys for SSE-KMS (`--ssekms-key-id NAME`).
    AddKms {
        /// The key's id: 1 to 64 characters of A-Z a-z 0-9 - _ .
        name: String,
        /// The data directory of `percore serve`.
        #[arg(long, default_value = "./percore-data")]
        data: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Node settings in TOML (data dir, listen address, one [[core]] table per disk partition
    /// with its dir and CPU, …; with `layout` and `node_id`: a node of a cluster; see README).
    /// Flags given here win over the file.
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
    /// Default: the config file's [[core]] tables, else one per CPU. (A cluster node's cores
    /// are the layout's.)
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
    /// The test clock: a lifecycle "day" lasts this many seconds (lifecycle rules, restores,
    /// intelligent tiering). [default: 86400]
    #[arg(long)]
    lifecycle_day_secs: Option<u64>,
    /// Lifecycle days without a read before an INTELLIGENT_TIERING object moves to the
    /// infrequent tier. [default: 30]
    #[arg(long)]
    intelligent_tiering_days: Option<u64>,
    /// The scrub (README "Scrub"): lifecycle days between the starts of two full passes that
    /// read and check every fragment; 0: none scheduled (SIGUSR1 still starts one). [default: 7]
    #[arg(long)]
    scrub_days: Option<u32>,
    /// The scrub's pace: bytes of fragments read per second at most. [default: 33554432]
    #[arg(long)]
    scrub_bytes_per_sec: Option<u64>,
    /// Seconds before a fragment no record references (a crash between a write's data and its
    /// head) is removed by the orphan sweep after each scrub pass; a data write taking more
    /// than half of it is refused. The same on every node of a cluster. [default: 172800]
    #[arg(long)]
    orphan_grace_secs: Option<u64>,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

/// HTTPS for the S3 endpoint (README "HTTPS"): flags, else the config file's `[tls]` table.
#[derive(clap::Args)]
struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first, then its
    /// intermediates); needs --tls-key. SIGHUP re-reads both files. [config: tls.cert_file]
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM). [config: tls.key_file]
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Loads the certificate and key when given (both or neither); `None`: plain HTTP.
    fn resolve(
        &self,
        file: &node_config::NodeFile,
    ) -> anyhow::Result<Option<Arc<s3api::tls::Tls>>> {
        let section = file.tls.clone().unwrap_or_default();
        let files = match (
            self.tls_cert.clone().or(section.cert_file),
            self.tls_key.clone().or(section.key_file),
        ) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => s3api::tls::TlsFiles { cert, key },
            (Some(_), None) => bail!("--tls-cert needs --tls-key (or tls.key_file)"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert (or tls.cert_file)"),
        };
        let tls = s3api::tls::Tls::load(files).context("loading the TLS certificate and key")?;
        Ok(Some(Arc::new(tls)))
    }
}

/// The S3 endpoint's connection limits and timeouts (defaults: `s3api::limits`; README
/// "Connection limits and timeouts").
#[derive(clap::Args, Clone, Copy)]
struct HttpArgs {
    /// Connections served at once; at the cap the oldest idle one is closed for a new one.
    /// Each takes a file descriptor: keep `ulimit -n` above it. [default: 4096]
    #[arg(long)]
    connections_max: Option<usize>,
    /// Connections one client address may hold at once. [default: 1024]
    #[arg(long)]
    connections_per_client_max: Option<usize>,
    /// Seconds a client has to send a request's headers (and an idle HTTP/1.1 connection's
    /// longest wait for its next request). [default: 20]
    #[arg(long)]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a connection with no request in flight stays open. [default: 20]
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// Seconds a request body may bring no byte before it is aborted (RequestTimeout), and a
    /// client may read nothing of a response before it is disconnected. [default: 30]
    #[arg(long)]
    body_timeout_secs: Option<u64>,
}

impl HttpArgs {
    /// The flags, else the config file's keys of the same names, else the defaults.
    fn resolve(self, file: &node_config::NodeFile) -> anyhow::Result<s3api::serve::HttpLimits> {
        let d = s3api::serve::HttpLimits::default();
        let secs = |flag: Option<u64>, key: Option<u64>, default| {
            flag.or(key).map_or(default, std::time::Duration::from_secs)
        };
        let limits = s3api::serve::HttpLimits {
            connections_max: self
                .connections_max
                .or(file.connections_max)
                .unwrap_or(d.connections_max),
            connections_per_client_max: self
                .connections_per_client_max
                .or(file.connections_per_client_max)
                .unwrap_or(d.connections_per_client_max),
            header_read_timeout: secs(
                self.header_read_timeout_secs,
                file.header_read_timeout_secs,
                d.header_read_timeout,
            ),
            idle_timeout: secs(
                self.idle_timeout_secs,
                file.idle_timeout_secs,
                d.idle_timeout,
            ),
            body_progress_timeout: secs(
                self.body_timeout_secs,
                file.body_timeout_secs,
                d.body_progress_timeout,
            ),
        };
        limits.check().map_err(anyhow::Error::msg)?;
        Ok(limits)
    }
}

/// The clocks of a gateway: the length of a lifecycle day, intelligent tiering's idle days,
/// and the orphan sweep's grace.
#[derive(Clone, Copy)]
struct Clock {
    day_secs: u64,
    tiering_days: u64,
    orphan_grace_secs: u64,
}

impl Clock {
    /// With a `layout` (a cluster node or gateway), the orphan grace is the layout's, a
    /// cluster setting: this process's own setting may only repeat it.
    fn resolve(
        day_secs: Option<u64>,
        tiering_days: Option<u64>,
        orphan_grace_secs: Option<u64>,
        layout: Option<&placement::Layout>,
    ) -> anyhow::Result<Clock> {
        let orphan_grace_secs = match layout {
            None => orphan_grace_secs,
            Some(l) => {
                if let Some(mine) = orphan_grace_secs.filter(|s| Some(*s) != l.orphan_grace_secs())
                {
                    bail!(
                        "orphan_grace_secs = {mine} is set for this process, but the layout \
                         (version {}) {}: in a cluster it is a setting of the layout file, the \
                         same for every node and gateway (README, \"Orphan sweep\")",
                        l.version(),
                        l.orphan_grace_secs()
                            .map_or_else(|| "does not set it".to_owned(), |s| format!("sets {s}")),
                    );
                }
                l.orphan_grace_secs()
            }
        };
        let clock = Clock {
            day_secs: day_secs.unwrap_or(86_400),
            tiering_days: tiering_days.unwrap_or(30),
            orphan_grace_secs: orphan_grace_secs.unwrap_or(objects::orphans::GRACE_SECS_DEFAULT),
        };
        let range = placement::limits::ORPHAN_GRACE_SECS;
        if !range.contains(&clock.orphan_grace_secs) {
            bail!(
                "orphan_grace_secs must be between {} and {}",
                range.start(),
                range.end()
            );
        }
        if !(1..=86_400).contains(&clock.day_secs) {
            bail!("lifecycle_day_secs must be between 1 and 86400");
        }
        if !(1..=36_500).contains(&clock.tiering_days) {
            bail!("intelligent_tiering_days must be between 1 and 36500");
        }
        Ok(clock)
    }

    /// The object service over `backend` with these days.
    fn gateway(self, backend: Arc<cluster::backend::Backend>, region: &str) -> s3api::s3::Gateway {
        s3api::s3::Gateway::new(backend, region.to_owned())
            .with_days(self.day_secs * 1000, self.tiering_days)
            .with_orphan_grace(self.orphan_grace_secs * 1000)
    }
}

/// The scrub's schedule and pace, checked.
fn scrub_config(
    days: Option<u32>,
    bytes_per_sec: Option<u64>,
) -> anyhow::Result<objects::scrub::ScrubConfig> {
    let d = objects::scrub::ScrubConfig::default();
    let config = objects::scrub::ScrubConfig {
        every_days: days.unwrap_or(d.every_days),
        bytes_per_sec: bytes_per_sec.unwrap_or(d.bytes_per_sec),
    };
    if config.every_days > 36_500 {
        bail!("scrub_days must be between 0 (no scheduled pass) and 36500");
    }
    if config.bytes_per_sec == 0 {
        bail!("scrub_bytes_per_sec must be positive");
    }
    Ok(config)
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
    storage: StorageSettings,
    /// Set when the config file names a layout: this process is one node of a cluster.
    cluster: Option<ClusterSettings>,
    clock: Clock,
    scrub: objects::scrub::ScrubConfig,
    http: s3api::serve::HttpLimits,
    tls: Option<Arc<s3api::tls::Tls>>,
    /// The config file's `[[webhook]]` tables, name → URL (bucket notifications).
    webhooks: s3api::notify::Webhooks,
}

/// Engine settings a config file may set beyond the cores (unset: the engine's defaults).
#[derive(Clone, Copy, Default)]
// The fields are the config file's keys, units and all.
#[allow(clippy::struct_field_names)]
struct StorageSettings {
    capacity_mib: Option<u64>,
    segment_mib: Option<u64>,
    cache_mib: Option<u64>,
}

impl StorageSettings {
    fn apply(self, cfg: &mut NodeConfig) -> anyhow::Result<()> {
        if let Some(m) = self.segment_mib {
            cfg.segment_bytes = m.checked_mul(1 << 20).context("segment size")?;
        }
        if let Some(m) = self.capacity_mib {
            cfg.capacity_bytes_per_core = m.saturating_mul(1 << 20);
        }
        if let Some(m) = self.cache_mib {
            cfg.cache_bytes_per_core = m.checked_mul(1 << 20).context("cache size")?;
        }
        Ok(())
    }
}

/// A node of a cluster: the layout and this node's place in it.
struct ClusterSettings {
    layout: Arc<placement::Layout>,
    node: membership::LocalNode,
    /// `[control]`: the voters this node follows (and is one of, maybe).
    control: Option<control_plane::Settings>,
    /// A layout change's copy rate when this node moves the data (`move_mib_per_sec`).
    move_rate_bytes_per_s: u64,
}

impl ClusterSettings {
    /// The node a config file with a `layout` describes (its `node_id` is required).
    fn resolve(
        file: &node_config::NodeFile,
        config: &Path,
        data: &Path,
    ) -> anyhow::Result<ClusterSettings> {
        let (layout_path, mut layout) = membership::layout_of(file, config)?;
        if let Some(kept) = crate::map_layout::newer_than(data, &layout)? {
            eprintln!(
                "percore: note: routing by layout version {} taken from the control plane (kept \
                 in {}), not version {} of {}",
                kept.version(),
                data.display(),
                layout.version(),
                layout_path.display()
            );
            layout = kept;
        }
        let node_id = file.node_id.with_context(|| {
            format!(
                "{}: `layout` needs `node_id`: which [[node]] of {} this process is",
                config.display(),
                layout_path.display()
            )
        })?;
        let node = membership::local_node(&layout, node_id, data, &file.cores)
            .with_context(|| format!("{} against {}", config.display(), layout_path.display()))?;
        let control = match &file.control {
            Some(c) => Some(
                c.resolve(Path::new("/"))
                    .with_context(|| config.display().to_string())?,
            ),
            None => None,
        };
        let move_rate_bytes_per_s = match file.move_mib_per_sec {
            None => layout_mover::MOVE_RATE_BYTES_PER_S_DEFAULT,
            Some(0) => bail!("{}: move_mib_per_sec must be at least 1", config.display()),
            Some(m) => m
                .checked_mul(1 << 20)
                .with_context(|| format!("{}: move_mib_per_sec is too large", config.display()))?,
        };
        Ok(ClusterSettings {
            layout: Arc::new(layout),
            node,
            control,
            move_rate_bytes_per_s,
        })
    }

    /// The engine settings of this node's cores: their ports and the layout version.
    fn apply(&self, cfg: &mut NodeConfig) {
        cfg.node_id = self.node.node_id;
        cfg.cores.clone_from(&self.node.cores);
        cfg.listen = Some((self.node.ip, self.node.base_port));
        cfg.layout_version = self.layout.version();
    }
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
            .or(file.data.clone())
            .unwrap_or_else(|| PathBuf::from("./percore-data"));
        let cluster = match (&args.config, &file.layout) {
            (Some(config), Some(_)) => Some(ClusterSettings::resolve(&file, config, &data)?),
            _ => None,
        };
        let cores = if let Some(c) = &cluster {
            if args.cores.is_some() {
                bail!(
                    "--cores: a cluster node's cores are the layout's (node {} has {})",
                    c.node.node_id,
                    c.node.cores.len()
                );
            }
            c.node.cores.clone()
        } else if args.cores.is_some() || file.cores.is_empty() {
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
        let http = args.http.resolve(&file)?;
        let tls = args.tls.resolve(&file)?;
        let io_memory_kib = args.io_memory_kib.or(file.io_memory_kib).unwrap_or(2048);
        if io_memory_kib == 0 {
            bail!("--io-memory-kib must be positive");
        }
        let webhooks = file.webhooks();
        let clock = Clock::resolve(
            args.lifecycle_day_secs.or(file.lifecycle_day_secs),
            args.intelligent_tiering_days
                .or(file.intelligent_tiering_days),
            args.orphan_grace_secs.or(file.orphan_grace_secs),
            cluster.as_ref().map(|c| &*c.layout),
        )?;
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
            storage: StorageSettings {
                capacity_mib: file.capacity_mib,
                segment_mib: file.segment_mib,
                cache_mib: file.cache_mib,
            },
            cluster,
            clock,
            scrub: scrub_config(
                args.scrub_days.or(file.scrub_days),
                args.scrub_bytes_per_sec.or(file.scrub_bytes_per_sec),
            )?,
            http,
            tls,
            webhooks,
        })
    }
}

#[derive(clap::Args)]
struct GatewayArgs {
    /// The gateway's settings in TOML: `layout` (and `layout_state`), `data` (its credentials
    /// and users: the cluster's, copied from a node), `listen`, and optionally `region`,
    /// `domain`, `users`. Flags given here win over the file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Directory of the credentials and users files (no partitions).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address of the S3 endpoint.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Extra users: a TOML file of [[user]] tables with name, access_key, secret_key.
    #[arg(long)]
    users: Option<PathBuf>,
    /// The region reported to clients. [default: us-east-1]
    #[arg(long)]
    region: Option<String>,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN); path style always works.
    #[arg(long)]
    domain: Option<String>,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    tls: TlsArgs,
}
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct NodeArgs {
    /// Change the cluster's membership instead of running a node.
    #[command(subcommand)]
    action: Option<node_cmd::NodeAction>,
    /// A cluster node's settings in TOML: `layout`, `node_id`, `data` or [[core]] tables,
    /// `capacity_mib`, `segment_mib`, `cache_mib`, `io_memory_kib`, and for its background
    /// work (hint replay, lifecycle, scrub) `region`, `lifecycle_day_secs`,
    /// `intelligent_tiering_days`, `scrub_days`, `scrub_bytes_per_sec`, `orphan_grace_secs`
    /// (the S3 endpoint keys are ignored). The layout gives the cores, address and ports.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cores", "pin", "listen", "node_id"])]
    config: Option<PathBuf>,
    /// Data directory; core N keeps its partition in DIR/core-N. [default: ./percore-data]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Number of cores (partitions). Default: one per CPU.
    #[arg(long)]
    cores: Option<u32>,
    /// Pin core N to CPU N (off by default so tests can oversubscribe small machines).
    #[arg(long)]
    pin: bool,
    /// Address of core 0's port; core N listens on port + N. [default: 127.0.0.1:7100]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// This node's id (partitions remember their owner). [default: 1]
    #[arg(long)]
    node_id: Option<u64>,
    /// Segment size in MiB (fixed when a partition is created). [default: 64]
    #[arg(long)]
    segment_mib: Option<u64>,
    /// Space each core may use, in MiB (default: as much as the device has).
    #[arg(long)]
    capacity_mib: Option<u64>,
    /// glommio I/O memory per core in KiB; must fit RLIMIT_MEMLOCK (see tuning/README.md).
    /// [default: 4096; with --config, the file's or 2048]
    #[arg(long)]
    io_memory_kib: Option<usize>,
}
fn main() -> anyhow::Result<()> {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // s3s logs every error response at ERROR, with whole request bodies: the gateway's own
    // line replaces them; s3s's spans are dropped too (`s3api::http_log::keep`).
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(env.and(filter_fn(s3api::http_log::keep))),
        )
        .init();
    no_huge_pages();
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::User(cmd) => user_cmd::run(&cmd),
        // `user create`'s old name, through the same path (a clustered node's map).
        Command::Key(KeyCommand::Create { name, data }) => {
            user_cmd::run(&user_cmd::UserCommand::Create {
                name,
                data: user_cmd::DataArg { data },
            })
        }
        Command::Key(KeyCommand::RotateMaster { data }) => master_keys_cmd::rotate(&data),
        Command::Key(KeyCommand::AddKms { name, data }) => master_keys_cmd::add_kms(&data, &name),
        Command::Node(args) => run_node(&args),
        Command::Gateway(args) => gateway(&args),
        Command::Dev(args) => dev_cmd::run(&args),
        Command::Status(args) => {
            let all_up = status_cmd::run(&args)?;
            if !all_up {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Stats { listen, cores } => stats(listen, cores),
        Command::Layout(cmd) => layout_cmd::run(&cmd),
        Command::Control(cmd) => {
            if !control_cmd::run(&cmd)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn run_node(args: &NodeArgs) -> anyhow::Result<()> {
    if let Some(action) = &args.action {
        return node_cmd::run(action);
    }
    if let Some(config) = &args.config {
        return run_layout_node(args, config);
    }
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u32;
    let cores = args.cores.unwrap_or(cpus);
    if cores == 0 || cores > 1024 {
        bail!("--cores must be between 1 and 1024");
    }
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7100)));
    if u32::from(listen.port()) + cores > 65_535 {
        bail!("--listen port + cores exceeds 65535");
    }
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("./percore-data"));
    let mut cfg = NodeConfig::simple(args.node_id.unwrap_or(1), &data, cores);
    for c in &mut cfg.cores {
        c.cpu = args.pin.then_some(c.index as usize % cpus as usize);
    }
    cfg.segment_bytes = args
        .segment_mib
        .unwrap_or(64)
        .checked_mul(1 << 20)
        .context("segment size")?;
    cfg.capacity_bytes_per_core = args
        .capacity_mib
        .map_or(u64::MAX, |m| m.saturating_mul(1 << 20));
    cfg.io_memory_bytes = args.io_memory_kib.unwrap_or(4096) * 1024;
    cfg.listen = Some((listen.ip(), listen.port()));
    run_storage(&cfg, None)
}

/// `percore node --config FILE`: the cores of one node of the layout FILE names.
fn run_layout_node(args: &NodeArgs, config: &Path) -> anyhow::Result<()> {
    let file = node_config::NodeFile::load(config)?;
    if file.layout.is_none() {
        bail!(
            "{}: `percore node --config` runs a node of a cluster: the file needs `layout` and \
             `node_id` (without a layout, use the flags: --data, --cores, --listen)",
            config.display()
        );
    }
    if !file.webhooks.is_empty() {
        bail!(
            "{}: [[webhook]] belongs to a process that serves S3 (`percore serve --config`, `percore gateway`): a \
             storage-only node takes no writes to notify of",
            config.display()
        );
    }
    let data = args
        .data
        .clone()
        .or(file.data.clone())
        .unwrap_or_else(|| PathBuf::from("./percore-data"));
    let cluster = ClusterSettings::resolve(&file, config, &data)?;
    check_core_count(&data, cluster.node.cores.len())?;
    let mut cfg = NodeConfig::simple(cluster.node.node_id, &data, 0);
    cluster.apply(&mut cfg);
    StorageSettings {
        capacity_mib: args.capacity_mib.or(file.capacity_mib),
        segment_mib: args.segment_mib.or(file.segment_mib),
        cache_mib: file.cache_mib,
    }
    .apply(&mut cfg)?;
    let io_memory_kib = args.io_memory_kib.or(file.io_memory_kib).unwrap_or(2048);
    if io_memory_kib == 0 {
        bail!("io_memory_kib must be positive");
    }
    cfg.io_memory_bytes = io_memory_kib * 1024;
    let background = Background {
        clock: Clock::resolve(
            file.lifecycle_day_secs,
            file.intelligent_tiering_days,
            file.orphan_grace_secs,
            Some(&cluster.layout),
        )?,
        scrub: scrub_config(file.scrub_days, file.scrub_bytes_per_sec)?,
        region: file.region.unwrap_or_else(|| "us-east-1".to_owned()),
    };
    run_storage(&cfg, Some((&data, &cluster, background)))
}

/// What a storage-only node of a layout needs for its background work (`start_background`):
/// the same settings `percore serve --config` takes from the file.
struct Background {
    clock: Clock,
    scrub: objects::scrub::ScrubConfig,
    region: String,
}

/// Background work on this process's own cores: replaying the missed writes whose hints they
/// hold, the lifecycle walk, and the scrub with its anti-entropy and orphan sweep. Run by every
/// process with cores: `percore serve` and the storage-only `percore node --config`.
fn start_background(
    objects: &s3api::s3::Gateway,
    backend: &Arc<cluster::backend::Backend>,
    runtime: &tokio::runtime::Handle,
    scrub: objects::scrub::ScrubConfig,
) -> anyhow::Result<()> {
    s3api::start_repair(backend, runtime);
    objects::lifecycle::pass::start(objects.store(), runtime);
    let asked = scrub_on_signal(runtime).context("installing the SIGUSR1 handler of the scrub")?;
    runtime.spawn(objects::scrub::run(objects.store().clone(), scrub, asked));
    Ok(())
}

/// `kill -USR1` asks for a scrub pass now: the receiver the scrub listens to. The handler is
/// installed before this returns, also on a process without cores (SIGUSR1 would end it).
fn scrub_on_signal(
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = {
        let _entered = runtime.enter();
        signal(SignalKind::user_defined1())?
    };
    let (ask, asked) = tokio::sync::mpsc::channel(1);
    runtime.spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1: a scrub pass is asked for");
            // A pass already asked for and not started yet covers this one too.
            let _ = ask.try_send(());
        }
    });
    Ok(asked)
}

/// Says which cores started offline (damaged partition): the node serves from the others.
fn warn_offline(node: &Node) {
    for (core, reason) in node.offline() {
        eprintln!(
            "percore: WARNING: core {core} is OFFLINE ({reason}); serving from the other cores"
        );
    }
}

/// Runs a node's cores with their TCP ports until SIGTERM or SIGINT.
/// A node of a layout checks first that the layout places its data where it is
/// (`placement_guard`).
fn run_storage(
    cfg: &NodeConfig,
    cluster: Option<(&Path, &ClusterSettings, Background)>,
) -> anyhow::Result<()> {
    let (ip, base) = cfg.listen.expect("a storage node listens");
    let node = Node::start(cfg).context("starting the node")?;
    warn_offline(&node);
    let layout_version = cluster.as_ref().map(|(_, c, _)| c.layout.version());
    // A node of a layout runs its background work as `percore serve` does (no S3 endpoint).
    let runtime = match cluster {
        None => None,
        Some((data, c, background)) => match node_background(data, c, &background, &node) {
            Ok(runtime) => Some(runtime),
            Err(e) => {
                node.shutdown();
                return Err(e);
            }
        },
    };
    // Before the "ready" line: a stop sent right after it must drain, not kill.
    // SIGHUP is caught and ignored: a storage node has nothing to reload, and the default
    // action would stop it.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .context("installing signal handlers")?;
    if let Some(v) = layout_version {
        println!("node: {}", cfg.node_id);
        println!("layout_version: {v}");
    }
    print_endpoints(ip, base, cfg.cores.iter().map(|c| c.index));
    let _ = signals
        .forever()
        .find(|&s| s != signal_hook::consts::SIGHUP);
    eprintln!("percore: stopping (draining queued requests, final checkpoint)");
    // The background work (and the voter) stop before the cores they use.
    if let Some((runtime, control)) = runtime {
        if let Some(control) = control {
            control.stop(&runtime);
        }
        drop(runtime);
    }
    node.shutdown();
    Ok(())
}

/// Checks that `cluster`'s layout places the node's data where it is (`placement_guard`),
/// then starts the background work on its cores; the runtime that runs it.
fn node_background(
    data: &Path,
    cluster: &ClusterSettings,
    background: &Background,
    node: &Node,
) -> anyhow::Result<(tokio::runtime::Runtime, Option<control_plane::Running>)> {
    placement_guard::check(data, &cluster.layout, node)?;
    let runtime = gateway_runtime()?;
    let backend = {
        let _entered = runtime.enter();
        cluster::backend::Backend::cluster(
            cluster.layout.clone(),
            Some(cluster.node.node_id),
            node.handles().to_vec(),
        )
        .map_err(anyhow::Error::msg)
        .context("starting the cluster backend")?
    };
    let backend = Arc::new(backend);
    let objects = background
        .clock
        .gateway(backend.clone(), &background.region);
    start_background(&objects, &backend, runtime.handle(), background.scrub)?;
    // A storage-only node serves no users: it runs its voter, if it is one, and follows
    // nothing.
    let control = match &cluster.control {
        Some(s) => Some(control_plane::start(
            &runtime,
            s,
            Some(cluster.node.node_id),
            data,
            None,
            None,
            None,
        )?),
        None => None,
    };
    Ok((runtime, control))
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

/// The root user and every user of the data directory and of the `--users` file, reloaded
/// when those files change (`s3api::live_users`).
fn load_users(
    data: &Path,
    users_file: Option<&Path>,
    cluster: Option<&Arc<ClusterUsers>>,
) -> anyhow::Result<(Arc<LiveUsers>, User)> {
    let root = s3api::creds::root_user(data)?;
    let users = LiveUsers::start(s3api::live_users::Sources {
        root: root.clone(),
        data_users: data.join(s3api::user_admin::USERS_FILE),
        extra_users: users_file.map(Path::to_owned),
        cluster: cluster.cloned(),
    })?;
    Ok((users, root))
}

/// Each connection takes a file descriptor: say so when the process's limit is below the cap
/// (past it, accepts fail and only idle connections can be closed to make room).
fn warn_if_few_files(http: &s3api::serve::HttpLimits) {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    // The cores' segment files, the listener and the peers' connections need some too.
    let needed = http.connections_max + 256;
    if let Some(soft) = soft.filter(|&soft| soft < needed) {
        eprintln!(
            "percore: WARNING: the open-file limit ({soft}) is below --connections-max ({}) plus \
             256: raise it (ulimit -n, systemd LimitNOFILE) or lower --connections-max",
            http.connections_max
        );
    }
}

/// In a cluster every node and gateway must share the root keys: say so when this process is
/// about to generate its own.
fn warn_if_new_root_keys(data: &Path) {
    let from_env = std::env::var_os("PERCORE_ROOT_ACCESS_KEY").is_some()
        && std::env::var_os("PERCORE_ROOT_SECRET_KEY").is_some();
    if !from_env && !data.join("credentials.toml").exists() {
        eprintln!(
            "percore: WARNING: no root keys in {}: generating new ones; every node and gateway \
             of a cluster must share them (copy credentials.toml from one node to the others, \
             or set PERCORE_ROOT_ACCESS_KEY and PERCORE_ROOT_SECRET_KEY)",
            data.display()
        );
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::resolve(args)?;
    warn_if_few_files(&settings.http);
    check_core_count(&settings.data, settings.cores.len())?;
    if settings.cluster.is_some() {
        warn_if_new_root_keys(&settings.data);
    }
    let control = settings.cluster.as_ref().and_then(|c| c.control.as_ref());
    let map_users = control.map(|_| Arc::new(ClusterUsers::default()));
    let (users, root) = load_users(
        &settings.data,
        settings.users.as_deref(),
        map_users.as_ref(),
    )?;
    let mut cfg = NodeConfig::simple(1, &settings.data, settings.cores.len() as u32);
    cfg.cores.clone_from(&settings.cores);
    cfg.io_memory_bytes = settings.io_memory_kib * 1024;
    settings.storage.apply(&mut cfg)?;
    if let Some(c) = &settings.cluster {
        c.apply(&mut cfg);
    }
    let master_keys = master_keys_cmd::load(&settings.data, settings.cluster.is_none())?;
    let node = Node::start(&cfg).context("starting the storage cores")?;
    warn_offline(&node);
    if let Some(c) = &settings.cluster {
        if let Err(e) = placement_guard::check(&settings.data, &c.layout, &node) {
            node.shutdown();
            return Err(e);
        }
    }
    if settings.cores.len() == 1 && settings.cluster.is_none() {
        eprintln!("percore: WARNING: one core keeps ONE copy of every object: no redundancy");
    }
    let runtime = gateway_runtime()?;
    let id = settings.cluster.as_ref().map(|c| c.node.node_id);
    let mut banner = Vec::new();
    let backend = match &settings.cluster {
        None => cluster::backend::Backend::new(node.handles().to_vec()),
        Some(c) => {
            banner.push(("node", c.node.node_id.to_string()));
            banner.push(("layout_version", c.layout.version().to_string()));
            let _entered = runtime.enter();
            cluster::backend::Backend::cluster(
                c.layout.clone(),
                Some(c.node.node_id),
                node.handles().to_vec(),
            )
            .map_err(anyhow::Error::msg)
            .context("starting the cluster backend")?
        }
    };
    if let Some(w) = backend.fallback_warning() {
        eprintln!("percore: note: {w}");
    }
    let backend = Arc::new(backend);
    let layouts = id.map(|id| {
        layout_follow::LayoutFollower::new(backend.clone(), Some(id), node.handles().to_vec())
            .of_node(node.layout_gate(), &settings.data)
    });
    let mut control = match control_plane::start_or_forget(
        &runtime,
        control,
        id,
        &settings.data,
        &users,
        map_users,
        layouts,
    ) {
        Ok(control) => control,
        Err(e) => {
            node.shutdown();
            return Err(e);
        }
    };
    let hub = s3api::notify_queue::Hub::open(&settings.data, settings.webhooks.clone())
        .context("opening the notification queue")?;
    let hub = Arc::new(match settings.cluster {
        Some(_) => hub.shared(),
        None => hub,
    });
    hub.start(runtime.handle());
    let objects = settings
        .clock
        .gateway(backend.clone(), &settings.region)
        .with_notify(hub);
    let objects = match master_keys {
        Some(keys) => objects.with_master_keys(keys),
        None => objects,
    };
    // A single node is the only writer of its bucket records: it may keep them.
    let objects = match settings.cluster {
        None => objects.with_bucket_cache(),
        Some(_) => objects,
    };
    start_background(&objects, &backend, runtime.handle(), settings.scrub)?;
    if let (Some(control), Some(c)) = (&mut control, &settings.cluster) {
        control.start_mover(runtime.handle(), objects.store(), c.move_rate_bytes_per_s);
    }
    s3api::live_users::watch(&users, runtime.handle());
    let service = s3api::service_on(
        &objects,
        users.clone(),
        &settings.region,
        settings.domain.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    banner.push(("cores", settings.cores.len().to_string()));
    let (listener, shutdown) = announce(
        &runtime,
        settings.listen,
        &settings.region,
        &root,
        &banner,
        Reloads {
            tls: settings.tls.as_ref(),
            users: &users,
        },
    )?;
    // Thread-per-core: each core accepts from the S3 port and serves what it accepted.
    let server = s3api::serve_cores::CoreServer::new(
        service,
        settings.http,
        settings.tls,
        node.handles().len(),
        runtime.handle().clone(),
    );
    if let Err(e) = serve_on_cores(&server, listener, &node) {
        node.shutdown();
        return Err(e);
    }
    runtime.block_on(server.run(shutdown));
    eprintln!("percore: stopping (drained requests; final checkpoint)");
    if let Some(c) = control {
        c.stop(&runtime);
    }
    // The cores stop first: they drop whatever connection a drain left, while the runtime
    // whose timers those connections use still runs.
    node.shutdown();
    drop(runtime);
    Ok(())
}

/// Hands each core of `node` a duplicate of the S3 port's socket and `server`'s accept loop.
fn serve_on_cores(
    server: &s3api::serve_cores::CoreServer,
    listener: tokio::net::TcpListener,
    node: &Node,
) -> anyhow::Result<()> {
    let listener = listener
        .into_std()
        .context("handing the S3 port to the cores")?;
    for (i, core) in node.handles().iter().enumerate() {
        let socket = listener
            .try_clone()
            .context("handing the S3 port to the cores")?;
        let task = server.core_task(i);
        core.spawn(move || task(engine::io::glommio_listener(socket)))
            .map_err(|e| anyhow::anyhow!("core {} did not take the S3 port: {e}", core.index()))?;
    }
    Ok(())
}

/// `percore gateway --config FILE`: S3 for a cluster, every core reached over TCP.
fn gateway(args: &GatewayArgs) -> anyhow::Result<()> {
    let file = node_config::NodeFile::load(&args.config)?;
    let http = args.http.resolve(&file)?;
    let tls = args.tls.resolve(&file)?;
    warn_if_few_files(&http);
    if file.node_id.is_some()
        || !file.cores.is_empty()
        || file.capacity_mib.is_some()
        || file.segment_mib.is_some()
        || file.cache_mib.is_some()
        || file.io_memory_kib.is_some()
        || file.scrub_days.is_some()
        || file.scrub_bytes_per_sec.is_some()
        || file.move_mib_per_sec.is_some()
    {
        bail!(
            "{}: a gateway runs no cores: remove node_id, [[core]], capacity_mib, segment_mib, \
             cache_mib, io_memory_kib, scrub_days, scrub_bytes_per_sec and move_mib_per_sec \
             (they belong in a \
             node's file: `percore serve --config` or `percore node --config`)",
            args.config.display()
        );
    }
    let (_, layout) = membership::layout_of(&file, &args.config)?;
    let webhooks = file.webhooks();
    let data = args.data.clone().or(file.data).with_context(|| {
        format!(
            "{}: a gateway needs `data`: the directory of its credentials and users (copy \
             credentials.toml from a node of the cluster)",
            args.config.display()
        )
    })?;
    let listen = args.listen.or(file.listen).with_context(|| {
        format!(
            "{}: a gateway needs `listen`: the address of its S3 endpoint",
            args.config.display()
        )
    })?;
    let region = args
        .region
        .clone()
        .or(file.region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let domain = args.domain.clone().or(file.domain);
    warn_if_new_root_keys(&data);
    let control = match &file.control {
        Some(c) => Some(c.resolve(Path::new("/"))?),
        None => None,
    };
    let map_users = control.as_ref().map(|_| Arc::new(ClusterUsers::default()));
    let (users, root) = load_users(
        &data,
        args.users.as_deref().or(file.users.as_deref()),
        map_users.as_ref(),
    )?;
    let layout = Arc::new(layout);
    let master_keys = master_keys_cmd::load(&data, false)?;
    let runtime = gateway_runtime()?;
    let backend = {
        let _entered = runtime.enter();
        cluster::backend::Backend::cluster(layout.clone(), None, Vec::new())
            .map_err(anyhow::Error::msg)
            .context("starting the cluster backend")?
    };
    let backend = Arc::new(backend);
    let control = if let Some(s) = control {
        Some(control_plane::start(
            &runtime,
            &s,
            None,
            &data,
            Some(&users),
            map_users,
            Some(layout_follow::LayoutFollower::new(
                backend.clone(),
                None,
                Vec::new(),
            )),
        )?)
    } else {
        layout_follow::fence_by_the_file(&backend);
        None
    };
    s3api::live_users::watch(&users, runtime.handle());
    let service = {
        let _entered = runtime.enter();
        let clock = Clock::resolve(
            file.lifecycle_day_secs,
            file.intelligent_tiering_days,
            file.orphan_grace_secs,
            Some(&layout),
        )?;
        // The gateway's events queue in its data directory, as a node's do in its own.
        let hub = s3api::notify_queue::Hub::open(&data, webhooks)
            .context("opening the notification queue")?;
        let hub = Arc::new(hub.shared());
        hub.start(runtime.handle());
        let objects = clock.gateway(backend, &region).with_notify(hub);
        let objects = match master_keys {
            Some(keys) => objects.with_master_keys(keys),
            None => objects,
        };
        s3api::service_on(&objects, users.clone(), &region, domain.as_deref())
            .map_err(anyhow::Error::msg)?
    };
    let banner = [
        ("layout_version", layout.version().to_string()),
        ("nodes", layout.nodes().len().to_string()),
        ("cores", "0 (gateway only)".to_owned()),
    ];
    let reloads = Reloads {
        tls: tls.as_ref(),
        users: &users,
    };
    let (listener, shutdown) = announce(&runtime, listen, &region, &root, &banner, reloads)?;
    runtime.block_on(s3api::serve::serve(listener, service, shutdown, http, tls));
    eprintln!("percore: stopping (drained requests)");
    if let Some(c) = control {
        c.stop(&runtime);
    }
    Ok(())
}

fn gateway_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("percore-gateway")
        .build()
        .context("starting the gateway runtime")
}

/// What a SIGHUP reloads: the TLS certificate and key (if any) and the users.
#[derive(Clone, Copy)]
struct Reloads<'a> {
    tls: Option<&'a Arc<s3api::tls::Tls>>,
    users: &'a Arc<LiveUsers>,
}

/// Binds the S3 endpoint and installs the stop signals and the SIGHUP reload (`reloads`),
/// then prints the endpoint, region, root keys and `banner` (`name: value` lines; the last one
/// ends what a client parses). Returns the listener and the future that ends at SIGTERM or
/// SIGINT.
fn announce(
    runtime: &tokio::runtime::Runtime,
    listen: SocketAddr,
    region: &str,
    root: &User,
    banner: &[(&str, String)],
    reloads: Reloads<'_>,
) -> anyhow::Result<(
    tokio::net::TcpListener,
    impl std::future::Future<Output = ()>,
)> {
    // Waits a moment for a port a killed process on it still holds (`bind_when_free`).
    let listener = engine::io::bind_when_free(listen)
        .and_then(|l| {
            l.set_nonblocking(true)?;
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(l)
        })
        .with_context(|| format!("cannot listen on {listen}"))?;
    // The handlers are in place before the endpoint is printed: whoever reads it may stop the
    // server at once, and that must drain, not kill it.
    let shutdown = {
        let _entered = runtime.enter();
        reload_on_hangup(runtime, reloads.tls.cloned(), Arc::clone(reloads.users))?;
        shutdown_signal()?
    };
    let scheme = if reloads.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("endpoint: {scheme}://{}", listener.local_addr()?);
    println!("region: {region}");
    println!("access_key: {}", root.access_key);
    println!("secret_key: {}", root.secret_key);
    for (name, value) in banner {
        println!("{name}: {value}");
    }
    Ok((listener, shutdown))
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

/// At each SIGHUP, re-reads the users files (`s3api::live_users`; they are also watched
/// every second) and the TLS certificate and key (new connections get them); a failed reload
/// keeps the current ones and logs an ERROR naming the file. Catching SIGHUP also keeps its
/// default action from stopping the server (a `systemctl reload`, a closed terminal).
fn reload_on_hangup(
    runtime: &tokio::runtime::Runtime,
    tls: Option<Arc<s3api::tls::Tls>>,
    users: Arc<LiveUsers>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    runtime.spawn(async move {
        while hangup.recv().await.is_some() {
            let reloaded = {
                let users = Arc::clone(&users);
                tokio::task::spawn_blocking(move || users.reload()).await
            };
            if let Ok(outcome) = reloaded {
                s3api::live_users::log_reload("SIGHUP", &outcome);
            }
            let Some(tls) = &tls else {
                continue;
            };
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert = %tls.files().cert.display(),
                    "SIGHUP: reloaded the TLS certificate and key"
                ),
                Err(e) => tracing::error!(
                    "SIGHUP: TLS reload failed, still serving the previous certificate: {e}"
                ),
            }
        }
    });
    Ok(())
}

fn print_endpoints(ip: IpAddr, base: u16, indices: impl Iterator<Item = u32>) {
    for i in indices {
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

#[cfg(test)]
mod tests {
    use super::Clock;

    fn layout(grace: Option<u64>) -> placement::Layout {
        let mut file = placement::LayoutFile::single_node(1, "127.0.0.1", 7100);
        file.orphan_grace_secs = grace;
        placement::Layout::from_file(&file).unwrap()
    }

    fn grace(mine: Option<u64>, layout: Option<&placement::Layout>) -> anyhow::Result<u64> {
        Clock::resolve(None, None, mine, layout).map(|c| c.orphan_grace_secs)
    }

    /// One process alone takes its own setting; in a cluster the layout's grace holds for
    /// every process, and a process set to anything else refuses to start.
    #[test]
    fn the_orphan_grace_of_a_cluster_is_the_layouts() {
        let default = objects::orphans::GRACE_SECS_DEFAULT;
        assert_eq!(grace(None, None).unwrap(), default);
        assert_eq!(grace(Some(60), None).unwrap(), 60);
        assert!(grace(Some(1), None).is_err());
        let plain = layout(None);
        let set = layout(Some(600));
        assert_eq!(grace(None, Some(&plain)).unwrap(), default);
        assert_eq!(grace(None, Some(&set)).unwrap(), 600);
        assert_eq!(grace(Some(600), Some(&set)).unwrap(), 600);
        let e = grace(Some(60), Some(&plain)).unwrap_err().to_string();
        assert!(e.contains("does not set it"), "{e}");
        let e = grace(Some(60), Some(&set)).unwrap_err().to_string();
        assert!(e.contains("sets 600"), "{e}");
    }
}
