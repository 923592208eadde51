//! Every bound of the placement crate, named once (`*_max`, units last), with compile-time
//! checks of the relationships between them. Validation refers to these names in its errors.

/// The layout file schema this crate reads and writes (`format = 1`).
pub const FORMAT_VERSION: u32 = 1;

/// Placement groups when the layout does not say (`placement_groups`).
pub const PLACEMENT_GROUPS_DEFAULT: u32 = 4096;
/// Upper bound on placement groups: bounds table memory (P × width × 16 bytes per tier).
pub const PLACEMENT_GROUPS_MAX: u32 = 1 << 16;

/// Nodes in one layout.
pub const NODES_MAX: usize = 4096;
/// Cores (partitions) of one node; `percore serve --cores` has the same bound.
pub const CORES_PER_NODE_MAX: usize = 1024;
/// Cores in one layout, all nodes together.
pub const CORES_MAX: usize = 16_384;

/// Widest policy: replicas r or EC k + m, and the deepest PG table.
pub const WIDTH_MAX: usize = 32;
/// Largest core weight (weights are relative; capacity in GiB fits).
pub const WEIGHT_MAX: u32 = 1 << 20;
/// Storage classes defined by one layout (defaults included).
pub const POLICIES_MAX: usize = 64;

/// Bytes of a zone name or a storage-class name.
pub const NAME_BYTES_MAX: usize = 64;
/// Bytes of a node address (an IP or a host name).
pub const ADDRESS_BYTES_MAX: usize = 255;
/// Bytes of the layout file.
pub const FILE_BYTES_MAX: usize = 16 << 20;

/// Objects smaller than this are replicated under an EC policy unless the policy says otherwise
/// (the gateway's `SMALL_OBJECT_BYTES`).
pub const SMALL_OBJECT_BYTES_DEFAULT: u64 = 128 * 1024;
/// Copies of a small object, at most (fewer when the tier has fewer cores).
pub const SMALL_REPLICAS_DEFAULT: u8 = 3;

/// Load bound of the PG tables when the layout does not say (`balance_slack_percent`): a core
/// holds at most max(⌈share⌉, ⌊share × (100 + slack) / 100⌋) fragments of each table prefix
/// (unless spread forces more onto it). 10 = the balance bound of 1.10.
pub const BALANCE_SLACK_PERCENT_DEFAULT: u32 = 10;
/// Largest `balance_slack_percent`: 1000 % is, in practice, plain weighted rendezvous.
pub const BALANCE_SLACK_PERCENT_MAX: u32 = 1000;
/// The orphan grace a layout may set, in seconds: 2 s (tests) to 10 years.
pub const ORPHAN_GRACE_SECS: std::ops::RangeInclusive<u64> = 2..=10 * 365 * 86_400;

const _: () = assert!(PLACEMENT_GROUPS_MAX.is_power_of_two());
const _: () = assert!(PLACEMENT_GROUPS_DEFAULT.is_power_of_two());
const _: () = assert!(PLACEMENT_GROUPS_DEFAULT <= PLACEMENT_GROUPS_MAX);
const _: () = assert!(WIDTH_MAX <= u8::MAX as usize);
const _: () = assert!(CORES_PER_NODE_MAX <= CORES_MAX);
const _: () = assert!(CORES_PER_NODE_MAX <= u16::MAX as usize + 1);
const _: () = assert!(CORES_MAX <= u32::MAX as usize);
const _: () = assert!((SMALL_REPLICAS_DEFAULT as usize) <= WIDTH_MAX);
// Capacity arithmetic: P × width × weight × cores × (1000 + slack) fits u128 with room to spare.
const _: () = assert!(
    (PLACEMENT_GROUPS_MAX as u128)
        * (WIDTH_MAX as u128)
        * (WEIGHT_MAX as u128)
        * (CORES_MAX as u128)
        * (1000 + 10 * BALANCE_SLACK_PERCENT_MAX as u128)
        < u128::MAX >> 8
);
