//! The seam between the storage logic and the I/O it does. [`Disk`] is implemented by
//! [`crate::io::GlommioDisk`] (O_DIRECT files on a glommio executor) and by
//! [`crate::sim::SimDisk`] (memory, with injected torn writes, lost flushes and bit flips).
//!
//! The store above this trait is deterministic given the order in which the disk completes
//! its operations; it never names glommio.

use std::future::Future;
use std::path::PathBuf;

use crate::error::Result;

/// A buffer suitable for the disk's writes (aligned for O_DIRECT on the real disk).
pub trait DiskBuf {
    fn as_mut_slice(&mut self) -> &mut [u8];
    fn as_slice(&self) -> &[u8];
}

#[allow(async_fn_in_trait)]
pub trait Disk: 'static {
    type Buf: DiskBuf;
    type File: Clone + 'static;

    /// A write buffer of `len_bytes` (a multiple of the block size).
    fn alloc(&self, len_bytes: usize) -> Self::Buf;
    /// Creates segment `segment` with `size_bytes` reserved on the device, durably (the
    /// directory entry is synced). Fails with `NoSpace` when the device cannot hold it.
    async fn create_segment(&self, segment: u32, size_bytes: u64) -> Result<Self::File>;
    async fn open_segment(&self, segment: u32) -> Result<Self::File>;
    /// Segment ids present in the partition, ascending.
    async fn list_segments(&self) -> Result<Vec<u32>>;
    async fn remove_segment(&self, segment: u32) -> Result<()>;
    /// Free files (reclaimed segment files kept for reuse), by the number of the segment
    /// each last served, ascending.
    async fn list_free(&self) -> Result<Vec<u32>>;
    /// Moves segment `segment`'s file into the free pool, durably, under its number. Its
    /// bytes stay as they are: records of this and earlier lives.
    async fn retire_segment(&self, segment: u32) -> Result<()>;
    /// Makes free file `free` segment `segment` (a number never used before, so greater than
    /// `free`), durably, with `size_bytes` reserved, and opens it. The old records stay in it;
    /// each names the segment it was written into, so replay stops at them.
    async fn reuse_free(&self, free: u32, segment: u32, size_bytes: u64) -> Result<Self::File>;
    /// Deletes a free file (the pool is at its bound, or the device needs the room).
    async fn remove_free(&self, free: u32) -> Result<()>;
    /// Writes a whole block-aligned buffer at a block-aligned offset.
    async fn write_at(&self, file: &Self::File, buf: Self::Buf, offset_bytes: u64) -> Result<()>;
    /// Writes as `write_at` does and returns once that write is durable (with whatever the
    /// file needs to read it back), as `write_at` then `sync` would. Only for a write that no
    /// other unsynced write to `file` precedes: it need not make those durable.
    async fn write_durable_at(
        &self,
        file: &Self::File,
        buf: Self::Buf,
        offset_bytes: u64,
    ) -> Result<()>;
    /// Reads up to `len_bytes` at any offset (shorter at the end of the file).
    async fn read_at(
        &self,
        file: &Self::File,
        offset_bytes: u64,
        len_bytes: usize,
    ) -> Result<Vec<u8>>;
    /// Appends what `read_at` would return to `out` (a scan's window: no buffer besides the
    /// device's own read buffer).
    async fn read_append(
        &self,
        file: &Self::File,
        offset_bytes: u64,
        len_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let bytes = self.read_at(file, offset_bytes, len_bytes).await?;
        out.extend_from_slice(&bytes);
        Ok(())
    }
    /// Makes every completed write to `file` durable.
    async fn sync(&self, file: &Self::File) -> Result<()>;
    /// Reads a small whole file (superblock, checkpoint) if it exists.
    async fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Replaces a small file atomically and durably (write temp, sync, rename, sync dir).
    async fn write_small_atomic(&self, name: &str, data: Vec<u8>) -> Result<()>;
    /// Runs blocking work (LMDB sync, large encodes) away from the executor thread.
    async fn blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R;
    /// Runs a task in the background of this core.
    fn spawn(&self, fut: impl Future<Output = ()> + 'static);
    /// Runs a background task in the core's low-priority task queue (reclaim).
    fn spawn_background(&self, fut: impl Future<Output = ()> + 'static);
    /// Waits (a timer on the real disk; a yield on the simulator).
    async fn sleep(&self, duration: std::time::Duration);
    /// Yields to other tasks if this one has run long enough.
    async fn yield_if_needed(&self);
    /// Where the metadata store (LMDB) lives.
    fn meta_dir(&self) -> PathBuf;
    /// Bytes still free on the device holding the partition (shared with every other
    /// partition on it). Checked before each new segment (the free-space floor).
    fn device_free_bytes(&self) -> Result<u64>;
    /// Partitions of this node on that device (each keeps its own reserve there).
    fn partitions_on_device(&self) -> u32;
}
