//! The crate's two error enums: [`LayoutError`] for a layout that cannot be used (each variant
//! names the offending node, core, zone or policy), and [`PlacementError`] for a lookup or a
//! movement plan that cannot be answered. Only the gateway and the CLI turn them into messages
//! for users; both implement `Display` with the precise reason.

use crate::layout::{CoreId, Tier};

/// Why a layout file or a built layout is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("layout file is not valid TOML for this schema: {message}")]
    Parse { message: String },
    #[error("layout file is {size_bytes} bytes, more than the {max_bytes} allowed")]
    FileTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("layout format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("layout version (the epoch) must be at least 1")]
    ZeroVersion,
    #[error("placement_groups = {count}: must be a power of two between 1 and {max}")]
    PlacementGroups { count: u32, max: u32 },
    #[error("balance_slack_percent = {percent}: must be at most {max}")]
    BalanceSlack { percent: u32, max: u32 },
    #[error("orphan_grace_secs = {secs}: must be between {min} and {max}")]
    OrphanGrace { secs: u64, min: u64, max: u64 },
    #[error("the layout has no node")]
    NoNodes,
    #[error("the layout has {count} nodes, more than the {max} allowed")]
    TooManyNodes { count: usize, max: usize },
    #[error("the layout has {count} cores, more than the {max} allowed")]
    TooManyCores { count: usize, max: usize },
    #[error("node {node} appears twice")]
    DuplicateNode { node: u64 },
    #[error("node {node} has no core")]
    NodeWithoutCores { node: u64 },
    #[error("node {node} has {count} cores, more than the {max} allowed per node")]
    TooManyCoresOnNode { node: u64, count: usize, max: usize },
    #[error("node {node} gives both `cores = N` and [[node.core]] tables: use one")]
    CoresTwice { node: u64 },
    #[error("core {core} appears twice")]
    DuplicateCore { core: CoreId },
    #[error("every core has weight 0 or belongs to a removed node: no core is left to hold data")]
    NoLiveCores,
    #[error("core {core} has weight {weight}, more than the {max} allowed")]
    WeightTooLarge { core: CoreId, weight: u32, max: u32 },
    #[error("node {node}: core {index} would listen on port {base_port} + {index}, past 65535")]
    PortOverflow {
        node: u64,
        index: u16,
        base_port: u16,
    },
    #[error("nodes {node} and {other} both use ports {port_first}..={port_last} on {address}")]
    PortsOverlap {
        node: u64,
        other: u64,
        address: String,
        port_first: u16,
        port_last: u16,
    },
    #[error("node {node}: address must be 1 to {max} bytes")]
    BadAddress { node: u64, max: usize },
    #[error("node {node}: zone {zone:?} must be 1 to {max} bytes of A-Z a-z 0-9 . _ -")]
    BadZone { node: u64, zone: String, max: usize },
    #[error("storage class {class:?} must be 1 to {max} bytes of A-Z 0-9 _")]
    BadStorageClass { class: String, max: usize },
    #[error("the layout defines {count} storage classes, more than the {max} allowed")]
    TooManyPolicies { count: usize, max: usize },
    #[error("policy {class}: {reason}")]
    BadPolicy { class: String, reason: String },
    #[error("policy {class}: width {width} is more than the {max} allowed")]
    PolicyTooWide {
        class: String,
        width: usize,
        max: usize,
    },
    #[error("policy {class}: width {width} but tier {tier} has only {eligible} cores")]
    PolicyWiderThanTier {
        class: String,
        width: usize,
        tier: Tier,
        eligible: usize,
    },
    #[error("policy {class}: no core has tier {tier}")]
    UnknownTier { class: String, tier: Tier },
    #[error("the state holds tables of layout version {state}, newer than this layout's {layout}")]
    StateAhead { state: u64, layout: u64 },
    #[error("the state has {state} placement groups but the layout {layout}; P never changes")]
    StatePlacementGroups { state: u32, layout: u32 },
    #[error(
        "the state of version {version} does not match the layout of the same version: {reason}"
    )]
    StateMismatch { version: u64, reason: String },
}

/// Why a lookup or a movement plan cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("storage class {class:?} is not defined by layout version {version}")]
    UnknownStorageClass { class: String, version: u64 },
    #[error("no policy of layout version {version} places fragments on tier {tier}")]
    NoTable { tier: Tier, version: u64 },
    #[error("width {width} asked on tier {tier}, whose PG table is {depth} deep")]
    WidthTooLarge {
        tier: Tier,
        width: usize,
        depth: usize,
    },
    #[error("placement group {pg} is out of range (the layout has {count})")]
    PgOutOfRange { pg: u32, count: u32 },
    #[error("plan: placement groups changed from {old} to {new}; splitting PGs is not supported")]
    PlacementGroupsChanged { old: u32, new: u32 },
    #[error("plan: the new layout's version {new} must be greater than the old {old}")]
    VersionNotIncreasing { old: u64, new: u64 },
    #[error("plan: tier {tier} has stored fragments in the old layout but no table in the new")]
    TierRemoved { tier: Tier },
    #[error("plan: tier {tier}'s table shrinks from {old} to {new} positions (fragments at the dropped positions would lose their place)")]
    DepthShrunk { tier: Tier, old: usize, new: usize },
}

/// Why a state file (the stored PG tables, see `state`) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state file is {size_bytes} bytes: too short for a header and a checksum")]
    Truncated { size_bytes: usize },
    #[error("state file is {size_bytes} bytes, more than the {max_bytes} a valid state can take")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    #[error("not a percore placement state file (bad magic)")]
    BadMagic,
    #[error("state format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("state record kind {found} is not PG tables")]
    BadKind { found: u32 },
    #[error("state header says {header_bytes} bytes but the file has {size_bytes} (torn write?)")]
    LengthMismatch {
        header_bytes: u64,
        size_bytes: usize,
    },
    #[error("state checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    Checksum { stored: u64, computed: u64 },
    #[error("state file is inconsistent: {reason}")]
    Invalid { reason: String },
}
