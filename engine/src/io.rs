//! The real disk: O_DIRECT segment files on a glommio executor, and the LMDB environment.
//! The only module of the workspace allowed `unsafe` (each block carries a SAFETY note).
//!
//! Pitfalls handled here (the team's design notes, "Known pitfalls"; `engine/DESIGN.md`):
//! - glommio probes polled-I/O support with the first DmaFile a thread opens on a device; an
//!   empty file makes the probe succeed wrongly and later reads fail with EOPNOTSUPP on virtio.
//!   [`GlommioDisk::open`] reads the (non-empty, one block) superblock through DmaFile first.
//! - `DmaFile::create` opens write-only: segments are opened read+write through OpenOptions.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::{executor, TaskQueueHandle};

use crate::disk::{Disk, DiskBuf};
use crate::error::{EngineError, Result};
use crate::limits::{BLOCK_BYTES, TRIM_STEP_BYTES, TRIM_STEP_PAUSE};

impl DiskBuf for DmaBuffer {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
    fn as_slice(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A partition directory driven through glommio's io_uring reactor.
pub struct GlommioDisk {
    dir: PathBuf,
    background: TaskQueueHandle,
    /// Open segment files; dropped when the segment is removed.
    files: RefCell<HashMap<u32, Rc<SegmentFile>>>,
    /// The segment last opened to be written (created or reused) and a second descriptor of
    /// it opened with `O_DSYNC`, whose writes return once durable ([`Disk::write_durable_at`]).
    /// One at a time: the log writes only its newest segment, and a descriptor per segment
    /// would double the files a partition keeps open.
    durable: RefCell<Option<(u32, Rc<DmaFile>)>>,
    /// Partitions of the node on this partition's filesystem (see `Disk::partitions_on_device`).
    partitions_on_device: u32,
}

pub const SUPERBLOCK_FILE: &str = "superblock";

/// A segment file as the store holds it: its number and its O_DIRECT descriptor.
#[derive(Debug)]
pub struct SegmentFile {
    segment: u32,
    file: DmaFile,
}

impl GlommioDisk {
    /// Opens the partition directory on the current glommio executor. `superblock` is the
    /// partition's existing superblock file (already written, one block long).
    pub async fn open(dir: &Path, background: TaskQueueHandle) -> Result<GlommioDisk> {
        let probe_path = dir.join(SUPERBLOCK_FILE);
        let probe = OpenOptions::new()
            .read(true)
            .dma_open(&probe_path)
            .await
            .map_err(|e| glommio_io("opening the superblock", e))?;
        let block = probe
            .read_at(0, BLOCK_BYTES as usize)
            .await
            .map_err(|e| glommio_io("reading the superblock", e))?;
        assert!(
            !block.is_empty(),
            "the probe file must not be empty (see module docs)"
        );
        probe
            .close()
            .await
            .map_err(|e| glommio_io("closing the superblock", e))?;
        Ok(GlommioDisk {
            dir: dir.to_path_buf(),
            background,
            files: RefCell::new(HashMap::new()),
            durable: RefCell::new(None),
            partitions_on_device: 1,
        })
    }

    /// Sets how many of the node's partitions share this partition's filesystem.
    #[must_use]
    pub fn with_partitions_on_device(mut self, partitions: u32) -> GlommioDisk {
        self.partitions_on_device = partitions.max(1);
        self
    }

    /// Opens the second, `O_DSYNC` descriptor of `segment`, the one the log writes now,
    /// closing the last segment's.
    async fn open_durable(&self, segment: u32, path: &Path) -> Result<()> {
        let dsync = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .dma_open(path)
            .await
            .map_err(|e| glommio_io("opening a segment for durable writes", e))?;
        let last = self.durable.borrow_mut().replace((segment, Rc::new(dsync)));
        // Closed now (a dropped DmaFile is closed later, by the executor). Every write through
        // it has completed, durably: the log rolls between group commits.
        if let Some(Ok(last)) = last.map(|(_, f)| Rc::try_unwrap(f)) {
            let _ = last.close().await;
        }
        Ok(())
    }

    /// Drops this process's descriptors of `segment` (a write or read in flight keeps its own).
    fn forget(&self, segment: u32) {
        self.files.borrow_mut().remove(&segment);
        let mut durable = self.durable.borrow_mut();
        if durable.as_ref().is_some_and(|(s, _)| *s == segment) {
            *durable = None;
        }
    }

    fn segment_path(&self, segment: u32) -> PathBuf {
        self.dir.join(segment_file_name(segment))
    }

    fn free_path(&self, free: u32) -> PathBuf {
        self.dir.join(free_file_name(free))
    }

    /// The names of the partition directory's entries.
    async fn dir_names(&self) -> Result<Vec<String>> {
        let dir = self.dir.clone();
        self.blocking(move || -> std::io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
            Ok(names)
        })
        .await
        .map_err(EngineError::io("listing segments"))
    }

    /// Renames `from` to `to` (which must not exist: a live segment is never replaced) and
    /// syncs the directory, so the new name is durable before any record is written under it.
    async fn rename_durably(
        &self,
        from: PathBuf,
        to: PathBuf,
        context: &'static str,
    ) -> Result<()> {
        let dir = self.dir.clone();
        self.blocking(move || -> std::io::Result<()> {
            if to.try_exists()? {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists", to.display()),
                ));
            }
            std::fs::rename(from, to)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await
        .map_err(EngineError::io(context))
    }
}

pub fn segment_file_name(segment: u32) -> String {
    format!("seg-{segment:08x}.log")
}

/// Files of the free pool: reclaimed segment files kept for reuse, named by the last segment
/// number each served (engine/DESIGN.md, "Recycled segment files").
pub const FREE_FILE_PREFIX: &str = "free-";

pub fn free_file_name(free: u32) -> String {
    format!("{FREE_FILE_PREFIX}{free:08x}.log")
}

pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    parse_numbered(name, "seg-")
}

fn parse_free_file_name(name: &str) -> Option<u32> {
    parse_numbered(name, FREE_FILE_PREFIX)
}

fn parse_numbered(name: &str, prefix: &str) -> Option<u32> {
    let hex = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// glommio reports a failed syscall as `EnhancedIoError` whose `source` carries the errno, but
/// its `From<GlommioError> for io::Error` rebuilds the error from the kind and the message and
/// drops the errno (glommio 0.9 `error.rs`). On main, ENOSPC from a real full disk therefore
/// looked like a device failure and poisoned the core. The source is taken as it is here.
fn glommio_io(context: &'static str, e: glommio::GlommioError<()>) -> EngineError {
    match e {
        glommio::GlommioError::EnhancedIoError { source, .. } => EngineError::io(context)(source),
        other => EngineError::io(context)(std::io::Error::from(other)),
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir` (statvfs
/// `f_bavail * f_frsize`).
pub fn device_free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| EngineError::Config(format!("{}: path holds a NUL byte", dir.display())))?;
    let mut out = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `out` points to writable memory the
    // size of a `statvfs`, which the call fills on success.
    let rc = unsafe { libc::statvfs(path.as_ptr(), out.as_mut_ptr()) };
    if rc != 0 {
        return Err(EngineError::io("statvfs of the partition")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    let st = unsafe { out.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

impl Disk for GlommioDisk {
    type Buf = DmaBuffer;
    type File = Rc<SegmentFile>;

    fn alloc(&self, len_bytes: usize) -> DmaBuffer {
        assert_eq!(len_bytes as u64 % BLOCK_BYTES, 0);
        glommio::allocate_dma_buffer(len_bytes)
    }

    async fn create_segment(&self, segment: u32, size_bytes: u64) -> Result<Rc<SegmentFile>> {
        let path = self.segment_path(segment);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .dma_open(&path)
            .await
            .map_err(|e| glommio_io("creating a segment", e))?;
        // Reserve the whole segment now: a full device fails here, before any record is
        // written, and later fdatasyncs need not journal size changes.
        if let Err(e) = file.pre_allocate(size_bytes, false).await {
            let _ = file.close().await;
            let _ = std::fs::remove_file(&path);
            return Err(glommio_io("reserving a segment", e));
        }
        file.fdatasync()
            .await
            .map_err(|e| glommio_io("syncing a new segment", e))?;
        sync_dir(&self.dir).await?;
        self.open_durable(segment, &path).await?;
        let file = Rc::new(SegmentFile { segment, file });
        self.files.borrow_mut().insert(segment, file.clone());
        Ok(file)
    }

    async fn open_segment(&self, segment: u32) -> Result<Rc<SegmentFile>> {
        if let Some(f) = self.files.borrow().get(&segment) {
            return Ok(f.clone());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(self.segment_path(segment))
            .await
            .map_err(|e| glommio_io("opening a segment", e))?;
        let file = Rc::new(SegmentFile { segment, file });
        self.files.borrow_mut().insert(segment, file.clone());
        Ok(file)
    }

    async fn list_segments(&self) -> Result<Vec<u32>> {
        let names = self.dir_names().await?;
        let mut ids: Vec<u32> = names
            .iter()
            .filter_map(|n| parse_segment_file_name(n))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn list_free(&self) -> Result<Vec<u32>> {
        let names = self.dir_names().await?;
        let mut ids: Vec<u32> = names
            .iter()
            .filter_map(|n| parse_free_file_name(n))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn retire_segment(&self, segment: u32) -> Result<()> {
        // A read still in flight keeps its descriptor (the same file under its new name):
        // what it reads is checked (checksum, kind, id, segment) and retried at the
        // fragment's new place (`Store::at_current_loc`).
        self.forget(segment);
        self.rename_durably(
            self.segment_path(segment),
            self.free_path(segment),
            "keeping a segment file for reuse",
        )
        .await
    }

    async fn reuse_free(
        &self,
        free: u32,
        segment: u32,
        size_bytes: u64,
    ) -> Result<Rc<SegmentFile>> {
        let path = self.segment_path(segment);
        self.rename_durably(self.free_path(free), path.clone(), "reusing a segment file")
            .await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| glommio_io("opening a reused segment", e))?;
        let size = file
            .file_size()
            .await
            .map_err(|e| glommio_io("sizing a reused segment", e))?;
        if size < size_bytes {
            // Its creation was cut short (a crash between create and fallocate): reserve it
            // now, as `create_segment` would have, and as there, a device that cannot hold it
            // gets the file deleted (the segment does not exist) and `NoSpace`.
            if let Err(e) = file.pre_allocate(size_bytes, false).await {
                let _ = file.close().await;
                let _ = std::fs::remove_file(&path);
                return Err(glommio_io("reserving a reused segment", e));
            }
            file.fdatasync()
                .await
                .map_err(|e| glommio_io("syncing a reused segment", e))?;
        }
        self.open_durable(segment, &path).await?;
        let file = Rc::new(SegmentFile { segment, file });
        self.files.borrow_mut().insert(segment, file.clone());
        Ok(file)
    }

    async fn remove_free(&self, free: u32) -> Result<()> {
        let path = self.free_path(free);
        let dir = self.dir.clone();
        self.blocking(move || -> std::io::Result<()> {
            std::fs::remove_file(path)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await
        .map_err(EngineError::io("removing a free segment file"))
    }

    async fn remove_segment(&self, segment: u32) -> Result<()> {
        self.forget(segment);
        let path = self.segment_path(segment);
        // Shrunk a step at a time before the unlink: on a filesystem mounted with `discard`
        // freeing a whole segment is one trim of its size, which holds the device for tens of
        // milliseconds (37 ms for 64 MiB on this machine's virtio disk) while reads queue
        // behind it (engine/DESIGN.md, "Reclaim"). A crash part way leaves a shorter segment
        // nothing points into, removed again by the next reclaim.
        let mut len = self
            .blocking({
                let path = path.clone();
                move || std::fs::metadata(path).map(|m| m.len())
            })
            .await
            .map_err(EngineError::io("sizing a segment to remove"))?;
        while len > TRIM_STEP_BYTES {
            len -= TRIM_STEP_BYTES;
            self.blocking({
                let path = path.clone();
                move || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)?
                        .set_len(len)
                }
            })
            .await
            .map_err(EngineError::io("shrinking a segment to remove"))?;
            glommio::timer::sleep(TRIM_STEP_PAUSE).await;
        }
        let dir = self.dir.clone();
        self.blocking(move || -> std::io::Result<()> {
            std::fs::remove_file(path)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await
        .map_err(EngineError::io("removing a segment"))
    }

    async fn write_at(
        &self,
        file: &Rc<SegmentFile>,
        buf: DmaBuffer,
        offset_bytes: u64,
    ) -> Result<()> {
        write_whole(&file.file, buf, offset_bytes).await
    }

    async fn write_durable_at(
        &self,
        file: &Rc<SegmentFile>,
        buf: DmaBuffer,
        offset_bytes: u64,
    ) -> Result<()> {
        let durable = match &*self.durable.borrow() {
            Some((segment, dsync)) if *segment == file.segment => Some(dsync.clone()),
            _ => None,
        };
        if let Some(dsync) = durable {
            write_whole(&dsync, buf, offset_bytes).await
        } else {
            write_whole(&file.file, buf, offset_bytes).await?;
            self.sync(file).await
        }
    }

    async fn read_at(
        &self,
        file: &Rc<SegmentFile>,
        offset_bytes: u64,
        len_bytes: usize,
    ) -> Result<Vec<u8>> {
        let res = file
            .file
            .read_at(offset_bytes, len_bytes)
            .await
            .map_err(|e| glommio_io("reading", e))?;
        Ok(res.to_vec())
    }

    async fn read_append(
        &self,
        file: &Rc<SegmentFile>,
        offset_bytes: u64,
        len_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let res = file
            .file
            .read_at(offset_bytes, len_bytes)
            .await
            .map_err(|e| glommio_io("reading", e))?;
        out.extend_from_slice(&res);
        Ok(())
    }

    async fn sync(&self, file: &Rc<SegmentFile>) -> Result<()> {
        file.file
            .fdatasync()
            .await
            .map_err(|e| glommio_io("fdatasync", e))
    }

    async fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        self.blocking(move || match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
        .map_err(EngineError::io("reading a small file"))
    }

    async fn write_small_atomic(&self, name: &str, data: Vec<u8>) -> Result<()> {
        let dir = self.dir.clone();
        let name = name.to_string();
        self.blocking(move || write_file_atomic(&dir, &name, &data))
            .await
            .map_err(EngineError::io("writing a small file"))
    }

    async fn blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        executor().spawn_blocking(f).await
    }

    fn spawn(&self, fut: impl Future<Output = ()> + 'static) {
        glommio::spawn_local(fut).detach();
    }

    fn spawn_background(&self, fut: impl Future<Output = ()> + 'static) {
        match glommio::spawn_local_into(fut, self.background) {
            Ok(task) => {
                task.detach();
            }
            Err(e) => panic!("the background task queue exists for the core's life: {e}"),
        }
    }

    async fn sleep(&self, duration: std::time::Duration) {
        glommio::timer::sleep(duration).await;
    }

    async fn yield_if_needed(&self) {
        glommio::yield_if_needed().await;
    }

    fn meta_dir(&self) -> PathBuf {
        self.dir.join("meta")
    }

    fn device_free_bytes(&self) -> Result<u64> {
        device_free_bytes(&self.dir)
    }

    fn partitions_on_device(&self) -> u32 {
        self.partitions_on_device
    }
}

/// Writes a whole block-aligned buffer at a block-aligned offset.
async fn write_whole(file: &DmaFile, buf: DmaBuffer, offset_bytes: u64) -> Result<()> {
    // Checked right before the O_DIRECT write (STYLE rule 2).
    assert_eq!(offset_bytes % BLOCK_BYTES, 0);
    assert_eq!(buf.len() as u64 % BLOCK_BYTES, 0);
    let len = buf.len();
    let written = file
        .write_at(buf, offset_bytes)
        .await
        .map_err(|e| glommio_io("writing records", e))?;
    if written != len {
        return Err(EngineError::Io {
            context: "writing records",
            source: std::io::Error::new(std::io::ErrorKind::WriteZero, "short write"),
        });
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
    executor()
        .spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(EngineError::io("syncing the partition directory"))
}

/// Write a temp file, sync it, rename it over `name`, sync the directory.
pub fn write_file_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A half-written temp file (ENOSPC) would hold space the reclaimer needs.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Opens (creating) the LMDB environment of a partition's metadata store.
pub fn open_lmdb(dir: &Path, map_size_bytes: usize) -> Result<heed::Env> {
    std::fs::create_dir_all(dir).map_err(EngineError::io("creating the metadata directory"))?;
    let mut options = heed::EnvOpenOptions::new();
    // `meta` and `format`, and the split stores' 28 trees (`meta.rs`).
    options.map_size(map_size_bytes).max_dbs(32);
    // SAFETY: NO_SYNC trades LMDB's own durability for speed; every mutation is first durable
    // in the core's log and replayed after a crash from the last checkpoint, which calls
    // `force_sync` before it moves the replay point (engine/DESIGN.md, "Metadata").
    unsafe {
        options.flags(heed::EnvFlags::NO_SYNC | heed::EnvFlags::NO_META_SYNC);
    }
    // SAFETY: each partition's metadata directory is opened by exactly one core of one process
    // (the partition's superblock names its owner and the node holds a lock file), so the
    // memory map is never opened twice in this process.
    unsafe { options.open(dir) }.map_err(EngineError::meta("opening LMDB"))
}

/// A write transaction of `env` that may outlive the borrow it was begun with: the metadata
/// store keeps one open across group commits (`meta::MetaStore`, "Open transaction" in
/// engine/DESIGN.md). heed ties a transaction to `&'e Env` only to reach the environment's
/// shared handle, which lives at a fixed address inside the box.
///
/// The caller must drop or commit the transaction before `env` is dropped or moved out of
/// its box, and use it only on the thread that begun it (LMDB's write lock belongs to that
/// thread). `MetaStore` declares the transaction before the box, so it is dropped first, and
/// never moves the box's contents.
#[allow(clippy::borrowed_box)] // the box is the contract: a fixed address
pub fn open_write_txn(env: &Box<heed::Env>) -> Result<heed::RwTxn<'static>> {
    let txn = env.write_txn().map_err(EngineError::meta("begin"))?;
    // SAFETY: only the lifetime changes. The transaction borrows the `Env` inside the box,
    // whose heap address stays fixed while the box lives; the caller drops the transaction
    // first (see above), so the borrow never dangles.
    Ok(unsafe { std::mem::transmute::<heed::RwTxn<'_>, heed::RwTxn<'static>>(txn) })
}

/// Binds `addr` with std's listener (SO_REUSEADDR, not SO_REUSEPORT: glommio's sets that, and
/// then a second process on the same port silently takes half the connections), waiting up to
/// `BIND_WAIT_MAX` while the port is in use: a killed process's sockets outlive it briefly.
/// A port another live process holds is still an error, after the wait.
pub fn bind_when_free(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + crate::limits::BIND_WAIT_MAX;
    loop {
        match std::net::TcpListener::bind(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            bound => return bound,
        }
    }
}

/// Binds a core's TCP port (`bind_when_free`): a port already in use is an error here.
pub fn bind_listener(addr: std::net::SocketAddr) -> Result<glommio::net::TcpListener> {
    let std_listener = bind_when_free(addr).map_err(|e| {
        EngineError::Config(format!(
            "cannot listen on {addr}: {e} (is another process using it?)"
        ))
    })?;
    Ok(glommio_listener(std_listener))
}

/// The same listening socket as a glommio listener of the calling core's executor (it must be
/// called on a core's thread): thread-per-core HTTP serving hands each core a duplicate of the
/// S3 port's socket (`std::net::TcpListener::try_clone`), so every core accepts from it.
pub fn glommio_listener(listener: std::net::TcpListener) -> glommio::net::TcpListener {
    use std::os::fd::IntoRawFd;
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` was just released by `into_raw_fd`, so it is an open, listening TCP socket
    // that nothing else owns; the glommio listener takes sole ownership and closes it.
    unsafe { <glommio::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    /// A port held a moment longer by its previous owner (a killed process's sockets outlive
    /// it) is bound once it is released, not refused.
    #[test]
    fn a_port_released_a_moment_later_is_bound() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        assert_eq!(
            std::net::TcpListener::bind(addr).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let bound = super::bind_when_free(addr).expect("bound once released");
        assert_eq!(bound.local_addr().unwrap(), addr);
        release.join().unwrap();
    }
}
