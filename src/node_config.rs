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
//! [[core]]                       # one per disk partition, in core order: core 0, core 1, …
//! dir = "/srv/nvme0/percore"
//! cpu = 0                        # pin to this CPU (optional)
//! ```
//! Owns parsing and checking the file; `main` merges it with the flags. Cluster settings (the
//! layout, this node's id) join this file with the cluster work.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Most cores one node runs (the same bound as `--cores`).
pub const CORES_MAX: usize = 1024;
/// Highest CPU id a core may be pinned to.
pub const CPU_ID_MAX: usize = 4095;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub data: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub region: Option<String>,
    pub domain: Option<String>,
    pub users: Option<PathBuf>,
    pub io_memory_kib: Option<usize>,
    #[serde(default, rename = "core")]
    pub cores: Vec<CoreEntry>,
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

    pub fn load(path: &Path) -> anyhow::Result<NodeFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        NodeFile::from_toml_str(&text).with_context(|| format!("in {}", path.display()))
    }

    fn check(&self) -> anyhow::Result<()> {
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
             [[core]]\ndir = \"/a\"\ncpu = 3\n[[core]]\ndir = \"/b\"\n",
        )
        .expect("valid");
        assert_eq!(f.data.as_deref(), Some(Path::new("/var/lib/percore")));
        assert_eq!(f.listen.map(|a| a.port()), Some(9000));
        assert_eq!(f.cores.len(), 2);
        assert_eq!(f.cores[0].cpu, Some(3));
        assert_eq!(f.cores[1].cpu, None);
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
    }
}
