//! `percore serve --config FILE`: this node's local settings in TOML, the file `percore-tune`
//! suggests. Every key is optional; a flag given on the command line wins over the file.
//!
//! ```toml
//! data = "/var/lib/percore"      # credentials, users, node.toml (and core-N when no [[core]])
//! listen = "0.0.0.0:9000"        # the S3 endpoint
//! region = "us-east-1"
//! domain = "s3.example.com"      # virtual-host-style requests
//! users = "/etc/percore/users.toml"
//! io_memory_kib = 2048           # glommio I/O memory per core
//!
//! connections_max = 4096         # the S3 endpoint's connection limits and timeouts (README)
//! header_read_timeout_secs = 20
//!
//! capacity_mib = 100000          # space each core may use (default: the whole device)
//! segment_mib = 64               # segment size, fixed when a partition is created
//! cache_mib = 64                 # each core's cache of small fragments (0: off)
//!
//! # In a cluster (see `cluster.rs`): the layout every node loads, and which node this is.
//! layout = "cluster.toml"        # relative to this file's directory
//! layout_state = "cluster.table" # optional: the PG tables `percore layout apply` wrote
//! node_id = 2                    # the [[node]] of the layout this process runs
//! move_mib_per_sec = 64          # a layout change's copy rate, when this node moves the data
//!
//! [control]                      # the control plane (`control_plane.rs`)
//! secret_file = "control.secret"
//! [control.voters]
//! 1 = "10.0.0.1:9300"
//!
//! [tls]                          # HTTPS (README "HTTPS"); paths relative to this file
//! cert_file = "tls/cert.pem"     # the certificate chain, PEM, the server's first
//! key_file = "tls/key.pem"       # its private key, PEM
//!
//! [[webhook]]                    # a target of bucket notifications (README)
//! name = "audit"                 # named by arn:percore:webhook::audit
//! url = "http://127.0.0.1:8080/events"
//!
//! [[core]]                       # one per disk partition, in core order: core 0, core 1, …
//! dir = "/srv/nvme0/percore"
//! cpu = 0                        # pin to this CPU (optional)
//! ```
//! Owns parsing and checking the file on its own; `main` merges it with the flags and
//! `cluster` checks it against the layout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Most cores one node runs (the same bound as `--cores`).
pub const CORES_MAX: usize = 1024;
/// Highest CPU id a core may be pinned to.
pub const CPU_ID_MAX: usize = 4095;
/// Smallest and largest segment size in MiB (the engine's own bounds, checked early here).
pub const SEGMENT_MIB_MIN: u64 = 1;
pub const SEGMENT_MIB_MAX: u64 = 2048;
/// Largest cache per core in MiB (1 TiB: far past any machine's memory, a typo guard).
pub const CACHE_MIB_MAX: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub data: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub region: Option<String>,
    pub domain: Option<String>,
    pub users: Option<PathBuf>,
    pub io_memory_kib: Option<usize>,
    /// Space each core may use, in MiB (default: as much as the device has).
    pub capacity_mib: Option<u64>,
    /// Segment size in MiB, fixed when a partition is created (default 64).
    pub segment_mib: Option<u64>,
    /// Each core's fragment cache in MiB (default 64; 0 disables it).
    pub cache_mib: Option<u64>,
    /// Fragment MiB a layout change's mover copies per second at most, when this node runs it
    /// (default 64; at least 1).
    pub move_mib_per_sec: Option<u64>,
    /// The cluster's layout file; relative paths are relative to this file's directory.
    pub layout: Option<PathBuf>,
    /// The layout's state file (PG tables); same path rule.
    pub layout_state: Option<PathBuf>,
    /// Which `[[node]]` of the layout this process is.
    pub node_id: Option<u64>,
    /// The test clock: seconds per lifecycle day (see `percore serve --help`).
    pub lifecycle_day_secs: Option<u64>,
    /// Lifecycle days without a read before INTELLIGENT_TIERING's infrequent tier.
    pub intelligent_tiering_days: Option<u64>,
    /// The scrub: lifecycle days between full passes (0: none scheduled) and its pace
    /// (`--scrub-days`, `--scrub-bytes-per-sec`).
    pub scrub_days: Option<u32>,
    pub scrub_bytes_per_sec: Option<u64>,
    /// Seconds before a fragment no record references is swept (`--orphan-grace-secs`): the
    /// same value on every node and gateway of a cluster.
    pub orphan_grace_secs: Option<u64>,
    /// The S3 endpoint's connection limits and timeouts (the flags of the same names).
    pub connections_max: Option<usize>,
    pub connections_per_client_max: Option<usize>,
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    /// HTTPS: the certificate chain and key files (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsSection>,
    #[serde(default, rename = "core")]
    pub cores: Vec<CoreEntry>,
    /// Targets of bucket notifications (`s3api::notify`).
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookEntry>,
    /// The control plane: its voters and the cluster secret (`control_plane`).
    pub control: Option<crate::control_plane::ControlSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// What a bucket's configuration calls it: `arn:percore:webhook::NAME`.
    pub name: String,
    /// Where events are POSTed: `http://host:port/path`.
    pub url: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreEntry {
    /// The partition directory this core owns.
    pub dir: PathBuf,
    /// The CPU to pin the core to.
    pub cpu: Option<usize>,
}

impl NodeFile {
    pub fn from_toml_str(text: &str) -> anyhow::Result<NodeFile> {
        let file: NodeFile = toml::from_str(text)?;
        file.check()?;
        Ok(file)
    }

    /// Reads and checks the file; `layout` and `layout_state` come back resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> anyhow::Result<NodeFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file =
            NodeFile::from_toml_str(&text).with_context(|| format!("in {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = file
            .tls
            .as_mut()
            .map(|t| [&mut t.cert_file, &mut t.key_file]);
        for p in [&mut file.layout, &mut file.layout_state]
            .into_iter()
            .chain(tls.into_iter().flatten())
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let Some(c) = file
            .control
            .as_mut()
            .filter(|c| c.secret_file.is_relative())
        {
            c.secret_file = dir.join(&c.secret_file);
        }
        Ok(file)
    }

    /// The `[[webhook]]` tables, name → URL (checked by `check`).
    pub fn webhooks(&self) -> s3api::notify::Webhooks {
        self.webhooks
            .iter()
            .map(|w| (w.name.clone(), w.url.clone()))
            .collect()
    }

    fn check(&self) -> anyhow::Result<()> {
        for (i, w) in self.webhooks.iter().enumerate() {
            let name_ok = !w.name.is_empty()
                && w.name.len() <= s3api::notify::TEXT_BYTES_MAX
                && w.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                bail!("[[webhook]] {i}: name must be 1 to 1024 of A-Z a-z 0-9 - _ .");
            }
            if s3api::notify_queue::parse_url(&w.url).is_none() {
                bail!("[[webhook]] {i}: url must be http://HOST[:PORT][/PATH]");
            }
            if self.webhooks[..i].iter().any(|o| o.name == w.name) {
                bail!("[[webhook]] {i}: name {:?} is used twice", w.name);
            }
        }
        if self.cores.len() > CORES_MAX {
            bail!("{} [[core]] tables; at most {CORES_MAX}", self.cores.len());
        }
        for (i, core) in self.cores.iter().enumerate() {
            if core.dir.as_os_str().is_empty() {
                bail!("[[core]] {i}: `dir` is empty");
            }
            if core.cpu.is_some_and(|c| c > CPU_ID_MAX) {
                bail!("[[core]] {i}: cpu must be at most {CPU_ID_MAX}");
            }
            if let Some(j) = self.cores[..i].iter().position(|c| c.dir == core.dir) {
                bail!(
                    "[[core]] {i} and {j} both name {}: each core owns its own partition",
                    core.dir.display()
                );
            }
        }
        if self.io_memory_kib == Some(0) {
            bail!("io_memory_kib must be positive");
        }
        if self.capacity_mib == Some(0) {
            bail!("capacity_mib must be positive");
        }
        if self.cache_mib.is_some_and(|m| m > CACHE_MIB_MAX) {
            bail!("cache_mib must be at most {CACHE_MIB_MAX}");
        }
        if let Some(s) = self.segment_mib {
            if !(SEGMENT_MIB_MIN..=SEGMENT_MIB_MAX).contains(&s) {
                bail!("segment_mib must be between {SEGMENT_MIB_MIN} and {SEGMENT_MIB_MAX}");
            }
        }
        if self.layout.is_none() {
            if self.control.is_some() {
                bail!("[control] is the control plane of a cluster: set `layout` too");
            }
            if self.node_id.is_some() {
                bail!("node_id names a [[node]] of a layout: set `layout` too");
            }
            if self.layout_state.is_some() {
                bail!("layout_state is the state of a layout: set `layout` too");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let f = NodeFile::from_toml_str(
            "data = \"/var/lib/percore\"\nlisten = \"0.0.0.0:9000\"\nio_memory_kib = 1024\n\
             scrub_days = 3\nscrub_bytes_per_sec = 1048576\norphan_grace_secs = 60\n\
             [[core]]\ndir = \"/a\"\ncpu = 3\n[[core]]\ndir = \"/b\"\n",
        )
        .expect("valid");
        assert_eq!(f.data.as_deref(), Some(Path::new("/var/lib/percore")));
        assert_eq!(f.listen.map(|a| a.port()), Some(9000));
        assert_eq!(f.cores.len(), 2);
        assert_eq!(f.cores[0].cpu, Some(3));
        assert_eq!(f.cores[1].cpu, None);
        assert_eq!(
            (f.scrub_days, f.scrub_bytes_per_sec, f.orphan_grace_secs),
            (Some(3), Some(1_048_576), Some(60))
        );
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let f = NodeFile::from_toml_str("").expect("valid");
        assert!(f.cores.is_empty() && f.data.is_none());
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |t: &str| format!("{:#}", NodeFile::from_toml_str(t).expect_err("invalid"));
        assert!(err("[[core]]\ndir = \"/a\"\n[[core]]\ndir = \"/a\"\n").contains("both name"));
        assert!(err("[[core]]\ndir = \"/a\"\ncpu = 99999\n").contains("cpu"));
        assert!(err("colour = 1\n").contains("colour"));
        assert!(err("listen = \"nowhere\"\n").contains("listen"));
        assert!(err("io_memory_kib = 0\n").contains("positive"));
        assert!(err("capacity_mib = 0\n").contains("capacity_mib"));
        assert!(err("cache_mib = 1048577\n").contains("cache_mib"));
        assert!(err("segment_mib = 4096\n").contains("segment_mib"));
        assert!(err("node_id = 2\n").contains("layout"));
        assert!(err("layout_state = \"t\"\n").contains("layout"));
        assert!(err("[tls]\ncert = \"c.pem\"\n").contains("cert"));
        let hook =
            |name: &str, url: &str| format!("[[webhook]]\nname = \"{name}\"\nurl = \"{url}\"\n");
        assert!(err(&hook("a", "https://h/")).contains("url"));
        assert!(err(&hook("a b", "http://h/")).contains("name"));
        assert!(err(&(hook("a", "http://h/") + &hook("a", "http://g/"))).contains("twice"));
        let ok = NodeFile::from_toml_str(&hook("audit", "http://127.0.0.1:8080/e")).expect("valid");
        assert_eq!(ok.webhooks()["audit"], "http://127.0.0.1:8080/e");
    }

    #[test]
    fn tls_files_resolve_against_the_file() {
        let dir = std::env::temp_dir().join(format!("percore-nc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            "[tls]\ncert_file = \"tls/cert.pem\"\nkey_file = \"/etc/percore/key.pem\"\n",
        )
        .expect("write");
        let f = NodeFile::load(&path).expect("valid");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let tls = f.tls.expect("[tls]");
        assert_eq!(tls.cert_file, Some(dir.join("tls/cert.pem")));
        assert_eq!(
            tls.key_file.as_deref(),
            Some(Path::new("/etc/percore/key.pem"))
        );
    }

    #[test]
    fn cluster_keys_resolve_against_the_file() {
        let dir = std::env::temp_dir().join(format!("percore-nc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("node-2.toml");
        std::fs::write(
            &path,
            "layout = \"cluster.toml\"\nlayout_state = \"/abs/cluster.table\"\nnode_id = 2\n\
             capacity_mib = 8\n",
        )
        .expect("write");
        let f = NodeFile::load(&path).expect("valid");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(f.layout, Some(dir.join("cluster.toml")));
        assert_eq!(
            f.layout_state.as_deref(),
            Some(Path::new("/abs/cluster.table"))
        );
        assert_eq!((f.node_id, f.capacity_mib), (Some(2), Some(8)));
    }
}
