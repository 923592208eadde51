//! Storage classes at work: archive semantics (GLACIER and DEEP_ARCHIVE are readable only
//! through a restored copy), RestoreObject, and moving one object version's data to another
//! policy and tier (lifecycle transitions, restores, intelligent tiering).
//!
//! A move is crash-safe by construction: the new copy is written under new fragment ids,
//! read back and compared (MD5 of the bytes) before anything points at it; the head (and the
//! version record, in a bucket that keeps versions) is then swapped by compare-and-swap on the
//! PG's primary, so a concurrent write wins and the move is dropped; only after the swap are
//! the old fragments retired. A crash before the swap leaves the old copy (the new fragments
//! are orphans); after it, the new one.
//!
//! Not owned here: deciding when to move (the lifecycle worker, `lifecycle_worker.rs`).

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use s3s::dto::{RestoreObjectInput, RestoreObjectOutput};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::records::{
    head_key, version_key, ObjectHead, PartRef, Restore, StorageClass, VersionRecord,
};
use crate::s3::{check_key, now_ms, s3_err, user_of, Gateway};
use cluster::ec::Policy;
use placement::Tier;

/// Days a restore may ask for (S3's bound).
pub const RESTORE_DAYS_MAX: i32 = 30_000;

/// The `x-amz-restore` value of a head (None: no restore asked).
pub fn restore_header(head: &ObjectHead) -> Option<String> {
    let r = head.tiering.restore.as_ref()?;
    if r.ongoing {
        return Some("ongoing-request=\"true\"".to_owned());
    }
    let expiry = crate::s3::format_http_date(&crate::s3::timestamp(r.expiry_ms))?;
    Some(format!(
        "ongoing-request=\"false\", expiry-date=\"{expiry}\""
    ))
}

/// The object versions whose data this process is moving now: reads of an infrequent object,
/// a lifecycle pass and a restore would otherwise each copy the same version.
#[derive(Default)]
pub struct Moves {
    set: std::sync::Mutex<std::collections::HashSet<Vec<u8>>>,
}

impl Moves {
    /// Marks `id` (`move_id`) as being moved; `None` when a move of it is already under way.
    pub(crate) fn begin(self: &Arc<Self>, id: Vec<u8>) -> Option<MoveGuard> {
        let mut set = self.set.lock().expect("move set lock");
        set.insert(id.clone()).then(|| MoveGuard {
            moves: self.clone(),
            id,
        })
    }
}

/// Held while one object version's data is being moved; the mark goes when it is dropped.
pub(crate) struct MoveGuard {
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
    let mut id = crate::records::head_key(bucket, key).to_vec();
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

/// What `Gateway::swap_version` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swap {
    /// Every record holding the version now has the new data: the old data may be retired.
    Done,
    /// Some did; another changed meanwhile and may still point at the old data, which must
    /// then stay (an orphan at worst, never a dangling record).
    Partial,
    /// None did (the version changed or is gone): the new data is unreferenced.
    Lost,
}

/// The storage class S3 shows (none for STANDARD, as S3 does).
pub fn shown_class(head: &ObjectHead) -> Option<s3s::dto::StorageClass> {
    let c = head.tiering.class;
    (c != StorageClass::Standard).then(|| s3s::dto::StorageClass::from(c.as_str().to_owned()))
}

fn invalid_state() -> s3s::S3Error {
    s3_error!(
        InvalidObjectState,
        "The operation is not valid for the object's storage class: restore it first"
    )
}

/// The head a GET or a copy reads: itself, or for an archived object its restored copy
/// (InvalidObjectState without a completed, unexpired restore).
pub(crate) fn readable(head: ObjectHead) -> S3Result<ObjectHead> {
    if !head.tiering.class.is_archive() {
        return Ok(head);
    }
    match &head.tiering.restore {
        Some(r) if !r.ongoing && r.expiry_ms > now_ms() => {
            Ok(with_data(&head, r.parts.clone(), r.policy, r.tier))
        }
        _ => Err(invalid_state()),
    }
}

impl Gateway {
    /// Copies the bytes of `head`'s parts into new parts stored under `policy` on `tier`,
    /// reads them back and compares. Returns the new parts; on any failure removes what it
    /// wrote.
    pub(crate) async fn restage(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        (policy, tier): (Policy, Tier),
    ) -> S3Result<Vec<PartRef>> {
        let cores = self.store.cores_in(bucket, key, policy, tier);
        let mut out: Vec<PartRef> = Vec::with_capacity(head.parts.len());
        let mut first = 0;
        let result = async {
            for part in &head.parts {
                let version_id = self.store.version_id(self.backend.hlc(), key.as_bytes());
                let (size, md5, _) = self
                    .store_copy(
                        (bucket, key, head),
                        (first, part.size),
                        (&cores, policy),
                        &version_id,
                        &[],
                    )
                    .await?;
                out.push(PartRef { version_id, size });
                if size != part.size {
                    return Err(s3_error!(InternalError, "a moved part changed size"));
                }
                let copy = with_data(head, vec![PartRef { version_id, size }], policy, tier);
                if self.md5_of(bucket, key, copy).await? != md5 {
                    return Err(s3_error!(
                        InternalError,
                        "a moved part read back differently"
                    ));
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
                    self.store.delete_part_chunks(&cores, policy, p).await;
                }
                Err(e)
            }
        }
    }

    async fn md5_of(&self, bucket: &str, key: &str, head: ObjectHead) -> S3Result<[u8; 16]> {
        use futures::StreamExt;
        let size = head.size;
        let mut stream = self.store.object_stream(bucket, key, head, 0, size);
        let mut md5 = Md5::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| s3_error!(InternalError, "reading back: {e}"))?;
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
    pub(crate) async fn swap_version(
        &self,
        bucket: &str,
        key: &str,
        old: &ObjectHead,
        new: &ObjectHead,
    ) -> S3Result<Swap> {
        assert_eq!(old.version_id, new.version_id, "a swap keeps the version");
        let cores = self.store.object_cores(bucket, key);
        let (mut swapped, mut missed) = (0, 0);
        let hkey = head_key(bucket, key);
        if let Some(e) = self.backend.meta_get(&cores, &hkey).await.map_err(s3_err)? {
            let current = ObjectHead::decode(e.value).map_err(|e| s3_error!(e, InternalError))?;
            if current.version_id == old.version_id {
                if current == *old && self.cas(&cores, &hkey, new.encode(), e.hlc).await? {
                    swapped += 1;
                    self.relist(bucket, key, new).await?;
                } else {
                    missed += 1;
                }
            }
        }
        if old.in_versions {
            let vkey = version_key(bucket, key, &old.version_id);
            if let Some(e) = self.backend.meta_get(&cores, &vkey).await.map_err(s3_err)? {
                let matches = matches!(
                    VersionRecord::decode(e.value).map_err(|e| s3_error!(e, InternalError))?,
                    // The lock state and tags too: a move must not undo a retention, legal
                    // hold or tag set since it read the version.
                    VersionRecord::Object(h) if h.parts == old.parts && h.tiering == old.tiering
                        && h.lock == old.lock && h.tags == old.tags
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
    pub(crate) async fn cas(
        &self,
        cores: &[usize],
        key: &Bytes,
        value: Bytes,
        expect_hlc: u64,
    ) -> S3Result<bool> {
        let hlc = self.backend.hlc();
        let won = self
            .backend
            .meta_put_if(cores[0], key, &value, hlc, Some(expect_hlc))
            .await
            .map_err(s3_err)?;
        if won {
            self.backend
                .meta_put(cores, key, &value, hlc)
                .await
                .map_err(s3_err)?;
        }
        Ok(won)
    }

    /// Rewrites the listing entry of a key whose current head changed class.
    async fn relist(&self, bucket: &str, key: &str, head: &ObjectHead) -> S3Result<()> {
        let listing = crate::records::ListingEntry {
            size: head.shown_size(),
            modified_ms: head.modified_ms,
            etag: head.etag.clone(),
            in_versions: head.in_versions,
            class: head.tiering.class,
        };
        let hlc = self.backend.hlc();
        self.backend
            .meta_put(
                &self.store.listing_cores(bucket),
                &crate::records::listing_key(bucket, key),
                &listing.encode(),
                hlc,
            )
            .await
            .map_err(s3_err)
    }

    /// Moves one version's data to `class` (its policy and tier), verified, swapped, then
    /// the old fragments retired. `Ok(false)`: the version changed meanwhile, nothing moved.
    pub(crate) async fn transition(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        class: StorageClass,
        infrequent: bool,
    ) -> S3Result<bool> {
        let Some(_moving) = self.moves.begin(move_id(bucket, key, head)) else {
            return Ok(false);
        };
        let policy_class = match (class, infrequent) {
            (StorageClass::IntelligentTiering, true) => StorageClass::StandardIa,
            (c, _) => c,
        };
        let place = self
            .store
            .place(policy_class, Some(head.size))
            .map_err(s3_err)?;
        let source = readable(head.clone()).unwrap_or_else(|_| head.clone());
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
                let cores = self.store.cores_in(bucket, key, place.0, place.1);
                for p in &parts {
                    self.store.delete_part_chunks(&cores, place.0, p).await;
                }
                return Ok(false);
            }
            Swap::Partial => {
                tracing::warn!(bucket, key, "a record changed during a move: old data kept");
            }
            Swap::Done => {
                self.store.retire_chunks(bucket, key, head.clone());
                if let Some(r) = &head.tiering.restore {
                    self.retire_restore(bucket, key, head, r);
                }
            }
        }
        Ok(true)
    }

    /// Retires the fragments of a restored copy.
    pub(crate) fn retire_restore(&self, bucket: &str, key: &str, head: &ObjectHead, r: &Restore) {
        if r.parts.is_empty() {
            return;
        }
        let view = with_data(head, r.parts.clone(), r.policy, r.tier);
        self.store.retire_chunks(bucket, key, view);
    }

    /// Makes the restored copy of an archived version and records it (the background half of
    /// RestoreObject).
    async fn complete_restore(&self, bucket: &str, key: &str, head: ObjectHead) -> S3Result<()> {
        let Some(_moving) = self.moves.begin(move_id(bucket, key, &head)) else {
            return Ok(());
        };
        let days = head.tiering.restore.as_ref().map_or(1, |r| r.days);
        let place = self
            .store
            .place(StorageClass::Standard, Some(head.size))
            .map_err(s3_err)?;
        let parts = self.restage(bucket, key, &head, place).await?;
        let mut done = head.clone();
        done.tiering.restore = Some(Restore {
            ongoing: false,
            expiry_ms: now_ms() + u64::from(days) * self.day_ms(),
            days,
            policy: place.0,
            tier: place.1,
            parts: parts.clone(),
        });
        if self.swap_version(bucket, key, &head, &done).await? == Swap::Lost {
            let cores = self.store.cores_in(bucket, key, place.0, place.1);
            for p in &parts {
                self.store.delete_part_chunks(&cores, place.0, p).await;
            }
        }
        Ok(())
    }

    pub(crate) async fn restore(
        &self,
        req: S3Request<RestoreObjectInput>,
    ) -> S3Result<S3Response<RestoreObjectOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let request = input.restore_request.unwrap_or_default();
        if request.type_.is_some() || request.select_parameters.is_some() {
            return Err(s3_error!(NotImplemented, "restore with SELECT"));
        }
        let days = match request.days {
            Some(d) if (1..=RESTORE_DAYS_MAX).contains(&d) => d as u32,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Days must be between 1 and {RESTORE_DAYS_MAX}"
                ))
            }
            None => return Err(s3_error!(MalformedXML, "RestoreRequest needs Days")),
        };
        let (head, _, bucket) = self
            .object_for_read(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        if !head.tiering.class.is_archive() {
            return Err(invalid_state());
        }
        match &head.tiering.restore {
            Some(r) if r.ongoing => Err(s3_error!(
                RestoreAlreadyInProgress,
                "Object restore is already in progress"
            )),
            Some(r) => {
                // Already restored: S3 extends the copy's life and answers 200.
                let mut longer = head.clone();
                let mut r = r.clone();
                r.days = days;
                r.expiry_ms = now_ms() + u64::from(days) * self.day_ms();
                longer.tiering.restore = Some(r);
                self.swap_version(&bucket, &input.key, &head, &longer)
                    .await?;
                Ok(S3Response::new(RestoreObjectOutput::default()))
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
                if self
                    .swap_version(&bucket, &input.key, &head, &ongoing)
                    .await?
                    == Swap::Lost
                {
                    return Err(s3_error!(
                        RestoreAlreadyInProgress,
                        "the object changed; retry the restore"
                    ));
                }
                let this = self.clone_handle();
                let key = input.key.clone();
                // A full queue leaves the restore ongoing: the lifecycle pass retries it.
                self.store
                    .workers()
                    .restore
                    .submit(std::time::Duration::ZERO, async move {
                        let made = cluster::backend::in_background(
                            this.complete_restore(&bucket, &key, ongoing),
                        );
                        if let Err(e) = made.await {
                            // The lifecycle worker retries ongoing restores it finds.
                            tracing::warn!(bucket, key, error = %e, "restore failed; will retry");
                        }
                    });
                let mut out = S3Response::new(RestoreObjectOutput::default());
                out.headers.insert(
                    crate::serve::STATUS_HEADER,
                    http::HeaderValue::from_static("202"),
                );
                Ok(out)
            }
        }
    }

    /// Finishes a restore found ongoing (its first attempt failed or the process stopped).
    pub(crate) async fn resume_restore(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
    ) -> S3Result<()> {
        self.complete_restore(bucket, key, head).await
    }
}

/// The response header of HEAD that shows an INTELLIGENT_TIERING object's access tier.
pub const ACCESS_TIER_HEADER: &str = "x-percore-access-tier";
/// The response header of HEAD that shows how the object's data is stored now, e.g.
/// `ec-8+4/hdd` or `replicas-3/nvme` (for operators and tests; S3 has no such header).
pub const PLACEMENT_HEADER: &str = "x-percore-placement";

/// The `x-percore-placement` value of the data a read would use.
pub fn placement_of(head: &ObjectHead) -> String {
    let scheme = match head.policy {
        Policy::Replicas(n) => format!("replicas-{n}"),
        Policy::Ec { k, m } => format!("ec-{k}+{m}"),
    };
    format!("{scheme}/{}", head.tiering.tier)
}

/// `FREQUENT` or `INFREQUENT` for INTELLIGENT_TIERING objects.
pub fn access_tier(head: &ObjectHead) -> Option<&'static str> {
    (head.tiering.class == StorageClass::IntelligentTiering).then_some(if head.tiering.infrequent {
        "INFREQUENT"
    } else {
        "FREQUENT"
    })
}

impl Gateway {
    /// Records a read of an INTELLIGENT_TIERING object, cheaply: the head's last-access time
    /// is rewritten at most once per lifecycle day (a quorum write in the background, never on
    /// the read's path), and an object in the infrequent tier is moved back to the frequent one.
    pub(crate) fn note_access(&self, bucket: &str, key: &str, head: &ObjectHead) {
        if head.tiering.class != StorageClass::IntelligentTiering {
            return;
        }
        let now = now_ms();
        let stale = now.saturating_sub(head.tiering.last_access_ms) >= self.day_ms();
        if !stale && !head.tiering.infrequent {
            return;
        }
        let this = self.clone_handle();
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
        self.store
            .workers()
            .access
            .submit(std::time::Duration::ZERO, work);
    }
}
