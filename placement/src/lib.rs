//! percore placement: where every fragment of every object lives.
//!
//! Pure, deterministic code: no I/O, no async, no clock, no randomness. The same layout gives
//! the same answer in every process on every machine (the hashes are written out in [`hash`],
//! floating point is limited to exactly rounded IEEE operations).
//!
//! - [`layout`]: the layout file (TOML, versioned), its validation, the [`Layout`] lookups:
//!   [`Layout::pg_of`], [`Layout::policy_for`], [`Layout::cores_for`].
//! - [`policy`]: storage-class policies and the default rule that adapts them to the failure
//!   domains a cluster has.
//! - [`table`]: the stateless PG table of a tier (spread first, weighted rendezvous per fragment
//!   position, bounded load): the first table of a cluster.
//! - [`rebalance`]: every later table, from the previous version's with the fewest moves.
//! - [`bound`]: the least any valid later table moves: what the rebalance is measured against.
//! - [`state`]: the stored tables (the state file), format 1.
//! - [`spread`]: the failure tolerance a PG's core list achieves.
//! - [`plan`]: the moves between two layout versions.
//! - [`report`]: per-policy spread summaries and warnings for operators.
//!
//! It deliberately does not know about liveness (which core is up: the first live core of the
//! list is the primary, the engine decides), capacity in bytes, or how fragments are moved.
//! README.md next to this file documents the layout file for users.

pub mod bound;
pub mod error;
pub mod hash;
pub mod layout;
pub mod limits;
pub mod plan;
pub mod policy;
pub mod rebalance;
pub mod report;
mod share;
pub mod spread;
pub mod state;
pub mod table;

pub use bound::{movement_lower_bound, target_violations, valid_targets};
pub use error::{LayoutError, PlacementError, StateError};
pub use layout::{Core, CoreId, Layout, LayoutFile, Node, Placed, Tier};
pub use plan::{plan, plan_states, Move, Plan};
pub use policy::{ClassPolicy, Policy, Scheme};
pub use report::{PolicyReport, Warning};
pub use spread::{Domain, Spread};
pub use state::{State, StateTable};
