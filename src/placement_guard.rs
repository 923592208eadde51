//! A node refuses to start under a layout that would move its data: data moves only through a
//! live change (`percore layout apply --config`: the nodes follow the control plane's map and
//! move the data while they serve, cluster/DESIGN.md "Layout changes"), never by restarting
//! nodes with another layout file. A node started under a layout whose tables differ would
//! route reads to cores that never received the data. Found on main before live changes: a
//! 3-node cluster holding 400 objects, given a layout with a 4th node, started on all four
//! without a word, and 168 objects became unreadable while the listing still showed 400. A
//! node that took a layout live keeps it (`keep`, and `map_layout`), so its restart is served.
//!
//! So each node's data directory keeps the placement it serves under, `DIR/placement.toml`: the
//! layout version and [`placement::Layout::placement_digest`] (the tables, nothing else). At
//! start, after its cores are up and before it serves:
//! - no file: the node is new (or was last run by a build without this guard): it is written;
//! - the same digest: served (a new version that changes no table, e.g. a policy added, only
//!   updates the version kept);
//! - another digest: refused with the two versions when any of the node's cores holds a
//!   fragment or a metadata record other than its scrub record (or cannot say, being offline);
//!   a node holding nothing takes the new layout (an empty cluster may be reshaped freely).
//!
//! Not here: the gateway-only role holds no data and keeps no file; the layout's own validation
//! (`placement`) and the core count of a single node (`check_core_count` in main.rs).

use std::path::Path;

use anyhow::{bail, Context};
use engine::Node;
use proto::{Request, Response};

const FILE: &str = "placement.toml";

/// The placement a data directory was last served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    layout_version: u64,
    digest: u64,
}

/// Checks `layout` against the placement `data` was served under and keeps `layout`'s when it
/// may serve. `node`'s cores tell whether the directory holds anything.
pub fn check(data: &Path, layout: &placement::Layout, node: &Node) -> anyhow::Result<()> {
    let path = data.join(FILE);
    let now = Kept {
        layout_version: layout.version(),
        digest: layout.placement_digest(),
    };
    let kept = read(&path)?;
    match kept {
        Some(k) if k == now => return Ok(()),
        Some(k) if k.digest != now.digest => {
            if let Some(why) = holds_data(node) {
                bail!(
                    "{} was served under layout version {}, and layout version {} places data \
                     on other cores ({why}). Data moves only while the nodes run: start this \
                     node with the layout (and layout_state) of version {}, then propose the \
                     new one with `percore layout apply --config NODE.toml NEW` (a cluster with \
                     a control plane). A node that holds nothing takes a new layout; see \
                     README, \"Grow or shrink a running cluster\"",
                    data.display(),
                    k.layout_version,
                    now.layout_version,
                    k.layout_version,
                );
            }
        }
        _ => {}
    }
    write(&path, now)
}

/// Keeps `layout` as the placement `data` is served under: the node took it live from the
/// control plane (`layout_follow`), its data moved by the change.
pub fn keep(data: &Path, layout: &placement::Layout) -> anyhow::Result<()> {
    write(
        &data.join(FILE),
        Kept {
            layout_version: layout.version(),
            digest: layout.placement_digest(),
        },
    )
}

/// Why the node counts as holding data: the first core with a fragment or a metadata record,
/// or one that cannot answer. None when every core is empty.
fn holds_data(node: &Node) -> Option<String> {
    for h in node.handles() {
        let core = h.index();
        match h.call_blocking(Request::Stats) {
            Ok(Response::Stats(s)) if s.fragments > 0 => {
                return Some(format!("core {core} holds {} fragments", s.fragments))
            }
            Ok(Response::Stats(_)) => {}
            other => return Some(format!("core {core} cannot say what it holds: {other:?}")),
        }
        // The core's own scrub record says nothing of where data is: two keys are enough to
        // see past it.
        let scan = Request::MetaScan {
            prefix: bytes::Bytes::new(),
            start_after: None,
            limit: 2,
        };
        match h.call_blocking(scan) {
            Ok(Response::Scan { entries, .. })
                if entries
                    .iter()
                    .all(|(k, _)| &k[..] == objects::scrub::SCRUB_KEY) => {}
            Ok(Response::Scan { .. }) => return Some(format!("core {core} holds metadata")),
            other => return Some(format!("core {core} cannot say what it holds: {other:?}")),
        }
    }
    None
}

fn read(path: &Path) -> anyhow::Result<Option<Kept>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .with_context(|| format!("{}: no `{name}` line", path.display()))
    };
    let layout_version = field("layout_version")?
        .parse()
        .with_context(|| format!("{}: layout_version", path.display()))?;
    let digest = u64::from_str_radix(&field("placement")?, 16)
        .with_context(|| format!("{}: placement", path.display()))?;
    Ok(Some(Kept {
        layout_version,
        digest,
    }))
}

/// Written beside and renamed over the old file, so a crash leaves one or the other.
fn write(path: &Path, kept: Kept) -> anyhow::Result<()> {
    let text = format!(
        "# written by percore: the layout this node's data is placed under; do not edit\n\
         layout_version = {}\nplacement = \"{:016x}\"\n",
        kept.layout_version, kept.digest
    );
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_placement_round_trips() {
        let dir = std::env::temp_dir().join(format!("percore-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE);
        assert_eq!(read(&path).unwrap(), None);
        let kept = Kept {
            layout_version: 7,
            digest: u64::MAX - 3,
        };
        write(&path, kept).unwrap();
        assert_eq!(read(&path).unwrap(), Some(kept));
        std::fs::write(&path, "layout_version = 7\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("placement"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
