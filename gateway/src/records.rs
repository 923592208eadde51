//! The gateway's metadata records and keys (see gateway/DESIGN.md): bucket records, object
//! heads and listing entries, each a versioned fixed-width little-endian encoding. Decoding
//! never panics on bad bytes: a record that does not parse is an internal error, reported.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub modified_ms: u64,
    pub md5: [u8; 16],
    /// Unique per write of the object; fragment ids derive from it.
    pub version_id: [u8; 12],
    pub chunk_bytes: u32,
    pub replicas: u8,
    pub content_type: String,
    pub metadata: Vec<(String, String)>,
    /// Standard headers kept as given: cache-control, content-disposition, content-encoding,
    /// content-language, expires (by these names).
    pub headers: Vec<(String, String)>,
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
    pub md5: [u8; 16],
}

#[derive(Debug, thiserror::Error)]
#[error("malformed {0} record")]
pub struct Malformed(pub &'static str);

fn put_str(b: &mut BytesMut, s: &str) {
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
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u64_le(self.created_ms);
        put_str(&mut b, &self.owner);
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<BucketRecord, Malformed> {
        check(&b, 9, "bucket")?;
        if b.get_u8() != VERSION {
            return Err(Malformed("bucket"));
        }
        let created_ms = b.get_u64_le();
        Ok(BucketRecord {
            created_ms,
            owner: get_str(&mut b, "bucket")?,
        })
    }
}

impl ObjectHead {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u64_le(self.size);
        b.put_u64_le(self.modified_ms);
        b.put_slice(&self.md5);
        b.put_slice(&self.version_id);
        b.put_u32_le(self.chunk_bytes);
        b.put_u8(self.replicas);
        put_str(&mut b, &self.content_type);
        for list in [&self.metadata, &self.headers] {
            b.put_u16_le(list.len() as u16);
            for (k, v) in list {
                put_str(&mut b, k);
                put_str(&mut b, v);
            }
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<ObjectHead, Malformed> {
        check(&b, 1 + 8 + 8 + 16 + 12 + 4 + 1, "object")?;
        if b.get_u8() != VERSION {
            return Err(Malformed("object"));
        }
        let size = b.get_u64_le();
        let modified_ms = b.get_u64_le();
        let mut md5 = [0u8; 16];
        b.copy_to_slice(&mut md5);
        let mut version_id = [0u8; 12];
        b.copy_to_slice(&mut version_id);
        let chunk_bytes = b.get_u32_le();
        let replicas = b.get_u8();
        if chunk_bytes == 0 || replicas == 0 {
            return Err(Malformed("object"));
        }
        let content_type = get_str(&mut b, "object")?;
        let metadata = get_pairs(&mut b)?;
        let headers = get_pairs(&mut b)?;
        Ok(ObjectHead {
            size,
            modified_ms,
            md5,
            version_id,
            chunk_bytes,
            replicas,
            content_type,
            metadata,
            headers,
        })
    }

    /// Chunks the object is stored in.
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(u64::from(self.chunk_bytes))
    }

    /// The fragment id of chunk `i`: version id (96 bits) ‖ chunk index (24 bits) ‖ 0.
    pub fn fragment_id(&self, chunk: u64) -> proto::FragmentId {
        fragment_id(&self.version_id, chunk)
    }
}

pub fn fragment_id(version_id: &[u8; 12], chunk: u64) -> proto::FragmentId {
    assert!(
        chunk < (1 << 24),
        "chunk index fits 24 bits (checked by the size limit)"
    );
    let mut id = [0u8; 16];
    id[..12].copy_from_slice(version_id);
    id[12..15].copy_from_slice(&(chunk as u32).to_le_bytes()[..3]);
    proto::FragmentId(id)
}

impl ListingEntry {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u64_le(self.size);
        b.put_u64_le(self.modified_ms);
        b.put_slice(&self.md5);
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<ListingEntry, Malformed> {
        check(&b, 33, "listing")?;
        if b.get_u8() != VERSION {
            return Err(Malformed("listing"));
        }
        let size = b.get_u64_le();
        let modified_ms = b.get_u64_le();
        let mut md5 = [0u8; 16];
        b.copy_to_slice(&mut md5);
        Ok(ListingEntry {
            size,
            modified_ms,
            md5,
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
            md5: [3; 16],
            version_id: [9; 12],
            chunk_bytes: 1 << 20,
            replicas: 2,
            content_type: "text/plain".into(),
            metadata: vec![("a".into(), "ü".into())],
            headers: vec![("cache-control".into(), "no-cache".into())],
        };
        assert_eq!(ObjectHead::decode(h.encode()).unwrap(), h);
        assert_eq!(h.chunks(), 5);
        let enc = h.encode();
        for cut in 0..enc.len() {
            assert!(ObjectHead::decode(enc.slice(..cut)).is_err());
        }
        let b = BucketRecord {
            owner: "root".into(),
            created_ms: 7,
        };
        assert_eq!(BucketRecord::decode(b.encode()).unwrap(), b);
        let l = ListingEntry {
            size: 1,
            modified_ms: 2,
            md5: [1; 16],
        };
        assert_eq!(ListingEntry::decode(l.encode()).unwrap(), l);
        assert_ne!(fragment_id(&[1; 12], 0), fragment_id(&[1; 12], 1));
    }
}
