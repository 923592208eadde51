//! The object service's errors: what went wrong, in the object service's terms. The S3 layer
//! turns them into S3 codes and statuses in one place (the gateway's `s3_err`); nothing here
//! knows how S3 spells an error on the wire.

use cluster::backend::BackendError;

use crate::checksum::ChecksumError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster could not do it: too few replicas, a full disk, a core's own error.
    #[error(transparent)]
    Storage(#[from] BackendError),
    /// A stored record that does not decode.
    #[error("a stored record is damaged: {0}")]
    Damaged(String),
    /// The bucket does not exist (or the write's incarnation of it was deleted).
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// The key has no current version.
    #[error("the key does not exist")]
    NoSuchKey,
    /// The multipart upload does not exist (never did, completed or aborted).
    #[error("the upload does not exist")]
    NoSuchUpload,
    /// A conditional write found another version (or one where none was expected).
    #[error("the condition of the write does not hold")]
    PreconditionFailed,
    /// A request body that ended early or could not be read.
    #[error("the body could not be read whole: {0}")]
    IncompleteBody(String),
    /// A body over the size allowed.
    #[error("the body is larger than allowed")]
    TooLarge,
    /// A storage class without a policy on this cluster.
    #[error("storage class {0} has no policy on this cluster")]
    NoPolicy(String),
    /// A bucket operation lost a race with another one on the same bucket.
    #[error("a conflicting operation on this bucket is in progress")]
    BucketConflict,
    /// A write committed while a DeleteBucket of its bucket was still deciding.
    #[error("the bucket is being deleted")]
    BucketDeleting,
    /// A data write that took longer than half the orphan grace: its data is not kept.
    #[error(
        "the write took {took_secs} s, more than half the orphan grace ({grace_secs} s): \
         its data is not kept"
    )]
    WriteTooSlow { took_secs: u64, grace_secs: u64 },
    /// Object Lock keeps the version (a legal hold, or a retention not bypassed).
    #[error("the version is protected by Object Lock")]
    Locked,
    /// The version a request names does not exist (or is a delete marker where an object
    /// version is needed).
    #[error("the version does not exist")]
    NoSuchVersion,
    /// A version changed under a compare-and-swap too many times: the request may be retried.
    #[error("{0}")]
    VersionChanged(&'static str),
    /// A key too long for the version records of a bucket that keeps versions.
    #[error("this key is too long for a bucket that keeps versions (NUL bytes count twice)")]
    VersionKeyTooLong,
    /// A multipart request's part list or part number that S3 refuses.
    #[error(transparent)]
    Part(#[from] PartError),
    /// A checksum a request named or sent that does not fit (`checksum::ChecksumError`).
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    /// A bug or an impossible state, said in words.
    #[error("{0}")]
    Internal(String),
}

/// What is wrong with a multipart request's part (S3's messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error("part numbers are 1 to 10000")]
    Number,
    /// A part of a Complete's list without a number.
    #[error("a part has no number")]
    Missing,
    #[error("the part list is not in ascending order")]
    Order,
    #[error("part {0} was not uploaded")]
    NotUploaded(u32),
    #[error("the ETag of part {0} does not match")]
    ETag(u32),
    #[error("part {0} is smaller than 5 MiB")]
    TooSmall(u32),
    /// A Complete of an upload already completed with another part list.
    #[error("the upload was completed with another part list")]
    CompletedOtherwise,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A commit that failed: the error, and whether the caller must keep the chunks it stored
/// (the version may be reachable: the commit's outcome is not known).
#[derive(Debug)]
pub struct CommitError {
    pub error: Error,
    pub keep_chunks: bool,
}

impl From<Error> for CommitError {
    fn from(error: Error) -> CommitError {
        CommitError {
            error,
            keep_chunks: false,
        }
    }
}
