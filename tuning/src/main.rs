//! `percore-tune`: probes the host percore will run on (io_uring support, CPUs and NUMA, disks
//! with block sizes, schedulers and queue depths, RLIMIT_MEMLOCK, transparent hugepages),
//! prints findings with advice, and suggests a `percore serve --config` file with one core per
//! disk partition. It only reads; it changes nothing on the host.
//!
//! Exit code: 0 when nothing is an error, 1 when a finding is an error (percore would not run
//! well or at all), 2 on bad arguments.

mod advice;
mod facts;
mod limits;
mod uring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::advice::{Level, Plan};

/// percore-tune: probe this host and suggest a percore configuration.
#[derive(Debug, Parser)]
#[command(name = "percore-tune", version)]
struct Args {
    /// A directory percore will keep a partition in (one per disk partition); give it once per
    /// partition. Its disk is found from the mount table.
    #[arg(long = "data-dir", value_name = "DIR")]
    data_dirs: Vec<PathBuf>,
    /// glommio I/O memory per core that percore will be started with (`--io-memory-kib`).
    #[arg(long, default_value_t = limits::IO_MEMORY_KIB_DEFAULT, value_parser = clap::value_parser!(u64).range(64..=limits::IO_MEMORY_KIB_MAX))]
    io_memory_kib: u64,
    /// Print everything as JSON (facts, findings, suggested config) instead of text.
    #[arg(long)]
    json: bool,
    /// Read sysfs from here instead of /sys (for inspecting another root).
    #[arg(long, default_value = "/sys", hide = true)]
    sys_root: PathBuf,
    /// Read procfs from here instead of /proc.
    #[arg(long, default_value = "/proc", hide = true)]
    proc_root: PathBuf,
}

fn print_text(host: &facts::HostFacts, found: &[advice::Finding], config: &str) {
    println!("host");
    println!("  kernel:    {}", host.kernel.as_deref().unwrap_or("?"));
    println!("  cpu:       {}", host.cpu_model.as_deref().unwrap_or("?"));
    println!("  cpus:      {} online", host.cpus.len());
    println!("  numa:      {} node(s)", host.numa_nodes.len().max(1));
    if let Some(m) = host.memory_bytes {
        println!("  memory:    {:.1} GiB", m as f64 / f64::from(1u32 << 30));
    }
    let memlock = match host.memlock_bytes {
        Some(u64::MAX) => "unlimited".to_owned(),
        Some(b) => format!("{} KiB", b / 1024),
        None => "?".to_owned(),
    };
    println!("  memlock:   {memlock}");
    println!(
        "  thp:       enabled={} defrag={}",
        host.thp_enabled.as_deref().unwrap_or("?"),
        host.thp_defrag.as_deref().unwrap_or("?")
    );
    if let Some(u) = &host.uring {
        let supported = u.opcodes.iter().filter(|o| o.supported).count();
        println!(
            "  io_uring:  {}/{} needed opcodes supported",
            supported,
            u.opcodes.len()
        );
    }
    println!("disks");
    for d in &host.disks {
        let mounts: Vec<&str> = d.mounts.iter().map(|m| m.path.as_str()).collect();
        println!(
            "  {:<10} {:>9.1} GiB  {:?}  block {}/{} B  rotational={}  scheduler={}  nr_requests={}  cache={}  mounts: {}",
            d.name,
            d.size_bytes as f64 / f64::from(1u32 << 30),
            d.kind,
            d.logical_block_bytes.map_or("?".into(), |b| b.to_string()),
            d.physical_block_bytes.map_or("?".into(), |b| b.to_string()),
            d.rotational.map_or("?".into(), |r| u8::from(r).to_string()),
            d.scheduler.as_deref().unwrap_or("?"),
            d.queue_depth.map_or("?".into(), |q| q.to_string()),
            d.write_cache.as_deref().unwrap_or("?"),
            if mounts.is_empty() { "-".to_owned() } else { mounts.join(" ") },
        );
    }
    println!("findings");
    for f in found {
        println!("  [{}] {}: {}", f.level.label(), f.topic, f.text);
    }
    println!("suggested config");
    for line in config.lines() {
        println!("  {line}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let roots = facts::Roots {
        sys: args.sys_root.clone(),
        proc: args.proc_root.clone(),
    };
    let mut host = facts::gather(&roots, &args.data_dirs);
    host.uring = Some(uring::probe());
    let plan = Plan {
        io_memory_bytes: args.io_memory_kib * 1024,
    };
    let found = advice::findings(&host, plan);
    let config = advice::suggested_config(&host, plan);
    if args.json {
        let doc = serde_json::json!({
            "facts": host,
            "findings": found,
            "suggested_config": config,
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("percore-tune: cannot encode JSON: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print_text(&host, &found, &config);
    }
    if found.iter().any(|f| f.level == Level::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
