//! The master key file of a data directory (`DATA/master.keys`, `objects::master_keys`): loaded
//! by `serve` and `gateway`, created by a single node's first `serve`, rotated and extended by
//! `percore key rotate-master` and `percore key add-kms`.
//!
//! A node of a cluster and a gateway never create the file: each would make its own keys, and an
//! object written through one gateway could not be read through another. The operator copies
//! one file to every data directory (README, Encryption).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use objects::master_keys::MasterKeys;

/// The key file's name in a data directory.
const FILE_NAME: &str = "master.keys";

pub fn path(data: &Path) -> PathBuf {
    data.join(FILE_NAME)
}

/// The data directory's keys: created when `create` and there is no file; `None` (SSE-S3 and
/// SSE-KMS refused) when there is no file and `create` is false.
pub fn load(data: &Path, create: bool) -> anyhow::Result<Option<Arc<MasterKeys>>> {
    let path = path(data);
    if !create && !path.exists() {
        eprintln!(
            "percore: note: no master key file {}: SSE-S3 and SSE-KMS are refused (copy the \
             cluster's file there to enable them)",
            path.display()
        );
        return Ok(None);
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let (keys, created) = MasterKeys::load_or_create(&path)?;
    if created {
        eprintln!(
            "percore: created the master key file {} (SSE-S3): back it up; without it, \
             encrypted objects cannot be read",
            path.display()
        );
    }
    Ok(Some(Arc::new(keys)))
}

/// `percore key rotate-master`: a new active key; the old ones stay for the objects written
/// under them. A running server uses the new key after its restart.
pub fn rotate(data: &Path) -> anyhow::Result<()> {
    let path = path(data);
    let mut keys = MasterKeys::load(&path)?;
    let id = keys.rotate()?;
    keys.save(&path)?;
    println!("{id}");
    eprintln!(
        "percore: {} now has {} keys; new SSE-S3 objects use {id} once the server restarts \
         (copy the file to every gateway of a cluster first)",
        path.display(),
        keys.ids().count()
    );
    Ok(())
}

/// `percore key add-kms NAME`: a new named key for SSE-KMS requests and bucket defaults.
pub fn add_kms(data: &Path, name: &str) -> anyhow::Result<()> {
    let path = path(data);
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let (mut keys, _) = MasterKeys::load_or_create(&path)?;
    keys.add(name)?;
    keys.save(&path)?;
    println!("{name}");
    Ok(())
}
