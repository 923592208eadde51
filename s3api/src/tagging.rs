//! Object tagging: Put/Get/DeleteObjectTagging and `x-amz-tagging` on PUT; bucket tagging:
//! Put/Get/DeleteBucketTagging, at most [`BUCKET_TAGS_MAX`] tags. Here: the tag sets of
//! requests parsed and validated as S3 does (InvalidTag), and the DTOs. Where tags are kept
//! (the `T` record, version records, the bucket's tag record) is the object service's
//! (`objects::tagging`); folding a version's tags into its version record swaps it as tiering
//! moves do (`swap_version`).

use s3s::dto::{
    DeleteBucketTaggingInput, DeleteBucketTaggingOutput, DeleteObjectTaggingInput,
    DeleteObjectTaggingOutput, GetBucketTaggingInput, GetBucketTaggingOutput,
    GetObjectTaggingInput, GetObjectTaggingOutput, PutBucketTaggingInput, PutBucketTaggingOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput, Tag,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::limits::{BUCKET_TAGS_MAX, TAGS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX};
use crate::records::ObjectHead;
use crate::s3::{s3_err, user_of, Gateway};

use objects::tagging::Tags;

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

impl Gateway {
    /// The tags of one version of an object (`Store::tags_of`).
    pub(crate) async fn tags_of(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
    ) -> S3Result<Vec<(String, String)>> {
        self.store.tags_of(bucket, key, head).await.map_err(s3_err)
    }

    /// Marks the bucket as having object tags changed after upload
    /// (`Store::mark_tags_changed`), the caller's ownership checked first.
    async fn mark_tags_changed(&self, bucket: &str, user: &str) -> S3Result<()> {
        let owned = self.owned_bucket(bucket, user).await?;
        self.store
            .mark_tags_changed(bucket, (owned.record, owned.hlc))
            .await
            .map_err(s3_err)
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
                .is_current(&scope, key, &head)
                .await
                .map_err(s3_err)?,
        };
        Ok((head, scope, current))
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
        self.store
            .retag(&scope, &input.key, &head, current, &tags)
            .await
            .map_err(s3_err)?;
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
        self.store
            .retag(&scope, &input.key, &head, current, &[])
            .await
            .map_err(s3_err)?;
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
        self.store
            .set_bucket_tags(&scope, &tags)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(crate) async fn bucket_tagging_get(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let tags = self
            .store
            .bucket_tags(&scope)
            .await
            .map_err(s3_err)?
            .ok_or_else(|| s3_error!(NoSuchTagSet))?;
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
        self.store
            .set_bucket_tags(&scope, &[])
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_sets_parse_and_validate() {
        let tags = vec![
            ("a b".to_string(), "ü".to_string()),
            ("k".into(), String::new()),
        ];
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
    fn buckets_allow_fifty_tags() {
        let tags: Tags = (0..BUCKET_TAGS_MAX)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        assert!(validate_set(&tags, BUCKET_TAGS_MAX, "bucket").is_ok());
        assert!(validate(&tags).is_err());
    }
}
