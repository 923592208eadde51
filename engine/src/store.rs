//! One core's storage: the segment log with group commit, the fragment index, the metadata
//! store, recovery, checkpoints and reclaim. Generic over [`Disk`], so the same code runs on
//! O_DIRECT files and on the fault-injecting simulator.
//!
//! Single-threaded by construction (one glommio executor): state sits in a `RefCell` that is
//! never borrowed across an `.await`.
//!
//! Invariant (checked by the model test): between tasks, the index and the metadata store
//! reflect exactly the records that are durable in the log, in log order. Effects of a batch are
//! applied synchronously right after its flush succeeds, before any waiter runs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;

use crate::cache::FragmentCache;
use crate::disk::{Disk, DiskBuf};
use crate::error::{EngineError, Result};
use crate::format::{
    align_down, align_up, decode_checkpoint, encode_checkpoint, record_bytes_for, CheckpointEntry,
    CheckpointHeader, Loc, PairLayout, RecordHeader, RecordKind, FLAG_FIRST_DELETE, FLAG_GUARDED,
    FLAG_RELOCATED, FLAG_SECOND_DELETE, PAIR_GUARD_BYTES, RECORD_HEADER_BYTES,
};
use crate::index::Index;
use crate::limits::{
    BATCH_BYTES_MAX, BLOCK_BYTES, CHECKPOINT_ENTRY_BYTES_MAX, FRAGMENT_BYTES_MAX,
    FREE_SEGMENT_FILES_MAX, LOG_RESERVE_BYTES_MIN, META_KEY_BYTES_MAX, META_RESERVE_BYTES,
    META_VALUE_BYTES_MAX, PIPELINE_BATCHES_MAX, RECLAIM_LIVE_PERMILLE_MAX,
    RECLAIM_RESERVE_SEGMENTS, RELOCATE_INFLIGHT_BYTES_MAX, SCAN_ENTRIES_MAX, SEGMENTS_MAX,
    VERIFY_READ_BYTES,
};
use crate::meta::{sync_env, MetaMutation, MetaStore, MetaValue, ScanPage};
use crate::scan::{Scanned, SegmentScan};

pub const CHECKPOINT_FILE: &str = "checkpoint";
/// How a conditional write waits for earlier writes of its key to apply: naps of this length
/// (a timer, so the executor reaps the flush meanwhile: spinning on yields starved it, see
/// DESIGN.md), at most this many, then Busy (2 s).
const CONDITIONAL_WAIT_NAP: std::time::Duration = std::time::Duration::from_micros(100);
const CONDITIONAL_WAIT_NAPS_MAX: u32 = 20_000;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub segment_bytes: u64,
    /// Bytes of segments the partition may hold; the device may run out sooner (`NoSpace`).
    pub capacity_bytes: u64,
    /// Records written between automatic checkpoints.
    pub checkpoint_every_records: u64,
    /// Log bytes written between automatic checkpoints (or the last checkpoint's size, if
    /// larger): what a restart after a crash replays at most
    /// (`limits::CHECKPOINT_EVERY_LOG_BYTES_DEFAULT`).
    pub checkpoint_every_log_bytes: u64,
    /// The partition's record checksum seed (`format::log_salt`).
    pub salt: u32,
    /// Segments below this number may hold format-1 records
    /// (`Superblock::format1_segments_below`; 0 for a partition created at version 2).
    pub format1_segments_below: u32,
    /// Bytes per write of a group commit (`limits::BATCH_BYTES_MAX`; tests use less to
    /// exercise pipelined rounds).
    pub batch_bytes: u64,
    /// Budget of the core's fragment cache (`cache.rs`; 0 disables it).
    pub cache_bytes: u64,
}

/// Counters of one core, reported by `Stats` requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub fragments: u64,
    pub live_bytes: u64,
    /// Bytes of the segments in use (the free pool's files are not counted: they are free).
    pub used_bytes: u64,
    /// Log bytes appends have taken since the core started: records, a fresh block's start
    /// skipped by a later batch of a commit, and a segment's end left unused when a record
    /// did not fit (the padding that ends the last commit is not counted: the next one fills
    /// it).
    pub log_appended_bytes: u64,
    /// Bytes of the core's LMDB file in use (`MetaStore::file_bytes`).
    pub meta_bytes: u64,
    pub capacity_bytes: u64,
    pub segments: u64,
    /// Files in the free pool (reclaimed segment files kept for reuse, at most
    /// `FREE_SEGMENT_FILES_MAX`) and their bytes: held on the device, free for this
    /// partition's log (`device_free_bytes` does not include them).
    pub free_segment_files: u64,
    pub free_segment_bytes: u64,
    /// New segments made by reusing a free file rather than creating one.
    pub segments_reused: u64,
    /// Segments whose replay at the last start ended at a record of an earlier life of the
    /// (recycled) file.
    pub replay_stale_stops: u64,
    pub corrupt_reads: u64,
    pub corrupt_records_replayed: u64,
    /// Guarded metadata pairs the last start dropped because their fragment's record was
    /// damaged (`Store::put_fragment_paired`).
    pub guarded_pairs_dropped: u64,
    /// The checkpoint failed its checks at the last start: it was ignored and the index
    /// rebuilt from every segment on the partition.
    pub checkpoint_rebuilt: bool,
    pub poisoned: bool,
    pub puts: u64,
    pub gets: u64,
    pub deletes: u64,
    pub flushes: u64,
    pub reclaimed_segments: u64,
    pub checkpoints: u64,
    /// Log bytes the last start read to replay the records after its checkpoint.
    pub replayed_bytes: u64,
    /// Records the last start replayed (damaged ones not counted).
    pub replayed_records: u64,
    /// Free bytes on the device holding the partition (shared with the node's other
    /// partitions on it); `None` when the device could not be asked.
    pub device_free_bytes: Option<u64>,
    /// Free device bytes below which new data segments are refused (this core's share of the
    /// device reserve, times the partitions sharing the device).
    pub device_floor_bytes: u64,
    /// Writes refused with `NoSpace` (partition capacity or device floor reached).
    pub no_space_refusals: u64,
    /// The fragment cache's counters.
    pub cache: crate::cache::CacheStats,
}

enum Op {
    Put {
        id: [u8; 16],
        data: Bytes,
    },
    Delete {
        id: [u8; 16],
    },
    Meta(MetaMutation),
    /// Two mutations at one HLC in one record (`Store::meta_pair`).
    MetaPair(Box<[MetaMutation; 2]>),
    /// A fragment and a pair of mutations guarded by it, as two records written together
    /// (`Store::put_fragment_paired`).
    PutPaired {
        id: [u8; 16],
        data: Bytes,
        pair: Box<[MetaMutation; 2]>,
    },
    Relocate {
        id: [u8; 16],
        from: Loc,
        payload: Bytes,
    },
}

impl Op {
    fn payload_bytes(&self) -> u64 {
        match self {
            // A `PutPaired`'s first record is its fragment's (`guarded_pair_bytes`: the pair's).
            Op::Put { data, .. } | Op::PutPaired { data, .. } => data.len() as u64,
            Op::Delete { .. } => 0,
            Op::Meta(m) => meta_payload_bytes(m),
            Op::MetaPair(pair) => pair.iter().map(meta_payload_bytes).sum(),
            Op::Relocate { payload, .. } => payload.len() as u64,
        }
    }
    /// The metadata keys the write mutates (counted in `meta_pending` while it is queued).
    fn meta_keys(&self) -> impl Iterator<Item = &[u8]> {
        let (one, pair): (Option<&MetaMutation>, &[MetaMutation]) = match self {
            Op::Meta(m) => (Some(m), &[]),
            Op::MetaPair(pair) | Op::PutPaired { pair, .. } => (None, &pair[..]),
            _ => (None, &[]),
        };
        one.into_iter().chain(pair).map(MetaMutation::key)
    }
    /// The log bytes of the write's records (a fragment's or the first of two, and the pair's
    /// of `PutPaired`).
    fn record_bytes(&self) -> u64 {
        record_bytes_for(self.payload_bytes()) + self.guarded_pair_bytes()
    }

    /// The record bytes of a `PutPaired`'s guarded pair (zero for any other write).
    fn guarded_pair_bytes(&self) -> u64 {
        match self {
            Op::PutPaired { pair, .. } => record_bytes_for(
                u64::from(PAIR_GUARD_BYTES) + pair.iter().map(meta_payload_bytes).sum::<u64>(),
            ),
            _ => 0,
        }
    }

    /// The records the write logs (each takes a log sequence number).
    fn records(&self) -> u64 {
        if matches!(self, Op::PutPaired { .. }) {
            2
        } else {
            1
        }
    }

    /// The least room a new segment must leave for this write. Fragment data needs the whole
    /// reserve left; the reclaimer's relocations may use it but one segment; deletes and
    /// metadata (tombstones, delete markers, bucket records: small, bounded by
    /// `META_VALUE_BYTES_MAX`) may use all of it. Relocations racing with deletes on a full
    /// disk took the last reserved segments and deletes were refused for a while.
    fn room_needed(&self) -> Room {
        match self {
            Op::Put { .. } | Op::PutPaired { .. } => Room::All,
            Op::Relocate { .. } => Room::Relocations,
            Op::Delete { .. } | Op::Meta(_) | Op::MetaPair(_) => Room::Tombstones,
        }
    }
}

/// Which writes a new segment may be created for (`Op::room_needed`), least room first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Room {
    None,
    /// Deletes and metadata only.
    Tombstones,
    /// Deletes, metadata and the reclaimer's relocations.
    Relocations,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Stored,
    Deleted,
    /// Whether the metadata mutation won last-writer-wins, and the key's version just before
    /// it when the writer asked (`Pending::report`).
    Meta(bool, Option<(MetaValue, bool)>),
    Relocated,
}

struct Pending {
    op: Op,
    tx: oneshot::Sender<Result<Outcome>>,
    /// A metadata mutation whose writer wants the version it was applied over (`meta_swap`).
    report: bool,
}

struct Active<F> {
    segment: u32,
    file: F,
    /// Next write position: where the last record written ends (8-byte aligned). The next
    /// group commit goes on from there ("Log and group commit" in engine/DESIGN.md).
    offset_bytes: u64,
    /// The bytes of the block holding `offset_bytes` that precede it (empty when that is a
    /// block boundary): records already written, which the next write of that block repeats
    /// unchanged.
    tail: Vec<u8>,
}

struct State<D: Disk> {
    index: Index,
    /// Metadata mutations queued but not yet applied, per key: a conditional write waits for
    /// its key to have none, so its check and its place in the log are one atomic step.
    meta_pending: hashbrown::HashMap<Bytes, u32>,
    queue: VecDeque<Pending>,
    flushing: bool,
    poisoned: bool,
    next_lsn: u64,
    /// Between flushes; taken out while a batch is being written into it.
    active: Option<Active<D::File>>,
    /// The segment the log appends to (never reclaimed); every other segment is sealed.
    writing_segment: Option<u32>,
    next_segment: u32,
    segments: BTreeSet<u32>,
    /// The free pool: reclaimed segment files kept for reuse, by the last segment number each
    /// served (at most `FREE_SEGMENT_FILES_MAX`).
    free: BTreeSet<u32>,
    /// End of the last durable batch: (segment, offset).
    durable_pos: (u32, u64),
    records_since_checkpoint: u64,
    /// Bytes written to the log (block-aligned writes) since the last checkpoint's snapshot.
    log_bytes_since_checkpoint: u64,
    /// Size of the last checkpoint written (the byte cadence is at least this).
    last_checkpoint_bytes: u64,
    /// An automatic checkpoint is spawned and has not finished.
    checkpoint_queued: bool,
    /// Whole small fragments, filled by verified reads; every index change of an id drops or
    /// moves its entry in the same borrow.
    cache: FragmentCache,
    stats: StoreStats,
}

struct Inner<D: Disk> {
    disk: D,
    cfg: StoreConfig,
    meta: MetaStore,
    st: RefCell<State<D>>,
    /// Serializes checkpoints (reclaim needs one that starts after its relocations).
    checkpoint_gate: glommio::sync::Semaphore,
    reclaiming: Cell<bool>,
}

/// A handle to one core's store; clones share it (single-threaded).
pub struct Store<D: Disk> {
    inner: Rc<Inner<D>>,
}

impl<D: Disk> Clone for Store<D> {
    fn clone(&self) -> Self {
        Store {
            inner: self.inner.clone(),
        }
    }
}

/// A reference to a store that does not keep it open (for long-lived background tasks).
pub struct WeakStore<D: Disk> {
    inner: std::rc::Weak<Inner<D>>,
}

impl<D: Disk> Clone for WeakStore<D> {
    fn clone(&self) -> Self {
        WeakStore {
            inner: self.inner.clone(),
        }
    }
}

impl<D: Disk> WeakStore<D> {
    pub fn upgrade(&self) -> Option<Store<D>> {
        self.inner.upgrade().map(|inner| Store { inner })
    }
}

fn too_large(what: &'static str, len: u64, max: u64) -> EngineError {
    EngineError::TooLarge {
        what,
        len_bytes: len,
        max_bytes: max,
    }
}

impl<D: Disk> Store<D> {
    /// Opens the store: loads the checkpoint, replays the log after it, and takes a fresh
    /// checkpoint. Writing always starts in a new segment, so a torn tail left by a crash is
    /// never followed by newer records in the same segment.
    pub async fn open(disk: D, cfg: StoreConfig) -> Result<Store<D>> {
        assert_eq!(cfg.segment_bytes % BLOCK_BYTES, 0);
        assert!(cfg.batch_bytes > 0 && cfg.batch_bytes <= BATCH_BYTES_MAX);
        let meta_dir = disk.meta_dir();
        let meta = disk.blocking(move || MetaStore::open(&meta_dir)).await?;
        let (index, replay_from, next_lsn, checkpoint_rebuilt) =
            match load_checkpoint(&disk).await? {
                Ok(Some((header, index))) => {
                    // The log is replayed from this checkpoint on: the metadata store must
                    // hold its state or a newer one, or what it lost never comes back. An
                    // older build's checkpoint did not mark the store.
                    if header.marked {
                        meta.check_mark(header.next_lsn)?;
                    }
                    (
                        index,
                        (header.replay_segment, header.replay_offset_bytes),
                        header.next_lsn,
                        false,
                    )
                }
                Ok(None) => (Index::default(), (0, 0), 1, false),
                Err(what) => {
                    // The checkpoint is only a shortcut: every segment still on the partition is
                    // replayed instead (engine/DESIGN.md, "Damage").
                    tracing::warn!(
                        what,
                        "checkpoint damaged: ignored, index rebuilt from the log"
                    );
                    (Index::default(), (0, 0), 1, true)
                }
            };
        let segments: BTreeSet<u32> = disk.list_segments().await?.into_iter().collect();
        let mut free: BTreeSet<u32> = disk.list_free().await?.into_iter().collect();
        while free.len() > FREE_SEGMENT_FILES_MAX {
            let extra = free.pop_last().expect("over the bound");
            disk.remove_free(extra).await?;
        }
        // Above every number a file on the partition served (a free file's records name at
        // most its own number), so no record on the media names a segment created from here.
        let next_segment = segments
            .last()
            .max(free.last())
            .map_or(1, |s| s + 1)
            .max(cfg.format1_segments_below);
        let capacity = cfg.capacity_bytes;
        let store = Store {
            inner: Rc::new(Inner {
                disk,
                meta,
                st: RefCell::new(State {
                    index,
                    meta_pending: hashbrown::HashMap::new(),
                    queue: VecDeque::new(),
                    flushing: false,
                    poisoned: false,
                    next_lsn,
                    active: None,
                    writing_segment: None,
                    next_segment,
                    segments: segments.clone(),
                    free,
                    durable_pos: (next_segment, 0),
                    records_since_checkpoint: 0,
                    log_bytes_since_checkpoint: 0,
                    last_checkpoint_bytes: 0,
                    checkpoint_queued: false,
                    cache: FragmentCache::new(cfg.cache_bytes),
                    stats: StoreStats {
                        capacity_bytes: capacity,
                        checkpoint_rebuilt,
                        ..StoreStats::default()
                    },
                }),
                cfg,
                checkpoint_gate: glommio::sync::Semaphore::new(1),
                reclaiming: Cell::new(false),
            }),
        };
        for seg in segments.range(replay_from.0..) {
            let start = if *seg == replay_from.0 {
                replay_from.1
            } else {
                0
            };
            store.replay_segment(*seg, start).await?;
        }
        match store.checkpoint().await {
            // A device filled by someone else: the previous checkpoint and the replay after it
            // stay valid, so the core starts (and frees space by deletes) instead of failing.
            Err(EngineError::NoSpace) => {
                tracing::warn!("no space for a checkpoint after recovery; the previous one stays");
            }
            other => other?,
        }
        Ok(store)
    }

    /// Waits for this core's own tasks (flusher, checkpoint) to finish and closes the store,
    /// so the same partition can be opened again in this process.
    /// Background tasks hold a [`WeakStore`], so only in-flight operations delay this.
    pub async fn shutdown(self) -> Result<()> {
        for _ in 0..30_000 {
            if Rc::strong_count(&self.inner) == 1 {
                // What was applied since the final checkpoint, if anything, into LMDB's file
                // too (the log replays it anyway).
                if let Err(e) = self.inner.meta.commit_open() {
                    tracing::warn!(error = %e, "metadata commit at close failed");
                }
                return Ok(());
            }
            self.inner
                .disk
                .sleep(std::time::Duration::from_millis(1))
                .await;
        }
        Err(EngineError::Stopped)
    }

    pub fn downgrade(&self) -> WeakStore<D> {
        WeakStore {
            inner: Rc::downgrade(&self.inner),
        }
    }

    /// Runs `fut` in this core's low-priority task queue.
    pub fn spawn_background(&self, fut: impl std::future::Future<Output = ()> + 'static) {
        self.inner.disk.spawn_background(fut);
    }

    fn salt(&self) -> u32 {
        self.inner.cfg.salt
    }

    /// Applies every valid record of a segment from `start` in order, reading it through the
    /// bounded window of a [`SegmentScan`]. A damaged record is counted and skipped (the scan
    /// finds the next record header after it), so one flipped bit costs one record, never the
    /// rest of the log.
    async fn replay_segment(&self, segment: u32, start: u64) -> Result<()> {
        let file = self.inner.disk.open_segment(segment).await?;
        let mut scan = self.scan(segment, file, start);
        let mut meta_batch: Vec<MetaMutation> = Vec::new();
        let mut records = 0u64;
        loop {
            match scan.next().await? {
                Scanned::End => break,
                Scanned::Record {
                    header,
                    offset_bytes,
                    payload,
                } => {
                    let loc = Loc::new(segment, offset_bytes, header.record_bytes());
                    let payload = match (header.kind, payload) {
                        (_, Some(p)) => p,
                        (RecordKind::Fragment | RecordKind::FragmentTombstone, None) => &[],
                        (
                            RecordKind::MetaPut | RecordKind::MetaDelete | RecordKind::MetaPair,
                            None,
                        ) => {
                            // Never written: the store refuses metadata larger than the
                            // window lends (asserted in limits.rs).
                            tracing::warn!(segment, offset_bytes, "oversized metadata record");
                            self.inner.st.borrow_mut().stats.corrupt_records_replayed += 1;
                            continue;
                        }
                    };
                    self.replay_record(&header, loc, payload, &mut meta_batch);
                    records += 1;
                }
                Scanned::Damaged {
                    offset_bytes,
                    fault,
                } => {
                    tracing::warn!(segment, offset_bytes, ?fault, "damaged record skipped");
                    self.inner.st.borrow_mut().stats.corrupt_records_replayed += 1;
                }
            }
            if meta_batch.len() >= 1024 {
                self.apply_meta_replay(&mut meta_batch)?;
            }
        }
        if let Some(offset_bytes) = scan.stale_at() {
            tracing::debug!(
                segment,
                offset_bytes,
                "replay ended at a recycled file's old record"
            );
            self.inner.st.borrow_mut().stats.replay_stale_stops += 1;
        }
        {
            let mut st = self.inner.st.borrow_mut();
            st.stats.replayed_bytes += scan.read_bytes();
            st.stats.replayed_records += records;
        }
        self.apply_meta_replay(&mut meta_batch)
    }

    /// A scan of `segment` from `start` (replay, reclaim).
    fn scan(&self, segment: u32, file: D::File, start: u64) -> SegmentScan<'_, D> {
        SegmentScan::new(
            &self.inner.disk,
            file,
            self.salt(),
            segment,
            self.inner.cfg.format1_segments_below,
            self.inner.cfg.segment_bytes,
            start,
        )
    }

    /// Whether a verified record read at `loc` is one of `loc`'s segment in its file's
    /// current life (not a record a recycled file kept from an earlier one).
    fn belongs(&self, h: &RecordHeader, loc: Loc) -> bool {
        h.belongs_to(loc.segment(), self.inner.cfg.format1_segments_below)
    }

    fn apply_meta_replay(&self, batch: &mut Vec<MetaMutation>) -> Result<()> {
        if !batch.is_empty() {
            let refs: Vec<&MetaMutation> = batch.iter().collect();
            self.inner.meta.apply(&refs)?;
            batch.clear();
        }
        Ok(())
    }

    fn replay_record(
        &self,
        h: &RecordHeader,
        loc: Loc,
        payload: &[u8],
        meta: &mut Vec<MetaMutation>,
    ) {
        let mut st = self.inner.st.borrow_mut();
        // Replay runs inside `open`, before any read: nothing is cached that it could outdate.
        assert_eq!(st.cache.stats().entries, 0);
        st.next_lsn = st.next_lsn.max(h.lsn + 1);
        match h.kind {
            RecordKind::Fragment if h.flags & FLAG_RELOCATED != 0 => {
                // When the checkpoint was damaged the segment the copy came from may be gone
                // (reclaimed): a copy of a fragment the index has not seen is then the only
                // one left, so it is taken.
                let current = st.index.get(&h.id);
                let rebuilding = st.stats.checkpoint_rebuilt;
                if current == Some(Loc(h.aux)) || (rebuilding && current.is_none()) {
                    st.index.insert(&h.id, loc);
                }
            }
            RecordKind::Fragment => {
                st.index.insert(&h.id, loc);
            }
            RecordKind::FragmentTombstone => {
                st.index.remove(&h.id);
            }
            RecordKind::MetaPut => {
                let (k, v) = payload.split_at(h.key_bytes as usize);
                meta.push(MetaMutation::Put {
                    key: Bytes::copy_from_slice(k),
                    value: Bytes::copy_from_slice(v),
                    hlc: h.aux,
                });
            }
            RecordKind::MetaDelete => {
                meta.push(MetaMutation::Delete {
                    key: Bytes::copy_from_slice(payload),
                    hlc: h.aux,
                });
            }
            RecordKind::MetaPair => {
                let layout = h
                    .pair()
                    .expect("a verified pair record's lengths are consistent");
                let (guard, rest) = payload.split_at(layout.guard_bytes() as usize);
                let (k1, rest) = rest.split_at(layout.first_key as usize);
                let (v1, rest) = rest.split_at(layout.first_value as usize);
                let (k2, v2) = rest.split_at(layout.second_key as usize);
                let mutation = |key: &[u8], value: &[u8], deleted: bool| {
                    let key = Bytes::copy_from_slice(key);
                    if deleted {
                        MetaMutation::Delete { key, hlc: h.aux }
                    } else {
                        let value = Bytes::copy_from_slice(value);
                        MetaMutation::Put {
                            key,
                            value,
                            hlc: h.aux,
                        }
                    }
                };
                let first = mutation(k1, v1, h.flags & FLAG_FIRST_DELETE != 0);
                let second = mutation(k2, v2, h.flags & FLAG_SECOND_DELETE != 0);
                if let Ok(guard) = <[u8; 16]>::try_from(guard) {
                    // Its fragment's record was written just before it, in the same write and
                    // segment: replayed from the same checkpoint position, or both gone with
                    // their segment (whose checkpoint holds the pair in LMDB). A fragment the
                    // index lacks here was lost to a damaged record (a torn write, never
                    // acknowledged): the pair is dropped, so no head names missing data.
                    if st.index.get(&guard).is_none() {
                        tracing::warn!(
                            segment = loc.segment(),
                            offset_bytes = loc.offset_bytes(),
                            "a guarded metadata pair without its fragment: dropped"
                        );
                        st.stats.guarded_pairs_dropped += 1;
                        return;
                    }
                }
                meta.extend([first, second]);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Public operations

    /// Stores a fragment durably; returns once it is on the media.
    pub async fn put_fragment(&self, id: [u8; 16], data: Bytes) -> Result<()> {
        let max = FRAGMENT_BYTES_MAX.min(self.inner.cfg.segment_bytes - BLOCK_BYTES);
        if data.len() as u64 > max {
            return Err(too_large("fragment", data.len() as u64, max));
        }
        self.inner.st.borrow_mut().stats.puts += 1;
        self.submit(Op::Put { id, data }).await.map(|_| ())
    }

    /// Deletes a fragment durably. `NotFound` if it does not exist.
    pub async fn delete_fragment(&self, id: [u8; 16]) -> Result<()> {
        if self.inner.st.borrow().index.get(&id).is_none() {
            return Err(EngineError::NotFound);
        }
        self.inner.st.borrow_mut().stats.deletes += 1;
        self.submit(Op::Delete { id }).await.map(|_| ())
    }

    /// Reads `len` bytes (to the end when `None`) from `offset` of a fragment.
    pub async fn get_fragment(&self, id: [u8; 16], offset: u64, len: Option<u64>) -> Result<Bytes> {
        self.inner.st.borrow_mut().stats.gets += 1;
        self.read_fragment(id, offset, len).await
    }

    /// The fragment ids of index sub-tables `from..`, at most `limit` (`Index::ids_in`), and
    /// the next sub-table to ask for.
    pub fn list_fragments(&self, from: u32, limit: u32) -> (Vec<[u8; 16]>, Option<u32>) {
        let (ids, next) = self
            .inner
            .st
            .borrow()
            .index
            .ids_in(from as usize, limit as usize);
        (ids, next.map(|n| n as u32))
    }

    /// Reads a fragment whole from the media and checks its record (checksum, kind, id), as
    /// a GET would, without counting a get: the scrub. Returns its length in bytes; `Corrupt`
    /// (counted in `corrupt_reads`) when the record is damaged, `NotFound` when the index has
    /// no such fragment. Always reads the device, never the cache (it checks the disk), and
    /// does not fill the cache (a scrub pass is a scan).
    ///
    /// The record is read in pieces of [`VERIFY_READ_BYTES`], one after the other, its
    /// checksum computed as they come: a whole-fragment read (up to 1 MiB) sat on the device
    /// beside the GETs' 4 KiB reads and raised their p99 (README, "Scrub").
    pub async fn verify_fragment(&self, id: [u8; 16]) -> Result<u64> {
        self.at_current_loc(id, |loc| self.verify_at(id, loc)).await
    }

    /// Checks the fragment record at `loc` as `read_fragment_at` does (magic, header,
    /// checksum, kind, id), reading it piece by piece. Returns its payload length.
    async fn verify_at(&self, id: [u8; 16], loc: Loc) -> Result<u64> {
        let file = self.inner.disk.open_segment(loc.segment()).await?;
        let span = loc
            .span_bytes()
            .min(self.inner.cfg.segment_bytes - loc.offset_bytes());
        let corrupt = |what| EngineError::Corrupt {
            segment: loc.segment(),
            offset_bytes: loc.offset_bytes(),
            what,
        };
        let fault = |f| {
            corrupt(match f {
                crate::format::RecordFault::NoMagic => "record magic",
                crate::format::RecordFault::Short => "short record",
                crate::format::RecordFault::Damaged(what) => what,
            })
        };
        let first = self
            .inner
            .disk
            .read_at(
                &file,
                loc.offset_bytes(),
                VERIFY_READ_BYTES.min(span) as usize,
            )
            .await?;
        let h = RecordHeader::parse(&first).map_err(fault)?;
        let end = RECORD_HEADER_BYTES as u64 + u64::from(h.payload_bytes);
        if end > span {
            return Err(fault(crate::format::RecordFault::Short));
        }
        let mut crc = crate::format::RecordCrc::new(self.salt(), &first);
        let mut at = (first.len() as u64).min(end);
        if at < RECORD_HEADER_BYTES as u64 {
            return Err(fault(crate::format::RecordFault::Short));
        }
        crc.update(&first[RECORD_HEADER_BYTES..at as usize]);
        while at < end {
            let want = VERIFY_READ_BYTES.min(end - at);
            let piece = self
                .inner
                .disk
                .read_at(&file, loc.offset_bytes() + at, want as usize)
                .await?;
            if (piece.len() as u64) < want {
                return Err(fault(crate::format::RecordFault::Short));
            }
            crc.update(&piece[..want as usize]);
            at += want;
        }
        crc.check(&first).map_err(fault)?;
        if h.kind != RecordKind::Fragment || h.id != id || !self.belongs(&h, loc) {
            return Err(corrupt("index points at another record"));
        }
        Ok(u64::from(h.payload_bytes))
    }

    /// A GET's read: the cache when it holds the fragment's current record, else the device
    /// (and the cache is filled).
    async fn read_fragment(&self, id: [u8; 16], offset: u64, len: Option<u64>) -> Result<Bytes> {
        let cached = {
            let mut st = self.inner.st.borrow_mut();
            let loc = st.index.get(&id).ok_or(EngineError::NotFound)?;
            st.cache.get(&id, loc)
        };
        let payload = match cached {
            Some(payload) => payload,
            None => {
                self.at_current_loc(id, |loc| async move {
                    let payload = self.read_fragment_at(id, loc).await?;
                    self.fill_cache(id, loc, &payload);
                    Ok(payload)
                })
                .await?
            }
        };
        sub_range(&payload, offset, len)
    }

    /// Runs `read` at the fragment's current location. A reclaim may move the record between
    /// the lookup and the read: a read that failed while the record moved is made again at its
    /// new place (three tries at most). A damaged record is counted in `corrupt_reads` and its
    /// cached copy dropped, so GETs see the damage the scrub found (and the gateway repairs
    /// it) instead of a copy that hides it.
    async fn at_current_loc<T, F: std::future::Future<Output = Result<T>>>(
        &self,
        id: [u8; 16],
        read: impl Fn(Loc) -> F,
    ) -> Result<T> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let loc = self
                .inner
                .st
                .borrow()
                .index
                .get(&id)
                .ok_or(EngineError::NotFound)?;
            match read(loc).await {
                Ok(v) => return Ok(v),
                Err(e) if attempts < 3 && self.inner.st.borrow().index.get(&id) != Some(loc) => {
                    tracing::debug!(error = %e, "fragment moved during a read; retrying");
                }
                Err(e) => {
                    if matches!(e, EngineError::Corrupt { .. }) {
                        let mut st = self.inner.st.borrow_mut();
                        st.stats.corrupt_reads += 1;
                        st.cache.invalidate(&id);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Keeps a verified payload read from `loc`, unless the index moved the id meanwhile (an
    /// overwrite, a delete or a relocation applied while the read was in flight). The copy
    /// holds exactly the payload, not the read's sector-rounded buffer.
    fn fill_cache(&self, id: [u8; 16], loc: Loc, payload: &Bytes) {
        let mut st = self.inner.st.borrow_mut();
        if st.index.get(&id) == Some(loc) && st.cache.admits(payload.len() as u64) {
            st.cache
                .insert(id, loc, Bytes::copy_from_slice(payload.as_ref()));
        }
    }

    /// The whole payload of the fragment record at `loc`, checked.
    async fn read_fragment_at(&self, id: [u8; 16], loc: Loc) -> Result<Bytes> {
        let file = self.inner.disk.open_segment(loc.segment()).await?;
        let span = loc
            .span_bytes()
            .min(self.inner.cfg.segment_bytes - loc.offset_bytes());
        let buf = self
            .inner
            .disk
            .read_at(&file, loc.offset_bytes(), span as usize)
            .await?;
        let corrupt = |what| EngineError::Corrupt {
            segment: loc.segment(),
            offset_bytes: loc.offset_bytes(),
            what,
        };
        // Checked right after the read (STYLE rule 2): checksum, kind and id.
        let h = RecordHeader::read_record(self.salt(), &buf).map_err(|f| {
            corrupt(match f {
                crate::format::RecordFault::NoMagic => "record magic",
                crate::format::RecordFault::Short => "short record",
                crate::format::RecordFault::Damaged(what) => what,
            })
        })?;
        // A read that raced with a reclaim may find the file already reused: its new record
        // names another segment (the caller retries at the fragment's new place).
        if h.kind != RecordKind::Fragment || h.id != id || !self.belongs(&h, loc) {
            return Err(corrupt("index points at another record"));
        }
        let end = RECORD_HEADER_BYTES + h.payload_bytes as usize;
        Ok(Bytes::from(buf).slice(RECORD_HEADER_BYTES..end))
    }

    /// Sets a metadata key if `hlc` wins last-writer-wins. Returns whether it won.
    pub async fn meta_put(&self, key: Bytes, value: Bytes, hlc: u64) -> Result<bool> {
        check_meta_record(&key, &value)?;
        match self
            .submit(Op::Meta(MetaMutation::Put { key, value, hlc }))
            .await?
        {
            Outcome::Meta(won, _) => Ok(won),
            other => unreachable!("a metadata put completes as Meta, not {other:?}"),
        }
    }

    /// Sets a metadata key only if its current state is `expect_hlc` (`None`: absent or
    /// deleted; `Some(h)`: present with HLC `h`). A true compare-and-swap: the check and the
    /// log position are taken together, after every earlier mutation of the key has applied.
    /// Returns whether it was written.
    pub async fn meta_put_if(
        &self,
        key: Bytes,
        value: Bytes,
        hlc: u64,
        expect_hlc: Option<u64>,
    ) -> Result<bool> {
        check_meta_record(&key, &value)?;
        let mut waited = 0u32;
        while self.inner.st.borrow().meta_pending.contains_key(&key) {
            waited += 1;
            if waited > CONDITIONAL_WAIT_NAPS_MAX {
                return Err(EngineError::Busy);
            }
            self.inner.disk.sleep(CONDITIONAL_WAIT_NAP).await;
        }
        let current = self.inner.meta.current_hlc(&key)?;
        if current != expect_hlc {
            return Ok(false);
        }
        // No await between the check and the enqueue inside `submit`.
        match self
            .submit(Op::Meta(MetaMutation::Put { key, value, hlc }))
            .await?
        {
            Outcome::Meta(won, _) => Ok(won),
            other => unreachable!("a metadata put completes as Meta, not {other:?}"),
        }
    }

    /// `meta_put` that also returns the key's version (value and tombstone flag) just before
    /// this write applied: the object layer's commit learns what it replaced and whether it
    /// won in one round trip. A damaged previous value reads as none: the write replaces it.
    pub async fn meta_swap(
        &self,
        key: Bytes,
        value: Bytes,
        hlc: u64,
    ) -> Result<(bool, Option<(MetaValue, bool)>)> {
        check_meta_record(&key, &value)?;
        // The previous version is taken where the mutation is applied, in log order: exact,
        // and nothing waits (a first version spun on the key's queued mutations and cut 4 KiB
        // PUT throughput by 4x: the spinning task kept the executor from reaping the flush).
        match self
            .submit_reporting(Op::Meta(MetaMutation::Put { key, value, hlc }), true)
            .await?
        {
            Outcome::Meta(won, previous) => Ok((won, previous)),
            other => unreachable!("a metadata put completes as Meta, not {other:?}"),
        }
    }

    /// Two metadata mutations at one HLC (`hlc` of both), logged as one record: after a crash
    /// both apply or neither, where two records could each be torn apart (an object's head
    /// and its listing entry: a listing must never name a key without its head). Applied in
    /// order, each by last-writer-wins on its own key; answers like `meta_swap` for `first`.
    pub async fn meta_pair(
        &self,
        first: MetaMutation,
        second: MetaMutation,
    ) -> Result<(bool, Option<(MetaValue, bool)>)> {
        check_pair(&first, &second)?;
        match self
            .submit_reporting(Op::MetaPair(Box::new([first, second])), true)
            .await?
        {
            Outcome::Meta(won, previous) => Ok((won, previous)),
            other => unreachable!("a metadata pair completes as Meta, not {other:?}"),
        }
    }

    /// Stores a fragment and a metadata pair in one write, one durable round where
    /// `put_fragment` then `meta_pair` took two (a small object's data, head and listing
    /// entry, when this core holds all three). They are logged as the fragment's record and
    /// then a pair record guarded by the fragment's id (`FLAG_GUARDED`): a replay applies the
    /// pair only if the fragment is there, so a crash that tears the write keeps the data
    /// alone (an orphan) or both, never a head without its data. Answers like `meta_pair`.
    pub async fn put_fragment_paired(
        &self,
        id: [u8; 16],
        data: Bytes,
        first: MetaMutation,
        second: MetaMutation,
    ) -> Result<(bool, Option<(MetaValue, bool)>)> {
        let max = FRAGMENT_BYTES_MAX.min(self.inner.cfg.segment_bytes - BLOCK_BYTES);
        check_pair(&first, &second)?;
        let op = Op::PutPaired {
            id,
            data,
            pair: Box::new([first, second]),
        };
        // Both records must fit one segment: the pair's bytes count against the data's.
        if op.record_bytes() > max {
            return Err(too_large("fragment with its pair", op.record_bytes(), max));
        }
        self.inner.st.borrow_mut().stats.puts += 1;
        match self.submit_reporting(op, true).await? {
            Outcome::Meta(won, previous) => Ok((won, previous)),
            other => unreachable!("a paired put completes as Meta, not {other:?}"),
        }
    }

    pub async fn meta_delete(&self, key: Bytes, hlc: u64) -> Result<bool> {
        check_meta_key(&key)?;
        match self
            .submit(Op::Meta(MetaMutation::Delete { key, hlc }))
            .await?
        {
            Outcome::Meta(won, _) => Ok(won),
            other => unreachable!("a metadata delete completes as Meta, not {other:?}"),
        }
    }

    pub fn meta_get(&self, key: &[u8]) -> Result<Option<MetaValue>> {
        check_meta_key(key)?;
        self.counted(self.inner.meta.get(key))
    }

    pub fn meta_scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Result<ScanPage> {
        check_scan_limit(limit)?;
        self.counted(self.inner.meta.scan(prefix, start_after, limit))
    }

    /// The key's last write, live or a tombstone (`true`).
    pub fn meta_get_versioned(&self, key: &[u8]) -> Result<Option<(MetaValue, bool)>> {
        check_meta_key(key)?;
        self.counted(self.inner.meta.get_versioned(key))
    }

    /// A scan with tombstones (see `MetaStore::scan_versioned`).
    pub fn meta_scan_versioned(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Result<crate::meta::VersionedPage> {
        check_scan_limit(limit)?;
        self.counted(self.inner.meta.scan_versioned(prefix, start_after, limit))
    }

    /// Counts a metadata read that failed its checksum in `corrupt_reads` (the request gets
    /// the error; the gateway reads the other replicas).
    fn counted<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(EngineError::Damaged { .. }) = &r {
            self.inner.st.borrow_mut().stats.corrupt_reads += 1;
        }
        r
    }

    pub fn stats(&self) -> StoreStats {
        let st = self.inner.st.borrow();
        let mut s = st.stats.clone();
        s.fragments = st.index.len() as u64;
        s.live_bytes = st.index.live_bytes_total();
        s.segments = st.segments.len() as u64;
        s.used_bytes = s.segments * self.inner.cfg.segment_bytes;
        s.free_segment_files = st.free.len() as u64;
        s.free_segment_bytes = s.free_segment_files * self.inner.cfg.segment_bytes;
        s.poisoned = st.poisoned;
        s.cache = st.cache.stats();
        s.meta_bytes = self.inner.meta.file_bytes();
        let index_entries = st.index.len() as u64;
        drop(st);
        s.device_free_bytes = self.inner.disk.device_free_bytes().ok();
        s.device_floor_bytes = self.device_floor_bytes(index_entries);
        s
    }

    pub fn index_heap_bytes(&self) -> usize {
        self.inner.st.borrow().index.heap_bytes()
    }

    // -----------------------------------------------------------------------------------------
    // Group commit

    async fn submit(&self, op: Op) -> Result<Outcome> {
        self.submit_reporting(op, false).await
    }

    /// `submit`; a metadata mutation with `report` answers the version it was applied over.
    async fn submit_reporting(&self, op: Op, report: bool) -> Result<Outcome> {
        self.enqueue(op, report)?
            .await
            .unwrap_or(Err(EngineError::Stopped))
    }

    /// Queues a write for the next group commit (synchronously: writes queued one after
    /// another without an await between them share a commit) and returns where its outcome
    /// will arrive.
    fn enqueue(&self, op: Op, report: bool) -> Result<oneshot::Receiver<Result<Outcome>>> {
        let (tx, rx) = oneshot::channel();
        let start_flusher = {
            let mut st = self.inner.st.borrow_mut();
            if st.poisoned {
                return Err(EngineError::Poisoned);
            }
            for key in op.meta_keys() {
                *st.meta_pending
                    .entry(Bytes::copy_from_slice(key))
                    .or_default() += 1;
            }
            st.queue.push_back(Pending { op, tx, report });
            !std::mem::replace(&mut st.flushing, true)
        };
        // Spawned outside the borrow: an executor may poll a new task at once.
        if start_flusher {
            let this = self.clone();
            self.inner
                .disk
                .spawn(async move { this.flush_loop().await });
        }
        Ok(rx)
    }

    /// Flushes until the queue is empty. Runs as its own task so a caller that goes away never
    /// leaves a flush half done.
    async fn flush_loop(self) {
        loop {
            match self.flush_round().await {
                // Checked after every round, not only when the queue drains: under a steady
                // load it may never drain, and the log to replay would grow without bound.
                Ok(true) => self.checkpoint_if_due(),
                Ok(false) => break,
                // A full partition or device refuses writes; it never poisons the core (a
                // failed fdatasync has poisoned it already in `flush_round`, whatever its errno).
                Err(EngineError::NoSpace) if !self.inner.st.borrow().poisoned => {
                    self.fail_queue(&EngineError::NoSpace);
                }
                Err(e) => {
                    tracing::error!(error = %e, "log write failed: core poisoned");
                    self.inner.st.borrow_mut().poisoned = true;
                    self.fail_queue(&EngineError::Poisoned);
                    break;
                }
            }
        }
        self.inner.st.borrow_mut().flushing = false;
        // The log is idle: what the open metadata transaction holds goes to LMDB's file now,
        // not when the next load or checkpoint comes (a full device keeps it open).
        match self.inner.meta.commit_open() {
            Ok(()) | Err(EngineError::NoSpace) => {}
            Err(e) => {
                tracing::error!(error = %e, "metadata commit failed: core poisoned");
                self.inner.st.borrow_mut().poisoned = true;
            }
        }
        self.checkpoint_if_due();
    }

    /// Spawns a checkpoint when enough records or log bytes were written since the last one:
    /// `checkpoint_every_records`, or `checkpoint_every_log_bytes` but at least the last
    /// checkpoint's own size (so checkpoints of a large index cost no more than the log they
    /// save replaying). A restart after a crash thus replays a bounded tail of the log.
    fn checkpoint_if_due(&self) {
        let due = {
            let mut st = self.inner.st.borrow_mut();
            let bytes_due = self
                .inner
                .cfg
                .checkpoint_every_log_bytes
                .max(st.last_checkpoint_bytes);
            let due = (st.records_since_checkpoint >= self.inner.cfg.checkpoint_every_records
                || st.log_bytes_since_checkpoint >= bytes_due)
                // One running (its permit taken) or one spawned is enough.
                && self.inner.checkpoint_gate.available() > 0
                && !st.checkpoint_queued
                && !st.poisoned;
            if due {
                st.checkpoint_queued = true;
            }
            due
        };
        if due {
            let this = self.clone();
            self.inner.disk.spawn(async move {
                if let Err(e) = this.checkpoint().await {
                    tracing::warn!(error = %e, "checkpoint failed; will retry later");
                }
                this.inner.st.borrow_mut().checkpoint_queued = false;
            });
        }
    }

    /// One group commit: up to `PIPELINE_BATCHES_MAX` batches of the active segment are encoded
    /// and their writes issued one after another without waiting (so copying the next batch
    /// overlaps the device writing the previous one), then one fdatasync covers them all (a
    /// round of one batch writes it durably instead), then their effects are applied in log
    /// order. Returns whether there was anything to flush.
    async fn flush_round(&self) -> Result<bool> {
        let first_bytes = match self.inner.st.borrow().queue.front() {
            None => return Ok(false),
            Some(p) => p.op.record_bytes(),
        };
        let fits = self
            .inner
            .st
            .borrow()
            .active
            .as_ref()
            .is_some_and(|a| a.offset_bytes + first_bytes <= self.inner.cfg.segment_bytes);
        if !fits {
            self.rotate().await?;
        }
        let mut inflight = Vec::new();
        let mut file = None;
        let mut written_bytes = 0u64;
        // A round of one write asks that write to be durable itself (`write_durable_at`: an
        // O_DSYNC write), which costs the machine less than a write and then an fdatasync.
        // A round of several writes them all, then syncs once. The rounds before this one
        // were synced before it started, so its writes are the file's only unsynced ones.
        let mut durable_write = false;
        while inflight.len() < PIPELINE_BATCHES_MAX {
            let Some((batch, locs, buf, offset, f)) = self.encode_next_batch(inflight.is_empty())
            else {
                break;
            };
            written_bytes += buf.as_slice().len() as u64;
            durable_write = inflight.is_empty() && self.inner.st.borrow().queue.is_empty();
            let (tx, rx) = oneshot::channel();
            let this = self.clone();
            let f2 = f.clone();
            // Spawned: the executor submits the write now and we go on encoding.
            self.inner.disk.spawn(async move {
                let disk = &this.inner.disk;
                let written = if durable_write {
                    disk.write_durable_at(&f2, buf, offset).await
                } else {
                    disk.write_at(&f2, buf, offset).await
                };
                let _ = tx.send(written);
            });
            inflight.push((batch, locs, rx));
            file = Some(f);
        }
        assert!(
            !inflight.is_empty(),
            "the first record fits the active segment"
        );
        let file = file.expect("at least one batch");
        assert!(
            !durable_write || inflight.len() == 1,
            "only a round's only write is written durably"
        );
        let mut result = Ok(());
        for (_, _, rx) in &mut inflight {
            let r = rx.await.unwrap_or(Err(EngineError::Stopped));
            // Any other failure outranks NoSpace: it poisons the core below.
            if result.is_ok() || matches!(result, Err(EngineError::NoSpace)) && r.is_err() {
                result = r;
            }
        }
        if let Err(EngineError::NoSpace) = result {
            // The device refused blocks for a write into the preallocated segment (a
            // filesystem that allocates on write). No fdatasync failed and nothing of the
            // round was acknowledged: its writers learn NoSpace, the core stays healthy. The
            // segment's tail is left alone (replay skips blocks without a record); the next
            // round starts a new segment, where the free-space floor applies.
            self.leave_active(&mut self.inner.st.borrow_mut());
            for (batch, _, _) in inflight {
                for p in batch {
                    self.answer(p, Err(EngineError::NoSpace));
                }
            }
            return Err(EngineError::NoSpace);
        }
        if result.is_ok() && !durable_write {
            result = self.inner.disk.sync(&file).await;
        }
        if let Err(e) = result {
            // Never retried (after a failed fdatasync the kernel may have dropped the pages):
            // the writers of every batch in flight learn the core is poisoned.
            self.inner.st.borrow_mut().poisoned = true;
            for (batch, _, _) in inflight {
                for p in batch {
                    self.answer(p, Err(EngineError::Poisoned));
                }
            }
            return Err(e);
        }
        {
            let mut st = self.inner.st.borrow_mut();
            let active = st
                .active
                .as_ref()
                .expect("the active segment stays during a round");
            st.durable_pos = (active.segment, active.offset_bytes);
            st.stats.flushes += 1;
            st.records_since_checkpoint += inflight.iter().map(|b| b.0.len() as u64).sum::<u64>();
            st.log_bytes_since_checkpoint += written_bytes;
        }
        if cfg!(feature = "strict") {
            for (_, locs, _) in &inflight {
                self.verify_written(&file, locs).await;
            }
        }
        for (batch, locs, _) in inflight {
            self.apply_batch(batch, &locs)?;
        }
        Ok(true)
    }

    /// `strict` builds only: reads back every record just made durable and checks it
    /// (expensive: one extra read of everything written).
    async fn verify_written(&self, file: &D::File, locs: &[Loc]) {
        for loc in locs {
            let span = loc
                .span_bytes()
                .min(self.inner.cfg.segment_bytes - loc.offset_bytes());
            let read = self
                .inner
                .disk
                .read_at(file, loc.offset_bytes(), span as usize)
                .await;
            // A read error is a fault for the read path to report, not a broken invariant.
            let Ok(bytes) = read else { return };
            let header = RecordHeader::read_record(self.salt(), &bytes);
            assert!(
                header.is_ok_and(|h| self.belongs(&h, *loc)),
                "strict: record at {loc:?} verifies after sync: {header:?}"
            );
        }
    }

    /// Takes the records that fit the active segment (at most `BATCH_BYTES_MAX` unless a
    /// single record is larger), encodes them into one block-aligned buffer and advances the
    /// segment's write position. `None` when the queue is empty or its head does not fit.
    ///
    /// The first batch of a round goes on where the last round's records end: its buffer
    /// starts with the block those records end in, repeated byte for byte, so small commits
    /// do not pad every round to a block ("Log and group commit" in engine/DESIGN.md). A later
    /// batch of the same round starts on a fresh block, since the batch before it is still
    /// being written and two writes in flight must never share a block.
    #[allow(clippy::type_complexity)]
    fn encode_next_batch(
        &self,
        first_of_round: bool,
    ) -> Option<(Vec<Pending>, Vec<Loc>, D::Buf, u64, D::File)> {
        let mut st = self.inner.st.borrow_mut();
        let st = &mut *st;
        let active = st.active.as_mut()?;
        let fresh_block = !first_of_round && !active.tail.is_empty();
        let from = if fresh_block {
            align_up(active.offset_bytes, BLOCK_BYTES)
        } else {
            active.offset_bytes
        };
        let room = self.inner.cfg.segment_bytes - from;
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        while let Some(p) = st.queue.front() {
            let b = p.op.record_bytes();
            if bytes + b > room || (bytes > 0 && bytes + b > self.inner.cfg.batch_bytes) {
                break;
            }
            bytes += b;
            batch.push(st.queue.pop_front().expect("front exists"));
        }
        if batch.is_empty() {
            return None;
        }
        let before = active.offset_bytes;
        if fresh_block {
            active.offset_bytes = from;
            active.tail.clear();
        }
        let start = align_down(active.offset_bytes, BLOCK_BYTES);
        let prefix = active.tail.len();
        debug_assert_eq!(start + prefix as u64, active.offset_bytes);
        let write_bytes = align_up(prefix as u64 + bytes, BLOCK_BYTES);
        let mut buf = self.inner.disk.alloc(write_bytes as usize);
        let out = buf.as_mut_slice();
        out[..prefix].copy_from_slice(&active.tail);
        let mut locs = Vec::with_capacity(batch.len());
        let mut at = prefix as u64;
        for p in &batch {
            let lsn = st.next_lsn;
            st.next_lsn += p.op.records();
            let len = p.op.record_bytes();
            encode_op(
                &p.op,
                lsn,
                active.segment,
                self.salt(),
                &mut out[at as usize..(at + len) as usize],
            );
            // A `PutPaired`'s location is its fragment's record, the first of its two.
            let first = len - p.op.guarded_pair_bytes();
            locs.push(Loc::new(active.segment, start + at, first));
            at += len;
        }
        out[at as usize..].fill(0);
        let end = start + at;
        st.stats.log_appended_bytes += end - before;
        active.tail.clear();
        active
            .tail
            .extend_from_slice(&out[align_down(at, BLOCK_BYTES) as usize..at as usize]);
        active.offset_bytes = end;
        assert!(start + write_bytes <= self.inner.cfg.segment_bytes);
        Some((batch, locs, buf, start, active.file.clone()))
    }

    /// Answers a queued write (every answer goes through here, so the per-key count of pending
    /// metadata mutations stays exact).
    fn answer(&self, p: Pending, result: Result<Outcome>) {
        for key in p.op.meta_keys() {
            let mut st = self.inner.st.borrow_mut();
            let count = st
                .meta_pending
                .get_mut(key)
                .expect("a queued mutation is counted");
            *count -= 1;
            if *count == 0 {
                st.meta_pending.remove(key);
            }
        }
        if matches!(result, Err(EngineError::NoSpace)) {
            self.inner.st.borrow_mut().stats.no_space_refusals += 1;
        }
        let _ = p.tx.send(result);
    }

    fn fail_queue(&self, e: &EngineError) {
        let drained: Vec<Pending> = self.inner.st.borrow_mut().queue.drain(..).collect();
        for p in drained {
            let err = match e {
                EngineError::NoSpace => EngineError::NoSpace,
                _ => EngineError::Poisoned,
            };
            self.answer(p, Err(err));
        }
    }

    /// Seals the active segment and opens the next (a reused free file or a new one).
    /// Foreground writes may not use the last `RECLAIM_RESERVE_SEGMENTS` segments of
    /// capacity; relocations may.
    async fn rotate(&self) -> Result<()> {
        // Writes refused for the reserve are answered once `st` is released: `answer` borrows
        // it again (metadata writes). Answering inside the borrow panicked the core the first
        // time a node's disk filled up (RefCell already borrowed).
        let mut refused = Vec::new();
        let segment = self.next_segment_for_rotation(&mut refused);
        for p in refused {
            self.answer(p, Err(EngineError::NoSpace));
        }
        let segment = segment?;
        let file = self.open_new_segment(segment).await?;
        let mut st = self.inner.st.borrow_mut();
        self.leave_active(&mut st);
        st.segments.insert(segment);
        st.writing_segment = Some(segment);
        st.active = Some(Active {
            segment,
            file,
            offset_bytes: 0,
            tail: Vec::new(),
        });
        Ok(())
    }

    /// Stops writing the active segment: the rest of it stays unused, and counts as taken in
    /// `log_appended_bytes`.
    fn leave_active(&self, st: &mut State<D>) {
        if let Some(left) = st.active.take() {
            st.stats.log_appended_bytes += self.inner.cfg.segment_bytes - left.offset_bytes;
        }
    }

    /// Segment `segment`'s file: a free file renamed, when the pool has one and the device
    /// is above its floor (no unlink, create, fallocate or their syncs); else created and
    /// preallocated. Below the floor the pool's files are deleted first: their room goes
    /// back to the device, whose reserve LMDB and checkpoints need, and the segment is
    /// created in it as it was before recycling.
    async fn open_new_segment(&self, segment: u32) -> Result<D::File> {
        let segment_bytes = self.inner.cfg.segment_bytes;
        if !self.inner.st.borrow().free.is_empty() {
            if self.device_above_floor() {
                // Out of the pool before the await: nothing else may take it meanwhile.
                let free = self.inner.st.borrow_mut().free.pop_first();
                let free = free.expect("checked above; only the flusher takes from the pool");
                assert!(free < segment, "segment numbers only grow");
                let file = self
                    .inner
                    .disk
                    .reuse_free(free, segment, segment_bytes)
                    .await?;
                self.inner.st.borrow_mut().stats.segments_reused += 1;
                return Ok(file);
            }
            self.delete_free_files().await?;
        }
        self.inner.disk.create_segment(segment, segment_bytes).await
    }

    /// Gives up a reclaimed segment's file (nothing points into it: the caller checked, and a
    /// checkpoint past it is durable): kept in the free pool while the pool has room and the
    /// device is above its floor, else deleted.
    async fn release_segment(&self, segment: u32) -> Result<()> {
        let keep =
            self.inner.st.borrow().free.len() < FREE_SEGMENT_FILES_MAX && self.device_above_floor();
        if keep {
            self.inner.disk.retire_segment(segment).await?;
        } else {
            self.inner.disk.remove_segment(segment).await?;
        }
        let mut st = self.inner.st.borrow_mut();
        st.segments.remove(&segment);
        if keep {
            st.free.insert(segment);
            assert!(st.free.len() <= FREE_SEGMENT_FILES_MAX);
        }
        st.stats.reclaimed_segments += 1;
        Ok(())
    }

    /// Deletes every file of the free pool (the device fell below its floor).
    async fn delete_free_files(&self) -> Result<()> {
        let files = std::mem::take(&mut self.inner.st.borrow_mut().free);
        tracing::info!(
            files = files.len(),
            "device below its floor: free segment files deleted"
        );
        for free in files {
            self.inner.disk.remove_free(free).await?;
        }
        Ok(())
    }

    /// Whether the device's free space (the pool's files not counted) is at least its floor,
    /// so keeping or reusing a free file takes nothing from the reserve. Unknown counts as
    /// yes, as in `room_for_segment`.
    fn device_above_floor(&self) -> bool {
        let index_entries = self.inner.st.borrow().index.len() as u64;
        self.inner
            .disk
            .device_free_bytes()
            .map_or(true, |free| free >= self.device_floor_bytes(index_entries))
    }

    /// The number of the segment to rotate to, or NoSpace. Near the reserve, queued writes
    /// that may not use it are moved to `refused` (the caller answers them).
    fn next_segment_for_rotation(&self, refused: &mut Vec<Pending>) -> Result<u32> {
        let room = self.room_for_segment();
        let mut st = self.inner.st.borrow_mut();
        st.active = None;
        if room == Room::None {
            return Err(EngineError::NoSpace);
        }
        if room < Room::All {
            let queued: Vec<Pending> = st.queue.drain(..).collect();
            for p in queued {
                if p.op.room_needed() <= room {
                    st.queue.push_back(p);
                } else {
                    refused.push(p);
                }
            }
            if st.queue.is_empty() {
                return Err(EngineError::NoSpace);
            }
        }
        let seg = st.next_segment;
        st.next_segment += 1;
        Ok(seg)
    }

    /// Whether a new segment may be created, and for which writes: the tighter of the
    /// partition's configured capacity (its last `RECLAIM_RESERVE_SEGMENTS` segments are the
    /// reserve) and the device's free space (the floor, see [`Store::device_floor_bytes`]).
    /// The free pool's files are free space in both: the capacity counts segments in use
    /// (a new file is created only when the pool is empty, so files on the partition never
    /// exceed it), and their bytes are added to the device's free bytes.
    fn room_for_segment(&self) -> Room {
        let segment_bytes = self.inner.cfg.segment_bytes;
        let (count, index_entries, free_files_bytes) = {
            let st = self.inner.st.borrow();
            (
                st.segments.len() as u64,
                st.index.len() as u64,
                st.free.len() as u64 * segment_bytes,
            )
        };
        let max_segments =
            (self.inner.cfg.capacity_bytes / segment_bytes).min(u64::from(SEGMENTS_MAX));
        let by_capacity = match max_segments.checked_sub(count + 1) {
            None => Room::None,
            Some(0) => Room::Tombstones,
            Some(left) if left < RECLAIM_RESERVE_SEGMENTS => Room::Relocations,
            Some(_) => Room::All,
        };
        let by_device = match self.inner.disk.device_free_bytes() {
            // Unknown: the segment's own preallocation is the last word (NoSpace if it fails).
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the device's free space");
                Room::All
            }
            Ok(device_free) => {
                let free = device_free.saturating_add(free_files_bytes);
                let partitions = u64::from(self.inner.disk.partitions_on_device().max(1));
                let meta_floor = partitions * meta_reserve_bytes(index_entries);
                if free >= segment_bytes + self.device_floor_bytes(index_entries) {
                    Room::All
                } else if free >= segment_bytes + meta_floor + partitions * segment_bytes {
                    // Relocations may use all of the reserve but each partition's last
                    // segment: compaction frees more than it copies (candidates are at most
                    // half live).
                    Room::Relocations
                } else if free >= segment_bytes + meta_floor {
                    Room::Tombstones
                } else {
                    Room::None
                }
            }
        };
        by_capacity.min(by_device)
    }

    /// Free device bytes below which no segment is created for fragment data: for each
    /// partition on the device, its log reserve (`LOG_RESERVE_BYTES_MIN`, at least
    /// `RECLAIM_RESERVE_SEGMENTS` segments: relocations may use all but the last segment,
    /// deletes and metadata all of it) and its metadata reserve (LMDB growth, a checkpoint and
    /// its temp copy), so a full device still deletes, reclaims and restarts.
    fn device_floor_bytes(&self, index_entries: u64) -> u64 {
        let partitions = u64::from(self.inner.disk.partitions_on_device().max(1));
        let segment_bytes = self.inner.cfg.segment_bytes;
        let log_segments = LOG_RESERVE_BYTES_MIN
            .div_ceil(segment_bytes)
            .max(RECLAIM_RESERVE_SEGMENTS);
        partitions * (log_segments * segment_bytes + meta_reserve_bytes(index_entries))
    }

    /// Applies a durable batch to the index and the metadata store and answers its waiters.
    fn apply_batch(&self, batch: Vec<Pending>, locs: &[Loc]) -> Result<()> {
        // A pair's second mutation is applied after its first and reports nothing: the pair
        // answers for its first (`Store::meta_pair`).
        let mut metas: Vec<(&MetaMutation, bool)> = Vec::new();
        for p in &batch {
            match &p.op {
                Op::Meta(m) => metas.push((m, p.report)),
                Op::MetaPair(pair) | Op::PutPaired { pair, .. } => {
                    metas.extend([(&pair[0], p.report), (&pair[1], false)]);
                }
                _ => {}
            }
        }
        let won = if metas.is_empty() {
            Some(Vec::new())
        } else {
            match self.inner.meta.apply_reporting(&metas) {
                Ok(won) => Some(won),
                // LMDB could not grow its file. Its transaction was aborted whole, so it holds
                // none of the batch's mutations: they are answered NoSpace (a refused write
                // that a replay before the next checkpoint may still apply, as for any write
                // whose outcome a client did not learn). The core keeps serving.
                Err(EngineError::NoSpace) => None,
                Err(e) => return Err(e),
            }
        };
        let meta_refused = won.is_none();
        let mut won = won.unwrap_or_default().into_iter();
        let mut st = self.inner.st.borrow_mut();
        let mut outcomes = Vec::with_capacity(batch.len());
        for (p, loc) in batch.iter().zip(locs) {
            let outcome = match &p.op {
                Op::Put { id, .. } => {
                    st.index.insert(id, *loc);
                    st.cache.invalidate(id);
                    Outcome::Stored
                }
                Op::Delete { id } => {
                    st.index.remove(id);
                    st.cache.invalidate(id);
                    Outcome::Deleted
                }
                Op::PutPaired { id, .. } => {
                    // The fragment's record is durable whatever LMDB did: indexed like any
                    // (if its pair was refused it is an orphan, which the object layer sweeps).
                    st.index.insert(id, *loc);
                    st.cache.invalidate(id);
                    if meta_refused {
                        Outcome::Meta(false, None)
                    } else {
                        let applied = won.next().expect("one result per mutation");
                        won.next().expect("one result per mutation");
                        Outcome::Meta(applied.won, applied.previous)
                    }
                }
                Op::Meta(_) | Op::MetaPair(_) if meta_refused => Outcome::Meta(false, None),
                Op::Meta(_) => {
                    let applied = won.next().expect("one result per mutation");
                    Outcome::Meta(applied.won, applied.previous)
                }
                Op::MetaPair(_) => {
                    let applied = won.next().expect("one result per mutation");
                    won.next().expect("one result per mutation");
                    Outcome::Meta(applied.won, applied.previous)
                }
                Op::Relocate { id, from, .. } => {
                    if st.index.get(id) == Some(*from) {
                        st.index.insert(id, *loc);
                        st.cache.relocate(id, *from, *loc);
                    }
                    Outcome::Relocated
                }
            };
            outcomes.push(outcome);
        }
        drop(st);
        for (p, o) in batch.into_iter().zip(outcomes) {
            if meta_refused && matches!(p.op, Op::Meta(_) | Op::MetaPair(_) | Op::PutPaired { .. })
            {
                self.answer(p, Err(EngineError::NoSpace));
            } else {
                self.answer(p, Ok(o));
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Checkpoints and reclaim

    /// Syncs the metadata store, then writes the index and the replay point atomically. After it,
    /// a restart replays only records written after the snapshot.
    pub async fn checkpoint(&self) -> Result<()> {
        let _permit = self
            .inner
            .checkpoint_gate
            .acquire_permit(1)
            .await
            .map_err(|_| EngineError::Stopped)?;
        let (entries, header, counted, counted_bytes) = {
            let st = self.inner.st.borrow();
            let entries: Vec<CheckpointEntry> = st
                .index
                .iter()
                .map(|(id, loc)| CheckpointEntry { id, loc: loc.0 })
                .collect();
            let header = CheckpointHeader {
                replay_segment: st.durable_pos.0,
                replay_offset_bytes: st.durable_pos.1,
                next_lsn: st.next_lsn,
                entry_count: entries.len() as u64,
                marked: true,
            };
            (
                entries,
                header,
                st.records_since_checkpoint,
                st.log_bytes_since_checkpoint,
            )
        };
        let started = std::time::Instant::now();
        let (replay_segment, replay_offset_bytes) =
            (header.replay_segment, header.replay_offset_bytes);
        let result = self.write_checkpoint(entries, header).await;
        tracing::debug!(
            replay_segment,
            replay_offset_bytes,
            log_bytes = counted_bytes,
            elapsed_ms = started.elapsed().as_millis(),
            ok = result.is_ok(),
            "checkpoint"
        );
        let mut st = self.inner.st.borrow_mut();
        if let Ok(size) = result {
            st.records_since_checkpoint -= counted.min(st.records_since_checkpoint);
            st.log_bytes_since_checkpoint -= counted_bytes.min(st.log_bytes_since_checkpoint);
            st.last_checkpoint_bytes = size;
            st.stats.checkpoints += 1;
        }
        result.map(|_| ())
    }

    /// Returns the checkpoint's size in bytes.
    async fn write_checkpoint(
        &self,
        entries: Vec<CheckpointEntry>,
        header: CheckpointHeader,
    ) -> Result<u64> {
        // Everything applied so far, the header's replay point included, into the file, with
        // the mark that says so (`MetaStore::check_mark` at the next start). A commit that
        // fails keeps the transaction open (reads still see it): this checkpoint fails, the
        // next one tries again.
        self.inner.meta.commit_marked(header.next_lsn)?;
        let env = self.inner.meta.env();
        if let Err(e) = self.inner.disk.blocking(move || sync_env(&env)).await {
            // LMDB's dirty pages may be lost: the log must stay the source of truth.
            self.inner.st.borrow_mut().poisoned = true;
            return Err(e);
        }
        let bytes = self
            .inner
            .disk
            .blocking(move || encode_checkpoint(&header, &entries))
            .await;
        let size = bytes.len() as u64;
        self.inner
            .disk
            .write_small_atomic(CHECKPOINT_FILE, bytes)
            .await?;
        Ok(size)
    }

    /// The sealed segment most worth compacting, if any is below the live-ratio threshold.
    fn reclaim_candidate(&self) -> Option<u32> {
        let st = self.inner.st.borrow();
        st.segments
            .iter()
            .copied()
            // Sealed and wholly before the durable position: a checkpoint taken now covers it.
            .filter(|s| Some(*s) != st.writing_segment && *s < st.durable_pos.0)
            .map(|s| (st.index.live_bytes(s), s))
            .filter(|(live, _)| {
                *live > 0 && live * 1000 / self.inner.cfg.segment_bytes < RECLAIM_LIVE_PERMILLE_MAX
            })
            .min()
            .map(|(_, s)| s)
    }

    /// Compacts one segment: copies its live fragments to the log head, checkpoints, removes
    /// it. Returns whether a segment was reclaimed. Crash-safe at every step (engine/DESIGN.md).
    pub async fn reclaim_once(&self) -> Result<bool> {
        if self.inner.reclaiming.replace(true) {
            return Ok(false);
        }
        let result = self.reclaim_inner(true).await;
        self.inner.reclaiming.set(false);
        result
    }

    /// One pass of the background reclaimer: the segments dead when it starts are removed
    /// behind one checkpoint, then segments are compacted one by one while any is worth it.
    /// Segments that die during the pass wait for the next one, unless the partition is short
    /// of room (engine/DESIGN.md, "Reclaim": a pass that removed each newly dead segment at
    /// once ran back-to-back checkpoints for as long as deletes went on). Returns the number
    /// of segments removed.
    pub async fn reclaim_pass(&self) -> Result<u32> {
        if self.inner.reclaiming.replace(true) {
            return Ok(0);
        }
        let reclaimed = || self.inner.st.borrow().stats.reclaimed_segments;
        let before = reclaimed();
        let mut drop_dead = true;
        let result = loop {
            match self.reclaim_inner(drop_dead).await {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            drop_dead = self.room_for_segment() != Room::All;
        };
        self.inner.reclaiming.set(false);
        result.map(|()| u32::try_from(reclaimed() - before).unwrap_or(u32::MAX))
    }

    /// Removes every sealed segment no index entry points to, behind one checkpoint, without
    /// reading it: overwrites of large objects leave whole segments dead, and reading 64 MiB to
    /// find nothing live competed with foreground reads (seen: 1 MiB GETs at a quarter of
    /// their throughput while the reclaimer worked through segments of overwritten data).
    /// Returns whether a segment was removed.
    async fn drop_dead_segments(&self) -> Result<bool> {
        let dead: Vec<u32> = {
            let st = self.inner.st.borrow();
            st.segments
                .iter()
                .copied()
                .filter(|s| Some(*s) != st.writing_segment && *s < st.durable_pos.0)
                .filter(|s| st.index.live_bytes(*s) == 0)
                .collect()
        };
        if dead.is_empty() {
            return Ok(false);
        }
        // The checkpoint replays from at or after today's durable position, which is past every
        // dead segment: none of their records (tombstones, metadata) is needed after it.
        self.checkpoint().await?;
        for segment in dead {
            // Entries are only ever added at the log head, never to a sealed segment.
            assert_eq!(self.inner.st.borrow().index.live_bytes(segment), 0);
            self.release_segment(segment).await?;
        }
        Ok(true)
    }

    /// Copies the live fragments of `segment` to the log head, reading it through a scan's
    /// bounded window; at most `RELOCATE_INFLIGHT_BYTES_MAX` of payload (plus one record) is
    /// queued before the copies are waited for. A record the scan cannot verify is left (it
    /// keeps the segment, see the caller).
    async fn relocate_live(&self, segment: u32) -> Result<()> {
        let file = self.inner.disk.open_segment(segment).await?;
        let mut scan = self.scan(segment, file, 0);
        let mut waits = Vec::new();
        let mut queued_bytes = 0u64;
        loop {
            let (header, loc, lent) = match scan.next().await? {
                Scanned::End => break,
                Scanned::Damaged { .. } => continue,
                Scanned::Record {
                    header,
                    offset_bytes,
                    payload,
                } => (
                    header,
                    Loc::new(segment, offset_bytes, header.record_bytes()),
                    payload.map(Bytes::copy_from_slice),
                ),
            };
            let live = header.kind == RecordKind::Fragment
                && self.inner.st.borrow().index.get(&header.id) == Some(loc);
            if !live {
                continue;
            }
            let payload = match lent {
                Some(p) => p,
                // Larger than the scan's window: read whole (one record, at most
                // `RECORD_BYTES_MAX`) and checked again.
                None => match self.read_whole_record(scan.file(), loc).await? {
                    Some(p) => p,
                    None => continue,
                },
            };
            queued_bytes += payload.len() as u64;
            waits.push(self.enqueue(
                Op::Relocate {
                    id: header.id,
                    from: loc,
                    payload,
                },
                false,
            )?);
            if queued_bytes >= RELOCATE_INFLIGHT_BYTES_MAX {
                for w in waits.drain(..) {
                    w.await.unwrap_or(Err(EngineError::Stopped))?;
                }
                queued_bytes = 0;
            }
            self.inner.disk.yield_if_needed().await;
        }
        for w in waits {
            w.await.unwrap_or(Err(EngineError::Stopped))?;
        }
        Ok(())
    }

    /// The payload of the record at `loc` if it verifies (`None` if not: left in place).
    async fn read_whole_record(&self, file: &D::File, loc: Loc) -> Result<Option<Bytes>> {
        let span = loc
            .span_bytes()
            .min(self.inner.cfg.segment_bytes - loc.offset_bytes());
        let buf = self
            .inner
            .disk
            .read_at(file, loc.offset_bytes(), span as usize)
            .await?;
        Ok(match RecordHeader::read_record(self.salt(), &buf) {
            Ok(h) if self.belongs(&h, loc) => {
                let end = RECORD_HEADER_BYTES + h.payload_bytes as usize;
                Some(Bytes::from(buf).slice(RECORD_HEADER_BYTES..end))
            }
            _ => None,
        })
    }

    /// Removes the dead segments (when `drop_dead`) or else compacts the best candidate that
    /// still holds something live (a dead one is left for removal: reading it finds nothing).
    async fn reclaim_inner(&self, drop_dead: bool) -> Result<bool> {
        if drop_dead && self.drop_dead_segments().await? {
            return Ok(true);
        }
        let Some(segment) = self.reclaim_candidate() else {
            return Ok(false);
        };
        self.relocate_live(segment).await?;
        self.checkpoint().await?;
        if self.inner.st.borrow().index.live_bytes(segment) != 0 {
            // A fragment the scan could not read (damaged) still points here: keep the segment
            // so a later read reports Corrupt rather than NotFound.
            tracing::warn!(
                segment,
                "segment still has live records after compaction; kept"
            );
            return Ok(false);
        }
        self.release_segment(segment).await?;
        Ok(true)
    }
}

/// Device bytes one partition keeps for its metadata once data writes are refused: LMDB
/// growth and the checkpoint written twice (temp file beside the old one).
fn meta_reserve_bytes(index_entries: u64) -> u64 {
    META_RESERVE_BYTES + 2 * CHECKPOINT_ENTRY_BYTES_MAX * index_entries
}

/// The checkpoint and the index it holds: `Ok(None)` when there is none, an inner `Err`
/// naming the damage when it fails its checks (an I/O error reading it is the outer `Err`).
async fn load_checkpoint<D: Disk>(
    disk: &D,
) -> Result<Result<Option<(CheckpointHeader, Index)>, &'static str>> {
    let Some(bytes) = disk.read_small(CHECKPOINT_FILE).await? else {
        return Ok(Ok(None));
    };
    let (header, ix) = disk
        .blocking(move || {
            let mut ix = Index::default();
            let h = decode_checkpoint(&bytes, |id, loc| {
                ix.insert(&id, Loc(loc));
            });
            (h, ix)
        })
        .await;
    Ok(match header {
        Ok(h) => Ok(Some((h, ix))),
        Err(crate::format::CheckpointFault::BadMagic) => Err("checkpoint magic"),
        Err(crate::format::CheckpointFault::UnknownVersion(_)) => Err("checkpoint version"),
        Err(crate::format::CheckpointFault::Damaged(what)) => Err(what),
    })
}

/// `len` bytes (to the end when `None`) from `offset` of a whole payload.
fn sub_range(payload: &Bytes, offset: u64, len: Option<u64>) -> Result<Bytes> {
    let payload_len = payload.len() as u64;
    if offset > payload_len {
        return Err(EngineError::BadRequest(
            "range starts past the fragment's end",
        ));
    }
    let end = len.map_or(payload_len, |l| payload_len.min(offset.saturating_add(l)));
    Ok(payload.slice(offset as usize..end as usize))
}

fn check_scan_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > SCAN_ENTRIES_MAX {
        return Err(EngineError::BadRequest("scan limit must be 1..=10000"));
    }
    Ok(())
}

/// A metadata write's key and value within their bounds.
fn check_meta_record(key: &[u8], value: &[u8]) -> Result<()> {
    check_meta_key(key)?;
    if value.len() as u64 > META_VALUE_BYTES_MAX {
        return Err(too_large(
            "metadata value",
            value.len() as u64,
            META_VALUE_BYTES_MAX,
        ));
    }
    Ok(())
}

/// The two mutations of a pair: each within its bounds, at one HLC, of two keys.
fn check_pair(first: &MetaMutation, second: &MetaMutation) -> Result<()> {
    for m in [first, second] {
        match m {
            MetaMutation::Put { key, value, .. } => check_meta_record(key, value)?,
            MetaMutation::Delete { key, .. } => check_meta_key(key)?,
        }
    }
    if meta_hlc(first) != meta_hlc(second) {
        return Err(EngineError::BadRequest("a metadata pair has one HLC"));
    }
    if first.key() == second.key() {
        return Err(EngineError::BadRequest("a metadata pair names two keys"));
    }
    Ok(())
}

fn check_meta_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(EngineError::BadRequest("empty metadata key"));
    }
    if key.len() as u64 > META_KEY_BYTES_MAX {
        return Err(too_large(
            "metadata key",
            key.len() as u64,
            META_KEY_BYTES_MAX,
        ));
    }
    Ok(())
}

fn encode_op(op: &Op, lsn: u64, segment: u32, salt: u32, out: &mut [u8]) {
    let (kind, flags, id, key_bytes, aux) = match op {
        Op::PutPaired { id, data, pair } => {
            // The fragment's record, then the pair guarded by it, in one write.
            let (fragment, rest) = out.split_at_mut(record_bytes_for(data.len() as u64) as usize);
            let put = Op::Put {
                id: *id,
                data: data.clone(),
            };
            encode_op(&put, lsn, segment, salt, fragment);
            encode_pair(pair, Some(id), lsn + 1, segment, salt, rest);
            return;
        }
        Op::MetaPair(pair) => {
            encode_pair(pair, None, lsn, segment, salt, out);
            return;
        }
        Op::Put { id, .. } => (RecordKind::Fragment, 0, *id, 0, 0),
        Op::Delete { id } => (RecordKind::FragmentTombstone, 0, *id, 0, 0),
        Op::Meta(MetaMutation::Put { key, hlc, .. }) => {
            (RecordKind::MetaPut, 0, [0; 16], key.len() as u32, *hlc)
        }
        Op::Meta(MetaMutation::Delete { key, hlc }) => {
            (RecordKind::MetaDelete, 0, [0; 16], key.len() as u32, *hlc)
        }
        Op::Relocate { id, from, .. } => (RecordKind::Fragment, FLAG_RELOCATED, *id, 0, from.0),
    };
    let header = RecordHeader {
        kind,
        flags,
        lsn,
        id,
        payload_bytes: op.payload_bytes() as u32,
        key_bytes,
        aux,
        segment: Some(segment),
    };
    match op {
        Op::Put { data, .. } => header.write_record(salt, &[data], out),
        Op::Delete { .. } => header.write_record(salt, &[], out),
        Op::Meta(MetaMutation::Put { key, value, .. }) => {
            header.write_record(salt, &[key, value], out);
        }
        Op::Meta(MetaMutation::Delete { key, .. }) => header.write_record(salt, &[key], out),
        Op::Relocate { payload, .. } => header.write_record(salt, &[payload], out),
        Op::MetaPair(_) | Op::PutPaired { .. } => unreachable!("encoded above"),
    }
}

/// Encodes a pair record: both mutations at their one HLC, after `guard` (the fragment the
/// pair is guarded by, `FLAG_GUARDED`) if any.
fn encode_pair(
    pair: &[MetaMutation; 2],
    guard: Option<&[u8; 16]>,
    lsn: u64,
    segment: u32,
    salt: u32,
    out: &mut [u8],
) {
    let [first, second] = pair;
    let layout = PairLayout {
        guarded: guard.is_some(),
        first_key: first.key().len() as u32,
        first_value: meta_value(first).len() as u32,
        second_key: second.key().len() as u32,
    };
    let mut flags = 0;
    if matches!(first, MetaMutation::Delete { .. }) {
        flags |= FLAG_FIRST_DELETE;
    }
    if matches!(second, MetaMutation::Delete { .. }) {
        flags |= FLAG_SECOND_DELETE;
    }
    if guard.is_some() {
        flags |= FLAG_GUARDED;
    }
    let hlc = meta_hlc(first);
    debug_assert_eq!(hlc, meta_hlc(second), "a pair has one HLC");
    let guard: &[u8] = guard.map_or(&[], |g| &g[..]);
    let parts = [
        guard,
        first.key(),
        meta_value(first),
        second.key(),
        meta_value(second),
    ];
    let header = RecordHeader {
        kind: RecordKind::MetaPair,
        flags,
        lsn,
        id: layout.id(),
        payload_bytes: parts.iter().map(|p| p.len()).sum::<usize>() as u32,
        key_bytes: layout.first_key,
        aux: hlc,
        segment: Some(segment),
    };
    header.write_record(salt, &parts, out);
}

fn meta_payload_bytes(m: &MetaMutation) -> u64 {
    (m.key().len() + meta_value(m).len()) as u64
}

/// A mutation's value as logged (a delete's is empty).
fn meta_value(m: &MetaMutation) -> &[u8] {
    match m {
        MetaMutation::Put { value, .. } => value,
        MetaMutation::Delete { .. } => &[],
    }
}

fn meta_hlc(m: &MetaMutation) -> u64 {
    match m {
        MetaMutation::Put { hlc, .. } | MetaMutation::Delete { hlc, .. } => *hlc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimDisk;

    const SEGMENT_BYTES: u64 = 1024 * 1024;

    fn id(k: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[0..8].copy_from_slice(&k.to_le_bytes());
        id
    }

    /// The reclaimer's pass removes dead segments only at its start (room permitting): a
    /// segment that died since is neither compacted (its whole file read to find nothing
    /// live) nor removed until the next pass, while one that still holds something live is
    /// compacted.
    #[test]
    fn a_dead_segment_is_left_for_removal_not_compacted() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let dir = tempfile::tempdir().unwrap();
                let disk = SimDisk::new(7, 64 * SEGMENT_BYTES, dir.path().join("meta"));
                let cfg = StoreConfig {
                    segment_bytes: SEGMENT_BYTES,
                    capacity_bytes: 64 * SEGMENT_BYTES,
                    checkpoint_every_records: 1 << 40,
                    checkpoint_every_log_bytes: 1 << 40,
                    salt: 0x5eed,
                    format1_segments_below: 0,
                    batch_bytes: crate::limits::BATCH_BYTES_MAX,
                    cache_bytes: 0,
                };
                let store = Store::open(disk, cfg).await.unwrap();
                // 100 KB fragments: a few segments' worth.
                for k in 0..40 {
                    store
                        .put_fragment(id(k), Bytes::from(vec![k as u8; 100_000]))
                        .await
                        .unwrap();
                }
                let seg = |k| store.inner.st.borrow().index.get(&id(k)).unwrap().segment();
                let (dead, sparse) = (seg(0), seg(0) + 1);
                let of = |s: u32| (0..40).filter(move |k| seg(*k) == s);
                let kept = of(sparse).next().unwrap();
                assert!(of(sparse).count() > 2);
                for k in of(dead)
                    .chain(of(sparse).filter(|k| *k != kept))
                    .collect::<Vec<_>>()
                {
                    store.delete_fragment(id(k)).await.unwrap();
                }
                let segments = || store.inner.st.borrow().segments.clone();
                assert!(self::contains(&segments(), &[dead, sparse]));
                // Past the pass's start: the dead one is skipped, the sparse one compacted.
                assert!(store.reclaim_inner(false).await.unwrap());
                assert!(segments().contains(&dead) && !segments().contains(&sparse));
                assert_ne!(seg(kept), sparse, "its live fragment was copied");
                assert!(!store.reclaim_inner(false).await.unwrap());
                assert!(segments().contains(&dead), "left for the next pass");
                // The next pass removes it first.
                assert!(store.reclaim_pass().await.unwrap() >= 1);
                assert!(!segments().contains(&dead));
                store.shutdown().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    fn contains(set: &BTreeSet<u32>, all: &[u32]) -> bool {
        all.iter().all(|s| set.contains(s))
    }
}
