//! The scrub's check of one fragment (`Store::verify_fragment`) reads a record in pieces of
//! `VERIFY_READ_BYTES` and checksums them as they come: a bit flipped anywhere in the record —
//! its header, either side of a piece boundary, its last payload byte — is found, and a sound
//! record of any length verifies with its length.

use engine::format::RECORD_HEADER_BYTES;
use engine::limits::VERIFY_READ_BYTES;
use engine::sim::SimDisk;
use engine::store::{Store, StoreConfig};
use engine::EngineError;

mod common;
use common::run_on_executor;

const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        capacity_bytes: 16 * SEGMENT_BYTES,
        checkpoint_every_records: 1000,
        checkpoint_every_log_bytes: 1 << 40,
        salt: 0x5eed,
        format1_segments_below: 0,
        batch_bytes: 2 * 1024 * 1024,
        cache_bytes: 0,
    }
}

fn id(k: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0..8].copy_from_slice(&k.to_le_bytes());
    id
}

#[test]
fn verify_finds_a_flip_in_every_piece_of_a_record() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(7, 16 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = Store::open(disk.clone(), config()).await.unwrap();
        let piece = VERIFY_READ_BYTES as usize;
        let header = RECORD_HEADER_BYTES;
        // Lengths around the boundaries of the first read (which holds the header) and of
        // the later pieces, and one spanning several pieces.
        let lens = [
            1,
            piece - header - 1,
            piece - header,
            piece - header + 1,
            2 * piece - header,
            3 * piece + 17,
            900 * 1024,
        ];
        for (k, &len) in lens.iter().enumerate() {
            let data =
                common::xorshift_bytes((k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15), len);
            store
                .put_fragment(id(k as u64), data.clone())
                .await
                .unwrap();
            assert_eq!(
                store.verify_fragment(id(k as u64)).await.unwrap(),
                len as u64,
                "a sound record of {len} bytes"
            );
            let (segment, payload) = disk
                .find(&data[..len.min(32)])
                .expect("the payload is on the disk");
            let start = payload - header as u64;
            // Offsets in the record: header bytes (magic, kind, id, length, checksum), the
            // payload's first byte, both sides of every piece boundary, the last byte.
            let mut at: Vec<u64> = vec![0, 5, 16, 33, 49, header as u64];
            let end = (header + len) as u64;
            let mut b = VERIFY_READ_BYTES;
            while b < end {
                at.extend([b - 1, b]);
                b += VERIFY_READ_BYTES;
            }
            at.push(end - 1);
            for &off in &at {
                assert!(disk.flip_bit(segment, start + off, 3));
                let verdict = store.verify_fragment(id(k as u64)).await;
                assert!(
                    matches!(verdict, Err(EngineError::Corrupt { .. })),
                    "len {len}: a flip at record byte {off} was not found: {verdict:?}"
                );
                assert!(disk.flip_bit(segment, start + off, 3));
                assert_eq!(
                    store.verify_fragment(id(k as u64)).await.unwrap(),
                    len as u64
                );
            }
        }
        assert!(matches!(
            store.verify_fragment(id(99)).await,
            Err(EngineError::NotFound)
        ));
        store.shutdown().await.unwrap();
    });
}
