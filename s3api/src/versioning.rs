//! Object versioning as S3 requests spell it: the bucket's state (Put/GetBucketVersioning),
//! version ids as requests name them (`parse_version_id`), the errors of reads of a delete
//! marker or a missing version, and ListObjectVersions' request and DTOs. The versions
//! themselves (commits, version records, the `null` version, delete markers, deletes of one
//! version under Object Lock's [`Guard`]) are the object service's, in `objects::versions`,
//! whose header says how they are stored; the listing's walk is `objects::version_list`'s.

use s3s::dto::{
    BucketVersioningStatus, CommonPrefix, DeleteMarkerEntry, GetBucketVersioningInput,
    GetBucketVersioningOutput, ListObjectVersionsInput, ListObjectVersionsOutput, ObjectVersion,
    Owner, PutBucketVersioningInput, PutBucketVersioningOutput,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::records::{DeleteMarker, VersionRecord, Versioning};
use crate::s3::{encoder, etag, max_keys, owner_dto, s3_err, timestamp, user_of, Gateway};

use objects::version_list::{ListedVersion, VersionQuery};
pub(crate) use objects::versions::{head_version_id, shown_version_id, Guard, VersionRef};

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

impl Gateway {
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
        match self.store.key_versions(bucket, key, 1).await {
            Ok(v) => {
                if let Some((_, VersionRecord::DeleteMarker(m))) = v.first() {
                    e.set_headers(marker_headers(m));
                }
                e
            }
            Err(err) => s3_err(err),
        }
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
            self.store
                .swap_bucket(&input.bucket, &record, owned.hlc)
                .await
                .map_err(s3_err)?;
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
        let page = self.store.versions_page(&query).await.map_err(s3_err)?;
        let own = self.shows_object_owners(&record.scope).await?;
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
                ListedVersion::Object {
                    version_id,
                    size,
                    etag: tag,
                    modified_ms,
                    class,
                    owner: version_owner,
                } => versions.push(ObjectVersion {
                    key,
                    version_id: Some(version_id),
                    is_latest: Some(item.is_latest),
                    size: Some(size as i64),
                    e_tag: Some(etag(&tag)),
                    last_modified: Some(timestamp(modified_ms)),
                    owner: Some(
                        version_owner
                            .as_deref()
                            .filter(|_| own)
                            .map_or_else(|| owner.clone(), owner_dto),
                    ),
                    storage_class: Some(class.as_str().to_owned().into()),
                    ..Default::default()
                }),
                ListedVersion::Marker(m) => markers.push(DeleteMarkerEntry {
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
}
