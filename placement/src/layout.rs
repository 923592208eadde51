//! The layout: the versioned cluster map every node and gateway loads. It owns the TOML file
//! schema ([`LayoutFile`]), its validation into a [`Layout`] (nodes, zones, cores, storage-class
//! policies and one PG table per tier in use) and the lookups the gateway needs: `pg_of`,
//! `policy_for`, `cores_for`. Building the tables is `table`'s job, the spread report
//! `spread`'s, the move list `plan`'s; this module only wires them together.
//!
//! A layout is immutable: a change is a new file with a greater `version` (the epoch), and
//! `plan::plan` lists the fragments to move between the two.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{LayoutError, PlacementError};
use crate::hash;
use crate::limits;
use crate::policy::{self, ClassPolicy, Policy, Scheme};
use crate::rebalance::{self, Stats};
use crate::report::{self, PolicyReport, Warning};
use crate::spread::{spread_of, Spread};

/// Key of [`Layout::placement_digest`], first half: "percore1" little-endian.
const DIGEST_KEY0: u64 = u64::from_le_bytes(*b"percore1");
/// Second half: "placedby" little-endian.
const DIGEST_KEY1: u64 = u64::from_le_bytes(*b"placedby");
use crate::state::State;
use crate::table::{Member, Table};

/// A storage tier: the kind of device under a core's partition. Ordered fastest first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Nvme,
    Ssd,
    Hdd,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Nvme => "nvme",
            Tier::Ssd => "ssd",
            Tier::Hdd => "hdd",
        })
    }
}

/// A core's identity: its node's id and its index on that node. Displayed `node/index`.
/// Only this identity enters the placement hash (see `hash::core_seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId {
    pub node: u64,
    pub index: u16,
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.index)
    }
}

// ---------------------------------------------------------------------------------------------
// The file schema (format 1). `deny_unknown_fields` everywhere: a typo is an error, not a
// silently ignored setting.

/// The layout file, as written (see README.md for the documented schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    /// Schema version of this file: [`limits::FORMAT_VERSION`].
    pub format: u32,
    /// The layout epoch: ≥ 1, increased by every change.
    pub version: u64,
    /// P, a power of two; default [`limits::PLACEMENT_GROUPS_DEFAULT`]. Fixed for the life of
    /// the cluster.
    #[serde(default = "default_placement_groups")]
    pub placement_groups: u32,
    /// Load bound of the PG tables in percent above a core's fair share (0..=1000, default
    /// [`limits::BALANCE_SLACK_PERCENT_DEFAULT`]): lower balances better, higher moves less
    /// when cores come and go (README.md has the measured trade-off).
    #[serde(default = "default_slack")]
    pub balance_slack_percent: u32,
    /// Seconds before the orphan sweep may remove a fragment that no record references, for
    /// every node and gateway of the cluster (default: the object service's, 2 days). A
    /// cluster setting, not a node's: a data write is refused once it has taken half of it, and
    /// a sweep with a shorter grace than a writer's could remove the fragments of a write still
    /// in flight. Processes serve each other only at the same layout version, so they agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_grace_secs: Option<u64>,
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeSpec>,
    /// Storage class name → policy; classes not listed get the default rule.
    #[serde(rename = "policy", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, PolicySpec>,
}

fn default_slack() -> u32 {
    limits::BALANCE_SLACK_PERCENT_DEFAULT
}

fn default_placement_groups() -> u32 {
    limits::PLACEMENT_GROUPS_DEFAULT
}

/// One `[[node]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: u64,
    /// IP address or host name of the node's core ports.
    pub address: String,
    /// Core i listens on `base_port + i`.
    pub base_port: u16,
    /// Failure domain above the node; default "default".
    #[serde(default = "default_zone")]
    pub zone: String,
    /// Shorthand: cores 0..N, each with the node's `weight` and `tier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u16>,
    /// Default weight of the node's cores (default 1). Weight 0 drains a core: it keeps its
    /// place in the layout (its number) and takes no placement group, so a layout change moves
    /// everything off it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The node left the cluster (drained, or dead and replaced): its cores keep their numbers
    /// and take no data (weight 0 whatever the file says), nothing connects to them, a layout
    /// change does not wait for the node, and its address and ports may be reused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// Default tier of the node's cores (default nvme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Explicit `[[node.core]]` tables, instead of `cores = N`.
    #[serde(rename = "core", default, skip_serializing_if = "Vec::is_empty")]
    pub core_list: Vec<CoreSpec>,
}

fn default_zone() -> String {
    "default".to_owned()
}

/// One `[[node.core]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreSpec {
    pub index: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// One `[policy.CLASS]` table: exactly one of `replicas` and `ec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u8>,
    /// "K+M", e.g. "4+2".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_object_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_replicas: Option<u8>,
}

impl LayoutFile {
    /// The file of one node with `cores` nvme cores of weight 1 on `address`, ports from
    /// `base_port`, zone "local", version 1, default policies.
    pub fn single_node(cores: u16, address: &str, base_port: u16) -> LayoutFile {
        LayoutFile {
            format: limits::FORMAT_VERSION,
            version: 1,
            placement_groups: limits::PLACEMENT_GROUPS_DEFAULT,
            balance_slack_percent: limits::BALANCE_SLACK_PERCENT_DEFAULT,
            orphan_grace_secs: None,
            nodes: vec![NodeSpec {
                id: 1,
                address: address.to_owned(),
                base_port,
                zone: "local".to_owned(),
                cores: Some(cores),
                weight: None,
                removed: false,
                tier: None,
                core_list: Vec::new(),
            }],
            policies: BTreeMap::new(),
        }
    }

    /// The file as TOML.
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a LayoutFile always serializes")
    }
}

// ---------------------------------------------------------------------------------------------
// The validated layout.

/// A node of a validated layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: u64,
    pub address: String,
    pub base_port: u16,
    pub zone: String,
    /// See [`NodeSpec::removed`].
    pub removed: bool,
}

/// A core of a validated layout; `zone` and `node` index [`Layout::zones`] and
/// [`Layout::nodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    pub id: CoreId,
    /// 0: drained (or of a removed node); the core is in no table.
    pub weight: u32,
    pub tier: Tier,
    pub zone: u32,
    pub node: u32,
}

/// Where one object's fragments live: fragment i on `cores[i]` (the first is the primary),
/// and the failure tolerance that list achieves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed<'a> {
    pub cores: &'a [CoreId],
    pub spread: Spread,
}

/// A validated layout with its PG tables. Immutable; cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Layout {
    version: u64,
    placement_groups: u32,
    balance_slack_percent: u32,
    orphan_grace_secs: Option<u64>,
    nodes: Vec<Node>,
    zones: Vec<String>,
    cores: Vec<Core>,
    policies: BTreeMap<String, ClassPolicy>,
    tables: Vec<Table>,
    /// Per table (same order), what the rebalance from the previous state did; all zero for a
    /// stateless or adopted table.
    rebalance_stats: Vec<Stats>,
    reports: Vec<PolicyReport>,
    warnings: Vec<Warning>,
}

impl Layout {
    /// Parses and validates a layout file and builds its PG tables.
    pub fn from_toml_str(text: &str) -> Result<Layout, LayoutError> {
        Layout::from_toml_str_and_state(text, None)
    }

    /// Validates a parsed layout file and builds its stateless PG tables: the tables of a new
    /// cluster (see `table`).
    pub fn from_file(file: &LayoutFile) -> Result<Layout, LayoutError> {
        Layout::from_file_and_state(file, None)
    }

    /// Parses a layout file and builds its tables from `previous` (see
    /// [`Layout::from_file_and_state`]).
    pub fn from_toml_str_and_state(
        text: &str,
        previous: Option<&State>,
    ) -> Result<Layout, LayoutError> {
        if text.len() > limits::FILE_BYTES_MAX {
            return Err(LayoutError::FileTooLarge {
                size_bytes: text.len(),
                max_bytes: limits::FILE_BYTES_MAX,
            });
        }
        let file: LayoutFile = toml::from_str(text).map_err(|e| LayoutError::Parse {
            message: e.to_string(),
        })?;
        Layout::from_file_and_state(&file, previous)
    }

    /// Validates a parsed layout file and builds its PG tables from the stored tables of the
    /// cluster: with no state, the stateless tables (a new cluster); with the state of an older
    /// version, each tier's table rebalanced from its stored one with the fewest moves (see
    /// `rebalance`; a tier new to the layout gets its stateless table); with the state of this
    /// very version, its tables as stored (they must match the layout's tiers, cores, weights and
    /// depths).
    pub fn from_file_and_state(
        file: &LayoutFile,
        previous: Option<&State>,
    ) -> Result<Layout, LayoutError> {
        check_header(file)?;
        if let Some(state) = previous {
            check_state(file, state)?;
        }
        let (nodes, zones, cores) = collect_nodes(&file.nodes)?;
        let policies = collect_policies(&file.policies, &cores, &zones, &nodes)?;
        let slack_permille = u64::from(file.balance_slack_percent) * 10;
        let (tables, rebalance_stats) = build_tables(
            &policies,
            &cores,
            file.placement_groups,
            slack_permille,
            previous.map(|s| (s, file.version)),
        )?;
        let mut layout = Layout {
            version: file.version,
            placement_groups: file.placement_groups,
            balance_slack_percent: file.balance_slack_percent,
            orphan_grace_secs: file.orphan_grace_secs,
            nodes,
            zones,
            cores,
            policies,
            tables,
            rebalance_stats,
            reports: Vec::new(),
            warnings: Vec::new(),
        };
        layout.reports = report::policy_reports(&layout);
        layout.warnings = report::warnings(&layout);
        Ok(layout)
    }

    /// The embedded layout of `percore serve`: one node, `cores` nvme cores on 127.0.0.1 from
    /// port 7100, default policies (see [`LayoutFile::single_node`]).
    pub fn single_node(cores: u16) -> Result<Layout, LayoutError> {
        Layout::from_file(&LayoutFile::single_node(cores, "127.0.0.1", 7100))
    }

    /// The layout epoch.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// P.
    pub fn placement_groups(&self) -> u32 {
        self.placement_groups
    }

    /// The load bound of the tables, percent above fair share.
    pub fn balance_slack_percent(&self) -> u32 {
        self.balance_slack_percent
    }

    /// The cluster's orphan grace in seconds, when the file sets one.
    pub fn orphan_grace_secs(&self) -> Option<u64> {
        self.orphan_grace_secs
    }

    /// Nodes, by id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Zone names, sorted.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// Cores, by id.
    pub fn cores(&self) -> &[Core] {
        &self.cores
    }

    /// Index of a core in [`Layout::cores`].
    pub fn core_index(&self, id: CoreId) -> Option<usize> {
        self.cores.binary_search_by_key(&id, |c| c.id).ok()
    }

    /// The address and port a core listens on.
    pub fn endpoint(&self, id: CoreId) -> Option<(&str, u16)> {
        let core = &self.cores[self.core_index(id)?];
        let node = &self.nodes[core.node as usize];
        Some((&node.address, node.base_port + id.index))
    }

    /// Storage class → policy, defaults included.
    pub fn policies(&self) -> &BTreeMap<String, ClassPolicy> {
        &self.policies
    }

    /// The PG tables, one per tier some policy uses, by tier.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// The PG table of `tier`.
    pub fn table(&self, tier: Tier) -> Option<&Table> {
        self.tables.iter().find(|t| t.tier() == tier)
    }

    /// Per table (same order as [`Layout::tables`]), what the rebalance from the previous state
    /// did.
    pub fn rebalance_stats(&self) -> &[Stats] {
        &self.rebalance_stats
    }

    /// The tables of this layout in their stored form.
    pub fn state(&self) -> State {
        State::of(self)
    }

    /// A digest of where this layout puts data: the number of placement groups and, for each
    /// tier's table, its depth and the core (node, index) of every slot. Two layouts with the
    /// same digest route every object and record to the same cores, whatever else differs
    /// (version, weights, addresses, policies, which an object's head records). A node keeps
    /// the digest it served under to refuse a layout that would move its data without moving
    /// it (`percore` does not execute plans yet).
    pub fn placement_digest(&self) -> u64 {
        let state = self.state();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&state.placement_groups.to_le_bytes());
        for t in &state.tables {
            bytes.push(crate::state::tier_code(t.tier));
            bytes.extend_from_slice(&(t.depth as u32).to_le_bytes());
            for &slot in &t.slots {
                let (core, _) = t.members[slot as usize];
                bytes.extend_from_slice(&core.node.to_le_bytes());
                bytes.extend_from_slice(&core.index.to_le_bytes());
            }
        }
        hash::siphash24(DIGEST_KEY0, DIGEST_KEY1, &bytes)
    }

    /// The achieved spread of every (class, scheme), worst PG first.
    pub fn reports(&self) -> &[PolicyReport] {
        &self.reports
    }

    /// What an operator should know about this layout (single copies, spread below a zone or
    /// node, forced imbalance, unused tiers).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The placement group of an object: the low bits of `hash::pg_hash(bucket, key)`.
    pub fn pg_of(&self, bucket: &[u8], key: &[u8]) -> u32 {
        (hash::pg_hash(bucket, key) & u64::from(self.placement_groups - 1)) as u32
    }

    /// The effective policy of an object of `size_bytes` in `storage_class`.
    pub fn policy_for(
        &self,
        storage_class: &str,
        size_bytes: u64,
    ) -> Result<Policy, PlacementError> {
        let class = self.policies.get(storage_class).ok_or_else(|| {
            PlacementError::UnknownStorageClass {
                class: storage_class.to_owned(),
                version: self.version,
            }
        })?;
        Ok(Policy {
            scheme: class.scheme_for(size_bytes),
            tier: class.tier,
        })
    }

    /// The ordered cores of `pg` under `policy` (fragment i on the i-th), with its spread.
    pub fn cores_for(&self, pg: u32, policy: &Policy) -> Result<Placed<'_>, PlacementError> {
        if pg >= self.placement_groups {
            return Err(PlacementError::PgOutOfRange {
                pg,
                count: self.placement_groups,
            });
        }
        let table = self.table(policy.tier).ok_or(PlacementError::NoTable {
            tier: policy.tier,
            version: self.version,
        })?;
        let width = policy.scheme.width();
        if width > table.depth() {
            return Err(PlacementError::WidthTooLarge {
                tier: policy.tier,
                width,
                depth: table.depth(),
            });
        }
        let cores = &table.row(pg)[..width];
        Ok(Placed {
            cores,
            spread: self.spread(table.row_indices(pg, width), policy.scheme),
        })
    }

    /// The spread of a list of core indices (into [`Layout::cores`]) under `scheme`.
    pub(crate) fn spread(&self, core_indices: &[u32], scheme: Scheme) -> Spread {
        let mut zones = [0u32; limits::WIDTH_MAX];
        let mut nodes = [0u32; limits::WIDTH_MAX];
        let n = core_indices.len();
        for (i, &c) in core_indices.iter().enumerate() {
            zones[i] = self.cores[c as usize].zone;
            nodes[i] = self.cores[c as usize].node;
        }
        spread_of(&zones[..n], &nodes[..n], scheme.tolerance())
    }

    /// Cores of `tier` that take data (weight above 0), as indices into [`Layout::cores`].
    pub fn tier_cores(&self, tier: Tier) -> impl Iterator<Item = usize> + '_ {
        self.cores
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.tier == tier && c.weight > 0)
            .map(|(i, _)| i)
    }
}

fn check_header(file: &LayoutFile) -> Result<(), LayoutError> {
    if file.format != limits::FORMAT_VERSION {
        return Err(LayoutError::UnsupportedFormat {
            found: file.format,
            supported: limits::FORMAT_VERSION,
        });
    }
    if file.version == 0 {
        return Err(LayoutError::ZeroVersion);
    }
    let p = file.placement_groups;
    if !p.is_power_of_two() || p > limits::PLACEMENT_GROUPS_MAX {
        return Err(LayoutError::PlacementGroups {
            count: p,
            max: limits::PLACEMENT_GROUPS_MAX,
        });
    }
    if file.balance_slack_percent > limits::BALANCE_SLACK_PERCENT_MAX {
        return Err(LayoutError::BalanceSlack {
            percent: file.balance_slack_percent,
            max: limits::BALANCE_SLACK_PERCENT_MAX,
        });
    }
    if let Some(secs) = file.orphan_grace_secs {
        if !limits::ORPHAN_GRACE_SECS.contains(&secs) {
            return Err(LayoutError::OrphanGrace {
                secs,
                min: *limits::ORPHAN_GRACE_SECS.start(),
                max: *limits::ORPHAN_GRACE_SECS.end(),
            });
        }
    }
    Ok(())
}

fn check_state(file: &LayoutFile, state: &State) -> Result<(), LayoutError> {
    if state.placement_groups != file.placement_groups {
        return Err(LayoutError::StatePlacementGroups {
            state: state.placement_groups,
            layout: file.placement_groups,
        });
    }
    if state.layout_version > file.version {
        return Err(LayoutError::StateAhead {
            state: state.layout_version,
            layout: file.version,
        });
    }
    Ok(())
}

fn valid_name(name: &str, extra: impl Fn(char) -> bool) -> bool {
    !name.is_empty() && name.len() <= limits::NAME_BYTES_MAX && name.chars().all(extra)
}

/// Validates the nodes and flattens them into sorted nodes, zones and cores.
/// Nodes, zone names and cores of a layout, each sorted.
type Collected = (Vec<Node>, Vec<String>, Vec<Core>);

fn collect_nodes(specs: &[NodeSpec]) -> Result<Collected, LayoutError> {
    if specs.is_empty() {
        return Err(LayoutError::NoNodes);
    }
    if specs.len() > limits::NODES_MAX {
        return Err(LayoutError::TooManyNodes {
            count: specs.len(),
            max: limits::NODES_MAX,
        });
    }
    let mut sorted: Vec<&NodeSpec> = specs.iter().collect();
    sorted.sort_by_key(|n| n.id);
    if let Some(w) = sorted.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(LayoutError::DuplicateNode { node: w[0].id });
    }
    let zones: Vec<String> = sorted
        .iter()
        .map(|n| n.zone.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut nodes = Vec::with_capacity(sorted.len());
    let mut cores = Vec::new();
    for (node_index, spec) in sorted.iter().enumerate() {
        check_node(spec)?;
        let zone = zones.binary_search(&spec.zone).expect("zone was collected") as u32;
        for (index, weight, tier) in node_cores(spec)? {
            cores.push(Core {
                id: CoreId {
                    node: spec.id,
                    index,
                },
                weight,
                tier,
                zone,
                node: node_index as u32,
            });
        }
        nodes.push(Node {
            id: spec.id,
            address: spec.address.clone(),
            base_port: spec.base_port,
            zone: spec.zone.clone(),
            removed: spec.removed,
        });
    }
    if cores.len() > limits::CORES_MAX {
        return Err(LayoutError::TooManyCores {
            count: cores.len(),
            max: limits::CORES_MAX,
        });
    }
    if cores.iter().all(|c| c.weight == 0) {
        return Err(LayoutError::NoLiveCores);
    }
    check_ports(&sorted, &cores)?;
    assert!(cores.windows(2).all(|w| w[0].id < w[1].id));
    Ok((nodes, zones, cores))
}

fn check_node(spec: &NodeSpec) -> Result<(), LayoutError> {
    if spec.address.is_empty() || spec.address.len() > limits::ADDRESS_BYTES_MAX {
        return Err(LayoutError::BadAddress {
            node: spec.id,
            max: limits::ADDRESS_BYTES_MAX,
        });
    }
    if !valid_name(&spec.zone, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    }) {
        return Err(LayoutError::BadZone {
            node: spec.id,
            zone: spec.zone.clone(),
            max: limits::NAME_BYTES_MAX,
        });
    }
    Ok(())
}

/// The (index, weight, tier) of a node's cores, sorted by index, validated.
fn node_cores(spec: &NodeSpec) -> Result<Vec<(u16, u32, Tier)>, LayoutError> {
    let weight = spec.weight.unwrap_or(1);
    let tier = spec.tier.unwrap_or_default();
    let mut list: Vec<(u16, u32, Tier)> = match (spec.cores, spec.core_list.is_empty()) {
        (Some(_), false) => return Err(LayoutError::CoresTwice { node: spec.id }),
        (Some(n), true) => (0..n).map(|i| (i, weight, tier)).collect(),
        (None, _) => spec
            .core_list
            .iter()
            .map(|c| (c.index, c.weight.unwrap_or(weight), c.tier.unwrap_or(tier)))
            .collect(),
    };
    if list.is_empty() {
        return Err(LayoutError::NodeWithoutCores { node: spec.id });
    }
    if spec.removed {
        for c in &mut list {
            c.1 = 0;
        }
    }
    if list.len() > limits::CORES_PER_NODE_MAX {
        return Err(LayoutError::TooManyCoresOnNode {
            node: spec.id,
            count: list.len(),
            max: limits::CORES_PER_NODE_MAX,
        });
    }
    list.sort_by_key(|c| c.0);
    if let Some(w) = list.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(LayoutError::DuplicateCore {
            core: CoreId {
                node: spec.id,
                index: w[0].0,
            },
        });
    }
    for &(index, weight, _) in &list {
        let core = CoreId {
            node: spec.id,
            index,
        };
        if weight > limits::WEIGHT_MAX {
            return Err(LayoutError::WeightTooLarge {
                core,
                weight,
                max: limits::WEIGHT_MAX,
            });
        }
        if u32::from(spec.base_port) + u32::from(index) > u32::from(u16::MAX) {
            return Err(LayoutError::PortOverflow {
                node: spec.id,
                index,
                base_port: spec.base_port,
            });
        }
    }
    Ok(list)
}

/// Two nodes on the same address must not share a port (glommio's SO_REUSEPORT would silently
/// split the connections between them: a pitfall measured on glommio 0.9).
fn check_ports(sorted: &[&NodeSpec], cores: &[Core]) -> Result<(), LayoutError> {
    let mut ranges: Vec<(&str, u16, u16, u64)> = Vec::with_capacity(sorted.len());
    // A removed node listens nowhere any more: a new node may take its address and ports.
    for (i, spec) in sorted.iter().enumerate().filter(|(_, n)| !n.removed) {
        let last_index = cores
            .iter()
            .filter(|c| c.node as usize == i)
            .map(|c| c.id.index)
            .max()
            .unwrap_or(0);
        ranges.push((
            &spec.address,
            spec.base_port,
            spec.base_port + last_index,
            spec.id,
        ));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.0 == b.0 && b.1 <= a.2 {
            return Err(LayoutError::PortsOverlap {
                node: a.3,
                other: b.3,
                address: a.0.to_owned(),
                port_first: b.1,
                port_last: a.2.min(b.2),
            });
        }
    }
    Ok(())
}

/// Explicit policies validated, plus the default classes the file does not define.
fn collect_policies(
    specs: &BTreeMap<String, PolicySpec>,
    cores: &[Core],
    zones: &[String],
    nodes: &[Node],
) -> Result<BTreeMap<String, ClassPolicy>, LayoutError> {
    let tiers: Vec<Tier> = cores
        .iter()
        .filter(|c| c.weight > 0)
        .map(|c| c.tier)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut policies = BTreeMap::new();
    for (class, spec) in specs {
        if !valid_name(class, |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
        }) {
            return Err(LayoutError::BadStorageClass {
                class: class.clone(),
                max: limits::NAME_BYTES_MAX,
            });
        }
        policies.insert(class.clone(), explicit_policy(class, spec, cores, &tiers)?);
    }
    for class in policy::DEFAULT_CLASSES {
        if !policies.contains_key(class) {
            let tier = policy::default_tier(class, &tiers);
            let domains = top_level_domains(cores, tier, zones.len(), nodes.len());
            let scheme = policy::default_scheme(policy::default_ladder(class), &domains);
            policies.insert(
                class.to_owned(),
                ClassPolicy {
                    scheme,
                    tier,
                    small_object_bytes: limits::SMALL_OBJECT_BYTES_DEFAULT,
                    small_replicas: policy::default_small_replicas(domains.iter().sum()),
                    explicit: false,
                },
            );
        }
    }
    if policies.len() > limits::POLICIES_MAX {
        return Err(LayoutError::TooManyPolicies {
            count: policies.len(),
            max: limits::POLICIES_MAX,
        });
    }
    Ok(policies)
}

fn explicit_policy(
    class: &str,
    spec: &PolicySpec,
    cores: &[Core],
    tiers: &[Tier],
) -> Result<ClassPolicy, LayoutError> {
    let bad = |reason: String| LayoutError::BadPolicy {
        class: class.to_owned(),
        reason,
    };
    let scheme = match (spec.replicas, &spec.ec) {
        (Some(_), Some(_)) => return Err(bad("give either `replicas` or `ec`, not both".into())),
        (None, None) => return Err(bad("give `replicas = N` or `ec = \"K+M\"`".into())),
        (Some(0), None) => return Err(bad("replicas must be at least 1".into())),
        (Some(n), None) => Scheme::Replicas(n),
        (None, Some(text)) => Scheme::parse_ec(text).map_err(bad)?,
    };
    let tier = spec
        .tier
        .unwrap_or_else(|| policy::default_tier(class, tiers));
    let eligible = cores
        .iter()
        .filter(|c| c.tier == tier && c.weight > 0)
        .count();
    if eligible == 0 {
        return Err(LayoutError::UnknownTier {
            class: class.to_owned(),
            tier,
        });
    }
    let small_replicas = spec
        .small_replicas
        .unwrap_or_else(|| policy::default_small_replicas(eligible));
    if small_replicas == 0 {
        return Err(bad("small_replicas must be at least 1".into()));
    }
    let small_object_bytes = spec
        .small_object_bytes
        .unwrap_or(limits::SMALL_OBJECT_BYTES_DEFAULT);
    let policy = ClassPolicy {
        scheme,
        tier,
        small_object_bytes,
        small_replicas,
        explicit: true,
    };
    for width in policy.schemes().into_iter().map(Scheme::width) {
        if width > limits::WIDTH_MAX {
            let max = limits::WIDTH_MAX;
            return Err(LayoutError::PolicyTooWide {
                class: class.to_owned(),
                width,
                max,
            });
        }
        if width > eligible {
            let class = class.to_owned();
            return Err(LayoutError::PolicyWiderThanTier {
                class,
                width,
                tier,
                eligible,
            });
        }
    }
    Ok(policy)
}

/// Core counts of the top-level failure domains of `tier`: its zones if it spans two or more,
/// else its nodes if two or more, else one domain per core.
pub(crate) fn top_level_domains(
    cores: &[Core],
    tier: Tier,
    zone_count: usize,
    node_count: usize,
) -> Vec<usize> {
    let mut per_zone = vec![0usize; zone_count];
    let mut per_node = vec![0usize; node_count];
    let mut total = 0;
    for c in cores.iter().filter(|c| c.tier == tier && c.weight > 0) {
        per_zone[c.zone as usize] += 1;
        per_node[c.node as usize] += 1;
        total += 1;
    }
    per_zone.retain(|&n| n > 0);
    per_node.retain(|&n| n > 0);
    if per_zone.len() >= 2 {
        per_zone
    } else if per_node.len() >= 2 {
        per_node
    } else {
        vec![1; total]
    }
}

/// One table per tier some policy uses, deep enough for its widest scheme; from `previous`
/// (a state and the new layout's version) when given.
fn build_tables(
    policies: &BTreeMap<String, ClassPolicy>,
    cores: &[Core],
    pgs: u32,
    slack_permille: u64,
    previous: Option<(&State, u64)>,
) -> Result<(Vec<Table>, Vec<Stats>), LayoutError> {
    let mut depth_by_tier: BTreeMap<Tier, usize> = BTreeMap::new();
    for p in policies.values() {
        let d = depth_by_tier.entry(p.tier).or_default();
        *d = (*d).max(p.depth());
    }
    depth_by_tier
        .into_iter()
        .map(|(tier, depth)| {
            let members: Vec<Member> = cores
                .iter()
                .enumerate()
                .filter(|(_, c)| c.tier == tier && c.weight > 0)
                .map(|(i, c)| Member {
                    id: c.id,
                    layout_index: i as u32,
                    zone: c.zone,
                    node: c.node,
                    weight: c.weight,
                })
                .collect();
            tier_table(tier, &members, pgs, depth, slack_permille, previous)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|built| {
            if let Some((state, version)) = previous {
                if state.layout_version == version && state.tables.len() != built.len() {
                    return Err(LayoutError::StateMismatch {
                        version,
                        reason: format!(
                            "{} stored tables, {} tiers in use",
                            state.tables.len(),
                            built.len()
                        ),
                    });
                }
            }
            Ok(built.into_iter().unzip())
        })
}

/// The table of one tier: stateless, adopted from a state of the same version, or rebalanced
/// from an older one.
fn tier_table(
    tier: Tier,
    members: &[Member],
    pgs: u32,
    depth: usize,
    slack_permille: u64,
    previous: Option<(&State, u64)>,
) -> Result<(Table, Stats), LayoutError> {
    let stateless = || {
        (
            Table::build(tier, members, pgs, depth, slack_permille),
            Stats::default(),
        )
    };
    let Some((state, version)) = previous else {
        return Ok(stateless());
    };
    let stored = state.table(tier);
    if state.layout_version == version {
        let mismatch = |reason: String| LayoutError::StateMismatch { version, reason };
        let stored = stored.ok_or_else(|| mismatch(format!("no stored table for tier {tier}")))?;
        let same_members = stored.members.len() == members.len()
            && stored
                .members
                .iter()
                .zip(members)
                .all(|(&(id, weight), m)| id == m.id && weight == m.weight);
        if !same_members || stored.depth != depth {
            return Err(mismatch(format!(
                "tier {tier}: the stored table has other cores, weights or depth"
            )));
        }
        let table = Table::from_slots(tier, members, pgs, depth, slack_permille, &stored.slots);
        return Ok((table, Stats::default()));
    }
    let Some(stored) = stored else {
        return Ok(stateless());
    };
    let (rebalanced, what_it_did) =
        rebalance::rebalance(members, pgs, depth, slack_permille, stored);
    let table = Table::from_slots(tier, members, pgs, depth, slack_permille, &rebalanced);
    Ok((table, what_it_did))
}
