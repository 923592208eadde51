//! The bounds of the policy language, each named once.

/// A bucket policy document, in bytes, as AWS (20 KiB).
pub const BUCKET_POLICY_BYTES_MAX: usize = 20 * 1024;

/// An identity policy document, in bytes: AWS's managed-policy limit (6,144 characters).
pub const IDENTITY_POLICY_BYTES_MAX: usize = 6 * 1024;

/// A percore user name, as `users.toml` allows it (printable ASCII).
pub const USER_NAME_BYTES_MAX: usize = 64;

/// A single policy variable's name, `${...}` excluded, in bytes: no known key is near it.
pub const VARIABLE_NAME_BYTES_MAX: usize = 128;

/// A tag key named in `s3:ExistingObjectTag/<k>` or `s3:RequestObjectTag/<k>`, in bytes, as
/// S3's tag keys (128 characters, of up to 4 UTF-8 bytes each: the byte bound is looser).
pub const TAG_KEY_BYTES_MAX: usize = 512;

const _: () = assert!(IDENTITY_POLICY_BYTES_MAX <= BUCKET_POLICY_BYTES_MAX);
