//! Every bound of the object service, named once.

/// S3's limit on key length.
pub const KEY_BYTES_MAX: usize = 1024;
/// S3's limit on user metadata (names and values) of one object.
pub const USER_METADATA_BYTES_MAX: usize = 2048;
/// The largest single PUT (S3's limit; larger objects use multipart uploads).
pub const OBJECT_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Bytes of an object stored in one fragment (one chunk per replica).
pub const CHUNK_BYTES: u32 = 1024 * 1024;
/// Stripes of one request's body being stored at once (`Store::store_body`): the body
/// buffered per PUT or UploadPart is at most this many `CHUNK_BYTES` plus the stripe being cut.
pub const STRIPES_IN_FLIGHT_MAX: usize = 4;
/// Keys one listing page returns at most (S3's limit).
pub const LIST_KEYS_MAX: usize = 1000;
/// Parts of a multipart upload (S3's limit).
pub const PARTS_MAX: usize = 10_000;
/// Parts one ListParts or GetObjectAttributes answer lists at most (S3's limit).
pub const LIST_PARTS_MAX: usize = 1000;
/// The most uploads a ListMultipartUploads answers.
pub const LIST_UPLOADS_MAX: usize = 1000;
/// The smallest part but the last (S3's limit).
pub const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// Bytes of one raw x-amz-checksum-* value (a SHA-256 digest, the longest). A part record
/// holds one, so do an object head and the COMPOSITE computation's input per part.
pub const CHECKSUM_BYTES_MAX: usize = 32;
/// Bytes of one version's access control list in its head (`ObjectHead::acl`: the S3
/// layer's encoding of at most 100 grants with their ids, and the owner's id).
pub const HEAD_ACL_BYTES_MAX: usize = 32 * 1024;
/// Bytes of a version's owner id (`ObjectHead::owner`: a user id, an access key).
pub const OWNER_ID_BYTES_MAX: usize = 256;
/// Tags of one object, and their sizes in characters (S3's limits).
pub const TAGS_MAX: usize = 10;
/// Tags of one bucket (S3's limit).
pub const BUCKET_TAGS_MAX: usize = 50;
pub const TAG_KEY_CHARS_MAX: usize = 128;
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// Keys one DeleteObjects request may name (S3's limit).
pub const DELETE_KEYS_MAX: usize = 1000;
/// Bytes of one metadata key on a core (the engine's bound). A version record's key holds
/// the object key with every NUL byte written twice: only a key with hundreds of NULs can
/// exceed it, in a bucket that keeps versions (KeyTooLongError there).
pub const META_KEY_BYTES_MAX: u64 = cluster::limits::META_KEY_BYTES_MAX;
/// Bytes of a bucket name (S3's limit).
pub const BUCKET_NAME_BYTES_MAX: usize = 63;

/// The retirement schedule (`retire.rs`): bytes it holds at most, its entries' slots counted
/// a block at a time. It was a worker queue of 16,384 jobs, each a boxed future holding a whole
/// head: at the 30 s grace, 546 overwrites a second, and a suite run at ~7,500/s dropped most
/// retirements (issue #16). An entry now holds what the delete needs (~170 bytes for a small
/// object: `RETIRE_SMALL_KEY_BYTES` of key, one part, its bucket's scope shared), so 64 MiB
/// hold ~400,000 of them: over 13,000 overwrites a second through the grace. At least
/// `RETIRE_SMALL_ENTRIES_MIN` (10,000 a second for 30 s) and any one version's entry fit
/// (compile-time checks in `retire.rs`, where an entry's size is known). Past the bound a
/// retirement is dropped, counted and left for the orphan sweep.
pub const RETIRE_SCHEDULE_BYTES_MAX: usize = 64 * 1024 * 1024;
pub const RETIRE_SMALL_ENTRIES_MIN: usize = 300_000;
pub const RETIRE_SMALL_KEY_BYTES: usize = 64;
/// Retirements running at once. One holds no data, only a delete request per fragment in
/// flight, so many cost little. 10,000 a second through 16 (the old worker's bound) would need
/// each done in 1.6 ms; 64 leave 6.4 ms for a small version's deletes under load.
pub const RETIRE_CONCURRENCY_MAX: usize = 64;
/// Background workers (`workers.rs`): jobs queued and running at once, per kind.
pub const RESTORE_QUEUE_MAX: usize = 1_024;
pub const RESTORE_CONCURRENCY_MAX: usize = 4;
pub const ACCESS_QUEUE_MAX: usize = 4_096;
pub const ACCESS_CONCURRENCY_MAX: usize = 8;
/// Repairs on read: a job is one fragment (its rewrite reads the stripe's others, ≤ a few
/// MiB at once per running job).
pub const REPAIR_QUEUE_MAX: usize = 4_096;
pub const REPAIR_CONCURRENCY_MAX: usize = 4;

const _: () = assert!(
    OBJECT_BYTES_MAX / CHUNK_BYTES as u64 <= 1 << 24,
    "chunk index fits 24 bits"
);
const _: () = assert!((CHUNK_BYTES as u64) < proto::limits::FRAME_BODY_BYTES_MAX as u64);
const _: () = assert!(
    (1 + BUCKET_NAME_BYTES_MAX + 1 + KEY_BYTES_MAX + 2 + 8 + 12) as u64 <= META_KEY_BYTES_MAX,
    "the version record of a key without NUL bytes always fits a metadata key"
);

/// Object Lock default retention (`lock`): the longest S3 accepts, in days and in years.
pub const LOCK_DEFAULT_DAYS_MAX: u32 = 36_500;
pub const LOCK_DEFAULT_YEARS_MAX: u32 = 100;
/// Compare-and-swap rounds an Object Lock change makes against concurrent changes of its
/// version before it answers OperationAborted.
pub const LOCK_SWAP_TRIES_MAX: usize = 8;
