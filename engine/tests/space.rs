//! A full device: data writes are refused with `NoSpace` before the device is exhausted (the
//! free-space floor), deletes and metadata still go through (the reserve), the core is never
//! poisoned by it, and reclaim gives the space back. The simulated disk injects the full device;
//! `enospc_from_a_real_device_is_no_space` checks glommio's errors on a real full filesystem.

use bytes::Bytes;
use engine::disk::Disk;
use engine::sim::SimDisk;
use engine::store::{Store, StoreConfig};
use engine::EngineError;

mod common;
use common::run_on_executor;

const SEGMENT_BYTES: u64 = 1024 * 1024;
const MIB: u64 = 1024 * 1024;

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        capacity_bytes: u64::MAX,
        checkpoint_every_records: 50,
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
    id[8] = 0x5a;
    id
}

/// Puts 300 KB fragments until the store refuses one; returns the keys stored.
async fn fill(store: &Store<SimDisk>, data: &Bytes, from: u64) -> Vec<u64> {
    let mut stored = Vec::new();
    for k in from..from + 1000 {
        match store.put_fragment(frag_id(k), data.clone()).await {
            Ok(()) => stored.push(k),
            Err(EngineError::NoSpace) => return stored,
            Err(e) => panic!("a full device must answer NoSpace, got {e}"),
        }
    }
    panic!("the device never filled");
}

#[test]
fn full_device_refuses_data_serves_deletes_and_recovers() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(7, u64::MAX, dir.path().join("meta"));
        disk.set_device_free_bytes(Some(40 * MIB));
        let store = Store::open(disk.clone(), config()).await.unwrap();
        let data = Bytes::from(vec![0xabu8; 300_000]);
        let stored = fill(&store, &data, 0).await;
        let stats = store.stats();
        assert!(!stats.poisoned);
        assert!(stats.no_space_refusals >= 1);
        // Refused at the floor, not at exhaustion: the reserve is still on the device.
        let free = stats.device_free_bytes.unwrap();
        assert!(
            free + SEGMENT_BYTES > stats.device_floor_bytes && free >= 8 * MIB,
            "free {free}, floor {}",
            stats.device_floor_bytes
        );
        assert!(
            stored.len() >= 20,
            "{} fragments before the floor",
            stored.len()
        );
        // Data is refused again, metadata and deletes are not (they may use the reserve).
        let r = store.put_fragment(frag_id(5000), data.clone()).await;
        assert!(matches!(r, Err(EngineError::NoSpace)), "{r:?}");
        assert!(store
            .meta_put(Bytes::from_static(b"b/marker"), Bytes::from_static(b"m"), 9)
            .await
            .unwrap());
        let (gone, kept) = stored.split_at(stored.len() - 2);
        for k in gone {
            store.delete_fragment(frag_id(*k)).await.unwrap();
        }
        for k in kept {
            assert_eq!(
                store.get_fragment(frag_id(*k), 0, None).await.unwrap(),
                data
            );
        }
        while store.reclaim_once().await.unwrap() {}
        assert!(store.stats().device_free_bytes.unwrap() > free + 4 * MIB);
        let again = fill(&store, &data, 2000).await;
        assert!(!again.is_empty(), "room after deletes and reclaim");
        assert!(!store.stats().poisoned);
        store.shutdown().await.unwrap();
        // A restart on the full device works and every acknowledged fragment reads back.
        let store = Store::open(disk.restart(), config()).await.unwrap();
        for k in kept.iter().chain(&again) {
            assert_eq!(
                store.get_fragment(frag_id(*k), 0, None).await.unwrap(),
                data
            );
        }
        for k in gone {
            assert!(matches!(
                store.get_fragment(frag_id(*k), 0, None).await,
                Err(EngineError::NotFound)
            ));
        }
        store.shutdown().await.unwrap();
    });
}

/// ENOSPC from a write into a reserved segment (a filesystem that allocates on write) fails
/// that write's batch with `NoSpace` and leaves the core healthy; a failed fdatasync still
/// poisons it (STYLE rule 8).
#[test]
fn enospc_on_write_refuses_the_batch_without_poisoning() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(8, u64::MAX, dir.path().join("meta"));
        let store = Store::open(disk.clone(), config()).await.unwrap();
        let a = Bytes::from_static(b"before");
        store.put_fragment(frag_id(1), a.clone()).await.unwrap();
        disk.nospace_next_write();
        let r = store.put_fragment(frag_id(2), a.clone()).await;
        assert!(matches!(r, Err(EngineError::NoSpace)), "{r:?}");
        assert!(!store.stats().poisoned);
        store.put_fragment(frag_id(3), a.clone()).await.unwrap();
        store.delete_fragment(frag_id(1)).await.unwrap();
        disk.fail_next_sync();
        let r = store.put_fragment(frag_id(4), a.clone()).await;
        assert!(matches!(r, Err(EngineError::Poisoned)), "{r:?}");
        assert!(store.stats().poisoned);
        assert_eq!(store.get_fragment(frag_id(3), 0, None).await.unwrap(), a);
        store.shutdown().await.unwrap();
        let store = Store::open(disk.restart(), config()).await.unwrap();
        assert_eq!(store.get_fragment(frag_id(3), 0, None).await.unwrap(), a);
        assert!(matches!(
            store.get_fragment(frag_id(1), 0, None).await,
            Err(EngineError::NotFound)
        ));
        store.shutdown().await.unwrap();
    });
}

/// A small ext4 filesystem on a loop device, unmounted (and its loop device detached) on drop.
struct LoopFs {
    dir: tempfile::TempDir,
}

impl LoopFs {
    /// `None` (with the reason on stderr) where mounting is impossible (not root, no loop
    /// devices, no mkfs.ext4).
    fn mount(size: &str) -> Option<LoopFs> {
        use std::process::Command;
        let dir = tempfile::tempdir().ok()?;
        let img = dir.path().join("img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).ok()?;
        let steps: [(&str, Vec<std::ffi::OsString>); 3] = [
            (
                "truncate",
                vec!["-s".into(), size.into(), img.clone().into()],
            ),
            (
                "mkfs.ext4",
                vec!["-q".into(), "-F".into(), img.clone().into()],
            ),
            (
                "mount",
                vec!["-o".into(), "loop".into(), img.into(), mnt.into()],
            ),
        ];
        for (tool, args) in steps {
            let why = match Command::new(tool).args(&args).output() {
                Ok(o) if o.status.success() => continue,
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            eprintln!("SKIPPED: cannot mount a loop filesystem here ({tool}: {why})");
            return None;
        }
        Some(LoopFs { dir })
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // `mount -o loop` sets autoclear: unmounting detaches the loop device. glommio's
        // threads may still hold a file for a moment after the executor ends.
        for _ in 0..50 {
            let unmounted = std::process::Command::new("umount")
                .arg(self.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if unmounted {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.path())
            .status();
    }
}

/// glommio 0.9 drops the errno when its errors become `io::Error`; the disk layer recovers it,
/// so a segment that does not fit a real filesystem is `NoSpace` (it was `Io` and poisoned the
/// core). The free-space figure is the filesystem's own.
#[test]
fn enospc_from_a_real_device_is_no_space() {
    let Some(fs) = LoopFs::mount("32M") else {
        return;
    };
    let dir = fs.path().join("core-0");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(engine::io::SUPERBLOCK_FILE), vec![1u8; 4096]).unwrap();
    let dir2 = dir.clone();
    run_on_executor(move || async move {
        let q = glommio::executor().create_task_queue(
            glommio::Shares::default(),
            glommio::Latency::NotImportant,
            "bg",
        );
        let disk = engine::io::GlommioDisk::open(&dir2, q).await.unwrap();
        let free = disk.device_free_bytes().unwrap();
        assert!(free > MIB && free < 32 * MIB, "free {free}");
        // Fits: created. Larger than the whole filesystem: NoSpace, and no file left behind.
        disk.create_segment(1, MIB).await.unwrap();
        let r = disk.create_segment(2, 64 * MIB).await;
        assert!(matches!(r, Err(EngineError::NoSpace)), "{r:?}");
        assert_eq!(disk.list_segments().await.unwrap(), vec![1]);
        disk.create_segment(3, MIB).await.unwrap();
    });
    drop(fs);
}
