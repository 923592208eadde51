//! Listing entries (what ListObjects shows of a key) and their codec.

use super::{
    check, get_str, put_str, Buf, BufMut, Bytes, BytesMut, Malformed, StorageClass,
    FLAG_IN_VERSIONS, LISTING_CLASS, LISTING_OWNER, VERSION, VERSION_VERSIONING,
};

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
    /// The current version's owner when it is not the bucket owner (`ObjectHead::owner`).
    pub owner: Option<String>,
}

impl ListingEntry {
    /// format u8 ‖ size u64 ‖ modified ms u64 ‖ ETag ‖ flags u8 (format 1: without them) ‖
    /// class u8 (from format 3) ‖ owner (format 4, a non-empty string).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(if self.owner.is_some() {
            LISTING_OWNER
        } else {
            LISTING_CLASS
        });
        b.put_u64_le(self.size);
        b.put_u64_le(self.modified_ms);
        put_str(&mut b, &self.etag);
        b.put_u8(if self.in_versions {
            FLAG_IN_VERSIONS
        } else {
            0
        });
        b.put_u8(self.class.code());
        if let Some(owner) = &self.owner {
            assert!(!owner.is_empty(), "an owner is a user id");
            put_str(&mut b, owner);
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<ListingEntry, Malformed> {
        check(&b, 17, "listing")?;
        let format = b.get_u8();
        if ![VERSION, VERSION_VERSIONING, LISTING_CLASS, LISTING_OWNER].contains(&format) {
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
        let class = if format >= LISTING_CLASS {
            check(&b, 1, "listing")?;
            StorageClass::of(b.get_u8()).ok_or(Malformed("listing"))?
        } else {
            StorageClass::Standard
        };
        let owner = if format == LISTING_OWNER {
            let owner = get_str(&mut b, "listing")?;
            if owner.is_empty() || b.has_remaining() {
                return Err(Malformed("listing"));
            }
            Some(owner)
        } else {
            None
        };
        Ok(ListingEntry {
            size,
            modified_ms,
            etag,
            in_versions,
            class,
            owner,
        })
    }
}
