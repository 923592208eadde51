//! The S3 operations percore implements, on s3s's `S3` trait. Every operation not written here
//! answers `NotImplemented` (s3s's default), honestly.
//!
//! Write order of a PUT (ARCHITECTURE.md, the life of a PUT): the body's chunks are stored on
//! their replicas, then the object head, then the listing entry, both with one HLC taken at
//! commit (the write that completes last wins); the old version's chunks are deleted after the
//! new head is durable.
//! Objects are keyed by the bucket's scope (its incarnation, `objects::records`), and a write checks
//! after committing that the incarnation is still live (`Store::settle_live`). In a bucket
//! that keeps versions a version record comes first and the old version is kept
//! (`objects::versions`).

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Bucket, ChecksumMode, ChecksumType,
    CommonPrefix, CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput,
    CopyObjectOutput, CopyObjectResult, CopySource, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteBucketInput,
    DeleteBucketLifecycleInput, DeleteBucketLifecycleOutput, DeleteBucketOutput, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectTaggingInput, DeleteObjectTaggingOutput, DeleteObjectsInput,
    DeleteObjectsOutput, DeletedObject, ETag, ETagCondition, GetBucketLifecycleConfigurationInput,
    GetBucketLifecycleConfigurationOutput, GetBucketLocationInput, GetBucketLocationOutput,
    GetBucketVersioningInput, GetBucketVersioningOutput, GetObjectInput, GetObjectOutput,
    GetObjectTaggingInput, GetObjectTaggingOutput, HeadBucketInput, HeadBucketOutput,
    HeadObjectInput, HeadObjectOutput, ListBucketsInput, ListBucketsOutput,
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListObjectVersionsInput,
    ListObjectVersionsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, Object, Owner,
    PutBucketLifecycleConfigurationInput, PutBucketLifecycleConfigurationOutput,
    PutBucketVersioningInput, PutBucketVersioningOutput, PutObjectInput, PutObjectOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput, Range, RestoreObjectInput, RestoreObjectOutput,
    StreamingBlob, Timestamp, UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput,
    UploadPartOutput,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result, S3};

use crate::checksum::{self, Hashers};
use crate::limits::{
    CHUNK_BYTES, DELETE_KEYS_MAX, KEY_BYTES_MAX, LIST_KEYS_MAX, OBJECT_BYTES_MAX,
    USER_METADATA_BYTES_MAX,
};
use crate::records::{
    BucketRecord, DeleteMarker, ObjectHead, PartRef, StorageClass, Tiering, VersionRecord,
    Versioning,
};
use crate::tiering::{
    access_tier, placement_of, readable, restore_header, shown_class, ACCESS_TIER_HEADER,
    PLACEMENT_HEADER,
};
use crate::versioning::{
    delete_marker_not_allowed, head_version_id, no_such_version, parse_version_id,
};
use cluster::backend::{Backend, BackendError};
use cluster::ec::Policy;
use cluster::moves::Placement;
pub(crate) use objects::store::HeadCondition;
use objects::store::{Days, HeldStripe, Listed, Store};

pub struct Gateway {
    /// The object service's store (records, data, workers: `objects::store`), shared by this
    /// service's clones.
    pub(crate) store: Store,
    region: String,
    /// Buckets' CORS rules as last read (`cors::Cache`), shared by this service's clones.
    pub(crate) cors: Arc<crate::cors::Cache>,
    /// Buckets' policies as last read, and the users they may name (`bucket_policy`).
    pub(crate) policies: Arc<crate::bucket_policy::State>,
    /// Buckets' public access blocks as last read (`public_access`).
    pub(crate) public_access: Arc<crate::public_access::State>,
    /// Buckets' ACLs in force as last read (`acl`).
    pub(crate) acls: Arc<crate::acl::State>,
    /// The operator's webhooks and this node's event queue (`notify_queue`; `with_notify`).
    pub(crate) notify: Arc<crate::notify_queue::Hub>,
    /// The master key file's keys (SSE-S3, SSE-KMS: `sse`; `with_master_keys`).
    pub(crate) master_keys: Option<Arc<objects::master_keys::MasterKeys>>,
    /// Buckets' default encryption as last read (`bucket_encryption`).
    pub(crate) encryption_defaults: Arc<crate::bucket_encryption::Cache>,
}

impl Gateway {
    pub fn new(backend: Arc<Backend>, region: String) -> Gateway {
        let days = Days {
            day_ms: objects::lifecycle::real_day_ms(),
            tiering_days: objects::lifecycle::IT_INFREQUENT_DAYS,
        };
        Gateway {
            store: Store::new(backend, Arc::new(crate::metrics::ServiceMetrics), days),
            region,
            cors: Arc::default(),
            policies: Arc::default(),
            public_access: Arc::default(),
            acls: Arc::default(),
            notify: Arc::default(),
            master_keys: None,
            encryption_defaults: Arc::default(),
        }
    }

    /// The same service with the operator's webhooks and this node's event queue (`notify`).
    pub fn with_notify(mut self, hub: Arc<crate::notify_queue::Hub>) -> Gateway {
        self.notify = hub;
        self
    }

    /// The same service keeping the bucket records it reads until it writes them
    /// (`objects::bucket_cache`). Only for a service no other process writes bucket records
    /// beside: a single node.
    pub fn with_bucket_cache(mut self) -> Gateway {
        self.store = self.store.with_bucket_cache();
        if let Some(cache) = self.store.bucket_cache() {
            crate::metrics::global().watch_bucket_cache(cache.clone());
        }
        self
    }

    /// The region this service answers for.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// The same service sweeping fragments no record references once they are `grace_ms` old
    /// (`orphans`; the test clock shortens it); a data write that takes more than half of it
    /// is refused.
    pub fn with_orphan_grace(mut self, grace_ms: u64) -> Gateway {
        self.store = self.store.with_orphan_grace(grace_ms);
        self
    }

    /// The same service with a lifecycle day of `day_ms` (the test clock,
    /// `--lifecycle-day-secs`: lifecycle rules, restores and intelligent tiering count days in
    /// it) and INTELLIGENT_TIERING objects moving to the infrequent tier after `tiering_days`
    /// lifecycle days without a read (S3: 30).
    pub fn with_days(mut self, day_ms: u64, tiering_days: u64) -> Gateway {
        assert!(day_ms > 0 && tiering_days > 0, "a day lasts");
        self.store = self.store.with_days(Days {
            day_ms,
            tiering_days,
        });
        self
    }

    /// The object service's store (its background passes run on it: `objects::scrub`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cluster client this service stores through.
    pub fn backend(&self) -> &Arc<Backend> {
        self.store.backend()
    }
}

/// The one place the object service's errors (and the cluster's, inside them) become S3
/// errors.
pub(crate) fn s3_err(e: impl Into<objects::Error>) -> S3Error {
    let e = match e.into() {
        objects::Error::Storage(e) => e,
        objects::Error::Damaged(message) => {
            // Logged, not shown: the client learns only that the server failed.
            tracing::error!(%message, "a stored record is damaged");
            return s3_error!(InternalError);
        }
        objects::Error::NoSuchBucket => return s3_error!(NoSuchBucket),
        objects::Error::NoSuchKey => return s3_error!(NoSuchKey),
        objects::Error::NoSuchUpload => return s3_error!(NoSuchUpload),
        objects::Error::PreconditionFailed => return s3_error!(PreconditionFailed),
        objects::Error::IncompleteBody(message) => return s3_error!(IncompleteBody, "{message}"),
        objects::Error::TooLarge => return s3_error!(EntityTooLarge),
        e @ objects::Error::NoPolicy(_) => return s3_error!(InvalidStorageClass, "{e}"),
        e @ (objects::Error::BucketConflict | objects::Error::BucketDeleting) => {
            return s3_error!(OperationAborted, "{e}")
        }
        e @ objects::Error::WriteTooSlow { .. } => return s3_error!(RequestTimeout, "{e}"),
        objects::Error::Locked => {
            return s3_error!(
                AccessDenied,
                "Access Denied because object protected by object lock."
            )
        }
        e @ objects::Error::VersionKeyTooLong => return s3_error!(KeyTooLongError, "{e}"),
        objects::Error::NoSuchVersion => return crate::versioning::no_such_version(),
        e @ objects::Error::VersionChanged(_) => return s3_error!(OperationAborted, "{e}"),
        objects::Error::Part(e) => return part_error(e),
        objects::Error::Checksum(e) => return crate::checksum::checksum_error(e),
        objects::Error::Internal(message) => {
            tracing::error!(%message, "object service error");
            return s3_error!(InternalError, "{message}");
        }
    };
    match e {
        // A full partition or device (README, "When a disk fills"). MinIO answers a full
        // drive with 507 too; SDKs do not retry it, unlike 503.
        BackendError::NoSpace => {
            let mut err = S3Error::with_message(
                s3s::S3ErrorCode::Custom("InsufficientStorage".into()),
                "storage is full: writes are refused until deletes free space \
                 (reads and deletes are served)",
            );
            err.set_status_code(hyper::StatusCode::INSUFFICIENT_STORAGE);
            err.set_source(Box::new(e));
            err
        }
        BackendError::NotFound => s3_error!(e, InternalError, "a stored piece is missing"),
        // Too few replicas or shards answered: the client may retry (503, as S3 does when
        // it sheds load).
        BackendError::Quorum { .. }
        | BackendError::NoLease { .. }
        | BackendError::Down { .. }
        | BackendError::Offline { .. }
        | BackendError::Remote(
            cluster::remote::RemoteError::Unreachable { .. }
            | cluster::remote::RemoteError::Timeout { .. }
            | cluster::remote::RemoteError::Busy { .. },
        ) => {
            tracing::warn!(error = %e, "quorum not reached");
            let message = e.to_string();
            s3_error!(e, ServiceUnavailable, "{message}")
        }
        // A core refused a request routed by a layout older than its node's (this process
        // had not applied the newest map yet; the backend took it from that node before this
        // error came up): nothing was done there, and a retry goes to the right cores (503,
        // retried by SDKs), never a 500.
        BackendError::Remote(cluster::remote::RemoteError::LayoutMismatch { .. }) => {
            tracing::warn!(error = %e, "routed by an older layout than a core's");
            let message = e.to_string();
            s3_error!(e, ServiceUnavailable, "{message}")
        }
        other => {
            tracing::error!(error = %other, "storage error");
            s3_error!(other, InternalError)
        }
    }
}

/// The S3 code of a multipart request's part error (S3's messages, none where S3 gives none).
fn part_error(e: objects::PartError) -> S3Error {
    use objects::PartError as P;
    match e {
        P::Number => s3_error!(InvalidArgument, "{e}"),
        P::Missing => s3_error!(InvalidPart),
        P::Order => s3_error!(InvalidPartOrder),
        P::NotUploaded(_) | P::ETag(_) => s3_error!(InvalidPart, "{e}"),
        P::TooSmall(_) => s3_error!(EntityTooSmall, "{e}"),
        P::CompletedOtherwise => s3_error!(NoSuchUpload, "{e}"),
    }
}

/// An error of `object_stream` as an S3 error (it carries the backend's error).
fn stream_error(e: std::io::Error) -> S3Error {
    let Some(inner) = e.into_inner() else {
        return s3_error!(InternalError, "reading the object failed");
    };
    match inner.downcast::<BackendError>() {
        Ok(backend) => s3_err(*backend),
        Err(other) => s3_error!(InternalError, "{other}"),
    }
}

pub(crate) use objects::store::now_ms;

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    Timestamp::from(t)
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

pub(crate) fn user_metadata(
    metadata: Option<s3s::dto::Metadata>,
) -> S3Result<Vec<(String, String)>> {
    let metadata: Vec<(String, String)> = metadata.unwrap_or_default().into_iter().collect();
    let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > USER_METADATA_BYTES_MAX {
        return Err(s3_error!(MetadataTooLarge));
    }
    Ok(metadata)
}

pub(crate) fn standard_headers(
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
) -> Vec<(String, String)> {
    // `aws-chunked` names how the request's body was framed, not how the object is encoded:
    // AWS stores the other codings (`gzip, aws-chunked` is stored as `gzip`).
    let content_encoding = content_encoding.and_then(|e| {
        if !e
            .split(',')
            .any(|c| c.trim().eq_ignore_ascii_case("aws-chunked"))
        {
            return Some(e);
        }
        let kept: Vec<&str> = e
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding),
        ("content-language", content_language),
        ("expires", expires.and_then(|t| format_http_date(&t))),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
    .collect()
}

/// Content-Length and Content-MD5, checked once the body has ended.
pub(crate) fn check_body(
    size: u64,
    md5: &[u8; 16],
    content_length: Option<i64>,
    content_md5: Option<&str>,
) -> S3Result<()> {
    if let Some(len) = content_length {
        if u64::try_from(len).ok() != Some(size) {
            return Err(s3_error!(
                IncompleteBody,
                "the body is shorter or longer than Content-Length"
            ));
        }
    }
    if let Some(expected) = content_md5 {
        // Not the base64 of 16 bytes (empty, too short, not base64) is InvalidDigest; a
        // well-formed digest of other bytes is BadDigest (as AWS).
        let given = base64::engine::general_purpose::STANDARD
            .decode(expected.trim())
            .ok()
            .filter(|d| d.len() == 16)
            .ok_or_else(|| {
                s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
            })?;
        if given != md5 {
            return Err(s3_error!(BadDigest));
        }
    }
    Ok(())
}

/// A bucket the caller owns (`Gateway::owned_bucket`).
pub(crate) struct Owned {
    /// What its objects' records are keyed by: `BucketRecord::scope`.
    pub(crate) scope: String,
    pub(crate) versioning: Versioning,
    pub(crate) record: BucketRecord,
    /// The record's HLC, for a compare-and-swap of it.
    pub(crate) hlc: u64,
}

/// A DeleteBucket's mark older than this was left by one that stopped (a check takes
/// milliseconds): the next DeleteBucket takes it over.
const DELETE_MARK_STALE_MS: u64 = 10_000;

/// The access key a request acts as: its signer's (its user's first key when it signed with
/// another, `authz::OwnerKey`), or the bucket owner's when the access gate let another user or
/// an anonymous caller in by the bucket's policy (`authz::ActingFor`).
pub(crate) fn user_of<T>(req: &S3Request<T>) -> S3Result<String> {
    if let Some(acting) = req.extensions.get::<crate::authz::ActingFor>() {
        return Ok(acting.owner.clone());
    }
    if let Some(id) = req.extensions.get::<crate::authz::OwnerKey>() {
        return Ok(id.0.clone());
    }
    match &req.credentials {
        Some(c) => Ok(c.access_key.clone()),
        None => Err(s3_error!(AccessDenied, "anonymous access is not allowed")),
    }
}

impl Gateway {
    /// The bucket, if it exists and belongs to `owner_key`'s user: its record and the scope
    /// its objects' records are keyed by (`records`, incarnations).
    pub(crate) async fn owned_bucket(&self, bucket: &str, access_key: &str) -> S3Result<Owned> {
        // The access gate's read of the record, judged by it, when there is one.
        let entry = match crate::authz::take_gate_read(bucket) {
            Some(entry) => Some(entry),
            None => self.store.bucket_entry(bucket).await.map_err(s3_err)?,
        };
        match entry {
            None => Err(s3_error!(NoSuchBucket)),
            Some((b, hlc)) if b.owner == access_key => Ok(Owned {
                scope: b.scope(bucket),
                versioning: b.versioning,
                record: b,
                hlc,
            }),
            Some(_) => Err(s3_error!(AccessDenied)),
        }
    }

    /// The version of an object a GET or HEAD reads: the current one, or `version_id`'s (a
    /// delete marker is 405, an unknown version NoSuchVersion). Returns its head and the
    /// x-amz-version-id to show (none in a bucket that never kept versions, unless asked),
    /// and the bucket's scope.
    pub(crate) async fn object_for_read(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(ObjectHead, Option<String>, String)> {
        let (head, shown, _, owned) = self
            .object_version(user, bucket, key, version_id, delete_marker_not_allowed)
            .await?;
        Ok((head, shown, owned.scope))
    }

    /// `object_for_read`, with the whole bucket record read on the way (GET counts tags by
    /// its `tags_changed`).
    async fn object_for_get(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(ObjectHead, Option<String>, Owned)> {
        let (head, shown, _, owned) = self
            .object_version(user, bucket, key, version_id, delete_marker_not_allowed)
            .await?;
        Ok((head, shown, owned))
    }

    /// The head of a key's current version, or of version `version_id`, in a bucket the user
    /// owns: with the x-amz-version-id to show, whether a version was named and the bucket
    /// (its record and scope). A missing key or version gets S3's error; a delete marker named by id gets
    /// `on_marker`'s.
    async fn object_version(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on_marker: impl FnOnce(&DeleteMarker) -> S3Error,
    ) -> S3Result<(ObjectHead, Option<String>, bool, Owned)> {
        check_key(key)?;
        let wanted = version_id.map(parse_version_id).transpose()?;
        let record = self.owned_bucket(bucket, user).await?;
        let bucket = record.scope.as_str();
        let head = match wanted {
            None => match self.store.head(bucket, key).await.map_err(s3_err)? {
                Some(h) => h,
                None => return Err(self.missing_current(bucket, key, record.versioning).await),
            },
            Some(v) => match self
                .store
                .resolve_version(bucket, key, v)
                .await
                .map_err(s3_err)?
            {
                Some(VersionRecord::Object(h)) => h,
                Some(VersionRecord::DeleteMarker(m)) => return Err(on_marker(&m)),
                None => return Err(no_such_version()),
            },
        };
        let shown = (record.versioning.keeps_versions() || wanted.is_some())
            .then(|| head_version_id(&head));
        Ok((head, shown, wanted.is_some(), record))
    }

    /// `store_body`, then the checks that can only be made once the body has ended
    /// (Content-Length, Content-MD5, x-amz-checksum-* in headers or trailers). A body that fails
    /// them is removed. Returns its size, MD5 and the checksums computed.
    pub(crate) async fn store_checked_body<S, E>(
        &self,
        cores: &Placement,
        policy: Policy,
        version_id: &[u8; 12],
        body: Option<S>,
        size_max: u64,
        checks: BodyChecks<'_>,
    ) -> S3Result<(u64, [u8; 16], Vec<checksum::Sum>)>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let place = (cores, policy, version_id);
        let (size, md5, sums, held) = self
            .store_checked_body_holding(place, body, size_max, checks, false)
            .await?;
        debug_assert!(held.is_none());
        Ok((size, md5, sums))
    }

    /// `store_checked_body` that holds a small body back for its commit when `hold` is set
    /// (`Store::store_body_holding`): a body that fails the checks was then never stored.
    pub(crate) async fn store_checked_body_holding<S, E>(
        &self,
        (cores, policy, version_id): (&Placement, Policy, &[u8; 12]),
        body: Option<S>,
        size_max: u64,
        checks: BodyChecks<'_>,
        hold: bool,
    ) -> S3Result<(u64, [u8; 16], Vec<checksum::Sum>, Option<HeldStripe>)>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut hashers = Hashers::new(checks.algos);
        let place = (cores, policy, version_id);
        let (size, md5, kept) = self
            .store
            .store_body_holding(place, body, size_max, &mut hashers, hold)
            .await
            .map_err(s3_err)?;
        let sums = hashers.finish();
        let trailers = checks.trailers.and_then(|t| t.take());
        let verdict = check_body(size, &md5, checks.content_length, checks.content_md5)
            .and_then(|()| checksum::verify(&sums, checks.headers, trailers.as_ref()));
        if let Err(e) = verdict {
            if kept.is_some() {
                // Never stored.
                return Err(e);
            }
            // Nothing points at these chunks: remove them now.
            self.store
                .delete_part_chunks(
                    cores,
                    policy,
                    &PartRef {
                        version_id: *version_id,
                        size,
                    },
                )
                .await;
            return Err(e);
        }
        Ok((size, md5, sums, kept))
    }

    /// The source of a copy (its current version, or the one `?versionId=` names): its bucket
    /// must belong to the caller; x-amz-copy-source-if-* conditions fail with 412 as S3 does.
    pub(crate) async fn copy_source(
        &self,
        user: &str,
        source: &CopySource,
        conditions: CopyConditions<'_>,
    ) -> S3Result<CopiedSource> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(s3_error!(NotImplemented, "access point copy sources"));
        };
        let customer = crate::sse::customer_key(
            conditions.sse_algorithm,
            conditions.sse_key,
            conditions.sse_key_md5,
        )?;
        let (head, version_id, named_version, Owned { scope, .. }) = self
            .object_version(user, bucket, key, version_id.as_deref(), |_| {
                s3_error!(
                    InvalidRequest,
                    "The source of a copy request may not specifically refer to a delete marker \
                     by version id."
                )
            })
            .await?;
        let precondition = check_conditions(
            &head,
            conditions.if_match,
            conditions.if_none_match,
            conditions.if_modified_since,
            conditions.if_unmodified_since,
        );
        if let Err(e) = precondition {
            return Err(if *e.code() == s3s::S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed)
            } else {
                e
            });
        }
        let data_key = crate::sse::read_key(self, &head, customer.as_ref())?;
        // An archived source is copied from its restored copy (InvalidObjectState without).
        let head = readable(head)?;
        Ok(CopiedSource {
            bucket: scope,
            key: key.to_string(),
            head,
            version_id,
            named_version,
            data_key,
        })
    }

    /// A second handle on the same service: same backend, workers and moves (for the S3
    /// service and background tasks).
    pub fn clone_handle(&self) -> Gateway {
        Gateway {
            store: self.store.clone(),
            region: self.region.clone(),
            cors: self.cors.clone(),
            policies: self.policies.clone(),
            public_access: self.public_access.clone(),
            acls: self.acls.clone(),
            notify: self.notify.clone(),
            master_keys: self.master_keys.clone(),
            encryption_defaults: self.encryption_defaults.clone(),
        }
    }
}

/// CreateBucket of a name that exists.
fn taken(existing: &BucketRecord, user: &str) -> S3Error {
    if existing.owner == user {
        s3_error!(BucketAlreadyOwnedByYou)
    } else {
        s3_error!(BucketAlreadyExists)
    }
}

/// Conditional GET/HEAD as S3 evaluates them (RFC 9110 §13.2.2): If-Match, else
/// If-Unmodified-Since → 412; If-None-Match, else If-Modified-Since → 304.
fn check_conditions(
    head: &ObjectHead,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let current = etag(&head.etag);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current.value(),
    };
    // HTTP dates have whole seconds.
    let modified = timestamp(head.modified_ms / 1000 * 1000);
    match if_match {
        Some(c) if !matches(c) => return Err(s3_error!(PreconditionFailed)),
        None if if_unmodified_since.is_some_and(|t| modified > *t) => {
            return Err(s3_error!(PreconditionFailed))
        }
        _ => {}
    }
    match if_none_match {
        Some(c) if matches(c) => return Err(s3_error!(NotModified)),
        None if if_modified_since.is_some_and(|t| modified <= *t) => {
            return Err(s3_error!(NotModified))
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn format_http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(s3s::dto::TimestampFormat::HttpDate, &mut buf)
        .ok()?;
    String::from_utf8(buf).ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, s).ok()
}

/// The checksum a GET or HEAD shows with `x-amz-checksum-mode: ENABLED`: the object's, with
/// its type, for the whole object; part `n`'s for `partNumber=n` when the head keeps its
/// parts' checksums (a multipart upload with an algorithm); none for a range (as S3).
fn shown_checksum(
    head: &ObjectHead,
    mode: Option<&ChecksumMode>,
    part: Option<i32>,
    ranged: bool,
) -> Option<(checksum::Algo, String, Option<ChecksumType>)> {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    if !enabled || ranged {
        return None;
    }
    match part {
        None => head.checksum.as_ref().map(|c| {
            let kind = ChecksumType::from_static(c.kind.s3_name());
            (c.sum.algo(), c.value(), Some(kind))
        }),
        Some(n) => {
            let sum = head
                .part_checksums
                .get(usize::try_from(n).ok()?.checked_sub(1)?)?;
            Some((sum.algo(), sum.base64(), None))
        }
    }
}

fn invalid_part_number() -> S3Error {
    let mut e = S3Error::with_message(
        s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
        "the requested part number is not satisfiable",
    );
    e.set_status_code(hyper::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

/// The storage class a request asks for: STANDARD when it names none. Classes percore does
/// not store (REDUCED_REDUNDANCY, ONEZONE_IA, GLACIER_IR, …) answer InvalidStorageClass.
pub(crate) fn requested_class(c: Option<&s3s::dto::StorageClass>) -> S3Result<StorageClass> {
    match c {
        None => Ok(StorageClass::Standard),
        Some(c) => StorageClass::parse(c.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidStorageClass,
                "The storage class you specified is not valid: percore stores STANDARD, \
                 STANDARD_IA, INTELLIGENT_TIERING, GLACIER and DEEP_ARCHIVE"
            )
        }),
    }
}

pub(crate) fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "the object key is empty"));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(s3_error!(KeyTooLongError));
    }
    Ok(())
}

/// Resolves an S3 range against an object size: (first byte, length).
pub(crate) fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<(u64, u64)> {
    match range {
        None => Ok((0, size)),
        Some(Range::Int { first, last }) => {
            if *first >= size {
                return Err(s3_error!(InvalidRange));
            }
            let last = last.map_or(size - 1, |l| l.min(size - 1));
            if last < *first {
                return Err(s3_error!(InvalidRange));
            }
            Ok((*first, last - first + 1))
        }
        Some(Range::Suffix { length }) => {
            if *length == 0 {
                return Err(s3_error!(InvalidRange));
            }
            let len = (*length).min(size);
            Ok((size - len, len))
        }
    }
}

/// The most names one ListBuckets page holds (AWS's max-buckets bound and default).
const LIST_BUCKETS_PAGE_MAX: usize = 10_000;

/// Sets what GET and HEAD show alike beyond the head's fields: the version's Object Lock
/// headers (when the caller may see them) and its checksum with its type.
macro_rules! set_lock_and_checksum {
    ($out:expr, $lock:expr, $lock_headers:expr, $sum:expr) => {
        let (mode, until, hold) = crate::object_lock::shown($lock, $lock_headers);
        ($out.object_lock_mode, $out.object_lock_retain_until_date) = (mode, until);
        $out.object_lock_legal_hold_status = hold;
        if let Some((algo, value, kind)) = $sum {
            checksum::set_checksum!($out, algo, value);
            $out.checksum_type = kind;
        }
    };
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        // Pages as AWS: at most max-buckets (1 to 10,000, the default) names after the
        // continuation token (the last name of the previous page, hex), under `prefix`, in
        // `bucket-region` (every bucket here is in this server's region).
        let page_max = match input.max_buckets {
            None => LIST_BUCKETS_PAGE_MAX,
            Some(n) if (1..=LIST_BUCKETS_PAGE_MAX as i32).contains(&n) => n as usize,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be between 1 and 10000"
                ))
            }
        };
        let after = match input.continuation_token.as_deref() {
            None | Some("") => None,
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
        };
        let name_prefix = input.prefix.clone().unwrap_or_default();
        let other_region = input
            .bucket_region
            .as_ref()
            .is_some_and(|r| *r != self.region);
        let mut found = std::collections::BTreeMap::new();
        for (name, b) in self.store.bucket_records().await.map_err(s3_err)? {
            if other_region
                || b.owner != user
                || !name.starts_with(&name_prefix)
                || after.as_ref().is_some_and(|a| name <= *a)
            {
                continue;
            }
            found.insert(name, b);
        }
        let truncated = found.len() > page_max;
        let buckets: Vec<Bucket> = found
            .into_iter()
            .take(page_max)
            .map(|(name, b)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        let continuation_token = truncated
            .then(|| {
                buckets
                    .last()
                    .and_then(|b| b.name.as_ref())
                    .map(hex::encode)
            })
            .flatten();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some(user.clone()),
                id: Some(user),
            }),
            continuation_token,
            prefix: input.prefix,
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let user = user_of(&req)?;
        let acl = crate::acl::of_create(&req.input, &user, self.policies.users().as_deref())?;
        let bucket = req.input.bucket;
        if let Some(existing) = self.store.bucket(&bucket).await.map_err(s3_err)? {
            // AWS's legacy rule in us-east-1: the owner re-creating its bucket gets 200 and
            // the bucket is unchanged (every other region: 409 BucketAlreadyOwnedByYou).
            if existing.owner == user && self.region == "us-east-1" && !existing.deleting {
                return Ok(S3Response::new(CreateBucketOutput {
                    location: Some(format!("/{bucket}")),
                }));
            }
            return Err(taken(&existing, &user));
        }
        // Object Lock comes with versioning, for good (`object_lock`).
        let object_lock = req.input.object_lock_enabled_for_bucket == Some(true);
        let created = self
            .store
            .create_bucket(&bucket, user.clone(), object_lock)
            .await
            .map_err(s3_err)?;
        let Some(record) = created else {
            return Err(match self.store.bucket(&bucket).await.map_err(s3_err)? {
                Some(existing) => taken(&existing, &user),
                // Created and deleted meanwhile: the client may retry.
                None => s3_error!(OperationAborted, "a concurrent operation on this bucket"),
            });
        };
        // `refuse` let through no other value.
        if let Some(o) = &req.input.object_ownership {
            let ownership = crate::public_access::Ownership::parse(o.as_str())
                .ok_or_else(|| s3_error!(InvalidArgument, "x-amz-object-ownership"))?;
            self.store_ownership(&record.scope(&bucket), ownership)
                .await?;
        }
        if let Some(acl) = acl {
            self.store_created_acl(&record.scope(&bucket), &acl).await?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let user = user_of(&req)?;
        self.owned_bucket(&req.input.bucket, &user).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let user = user_of(&req)?;
        self.owned_bucket(&req.input.bucket, &user).await?;
        // us-east-1 is reported as an empty LocationConstraint, as S3 does.
        let location = (self.region != "us-east-1").then(|| self.region.clone().into());
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let user = user_of(&req)?;
        let bucket = req.input.bucket;
        let owned = self.owned_bucket(&bucket, &user).await?;
        // Mark, check, then delete or unmark (see `Store::liveness`): a write that commits
        // while the bucket is marked waits for the outcome; one that committed before the mark
        // is seen by the check. A mark older than `DELETE_MARK_STALE_MS` was left by a
        // DeleteBucket that stopped halfway: this one takes it over.
        let marked = BucketRecord {
            deleting: true,
            ..owned.record.clone()
        };
        let unmarked = BucketRecord {
            deleting: false,
            ..owned.record.clone()
        };
        let marked_hlc = if owned.record.deleting {
            let age_ms = now_ms().saturating_sub(cluster::hlc::Hlc::millis(owned.hlc));
            if age_ms < DELETE_MARK_STALE_MS {
                return Err(s3_error!(OperationAborted, "the bucket is being deleted"));
            }
            owned.hlc
        } else {
            self.store
                .swap_bucket(&bucket, &marked, owned.hlc)
                .await
                .map_err(s3_err)?
        };
        let empty = self.store.is_empty(&owned.scope).await;
        if !matches!(empty, Ok(true)) {
            // Best effort: a failed unmark leaves the mark, which the next DeleteBucket or
            // a retried write reports as OperationAborted.
            let _ = self.store.swap_bucket(&bucket, &unmarked, marked_hlc).await;
            empty.map_err(s3_err)?;
            return Err(s3_error!(BucketNotEmpty));
        }
        self.store.remove_bucket(&bucket).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let user = user_of(&req)?;
        let writer = crate::object_acl::signer_of(&req);
        let via_post = req.extensions.get::<crate::notify::ViaPost>().is_some();
        let mut algos = checksum::requested(&req.headers)?;
        // A PUT that names no checksum gets a full-object CRC64NVME, as AWS computes one.
        if algos.is_empty() {
            algos.push(checksum::Algo::Crc64Nvme);
        }
        let (headers, trailers) = (req.headers, req.trailing_headers);
        let input = req.input;
        check_key(&input.key)?;
        let metadata = user_metadata(input.metadata)?;
        let condition = head_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
        let tags = input
            .tagging
            .as_deref()
            .map(crate::tagging::parse_header)
            .transpose()?;
        if let Some(len) = input.content_length {
            if u64::try_from(len).map_or(true, |l| l > OBJECT_BYTES_MAX) {
                return Err(s3_error!(EntityTooLarge));
            }
        }
        let customer_key = crate::sse::customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let live = self.owned_bucket(&input.bucket, &user).await?;
        let asked = crate::sse::Asked {
            algorithm: input.server_side_encryption.as_ref(),
            kms_key_id: input.ssekms_key_id.as_deref(),
            customer: customer_key,
        };
        let write_key = self.write_key(&live.scope, asked).await?;
        let lock = crate::object_lock::WriteLock {
            mode: input.object_lock_mode.as_ref(),
            until: input.object_lock_retain_until_date.as_ref(),
            hold: input.object_lock_legal_hold_status.as_ref(),
        };
        let lock = self.write_lock(&live, &lock).await?;
        let asked = crate::object_acl::asked_of_write!(input);
        let acl = self.acl_for_write(&live, writer.as_deref(), asked).await?;
        let (bucket, versioning) = (live.scope, live.versioning);
        // The chunks' id; the version's own id and HLC are taken at commit (`commit_head`).
        let version_id = self
            .store
            .version_id(self.store.backend().hlc(), input.key.as_bytes());
        let class = requested_class(input.storage_class.as_ref())?;
        let (policy, tier) = self
            .store
            .place(
                class,
                input.content_length.and_then(|l| u64::try_from(l).ok()),
            )
            .map_err(s3_err)?;
        let cores = self.store.cores_in(&bucket, &input.key, policy, tier);
        let checks = BodyChecks {
            algos: &algos,
            headers: &headers,
            trailers,
            content_length: input.content_length,
            content_md5: input.content_md5.as_deref(),
        };
        // A small body of a write that may go in one round with its head is held for the commit
        // (`commit_head_held`).
        let may_hold = condition.is_none() && !versioning.keeps_versions();
        let (size, md5, sums, encryption, kept) = match &write_key {
            None => {
                let place = (&cores, policy, &version_id);
                let (size, md5, sums, kept) = self
                    .store_checked_body_holding(
                        place,
                        input.body,
                        OBJECT_BYTES_MAX,
                        checks,
                        may_hold,
                    )
                    .await?;
                (size, md5, sums, None, kept)
            }
            Some(write_key) => {
                let data_key = objects::seal::DataKey::random();
                let place = (&cores, policy, &version_id);
                let body = input.body;
                let sealed = self
                    .store_sealed_body(place, body, data_key.clone(), checks)
                    .await?;
                let encryption = crate::sse::encryption(write_key, &data_key, sealed.plain_bytes);
                (
                    sealed.stored_bytes,
                    sealed.stored_md5,
                    sealed.sums,
                    Some(encryption),
                    None,
                )
            }
        };
        let stored = PartRef { version_id, size };
        // The object keeps one checksum, the first the request asked for (S3 stores one).
        let stored_checksum = sums.first().map(|sum| checksum::ObjectChecksum {
            sum: sum.clone(),
            kind: checksum::Kind::FullObject,
            parts: 1,
        });
        let mut head = ObjectHead {
            size,
            modified_ms: now_ms(),
            etag: hex::encode(md5),
            version_id,
            chunk_bytes: CHUNK_BYTES,
            policy,
            content_type: input.content_type.unwrap_or_default(),
            metadata,
            headers: standard_headers(
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires,
            ),
            parts: vec![stored],
            checksum: stored_checksum,
            null_version: versioning.writes_null(),
            in_versions: versioning.keeps_versions(),
            tiering: Tiering {
                class,
                tier,
                ..Tiering::default()
            },
            tags: tags.unwrap_or_default(),
            part_checksums: Vec::new(),
            lock,
            encryption,
            owner: acl.owner,
            acl: acl.acl,
        };
        let committed = self
            .store
            .commit_head_held(
                &bucket,
                &input.key,
                &mut head,
                condition.as_ref(),
                versioning,
                kept.map(|body| (&cores, body)),
            )
            .await;
        if let Err(e) = committed {
            if e.keep_chunks {
                return Err(s3_err(e.error));
            }
            self.store.retire_chunks(&bucket, &input.key, head);
            return Err(s3_err(e.error));
        }
        let event = if via_post {
            "s3:ObjectCreated:Post"
        } else {
            "s3:ObjectCreated:Put"
        };
        self.notify_created(&bucket, &input.key, &head, event).await;
        let customer_key = write_key.as_ref().and_then(crate::sse::WriteKey::customer);
        let (server_side_encryption, ssekms_key_id) = crate::sse::response_headers(&head);
        let mut out = PutObjectOutput {
            e_tag: Some(etag(&head.etag)),
            size: Some(head.shown_size() as i64),
            sse_customer_algorithm: customer_key.map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer_key.map(|c| c.md5_base64.clone()),
            server_side_encryption,
            ssekms_key_id,
            version_id: versioning.keeps_versions().then(|| head_version_id(&head)),
            ..Default::default()
        };
        for sum in sums {
            checksum::set_checksum!(out, sum.algo(), sum.base64());
        }
        if head.checksum.is_some() {
            out.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        Ok(S3Response::new(out))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let user = user_of(&req)?;
        let lock_headers = crate::authz::lock_headers(&req.extensions);
        let judged = crate::object_acl::judged(&req.extensions);
        let input = req.input;
        // response-* overrides are for signed requests only (as AWS): a public object's
        // headers are not for an anonymous caller to rewrite.
        let overrides = input.response_cache_control.is_some()
            || input.response_content_disposition.is_some()
            || input.response_content_encoding.is_some()
            || input.response_content_language.is_some()
            || input.response_content_type.is_some()
            || input.response_expires.is_some();
        if overrides && req.credentials.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "Request specific response headers cannot be used for anonymous GET requests."
            ));
        }
        let customer_key = crate::sse::customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let (head, version_id, owned) = self
            .object_for_get(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        crate::object_acl::check_judged(judged, &head)?;
        let bucket = owned.scope;
        let data_key = crate::sse::read_key(self, &head, customer_key.as_ref())?;
        check_conditions(
            &head,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (class, restore) = (shown_class(&head), restore_header(&head));
        // x-amz-tagging-count: the head's tags, unless some object of the bucket had its tags
        // changed since it was written; then the `T` record is read beside the first stripe.
        let tagged = owned.record.tags_changed.then(|| head.clone());
        let head_tags = head.tags.len();
        let head = readable(head)?;
        let shown_size = head.shown_size();
        // partNumber selects one part's bytes (PartsCount tells how many there are).
        let part_range = match input.part_number {
            None => None,
            Some(n) => Some(
                usize::try_from(n)
                    .ok()
                    .and_then(|n| head.shown_part_range(n))
                    .ok_or_else(invalid_part_number)?,
            ),
        };
        let (first, len) = match part_range {
            Some(r) => r,
            None if shown_size == 0 && input.range.is_none() => (0, 0),
            None => resolve_range(input.range.as_ref(), shown_size)?,
        };
        // An encrypted body: only the packages holding the range are read and opened.
        let mut stream = self.store.plain_stream(
            &bucket,
            &input.key,
            head.clone(),
            data_key.as_ref(),
            first,
            len,
        );
        // The first stripe's span is read whole before the response starts (every data shard
        // of an EC stripe, or the decode around a missing one): a GET that cannot be served
        // fails with its status (503, 500) instead of a 200 and a cut body. Later stripes
        // stream; a failure there cuts the connection (`stream_error`).
        let first_span_end = match data_key {
            // The first package, opened.
            Some(_) => first + len.min(1),
            None => head.locate(first).map_or(first, |(stripe, offset)| {
                first + (stripe.len - offset).min(len)
            }),
        };
        let read_first = async {
            let mut read = Vec::new();
            let mut at = first;
            while at < first_span_end {
                match stream.next().await {
                    Some(Ok(b)) => {
                        at += b.len() as u64;
                        read.push(Ok(b));
                    }
                    Some(Err(e)) => return Err(stream_error(e)),
                    None => break,
                }
            }
            Ok(read)
        };
        let (read_first, tag_count) = match &tagged {
            None => (read_first.await?, head_tags),
            Some(h) => {
                let tags = self.tags_of(&bucket, &input.key, h);
                let (read, tags) = tokio::join!(read_first, tags);
                (read?, tags?.len())
            }
        };
        let stream = futures::stream::iter(read_first).chain(stream);
        let parts_count = (head.parts.len() > 1 || input.part_number.is_some())
            .then_some(head.parts.len() as i32);
        let content_range = (input.range.is_some() || part_range.is_some())
            .then(|| format!("bytes {first}-{}/{shown_size}", (first + len).max(1) - 1));
        let sum = shown_checksum(
            &head,
            input.checksum_mode.as_ref(),
            input.part_number,
            input.range.is_some(),
        );
        // response-* query parameters override what is stored (signed requests only, above).
        let content_type = input
            .response_content_type
            .or_else(|| (!head.content_type.is_empty()).then(|| head.content_type.clone()));
        let mut out = GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(len as i64),
            parts_count,
            content_range,
            content_type,
            cache_control: input
                .response_cache_control
                .or_else(|| head.header("cache-control")),
            content_disposition: input
                .response_content_disposition
                .or_else(|| head.header("content-disposition")),
            content_encoding: input
                .response_content_encoding
                .or_else(|| head.header("content-encoding")),
            content_language: input
                .response_content_language
                .or_else(|| head.header("content-language")),
            expires: input
                .response_expires
                .or_else(|| head.header("expires").as_deref().and_then(parse_http_date)),
            e_tag: Some(etag(&head.etag)),
            last_modified: Some(timestamp(head.modified_ms)),
            metadata: (!head.metadata.is_empty()).then(|| head.metadata.iter().cloned().collect()),
            accept_ranges: Some("bytes".into()),
            version_id,
            storage_class: class,
            tag_count: (tag_count > 0).then_some(tag_count as i32),
            restore,
            sse_customer_algorithm: customer_key.as_ref().map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer_key.map(|c| c.md5_base64),
            server_side_encryption: crate::sse::response_headers(&head).0,
            ssekms_key_id: crate::sse::response_headers(&head).1,
            ..Default::default()
        };
        set_lock_and_checksum!(out, &head.lock, lock_headers, sum);
        self.store.note_access(&bucket, &input.key, &head);
        Ok(S3Response::new(out))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let user = user_of(&req)?;
        let lock_headers = crate::authz::lock_headers(&req.extensions);
        let judged = crate::object_acl::judged(&req.extensions);
        let input = req.input;
        let customer_key = crate::sse::customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let (head, version_id, _) = self
            .object_for_read(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        crate::object_acl::check_judged(judged, &head)?;
        crate::sse::read_key(self, &head, customer_key.as_ref())?;
        check_conditions(
            &head,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let length = match input.part_number {
            None => head.shown_size(),
            Some(n) => {
                let part = usize::try_from(n)
                    .ok()
                    .and_then(|n| head.shown_part_range(n));
                part.ok_or_else(invalid_part_number)?.1
            }
        };
        let parts_count = (head.parts.len() > 1 || input.part_number.is_some())
            .then_some(head.parts.len() as i32);
        let sum = shown_checksum(
            &head,
            input.checksum_mode.as_ref(),
            input.part_number,
            input.range.is_some(),
        );
        let mut out = HeadObjectOutput {
            content_length: Some(length as i64),
            parts_count,
            cache_control: head.header("cache-control"),
            content_disposition: head.header("content-disposition"),
            content_encoding: head.header("content-encoding"),
            content_language: head.header("content-language"),
            expires: head.header("expires").as_deref().and_then(parse_http_date),
            content_type: (!head.content_type.is_empty()).then(|| head.content_type.clone()),
            e_tag: Some(etag(&head.etag)),
            last_modified: Some(timestamp(head.modified_ms)),
            metadata: (!head.metadata.is_empty()).then(|| head.metadata.iter().cloned().collect()),
            accept_ranges: Some("bytes".into()),
            version_id,
            storage_class: shown_class(&head),
            restore: restore_header(&head),
            sse_customer_algorithm: customer_key.as_ref().map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer_key.map(|c| c.md5_base64),
            server_side_encryption: crate::sse::response_headers(&head).0,
            ssekms_key_id: crate::sse::response_headers(&head).1,
            ..Default::default()
        };
        set_lock_and_checksum!(out, &head.lock, lock_headers, sum);
        let mut response = S3Response::new(out);
        if let Some(tier) = access_tier(&head) {
            response
                .headers
                .insert(ACCESS_TIER_HEADER, http::HeaderValue::from_static(tier));
        }
        let shown = readable(head.clone()).unwrap_or(head);
        if let Ok(v) = http::HeaderValue::from_str(&placement_of(&shown)) {
            response.headers.insert(PLACEMENT_HEADER, v);
        }
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let live = self.owned_bucket(&input.bucket, &user).await?;
        let (bucket, versioning) = (live.scope, live.versioning);
        let bypass = input.bypass_governance_retention == Some(true)
            && crate::authz::bypass_granted(&req.extensions);
        let guard = crate::versioning::Guard::Enforce { bypass };
        let version = input
            .version_id
            .as_deref()
            .map(parse_version_id)
            .transpose()?;
        let deleted = self
            .store
            .delete_object_guarded(&bucket, &input.key, version, versioning, guard)
            .await
            .map_err(s3_err)?;
        let marker_made = deleted.delete_marker && input.version_id.is_none();
        self.notify_removed(&bucket, &input.key, marker_made, deleted.version_id.clone())
            .await;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let live = self.owned_bucket(&input.bucket, &user).await?;
        let (bucket, versioning) = (live.scope, live.versioning);
        let objects = input.delete.objects;
        if objects.len() > DELETE_KEYS_MAX {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in objects {
            let version = o.version_id.as_deref();
            let allowed = crate::authz::check_key_delete(&req.extensions, &o.key, version);
            let bypass = input.bypass_governance_retention == Some(true)
                && crate::authz::key_bypass_granted(&req.extensions, &o.key);
            let guard = crate::versioning::Guard::Enforce { bypass };
            let named = check_key(&o.key)
                .and(allowed)
                .and_then(|()| version.map(parse_version_id).transpose());
            let result = match named {
                Ok(version) => self
                    .store
                    .delete_object_guarded(&bucket, &o.key, version, versioning, guard)
                    .await
                    .map_err(s3_err),
                Err(e) => Err(e),
            };
            if let Ok(d) = &result {
                let marker_made = d.delete_marker && o.version_id.is_none();
                self.notify_removed(&bucket, &o.key, marker_made, d.version_id.clone())
                    .await;
            }
            match result {
                Ok(_) if quiet => {}
                // A simple delete names the marker it made; a version delete the version
                // (and whether it was a marker).
                Ok(d) => deleted.push(DeletedObject {
                    key: Some(o.key),
                    delete_marker: d.delete_marker.then_some(true),
                    delete_marker_version_id: d.version_id.clone().filter(|_| d.delete_marker),
                    version_id: d.version_id.filter(|_| o.version_id.is_some()),
                }),
                Err(e) => errors.push(s3s::dto::Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(o.key),
                    message: e.message().map(str::to_string),
                    version_id: o.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let user = user_of(&req)?;
        let input = req.input;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let max_keys = max_keys(input.max_keys)?;
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(t), _) => Some(
                hex::decode(t).map_err(|_| s3_error!(InvalidArgument, "bad continuation token"))?,
            ),
            (None, Some(s)) => Some(s.as_bytes().to_vec()),
            (None, None) => None,
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        // An empty `delimiter=` means none.
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let page = self
            .store
            .list_page(&bucket, &prefix, delimiter.as_deref(), after, max_keys)
            .await
            .map_err(s3_err)?;
        let enc = encoder(input.encoding_type.as_ref());
        let key_count = (page.entries.len() + page.prefixes.len()) as i32;
        let next = page.next_token();
        let owners = match input.fetch_owner {
            Some(true) => Some((user.as_str(), self.shows_object_owners(&bucket).await?)),
            _ => None,
        };
        let (contents, prefixes) = page_contents(page, &enc, owners);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix.map(&enc),
            // An empty delimiter is no delimiter, and is not echoed (as AWS).
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(&enc),
            max_keys: input.max_keys.or(Some(1000)),
            key_count: Some(key_count),
            is_truncated: Some(next.is_some()),
            next_continuation_token: next.map(hex::encode),
            continuation_token: input.continuation_token,
            start_after: input.start_after.map(&enc),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.versioning_get(req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.versioning_put(req).await
    }

    async fn restore_object(
        &self,
        req: S3Request<RestoreObjectInput>,
    ) -> S3Result<S3Response<RestoreObjectOutput>> {
        self.restore(req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        self.lifecycle_put(req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.lifecycle_get(req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.lifecycle_delete(req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<s3s::dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketPolicyOutput>> {
        self.policy_put(req).await
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<s3s::dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketPolicyOutput>> {
        self.policy_get(req).await
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<s3s::dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketPolicyOutput>> {
        self.policy_delete(req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<s3s::dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketPolicyStatusOutput>> {
        self.policy_status(req).await
    }

    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<s3s::dto::PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketNotificationConfigurationOutput>> {
        self.notification_put(req).await
    }

    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<s3s::dto::GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketNotificationConfigurationOutput>> {
        self.notification_get(req).await
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<s3s::dto::PutBucketCorsInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketCorsOutput>> {
        self.cors_put(req).await
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<s3s::dto::GetBucketCorsInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketCorsOutput>> {
        self.cors_get(req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<s3s::dto::DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketCorsOutput>> {
        self.cors_delete(req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<s3s::dto::PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<s3s::dto::PutPublicAccessBlockOutput>> {
        self.block_put(req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<s3s::dto::GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<s3s::dto::GetPublicAccessBlockOutput>> {
        self.block_get(req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<s3s::dto::DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<s3s::dto::DeletePublicAccessBlockOutput>> {
        self.block_delete(req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<s3s::dto::PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketOwnershipControlsOutput>> {
        self.ownership_put(req).await
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<s3s::dto::GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketOwnershipControlsOutput>> {
        self.ownership_get(req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<s3s::dto::DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketOwnershipControlsOutput>> {
        self.ownership_delete(req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<s3s::dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketAclOutput>> {
        self.bucket_acl_put(req).await
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<s3s::dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketAclOutput>> {
        self.bucket_acl_get(req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<s3s::dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectAclOutput>> {
        self.object_acl_get(req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<s3s::dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<s3s::dto::PutObjectAclOutput>> {
        self.object_acl_put(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.versions_list(req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<s3s::dto::PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<s3s::dto::PutObjectLockConfigurationOutput>> {
        self.lock_config_put(req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<s3s::dto::GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectLockConfigurationOutput>> {
        self.lock_config_get(req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<s3s::dto::PutObjectRetentionInput>,
    ) -> S3Result<S3Response<s3s::dto::PutObjectRetentionOutput>> {
        self.retention_put(req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<s3s::dto::GetObjectRetentionInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectRetentionOutput>> {
        self.retention_get(req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<s3s::dto::PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<s3s::dto::PutObjectLegalHoldOutput>> {
        self.legal_hold_put(req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<s3s::dto::GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectLegalHoldOutput>> {
        self.legal_hold_get(req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.tagging_put(req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.tagging_get(req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.tagging_delete(req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<s3s::dto::GetObjectAttributesInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectAttributesOutput>> {
        self.attributes_get(req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<s3s::dto::PutBucketTaggingInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketTaggingOutput>> {
        self.bucket_tagging_put(req).await
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<s3s::dto::PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<s3s::dto::PutBucketEncryptionOutput>> {
        self.bucket_encryption_put(req).await
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<s3s::dto::GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketEncryptionOutput>> {
        self.bucket_encryption_get(req).await
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<s3s::dto::DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketEncryptionOutput>> {
        self.bucket_encryption_delete(req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<s3s::dto::GetBucketTaggingInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketTaggingOutput>> {
        self.bucket_tagging_get(req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<s3s::dto::DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketTaggingOutput>> {
        self.bucket_tagging_delete(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let user = user_of(&req)?;
        let writer = crate::object_acl::signer_of(&req);
        let judged_source = crate::object_acl::judged_source(&req.extensions);
        let input = req.input;
        check_key(&input.key)?;
        let live = self.owned_bucket(&input.bucket, &user).await?;
        let lock = crate::object_lock::WriteLock {
            mode: input.object_lock_mode.as_ref(),
            until: input.object_lock_retain_until_date.as_ref(),
            hold: input.object_lock_legal_hold_status.as_ref(),
        };
        let lock = self.write_lock(&live, &lock).await?;
        // The destination's own encryption (the request's, else its bucket's default): S3
        // never copies the source's.
        let asked = crate::sse::Asked {
            algorithm: input.server_side_encryption.as_ref(),
            kms_key_id: input.ssekms_key_id.as_deref(),
            customer: crate::sse::customer_key(
                input.sse_customer_algorithm.as_deref(),
                input.sse_customer_key.as_deref(),
                input.sse_customer_key_md5.as_deref(),
            )?,
        };
        let asks_encryption = asked.algorithm.is_some() || asked.customer.is_some();
        let write_key = self.write_key(&live.scope, asked).await?;
        // The destination's own ACL: S3 never copies the source's.
        let asked = crate::object_acl::asked_of_write!(input);
        let acl = self.acl_for_write(&live, writer.as_deref(), asked).await?;
        let (bucket, versioning) = (live.scope, live.versioning);
        let conditions = copy_conditions!(input);
        let source = self
            .copy_source(&user, &input.copy_source, conditions)
            .await?;
        crate::object_acl::check_judged(judged_source, &source.head)?;
        let (src_bucket, src_key, src) = (&source.bucket, &source.key, &source.head);
        let replace = match input
            .metadata_directive
            .as_ref()
            .map(s3s::dto::MetadataDirective::as_str)
        {
            None | Some("COPY") => false,
            Some("REPLACE") => true,
            Some(_) => return Err(s3_error!(InvalidArgument, "MetadataDirective")),
        };
        let class = requested_class(input.storage_class.as_ref())?;
        // Copying a named version onto its own key is how S3 restores an old version; a copy
        // onto itself with another storage class is how it changes class.
        // So is a copy onto itself that changes its encryption (a new SSE-C key, say).
        if *src_bucket == bucket
            && *src_key == input.key
            && !replace
            && !source.named_version
            && input.storage_class.is_none()
            && !asks_encryption
        {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object to itself needs a metadata change (MetadataDirective REPLACE)"
            ));
        }
        let written = objects::copy::Written {
            tags: Vec::new(),
            class,
            lock,
            owner: acl.owner,
            acl: acl.acl,
            algo: None,
            sealing: write_key.as_ref().map(crate::sse::fresh_sealing),
            ..Default::default()
        };
        let mut written = if replace {
            objects::copy::Written {
                content_type: input.content_type.unwrap_or_default(),
                metadata: user_metadata(input.metadata)?,
                headers: standard_headers(
                    input.cache_control,
                    input.content_disposition,
                    input.content_encoding,
                    input.content_language,
                    input.expires,
                ),
                ..written
            }
        } else {
            written.source_metadata(src)
        };
        let replace_tags = match input
            .tagging_directive
            .as_ref()
            .map(s3s::dto::TaggingDirective::as_str)
        {
            None | Some("COPY") => None,
            Some("REPLACE") => Some(
                input
                    .tagging
                    .as_deref()
                    .map(crate::tagging::parse_header)
                    .transpose()?
                    .unwrap_or_default(),
            ),
            Some(_) => return Err(s3_error!(InvalidArgument, "TaggingDirective")),
        };
        // The copy's tags go into its head: read before the data is copied.
        written.tags = match replace_tags {
            Some(t) => t,
            None => self.tags_of(src_bucket, src_key, src).await?,
        };
        // The copy's checksum (full object, computed from the bytes copied): the algorithm the
        // request names, else the source's, else CRC64NVME (as AWS).
        written.algo = match input.checksum_algorithm.as_ref() {
            Some(a) => Some(checksum::Algo::from_name(a.as_str()).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "unknown x-amz-checksum-algorithm {}",
                    a.as_str()
                )
            })?),
            None => None,
        };
        let copied = objects::copy::Source {
            scope: src_bucket,
            key: src_key,
            head: src,
            data_key: source.data_key.as_ref(),
        };
        let head = self
            .store
            .copy_object((&bucket, &input.key, versioning), copied, written)
            .await
            .map_err(s3_err)?;
        self.notify_created(&bucket, &input.key, &head, "s3:ObjectCreated:Copy")
            .await;
        let mut result = CopyObjectResult {
            e_tag: Some(etag(&head.etag)),
            last_modified: Some(timestamp(head.modified_ms)),
            ..Default::default()
        };
        if let Some(c) = &head.checksum {
            checksum::set_checksum!(result, c.sum.algo(), c.sum.base64());
            result.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        let customer_key = write_key.as_ref().and_then(crate::sse::WriteKey::customer);
        let (server_side_encryption, ssekms_key_id) = crate::sse::response_headers(&head);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(result),
            copy_source_version_id: source.version_id.clone(),
            version_id: versioning.keeps_versions().then(|| head_version_id(&head)),
            server_side_encryption,
            ssekms_key_id,
            sse_customer_algorithm: customer_key.map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer_key.map(|c| c.md5_base64.clone()),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.mp_upload_part_copy(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.mp_create(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.mp_upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.mp_list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.mp_complete(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.mp_abort(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.mp_list_uploads(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let max_keys = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let after = input.marker.as_ref().map(|m| m.as_bytes().to_vec());
        let page = self
            .store
            .list_page(&bucket, &prefix, delimiter.as_deref(), after, max_keys)
            .await
            .map_err(s3_err)?;
        let enc = encoder(input.encoding_type.as_ref());
        let next = page
            .next_token()
            .map(|k| enc(String::from_utf8_lossy(&k).into_owned()));
        // V1 always names the owner (V2 only with fetch-owner=true).
        let owners = (user.as_str(), self.shows_object_owners(&bucket).await?);
        let (contents, prefixes) = page_contents(page, &enc, Some(owners));
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: input.prefix.map(&enc),
            // An empty delimiter is no delimiter, and is not echoed (as AWS).
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(&enc),
            // V1 always answers a Marker, empty when none was given (as AWS).
            marker: Some(input.marker.map(&enc).unwrap_or_default()),
            max_keys: input.max_keys.or(Some(1000)),
            is_truncated: Some(next.is_some()),
            next_marker: next,
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

/// The condition of a PUT or CompleteMultipartUpload, from its If-None-Match / If-Match.
pub(crate) fn head_condition(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> S3Result<Option<HeadCondition>> {
    match (if_none_match, if_match) {
        (None, None) => Ok(None),
        (Some(ETagCondition::Any), None) => Ok(Some(HeadCondition::Absent)),
        (Some(ETagCondition::ETag(_)), _) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on writes supports only *"
        )),
        (None, Some(ETagCondition::ETag(e))) => {
            Ok(Some(HeadCondition::Matches(e.value().to_string())))
        }
        (None, Some(ETagCondition::Any)) => Err(s3_error!(NotImplemented, "If-Match: * on writes")),
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidArgument,
            "If-Match and If-None-Match together"
        )),
    }
}

/// What a request body is checked against once it has ended.
pub(crate) struct BodyChecks<'a> {
    pub algos: &'a [checksum::Algo],
    pub headers: &'a http::HeaderMap,
    pub trailers: Option<s3s::TrailingHeaders>,
    pub content_length: Option<i64>,
    pub content_md5: Option<&'a str>,
}

/// The x-amz-copy-source-if-* headers of a request (CopyObject, UploadPartCopy: two input
/// types with the same fields).
macro_rules! copy_conditions {
    ($input:expr) => {
        $crate::s3::CopyConditions {
            if_match: $input.copy_source_if_match.as_ref(),
            if_none_match: $input.copy_source_if_none_match.as_ref(),
            if_modified_since: $input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $input.copy_source_if_unmodified_since.as_ref(),
            sse_algorithm: $input.copy_source_sse_customer_algorithm.as_deref(),
            sse_key: $input.copy_source_sse_customer_key.as_deref(),
            sse_key_md5: $input.copy_source_sse_customer_key_md5.as_deref(),
        }
    };
}
pub(crate) use copy_conditions;

/// x-amz-copy-source-if-* headers, and the source's SSE-C key
/// (x-amz-copy-source-server-side-encryption-customer-*).
pub(crate) struct CopyConditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
    pub sse_algorithm: Option<&'a str>,
    pub sse_key: Option<&'a str>,
    pub sse_key_md5: Option<&'a str>,
}

/// The object a copy reads.
pub(crate) struct CopiedSource {
    pub bucket: String,
    pub key: String,
    pub head: ObjectHead,
    /// The x-amz-copy-source-version-id to show.
    pub version_id: Option<String>,
    /// The request named the version (`?versionId=`).
    pub named_version: bool,
    /// An encrypted source's data key (an SSE-C source's opened with the request's key).
    pub data_key: Option<objects::seal::DataKey>,
}

/// A listing page as S3 shows it: objects (keys not yet encoded) and common prefixes; with
/// their owners when `owners` gives the bucket owner (an object's own when the flag says
/// objects have their own, else the bucket owner).
fn page_contents(
    page: Listed,
    enc: &impl Fn(String) -> String,
    owners: Option<(&str, bool)>,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let contents = page
        .entries
        .into_iter()
        .map(|(key, entry)| Object {
            key: Some(enc(key)),
            size: Some(entry.size as i64),
            e_tag: Some(etag(&entry.etag)),
            last_modified: Some(timestamp(entry.modified_ms)),
            storage_class: Some(entry.class.as_str().to_owned().into()),
            owner: owners.map(|(bucket_owner, own)| {
                let object_owner = entry.owner.as_deref().filter(|_| own);
                owner_dto(object_owner.unwrap_or(bucket_owner))
            }),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    (contents, prefixes)
}

/// The Owner element of a user id.
pub(crate) fn owner_dto(id: &str) -> Owner {
    Owner {
        display_name: Some(id.to_owned()),
        id: Some(id.to_owned()),
    }
}

pub(crate) fn max_keys(given: Option<i32>) -> S3Result<usize> {
    let m = given.map_or(Ok(1000), |m| {
        usize::try_from(m).map_err(|_| s3_error!(InvalidArgument, "max-keys must not be negative"))
    })?;
    Ok(m.min(LIST_KEYS_MAX))
}

/// `encoding-type=url` percent-encodes keys and prefixes in the response.
pub(crate) fn encoder(encoding: Option<&s3s::dto::EncodingType>) -> impl Fn(String) -> String {
    let url = encoding.is_some_and(|e| e.as_str() == "url");
    move |s| if url { url_encode(&s) } else { s }
}

/// Percent-encodes a key for `encoding-type=url` listings: everything but unreserved
/// characters and `/` (keys may hold bytes XML 1.0 cannot carry, such as U+0001).
fn url_encode(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_refusal_is_a_503_to_retry() {
        let e = BackendError::Remote(cluster::remote::RemoteError::LayoutMismatch {
            addr: "127.0.0.1:1".parse().unwrap(),
            ours: 2,
            theirs: "routed with layout 2, this node refuses layouts below 3".into(),
            index: 9,
        });
        let err = s3_err(objects::Error::Storage(e));
        assert_eq!(err.code(), &s3s::S3ErrorCode::ServiceUnavailable);
        assert!(
            err.message().is_some_and(|m| m.contains("layout")),
            "{:?}",
            err.message()
        );
    }

    #[test]
    fn aws_chunked_is_not_a_stored_content_encoding() {
        let stored = |e: &str| {
            standard_headers(None, None, Some(e.to_owned()), None, None)
                .into_iter()
                .find(|(n, _)| n == "content-encoding")
                .map(|(_, v)| v)
        };
        assert_eq!(stored("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(stored("aws-chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(stored("AWS-CHUNKED"), None);
        assert_eq!(stored("aws-chunked"), None);
        assert_eq!(stored("br,gzip").as_deref(), Some("br,gzip"));
        assert_eq!(stored("identity").as_deref(), Some("identity"));
    }

    #[test]
    fn ranges_resolve_like_s3() {
        let r = |first, last| Range::Int { first, last };
        assert_eq!(resolve_range(None, 10).unwrap(), (0, 10));
        assert_eq!(resolve_range(Some(&r(2, Some(4))), 10).unwrap(), (2, 3));
        assert_eq!(resolve_range(Some(&r(2, None)), 10).unwrap(), (2, 8));
        assert_eq!(resolve_range(Some(&r(2, Some(99))), 10).unwrap(), (2, 8));
        assert_eq!(
            resolve_range(Some(&Range::Suffix { length: 3 }), 10).unwrap(),
            (7, 3)
        );
        assert_eq!(
            resolve_range(Some(&Range::Suffix { length: 30 }), 10).unwrap(),
            (0, 10)
        );
        assert!(resolve_range(Some(&r(10, None)), 10).is_err());
        assert_eq!(url_encode("a b/ü\u{1}"), "a%20b/%C3%BC%01");
    }

    #[test]
    fn error_codes_are_s3s() {
        let e = s3_error!(NoSuchKey);
        assert_eq!(*e.code(), s3s::S3ErrorCode::NoSuchKey);
    }

    /// Every error of the object service answers its S3 code and status (`s3_err`).
    #[test]
    fn object_service_errors_become_their_s3_codes() {
        use objects::Error as E;
        let table: Vec<(E, &str, u16)> = vec![
            (E::NoSuchBucket, "NoSuchBucket", 404),
            (E::NoSuchKey, "NoSuchKey", 404),
            (E::NoSuchUpload, "NoSuchUpload", 404),
            (E::PreconditionFailed, "PreconditionFailed", 412),
            (E::IncompleteBody("cut".into()), "IncompleteBody", 400),
            (E::TooLarge, "EntityTooLarge", 400),
            (E::NoPolicy("GLACIER".into()), "InvalidStorageClass", 400),
            (E::BucketConflict, "OperationAborted", 409),
            (E::BucketDeleting, "OperationAborted", 409),
            (
                E::WriteTooSlow {
                    took_secs: 90,
                    grace_secs: 100,
                },
                "RequestTimeout",
                400,
            ),
            (E::Locked, "AccessDenied", 403),
            (E::NoSuchVersion, "NoSuchVersion", 404),
            (E::VersionChanged("retry"), "OperationAborted", 409),
            (E::Part(objects::PartError::Number), "InvalidArgument", 400),
            (E::Part(objects::PartError::Missing), "InvalidPart", 400),
            (E::Part(objects::PartError::Order), "InvalidPartOrder", 400),
            (
                E::Part(objects::PartError::NotUploaded(3)),
                "InvalidPart",
                400,
            ),
            (E::Part(objects::PartError::ETag(3)), "InvalidPart", 400),
            (
                E::Part(objects::PartError::TooSmall(3)),
                "EntityTooSmall",
                400,
            ),
            (
                E::Part(objects::PartError::CompletedOtherwise),
                "NoSuchUpload",
                404,
            ),
            (
                E::Checksum(objects::checksum::ChecksumError::ObjectMismatch {
                    algo: objects::checksum::Algo::Sha1,
                }),
                "BadDigest",
                400,
            ),
            (E::VersionKeyTooLong, "KeyTooLongError", 400),
            (E::Damaged("bad head".into()), "InternalError", 500),
            (E::Internal("bug".into()), "InternalError", 500),
            (
                E::Storage(BackendError::NoSpace),
                "InsufficientStorage",
                507,
            ),
            (E::Storage(BackendError::NotFound), "InternalError", 500),
        ];
        for (error, code, status) in table {
            let shown = format!("{error:?}");
            let e = s3_err(error);
            assert_eq!(e.code().as_str(), code, "{shown}");
            let got = e
                .status_code()
                .or_else(|| e.code().status_code())
                .map(|s| s.as_u16());
            assert_eq!(got, Some(status), "{shown}");
        }
    }
}
