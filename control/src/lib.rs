//! percore control plane: the cluster map (layout versions, the state of a layout change,
//! users and keys) replicated on 1, 3 or 5 voters with openraft.
//!
//! - [`map`]: the map, its commands and the pure function that applies them.
//! - [`limits`]: every bound of this crate.
//!
//! It deliberately does not move data, route requests or serve S3: nodes and gateways will
//! follow the committed map (control/DESIGN.md says how and what is not done yet).

pub mod limits;
pub mod map;

pub use map::{
    Applied, Change, ClusterMap, Command, GroupChange, GroupPhase, LayoutVersion, Outcome, Refusal,
    User,
};
