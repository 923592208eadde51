//! Object versioning with S3's semantics: the bucket's state (Put/GetBucketVersioning), version
//! ids, the `null` version, delete markers, reads and deletes of one version, and
//! ListObjectVersions.
//!
//! A key's current version stays where it always was, in its head `O` and listing entry `L`:
//! a GET of the latest and ListObjects are one lookup and one scan, as in an unversioned
//! bucket (whose writes are exactly what they were). While a bucket keeps versions (Enabled or
//! Suspended) every version, delete markers included, also has a `V` record on the key's object
//! cores (same route key as its head), ordered newest first. A head written before the bucket
//! kept versions has no `V` record: it is the key's only version, `null`, and is recorded as a
//! version by the first write that replaces it. A key whose latest version is a delete marker
//! has no head and no listing entry.
//!
//! Fragments are never shared between versions (every write stores its own, copies included),
//! so a version's chunks are retired exactly when that version is removed: replaced as the
//! `null` version, or deleted by id. This module does not version tags (the `T` record stays
//! bound to the version it was set on) nor implement MFA delete or lifecycle; a version under
//! Object Lock is kept by the removal's [`Guard`] (`object_lock` judges it).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use s3s::dto::{
    BucketVersioningStatus, CommonPrefix, DeleteMarkerEntry, GetBucketVersioningInput,
    GetBucketVersioningOutput, ListObjectVersionsInput, ListObjectVersionsOutput, ObjectVersion,
    Owner, PutBucketVersioningInput, PutBucketVersioningOutput,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::limits::META_KEY_BYTES_MAX;
use crate::records::{
    key_versions_prefix, listing_key, parse_version_key, version_key, versions_prefix,
    DeleteMarker, ListingEntry, ObjectHead, VersionRecord, Versioning,
};
use crate::s3::{
    encoder, etag, max_keys, new_version_id, now_ms, s3_err, timestamp, user_of, Gateway,
    HeadCondition,
};

/// Version records read per scan call.
const VERSIONS_SCAN_BATCH: u32 = 1000;

/// How a removal of one version treats its Object Lock state (`object_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// As S3: a legal hold or an active retention keeps the version (a governance one not
    /// when `bypass`: the request asked to bypass it and may).
    Enforce { bypass: bool },
    /// The reclaim of a deleted bucket incarnation, which no name reaches any more.
    Reclaim,
}

impl Guard {
    fn check(self, lock: &crate::records::ObjectLock) -> S3Result<()> {
        match self {
            Guard::Reclaim => Ok(()),
            Guard::Enforce { bypass } => {
                match crate::object_lock::delete_refusal(lock, now_ms(), bypass) {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A version id as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionRef {
    Null,
    Id([u8; 12]),
}

impl VersionRef {
    pub(crate) fn shown(self) -> String {
        match self {
            VersionRef::Null => "null".to_string(),
            VersionRef::Id(id) => hex::encode(id),
        }
    }
}

/// `null`, or the 24 lowercase hex digits percore shows; anything else is S3's 400.
pub(crate) fn parse_version_id(s: &str) -> S3Result<VersionRef> {
    if s == "null" {
        return Ok(VersionRef::Null);
    }
    let mut id = [0u8; 12];
    let lower_hex = s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if s.len() == 24 && lower_hex && hex::decode_to_slice(s, &mut id).is_ok() {
        Ok(VersionRef::Id(id))
    } else {
        Err(s3_error!(InvalidArgument, "Invalid version id specified"))
    }
}

/// The id S3 shows for a version.
pub(crate) fn shown_version_id(null_version: bool, id: &[u8; 12]) -> String {
    if null_version {
        "null".to_string()
    } else {
        hex::encode(id)
    }
}

pub(crate) fn head_version_id(head: &ObjectHead) -> String {
    shown_version_id(head.null_version, &head.version_id)
}

/// The outcome of a DeleteObject, for its response headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deleted {
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

/// x-amz-delete-marker: true, x-amz-version-id and Last-Modified of a delete marker.
fn marker_headers(m: &DeleteMarker) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    let id = shown_version_id(m.null_version, &m.version_id);
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        h.insert("x-amz-version-id", v);
    }
    let mut date = Vec::new();
    let fmt = s3s::dto::TimestampFormat::HttpDate;
    if timestamp(m.modified_ms).format(fmt, &mut date).is_ok() {
        if let Ok(v) = http::HeaderValue::from_bytes(&date) {
            h.insert(http::header::LAST_MODIFIED, v);
        }
    }
    h
}

/// GET or HEAD of a version that is a delete marker: 405, as S3 answers.
pub(crate) fn delete_marker_not_allowed(m: &DeleteMarker) -> S3Error {
    let mut e = s3_error!(
        MethodNotAllowed,
        "The specified method is not allowed against this resource."
    );
    e.set_headers(marker_headers(m));
    e
}

pub(crate) fn no_such_version() -> S3Error {
    s3_error!(NoSuchVersion, "The specified version does not exist.")
}

/// Whether `current`, about to stop being the current version, needs a `V` record made now:
/// it has none, and is not the null version that a write in a suspended bucket replaces.
fn needs_record(current: &ObjectHead, versioning: Versioning) -> bool {
    let replaced = versioning == Versioning::Suspended && current.null_version;
    !current.in_versions && !replaced
}

/// Whether a key's version records fit a metadata key (see `limits::META_KEY_BYTES_MAX`).
fn check_versioned_key(bucket: &str, key: &str) -> S3Result<()> {
    if version_key(bucket, key, &[0; 12]).len() as u64 > META_KEY_BYTES_MAX {
        return Err(s3_error!(
            KeyTooLongError,
            "this key is too long for a bucket that keeps versions (NUL bytes count twice)"
        ));
    }
    Ok(())
}

fn decode_version(value: Bytes) -> S3Result<VersionRecord> {
    VersionRecord::decode(value).map_err(|e| s3_error!(e, InternalError))
}

impl Gateway {
    /// One version of a key by its id, from its `V` record.
    pub(crate) async fn version_record(
        &self,
        bucket: &str,
        key: &str,
        id: &[u8; 12],
    ) -> S3Result<Option<VersionRecord>> {
        let cores = self.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &version_key(bucket, key, id))
            .await
            .map_err(s3_err)?;
        entry.map(|e| decode_version(e.value)).transpose()
    }

    /// A key's version records (`V` key, record), newest first, at most `limit`.
    pub(crate) async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
        limit: usize,
    ) -> S3Result<Vec<(Bytes, VersionRecord)>> {
        let cores = self.object_cores(bucket, key);
        let prefix = key_versions_prefix(bucket, key);
        let mut cursor = None;
        let mut out = Vec::new();
        while out.len() < limit {
            let want = (limit - out.len()).min(VERSIONS_SCAN_BATCH as usize) as u32;
            let (entries, next) = self
                .backend
                .meta_scan(&cores, &prefix, cursor, want)
                .await
                .map_err(s3_err)?;
            for (k, e) in entries {
                out.push((k, decode_version(e.value)?));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    /// The `V` records of a key's null version (one, barring a race of two writers).
    async fn null_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<Vec<(Bytes, VersionRecord)>> {
        let all = self.key_versions(bucket, key, usize::MAX).await?;
        Ok(all.into_iter().filter(|(_, r)| r.null_version()).collect())
    }

    /// Version `v` of a key. The null version may be the head itself, without a `V` record
    /// (written before the bucket kept versions).
    pub(crate) async fn resolve_version(
        &self,
        bucket: &str,
        key: &str,
        v: VersionRef,
    ) -> S3Result<Option<VersionRecord>> {
        check_versioned_key(bucket, key)?;
        match v {
            VersionRef::Id(id) => self.version_record(bucket, key, &id).await,
            VersionRef::Null => {
                if let Some(h) = self.head(bucket, key).await? {
                    if h.null_version {
                        return Ok(Some(VersionRecord::Object(h)));
                    }
                }
                let found = self.null_versions(bucket, key).await?;
                Ok(found.into_iter().next().map(|(_, r)| r))
            }
        }
    }

    /// The error of a GET or HEAD of a key without a current version: NoSuchKey, with the
    /// delete marker's headers when the latest version is one.
    pub(crate) async fn missing_current(
        &self,
        bucket: &str,
        key: &str,
        versioning: Versioning,
    ) -> S3Error {
        let mut e = s3_error!(NoSuchKey);
        if !versioning.keeps_versions() {
            return e;
        }
        match self.key_versions(bucket, key, 1).await {
            Ok(v) => {
                if let Some((_, VersionRecord::DeleteMarker(m))) = v.first() {
                    e.set_headers(marker_headers(m));
                }
                e
            }
            Err(err) => err,
        }
    }

    /// Records `head` (a current version written before the bucket kept versions) as a
    /// version, so that replacing it as the current one keeps it.
    async fn record_version(&self, bucket: &str, key: &str, head: &ObjectHead) -> S3Result<()> {
        let mut h = head.clone();
        h.in_versions = true;
        let cores = self.object_cores(bucket, key);
        let k = version_key(bucket, key, &h.version_id);
        let value = VersionRecord::Object(h).encode();
        let hlc = self.backend.hlc();
        self.backend
            .meta_put(&cores, &k, &value, hlc)
            .await
            .map_err(s3_err)
    }

    /// Removes a key's null version but `keep` (S3: a write while versioning is suspended
    /// replaces it, wherever it is in the key's history): `current` if it is a null version
    /// without a `V` record, and every `V` record of a null version. Retires their chunks.
    async fn remove_null_versions(
        &self,
        bucket: &str,
        key: &str,
        keep: Option<&[u8; 12]>,
        current: Option<&ObjectHead>,
    ) -> S3Result<()> {
        if let Some(c) = current {
            if c.null_version && !c.in_versions && Some(&c.version_id) != keep {
                self.retire_chunks(bucket, key, c.clone());
            }
        }
        let cores = self.object_cores(bucket, key);
        for (k, record) in self.null_versions(bucket, key).await? {
            if Some(record.version_id()) == keep {
                continue;
            }
            let hlc = self.backend.hlc();
            self.backend
                .meta_delete(&cores, &k, hlc)
                .await
                .map_err(s3_err)?;
            if let VersionRecord::Object(h) = record {
                self.retire_chunks(bucket, key, h);
            }
        }
        Ok(())
    }

    /// Commits a new version in a bucket that keeps versions: its `V` record, then (after the
    /// condition, if any) it becomes current. The version it replaces as current stays a
    /// version (recorded now if it had no record), except the null version when versioning
    /// is suspended, which the new one replaces.
    pub(crate) async fn commit_version(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
        condition: Option<&HeadCondition>,
        versioning: Versioning,
    ) -> S3Result<()> {
        assert!(head.in_versions, "a versioned write keeps a version record");
        check_versioned_key(bucket, key)?;
        let cores = self.object_cores(bucket, key);
        let vkey = version_key(bucket, key, &head.version_id);
        let record = VersionRecord::Object(head.clone()).encode();
        self.backend
            .meta_put(&cores, &vkey, &record, hlc)
            .await
            .map_err(s3_err)?;
        let old = match condition {
            None => self.head(bucket, key).await,
            Some(cond) => self.cas_head(bucket, key, head, hlc, cond).await,
        };
        let old = match old {
            Ok(old) => old.filter(|o| o.version_id != head.version_id),
            Err(e) => {
                // The condition failed: this version never existed.
                let undo = self.backend.hlc();
                if let Err(d) = self.backend.meta_delete(&cores, &vkey, undo).await {
                    tracing::warn!(error = %d, "removing the record of a failed write failed");
                }
                return Err(e);
            }
        };
        let suspended = versioning == Versioning::Suspended;
        if let Some(o) = &old {
            if needs_record(o, versioning) {
                self.record_version(bucket, key, o).await?;
            }
        }
        if suspended {
            self.remove_null_versions(bucket, key, Some(&head.version_id), old.as_ref())
                .await?;
        }
        self.write_current(bucket, key, head, hlc).await
    }

    /// DeleteObject without a version id in a bucket that keeps versions: a new delete marker
    /// becomes the latest version (with a real id when Enabled; as the null version, which
    /// it replaces, when Suspended).
    async fn insert_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        versioning: Versioning,
    ) -> S3Result<Deleted> {
        check_versioned_key(bucket, key)?;
        let current = self.head(bucket, key).await?;
        let suspended = versioning == Versioning::Suspended;
        if let Some(c) = &current {
            if needs_record(c, versioning) {
                self.record_version(bucket, key, c).await?;
            }
        }
        let hlc = self.backend.hlc();
        let marker = DeleteMarker {
            version_id: new_version_id(hlc, key.as_bytes()),
            null_version: suspended,
            modified_ms: now_ms(),
        };
        if suspended {
            self.remove_null_versions(bucket, key, Some(&marker.version_id), current.as_ref())
                .await?;
        }
        let cores = self.object_cores(bucket, key);
        let vkey = version_key(bucket, key, &marker.version_id);
        let value = VersionRecord::DeleteMarker(marker.clone()).encode();
        self.backend
            .meta_put(&cores, &vkey, &value, hlc)
            .await
            .map_err(s3_err)?;
        if current.is_some() {
            self.remove_current(bucket, key, hlc).await?;
        }
        Ok(Deleted {
            version_id: Some(shown_version_id(marker.null_version, &marker.version_id)),
            delete_marker: true,
        })
    }

    /// Tombstones a key's listing entry, then its head (a listed key always has its head).
    async fn remove_current(&self, bucket: &str, key: &str, hlc: u64) -> S3Result<()> {
        let lcores = self.listing_cores(bucket);
        self.backend
            .meta_delete(&lcores, &listing_key(bucket, key), hlc)
            .await
            .map_err(s3_err)?;
        let cores = self.object_cores(bucket, key);
        self.backend
            .meta_delete(&cores, &crate::records::head_key(bucket, key), hlc)
            .await
            .map_err(s3_err)
    }

    /// DeleteObject with a version id: removes that version for good (a delete marker too);
    /// if it was the latest, the next newest becomes current. Deleting a version that does
    /// not exist succeeds, as in S3.
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        v: VersionRef,
        guard: Guard,
    ) -> S3Result<Deleted> {
        check_versioned_key(bucket, key)?;
        let current = self.head(bucket, key).await?;
        let unrecorded = current
            .as_ref()
            .filter(|c| v == VersionRef::Null && c.null_version && !c.in_versions);
        if let Some(c) = unrecorded {
            guard.check(&c.lock)?;
            // The key's only version, written before the bucket kept versions.
            let hlc = self.backend.hlc();
            self.remove_current(bucket, key, hlc).await?;
            self.retire_chunks(bucket, key, c.clone());
            return Ok(Deleted {
                version_id: Some(v.shown()),
                delete_marker: false,
            });
        }
        let target = match v {
            VersionRef::Id(id) => self
                .version_record(bucket, key, &id)
                .await?
                .map(|r| (version_key(bucket, key, &id), r)),
            VersionRef::Null => self.null_versions(bucket, key).await?.into_iter().next(),
        };
        let Some((vkey, record)) = target else {
            return Ok(Deleted {
                version_id: Some(v.shown()),
                delete_marker: false,
            });
        };
        if let VersionRecord::Object(h) = &record {
            guard.check(&h.lock)?;
        }
        let cores = self.object_cores(bucket, key);
        let hlc = self.backend.hlc();
        self.backend
            .meta_delete(&cores, &vkey, hlc)
            .await
            .map_err(s3_err)?;
        let delete_marker = matches!(record, VersionRecord::DeleteMarker(_));
        if let VersionRecord::Object(h) = record {
            self.retire_chunks(bucket, key, h);
        }
        self.reconcile_current(bucket, key, current).await?;
        Ok(Deleted {
            version_id: Some(v.shown()),
            delete_marker,
        })
    }

    /// Makes the head and listing entry show the key's newest remaining version after a
    /// version was removed: the newest object version becomes current; a delete marker or no
    /// version leaves no current one.
    async fn reconcile_current(
        &self,
        bucket: &str,
        key: &str,
        current: Option<ObjectHead>,
    ) -> S3Result<()> {
        let newest = self.key_versions(bucket, key, 1).await?.into_iter().next();
        let hlc = self.backend.hlc();
        match newest {
            Some((_, VersionRecord::Object(h))) => {
                if current.is_none_or(|c| c.version_id != h.version_id) {
                    self.write_current(bucket, key, &h, hlc).await?;
                }
            }
            _ => {
                if current.is_some() {
                    self.remove_current(bucket, key, hlc).await?;
                }
            }
        }
        Ok(())
    }

    /// DeleteObject (and one key of DeleteObjects) in any bucket state, with or without a
    /// version id; a version under Object Lock stays (no governance bypass).
    pub(crate) async fn delete_object_as_s3(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        versioning: Versioning,
    ) -> S3Result<Deleted> {
        let guard = Guard::Enforce { bypass: false };
        self.delete_object_guarded(bucket, key, version_id, versioning, guard)
            .await
    }

    /// `delete_object_as_s3`, with the Object Lock judgement `guard`.
    pub(crate) async fn delete_object_guarded(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        versioning: Versioning,
        guard: Guard,
    ) -> S3Result<Deleted> {
        let v = version_id.map(parse_version_id).transpose()?;
        match v {
            Some(v) => self.delete_version(bucket, key, v, guard).await,
            None if versioning.keeps_versions() => {
                self.insert_delete_marker(bucket, key, versioning).await
            }
            None => {
                self.delete_key(bucket, key).await?;
                Ok(Deleted::default())
            }
        }
    }

    /// Whether a bucket still holds a version or delete marker (on any core: a key's records
    /// live on its own cores).
    pub(crate) async fn has_versions(&self, bucket: &str) -> S3Result<bool> {
        let prefix = versions_prefix(bucket, b"").freeze();
        {
            let (entries, _) = self
                .backend
                .meta_scan_all(&prefix, None, 1)
                .await
                .map_err(s3_err)?;
            if !entries.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) async fn versioning_put(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let owned = self.owned_bucket(&input.bucket, &user).await?;
        let mut record = owned.record;
        let config = input.versioning_configuration;
        if input.mfa.is_some()
            || config
                .mfa_delete
                .as_ref()
                .is_some_and(|m| m.as_str() == "Enabled")
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let wanted = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            // Only an MFA-delete setting (Disabled): nothing changes.
            None if config.mfa_delete.is_some() => record.versioning,
            _ => {
                return Err(s3_error!(
                    IllegalVersioningConfigurationException,
                    "The versioning configuration specified in the request is invalid."
                ))
            }
        };
        if record.object_lock && wanted != Versioning::Enabled {
            return Err(s3_error!(
                InvalidBucketState,
                "An Object Lock configuration is present on this bucket, so the versioning state \
                 cannot be changed."
            ));
        }
        if wanted != record.versioning {
            if record.deleting {
                return Err(s3_error!(OperationAborted, "the bucket is being deleted"));
            }
            record.versioning = wanted;
            self.swap_bucket(&input.bucket, &record, owned.hlc).await?;
        }
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    /// An empty configuration for a bucket that was never versioned, as S3 returns.
    pub(crate) async fn versioning_get(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let user = user_of(&req)?;
        let record = self.owned_bucket(&req.input.bucket, &user).await?;
        let status = match record.versioning {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    pub(crate) async fn versions_list(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let record = self.owned_bucket(&input.bucket, &user).await?;
        let max_keys = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let key_marker = input.key_marker.clone().filter(|k| !k.is_empty());
        let version_marker = match (&key_marker, input.version_id_marker.as_deref()) {
            (_, None | Some("")) => None,
            (None, Some(_)) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "A version-id marker cannot be specified without a key marker."
                ))
            }
            (Some(_), Some(v)) => Some(parse_version_id(v)?),
        };
        let query = VersionQuery {
            bucket: &record.scope,
            prefix: &prefix,
            delimiter: delimiter.as_deref(),
            key_marker: key_marker.as_deref(),
            version_marker,
            max_keys,
            with_versions: record.versioning.keeps_versions(),
        };
        let page = self.versions_page(&query).await?;
        let enc = encoder(input.encoding_type.as_ref());
        let owner = Owner {
            display_name: Some(user.clone()),
            id: Some(user),
        };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for item in page.items {
            let key = Some(enc(String::from_utf8_lossy(&item.key).into_owned()));
            match item.version {
                Listed::Object {
                    version_id,
                    size,
                    etag: tag,
                    modified_ms,
                    class,
                } => versions.push(ObjectVersion {
                    key,
                    version_id: Some(version_id),
                    is_latest: Some(item.is_latest),
                    size: Some(size as i64),
                    e_tag: Some(etag(&tag)),
                    last_modified: Some(timestamp(modified_ms)),
                    owner: Some(owner.clone()),
                    storage_class: Some(class.as_str().to_owned().into()),
                    ..Default::default()
                }),
                Listed::Marker(m) => markers.push(DeleteMarkerEntry {
                    key,
                    version_id: Some(shown_version_id(m.null_version, &m.version_id)),
                    is_latest: Some(item.is_latest),
                    last_modified: Some(timestamp(m.modified_ms)),
                    owner: Some(owner.clone()),
                }),
            }
        }
        let prefixes = page
            .prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect();
        let (next_key, next_version) = match page.next {
            Some((k, v)) => (Some(enc(k)), v),
            None => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: input.prefix.map(&enc),
            // An empty delimiter is no delimiter, and is not echoed (as AWS).
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(&enc),
            key_marker: input.key_marker.map(&enc),
            version_id_marker: input.version_id_marker,
            max_keys: input.max_keys.or(Some(1000)),
            is_truncated: Some(next_key.is_some()),
            next_key_marker: next_key,
            next_version_id_marker: next_version,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    /// One page of ListObjectVersions: every version under the prefix in key order, newest
    /// first within a key, rolled up at the delimiter, after the markers.
    async fn versions_page(&self, q: &VersionQuery<'_>) -> S3Result<VersionsPage> {
        let mut page = VersionsPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        let (mut walk, mut previous_key) = self.start_walk(q).await?;
        let mut count = 0;
        let mut last: Option<(String, Option<String>)> = None;
        while let Some(item) = walk.next(self).await? {
            let key = String::from_utf8_lossy(&item.key).into_owned();
            let rolled = q.delimiter.and_then(|d| {
                let rest = key.get(q.prefix.len()..)?;
                rest.find(d)
                    .map(|at| key[..q.prefix.len() + at + d.len()].to_string())
            });
            if let Some(cp) = rolled {
                walk.skip_prefix(q.bucket, cp.as_bytes());
                // A common prefix at or before the key marker was on an earlier page.
                if q.key_marker.is_some_and(|m| cp.as_str() <= m) {
                    continue;
                }
                if count == q.max_keys {
                    page.next = last;
                    return Ok(page);
                }
                last = Some((cp.clone(), None));
                page.prefixes.push(cp);
                count += 1;
                previous_key = None;
                continue;
            }
            if count == q.max_keys {
                page.next = last;
                return Ok(page);
            }
            let is_latest = previous_key.as_deref() != Some(&item.key[..]);
            previous_key = Some(item.key.clone());
            let version = item.listed()?;
            let shown = match &version {
                Listed::Object { version_id, .. } => version_id.clone(),
                Listed::Marker(m) => shown_version_id(m.null_version, &m.version_id),
            };
            last = Some((key, Some(shown)));
            page.items.push(PageItem {
                key: item.key,
                is_latest,
                version,
            });
            count += 1;
        }
        Ok(page)
    }

    /// The sources of a version listing, positioned after the markers, and the key whose
    /// latest version is before the start (so its versions on this page are not latest).
    async fn start_walk(&self, q: &VersionQuery<'_>) -> S3Result<(VersionWalk, Option<Vec<u8>>)> {
        let batch = (q.max_keys + 2).min(VERSIONS_SCAN_BATCH as usize) as u32;
        let lprefix = listing_key(q.bucket, q.prefix);
        let vprefix = versions_prefix(q.bucket, q.prefix.as_bytes()).freeze();
        let (lcursor, vcursor, previous) = match (q.key_marker, q.version_marker) {
            (None, _) => (None, None, None),
            (Some(k), None) => (
                Some(listing_key(q.bucket, k)),
                Some(after_key(q.bucket, k)),
                None,
            ),
            (Some(k), Some(v)) => {
                let at = match v {
                    VersionRef::Id(id) => Some(version_key(q.bucket, k, &id)),
                    VersionRef::Null => self
                        .null_versions(q.bucket, k)
                        .await?
                        .first()
                        .map(|(vk, _)| vk.clone()),
                };
                match at {
                    None => (
                        Some(listing_key(q.bucket, k)),
                        Some(after_key(q.bucket, k)),
                        None,
                    ),
                    Some(at) => {
                        // Versions of the marker's key after it are latest only if nothing
                        // of that key sorts before the marker.
                        let newest = self.key_versions(q.bucket, k, 1).await?;
                        let before = newest.first().is_some_and(|(nk, _)| *nk <= at);
                        let previous = before.then(|| k.as_bytes().to_vec());
                        (Some(listing_key(q.bucket, k)), Some(at), previous)
                    }
                }
            }
        };
        let lbase = listing_key(q.bucket, "").len();
        let vbase = versions_prefix(q.bucket, b"").len();
        let mut sources = vec![Source::new(
            Some(self.listing_cores(q.bucket)),
            lprefix,
            lbase,
            lcursor,
            true,
            batch,
        )];
        if q.with_versions {
            // A key's version records live on its own cores: one scan merged over every core
            // (its cost grows with the cluster, unlike ListObjects; noted in gateway/DESIGN.md).
            sources.push(Source::new(None, vprefix, vbase, vcursor, false, batch));
        }
        Ok((VersionWalk { sources }, previous))
    }
}

/// The first position after every version of `key` in the version index: the key's prefix
/// ends 0 0; 0 1 sorts after all of them and before any longer key (0 FF, or a non-zero byte).
fn after_key(bucket: &str, key: &str) -> Bytes {
    let mut k = versions_prefix(bucket, key.as_bytes());
    k.put_slice(&[0, 1]);
    k.freeze()
}

struct VersionQuery<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    key_marker: Option<&'a str>,
    version_marker: Option<VersionRef>,
    max_keys: usize,
    /// Whether the bucket can hold `V` records (it kept versions at some time).
    with_versions: bool,
}

#[derive(Default)]
struct VersionsPage {
    items: Vec<PageItem>,
    prefixes: Vec<String>,
    /// The next key and version id markers, when the page is truncated.
    next: Option<(String, Option<String>)>,
}

struct PageItem {
    key: Vec<u8>,
    is_latest: bool,
    version: Listed,
}

enum Listed {
    Object {
        version_id: String,
        size: u64,
        etag: String,
        modified_ms: u64,
        class: crate::records::StorageClass,
    },
    Marker(DeleteMarker),
}

/// One version found by a walk: from the listing index (a current version without a `V`
/// record, the key's only one) or from the version index.
struct WalkItem {
    raw: Bytes,
    key: Vec<u8>,
    /// The position within the key: the `V` key's last 20 bytes (zero for listing entries).
    order: [u8; 20],
    value: Bytes,
    from_listing: bool,
}

impl WalkItem {
    fn listed(&self) -> S3Result<Listed> {
        if self.from_listing {
            let e = ListingEntry::decode(self.value.clone())
                .map_err(|e| s3_error!(e, InternalError))?;
            return Ok(Listed::Object {
                version_id: "null".to_string(),
                size: e.size,
                etag: e.etag,
                modified_ms: e.modified_ms,
                class: e.class,
            });
        }
        Ok(match decode_version(self.value.clone())? {
            VersionRecord::Object(h) => Listed::Object {
                version_id: head_version_id(&h),
                size: h.shown_size(),
                etag: h.etag,
                modified_ms: h.modified_ms,
                class: h.tiering.class,
            },
            VersionRecord::DeleteMarker(m) => Listed::Marker(m),
        })
    }
}

/// One sorted scan (a core's version index, or the bucket's listing index) read in batches.
struct Source {
    /// The replicas of an index (a bucket's listing), or `None`: every core of the cluster.
    cores: Option<Vec<usize>>,
    prefix: Bytes,
    /// Bytes of the bucket part of its keys.
    base: usize,
    cursor: Option<Bytes>,
    buf: VecDeque<WalkItem>,
    done: bool,
    listing: bool,
    batch: u32,
}

impl Source {
    fn new(
        cores: Option<Vec<usize>>,
        prefix: Bytes,
        base: usize,
        cursor: Option<Bytes>,
        listing: bool,
        batch: u32,
    ) -> Source {
        Source {
            cores,
            prefix,
            base,
            cursor,
            buf: VecDeque::new(),
            done: false,
            listing,
            batch,
        }
    }

    /// Reads the next batch of the scan (the listing index's may all be filtered out).
    async fn fetch(&mut self, gw: &Gateway) -> S3Result<()> {
        let cursor = self.cursor.clone();
        let (entries, next) = match &self.cores {
            Some(cores) => {
                gw.backend
                    .meta_scan(cores, &self.prefix, cursor, self.batch)
                    .await
            }
            None => {
                gw.backend
                    .meta_scan_all(&self.prefix, cursor, self.batch)
                    .await
            }
        }
        .map_err(s3_err)?;
        if let Some((k, _)) = entries.last() {
            self.cursor = Some(k.clone());
        }
        self.done = next.is_none();
        for (raw, e) in entries {
            if let Some(item) = self.item(raw, e.value)? {
                self.buf.push_back(item);
            }
        }
        Ok(())
    }

    /// Whether the next item could come from this source: it has one buffered, or the scan
    /// has not ended.
    fn pending(&self) -> bool {
        !self.buf.is_empty() || !self.done
    }

    /// With an empty buffer: every key this source may still hold sorts after this one.
    fn passed_key(&self) -> Option<&[u8]> {
        assert!(self.listing, "version scans buffer every entry they read");
        self.cursor.as_ref().map(|c| &c[self.base.min(c.len())..])
    }

    fn item(&self, raw: Bytes, value: Bytes) -> S3Result<Option<WalkItem>> {
        let rest = &raw[self.base..];
        if self.listing {
            let e = ListingEntry::decode(value.clone()).map_err(|e| s3_error!(e, InternalError))?;
            // A current version with a `V` record is listed from the version index.
            if e.in_versions {
                return Ok(None);
            }
            return Ok(Some(WalkItem {
                key: rest.to_vec(),
                raw,
                order: [0; 20],
                value,
                from_listing: true,
            }));
        }
        let (key, _) = parse_version_key(rest)
            .ok_or_else(|| s3_error!(InternalError, "malformed version key"))?;
        let mut order = [0u8; 20];
        order.copy_from_slice(&raw[raw.len() - 20..]);
        Ok(Some(WalkItem {
            raw,
            key,
            order,
            value,
            from_listing: false,
        }))
    }

    /// Drops everything up to `position` (a raw key) and resumes the scan after it.
    fn skip_to(&mut self, position: &Bytes) {
        while self.buf.front().is_some_and(|i| i.raw <= *position) {
            self.buf.pop_front();
        }
        if self.buf.is_empty() && self.cursor.as_ref().is_none_or(|c| c < position) {
            self.cursor = Some(position.clone());
        }
    }
}

/// A merge of sorted sources by (key, newest first), without duplicates (a `V` record is on
/// several cores).
struct VersionWalk {
    sources: Vec<Source>,
}

impl VersionWalk {
    async fn next(&mut self, gw: &Gateway) -> S3Result<Option<WalkItem>> {
        let position = |i: &WalkItem| (i.key.clone(), i.order);
        let min = loop {
            for s in self.sources.iter_mut().filter(|s| !s.listing) {
                while s.buf.is_empty() && !s.done {
                    s.fetch(gw).await?;
                }
            }
            let min = self
                .sources
                .iter()
                .filter_map(|s| s.buf.front().map(position))
                .min();
            // The listing index skips the entries of versions that have `V` records (most, in
            // a versioned bucket): read it only as far as the merge has come, not to its end.
            let mut fetched = false;
            for s in &mut self.sources {
                if !s.listing || !s.buf.is_empty() || s.done {
                    continue;
                }
                let covered = match (&min, s.passed_key()) {
                    (Some((key, _)), Some(passed)) => key.as_slice() <= passed,
                    _ => false,
                };
                if !covered {
                    s.fetch(gw).await?;
                    fetched = true;
                }
            }
            if !fetched {
                break min;
            }
        };
        let Some(min) = min else {
            assert!(
                self.sources.iter().all(|s| !s.pending()),
                "every source was read"
            );
            return Ok(None);
        };
        let mut found = None;
        for s in &mut self.sources {
            if s.buf.front().is_some_and(|i| position(i) == min) {
                let item = s.buf.pop_front();
                found = found.or(item);
            }
        }
        Ok(found)
    }

    /// Skips every key under the common prefix `cp` (0xFF never occurs in UTF-8).
    fn skip_prefix(&mut self, bucket: &str, cp: &[u8]) {
        for s in &mut self.sources {
            let mut position = if s.listing {
                let mut p = BytesMut::from(&listing_key(bucket, "")[..]);
                p.put_slice(cp);
                p
            } else {
                versions_prefix(bucket, cp)
            };
            position.put_u8(0xff);
            s.skip_to(&position.freeze());
        }
    }
}
