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

use std::cell::{Cell, RefCell};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use heed::types::Bytes as RawBytes;
use heed::{Database, Env, RoTxn, RwTxn};

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

/// Group commits applied into one open transaction before it is committed (`MetaStore`).
pub const OPEN_TXN_BATCHES_MAX: u32 = 16;
/// Mutations one open transaction holds at most before it is committed.
pub const OPEN_TXN_MUTATIONS_MAX: usize = 4096;

pub struct MetaStore {
    /// The write transaction group commits are applied into, committed every
    /// `OPEN_TXN_BATCHES_MAX` batches, when the log goes idle and before a checkpoint syncs
    /// LMDB (`commit_open`); reads go through it while it is open ("Open transaction" in
    /// engine/DESIGN.md). Declared before `env`, so it is dropped (aborted) first.
    open: RefCell<Option<RwTxn<'static>>>,
    /// The mutations `open` holds, in the order applied: LMDB aborts a transaction whole when
    /// an operation in it fails, and it is made again from these (`reopen`).
    pending: RefCell<Vec<MetaMutation>>,
    /// Batches applied into `open`.
    open_batches: Cell<u32>,
    /// The open transaction could not be made again (`reopen` failed): what it held is not
    /// here, so reads fail rather than answer without it (the core is poisoned; a restart
    /// replays the log).
    lost: Cell<bool>,
    /// Boxed: `open` borrows it at a fixed address (`io::open_write_txn`).
    env: Box<Env>,
    trees: Trees,
    /// Where the format's keys and the checkpoint mark live.
    format: Tree,
    /// Every value must carry its crc (the store was created with checksums).
    all_checked: bool,
}

/// One LMDB database of keys.
type Tree = Database<RawBytes, RawBytes>;

/// Where the keys live.
enum Trees {
    /// Every key in one database, `meta`: stores created before the split.
    One(Tree),
    /// One database per uppercase ASCII letter a key starts with (the object layer's record
    /// kinds each have their own: bucket records, heads, listing entries, versions, uploads),
    /// one for keys starting below `A` and one for those above `Z` (`tree_of`), named `m00` to
    /// `m27`. A bucket filled in key order then appends each kind at the end of its own tree, and
    /// LMDB fills a page whole before it starts the next one. In one tree the heads'
    /// insertion point sat in front of the keys of the next kind: every page split there
    /// halved a page that then never grew again (engine/DESIGN.md, "Trees").
    ///
    /// Each tree comes with whether it may hold a key: a scan of the whole store skips the
    /// others (set at open for a tree that holds one, and before every put into it).
    Split(Vec<(Tree, AtomicBool)>),
}

impl Trees {
    fn of(&self, key: &[u8]) -> Tree {
        match self {
            Trees::One(db) => *db,
            Trees::Split(dbs) => dbs[tree_of(key)].0,
        }
    }

    /// Notes that `key`'s tree holds a key from now on.
    fn holds(&self, key: &[u8]) {
        if let Trees::Split(dbs) = self {
            let (_, used) = &dbs[tree_of(key)];
            used.store(true, Ordering::Relaxed);
        }
    }

    /// The trees a scan from `lower` under `prefix` reads, in key order, each with the bound
    /// it starts from: the prefix's one tree, or with an empty prefix every tree from the
    /// bound's on (the later ones from their first key).
    fn scanned<'a>(&self, prefix: &[u8], lower: Bound<&'a [u8]>) -> Vec<(Tree, Bound<&'a [u8]>)> {
        let dbs = match self {
            Trees::One(db) => return vec![(*db, lower)],
            Trees::Split(dbs) => dbs,
        };
        let first = match lower {
            Bound::Included(k) | Bound::Excluded(k) => tree_of(k),
            Bound::Unbounded => 0,
        };
        if !prefix.is_empty() {
            return vec![(dbs[tree_of(prefix)].0, lower)];
        }
        dbs.iter()
            .enumerate()
            .skip(first)
            .filter(|(_, (_, used))| used.load(Ordering::Relaxed))
            .map(|(i, (db, _))| (*db, if i == first { lower } else { Bound::Unbounded }))
            .collect()
    }
}

/// The `format` database's key saying every value of the store carries its crc.
const FORMAT_CHECKED_KEY: &[u8] = b"checked";
/// The `format` database's key saying the keys live in the split trees (`Trees::Split`).
const FORMAT_SPLIT_KEY: &[u8] = b"split";
/// The `format` database's key holding the checkpoint mark (`commit_marked`): the log
/// sequence number of the last checkpoint whose commit this state holds, and its crc.
const FORMAT_MARK_KEY: &[u8] = b"checkpoint-lsn";
/// A split store's plain key of the main database where a store from before the split has
/// its `meta` database: a build from before the split fails to open it as one.
const SPLIT_GUARD_KEY: &[u8] = b"meta";
const SPLIT_GUARD_VALUE: &[u8] = b"split: the keys are in the trees m00 to m27";
/// The split stores' trees: below `A`, `A` to `Z`, above `Z`.
const SPLIT_TREES: usize = 28;

/// `m` in bytes of its own: a mutation's key and value may be slices of a larger buffer (a
/// request's frame, with a fragment's data), which `MetaStore::pending` must not keep alive.
fn owned(m: &MetaMutation) -> MetaMutation {
    let copy = |b: &bytes::Bytes| bytes::Bytes::copy_from_slice(b);
    match m {
        MetaMutation::Put { key, value, hlc } => MetaMutation::Put {
            key: copy(key),
            value: copy(value),
            hlc: *hlc,
        },
        MetaMutation::Delete { key, hlc } => MetaMutation::Delete {
            key: copy(key),
            hlc: *hlc,
        },
    }
}

/// A split store's tree for `key`, by its first byte (`Trees::Split`). Key order is tree order
/// then order within the tree. No stored key is empty (LMDB refuses one): an empty key is
/// asked of the first tree and refused there as it was in one tree.
fn tree_of(key: &[u8]) -> usize {
    match key.first().copied().unwrap_or(0) {
        b @ b'A'..=b'Z' => 1 + usize::from(b - b'A'),
        ..b'A' => 0,
        _ => SPLIT_TREES - 1,
    }
}

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
        let format = env
            .create_database::<RawBytes, RawBytes>(&mut wtxn, Some("format"))
            .map_err(EngineError::meta("creating the format database"))?;
        let flag = |key: &[u8]| -> Result<bool> {
            Ok(format
                .get(&wtxn, key)
                .map_err(EngineError::meta("reading the format"))?
                .is_some_and(|v| v == [1]))
        };
        let (marked, split) = (flag(FORMAT_CHECKED_KEY)?, flag(FORMAT_SPLIT_KEY)?);
        // A store from before the split has its `meta` database (a split one has the guard
        // there instead, and is never asked for it).
        let one = if split {
            None
        } else {
            env.open_database::<RawBytes, RawBytes>(&wtxn, Some("meta"))
                .map_err(EngineError::meta("opening the database"))?
        };
        let new = !split && one.is_none();
        let trees = if let Some(db) = one {
            Trees::One(db)
        } else {
            if new {
                // A new store: split from the start, and guarded against a build from
                // before the split, which would find an empty `meta` database and serve
                // every key as missing. `meta` is a plain key of the main database here:
                // such a build fails to open the store (LMDB: MDB_INCOMPATIBLE).
                format
                    .put(&mut wtxn, FORMAT_SPLIT_KEY, &[1])
                    .map_err(EngineError::meta("writing the format"))?;
                // Marked from its first state: a roll back to it is seen too (`check_mark`).
                format
                    .put(&mut wtxn, FORMAT_MARK_KEY, &encode_mark(0))
                    .map_err(EngineError::meta("writing the checkpoint mark"))?;
                env.create_database::<RawBytes, RawBytes>(&mut wtxn, None)
                    .map_err(EngineError::meta("opening the main database"))?
                    .put(&mut wtxn, SPLIT_GUARD_KEY, SPLIT_GUARD_VALUE)
                    .map_err(EngineError::meta("writing the guard"))?;
            }
            let mut dbs = Vec::with_capacity(SPLIT_TREES);
            for first in 0..SPLIT_TREES {
                let tree = env
                    .create_database::<RawBytes, RawBytes>(&mut wtxn, Some(&format!("m{first:02}")))
                    .map_err(EngineError::meta("creating a tree"))?;
                let used = !tree
                    .is_empty(&wtxn)
                    .map_err(EngineError::meta("is_empty"))?;
                dbs.push((tree, AtomicBool::new(used)));
            }
            Trees::Split(dbs)
        };
        // A new store holds only checked values from the start; an older one without the
        // marker keeps reading its unchecked values.
        let all_checked = marked
            || new
            || match &trees {
                Trees::One(db) => db.is_empty(&wtxn).map_err(EngineError::meta("is_empty"))?,
                Trees::Split(_) => false,
            };
        if all_checked && !marked {
            format
                .put(&mut wtxn, FORMAT_CHECKED_KEY, &[1])
                .map_err(EngineError::meta("writing the format"))?;
        }
        wtxn.commit().map_err(EngineError::meta("commit"))?;
        Ok(MetaStore {
            open: RefCell::new(None),
            pending: RefCell::new(Vec::new()),
            open_batches: Cell::new(0),
            lost: Cell::new(false),
            env: Box::new(env),
            trees,
            format,
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
    /// damaged one reads as none: the mutation replaces it). The mutations go into the open
    /// transaction (begun if none is), which is committed once it holds
    /// `OPEN_TXN_BATCHES_MAX` batches or `OPEN_TXN_MUTATIONS_MAX` mutations. An error leaves
    /// none of them applied and everything applied before still there (the transaction is
    /// made again without them); a failed commit keeps them all, open.
    pub fn apply_reporting(&self, mutations: &[(&MetaMutation, bool)]) -> Result<Vec<Applied>> {
        self.not_lost("applying")?;
        let applied = {
            let mut open = self.open.borrow_mut();
            if open.is_none() {
                *open = Some(crate::io::open_write_txn(&self.env)?);
            }
            self.apply_in(open.as_mut().expect("begun above"), mutations)
        };
        let won = match applied {
            Ok(won) => won,
            Err(e) => {
                // LMDB fails a transaction whole once an operation in it failed.
                self.reopen()?;
                return Err(e);
            }
        };
        let held = {
            let mut pending = self.pending.borrow_mut();
            pending.extend(mutations.iter().map(|(m, _)| owned(m)));
            pending.len()
        };
        self.open_batches.set(self.open_batches.get() + 1);
        if self.open_batches.get() >= OPEN_TXN_BATCHES_MAX || held >= OPEN_TXN_MUTATIONS_MAX {
            match self.commit_open() {
                // Still open, whole: committed next time (a checkpoint says if it cannot be).
                Ok(()) | Err(EngineError::NoSpace) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(won)
    }

    /// Commits the open transaction, if any. When the commit fails (LMDB could not write its
    /// pages: `NoSpace` when the device is full) the transaction is made again from what it
    /// held and stays open, so that reads still see every mutation applied.
    pub fn commit_open(&self) -> Result<()> {
        // Never "nothing to commit" once lost: a checkpoint would then record as applied what
        // the lost transaction held.
        self.not_lost("committing")?;
        let Some(txn) = self.open.borrow_mut().take() else {
            return Ok(());
        };
        self.open_batches.set(0);
        match txn.commit() {
            Ok(()) => {
                self.pending.borrow_mut().clear();
                Ok(())
            }
            Err(e) => {
                let e = EngineError::meta("commit")(e);
                tracing::warn!(error = %e, "metadata commit failed: kept open");
                self.reopen()?;
                Err(e)
            }
        }
    }

    /// `commit_open` with the checkpoint mark `lsn` (`Store::checkpoint`: the log sequence
    /// number its file records) in the same transaction. The state committed then says which
    /// checkpoint it holds, so a store that went back to an older state is seen at the next
    /// start (`check_mark`), whatever took it there.
    pub fn commit_marked(&self, lsn: u64) -> Result<()> {
        self.not_lost("committing")?;
        let put = {
            let mut open = self.open.borrow_mut();
            if open.is_none() {
                *open = Some(crate::io::open_write_txn(&self.env)?);
            }
            let txn = open.as_mut().expect("begun above");
            self.format.put(txn, FORMAT_MARK_KEY, &encode_mark(lsn))
        };
        if let Err(e) = put {
            self.reopen()?;
            return Err(EngineError::meta("writing the checkpoint mark")(e));
        }
        self.commit_open()
    }

    /// Fails (`Damaged`) when the store holds a state older than the checkpoint of log
    /// sequence number `lsn` (the checkpoint file's): its mark is lower, or damaged. The log
    /// is replayed from that checkpoint on, so what the store lost would never come back: its
    /// metadata would be served rolled back. One flipped bit of the older meta page's
    /// transaction id opens the tree before the last commit, every page of it sound (found by
    /// `lmdb_check`'s random damage test; the crate's doc says why), and an older copy of
    /// `data.mdb` put back does the same. A new store is marked from its first state (0); one
    /// from before marks has none and is taken as it is until its first checkpoint.
    pub fn check_mark(&self, lsn: u64) -> Result<()> {
        let mark = self.reading(|txn| {
            self.format
                .get(txn, FORMAT_MARK_KEY)
                .map_err(EngineError::meta("reading the checkpoint mark"))
                .map(|raw| raw.map(decode_mark))
        })?;
        let damaged = |detail: String| EngineError::Damaged {
            what: "metadata store (LMDB data.mdb)",
            detail,
        };
        match mark {
            // A store from before marks, until its first checkpoint marks it.
            None => Ok(()),
            Some(Some(held)) if held >= lsn => Ok(()),
            Some(Some(held)) => Err(damaged(format!(
                "rolled back: it holds the state of the checkpoint at log sequence {held}, \
                 older than the checkpoint file's {lsn} (a meta page damaged, or an older \
                 copy of the file)"
            ))),
            Some(None) => Err(damaged("its checkpoint mark fails its checksum".into())),
        }
    }

    /// Makes the open transaction again from the mutations it held (`pending`), after LMDB
    /// aborted it. They were applied before in the same order, over the same committed state.
    fn reopen(&self) -> Result<()> {
        self.open.borrow_mut().take();
        let made = crate::io::open_write_txn(&self.env).and_then(|mut txn| {
            let pending = self.pending.borrow();
            let all: Vec<(&MetaMutation, bool)> = pending.iter().map(|m| (m, false)).collect();
            self.apply_in(&mut txn, &all).map(|_| txn)
        });
        match made {
            Ok(txn) => {
                *self.open.borrow_mut() = Some(txn);
                Ok(())
            }
            Err(e) => {
                self.lost.set(true);
                // Never `NoSpace`, which a caller takes for a refused batch: the core must
                // stop (poisoned) and replay on restart.
                Err(EngineError::Meta {
                    context: "making the open transaction again",
                    message: e.to_string(),
                })
            }
        }
    }

    /// Fails once the open transaction was lost (`lost`): reads would miss what it held, and
    /// writes and commits would go on without it.
    fn not_lost(&self, context: &'static str) -> Result<()> {
        if self.lost.get() {
            return Err(EngineError::Meta {
                context,
                message: "the open transaction was lost: restart the core to replay the log".into(),
            });
        }
        Ok(())
    }

    /// Applies `mutations` in `txn`, in key order (a key's own mutations keep theirs).
    fn apply_in(
        &self,
        txn: &mut RwTxn<'static>,
        mutations: &[(&MetaMutation, bool)],
    ) -> Result<Vec<Applied>> {
        // Applied in key order (a key's own mutations keep theirs): a group commit's keys,
        // nearly ascending when a bucket fills in order, then append at a page's end, where
        // LMDB fills the page before it opens the next, rather than in front of a key the
        // commit holds too, where it halves the page.
        let mut order: Vec<usize> = (0..mutations.len()).collect();
        order.sort_by(|&a, &b| mutations[a].0.key().cmp(mutations[b].0.key()));
        let mut won: Vec<Option<Applied>> = vec![None; mutations.len()];
        for i in order {
            let (m, report) = mutations[i];
            let (hlc, tomb, value): (u64, bool, &[u8]) = match m {
                MetaMutation::Put { value, hlc, .. } => (*hlc, false, value),
                MetaMutation::Delete { hlc, .. } => (*hlc, true, &[]),
            };
            let db = self.trees.of(m.key());
            let old = db.get(txn, m.key()).map_err(EngineError::meta("get"))?;
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
                self.trees.holds(m.key());
                db.put(txn, m.key(), &encode_value(m.key(), hlc, tomb, value))
                    .map_err(EngineError::meta("put"))?;
            }
            won[i] = Some(Applied {
                won: apply,
                previous,
            });
        }
        Ok(won
            .into_iter()
            .map(|a| a.expect("every mutation applied"))
            .collect())
    }

    /// `f` over what reads must see: the open transaction, else a read transaction.
    fn reading<R>(&self, f: impl FnOnce(&RoTxn) -> Result<R>) -> Result<R> {
        self.not_lost("reading")?;
        if let Some(txn) = self.open.borrow().as_ref() {
            return f(txn);
        }
        let rtxn = self
            .env
            .read_txn()
            .map_err(EngineError::meta("begin read"))?;
        f(&rtxn)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<MetaValue>> {
        Ok(self
            .get_versioned(key)?
            .and_then(|(v, deleted)| (!deleted).then_some(v)))
    }

    /// The HLC of a key's live value (`None` when absent or deleted).
    pub fn current_hlc(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.get(key)?.map(|v| v.hlc))
    }

    /// The key's last write, live or a tombstone (`true`).
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<(MetaValue, bool)>> {
        self.reading(|txn| {
            match self
                .trees
                .of(key)
                .get(txn, key)
                .map_err(EngineError::meta("get"))?
            {
                Some(raw) => decode_any(key, raw, self.all_checked).map(Some),
                None => Ok(None),
            }
        })
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
        self.reading(|txn| self.scan_in(txn, prefix, start_after, limit, tombstones))
    }

    fn scan_in(
        &self,
        txn: &RoTxn,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
        tombstones: bool,
    ) -> Result<VersionedPage> {
        // LMDB refuses an empty key as a bound (MDB_BAD_VALSIZE), and no stored key is empty:
        // an empty bound is the start of the store.
        let lower = match start_after {
            Some(s) if s >= prefix && !s.is_empty() => Bound::Excluded(s),
            _ if prefix.is_empty() => Bound::Unbounded,
            _ => Bound::Included(prefix),
        };
        let mut entries: Vec<(bytes::Bytes, MetaValue, bool)> = Vec::new();
        let mut next_start_after = None;
        'trees: for (db, lower) in self.trees.scanned(prefix, lower) {
            let range = (lower, Bound::Unbounded);
            let iter = db.range(txn, &range).map_err(EngineError::meta("range"))?;
            for item in iter {
                let (k, raw) = item.map_err(EngineError::meta("iterate"))?;
                if !k.starts_with(prefix) {
                    break 'trees;
                }
                if entries.len() as u32 >= limit {
                    // There is at least one more key under the prefix (live or not): resume
                    // after the last one returned.
                    next_start_after = entries.last().map(|(k, _, _)| k.clone());
                    break 'trees;
                }
                let (v, deleted) = decode_any(k, raw, self.all_checked)?;
                if tombstones || !deleted {
                    entries.push((bytes::Bytes::copy_from_slice(k), v, deleted));
                }
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
        self.commit_open()?;
        self.env.force_sync().map_err(EngineError::meta("sync"))
    }

    /// The environment, for a sync off the executor (`sync_env`): commit the open transaction
    /// first (`commit_open`), or what it holds is not in the file.
    pub fn env(&self) -> Env {
        Env::clone(&self.env)
    }
}

/// A checkpoint mark's value: the log sequence number (u64 LE) and its CRC-32.
fn encode_mark(lsn: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&lsn.to_le_bytes());
    let crc = crc32fast::hash(&out[..8]);
    out[8..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The log sequence number of a mark's value; `None` when it fails its crc or its length.
fn decode_mark(raw: &[u8]) -> Option<u64> {
    let (lsn, crc) = (raw.get(..8)?, raw.get(8..12)?);
    (raw.len() == 12 && crc32fast::hash(lsn).to_le_bytes() == crc)
        .then(|| u64::from_le_bytes(lsn.try_into().expect("8 bytes")))
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

    fn put_of(key: Vec<u8>, value_bytes: usize) -> MetaMutation {
        MetaMutation::Put {
            key: Bytes::from(key),
            value: Bytes::from(vec![7u8; value_bytes]),
            hlc: 1,
        }
    }

    /// A bucket filled in key order writes a head and a listing entry per object (two kinds of
    /// key, each ascending), in group commits whose mutations come in any order (here each
    /// commit's backwards): in trees of their own and applied in key order, LMDB packs both
    /// (1.17 bytes of file per byte of entries). In one tree the heads' insertion point has the
    /// listing keys' kind behind it, and its splits leave pages half full (1.64); applied as
    /// they come, the mutations of a commit land in front of one another (1.86).
    #[test]
    fn keys_of_two_kinds_filled_in_order_pack_their_pages() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        let before = m.file_bytes();
        let (objects, value_bytes) = (4000u32, 200);
        let mut entry_bytes = 0u64;
        for batch in 0..objects / 50 {
            let muts: Vec<MetaMutation> = (batch * 50..(batch + 1) * 50)
                .rev()
                .flat_map(|i| {
                    let name = format!("bucket/0123456789abcdef\0key-{i:08}");
                    [
                        put_of([b"O", name.as_bytes()].concat(), value_bytes),
                        put_of([b"L", name.as_bytes()].concat(), value_bytes / 4),
                    ]
                })
                .collect();
            for m in &muts {
                let MetaMutation::Put { key, value, .. } = m else {
                    unreachable!()
                };
                // LMDB's node header, the slot pointer, and this store's value header + crc.
                entry_bytes +=
                    (8 + 2 + key.len() + VALUE_HEADER_BYTES + CRC_BYTES + value.len()) as u64;
            }
            m.apply(&muts.iter().collect::<Vec<_>>()).unwrap();
        }
        let used = m.file_bytes() - before;
        let ratio = used as f64 / entry_bytes as f64;
        assert!(
            ratio < 1.25,
            "{used} bytes of file for {entry_bytes} of entries: {ratio:.2}"
        );
        let heads = m.scan(b"O", None, 10_000).unwrap();
        assert_eq!(heads.entries.len(), objects as usize);
    }

    /// A store created before the split keeps its keys in its one tree (`meta`), and goes on
    /// reading and writing there.
    #[test]
    fn a_store_from_before_the_split_keeps_its_one_tree() {
        let dir = tempfile::tempdir().unwrap();
        {
            let env = crate::io::open_lmdb(dir.path(), 1 << 26).unwrap();
            let mut w = env.write_txn().unwrap();
            let db = env
                .create_database::<RawBytes, RawBytes>(&mut w, Some("meta"))
                .unwrap();
            let format = env
                .create_database::<RawBytes, RawBytes>(&mut w, Some("format"))
                .unwrap();
            format.put(&mut w, FORMAT_CHECKED_KEY, &[1]).unwrap();
            for k in ["Ob\0a", "Lb\0a", "Bb"] {
                db.put(
                    &mut w,
                    k.as_bytes(),
                    &encode_value(k.as_bytes(), 3, false, b"v"),
                )
                .unwrap();
            }
            w.commit().unwrap();
        }
        let m = MetaStore::open(dir.path()).unwrap();
        assert!(
            matches!(m.trees, Trees::One(_)),
            "an old store stays in one tree"
        );
        assert_eq!(m.get(b"Ob\0a").unwrap().unwrap().hlc, 3);
        m.apply(&[&put_of(b"Ob\0c".to_vec(), 5)]).unwrap();
        let all = m.scan(b"", None, 10).unwrap();
        let keys: Vec<&[u8]> = all.entries.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(keys, [&b"Bb"[..], b"Lb\0a", b"Ob\0a", b"Ob\0c"]);
        // As a checkpoint does: a store dropped with its transaction open loses it (the log
        // replays it).
        m.commit_open().unwrap();
        drop(m);
        let again = MetaStore::open(dir.path()).unwrap();
        assert!(matches!(again.trees, Trees::One(_)));
        assert_eq!(again.scan(b"O", None, 10).unwrap().entries.len(), 2);
    }

    /// A build from before the split opened its store by creating (or opening) the `meta`
    /// database: on a split store that fails, where it would have found an empty database
    /// and answered every key as missing.
    #[test]
    fn a_build_from_before_the_split_cannot_open_a_split_store() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        m.apply(&[&put_of(b"Ob\0a".to_vec(), 5)]).unwrap();
        m.commit_open().unwrap();
        let env = m.env();
        drop(m);
        let mut w = env.write_txn().unwrap();
        let before_split = env.create_database::<RawBytes, RawBytes>(&mut w, Some("meta"));
        assert!(before_split.is_err(), "an old build opened a split store");
        drop(w);
        drop(env);
        let again = MetaStore::open(dir.path()).unwrap();
        assert_eq!(again.get(b"Ob\0a").unwrap().unwrap().hlc, 1);
    }

    /// A split store's scans of the whole store page across its trees in key order, and skip
    /// the trees that never held a key; a reopened store finds the ones that do.
    #[test]
    fn whole_store_scans_page_across_the_trees() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Vec<u8>> = vec![
            vec![0x00, 1],
            b"1".to_vec(),
            b"Bb".to_vec(),
            b"Lb\0a".to_vec(),
            b"Lb\0b".to_vec(),
            b"Ob\0a".to_vec(),
            b"a".to_vec(),
            vec![0xff],
            vec![0xff, 0xff],
        ];
        {
            let m = MetaStore::open(dir.path()).unwrap();
            assert!(matches!(m.trees, Trees::Split(_)), "a new store is split");
            for k in keys.iter().rev() {
                m.apply(&[&put_of(k.clone(), 3)]).unwrap();
            }
            m.commit_open().unwrap();
        }
        let m = MetaStore::open(dir.path()).unwrap();
        for limit in 1..=10 {
            let mut seen: Vec<Vec<u8>> = Vec::new();
            let mut after: Option<Bytes> = None;
            loop {
                let page = m.scan(b"", after.as_deref(), limit).unwrap();
                assert!(page.entries.len() as u32 <= limit);
                seen.extend(page.entries.iter().map(|(k, _)| k.to_vec()));
                match page.next_start_after {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            assert_eq!(seen, keys, "pages of {limit}");
        }
        let from = m.scan(b"", Some(b"Lb\0a"), 2).unwrap();
        let got: Vec<&[u8]> = from.entries.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(got, [&b"Lb\0b"[..], b"Ob\0a"]);
        let lists = m.scan(b"L", None, 10).unwrap();
        assert_eq!(lists.entries.len(), 2);
        assert!(m.scan(b"M", None, 10).unwrap().entries.is_empty());
    }

    /// Mutations applied into the open transaction are read at once; one that LMDB refuses
    /// midway (a key over its bound) leaves none of its batch applied and every batch before
    /// it still there, and they reach the file when the transaction is committed. A store
    /// dropped with its transaction open (a crash) finds in its file what was committed.
    #[test]
    fn the_open_transaction_survives_a_refused_batch() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        m.apply(&[&put_of(b"Ob\0a".to_vec(), 5)]).unwrap();
        assert!(
            m.open.borrow().is_some(),
            "applied into the open transaction"
        );
        assert_eq!(m.get(b"Ob\0a").unwrap().unwrap().value.len(), 5);
        let too_long = put_of([b'O'].repeat(4096), 1);
        let refused = m.apply(&[&put_of(b"Ob\0b".to_vec(), 6), &too_long]);
        assert!(refused.is_err(), "LMDB refuses a key over its bound");
        assert_eq!(m.get(b"Ob\0a").unwrap().unwrap().value.len(), 5);
        assert!(
            m.get(b"Ob\0b").unwrap().is_none(),
            "the refused batch is not applied"
        );
        m.apply(&[&put_of(b"Ob\0c".to_vec(), 7)]).unwrap();
        m.commit_open().unwrap();
        assert!(m.open.borrow().is_none());
        m.apply(&[&put_of(b"Ob\0d".to_vec(), 8)]).unwrap();
        drop(m);
        let again = MetaStore::open(dir.path()).unwrap();
        let keys: Vec<Bytes> = again
            .scan(b"O", None, 10)
            .unwrap()
            .entries
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [&b"Ob\0a"[..], b"Ob\0c"], "committed, and only that");
    }

    /// An open transaction that cannot be made again after LMDB aborted it (LMDB refusing a
    /// mutation it took before; reached here by handing it one it cannot take, since nothing
    /// short of a fault inside LMDB does it) is lost: the error is never `NoSpace` (which a
    /// caller takes for a refused batch), and reads, writes and commits fail from then on,
    /// so nothing is answered or checkpointed without what it held. A restart finds what was
    /// committed, and the log's replay brings the rest (the store's job).
    #[test]
    fn a_lost_open_transaction_fails_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        m.apply(&[&put_of(b"Ob\0a".to_vec(), 5)]).unwrap();
        m.commit_open().unwrap();
        m.apply(&[&put_of(b"Ob\0b".to_vec(), 6)]).unwrap();
        let too_long = put_of([b'O'].repeat(4096), 1);
        m.pending.borrow_mut().push(too_long.clone());
        let lost = m
            .apply(&[&too_long])
            .expect_err("refused, then not made again");
        assert!(
            matches!(
                lost,
                EngineError::Meta {
                    context: "making the open transaction again",
                    ..
                }
            ),
            "{lost:?}"
        );
        let is_lost = |r: Result<()>| match r {
            Err(EngineError::Meta { message, .. }) => message.contains("lost"),
            _ => false,
        };
        assert!(is_lost(m.get(b"Ob\0a").map(|_| ())), "reads fail");
        assert!(is_lost(
            m.apply(&[&put_of(b"Ob\0c".to_vec(), 7)]).map(|_| ())
        ));
        assert!(is_lost(m.commit_open()), "no commit, so no checkpoint");
        drop(m);
        let again = MetaStore::open(dir.path()).unwrap();
        assert_eq!(again.get(b"Ob\0a").unwrap().unwrap().value.len(), 5);
        assert!(again.get(b"Ob\0b").unwrap().is_none(), "never committed");
        assert!(again.get(b"Ob\0c").unwrap().is_none());
    }

    /// Every `OPEN_TXN_BATCHES_MAX` batches the open transaction is committed.
    #[test]
    fn the_open_transaction_is_committed_every_few_batches() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        for i in 0..OPEN_TXN_BATCHES_MAX {
            assert_eq!(m.open_batches.get(), i);
            m.apply(&[&put_of(format!("Ob\0{i:03}").into_bytes(), 1)])
                .unwrap();
        }
        assert!(m.open.borrow().is_none() && m.pending.borrow().is_empty());
        let rtxn = m.env.read_txn().unwrap();
        let db = m.trees.of(b"Ob\x00");
        assert_eq!(db.len(&rtxn).unwrap(), u64::from(OPEN_TXN_BATCHES_MAX));
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
