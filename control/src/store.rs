//! The durable Raft storage of one voter: its log, vote, committed and purged log ids and its
//! current snapshot in one LMDB environment (`DIR/raft/`), every value a checked record
//! ([`crate::codec`]); and the state machine, the [`ClusterMap`] in memory, rebuilt on start
//! from the snapshot and the committed log after it.
//!
//! It implements openraft's `RaftLogStorage` ([`LogStore`]) and `RaftStateMachine`
//! ([`MapStore`]) and is checked by openraft's own storage suite (tests/storage.rs). It
//! deliberately does not decide what a command does (`map`) nor talk to peers (`network`).

use std::fmt::Debug;
use std::fs::File;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U64};
use heed::{Database, Env, EnvOpenOptions};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::codec::{self, Kind};
use crate::map::ClusterMap;
use crate::{limits, NodeId, Reply, TypeConfig};

type StoreResult<T> = Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, BasicNode>;

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "purged";
const KEY_SNAPSHOT: &str = "snapshot";
/// How long opening waits for this process's previous store of the same directory to close
/// (a voter stopped and started again in one process: openraft's tasks drop it a moment after
/// shutdown). Another process holding the directory is refused after the same wait.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("LMDB: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("the write was cancelled: the runtime is shutting down")]
    Cancelled,
    #[error("the log entry stored at index {index} is entry {holds}")]
    Misplaced { index: u64, holds: u64 },
    #[error("stored {what}: {source}")]
    Record {
        what: &'static str,
        source: codec::CodecError,
    },
    /// The LMDB file's structure failed `lmdb_check`: LMDB was not let near it.
    #[error(
        "{path} is damaged ({detail}): this voter's Raft state cannot be trusted; move {dir} \
         aside and start the node as a joining voter, or replace it (`percore control voters`)",
        dir = path.parent().and_then(Path::parent).unwrap_or(path).display(),
        path = path.display()
    )]
    Damaged { path: PathBuf, detail: String },
}

/// The environment and its two tables, shared by the log and the state machine.
#[derive(Clone)]
struct Db {
    env: Env,
    /// Log index (big-endian, so LMDB's order is the log's) → `Kind::LogEntry` record.
    log: Database<U64<BigEndian>, Bytes>,
    /// `vote`, `committed`, `purged`, `snapshot` → their records.
    meta: Database<Str, Bytes>,
    /// Held for the life of the environment: no other process opens the directory.
    _lock: Arc<File>,
}

impl Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.env.path())
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Db {
    fn open(dir: &Path) -> Result<Db, StoreError> {
        let dir = dir.join("raft");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        let started = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                // This process's previous store of the directory may still be closing.
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < REOPEN_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Locked { path: dir });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
            }
        }
        // LMDB trusts its file: damage could send it (or a reader of a value it returned)
        // past the end of the file inside its map, a SIGBUS that kills the whole node. The
        // engine's stores are checked the same way (engine/DESIGN.md, "Damage").
        // Then its two meta pages must be its last two commits (`check_synced_commits`): with a
        // damaged transaction id LMDB would open an older commit, a vote or log entries this
        // voter acknowledged silently gone.
        lmdb_check::check_dir(&dir, limits::STORE_MAP_BYTES as u64)
            .and_then(|summary| {
                summary
                    .as_ref()
                    .map_or(Ok(()), lmdb_check::check_synced_commits)
            })
            .map_err(|detail| StoreError::Damaged {
                path: dir.join("data.mdb"),
                detail,
            })?;
        let mut options = EnvOpenOptions::new();
        options.map_size(limits::STORE_MAP_BYTES).max_dbs(2);
        let env = loop {
            // SAFETY: the directory is opened by this process only (the LOCK file above is
            // held for the environment's life), and heed refuses a second open in the same
            // process (EnvAlreadyOpened, waited out below); LMDB keeps its default sync on
            // commit, which the durability of the log and the vote rely on.
            #[allow(unsafe_code)]
            match unsafe { options.open(&dir) } {
                Err(heed::Error::EnvAlreadyOpened) if started.elapsed() < REOPEN_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let mut txn = env.write_txn()?;
        let log = env.create_database(&mut txn, Some("log"))?;
        let meta = env.create_database(&mut txn, Some("meta"))?;
        txn.commit()?;
        Ok(Db {
            env,
            log,
            meta,
            _lock: Arc::new(lock),
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
        kind: Kind,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.env.read_txn()?;
        match self.meta.get(&txn, key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(kind, bytes)
                .map(Some)
                .map_err(|source| StoreError::Record { what: key, source }),
        }
    }

    /// Writes one meta record and syncs it before returning.
    async fn put_meta<T: Serialize>(
        &self,
        key: &'static str,
        kind: Kind,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(kind, value)
            .map_err(|source| StoreError::Record { what: key, source })?;
        let db = self.clone();
        blocking(move || {
            let mut txn = db.env.write_txn()?;
            db.meta.put(&mut txn, key, &bytes)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

/// Runs an LMDB write (it syncs) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // The runtime shutting down before the write ran (a panic would propagate instead).
        Err(e) if e.is_cancelled() => Err(StoreError::Cancelled),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn read_err(e: &StoreError) -> StorageError<NodeId> {
    StorageIOError::read(AnyError::new(e)).into()
}

fn write_err(e: &StoreError) -> StorageError<NodeId> {
    StorageIOError::write(AnyError::new(e)).into()
}

/// Opens (creating) the storage of a voter in `dir`: its log and its state machine, the map
/// as of the stored snapshot (openraft re-applies the committed log after it).
pub fn open(dir: &Path) -> Result<(LogStore, MapStore), StoreError> {
    let db = Db::open(dir)?;
    let snapshot: Option<StoredSnapshot> = db.get_meta(KEY_SNAPSHOT, Kind::Snapshot)?;
    let mut applied = Applied::default();
    if let Some(s) = &snapshot {
        applied.map =
            Arc::new(
                crate::map::decode_map(&s.data).map_err(|source| StoreError::Record {
                    what: "snapshot data",
                    source,
                })?,
            );
        applied.last_log_id = s.meta.last_log_id;
        applied.membership = s.meta.last_membership.clone();
    }
    let (tx, _) = watch::channel(applied.map.clone());
    let sm = MapStore {
        db: db.clone(),
        inner: Arc::new(Mutex::new(SmInner { applied, snapshot })),
        watch: Arc::new(tx),
    };
    Ok((LogStore { db }, sm))
}

// ---------------------------------------------------------------- the log

/// The Raft log and vote of one voter.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Db,
}

impl LogStore {
    fn read_entries(
        &self,
        range: (Bound<u64>, Bound<u64>),
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let txn = self.db.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.log.range(&txn, &range)? {
            let (index, bytes) = item?;
            let entry: Entry<TypeConfig> =
                codec::decode(Kind::LogEntry, bytes).map_err(|source| StoreError::Record {
                    what: "log entry",
                    source,
                })?;
            if entry.log_id.index != index {
                // Damage to LMDB's own pages, which the record's checksum does not cover.
                return Err(StoreError::Misplaced {
                    index,
                    holds: entry.log_id.index,
                });
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let txn = self.db.env.read_txn()?;
        match self.db.log.last(&txn)? {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: Entry<TypeConfig> =
                    codec::decode(Kind::LogEntry, bytes).map_err(|source| StoreError::Record {
                        what: "log entry",
                        source,
                    })?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// Deletes the entries of `range` and, if given, records the last purged id, in one
    /// synced transaction.
    async fn delete(
        &self,
        range: (Bound<u64>, Bound<u64>),
        purged: Option<LogId<NodeId>>,
    ) -> Result<(), StoreError> {
        let purged = match purged {
            Some(id) => {
                Some(
                    codec::encode(Kind::LogId, &id).map_err(|source| StoreError::Record {
                        what: KEY_PURGED,
                        source,
                    })?,
                )
            }
            None => None,
        };
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.env.write_txn()?;
            db.log.delete_range(&mut txn, &range)?;
            if let Some(bytes) = purged {
                db.meta.put(&mut txn, KEY_PURGED, &bytes)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.read_entries(bounds).map_err(|e| read_err(&e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let purged: Option<LogId<NodeId>> = self
            .db
            .get_meta(KEY_PURGED, Kind::LogId)
            .map_err(|e| read_err(&e))?;
        let last = self.last_entry_id().map_err(|e| read_err(&e))?.or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        self.db
            .put_meta(KEY_VOTE, Kind::Vote, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        self.db
            .get_meta(KEY_VOTE, Kind::Vote)
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        self.db
            .put_meta(KEY_COMMITTED, Kind::LogId, &committed)
            .await
            .map_err(|e| write_err(&e))
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        let stored: Option<Option<LogId<NodeId>>> = self
            .db
            .get_meta(KEY_COMMITTED, Kind::LogId)
            .map_err(|e| read_err(&e))?;
        Ok(stored.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        for entry in entries {
            let bytes = codec::encode(Kind::LogEntry, &entry).map_err(|source| {
                write_err(&StoreError::Record {
                    what: "log entry",
                    source,
                })
            })?;
            records.push((entry.log_id.index, bytes));
        }
        let db = self.db.clone();
        // Synced before the callback: openraft counts the entries as durable once called.
        let written = blocking(move || {
            let mut txn = db.env.write_txn()?;
            for (index, bytes) in &records {
                db.log.put(&mut txn, index, bytes)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.delete((Bound::Included(log_id.index), Bound::Unbounded), None)
            .await
            .map_err(|e| write_err(&e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.delete(
            (Bound::Unbounded, Bound::Included(log_id.index)),
            Some(log_id),
        )
        .await
        .map_err(|e| write_err(&e))
    }
}

// ---------------------------------------------------------------- the state machine

/// The snapshot as stored: openraft's metadata and the encoded map (`Kind::Map`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// What the state machine has applied.
#[derive(Debug, Clone, Default)]
struct Applied {
    last_log_id: Option<LogId<NodeId>>,
    membership: Membership,
    map: Arc<ClusterMap>,
}

#[derive(Debug)]
struct SmInner {
    applied: Applied,
    snapshot: Option<StoredSnapshot>,
}

/// The state machine of one voter: the map as of the last applied entry, published to
/// watchers after each batch.
#[derive(Debug, Clone)]
pub struct MapStore {
    db: Db,
    inner: Arc<Mutex<SmInner>>,
    watch: Arc<watch::Sender<Arc<ClusterMap>>>,
}

impl MapStore {
    /// The applied map, and every later one as it is applied.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMap>> {
        self.watch.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
        self.inner
            .lock()
            .expect("the state machine lock is not poisoned")
    }

    async fn save_snapshot(&self, stored: &StoredSnapshot) -> StoreResult<()> {
        let signature = Some(stored.meta.signature());
        self.db
            .put_meta(KEY_SNAPSHOT, Kind::Snapshot, stored)
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature, AnyError::new(&e)).into())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MapStore {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let applied = self.lock().applied.clone();
        let data = codec::encode(Kind::Map, &*applied.map).map_err(|source| {
            write_err(&StoreError::Record {
                what: "snapshot data",
                source,
            })
        })?;
        let snapshot_id = match &applied.last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_log_id,
            last_membership: applied.membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.save_snapshot(&stored).await?;
        self.lock().snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MapStore {
    type SnapshotBuilder = MapStore;

    async fn applied_state(&mut self) -> StoreResult<(Option<LogId<NodeId>>, Membership)> {
        let inner = self.lock();
        Ok((inner.applied.last_log_id, inner.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Reply>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        let map = {
            let mut inner = self.lock();
            let applied = &mut inner.applied;
            for entry in entries {
                applied.last_log_id = Some(entry.log_id);
                replies.push(match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        None
                    }
                    EntryPayload::Normal(command) => {
                        Some(Arc::make_mut(&mut applied.map).apply(&command))
                    }
                });
            }
            applied.map.clone()
        };
        self.watch.send_replace(map);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> MapStore {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let data = snapshot.into_inner();
        let map: ClusterMap = crate::map::decode_map(&data).map_err(|source| {
            StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::new(&StoreError::Record {
                    what: "received snapshot",
                    source,
                }),
            )
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        // Durable before the state changes: a crash after this restarts from the snapshot.
        self.save_snapshot(&stored).await?;
        let map = Arc::new(map);
        {
            let mut inner = self.lock();
            inner.applied = Applied {
                last_log_id: meta.last_log_id,
                membership: meta.last_membership.clone(),
                map: map.clone(),
            };
            inner.snapshot = Some(stored);
        }
        self.watch.send_replace(map);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        Ok(self.lock().snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
