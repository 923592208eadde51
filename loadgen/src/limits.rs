//! Every bound the load generator enforces, in one place.
//!
//! Owns the numeric ceilings that command-line settings, targets files and server responses are
//! checked against. It does not validate anything itself: `cli` and the parsers compare against
//! these constants and return typed errors.

/// Longest measured phase of one run, seconds (one day).
pub const DURATION_S_MAX: u64 = 24 * 3600;
/// Longest warm-up, seconds.
pub const WARMUP_S_MAX: u64 = 3600;
/// Highest open-loop rate, requests per second, summed over all endpoints.
pub const RATE_OPS_PER_S_MAX: f64 = 1_000_000.0;
/// Lowest open-loop rate, requests per second.
pub const RATE_OPS_PER_S_MIN: f64 = 0.1;
/// Most closed-loop workers (and so connections per endpoint).
pub const CONCURRENCY_MAX: u32 = 4096;
/// Most requests in flight in open loop.
pub const INFLIGHT_MAX: u32 = 65_536;
/// Largest object one request writes or reads (1 GiB); the payload buffer holds one of these.
pub const OBJECT_SIZE_BYTES_MAX: u64 = 1 << 30;
/// Extra bytes in the payload buffer so that different keys start at different offsets.
pub const PAYLOAD_SPREAD_BYTES_MAX: u64 = 1 << 20;
/// Most distinct keys in the key set.
pub const KEYS_MAX: u64 = 100_000_000;
/// Most endpoints in one run (compare mode is A against B).
pub const ENDPOINTS_MAX: usize = 2;
/// Smallest multipart part except the last, as S3 requires (5 MiB).
pub const PART_SIZE_BYTES_MIN: u64 = 5 << 20;
/// Largest multipart part we send (bounded by the object size bound).
pub const PART_SIZE_BYTES_MAX: u64 = OBJECT_SIZE_BYTES_MAX;
/// Most parts in one multipart upload, as S3 allows.
pub const PARTS_MAX: u64 = 10_000;
/// Largest page a list request asks for, as S3 allows.
pub const LIST_KEYS_MAX: u32 = 1000;
/// Largest key prefix, bytes; leaves room for the generated suffix under S3's 1024-byte key bound.
pub const KEY_PREFIX_BYTES_MAX: usize = 512;
/// Largest error body we read to find the S3 error code.
pub const ERROR_BODY_BYTES_MAX: usize = 64 << 10;
/// Largest list or multipart-initiate response body we read.
pub const XML_BODY_BYTES_MAX: usize = 16 << 20;
/// Longest per-request timeout, seconds.
pub const TIMEOUT_S_MAX: u64 = 3600;
/// Shortest and longest compare-mode slice, milliseconds.
pub const SLICE_MS_MIN: u64 = 10;
pub const SLICE_MS_MAX: u64 = 60_000;
/// Histogram range, microseconds: the longest latency one run can produce (a request due at the
/// start that completes only at the last timeout), so no latency ever saturates.
pub const LATENCY_US_MAX: u64 = (DURATION_S_MAX + WARMUP_S_MAX + TIMEOUT_S_MAX) * 1_000_000;
/// `--verify auto` compares the bytes of GET bodies up to this size (1 MiB); above it, the
/// length only.
pub const VERIFY_AUTO_BYTES_MAX: u64 = 1 << 20;
/// Most targets in one targets file.
pub const TARGETS_MAX: usize = 256;
/// Largest targets file, bytes.
pub const TARGETS_FILE_BYTES_MAX: u64 = 1 << 20;
/// Most runtime worker threads.
pub const THREADS_MAX: usize = 256;
/// Most samples queued between request tasks and the collector.
pub const SAMPLE_QUEUE_MAX: usize = 1 << 16;
/// Most distinct error codes kept per operation; the rest are counted under "Other".
pub const ERROR_CODES_MAX: usize = 64;
/// Longest S3 error code we keep, bytes.
pub const ERROR_CODE_BYTES_MAX: usize = 64;
/// Most `--server-pid` processes (a cluster on one machine).
pub const SERVER_PIDS_MAX: usize = 256;

const _: () = assert!(KEY_PREFIX_BYTES_MAX + 64 <= 1024);
const _: () = assert!(PART_SIZE_BYTES_MIN <= PART_SIZE_BYTES_MAX);
const _: () = assert!(OBJECT_SIZE_BYTES_MAX + PAYLOAD_SPREAD_BYTES_MAX < (1 << 31));
const _: () = assert!(SLICE_MS_MIN < SLICE_MS_MAX);
const _: () = assert!(CONCURRENCY_MAX <= INFLIGHT_MAX);
const _: () = assert!(TIMEOUT_S_MAX * 1_000_000 <= LATENCY_US_MAX);
// Any object the settings allow fits in the part count S3 allows, at the smallest part size.
const _: () = assert!(OBJECT_SIZE_BYTES_MAX.div_ceil(PART_SIZE_BYTES_MIN) <= PARTS_MAX);
