//! percore control plane: the cluster map (layout versions, the state of a layout change,
//! users and keys) replicated on 1, 3 or 5 voters with openraft.
//!
//! - [`map`]: the map, its commands and the pure function that applies them.
//! - [`store`]: the durable Raft log, vote and snapshots (LMDB), and the state machine.
//! - [`network`]: the authenticated TCP transport between voters.
//! - [`node`]: one voter: start, propose (forwarded to the leader), stop.
//! - [`follow`]: any process's client: following the committed map, proposing, reading.
//! - [`codec`]: the checked record every persisted value and message is wrapped in.
//! - [`limits`]: every bound of this crate.
//!
//! It deliberately does not move data, route requests or serve S3: nodes and gateways will
//! follow the committed map (control/DESIGN.md says how and what is not done yet).

pub mod codec;
pub mod follow;
pub mod limits;
pub mod map;
pub mod network;
pub mod node;
pub mod store;

pub use follow::Voters;
pub use map::{
    decode_map, Applied, Change, ClusterMap, Command, Demotion, GroupChange, GroupPhase, Key,
    LayoutVersion, Outcome, Refusal, User, UserKeys,
};
pub use network::{ProposeError, Secret};
pub use node::{Confirmer, ControlNode, Leadership, NodeConfig, NodeError, Timing};

/// A voter's id: the layout's node id of the node it runs in.
pub type NodeId = u64;

/// What applying one log entry answers: the command's outcome, or `None` for the entries
/// Raft writes itself (a new leader's blank entry, a membership).
pub type Reply = Option<Outcome>;

openraft::declare_raft_types!(
    /// The types openraft is instantiated with.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
