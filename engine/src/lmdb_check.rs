//! The structural check of an LMDB data file before LMDB maps it lives in the `lmdb-check`
//! crate (the control plane's Raft store uses it too); the engine's metadata store runs it at
//! every open (`meta.rs`). Its tests are here: they damage real files of that store.

pub use lmdb_check::{check, check_dir, Damage, Summary};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MetaMutation, MetaStore};
    use bytes::Bytes;
    use rand::{Rng, SeedableRng};

    /// The checkpoint mark of `sample_file`'s last state (as if a checkpoint's file said it).
    const SAMPLE_MARK: u64 = 3 * 3000 + 1;

    /// A metadata store with enough entries for a 3-level tree, values on overflow pages and
    /// a free list (overwrites and deletes), closed; returns the bytes of its data.mdb. Each
    /// round of 3,000 mutations ends as a checkpoint does: committed with its mark (the log
    /// sequence number after its records), the last one `SAMPLE_MARK`.
    fn sample_file(dir: &std::path::Path) -> Vec<u8> {
        let m = MetaStore::open(dir).unwrap();
        for round in 0..3u64 {
            let muts: Vec<MetaMutation> = (0..3000u64)
                .map(|i| {
                    let key = Bytes::from(format!("bucket/key-{i:06}"));
                    if round == 2 && i % 3 == 0 {
                        MetaMutation::Delete {
                            key,
                            hlc: 10 + round,
                        }
                    } else {
                        let len = if i % 100 == 0 {
                            9000
                        } else {
                            40 + (i % 50) as usize
                        };
                        let value = Bytes::from(vec![(i + round) as u8; len]);
                        MetaMutation::Put {
                            key,
                            value,
                            hlc: 10 + round,
                        }
                    }
                })
                .collect();
            let refs: Vec<&MetaMutation> = muts.iter().collect();
            m.apply(&refs).unwrap();
            m.commit_marked((round + 1) * 3000 + 1).unwrap();
        }
        m.force_sync().unwrap();
        drop(m);
        std::fs::read(dir.join("data.mdb")).unwrap()
    }

    fn check_bytes(bytes: &[u8]) -> Result<Summary, Damage> {
        check(bytes.len() as u64, 64 << 30, |offset, buf| {
            let start = usize::try_from(offset).unwrap();
            match bytes.get(start..start + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    Ok(())
                }
                None => Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        })
    }

    /// Opens a copy of `bytes` as a store (which checks it) and, when that succeeds, reads
    /// every entry: nothing may crash the process. The store must hold the state of
    /// `SAMPLE_MARK` or a newer one, as `Store::open` checks against its checkpoint file.
    fn open_and_read_all(bytes: &[u8]) -> Result<usize, String> {
        read_all(bytes).map(|v| v.len())
    }

    type Entries = Vec<(Bytes, crate::meta::MetaValue, bool)>;

    fn read_all(bytes: &[u8]) -> Result<Entries, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.mdb"), bytes).unwrap();
        let m = MetaStore::open(dir.path()).map_err(|e| e.to_string())?;
        m.check_mark(SAMPLE_MARK).map_err(|e| e.to_string())?;
        let mut all = Vec::new();
        let mut cursor: Option<Bytes> = None;
        loop {
            let page = m
                .scan_versioned(b"bucket/", cursor.as_deref(), 500)
                .map_err(|e| e.to_string())?;
            for (k, v, deleted) in page.entries {
                let again = m.get_versioned(&k).map_err(|e| e.to_string())?;
                assert_eq!(again, Some((v.clone(), deleted)), "get and scan agree");
                all.push((k, v, deleted));
            }
            match page.next_start_after {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    #[test]
    fn a_sound_file_passes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let s = check_bytes(&bytes).unwrap();
        // The main tree's nodes (a split store's named databases `format` and its 28 trees,
        // and its guard key `meta`), the two format markers and the checkpoint mark
        // (`meta.rs`) and the 3000 keys.
        assert_eq!(s.entries - 33 - free_entries(&bytes), 3000, "{s:?}");
        assert!(s.pages_visited > 10);
        assert_eq!(open_and_read_all(&bytes).unwrap(), 3000);
    }

    /// Entries of the free list (the check counts them as entries too).
    fn free_entries(bytes: &[u8]) -> u64 {
        check_bytes(bytes).unwrap().free_entries
    }

    #[test]
    fn a_zeroed_page_a_short_file_and_a_wild_last_page_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let original = read_all(&bytes).unwrap();
        let mut refused = 0;
        let p = 4096;
        for page in 2..bytes.len() / p {
            let mut b = bytes.clone();
            b[page * p..(page + 1) * p].fill(0);
            // A zeroed page in a tree is found at open; one inside a value's overflow run by
            // the value's checksum; a free page is harmless.
            if check_bytes(&b).is_ok() {
                if let Ok(entries) = read_all(&b) {
                    assert!(entries == original, "a zeroed page read back as data");
                }
            } else {
                refused += 1;
            }
        }
        assert!(refused > 10, "{refused} zeroed pages found");
        let short = &bytes[..bytes.len() / 2];
        let e = check_bytes(short).unwrap_err();
        assert!(e.contains("outside the file"), "{e}");
        assert!(open_and_read_all(short)
            .unwrap_err()
            .contains("damaged metadata store"));
        // Both meta pages claiming a last page far past the file: a tree page past the end.
        let mut wild = bytes.clone();
        for meta in [0, p] {
            wild[meta + 16 + 120..meta + 16 + 128].copy_from_slice(&(1u64 << 30).to_le_bytes());
        }
        let e = check_bytes(&wild).unwrap_err();
        assert!(e.contains("past the"), "{e}");
        assert!(open_and_read_all(&wild).is_err());
        assert!(check_bytes(&[]).is_err());
        assert!(check_bytes(&bytes[..3000]).is_err());
    }

    /// Random damage anywhere in the file: the check refuses it, or a read fails its value
    /// checksum, or every entry reads back as written; the process never crashes (a SIGBUS or
    /// an LMDB assert would kill the test).
    #[test]
    fn random_damage_never_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let seed = std::env::var("PERCORE_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| rand::thread_rng().gen::<u64>());
        eprintln!("seed {seed} (PERCORE_SIM_SEED replays it)");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let original = read_all(&bytes).unwrap();
        let (mut refused, mut read, mut failed) = (0, 0, 0);
        for _ in 0..150 {
            let mut b = bytes.clone();
            // A few bytes in one page, or a burst of garbage over one page.
            let page = rng.gen_range(0..b.len() / 4096);
            if rng.gen_bool(0.5) {
                for _ in 0..rng.gen_range(1..4) {
                    let at = page * 4096 + rng.gen_range(0..4096);
                    b[at] ^= 1 << rng.gen_range(0..8);
                }
            } else {
                rng.fill(&mut b[page * 4096..(page + 1) * 4096]);
            }
            match check_bytes(&b) {
                Err(_) => refused += 1,
                Ok(_) => match read_all(&b) {
                    Ok(entries) => {
                        assert!(entries == original, "damage read back as data");
                        read += 1;
                    }
                    Err(_) => failed += 1,
                },
            }
        }
        eprintln!(
            "{refused} damaged files refused at open, {failed} failed a read, {read} read back \
             intact (damage in free pages or unused bytes)"
        );
        assert!(refused > 0);
    }

    /// One flipped bit in the older meta page's transaction id (bit 40: the id grows past the
    /// newer one's) leaves every page sound, and LMDB opens the tree before the last commit.
    /// The checkpoint mark sees it; an older copy of the file put back is seen the same way.
    #[test]
    fn a_store_rolled_back_to_an_older_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let older_copy = {
            let early = tempfile::tempdir().unwrap();
            let m = MetaStore::open(early.path()).unwrap();
            m.commit_marked(SAMPLE_MARK - 3000).unwrap();
            m.force_sync().unwrap();
            drop(m);
            std::fs::read(early.path().join("data.mdb")).unwrap()
        };
        let bytes = sample_file(dir.path());
        assert_eq!(read_all(&bytes).unwrap().len(), 3000);
        // The page header's bytes.
        let p = 16;
        let page = |b: &[u8], at: usize| -> (u32, u64) {
            let psize = u32::from_le_bytes(b[p + 24..p + 28].try_into().unwrap());
            let off = at * psize as usize + p + 128;
            (
                psize,
                u64::from_le_bytes(b[off..off + 8].try_into().unwrap()),
            )
        };
        let (psize, t0) = page(&bytes, 0);
        let (_, t1) = page(&bytes, 1);
        let older = usize::from(t1 < t0);
        let mut flipped = bytes.clone();
        flipped[older * psize as usize + p + 128 + 5] ^= 1;
        check_bytes(&flipped).expect("every page is sound");
        for rolled_back in [flipped, older_copy] {
            match read_all(&rolled_back) {
                Err(e) => assert!(e.contains("rolled back"), "{e}"),
                Ok(entries) => panic!("{} entries read from an older state", entries.len()),
            }
        }
        // A damaged mark is damage too.
        let mut marks = 0;
        let mut damaged = bytes.clone();
        let needle = b"checkpoint-lsn";
        for at in
            (0..damaged.len() - needle.len()).filter(|&i| &bytes[i..i + needle.len()] == needle)
        {
            damaged[at + needle.len()] ^= 0x10;
            marks += 1;
        }
        assert!(marks > 0);
        check_bytes(&damaged).expect("a byte of a value: the structure is sound");
        match read_all(&damaged) {
            Err(e) => assert!(e.contains("checksum"), "{e}"),
            Ok(entries) => panic!("{} entries read past a damaged mark", entries.len()),
        }
    }
}
