//! The per-core fragment cache through the store: hits after a read, exact invalidation by
//! overwrite, delete and the reclaimer's moves, and the scrub still checking the disk (a byte
//! flipped in a real O_DIRECT segment file is found while the fragment is cached, and a cached
//! GET meanwhile touches no device).

use std::os::unix::fs::FileExt;

use bytes::Bytes;
use engine::disk::Disk;
use engine::format::log_salt;
use engine::io::{segment_file_name, GlommioDisk};
use engine::partition::open_partition;
use engine::sim::SimDisk;
use engine::store::{Store, StoreConfig};
use engine::EngineError;
use glommio::Shares;

mod common;
use common::run_on_executor;

const SEGMENT_BYTES: u64 = 1024 * 1024;

fn config(cache_bytes: u64) -> StoreConfig {
    StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        capacity_bytes: 64 * SEGMENT_BYTES,
        checkpoint_every_records: 1 << 40,
        checkpoint_every_log_bytes: 1 << 40,
        salt: 0x5eed,
        format1_segments_below: 0,
        batch_bytes: 64 * 1024,
        cache_bytes,
    }
}

fn frag_id(k: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0..8].copy_from_slice(&k.to_le_bytes());
    id
}

/// Bytes unique to `(k, version)`, so a flipped byte or a stale copy is recognised.
fn data(k: u64, version: u8, len: usize) -> Bytes {
    common::xorshift_bytes(
        k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(version) << 56,
        len,
    )
}

/// Runs `test` on an executor with a store on a simulated disk and a cache of `cache_bytes`.
fn with_sim_store<F: std::future::Future<Output = ()> + 'static>(
    cache_bytes: u64,
    test: impl FnOnce(Store<SimDisk>) -> F + Send + 'static,
) {
    run_on_executor(move || async move {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(1, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        test(Store::open(disk, config(cache_bytes)).await.unwrap()).await;
    });
}

/// Writes fragment `k` as `data(k, version, len)`; those bytes.
async fn put<D: Disk>(store: &Store<D>, k: u64, version: u8, len: usize) -> Bytes {
    let v = data(k, version, len);
    store.put_fragment(frag_id(k), v.clone()).await.unwrap();
    v
}

/// The whole of fragment `k`.
async fn get<D: Disk>(store: &Store<D>, k: u64) -> Bytes {
    store.get_fragment(frag_id(k), 0, None).await.unwrap()
}

#[test]
fn a_read_fills_and_the_next_reads_hit_any_range() {
    with_sim_store(1 << 20, |store| async move {
        let v = put(&store, 1, 0, 4096).await;
        // Writes do not fill: only a verified read does.
        assert_eq!(store.stats().cache.entries, 0);
        assert_eq!(get(&store, 1).await, v);
        let s = store.stats().cache;
        assert_eq!((s.hits, s.misses, s.entries), (0, 1, 1));
        assert_eq!(get(&store, 1).await, v);
        let part = store.get_fragment(frag_id(1), 100, Some(50)).await.unwrap();
        assert_eq!(part, v.slice(100..150));
        let tail = store
            .get_fragment(frag_id(1), 4000, Some(1000))
            .await
            .unwrap();
        assert_eq!(tail, v.slice(4000..));
        assert!(matches!(
            store.get_fragment(frag_id(1), 4097, None).await,
            Err(EngineError::BadRequest(_))
        ));
        let s = store.stats().cache;
        assert_eq!((s.hits, s.misses), (4, 1));
        assert!(s.used_bytes >= 4096 && s.used_bytes <= s.budget_bytes);
    });
}

#[test]
fn overwrite_and_delete_invalidate_exactly() {
    with_sim_store(1 << 20, |store| async move {
        for k in 0..3 {
            put(&store, k, 0, 3000).await;
            get(&store, k).await;
        }
        assert_eq!(store.stats().cache.entries, 3);
        let new = put(&store, 1, 1, 5000).await;
        // Dropped when the overwrite applied, not left for a lookup to find stale.
        assert_eq!(store.stats().cache.entries, 2);
        assert_eq!(get(&store, 1).await, new);
        store.delete_fragment(frag_id(2)).await.unwrap();
        assert_eq!(store.stats().cache.entries, 2);
        assert!(matches!(
            store.get_fragment(frag_id(2), 0, None).await,
            Err(EngineError::NotFound)
        ));
        // The same id written again after its delete reads the new bytes.
        let again = put(&store, 2, 2, 100).await;
        assert_eq!(get(&store, 2).await, again);
        assert_eq!(get(&store, 2).await, again);
        assert_eq!(get(&store, 0).await, data(0, 0, 3000));
        let s = store.stats().cache;
        assert_eq!(s.invalidations, 2);
        assert_eq!(s.entries, 3);
    });
}

#[test]
fn a_fragment_moved_by_the_reclaimer_stays_cached() {
    with_sim_store(4 << 20, |store| async move {
        let kept = put(&store, 0, 0, 4096).await;
        // Enough 64 KiB fragments to fill the first segment and start a second.
        for k in 1..24 {
            put(&store, k, 0, 64 << 10).await;
        }
        assert!(store.stats().segments >= 2);
        assert_eq!(get(&store, 0).await, kept);
        for k in 1..24 {
            store.delete_fragment(frag_id(k)).await.unwrap();
        }
        let reclaimed_before = store.stats().reclaimed_segments;
        while store.reclaim_once().await.unwrap() {}
        assert!(store.stats().reclaimed_segments > reclaimed_before);
        let hits = store.stats().cache.hits;
        assert_eq!(get(&store, 0).await, kept);
        let s = store.stats().cache;
        assert_eq!(
            s.hits,
            hits + 1,
            "the entry followed its record to the log head"
        );
        assert_eq!(s.invalidations, 0);
        // Still exact after the move: an overwrite drops it.
        let new = put(&store, 0, 1, 10).await;
        assert_eq!(get(&store, 0).await, new);
    });
}

#[test]
fn the_budget_holds_and_large_fragments_are_not_kept() {
    let budget = 256 << 10;
    with_sim_store(budget, move |store| async move {
        for k in 0..400 {
            put(&store, k, 0, 4096).await;
            get(&store, k).await;
            assert!(store.stats().cache.used_bytes <= budget);
        }
        let s = store.stats().cache;
        assert!(s.evictions > 0 && s.entries < 64, "{s:?}");
        // Larger than an eighth of the budget: read from the device, never kept.
        put(&store, 1000, 0, 40 << 10).await;
        for _ in 0..3 {
            get(&store, 1000).await;
        }
        assert_eq!(store.stats().cache.evictions, s.evictions);
        assert_eq!(store.stats().cache.hits, s.hits);
    });
}

#[test]
fn a_disabled_cache_counts_nothing() {
    with_sim_store(0, |store| async move {
        put(&store, 1, 0, 4096).await;
        for _ in 0..3 {
            get(&store, 1).await;
        }
        assert_eq!(store.stats().cache, engine::cache::CacheStats::default());
    });
}

/// Real O_DIRECT files: after a byte of a cached fragment is flipped in its segment file,
/// GETs are still answered from the cache (the device is not read: it would fail the
/// checksum), the scrub's `verify_fragment` reads the disk and reports the damage, and from
/// then on GETs see it too.
#[test]
fn verify_reads_the_disk_while_the_fragment_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run_on_executor(move || async move {
        let p = open_partition(&path, 1, 0, SEGMENT_BYTES).expect("partition");
        let q = glommio::executor().create_task_queue(
            Shares::Static(10),
            glommio::Latency::NotImportant,
            "bg",
        );
        let disk = GlommioDisk::open(&path, q).await.expect("disk");
        let mut cfg = config(1 << 20);
        cfg.salt = log_salt(&p.superblock.partition_uuid);
        cfg.format1_segments_below = p.superblock.format1_segments_below;
        let store = Store::open(disk, cfg).await.expect("store");
        let v = put(&store, 7, 0, 4096).await;
        assert_eq!(get(&store, 7).await, v);
        assert_eq!(store.verify_fragment(frag_id(7)).await.unwrap(), 4096);

        flip_byte_of(&path, &v[1000..1064]);

        assert_eq!(get(&store, 7).await, v);
        assert_eq!(store.stats().cache.hits, 1);
        assert!(matches!(
            store.verify_fragment(frag_id(7)).await,
            Err(EngineError::Corrupt { .. })
        ));
        assert!(matches!(
            store.get_fragment(frag_id(7), 0, None).await,
            Err(EngineError::Corrupt { .. })
        ));
        assert_eq!(store.stats().corrupt_reads, 2);
        store.shutdown().await.unwrap();
        drop(p);
    });
}

/// Flips one bit of the only occurrence of `needle` in the partition's segment files.
fn flip_byte_of(dir: &std::path::Path, needle: &[u8]) {
    for segment in 1..16u32 {
        let path = dir.join(segment_file_name(segment));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_at(&[bytes[at] ^ 0x10], at as u64).unwrap();
            file.sync_all().unwrap();
            return;
        }
    }
    panic!("payload not found in any segment file");
}
