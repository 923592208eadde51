//! Versions of objects: commits of a new current version (`commit_head`), version records,
//! the `null` version, delete markers and deletes of one version, with S3's semantics.
//!
//! A key's current version stays where it always was, in its head `O` and listing entry `L`:
//! a GET of the latest and a listing are one lookup and one scan, as in an unversioned
//! bucket. While a bucket keeps versions (Enabled or Suspended) every version, delete markers
//! included, also has a `V` record on the key's object cores (same route as its head), ordered
//! newest first. A head written before the bucket kept versions has no `V` record: it is the
//! key's only version, `null`, and is recorded as a version by the first write that replaces
//! it. A key whose latest version is a delete marker has no head and no listing entry.
//!
//! Fragments are never shared between versions (every write stores its own, copies included),
//! so a version's chunks are retired exactly when that version is removed: replaced as the
//! `null` version, or deleted by id. A version under Object Lock is kept by the removal's
//! [`Guard`].

use bytes::Bytes;
use cluster::moves::Placement;

use crate::error::{CommitError, Error, Result};
use crate::limits::META_KEY_BYTES_MAX;
use crate::records::{
    head_key, key_versions_prefix, listing_key, version_key, DeleteMarker, LockMode, ObjectHead,
    ObjectLock, VersionRecord, Versioning,
};
use crate::store::{now_ms, Checked, HeadCondition, HeldStripe, Store};

/// Version records read per scan call.
pub(crate) const VERSIONS_SCAN_BATCH: u32 = 1000;

/// How a lock protects a version at `now_ms`: `None` not at all, `Some(true)` by a
/// GOVERNANCE retention only (a bypass lifts it), `Some(false)` by a legal hold or a
/// COMPLIANCE retention.
pub fn lock_protection(lock: &ObjectLock, now_ms: u64) -> Option<bool> {
    if lock.legal_hold == Some(true) {
        return Some(false);
    }
    match lock.retention {
        Some(r) if r.until_ms > now_ms => Some(r.mode == LockMode::Governance),
        _ => None,
    }
}

/// Whether deleting a version with `lock` at `now_ms` is refused (`bypass`: the request
/// asked to bypass governance retention and may).
pub fn delete_refused(lock: &ObjectLock, now_ms: u64, bypass: bool) -> bool {
    match lock_protection(lock, now_ms) {
        None => false,
        Some(governance) => !(governance && bypass),
    }
}

/// How a removal of one version treats its Object Lock state (`object_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// As S3: a legal hold or an active retention keeps the version (a governance one not
    /// when `bypass`: the request asked to bypass it and may).
    Enforce { bypass: bool },
    /// The reclaim of a deleted bucket incarnation, which no name reaches any more.
    Reclaim,
}

impl Guard {
    fn check(self, lock: &ObjectLock) -> Result<()> {
        match self {
            Guard::Reclaim => Ok(()),
            Guard::Enforce { bypass } => {
                if delete_refused(lock, now_ms(), bypass) {
                    Err(Error::Locked)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A version id as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Null,
    Id([u8; 12]),
}

impl VersionRef {
    /// How a request names a version that is (`null_version`) the null one or has `id`.
    pub fn of(null_version: bool, id: &[u8; 12]) -> VersionRef {
        if null_version {
            VersionRef::Null
        } else {
            VersionRef::Id(*id)
        }
    }

    pub fn shown(self) -> String {
        match self {
            VersionRef::Null => "null".to_string(),
            VersionRef::Id(id) => hex::encode(id),
        }
    }
}

/// The id S3 shows for a version.
pub fn shown_version_id(null_version: bool, id: &[u8; 12]) -> String {
    if null_version {
        "null".to_string()
    } else {
        hex::encode(id)
    }
}

pub fn head_version_id(head: &ObjectHead) -> String {
    shown_version_id(head.null_version, &head.version_id)
}

/// The outcome of a DeleteObject, for its response headers.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

/// Whether `current`, about to stop being the current version, needs a `V` record made now:
/// it has none, and is not the null version that a write in a suspended bucket replaces.
fn needs_record(current: &ObjectHead, versioning: Versioning) -> bool {
    let replaced = versioning == Versioning::Suspended && current.null_version;
    !current.in_versions && !replaced
}

/// Whether a key's version records fit a metadata key (see `limits::META_KEY_BYTES_MAX`).
fn check_versioned_key(bucket: &str, key: &str) -> Result<()> {
    if version_key(bucket, key, &[0; 12]).len() as u64 > META_KEY_BYTES_MAX {
        return Err(Error::VersionKeyTooLong);
    }
    Ok(())
}

fn decode_version(value: Bytes) -> Result<VersionRecord> {
    VersionRecord::decode(value).map_err(|e| Error::Damaged(e.to_string()))
}

/// A version id: the HLC (increasing on one gateway) and 32 bits of a hash of `salt` (the key,
/// or an upload id), the HLC and `gateway` (`Backend::id_salt`). Two gateways can take equal
/// HLCs (the same millisecond, the same counter), and their ids must still differ: the
/// version's chunks are stored under it, and two PUTs of one key through two gateways at
/// one instant once stored their chunks under one id, one overwriting the other's (found by
/// the object simulation).
fn new_version_id(hlc: u64, salt: &[u8], gateway: u64) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&hlc.to_le_bytes());
    let h =
        cluster::backend::stable_hash(&[salt, &hlc.to_le_bytes(), &gateway.to_le_bytes()]) as u32;
    v[8..].copy_from_slice(&h.to_le_bytes());
    v
}

/// What a versioned commit read of the key before it took its HLC (`commit_head`).
enum Before {
    /// The current version (an unconditional write).
    Read(Option<ObjectHead>),
    /// The condition's check (`Store::check_head`).
    Checked(Checked),
}

impl Store {
    /// A new version id at `hlc` (`new_version_id`), this gateway's.
    pub fn version_id(&self, hlc: u64, salt: &[u8]) -> [u8; 12] {
        new_version_id(hlc, salt, self.backend.id_salt())
    }

    /// Makes `head` the object's current version. The HLC and the version's id are taken
    /// here, once the data is durable, not when the request started: of two writes to a key
    /// the one that commits last wins, as in S3 (issue #12: a PUT that started first but
    /// ended last used to lose). `head.version_id` is set to the new id (its parts keep the
    /// ids their chunks were stored under). Unversioned buckets: head, then listing entry.
    /// Last writer wins by HLC: only the write whose head is current afterwards retires the
    /// version it replaced; one that lost to a concurrent write retires its own chunks
    /// instead. Buckets that keep versions: `commit_version`. When a `condition` fails
    /// nothing is written or retired: the caller owns its chunks (a single PUT removes them,
    /// a multipart upload keeps its parts for a retry). Last, the bucket must still be the
    /// same live incarnation (`settle_live`).
    pub async fn commit_head(
        &self,
        bucket: &str,
        key: &str,
        head: &mut ObjectHead,
        condition: Option<&HeadCondition>,
        versioning: Versioning,
    ) -> Result<(), CommitError> {
        self.commit_head_held(bucket, key, head, condition, versioning, None)
            .await
    }

    /// `commit_head` of a body that `store_body_holding` held back (`body`, placed on its data
    /// cores). An unconditional unversioned write whose head, listing entry and body share
    /// their cores (`Store::pairs_with`) stores all three in one write on each core
    /// (`Backend::put_paired`): one durable round for the whole PUT. Otherwise the body is
    /// stored first, alone, and the commit goes on as `commit_head`'s. A body that could not
    /// be stored is an error that leaves nothing to keep: its chunks are retired.
    pub async fn commit_head_held(
        &self,
        bucket: &str,
        key: &str,
        head: &mut ObjectHead,
        condition: Option<&HeadCondition>,
        versioning: Versioning,
        body: Option<(&Placement, HeldStripe)>,
    ) -> Result<(), CommitError> {
        assert_eq!(head.in_versions, versioning.keeps_versions());
        assert_eq!(head.null_version, versioning.writes_null());
        let body = match body {
            Some(body) if condition.is_none() && !versioning.keeps_versions() => Some(body),
            Some((data_cores, body)) => {
                self.store_held(data_cores, body).await?;
                None
            }
            None => None,
        };
        if versioning.keeps_versions() {
            // The current version is read before the HLC is taken (the receive rule moves this
            // gateway's clock past it), so the new version's id, which orders the versions, is
            // newer than it even when this gateway's clock is behind the one that wrote it.
            let before = match condition {
                None => Before::Read(self.head(bucket, key).await?),
                Some(cond) => Before::Checked(self.check_head(bucket, key, cond).await?),
            };
            let hlc = self.backend.hlc();
            head.version_id = self.version_id(hlc, key.as_bytes());
            self.commit_version(bucket, key, head, hlc, before, versioning)
                .await?;
            self.settle_live(bucket).await
        } else {
            self.commit_unversioned(bucket, key, head, condition, body)
                .await
        }
    }

    /// An unversioned commit. Unconditional, in two metadata round trips on a healthy
    /// cluster: the new head is written and answers whether it won and what it replaced
    /// (`Backend::meta_swap`); then at once the listing entry and a re-read of the bucket
    /// record (is the incarnation still live?), which are independent (the listing entry goes
    /// to the bucket's listing replicas). Where the head's cores hold the listing too (any key
    /// on a node with as many cores as copies), the entry goes in the head's own record
    /// (`Store::listing_with_head`) and the second round trip is the re-read alone. The head
    /// is swapped in by `Store::swap_in`: commit order, not clocks, decides. A conditional
    /// write: the check (`Store::check_head`, a read of the head it replaces), then at an HLC
    /// taken after it the compare-and-swap on the authority, the head on every replica (with
    /// the listing entry where they hold it: `Store::put_head_listed`), then the listing entry
    /// (unless written), the bucket and a re-read of the head (did this write win?) at once.
    async fn commit_unversioned(
        &self,
        bucket: &str,
        key: &str,
        head: &mut ObjectHead,
        condition: Option<&HeadCondition>,
        body: Option<(&Placement, HeldStripe)>,
    ) -> Result<(), CommitError> {
        // From the head's write on, it may be on some replicas whatever the outcome: its chunks
        // stay (a failed write leaves them to the orphan sweep, never a head without chunks).
        let written = |error: Error| CommitError {
            error,
            keep_chunks: true,
        };
        let (replaced, won, hlc, listed) = match condition {
            None => {
                let cores = self.object_cores(bucket, key);
                let listing = self.listing_with_head(&cores, bucket, key, head);
                // The held body goes in the head's write where it can, else first, alone.
                let data = match body {
                    Some((data_cores, body))
                        if listing.is_some() && Store::pairs_with(&body, data_cores, &cores) =>
                    {
                        Some(body)
                    }
                    Some((data_cores, body)) => {
                        self.store_held(data_cores, body).await?;
                        None
                    }
                    None => None,
                };
                let (swap, hlc) = self
                    .swap_in_with(
                        &cores,
                        &head_key(bucket, key),
                        |hlc| {
                            head.version_id = self.version_id(hlc, key.as_bytes());
                            head.encode()
                        },
                        listing.as_ref().map(|l| &l.write),
                        data.as_ref(),
                    )
                    .await
                    .map_err(|e| written(e.into()))?;
                let replaced = match swap.previous.filter(|p| !p.deleted) {
                    // A damaged or unreadable head cannot be retired: its chunks are left to
                    // the orphan sweep.
                    Some(p) => ObjectHead::decode(p.value).ok(),
                    None => None,
                };
                (replaced, Some(swap.won), hlc, listing.is_some())
            }
            Some(cond) => {
                let checked = self.check_head(bucket, key, cond).await?;
                let hlc = self.backend.hlc();
                head.version_id = self.version_id(hlc, key.as_bytes());
                match self
                    .put_head_if(bucket, key, head, hlc, checked.expect)
                    .await
                {
                    Ok(()) => {}
                    // Refused by the authority: nothing was written.
                    Err(e @ (Error::PreconditionFailed | Error::NoSuchKey)) => return Err(e.into()),
                    // The authority may have taken it (an answer lost): its chunks stay.
                    Err(e) => return Err(written(e)),
                }
                // The head on every replica, with the listing entry where they hold it too.
                let listed = self
                    .put_head_listed(bucket, key, head, hlc)
                    .await
                    .map_err(written)?;
                (checked.current, None, hlc, listed)
            }
        };
        let reread = async {
            match won {
                Some(won) => Ok(won),
                None => Ok(matches!(
                    self.head(bucket, key).await?,
                    Some(c) if c.version_id == head.version_id
                )),
            }
        };
        let listing = async {
            if listed {
                Ok(())
            } else {
                self.put_listing(bucket, key, head, hlc).await
            }
        };
        let (listed, won, live) = tokio::join!(listing, reread, self.settle_live(bucket));
        if won.map_err(written)? {
            if let Some(old) = replaced.filter(|o| o.version_id != head.version_id) {
                self.retire_chunks(bucket, key, old);
            }
        } else {
            // A write that committed meanwhile replaced this version.
            self.retire_chunks(bucket, key, head.clone());
        }
        live?;
        listed.map_err(written)
    }

    /// One version of a key by its id, from its `V` record.
    pub async fn version_record(
        &self,
        bucket: &str,
        key: &str,
        id: &[u8; 12],
    ) -> Result<Option<VersionRecord>> {
        let cores = self.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &version_key(bucket, key, id))
            .await?;
        entry.map(|e| decode_version(e.value)).transpose()
    }

    /// A key's version records (`V` key, record), newest first, at most `limit`.
    pub async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
        limit: usize,
    ) -> Result<Vec<(Bytes, VersionRecord)>> {
        let cores = self.object_cores(bucket, key);
        let prefix = key_versions_prefix(bucket, key);
        let mut cursor = None;
        let mut out = Vec::new();
        while out.len() < limit {
            let want = (limit - out.len()).min(VERSIONS_SCAN_BATCH as usize) as u32;
            let (entries, next) = self
                .backend
                .meta_scan(&cores, &prefix, cursor, want)
                .await?;
            for (k, e) in entries {
                out.push((k, decode_version(e.value)?));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    /// The `V` records of a key's null version (one, barring a race of two writers).
    pub async fn null_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<(Bytes, VersionRecord)>> {
        let all = self.key_versions(bucket, key, usize::MAX).await?;
        Ok(all.into_iter().filter(|(_, r)| r.null_version()).collect())
    }

    /// Version `v` of a key. The null version may be the head itself, without a `V` record
    /// (written before the bucket kept versions).
    pub async fn resolve_version(
        &self,
        bucket: &str,
        key: &str,
        v: VersionRef,
    ) -> Result<Option<VersionRecord>> {
        check_versioned_key(bucket, key)?;
        match v {
            VersionRef::Id(id) => self.version_record(bucket, key, &id).await,
            VersionRef::Null => {
                if let Some(h) = self.head(bucket, key).await? {
                    if h.null_version {
                        return Ok(Some(VersionRecord::Object(h)));
                    }
                }
                let found = self.null_versions(bucket, key).await?;
                Ok(found.into_iter().next().map(|(_, r)| r))
            }
        }
    }

    /// Records `head` (a current version written before the bucket kept versions) as a
    /// version, so that replacing it as the current one keeps it.
    async fn record_version(&self, bucket: &str, key: &str, head: &ObjectHead) -> Result<()> {
        let mut h = head.clone();
        h.in_versions = true;
        let cores = self.object_cores(bucket, key);
        let k = version_key(bucket, key, &h.version_id);
        let value = VersionRecord::Object(h).encode();
        let hlc = self.backend.hlc();
        self.backend
            .meta_put(&cores, &k, &value, hlc)
            .await
            .map_err(Error::from)
    }

    /// Removes a key's null version but `keep` (S3: a write while versioning is suspended
    /// replaces it, wherever it is in the key's history): `current` if it is a null version
    /// without a `V` record, and every `V` record of a null version. Retires their chunks.
    async fn remove_null_versions(
        &self,
        bucket: &str,
        key: &str,
        keep: Option<&[u8; 12]>,
        current: Option<&ObjectHead>,
    ) -> Result<()> {
        if let Some(c) = current {
            if c.null_version && !c.in_versions && Some(&c.version_id) != keep {
                self.retire_chunks(bucket, key, c.clone());
            }
        }
        let cores = self.object_cores(bucket, key);
        for (k, record) in self.null_versions(bucket, key).await? {
            if Some(record.version_id()) == keep {
                continue;
            }
            let hlc = self.backend.hlc();
            self.backend.meta_delete(&cores, &k, hlc).await?;
            if let VersionRecord::Object(h) = record {
                self.retire_chunks(bucket, key, h);
            }
        }
        Ok(())
    }

    /// Commits a new version in a bucket that keeps versions: its `V` record, then it becomes
    /// current (a conditional write by compare-and-swap against what its check read; when
    /// that fails the `V` record is removed). The version it replaces as current stays a
    /// version (recorded now if it had no record), except the null version when versioning
    /// is suspended, which the new one replaces. `before` is what `commit_head` read of the
    /// key before `hlc` was taken.
    async fn commit_version(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
        before: Before,
        versioning: Versioning,
    ) -> Result<(), CommitError> {
        assert!(head.in_versions, "a versioned write keeps a version record");
        check_versioned_key(bucket, key)?;
        // From the `V` record's write on, the version may be on some replicas whatever the
        // outcome: its chunks stay (a failed write leaves them to the orphan sweep), unless
        // the condition definitely failed and the record was removed again.
        let written = |error: Error| CommitError {
            error,
            keep_chunks: true,
        };
        let cores = self.object_cores(bucket, key);
        let vkey = version_key(bucket, key, &head.version_id);
        let record = VersionRecord::Object(head.clone()).encode();
        self.backend
            .meta_put(&cores, &vkey, &record, hlc)
            .await
            .map_err(|e| written(e.into()))?;
        let old = match before {
            Before::Read(current) => current,
            Before::Checked(checked) => {
                match self
                    .put_head_if(bucket, key, head, hlc, checked.expect)
                    .await
                {
                    Ok(()) => checked.current,
                    // The condition failed: this version never existed.
                    Err(e @ (Error::PreconditionFailed | Error::NoSuchKey)) => {
                        let undo = self.backend.hlc();
                        return match self.backend.meta_delete(&cores, &vkey, undo).await {
                            Ok(()) => Err(e.into()),
                            Err(d) => {
                                tracing::warn!(error = %d, "removing the record of a failed write failed");
                                Err(written(e))
                            }
                        };
                    }
                    // The authority may have taken the head (an answer lost): the version
                    // stays as it is.
                    Err(e) => return Err(written(e)),
                }
            }
        };
        let old = old.filter(|o| o.version_id != head.version_id);
        let suspended = versioning == Versioning::Suspended;
        if let Some(o) = &old {
            if needs_record(o, versioning) {
                self.record_version(bucket, key, o).await.map_err(written)?;
            }
        }
        if suspended {
            self.remove_null_versions(bucket, key, Some(&head.version_id), old.as_ref())
                .await
                .map_err(written)?;
        }
        self.write_current(bucket, key, head, hlc)
            .await
            .map_err(written)
    }

    /// DeleteObject without a version id in a bucket that keeps versions: a new delete marker
    /// becomes the latest version (with a real id when Enabled; as the null version, which
    /// it replaces, when Suspended).
    async fn insert_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        versioning: Versioning,
    ) -> Result<Deleted> {
        check_versioned_key(bucket, key)?;
        let current = self.head(bucket, key).await?;
        let suspended = versioning == Versioning::Suspended;
        if let Some(c) = &current {
            if needs_record(c, versioning) {
                self.record_version(bucket, key, c).await?;
            }
        }
        let hlc = self.backend.hlc();
        let marker = DeleteMarker {
            version_id: self.version_id(hlc, key.as_bytes()),
            null_version: suspended,
            modified_ms: now_ms(),
        };
        let cores = self.object_cores(bucket, key);
        let vkey = version_key(bucket, key, &marker.version_id);
        let value = VersionRecord::DeleteMarker(marker.clone()).encode();
        self.backend.meta_put(&cores, &vkey, &value, hlc).await?;
        // The marker first, then the null version it replaces goes, as a write's `V` record
        // before `remove_null_versions` in `commit_version`: in between a version listing
        // shows the newest null version of the key, so it sees the key as before or as after
        // this delete, never with neither (nor, after a crash here, without both).
        if suspended {
            self.remove_null_versions(bucket, key, Some(&marker.version_id), current.as_ref())
                .await?;
        }
        if current.is_some() {
            self.remove_current(bucket, key, hlc).await?;
        } else {
            // No current version to remove, but the head's tombstone still takes this
            // marker's HLC: the next write of the key reads it before taking its own
            // (`commit_head`), so its version is newer than this marker whatever the clocks.
            self.backend
                .meta_delete(&cores, &head_key(bucket, key), hlc)
                .await?;
        }
        Ok(Deleted {
            version_id: Some(shown_version_id(marker.null_version, &marker.version_id)),
            delete_marker: true,
        })
    }

    /// Tombstones a key's listing entry, then its head (a listed key always has its head).
    async fn remove_current(&self, bucket: &str, key: &str, hlc: u64) -> Result<()> {
        let lcores = self.listing_cores(bucket);
        self.backend
            .meta_delete(&lcores, &listing_key(bucket, key), hlc)
            .await?;
        let cores = self.object_cores(bucket, key);
        self.backend
            .meta_delete(&cores, &head_key(bucket, key), hlc)
            .await
            .map_err(Error::from)
    }

    /// DeleteObject with a version id: removes that version for good (a delete marker too);
    /// if it was the latest, the next newest becomes current. Deleting a version that does
    /// not exist succeeds, as in S3.
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        v: VersionRef,
        guard: Guard,
    ) -> Result<Deleted> {
        check_versioned_key(bucket, key)?;
        let current = self.head(bucket, key).await?;
        let unrecorded = current
            .as_ref()
            .filter(|c| v == VersionRef::Null && c.null_version && !c.in_versions);
        if let Some(c) = unrecorded {
            guard.check(&c.lock)?;
            // The key's only version, written before the bucket kept versions.
            let hlc = self.backend.hlc();
            self.remove_current(bucket, key, hlc).await?;
            self.retire_chunks(bucket, key, c.clone());
            return Ok(Deleted {
                version_id: Some(v.shown()),
                delete_marker: false,
            });
        }
        let target = match v {
            VersionRef::Id(id) => self
                .version_record(bucket, key, &id)
                .await?
                .map(|r| (version_key(bucket, key, &id), r)),
            VersionRef::Null => self.null_versions(bucket, key).await?.into_iter().next(),
        };
        let Some((vkey, record)) = target else {
            return Ok(Deleted {
                version_id: Some(v.shown()),
                delete_marker: false,
            });
        };
        if let VersionRecord::Object(h) = &record {
            guard.check(&h.lock)?;
        }
        let cores = self.object_cores(bucket, key);
        let hlc = self.backend.hlc();
        self.backend.meta_delete(&cores, &vkey, hlc).await?;
        let delete_marker = matches!(record, VersionRecord::DeleteMarker(_));
        if let VersionRecord::Object(h) = record {
            self.retire_chunks(bucket, key, h);
        }
        self.reconcile_current(bucket, key, current).await?;
        Ok(Deleted {
            version_id: Some(v.shown()),
            delete_marker,
        })
    }

    /// Makes the head and listing entry show the key's newest remaining version after a
    /// version was removed: the newest object version becomes current; a delete marker or no
    /// version leaves no current one.
    async fn reconcile_current(
        &self,
        bucket: &str,
        key: &str,
        current: Option<ObjectHead>,
    ) -> Result<()> {
        let newest = self.key_versions(bucket, key, 1).await?.into_iter().next();
        let hlc = self.backend.hlc();
        match newest {
            Some((_, VersionRecord::Object(h))) => {
                if current.is_none_or(|c| c.version_id != h.version_id) {
                    self.write_current(bucket, key, &h, hlc).await?;
                }
            }
            _ => {
                if current.is_some() {
                    self.remove_current(bucket, key, hlc).await?;
                }
            }
        }
        Ok(())
    }

    /// DeleteObject (and one key of DeleteObjects) in any bucket state, with or without a
    /// version id; a version under Object Lock stays (no governance bypass).
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionRef>,
        versioning: Versioning,
    ) -> Result<Deleted> {
        let guard = Guard::Enforce { bypass: false };
        self.delete_object_guarded(bucket, key, version, versioning, guard)
            .await
    }

    /// `delete_object_as_s3`, with the Object Lock judgement `guard`.
    pub async fn delete_object_guarded(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionRef>,
        versioning: Versioning,
        guard: Guard,
    ) -> Result<Deleted> {
        match version {
            Some(v) => self.delete_version(bucket, key, v, guard).await,
            None if versioning.keeps_versions() => {
                self.insert_delete_marker(bucket, key, versioning).await
            }
            None => {
                self.delete_key(bucket, key).await?;
                Ok(Deleted::default())
            }
        }
    }
}
