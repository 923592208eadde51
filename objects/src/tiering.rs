//! Storage classes at work in the object service: moving one object version's data to another
//! policy and tier (lifecycle transitions, restores of archived versions, intelligent
//! tiering's moves and access tracking), and what an archived version reads through.
//!
//! A move is crash-safe by construction: the new copy is written under new fragment ids,
//! read back and compared (MD5 of the bytes) before anything points at it; the head (and the
//! version record, in a bucket that keeps versions) is then swapped by compare-and-swap on the
//! PG's primary, so a concurrent write wins and the move is dropped; only after the swap are
//! the old fragments retired. A crash before the swap leaves the old copy (the new fragments
//! are orphans); after it, the new one.
//!
//! Not owned here: deciding when to move (the lifecycle pass, `lifecycle::pass`), and how S3
//! shows storage classes and restores (the S3 layer's `tiering`: `x-amz-restore`, the
//! RestoreObject request and its checks).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};

use cluster::ec::Policy;
use cluster::moves::Placement;
use placement::Tier;

use crate::checksum::Hashers;
use crate::error::{Error, Result};
use crate::limits::OBJECT_BYTES_MAX;
use crate::records::{
    head_key, version_key, ObjectHead, PartRef, Restore, StorageClass, VersionRecord,
};
use crate::store::{now_ms, Store};

/// The object versions whose data this process is moving now: reads of an infrequent object,
/// a lifecycle pass and a restore would otherwise each copy the same version.
#[derive(Default)]
pub struct Moves {
    set: Mutex<HashSet<Vec<u8>>>,
}

impl Moves {
    /// Marks `id` (`move_id`) as being moved; `None` when a move of it is already under way.
    pub fn begin(self: &Arc<Self>, id: Vec<u8>) -> Option<MoveGuard> {
        let mut set = self.set.lock().expect("move set lock");
        set.insert(id.clone()).then(|| MoveGuard {
            moves: self.clone(),
            id,
        })
    }
}

/// Held while one object version's data is being moved; the mark goes when it is dropped.
pub struct MoveGuard {
    moves: Arc<Moves>,
    id: Vec<u8>,
}

impl Drop for MoveGuard {
    fn drop(&mut self) {
        self.moves
            .set
            .lock()
            .expect("move set lock")
            .remove(&self.id);
    }
}

/// What `Moves::begin` marks: one version of one key.
fn move_id(bucket: &str, key: &str, head: &ObjectHead) -> Vec<u8> {
    let mut id = head_key(bucket, key).to_vec();
    id.extend_from_slice(&head.version_id);
    id
}

/// `head` with its data replaced by `parts` stored under `policy` on `tier` (a restored copy,
/// a moved part): what reads and retirements of that data go through.
fn with_data(head: &ObjectHead, parts: Vec<PartRef>, policy: Policy, tier: Tier) -> ObjectHead {
    let mut view = head.clone();
    if parts.len() != head.parts.len() {
        // A view of some of the parts: their checksums are not known one by one here.
        view.part_checksums.clear();
    }
    view.size = parts.iter().map(|p| p.size).sum();
    view.parts = parts;
    view.policy = policy;
    view.tiering.tier = tier;
    view
}

/// The head a GET or a copy reads: itself, or for an archived object its restored copy
/// (`None`: archived without a completed, unexpired restore, so not readable now).
pub fn readable(head: ObjectHead) -> Option<ObjectHead> {
    if !head.tiering.class.is_archive() {
        return Some(head);
    }
    match &head.tiering.restore {
        Some(r) if !r.ongoing && r.expiry_ms > now_ms() => {
            Some(with_data(&head, r.parts.clone(), r.policy, r.tier))
        }
        _ => None,
    }
}

/// What `Store::swap_version` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// Every record holding the version now has the new data: the old data may be retired.
    Done,
    /// Some did; another changed meanwhile and may still point at the old data, which must
    /// then stay (an orphan at worst, never a dangling record).
    Partial,
    /// None did (the version changed or is gone): the new data is unreferenced.
    Lost,
}

/// What a restore request of an archived version did (`Store::restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restoring {
    /// It was restored already: the copy's life now ends `days` from now.
    Extended,
    /// The version is marked ongoing and its copy is being made in the background.
    Started,
    /// A restore of it is already under way.
    InProgress,
    /// The version changed while it was being marked: nothing was done.
    Changed,
}

impl Store {
    /// Copies the bytes of `head`'s parts into new parts stored under `policy` on `tier`,
    /// reads them back and compares. Returns the new parts; on any failure removes what it
    /// wrote.
    pub async fn restage(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        (policy, tier): (Policy, Tier),
    ) -> Result<Vec<PartRef>> {
        let cores = self.cores_in(bucket, key, policy, tier);
        let mut out: Vec<PartRef> = Vec::with_capacity(head.parts.len());
        let mut first = 0;
        let result = async {
            for part in &head.parts {
                let version_id = self.version_id(self.backend.hlc(), key.as_bytes());
                let body = self.object_stream(bucket, key, head.clone(), first, part.size);
                let (size, md5) = self
                    .store_body(
                        &cores,
                        policy,
                        &version_id,
                        Some(body),
                        OBJECT_BYTES_MAX,
                        &mut Hashers::new(&[]),
                    )
                    .await?;
                out.push(PartRef { version_id, size });
                if size != part.size {
                    return Err(Error::Internal("a moved part changed size".into()));
                }
                let copy = with_data(head, vec![PartRef { version_id, size }], policy, tier);
                if self.md5_of(bucket, key, copy).await? != md5 {
                    return Err(Error::Internal("a moved part read back differently".into()));
                }
                first += part.size;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                for p in &out {
                    self.delete_part_chunks(&cores, policy, p).await;
                }
                Err(e)
            }
        }
    }

    async fn md5_of(&self, bucket: &str, key: &str, head: ObjectHead) -> Result<[u8; 16]> {
        let size = head.size;
        let mut stream = self.object_stream(bucket, key, head, 0, size);
        let mut md5 = Md5::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Internal(format!("reading back: {e}")))?;
            md5.update(&chunk);
        }
        Ok(md5.finalize().into())
    }

    /// Replaces version `old` of a key by `new` (same version id, other data or tiering) in
    /// every record that holds it: its head, if it is the current version, and its version
    /// record, if it has one. Each is a compare-and-swap on the PG's primary against the
    /// record read, then the other replicas. A record that changed meanwhile (a concurrent
    /// write, delete or swap) is left alone; the result says what happened, and only `Done`
    /// lets a caller retire the old data.
    pub async fn swap_version(
        &self,
        bucket: &str,
        key: &str,
        old: &ObjectHead,
        new: &ObjectHead,
    ) -> Result<Swap> {
        assert_eq!(old.version_id, new.version_id, "a swap keeps the version");
        let cores = self.object_cores(bucket, key);
        let (mut swapped, mut missed) = (0, 0);
        let hkey = head_key(bucket, key);
        if let Some(e) = self.backend.meta_get(&cores, &hkey).await? {
            let current = ObjectHead::decode(e.value).map_err(damaged)?;
            if current.version_id == old.version_id {
                if current == *old && self.cas(&cores, &hkey, new.encode(), e.hlc).await? {
                    swapped += 1;
                    // The listing entry shows the new class.
                    self.put_listing(bucket, key, new, self.backend.hlc())
                        .await?;
                } else {
                    missed += 1;
                }
            }
        }
        if old.in_versions {
            let vkey = version_key(bucket, key, &old.version_id);
            if let Some(e) = self.backend.meta_get(&cores, &vkey).await? {
                let matches = matches!(
                    VersionRecord::decode(e.value).map_err(damaged)?,
                    // The lock state, tags and ACL too: a move must not undo a retention,
                    // legal hold, tag set or ACL set since it read the version.
                    VersionRecord::Object(h) if h.parts == old.parts && h.tiering == old.tiering
                        && h.lock == old.lock && h.tags == old.tags && h.acl == old.acl
                );
                let mut recorded = new.clone();
                recorded.in_versions = true;
                let value = VersionRecord::Object(recorded).encode();
                if matches && self.cas(&cores, &vkey, value, e.hlc).await? {
                    swapped += 1;
                } else {
                    missed += 1;
                }
            }
        }
        Ok(match (swapped, missed) {
            (0, _) => Swap::Lost,
            (_, 0) => Swap::Done,
            _ => Swap::Partial,
        })
    }

    /// Compare-and-swap of `key` on the primary of `cores` against `expect_hlc`, then the
    /// write on the others (the same HLC everywhere).
    pub async fn cas(
        &self,
        cores: &Placement,
        key: &Bytes,
        value: Bytes,
        expect_hlc: u64,
    ) -> Result<bool> {
        let hlc = self.backend.hlc();
        let won = self
            .backend
            .meta_put_if_in(cores, key, &value, hlc, Some(expect_hlc))
            .await?;
        if won {
            self.backend.meta_put(cores, key, &value, hlc).await?;
        }
        Ok(won)
    }

    /// Moves one version's data to `class` (its policy and tier), verified, swapped, then
    /// the old fragments retired. `Ok(false)`: the version changed meanwhile, nothing moved.
    pub async fn transition(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        class: StorageClass,
        infrequent: bool,
    ) -> Result<bool> {
        let Some(_moving) = self.moves.begin(move_id(bucket, key, head)) else {
            return Ok(false);
        };
        let policy_class = match (class, infrequent) {
            (StorageClass::IntelligentTiering, true) => StorageClass::StandardIa,
            (c, _) => c,
        };
        let place = self.place(policy_class, Some(head.size))?;
        let source = readable(head.clone()).unwrap_or_else(|| head.clone());
        let parts = self.restage(bucket, key, &source, place).await?;
        let mut new = head.clone();
        new.parts.clone_from(&parts);
        new.policy = place.0;
        new.tiering.tier = place.1;
        new.tiering.class = class;
        new.tiering.infrequent = infrequent;
        new.tiering.restore = None;
        if class == StorageClass::IntelligentTiering && !infrequent {
            // Moved back because it was read: the access counts from now.
            new.tiering.last_access_ms = now_ms();
        }
        match self.swap_version(bucket, key, head, &new).await? {
            Swap::Lost => {
                let cores = self.cores_in(bucket, key, place.0, place.1);
                for p in &parts {
                    self.delete_part_chunks(&cores, place.0, p).await;
                }
                return Ok(false);
            }
            Swap::Partial => {
                tracing::warn!(bucket, key, "a record changed during a move: old data kept");
            }
            Swap::Done => {
                self.retire_chunks(bucket, key, head.clone());
                if let Some(r) = &head.tiering.restore {
                    self.retire_restore(bucket, key, head, r);
                }
            }
        }
        Ok(true)
    }

    /// Retires the fragments of a restored copy.
    pub fn retire_restore(&self, bucket: &str, key: &str, head: &ObjectHead, r: &Restore) {
        if r.parts.is_empty() {
            return;
        }
        let view = with_data(head, r.parts.clone(), r.policy, r.tier);
        self.retire_chunks(bucket, key, view);
    }

    /// Makes the restored copy of an archived version and records it (the background half of
    /// a restore).
    async fn complete_restore(&self, bucket: &str, key: &str, head: ObjectHead) -> Result<()> {
        let Some(_moving) = self.moves.begin(move_id(bucket, key, &head)) else {
            return Ok(());
        };
        let days = head.tiering.restore.as_ref().map_or(1, |r| r.days);
        let place = self.place(StorageClass::Standard, Some(head.size))?;
        let parts = self.restage(bucket, key, &head, place).await?;
        let mut done = head.clone();
        done.tiering.restore = Some(Restore {
            ongoing: false,
            expiry_ms: now_ms() + u64::from(days) * self.days().day_ms,
            days,
            policy: place.0,
            tier: place.1,
            parts: parts.clone(),
        });
        if self.swap_version(bucket, key, &head, &done).await? == Swap::Lost {
            let cores = self.cores_in(bucket, key, place.0, place.1);
            for p in &parts {
                self.delete_part_chunks(&cores, place.0, p).await;
            }
        }
        Ok(())
    }

    /// Restores archived version `head` of a key for `days` lifecycle days: extends the life
    /// of a copy already made, or marks the version ongoing and has the restore worker make
    /// the copy (a full queue leaves it ongoing: the lifecycle pass resumes it).
    pub async fn restore(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        days: u32,
    ) -> Result<Restoring> {
        assert!(head.tiering.class.is_archive(), "checked by the caller");
        match &head.tiering.restore {
            Some(r) if r.ongoing => Ok(Restoring::InProgress),
            Some(r) => {
                // Already restored: S3 extends the copy's life.
                let mut longer = head.clone();
                let mut r = r.clone();
                r.days = days;
                r.expiry_ms = now_ms() + u64::from(days) * self.days().day_ms;
                longer.tiering.restore = Some(r);
                self.swap_version(bucket, key, head, &longer).await?;
                Ok(Restoring::Extended)
            }
            None => {
                let mut ongoing = head.clone();
                ongoing.tiering.restore = Some(Restore {
                    ongoing: true,
                    // While ongoing: when it started (the lifecycle pass resumes stale ones).
                    expiry_ms: now_ms(),
                    days,
                    policy: head.policy,
                    tier: head.tiering.tier,
                    parts: Vec::new(),
                });
                if self.swap_version(bucket, key, head, &ongoing).await? == Swap::Lost {
                    return Ok(Restoring::Changed);
                }
                let this = self.clone();
                let (bucket, key) = (bucket.to_owned(), key.to_owned());
                self.workers()
                    .restore
                    .submit(std::time::Duration::ZERO, async move {
                        let made = cluster::backend::in_background(
                            this.complete_restore(&bucket, &key, ongoing),
                        );
                        if let Err(e) = made.await {
                            // The lifecycle pass retries ongoing restores it finds.
                            tracing::warn!(bucket, key, error = %e, "restore failed; will retry");
                        }
                    });
                Ok(Restoring::Started)
            }
        }
    }

    /// Finishes a restore found ongoing (its first attempt failed or the process stopped).
    pub async fn resume_restore(&self, bucket: &str, key: &str, head: ObjectHead) -> Result<()> {
        self.complete_restore(bucket, key, head).await
    }

    /// Records a read of an INTELLIGENT_TIERING object, cheaply: the head's last-access time
    /// is rewritten at most once per lifecycle day (a quorum write in the background, never on
    /// the read's path), and an object in the infrequent tier is moved back to the frequent one.
    pub fn note_access(&self, bucket: &str, key: &str, head: &ObjectHead) {
        if head.tiering.class != StorageClass::IntelligentTiering {
            return;
        }
        let now = now_ms();
        let stale = now.saturating_sub(head.tiering.last_access_ms) >= self.days().day_ms;
        if !stale && !head.tiering.infrequent {
            return;
        }
        let this = self.clone();
        let (bucket, key, head) = (bucket.to_owned(), key.to_owned(), head.clone());
        let work = cluster::backend::in_background(async move {
            let result = if head.tiering.infrequent {
                this.transition(
                    &bucket,
                    &key,
                    &head,
                    StorageClass::IntelligentTiering,
                    false,
                )
                .await
                .map(|_| ())
            } else if let Some(_noting) = this.moves.begin(move_id(&bucket, &key, &head)) {
                let mut seen = head.clone();
                seen.tiering.last_access_ms = now;
                this.swap_version(&bucket, &key, &head, &seen)
                    .await
                    .map(|_| ())
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::debug!(bucket, key, error = %e, "access tracking skipped");
            }
        });
        // A full queue skips this access: the object's next read notes it again.
        self.workers()
            .access
            .submit(std::time::Duration::ZERO, work);
    }
}

fn damaged(e: impl std::fmt::Display) -> Error {
    Error::Damaged(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::head_of_parts;

    fn archived(restore: Option<Restore>) -> ObjectHead {
        let mut head = head_of_parts(&[5, 7]);
        head.tiering.class = StorageClass::Glacier;
        head.tiering.tier = Tier::Hdd;
        head.tiering.restore = restore;
        head
    }

    fn copy(ongoing: bool, expiry_ms: u64) -> Restore {
        Restore {
            ongoing,
            expiry_ms,
            days: 1,
            policy: Policy::Replicas(3),
            tier: Tier::Nvme,
            parts: vec![PartRef {
                version_id: [9; 12],
                size: 12,
            }],
        }
    }

    #[test]
    fn archived_versions_read_through_their_restored_copy_only() {
        let standard = head_of_parts(&[5]);
        assert_eq!(readable(standard.clone()), Some(standard), "not archived");
        assert_eq!(readable(archived(None)), None, "never restored");
        let later = now_ms() + 60_000;
        assert_eq!(readable(archived(Some(copy(true, later)))), None, "ongoing");
        assert_eq!(readable(archived(Some(copy(false, 1)))), None, "expired");
        let view = readable(archived(Some(copy(false, later)))).expect("a live copy");
        assert_eq!(view.parts, copy(false, later).parts);
        assert_eq!(
            (view.size, view.policy, view.tiering.tier),
            (12, Policy::Replicas(3), Tier::Nvme)
        );
        assert_eq!(
            view.tiering.class,
            StorageClass::Glacier,
            "the class shown stays"
        );
    }

    #[test]
    fn one_move_of_a_version_at_a_time() {
        let moves = Arc::new(Moves::default());
        let head = head_of_parts(&[1]);
        let first = moves
            .begin(move_id("b", "k", &head))
            .expect("none under way");
        assert!(
            moves.begin(move_id("b", "k", &head)).is_none(),
            "the same version"
        );
        let mut other = head.clone();
        other.version_id = [3; 12];
        assert!(
            moves.begin(move_id("b", "k", &other)).is_some(),
            "another version"
        );
        drop(first);
        assert!(
            moves.begin(move_id("b", "k", &head)).is_some(),
            "after the first ended"
        );
    }
}
