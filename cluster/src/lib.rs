//! percore's cluster client: how the layers above reach the storage cores. It owns routing by
//! layout (or by rendezvous hash on a single node), quorum reads and writes of metadata records,
//! fragment fan-out and EC stripes, core health (down marks, offline reasons), the remote
//! client, hints and their replay, the hybrid logical clock that orders every record, and
//! layout changes: routing by two versions while placement groups move, and the mover
//! (`moves`).
//!
//! It knows nothing of S3, buckets' meaning or objects' formats: it moves opaque metadata
//! records (key, HLC, value) and fragments, routed by a [`backend::Route`]. The object
//! service (`gateway`) builds on it; the engine and placement sit below it.

pub mod backend;
pub mod ec;
pub mod hints;
pub mod hlc;
pub mod limits;
pub mod moves;
pub mod remote;
pub mod restore;
/// The deterministic simulation's world (simulated cores and network), shared by the cluster
/// simulation (`tests/sim`) and the object simulation (`s3api/tests/osim`); only with the `sim`
/// feature, which only their dev-dependencies enable.
#[cfg(feature = "sim")]
pub mod sim;
