//! Format stability: a partition written by format version 1 (superblock, segments with records
//! before and after a checkpoint, checkpoint, LMDB) must keep opening and reading back.
//! The fixture was made once with `PERCORE_WRITE_FIXTURE=1 cargo test -p engine --test golden
//! -- --ignored`; never regenerate it for a format change: add a v2 fixture beside it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use engine::format::log_salt;
use engine::io::GlommioDisk;
use engine::partition::open_partition;
use engine::store::{Store, StoreConfig};

const SEGMENT_BYTES: u64 = 1 << 20;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-partition")
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
    copy_dir(&fixture_dir(), &dir);
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

#[test]
#[ignore = "writes the fixture; run once per format version"]
fn write_v1_fixture() {
    if std::env::var("PERCORE_WRITE_FIXTURE").as_deref() != Ok("1") {
        return;
    }
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    on_executor(move || async move {
        let (store, _p) = open(&dir).await;
        for i in 1..=3u8 {
            store.put_fragment(id(i), fragment(i)).await.unwrap();
        }
        let k = Bytes::from_static(b"bucket/deleted");
        store
            .meta_put(k.clone(), Bytes::from_static(b"gone"), 70)
            .await
            .unwrap();
        store.checkpoint().await.unwrap();
        // A log tail after the checkpoint: replayed on open.
        for i in 4..=6u8 {
            store.put_fragment(id(i), fragment(i)).await.unwrap();
        }
        store.delete_fragment(id(6)).await.unwrap();
        let v = Bytes::from_static(b"v1 metadata");
        store
            .meta_put(Bytes::from_static(b"bucket/object"), v, 77)
            .await
            .unwrap();
        store.meta_delete(k, 71).await.unwrap();
        store.shutdown().await.unwrap();
    });
    std::fs::remove_file(fixture_dir().join("lock")).unwrap();
}
