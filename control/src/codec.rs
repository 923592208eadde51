//! The record every persisted value and every message body of the control plane is wrapped in:
//! a fixed header (magic, format version, kind, length, CRC32) and a bincode 1 payload
//! (fixed-width little-endian integers, lengths as u64). Format in control/DESIGN.md.
//!
//! It owns the bytes only: what a kind holds is the caller's type, and a record that fails any
//! check is a [`CodecError`], never a panic (disk and peers are not trusted to be intact).

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::limits;

/// Magic of a control record: "PCCT".
pub const MAGIC: [u8; 4] = *b"PCCT";
/// The record format this build writes and reads, but for the map (`MAP_FORMAT_VERSION`).
pub const FORMAT_VERSION: u16 = 1;
/// The map's record format: 3 since nodes can be demoted (`ClusterMap::demoted`), 2 since
/// users have several keys (`ClusterMap::keys`); format 1 and 2 maps are still read
/// ([`crate::map::decode_map`]).
pub const MAP_FORMAT_VERSION: u16 = 3;

/// The format this build writes records of `kind` in.
pub fn format_of(kind: Kind) -> u16 {
    match kind {
        Kind::Map => MAP_FORMAT_VERSION,
        _ => FORMAT_VERSION,
    }
}
/// Header bytes before the payload.
pub const HEADER_BYTES: usize = 16;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// A Raft log entry (`openraft::Entry` of a [`crate::Command`]).
    LogEntry = 1,
    /// The last vote.
    Vote = 2,
    /// A log id: the last committed or the last purged.
    LogId = 3,
    /// The current snapshot: its metadata and its data.
    Snapshot = 4,
    /// A snapshot's data: the [`crate::ClusterMap`].
    Map = 5,
    /// A message between voters (`network::Request`, `network::Response`).
    Message = 6,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record of {size_bytes} bytes is shorter than its header")]
    Short { size_bytes: usize },
    #[error("bad magic {found:02x?}")]
    Magic { found: [u8; 4] },
    #[error("record format {found} is not {expected}")]
    Format { found: u16, expected: u16 },
    #[error("record kind {found} where {expected:?} was expected")]
    Kind { found: u16, expected: Kind },
    #[error("record says {declared} payload bytes, holds {present}")]
    Length { declared: usize, present: usize },
    #[error("record checksum {found:08x} is not {computed:08x}")]
    Checksum { found: u32, computed: u32 },
    #[error("record payload does not decode: {message}")]
    Payload { message: String },
    #[error("record of {size_bytes} bytes is over the bound of {max_bytes}")]
    TooLarge { size_bytes: usize, max_bytes: usize },
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limits::RECORD_BYTES_MAX as u64)
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..12]);
    h.update(payload);
    h.finalize()
}

/// `value` as a record of `kind`.
pub fn encode<T: Serialize>(kind: Kind, value: &T) -> Result<Vec<u8>, CodecError> {
    let payload = options()
        .serialize(value)
        .map_err(|e| CodecError::Payload {
            message: e.to_string(),
        })?;
    if payload.len() > limits::RECORD_BYTES_MAX {
        return Err(CodecError::TooLarge {
            size_bytes: payload.len(),
            max_bytes: limits::RECORD_BYTES_MAX,
        });
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&format_of(kind).to_le_bytes());
    out.extend_from_slice(&(kind as u16).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = checksum(&out, &payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    assert_eq!(out.len(), HEADER_BYTES + payload.len());
    Ok(out)
}

/// The value of a record of `kind`, once every header field and the checksum hold.
pub fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, CodecError> {
    decode_format(kind, format_of(kind), bytes)
}

/// The record format of `bytes` (its header's field, unchecked): 0 if too short.
pub fn format_in(bytes: &[u8]) -> u16 {
    bytes
        .get(4..6)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

/// Like [`decode`], for a record written in `format` (an older format's own type).
pub fn decode_format<T: DeserializeOwned>(
    kind: Kind,
    format: u16,
    bytes: &[u8],
) -> Result<T, CodecError> {
    if bytes.len() < HEADER_BYTES {
        return Err(CodecError::Short {
            size_bytes: bytes.len(),
        });
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let magic: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(CodecError::Magic { found: magic });
    }
    if u16_at(4) != format {
        return Err(CodecError::Format {
            found: u16_at(4),
            expected: format,
        });
    }
    if u16_at(6) != kind as u16 {
        return Err(CodecError::Kind {
            found: u16_at(6),
            expected: kind,
        });
    }
    let declared = u32_at(8) as usize;
    let payload = &bytes[HEADER_BYTES..];
    if declared != payload.len() {
        return Err(CodecError::Length {
            declared,
            present: payload.len(),
        });
    }
    let computed = checksum(bytes, payload);
    if u32_at(12) != computed {
        return Err(CodecError::Checksum {
            found: u32_at(12),
            computed,
        });
    }
    options()
        .deserialize(payload)
        .map_err(|e| CodecError::Payload {
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_every_damage_is_named() {
        let value = (7u64, String::from("percore"), vec![1u8, 2, 3]);
        let bytes = encode(Kind::Vote, &value).unwrap();
        assert_eq!(
            decode::<(u64, String, Vec<u8>)>(Kind::Vote, &bytes),
            Ok(value)
        );
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            assert!(
                decode::<(u64, String, Vec<u8>)>(Kind::Vote, &flipped).is_err(),
                "a flip at byte {at} went unnoticed"
            );
        }
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(Kind::LogId, &bytes),
            Err(CodecError::Kind { found: 2, .. })
        ));
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(Kind::Vote, &bytes[..bytes.len() - 1]),
            Err(CodecError::Length { .. })
        ));
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(Kind::Vote, &bytes[..5]),
            Err(CodecError::Short { size_bytes: 5 })
        ));
    }
}
