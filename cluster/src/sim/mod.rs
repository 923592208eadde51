//! The pieces both deterministic simulations run on: simulated cores (`core`) answering the
//! engine's requests by its rules, and the world (`world`): virtual time, the network between
//! gateways and cores (delays, reorders, losses, partitions, node crashes), skewed clocks and
//! the executors. The cluster simulation (`cluster/tests/sim`) drives the backend with it; the
//! object simulation (`s3api/tests/osim`) drives the S3 object service over the backend.

pub mod core;
pub mod world;
