//! Every bound of the S3 API, named once; the object service's are `objects::limits` (used
//! here by their names too).

pub use objects::limits::*;

/// Connections served at once (default of `--connections-max`). At the cap the oldest idle
/// connection is closed for a new one; when none is idle, new ones wait in the kernel's accept
/// queue (`http_conns`).
pub const CONNECTIONS_MAX: usize = 4096;
/// Connections one client address holds at once (default of `--connections-per-client-max`):
/// one address cannot take the whole server. At the cap that address's oldest idle connection
/// is closed for its new one; when none is idle, the new one is refused.
pub const CONNECTIONS_PER_CLIENT_MAX: usize = 1024;
/// From the first byte a connection may send to the end of a request's headers (default of
/// `--header-read-timeout-secs`). hyper runs the same timer while an HTTP/1.1 connection waits
/// for its next request, so an idle HTTP/1.1 connection lasts at most this long too.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// A connection with no request in flight is closed after this long (default of
/// `--idle-timeout-secs`; HTTP/1.1 and HTTP/2).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// A request body that brings no byte for this long while the server waits for it is aborted
/// (RequestTimeout, 400), and a connection whose client reads nothing of a response for this
/// long (its socket stays full) is closed (default of `--body-timeout-secs`).
pub const BODY_PROGRESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes of a request body that is read whole and parsed (XML: DeleteObjects,
/// CompleteMultipartUpload, lifecycle, tagging, versioning, ...); larger answers
/// MaxMessageLengthExceeded (400). 1000 DeleteObjects keys of 1024 characters, each written as
/// 10-byte XML character references, stay under it.
pub const XML_BODY_BYTES_MAX: usize = 20 * 1024 * 1024;
/// Bytes of a request body read whole before its request runs, in a process that follows a
/// control plane, so that the request can run again when a node refused it as routed by an old
/// layout (`serve::rerun`). At most `CONNECTIONS_MAX` × this is held, and only while those
/// requests run.
pub const RERUN_BODY_BYTES_MAX: u64 = 64 * 1024;
/// Bytes of a larger request body read whole before its request runs while a layout change
/// is in progress in this process's map (when nodes refuse frames routed by a phase before
/// theirs), within `RERUN_HELD_BYTES_MAX`. Larger bodies, and bodies past that budget, stream
/// through once and answer 503 if refused (clients use multipart above 8-16 MiB).
pub const RERUN_CHANGE_BODY_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Bytes of the bodies over `RERUN_BODY_BYTES_MAX` held whole at once in one process.
pub const RERUN_HELD_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Characters of a client-supplied string (path, error message) in one log line.
pub const LOG_FIELD_CHARS_MAX: usize = 256;
/// Bytes of an error response body examined to add its RequestId and log its code.
pub const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

const _: () = assert!(CONNECTIONS_PER_CLIENT_MAX <= CONNECTIONS_MAX);
const _: () = assert!(RERUN_BODY_BYTES_MAX <= RERUN_CHANGE_BODY_BYTES_MAX);
const _: () = assert!(RERUN_CHANGE_BODY_BYTES_MAX <= RERUN_HELD_BYTES_MAX);
const _: () = assert!(
    DELETE_KEYS_MAX * KEY_BYTES_MAX * 10 < XML_BODY_BYTES_MAX,
    "the largest DeleteObjects fits"
);

/// Browser POST uploads (`post_form`): bytes of all the part headers and field values before
/// the file (over it: 400 MaxPostPreDataLengthExceededError; AWS bounds them too, and its
/// policy document alone may be 20 KiB of base64), parts before the file, bytes of one part's
/// header block, and bytes after the file's closing boundary (ignored fields).
pub const POST_FIELDS_BYTES_MAX: usize = 64 * 1024;
pub const POST_PARTS_MAX: usize = 100;
pub const POST_PART_HEADER_BYTES_MAX: usize = 8 * 1024;
pub const POST_TAIL_BYTES_MAX: usize = 64 * 1024;
/// Bytes of a decoded POST policy document (`post_policy`).
pub const POST_POLICY_BYTES_MAX: usize = 20 * 1024;

const _: () = assert!(
    POST_POLICY_BYTES_MAX * 4 / 3 + 4 < POST_FIELDS_BYTES_MAX,
    "the largest policy fits the form's fields in base64"
);
const _: () = assert!(POST_PART_HEADER_BYTES_MAX <= POST_FIELDS_BYTES_MAX);

/// Keys a user may sign with at once (`percore user key create`): two, as AWS allows, enough
/// to rotate one without a moment with none.
pub const USER_KEYS_MAX: usize = 2;
