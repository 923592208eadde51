//! Every bound of the probe, named once.

/// Most CPUs a CPU list may name (and most a host is assumed to have).
pub const CPUS_MAX: usize = 8192;
/// Most block devices reported.
pub const DISKS_MAX: usize = 256;
/// Entries of the probe's io_uring (the smallest useful power of two).
pub const PROBE_RING_ENTRIES: u32 = 8;
/// The engine's O_DIRECT block (engine/src/limits.rs `BLOCK_BYTES`): a device whose logical
/// block is larger cannot take its writes.
pub const ENGINE_BLOCK_BYTES: u64 = 4096;
/// A block-layer queue shallower than this throttles one core's in-flight I/O.
pub const QUEUE_DEPTH_LOW: u32 = 64;
/// The default glommio I/O memory per core of `percore serve` (`--io-memory-kib`).
pub const IO_MEMORY_KIB_DEFAULT: u64 = 2048;
/// Largest I/O memory per core the probe accepts (1 GiB).
pub const IO_MEMORY_KIB_MAX: u64 = 1 << 20;
