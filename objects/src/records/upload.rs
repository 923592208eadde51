//! Multipart upload, part and completion records and their codecs.

use super::head::{get_sse_kind, get_wrapped_key, put_sse_kind};
use super::Encryption;
use super::{
    algo_code, check, get_lock, get_pairs, get_str, get_sum, get_upload_checksum, get_version,
    kind_code, put_lock, put_str, put_sum, Buf, BufMut, Bytes, BytesMut, Malformed, ObjectLock,
    StorageClass, Sum, UploadChecksum, PART_SSE, UPLOAD_ACL, UPLOAD_CLASS, UPLOAD_LOCK, UPLOAD_SSE,
    UPLOAD_TAGS, VERSION, VERSION_CHECKSUMS,
};
use crate::seal::NONCE_BASE_BYTES;

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
    /// The owner and access control list the completed object gets (`ObjectHead::owner`,
    /// `ObjectHead::acl`).
    pub object_owner: Option<String>,
    pub acl: Option<Bytes>,
    /// How the parts are sealed: the encryption's kind and the upload's data key, wrapped
    /// (`plain_bytes` 0 and no nonce bases here: the completed head gets those).
    pub encryption: Option<Encryption>,
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
    /// The nonce base the part is sealed under (an encrypted upload's part; `size` and `md5`
    /// are then of the sealed bytes).
    pub nonce: Option<[u8; NONCE_BASE_BYTES]>,
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

impl UploadRecord {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        let owned = self.acl.is_some() || self.object_owner.is_some();
        let format = match (self.lock.is_none(), owned) {
            _ if self.encryption.is_some() => UPLOAD_SSE,
            (_, true) => UPLOAD_ACL,
            (true, false) => UPLOAD_TAGS,
            (false, false) => UPLOAD_LOCK,
        };
        b.put_u8(format);
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
        if format >= UPLOAD_LOCK {
            put_lock(&mut b, &self.lock);
        }
        if format >= UPLOAD_ACL {
            super::put_owner_and_acl(&mut b, self.object_owner.as_deref(), self.acl.as_ref());
        }
        if let Some(e) = &self.encryption {
            assert!(
                e.plain_bytes == 0 && e.part_nonces.is_empty(),
                "an upload's encryption is its kind and key"
            );
            put_sse_kind(&mut b, &e.kind);
            b.put_slice(&e.wrapped.encode());
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<UploadRecord, Malformed> {
        check(&b, 9, "upload")?;
        let format = b.get_u8();
        let (with_checksum, with_class) = match format {
            VERSION => (false, false),
            VERSION_CHECKSUMS => (true, false),
            UPLOAD_CLASS | UPLOAD_TAGS | UPLOAD_LOCK | UPLOAD_ACL | UPLOAD_SSE => (true, true),
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
        let lock = if format >= UPLOAD_LOCK {
            get_lock(&mut b, "upload")?
        } else {
            ObjectLock::default()
        };
        let (object_owner, acl) = if format >= UPLOAD_ACL {
            super::get_owner_and_acl(&mut b, "upload")?
        } else {
            (None, None)
        };
        let encryption = if format == UPLOAD_SSE {
            Some(Encryption {
                kind: get_sse_kind(&mut b, "upload")?,
                plain_bytes: 0,
                wrapped: get_wrapped_key(&mut b, "upload")?,
                part_nonces: Vec::new(),
            })
        } else {
            None
        };
        // Formats 6 and 7 end with their last field.
        if format >= UPLOAD_ACL && b.has_remaining() {
            return Err(Malformed("upload"));
        }
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
            object_owner,
            acl,
            encryption,
        })
    }
}

impl PartRecord {
    /// The part's size as uploaded: its plaintext's when sealed.
    pub fn plain_size(&self) -> u64 {
        match self.nonce {
            None => self.size,
            Some(_) => crate::seal::plain_size(self.size).expect("decoded parts are checked"),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(if self.nonce.is_some() {
            PART_SSE
        } else {
            VERSION_CHECKSUMS
        });
        b.put_slice(&self.version_id);
        b.put_u64_le(self.size);
        b.put_slice(&self.md5);
        b.put_u64_le(self.modified_ms);
        put_sum(&mut b, self.checksum.as_ref());
        if let Some(nonce) = &self.nonce {
            assert!(crate::seal::plain_size(self.size).is_ok(), "a sealed part");
            b.put_slice(nonce);
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<PartRecord, Malformed> {
        check(&b, 1 + 12 + 8 + 16 + 8, "part")?;
        let sealed = b[0] == PART_SSE;
        let with_checksum = sealed || get_version(&mut b, "part")?;
        if sealed {
            b.advance(1);
        }
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
        let nonce = if sealed {
            check(&b, NONCE_BASE_BYTES, "part")?;
            let mut nonce = [0u8; NONCE_BASE_BYTES];
            b.copy_to_slice(&mut nonce);
            if crate::seal::plain_size(size).is_err() || b.has_remaining() {
                return Err(Malformed("part"));
            }
            Some(nonce)
        } else {
            None
        };
        Ok(PartRecord {
            version_id,
            size,
            md5,
            modified_ms,
            checksum,
            nonce,
        })
    }
}
