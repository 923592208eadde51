//! A process's place in a cluster: loading the layout (and its state file) a node config
//! names, and finding this node's cores in it: their partitions, the address and ports they
//! listen on, the layout version their frames carry.
//!
//! Owns the checks between a node config and its layout (node_id present, core count equal to
//! the `[[core]]` tables, ports in range). Does not own routing (the gateway's `Backend`) nor
//! the layout's own validation (the `placement` crate).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use placement::Layout;

use crate::node_config::{CoreEntry, NodeFile};

/// Loads and validates a layout file, with its state file when given (the PG tables of a
/// running cluster, see placement/README.md).
pub fn load_layout(path: &Path, state: Option<&Path>) -> anyhow::Result<Layout> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the layout {}", path.display()))?;
    let state = match state {
        None => None,
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("reading the layout state {}", p.display()))?;
            Some(
                placement::State::decode(&bytes)
                    .with_context(|| format!("the layout state {}", p.display()))?,
            )
        }
    };
    Layout::from_toml_str_and_state(&text, state.as_ref())
        .with_context(|| format!("the layout {}", path.display()))
}

/// The layout a node config names (an error if it names none).
pub fn layout_of(file: &NodeFile, config: &Path) -> anyhow::Result<(PathBuf, Layout)> {
    let Some(path) = &file.layout else {
        bail!(
            "{} has no `layout`: name the cluster's layout file (see README, \"Run a \
             multi-node cluster\")",
            config.display()
        );
    };
    let layout = load_layout(path, file.layout_state.as_deref())
        .with_context(|| format!("the layout named by {}", config.display()))?;
    Ok((path.clone(), layout))
}

/// This node in the layout: what its cores are and where they listen.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub node_id: u64,
    /// Core i listens on (ip, base_port + index).
    pub ip: IpAddr,
    pub base_port: u16,
    /// In core-index order, `index` being the layout's core index.
    pub cores: Vec<engine::CoreConfig>,
}

/// The cores of `node_id` in `layout`: each takes the `[[core]]` table at its position when
/// the file has them (their count must equal the layout's), else `data/core-INDEX`.
pub fn local_node(
    layout: &Layout,
    node_id: u64,
    data: &Path,
    core_tables: &[CoreEntry],
) -> anyhow::Result<LocalNode> {
    let Some(pos) = layout.nodes().iter().position(|n| n.id == node_id) else {
        let ids: Vec<String> = layout.nodes().iter().map(|n| n.id.to_string()).collect();
        bail!(
            "node_id {node_id} is not a [[node]] of the layout (its nodes: {})",
            ids.join(", ")
        );
    };
    let node = &layout.nodes()[pos];
    if node.removed {
        bail!(
            "node {node_id} was removed from the cluster (layout version {} marks it `removed`): \
             the cluster no longer uses its data. To bring this machine back, wipe its data \
             and add it as a new node with another id (`percore node add`)",
            layout.version()
        );
    }
    let indices: Vec<u16> = layout
        .cores()
        .iter()
        .filter(|c| c.node as usize == pos)
        .map(|c| c.id.index)
        .collect();
    assert!(
        indices.is_sorted(),
        "the layout lists a node's cores by index"
    );
    if indices.is_empty() {
        bail!("node {node_id} has no cores in the layout");
    }
    if !core_tables.is_empty() && core_tables.len() != indices.len() {
        bail!(
            "{} [[core]] tables, but the layout gives node {node_id} {} cores: one [[core]] \
             per core of the layout, in index order",
            core_tables.len(),
            indices.len()
        );
    }
    let last = *indices.last().expect("not empty");
    if node.base_port.checked_add(last).is_none() {
        bail!(
            "node {node_id}: base_port {} + core index {last} exceeds 65535",
            node.base_port
        );
    }
    let cores = indices
        .iter()
        .enumerate()
        .map(|(i, &index)| match core_tables.get(i) {
            Some(t) => engine::CoreConfig {
                index: u32::from(index),
                dir: t.dir.clone(),
                cpu: t.cpu,
            },
            None => engine::CoreConfig {
                index: u32::from(index),
                dir: data.join(format!("core-{index}")),
                cpu: None,
            },
        })
        .collect();
    Ok(LocalNode {
        node_id,
        ip: resolve(&node.address, node.base_port)
            .with_context(|| format!("node {node_id}'s address {:?}", node.address))?,
        base_port: node.base_port,
        cores,
    })
}

/// An IP address as is, else the first address a host name resolves to.
pub fn resolve(address: &str, port: u16) -> anyhow::Result<IpAddr> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Ok(ip);
    }
    (address, port)
        .to_socket_addrs()
        .context("resolving it")?
        .next()
        .map(|a| a.ip())
        .context("it resolves to no address")
}

/// Every core of the layout with the address it listens on, by node then index.
pub fn core_endpoints(layout: &Layout) -> Vec<(u64, u16, anyhow::Result<SocketAddr>)> {
    layout
        .cores()
        .iter()
        .map(|c| {
            let node = &layout.nodes()[c.node as usize];
            let addr = node
                .base_port
                .checked_add(c.id.index)
                .context("port exceeds 65535")
                .and_then(|port| Ok(SocketAddr::new(resolve(&node.address, port)?, port)));
            (c.id.node, c.id.index, addr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_nodes() -> Layout {
        use std::fmt::Write;
        let mut text = String::from("format = 1\nversion = 3\nplacement_groups = 64\n");
        for i in 1..=3u16 {
            write!(
                text,
                "[[node]]\nid = {i}\naddress = \"127.0.0.1\"\nbase_port = {}\nzone = \
                 \"zone-{i}\"\ncores = 2\n",
                7000 + i * 10
            )
            .expect("a String takes writes");
        }
        Layout::from_toml_str(&text).expect("valid layout")
    }

    #[test]
    fn local_cores_follow_the_layout() {
        let layout = three_nodes();
        let n = local_node(&layout, 2, Path::new("/d"), &[]).expect("node 2");
        assert_eq!((n.node_id, n.base_port), (2, 7020));
        assert_eq!(n.ip, IpAddr::from([127, 0, 0, 1]));
        let dirs: Vec<_> = n.cores.iter().map(|c| (c.index, c.dir.clone())).collect();
        assert_eq!(
            dirs,
            vec![
                (0, PathBuf::from("/d/core-0")),
                (1, PathBuf::from("/d/core-1"))
            ]
        );
        let tables = [
            CoreEntry {
                dir: "/a".into(),
                cpu: Some(1),
            },
            CoreEntry {
                dir: "/b".into(),
                cpu: None,
            },
        ];
        let n = local_node(&layout, 3, Path::new("/d"), &tables).expect("node 3");
        assert_eq!(n.cores[1].dir, PathBuf::from("/b"));
        assert_eq!(n.cores[0].cpu, Some(1));
    }

    #[test]
    fn mismatches_are_named() {
        let layout = three_nodes();
        let err = format!(
            "{:#}",
            local_node(&layout, 9, Path::new("/d"), &[]).unwrap_err()
        );
        assert!(
            err.contains("node_id 9") && err.contains("1, 2, 3"),
            "{err}"
        );
        let one = [CoreEntry {
            dir: "/a".into(),
            cpu: None,
        }];
        let err = format!(
            "{:#}",
            local_node(&layout, 1, Path::new("/d"), &one).unwrap_err()
        );
        assert!(
            err.contains("1 [[core]] tables") && err.contains("2 cores"),
            "{err}"
        );
    }

    #[test]
    fn endpoints_of_every_core() {
        let eps = core_endpoints(&three_nodes());
        assert_eq!(eps.len(), 6);
        assert_eq!((eps[5].0, eps[5].1), (3, 1));
        assert_eq!(eps[5].2.as_ref().expect("resolves").port(), 7031);
    }
}
