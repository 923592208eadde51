//! What the probe found on the host, as plain data, and the code that reads it from `/sys` and
//! `/proc` under a configurable root (so tests can point it at a fabricated tree).
//!
//! Owns reading files; does no judging (that is `advice`) and no io_uring (that is `uring`).
//! A file that cannot be read becomes `None`, never an error: a probe reports what it sees.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::limits;

/// Everything `advice` judges.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostFacts {
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    /// Online CPU ids.
    pub cpus: Vec<usize>,
    /// NUMA nodes with their CPU ids (empty when the kernel exposes none).
    pub numa_nodes: Vec<NumaNode>,
    pub memory_bytes: Option<u64>,
    /// RLIMIT_MEMLOCK soft limit of this process; `None` when unreadable, `Some(u64::MAX)` for
    /// unlimited.
    pub memlock_bytes: Option<u64>,
    /// The selected mode of /sys/kernel/mm/transparent_hugepage/enabled (`always`, `madvise`,
    /// `never`).
    pub thp_enabled: Option<String>,
    pub thp_defrag: Option<String>,
    pub disks: Vec<Disk>,
    /// The data directories the user asked about, with the disk each lives on.
    pub data_dirs: Vec<DataDir>,
    pub uring: Option<crate::uring::UringFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NumaNode {
    pub id: usize,
    pub cpus: Vec<usize>,
}

/// One whole block device (not a partition) from /sys/block.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub name: String,
    pub size_bytes: u64,
    pub logical_block_bytes: Option<u32>,
    pub physical_block_bytes: Option<u32>,
    /// The kernel's `queue/rotational` flag (virtual disks often claim 1 whatever backs them).
    pub rotational: Option<bool>,
    /// Selected I/O scheduler, e.g. `none` or `mq-deadline`.
    pub scheduler: Option<String>,
    pub schedulers_available: Vec<String>,
    /// `queue/nr_requests`: requests the block layer queues per hardware queue.
    pub queue_depth: Option<u32>,
    /// `queue/write_cache`: `write back` (volatile cache, fdatasync issues a flush) or
    /// `write through`.
    pub write_cache: Option<String>,
    /// NVMe, virtio, SCSI…: from the device name.
    pub kind: DiskKind,
    /// Mount points of the disk or its partitions.
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiskKind {
    Nvme,
    Virtio,
    Scsi,
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    /// The block device name (`nvme0n1p1`, `vda`).
    pub device: String,
    pub path: String,
    pub fstype: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataDir {
    pub path: String,
    /// The whole disk under it, when found.
    pub disk: Option<String>,
}

/// Where to read from: `/` normally, a fabricated tree in tests.
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        Roots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    Some(text.trim().to_owned())
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    read_trimmed(path)?.parse().ok()
}

/// Parses a kernel CPU list such as `0-3,8,10-11`. Bad input gives an empty list.
pub fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
            return Vec::new();
        };
        if a > b || b - a >= limits::CPUS_MAX {
            return Vec::new();
        }
        cpus.extend(a..=b);
        if cpus.len() > limits::CPUS_MAX {
            return Vec::new();
        }
    }
    cpus
}

/// Splits a sysfs selector line such as `none [mq-deadline] kyber` into (selected, all).
pub fn parse_selector(text: &str) -> (Option<String>, Vec<String>) {
    let mut selected = None;
    let mut all = Vec::new();
    for word in text.split_whitespace() {
        let name = word.trim_start_matches('[').trim_end_matches(']');
        if word.starts_with('[') {
            selected = Some(name.to_owned());
        }
        all.push(name.to_owned());
    }
    (selected, all)
}

/// Reads the `Max locked memory` soft limit from a /proc/PID/limits text.
pub fn parse_memlock(limits_text: &str) -> Option<u64> {
    let line = limits_text
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line
        .trim_start_matches("Max locked memory")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

fn disk_kind(name: &str) -> DiskKind {
    if name.starts_with("nvme") {
        DiskKind::Nvme
    } else if name.starts_with("vd") {
        DiskKind::Virtio
    } else if name.starts_with("sd") {
        DiskKind::Scsi
    } else {
        DiskKind::Other
    }
}

/// Virtual and memory-backed devices that never hold a partition.
fn is_pseudo_disk(name: &str) -> bool {
    ["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn read_disk(sys: &Path, name: &str) -> Disk {
    let queue = sys.join("block").join(name).join("queue");
    let (scheduler, schedulers_available) = read_trimmed(&queue.join("scheduler"))
        .map(|t| parse_selector(&t))
        .unwrap_or_default();
    let sectors: u64 = read_number(&sys.join("block").join(name).join("size")).unwrap_or(0);
    Disk {
        name: name.to_owned(),
        size_bytes: sectors.saturating_mul(512),
        logical_block_bytes: read_number(&queue.join("logical_block_size")),
        physical_block_bytes: read_number(&queue.join("physical_block_size")),
        rotational: read_number::<u8>(&queue.join("rotational")).map(|r| r == 1),
        scheduler,
        schedulers_available,
        queue_depth: read_number(&queue.join("nr_requests")),
        write_cache: read_trimmed(&queue.join("write_cache")),
        kind: disk_kind(name),
        mounts: Vec::new(),
    }
}

/// The whole disk a block device (disk or partition) belongs to: a partition's sysfs entry
/// sits inside its disk's directory (`/sys/block/nvme0n1/nvme0n1p1`).
fn parent_disk(disks: &[Disk], sys: &Path, device: &str) -> Option<String> {
    if disks.iter().any(|d| d.name == device) {
        return Some(device.to_owned());
    }
    disks
        .iter()
        .find(|d| sys.join("block").join(&d.name).join(device).exists())
        .map(|d| d.name.clone())
}

/// Parses /proc/mounts lines whose source is a /dev block device.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let path = fields.next()?;
            let fstype = fields.next()?;
            let device = source.strip_prefix("/dev/")?;
            // /proc/mounts escapes spaces as \040.
            Some(Mount {
                device: device.rsplit('/').next()?.to_owned(),
                path: path.replace("\\040", " "),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

fn read_disks(roots: &Roots) -> Vec<Disk> {
    let Ok(entries) = fs::read_dir(roots.sys.join("block")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !is_pseudo_disk(n))
        .collect();
    names.sort();
    names.truncate(limits::DISKS_MAX);
    let mut disks: Vec<Disk> = names.iter().map(|n| read_disk(&roots.sys, n)).collect();
    let mounts = read_trimmed(&roots.proc.join("mounts"))
        .map(|t| parse_mounts(&t))
        .unwrap_or_default();
    for mount in mounts {
        if let Some(disk) = parent_disk(&disks, &roots.sys, &mount.device) {
            if let Some(d) = disks.iter_mut().find(|d| d.name == disk) {
                d.mounts.push(mount);
            }
        }
    }
    disks
}

/// The disk whose mount point is the longest prefix of `path`.
pub fn disk_of_path(disks: &[Disk], path: &Path) -> Option<String> {
    disks
        .iter()
        .flat_map(|d| d.mounts.iter().map(move |m| (d, m)))
        .filter(|(_, m)| path.starts_with(&m.path))
        .max_by_key(|(_, m)| m.path.len())
        .map(|(d, _)| d.name.clone())
}

fn read_numa(sys: &Path) -> Vec<NumaNode> {
    let Ok(entries) = fs::read_dir(sys.join("devices/system/node")) else {
        return Vec::new();
    };
    let mut nodes: Vec<NumaNode> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("node")?.parse().ok()?;
            let cpus = parse_cpu_list(&read_trimmed(&e.path().join("cpulist"))?);
            Some(NumaNode { id, cpus })
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

fn read_meminfo_total(proc: &Path) -> Option<u64> {
    let text = fs::read_to_string(proc.join("meminfo")).ok()?;
    let kib: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn read_cpu_model(proc: &Path) -> Option<String> {
    let text = fs::read_to_string(proc.join("cpuinfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// Reads every fact but io_uring's. `data_dirs` are paths the user plans to store data in.
pub fn gather(roots: &Roots, data_dirs: &[PathBuf]) -> HostFacts {
    let thp = roots.sys.join("kernel/mm/transparent_hugepage");
    let disks = read_disks(roots);
    let data_dirs = data_dirs
        .iter()
        .map(|p| {
            let abs = fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            DataDir {
                path: p.display().to_string(),
                disk: disk_of_path(&disks, &abs),
            }
        })
        .collect();
    HostFacts {
        kernel: read_trimmed(&roots.proc.join("sys/kernel/osrelease")),
        cpu_model: read_cpu_model(&roots.proc),
        cpus: read_trimmed(&roots.sys.join("devices/system/cpu/online"))
            .map(|t| parse_cpu_list(&t))
            .unwrap_or_default(),
        numa_nodes: read_numa(&roots.sys),
        memory_bytes: read_meminfo_total(&roots.proc),
        memlock_bytes: read_trimmed(&roots.proc.join("self/limits"))
            .and_then(|t| parse_memlock(&t)),
        thp_enabled: read_trimmed(&thp.join("enabled")).and_then(|t| parse_selector(&t).0),
        thp_defrag: read_trimmed(&thp.join("defrag")).and_then(|t| parse_selector(&t).0),
        disks,
        data_dirs,
        uring: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert!(parse_cpu_list("3-1").is_empty());
        assert!(parse_cpu_list("x").is_empty());
        assert!(parse_cpu_list("0-99999999").is_empty());
    }

    #[test]
    fn selectors_and_limits() {
        let (sel, all) = parse_selector("none [mq-deadline] kyber bfq");
        assert_eq!(sel.as_deref(), Some("mq-deadline"));
        assert_eq!(all, ["none", "mq-deadline", "kyber", "bfq"]);
        let limits = "Limit  Soft Limit  Hard Limit  Units\n\
                      Max locked memory         8388608              8388608              bytes\n";
        assert_eq!(parse_memlock(limits), Some(8 << 20));
        let unlimited =
            "Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(parse_memlock(unlimited), Some(u64::MAX));
        assert_eq!(parse_memlock("nothing"), None);
    }

    /// A fabricated /sys and /proc: one NVMe disk with a mounted partition, one virtio disk, a
    /// loop device that must be ignored.
    #[test]
    fn gathers_from_a_fabricated_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let sys = root.path().join("sys");
        let proc = root.path().join("proc");
        let put = |p: PathBuf, text: &str| {
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, text).expect("write");
        };
        let q = sys.join("block/nvme0n1/queue");
        put(q.join("logical_block_size"), "4096\n");
        put(q.join("physical_block_size"), "4096\n");
        put(q.join("rotational"), "0\n");
        put(q.join("scheduler"), "[none] mq-deadline\n");
        put(q.join("nr_requests"), "1023\n");
        put(sys.join("block/nvme0n1/size"), "2000\n");
        put(sys.join("block/nvme0n1/nvme0n1p1/partition"), "1\n");
        put(sys.join("block/vda/queue/rotational"), "1\n");
        put(sys.join("block/loop0/queue/rotational"), "0\n");
        put(sys.join("devices/system/cpu/online"), "0-3\n");
        put(sys.join("devices/system/node/node0/cpulist"), "0-1\n");
        put(sys.join("devices/system/node/node1/cpulist"), "2-3\n");
        put(
            sys.join("kernel/mm/transparent_hugepage/enabled"),
            "[always] madvise never\n",
        );
        put(
            proc.join("mounts"),
            "/dev/nvme0n1p1 /srv/nvme\\0400 xfs rw 0 0\nproc /proc proc rw 0 0\n",
        );
        put(proc.join("meminfo"), "MemTotal:       1024 kB\n");
        let roots = Roots { sys, proc };
        let facts = gather(&roots, &[PathBuf::from("/srv/nvme 0/percore")]);
        assert_eq!(facts.cpus, vec![0, 1, 2, 3]);
        assert_eq!(facts.numa_nodes.len(), 2);
        assert_eq!(facts.numa_nodes[1].cpus, vec![2, 3]);
        assert_eq!(facts.memory_bytes, Some(1 << 20));
        assert_eq!(facts.thp_enabled.as_deref(), Some("always"));
        let names: Vec<&str> = facts.disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "vda"]);
        let nvme = &facts.disks[0];
        assert_eq!(nvme.kind, DiskKind::Nvme);
        assert_eq!(nvme.size_bytes, 2000 * 512);
        assert_eq!(nvme.logical_block_bytes, Some(4096));
        assert_eq!(nvme.rotational, Some(false));
        assert_eq!(nvme.scheduler.as_deref(), Some("none"));
        assert_eq!(nvme.queue_depth, Some(1023));
        assert_eq!(nvme.mounts.len(), 1);
        assert_eq!(nvme.mounts[0].path, "/srv/nvme 0");
        assert_eq!(facts.data_dirs[0].disk.as_deref(), Some("nvme0n1"));
    }
}
