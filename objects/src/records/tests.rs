use super::*;
use crate::test_support::small_upload;

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
        owner: None,
        acl: None,
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
    refuses_cuts(ObjectHead::decode, &enc);
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
        owner: None,
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
        object_owner: None,
        acl: None,
        encryption: None,
    };
    assert_eq!(UploadRecord::decode(upload.encode()).unwrap(), upload);
    let part = PartRecord {
        version_id: [4; 12],
        size: 9,
        md5: [5; 16],
        modified_ms: 3,
        checksum: None,
        nonce: None,
    };
    assert_eq!(PartRecord::decode(part.encode()).unwrap(), part);
    assert!(part_key("u", 2) > part_key("u", 1));
}

/// Every cut of `enc` short of its end fails to decode.
fn refuses_cuts<T, E>(decode: impl Fn(Bytes) -> Result<T, E>, enc: &Bytes) {
    for cut in 0..enc.len() {
        assert!(decode(enc.slice(..cut)).is_err(), "cut at {cut}");
    }
}

/// `enc` with one more byte after its last field fails to decode.
fn refuses_trailing<T, E>(decode: impl Fn(Bytes) -> Result<T, E>, enc: &Bytes) {
    let mut longer = enc.to_vec();
    longer.push(0);
    assert!(decode(Bytes::from(longer)).is_err(), "a trailing byte");
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
        nonce: None,
    };
    assert_eq!(PartRecord::decode(part.encode()).unwrap(), part);
    let enc = part.encode();
    refuses_cuts(PartRecord::decode, &enc);
    let upload = UploadRecord {
        checksum: Some(UploadChecksum {
            algo: Algo::Crc64Nvme,
            kind: Kind::FullObject,
        }),
        ..small_upload()
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
        owner: None,
        acl: None,
    };
    assert_eq!(ObjectHead::decode(h.encode()).unwrap(), h);
    let enc = h.encode();
    refuses_cuts(ObjectHead::decode, &enc);
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
    let l = ListingEntry::decode(hex_bytes("0103000000000000000068e5cf8b010000010065")).unwrap();
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
        owner: None,
        acl: None,
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
        owner: None,
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
    refuses_cuts(VersionRecord::decode, &enc);
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
    refuses_cuts(ObjectHead::decode, &enc);
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
    refuses_cuts(ObjectHead::decode, &enc);
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
        part_nonces: Vec::new(),
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
    refuses_cuts(ObjectHead::decode, &enc);
    let kind_at = enc.len() - crate::keywrap::WRAPPED_KEY_BYTES - 8 - 1;
    let bad = |at: usize, byte: u8| {
        let mut b = enc.to_vec();
        b[at] = byte;
        ObjectHead::decode(Bytes::from(b)).is_err()
    };
    assert!(bad(kind_at, 4), "unknown kind");
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

/// Format 9: format 8's fields with the encryption behind a presence byte, then the owner
/// (a string, empty: the bucket's) and the ACL (u16 length, 0: none ‖ bytes), pinned byte for
/// byte; every cut refused; a bad presence byte, a length past the end or a trailing byte
/// refused; a head with neither stays at 5..8.
#[test]
fn owner_and_acl_make_format_9() {
    let mut h = small_head(false, true);
    let v5 = hex::encode(h.encode());
    assert_eq!(&v5[..2], "05");
    h.acl = Some(Bytes::from_static(b"\x01ab"));
    let enc = h.encode();
    // Format 5's fields, no part checksums (0), no lock (0, 0), not encrypted (0), no owner
    // (0-length string), 3 ACL bytes.
    let hex9 = format!("09{}0000000000000300016162", &v5[2..]);
    assert_eq!(hex::encode(&enc), hex9);
    assert_eq!(ObjectHead::decode(hex_bytes(&hex9)).unwrap(), h);
    // An owner alone ("al"), and both.
    h.acl = None;
    h.owner = Some("al".into());
    let owner_only = format!("09{}000000000200616c0000", &v5[2..]);
    assert_eq!(hex::encode(h.encode()), owner_only);
    assert_eq!(ObjectHead::decode(hex_bytes(&owner_only)).unwrap(), h);
    h.acl = Some(Bytes::from_static(b"\x01ab"));
    let enc = h.encode();
    assert_eq!(
        hex::encode(&enc),
        format!("09{}000000000200616c0300016162", &v5[2..])
    );
    assert_eq!(ObjectHead::decode(enc.clone()).unwrap(), h);
    refuses_cuts(ObjectHead::decode, &enc);
    for bad in [
        format!("09{}0000000200000300016162", &v5[2..]),
        format!("09{}0000000000000400016162", &v5[2..]),
        format!("09{}000000000000030001616200", &v5[2..]),
    ] {
        assert!(ObjectHead::decode(hex_bytes(&bad)).is_err(), "{bad}");
    }
    // Lock state, part checksums and encryption ride along.
    h.lock.legal_hold = Some(true);
    with_part_checksum(&mut h);
    h.size = crate::seal::stored_size(3);
    h.parts[0].size = h.size;
    h.encryption = Some(Encryption {
        kind: EncryptionKind::Customer,
        plain_bytes: 3,
        wrapped: crate::keywrap::WrappedKey::wrap(&[1; 32], &crate::seal::DataKey::random()),
        part_nonces: Vec::new(),
    });
    let enc = h.encode();
    assert_eq!(enc[0], HEAD_ACL);
    assert_eq!(ObjectHead::decode(enc.clone()).unwrap(), h);
    refuses_cuts(ObjectHead::decode, &enc);
    // As a version record too.
    let v = VersionRecord::Object(h.clone());
    assert_eq!(VersionRecord::decode(v.encode()).unwrap(), v);
    h.acl = None;
    h.owner = None;
    assert_eq!(h.encode()[0], HEAD_SSE);
}

/// Format 4 of listing entries: format 3's fields, then the owner, pinned; every cut and a
/// trailing byte refused; an entry without an owner stays at 3.
#[test]
fn listing_owner_makes_format_4() {
    let mut entry = ListingEntry {
        size: 3,
        modified_ms: 5,
        etag: "e".into(),
        in_versions: false,
        class: StorageClass::Standard,
        owner: None,
    };
    let v3 = hex::encode(entry.encode());
    assert_eq!(&v3[..2], "03");
    entry.owner = Some("al".into());
    let enc = entry.encode();
    let hex4 = format!("04{}0200616c", &v3[2..]);
    assert_eq!(hex::encode(&enc), hex4);
    assert_eq!(ListingEntry::decode(hex_bytes(&hex4)).unwrap(), entry);
    refuses_cuts(ListingEntry::decode, &enc);
    refuses_trailing(ListingEntry::decode, &enc);
    assert!(ListingEntry::decode(hex_bytes(&format!("04{}0000", &v3[2..]))).is_err());
}

/// Format 8 with SSE-S3 (kind 2) and SSE-KMS (kind 3): the key id that wrapped the data key
/// after the kind, pinned byte for byte around the random wrap; every cut refused, an id that
/// is no key id refused.
#[test]
fn master_and_kms_kinds_keep_their_key_id() {
    use crate::keywrap::WrappedKey;
    use crate::seal::{stored_size, DataKey};
    let mut h = small_head(false, true);
    h.size = stored_size(3);
    h.parts[0].size = h.size;
    let v5 = hex::encode(h.encode());
    let wrapped = WrappedKey::wrap(&[7u8; 32], &DataKey::random());
    for (kind, code) in [
        (
            EncryptionKind::Master {
                key_id: "master-2".into(),
            },
            "02",
        ),
        (
            EncryptionKind::Kms {
                key_id: "backups".into(),
            },
            "03",
        ),
    ] {
        let id = match &kind {
            EncryptionKind::Master { key_id } | EncryptionKind::Kms { key_id } => key_id.clone(),
            EncryptionKind::Customer => unreachable!(),
        };
        h.encryption = Some(Encryption {
            kind: kind.clone(),
            plain_bytes: 3,
            wrapped: wrapped.clone(),
            part_nonces: Vec::new(),
        });
        let enc = h.encode();
        // Format 5's fields, no part checksums (0), no lock (0, 0), the kind, the id (u16
        // length, bytes), 3 plain bytes, the wrap.
        let hex8 = format!(
            "08{}000000{code}{:02x}00{}0300000000000000{}",
            &v5[2..],
            id.len(),
            hex::encode(id.as_bytes()),
            hex::encode(wrapped.encode())
        );
        assert_eq!(hex::encode(&enc), hex8);
        assert_eq!(ObjectHead::decode(enc.clone()).unwrap(), h);
        refuses_cuts(ObjectHead::decode, &enc);
        // An id byte that no key id may hold ('/').
        let id_at = enc.len() - crate::keywrap::WRAPPED_KEY_BYTES - 8 - id.len();
        let mut b = enc.to_vec();
        b[id_at] = b'/';
        assert!(ObjectHead::decode(Bytes::from(b)).is_err());
    }
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
        part_nonces: Vec::new(),
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

/// Format 6 of uploads: format 5's fields (the lock state always) and the owner and ACL the
/// completed object gets, pinned byte for byte; every cut and a trailing byte refused.
#[test]
fn upload_owner_and_acl_make_format_6() {
    let mut upload = small_upload();
    let v4 = hex::encode(upload.encode());
    assert_eq!(v4, "04010000000000000001006f00000000000000000000");
    upload.acl = Some(Bytes::from_static(b"\x01ab"));
    upload.object_owner = Some("al".into());
    let enc = upload.encode();
    // No retention (0), no hold (0), owner "al", 3 ACL bytes.
    let hex6 = format!("06{}00000200616c0300016162", &v4[2..]);
    assert_eq!(hex::encode(&enc), hex6);
    assert_eq!(UploadRecord::decode(hex_bytes(&hex6)).unwrap(), upload);
    refuses_cuts(UploadRecord::decode, &enc);
    refuses_trailing(UploadRecord::decode, &enc);
    upload.lock.legal_hold = Some(true);
    upload.acl = None;
    assert_eq!(UploadRecord::decode(upload.encode()).unwrap(), upload);
    upload.object_owner = None;
    assert_eq!(upload.encode()[0], 5);
}

/// Format 5 of uploads: format 4 with the lock state the completed object gets.
#[test]
fn upload_lock_state_makes_format_5() {
    let mut upload = small_upload();
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
    refuses_cuts(CompletionRecord::decode, &enc);
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
    refuses_cuts(BucketRecord::decode, &enc);
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
        class: StorageClass::DeepArchive,
        ..small_upload()
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

/// Format 10: format 9's fields, the encryption followed by each part's nonce base (u32
/// count ‖ 12 bytes each), pinned byte for byte around the random wrap; every cut refused; a
/// count that is not the part count, parts whose plaintexts do not add up, or a part that is
/// not a sealed length refused. A head sealed whole stays at 8.
#[test]
fn sealed_parts_make_format_10() {
    use crate::keywrap::{WrappedKey, WRAPPED_KEY_BYTES};
    use crate::seal::{stored_size, DataKey};
    let mut h = small_head(false, true);
    h.parts = vec![
        PartRef {
            version_id: [1; 12],
            size: stored_size(3),
        },
        PartRef {
            version_id: [2; 12],
            size: stored_size(70_000),
        },
    ];
    h.size = h.parts.iter().map(|p| p.size).sum();
    let wrapped = WrappedKey::wrap(&[7u8; 32], &DataKey::random());
    h.encryption = Some(Encryption {
        kind: EncryptionKind::Customer,
        plain_bytes: 70_003,
        wrapped: wrapped.clone(),
        part_nonces: vec![[0xaa; 12], [0xbb; 12]],
    });
    let enc = h.encode();
    assert_eq!(enc[0], HEAD_SSE_PARTS);
    // No part checksums (0), no lock (0, 0), encrypted (1), SSE-C (1), 70 003 plain bytes,
    // the wrap, two nonce bases, no owner (empty string), no ACL (0).
    let tail = format!(
        "0000000101{}{}02000000{}{}00000000",
        "7311010000000000",
        hex::encode(wrapped.encode()),
        "aa".repeat(12),
        "bb".repeat(12),
    );
    assert!(hex::encode(&enc).ends_with(&tail), "{}", hex::encode(&enc));
    let back = ObjectHead::decode(enc.clone()).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.shown_part_sizes(), [3, 70_000]);
    assert_eq!(back.shown_part_range(2), Some((3, 70_000)));
    assert_eq!(back.shown_part_range(3), None);
    refuses_cuts(ObjectHead::decode, &enc);
    refuses_trailing(ObjectHead::decode, &enc);
    let count_at = enc.len() - 4 - 24 - 4;
    let bad = |b: Vec<u8>| ObjectHead::decode(Bytes::from(b)).is_err();
    let with = |at: usize, byte: u8| {
        let mut b = enc.to_vec();
        b[at] = byte;
        b
    };
    assert!(bad(with(count_at, 1)), "one nonce base for two parts");
    assert!(bad(with(count_at, 3)), "three for two");
    let plain_at = count_at - WRAPPED_KEY_BYTES - 8;
    assert!(bad(with(plain_at, 0x74)), "plaintexts that do not add up");
    // Part 1 stored as 18 bytes (2 bytes sealed: the plaintexts no longer add up) and as 10
    // (shorter than a tag: no sealing gives it); the head's size follows, so only the part
    // is off.
    let part_at = enc
        .windows(12)
        .position(|w| w == [1; 12])
        .expect("part 1's version id")
        + 12;
    for size in [18u64, 10] {
        let mut b = enc.to_vec();
        b[part_at..part_at + 8].copy_from_slice(&size.to_le_bytes());
        let total = size + stored_size(70_000);
        b[1..9].copy_from_slice(&total.to_le_bytes());
        assert!(bad(b), "part of {size} stored bytes");
    }
    // Sealed whole: no nonce bases, and the head stays at format 8.
    h.parts.truncate(1);
    h.size = h.parts[0].size;
    let e = h.encryption.as_mut().unwrap();
    e.part_nonces.clear();
    e.plain_bytes = 3;
    assert_eq!(h.encode()[0], HEAD_SSE);
}

/// Format 7 of uploads: format 6's fields, then the encryption's kind and the upload's wrapped
/// data key; parts of format 3: format 2's fields and the part's nonce base. Pinned byte for
/// byte, every cut and a trailing byte refused; a sealed part of a length sealing never
/// gives refused.
#[test]
fn sealed_uploads_make_upload_format_7_and_part_format_3() {
    use crate::keywrap::WrappedKey;
    use crate::seal::{stored_size, DataKey};
    let wrapped = WrappedKey::wrap(&[7u8; 32], &DataKey::random());
    let mut upload = UploadRecord {
        encryption: Some(Encryption {
            kind: EncryptionKind::Kms {
                key_id: "k1".into(),
            },
            plain_bytes: 0,
            wrapped: wrapped.clone(),
            part_nonces: Vec::new(),
        }),
        ..small_upload()
    };
    let enc = upload.encode();
    // Format 4's fields; no retention, no hold (0, 0); no owner (empty string), no ACL (0);
    // SSE-KMS (3), key id "k1", the wrap.
    let hex7 = format!(
        "07010000000000000001006f000000000000000000000000000000000302006b31{}",
        hex::encode(wrapped.encode())
    );
    assert_eq!(hex::encode(&enc), hex7);
    assert_eq!(UploadRecord::decode(enc.clone()).unwrap(), upload);
    refuses_cuts(UploadRecord::decode, &enc);
    refuses_trailing(UploadRecord::decode, &enc);
    upload.encryption = None;
    assert_eq!(upload.encode()[0], 4);

    let part = PartRecord {
        version_id: [4; 12],
        size: stored_size(5),
        md5: [5; 16],
        modified_ms: 3,
        checksum: None,
        nonce: Some([0xcc; 12]),
    };
    let enc = part.encode();
    let hex3 = format!(
        "03{}1500000000000000{}030000000000000000{}",
        "04".repeat(12),
        "05".repeat(16),
        "cc".repeat(12)
    );
    assert_eq!(hex::encode(&enc), hex3);
    let back = PartRecord::decode(enc.clone()).unwrap();
    assert_eq!((back.plain_size(), &back), (5, &part));
    refuses_cuts(PartRecord::decode, &enc);
    refuses_trailing(PartRecord::decode, &enc);
    // 10 stored bytes: shorter than a tag, no sealing gives it.
    let mut b = enc.to_vec();
    b[13..21].copy_from_slice(&10u64.to_le_bytes());
    assert!(PartRecord::decode(Bytes::from(b)).is_err());
}
