//! Opening a partition directory before its core starts: the exclusive lock, the superblock
//! (created on first use, checked for owner and format version afterwards). Plain blocking
//! std::fs, run once per core at start.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, PartitionError, Result};
use crate::format::{Superblock, SUPERBLOCK_BYTES, SUPERBLOCK_VERSION};
use crate::io::{parse_segment_file_name, write_file_atomic, FREE_FILE_PREFIX, SUPERBLOCK_FILE};
use crate::limits::{BLOCK_BYTES, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};

const LOCK_FILE: &str = "lock";

/// An opened partition: its superblock and the lock that keeps other processes out.
pub struct OpenPartition {
    pub dir: PathBuf,
    pub superblock: Superblock,
    /// Held for the life of the core; the OS releases it if the process dies.
    _lock: File,
}

fn err(dir: &Path, error: PartitionError) -> EngineError {
    EngineError::Partition {
        path: dir.display().to_string(),
        error,
    }
}

/// Opens (formatting when new) the partition at `dir` for `node_id`/`core_index`.
pub fn open_partition(
    dir: &Path,
    node_id: u64,
    core_index: u32,
    segment_bytes: u64,
) -> Result<OpenPartition> {
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment_bytes)
        || !segment_bytes.is_multiple_of(BLOCK_BYTES)
    {
        return Err(EngineError::Config(format!(
            "segment size {segment_bytes} must be a multiple of {BLOCK_BYTES} between \
             {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}"
        )));
    }
    std::fs::create_dir_all(dir).map_err(EngineError::io("creating the partition directory"))?;
    let lock = File::create(dir.join(LOCK_FILE)).map_err(EngineError::io("creating the lock"))?;
    if lock.try_lock().is_err() {
        return Err(EngineError::Config(format!(
            "partition {} is in use by another process",
            dir.display()
        )));
    }
    let path = dir.join(SUPERBLOCK_FILE);
    let superblock = match File::open(&path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .map_err(EngineError::io("reading the superblock"))?;
            let sb =
                Superblock::decode_for(&bytes, node_id, core_index).map_err(|e| err(dir, e))?;
            if sb.segment_bytes != segment_bytes {
                return Err(err(
                    dir,
                    PartitionError::SegmentSizeMismatch {
                        segment_bytes_found: sb.segment_bytes,
                        segment_bytes,
                    },
                ));
            }
            if sb.version == SUPERBLOCK_VERSION {
                sb
            } else {
                upgrade_from_version1(dir, sb)?
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if has_segments(dir)? {
                // Segments without a superblock: never format over data we cannot identify.
                return Err(err(dir, PartitionError::NotAPartition));
            }
            let sb = Superblock {
                version: SUPERBLOCK_VERSION,
                node_id,
                core_index,
                partition_uuid: new_uuid(),
                segment_bytes,
                format1_segments_below: 0,
            };
            write_superblock(dir, &sb)?;
            sb
        }
        Err(e) => return Err(EngineError::io("opening the superblock")(e)),
    };
    Ok(OpenPartition {
        dir: dir.to_path_buf(),
        superblock,
        _lock: lock,
    })
}

/// One whole block: glommio's polled-I/O probe must read a non-empty file.
fn write_superblock(dir: &Path, sb: &Superblock) -> Result<()> {
    let mut block = vec![0u8; BLOCK_BYTES as usize];
    block[..SUPERBLOCK_BYTES].copy_from_slice(&sb.encode());
    write_file_atomic(dir, SUPERBLOCK_FILE, &block)
        .map_err(EngineError::io("writing the superblock"))
}

/// Version 2 recycles segment files and names each record's segment; a version-1 partition's
/// segments hold records that name none. They stay readable: the upgraded superblock records
/// that segments below the next one to be created may hold them, and no recycled file is
/// ever renumbered below it. Atomic (the old superblock stays until the new one is whole);
/// done before any version-2 record is written. A version-1 build then refuses the partition
/// (`UnknownVersion`): it could not read the version-2 records.
fn upgrade_from_version1(dir: &Path, old: Superblock) -> Result<Superblock> {
    let segments = segment_numbers(dir)?;
    let below = segments.iter().max().map_or(0, |s| s + 1);
    let sb = Superblock {
        version: SUPERBLOCK_VERSION,
        format1_segments_below: below,
        ..old
    };
    write_superblock(dir, &sb)?;
    tracing::info!(
        dir = %dir.display(),
        format1_segments_below = below,
        "partition upgraded from format version 1 to 2"
    );
    Ok(sb)
}

/// The numbers of the segment files in `dir` (not the free pool's).
fn segment_numbers(dir: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(EngineError::io("listing the partition"))? {
        let entry = entry.map_err(EngineError::io("listing the partition"))?;
        if let Some(n) = parse_segment_file_name(&entry.file_name().to_string_lossy()) {
            out.push(n);
        }
    }
    Ok(out)
}

fn has_segments(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(EngineError::io("listing the partition"))? {
        let entry = entry.map_err(EngineError::io("listing the partition"))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("seg-") || name.starts_with(FREE_FILE_PREFIX) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A random 128-bit id from the kernel's generator.
fn new_uuid() -> [u8; 16] {
    let mut id = [0u8; 16];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .is_ok();
    assert!(ok, "/dev/urandom is readable on Linux");
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_then_checks_owner() {
        let dir = tempfile::tempdir().unwrap();
        let p = open_partition(dir.path(), 1, 0, SEGMENT_BYTES_MIN).unwrap();
        let uuid = p.superblock.partition_uuid;
        assert!(
            open_partition(dir.path(), 1, 0, SEGMENT_BYTES_MIN).is_err(),
            "locked"
        );
        drop(p);
        let again = open_partition(dir.path(), 1, 0, SEGMENT_BYTES_MIN).unwrap();
        assert_eq!(again.superblock.partition_uuid, uuid);
        drop(again);
        let wrong = open_partition(dir.path(), 2, 0, SEGMENT_BYTES_MIN)
            .err()
            .unwrap();
        assert!(
            wrong.to_string().contains("belongs to node 1 core 0"),
            "{wrong}"
        );
        let size = open_partition(dir.path(), 1, 0, 2 * SEGMENT_BYTES_MIN)
            .err()
            .unwrap();
        assert!(size.to_string().contains("segments"), "{size}");
    }
}
