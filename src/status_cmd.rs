//! `percore status --config FILE`: asks every core of a cluster's layout for its counters
//! (`proto::Request::Stats` over its TCP port) and prints one line per node and per core: up
//! or down, fragments, live and free bytes, poisoned, and the core's scrub record (its last
//! pass, read with a `MetaGet` of `objects::scrub::SCRUB_KEY`). FILE is either a node config
//! naming the layout (`layout = …`) or the layout file itself.
//!
//! Every core is asked from its own thread and waited for at most `CORE_WAIT_MAX`, so a hung
//! host costs the command that long, not the blocking client's own 30 s read timeout.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use objects::scrub::ScrubRecord;
use placement::Layout;
use proto::{CoreStats, Request, Response};

use crate::membership;
use crate::node_config::NodeFile;

/// How long a core may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the command waits for all cores' answers (they are asked in parallel).
const CORE_WAIT_MAX: Duration = Duration::from_secs(5);
/// Most cores asked at once (one thread each).
const PARALLEL_MAX: usize = 64;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// A node config with `layout` (and `layout_state`), or the layout file itself.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// What one core answered.
enum CoreState {
    /// Its counters, and its scrub record (`None`: no pass has ended on it yet).
    Up(Box<CoreStats>, Option<ScrubRecord>),
    /// Reachable, but answers with an error (a layout version mismatch, typically).
    Refuses(String),
    /// Running but offline: its partition is damaged (the reason).
    Offline(String),
    Down(String),
}

/// Prints the status; `Ok(true)` when every core is up.
pub fn run(args: &StatusArgs) -> anyhow::Result<bool> {
    let (path, layout) = load(&args.config)?;
    // A removed node's cores are not asked (a new node may listen on its ports now).
    let removed_node = |id: u64| layout.nodes().iter().any(|n| n.id == id && n.removed);
    let endpoints: Vec<_> = membership::core_endpoints(&layout)
        .into_iter()
        .filter(|(node, _, _)| !removed_node(*node))
        .collect();
    let states = ask_all(&endpoints, layout.version());
    println!(
        "layout {}: version {}, {} nodes, {} cores",
        path.display(),
        layout.version(),
        layout.nodes().len(),
        layout.cores().len()
    );
    let mut cores_down = 0;
    let mut nodes_down = 0;
    let mut removed = 0;
    for node in layout.nodes() {
        if node.removed {
            println!(
                "node {} ({}:{}, zone {}): removed from the cluster, not asked",
                node.id, node.address, node.base_port, node.zone
            );
            removed += 1;
            continue;
        }
        let mine: Vec<usize> = (0..endpoints.len())
            .filter(|&i| endpoints[i].0 == node.id)
            .collect();
        let up = mine
            .iter()
            .filter(|&&i| matches!(states[i], CoreState::Up(..)))
            .count();
        let word = match up {
            n if n == mine.len() => "up",
            0 => "down",
            _ => "degraded",
        };
        nodes_down += usize::from(up == 0);
        cores_down += mine.len() - up;
        println!(
            "node {} ({}:{}, zone {}): {word}, {up}/{} cores up",
            node.id,
            node.address,
            node.base_port,
            node.zone,
            mine.len()
        );
        for i in mine {
            let (_, index, addr) = &endpoints[i];
            let addr = addr
                .as_ref()
                .map_or_else(|e| format!("({e:#})"), ToString::to_string);
            println!(
                "  core {}/{index} {addr}: {}",
                node.id,
                describe(&states[i])
            );
        }
    }
    let asked = endpoints.len();
    println!(
        "summary: {}/{asked} cores up, {nodes_down} of {} nodes down",
        asked - cores_down,
        layout.nodes().len() - removed
    );
    print_change(&args.config);
    Ok(cores_down == 0)
}

/// With a node config that has `[control]`: the map's layout and the change in progress (as
/// `percore control status` prints them), or why the map could not be read.
fn print_change(config: &Path) {
    let Ok(file) = NodeFile::load(config) else {
        return;
    };
    let Some(control) = file.control.as_ref() else {
        return;
    };
    let read = control.resolve(Path::new("/")).and_then(|c| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the client's runtime")?;
        runtime
            .block_on(control::follow::read_any(&c.voters_from(None)))
            .context("reading the replicated map")
    });
    match read {
        Ok(map) => crate::control_cmd::print_layouts(&map),
        Err(e) => println!("control plane: {e:#}"),
    }
}

/// FILE as a layout (it has `format` or `[[node]]`), else as a node config naming one.
fn load(config: &Path) -> anyhow::Result<(PathBuf, Layout)> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
    if table.contains_key("format") || table.contains_key("node") {
        let layout = membership::load_layout(config, None)?;
        return Ok((config.to_path_buf(), layout));
    }
    let file = NodeFile::load(config)?;
    let (path, layout) = membership::layout_of(&file, config)?;
    // The layout the node took from the control plane, when newer than its file's.
    let data = file
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("./percore-data"));
    match crate::map_layout::newer_than(&data, &layout)? {
        Some(kept) => Ok((data.join("map-layout.toml"), kept)),
        None => Ok((path, layout)),
    }
}

fn describe(state: &CoreState) -> String {
    match state {
        CoreState::Down(why) => format!("down ({why})"),
        CoreState::Refuses(why) => format!("reachable but refuses: {why}"),
        CoreState::Offline(why) => format!("OFFLINE, damaged partition ({why})"),
        CoreState::Up(s, scrub) => format!(
            "up, {} fragments, live {}, free {}{}{}; {}",
            s.fragments,
            human_bytes(s.live_bytes),
            if s.capacity_bytes == u64::MAX {
                "unbounded".to_owned()
            } else {
                human_bytes(s.free_bytes)
            },
            if s.poisoned {
                ", POISONED (refuses writes)"
            } else {
                ""
            },
            recovered_damage(s),
            scrubbed(scrub.as_ref(), now_ms())
        ),
    }
}

/// The last scrub pass over the versions the core is primary of.
fn scrubbed(record: Option<&ScrubRecord>, now_ms: u64) -> String {
    use std::fmt::Write;
    let Some(r) = record else {
        return "scrub: no pass ended yet".to_owned();
    };
    let c = &r.counts;
    let mut s = format!(
        "scrub: last pass ended {} ago, {} fragments ({}) checked",
        human_secs(now_ms.saturating_sub(r.end_ms) / 1000),
        c.verified,
        human_bytes(c.bytes)
    );
    if c.corrupt + c.missing > 0 {
        let _ = write!(
            s,
            ", {} corrupt, {} missing, {} repaired, {} NOT repaired",
            c.corrupt, c.missing, c.repaired, c.repair_failed
        );
    }
    if c.unreachable > 0 {
        let _ = write!(s, ", {} unchecked (core unreachable)", c.unreachable);
    }
    s
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the core's last start repaired around, if anything.
fn recovered_damage(s: &CoreStats) -> String {
    let mut parts = Vec::new();
    if s.checkpoint_rebuilt {
        parts.push("checkpoint damaged, index rebuilt from the log".to_owned());
    }
    if s.corrupt_records_replayed > 0 {
        parts.push(format!(
            "{} damaged log records skipped",
            s.corrupt_records_replayed
        ));
    }
    if s.guarded_pairs_dropped > 0 {
        parts.push(format!(
            "{} heads dropped with their damaged data",
            s.guarded_pairs_dropped
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(", RECOVERED FROM DAMAGE at start: {}", parts.join(", "))
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Asks every core, `PARALLEL_MAX` at a time; a core that has not answered by the deadline is
/// down.
fn ask_all(
    endpoints: &[(u64, u16, anyhow::Result<SocketAddr>)],
    layout_version: u64,
) -> Vec<CoreState> {
    let mut states: Vec<Option<CoreState>> = (0..endpoints.len()).map(|_| None).collect();
    for chunk_start in (0..endpoints.len()).step_by(PARALLEL_MAX) {
        let chunk_end = (chunk_start + PARALLEL_MAX).min(endpoints.len());
        let (tx, rx) = mpsc::channel();
        for (i, endpoint) in endpoints
            .iter()
            .enumerate()
            .take(chunk_end)
            .skip(chunk_start)
        {
            match &endpoint.2 {
                Err(e) => states[i] = Some(CoreState::Down(format!("{e:#}"))),
                Ok(addr) => {
                    let (tx, addr) = (tx.clone(), *addr);
                    // Detached: a core that hangs past the deadline keeps its thread until the
                    // process exits, which is right after printing.
                    std::thread::spawn(move || {
                        let _ = tx.send((i, ask(addr, layout_version)));
                    });
                }
            }
        }
        drop(tx);
        let deadline = Instant::now() + CORE_WAIT_MAX;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok((i, state)) => states[i] = Some(state),
                Err(_) => break,
            }
        }
    }
    states
        .into_iter()
        .map(|s| {
            s.unwrap_or_else(|| {
                CoreState::Down(format!("no answer within {}s", CORE_WAIT_MAX.as_secs()))
            })
        })
        .collect()
}

fn ask(addr: SocketAddr, layout_version: u64) -> CoreState {
    // A short connect first: the blocking client's own connect waits 5 s for a silent host.
    if let Err(e) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        return CoreState::Down(e.to_string());
    }
    let mut client = match engine::client::BlockingClient::connect(addr, layout_version) {
        Ok(c) => c,
        Err(e) => return CoreState::Down(e.to_string()),
    };
    match client.call(&Request::Stats) {
        Ok(Response::Stats(s)) => {
            let scrub = client.call(&objects::scrub::record_request());
            let record = match scrub {
                Ok(Response::Meta(Some(e))) => ScrubRecord::decode(&e.value),
                _ => None,
            };
            CoreState::Up(Box::new(s), record)
        }
        Ok(Response::Error {
            code: proto::ErrorCode::Offline,
            message,
        }) => CoreState::Offline(message),
        Ok(Response::Error { code, message }) => CoreState::Refuses(format!("{code:?}: {message}")),
        Ok(other) => CoreState::Refuses(format!("unexpected answer {other:?}")),
        Err(e) => CoreState::Down(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn the_scrub_line_says_what_was_found() {
        assert_eq!(scrubbed(None, 0), "scrub: no pass ended yet");
        let mut r = ScrubRecord {
            end_ms: 1_000_000,
            counts: objects::scrub::Counts {
                verified: 12,
                bytes: 3 << 20,
                ..Default::default()
            },
        };
        assert_eq!(
            scrubbed(Some(&r), 1_000_000 + 3_600_000),
            "scrub: last pass ended 60m ago, 12 fragments (3.0 MiB) checked"
        );
        r.counts.corrupt = 2;
        r.counts.repaired = 1;
        r.counts.repair_failed = 1;
        assert!(scrubbed(Some(&r), 0).contains("2 corrupt, 0 missing, 1 repaired, 1 NOT repaired"));
    }

    #[test]
    fn a_closed_port_is_down() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(matches!(ask(addr, 1), CoreState::Down(_)));
    }
}
