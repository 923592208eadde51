//! Object tagging: Put/Get/DeleteObjectTagging and `x-amz-tagging` on PUT; bucket tagging:
//! Put/Get/DeleteBucketTagging, the set kept as the bucket configuration record `tagging`
//! (`bucket_config`), at most [`BUCKET_TAGS_MAX`] tags.
//!
//! A version's tags are those it was written with (in its head), until a tagging request
//! changes them:
//! - for the current version, the `T` record next to the head, bound to the version it was set
//!   on: a new version of the key starts with its own tags (as in S3) without the head being
//!   rewritten, so a tagging request can never race a PUT into reverting the object;
//! - for a noncurrent version, its version record, rewritten by compare-and-swap (such a
//!   version changes only by tiering moves, which the swap retries against). Before the `T`
//!   record is bound to a new version, the tags it held are written into the version record
//!   of the version it leaves (`retag`).
//!
//! Concurrent tagging requests on two versions of one key are last-writer-wins on the `T`
//! record, as tagging requests on one version are.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use s3s::dto::{
    DeleteBucketTaggingInput, DeleteBucketTaggingOutput, DeleteObjectTaggingInput,
    DeleteObjectTaggingOutput, GetBucketTaggingInput, GetBucketTaggingOutput,
    GetObjectTaggingInput, GetObjectTaggingOutput, PutBucketTaggingInput, PutBucketTaggingOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput, Tag,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::limits::{BUCKET_TAGS_MAX, TAGS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX};
use crate::records::{BucketRecord, ObjectHead, VersionRecord};
use crate::s3::{s3_err, user_of, Gateway};
use crate::tiering::Swap;

/// A tag set, in the order given.
pub type Tags = Vec<(String, String)>;

/// Attempts at marking a bucket `tags_changed` against concurrent bucket writes.
const MARK_TRIES: usize = 4;

/// The bucket configuration record holding a bucket's tags.
const BUCKET_CONFIG: &str = "tagging";

/// The tag set of a tagging request body, as pairs.
fn pairs(tag_set: Vec<Tag>) -> Tags {
    tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

/// The tag set of a tagging response.
fn tag_set(tags: Tags) -> Vec<Tag> {
    tags.into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// `T` ‖ bucket ‖ 0 ‖ key.
pub fn tags_key(bucket: &str, key: &str) -> Bytes {
    let mut k = BytesMut::new();
    k.put_u8(b'T');
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    k.put_slice(key.as_bytes());
    k.freeze()
}

/// Checks an object's tag set as S3 does (`validate_set`, at most 10 tags).
pub fn validate(tags: &[(String, String)]) -> S3Result<()> {
    validate_set(tags, TAGS_MAX, "object")
}

/// Checks a tag set of `what` (an object or a bucket) as S3 does: at most `max` tags, unique
/// keys, 1–128 character keys not in the reserved `aws:` namespace, values of at most 256
/// characters.
fn validate_set(tags: &[(String, String)], max: usize, what: &str) -> S3Result<()> {
    if tags.len() > max {
        return Err(s3_error!(InvalidTag, "at most {max} tags per {what}"));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > TAG_KEY_CHARS_MAX {
            return Err(s3_error!(InvalidTag, "tag keys are 1 to 128 characters"));
        }
        if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(s3_error!(
                InvalidTag,
                "Your TagKey cannot be prefixed with aws:"
            ));
        }
        if v.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(s3_error!(
                InvalidTag,
                "tag values are at most 256 characters"
            ));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(s3_error!(InvalidTag, "tag keys must be unique"));
        }
    }
    Ok(())
}

/// Parses an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded).
pub fn parse_header(header: &str) -> S3Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or_else(|| s3_error!(InvalidTag, "bad URL encoding"))?;
        let v = percent_decode(v).ok_or_else(|| s3_error!(InvalidTag, "bad URL encoding"))?;
        tags.push((k, v));
    }
    validate(&tags)?;
    Ok(tags)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An object's `T` record: format u8 (1) ‖ version id ‖ the tags (`put_tags`).
pub fn encode(version_id: &[u8; 12], tags: &[(String, String)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_slice(version_id);
    put_tags(&mut b, tags);
    b.freeze()
}

pub fn decode(mut b: Bytes) -> Option<([u8; 12], Tags)> {
    if b.remaining() < 13 || b.get_u8() != 1 {
        return None;
    }
    let mut version_id = [0u8; 12];
    b.copy_to_slice(&mut version_id);
    let tags = get_tags(&mut b)?;
    Some((version_id, tags))
}

/// A bucket's tag record: format u8 (1) ‖ the tags (`put_tags`).
pub fn encode_bucket(tags: &[(String, String)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(1);
    put_tags(&mut b, tags);
    b.freeze()
}

pub fn decode_bucket(mut b: Bytes) -> Option<Tags> {
    if b.remaining() < 1 || b.get_u8() != 1 {
        return None;
    }
    get_tags(&mut b)
}

/// count u16 ‖ per tag: key, value (each u16 length ‖ UTF-8).
fn put_tags(b: &mut BytesMut, tags: &[(String, String)]) {
    b.put_u16_le(tags.len() as u16);
    for (k, v) in tags {
        for s in [k, v] {
            b.put_u16_le(s.len() as u16);
            b.put_slice(s.as_bytes());
        }
    }
}

/// The tags `put_tags` wrote, which must end the record.
fn get_tags(b: &mut Bytes) -> Option<Tags> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_u16_le();
    let mut tags = Vec::new();
    for _ in 0..n {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            if b.remaining() < 2 {
                return None;
            }
            let len = usize::from(b.get_u16_le());
            if b.remaining() < len {
                return None;
            }
            *s = String::from_utf8(b.split_to(len).to_vec()).ok()?;
        }
        let [k, v] = pair;
        tags.push((k, v));
    }
    (!b.has_remaining()).then_some(tags)
}

impl Gateway {
    /// Sets the tags of the object version `version_id` (after a PUT or by PutObjectTagging).
    pub(crate) async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &[u8; 12],
        tags: &[(String, String)],
    ) -> S3Result<()> {
        let cores = self.store.object_cores(bucket, key);
        let hlc = self.backend.hlc();
        let value = encode(version_id, tags);
        self.backend
            .meta_put(&cores, &tags_key(bucket, key), &value, hlc)
            .await
            .map_err(s3_err)
    }

    /// The tags of one version of an object: the `T` record's when PutObjectTagging or
    /// DeleteObjectTagging named this version since it was written, else those it was written
    /// with (its head's).
    pub(crate) async fn tags_of(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
    ) -> S3Result<Vec<(String, String)>> {
        let cores = self.store.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &tags_key(bucket, key))
            .await
            .map_err(s3_err)?;
        Ok(entry
            .and_then(|e| decode(e.value))
            .filter(|(v, _)| *v == head.version_id)
            .map_or_else(|| head.tags.clone(), |(_, t)| t))
    }

    /// Marks the bucket's incarnation as having object tags changed after upload
    /// (`BucketRecord::tags_changed`), before the first such change: from then on a GET reads
    /// the `T` record to count tags. A lost race with another bucket write is retried; one
    /// with a deletion answers as the deletion requires.
    async fn mark_tags_changed(&self, bucket: &str, user: &str) -> S3Result<()> {
        for _ in 0..MARK_TRIES {
            let owned = self.owned_bucket(bucket, user).await?;
            if owned.record.tags_changed {
                return Ok(());
            }
            if owned.record.deleting {
                return Err(s3_error!(OperationAborted, "the bucket is being deleted"));
            }
            let marked = BucketRecord {
                tags_changed: true,
                ..owned.record
            };
            match self.store.swap_bucket(bucket, &marked, owned.hlc).await {
                Err(objects::Error::BucketConflict) => {}
                done => return done.map(|_| ()).map_err(s3_err),
            }
        }
        Err(s3_error!(
            OperationAborted,
            "a conflicting operation on this bucket is in progress"
        ))
    }

    /// The object version a tagging request is about: the current one, or `version_id`'s;
    /// with the bucket's scope and whether it is the key's current version.
    async fn tagged_version(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(ObjectHead, String, bool)> {
        let (head, _, scope) = self.object_for_read(user, bucket, key, version_id).await?;
        let current = match version_id {
            None => true,
            Some(_) => self
                .store
                .head(&scope, key)
                .await
                .map_err(s3_err)?
                .is_some_and(|c| c.version_id == head.version_id),
        };
        Ok((head, scope, current))
    }

    /// Sets the tags of version `head` of `key`. The `T` record holds the tags of one version:
    /// the current one's, or a noncurrent one's that were set while it was current. Before it
    /// is bound to another version, the tags it holds are written into the version record of
    /// the one it leaves (`fold_tags`), so no version loses tags set on it. A noncurrent
    /// version the record is not bound to has its tags written into its version record.
    async fn retag(
        &self,
        scope: &str,
        key: &str,
        head: &ObjectHead,
        current: bool,
        tags: &[(String, String)],
    ) -> S3Result<()> {
        let cores = self.store.object_cores(scope, key);
        let bound = self
            .backend
            .meta_get(&cores, &tags_key(scope, key))
            .await
            .map_err(s3_err)?
            .and_then(|e| decode(e.value));
        match bound {
            Some((v, _)) if v == head.version_id => {}
            Some((left, left_tags)) if current => {
                self.fold_tags(scope, key, &left, left_tags).await?;
            }
            _ if current => {}
            _ => {
                return self
                    .fold_tags(scope, key, &head.version_id, tags.to_vec())
                    .await
            }
        }
        self.set_tags(scope, key, &head.version_id, tags).await
    }

    /// Writes `tags` into the version record of version `id` of `key` (compare-and-swap,
    /// retried against concurrent moves of the version; none: the version is gone).
    async fn fold_tags(&self, scope: &str, key: &str, id: &[u8; 12], tags: Tags) -> S3Result<()> {
        for _ in 0..MARK_TRIES {
            let Some(VersionRecord::Object(old)) = self
                .store
                .version_record(scope, key, id)
                .await
                .map_err(s3_err)?
            else {
                return Ok(());
            };
            if old.tags == tags {
                return Ok(());
            }
            let new = ObjectHead {
                tags: tags.clone(),
                ..old.clone()
            };
            if self.swap_version(scope, key, &old, &new).await? != Swap::Lost {
                return Ok(());
            }
        }
        Err(s3_error!(
            OperationAborted,
            "the object version changed while its tags were set"
        ))
    }

    pub(crate) async fn tagging_put(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let tags = pairs(input.tagging.tag_set);
        validate(&tags)?;
        self.mark_tags_changed(&input.bucket, &user).await?;
        let (head, scope, current) = self
            .tagged_version(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        self.retag(&scope, &input.key, &head, current, &tags)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    pub(crate) async fn tagging_get(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let (head, scope, _) = self
            .tagged_version(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        let tags = self.tags_of(&scope, &input.key, &head).await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(tags),
            version_id: input.version_id,
        }))
    }

    pub(crate) async fn tagging_delete(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        self.mark_tags_changed(&input.bucket, &user).await?;
        let (head, scope, current) = self
            .tagged_version(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        self.retag(&scope, &input.key, &head, current, &[]).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }

    /// PutBucketTagging: the set replaces the bucket's; an empty set removes it (as S3 does:
    /// GetBucketTagging then answers NoSuchTagSet).
    pub(crate) async fn bucket_tagging_put(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        let tags = pairs(input.tagging.tag_set);
        validate_set(&tags, BUCKET_TAGS_MAX, "bucket")?;
        if tags.is_empty() {
            self.config_delete(&scope, BUCKET_CONFIG).await?;
        } else {
            self.config_put(&scope, BUCKET_CONFIG, &encode_bucket(&tags))
                .await?;
        }
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(crate) async fn bucket_tagging_get(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let stored = self
            .config_read(&scope, BUCKET_CONFIG)
            .await?
            .ok_or_else(|| s3_error!(NoSuchTagSet))?;
        let tags = decode_bucket(stored)
            .ok_or_else(|| s3_error!(InternalError, "the stored bucket tags do not decode"))?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(tags),
        }))
    }

    pub(crate) async fn bucket_tagging_delete(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        self.config_delete(&scope, BUCKET_CONFIG).await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_sets_round_trip_and_validate() {
        let tags = vec![
            ("a b".to_string(), "ü".to_string()),
            ("k".into(), String::new()),
        ];
        assert_eq!(
            decode(encode(&[7; 12], &tags)),
            Some(([7; 12], tags.clone()))
        );
        assert_eq!(parse_header("a+b=%C3%BC&k=").unwrap(), tags);
        assert!(parse_header("a=1&a=2").is_err());
        assert!(parse_header(
            &(0..11)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
        )
        .is_err());
        assert!(validate(&[("k".repeat(129), String::new())]).is_err());
        assert!(parse_header("k=%ZZ").is_err());
        assert!(parse_header("AWS:x=1").is_err());
        assert!(parse_header("aw=1").is_ok());
    }

    #[test]
    fn bucket_tag_records_round_trip_and_allow_fifty() {
        let tags: Tags = (0..BUCKET_TAGS_MAX)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        assert!(validate_set(&tags, BUCKET_TAGS_MAX, "bucket").is_ok());
        assert!(validate(&tags).is_err());
        assert_eq!(decode_bucket(encode_bucket(&tags)), Some(tags.clone()));
        let mut trailing = BytesMut::from(&encode_bucket(&tags)[..]);
        trailing.put_u8(0);
        assert_eq!(decode_bucket(trailing.freeze()), None);
    }
}
