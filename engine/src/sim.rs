//! A simulated disk for deterministic fault testing: memory-backed files where writes stay
//! volatile until `sync`, and a crash keeps, drops or tears each unsynced write (in 512-byte
//! sectors) as a seeded random generator decides. Bit flips can be injected into durable data.
//! Faults replay exactly from the seed.
//!
//! It runs on a glommio executor like the real disk (spawned tasks, `blocking` inline).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;

use crate::disk::{Disk, DiskBuf};
use crate::error::{EngineError, Result};
use crate::limits::BLOCK_BYTES;

pub struct SimBuf(Vec<u8>);

impl DiskBuf for SimBuf {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Default)]
struct SimFile {
    durable: Vec<u8>,
    /// Completed but unsynced writes, oldest first.
    pending: Vec<(u64, Vec<u8>)>,
    /// Device bytes the segment reserved when it was created.
    reserved_bytes: u64,
    /// Which creation made the file (1, 2, ...): a reused file keeps it, as an inode would.
    serial: u64,
}

impl SimFile {
    fn visible(&self) -> Vec<u8> {
        let mut v = self.durable.clone();
        for (off, data) in &self.pending {
            apply(&mut v, *off, data);
        }
        v
    }
}

fn apply(v: &mut Vec<u8>, off: u64, data: &[u8]) {
    let end = off as usize + data.len();
    if v.len() < end {
        v.resize(end, 0);
    }
    v[off as usize..end].copy_from_slice(data);
}

/// A tiny deterministic generator (SplitMix64) so the engine needs no rand dependency.
#[derive(Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

struct SimState {
    segments: BTreeMap<u32, SimFile>,
    /// The free pool: retired segment files with their bytes, by their last segment number.
    free: BTreeMap<u32, SimFile>,
    /// Segment files created so far (the next file's serial).
    created: u64,
    small: BTreeMap<String, Vec<u8>>,
    /// Bytes the device can hold (segments only).
    capacity_bytes: u64,
    /// After this many more writes or syncs, the process "dies": every call fails.
    ops_until_crash: Option<u64>,
    crashed: bool,
    /// Fail the next sync (a lost flush reported as an error).
    fail_next_sync: bool,
    /// Device bytes left for segments, small files and LMDB beyond the segments' capacity
    /// (`None`: unbounded). While it is too small, segment creation and small-file writes fail
    /// with ENOSPC, as a real full filesystem does.
    device_free_bytes: Option<u64>,
    /// Fail the next segment write with ENOSPC (a filesystem that allocates on write).
    nospace_next_write: bool,
    /// The largest segment read asked for since the last `take_largest_read_bytes`.
    largest_read_bytes: u64,
    /// Segment syncs and durable writes asked for so far (`sync_counts`).
    syncs: u64,
    durable_writes: u64,
    rng: SimRng,
}

/// A handle to one simulated partition. Clones share the same state.
#[derive(Clone)]
pub struct SimDisk {
    state: Rc<RefCell<SimState>>,
    meta_dir: PathBuf,
}

impl SimDisk {
    pub fn new(seed: u64, capacity_bytes: u64, meta_dir: PathBuf) -> SimDisk {
        SimDisk {
            state: Rc::new(RefCell::new(SimState {
                segments: BTreeMap::new(),
                free: BTreeMap::new(),
                created: 0,
                small: BTreeMap::new(),
                capacity_bytes,
                ops_until_crash: None,
                crashed: false,
                fail_next_sync: false,
                device_free_bytes: None,
                nospace_next_write: false,
                largest_read_bytes: 0,
                syncs: 0,
                durable_writes: 0,
                rng: SimRng::new(seed),
            })),
            meta_dir,
        }
    }

    /// The process dies after `ops` more writes/syncs.
    pub fn crash_after(&self, ops: u64) {
        self.state.borrow_mut().ops_until_crash = Some(ops);
    }

    pub fn fail_next_sync(&self) {
        self.state.borrow_mut().fail_next_sync = true;
    }

    /// Sets the free bytes the device reports (`None`: plenty). Segment creation and
    /// small-file writes consume them and fail with ENOSPC when they run out; removing a
    /// segment gives its bytes back.
    pub fn set_device_free_bytes(&self, free: Option<u64>) {
        self.state.borrow_mut().device_free_bytes = free;
    }

    /// The largest segment read (bytes asked for) since the last call, which resets it: a
    /// test's view of the buffers replay and reclaim hold.
    pub fn take_largest_read_bytes(&self) -> u64 {
        std::mem::take(&mut self.state.borrow_mut().largest_read_bytes)
    }

    /// Segment syncs (`Disk::sync`) and durable writes (`Disk::write_durable_at`) asked for
    /// since the disk was created.
    pub fn sync_counts(&self) -> (u64, u64) {
        let st = self.state.borrow();
        (st.syncs, st.durable_writes)
    }

    /// The next segment write fails with ENOSPC.
    pub fn nospace_next_write(&self) {
        self.state.borrow_mut().nospace_next_write = true;
    }

    /// Ends the current "process": unsynced writes are kept, dropped or torn at random; the
    /// returned disk is the same media as the next process sees it.
    pub fn restart(&self) -> SimDisk {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        let mut rng = st.rng.clone();
        for file in st.segments.values_mut().chain(st.free.values_mut()) {
            let pending = std::mem::take(&mut file.pending);
            for (off, data) in pending {
                match rng.below(3) {
                    0 => {}
                    1 => apply(&mut file.durable, off, &data),
                    _ => {
                        // Torn: a random subset of its 512-byte sectors reached the media.
                        for (i, sector) in data.chunks(512).enumerate() {
                            if rng.below(2) == 0 {
                                apply(&mut file.durable, off + (i as u64) * 512, sector);
                            }
                        }
                    }
                }
            }
        }
        st.rng = rng;
        st.crashed = false;
        st.ops_until_crash = None;
        st.fail_next_sync = false;
        drop(guard);
        self.clone()
    }

    /// Zeroes the durable 512-byte sector of a segment that holds `offset_bytes`, as a bad
    /// sector read back as zeroes would.
    pub fn zero_sector(&self, segment: u32, offset_bytes: u64) -> bool {
        let mut st = self.state.borrow_mut();
        match st.segments.get_mut(&segment) {
            Some(f) if (offset_bytes as usize) < f.durable.len() => {
                let start = (offset_bytes - offset_bytes % 512) as usize;
                let end = (start + 512).min(f.durable.len());
                f.durable[start..end].fill(0);
                true
            }
            _ => false,
        }
    }

    /// Flips one bit of durable data in a segment, as media decay would.
    pub fn flip_bit(&self, segment: u32, offset_bytes: u64, bit: u8) -> bool {
        let mut st = self.state.borrow_mut();
        match st.segments.get_mut(&segment) {
            Some(f) if (offset_bytes as usize) < f.durable.len() => {
                f.durable[offset_bytes as usize] ^= 1 << (bit % 8);
                true
            }
            _ => false,
        }
    }

    /// Where `needle` first occurs in the durable bytes of a segment (tests that damage one
    /// record they know the contents of).
    pub fn find(&self, needle: &[u8]) -> Option<(u32, u64)> {
        let st = self.state.borrow();
        st.segments.iter().find_map(|(id, f)| {
            f.durable
                .windows(needle.len())
                .position(|w| w == needle)
                .map(|at| (*id, at as u64))
        })
    }

    /// Flips one bit of a small file (the checkpoint); `false` when it has no such byte.
    pub fn flip_small_bit(&self, name: &str, offset_bytes: usize, bit: u8) -> bool {
        let mut st = self.state.borrow_mut();
        match st.small.get_mut(name) {
            Some(f) if offset_bytes < f.len() => {
                f[offset_bytes] ^= 1 << (bit % 8);
                true
            }
            _ => false,
        }
    }

    /// Removes a small file (the checkpoint); `false` when there is none.
    pub fn remove_small(&self, name: &str) -> bool {
        self.state.borrow_mut().small.remove(name).is_some()
    }

    /// The serial of the file that is segment `segment` (its creation's number, kept when a
    /// free file is reused): tests see which file a segment is.
    pub fn segment_file_serial(&self, segment: u32) -> Option<u64> {
        self.state.borrow().segments.get(&segment).map(|f| f.serial)
    }

    /// Segment files created so far (not counting reuses of free files).
    pub fn segments_created(&self) -> u64 {
        self.state.borrow().created
    }

    /// The free pool's file numbers.
    pub fn free_files(&self) -> Vec<u32> {
        self.state.borrow().free.keys().copied().collect()
    }

    /// Length of a small file, if it exists.
    pub fn small_len(&self, name: &str) -> Option<usize> {
        self.state.borrow().small.get(name).map(Vec::len)
    }

    /// Durable length of each segment (for tests that pick where to flip bits).
    pub fn segment_lens(&self) -> Vec<(u32, u64)> {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|(id, f)| (*id, f.durable.len() as u64))
            .collect()
    }

    fn step(&self) -> Result<()> {
        let mut st = self.state.borrow_mut();
        if st.crashed {
            return Err(dead());
        }
        if let Some(n) = st.ops_until_crash {
            if n == 0 {
                st.crashed = true;
                return Err(dead());
            }
            st.ops_until_crash = Some(n - 1);
        }
        Ok(())
    }
}

/// What a real full device answers, through the same mapping as the real disk's errors.
fn enospc(context: &'static str) -> EngineError {
    EngineError::io(context)(std::io::Error::from_raw_os_error(libc::ENOSPC))
}

/// Takes `bytes` from the simulated device's free space, or fails with ENOSPC.
fn take_device_bytes(st: &mut SimState, bytes: u64, context: &'static str) -> Result<()> {
    if let Some(free) = st.device_free_bytes {
        if free < bytes {
            return Err(enospc(context));
        }
        st.device_free_bytes = Some(free - bytes);
    }
    Ok(())
}

fn dead() -> EngineError {
    EngineError::Io {
        context: "simulated crash",
        source: std::io::Error::other("the simulated process has crashed"),
    }
}

/// Lets other tasks run between simulated I/O steps so concurrent operations interleave.
async fn yield_once() {
    futures_lite::future::yield_now().await;
}

impl Disk for SimDisk {
    type Buf = SimBuf;
    type File = u32;

    fn alloc(&self, len_bytes: usize) -> SimBuf {
        assert_eq!(len_bytes as u64 % BLOCK_BYTES, 0);
        SimBuf(vec![0; len_bytes])
    }

    async fn create_segment(&self, segment: u32, size_bytes: u64) -> Result<u32> {
        self.step()?;
        let mut st = self.state.borrow_mut();
        let used: u64 = (st.segments.len() + st.free.len()) as u64 * size_bytes;
        if used + size_bytes > st.capacity_bytes {
            return Err(EngineError::NoSpace);
        }
        take_device_bytes(&mut st, size_bytes, "reserving a segment")?;
        st.created += 1;
        let file = SimFile {
            reserved_bytes: size_bytes,
            serial: st.created,
            ..SimFile::default()
        };
        assert!(st.segments.insert(segment, file).is_none());
        Ok(segment)
    }

    async fn open_segment(&self, segment: u32) -> Result<u32> {
        if self.state.borrow().segments.contains_key(&segment) {
            Ok(segment)
        } else {
            Err(EngineError::io("opening a segment")(
                std::io::ErrorKind::NotFound.into(),
            ))
        }
    }

    async fn list_segments(&self) -> Result<Vec<u32>> {
        Ok(self.state.borrow().segments.keys().copied().collect())
    }

    async fn remove_segment(&self, segment: u32) -> Result<()> {
        self.step()?;
        let mut st = self.state.borrow_mut();
        if let Some(f) = st.segments.remove(&segment) {
            if let Some(free) = st.device_free_bytes.as_mut() {
                *free += f.reserved_bytes;
            }
        }
        Ok(())
    }

    async fn list_free(&self) -> Result<Vec<u32>> {
        Ok(self.state.borrow().free.keys().copied().collect())
    }

    async fn retire_segment(&self, segment: u32) -> Result<()> {
        self.step()?;
        let mut st = self.state.borrow_mut();
        let file = st.segments.remove(&segment).ok_or_else(|| {
            EngineError::io("keeping a segment file for reuse")(std::io::ErrorKind::NotFound.into())
        })?;
        assert!(st.free.insert(segment, file).is_none());
        Ok(())
    }

    async fn reuse_free(&self, free: u32, segment: u32, size_bytes: u64) -> Result<u32> {
        self.step()?;
        let mut st = self.state.borrow_mut();
        assert!(
            !st.segments.contains_key(&segment),
            "a live segment is never replaced"
        );
        let mut file = st.free.remove(&free).ok_or_else(|| {
            EngineError::io("reusing a segment file")(std::io::ErrorKind::NotFound.into())
        })?;
        if file.reserved_bytes < size_bytes {
            // As the real disk: a file the device cannot complete is deleted.
            let more = size_bytes - file.reserved_bytes;
            if let Err(e) = take_device_bytes(&mut st, more, "reserving a segment") {
                if let Some(device_free) = st.device_free_bytes.as_mut() {
                    *device_free += file.reserved_bytes;
                }
                return Err(e);
            }
            file.reserved_bytes = size_bytes;
        }
        st.segments.insert(segment, file);
        Ok(segment)
    }

    async fn remove_free(&self, free: u32) -> Result<()> {
        self.step()?;
        let mut st = self.state.borrow_mut();
        if let Some(f) = st.free.remove(&free) {
            if let Some(device_free) = st.device_free_bytes.as_mut() {
                *device_free += f.reserved_bytes;
            }
        }
        Ok(())
    }

    async fn write_at(&self, file: &u32, buf: SimBuf, offset_bytes: u64) -> Result<()> {
        assert_eq!(offset_bytes % BLOCK_BYTES, 0);
        assert_eq!(buf.0.len() as u64 % BLOCK_BYTES, 0);
        yield_once().await;
        self.step()?;
        let mut st = self.state.borrow_mut();
        if std::mem::take(&mut st.nospace_next_write) {
            return Err(enospc("writing records"));
        }
        let f = st.segments.get_mut(file).ok_or_else(dead)?;
        f.pending.push((offset_bytes, buf.0));
        Ok(())
    }

    async fn read_at(&self, file: &u32, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>> {
        yield_once().await;
        let mut st = self.state.borrow_mut();
        if st.crashed {
            return Err(dead());
        }
        st.largest_read_bytes = st.largest_read_bytes.max(len_bytes as u64);
        let f = st.segments.get(file).ok_or_else(dead)?;
        let v = f.visible();
        let start = (offset_bytes as usize).min(v.len());
        let end = (start + len_bytes).min(v.len());
        Ok(v[start..end].to_vec())
    }

    /// Only this write reaches the media when it completes, as with a real device's FUA
    /// write: the file's other pending writes stay pending, so a caller that relies on it to
    /// sync them loses them at the next restart.
    async fn write_durable_at(&self, file: &u32, buf: SimBuf, offset_bytes: u64) -> Result<()> {
        assert_eq!(offset_bytes % BLOCK_BYTES, 0);
        assert_eq!(buf.0.len() as u64 % BLOCK_BYTES, 0);
        yield_once().await;
        self.step()?;
        let mut st = self.state.borrow_mut();
        st.durable_writes += 1;
        if std::mem::take(&mut st.nospace_next_write) {
            return Err(enospc("writing records"));
        }
        let failed = std::mem::take(&mut st.fail_next_sync);
        let f = st.segments.get_mut(file).ok_or_else(dead)?;
        if failed {
            // The write failed as a whole: any part of it may have reached the media.
            f.pending.push((offset_bytes, buf.0));
            return Err(EngineError::Io {
                context: "writing records durably",
                source: std::io::Error::from_raw_os_error(libc::EIO),
            });
        }
        apply(&mut f.durable, offset_bytes, &buf.0);
        Ok(())
    }

    async fn sync(&self, file: &u32) -> Result<()> {
        yield_once().await;
        self.step()?;
        let mut st = self.state.borrow_mut();
        st.syncs += 1;
        if std::mem::take(&mut st.fail_next_sync) {
            return Err(EngineError::Io {
                context: "fdatasync",
                source: std::io::Error::from_raw_os_error(libc::EIO),
            });
        }
        let f = st.segments.get_mut(file).ok_or_else(dead)?;
        for (off, data) in std::mem::take(&mut f.pending) {
            apply(&mut f.durable, off, &data);
        }
        Ok(())
    }

    async fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.borrow().small.get(name).cloned())
    }

    async fn write_small_atomic(&self, name: &str, data: Vec<u8>) -> Result<()> {
        self.step()?;
        let mut st = self.state.borrow_mut();
        // The temp copy needs room beside the old file; it replaces it afterwards.
        if st
            .device_free_bytes
            .is_some_and(|free| free < data.len() as u64)
        {
            return Err(enospc("writing a small file"));
        }
        st.small.insert(name.to_string(), data);
        Ok(())
    }

    async fn blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        f()
    }

    fn spawn(&self, fut: impl Future<Output = ()> + 'static) {
        glommio::spawn_local(fut).detach();
    }

    fn spawn_background(&self, fut: impl Future<Output = ()> + 'static) {
        glommio::spawn_local(fut).detach();
    }

    async fn sleep(&self, _duration: std::time::Duration) {
        yield_once().await;
    }

    async fn yield_if_needed(&self) {
        yield_once().await;
    }

    fn meta_dir(&self) -> PathBuf {
        self.meta_dir.clone()
    }

    fn device_free_bytes(&self) -> Result<u64> {
        Ok(self.state.borrow().device_free_bytes.unwrap_or(u64::MAX))
    }

    fn partitions_on_device(&self) -> u32 {
        1
    }
}
