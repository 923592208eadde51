//! Recycled segment files (engine/DESIGN.md, "Recycled segment files"): reclaim keeps dead
//! segment files in a bounded free pool and a roll reuses one instead of creating a file. A
//! reused file still holds its earlier life's records, whose checksums verify (the seed is the
//! partition's): replay after a crash must stop at them, never apply them. Runs on the
//! simulated disk (crashes, counted files) and on real O_DIRECT files (inodes).

use bytes::Bytes;
use engine::format::log_salt;
use engine::io::GlommioDisk;
use engine::limits::FREE_SEGMENT_FILES_MAX;
use engine::partition::open_partition;
use engine::sim::SimDisk;
use engine::store::{Store, StoreConfig};
use engine::EngineError;

mod common;
use common::{run_on_executor, xorshift_bytes};

const SEGMENT_BYTES: u64 = 1024 * 1024;

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        capacity_bytes: 64 * SEGMENT_BYTES,
        // Checkpoints only where a test (or open, or reclaim) takes them.
        checkpoint_every_records: 1 << 40,
        checkpoint_every_log_bytes: 1 << 40,
        salt: 0x5eed,
        format1_segments_below: 0,
        batch_bytes: engine::limits::BATCH_BYTES_MAX,
        cache_bytes: 0,
    }
}

fn id(k: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0..8].copy_from_slice(&k.to_le_bytes());
    id[8] = 0x7e;
    id
}

/// The first life's 100 KB fragments: nine of them and two tombstones fill most of segment 1.
/// Each record is exactly 25 blocks (its 64-byte header included), so the records of one put
/// after another start on blocks, where a scan that left the second life's records at a
/// block finds them (group commits follow each other unpadded: other sizes would put them
/// between blocks, where such a scan never looks).
fn old(k: u64) -> Bytes {
    xorshift_bytes(k + 1, 25 * 4096 - 64)
}

fn new(k: u64) -> Bytes {
    xorshift_bytes(1000 + k, 3000)
}

async fn get<D: engine::disk::Disk>(store: &Store<D>, k: u64) -> Option<Bytes> {
    match store.get_fragment(id(k), 0, None).await {
        Ok(b) => Some(b),
        Err(EngineError::NotFound) => None,
        Err(e) => panic!("fragment {k}: {e}"),
    }
}

/// Segment 1 gets fragments 0..=8 (each record 25 blocks, so each starts a block)
/// and tombstones of 0 and 1; segment 2 tombstones of 2..=9 and a new fragment 1. Segment 1
/// is then dead, and reclaim keeps its file in the free pool. What the index must hold
/// afterwards: only fragment 1, with `new(1)`. `created` runs once segment 1 exists.
async fn first_life<D: engine::disk::Disk>(store: &Store<D>, created: impl FnOnce()) {
    store.put_fragment(id(0), old(0)).await.unwrap();
    created();
    for k in 1..9 {
        store.put_fragment(id(k), old(k)).await.unwrap();
    }
    for k in 0..2 {
        store.delete_fragment(id(k)).await.unwrap();
    }
    // 150 KB: segment 1 has 118 KB left (9 x 25 blocks and 2 blocks of tombstones written),
    // so the log rolls to segment 2.
    store
        .put_fragment(id(9), xorshift_bytes(10, 150_000))
        .await
        .unwrap();
    assert_eq!(store.stats().segments, 2);
    for k in 2..10 {
        store.delete_fragment(id(k)).await.unwrap();
    }
    store.put_fragment(id(1), new(1)).await.unwrap();
    assert_eq!(store.stats().segments, 2);
    assert!(store.reclaim_once().await.unwrap(), "segment 1 is dead");
    let s = store.stats();
    assert_eq!((s.segments, s.free_segment_files), (1, 1), "{s:?}");
    assert_eq!(s.free_segment_bytes, SEGMENT_BYTES);
}

/// What every test checks after the last start: the first life stays dead, the second reads.
async fn check_after_replay<D: engine::disk::Disk>(store: &Store<D>, second_life: bool) {
    for k in (0..10).filter(|k| *k != 1) {
        let got = get(store, k).await.map(|b| b.len());
        assert_eq!(got, None, "deleted fragment {k} came back ({got:?} bytes)");
    }
    // Lengths in the messages: the payloads are 100 KB.
    let got = get(store, 1).await;
    assert!(
        got == Some(new(1)),
        "fragment 1 is not its current version ({:?} bytes)",
        got.map(|b| b.len())
    );
    if second_life {
        assert!(get(store, 20).await == Some(new(20)));
    }
    let s = store.stats();
    assert_eq!(s.corrupt_records_replayed, 0, "{s:?}");
    assert_eq!(
        s.replay_stale_stops, 1,
        "replay ended at the old records: {s:?}"
    );
}

/// The crash the format guards against. Segment 1's file, reused as segment 3, gets one
/// record (its first block); past it lie the first life's puts and tombstones, whole and
/// with valid checksums. Replay from the checkpoint at (3, 0) must stop at them: applied,
/// fragments 2..=8 would come back (their tombstones are in segment 2, replayed before) and
/// fragment 1 would be lost to its old tombstone. Also: the crash right after the file was
/// renamed, before any record of its new life (the whole file is the old life).
#[test]
fn replay_stops_at_a_recycled_files_old_records() {
    run_on_executor(|| async {
        for crash_before_first_write in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let disk = SimDisk::new(11, 64 * SEGMENT_BYTES, dir.path().join("meta"));
            let store = Store::open(disk.clone(), config()).await.unwrap();
            first_life(&store, || {}).await;
            let created = disk.segments_created();
            // A clean restart: the log then appends to a new segment, 3, from the pool.
            store.shutdown().await.unwrap();
            let store = Store::open(disk.restart(), config()).await.unwrap();
            if crash_before_first_write {
                // The rename succeeds, the first write does not: the process dies.
                disk.crash_after(1);
                assert!(store.put_fragment(id(20), new(20)).await.is_err());
            } else {
                store.put_fragment(id(20), new(20)).await.unwrap();
                assert_eq!(get(&store, 20).await, Some(new(20)));
            }
            assert_eq!(disk.segments_created(), created, "no file was created");
            assert_eq!(disk.segment_file_serial(3), Some(1), "segment 3 is file 1");
            assert_eq!(store.stats().segments_reused, 1);
            // The old life is there to be found: fragment 5's record, whole.
            let (segment, _) = disk.find(&old(5)).expect("old record kept");
            assert_eq!(segment, 3);
            store.shutdown().await.unwrap();
            let store = Store::open(disk.restart(), config()).await.unwrap();
            check_after_replay(&store, !crash_before_first_write).await;
            store.shutdown().await.unwrap();
        }
    });
}

/// Puts 100 fragments of 100 KB (ten segments), deletes them all (the tombstones fit in the
/// tenth, which the log still writes) and reclaims: nine dead segments at once.
async fn nine_dead_segments(store: &Store<SimDisk>) -> u64 {
    for k in 0..100 {
        store.put_fragment(id(k), old(k)).await.unwrap();
    }
    for k in 0..100 {
        store.delete_fragment(id(k)).await.unwrap();
    }
    let before = store.stats().segments;
    while store.reclaim_once().await.unwrap() {}
    before - store.stats().segments
}

/// Many dead segments at once: the pool keeps `FREE_SEGMENT_FILES_MAX` files and deletes the
/// rest (the device gets their bytes back); the next rolls reuse the pool's files (no file
/// created, the same files' serials) and only then create new ones.
#[test]
fn the_free_pool_is_bounded_and_reused_first() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(3, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let device_bytes = 200 * SEGMENT_BYTES;
        disk.set_device_free_bytes(Some(device_bytes));
        let store = Store::open(disk.clone(), config()).await.unwrap();
        let dead = nine_dead_segments(&store).await;
        let s = store.stats();
        assert_eq!(dead, 9, "{s:?}");
        assert!(dead > FREE_SEGMENT_FILES_MAX as u64);
        assert_eq!(s.free_segment_files, FREE_SEGMENT_FILES_MAX as u64, "{s:?}");
        assert_eq!(disk.free_files().len(), FREE_SEGMENT_FILES_MAX);
        assert_eq!(s.reclaimed_segments, dead);
        // Every file on the device is a segment in use or a pool file; the rest was returned.
        let held = (s.segments + s.free_segment_files) * SEGMENT_BYTES;
        assert_eq!(
            engine::disk::Disk::device_free_bytes(&disk).unwrap(),
            device_bytes - held
        );
        let pool: Vec<u32> = disk.free_files();
        let created = disk.segments_created();
        let mut k = 1000;
        loop {
            store.put_fragment(id(k), old(k)).await.unwrap();
            k += 1;
            assert_eq!(disk.segments_created(), created, "the pool is used first");
            let s = store.stats();
            assert_eq!(
                s.segments_reused + s.free_segment_files,
                FREE_SEGMENT_FILES_MAX as u64
            );
            if s.segments_reused == FREE_SEGMENT_FILES_MAX as u64 {
                assert!(disk.free_files().is_empty());
                break;
            }
        }
        // The pool's files (their serials) are the new segments now, lowest number first.
        let serials: Vec<u64> = disk
            .segment_lens()
            .iter()
            .filter_map(|(seg, _)| disk.segment_file_serial(*seg))
            .collect();
        assert_eq!(pool.len(), FREE_SEGMENT_FILES_MAX);
        assert!(
            pool.iter().all(|p| serials.contains(&u64::from(*p))),
            "pool {pool:?}, files in use {serials:?}"
        );
        // Empty pool: the next roll creates a file.
        while disk.segments_created() == created {
            store.put_fragment(id(k), old(k)).await.unwrap();
            k += 1;
        }
        store.shutdown().await.unwrap();
    });
}

/// The pool's bytes are the partition's free space only while the device is above its floor:
/// when others fill the device below it, a roll deletes the pool's files (the device needs
/// the room for LMDB and checkpoints) and creates the segment as before recycling.
#[test]
fn free_files_go_back_to_a_device_below_its_floor() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(5, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        disk.set_device_free_bytes(Some(200 * SEGMENT_BYTES));
        let store = Store::open(disk.clone(), config()).await.unwrap();
        nine_dead_segments(&store).await;
        let s = store.stats();
        assert_eq!(s.free_segment_files, FREE_SEGMENT_FILES_MAX as u64);
        // Below the floor, but the pool's files count: data still gets a segment.
        disk.set_device_free_bytes(Some(s.device_floor_bytes - SEGMENT_BYTES / 2));
        let created = disk.segments_created();
        for k in 100..110 {
            store.put_fragment(id(k), old(k)).await.unwrap();
        }
        let s = store.stats();
        assert_eq!((s.free_segment_files, s.segments_reused), (0, 0), "{s:?}");
        assert!(disk.free_files().is_empty());
        assert_eq!(disk.segments_created(), created + 1);
        store.shutdown().await.unwrap();
    });
}

/// On real O_DIRECT files: the reclaimed segment's inode becomes `free-00000001.log`, then
/// segment 3 (no file created); after a restart without a final checkpoint the replay of
/// segment 3 ends at the first life's records. An open with more free files than the bound
/// deletes the extra ones.
#[test]
fn a_reclaimed_file_is_reused_on_real_files() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core-0");
    let ino = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.ino()).ok();
    let d = dir.clone();
    run_on_executor(move || async move {
        let (store, p) = open_real(&d).await;
        let first = std::cell::Cell::new(None);
        first_life(&store, || first.set(ino_of(&d, "seg-00000001.log"))).await;
        let first = first.get();
        assert!(first.is_some());
        assert_eq!(ino_of(&d, "free-00000001.log"), first);
        assert!(!d.join("seg-00000001.log").exists());
        store.shutdown().await.unwrap();
        drop(p);
        let (store, p) = open_real(&d).await;
        store.put_fragment(id(20), new(20)).await.unwrap();
        assert_eq!(
            ino_of(&d, "seg-00000003.log"),
            first,
            "segment 3 is the same file"
        );
        assert!(!d.join("free-00000001.log").exists());
        assert_eq!(store.stats().segments_reused, 1);
        store.shutdown().await.unwrap();
        drop(p);
        let (store, p) = open_real(&d).await;
        check_after_replay(&store, true).await;
        store.shutdown().await.unwrap();
        drop(p);
    });
    // More free files than the bound (a build with a smaller bound, say): the extra go.
    let seg3 = ino("seg-00000003.log");
    for n in 0..FREE_SEGMENT_FILES_MAX as u32 + 2 {
        let name = format!("free-{:08x}.log", 0x40 + n);
        std::fs::copy(dir.join("seg-00000003.log"), dir.join(name)).unwrap();
    }
    let d = dir.clone();
    run_on_executor(move || async move {
        let (store, p) = open_real(&d).await;
        assert_eq!(
            store.stats().free_segment_files,
            FREE_SEGMENT_FILES_MAX as u64
        );
        // Numbers continue above every file's, the free ones kept included: the copies hold
        // records of segments 1 and 3, and segment 0x44 (file 0x40) may not take them.
        store.put_fragment(id(21), new(21)).await.unwrap();
        let next = 0x40 + FREE_SEGMENT_FILES_MAX;
        assert!(d.join(format!("seg-{next:08x}.log")).exists());
        store.shutdown().await.unwrap();
        drop(p);
        let (store, p) = open_real(&d).await;
        check_after_replay(&store, true).await;
        assert_eq!(get(&store, 21).await, Some(new(21)));
        store.shutdown().await.unwrap();
        drop(p);
    });
    let free = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("free-")
        })
        .count();
    assert_eq!(free, FREE_SEGMENT_FILES_MAX - 1, "one was reused");
    assert_eq!(ino("seg-00000003.log"), seg3);
}

fn ino_of(dir: &std::path::Path, name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join(name)).map(|m| m.ino()).ok()
}

/// Segments larger than a trim step, so the reclaimer removes each in several steps: more
/// die at once than the pool keeps (the rest are removed); then a crash part way through a
/// removal is played by planting a shortened copy of a dead segment under a number the log
/// used before. The store opens beside it, serves what it held, and its next reclaim pass
/// removes it.
#[test]
fn removed_segments_are_trimmed_in_steps_and_a_crash_part_way_is_removed_again() {
    use engine::limits::{BLOCK_BYTES, TRIM_STEP_BYTES};
    let segment_bytes = 2 * TRIM_STEP_BYTES + 16 * BLOCK_BYTES;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core-0");
    let segs = |dir: &std::path::Path, prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        v.sort();
        v
    };
    let d = dir.clone();
    run_on_executor(move || async move {
        let (store, p) = open_real_sized(&d, segment_bytes).await;
        // About 41 records of 100 KB a segment: 400 fill nine segments and start a tenth.
        for k in 0..400 {
            store.put_fragment(id(k), old(k)).await.unwrap();
        }
        for k in 0..400 {
            store.delete_fragment(id(k)).await.unwrap();
        }
        store.put_fragment(id(1000), new(1000)).await.unwrap();
        let before = store.stats();
        let removed = store.reclaim_pass().await.unwrap();
        let after = store.stats();
        assert!(
            removed > FREE_SEGMENT_FILES_MAX as u32,
            "{before:?} {after:?}"
        );
        assert_eq!(after.free_segment_files, FREE_SEGMENT_FILES_MAX as u64);
        assert_eq!(after.segments, before.segments - u64::from(removed));
        assert_eq!(segs(&d, "free-").len(), FREE_SEGMENT_FILES_MAX);
        assert_eq!(
            segs(&d, "seg-").len() as u64,
            after.segments,
            "the rest are gone"
        );
        store.shutdown().await.unwrap();
        drop(p);
    });
    // A removal cut short: a dead segment's file, shorter than a segment, under the number of
    // a segment removed above (below every number in use).
    let live = segs(&dir, "seg-");
    let first_live: u32 = u32::from_str_radix(&live[0][4..12], 16).unwrap();
    let planted = format!("seg-{:08x}.log", first_live - 1);
    assert!(!dir.join(&planted).exists());
    let pool = segs(&dir, "free-");
    let bytes = std::fs::read(dir.join(&pool[0])).unwrap();
    std::fs::write(dir.join(&planted), &bytes[..(segment_bytes / 2) as usize]).unwrap();
    let d = dir.clone();
    run_on_executor(move || async move {
        let (store, p) = open_real_sized(&d, segment_bytes).await;
        assert_eq!(get(&store, 1000).await, Some(new(1000)));
        assert_eq!(
            get(&store, 5).await,
            None,
            "the planted copy's records are not applied"
        );
        // The planted segment, and the segment written before the restart (fragment 1000
        // and the tombstones: compacted).
        let removed = store.reclaim_pass().await.unwrap();
        assert_eq!(removed, 2);
        assert!(!d.join(&planted).exists());
        assert_eq!(get(&store, 1000).await, Some(new(1000)));
        store.shutdown().await.unwrap();
        drop(p);
    });
}

async fn open_real(
    dir: &std::path::Path,
) -> (Store<GlommioDisk>, engine::partition::OpenPartition) {
    open_real_sized(dir, SEGMENT_BYTES).await
}

async fn open_real_sized(
    dir: &std::path::Path,
    segment_bytes: u64,
) -> (Store<GlommioDisk>, engine::partition::OpenPartition) {
    let p = open_partition(dir, 1, 0, segment_bytes).expect("partition");
    let q = glommio::executor().create_task_queue(
        glommio::Shares::Static(10),
        glommio::Latency::NotImportant,
        "bg",
    );
    let disk = GlommioDisk::open(dir, q).await.expect("disk");
    let cfg = StoreConfig {
        salt: log_salt(&p.superblock.partition_uuid),
        format1_segments_below: p.superblock.format1_segments_below,
        segment_bytes,
        capacity_bytes: 64 * segment_bytes,
        ..config()
    };
    (Store::open(disk, cfg).await.expect("store"), p)
}
