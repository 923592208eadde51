//! Opening a partition directory before its core starts: the exclusive lock, the superblock
//! (created on first use, checked for owner and format version afterwards). Plain blocking
//! std::fs, run once per core at start.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, PartitionError, Result};
use crate::format::{Superblock, SUPERBLOCK_BYTES};
use crate::io::{write_file_atomic, SUPERBLOCK_FILE};
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
            sb
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if has_segments(dir)? {
                // Segments without a superblock: never format over data we cannot identify.
                return Err(err(dir, PartitionError::NotAPartition));
            }
            let sb = Superblock {
                node_id,
                core_index,
                partition_uuid: new_uuid(),
                segment_bytes,
            };
            // One whole block: glommio's polled-I/O probe must read a non-empty file.
            let mut block = vec![0u8; BLOCK_BYTES as usize];
            block[..SUPERBLOCK_BYTES].copy_from_slice(&sb.encode());
            write_file_atomic(dir, SUPERBLOCK_FILE, &block)
                .map_err(EngineError::io("writing the superblock"))?;
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

fn has_segments(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(EngineError::io("listing the partition"))? {
        let entry = entry.map_err(EngineError::io("listing the partition"))?;
        if entry.file_name().to_string_lossy().starts_with("seg-") {
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
