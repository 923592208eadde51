//! The model: what every bucket name, key and upload holds, as S3 defines it, and the answer
//! each operation must get from that state. Writes of one step touch disjoint keys, uploads and
//! buckets (`workload::conflicts`), so their order within a step does not matter; a read that
//! overlapped a write of its key may see the key as before the step or as after it, key by key.

use std::collections::BTreeMap;

/// The two users (their access keys).
pub const USERS: [&str; 2] = ["alice", "bob"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Off,
    Enabled,
    Suspended,
}

/// One version of a key, as ListObjectVersions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ver {
    /// "null" for the null version (unversioned or suspended writes).
    pub vid: String,
    /// `None`: a delete marker.
    pub etag: Option<String>,
    /// The write id the body was made from (`body_of`).
    pub body: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    /// Part number → (ETag, body id).
    pub parts: BTreeMap<i32, (String, u64)>,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub owner: usize,
    /// Which creation of this name (a new incarnation each time).
    pub incarnation: u64,
    pub versioning: Versioning,
    /// Key → versions, oldest first. A key with no version is absent.
    pub keys: BTreeMap<String, Vec<Ver>>,
    /// What is unknown after an ambiguous write: keys (`k`), uploads (`u/<id>`), and the
    /// uploads of a key (`uk/<key>`). Without faults the next GET adopts what it sees of a key.
    pub unknown: std::collections::BTreeSet<String>,
    pub uploads: BTreeMap<String, Upload>,
}

/// An upload that is gone: aborted, completed, or of a deleted bucket.
#[derive(Debug, Clone)]
pub struct DeadUpload {
    pub bucket: String,
    pub key: String,
    pub id: String,
    /// Completed in this incarnation of its bucket: (incarnation, the parts' ETags, the
    /// version id and ETag Complete answered). A retry there answers the same success.
    pub completed: Option<Completed>,
}

/// An upload's completion: (bucket incarnation, the parts' ETags, version id, ETag).
pub type Completed = (u64, Vec<(i32, String)>, Option<String>, String);

/// One entry of ListObjectVersions: (key, version id, ETag or None for a marker, latest).
pub type VersionEntry = (String, String, Option<String>, bool);

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub buckets: BTreeMap<String, Bucket>,
    /// Faults are on: an operation that fails may or may not have happened, and what it
    /// touched stays unknown (its write may land later: a replica that took it repairs the
    /// others when a read finds it).
    pub faults: bool,
    /// Names whose bucket's existence, owner or versioning is unknown (an ambiguous
    /// CreateBucket, DeleteBucket or PutBucketVersioning): nothing on them is checked again.
    pub tainted: std::collections::BTreeSet<String>,
    pub dead_uploads: Vec<DeadUpload>,
    pub incarnations: u64,
}

/// An operation's answer, reduced to what the model decides (no dates, no request ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Res {
    Done,
    /// PutObject, CompleteMultipartUpload: (version id, ETag).
    Written(Option<String>, String),
    /// DeleteObject: (version id, delete marker).
    Deleted(Option<String>, bool),
    /// GetObject: body id, ETag, version id; HeadObject: the same with the body's length.
    Object(u64, String, Option<String>),
    /// ListObjectsV2 (all pages): (key, ETag).
    Keys(Vec<(String, String)>),
    /// ListObjectsV2 under a prefix (all pages): (key, ETag), common prefixes.
    Listed(Vec<(String, String)>, Vec<String>),
    /// ListObjectVersions.
    Versions(Vec<VersionEntry>),
    /// ListMultipartUploads: (key, upload id).
    Uploads(Vec<(String, String)>),
    /// ListParts: (part number, ETag).
    Parts(Vec<(i32, String)>),
    /// DeleteObjects: per key (key, version id, marker) deleted, (key, code) failed.
    DeletedMany(Vec<(String, Option<String>, bool)>, Vec<(String, String)>),
    /// GetBucketVersioning's status.
    Status(Option<String>),
    UploadId(String),
    ETag(String),
}

/// Success, or the S3 error code.
pub type Outcome = Result<Res, String>;

pub fn err(code: &str) -> Outcome {
    Err(code.to_owned())
}

/// An object body made from write id `id` (so a read tells which write it saw).
pub fn body_of(id: u64) -> bytes::Bytes {
    let mut v = id.to_le_bytes().to_vec();
    v.extend((0..(id % 40) as u8).map(|i| i.wrapping_mul(7) ^ id as u8));
    bytes::Bytes::from(v)
}

pub fn id_of(body: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(body.get(..8)?.try_into().ok()?))
}

impl Bucket {
    /// The key's current version, if it is an object (not absent, not a delete marker).
    pub fn current(&self, key: &str) -> Option<&Ver> {
        self.keys
            .get(key)
            .and_then(|v| v.last())
            .filter(|v| v.etag.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.values().all(Vec::is_empty) && self.uploads.is_empty() && self.unknown.is_empty()
    }

    /// A new version of `key` written now: a versioned one is added, a null one replaces the
    /// null version (in a bucket that never kept versions, the only one).
    pub fn push(&mut self, key: &str, ver: Ver) {
        let list = self.keys.entry(key.to_owned()).or_default();
        if ver.vid == "null" {
            list.retain(|v| v.vid != "null");
        }
        list.push(ver);
    }

    pub fn remove_version(&mut self, key: &str, vid: &str) -> Option<Ver> {
        let list = self.keys.get_mut(key)?;
        let at = list.iter().position(|v| v.vid == vid)?;
        let removed = list.remove(at);
        if list.is_empty() {
            self.keys.remove(key);
        }
        Some(removed)
    }
}

impl Model {
    /// The bucket `user` may act on, or the error every object operation on it gets.
    pub fn owned(&self, user: usize, bucket: &str) -> Result<&Bucket, String> {
        match self.buckets.get(bucket) {
            None => Err("NoSuchBucket".into()),
            Some(b) if b.owner != user => Err("AccessDenied".into()),
            Some(b) => Ok(b),
        }
    }

    pub fn owned_mut(&mut self, user: usize, bucket: &str) -> Result<&mut Bucket, String> {
        self.owned(user, bucket)?;
        Ok(self.buckets.get_mut(bucket).expect("checked"))
    }

    /// What a GET (or HEAD) of `key` answers.
    pub fn get(&self, user: usize, bucket: &str, key: &str) -> Outcome {
        let b = self.owned(user, bucket)?;
        match b.current(key) {
            None => err("NoSuchKey"),
            Some(v) => Ok(Res::Object(
                v.body,
                v.etag.clone().unwrap_or_default(),
                shown(&v.vid, b),
            )),
        }
    }

    /// Every key's entries of ListObjectsV2, by key.
    pub fn list_keys(
        &self,
        user: usize,
        bucket: &str,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
        let b = self.owned(user, bucket)?;
        Ok(b.keys
            .keys()
            .map(|k| {
                let entries = b
                    .current(k)
                    .map(|v| vec![(k.clone(), v.etag.clone().unwrap_or_default())])
                    .unwrap_or_default();
                (k.clone(), entries)
            })
            .collect())
    }

    /// Every key's entries of ListObjectVersions (newest first), by key.
    pub fn list_versions(
        &self,
        user: usize,
        bucket: &str,
    ) -> Result<BTreeMap<String, Vec<VersionEntry>>, String> {
        let b = self.owned(user, bucket)?;
        Ok(b.keys
            .iter()
            .map(|(k, list)| {
                let n = list.len();
                let entries = list
                    .iter()
                    .rev()
                    .enumerate()
                    .map(|(i, v)| (k.clone(), v.vid.clone(), v.etag.clone(), i == 0))
                    .collect::<Vec<_>>();
                debug_assert!(entries.len() == n);
                (k.clone(), entries)
            })
            .collect())
    }

    /// Every key's uploads (ListMultipartUploads), by key.
    pub fn list_uploads(
        &self,
        user: usize,
        bucket: &str,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
        let b = self.owned(user, bucket)?;
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (id, u) in &b.uploads {
            out.entry(u.key.clone())
                .or_default()
                .push((u.key.clone(), id.clone()));
        }
        Ok(out)
    }
}

/// The version id a GET shows for version `vid`: none in a bucket that never kept versions.
pub fn shown(vid: &str, b: &Bucket) -> Option<String> {
    (vid != "null" || b.versioning != Versioning::Off).then(|| vid.to_owned())
}
