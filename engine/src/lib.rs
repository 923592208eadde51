//! percore's storage engine: one shared-nothing glommio executor per disk partition, each
//! owning an O_DIRECT log of fixed-size segments, an in-memory fragment index and an LMDB
//! metadata store. Knows nothing of HTTP or S3. See `engine/DESIGN.md` for the formats, the
//! durability protocol and the crash analysis.

pub mod cache;
pub mod client;
pub mod disk;
pub mod error;
pub mod format;
pub mod gate;
pub mod index;
pub mod io;
pub mod limits;
pub mod lmdb_check;
pub mod meta;
pub mod partition;
pub mod peers;
pub mod runtime;
pub mod scan;
pub mod server;
pub mod sim;
pub mod store;

pub use error::{EngineError, PartitionError, Result};
pub use gate::LayoutGate;
pub use runtime::{CoreConfig, CoreHandle, Node, NodeConfig};
