//! The per-core metadata store: one LMDB environment (heed) holding object and bucket
//! metadata as an ordered key space, last-writer-wins by hybrid logical timestamp.
//!
//! Owns: the LWW rule, tombstones, ordered prefix scans with a resumable cursor. Does not own
//! durability: every mutation reaches this store only after its log record is durable, and the
//! environment runs without sync; `Store::checkpoint` syncs it before moving the replay point.
//!
//! Value layout in LMDB: hlc u64 LE | flags u8 | [crc u32 LE when flag 2] | value bytes.
//! Flags: 1 = tombstone, 2 = checked: the crc is CRC-32 of the key, the 9 bytes before it and
//! the value, verified on every read (LMDB checks no data: a flipped bit in a value would be
//! served as metadata). Values written before the crc (format 1 fixtures) have flag 2 clear
//! and are read unchecked, but only in a store that holds such values: a store created with
//! checksums says so in its `format` database (`checked` = 1), and there a value with flag 2
//! clear is damage. Without that marker one flipped flag bit, or a damaged key length that
//! shifts a value's first bytes, served garbage as metadata unchecked (found by the random
//! damage test of `lmdb_check`).

use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes as RawBytes;
use heed::{Database, Env};

use crate::error::{EngineError, Result};

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_CHECKED: u8 = 2;
/// hlc, flags.
const VALUE_HEADER_BYTES: usize = 9;
const CRC_BYTES: usize = 4;
/// Virtual address space reserved for the map (sparse: only used pages take disk space).
const MAP_BYTES_DEFAULT: usize = 64 << 30;

/// One mutation, as carried by a log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaMutation {
    Put {
        key: bytes::Bytes,
        value: bytes::Bytes,
        hlc: u64,
    },
    Delete {
        key: bytes::Bytes,
        hlc: u64,
    },
}

impl MetaMutation {
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }
}

/// What applying one mutation did (`MetaStore::apply_reporting`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The mutation won last-writer-wins and is the key's state now.
    pub won: bool,
    /// The key's version just before (value, tombstone), when asked for.
    pub previous: Option<(MetaValue, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaValue {
    pub hlc: u64,
    pub value: bytes::Bytes,
}

pub struct MetaStore {
    env: Env,
    db: Database<RawBytes, RawBytes>,
    /// Every value must carry its crc (the store was created with checksums).
    all_checked: bool,
}

/// The `format` database's key saying every value of the store carries its crc.
const FORMAT_CHECKED_KEY: &[u8] = b"checked";

/// Orders two versions of a key: by hlc, then tombstone below value, then by value bytes, so
/// that any replay order converges and re-applying a mutation is a no-op.
fn newer(hlc: u64, tomb: bool, value: &[u8], old: &MetaValue, old_tomb: bool) -> bool {
    (hlc, !tomb, value) > (old.hlc, !old_tomb, &old.value[..])
}

fn value_crc(key: &[u8], header: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(header);
    h.update(value);
    h.finalize()
}

fn encode_value(key: &[u8], hlc: u64, tomb: bool, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_HEADER_BYTES + CRC_BYTES + value.len());
    v.extend_from_slice(&hlc.to_le_bytes());
    v.push(FLAG_CHECKED | if tomb { FLAG_TOMBSTONE } else { 0 });
    let crc = value_crc(key, &v, value);
    v.extend_from_slice(&crc.to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn decode_live(key: &[u8], raw: &[u8], all_checked: bool) -> Result<Option<MetaValue>> {
    let (v, deleted) = decode_any(key, raw, all_checked)?;
    Ok((!deleted).then_some(v))
}

fn damaged_value(key: &[u8], detail: &str) -> EngineError {
    let shown: String = String::from_utf8_lossy(key).chars().take(120).collect();
    EngineError::Damaged {
        what: "metadata value",
        detail: format!("{detail} (key {shown:?})"),
    }
}

/// A stored value, live or a tombstone (`true`, with an empty value), its crc verified. In a
/// store whose values all carry one (`all_checked`), a value without one is damage.
fn decode_any(key: &[u8], raw: &[u8], all_checked: bool) -> Result<(MetaValue, bool)> {
    if raw.len() < VALUE_HEADER_BYTES {
        return Err(damaged_value(key, "short value"));
    }
    let flags = raw[8];
    if flags & FLAG_CHECKED == 0 && all_checked {
        return Err(damaged_value(key, "a value without its checksum"));
    }
    let body = if flags & FLAG_CHECKED == 0 {
        &raw[VALUE_HEADER_BYTES..]
    } else {
        let Some((crc, body)) = raw[VALUE_HEADER_BYTES..].split_first_chunk::<CRC_BYTES>() else {
            return Err(damaged_value(key, "short value"));
        };
        if u32::from_le_bytes(*crc) != value_crc(key, &raw[..VALUE_HEADER_BYTES], body) {
            return Err(damaged_value(key, "checksum mismatch"));
        }
        body
    };
    let value = MetaValue {
        hlc: u64::from_le_bytes(raw[0..8].try_into().expect("8 bytes")),
        value: bytes::Bytes::copy_from_slice(body),
    };
    Ok((value, flags & FLAG_TOMBSTONE != 0))
}

/// One page of a scan with tombstones: each entry says whether it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedPage {
    pub entries: Vec<(bytes::Bytes, MetaValue, bool)>,
    pub next_start_after: Option<bytes::Bytes>,
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub entries: Vec<(bytes::Bytes, MetaValue)>,
    /// Pass back as `start_after` to continue; `None` when the prefix is exhausted.
    pub next_start_after: Option<bytes::Bytes>,
}

impl MetaStore {
    pub fn open(dir: &Path) -> Result<MetaStore> {
        // LMDB trusts its file; damage could send it outside the map's file-backed part
        // (SIGBUS) or into its asserts. Check the structure first (see `lmdb_check`).
        let checked =
            crate::lmdb_check::check_dir(dir, MAP_BYTES_DEFAULT as u64).map_err(|detail| {
                EngineError::Damaged {
                    what: "metadata store (LMDB data.mdb)",
                    detail,
                }
            })?;
        if let Some(s) = checked {
            tracing::debug!(
                pages = s.pages_visited,
                entries = s.entries,
                "LMDB file checked"
            );
        }
        let env = crate::io::open_lmdb(dir, MAP_BYTES_DEFAULT)?;
        // A key LMDB refused after its log record was durable would poison the core on every
        // replay: the store checks keys against META_KEY_BYTES_MAX up front, so LMDB must
        // accept at least that much.
        if (env.max_key_size() as u64) < crate::limits::META_KEY_BYTES_MAX {
            return Err(EngineError::Meta {
                context: "opening LMDB",
                message: format!(
                    "LMDB accepts keys of {} bytes, percore needs {}",
                    env.max_key_size(),
                    crate::limits::META_KEY_BYTES_MAX
                ),
            });
        }
        let mut wtxn = env.write_txn().map_err(EngineError::meta("begin"))?;
        let db = env
            .create_database::<RawBytes, RawBytes>(&mut wtxn, Some("meta"))
            .map_err(EngineError::meta("creating the database"))?;
        let format = env
            .create_database::<RawBytes, RawBytes>(&mut wtxn, Some("format"))
            .map_err(EngineError::meta("creating the format database"))?;
        let marked = format
            .get(&wtxn, FORMAT_CHECKED_KEY)
            .map_err(EngineError::meta("reading the format"))?
            .is_some_and(|v| v == [1]);
        // A new store (nothing in it yet) holds only checked values from the start; an older
        // one keeps reading its unchecked values.
        let empty = db.is_empty(&wtxn).map_err(EngineError::meta("is_empty"))?;
        let all_checked = marked || empty;
        if all_checked && !marked {
            format
                .put(&mut wtxn, FORMAT_CHECKED_KEY, &[1])
                .map_err(EngineError::meta("writing the format"))?;
        }
        wtxn.commit().map_err(EngineError::meta("commit"))?;
        Ok(MetaStore {
            env,
            db,
            all_checked,
        })
    }

    /// Applies mutations in one transaction. Returns, for each, whether it won (LWW).
    pub fn apply(&self, mutations: &[&MetaMutation]) -> Result<Vec<bool>> {
        let plain: Vec<(&MetaMutation, bool)> = mutations.iter().map(|m| (*m, false)).collect();
        Ok(self
            .apply_reporting(&plain)?
            .into_iter()
            .map(|a| a.won)
            .collect())
    }

    /// `apply`, and for each mutation flagged `true` the key's version just before it (a
    /// damaged one reads as none: the mutation replaces it).
    pub fn apply_reporting(&self, mutations: &[(&MetaMutation, bool)]) -> Result<Vec<Applied>> {
        let mut wtxn = self.env.write_txn().map_err(EngineError::meta("begin"))?;
        let mut won = Vec::with_capacity(mutations.len());
        for &(m, report) in mutations {
            let (hlc, tomb, value): (u64, bool, &[u8]) = match m {
                MetaMutation::Put { value, hlc, .. } => (*hlc, false, value),
                MetaMutation::Delete { hlc, .. } => (*hlc, true, &[]),
            };
            let old = self
                .db
                .get(&wtxn, m.key())
                .map_err(EngineError::meta("get"))?;
            // A damaged old value cannot be ordered: the mutation (durable in the log) replaces
            // it.
            let mut previous = None;
            let apply = match old.map(|raw| decode_any(m.key(), raw, self.all_checked)) {
                Some(Ok((old, old_tomb))) => {
                    let apply = newer(hlc, tomb, value, &old, old_tomb);
                    if report {
                        previous = Some((old, old_tomb));
                    }
                    apply
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "damaged metadata value overwritten");
                    true
                }
                None => true,
            };
            if apply {
                self.db
                    .put(&mut wtxn, m.key(), &encode_value(m.key(), hlc, tomb, value))
                    .map_err(EngineError::meta("put"))?;
            }
            won.push(Applied {
                won: apply,
                previous,
            });
        }
        wtxn.commit().map_err(EngineError::meta("commit"))?;
        Ok(won)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<MetaValue>> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(EngineError::meta("begin read"))?;
        match self.db.get(&rtxn, key).map_err(EngineError::meta("get"))? {
            Some(raw) => decode_live(key, raw, self.all_checked),
            None => Ok(None),
        }
    }

    /// The HLC of a key's live value (`None` when absent or deleted).
    pub fn current_hlc(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.get(key)?.map(|v| v.hlc))
    }

    /// The key's last write, live or a tombstone (`true`).
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<(MetaValue, bool)>> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(EngineError::meta("begin read"))?;
        match self.db.get(&rtxn, key).map_err(EngineError::meta("get"))? {
            Some(raw) => decode_any(key, raw, self.all_checked).map(Some),
            None => Ok(None),
        }
    }

    /// Live entries whose key starts with `prefix`, after `start_after`, in key order.
    pub fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, limit: u32) -> Result<ScanPage> {
        let page = self.scan_inner(prefix, start_after, limit, false)?;
        Ok(ScanPage {
            entries: page.entries.into_iter().map(|(k, v, _)| (k, v)).collect(),
            next_start_after: page.next_start_after,
        })
    }

    /// Like `scan`, tombstones included (they count toward `limit`).
    pub fn scan_versioned(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Result<VersionedPage> {
        self.scan_inner(prefix, start_after, limit, true)
    }

    fn scan_inner(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
        tombstones: bool,
    ) -> Result<VersionedPage> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(EngineError::meta("begin read"))?;
        // LMDB refuses an empty key as a bound (MDB_BAD_VALSIZE), and no stored key is empty:
        // an empty bound is the start of the store.
        let lower = match start_after {
            Some(s) if s >= prefix && !s.is_empty() => Bound::Excluded(s),
            _ if prefix.is_empty() => Bound::Unbounded,
            _ => Bound::Included(prefix),
        };
        let range = (lower, Bound::Unbounded);
        let iter = self
            .db
            .range(&rtxn, &range)
            .map_err(EngineError::meta("range"))?;
        let mut entries: Vec<(bytes::Bytes, MetaValue, bool)> = Vec::new();
        let mut next_start_after = None;
        for item in iter {
            let (k, raw) = item.map_err(EngineError::meta("iterate"))?;
            if !k.starts_with(prefix) {
                break;
            }
            if entries.len() as u32 >= limit {
                // There is at least one more key under the prefix (live or not): resume after
                // the last one returned.
                next_start_after = entries.last().map(|(k, _, _)| k.clone());
                break;
            }
            let (v, deleted) = decode_any(k, raw, self.all_checked)?;
            if tombstones || !deleted {
                entries.push((bytes::Bytes::copy_from_slice(k), v, deleted));
            }
        }
        Ok(VersionedPage {
            entries,
            next_start_after,
        })
    }

    /// Makes everything applied so far durable (blocking: call off the executor).
    /// Bytes of the LMDB file in use: its pages up to the last one written (free pages
    /// inside it, kept for reuse, included).
    pub fn file_bytes(&self) -> u64 {
        let pages = self.env.info().last_page_number as u64 + 1;
        pages * u64::from(self.env.stat().page_size)
    }

    pub fn force_sync(&self) -> Result<()> {
        self.env.force_sync().map_err(EngineError::meta("sync"))
    }

    pub fn env(&self) -> Env {
        self.env.clone()
    }
}

/// Syncs an environment from a blocking thread.
pub fn sync_env(env: &Env) -> Result<()> {
    env.force_sync().map_err(EngineError::meta("sync"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn lww_and_scan_pages() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        let put = |k: &str, v: &str, hlc| MetaMutation::Put {
            key: Bytes::from(k.to_string()),
            value: Bytes::from(v.to_string()),
            hlc,
        };
        assert_eq!(m.apply(&[&put("a/1", "x", 5)]).unwrap(), vec![true]);
        assert_eq!(m.apply(&[&put("a/1", "old", 4)]).unwrap(), vec![false]);
        assert_eq!(
            m.apply(&[&put("a/1", "x", 5)]).unwrap(),
            vec![false],
            "replay is a no-op"
        );
        let del = MetaMutation::Delete {
            key: Bytes::from_static(b"a/1"),
            hlc: 6,
        };
        assert_eq!(m.apply(&[&del]).unwrap(), vec![true]);
        assert_eq!(m.get(b"a/1").unwrap(), None);
        assert_eq!(
            m.apply(&[&put("a/1", "x", 5)]).unwrap(),
            vec![false],
            "no resurrection"
        );
        for i in 0..5 {
            m.apply(&[&put(&format!("b/{i}"), "v", 1)]).unwrap();
        }
        m.apply(&[&put("c", "v", 1)]).unwrap();
        let p1 = m.scan(b"b/", None, 2).unwrap();
        assert_eq!(p1.entries.len(), 2);
        let p2 = m.scan(b"b/", p1.next_start_after.as_deref(), 2).unwrap();
        let p3 = m.scan(b"b/", p2.next_start_after.as_deref(), 2).unwrap();
        assert_eq!(p3.entries.len(), 1);
        let long = Bytes::from(vec![b'k'; crate::limits::META_KEY_BYTES_MAX as usize]);
        let m2 = MetaMutation::Put {
            key: long.clone(),
            value: Bytes::from_static(b"v"),
            hlc: 1,
        };
        assert_eq!(
            m.apply(&[&m2]).unwrap(),
            vec![true],
            "the longest key is accepted"
        );
        assert_eq!(p3.next_start_after, None);
        assert_eq!(&p3.entries[0].0[..], b"b/4");
        // An empty prefix scans the whole store, from its start or after a key (LMDB itself
        // refuses an empty bound).
        let all = m.scan(b"", None, 2).unwrap();
        assert_eq!(&all.entries[0].0[..], b"b/0", "a/1 is deleted");
        assert_eq!(all.entries.len(), 2);
        let rest = m.scan(b"", Some(b""), 10).unwrap();
        assert_eq!(rest.entries.len(), 7, "b/0..b/4, c and the long key");
        let after = m.scan(b"", all.next_start_after.as_deref(), 10).unwrap();
        assert_eq!(&after.entries[0].0[..], b"b/2");
    }

    #[test]
    fn versioned_reads_show_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        let put = |k: &'static str, hlc| MetaMutation::Put {
            key: Bytes::from_static(k.as_bytes()),
            value: Bytes::from_static(b"v"),
            hlc,
        };
        let del = |k: &'static str, hlc| MetaMutation::Delete {
            key: Bytes::from_static(k.as_bytes()),
            hlc,
        };
        m.apply(&[
            &put("p/a", 1),
            &put("p/b", 2),
            &del("p/b", 3),
            &put("p/c", 4),
        ])
        .unwrap();
        let (v, deleted) = m
            .get_versioned(b"p/b")
            .unwrap()
            .expect("kept as a tombstone");
        assert!(deleted);
        assert_eq!(v.hlc, 3);
        assert_eq!(m.get_versioned(b"p/z").unwrap(), None);
        let (v, deleted) = m.get_versioned(b"p/a").unwrap().unwrap();
        assert!(!deleted && v.hlc == 1 && &v.value[..] == b"v");
        // Tombstones count toward the page size and come back flagged.
        let p1 = m.scan_versioned(b"p/", None, 2).unwrap();
        let flags: Vec<(&[u8], bool)> = p1.entries.iter().map(|(k, _, d)| (&k[..], *d)).collect();
        assert_eq!(flags, vec![(&b"p/a"[..], false), (&b"p/b"[..], true)]);
        let p2 = m
            .scan_versioned(b"p/", p1.next_start_after.as_deref(), 2)
            .unwrap();
        assert_eq!(p2.entries.len(), 1);
        assert_eq!(p2.next_start_after, None);
        // The plain scan still skips them.
        let live = m.scan(b"p/", None, 10).unwrap();
        assert_eq!(live.entries.len(), 2);
    }
}
