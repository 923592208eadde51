//! Format stability: a partition written by each format version (superblock, segments with
//! records before and after a checkpoint, checkpoint, LMDB) must keep opening and reading back.
//! Each fixture was made once with `PERCORE_WRITE_FIXTURE=1 cargo test -p engine --test golden
//! -- --ignored` by the build of its version; never regenerate one for a format change: add
//! the next version's beside it. The version-1 writer is gone with version 1 (this build
//! writes version 2 only); its fixture stays.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use engine::format::log_salt;
use engine::io::GlommioDisk;
use engine::partition::open_partition;
use engine::store::{Store, StoreConfig};

const SEGMENT_BYTES: u64 = 1 << 20;

fn fixture_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}-partition"))
}

fn fragment(i: u8) -> Bytes {
    Bytes::from(
        (0..1000 + usize::from(i) * 3000)
            .map(|j| (j as u8) ^ i)
            .collect::<Vec<u8>>(),
    )
}

fn id(i: u8) -> [u8; 16] {
    [i; 16]
}

async fn open(dir: &Path) -> (Store<GlommioDisk>, engine::partition::OpenPartition) {
    let p = open_partition(dir, 1, 0, SEGMENT_BYTES).expect("v1 partition opens");
    let q = glommio::executor().create_task_queue(
        glommio::Shares::Static(10),
        glommio::Latency::NotImportant,
        "bg",
    );
    let disk = GlommioDisk::open(dir, q).await.expect("disk");
    let cfg = StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        capacity_bytes: u64::MAX,
        checkpoint_every_records: 1 << 40,
        checkpoint_every_log_bytes: 1 << 40,
        salt: log_salt(&p.superblock.partition_uuid),
        format1_segments_below: p.superblock.format1_segments_below,
        batch_bytes: engine::limits::BATCH_BYTES_MAX,
        cache_bytes: engine::limits::CACHE_BYTES_PER_CORE_DEFAULT,
    };
    (Store::open(disk, cfg).await.expect("store opens"), p)
}

fn on_executor<F: std::future::Future<Output = ()> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("test body");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn format_v1_fixture_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core-0");
    copy_dir(&fixture_dir(1), &dir);
    on_executor(move || async move {
        let (store, _p) = open(&dir).await;
        for i in 1..=5u8 {
            let got = store
                .get_fragment(id(i), 0, None)
                .await
                .expect("fragment reads");
            assert_eq!(got, fragment(i), "fragment {i}");
        }
        assert!(matches!(
            store.get_fragment(id(6), 0, None).await,
            Err(engine::EngineError::NotFound)
        ));
        let m = store
            .meta_get(b"bucket/object")
            .unwrap()
            .expect("metadata record");
        assert_eq!((m.hlc, &m.value[..]), (77, &b"v1 metadata"[..]));
        assert_eq!(store.meta_get(b"bucket/deleted").unwrap(), None);
        store.shutdown().await.unwrap();
    });
}

/// Opening a version-1 partition upgrades its superblock (version 2, format-1 records allowed
/// below segment 2, the first this build creates); a version-1 build would now refuse it. Its
/// segment 1 then dies, goes to the free pool and is reused as segment 3: the format-1
/// records left in the file must not replay there (they name no segment, and segment 3 is
/// above the bound). Without that rule, fragments 1, 2, 4 and 5 would come back and 3 revert.
#[test]
fn format_v1_partition_upgrades_and_its_files_recycle_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core-0");
    copy_dir(&fixture_dir(1), &dir);
    let d = dir.clone();
    on_executor(move || async move {
        let (store, p) = open(&d).await;
        assert_eq!(p.superblock.version, engine::format::SUPERBLOCK_VERSION);
        assert_eq!(p.superblock.format1_segments_below, 2);
        for i in 1..=5u8 {
            store.delete_fragment(id(i)).await.unwrap();
        }
        store.put_fragment(id(3), fragment(33)).await.unwrap();
        assert!(store.reclaim_once().await.unwrap(), "segment 1 is dead");
        assert_eq!(store.stats().free_segment_files, 1);
        store.shutdown().await.unwrap();
        drop(p);
        let (store, p) = open(&d).await;
        store.put_fragment(id(7), fragment(7)).await.unwrap();
        assert_eq!(store.stats().segments_reused, 1);
        store.shutdown().await.unwrap();
        drop(p);
        // No checkpoint since segment 3 was opened: its replay meets the format-1 records.
        let (store, p) = open(&d).await;
        for i in [1u8, 2, 4, 5, 6] {
            assert!(
                matches!(
                    store.get_fragment(id(i), 0, None).await,
                    Err(engine::EngineError::NotFound)
                ),
                "fragment {i} stays deleted"
            );
        }
        assert!(store.get_fragment(id(3), 0, None).await.unwrap() == fragment(33));
        assert!(store.get_fragment(id(7), 0, None).await.unwrap() == fragment(7));
        let m = store
            .meta_get(b"bucket/object")
            .unwrap()
            .expect("metadata record");
        assert_eq!((m.hlc, &m.value[..]), (77, &b"v1 metadata"[..]));
        let s = store.stats();
        assert_eq!(
            (s.replay_stale_stops, s.corrupt_records_replayed),
            (1, 0),
            "{s:?}"
        );
        store.shutdown().await.unwrap();
        drop(p);
    });
    let sb = std::fs::read(dir.join("superblock")).unwrap();
    assert_eq!(
        sb[8..12],
        2u32.to_le_bytes(),
        "the superblock on disk is version 2"
    );
}

/// Version 2: a recycled segment (3, the first life's segment 1) whose new records end before
/// the first life's, a checkpoint inside it, a log tail after the checkpoint.
#[test]
fn format_v2_fixture_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core-0");
    copy_dir(&fixture_dir(2), &dir);
    on_executor(move || async move {
        let (store, _p) = open(&dir).await;
        for i in 1..=5u8 {
            let got = store
                .get_fragment(id(i), 0, None)
                .await
                .expect("fragment reads");
            assert!(got == fragment(i), "fragment {i}");
        }
        for i in [6u8].into_iter().chain(10..20) {
            assert!(
                matches!(
                    store.get_fragment(id(i), 0, None).await,
                    Err(engine::EngineError::NotFound)
                ),
                "fragment {i} is deleted"
            );
        }
        let s = store.stats();
        assert_eq!(
            (s.replay_stale_stops, s.corrupt_records_replayed),
            (1, 0),
            "{s:?}"
        );
        let m = store
            .meta_get(b"bucket/object")
            .unwrap()
            .expect("metadata record");
        assert_eq!((m.hlc, &m.value[..]), (77, &b"v2 metadata"[..]));
        assert_eq!(store.meta_get(b"bucket/deleted").unwrap(), None);
        store.shutdown().await.unwrap();
    });
}

/// The first life's 100 KB fragments (ids 10..=18) and a 150 KB one (19).
fn first_life(i: u8) -> Bytes {
    let len = if i == 19 { 150_000 } else { 100_000 };
    Bytes::from(
        (0..len)
            .map(|j| (j as u8).wrapping_mul(i))
            .collect::<Vec<u8>>(),
    )
}

#[test]
#[ignore = "writes the fixture; run once per format version"]
fn write_v2_fixture() {
    if std::env::var("PERCORE_WRITE_FIXTURE").as_deref() != Ok("1") {
        return;
    }
    let dir = fixture_dir(2);
    let _ = std::fs::remove_dir_all(&dir);
    on_executor(move || async move {
        // Segment 1: fragments 10..=18, tombstones of 10 and 11; 19 rolls to segment 2, which
        // gets the other tombstones. Segment 1 is dead: its file goes to the free pool.
        let (store, p) = open(&dir).await;
        for i in 10..=18u8 {
            store.put_fragment(id(i), first_life(i)).await.unwrap();
        }
        for i in 10..=11u8 {
            store.delete_fragment(id(i)).await.unwrap();
        }
        store.put_fragment(id(19), first_life(19)).await.unwrap();
        for i in 12..=19u8 {
            store.delete_fragment(id(i)).await.unwrap();
        }
        let v = Bytes::from_static(b"v2 metadata");
        store
            .meta_put(Bytes::from_static(b"bucket/object"), v, 77)
            .await
            .unwrap();
        assert!(store.reclaim_once().await.unwrap());
        store.shutdown().await.unwrap();
        drop(p);
        // Segment 3 is that file: its records end long before the first life's did.
        let (store, p) = open(&dir).await;
        for i in 1..=3u8 {
            store.put_fragment(id(i), fragment(i)).await.unwrap();
        }
        assert_eq!(store.stats().segments_reused, 1);
        let k = Bytes::from_static(b"bucket/deleted");
        store
            .meta_put(k.clone(), Bytes::from_static(b"gone"), 70)
            .await
            .unwrap();
        store.checkpoint().await.unwrap();
        // A log tail after the checkpoint: replayed on open, up to the first life's records.
        for i in 4..=6u8 {
            store.put_fragment(id(i), fragment(i)).await.unwrap();
        }
        store.delete_fragment(id(6)).await.unwrap();
        store.meta_delete(k, 71).await.unwrap();
        store.shutdown().await.unwrap();
        drop(p);
    });
    std::fs::remove_file(fixture_dir(2).join("lock")).unwrap();
}
