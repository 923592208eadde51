//! The engine's error values. Operating faults (disk, peer, client) are values of
//! [`EngineError`]; broken invariants are asserts. Only the gateway maps these to S3 codes.

use std::fmt;

/// Why a partition could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionError {
    /// The superblock's magic is not percore's: not a partition, or overwritten.
    NotAPartition,
    /// A format version this build does not know.
    UnknownVersion {
        version_found: u32,
        version_known: u32,
    },
    /// The partition belongs to another node or core.
    WrongOwner {
        node_id_found: u64,
        core_index_found: u32,
        node_id: u64,
        core_index: u32,
    },
    /// The superblock's checksum does not match: torn or bit-flipped.
    SuperblockCorrupt,
    /// Configured segment size differs from the one the partition was formatted with.
    SegmentSizeMismatch {
        segment_bytes_found: u64,
        segment_bytes: u64,
    },
}

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAPartition => write!(f, "not a percore partition (bad superblock magic)"),
            Self::UnknownVersion {
                version_found,
                version_known,
            } => write!(
                f,
                "partition format version {version_found} is unknown to this build \
                 (it knows {version_known})"
            ),
            Self::WrongOwner {
                node_id_found,
                core_index_found,
                node_id,
                core_index,
            } => write!(
                f,
                "partition belongs to node {node_id_found} core {core_index_found}, \
                 not node {node_id} core {core_index}"
            ),
            Self::SuperblockCorrupt => write!(f, "superblock checksum mismatch"),
            Self::SegmentSizeMismatch {
                segment_bytes_found,
                segment_bytes,
            } => write!(
                f,
                "partition was formatted with {segment_bytes_found}-byte segments, \
                 configured {segment_bytes}"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("not found")]
    NotFound,
    #[error("no space left on the partition or its device")]
    NoSpace,
    #[error("corrupt data in segment {segment} at offset {offset_bytes}: {what}")]
    Corrupt {
        segment: u32,
        offset_bytes: u64,
        what: &'static str,
    },
    #[error("core is poisoned by a failed write or flush; writes refused, reads served")]
    Poisoned,
    #[error("too large: {what} is {len_bytes} bytes, at most {max_bytes}")]
    TooLarge {
        what: &'static str,
        len_bytes: u64,
        max_bytes: u64,
    },
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("core is busy (queue full)")]
    Busy,
    #[error("core has stopped")]
    Stopped,
    #[error("partition {path}: {error}")]
    Partition { path: String, error: PartitionError },
    #[error("i/o error during {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata store error during {context}: {message}")]
    Meta {
        context: &'static str,
        message: String,
    },
    #[error("configuration: {0}")]
    Config(String),
    /// A persisted structure failed its checks at open (the LMDB file's structure, a value's
    /// checksum): the core cannot trust it and goes offline.
    #[error("damaged {what}: {detail}")]
    Damaged { what: &'static str, detail: String },
    /// The core did not start because its partition is damaged; every request gets this.
    #[error("core offline: {reason}")]
    Offline { reason: String },
}

impl EngineError {
    /// Wraps an I/O error; a full device or an exhausted quota becomes [`EngineError::NoSpace`]
    /// wherever it happens (segment creation, writes, small files), so a full disk is refused
    /// like a full partition instead of looking like a failing device.
    pub fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> EngineError {
        move |source| {
            if is_no_space(&source) {
                EngineError::NoSpace
            } else {
                EngineError::Io { context, source }
            }
        }
    }

    /// Wraps an LMDB error; ENOSPC/EDQUOT while LMDB writes its file, and a full map, are
    /// `NoSpace` (heed turns LMDB's errno codes into `heed::Error::Io` with the errno kept).
    pub fn meta(context: &'static str) -> impl FnOnce(heed::Error) -> EngineError {
        move |e| match e {
            heed::Error::Io(source) if is_no_space(&source) => EngineError::NoSpace,
            heed::Error::Mdb(heed::MdbError::MapFull) => EngineError::NoSpace,
            e => EngineError::Meta {
                context,
                message: e.to_string(),
            },
        }
    }
}

/// Whether an I/O error says the device (or the user's quota) has no room. Checks the errno
/// and, for errors rebuilt without one (glommio's `From<GlommioError>` keeps only the kind),
/// the kind std derives from ENOSPC and EDQUOT.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

impl EngineError {
    /// Whether a core that failed to open with this error should start offline, leaving the
    /// node to serve from its other cores: damage found in its files. Anything an operator
    /// must fix first (a partition of another node, a lock held by another process, a port in
    /// use, a bad configuration) still stops the node.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Corrupt { .. } | Self::Damaged { .. } | Self::Meta { .. } | Self::Io { .. } => {
                true
            }
            Self::Partition { error, .. } => matches!(error, PartitionError::SuperblockCorrupt),
            Self::NotFound
            | Self::NoSpace
            | Self::TooLarge { .. }
            | Self::Poisoned
            | Self::BadRequest(_)
            | Self::Busy
            | Self::Stopped
            | Self::Config(_)
            | Self::Offline { .. } => false,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_edquot_are_no_space_with_or_without_errno() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let raw = std::io::Error::from_raw_os_error(errno);
            // What glommio's conversion leaves: the kind, a message, no errno.
            let rebuilt = std::io::Error::new(raw.kind(), "glommio display text");
            assert!(rebuilt.raw_os_error().is_none());
            for e in [raw, rebuilt] {
                assert!(matches!(EngineError::io("test")(e), EngineError::NoSpace));
            }
        }
        let heed_err = heed::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(
            EngineError::meta("test")(heed_err),
            EngineError::NoSpace
        ));
        let eio = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(
            EngineError::io("test")(eio),
            EngineError::Io { .. }
        ));
    }
}
