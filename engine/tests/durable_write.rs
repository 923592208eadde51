//! A group commit of one write makes that write durable by itself (an `O_DSYNC` write on the
//! real disk) instead of writing and then syncing; a commit of several writes syncs once after
//! them. engine/DESIGN.md, "Log and group commit".

use bytes::Bytes;
use engine::disk::Disk;
use engine::sim::SimDisk;
use engine::store::{Store, StoreConfig};

mod common;
use common::{run_on_executor, xorshift_bytes};

const MIB: u64 = 1024 * 1024;

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: 16 * MIB,
        capacity_bytes: u64::MAX,
        checkpoint_every_records: 1 << 30,
        checkpoint_every_log_bytes: 1 << 40,
        salt: 0x5eed,
        format1_segments_below: 0,
        batch_bytes: 64 * 1024,
        cache_bytes: 0,
    }
}

fn frag_id(k: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0..8].copy_from_slice(&k.to_le_bytes());
    id[8] = 0xd5;
    id
}

/// The simulated disk's durable write reaches the media alone (other pending writes of the
/// file stay pending), so a round that wrote several batches and skipped its sync would lose
/// them at the restart below.
#[test]
fn a_lone_write_is_made_durable_by_itself_and_several_are_synced() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        for seed in 0..8u64 {
            let disk = SimDisk::new(seed, u64::MAX, dir.path().join(format!("meta-{seed}")));
            let store = Store::open(disk.clone(), config()).await.unwrap();
            let before = disk.sync_counts();

            // One at a time: each round holds one batch, written durably, never synced.
            for k in 0..10 {
                store
                    .put_fragment(frag_id(k), xorshift_bytes(k, 3000))
                    .await
                    .unwrap();
            }
            let (syncs, durable) = disk.sync_counts();
            assert_eq!(syncs, before.0, "seed {seed}: lone writes need no sync");
            assert_eq!(durable, before.1 + 10, "seed {seed}");

            // Many at once, larger than a batch: rounds of several writes, synced after them.
            let puts: Vec<_> = (10..40u64)
                .map(|k| {
                    let store = store.clone();
                    glommio::spawn_local(async move {
                        store
                            .put_fragment(frag_id(k), xorshift_bytes(k, 100_000))
                            .await
                    })
                })
                .collect();
            for put in puts {
                put.await.unwrap();
            }
            let (syncs_after, _) = disk.sync_counts();
            assert!(
                syncs_after > syncs,
                "seed {seed}: rounds of several writes are synced"
            );

            // The process dies (unsynced writes kept, dropped or torn at random): every
            // acknowledged fragment is back, whole.
            drop(store);
            let disk = disk.restart();
            let store = Store::open(disk, config()).await.unwrap();
            for k in 0..40u64 {
                let len = if k < 10 { 3000 } else { 100_000 };
                let got = store.get_fragment(frag_id(k), 0, None).await.unwrap();
                assert_eq!(got, xorshift_bytes(k, len), "seed {seed}: fragment {k}");
            }
        }
    });
}

/// On real files the durable write goes through a second descriptor of the segment opened
/// with `O_DSYNC` (glommio's `custom_flags`; checked here in the kernel's own record of the
/// descriptor, so a library that dropped the flag fails this), and reads see what it wrote.
/// Only the segment opened last for writing has one.
#[test]
fn a_written_segment_has_an_o_dsync_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    std::fs::write(path.join(engine::io::SUPERBLOCK_FILE), vec![1u8; 4096]).unwrap();
    run_on_executor(move || async move {
        let q = glommio::executor().create_task_queue(
            glommio::Shares::default(),
            glommio::Latency::NotImportant,
            "bg",
        );
        let disk = engine::io::GlommioDisk::open(&path, q).await.unwrap();
        let seg = disk.create_segment(1, MIB).await.unwrap();
        let seg_path = path.join(engine::io::segment_file_name(1));
        let flags = descriptor_flags(&seg_path);
        assert_eq!(flags.len(), 2, "{flags:?}");
        let dsync = flags.iter().filter(|f| *f & libc::O_DSYNC != 0).count();
        assert_eq!(dsync, 1, "one descriptor writes durably: {flags:?}");
        assert!(flags.iter().all(|f| f & libc::O_DIRECT != 0), "{flags:?}");

        let block: Bytes = xorshift_bytes(9, 4096);
        let mut buf = disk.alloc(4096);
        engine::disk::DiskBuf::as_mut_slice(&mut buf).copy_from_slice(&block);
        disk.write_durable_at(&seg, buf, 8192).await.unwrap();
        let back = disk.read_at(&seg, 8192, 4096).await.unwrap();
        assert_eq!(back, block.to_vec());

        // The next segment takes the second descriptor; segment 1 keeps its first, and a
        // durable write to it (none is made by the store) is a write and a sync.
        let seg2 = disk.create_segment(2, MIB).await.unwrap();
        assert_eq!(descriptor_flags(&seg_path).len(), 1);
        let seg2_flags = descriptor_flags(&path.join(engine::io::segment_file_name(2)));
        assert_eq!(seg2_flags.len(), 2, "{seg2_flags:?}");
        let mut buf = disk.alloc(4096);
        engine::disk::DiskBuf::as_mut_slice(&mut buf).copy_from_slice(&block);
        disk.write_durable_at(&seg, buf, 12288).await.unwrap();
        assert_eq!(
            disk.read_at(&seg, 12288, 4096).await.unwrap(),
            block.to_vec()
        );
        drop((seg, seg2));

        // A segment of an earlier start is opened to be read: no second descriptor.
        drop(disk);
        let seg2_path = path.join(engine::io::segment_file_name(2));
        // glommio closes a dropped file from its executor, a moment later.
        for _ in 0..100 {
            if descriptor_flags(&seg2_path).is_empty() {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        }
        let q = glommio::executor().create_task_queue(
            glommio::Shares::default(),
            glommio::Latency::NotImportant,
            "bg2",
        );
        let disk = engine::io::GlommioDisk::open(&path, q).await.unwrap();
        let seg = disk.open_segment(2).await.unwrap();
        let flags = descriptor_flags(&seg2_path);
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!(flags[0] & libc::O_DSYNC, 0);
        drop(seg);
    });
}

/// The open flags of this process's descriptors of `path` (from /proc/self/fdinfo).
fn descriptor_flags(path: &std::path::Path) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target != path {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            entry.file_name().to_string_lossy()
        ))
        .unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| i32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        out.push(flags);
    }
    out
}
