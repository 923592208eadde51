//! The lifecycle pass: the object service's background walk that applies buckets' lifecycle
//! rules, which every process with cores runs over the placement groups it is primary of
//! (`start`).
//!
//! A pass walks the records of this process's own cores and acts only on those whose PG
//! primary (the first core of the record's metadata list) is the core being walked, so each
//! object is handled by exactly one node of a healthy cluster. For each:
//! - a current version (`O` head): expiration (a delete marker where the bucket keeps
//!   versions, a delete otherwise), transitions (`Store::transition`: re-encode, verify,
//!   swap, retire), the end of an expired restore, and INTELLIGENT_TIERING's move to the
//!   infrequent tier after `IT_INFREQUENT_DAYS` days without a read;
//! - a key's version records (`V`): noncurrent expiration and transitions (with
//!   NewerNoncurrentVersions), and expired delete markers; a version under Object Lock (a
//!   legal hold, an unexpired retention: `versions::lock_protection`) is never removed;
//! - an incomplete multipart upload (`U`): AbortIncompleteMultipartUpload.
//!
//! The same pass reclaims what a deleted bucket left (`records`, incarnations): every record
//! keyed by a scope that is no longer its bucket's live incarnation — heads, versions,
//! uploads and their parts, listing entries, tags, lifecycle and CORS configurations, completion
//! records — is removed and its chunks retired. Writes that raced the DeleteBucket land
//! there, and nothing reaches them through the name. It also sweeps listing entries (`L`)
//! whose head is missing (a write that failed between its two records, or records written
//! before heads came first), and completion records (`M`) past `COMPLETION_KEEP_MS`.
//!
//! Every action is idempotent and re-derived from the records on the next pass, so a pass
//! that stops halfway (crash, restart) resumes by simply running again; a data move that
//! loses a race to a client write is dropped. Days are lifecycle days (`Store::days`,
//! shortened by the test clock `--lifecycle-day-secs`); the test clock does not round to
//! midnight as S3 does.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::{abort_upload, action_for, Action, Facts, Rule};
use crate::records::{
    parse_version_key, CompletionRecord, ObjectHead, StorageClass, UploadRecord, VersionRecord,
    Versioning,
};
use crate::store::{now_ms, Liveness, Store};
use crate::tiering::Swap;
use crate::uploads::COMPLETION_KEEP_MS;
use crate::versions::{lock_protection, Guard, VersionRef};

/// INTELLIGENT_TIERING: days without a read before the infrequent tier (S3's 30; see
/// `Store::with_days`).
pub const IT_INFREQUENT_DAYS: u64 = 30;
/// An ongoing restore older than this (real time) is made again by the pass.
const RESTORE_RESUME_AFTER_MS: u64 = 60_000;
/// Listing entries of live buckets one pass checks for a head, per core: each check is a
/// quorum read, so a large bucket is swept over several passes (resuming where the last one
/// stopped, `Store::listing_sweep`).
const STRAY_CHECKS_PER_CORE: u32 = 100;
/// Records one pass reads from one core per scan request.
const PASS_BATCH: u32 = 500;
/// Passes start every tenth of a lifecycle day, within these bounds: seconds under the test
/// clock, minutes in production (each pass reads every record of this node's cores).
const INTERVAL_MIN: Duration = Duration::from_secs(1);
const INTERVAL_MAX: Duration = Duration::from_secs(600);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleStats {
    pub expired: u64,
    pub transitioned: u64,
    pub transitioned_bytes: u64,
    pub versions_deleted: u64,
    pub restores_ended: u64,
    pub uploads_aborted: u64,
    /// Records of deleted bucket incarnations removed.
    pub reclaimed: u64,
    /// Listing entries without a head removed.
    pub strays_removed: u64,
    pub failed: u64,
    /// Current versions seen, and their bytes, by storage class (`StorageClass::index`).
    pub objects: [u64; 5],
    pub object_bytes: [u64; 5],
    /// The same bytes by placement tier: nvme, ssd, hdd.
    pub tier_bytes: [u64; 3],
}

/// The state of one lifecycle pass.
#[derive(Default)]
struct Pass {
    /// Each scope's state, read once per pass.
    buckets: HashMap<String, ScopeState>,
    stats: LifecycleStats,
    /// Listing entries the current core's walk may still check for a head.
    stray_budget: u32,
    /// The versions of the key being scanned, newest first, gathered across pages.
    group: Option<(String, String, Vec<VersionRecord>)>,
}

/// Where the records of one scope stand, for a pass.
#[derive(Clone)]
enum ScopeState {
    /// The live incarnation (or one a DeleteBucket is deciding on): its rules (none without a
    /// configuration) and versioning state.
    Live(Vec<Rule>, Versioning),
    /// A deleted incarnation: its records are reclaimed.
    Dead,
    /// Its bucket record could not be read: left alone this pass.
    Unknown,
}

/// `tag` ‖ bucket ‖ 0 ‖ rest → (bucket, rest).
fn split_key(k: &[u8]) -> Option<(String, &[u8])> {
    let at = k[1..].iter().position(|b| *b == 0)? + 1;
    let bucket = std::str::from_utf8(&k[1..at]).ok()?.to_owned();
    Some((bucket, &k[at + 1..]))
}

impl Store {
    /// One lifecycle pass over the records held by `holders` (this process's cores).
    pub async fn lifecycle_pass(&self, holders: &[usize]) -> LifecycleStats {
        let mut pass = Pass::default();
        for &core in holders {
            pass.stray_budget = STRAY_CHECKS_PER_CORE;
            for tag in [b'O', b'V', b'U', b'L', b'C', b'R', b'T', b'M'] {
                self.walk(core, tag, &mut pass).await;
            }
        }
        pass.stats
    }

    /// The state of a scope (its rules and versioning state when live), read once per pass.
    async fn scope_state(
        &self,
        scope: &str,
        cache: &mut HashMap<String, ScopeState>,
    ) -> ScopeState {
        if let Some(s) = cache.get(scope) {
            return s.clone();
        }
        let name = crate::records::scope_name(scope);
        let state = match (self.liveness(scope).await, self.bucket(name).await) {
            (Ok(Liveness::Dead), _) => ScopeState::Dead,
            (Ok(Liveness::Live | Liveness::Deleting), Ok(Some(b))) => {
                // No rules: INTELLIGENT_TIERING and restores still need the pass.
                let rules = self.lifecycle_rules(scope).await.ok().flatten();
                ScopeState::Live(rules.unwrap_or_default(), b.versioning)
            }
            _ => ScopeState::Unknown,
        };
        cache.insert(scope.to_owned(), state.clone());
        state
    }

    /// One scan of `core`'s records of one kind (`O` heads, `V` versions, `U` uploads).
    async fn walk(&self, core: usize, tag: u8, pass: &mut Pass) {
        let prefix = Bytes::from(vec![tag]);
        let mut cursor: Option<Bytes> = None;
        loop {
            let req = proto::Request::MetaScan {
                prefix: prefix.clone(),
                start_after: cursor.clone(),
                limit: PASS_BATCH,
            };
            let Ok(proto::Response::Scan {
                entries,
                next_start_after,
            }) = self.backend.call(core, req).await
            else {
                break;
            };
            for (k, e) in &entries {
                let Some((bucket, rest)) = split_key(k) else {
                    continue;
                };
                match tag {
                    b'O' => self.head_record(core, &bucket, rest, &e.value, pass).await,
                    b'V' => {
                        self.versions_record(core, bucket, rest, &e.value, pass)
                            .await;
                    }
                    b'U' => {
                        self.upload_record(core, &bucket, rest, &e.value, pass)
                            .await;
                    }
                    _ => {
                        self.side_record(core, tag, (&bucket, rest), (k, e), pass)
                            .await;
                    }
                }
            }
            match next_start_after {
                Some(n) if !entries.is_empty() => cursor = Some(n),
                _ => break,
            }
        }
        if let Some((b, k, list)) = pass.group.take() {
            self.on_versions(&b, &k, list, pass).await;
        }
        if tag == b'L' && pass.stray_budget > 0 {
            // The sweep reached the end of this core's entries: the next starts over.
            if let Ok(mut sweep) = self.listing_sweep.lock() {
                sweep.remove(&core);
            }
        }
    }

    async fn head_record(
        &self,
        core: usize,
        bucket: &str,
        rest: &[u8],
        value: &Bytes,
        pass: &mut Pass,
    ) {
        let Ok(key) = std::str::from_utf8(rest) else {
            return;
        };
        if self.backend.primary(&self.object_cores(bucket, key)) != core {
            return;
        }
        let Ok(head) = ObjectHead::decode(value.clone()) else {
            return;
        };
        let (rules, versioning) = match self.scope_state(bucket, &mut pass.buckets).await {
            ScopeState::Live(r, v) => (r, v),
            ScopeState::Dead => {
                match self.delete_key(bucket, key).await {
                    Ok(()) => pass.stats.reclaimed += 1,
                    Err(_) => pass.stats.failed += 1,
                }
                return;
            }
            ScopeState::Unknown => return,
        };
        self.on_current(bucket, key, head, &rules, versioning, &mut pass.stats)
            .await;
    }

    /// Gathers a key's version records (contiguous, newest first) and hands each key's list
    /// to `on_versions` once the scan moves past it.
    async fn versions_record(
        &self,
        core: usize,
        bucket: String,
        rest: &[u8],
        value: &Bytes,
        pass: &mut Pass,
    ) {
        let Some((key, _)) = parse_version_key(rest) else {
            return;
        };
        let Ok(key) = String::from_utf8(key) else {
            return;
        };
        if self.backend.primary(&self.object_cores(&bucket, &key)) != core {
            return;
        }
        let Ok(v) = VersionRecord::decode(value.clone()) else {
            return;
        };
        match &mut pass.group {
            Some((b, k, list)) if *b == bucket && *k == key => list.push(v),
            _ => {
                if let Some((b, k, list)) = pass.group.take() {
                    self.on_versions(&b, &k, list, pass).await;
                }
                pass.group = Some((bucket, key, vec![v]));
            }
        }
    }

    async fn on_current(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
        rules: &[Rule],
        versioning: Versioning,
        stats: &mut LifecycleStats,
    ) {
        let now = now_ms();
        let day = self.days().day_ms;
        let class = head.tiering.class.index();
        stats.objects[class] += 1;
        stats.object_bytes[class] += head.size;
        let tier = match head.tiering.tier {
            placement::Tier::Nvme => 0,
            placement::Tier::Ssd => 1,
            placement::Tier::Hdd => 2,
        };
        stats.tier_bytes[tier] += head.size;
        if let Some(r) = &head.tiering.restore {
            if r.ongoing && now.saturating_sub(r.expiry_ms) > RESTORE_RESUME_AFTER_MS {
                // Its first attempt failed or its process stopped: make the copy here.
                if let Err(e) = self.resume_restore(bucket, key, head.clone()).await {
                    tracing::warn!(bucket, key, error = %e, "restore failed; retried next pass");
                    stats.failed += 1;
                }
                return;
            }
            if !r.ongoing && r.expiry_ms <= now {
                let mut ended = head.clone();
                ended.tiering.restore = None;
                match self.swap_version(bucket, key, &head, &ended).await {
                    Ok(Swap::Done) => {
                        self.retire_restore(bucket, key, &head, r);
                        stats.restores_ended += 1;
                    }
                    // A record still names the copy: it stays until a later pass.
                    Ok(Swap::Partial | Swap::Lost) => {}
                    Err(_) => stats.failed += 1,
                }
                return;
            }
        }
        let tags = if rules.iter().any(|r| !r.filter.tags.is_empty()) {
            self.tags_of(bucket, key, &head).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let facts = Facts {
            key,
            size: head.shown_size(),
            tags: &tags,
            created_ms: head.modified_ms,
            class: head.tiering.class.as_str(),
            current: true,
            delete_marker: false,
            noncurrent_since_ms: None,
            newer_noncurrent: 0,
            sole_delete_marker: false,
        };
        match action_for(rules, &facts, now, day) {
            Some(Action::Expire) => match self.delete_object(bucket, key, None, versioning).await {
                Ok(_) => stats.expired += 1,
                Err(_) => stats.failed += 1,
            },
            Some(Action::Transition(class)) => {
                let class = StorageClass::parse(&class).expect("validated class");
                self.move_to(bucket, key, &head, class, false, stats).await;
            }
            Some(Action::DeleteVersion) | None => {
                let it = head.tiering.class == StorageClass::IntelligentTiering;
                let idle_since = head.tiering.last_access_ms.max(head.modified_ms);
                if it
                    && !head.tiering.infrequent
                    && now >= idle_since.saturating_add(self.days().tiering_days * day)
                {
                    self.move_to(
                        bucket,
                        key,
                        &head,
                        StorageClass::IntelligentTiering,
                        true,
                        stats,
                    )
                    .await;
                }
            }
        }
    }

    async fn move_to(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        class: StorageClass,
        infrequent: bool,
        stats: &mut LifecycleStats,
    ) {
        match self.transition(bucket, key, head, class, infrequent).await {
            Ok(true) => {
                stats.transitioned += 1;
                stats.transitioned_bytes += head.size;
                tracing::info!(
                    bucket,
                    key,
                    class = class.as_str(),
                    infrequent,
                    "transitioned"
                );
            }
            Ok(false) => {}
            Err(e) => {
                stats.failed += 1;
                tracing::warn!(bucket, key, error = %e, "transition failed; retried next pass");
            }
        }
    }

    /// A key's version records, newest first: noncurrent expirations and transitions, and an
    /// expired delete marker.
    async fn on_versions(
        &self,
        bucket: &str,
        key: &str,
        versions: Vec<VersionRecord>,
        pass: &mut Pass,
    ) {
        let (rules, versioning) = match self.scope_state(bucket, &mut pass.buckets).await {
            ScopeState::Live(r, v) => (r, v),
            ScopeState::Dead => {
                // Every version goes, for good (`Enabled`: deletes by id, no marker).
                for v in &versions {
                    let version = VersionRef::of(v.null_version(), v.version_id());
                    let reclaim = Guard::Reclaim;
                    match self
                        .delete_object_guarded(
                            bucket,
                            key,
                            Some(version),
                            Versioning::Enabled,
                            reclaim,
                        )
                        .await
                    {
                        Ok(_) => pass.stats.reclaimed += 1,
                        Err(_) => pass.stats.failed += 1,
                    }
                }
                return;
            }
            ScopeState::Unknown => return,
        };
        let stats = &mut pass.stats;
        if rules.is_empty() {
            return;
        }
        let (now, day) = (now_ms(), self.days().day_ms);
        let current_is_marker = matches!(versions.first(), Some(VersionRecord::DeleteMarker(_)));
        let mut newer_noncurrent = 0;
        for (i, v) in versions.iter().enumerate() {
            let (size, class, tagged) = match v {
                VersionRecord::Object(h) => (h.shown_size(), h.tiering.class.as_str(), Some(h)),
                VersionRecord::DeleteMarker(_) => (0, "STANDARD", None),
            };
            let noncurrent_since_ms = (i > 0).then(|| versions[i - 1].modified_ms());
            let tags = match tagged {
                Some(h) if rules.iter().any(|r| !r.filter.tags.is_empty()) => {
                    self.tags_of(bucket, key, h).await.unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let facts = Facts {
                key,
                size,
                tags: &tags,
                created_ms: v.modified_ms(),
                class,
                current: i == 0,
                delete_marker: matches!(v, VersionRecord::DeleteMarker(_)),
                noncurrent_since_ms,
                newer_noncurrent,
                sole_delete_marker: i == 0 && current_is_marker && versions.len() == 1,
            };
            if i > 0 {
                newer_noncurrent += 1;
            }
            // Current objects are handled from their head.
            if i == 0 && !facts.delete_marker {
                continue;
            }
            match action_for(&rules, &facts, now, day) {
                // A version under Object Lock stays (its removal would be refused anyway).
                Some(Action::DeleteVersion)
                    if matches!(v, VersionRecord::Object(h)
                        if lock_protection(&h.lock, now).is_some()) => {}
                Some(Action::DeleteVersion) => {
                    let version = VersionRef::of(v.null_version(), v.version_id());
                    match self
                        .delete_object(bucket, key, Some(version), versioning)
                        .await
                    {
                        Ok(_) => stats.versions_deleted += 1,
                        Err(_) => stats.failed += 1,
                    }
                }
                Some(Action::Transition(class)) => {
                    if let VersionRecord::Object(h) = v {
                        let class = StorageClass::parse(&class).expect("validated class");
                        self.move_to(bucket, key, h, class, false, stats).await;
                    }
                }
                Some(Action::Expire) | None => {}
            }
        }
    }

    async fn upload_record(
        &self,
        core: usize,
        bucket: &str,
        rest: &[u8],
        value: &Bytes,
        pass: &mut Pass,
    ) {
        let (buckets, stats) = (&mut pass.buckets, &mut pass.stats);
        let Some((key, upload_id)) = crate::records::split_upload_rest(rest) else {
            return;
        };
        if self.backend.primary(&self.object_cores(bucket, key)) != core {
            return;
        }
        let Ok(upload) = UploadRecord::decode(value.clone()) else {
            return;
        };
        let dead = match self.scope_state(bucket, buckets).await {
            ScopeState::Live(rules, _) => {
                if !abort_upload(
                    &rules,
                    key,
                    upload.initiated_ms,
                    now_ms(),
                    self.days().day_ms,
                ) {
                    return;
                }
                false
            }
            ScopeState::Dead => true,
            ScopeState::Unknown => return,
        };
        let result = async {
            let parts = self.parts(bucket, key, upload_id).await?;
            let place = self.place(upload.class, None)?;
            self.finish_upload(bucket, key, upload_id, &parts, &[], place)
                .await
        }
        .await;
        match result {
            Ok(()) if dead => stats.reclaimed += 1,
            Ok(()) => stats.uploads_aborted += 1,
            Err(_) => stats.failed += 1,
        }
    }

    /// Whether the listing entry `k` of `core` is checked for a head in this pass: after the
    /// entry the last pass stopped at, within the pass's budget.
    fn sweep_turn(&self, core: usize, k: &Bytes, pass: &mut Pass) -> bool {
        if pass.stray_budget == 0 {
            return false;
        }
        let Ok(mut sweep) = self.listing_sweep.lock() else {
            return false;
        };
        if sweep.get(&core).is_some_and(|last| k <= last) {
            return false;
        }
        sweep.insert(core, k.clone());
        pass.stray_budget -= 1;
        true
    }

    /// A listing entry (`L`), lifecycle configuration (`C`), tag set (`T`) or completion
    /// record (`M`): removed when its scope is dead; a listing entry also when its head is
    /// missing, a completion record once it is too old to answer a retry.
    async fn side_record(
        &self,
        core: usize,
        tag: u8,
        (bucket, rest): (&str, &[u8]),
        (k, e): (&Bytes, &proto::MetaEntry),
        pass: &mut Pass,
    ) {
        let key = std::str::from_utf8(rest).ok();
        let Some(cores) = self.record_cores(tag, bucket, rest) else {
            return;
        };
        if self.backend.primary(&cores) != core {
            return;
        }
        let state = self.scope_state(bucket, &mut pass.buckets).await;
        let remove = match (&state, tag) {
            (ScopeState::Unknown, _) => return,
            (ScopeState::Dead, _) => true,
            (ScopeState::Live(..), b'L') => {
                let Some(key) = key else { return };
                if !self.sweep_turn(core, k, pass) {
                    return;
                }
                // The common case, a head: one read.
                if matches!(self.head(bucket, key).await, Ok(Some(_))) {
                    return;
                }
                match self.drop_stray_listing(bucket, key).await {
                    Ok(true) => pass.stats.strays_removed += 1,
                    Ok(false) => {}
                    Err(_) => pass.stats.failed += 1,
                }
                return;
            }
            (ScopeState::Live(..), b'M') => CompletionRecord::decode(e.value.clone())
                .is_ok_and(|c| now_ms().saturating_sub(c.completed_ms) >= COMPLETION_KEEP_MS),
            (ScopeState::Live(..), _) => false,
        };
        if !remove {
            return;
        }
        // Its own HLC plus one: a newer write of the same record (there is none in a dead
        // scope) would win.
        match self.backend.meta_delete(&cores, k, e.hlc + 1).await {
            Ok(()) if matches!(state, ScopeState::Dead) => pass.stats.reclaimed += 1,
            Ok(()) => {}
            Err(_) => pass.stats.failed += 1,
        }
    }
}

/// Starts the lifecycle pass of this process's own cores on `runtime`: every tenth of a
/// lifecycle day (bounded), one pass, run by `store` (the same object service the requests
/// use: one set of workers, one set of moves); what it did goes to the store's observer.
/// Ends when the runtime does.
pub fn start(store: &Store, runtime: &tokio::runtime::Handle) {
    let holders = store.backend().local_cores();
    if holders.is_empty() {
        return;
    }
    let store = store.clone();
    let interval =
        Duration::from_millis(store.days().day_ms / 10).clamp(INTERVAL_MIN, INTERVAL_MAX);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            // A pass holds pages of records across its awaits: boxed, not on this task's stack.
            let pass = Box::pin(store.lifecycle_pass(&holders));
            let stats = cluster::backend::in_background(pass).await;
            store.observer().lifecycle_pass(&stats);
            let acted = LifecycleStats {
                objects: [0; 5],
                object_bytes: [0; 5],
                tier_bytes: [0; 3],
                ..stats
            };
            if acted != LifecycleStats::default() {
                tracing::info!(?acted, "lifecycle pass");
            }
        }
    });
}
