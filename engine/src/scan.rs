//! Reading a segment's records in order through one bounded window, for replay and reclaim.
//!
//! Before, both read a whole segment (64 MiB) into memory at once, twice over (glommio's DMA
//! buffer and its copy): an idle 6-core node peaked at ~590 MiB RSS seconds after start, when
//! every core replayed its last segment and the reclaimer read one. The scan reads at most
//! `SCAN_READ_BYTES_MAX` per read and keeps one window of that size: a record that fits in it
//! is checked there and its payload lent to the caller; a larger one (up to
//! `RECORD_BYTES_MAX`) has its checksum computed piece by piece through the window, and its
//! payload is not held (the caller reads it whole if it needs it, as reclaim does for a live
//! fragment).
//!
//! The walk is the one recovery always made (engine/DESIGN.md, "Recovery"): a valid record is
//! skipped by its length; missing magic over zeroes at an unaligned position is a round's
//! padding (next block); over a block of zeroes at a block boundary it is an unwritten block
//! (next block). Missing magic over other bytes is a record of this life whose magic was hit
//! (a few bits off, and with it restored a header naming this segment: reported damaged),
//! or else damage or an earlier life's bytes: the scan searches every 8-byte position from
//! where the zeroes began, and a record of this life found there goes on the scan (the bytes
//! before it reported damaged) while one of an earlier life ends it; a damaged record is
//! reported and the scan looks for the next record header at every 8-byte position after it
//! (records follow each other across group commits, so the next one need not start on a
//! block). A record that verifies but names another segment
//! (or is of format 1 where none may be) is from an earlier life of a recycled file: the
//! scan ends there (`stale_at`), since nothing of this life after it was acknowledged; while
//! searching past damage it is passed over instead (`of_this_life`).

use crate::disk::Disk;
use crate::error::Result;
use crate::format::{
    align_down, align_up, RecordCrc, RecordFault, RecordHeader, RECORD_ALIGN_BYTES,
    RECORD_HEADER_BYTES, RECORD_MAGIC,
};
use crate::limits::{BLOCK_BYTES, SCAN_READ_BYTES_MAX};

/// The largest record whose payload the scan lends (it fits the window whatever the offset
/// of the block the window starts at).
pub const SCAN_RECORD_BYTES_MAX: u64 = SCAN_READ_BYTES_MAX - BLOCK_BYTES;

/// Bits of a record's magic that may differ from `RECORD_MAGIC` for the scan to check whether
/// the rest is a record whose magic was damaged (`SegmentScan::damaged_magic`); other bytes
/// without the magic are zeroes (skipped a block at a time) or searched through
/// (`SegmentScan::next`).
const MAGIC_BITS_FLIPPED_MAX: u32 = 4;

/// What `SegmentScan::damaged_magic` made of bytes without the record magic.
enum MagicHit {
    /// A record of this life whose magic alone was hit; it ends at `end`.
    Whole { end: u64 },
    /// A record header of this life whose magic was hit, and its record damaged elsewhere too.
    AndMore,
    /// Anything else: unwritten space, a round's padding, an earlier life's bytes.
    NotARecord,
}

/// What the scan found at an offset.
pub enum Scanned<'a> {
    /// A record that verifies. `payload` is `None` when it is larger than
    /// [`SCAN_RECORD_BYTES_MAX`] (its checksum was still verified).
    Record {
        header: RecordHeader,
        offset_bytes: u64,
        payload: Option<&'a [u8]>,
    },
    /// A damaged record (or one running past the segment's end); the scan goes on at the
    /// next record header after it.
    Damaged {
        offset_bytes: u64,
        fault: RecordFault,
    },
    /// No room for another record header, or a record of the file's earlier life (see
    /// [`SegmentScan::stale_at`]).
    End,
}

pub struct SegmentScan<'d, D: Disk> {
    disk: &'d D,
    file: D::File,
    salt: u32,
    /// The segment scanned: a record must name it (`RecordHeader::belongs_to`).
    segment: u32,
    format1_segments_below: u32,
    /// Where a record of an earlier life of the file was found; the scan ended there.
    stale_at: Option<u64>,
    /// Bytes of the segment that may hold records (the configured segment size).
    limit_bytes: u64,
    window: Vec<u8>,
    window_start: u64,
    /// Where the file ends, once a short read showed it (at most `limit_bytes`).
    end_bytes: u64,
    pos: u64,
    /// After damage: the next record header is searched for at every 8-byte position, and
    /// bytes that are not one are skipped silently (they are the damaged record's).
    resyncing: bool,
    /// Where the zeroes (a round's padding, unwritten blocks) skipped since the last record
    /// began.
    gap_from: Option<u64>,
    /// A search started at bytes that are neither a record nor zeroes (`next`): a record of
    /// this life found by it means the bytes were damage, and one of an earlier life ends
    /// the scan, as it would have without the search.
    probing: bool,
    /// Bytes read from the device so far (replay reports it).
    read_bytes: u64,
}

impl<'d, D: Disk> SegmentScan<'d, D> {
    /// Scans segment `segment` from `start`; `format1_segments_below` is the partition's
    /// (`Superblock::format1_segments_below`).
    pub fn new(
        disk: &'d D,
        file: D::File,
        salt: u32,
        segment: u32,
        format1_segments_below: u32,
        limit_bytes: u64,
        start: u64,
    ) -> Self {
        SegmentScan {
            disk,
            file,
            salt,
            segment,
            format1_segments_below,
            stale_at: None,
            limit_bytes,
            window: Vec::new(),
            window_start: 0,
            end_bytes: limit_bytes,
            pos: start,
            resyncing: false,
            gap_from: None,
            probing: false,
            read_bytes: 0,
        }
    }

    pub fn read_bytes(&self) -> u64 {
        self.read_bytes
    }

    /// Where the scan met a record of an earlier life of the (recycled) file and ended.
    /// Such a record verifies (the checksum seed is the partition's) and is never applied:
    /// everything from it on in this segment is stale or was never acknowledged (the log's
    /// acknowledged records are a prefix of each segment: a group commit is acknowledged
    /// only after its fdatasync, and the next one starts after it).
    pub fn stale_at(&self) -> Option<u64> {
        self.stale_at
    }

    pub fn file(&self) -> &D::File {
        &self.file
    }

    /// Makes `[at, at + len)` available in the window (`len <= SCAN_RECORD_BYTES_MAX`).
    /// `false` when the segment ends before.
    async fn ensure(&mut self, at: u64, len: u64) -> Result<bool> {
        debug_assert!(len <= SCAN_RECORD_BYTES_MAX);
        if at + len > self.end_bytes {
            return Ok(false);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if at >= self.window_start && at + len <= window_end {
            return Ok(true);
        }
        let start = align_down(at, BLOCK_BYTES);
        let want = SCAN_READ_BYTES_MAX.min(self.limit_bytes - start);
        // The part of the window from `start` on is kept (a record that ran past its end is
        // not read twice: with 1 MiB records that doubled the bytes read) and moved to the
        // front of the same buffer, and the rest is read after it: one window per scan, plus
        // the device's read buffer, is all that is held.
        let mut read_from = start;
        if start >= self.window_start && start < window_end {
            self.window.drain(..(start - self.window_start) as usize);
            read_from = window_end;
        } else {
            self.window.clear();
        }
        self.window.reserve_exact(want as usize - self.window.len());
        let read_len = start + want - read_from;
        let before = self.window.len();
        self.disk
            .read_append(&self.file, read_from, read_len as usize, &mut self.window)
            .await?;
        let got = (self.window.len() - before) as u64;
        self.read_bytes += got;
        if got < read_len {
            self.end_bytes = self.end_bytes.min(read_from + got);
        }
        self.window_start = start;
        Ok(at + len <= self.end_bytes)
    }

    fn slice(&self, at: u64, len: u64) -> &[u8] {
        let from = (at - self.window_start) as usize;
        &self.window[from..from + len as usize]
    }

    /// The next record (or damage) from the current position.
    pub async fn next(&mut self) -> Result<Scanned<'_>> {
        loop {
            if self.stale_at.is_some() {
                return Ok(Scanned::End);
            }
            if self.resyncing && !self.find_magic().await? {
                return Ok(Scanned::End);
            }
            let pos = self.pos;
            if !self.ensure(pos, RECORD_HEADER_BYTES as u64).await? {
                return Ok(Scanned::End);
            }
            let header_bytes: [u8; RECORD_HEADER_BYTES] = self
                .slice(pos, RECORD_HEADER_BYTES as u64)
                .try_into()
                .expect("a header's bytes");
            let header = match RecordHeader::parse(&header_bytes) {
                Ok(h) => h,
                Err(_) if self.resyncing => {
                    self.pos = pos + RECORD_ALIGN_BYTES;
                    continue;
                }
                Err(RecordFault::NoMagic) => {
                    // A record of this life whose magic was hit is lost, but the records after
                    // it are not taken for unwritten space.
                    let fault = RecordFault::Damaged("record magic");
                    match self.damaged_magic(pos, header_bytes).await? {
                        MagicHit::Whole { end } => {
                            self.gap_from = None;
                            self.pos = end;
                            return Ok(Scanned::Damaged {
                                offset_bytes: pos,
                                fault,
                            });
                        }
                        MagicHit::AndMore => {
                            self.gap_from = None;
                            return Ok(self.damaged(pos, fault));
                        }
                        MagicHit::NotARecord => {}
                    }
                    let next = if pos.is_multiple_of(BLOCK_BYTES) {
                        pos + BLOCK_BYTES
                    } else {
                        align_up(pos, BLOCK_BYTES)
                    };
                    if self.zeroes(pos, next).await? {
                        // A round's padding or an unwritten block.
                        self.gap_from.get_or_insert(pos);
                        self.pos = next;
                    } else {
                        // Neither a record nor zeroes: damage (a record whose first sector was
                        // lost or zeroed), or an earlier life's bytes after the log's end.
                        // Stepping a block at a time met only payload bytes from here on and
                        // lost the rest of the segment; the search looks at every 8-byte
                        // position from where the zeroes began.
                        let from = self.gap_from.unwrap_or(pos);
                        self.pos = from + RECORD_ALIGN_BYTES;
                        self.gap_from = Some(from);
                        self.resyncing = true;
                        self.probing = true;
                    }
                    continue;
                }
                Err(fault) => return Ok(self.damaged(pos, fault)),
            };
            let span = RECORD_HEADER_BYTES as u64 + u64::from(header.payload_bytes);
            if span <= SCAN_RECORD_BYTES_MAX {
                if !self.ensure(pos, span).await? {
                    return Ok(self.damaged(pos, RecordFault::Short));
                }
                let bytes = self.slice(pos, span);
                if let Err(fault) = RecordHeader::read_record(self.salt, bytes) {
                    return Ok(self.damaged(pos, fault));
                }
                if let Some(found) = self.probed_damage(&header, pos) {
                    return Ok(found);
                }
                if !self.of_this_life(&header, pos) {
                    continue;
                }
                let from = (pos - self.window_start) as usize + RECORD_HEADER_BYTES;
                let payload = &self.window[from..from + header.payload_bytes as usize];
                return Ok(Scanned::Record {
                    header,
                    offset_bytes: pos,
                    payload: Some(payload),
                });
            }
            if let Err(fault) = self.verify_streamed(pos, span).await? {
                return Ok(self.damaged(pos, fault));
            }
            if let Some(found) = self.probed_damage(&header, pos) {
                return Ok(found);
            }
            if !self.of_this_life(&header, pos) {
                continue;
            }
            return Ok(Scanned::Record {
                header,
                offset_bytes: pos,
                payload: None,
            });
        }
    }

    /// Checks the checksum of the record at `pos` (`span` bytes, header included) through the
    /// window, one window at a time.
    async fn verify_streamed(
        &mut self,
        pos: u64,
        span: u64,
    ) -> Result<std::result::Result<(), RecordFault>> {
        let header: [u8; RECORD_HEADER_BYTES] = self
            .slice(pos, RECORD_HEADER_BYTES as u64)
            .try_into()
            .expect("a header's bytes");
        self.verify_with(header, pos, span).await
    }

    /// Whether the bytes `found` at `pos`, which lack the record magic, are a record of this
    /// life of the file whose magic was hit (a flipped bit): a magic a few bits away from the
    /// right one, and with it restored a header that parses and names this segment. Its
    /// checksum, which covers the magic, then tells whether the rest is intact (`Whole`: skip
    /// it by its length) or not (`AndMore`: search for the next header, as after any damage).
    /// Without this, missing magic read as unwritten space, and the scan skipped block after
    /// block (each block boundary falling inside some record's payload): one flipped bit lost
    /// every record after it in the segment (19 of 40 fragments in one seed of
    /// `bit_flips_never_return_wrong_data`).
    async fn damaged_magic(
        &mut self,
        pos: u64,
        mut found: [u8; RECORD_HEADER_BYTES],
    ) -> Result<MagicHit> {
        let flipped = (u32::from_le_bytes(found[0..4].try_into().expect("4 bytes")) ^ RECORD_MAGIC)
            .count_ones();
        if flipped > MAGIC_BITS_FLIPPED_MAX {
            return Ok(MagicHit::NotARecord);
        }
        found[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        let Ok(header) = RecordHeader::parse(&found) else {
            return Ok(MagicHit::NotARecord);
        };
        // Format 2 headers name their segment: bytes of an earlier life, or of no record,
        // do not name this one.
        if header.segment != Some(self.segment) {
            return Ok(MagicHit::NotARecord);
        }
        let span = RECORD_HEADER_BYTES as u64 + u64::from(header.payload_bytes);
        Ok(match self.verify_with(found, pos, span).await? {
            Ok(()) => MagicHit::Whole {
                end: pos + header.record_bytes(),
            },
            Err(_) => MagicHit::AndMore,
        })
    }

    /// `verify_streamed` with the record's header given (`header`, not the bytes at `pos`).
    async fn verify_with(
        &mut self,
        header: [u8; RECORD_HEADER_BYTES],
        pos: u64,
        span: u64,
    ) -> Result<std::result::Result<(), RecordFault>> {
        let mut crc = RecordCrc::new(self.salt, &header);
        let mut at = pos + RECORD_HEADER_BYTES as u64;
        let end = pos + span;
        while at < end {
            let piece = (end - at).min(SCAN_RECORD_BYTES_MAX);
            if !self.ensure(at, piece).await? {
                return Ok(Err(RecordFault::Short));
            }
            crc.update(self.slice(at, piece));
            at += piece;
            self.disk.yield_if_needed().await;
        }
        Ok(crc.check(&header))
    }

    /// Whether a verified record at `pos` is of this life of the file; if so the scan goes on
    /// after it. Checked only after the checksum, so a flipped bit in a record's segment number
    /// is damage (one record lost), never the end of the segment. A record that names another
    /// segment is of an earlier life, and the scan ends at it (`stale_at`); except while
    /// searching past damage, where it is passed over: it may be a record image inside the
    /// damaged record's bytes (a fragment holding a copy of a segment file), with this life's
    /// records after it. Passing over never applies it, and an earlier life's records are
    /// never this life's, so the search goes on to the file's end at worst.
    fn of_this_life(&mut self, header: &RecordHeader, pos: u64) -> bool {
        if header.belongs_to(self.segment, self.format1_segments_below) {
            self.resyncing = false;
            self.gap_from = None;
            self.pos = pos + header.record_bytes();
            return true;
        }
        if self.resyncing && !self.probing {
            self.pos = pos + RECORD_ALIGN_BYTES;
        } else {
            self.stale_at = Some(pos);
        }
        false
    }

    /// A search from bytes that were neither a record nor zeroes (`probing`) found a verified
    /// record of this life at `pos`: the bytes from where the gap began were damage, reported
    /// once; the record is read by the next call.
    fn probed_damage(&mut self, header: &RecordHeader, pos: u64) -> Option<Scanned<'static>> {
        if !self.probing || !header.belongs_to(self.segment, self.format1_segments_below) {
            return None;
        }
        self.probing = false;
        self.resyncing = false;
        self.pos = pos;
        let from = self.gap_from.take().unwrap_or(pos);
        Some(Scanned::Damaged {
            offset_bytes: from,
            fault: RecordFault::Damaged("unreadable bytes before a record"),
        })
    }

    /// Whether `[from, to)` holds only zeroes, as far as the segment goes.
    async fn zeroes(&mut self, from: u64, to: u64) -> Result<bool> {
        let to = to.min(self.end_bytes);
        if to <= from || !self.ensure(from, to - from).await? {
            return Ok(true);
        }
        Ok(self.slice(from, to - from).iter().all(|b| *b == 0))
    }

    /// Moves the position to the next 8-byte position at or after it that starts with the
    /// record magic, reading window after window. `false` when the segment ends first.
    async fn find_magic(&mut self) -> Result<bool> {
        let magic = RECORD_MAGIC.to_le_bytes();
        loop {
            let pos = self.pos;
            if !self.ensure(pos, RECORD_HEADER_BYTES as u64).await? {
                return Ok(false);
            }
            let window_end = self.window_start + self.window.len() as u64;
            let from = (pos - self.window_start) as usize;
            let found = self.window[from..]
                .chunks_exact(RECORD_ALIGN_BYTES as usize)
                .position(|c| c[..4] == magic);
            if let Some(i) = found {
                self.pos = pos + i as u64 * RECORD_ALIGN_BYTES;
                return Ok(true);
            }
            // Every 8-byte position of the window was looked at (windows end on a block).
            self.pos = align_up(window_end, RECORD_ALIGN_BYTES).max(pos + RECORD_ALIGN_BYTES);
            self.disk.yield_if_needed().await;
        }
    }

    fn damaged(&mut self, pos: u64, fault: RecordFault) -> Scanned<'static> {
        self.pos = pos + RECORD_ALIGN_BYTES;
        self.resyncing = true;
        Scanned::Damaged {
            offset_bytes: pos,
            fault,
        }
    }
}
