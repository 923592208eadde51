//! On-disk formats, as plain deterministic code: the partition superblock, the record header
//! and the index checkpoint. No I/O here; `engine/DESIGN.md` has the byte diagrams.
//!
//! Every integer is little-endian and fixed-width. Every structure starts with a magic and a
//! format version and is covered by a CRC32 (crc32fast, IEEE polynomial).

use crate::error::PartitionError;
use crate::limits::{BLOCK_BYTES, SEGMENTS_MAX};

/// The superblock's format version. Version 2 (segment files recycled, records naming their
/// segment) opens a version-1 partition by upgrading its superblock in place
/// (`partition::open_partition`); a build that knows only version 1 refuses a version-2
/// partition with `UnknownVersion` (it could not read version-2 records).
pub const SUPERBLOCK_VERSION: u32 = 2;
/// The index checkpoint's format version (unchanged by the superblock's version 2). Version 2
/// (the same layout) says the metadata store was marked with the checkpoint's `next_lsn` in
/// the commit it synced (`MetaStore::commit_marked`), so a start checks the store against it;
/// a version-1 file, written by an older build, says nothing of the store's mark. A build that
/// knows only version 1 takes a version-2 checkpoint for a damaged one and rebuilds its index
/// from the log (a slower start, nothing lost).
pub const CHECKPOINT_VERSION: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Superblock

pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"PERCORE\0";
pub const SUPERBLOCK_BYTES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// The version it was read with; only [`SUPERBLOCK_VERSION`] is ever written.
    pub version: u32,
    pub node_id: u64,
    pub core_index: u32,
    pub partition_uuid: [u8; 16],
    pub segment_bytes: u64,
    /// Segments numbered below this may hold format-1 records (they were written before the
    /// partition was upgraded to version 2; none of their files is ever renumbered into a
    /// segment at or above it). 0 for a partition created at version 2.
    pub format1_segments_below: u32,
}

impl Superblock {
    pub fn encode(&self) -> [u8; SUPERBLOCK_BYTES] {
        assert_eq!(
            self.version, SUPERBLOCK_VERSION,
            "only the current version is written"
        );
        let mut b = [0u8; SUPERBLOCK_BYTES];
        b[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[8..12].copy_from_slice(&SUPERBLOCK_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SUPERBLOCK_BYTES as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.node_id.to_le_bytes());
        b[24..28].copy_from_slice(&self.core_index.to_le_bytes());
        b[28..32].copy_from_slice(&self.format1_segments_below.to_le_bytes());
        b[32..48].copy_from_slice(&self.partition_uuid);
        b[48..56].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32fast::hash(&b[0..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a superblock against the owner the configuration expects. A
    /// version-1 superblock decodes with `version` 1 (its reserved bytes 28..32 are zero); the
    /// caller upgrades it.
    pub fn decode_for(
        bytes: &[u8],
        node_id: u64,
        core_index: u32,
    ) -> Result<Superblock, PartitionError> {
        if bytes.len() < SUPERBLOCK_BYTES || bytes[0..8] != SUPERBLOCK_MAGIC {
            return Err(PartitionError::NotAPartition);
        }
        let version = le_u32(bytes, 8);
        if version != 1 && version != SUPERBLOCK_VERSION {
            return Err(PartitionError::UnknownVersion {
                version_found: version,
                version_known: SUPERBLOCK_VERSION,
            });
        }
        if crc32fast::hash(&bytes[0..56]) != le_u32(bytes, 56) {
            return Err(PartitionError::SuperblockCorrupt);
        }
        let mut partition_uuid = [0u8; 16];
        partition_uuid.copy_from_slice(&bytes[32..48]);
        let sb = Superblock {
            version,
            node_id: le_u64(bytes, 16),
            core_index: le_u32(bytes, 24),
            partition_uuid,
            segment_bytes: le_u64(bytes, 48),
            format1_segments_below: le_u32(bytes, 28),
        };
        if sb.node_id != node_id || sb.core_index != core_index {
            return Err(PartitionError::WrongOwner {
                node_id_found: sb.node_id,
                core_index_found: sb.core_index,
                node_id,
                core_index,
            });
        }
        Ok(sb)
    }
}

// ---------------------------------------------------------------------------------------------
// Records

pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"PCR1");
pub const RECORD_HEADER_BYTES: usize = 64;
/// Records start at multiples of this within a segment.
pub const RECORD_ALIGN_BYTES: u64 = 8;
/// Version 2 names the record's segment in header bytes 52..56 (covered by the checksum);
/// version 1 (bytes 52..64 zero) is still read in the segments a version-1 partition held
/// (`Superblock::format1_segments_below`).
const RECORD_VERSION: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A fragment's bytes, keyed by its 128-bit id.
    Fragment = 1,
    /// A fragment was deleted.
    FragmentTombstone = 2,
    /// A metadata key was set (payload: key then value).
    MetaPut = 3,
    /// A metadata key was deleted (payload: key).
    MetaDelete = 4,
    /// Two metadata mutations at one HLC, applied together or not at all (one checksum covers
    /// both): an object's head and its listing entry (`Store::meta_pair`). Payload: first
    /// key, first value, second key, second value; `key_bytes` is the first key's length,
    /// `id` holds the first value's and the second key's lengths ([`RecordHeader::pair`]),
    /// `flags` which of the two are deletes ([`FLAG_FIRST_DELETE`], [`FLAG_SECOND_DELETE`]).
    MetaPair = 5,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(Self::Fragment),
            2 => Some(Self::FragmentTombstone),
            3 => Some(Self::MetaPut),
            4 => Some(Self::MetaDelete),
            5 => Some(Self::MetaPair),
            _ => None,
        }
    }
}

/// Flag on a fragment record: the reclaimer copied it; `aux` holds where it came from.
pub const FLAG_RELOCATED: u16 = 1;
/// Flags on a [`RecordKind::MetaPair`] record: its first (second) mutation is a delete, whose
/// value is empty.
pub const FLAG_FIRST_DELETE: u16 = 1;
pub const FLAG_SECOND_DELETE: u16 = 2;
/// Flag on a [`RecordKind::MetaPair`] record: a guarded pair. Its payload starts with the id
/// of the fragment written just before it in the same write (`Store::put_fragment_paired`),
/// and a replay applies the pair only if the index holds that fragment when the pair is read:
/// a torn write that lost the fragment's record never leaves its head behind.
pub const FLAG_GUARDED: u16 = 4;
/// The guard's bytes at the start of a guarded pair's payload (a fragment id).
pub const PAIR_GUARD_BYTES: u32 = 16;

/// Where the parts of a [`RecordKind::MetaPair`] record's payload end: the guard (a guarded
/// pair's fragment id), the first key, the first value, the second key (the second value runs
/// to the payload's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairLayout {
    pub guarded: bool,
    pub first_key: u32,
    pub first_value: u32,
    pub second_key: u32,
}

impl PairLayout {
    /// The header's `id` field of a pair record with these lengths.
    pub fn id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[0..4].copy_from_slice(&self.first_value.to_le_bytes());
        id[4..8].copy_from_slice(&self.second_key.to_le_bytes());
        id
    }

    /// The bytes before the first key: the guard's, if any.
    pub fn guard_bytes(&self) -> u32 {
        if self.guarded {
            PAIR_GUARD_BYTES
        } else {
            0
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub flags: u16,
    /// Log sequence number: strictly increasing within a partition.
    pub lsn: u64,
    /// Fragment id (zero for metadata records).
    pub id: [u8; 16],
    pub payload_bytes: u32,
    /// Metadata records: the key's length at the start of the payload.
    pub key_bytes: u32,
    /// Metadata records: the hybrid logical timestamp. Relocated fragments: the packed
    /// [`Loc`] they were copied from.
    pub aux: u64,
    /// The segment the record was written into (format 2). A recycled segment file still
    /// holds the records of its earlier lives, whose checksums verify (the seed is the
    /// partition's): this number tells them apart (`RecordHeader::belongs_to`). `None` for
    /// a format-1 record, which names no segment; every record written names one.
    pub segment: Option<u32>,
}

/// Why bytes at a position are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFault {
    /// The header's magic is absent (zeroes or other bytes): the end of the written log.
    NoMagic,
    /// A header is present but malformed or its checksum fails: a torn or flipped record.
    Damaged(&'static str),
    /// Fewer bytes than the header says were given.
    Short,
}

impl RecordHeader {
    /// The record's size in the segment, header and padding included.
    pub fn record_bytes(&self) -> u64 {
        record_bytes_for(self.payload_bytes as u64)
    }

    /// Writes header and payload into `out` (exactly `record_bytes()` long, zeroed padding).
    /// `salt` is the partition's (see [`log_salt`]): a record image stored inside a fragment of
    /// another partition never verifies here.
    pub fn write_record(&self, salt: u32, payload: &[&[u8]], out: &mut [u8]) {
        let payload_len: usize = payload.iter().map(|p| p.len()).sum();
        assert_eq!(payload_len, self.payload_bytes as usize);
        assert_eq!(out.len() as u64, self.record_bytes());
        let segment = self
            .segment
            .expect("a record is written naming its segment");
        let h = &mut out[..RECORD_HEADER_BYTES];
        h.fill(0);
        h[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        h[4] = RECORD_VERSION;
        h[5] = self.kind as u8;
        h[6..8].copy_from_slice(&self.flags.to_le_bytes());
        h[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        h[16..32].copy_from_slice(&self.id);
        h[32..36].copy_from_slice(&self.payload_bytes.to_le_bytes());
        h[36..40].copy_from_slice(&self.key_bytes.to_le_bytes());
        h[40..48].copy_from_slice(&self.aux.to_le_bytes());
        h[52..56].copy_from_slice(&segment.to_le_bytes());
        let mut at = RECORD_HEADER_BYTES;
        for part in payload {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out[at..].fill(0);
        let crc = record_crc(
            salt,
            &out[..RECORD_HEADER_BYTES],
            &out[RECORD_HEADER_BYTES..at],
        );
        out[48..52].copy_from_slice(&crc.to_le_bytes());
    }

    /// Parses and verifies the record at the start of `bytes`.
    pub fn read_record(salt: u32, bytes: &[u8]) -> Result<RecordHeader, RecordFault> {
        let header = RecordHeader::parse(bytes)?;
        let end = RECORD_HEADER_BYTES + header.payload_bytes as usize;
        if bytes.len() < end {
            return Err(RecordFault::Short);
        }
        let mut crc = RecordCrc::new(salt, bytes);
        crc.update(&bytes[RECORD_HEADER_BYTES..end]);
        crc.check(bytes)?;
        Ok(header)
    }

    /// Checks and parses the 64-byte header at the start of `bytes` without its checksum,
    /// which covers the payload too: a scan that does not hold the payload feeds it to a
    /// [`RecordCrc`] piece by piece (`store::SegmentScan`).
    pub fn parse(bytes: &[u8]) -> Result<RecordHeader, RecordFault> {
        if bytes.len() < RECORD_HEADER_BYTES {
            return Err(RecordFault::Short);
        }
        if le_u32(bytes, 0) != RECORD_MAGIC {
            return Err(RecordFault::NoMagic);
        }
        // Version 1 has no segment number: its bytes 52..64 are all reserved (zero).
        let (segment, reserved_from) = match bytes[4] {
            1 => (None, 52),
            RECORD_VERSION => (Some(le_u32(bytes, 52)), 56),
            _ => return Err(RecordFault::Damaged("record version")),
        };
        let kind = RecordKind::from_u8(bytes[5]).ok_or(RecordFault::Damaged("record kind"))?;
        let header = RecordHeader {
            kind,
            flags: u16::from_le_bytes([bytes[6], bytes[7]]),
            lsn: le_u64(bytes, 8),
            id: bytes[16..32].try_into().expect("16 bytes"),
            payload_bytes: le_u32(bytes, 32),
            key_bytes: le_u32(bytes, 36),
            aux: le_u64(bytes, 40),
            segment,
        };
        if bytes[reserved_from..RECORD_HEADER_BYTES]
            .iter()
            .any(|b| *b != 0)
        {
            return Err(RecordFault::Damaged("reserved header bytes"));
        }
        if u64::from(header.payload_bytes) > crate::limits::RECORD_BYTES_MAX {
            return Err(RecordFault::Damaged("payload length"));
        }
        if header.key_bytes > header.payload_bytes {
            return Err(RecordFault::Damaged("key length"));
        }
        if header.kind == RecordKind::MetaPair && header.pair().is_none() {
            return Err(RecordFault::Damaged("pair lengths"));
        }
        Ok(header)
    }

    /// A [`RecordKind::MetaPair`] record's layout, if its lengths are consistent: they add up
    /// within the payload (after the guard of a guarded pair), both keys are non-empty, a
    /// delete's value is empty, and the rest of `id` is zero. `None` for any other kind.
    pub fn pair(&self) -> Option<PairLayout> {
        if self.kind != RecordKind::MetaPair {
            return None;
        }
        let layout = PairLayout {
            guarded: self.flags & FLAG_GUARDED != 0,
            first_key: self.key_bytes,
            first_value: le_u32(&self.id, 0),
            second_key: le_u32(&self.id, 4),
        };
        let head = u64::from(layout.guard_bytes())
            + u64::from(layout.first_key)
            + u64::from(layout.first_value)
            + u64::from(layout.second_key);
        let second_value = u64::from(self.payload_bytes).checked_sub(head)?;
        let known = FLAG_FIRST_DELETE | FLAG_SECOND_DELETE | FLAG_GUARDED;
        let consistent = layout.first_key > 0
            && layout.second_key > 0
            && self.flags & !known == 0
            && (self.flags & FLAG_FIRST_DELETE == 0 || layout.first_value == 0)
            && (self.flags & FLAG_SECOND_DELETE == 0 || second_value == 0)
            && self.id[8..].iter().all(|b| *b == 0);
        consistent.then_some(layout)
    }

    /// Whether a verified record was written into `segment` in the segment file's current
    /// life. A format-2 record names its segment; a format-1 record names none and belongs
    /// only to a segment numbered below `format1_segments_below` (files a version-1 partition
    /// held; segment numbers only grow, so no recycled file is ever renumbered below it).
    /// Anything else is a record of an earlier life of a recycled file: replay must stop at
    /// it (engine/DESIGN.md, "Recycled segment files").
    pub fn belongs_to(&self, segment: u32, format1_segments_below: u32) -> bool {
        match self.segment {
            Some(s) => s == segment,
            None => segment < format1_segments_below,
        }
    }
}

/// A record's checksum computed over its payload in pieces (the header first).
pub struct RecordCrc(crc32fast::Hasher);

impl RecordCrc {
    /// Starts with the record's 64-byte header (its checksum field excluded).
    pub fn new(salt: u32, header: &[u8]) -> RecordCrc {
        let mut h = crc32fast::Hasher::new_with_initial(salt);
        h.update(&header[0..48]);
        h.update(&header[52..RECORD_HEADER_BYTES]);
        RecordCrc(h)
    }

    pub fn update(&mut self, payload_piece: &[u8]) {
        self.0.update(payload_piece);
    }

    /// Compares with the checksum stored in `header`.
    pub fn check(self, header: &[u8]) -> Result<(), RecordFault> {
        if self.0.finalize() == le_u32(header, 48) {
            Ok(())
        } else {
            Err(RecordFault::Damaged("checksum"))
        }
    }
}

pub fn record_bytes_for(payload_bytes: u64) -> u64 {
    align_up(
        RECORD_HEADER_BYTES as u64 + payload_bytes,
        RECORD_ALIGN_BYTES,
    )
}

/// The partition's record checksum seed, derived from its uuid.
pub fn log_salt(partition_uuid: &[u8; 16]) -> u32 {
    crc32fast::hash(partition_uuid)
}

fn record_crc(salt: u32, header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(salt);
    h.update(&header[0..48]);
    h.update(&header[52..RECORD_HEADER_BYTES]);
    h.update(payload);
    h.finalize()
}

// ---------------------------------------------------------------------------------------------
// Locations

/// Where a record lives: packed in 64 bits so an index entry is 24 bytes.
/// Layout: segment (20 bits) | offset / 8 (28 bits) | record length in 512-byte sectors, rounded
/// up (16 bits). The exact length comes from the record header on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc(pub u64);

pub const LOC_SECTOR_BYTES: u64 = 512;

impl Loc {
    pub fn new(segment: u32, offset_bytes: u64, record_bytes: u64) -> Loc {
        assert!(segment < SEGMENTS_MAX);
        assert_eq!(offset_bytes % RECORD_ALIGN_BYTES, 0);
        assert!(offset_bytes / RECORD_ALIGN_BYTES < (1 << 28));
        let sectors = record_bytes.div_ceil(LOC_SECTOR_BYTES);
        assert!(sectors < (1 << 16));
        Loc((u64::from(segment) << 44) | ((offset_bytes / RECORD_ALIGN_BYTES) << 16) | sectors)
    }
    pub fn segment(self) -> u32 {
        (self.0 >> 44) as u32
    }
    pub fn offset_bytes(self) -> u64 {
        ((self.0 >> 16) & ((1 << 28) - 1)) * RECORD_ALIGN_BYTES
    }
    /// Bytes to read to cover the record (at least its length, at most 511 more).
    pub fn span_bytes(self) -> u64 {
        (self.0 & 0xffff) * LOC_SECTOR_BYTES
    }
}

// ---------------------------------------------------------------------------------------------
// Index checkpoint

pub const CHECKPOINT_MAGIC: [u8; 8] = *b"PCCKPT\0\0";
pub const CHECKPOINT_HEADER_BYTES: usize = 64;

/// One index entry as archived in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CheckpointEntry {
    pub id: [u8; 16],
    pub loc: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// Replay the log from here on restart.
    pub replay_segment: u32,
    pub replay_offset_bytes: u64,
    /// The next log sequence number at the time of the checkpoint.
    pub next_lsn: u64,
    pub entry_count: u64,
    /// The metadata store holds the mark `next_lsn` (version 2; always so when written).
    pub marked: bool,
}

/// Encodes a checkpoint: a fixed header then an rkyv archive of the entries.
pub fn encode_checkpoint(header: &CheckpointHeader, entries: &Vec<CheckpointEntry>) -> Vec<u8> {
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(entries).expect("plain data always archives");
    let mut out = vec![0u8; CHECKPOINT_HEADER_BYTES];
    out[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
    let version = if header.marked { CHECKPOINT_VERSION } else { 1 };
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out[16..20].copy_from_slice(&header.replay_segment.to_le_bytes());
    out[20..28].copy_from_slice(&header.replay_offset_bytes.to_le_bytes());
    out[28..36].copy_from_slice(&header.next_lsn.to_le_bytes());
    out[36..44].copy_from_slice(&header.entry_count.to_le_bytes());
    out[44..52].copy_from_slice(&(body.len() as u64).to_le_bytes());
    out[52..56].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let header_crc = crc32fast::hash(&out[0..56]);
    out[56..60].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFault {
    BadMagic,
    UnknownVersion(u32),
    Damaged(&'static str),
}

/// Decodes a checkpoint and calls `each` for every entry (zero-copy over `bytes`).
pub fn decode_checkpoint(
    bytes: &[u8],
    mut each: impl FnMut([u8; 16], u64),
) -> Result<CheckpointHeader, CheckpointFault> {
    if bytes.len() < CHECKPOINT_HEADER_BYTES || bytes[0..8] != CHECKPOINT_MAGIC {
        return Err(CheckpointFault::BadMagic);
    }
    let version = le_u32(bytes, 8);
    if !(1..=CHECKPOINT_VERSION).contains(&version) {
        return Err(CheckpointFault::UnknownVersion(version));
    }
    if crc32fast::hash(&bytes[0..56]) != le_u32(bytes, 56) {
        return Err(CheckpointFault::Damaged("header checksum"));
    }
    // Outside both checksums: zero as written, so that no byte of a checkpoint can change
    // unseen (`damaged_checkpoint_rebuilds_the_index_from_the_log` flips any bit of it).
    if bytes[60..CHECKPOINT_HEADER_BYTES].iter().any(|b| *b != 0) {
        return Err(CheckpointFault::Damaged("reserved header bytes"));
    }
    let header = CheckpointHeader {
        replay_segment: le_u32(bytes, 16),
        replay_offset_bytes: le_u64(bytes, 20),
        next_lsn: le_u64(bytes, 28),
        entry_count: le_u64(bytes, 36),
        marked: version >= 2,
    };
    let body_bytes = le_u64(bytes, 44);
    let body = bytes
        .get(CHECKPOINT_HEADER_BYTES..)
        .filter(|b| b.len() as u64 == body_bytes)
        .ok_or(CheckpointFault::Damaged("body length"))?;
    if crc32fast::hash(body) != le_u32(bytes, 52) {
        return Err(CheckpointFault::Damaged("body checksum"));
    }
    let archived = rkyv::access::<rkyv::Archived<Vec<CheckpointEntry>>, rkyv::rancor::Error>(body)
        .map_err(|_| CheckpointFault::Damaged("archive"))?;
    if archived.len() as u64 != header.entry_count {
        return Err(CheckpointFault::Damaged("entry count"));
    }
    for e in archived.iter() {
        each(e.id, e.loc.to_native());
    }
    Ok(header)
}

// ---------------------------------------------------------------------------------------------
// Helpers

pub fn align_up(v: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    (v + align - 1) & !(align - 1)
}

pub fn align_down(v: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    v & !(align - 1)
}

pub fn is_block_aligned(v: u64) -> bool {
    v.is_multiple_of(BLOCK_BYTES)
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_flip_detection() {
        let h = RecordHeader {
            kind: RecordKind::MetaPut,
            flags: 0,
            lsn: 42,
            id: [7; 16],
            payload_bytes: 11,
            key_bytes: 3,
            aux: 99,
            segment: Some(0x0102_0304),
        };
        let mut buf = vec![0u8; h.record_bytes() as usize];
        h.write_record(5, &[b"key", b"value..."], &mut buf);
        assert_eq!(RecordHeader::read_record(5, &buf), Ok(h));
        assert_eq!(buf[4], 2, "written as version 2");
        assert!(
            RecordHeader::read_record(6, &buf).is_err(),
            "another partition's salt"
        );
        for bit in 0..(RECORD_HEADER_BYTES + 11) * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                RecordHeader::read_record(5, &bad).is_err(),
                "flip at bit {bit} not caught"
            );
        }
        assert_eq!(
            RecordHeader::read_record(5, &[0u8; 64]),
            Err(RecordFault::NoMagic)
        );
    }

    /// A format-1 record (bytes 52..64 zero, covered by its checksum) still reads, naming no
    /// segment; it belongs only to the segments a version-1 partition held.
    #[test]
    fn format1_records_read_and_belong_only_below_the_upgrade() {
        let h = RecordHeader {
            kind: RecordKind::Fragment,
            flags: 0,
            lsn: 9,
            id: [1; 16],
            payload_bytes: 5,
            key_bytes: 0,
            aux: 0,
            segment: Some(0),
        };
        let mut buf = vec![0u8; h.record_bytes() as usize];
        h.write_record(5, &[b"hello"], &mut buf);
        // What a version-1 build wrote: version 1, no segment number, same checksum rule.
        buf[4] = 1;
        let crc = record_crc(5, &buf[..RECORD_HEADER_BYTES], b"hello");
        buf[48..52].copy_from_slice(&crc.to_le_bytes());
        let v1 = RecordHeader::read_record(5, &buf).expect("a version-1 record reads");
        assert_eq!(v1.segment, None);
        assert!(v1.belongs_to(3, 4) && !v1.belongs_to(4, 4) && !v1.belongs_to(0, 0));
        // A version-1 header with a nonzero byte where version 2 keeps its segment is damage.
        buf[53] = 1;
        let crc = record_crc(5, &buf[..RECORD_HEADER_BYTES], b"hello");
        buf[48..52].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            RecordHeader::read_record(5, &buf),
            Err(RecordFault::Damaged("reserved header bytes"))
        );
        let v2 = RecordHeader {
            segment: Some(7),
            ..h
        };
        assert!(v2.belongs_to(7, 100) && !v2.belongs_to(6, 100) && !v2.belongs_to(8, 0));
    }

    #[test]
    fn superblock_checks_owner_and_version() {
        let sb = Superblock {
            version: SUPERBLOCK_VERSION,
            node_id: 3,
            core_index: 1,
            partition_uuid: [9; 16],
            segment_bytes: 1 << 20,
            format1_segments_below: 17,
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode_for(&b, 3, 1), Ok(sb));
        assert!(matches!(
            Superblock::decode_for(&b, 3, 2),
            Err(PartitionError::WrongOwner {
                core_index_found: 1,
                ..
            })
        ));
        let mut v3 = b;
        v3[8] = 3;
        assert!(matches!(
            Superblock::decode_for(&v3, 3, 1),
            Err(PartitionError::UnknownVersion {
                version_found: 3,
                version_known: 2,
            })
        ));
        // A version-1 superblock (bytes 28..32 reserved, zero) decodes for the upgrade.
        let mut v1 = b;
        v1[8] = 1;
        v1[28..32].fill(0);
        let crc = crc32fast::hash(&v1[0..56]);
        v1[56..60].copy_from_slice(&crc.to_le_bytes());
        let old = Superblock::decode_for(&v1, 3, 1).expect("version 1 decodes");
        assert_eq!((old.version, old.format1_segments_below), (1, 0));
        let mut flipped = b;
        flipped[20] ^= 4;
        assert_eq!(
            Superblock::decode_for(&flipped, 3, 1),
            Err(PartitionError::SuperblockCorrupt)
        );
    }

    #[test]
    fn loc_packs_and_unpacks() {
        let l = Loc::new(SEGMENTS_MAX - 1, (1 << 31) - 8, 16 * 1024 * 1024 + 64);
        assert_eq!(l.segment(), SEGMENTS_MAX - 1);
        assert_eq!(l.offset_bytes(), (1 << 31) - 8);
        assert!(l.span_bytes() >= 16 * 1024 * 1024 + 64);
    }

    #[test]
    fn checkpoint_round_trip() {
        let entries = vec![
            CheckpointEntry {
                id: [1; 16],
                loc: 5,
            },
            CheckpointEntry {
                id: [2; 16],
                loc: 6,
            },
        ];
        let h = CheckpointHeader {
            replay_segment: 3,
            replay_offset_bytes: 4096,
            next_lsn: 77,
            entry_count: 2,
            marked: true,
        };
        let bytes = encode_checkpoint(&h, &entries);
        let mut got = vec![];
        assert_eq!(
            decode_checkpoint(&bytes, |id, loc| got.push((id, loc))),
            Ok(h.clone())
        );
        assert_eq!(got, vec![([1; 16], 5), ([2; 16], 6)]);
        // A version-1 file (an older build's, the same layout) is read, and says nothing of
        // the store's mark; a later version is refused.
        let unmarked = CheckpointHeader { marked: false, ..h };
        let v1 = encode_checkpoint(&unmarked, &entries);
        assert_eq!(le_u32(&v1, 8), 1);
        assert_eq!(decode_checkpoint(&v1, |_, _| {}), Ok(unmarked));
        let mut v3 = v1;
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32fast::hash(&v3[0..56]);
        v3[56..60].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_checkpoint(&v3, |_, _| {}),
            Err(CheckpointFault::UnknownVersion(3))
        );
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_checkpoint(&bad, |_, _| {}).is_err());
    }
}
