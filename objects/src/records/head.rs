//! Object heads (a version's data, checksums, tiering, tags, lock and encryption state),
//! the stripes and fragment ids of their data, and their codec.

use super::{
    check, get_object_checksum, get_pairs, get_str, get_sum, put_object_checksum, put_str, put_sum,
    Buf, BufMut, Bytes, BytesMut, Malformed, ObjectChecksum, Policy, Sum, FLAG_IN_VERSIONS,
    FLAG_NULL_VERSION, HEAD_ACL, HEAD_LOCK, HEAD_PART_SUMS, HEAD_SSE, HEAD_SSE_PARTS, HEAD_TAGS,
    HEAD_TIERING, HEAD_VERSIONING, SSE_CUSTOMER, SSE_KMS, SSE_MASTER, VERSION, VERSION_CHECKSUMS,
};

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

    pub(super) fn code(self) -> u8 {
        match self {
            StorageClass::Standard => 0,
            StorageClass::StandardIa => 1,
            StorageClass::IntelligentTiering => 2,
            StorageClass::Glacier => 3,
            StorageClass::DeepArchive => 4,
        }
    }

    pub(super) fn of(code: u8) -> Option<StorageClass> {
        StorageClass::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Archive classes: readable only through a completed restore.
    pub fn is_archive(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }
}

/// Persisted codes of the placement tiers.
pub(super) fn tier_code(t: placement::Tier) -> u8 {
    match t {
        placement::Tier::Nvme => 0,
        placement::Tier::Ssd => 1,
        placement::Tier::Hdd => 2,
    }
}

pub(super) fn tier_of(code: u8) -> Option<placement::Tier> {
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
    /// The version's owner (a user id) when it is not the bucket's owner, who owns every
    /// version without one (heads before format 9: none).
    pub owner: Option<String>,
    /// The version's access control list, as the S3 layer encodes it (opaque here; heads
    /// before format 9: none, which the S3 layer reads as its default). At most
    /// `limits::HEAD_ACL_BYTES_MAX` bytes, never empty.
    pub acl: Option<Bytes>,
}

/// A version's server-side encryption: its body is sealed (`seal`) under a data key kept
/// only wrapped (`keywrap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    pub kind: EncryptionKind,
    /// The plaintext size (what listings, HEAD and GET show).
    pub plain_bytes: u64,
    pub wrapped: crate::keywrap::WrappedKey,
    /// Empty for a body sealed whole (PutObject, CopyObject) under the wrapped key's nonce
    /// base. A multipart upload's body has one nonce base per part: each part is sealed
    /// alone (its own packages, its own last one) under the wrapped data key and its nonce
    /// base, drawn at random when the part was uploaded (a part uploaded again gets another,
    /// so no nonce repeats under the upload's key).
    pub part_nonces: Vec<[u8; crate::seal::NONCE_BASE_BYTES]>,
}

impl Encryption {
    /// The key and nonce base part `part` of the body is sealed under.
    pub fn part_key(&self, data_key: &crate::seal::DataKey, part: usize) -> crate::seal::DataKey {
        match self.part_nonces.get(part) {
            None => data_key.clone(),
            Some(nonce_base) => crate::seal::DataKey {
                key: data_key.key,
                nonce_base: *nonce_base,
            },
        }
    }
}

/// Who holds the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionKind {
    /// SSE-C: the client sends its key with every request; it is never stored.
    Customer,
    /// SSE-S3: the master key file's key `key_id` (the active one when the object was
    /// written; rotation keeps it).
    Master { key_id: String },
    /// SSE-KMS: the master key file's key the request named.
    Kms { key_id: String },
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

    pub(super) fn code(self) -> u8 {
        match self {
            LockMode::Governance => 1,
            LockMode::Compliance => 2,
        }
    }

    pub(super) fn of(code: u8) -> Option<LockMode> {
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
pub(super) fn put_lock(b: &mut BytesMut, lock: &ObjectLock) {
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

pub(super) fn get_lock(b: &mut Bytes, what: &'static str) -> Result<ObjectLock, Malformed> {
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

impl ObjectHead {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        let sealed_parts = self
            .encryption
            .as_ref()
            .is_some_and(|e| !e.part_nonces.is_empty());
        let format = match (self.lock.is_none(), self.part_checksums.is_empty()) {
            _ if sealed_parts => HEAD_SSE_PARTS,
            _ if self.acl.is_some() || self.owner.is_some() => HEAD_ACL,
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
        if format >= HEAD_ACL {
            b.put_u8(u8::from(self.encryption.is_some()));
        }
        if let Some(e) = &self.encryption {
            assert_eq!(
                sealed_part_sizes(&self.parts, e).map(|p| p.iter().sum()),
                Some(e.plain_bytes),
                "every part a sealed body, adding up to the plaintext size"
            );
            put_sse_kind(&mut b, &e.kind);
            b.put_u64_le(e.plain_bytes);
            b.put_slice(&e.wrapped.encode());
            if format == HEAD_SSE_PARTS {
                b.put_u32_le(e.part_nonces.len() as u32);
                for nonce in &e.part_nonces {
                    b.put_slice(nonce);
                }
            }
        }
        if format >= HEAD_ACL {
            put_owner_and_acl(&mut b, self.owner.as_deref(), self.acl.as_ref());
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<ObjectHead, Malformed> {
        check(&b, 1 + 8 + 8 + 12 + 4 + 2, "object")?;
        let format = b.get_u8();
        let (with_checksum, with_flags) = match format {
            VERSION => (false, false),
            VERSION_CHECKSUMS => (true, false),
            HEAD_VERSIONING | HEAD_TIERING | HEAD_TAGS | HEAD_PART_SUMS | HEAD_LOCK | HEAD_SSE
            | HEAD_ACL | HEAD_SSE_PARTS => (true, true),
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
        let total = parts
            .iter()
            .try_fold(0u64, |sum, p| sum.checked_add(p.size));
        if total != Some(size) {
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
            HEAD_LOCK | HEAD_SSE | HEAD_ACL | HEAD_SSE_PARTS => get_presence(&mut b)?,
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
        let encrypted = match format {
            HEAD_SSE => true,
            HEAD_ACL | HEAD_SSE_PARTS => get_presence(&mut b)?,
            _ => false,
        };
        let encryption = if encrypted {
            Some(get_encryption(&mut b, &parts, format == HEAD_SSE_PARTS)?)
        } else {
            None
        };
        let (owner, acl) = if format >= HEAD_ACL {
            get_owner_and_acl(&mut b, "object")?
        } else {
            (None, None)
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
            owner,
            acl,
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

    /// The stored byte range (first, length) of part `number` (1-based).
    pub fn part_range(&self, number: usize) -> Option<(u64, u64)> {
        let first: u64 = self
            .parts
            .iter()
            .take(number.checked_sub(1)?)
            .map(|p| p.size)
            .sum();
        self.parts.get(number - 1).map(|p| (first, p.size))
    }

    /// Each part's size as S3 shows it: its plaintext's for an encrypted body.
    pub fn shown_part_sizes(&self) -> Vec<u64> {
        match &self.encryption {
            None => self.parts.iter().map(|p| p.size).collect(),
            Some(e) => sealed_part_sizes(&self.parts, e).expect("heads are checked"),
        }
    }

    /// The range (first, length) of part `number` (1-based) as S3 shows it (GET and HEAD
    /// with partNumber): of the plaintext for an encrypted body.
    pub fn shown_part_range(&self, number: usize) -> Option<(u64, u64)> {
        let sizes = self.shown_part_sizes();
        let first = sizes.iter().take(number.checked_sub(1)?).sum();
        sizes.get(number - 1).map(|size| (first, *size))
    }

    /// The stored bytes that serve plaintext bytes [first, first + len) of an encrypted
    /// body (`len` > 0, within the plaintext): one piece per part the range touches, in
    /// order. `None` for a plain body.
    pub fn sealed_pieces(&self, first: u64, len: u64) -> Option<Vec<SealedPiece>> {
        let e = self.encryption.as_ref()?;
        assert!(
            len > 0 && first + len <= e.plain_bytes,
            "a range of the plaintext"
        );
        let mut pieces = Vec::new();
        let (mut plain_at, mut stored_at) = (0, 0);
        for (part, (p, plain_bytes)) in self.parts.iter().zip(self.shown_part_sizes()).enumerate() {
            let (from, to) = (
                first.max(plain_at),
                (first + len).min(plain_at + plain_bytes),
            );
            if from < to {
                let range =
                    crate::seal::stored_range(plain_bytes, from - plain_at, to - plain_at - 1);
                pieces.push(SealedPiece {
                    part,
                    stored_offset: stored_at + range.stored_offset,
                    range,
                    plain_bytes,
                    len: to - from,
                });
            }
            plain_at += plain_bytes;
            stored_at += p.size;
        }
        Some(pieces)
    }
}

/// A presence byte of a head: 0 (absent) or 1 (present), anything else damage.
fn get_presence(b: &mut Bytes) -> Result<bool, Malformed> {
    check(b, 1, "object")?;
    match b.get_u8() {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Malformed("object")),
    }
}

/// A version's owner (`put_str`, empty: the bucket owner) ‖ its ACL (u16 length, 0: none ‖
/// bytes).
pub(super) fn put_owner_and_acl(b: &mut BytesMut, owner: Option<&str>, acl: Option<&Bytes>) {
    assert!(
        owner.is_none_or(|o| !o.is_empty() && o.len() <= crate::limits::OWNER_ID_BYTES_MAX),
        "owners are user ids"
    );
    put_str(b, owner.unwrap_or(""));
    let acl = acl.map_or(&[][..], |a| &a[..]);
    assert!(
        acl.len() <= crate::limits::HEAD_ACL_BYTES_MAX,
        "ACLs are bounded by the S3 layer"
    );
    b.put_u16_le(acl.len() as u16);
    b.put_slice(acl);
}

pub(super) fn get_owner_and_acl(
    b: &mut Bytes,
    what: &'static str,
) -> Result<(Option<String>, Option<Bytes>), Malformed> {
    let owner = get_str(b, what)?;
    if owner.len() > crate::limits::OWNER_ID_BYTES_MAX {
        return Err(Malformed(what));
    }
    check(b, 2, what)?;
    let len = usize::from(b.get_u16_le());
    if len > crate::limits::HEAD_ACL_BYTES_MAX || b.remaining() < len {
        return Err(Malformed(what));
    }
    let acl = b.split_to(len);
    Ok((
        (!owner.is_empty()).then_some(owner),
        (!acl.is_empty()).then_some(acl),
    ))
}

/// An encryption's kind: u8 ‖ (SSE-S3 and SSE-KMS: the key id, u16 length ‖ bytes).
pub(super) fn put_sse_kind(b: &mut BytesMut, kind: &EncryptionKind) {
    match kind {
        EncryptionKind::Customer => b.put_u8(SSE_CUSTOMER),
        EncryptionKind::Master { key_id } => {
            b.put_u8(SSE_MASTER);
            put_str(b, key_id);
        }
        EncryptionKind::Kms { key_id } => {
            b.put_u8(SSE_KMS);
            put_str(b, key_id);
        }
    }
}

pub(super) fn get_sse_kind(b: &mut Bytes, what: &'static str) -> Result<EncryptionKind, Malformed> {
    check(b, 1, what)?;
    let key_id = |b: &mut Bytes| -> Result<String, Malformed> {
        let id = get_str(b, what)?;
        if crate::master_keys::valid_id(&id) {
            Ok(id)
        } else {
            Err(Malformed(what))
        }
    };
    Ok(match b.get_u8() {
        SSE_CUSTOMER => EncryptionKind::Customer,
        SSE_MASTER => EncryptionKind::Master { key_id: key_id(b)? },
        SSE_KMS => EncryptionKind::Kms { key_id: key_id(b)? },
        _ => return Err(Malformed(what)),
    })
}

pub(super) fn get_wrapped_key(
    b: &mut Bytes,
    what: &'static str,
) -> Result<crate::keywrap::WrappedKey, Malformed> {
    check(b, crate::keywrap::WRAPPED_KEY_BYTES, what)?;
    crate::keywrap::WrappedKey::decode(&b.split_to(crate::keywrap::WRAPPED_KEY_BYTES))
        .map_err(|_| Malformed(what))
}

/// Each part's plaintext size, when every part is a sealed body and the parts and nonce
/// bases agree (one part without nonces, or one nonce base per part).
fn sealed_part_sizes(parts: &[PartRef], e: &Encryption) -> Option<Vec<u64>> {
    let agree = if e.part_nonces.is_empty() {
        parts.len() == 1
    } else {
        e.part_nonces.len() == parts.len()
    };
    if !agree {
        return None;
    }
    parts
        .iter()
        .map(|p| crate::seal::plain_size(p.size).ok())
        .collect()
}

/// A head's encryption: its kind (`put_sse_kind`) ‖ plaintext size u64 ‖ wrapped data key
/// (121 bytes) ‖ (format 10: u32 count ‖ a 12-byte nonce base per part). Every part must be
/// a sealed body's length and their plaintexts must add up to the plaintext size.
pub(super) fn get_encryption(
    b: &mut Bytes,
    parts: &[PartRef],
    with_part_nonces: bool,
) -> Result<Encryption, Malformed> {
    let kind = get_sse_kind(b, "object")?;
    check(b, 8, "object")?;
    let plain_bytes = b.get_u64_le();
    let wrapped = get_wrapped_key(b, "object")?;
    let mut part_nonces = Vec::new();
    if with_part_nonces {
        check(b, 4, "object")?;
        let n = b.get_u32_le() as usize;
        if n == 0 || n > crate::limits::PARTS_MAX || b.remaining() < n * 12 {
            return Err(Malformed("object"));
        }
        for _ in 0..n {
            let mut nonce = [0u8; crate::seal::NONCE_BASE_BYTES];
            b.copy_to_slice(&mut nonce);
            part_nonces.push(nonce);
        }
    }
    let e = Encryption {
        kind,
        plain_bytes,
        wrapped,
        part_nonces,
    };
    let total = sealed_part_sizes(parts, &e)
        .and_then(|p| p.iter().try_fold(0u64, |sum, s| sum.checked_add(*s)));
    if total != Some(plain_bytes) {
        return Err(Malformed("object"));
    }
    Ok(e)
}

/// The stored bytes of one part of an encrypted body that serve part of a plaintext range
/// (`ObjectHead::sealed_pieces`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedPiece {
    /// The part (0-based): its key is `Encryption::part_key`.
    pub part: usize,
    /// Where the packages to fetch start in the object's stored bytes.
    pub stored_offset: u64,
    /// The packages to fetch, within the part (`range.stored_len` bytes).
    pub range: crate::seal::StoredRange,
    /// The part's plaintext size.
    pub plain_bytes: u64,
    /// Plaintext bytes this piece serves.
    pub len: u64,
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

pub(super) fn put_policy(b: &mut BytesMut, p: Policy) {
    match p {
        Policy::Replicas(n) => b.put_slice(&[0, n]),
        Policy::Ec { k, m } => b.put_slice(&[k, m]),
    }
}

pub(super) fn get_policy(b: &mut Bytes, what: &'static str) -> Result<Policy, Malformed> {
    check(b, 2, what)?;
    match (b.get_u8(), b.get_u8()) {
        (0, n) if n > 0 => Ok(Policy::Replicas(n)),
        (k, m) if k > 0 && m > 0 => Ok(Policy::Ec { k, m }),
        _ => Err(Malformed(what)),
    }
}

/// class u8 ‖ tier u8 ‖ last access ms u64 ‖ infrequent u8 ‖ restore: 0, or 1 ‖ ongoing u8 ‖
/// expiry ms u64 ‖ days u32 ‖ policy 2 ‖ tier u8 ‖ part count u32 ‖ (version id 12 ‖ size u64)*.
pub(super) fn put_tiering(b: &mut BytesMut, t: &Tiering) {
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

pub(super) fn get_tiering(b: &mut Bytes) -> Result<Tiering, Malformed> {
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
