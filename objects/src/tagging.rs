//! Object and bucket tags in the store: the `T` record and its codec, a version's tags, the
//! bucket's `tags_changed` mark, and the bucket's tag set (the bucket configuration record
//! `tagging`, `configs`). The S3 layer (the gateway's `tagging.rs`) parses and validates tag
//! sets (InvalidTag and its messages) and spells the answers.
//!
//! A version's tags are those it was written with (in its head), until a tagging request
//! changes them:
//! - for the current version, the `T` record next to the head, bound to the version it was set
//!   on: a new version of the key starts with its own tags (as in S3) without the head being
//!   rewritten, so a tagging request can never race a PUT into reverting the object;
//! - for a noncurrent version, its version record, rewritten by compare-and-swap (such a
//!   version changes only by tiering moves, which the swap retries against). Before the `T`
//!   record is bound to a new version, the tags it held are written into the version record
//!   of the version it leaves (`Store::rebinding`).
//!
//! Concurrent tagging requests on two versions of one key are last-writer-wins on the `T`
//! record, as tagging requests on one version are.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::records::{BucketRecord, ObjectHead, VersionRecord};
use crate::store::Store;
use crate::tiering::Swap;

/// A tag set, in the order given.
pub type Tags = Vec<(String, String)>;

/// Attempts at marking a bucket `tags_changed` against concurrent bucket writes.
const MARK_TRIES: usize = 4;

/// The bucket configuration record holding a bucket's tags.
const BUCKET_CONFIG: &str = "tagging";

/// `T` ‖ bucket ‖ 0 ‖ key.
pub fn tags_key(bucket: &str, key: &str) -> Bytes {
    let mut k = BytesMut::new();
    k.put_u8(b'T');
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    k.put_slice(key.as_bytes());
    k.freeze()
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

/// Compare-and-swaps `fold_tags` makes against concurrent moves of the version.
const FOLD_TRIES: usize = 4;

/// What must happen before the `T` record is bound to a version (`Store::rebinding`).
#[derive(Debug, PartialEq, Eq)]
enum Rebinding {
    /// Nothing: bind it.
    Bind,
    /// Write these tags into the version record of the version the record leaves, then bind.
    FoldLeft([u8; 12], Tags),
    /// The version is noncurrent and the record is not bound to it: its tags go into its
    /// version record, the record is left alone.
    FoldOnly,
}

impl Store {
    /// Sets the tags of the object version `version_id` (binds the `T` record to it).
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &[u8; 12],
        tags: &[(String, String)],
    ) -> Result<()> {
        let cores = self.object_cores(bucket, key);
        let hlc = self.backend.hlc();
        let value = encode(version_id, tags);
        self.backend
            .meta_put(&cores, &tags_key(bucket, key), &value, hlc)
            .await?;
        Ok(())
    }

    /// The version of the `T` record of `key` and the tags it holds (`None`: none, or one
    /// that does not decode).
    async fn bound_tags(&self, bucket: &str, key: &str) -> Result<Option<([u8; 12], Tags)>> {
        let cores = self.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &tags_key(bucket, key))
            .await?;
        Ok(entry.and_then(|e| decode(e.value)))
    }

    /// The tags of one version of an object: the `T` record's when PutObjectTagging or
    /// DeleteObjectTagging named this version since it was written, else those it was written
    /// with (its head's).
    pub async fn tags_of(&self, bucket: &str, key: &str, head: &ObjectHead) -> Result<Tags> {
        Ok(self
            .bound_tags(bucket, key)
            .await?
            .filter(|(v, _)| *v == head.version_id)
            .map_or_else(|| head.tags.clone(), |(_, t)| t))
    }

    /// Whether `head` is the current version of `key`.
    pub async fn is_current(&self, scope: &str, key: &str, head: &ObjectHead) -> Result<bool> {
        Ok(self
            .head(scope, key)
            .await?
            .is_some_and(|c| c.version_id == head.version_id))
    }

    /// Marks the bucket `name`'s incarnation `record` (read at HLC `hlc`) as having object tags
    /// changed after upload (`BucketRecord::tags_changed`), before the first such change: from
    /// then on a GET reads the `T` record to count tags. A lost race with another bucket write
    /// is retried on the record read again; one with a deletion answers as the deletion
    /// requires.
    pub async fn mark_tags_changed(
        &self,
        name: &str,
        (mut record, mut hlc): (BucketRecord, u64),
    ) -> Result<()> {
        let scope = record.scope(name);
        for _ in 0..MARK_TRIES {
            if record.tags_changed {
                return Ok(());
            }
            if record.deleting {
                return Err(Error::BucketDeleting);
            }
            let marked = BucketRecord {
                tags_changed: true,
                ..record
            };
            match self.swap_bucket(name, &marked, hlc).await {
                Err(Error::BucketConflict) => {}
                done => return done.map(|_| ()),
            }
            (record, hlc) = match self.bucket_entry(name).await? {
                // The incarnation the request named is gone.
                Some((b, _)) if b.scope(name) != scope => return Err(Error::NoSuchBucket),
                Some(entry) => entry,
                None => return Err(Error::NoSuchBucket),
            };
        }
        Err(Error::BucketConflict)
    }

    /// What binding the `T` record of `key` to version `head` (`current`: the key's current
    /// one) needs first. The record holds the tags of one version: the current one's, or a
    /// noncurrent one's that were set while it was current. Before it is bound to another
    /// version, the tags it holds go into the version record of the one it leaves, so no
    /// version loses tags set on it. A noncurrent version the record is not bound to has its
    /// tags written into its version record.
    async fn rebinding(
        &self,
        scope: &str,
        key: &str,
        head: &ObjectHead,
        current: bool,
    ) -> Result<Rebinding> {
        Ok(match self.bound_tags(scope, key).await? {
            Some((v, _)) if v == head.version_id => Rebinding::Bind,
            Some((left, left_tags)) if current => Rebinding::FoldLeft(left, left_tags),
            _ if current => Rebinding::Bind,
            _ => Rebinding::FoldOnly,
        })
    }

    /// Sets the tags of version `head` of `key` (PutObjectTagging, DeleteObjectTagging with
    /// none), `current` when it is the key's current version: what `rebinding` says goes
    /// first, then the `T` record is bound to it (or, for a noncurrent version the record is
    /// not bound to, its version record takes the tags).
    pub async fn retag(
        &self,
        scope: &str,
        key: &str,
        head: &ObjectHead,
        current: bool,
        tags: &[(String, String)],
    ) -> Result<()> {
        match self.rebinding(scope, key, head, current).await? {
            Rebinding::Bind => {}
            Rebinding::FoldLeft(left, left_tags) => {
                self.fold_tags(scope, key, &left, left_tags).await?;
            }
            Rebinding::FoldOnly => {
                return self
                    .fold_tags(scope, key, &head.version_id, tags.to_vec())
                    .await;
            }
        }
        self.set_tags(scope, key, &head.version_id, tags).await
    }

    /// Writes `tags` into the version record of version `id` of `key` by compare-and-swap,
    /// made again (up to `FOLD_TRIES` times) when a data move of the version changed the
    /// record meanwhile; a version that is gone has nothing to tag.
    async fn fold_tags(&self, scope: &str, key: &str, id: &[u8; 12], tags: Tags) -> Result<()> {
        for _ in 0..FOLD_TRIES {
            let Some(VersionRecord::Object(old)) = self.version_record(scope, key, id).await?
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
        Err(Error::VersionChanged(
            "the object version changed while its tags were set",
        ))
    }

    /// The bucket's tag set (`None`: none set).
    pub async fn bucket_tags(&self, scope: &str) -> Result<Option<Tags>> {
        let Some(stored) = self.config_read(scope, BUCKET_CONFIG).await? else {
            return Ok(None);
        };
        decode_bucket(stored)
            .map(Some)
            .ok_or_else(|| Error::Damaged("the stored bucket tags do not decode".into()))
    }

    /// Replaces the bucket's tag set; an empty set removes it (as S3 does).
    pub async fn set_bucket_tags(&self, scope: &str, tags: &[(String, String)]) -> Result<()> {
        if tags.is_empty() {
            self.config_delete(scope, BUCKET_CONFIG).await
        } else {
            self.config_put(scope, BUCKET_CONFIG, &encode_bucket(tags))
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_records_round_trip() {
        let tags = vec![
            ("a b".to_string(), "ü".to_string()),
            ("k".into(), String::new()),
        ];
        assert_eq!(
            decode(encode(&[7; 12], &tags)),
            Some(([7; 12], tags.clone()))
        );
        let whole = encode(&[7; 12], &tags);
        for cut in 0..whole.len() {
            assert_eq!(decode(whole.slice(..cut)), None, "cut at {cut}");
        }
        let mut trailing = BytesMut::from(&whole[..]);
        trailing.put_u8(0);
        assert_eq!(decode(trailing.freeze()), None, "trailing bytes");
        let mut other = BytesMut::from(&whole[..]);
        other[0] = 2;
        assert_eq!(decode(other.freeze()), None, "another format");
    }

    #[test]
    fn bucket_tag_records_round_trip() {
        let tags: Tags = (0..50)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        assert_eq!(decode_bucket(encode_bucket(&tags)), Some(tags.clone()));
        let mut trailing = BytesMut::from(&encode_bucket(&tags)[..]);
        trailing.put_u8(0);
        assert_eq!(decode_bucket(trailing.freeze()), None);
    }
}
