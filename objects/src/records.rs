//! The gateway's metadata records and keys (see s3api/DESIGN.md): bucket records, object
//! heads and listing entries, each a versioned fixed-width little-endian encoding. Decoding
//! never panics on bad bytes: a record that does not parse is an internal error, reported.
//!
//! Versions: uploads and parts are written at 2 (version 1 plus checksum fields at the end,
//! see s3api/DESIGN.md); version 1 records, written before checksums were stored, still decode (as
//! records without a checksum). Object versioning added: bucket records at 2 (the versioning
//! state), listing entries at 2 (whether a version record backs the entry), object heads at 3
//! (the null-version and recorded flags), and the version records (`V` keys) at 1. Every older
//! version still decodes, pinned by the golden byte strings in the tests.
//!
//! Bucket incarnations (bucket records at 3): a bucket is known inside by the incarnation id
//! minted when it is created (`BucketId`: the creation HLC and 8 random bytes), and every
//! record of its objects (heads, listing entries, versions, uploads, tags, its lifecycle
//! configuration) is keyed by its **scope**, `name/` ‖ 32 hex digits of the id, not by the
//! bare name. A name deleted and created again is a new scope: nothing of the old
//! incarnation can be reached through it, and a write still in flight when the bucket was
//! deleted lands in the dead scope, where the background pass reclaims it. `/` never occurs
//! in a bucket name, so a scope is never a name and the name is the scope up to its first `/`.
//! Bucket records of formats 1 and 2 (before incarnations) decode with the legacy id, all
//! zeros, whose scope is the bare name: the keys those buckets were written with, so existing
//! data stays readable where it is. Only a bucket created since gets a real id.
//!
//! Object Lock: heads at 7 (a version's retention and legal hold), uploads at 5 (the lock
//! state the completed object gets), bucket records flag 4 (lock enabled). A record without
//! lock state is written exactly as before.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::checksum::{Algo, Kind, ObjectChecksum, Sum, UploadChecksum};
use crate::limits::CHECKSUM_BYTES_MAX;
use cluster::ec::Policy;

/// The first format of every record.
const VERSION: u8 = 1;
/// Object heads, uploads and parts with their checksums.
const VERSION_CHECKSUMS: u8 = 2;
/// Bucket records with a versioning state, listing entries with their flags.
const VERSION_VERSIONING: u8 = 2;
/// Object heads with their version flags.
const HEAD_VERSIONING: u8 = 3;
/// Object heads with their storage class, tier, restore and access state; listing entries
/// and uploads with their storage class.
const HEAD_TIERING: u8 = 4;
/// Object heads with the tags their writer gave (PUT, copy, multipart), committed with the
/// head in one record (issue #12: tags written after the commit could fail for an object that
/// existed).
const HEAD_TAGS: u8 = 5;
/// Object heads of a multipart upload with a checksum algorithm, with each part's checksum
/// (GetObjectAttributes' parts, a part's checksum on GET and HEAD with partNumber). Heads
/// without part checksums are still written at format 5.
const HEAD_PART_SUMS: u8 = 6;
/// Object heads with Object Lock state (a retention, a legal hold): format 6's fields with
/// the part checksums behind a presence byte, then the lock state. Heads without lock state
/// are still written at format 5 or 6.
const HEAD_LOCK: u8 = 7;
/// Object heads of an encrypted body: format 7's fields, then the encryption (its kind, the
/// plaintext size, the wrapped data key). Heads of plain bodies are still written at 5, 6 or 7.
const HEAD_SSE: u8 = 8;
/// Encryption kinds. Persisted codes never change.
const SSE_CUSTOMER: u8 = 1;
const LISTING_CLASS: u8 = 3;
const UPLOAD_CLASS: u8 = 3;
/// Uploads with the tags CreateMultipartUpload was given (the completed object's).
const UPLOAD_TAGS: u8 = 4;
/// Uploads with the Object Lock state CreateMultipartUpload resolved (the completed
/// object's); uploads without one are still written at format 4.
const UPLOAD_LOCK: u8 = 5;
/// Bucket records with an incarnation id and a deleting flag.
const BUCKET_INCARNATION: u8 = 3;
/// Bucket record flags: a DeleteBucket is checking the bucket is empty; writes that commit
/// meanwhile fail (`Gateway::check_live`).
const FLAG_DELETING: u8 = 1;
/// Bucket record flag: `BucketRecord::tags_changed`.
const FLAG_TAGS_CHANGED: u8 = 2;
/// Bucket record flag: `BucketRecord::object_lock`.
const FLAG_OBJECT_LOCK: u8 = 4;
/// Version records (`V` keys): the first format.
const VERSION_RECORD: u8 = 1;
/// Kinds of version record.
const KIND_OBJECT: u8 = 1;
const KIND_DELETE_MARKER: u8 = 2;
/// Version flags (object heads, delete markers): S3 shows the version's id as `null`.
const FLAG_NULL_VERSION: u8 = 1;
/// Version flags (object heads, listing entries): a `V` record of this version exists.
const FLAG_IN_VERSIONS: u8 = 2;

/// The longest scope: a bucket name, `/`, 32 hex digits.
pub const SCOPE_BYTES_MAX: usize = crate::limits::BUCKET_NAME_BYTES_MAX + 1 + 32;
// The longest version key (`V` ‖ scope ‖ 0 ‖ key ‖ 0 0 ‖ HLC ‖ id) is a valid metadata key.
const _: () = assert!(
    (1 + SCOPE_BYTES_MAX + 1 + crate::limits::KEY_BYTES_MAX + 2 + 8 + 12) as u64
        <= crate::limits::META_KEY_BYTES_MAX
);

/// `B` ‖ bucket.
pub fn bucket_key(bucket: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(1 + bucket.len());
    k.put_u8(b'B');
    k.put_slice(bucket.as_bytes());
    k.freeze()
}

/// `O` ‖ bucket ‖ 0 ‖ key.
pub fn head_key(bucket: &str, key: &str) -> Bytes {
    tagged(b'O', bucket, key)
}

/// `L` ‖ bucket ‖ 0 ‖ key: the bucket's ordered listing index.
pub fn listing_key(bucket: &str, key: &str) -> Bytes {
    tagged(b'L', bucket, key)
}

fn tagged(tag: u8, bucket: &str, key: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(2 + bucket.len() + key.len());
    k.put_u8(tag);
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    k.put_slice(key.as_bytes());
    k.freeze()
}

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

/// `name` for the legacy id, else `name/` ‖ hex id.
pub fn scope_of(name: &str, id: BucketId) -> String {
    assert!(!name.contains('/'), "a bucket name has no '/'");
    if id == BucketId::LEGACY {
        name.to_owned()
    } else {
        format!("{name}/{}", hex::encode(id.0))
    }
}

/// The bucket name of a scope.
pub fn scope_name(scope: &str) -> &str {
    scope.split('/').next().unwrap_or(scope)
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

/// The storage classes percore stores (x-amz-storage-class). Persisted codes never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageClass {
    #[default]
    Standard,
    StandardIa,
    IntelligentTiering,
    Glacier,
    DeepArchive,
}

impl StorageClass {
    pub const ALL: [StorageClass; 5] = [
        StorageClass::Standard,
        StorageClass::StandardIa,
        StorageClass::IntelligentTiering,
        StorageClass::Glacier,
        StorageClass::DeepArchive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }

    pub fn parse(name: &str) -> Option<StorageClass> {
        StorageClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Position in `ALL` (for per-class arrays).
    pub fn index(self) -> usize {
        usize::from(self.code())
    }

    fn code(self) -> u8 {
        match self {
            StorageClass::Standard => 0,
            StorageClass::StandardIa => 1,
            StorageClass::IntelligentTiering => 2,
            StorageClass::Glacier => 3,
            StorageClass::DeepArchive => 4,
        }
    }

    fn of(code: u8) -> Option<StorageClass> {
        StorageClass::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Archive classes: readable only through a completed restore.
    pub fn is_archive(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }
}

/// Persisted codes of the placement tiers.
fn tier_code(t: placement::Tier) -> u8 {
    match t {
        placement::Tier::Nvme => 0,
        placement::Tier::Ssd => 1,
        placement::Tier::Hdd => 2,
    }
}

fn tier_of(code: u8) -> Option<placement::Tier> {
    match code {
        0 => Some(placement::Tier::Nvme),
        1 => Some(placement::Tier::Ssd),
        2 => Some(placement::Tier::Hdd),
        _ => None,
    }
}

/// A temporary readable copy of an archived object (RestoreObject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// The copy is being made.
    pub ongoing: bool,
    /// When the copy expires; while ongoing, when the restore started.
    pub expiry_ms: u64,
    /// Days asked for.
    pub days: u32,
    /// How and where the copy is stored, and its parts (empty while ongoing).
    pub policy: Policy,
    pub tier: placement::Tier,
    pub parts: Vec<PartRef>,
}

/// Where an object's data lives and how it is tiered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiering {
    pub class: StorageClass,
    /// The placement tier of `ObjectHead::parts` (its PG table).
    pub tier: placement::Tier,
    pub restore: Option<Restore>,
    /// INTELLIGENT_TIERING: the last access recorded (ms), and whether the data is in the
    /// infrequent-access tier now.
    pub last_access_ms: u64,
    pub infrequent: bool,
}

impl Default for Tiering {
    fn default() -> Tiering {
        Tiering {
            class: StorageClass::Standard,
            tier: placement::Tier::Nvme,
            restore: None,
            last_access_ms: 0,
            infrequent: false,
        }
    }
}

/// One stored part of an object: its chunks are fragments `fragment_id(version_id, i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    pub version_id: [u8; 12],
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub modified_ms: u64,
    /// The S3 ETag without quotes: the MD5 of a single PUT, or md5-of-md5s `-N` of a multipart
    /// upload.
    pub etag: String,
    /// Unique per write of the object (the version's identity).
    pub version_id: [u8; 12],
    pub chunk_bytes: u32,
    /// How every stripe of every part is stored (replicas, or EC k+m).
    pub policy: Policy,
    pub content_type: String,
    pub metadata: Vec<(String, String)>,
    /// Standard headers kept as given: cache-control, content-disposition, content-encoding,
    /// content-language, expires (by these names).
    pub headers: Vec<(String, String)>,
    /// The parts in order: one for a single PUT, one per part of a multipart upload.
    pub parts: Vec<PartRef>,
    /// The x-amz-checksum-* stored with the object, if its writer sent or asked for one.
    pub checksum: Option<ObjectChecksum>,
    /// S3 shows this version's id as `null`: it was written while the bucket was unversioned
    /// or versioning was suspended (heads of format 1 and 2 are such).
    pub null_version: bool,
    /// A `V` record of this version exists (it was written while the bucket kept versions, or
    /// was recorded as a version since). A head without one is the key's only version.
    pub in_versions: bool,
    /// Storage class, tier, restore and access state (heads before format 4: STANDARD on the
    /// nvme tier).
    pub tiering: Tiering,
    /// The tags the version was written with (heads before format 5: none). A later
    /// PutObjectTagging or DeleteObjectTagging of this version is a `T` record, which wins
    /// over these (`Store::tags_of`).
    pub tags: Vec<(String, String)>,
    /// Each part's checksum, in the object checksum's algorithm, when the object was uploaded
    /// in parts with one (heads before format 6 and all others: none). Either empty or one
    /// per part.
    pub part_checksums: Vec<Sum>,
    /// The version's Object Lock state (heads before format 7: none).
    pub lock: ObjectLock,
    /// How the body is encrypted (heads before format 8: not). When set, `size` and
    /// `parts[].size` count the stored (sealed) bytes and the plaintext size is here.
    pub encryption: Option<Encryption>,
}

/// A version's server-side encryption: its body is sealed (`seal`) under a data key kept
/// only wrapped (`keywrap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    pub kind: EncryptionKind,
    /// The plaintext size (what listings, HEAD and GET show).
    pub plain_bytes: u64,
    pub wrapped: crate::keywrap::WrappedKey,
}

/// Who holds the key-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionKind {
    /// SSE-C: the client sends its key with every request; it is never stored.
    Customer,
}

/// An Object Lock retention mode. Persisted codes never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Removable or shortened by a caller allowed to bypass governance retention.
    Governance,
    /// Never shortened nor removed, by anyone, until it ends.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(name: &str) -> Option<LockMode> {
        match name {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            LockMode::Governance => 1,
            LockMode::Compliance => 2,
        }
    }

    fn of(code: u8) -> Option<LockMode> {
        match code {
            1 => Some(LockMode::Governance),
            2 => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A version's retention: its mode and the instant (ms since the epoch) it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until_ms: u64,
}

/// One object version's Object Lock state. `None` is "never set" (S3 answers
/// NoSuchObjectLockConfiguration), distinct from a legal hold set OFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectLock {
    pub retention: Option<Retention>,
    /// The legal hold: `Some(true)` ON, `Some(false)` OFF.
    pub legal_hold: Option<bool>,
}

impl ObjectLock {
    pub fn is_none(&self) -> bool {
        *self == ObjectLock::default()
    }
}

/// mode u8 (0: no retention) ‖ (retain-until ms u64, with a mode) ‖ legal hold u8 (0: never
/// set, 1: ON, 2: OFF).
fn put_lock(b: &mut BytesMut, lock: &ObjectLock) {
    match lock.retention {
        None => b.put_u8(0),
        Some(r) => {
            b.put_u8(r.mode.code());
            b.put_u64_le(r.until_ms);
        }
    }
    b.put_u8(match lock.legal_hold {
        None => 0,
        Some(true) => 1,
        Some(false) => 2,
    });
}

fn get_lock(b: &mut Bytes, what: &'static str) -> Result<ObjectLock, Malformed> {
    check(b, 1, what)?;
    let retention = match b.get_u8() {
        0 => None,
        code => {
            let mode = LockMode::of(code).ok_or(Malformed(what))?;
            check(b, 8, what)?;
            Some(Retention {
                mode,
                until_ms: b.get_u64_le(),
            })
        }
    };
    check(b, 1, what)?;
    let legal_hold = match b.get_u8() {
        0 => None,
        1 => Some(true),
        2 => Some(false),
        _ => return Err(Malformed(what)),
    };
    Ok(ObjectLock {
        retention,
        legal_hold,
    })
}

impl ObjectHead {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingEntry {
    pub size: u64,
    pub modified_ms: u64,
    pub etag: String,
    /// The current version has a `V` record (ListObjectVersions lists it from there); without
    /// one (entries of format 1, or written while unversioned) it is listed from here as the
    /// key's only version, `null`.
    pub in_versions: bool,
    pub class: StorageClass,
}

/// One version of an object (the value of a `V` key): the object's head, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
// A decoded record lives for one request: boxing the head would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
pub enum VersionRecord {
    Object(ObjectHead),
    DeleteMarker(DeleteMarker),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteMarker {
    pub version_id: [u8; 12],
    pub null_version: bool,
    pub modified_ms: u64,
}

impl VersionRecord {
    pub fn version_id(&self) -> &[u8; 12] {
        match self {
            VersionRecord::Object(h) => &h.version_id,
            VersionRecord::DeleteMarker(m) => &m.version_id,
        }
    }

    pub fn null_version(&self) -> bool {
        match self {
            VersionRecord::Object(h) => h.null_version,
            VersionRecord::DeleteMarker(m) => m.null_version,
        }
    }

    pub fn modified_ms(&self) -> u64 {
        match self {
            VersionRecord::Object(h) => h.modified_ms,
            VersionRecord::DeleteMarker(m) => m.modified_ms,
        }
    }

    /// format u8 ‖ kind u8 ‖ (object: the head's own encoding | delete marker: flags u8 ‖
    /// version id 12 ‖ modified ms u64).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION_RECORD);
        match self {
            VersionRecord::Object(h) => {
                assert!(h.in_versions, "a version record's head says it is recorded");
                b.put_u8(KIND_OBJECT);
                b.put_slice(&h.encode());
            }
            VersionRecord::DeleteMarker(m) => {
                b.put_u8(KIND_DELETE_MARKER);
                b.put_u8(if m.null_version { FLAG_NULL_VERSION } else { 0 });
                b.put_slice(&m.version_id);
                b.put_u64_le(m.modified_ms);
            }
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<VersionRecord, Malformed> {
        check(&b, 2, "version")?;
        if b.get_u8() != VERSION_RECORD {
            return Err(Malformed("version"));
        }
        match b.get_u8() {
            KIND_OBJECT => {
                let mut h = ObjectHead::decode(b)?;
                // Heads recorded from an unversioned write keep their own flags; as a version
                // record they are recorded by definition.
                h.in_versions = true;
                Ok(VersionRecord::Object(h))
            }
            KIND_DELETE_MARKER => {
                if b.remaining() != 1 + 12 + 8 {
                    return Err(Malformed("version"));
                }
                let flags = b.get_u8();
                if flags & !FLAG_NULL_VERSION != 0 {
                    return Err(Malformed("version"));
                }
                let mut version_id = [0u8; 12];
                b.copy_to_slice(&mut version_id);
                Ok(VersionRecord::DeleteMarker(DeleteMarker {
                    version_id,
                    null_version: flags & FLAG_NULL_VERSION != 0,
                    modified_ms: b.get_u64_le(),
                }))
            }
            _ => Err(Malformed("version")),
        }
    }
}

/// The HLC a version id was made from (its first 8 bytes, `s3::new_version_id`): versions
/// order by it.
pub fn version_hlc(version_id: &[u8; 12]) -> u64 {
    let mut hlc = [0u8; 8];
    hlc.copy_from_slice(&version_id[..8]);
    u64::from_le_bytes(hlc)
}

/// `V` ‖ bucket ‖ 0 ‖ escaped key: every key starting with `key_prefix` (raw bytes) shares
/// this prefix in the version index, and no other key does.
pub fn versions_prefix(bucket: &str, key_prefix: &[u8]) -> BytesMut {
    let mut k = BytesMut::with_capacity(2 + bucket.len() + key_prefix.len() + 2 + 20);
    k.put_u8(b'V');
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    for b in key_prefix {
        k.put_u8(*b);
        if *b == 0 {
            k.put_u8(0xff);
        }
    }
    k
}

/// The prefix of one key's versions: `versions_prefix` ‖ 0 0.
pub fn key_versions_prefix(bucket: &str, key: &str) -> Bytes {
    let mut k = versions_prefix(bucket, key.as_bytes());
    k.put_slice(&[0, 0]);
    k.freeze()
}

/// `V` ‖ bucket ‖ 0 ‖ escaped key ‖ 0 0 ‖ (u64::MAX − version HLC) u64 BE ‖ version id: a
/// key's versions scan newest first, keys in byte order (0x00 in a key is written 0x00 0xFF,
/// so 0x00 0x00 ends the key and sorts before any longer key).
pub fn version_key(bucket: &str, key: &str, version_id: &[u8; 12]) -> Bytes {
    let mut k = BytesMut::from(&key_versions_prefix(bucket, key)[..]);
    k.put_u64(u64::MAX - version_hlc(version_id));
    k.put_slice(version_id);
    k.freeze()
}

/// The bytes of a `V` key after the bucket part (`versions_prefix(bucket, b"")`): the object
/// key (raw bytes) and the version id, or None if it is not a version key.
pub fn parse_version_key(rest: &[u8]) -> Option<(Vec<u8>, [u8; 12])> {
    let mut key = Vec::with_capacity(rest.len());
    let mut i = 0;
    loop {
        match (rest.get(i)?, rest.get(i + 1)) {
            (0, Some(0xff)) => {
                key.push(0);
                i += 2;
            }
            (0, Some(0)) => break,
            (0, _) => return None,
            (b, _) => {
                key.push(*b);
                i += 1;
            }
        }
    }
    let tail = rest.get(i + 2..)?;
    if tail.len() != 8 + 12 {
        return None;
    }
    let version_id: [u8; 12] = tail[8..].try_into().ok()?;
    Some((key, version_id))
}

/// An upload in progress (`U` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub owner: String,
    pub initiated_ms: u64,
    pub content_type: String,
    pub metadata: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// The checksum algorithm and type the upload was created with.
    pub checksum: Option<UploadChecksum>,
    /// The storage class the completed object gets (its parts are stored by its policy).
    pub class: StorageClass,
    /// The tags the completed object gets (x-amz-tagging of CreateMultipartUpload).
    pub tags: Vec<(String, String)>,
    /// The Object Lock state the completed object gets.
    pub lock: ObjectLock,
}

/// One uploaded part (`P` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    pub version_id: [u8; 12],
    pub size: u64,
    pub md5: [u8; 16],
    pub modified_ms: u64,
    /// The part's checksum of the upload's algorithm (none if the upload has none).
    pub checksum: Option<Sum>,
}

/// The key and upload id of an upload (`U`) or completion (`M`) record key's rest (after
/// `tag ‖ scope ‖ 0`): key ‖ 0 ‖ upload id. Upload ids hold no NUL, so the last NUL splits;
/// `None` when either part is not UTF-8.
pub fn split_upload_rest(rest: &[u8]) -> Option<(&str, &str)> {
    let at = rest.iter().rposition(|b| *b == 0)?;
    let key = std::str::from_utf8(&rest[..at]).ok()?;
    let upload_id = std::str::from_utf8(&rest[at + 1..]).ok()?;
    Some((key, upload_id))
}

/// `U` ‖ bucket ‖ 0 ‖ key ‖ 0 ‖ upload id.
pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Bytes {
    let mut k = BytesMut::from(&tagged(b'U', bucket, key)[..]);
    k.put_u8(0);
    k.put_slice(upload_id.as_bytes());
    k.freeze()
}

/// `M` ‖ bucket ‖ 0 ‖ key ‖ 0 ‖ upload id: a completed upload, kept for a while so that a
/// retried CompleteMultipartUpload answers what the first one did.
pub fn completion_key(bucket: &str, key: &str, upload_id: &str) -> Bytes {
    let mut k = BytesMut::from(&tagged(b'M', bucket, key)[..]);
    k.put_u8(0);
    k.put_slice(upload_id.as_bytes());
    k.freeze()
}

/// What a CompleteMultipartUpload answered (`M` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionRecord {
    pub completed_ms: u64,
    /// A digest of the part list the client sent (numbers and ETags), `parts_digest`.
    pub parts_digest: u64,
    /// The x-amz-version-id shown, if any.
    pub version_id: Option<String>,
    pub etag: String,
}

/// The digest of a CompleteMultipartUpload's part list: (number, ETag without quotes) in
/// the order given.
pub fn parts_digest(parts: &[(i32, &str)]) -> u64 {
    let mut bytes = Vec::new();
    for (n, etag) in parts {
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.extend_from_slice(etag.trim_matches('"').as_bytes());
        bytes.push(0);
    }
    cluster::backend::stable_hash(&[b"parts", &bytes])
}

impl CompletionRecord {
    /// format u8 (1) ‖ completed ms u64 ‖ parts digest u64 ‖ has version u8 ‖ (version id
    /// str) ‖ etag str.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u64_le(self.completed_ms);
        b.put_u64_le(self.parts_digest);
        match &self.version_id {
            None => b.put_u8(0),
            Some(v) => {
                b.put_u8(1);
                put_str(&mut b, v);
            }
        }
        put_str(&mut b, &self.etag);
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<CompletionRecord, Malformed> {
        check(&b, 18, "completion")?;
        if b.get_u8() != VERSION {
            return Err(Malformed("completion"));
        }
        let completed_ms = b.get_u64_le();
        let parts_digest = b.get_u64_le();
        let version_id = match b.get_u8() {
            0 => None,
            1 => Some(get_str(&mut b, "completion")?),
            _ => return Err(Malformed("completion")),
        };
        let etag = get_str(&mut b, "completion")?;
        if b.has_remaining() {
            return Err(Malformed("completion"));
        }
        Ok(CompletionRecord {
            completed_ms,
            parts_digest,
            version_id,
            etag,
        })
    }
}

/// `P` ‖ upload id ‖ 0 ‖ part number (u32 big-endian, so parts scan in order).
pub fn part_key(upload_id: &str, part: u32) -> Bytes {
    let mut k = part_prefix(upload_id).to_vec();
    k.extend_from_slice(&part.to_be_bytes());
    Bytes::from(k)
}

pub fn part_prefix(upload_id: &str) -> Bytes {
    let mut k = vec![b'P'];
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    Bytes::from(k)
}

impl UploadRecord {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(if self.lock.is_none() {
            UPLOAD_TAGS
        } else {
            UPLOAD_LOCK
        });
        b.put_u64_le(self.initiated_ms);
        put_str(&mut b, &self.owner);
        put_str(&mut b, &self.content_type);
        for list in [&self.metadata, &self.headers] {
            b.put_u16_le(list.len() as u16);
            for (k, v) in list {
                put_str(&mut b, k);
                put_str(&mut b, v);
            }
        }
        match self.checksum {
            None => b.put_u8(0),
            Some(c) => b.put_slice(&[algo_code(c.algo), kind_code(c.kind)]),
        }
        b.put_u8(self.class.code());
        assert!(
            self.tags.len() <= crate::limits::TAGS_MAX,
            "tags are validated"
        );
        b.put_u16_le(self.tags.len() as u16);
        for (k, v) in &self.tags {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        if !self.lock.is_none() {
            put_lock(&mut b, &self.lock);
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<UploadRecord, Malformed> {
        check(&b, 9, "upload")?;
        let format = b.get_u8();
        let (with_checksum, with_class) = match format {
            VERSION => (false, false),
            VERSION_CHECKSUMS => (true, false),
            UPLOAD_CLASS | UPLOAD_TAGS | UPLOAD_LOCK => (true, true),
            _ => return Err(Malformed("upload")),
        };
        let initiated_ms = b.get_u64_le();
        let owner = get_str(&mut b, "upload")?;
        let content_type = get_str(&mut b, "upload")?;
        let metadata = get_pairs(&mut b)?;
        let headers = get_pairs(&mut b)?;
        let checksum = if with_checksum {
            get_upload_checksum(&mut b)?
        } else {
            None
        };
        let class = if with_class {
            check(&b, 1, "upload")?;
            StorageClass::of(b.get_u8()).ok_or(Malformed("upload"))?
        } else {
            StorageClass::Standard
        };
        let tags = if format >= UPLOAD_TAGS {
            let tags = get_pairs(&mut b)?;
            if tags.len() > crate::limits::TAGS_MAX {
                return Err(Malformed("upload"));
            }
            tags
        } else {
            Vec::new()
        };
        let lock = if format == UPLOAD_LOCK {
            get_lock(&mut b, "upload")?
        } else {
            ObjectLock::default()
        };
        Ok(UploadRecord {
            owner,
            initiated_ms,
            content_type,
            metadata,
            headers,
            checksum,
            class,
            tags,
            lock,
        })
    }
}

impl PartRecord {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION_CHECKSUMS);
        b.put_slice(&self.version_id);
        b.put_u64_le(self.size);
        b.put_slice(&self.md5);
        b.put_u64_le(self.modified_ms);
        put_sum(&mut b, self.checksum.as_ref());
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<PartRecord, Malformed> {
        check(&b, 1 + 12 + 8 + 16 + 8, "part")?;
        let with_checksum = get_version(&mut b, "part")?;
        let mut version_id = [0u8; 12];
        b.copy_to_slice(&mut version_id);
        let size = b.get_u64_le();
        let mut md5 = [0u8; 16];
        b.copy_to_slice(&mut md5);
        let modified_ms = b.get_u64_le();
        let checksum = if with_checksum {
            get_sum(&mut b, "part")?
        } else {
            None
        };
        Ok(PartRecord {
            version_id,
            size,
            md5,
            modified_ms,
            checksum,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("malformed {0} record")]
pub struct Malformed(pub &'static str);

/// The version byte of a record that may carry checksums: whether it does (version 2).
fn get_version(b: &mut Bytes, what: &'static str) -> Result<bool, Malformed> {
    check(b, 1, what)?;
    match b.get_u8() {
        VERSION => Ok(false),
        VERSION_CHECKSUMS => Ok(true),
        _ => Err(Malformed(what)),
    }
}

/// Persisted codes of the checksum algorithms (0 is "none"); never reuse one.
fn algo_code(algo: Algo) -> u8 {
    match algo {
        Algo::Crc32 => 1,
        Algo::Crc32c => 2,
        Algo::Crc64Nvme => 3,
        Algo::Sha1 => 4,
        Algo::Sha256 => 5,
    }
}

fn algo_of(code: u8) -> Option<Algo> {
    match code {
        1 => Some(Algo::Crc32),
        2 => Some(Algo::Crc32c),
        3 => Some(Algo::Crc64Nvme),
        4 => Some(Algo::Sha1),
        5 => Some(Algo::Sha256),
        _ => None,
    }
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Composite => 1,
        Kind::FullObject => 2,
    }
}

fn kind_of(code: u8) -> Option<Kind> {
    match code {
        1 => Some(Kind::Composite),
        2 => Some(Kind::FullObject),
        _ => None,
    }
}

/// algorithm code u8 (0: none) ‖ the raw value (the algorithm's width).
fn put_sum(b: &mut BytesMut, sum: Option<&Sum>) {
    match sum {
        None => b.put_u8(0),
        Some(s) => {
            assert!(s.raw().len() <= CHECKSUM_BYTES_MAX, "checked by Sum::new");
            b.put_u8(algo_code(s.algo()));
            b.put_slice(s.raw());
        }
    }
}

fn get_sum(b: &mut Bytes, what: &'static str) -> Result<Option<Sum>, Malformed> {
    check(b, 1, what)?;
    let code = b.get_u8();
    if code == 0 {
        return Ok(None);
    }
    let algo = algo_of(code).ok_or(Malformed(what))?;
    check(b, algo.value_bytes(), what)?;
    let raw = b.split_to(algo.value_bytes());
    Sum::new(algo, &raw).map(Some).ok_or(Malformed(what))
}

/// algorithm code u8 (0: none) ‖ type code u8.
fn get_upload_checksum(b: &mut Bytes) -> Result<Option<UploadChecksum>, Malformed> {
    check(b, 1, "upload")?;
    let code = b.get_u8();
    if code == 0 {
        return Ok(None);
    }
    check(b, 1, "upload")?;
    let algo = algo_of(code).ok_or(Malformed("upload"))?;
    let kind = kind_of(b.get_u8()).ok_or(Malformed("upload"))?;
    Ok(Some(UploadChecksum { algo, kind }))
}

/// The sum (as `put_sum`) ‖ type code u8 ‖ part count u32, the `N` of `-N`.
fn put_object_checksum(b: &mut BytesMut, checksum: Option<&ObjectChecksum>) {
    put_sum(b, checksum.map(|c| &c.sum));
    if let Some(c) = checksum {
        b.put_u8(kind_code(c.kind));
        b.put_u32_le(c.parts);
    }
}

fn get_object_checksum(
    b: &mut Bytes,
    parts_stored: usize,
) -> Result<Option<ObjectChecksum>, Malformed> {
    let Some(sum) = get_sum(b, "object")? else {
        return Ok(None);
    };
    check(b, 5, "object")?;
    let kind = kind_of(b.get_u8()).ok_or(Malformed("object"))?;
    let parts = b.get_u32_le();
    let consistent = match kind {
        Kind::Composite => usize::try_from(parts).is_ok_and(|p| p == parts_stored),
        Kind::FullObject => parts >= 1,
    };
    if !consistent {
        return Err(Malformed("object"));
    }
    Ok(Some(ObjectChecksum { sum, kind, parts }))
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Every string stored here comes from a request whose header section the access gate
    // bounds (`access::HEADER_VALUE_BYTES_MAX`); a longer one is a bug, never a record whose
    // length wrapped.
    assert!(
        u16::try_from(s.len()).is_ok(),
        "record string of {} bytes",
        s.len()
    );
    b.put_u16_le(s.len() as u16);
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut Bytes, what: &'static str) -> Result<String, Malformed> {
    if b.remaining() < 2 {
        return Err(Malformed(what));
    }
    let n = usize::from(b.get_u16_le());
    if b.remaining() < n {
        return Err(Malformed(what));
    }
    String::from_utf8(b.split_to(n).to_vec()).map_err(|_| Malformed(what))
}

fn get_pairs(b: &mut Bytes) -> Result<Vec<(String, String)>, Malformed> {
    check(b, 2, "object")?;
    let n = b.get_u16_le();
    let mut pairs = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let k = get_str(b, "object")?;
        pairs.push((k, get_str(b, "object")?));
    }
    Ok(pairs)
}

fn check(b: &Bytes, n: usize, what: &'static str) -> Result<(), Malformed> {
    if b.remaining() < n {
        Err(Malformed(what))
    } else {
        Ok(())
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

impl ObjectHead {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        let format = match (self.lock.is_none(), self.part_checksums.is_empty()) {
            _ if self.encryption.is_some() => HEAD_SSE,
            (true, true) => HEAD_TAGS,
            (true, false) => HEAD_PART_SUMS,
            (false, _) => HEAD_LOCK,
        };
        b.put_u8(format);
        b.put_u64_le(self.size);
        b.put_u64_le(self.modified_ms);
        b.put_slice(&self.version_id);
        b.put_u32_le(self.chunk_bytes);
        match self.policy {
            Policy::Replicas(n) => b.put_slice(&[0, n]),
            Policy::Ec { k, m } => b.put_slice(&[k, m]),
        }
        put_str(&mut b, &self.etag);
        put_str(&mut b, &self.content_type);
        b.put_u32_le(self.parts.len() as u32);
        for p in &self.parts {
            b.put_slice(&p.version_id);
            b.put_u64_le(p.size);
        }
        for list in [&self.metadata, &self.headers] {
            b.put_u16_le(list.len() as u16);
            for (k, v) in list {
                put_str(&mut b, k);
                put_str(&mut b, v);
            }
        }
        put_object_checksum(&mut b, self.checksum.as_ref());
        let mut flags = 0;
        if self.null_version {
            flags |= FLAG_NULL_VERSION;
        }
        if self.in_versions {
            flags |= FLAG_IN_VERSIONS;
        }
        b.put_u8(flags);
        put_tiering(&mut b, &self.tiering);
        assert!(
            self.tags.len() <= crate::limits::TAGS_MAX,
            "tags are validated"
        );
        b.put_u16_le(self.tags.len() as u16);
        for (k, v) in &self.tags {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        if format >= HEAD_LOCK {
            b.put_u8(u8::from(!self.part_checksums.is_empty()));
        }
        if !self.part_checksums.is_empty() {
            let algo = self.checksum.as_ref().map(|c| c.sum.algo());
            assert_eq!(self.part_checksums.len(), self.parts.len(), "one per part");
            for sum in &self.part_checksums {
                assert_eq!(Some(sum.algo()), algo, "the object checksum's algorithm");
                put_sum(&mut b, Some(sum));
            }
        }
        if format >= HEAD_LOCK {
            put_lock(&mut b, &self.lock);
        }
        if let Some(e) = &self.encryption {
            assert_eq!(self.parts.len(), 1, "only single-part bodies are sealed");
            assert_eq!(crate::seal::stored_size(e.plain_bytes), self.size);
            match e.kind {
                EncryptionKind::Customer => b.put_u8(SSE_CUSTOMER),
            }
            b.put_u64_le(e.plain_bytes);
            b.put_slice(&e.wrapped.encode());
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<ObjectHead, Malformed> {
        check(&b, 1 + 8 + 8 + 12 + 4 + 2, "object")?;
        let format = b.get_u8();
        let (with_checksum, with_flags) = match format {
            VERSION => (false, false),
            VERSION_CHECKSUMS => (true, false),
            HEAD_VERSIONING | HEAD_TIERING | HEAD_TAGS | HEAD_PART_SUMS | HEAD_LOCK | HEAD_SSE => {
                (true, true)
            }
            _ => return Err(Malformed("object")),
        };
        let size = b.get_u64_le();
        let modified_ms = b.get_u64_le();
        let mut version_id = [0u8; 12];
        b.copy_to_slice(&mut version_id);
        let chunk_bytes = b.get_u32_le();
        let policy = match (b.get_u8(), b.get_u8()) {
            (0, n) if n > 0 => Policy::Replicas(n),
            (k, m) if k > 0 && m > 0 => Policy::Ec { k, m },
            _ => return Err(Malformed("object")),
        };
        if chunk_bytes == 0 {
            return Err(Malformed("object"));
        }
        let etag = get_str(&mut b, "object")?;
        let content_type = get_str(&mut b, "object")?;
        check(&b, 4, "object")?;
        let n = b.get_u32_le() as usize;
        if n > crate::limits::PARTS_MAX || b.remaining() < n * 20 {
            return Err(Malformed("object"));
        }
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let mut version_id = [0u8; 12];
            b.copy_to_slice(&mut version_id);
            parts.push(PartRef {
                version_id,
                size: b.get_u64_le(),
            });
        }
        if parts.iter().map(|p| p.size).sum::<u64>() != size {
            return Err(Malformed("object"));
        }
        let metadata = get_pairs(&mut b)?;
        let headers = get_pairs(&mut b)?;
        let checksum = if with_checksum {
            get_object_checksum(&mut b, parts.len())?
        } else {
            None
        };
        // Heads written before versioning are the null version, without a `V` record.
        let (null_version, in_versions) = if with_flags {
            check(&b, 1, "object")?;
            let flags = b.get_u8();
            if flags & !(FLAG_NULL_VERSION | FLAG_IN_VERSIONS) != 0 {
                return Err(Malformed("object"));
            }
            (
                flags & FLAG_NULL_VERSION != 0,
                flags & FLAG_IN_VERSIONS != 0,
            )
        } else {
            (true, false)
        };
        let tiering = if format >= HEAD_TIERING {
            get_tiering(&mut b)?
        } else {
            Tiering::default()
        };
        let tags = if format >= HEAD_TAGS {
            let tags = get_pairs(&mut b)?;
            if tags.len() > crate::limits::TAGS_MAX {
                return Err(Malformed("object"));
            }
            tags
        } else {
            Vec::new()
        };
        let mut part_checksums = Vec::new();
        let with_part_sums = match format {
            HEAD_PART_SUMS => true,
            HEAD_LOCK | HEAD_SSE => {
                check(&b, 1, "object")?;
                match b.get_u8() {
                    0 => false,
                    1 => true,
                    _ => return Err(Malformed("object")),
                }
            }
            _ => false,
        };
        if with_part_sums {
            let algo = checksum.as_ref().map(|c| c.sum.algo());
            for _ in 0..parts.len() {
                match get_sum(&mut b, "object")? {
                    Some(sum) if Some(sum.algo()) == algo => part_checksums.push(sum),
                    _ => return Err(Malformed("object")),
                }
            }
        }
        let lock = if format >= HEAD_LOCK {
            get_lock(&mut b, "object")?
        } else {
            ObjectLock::default()
        };
        let encryption = if format == HEAD_SSE {
            Some(get_encryption(&mut b, size, parts.len())?)
        } else {
            None
        };
        // Every byte of a head is some field's: anything after the last is damage.
        if b.has_remaining() {
            return Err(Malformed("object"));
        }
        Ok(ObjectHead {
            size,
            modified_ms,
            etag,
            version_id,
            chunk_bytes,
            policy,
            content_type,
            metadata,
            headers,
            parts,
            checksum,
            null_version,
            in_versions,
            tiering,
            tags,
            part_checksums,
            lock,
            encryption,
        })
    }

    /// The size S3 shows: the plaintext's for an encrypted body, else the stored one.
    pub fn shown_size(&self) -> u64 {
        self.encryption
            .as_ref()
            .map_or(self.size, |e| e.plain_bytes)
    }

    /// Every stripe of the object, part after part.
    pub fn stripes(&self) -> Vec<StripeRef> {
        self.parts
            .iter()
            .flat_map(|p| part_stripes(p, self.chunk_bytes))
            .collect()
    }

    /// The stripe holding byte `pos`, and the offset of `pos` in it.
    pub fn locate(&self, pos: u64) -> Option<(StripeRef, u64)> {
        let chunk = u64::from(self.chunk_bytes);
        let mut start = 0;
        for p in &self.parts {
            if pos < start + p.size {
                let within_part = pos - start;
                let index = within_part / chunk;
                let len = chunk.min(p.size - index * chunk);
                let stripe = StripeRef {
                    version_id: p.version_id,
                    index,
                    len,
                };
                return Some((stripe, within_part % chunk));
            }
            start += p.size;
        }
        None
    }

    /// The byte range (first, length) of part `number` (1-based).
    pub fn part_range(&self, number: usize) -> Option<(u64, u64)> {
        let first: u64 = self
            .parts
            .iter()
            .take(number.checked_sub(1)?)
            .map(|p| p.size)
            .sum();
        self.parts.get(number - 1).map(|p| (first, p.size))
    }
}

/// Format 8's encryption: kind u8 ‖ plaintext size u64 ‖ wrapped data key (121 bytes). Only
/// single-part bodies are sealed, and the stored size must be the one sealing gives.
fn get_encryption(b: &mut Bytes, size: u64, parts: usize) -> Result<Encryption, Malformed> {
    check(b, 1 + 8 + crate::keywrap::WRAPPED_KEY_BYTES, "object")?;
    let kind = match b.get_u8() {
        SSE_CUSTOMER => EncryptionKind::Customer,
        _ => return Err(Malformed("object")),
    };
    let plain_bytes = b.get_u64_le();
    let wrapped =
        crate::keywrap::WrappedKey::decode(&b.split_to(crate::keywrap::WRAPPED_KEY_BYTES))
            .map_err(|_| Malformed("object"))?;
    if parts != 1 || crate::seal::plain_size(size) != Ok(plain_bytes) {
        return Err(Malformed("object"));
    }
    Ok(Encryption {
        kind,
        plain_bytes,
        wrapped,
    })
}

/// One stripe (chunk) of a part: `len` bytes of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeRef {
    pub version_id: [u8; 12],
    pub index: u64,
    pub len: u64,
}

impl StripeRef {
    /// Fragment `shard` of this stripe (0 for a replica).
    pub fn fragment_id(&self, shard: u8) -> proto::FragmentId {
        fragment_id(&self.version_id, self.index, shard)
    }
}

/// The stripes of one part.
pub fn part_stripes(p: &PartRef, chunk_bytes: u32) -> impl Iterator<Item = StripeRef> + '_ {
    let chunk = u64::from(chunk_bytes);
    (0..p.size.div_ceil(chunk)).map(move |index| StripeRef {
        version_id: p.version_id,
        index,
        len: chunk.min(p.size - index * chunk),
    })
}

/// version id (96 bits) ‖ stripe index (24 bits) ‖ shard index (8 bits).
pub fn fragment_id(version_id: &[u8; 12], chunk: u64, shard: u8) -> proto::FragmentId {
    assert!(
        chunk < (1 << 24),
        "chunk index fits 24 bits (checked by the size limit)"
    );
    let mut id = [0u8; 16];
    id[..12].copy_from_slice(version_id);
    id[12..15].copy_from_slice(&(chunk as u32).to_le_bytes()[..3]);
    id[15] = shard;
    proto::FragmentId(id)
}

fn put_policy(b: &mut BytesMut, p: Policy) {
    match p {
        Policy::Replicas(n) => b.put_slice(&[0, n]),
        Policy::Ec { k, m } => b.put_slice(&[k, m]),
    }
}

fn get_policy(b: &mut Bytes, what: &'static str) -> Result<Policy, Malformed> {
    check(b, 2, what)?;
    match (b.get_u8(), b.get_u8()) {
        (0, n) if n > 0 => Ok(Policy::Replicas(n)),
        (k, m) if k > 0 && m > 0 => Ok(Policy::Ec { k, m }),
        _ => Err(Malformed(what)),
    }
}

/// class u8 ‖ tier u8 ‖ last access ms u64 ‖ infrequent u8 ‖ restore: 0, or 1 ‖ ongoing u8 ‖
/// expiry ms u64 ‖ days u32 ‖ policy 2 ‖ tier u8 ‖ part count u32 ‖ (version id 12 ‖ size u64)*.
fn put_tiering(b: &mut BytesMut, t: &Tiering) {
    b.put_u8(t.class.code());
    b.put_u8(tier_code(t.tier));
    b.put_u64_le(t.last_access_ms);
    b.put_u8(u8::from(t.infrequent));
    match &t.restore {
        None => b.put_u8(0),
        Some(r) => {
            b.put_u8(1);
            b.put_u8(u8::from(r.ongoing));
            b.put_u64_le(r.expiry_ms);
            b.put_u32_le(r.days);
            put_policy(b, r.policy);
            b.put_u8(tier_code(r.tier));
            b.put_u32_le(r.parts.len() as u32);
            for p in &r.parts {
                b.put_slice(&p.version_id);
                b.put_u64_le(p.size);
            }
        }
    }
}

fn get_tiering(b: &mut Bytes) -> Result<Tiering, Malformed> {
    let bad = || Malformed("object tiering");
    check(b, 12, "object tiering")?;
    let class = StorageClass::of(b.get_u8()).ok_or_else(bad)?;
    let tier = tier_of(b.get_u8()).ok_or_else(bad)?;
    let last_access_ms = b.get_u64_le();
    let infrequent = match b.get_u8() {
        0 => false,
        1 => true,
        _ => return Err(bad()),
    };
    let restore = match b.get_u8() {
        0 => None,
        1 => {
            check(b, 1 + 8 + 4, "object tiering")?;
            let ongoing = b.get_u8() != 0;
            let expiry_ms = b.get_u64_le();
            let days = b.get_u32_le();
            let policy = get_policy(b, "object tiering")?;
            check(b, 5, "object tiering")?;
            let tier = tier_of(b.get_u8()).ok_or_else(bad)?;
            let n = b.get_u32_le() as usize;
            if n > crate::limits::PARTS_MAX || b.remaining() < n * 20 {
                return Err(bad());
            }
            let parts = (0..n)
                .map(|_| {
                    let mut version_id = [0u8; 12];
                    b.copy_to_slice(&mut version_id);
                    PartRef {
                        version_id,
                        size: b.get_u64_le(),
                    }
                })
                .collect();
            Some(Restore {
                ongoing,
                expiry_ms,
                days,
                policy,
                tier,
                parts,
            })
        }
        _ => return Err(bad()),
    };
    Ok(Tiering {
        class,
        tier,
        restore,
        last_access_ms,
        infrequent,
    })
}

impl ListingEntry {
    /// format u8 (2) ‖ size u64 ‖ modified ms u64 ‖ ETag ‖ flags u8 (format 1: without them).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(LISTING_CLASS);
        b.put_u64_le(self.size);
        b.put_u64_le(self.modified_ms);
        put_str(&mut b, &self.etag);
        b.put_u8(if self.in_versions {
            FLAG_IN_VERSIONS
        } else {
            0
        });
        b.put_u8(self.class.code());
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<ListingEntry, Malformed> {
        check(&b, 17, "listing")?;
        let format = b.get_u8();
        if format != VERSION && format != VERSION_VERSIONING && format != LISTING_CLASS {
            return Err(Malformed("listing"));
        }
        let size = b.get_u64_le();
        let modified_ms = b.get_u64_le();
        let etag = get_str(&mut b, "listing")?;
        let in_versions = if format == VERSION {
            false
        } else {
            check(&b, 1, "listing")?;
            match b.get_u8() {
                0 => false,
                FLAG_IN_VERSIONS => true,
                _ => return Err(Malformed("listing")),
            }
        };
        let class = if format == LISTING_CLASS {
            check(&b, 1, "listing")?;
            StorageClass::of(b.get_u8()).ok_or(Malformed("listing"))?
        } else {
            StorageClass::Standard
        };
        Ok(ListingEntry {
            size,
            modified_ms,
            etag,
            in_versions,
            class,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let h = ObjectHead {
            size: 5 << 20,
            modified_ms: 42,
            etag: "abc-2".into(),
            version_id: [9; 12],
            chunk_bytes: 1 << 20,
            policy: Policy::Ec { k: 4, m: 2 },
            content_type: "text/plain".into(),
            metadata: vec![("a".into(), "ü".into())],
            headers: vec![("cache-control".into(), "no-cache".into())],
            parts: vec![
                PartRef {
                    version_id: [1; 12],
                    size: 3 << 20,
                },
                PartRef {
                    version_id: [2; 12],
                    size: 2 << 20,
                },
            ],
            checksum: None,
            null_version: false,
            in_versions: true,
            tiering: Tiering::default(),
            tags: vec![],
            part_checksums: vec![],
            lock: ObjectLock::default(),
            encryption: None,
        };
        assert_eq!(ObjectHead::decode(h.encode()).unwrap(), h);
        assert_eq!(h.stripes().len(), 5);
        let first = StripeRef {
            version_id: [1; 12],
            index: 0,
            len: 1 << 20,
        };
        assert_eq!(h.locate(0), Some((first, 0)));
        assert_eq!(
            h.locate((3 << 20) + 5),
            Some((
                StripeRef {
                    version_id: [2; 12],
                    index: 0,
                    len: 1 << 20
                },
                5
            ))
        );
        assert_eq!(h.locate(5 << 20), None);
        assert_eq!(h.part_range(2), Some((3 << 20, 2 << 20)));
        assert_eq!(h.part_range(3), None);
        assert_eq!(h.part_range(0), None);
        let enc = h.encode();
        for cut in 0..enc.len() {
            assert!(ObjectHead::decode(enc.slice(..cut)).is_err());
        }
        let bucket = BucketRecord {
            versioning: Versioning::Suspended,
            deleting: true,
            ..BucketRecord::new("root".into(), 7, BucketId::new(9, [1; 8]))
        };
        assert_eq!(BucketRecord::decode(bucket.encode()).unwrap(), bucket);
        let listing = ListingEntry {
            size: 1,
            modified_ms: 2,
            etag: "e".into(),
            in_versions: true,
            class: StorageClass::Standard,
        };
        assert_eq!(ListingEntry::decode(listing.encode()).unwrap(), listing);
        assert_ne!(fragment_id(&[1; 12], 0, 0), fragment_id(&[1; 12], 1, 0));
        assert_ne!(fragment_id(&[1; 12], 0, 0), fragment_id(&[1; 12], 0, 1));
        let upload = UploadRecord {
            owner: "o".into(),
            initiated_ms: 1,
            content_type: "t".into(),
            metadata: vec![],
            headers: vec![],
            checksum: None,
            class: StorageClass::StandardIa,
            tags: vec![],
            lock: ObjectLock::default(),
        };
        assert_eq!(UploadRecord::decode(upload.encode()).unwrap(), upload);
        let part = PartRecord {
            version_id: [4; 12],
            size: 9,
            md5: [5; 16],
            modified_ms: 3,
            checksum: None,
        };
        assert_eq!(PartRecord::decode(part.encode()).unwrap(), part);
        assert!(part_key("u", 2) > part_key("u", 1));
    }

    fn hex_bytes(s: &str) -> Bytes {
        Bytes::from(hex::decode(s).unwrap())
    }

    // Heads of the older formats as they were written (never change these: add a fixture for
    // a new format instead). Format 1: before checksums were stored (encoded by hand from the
    // layout in s3api/DESIGN.md).
    const HEAD_V1_HEX: &str = concat!(
        "0100006000000000000068e5cf8b010000000102030405060708090a0b0000100004022200303132",
        "33343536373839616263646566303132333435363738396162636465662d320700766964656f2f78",
        "0200000001010101010101010101010100005000000000000202020202020202020202020000100000",
        "000000010001006101003101000d0063616368652d636f6e74726f6c08006e6f2d6361636865",
    );
    /// Format 2: before versioning (encoded by the code of that time).
    const HEAD_V2_HEX: &str = concat!(
        "0203000000000000000068e5cf8b01000003030303030303030303030300001000000201006500",
        "000100000003030303030303030303030303000000000000000000000001010203040201000000",
    );
    /// Format 3: before storage classes; `small_head(false, true)`.
    const HEAD_V3_HEX: &str = concat!(
        "0303000000000000000068e5cf8b01000003030303030303030303030300001000000201006500",
        "00010000000303030303030303030303030300000000000000000000000002",
    );
    /// Format 4: format 3's fields, then class, tier, last access, infrequent, restore;
    /// `small_head(false, true)`.
    const HEAD_V4_HEX: &str = concat!(
        "0403000000000000000068e5cf8b01000003030303030303030303030300001000000201006500",
        "00010000000303030303030303030303030300000000000000000000000002",
        "000000000000000000000000",
    );

    /// Records written at version 1, before checksums were stored (encoded by hand from the
    /// layout in s3api/DESIGN.md; never change these: add a fixture for a new version instead).
    #[test]
    fn version_1_records_still_decode() {
        let h = ObjectHead::decode(hex_bytes(HEAD_V1_HEX)).unwrap();
        assert_eq!(
            (h.size, h.modified_ms, h.version_id[11], h.chunk_bytes),
            (6 << 20, 1_700_000_000_000, 11, 1 << 20)
        );
        assert_eq!(h.policy, Policy::Ec { k: 4, m: 2 });
        assert_eq!(h.etag, "0123456789abcdef0123456789abcdef-2");
        assert_eq!(h.content_type, "video/x");
        assert_eq!(h.parts.len(), 2);
        assert_eq!(h.parts[1].version_id, [2; 12]);
        assert_eq!(h.metadata, vec![("a".to_string(), "1".to_string())]);
        assert_eq!(h.header("cache-control").as_deref(), Some("no-cache"));
        assert_eq!(h.checksum, None);
        assert!(h.null_version && !h.in_versions);
        let upload =
            hex_bytes("010168e5cf8b0100000400726f6f740a00746578742f706c61696e010001006b0100760000");
        let u = UploadRecord::decode(upload).unwrap();
        assert_eq!(
            (u.owner.as_str(), u.initiated_ms, u.content_type.as_str()),
            ("root", 1_700_000_000_001, "text/plain")
        );
        assert_eq!(u.metadata, vec![("k".to_string(), "v".to_string())]);
        assert_eq!((u.headers.len(), u.checksum), (0, None));
        let part = hex_bytes(concat!(
            "010707070707070707070707070000500000000000000102030405060708090a0b0c0d0e0f",
            "0268e5cf8b010000"
        ));
        let p = PartRecord::decode(part).unwrap();
        assert_eq!(
            (p.version_id, p.size, p.md5[15], p.modified_ms),
            ([7; 12], 5 << 20, 15, 1_700_000_000_002)
        );
        assert_eq!(p.checksum, None);
    }

    #[test]
    fn checksums_round_trip() {
        let crc = Sum::new(Algo::Crc32c, &[1, 2, 3, 4]).unwrap();
        let sha = Sum::new(Algo::Sha256, &[7; 32]).unwrap();
        let part = PartRecord {
            version_id: [4; 12],
            size: 9,
            md5: [5; 16],
            modified_ms: 3,
            checksum: Some(sha.clone()),
        };
        assert_eq!(PartRecord::decode(part.encode()).unwrap(), part);
        let enc = part.encode();
        for cut in 0..enc.len() {
            assert!(PartRecord::decode(enc.slice(..cut)).is_err());
        }
        let upload = UploadRecord {
            owner: "o".into(),
            initiated_ms: 1,
            content_type: String::new(),
            metadata: vec![],
            headers: vec![],
            checksum: Some(UploadChecksum {
                algo: Algo::Crc64Nvme,
                kind: Kind::FullObject,
            }),
            class: StorageClass::Standard,
            tags: vec![],
            lock: ObjectLock::default(),
        };
        assert_eq!(UploadRecord::decode(upload.encode()).unwrap(), upload);
        let mut h = ObjectHead {
            size: 3,
            modified_ms: 42,
            etag: "abc-2".into(),
            version_id: [9; 12],
            chunk_bytes: 1 << 20,
            policy: Policy::Replicas(3),
            content_type: String::new(),
            metadata: vec![],
            headers: vec![],
            parts: vec![
                PartRef {
                    version_id: [1; 12],
                    size: 1,
                },
                PartRef {
                    version_id: [2; 12],
                    size: 2,
                },
            ],
            checksum: Some(ObjectChecksum {
                sum: crc,
                kind: Kind::Composite,
                parts: 2,
            }),
            null_version: true,
            in_versions: false,
            tiering: Tiering::default(),
            tags: vec![],
            part_checksums: vec![],
            lock: ObjectLock::default(),
            encryption: None,
        };
        assert_eq!(ObjectHead::decode(h.encode()).unwrap(), h);
        let enc = h.encode();
        for cut in 0..enc.len() {
            assert!(ObjectHead::decode(enc.slice(..cut)).is_err());
        }
        // A composite checksum's N is the head's part count.
        h.checksum = Some(ObjectChecksum {
            sum: sha,
            kind: Kind::Composite,
            parts: 3,
        });
        assert!(ObjectHead::decode(h.encode()).is_err());
    }

    /// Records of the formats before versioning: a head at 2, a bucket record and a listing
    /// entry at 1 (encoded by the code of that time; never change these).
    #[test]
    fn records_before_versioning_still_decode() {
        let h = ObjectHead::decode(hex_bytes(HEAD_V2_HEX)).unwrap();
        assert_eq!(
            (h.size, h.etag.as_str(), h.policy),
            (3, "e", Policy::Replicas(2))
        );
        assert_eq!(
            h.checksum.map(|c| (c.kind, c.parts)),
            Some((Kind::FullObject, 1))
        );
        assert!(
            h.null_version && !h.in_versions,
            "written before versioning: null"
        );
        let b = BucketRecord::decode(hex_bytes("010068e5cf8b0100000400726f6f74")).unwrap();
        assert_eq!(b.owner, "root");
        assert_eq!(b.created_ms, 1_700_000_000_000);
        assert_eq!(b.versioning, Versioning::Unversioned);
        let l =
            ListingEntry::decode(hex_bytes("0103000000000000000068e5cf8b010000010065")).unwrap();
        assert_eq!((l.size, l.etag.as_str(), l.in_versions), (3, "e", false));
    }

    fn small_head(null_version: bool, in_versions: bool) -> ObjectHead {
        ObjectHead {
            size: 3,
            modified_ms: 1_700_000_000_000,
            etag: "e".into(),
            version_id: [3; 12],
            chunk_bytes: 1 << 20,
            policy: Policy::Replicas(2),
            content_type: String::new(),
            metadata: vec![],
            headers: vec![],
            parts: vec![PartRef {
                version_id: [3; 12],
                size: 3,
            }],
            checksum: None,
            null_version,
            in_versions,
            tiering: Tiering::default(),
            tags: vec![],
            part_checksums: vec![],
            lock: ObjectLock::default(),
            encryption: None,
        }
    }

    /// Gives `h` (of one part) a composite checksum and its part's checksum.
    fn with_part_checksum(h: &mut ObjectHead) {
        assert_eq!(h.parts.len(), 1);
        let sum = Sum::new(Algo::Crc32, &[1; 4]).unwrap();
        h.checksum = Some(ObjectChecksum {
            sum: sum.clone(),
            kind: Kind::Composite,
            parts: 1,
        });
        h.part_checksums = vec![sum];
    }

    /// Format 6: a head of a multipart upload with a checksum algorithm keeps each part's
    /// checksum after the tags; a head without them stays at format 5.
    #[test]
    fn part_checksums_make_format_6() {
        let mut h = small_head(false, true);
        let sum = |b: u8| Sum::new(Algo::Crc32, &[b; 4]).unwrap();
        h.parts.push(PartRef {
            version_id: [4; 12],
            size: 2,
        });
        h.size = 5;
        h.checksum = Some(ObjectChecksum {
            sum: sum(9),
            kind: Kind::Composite,
            parts: 2,
        });
        assert_eq!(h.encode()[0], HEAD_TAGS);
        h.part_checksums = vec![sum(1), sum(2)];
        let enc = h.encode();
        assert_eq!(enc[0], HEAD_PART_SUMS);
        let code = algo_code(Algo::Crc32);
        assert!(hex::encode(&enc).ends_with(&format!("0000{code:02x}01010101{code:02x}02020202")));
        assert_eq!(ObjectHead::decode(enc.clone()).unwrap(), h);
        let without = h.clone();
        let cut_from = {
            let mut w = without;
            w.part_checksums.clear();
            w.encode().len()
        };
        for cut in cut_from..enc.len() {
            assert!(
                ObjectHead::decode(enc.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        // A part's checksum in another algorithm than the object's is refused.
        let mut other = enc.to_vec();
        let at = other.len() - 5;
        other[at] = algo_code(Algo::Sha1);
        assert!(ObjectHead::decode(Bytes::from(other)).is_err());
    }

    /// The versioning formats, pinned byte for byte (add a fixture for a new format instead
    /// of changing these).
    #[test]
    fn versioning_formats_are_pinned() {
        let h = small_head(false, true);
        // Format 3 (before storage classes) still decodes, as STANDARD on nvme.
        assert_eq!(ObjectHead::decode(hex_bytes(HEAD_V3_HEX)).unwrap(), h);
        // Format 4: the same fields, then class, tier, last access, infrequent, restore.
        let head_hex = HEAD_V4_HEX;
        assert_eq!(ObjectHead::decode(hex_bytes(head_hex)).unwrap(), h);
        // Format 5: format 4's fields, then the tags (none here).
        let head_v5_hex = concat!(
            "0503000000000000000068e5cf8b01000003030303030303030303030300001000000201006500",
            "00010000000303030303030303030303030300000000000000000000000002",
            "000000000000000000000000",
            "0000",
        );
        assert_eq!(hex::encode(h.encode()), head_v5_hex);
        assert_eq!(ObjectHead::decode(hex_bytes(head_v5_hex)).unwrap(), h);
        // With tags, and every cut of it refused.
        let mut tagged = small_head(false, true);
        tagged.tags = vec![("k".into(), "v".into()), ("empty".into(), String::new())];
        let enc = tagged.encode();
        assert_eq!(ObjectHead::decode(enc.clone()).unwrap(), tagged);
        assert!(hex::encode(&enc).ends_with("020001006b0100760500656d7074790000"));
        for cut in head_v5_hex.len() / 2..enc.len() {
            assert!(
                ObjectHead::decode(enc.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let null = small_head(true, false);
        assert_eq!(ObjectHead::decode(null.encode()).unwrap(), null);

        // Format 2 (before incarnations) decodes with the legacy id.
        let bucket = BucketRecord {
            versioning: Versioning::Enabled,
            ..BucketRecord::new("root".into(), 1_700_000_000_000, BucketId::LEGACY)
        };
        let bucket_hex = "020068e5cf8b0100000400726f6f7401";
        assert_eq!(BucketRecord::decode(hex_bytes(bucket_hex)).unwrap(), bucket);
        assert!(BucketRecord::decode(hex_bytes("020068e5cf8b0100000400726f6f7403")).is_err());
        assert!(BucketRecord::decode(hex_bytes("020068e5cf8b0100000400726f6f74")).is_err());

        let listing = ListingEntry {
            size: 3,
            modified_ms: 1_700_000_000_000,
            etag: "e".into(),
            in_versions: true,
            class: StorageClass::Standard,
        };
        // Format 2 decodes as STANDARD; format 3 adds the class.
        let listing_v2_hex = "0203000000000000000068e5cf8b01000001006502";
        assert_eq!(
            ListingEntry::decode(hex_bytes(listing_v2_hex)).unwrap(),
            listing
        );
        let listing_hex = "0303000000000000000068e5cf8b0100000100650200";
        assert_eq!(hex::encode(listing.encode()), listing_hex);
        assert_eq!(
            ListingEntry::decode(hex_bytes(listing_hex)).unwrap(),
            listing
        );

        let object = VersionRecord::Object(h.clone());
        // A version record holding a format 4 head decodes; new ones hold format 5.
        let object_v4_hex = format!("0101{head_hex}");
        assert_eq!(
            VersionRecord::decode(hex_bytes(&object_v4_hex)).unwrap(),
            object
        );
        let object_hex = format!("0101{head_v5_hex}");
        assert_eq!(hex::encode(object.encode()), object_hex);
        assert_eq!(
            VersionRecord::decode(hex_bytes(&object_hex)).unwrap(),
            object
        );
        // A head recorded from an unversioned write keeps its null flag.
        let recorded = VersionRecord::Object(small_head(true, true));
        assert_eq!(VersionRecord::decode(recorded.encode()).unwrap(), recorded);

        let marker = VersionRecord::DeleteMarker(DeleteMarker {
            version_id: [5; 12],
            null_version: true,
            modified_ms: 1_700_000_000_000,
        });
        let marker_hex = "0102010505050505050505050505050068e5cf8b010000";
        assert_eq!(hex::encode(marker.encode()), marker_hex);
        assert_eq!(
            VersionRecord::decode(hex_bytes(marker_hex)).unwrap(),
            marker
        );
        let enc = marker.encode();
        for cut in 0..enc.len() {
            assert!(VersionRecord::decode(enc.slice(..cut)).is_err());
        }
        assert!(VersionRecord::decode(hex_bytes("0103")).is_err());
    }

    /// Format 7: a head with Object Lock state, pinned byte for byte; every cut of it refused;
    /// part checksums kept behind their presence byte; a head without lock state stays at 5/6.
    #[test]
    fn lock_state_makes_format_7() {
        let mut h = small_head(false, true);
        let v5 = hex::encode(h.encode());
        assert_eq!(&v5[..2], "05");
        h.lock = ObjectLock {
            retention: Some(Retention {
                mode: LockMode::Compliance,
                until_ms: 1_700_000_000_000,
            }),
            legal_hold: Some(true),
        };
        let enc = h.encode();
        // Format 5's fields, no part checksums (0), COMPLIANCE (2) until the ms, hold ON (1).
        let hex7 = format!("07{}00020068e5cf8b01000001", &v5[2..]);
        assert_eq!(hex::encode(&enc), hex7);
        assert_eq!(ObjectHead::decode(hex_bytes(&hex7)).unwrap(), h);
        for cut in 0..enc.len() {
            assert!(
                ObjectHead::decode(enc.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        // A hold alone, set OFF: distinct from never set.
        h.lock = ObjectLock {
            retention: None,
            legal_hold: Some(false),
        };
        let off = h.encode();
        assert_eq!(hex::encode(&off), format!("07{}000002", &v5[2..]));
        assert_eq!(ObjectHead::decode(off).unwrap(), h);
        // Unknown codes are refused: mode 3, hold 3, part-sum presence 2.
        for bad in [
            format!("07{}000300", &v5[2..]),
            format!("07{}000003", &v5[2..]),
            format!("07{}020002", &v5[2..]),
        ] {
            assert!(ObjectHead::decode(hex_bytes(&bad)).is_err(), "{bad}");
        }
        // With part checksums too: both survive.
        let sum = |b: u8| Sum::new(Algo::Crc32, &[b; 4]).unwrap();
        h.checksum = Some(ObjectChecksum {
            sum: sum(9),
            kind: Kind::Composite,
            parts: 1,
        });
        h.part_checksums = vec![sum(1)];
        h.lock.retention = Some(Retention {
            mode: LockMode::Governance,
            until_ms: 5,
        });
        let enc = h.encode();
        assert_eq!(enc[0], HEAD_LOCK);
        assert_eq!(ObjectHead::decode(enc.clone()).unwrap(), h);
        for cut in 0..enc.len() {
            assert!(ObjectHead::decode(enc.slice(..cut)).is_err());
        }
        h.lock = ObjectLock::default();
        assert_eq!(h.encode()[0], HEAD_PART_SUMS);
        for m in [LockMode::Governance, LockMode::Compliance] {
            assert_eq!(LockMode::parse(m.as_str()), Some(m));
            assert_eq!(LockMode::of(m.code()), Some(m));
        }
        assert_eq!(LockMode::parse("governance"), None);
    }

    /// Format 8: format 7's fields, then the encryption (kind, plaintext size, wrapped key),
    /// pinned byte for byte around the random wrap; every cut refused; a plaintext size that
    /// does not seal to the stored size, an unknown kind or a damaged wrap refused.
    #[test]
    fn encryption_makes_format_8() {
        use crate::keywrap::WrappedKey;
        use crate::seal::{stored_size, DataKey};
        let mut h = small_head(false, true);
        h.size = stored_size(3);
        h.parts[0].size = h.size;
        let v5 = hex::encode(h.encode());
        assert_eq!(&v5[..2], "05");
        let kek = [7u8; 32];
        let key = DataKey::random();
        let wrapped = WrappedKey::wrap(&kek, &key);
        h.encryption = Some(Encryption {
            kind: EncryptionKind::Customer,
            plain_bytes: 3,
            wrapped: wrapped.clone(),
        });
        let enc = h.encode();
        // Format 5's fields, no part checksums (0), no lock (0, 0), SSE-C (1), 3 plain bytes.
        let hex8 = format!(
            "08{}000000010300000000000000{}",
            &v5[2..],
            hex::encode(wrapped.encode())
        );
        assert_eq!(hex::encode(&enc), hex8);
        let back = ObjectHead::decode(enc.clone()).unwrap();
        assert_eq!(back, h);
        let opened = back.encryption.unwrap().wrapped.unwrap(&kek).unwrap();
        assert_eq!(opened, key);
        for cut in 0..enc.len() {
            assert!(
                ObjectHead::decode(enc.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let kind_at = enc.len() - crate::keywrap::WRAPPED_KEY_BYTES - 8 - 1;
        let bad = |at: usize, byte: u8| {
            let mut b = enc.to_vec();
            b[at] = byte;
            ObjectHead::decode(Bytes::from(b)).is_err()
        };
        assert!(bad(kind_at, 2), "unknown kind");
        assert!(bad(kind_at, 0), "kind 0");
        assert!(bad(kind_at + 1, 4), "4 plain bytes do not seal to 19");
        assert!(bad(kind_at + 9, 2), "wrap format 2");
        // Lock state and part checksums ride along.
        h.lock.legal_hold = Some(true);
        with_part_checksum(&mut h);
        let enc = h.encode();
        assert_eq!(enc[0], HEAD_SSE);
        assert_eq!(ObjectHead::decode(enc).unwrap(), h);
        h.encryption = None;
        assert_eq!(h.encode()[0], HEAD_LOCK);
    }

    /// A byte after a head's last field is damage, in every format, 1 to 8 (heads of format 1
    /// to 7 were once read without that check).
    #[test]
    fn heads_with_trailing_bytes_are_refused() {
        let mut heads: Vec<Bytes> = [HEAD_V1_HEX, HEAD_V2_HEX, HEAD_V3_HEX, HEAD_V4_HEX]
            .into_iter()
            .map(hex_bytes)
            .collect();
        let mut h = small_head(false, true);
        heads.push(h.encode());
        with_part_checksum(&mut h);
        heads.push(h.encode());
        h.lock.legal_hold = Some(false);
        heads.push(h.encode());
        h.size = crate::seal::stored_size(3);
        h.parts[0].size = h.size;
        h.encryption = Some(Encryption {
            kind: EncryptionKind::Customer,
            plain_bytes: 3,
            wrapped: crate::keywrap::WrappedKey::wrap(&[1; 32], &crate::seal::DataKey::random()),
        });
        heads.push(h.encode());
        let formats: Vec<u8> = heads.iter().map(|b| b[0]).collect();
        assert_eq!(formats, [1, 2, 3, 4, 5, 6, 7, 8]);
        for head in heads {
            assert!(ObjectHead::decode(head.clone()).is_ok());
            let mut longer = head.to_vec();
            longer.push(0);
            assert!(
                ObjectHead::decode(Bytes::from(longer)).is_err(),
                "format {}",
                head[0]
            );
        }
    }

    /// Format 5 of uploads: format 4 with the lock state the completed object gets.
    #[test]
    fn upload_lock_state_makes_format_5() {
        let mut upload = UploadRecord {
            owner: "o".into(),
            initiated_ms: 1,
            content_type: String::new(),
            metadata: vec![],
            headers: vec![],
            checksum: None,
            class: StorageClass::Standard,
            tags: vec![],
            lock: ObjectLock::default(),
        };
        let v4 = hex::encode(upload.encode());
        assert_eq!(v4, "04010000000000000001006f00000000000000000000");
        upload.lock = ObjectLock {
            retention: Some(Retention {
                mode: LockMode::Governance,
                until_ms: 1_700_000_000_000,
            }),
            legal_hold: None,
        };
        let enc = upload.encode();
        assert_eq!(
            hex::encode(&enc),
            format!("05{}010068e5cf8b01000000", &v4[2..])
        );
        assert_eq!(UploadRecord::decode(enc.clone()).unwrap(), upload);
        for cut in v4.len() / 2..enc.len() {
            assert!(
                UploadRecord::decode(enc.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn completion_records_are_pinned() {
        let c = CompletionRecord {
            completed_ms: 1_700_000_000_000,
            parts_digest: 0x0102_0304_0506_0708,
            version_id: Some("v".into()),
            etag: "e-2".into(),
        };
        let hex = "010068e5cf8b010000080706050403020101010076030065 2d32".replace(' ', "");
        assert_eq!(hex::encode(c.encode()), hex);
        assert_eq!(CompletionRecord::decode(hex_bytes(&hex)).unwrap(), c);
        let enc = c.encode();
        for cut in 0..enc.len() {
            assert!(CompletionRecord::decode(enc.slice(..cut)).is_err());
        }
        let none = CompletionRecord {
            version_id: None,
            ..c
        };
        assert_eq!(CompletionRecord::decode(none.encode()).unwrap(), none);
        assert_eq!(
            hex::encode(completion_key("b/01", "k", "u")),
            "4d622f3031006b0075"
        );
        assert_eq!(parts_digest(&[(1, "\"a\"")]), parts_digest(&[(1, "a")]));
        assert_ne!(parts_digest(&[(1, "a")]), parts_digest(&[(2, "a")]));
        assert_ne!(
            parts_digest(&[(1, "a"), (2, "b")]),
            parts_digest(&[(1, "ab")])
        );
    }

    /// Format 3 of bucket records (incarnations), pinned byte for byte, and the scopes its
    /// keys are made of.
    #[test]
    fn bucket_incarnations_are_pinned() {
        let id = BucketId::new(0x0102_0304_0506_0708, [0xaa; 8]);
        let bucket = BucketRecord {
            versioning: Versioning::Enabled,
            ..BucketRecord::new("root".into(), 1_700_000_000_000, id)
        };
        let hex = concat!(
            "030068e5cf8b0100000400726f6f7401",
            "0807060504030201aaaaaaaaaaaaaaaa00"
        );
        assert_eq!(hex::encode(bucket.encode()), hex);
        assert_eq!(BucketRecord::decode(hex_bytes(hex)).unwrap(), bucket);
        let deleting = BucketRecord {
            deleting: true,
            ..bucket.clone()
        };
        assert_eq!(
            hex::encode(deleting.encode()),
            format!("{}01", &hex[..hex.len() - 2])
        );
        // Flag 2: tags changed after upload (`tags_changed`).
        let retagged = BucketRecord {
            tags_changed: true,
            ..bucket.clone()
        };
        assert_eq!(
            hex::encode(retagged.encode()),
            format!("{}02", &hex[..hex.len() - 2])
        );
        assert_eq!(BucketRecord::decode(retagged.encode()).unwrap(), retagged);
        // Flag 4: Object Lock enabled.
        let locked = BucketRecord {
            object_lock: true,
            ..bucket.clone()
        };
        assert_eq!(
            hex::encode(locked.encode()),
            format!("{}04", &hex[..hex.len() - 2])
        );
        assert_eq!(BucketRecord::decode(locked.encode()).unwrap(), locked);
        assert!(BucketRecord::decode(hex_bytes(&format!("{}08", &hex[..hex.len() - 2]))).is_err());
        assert!(BucketRecord::decode(hex_bytes(&format!("{hex}00"))).is_err());
        let enc = bucket.encode();
        for cut in 0..enc.len() {
            assert!(BucketRecord::decode(enc.slice(..cut)).is_err());
        }
        // Format 1 too: legacy id, so the scope is the bare name and the old keys stay.
        let v1 = BucketRecord::decode(hex_bytes("010068e5cf8b0100000400726f6f74")).unwrap();
        assert_eq!((v1.id, v1.deleting), (BucketId::LEGACY, false));
        assert_eq!(v1.scope("photos"), "photos");
        assert_eq!(
            hex::encode(head_key(&v1.scope("photos"), "k")),
            "4f70686f746f73006b"
        );

        // A new incarnation's keys: the scope `name/hex id`, pinned.
        let scope = bucket.scope("photos");
        assert_eq!(scope, "photos/0807060504030201aaaaaaaaaaaaaaaa");
        assert_eq!(scope_name(&scope), "photos");
        assert_eq!(scope_name("photos"), "photos");
        assert_eq!(
            hex::encode(head_key(&scope, "k")),
            concat!(
                "4f70686f746f732f30383037303630353034303330323031",
                "6161616161616161616161616161616100",
                "6b"
            )
        );
        // No key of one incarnation is under a prefix of another, or of the legacy scope.
        let again = BucketRecord::new("root".into(), 1, BucketId::new(2, [0xaa; 8]));
        let scopes = [v1.scope("photos"), scope.clone(), again.scope("photos")];
        for (i, a) in scopes.iter().enumerate() {
            for (j, b) in scopes.iter().enumerate() {
                let keys = [
                    head_key(a, "k"),
                    listing_key(a, "k"),
                    upload_key(a, "k", "u"),
                    version_key(a, "k", &[1; 12]),
                ];
                let prefixes = [
                    tagged(b'O', b, ""),
                    listing_key(b, ""),
                    tagged(b'U', b, ""),
                    versions_prefix(b, b"").freeze(),
                ];
                for (k, p) in keys.iter().zip(&prefixes) {
                    assert_eq!(k.starts_with(p), i == j, "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn version_keys_order_newest_first_and_keys_bytewise() {
        let id = |hlc: u64| {
            let mut v = [7u8; 12];
            v[..8].copy_from_slice(&hlc.to_le_bytes());
            v
        };
        // Pinned: V ‖ bucket ‖ 0 ‖ key (0 → 0 ff) ‖ 0 0 ‖ !hlc BE ‖ id.
        assert_eq!(
            hex::encode(version_key("b", "a\0", &id(1))),
            concat!(
                "5662006100ff0000fffffffffffffffe",
                "010000000000000007070707"
            )
        );
        assert!(version_key("b", "k", &id(2)) < version_key("b", "k", &id(1)));
        let keys = ["a", "a\0", "a\0\0", "a\0b", "a\u{1}", "ab", "b"];
        for pair in keys.windows(2) {
            let lo = version_key("b", pair[0], &id(1));
            let hi = version_key("b", pair[1], &id(u64::MAX - 1));
            assert!(lo < hi, "{pair:?}");
            assert!(
                !hi.starts_with(&key_versions_prefix("b", pair[0])),
                "{pair:?}"
            );
        }
        let base = versions_prefix("b", b"").len();
        for k in keys {
            let v = version_key("b", k, &id(9));
            assert_eq!(
                parse_version_key(&v[base..]),
                Some((k.as_bytes().to_vec(), id(9)))
            );
            assert!(v.starts_with(&versions_prefix("b", &k.as_bytes()[..1])));
        }
        assert_eq!(parse_version_key(b"a\0\0short"), None);
        assert_eq!(parse_version_key(b"a\0\x01"), None);
    }

    #[test]
    fn tiering_round_trips_and_rejects_garbage() {
        let mut h = small_head(false, true);
        h.tiering = Tiering {
            class: StorageClass::Glacier,
            tier: placement::Tier::Hdd,
            restore: Some(Restore {
                ongoing: false,
                expiry_ms: 1_700_000_100_000,
                days: 7,
                policy: Policy::Ec { k: 4, m: 2 },
                tier: placement::Tier::Nvme,
                parts: vec![PartRef {
                    version_id: [9; 12],
                    size: 3,
                }],
            }),
            last_access_ms: 42,
            infrequent: true,
        };
        let bytes = h.encode();
        assert_eq!(ObjectHead::decode(bytes.clone()).unwrap(), h);
        for cut in 1..30 {
            assert!(ObjectHead::decode(bytes.slice(..bytes.len() - cut)).is_err());
        }
        let upload = UploadRecord {
            owner: "o".into(),
            initiated_ms: 1,
            content_type: String::new(),
            metadata: vec![],
            headers: vec![],
            checksum: None,
            class: StorageClass::DeepArchive,
            tags: vec![],
            lock: ObjectLock::default(),
        };
        // Format 3 (before tags) still decodes; format 4 adds the tags.
        let v3 = hex_bytes("03010000000000000001006f0000000000000004");
        assert_eq!(UploadRecord::decode(v3).unwrap(), upload);
        let hexed = hex::encode(upload.encode());
        assert_eq!(hexed, "04010000000000000001006f00000000000000040000");
        assert_eq!(UploadRecord::decode(upload.encode()).unwrap(), upload);
        let tagged = UploadRecord {
            tags: vec![("a".into(), "b".into())],
            ..upload.clone()
        };
        let enc = tagged.encode();
        assert_eq!(UploadRecord::decode(enc.clone()).unwrap(), tagged);
        for cut in hexed.len() / 2..enc.len() {
            assert!(
                UploadRecord::decode(enc.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        for c in StorageClass::ALL {
            assert_eq!(StorageClass::parse(c.as_str()), Some(c));
            assert_eq!(StorageClass::of(c.code()), Some(c));
        }
        assert_eq!(StorageClass::parse("REDUCED_REDUNDANCY"), None);
    }
}
