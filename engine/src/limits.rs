//! Every bound of the engine, named once. Relationships are checked at compile time.
//!
//! Owns: sizes of segments, records, batches, queues. Does not own: protocol limits (see
//! `proto::limits`) beyond asserting that the engine can hold what the protocol can carry.

/// Direct-I/O block: every write offset and length is a multiple of it.
pub const BLOCK_BYTES: u64 = 4096;
/// One segment file. Records never straddle a segment end.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// The largest segment a partition may be configured with (offsets in the index are u32).
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;
/// The smallest segment (tests use small ones to exercise rotation and reclaim). A record larger
/// than the partition's segment is refused with `TooLarge`.
pub const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;
/// The largest fragment payload one record may carry.
pub const FRAGMENT_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Metadata keys and values (bucket and object metadata records).
/// LMDB is built with `longer-keys` (its page-size bound, ~2 KiB with 4 KiB pages, checked at
/// open): an S3 key (1024) with its bucket and tags fits with room.
pub const META_KEY_BYTES_MAX: u64 = 1536;
pub const META_VALUE_BYTES_MAX: u64 = 256 * 1024;
/// The largest record: header plus the largest payload, rounded to the record alignment.
pub const RECORD_BYTES_MAX: u64 = 64 + FRAGMENT_BYTES_MAX + 8;
/// Bytes of records one write of a group commit gathers (a larger single record is written
/// alone).
pub const BATCH_BYTES_MAX: u64 = 2 * 1024 * 1024;
/// Writes one group commit keeps in flight before its fdatasync.
pub const PIPELINE_BATCHES_MAX: usize = 8;
/// Requests queued from other threads to one core before senders wait (backpressure).
pub const CORE_QUEUE_LEN_MAX: usize = 1024;
/// Requests one TCP connection may have in flight on a core.
pub const CONNECTION_INFLIGHT_MAX: usize = 64;
/// TCP connections one core serves at once.
pub const CONNECTIONS_MAX: usize = 1024;
/// Entries one metadata scan may return.
pub const SCAN_ENTRIES_MAX: u32 = 10_000;
/// Entries a background metadata scan reads between two yields of its task queue: about
/// 30 µs of a core's CPU, against about 300 µs for a mover's page of 1,000 read at once.
pub const BACKGROUND_SCAN_CHUNK_ENTRIES: u32 = 100;
/// Segments one partition may hold (segment ids are u32, index offsets are u32).
pub const SEGMENTS_MAX: u32 = 1 << 20;
/// How often an idle reclaimer looks whether its core is stopping (it sleeps its interval in
/// steps of this).
pub const RECLAIM_STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// Sealed segments whose live ratio is below this (per mille) are reclaimed.
pub const RECLAIM_LIVE_PERMILLE_MAX: u64 = 500;
/// Free segments kept back for the reclaimer, so compaction can run on a full partition.
/// Deletes and metadata may use them too; fragment data may not.
pub const RECLAIM_RESERVE_SEGMENTS: u64 = 2;
/// Reclaimed segment files each partition keeps in its free pool to reuse for new segments
/// (a rename instead of unlink, create, fallocate and syncs: engine/DESIGN.md, "Recycled
/// segment files"); more are deleted. Their device bytes count as the partition's free space.
/// A few cover the churn between two reclaim passes: each roll takes one, each reclaimed
/// segment gives one back.
pub const FREE_SEGMENT_FILES_MAX: usize = 4;
/// A segment the reclaimer deletes is shrunk by this much at a time, `TRIM_STEP_PAUSE` apart,
/// before its unlink: on a `discard` mount each step is one trim of this size, short enough
/// that reads waiting for the device pass between steps (engine/DESIGN.md, "Reclaim").
pub const TRIM_STEP_BYTES: u64 = 2 * 1024 * 1024;
pub const TRIM_STEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
/// Log bytes each partition keeps on its device for deletes, metadata and relocations once
/// fragment data is refused (at least `RECLAIM_RESERVE_SEGMENTS` segments). Sized when every
/// flush started on a fresh block (deletes one after another took 4 KiB each, 4096 in 16 MiB;
/// two 1 MiB segments ran out after ~100 S3 deletes on a full test disk); a flush now goes on
/// where the last one ended, so deletes take only their records' bytes.
pub const LOG_RESERVE_BYTES_MIN: u64 = 16 * 1024 * 1024;
/// Device bytes each partition keeps free for LMDB growth and checkpoints once data writes
/// are refused (beside its reserve segments and its checkpoint's size).
pub const META_RESERVE_BYTES: u64 = 8 * 1024 * 1024;
/// One read of a segment scan (replay at start, reclaim): the scan's window. Records up to this
/// (less a block) are checked in the window; larger ones are checksummed through it piece by
/// piece. Replay and reclaim read whole 64 MiB segments at once before (an idle 6-core node
/// peaked at ~590 MiB RSS right after start).
pub const SCAN_READ_BYTES_MAX: u64 = 2 * 1024 * 1024;
/// One read of the scrub's verify (`Store::verify_fragment`): a fragment is read and
/// checksummed in pieces of this size, one after the other, so a foreground 4 KiB read waits
/// behind at most one of them on the device.
pub const VERIFY_READ_BYTES: u64 = 128 * 1024;
/// Payload bytes of relocations the reclaimer queues before it waits for them to be durable
/// (plus at most one record, which may be larger). Each is held twice while in flight (its
/// copy and its encoded write buffer): 8 MiB cost an idle 6-core node ~86 MiB of RSS on its
/// first reclaim pass after a crash.
pub const RELOCATE_INFLIGHT_BYTES_MAX: u64 = 2 * 1024 * 1024;
/// Log bytes written after which a checkpoint is taken (or the last checkpoint's own size,
/// if larger: a checkpoint then never costs more than the log it saves replaying). A restart
/// after a crash replays at most about this much per core plus the rest of one segment,
/// whatever the partition holds: 6 cores replaying 207 MiB each took 1.8 s on the 2-CPU test
/// machine, so 128 MiB (two default segments) keeps a restart under 2 s there.
pub const CHECKPOINT_EVERY_LOG_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// The largest fragment payload the per-core cache keeps (`cache.rs`): small objects and
/// heads, so that one large object's stripes cannot flush the hot set.
pub const CACHE_ENTRY_BYTES_MAX: u64 = 256 * 1024;
/// Each core's cache budget unless the configuration sets one (`cache_mib`; 0 disables it).
pub const CACHE_BYTES_PER_CORE_DEFAULT: u64 = 64 * 1024 * 1024;
/// Bound on one index entry's bytes in a checkpoint body (id 16 + location 8, rkyv-aligned).
pub const CHECKPOINT_ENTRY_BYTES_MAX: u64 = 32;

const _: () = assert!(SEGMENT_BYTES_DEFAULT.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(SEGMENT_BYTES_MIN.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(RECORD_BYTES_MAX <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
const _: () = assert!(BATCH_BYTES_MAX.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(VERIFY_READ_BYTES.is_multiple_of(BLOCK_BYTES) && VERIFY_READ_BYTES > 64);
const _: () = assert!(SCAN_READ_BYTES_MAX.is_multiple_of(BLOCK_BYTES));
// A metadata record's payload is always lent by the scan (replay needs it).
const _: () =
    assert!(64 + META_KEY_BYTES_MAX + META_VALUE_BYTES_MAX < SCAN_READ_BYTES_MAX - BLOCK_BYTES);
const _: () = assert!(META_KEY_BYTES_MAX + META_VALUE_BYTES_MAX < FRAGMENT_BYTES_MAX);
// So is a pair record's (`RecordKind::MetaPair`: two of them in one record, after a guarded
// pair's 16-byte fragment id).
const _: () = assert!(
    64 + 16 + 2 * (META_KEY_BYTES_MAX + META_VALUE_BYTES_MAX) < SCAN_READ_BYTES_MAX - BLOCK_BYTES
);
// Relocations may use all reserved segments but one; deletes and metadata the last one too.
const _: () = assert!(RECLAIM_RESERVE_SEGMENTS >= 2);

/// How long a start waits for a port the previous process on it still holds. A process killed
/// with SIGKILL keeps its listening sockets for a moment after it is gone (an io_uring ring's
/// teardown, which holds its files, runs after the exit: about 50 ms measured here), so a
/// restart at once failed with "address in use" (`io::bind_when_free`).
pub const BIND_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);
