//! Bucket records (the incarnation id, versioning, flags) and their codec.

use super::{
    check, get_str, put_str, scope_of, Buf, BufMut, Bytes, BytesMut, Malformed, BUCKET_INCARNATION,
    FLAG_DELETING, FLAG_OBJECT_LOCK, FLAG_TAGS_CHANGED, VERSION, VERSION_VERSIONING,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    pub owner: String,
    pub created_ms: u64,
    pub versioning: Versioning,
    /// The incarnation: minted at CreateBucket, `BucketId::LEGACY` for records written before
    /// incarnations.
    pub id: BucketId,
    /// A DeleteBucket is under way (it clears this again if the bucket is not empty).
    pub deleting: bool,
    /// Some object of this incarnation has had its tags set or removed after it was written
    /// (PutObjectTagging, DeleteObjectTagging; set before the first such change and never
    /// cleared). Until then every object's tags are its head's, and a GET counts them
    /// (x-amz-tagging-count) without reading the `T` record.
    pub tags_changed: bool,
    /// Object Lock is enabled (at CreateBucket, or by PutObjectLockConfiguration on a bucket
    /// with versioning Enabled). Never cleared, as in S3: versioning then stays Enabled.
    pub object_lock: bool,
}

/// A bucket incarnation's id: the creation HLC (little-endian) ‖ 8 random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketId(pub [u8; 16]);

impl BucketId {
    /// The id of every bucket created before incarnations: its scope is its bare name.
    pub const LEGACY: BucketId = BucketId([0; 16]);

    pub fn new(hlc: u64, random: [u8; 8]) -> BucketId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&hlc.to_le_bytes());
        id[8..].copy_from_slice(&random);
        assert_ne!(BucketId(id), BucketId::LEGACY, "an HLC is never zero");
        BucketId(id)
    }
}

impl BucketRecord {
    /// A new incarnation of a bucket, live and unversioned.
    pub fn new(owner: String, created_ms: u64, id: BucketId) -> BucketRecord {
        BucketRecord {
            owner,
            created_ms,
            versioning: Versioning::Unversioned,
            id,
            deleting: false,
            tags_changed: false,
            object_lock: false,
        }
    }

    /// The scope every record of this incarnation's objects is keyed by (module docs).
    pub fn scope(&self, name: &str) -> String {
        scope_of(name, self.id)
    }
}

/// A bucket's versioning state. A bucket that was never versioned is `Unversioned`; once
/// enabled it is only ever `Enabled` or `Suspended` (as in S3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Unversioned,
    Enabled,
    Suspended,
}

impl Versioning {
    /// Persisted codes; never reuse one.
    fn code(self) -> u8 {
        match self {
            Versioning::Unversioned => 0,
            Versioning::Enabled => 1,
            Versioning::Suspended => 2,
        }
    }

    fn of(code: u8) -> Option<Versioning> {
        match code {
            0 => Some(Versioning::Unversioned),
            1 => Some(Versioning::Enabled),
            2 => Some(Versioning::Suspended),
            _ => None,
        }
    }

    /// Whether writes keep versions (`V` records): every state but `Unversioned`.
    pub fn keeps_versions(self) -> bool {
        self != Versioning::Unversioned
    }

    /// Whether a version written now has a real id (Enabled) or `null` (the other states).
    pub fn writes_null(self) -> bool {
        self != Versioning::Enabled
    }
}

impl BucketRecord {
    /// format u8 (3) ‖ created ms u64 ‖ owner ‖ versioning state u8 ‖ incarnation id 16 ‖
    /// flags u8 (format 1: the first two fields, unversioned; format 2: up to the versioning
    /// state; both with the legacy id, not deleting).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(BUCKET_INCARNATION);
        b.put_u64_le(self.created_ms);
        put_str(&mut b, &self.owner);
        b.put_u8(self.versioning.code());
        b.put_slice(&self.id.0);
        let mut flags = 0;
        if self.deleting {
            flags |= FLAG_DELETING;
        }
        if self.tags_changed {
            flags |= FLAG_TAGS_CHANGED;
        }
        if self.object_lock {
            flags |= FLAG_OBJECT_LOCK;
        }
        b.put_u8(flags);
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<BucketRecord, Malformed> {
        check(&b, 9, "bucket")?;
        let format = b.get_u8();
        if ![VERSION, VERSION_VERSIONING, BUCKET_INCARNATION].contains(&format) {
            return Err(Malformed("bucket"));
        }
        let created_ms = b.get_u64_le();
        let owner = get_str(&mut b, "bucket")?;
        let versioning = if format == VERSION {
            Versioning::Unversioned
        } else {
            check(&b, 1, "bucket")?;
            Versioning::of(b.get_u8()).ok_or(Malformed("bucket"))?
        };
        let (id, flags) = if format == BUCKET_INCARNATION {
            check(&b, 17, "bucket")?;
            let mut id = [0u8; 16];
            b.copy_to_slice(&mut id);
            let flags = b.get_u8();
            if flags & !(FLAG_DELETING | FLAG_TAGS_CHANGED | FLAG_OBJECT_LOCK) != 0 {
                return Err(Malformed("bucket"));
            }
            (BucketId(id), flags)
        } else {
            (BucketId::LEGACY, 0)
        };
        if b.has_remaining() {
            return Err(Malformed("bucket"));
        }
        Ok(BucketRecord {
            owner,
            created_ms,
            versioning,
            id,
            deleting: flags & FLAG_DELETING != 0,
            tags_changed: flags & FLAG_TAGS_CHANGED != 0,
            object_lock: flags & FLAG_OBJECT_LOCK != 0,
        })
    }
}
