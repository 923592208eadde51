//! The metadata keys: bucket records, heads, listing entries, version records, uploads,
//! parts and completions, and the scopes (bucket incarnations) they are keyed by.

use super::{BucketId, BufMut, Bytes, BytesMut};

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

pub(super) fn tagged(tag: u8, bucket: &str, key: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(2 + bucket.len() + key.len());
    k.put_u8(tag);
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    k.put_slice(key.as_bytes());
    k.freeze()
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

/// The tag, scope and rest of a scoped record key, `tag ‖ scope ‖ 0 ‖ rest` (heads, tags,
/// versions, uploads, completions, listing entries, configurations: what
/// `Store::record_cores` routes); `None` without a NUL after the scope or with a scope that
/// is not UTF-8. Scopes hold no NUL, so the first one ends the scope.
pub fn split_scoped_key(key: &[u8]) -> Option<(u8, &str, &[u8])> {
    let (&tag, tail) = key.split_first()?;
    let at = tail.iter().position(|b| *b == 0)?;
    let scope = std::str::from_utf8(&tail[..at]).ok()?;
    Some((tag, scope, &tail[at + 1..]))
}

/// Where a scoped record routes (`record_route`): the object's key borrowed from the record's
/// key when it holds it as it is, owned when the record escapes it (a version key of an object
/// key holding NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordRoute<'k> {
    Bucket(&'k str),
    Listing(&'k str),
    Object(&'k str, std::borrow::Cow<'k, str>),
}

impl RecordRoute<'_> {
    pub fn route(&self) -> cluster::backend::Route<'_> {
        use cluster::backend::Route;
        match self {
            RecordRoute::Bucket(b) => Route::Bucket(b),
            RecordRoute::Listing(b) => Route::Listing(b),
            RecordRoute::Object(b, k) => Route::Object(b, k),
        }
    }
}

/// The route of the record `tag ‖ scope ‖ 0 ‖ rest`: heads (`O`), tags (`T`), versions (`V`),
/// uploads (`U`) and completions (`M`) on their object's, listing entries (`L`) on the bucket
/// listing's, configurations (`C`, `R`) on the bucket record's. `None`: another kind (part
/// records, keyed by their upload alone), or a key that does not parse.
pub fn record_route<'k>(tag: u8, scope: &'k str, rest: &'k [u8]) -> Option<RecordRoute<'k>> {
    use std::borrow::Cow;
    let object = |key: &'k [u8]| Some(Cow::Borrowed(std::str::from_utf8(key).ok()?));
    let key = match tag {
        b'O' | b'T' => object(rest)?,
        b'V' => {
            let (key, _) = parse_version_key(rest)?;
            if key.contains(&0) {
                Cow::Owned(String::from_utf8(key).ok()?)
            } else {
                object(&rest[..key.len()])?
            }
        }
        b'U' | b'M' => Cow::Borrowed(split_upload_rest(rest)?.0),
        b'L' => return Some(RecordRoute::Listing(scope)),
        b'C' | b'R' => return Some(RecordRoute::Bucket(scope)),
        _ => return None,
    };
    Some(RecordRoute::Object(scope, key))
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
