//! Version records (`V` keys): an object version or a delete marker.

use super::{
    check, Buf, BufMut, Bytes, BytesMut, Malformed, ObjectHead, FLAG_NULL_VERSION,
    KIND_DELETE_MARKER, KIND_OBJECT, VERSION_RECORD,
};

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
