//! Judging the facts: findings (ok / advice / warning / error) and a suggested `percore serve`
//! node configuration with one core per disk partition.
//!
//! Pure functions of `HostFacts`: no I/O, so every rule is unit-tested on made-up hosts.

use std::fmt::Write as _;

use serde::Serialize;

use crate::facts::{Disk, DiskKind, HostFacts};
use crate::limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Level {
    Ok,
    Advice,
    Warning,
    Error,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Advice => "advice",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// What it is about: `memlock`, `io_uring`, `disk vda`, …
    pub topic: String,
    pub text: String,
}

fn finding(level: Level, topic: impl Into<String>, text: impl Into<String>) -> Finding {
    Finding {
        level,
        topic: topic.into(),
        text: text.into(),
    }
}

/// What the user plans, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// glommio I/O memory per core (`percore serve --io-memory-kib`).
    pub io_memory_bytes: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Cores percore would run: one per data directory given, else one per CPU.
fn planned_cores(facts: &HostFacts) -> usize {
    if facts.data_dirs.is_empty() {
        facts.cpus.len().max(1)
    } else {
        facts.data_dirs.len()
    }
}

fn memlock(facts: &HostFacts, plan: Plan) -> Finding {
    let need = plan.io_memory_bytes * planned_cores(facts) as u64;
    match facts.memlock_bytes {
        None => finding(
            Level::Warning,
            "memlock",
            "RLIMIT_MEMLOCK could not be read",
        ),
        Some(u64::MAX) => finding(Level::Ok, "memlock", "RLIMIT_MEMLOCK is unlimited"),
        Some(have) if have >= need => finding(
            Level::Ok,
            "memlock",
            format!(
                "RLIMIT_MEMLOCK {} covers {} cores x {} of io_memory",
                mib(have),
                planned_cores(facts),
                mib(plan.io_memory_bytes)
            ),
        ),
        Some(have) => finding(
            Level::Error,
            "memlock",
            format!(
                "RLIMIT_MEMLOCK {} is below {} ({} cores x {} of glommio io_memory): \
                 raise it (`ulimit -l unlimited`, or LimitMEMLOCK=infinity in the systemd \
                 unit) or lower --io-memory-kib",
                mib(have),
                mib(need),
                planned_cores(facts),
                mib(plan.io_memory_bytes)
            ),
        ),
    }
}

fn uring(facts: &HostFacts) -> Vec<Finding> {
    let Some(u) = &facts.uring else {
        return vec![finding(Level::Warning, "io_uring", "not probed")];
    };
    if let Some(e) = &u.setup_error {
        return vec![finding(
            Level::Error,
            "io_uring",
            format!(
                "cannot create a ring ({e}): percore's cores need io_uring (Linux ≥ 5.8; check \
                 kernel.io_uring_disabled and seccomp filters of containers)"
            ),
        )];
    }
    let mut out = Vec::new();
    if let Some(e) = &u.probe_error {
        out.push(finding(
            Level::Warning,
            "io_uring",
            format!("opcode probe failed ({e}): kernel older than 5.6?"),
        ));
    }
    let missing = u.missing_required();
    if missing.is_empty() && u.probe_error.is_none() {
        out.push(finding(
            Level::Ok,
            "io_uring",
            format!(
                "every opcode percore uses is supported; features: {}",
                u.features.join(" ")
            ),
        ));
    } else if !missing.is_empty() {
        out.push(finding(
            Level::Error,
            "io_uring",
            format!(
                "missing opcodes: {}: upgrade the kernel",
                missing.join(", ")
            ),
        ));
    }
    if let Some(e) = &u.iopoll_setup_error {
        out.push(finding(
            Level::Advice,
            "io_uring",
            format!("polled rings unavailable ({e}); percore uses interrupt-driven I/O"),
        ));
    }
    out
}

/// percore turns THP off for its own process at start (`PR_SET_THP_DISABLE`), so the host's
/// setting only matters to the other programs beside it.
fn thp(facts: &HostFacts) -> Option<Finding> {
    match (facts.thp_enabled.as_deref(), facts.thp_defrag.as_deref()) {
        (Some("always"), Some("always")) => Some(finding(
            Level::Advice,
            "transparent hugepages",
            "enabled=always with defrag=always: percore turns THP off for its own process, \
             but other programs here can stall for milliseconds in direct compaction; \
             `madvise` or `defer+madvise` for defrag avoids it",
        )),
        (Some(mode), _) => Some(finding(
            Level::Ok,
            "transparent hugepages",
            format!("enabled={mode} (percore turns THP off for its own process)"),
        )),
        (None, _) => None,
    }
}

fn numa(facts: &HostFacts) -> Option<Finding> {
    if facts.numa_nodes.len() < 2 {
        return None;
    }
    let nodes: Vec<String> = facts
        .numa_nodes
        .iter()
        .map(|n| format!("node{}: {} CPUs", n.id, n.cpus.len()))
        .collect();
    Some(finding(
        Level::Advice,
        "numa",
        format!(
            "{} NUMA nodes ({}): pin each core to a CPU on the node its disk's controller is \
             attached to (/sys/block/DEV/device/numa_node)",
            facts.numa_nodes.len(),
            nodes.join(", ")
        ),
    ))
}

fn disk_findings(disk: &Disk) -> Vec<Finding> {
    let topic = format!("disk {}", disk.name);
    let mut out = Vec::new();
    if let Some(lbs) = disk.logical_block_bytes {
        if u64::from(lbs) > limits::ENGINE_BLOCK_BYTES {
            out.push(finding(
                Level::Error,
                &topic,
                format!(
                    "logical block size {lbs} B exceeds the engine's {} B O_DIRECT block: \
                     writes would fail with EINVAL",
                    limits::ENGINE_BLOCK_BYTES
                ),
            ));
        }
    }
    let sched = disk.scheduler.as_deref();
    let flash = disk.kind == DiskKind::Nvme || disk.rotational == Some(false);
    if flash && sched.is_some_and(|s| s != "none") {
        out.push(finding(
            Level::Advice,
            &topic,
            format!(
                "flash device with scheduler {}: `none` saves CPU per I/O \
                 (echo none > /sys/block/{}/queue/scheduler)",
                sched.unwrap_or_default(),
                disk.name
            ),
        ));
    }
    if disk.rotational == Some(true) && disk.kind != DiskKind::Virtio && sched == Some("none") {
        out.push(finding(
            Level::Advice,
            &topic,
            "rotational disk with scheduler none: mq-deadline bounds seek-starved reads",
        ));
    }
    if disk.kind == DiskKind::Virtio && disk.rotational == Some(true) {
        out.push(finding(
            Level::Advice,
            &topic,
            "virtio disk reports rotational=1 whatever backs it: classify its tier by a \
             benchmark (fio randread), not by this flag",
        ));
    }
    if disk
        .queue_depth
        .is_some_and(|q| q < limits::QUEUE_DEPTH_LOW)
    {
        out.push(finding(
            Level::Advice,
            &topic,
            format!(
                "nr_requests {} is below {}: a core's group commit alone keeps 8 writes in \
                 flight, its reads come on top",
                disk.queue_depth.unwrap_or_default(),
                limits::QUEUE_DEPTH_LOW
            ),
        ));
    }
    out
}

/// Every finding, most severe first.
pub fn findings(facts: &HostFacts, plan: Plan) -> Vec<Finding> {
    let mut out = vec![memlock(facts, plan)];
    out.extend(uring(facts));
    out.extend(thp(facts));
    out.extend(numa(facts));
    let mut data_disks: Vec<&str> = facts
        .data_dirs
        .iter()
        .filter_map(|d| d.disk.as_deref())
        .collect();
    data_disks.sort_unstable();
    data_disks.dedup();
    for disk in &facts.disks {
        // With data dirs given, judge their disks only; else every disk.
        if data_disks.is_empty() || data_disks.contains(&disk.name.as_str()) {
            out.extend(disk_findings(disk));
        }
    }
    for dir in &facts.data_dirs {
        if dir.disk.is_none() {
            out.push(finding(
                Level::Warning,
                format!("data dir {}", dir.path),
                "not on a disk found in /sys/block (a network or overlay filesystem?)",
            ));
        }
    }
    let mut shared: Vec<&str> = facts
        .data_dirs
        .iter()
        .filter_map(|d| d.disk.as_deref())
        .collect();
    shared.sort_unstable();
    let dups: Vec<&str> = shared
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    for disk in dups {
        out.push(finding(
            Level::Advice,
            format!("disk {disk}"),
            "holds several data dirs: those cores share one device's bandwidth and fail together",
        ));
    }
    if facts.cpus.len() < planned_cores(facts) {
        out.push(finding(
            Level::Warning,
            "cpus",
            format!(
                "{} cores planned on {} CPUs: cores share CPUs (fine for tests, not for latency)",
                planned_cores(facts),
                facts.cpus.len()
            ),
        ));
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.level));
    out
}

/// A `percore serve --config` file: one core per data directory (one per disk partition),
/// pinned to CPUs spread over NUMA nodes in order, the S3 port and the I/O memory.
pub fn suggested_config(facts: &HostFacts, plan: Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# percore serve --config FILE (suggested by percore-tune)"
    );
    let _ = writeln!(out, "data = \"/var/lib/percore\"");
    let _ = writeln!(out, "listen = \"0.0.0.0:9000\"");
    let _ = writeln!(out, "io_memory_kib = {}", plan.io_memory_bytes / 1024);
    let cpus = &facts.cpus;
    if facts.data_dirs.is_empty() {
        let _ = writeln!(
            out,
            "# No --data-dir given: one core per CPU under `data`. Give one --data-dir per disk \
             partition for a per-disk layout."
        );
        return out;
    }
    for (i, dir) in facts.data_dirs.iter().enumerate() {
        let _ = writeln!(out, "\n[[core]]");
        let _ = writeln!(out, "dir = {:?}", dir.path);
        if !cpus.is_empty() {
            let _ = writeln!(out, "cpu = {}", cpus[i % cpus.len()]);
        }
        if let Some(disk) = &dir.disk {
            let _ = writeln!(out, "# on {disk}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{DataDir, NumaNode};
    use crate::uring::{OpcodeSupport, UringFacts};

    fn disk(name: &str, kind: DiskKind, rotational: bool, sched: &str) -> Disk {
        Disk {
            name: name.into(),
            size_bytes: 1 << 40,
            logical_block_bytes: Some(512),
            physical_block_bytes: Some(4096),
            rotational: Some(rotational),
            scheduler: Some(sched.into()),
            schedulers_available: vec![],
            queue_depth: Some(256),
            write_cache: None,
            kind,
            mounts: vec![],
        }
    }

    fn healthy_uring() -> UringFacts {
        UringFacts {
            setup_error: None,
            iopoll_setup_error: None,
            probe_error: None,
            opcodes: vec![OpcodeSupport {
                name: "READ",
                supported: true,
                required: true,
            }],
            features: vec!["NODROP"],
        }
    }

    fn host() -> HostFacts {
        HostFacts {
            cpus: vec![0, 1, 2, 3],
            memlock_bytes: Some(u64::MAX),
            uring: Some(healthy_uring()),
            thp_enabled: Some("madvise".into()),
            ..HostFacts::default()
        }
    }

    const PLAN: Plan = Plan {
        io_memory_bytes: 2 << 20,
    };

    fn worst(f: &[Finding]) -> Level {
        f.iter().map(|f| f.level).max().unwrap_or(Level::Ok)
    }

    #[test]
    fn a_healthy_host_has_only_ok_findings() {
        assert_eq!(worst(&findings(&host(), PLAN)), Level::Ok);
    }

    #[test]
    fn memlock_below_the_io_memory_of_all_cores_is_an_error() {
        let mut h = host();
        h.memlock_bytes = Some(8 << 20);
        // 4 cores x 2 MiB fits in 8 MiB…
        assert_eq!(worst(&findings(&h, PLAN)), Level::Ok);
        // …4 x 4 MiB does not.
        let f = findings(
            &h,
            Plan {
                io_memory_bytes: 4 << 20,
            },
        );
        assert_eq!(f[0].level, Level::Error);
        assert_eq!(f[0].topic, "memlock");
    }

    #[test]
    fn missing_io_uring_opcodes_are_errors() {
        let mut h = host();
        let mut u = healthy_uring();
        u.opcodes[0].supported = false;
        h.uring = Some(u);
        let f = findings(&h, PLAN);
        assert_eq!(f[0].level, Level::Error);
        assert!(f[0].text.contains("READ"), "{}", f[0].text);
        h.uring = Some(UringFacts {
            setup_error: Some("Operation not permitted".into()),
            ..healthy_uring()
        });
        assert_eq!(worst(&findings(&h, PLAN)), Level::Error);
    }

    #[test]
    fn disk_rules() {
        let mut h = host();
        h.disks = vec![
            disk("nvme0n1", DiskKind::Nvme, false, "mq-deadline"),
            disk("sda", DiskKind::Scsi, true, "none"),
        ];
        let f = findings(&h, PLAN);
        assert!(f
            .iter()
            .any(|f| f.topic == "disk nvme0n1" && f.text.contains("`none`")));
        assert!(f
            .iter()
            .any(|f| f.topic == "disk sda" && f.text.contains("mq-deadline")));
        h.disks[0].logical_block_bytes = Some(8192);
        assert_eq!(worst(&findings(&h, PLAN)), Level::Error);
    }

    #[test]
    fn data_dirs_on_one_disk_and_more_cores_than_cpus() {
        let mut h = host();
        h.cpus = vec![0];
        h.data_dirs = vec![
            DataDir {
                path: "/a".into(),
                disk: Some("vda".into()),
            },
            DataDir {
                path: "/b".into(),
                disk: Some("vda".into()),
            },
        ];
        let f = findings(&h, PLAN);
        assert!(f.iter().any(|f| f.text.contains("share one device")));
        assert!(f.iter().any(|f| f.topic == "cpus"));
    }

    #[test]
    fn thp_and_numa() {
        let mut h = host();
        h.thp_enabled = Some("always".into());
        h.thp_defrag = Some("always".into());
        h.numa_nodes = vec![
            NumaNode {
                id: 0,
                cpus: vec![0, 1],
            },
            NumaNode {
                id: 1,
                cpus: vec![2, 3],
            },
        ];
        let f = findings(&h, PLAN);
        assert!(f.iter().any(|f| f.topic == "numa"));
        assert!(f
            .iter()
            .any(|f| f.topic.contains("hugepages") && f.level == Level::Advice));
    }

    #[test]
    fn suggested_config_has_one_core_per_dir_and_parses() {
        let mut h = host();
        h.data_dirs = (0..3)
            .map(|i| DataDir {
                path: format!("/srv/disk{i}/percore"),
                disk: Some(format!("sd{i}")),
            })
            .collect();
        let text = suggested_config(&h, PLAN);
        let value: toml::Value = text.parse().expect("valid TOML");
        let cores = value["core"].as_array().expect("core tables");
        assert_eq!(cores.len(), 3);
        assert_eq!(cores[2]["dir"].as_str(), Some("/srv/disk2/percore"));
        assert_eq!(cores[2]["cpu"].as_integer(), Some(2));
        assert_eq!(value["io_memory_kib"].as_integer(), Some(2048));
    }
}
