//! The scrub: a pass that reads every fragment of every stored object version back from its
//! core, checks its record's checksum there (`proto::Request::VerifyFragment`, run in the
//! core's low-share queue, no data shipped back), and rewrites each fragment found damaged
//! or missing from the rest of its stripe (`Backend::repair_fragment`: a replica, or any k
//! shards of an EC stripe). Rot that no read has found yet is found here, before a second
//! fault on the same stripe makes it unrecoverable.
//!
//! What a pass walks: the object heads (`O`, current versions of keys without version
//! records), the version records (`V`, every version of a bucket that keeps versions), the
//! restored copies of archived objects they name, and the parts of multipart uploads not
//! completed yet (`U`, then their `P` records), on this process's own cores, and of those
//! only the ones whose PG primary (the first core of the record's metadata list) is the core
//! walked: each version is scrubbed by one node of a healthy cluster, as the lifecycle pass
//! acts (`lifecycle::pass`).
//!
//! Bounds: one stripe's fragments are checked at once; the pass paces itself to
//! `bytes_per_sec` of fragment bytes; every core request runs in the core's background queue.
//! A full pass starts every `every_days` lifecycle days (the test clock shortens them), and
//! at once when the process asks (`run`; the binary asks on SIGUSR1).
//!
//! What a pass leaves: per core, in `/-/metrics` (`percore_scrub_*`), counters by the core
//! that holds the fragment; and on each walked core a record (`SCRUB_KEY`, that core's own,
//! not replicated) with when its last pass ended and what it found, which `percore status`
//! prints and the schedule resumes from after a restart.
//!
//! The same walk compares every head, version, upload, part, listing entry, tag set and
//! bucket configuration record a local core holds with its other replicas and settles a difference by a quorum read (`converge`: metadata anti-entropy, for
//! writes whose hints were lost); `percore_scrub_records_total` counts it.
//!
//! Each pass is followed by the orphan sweep of the same cores (`orphans`).
//!
//! Not here: the replay of writes a core missed (`cluster::hints`), the repair of damage a
//! read found (`workers::Workers::repair_on_read`).

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use cluster::ec::Policy;
use cluster::moves::Cores;
use proto::{ErrorCode, FragmentId, Request, Response};
use tokio::time::Instant;

use crate::records::{
    parse_version_key, part_prefix, part_stripes, ObjectHead, PartRecord, PartRef, UploadRecord,
    VersionRecord,
};
use crate::store::{now_ms, Store};

/// The key of a core's scrub record (`S`: no bucket record starts with it).
pub const SCRUB_KEY: &[u8] = b"Sscrub";
/// The record kinds a pass walks: heads, versions and uploads for their fragments and
/// replicas; listing entries, tag sets, lifecycle and other bucket configurations for their
/// replicas only.
const WALKED: [u8; 7] = [b'O', b'V', b'U', b'L', b'T', b'C', b'R'];
/// Records whose versions one batch request asks of a replica (`converge`), and the bytes
/// of their values at most (a 10,000-part head is ~300 KB).
const COMPARE_BATCH: usize = 128;
const COMPARE_BATCH_BYTES: usize = 2 * 1024 * 1024;
const _: () = assert!(COMPARE_BATCH as u32 <= proto::limits::BATCH_LEN_MAX);
const _: () = assert!(COMPARE_BATCH_BYTES * 2 < proto::limits::FRAME_BODY_BYTES_MAX as usize);
/// Records a pass reads from one core per scan request.
const PASS_BATCH: u32 = 500;
/// Default pace of a pass: bytes of fragments read per second, per process.
pub const BYTES_PER_SEC_DEFAULT: u64 = 32 * 1024 * 1024;
/// Default days between two full passes.
pub const EVERY_DAYS_DEFAULT: u32 = 7;
/// Checks of the schedule between passes: a tenth of a lifecycle day, within these bounds.
const CHECK_INTERVAL_MIN: Duration = Duration::from_secs(1);
const CHECK_INTERVAL_MAX: Duration = Duration::from_secs(600);
const RECORD_VERSION: u8 = 1;
const RECORD_BYTES: usize = 1 + 8 + 8 * COUNTS_FIELDS;
const COUNTS_FIELDS: usize = 7;

/// When and how fast the scrub runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Lifecycle days between the starts of two full passes; 0: no scheduled pass (SIGUSR1
    /// still starts one).
    pub every_days: u32,
    /// Bytes of fragments read per second at most (> 0).
    pub bytes_per_sec: u64,
}

impl Default for ScrubConfig {
    fn default() -> ScrubConfig {
        ScrubConfig {
            every_days: EVERY_DAYS_DEFAULT,
            bytes_per_sec: BYTES_PER_SEC_DEFAULT,
        }
    }
}

/// What a pass found, for one core.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Fragments whose core answered the check (sound, corrupt or missing).
    pub verified: u64,
    /// Bytes of those fragments.
    pub bytes: u64,
    pub corrupt: u64,
    pub missing: u64,
    /// Corrupt or missing fragments rewritten from the rest of their stripe.
    pub repaired: u64,
    /// Corrupt or missing fragments that could not be rewritten (sources unreachable or
    /// damaged too); the next pass or read tries again.
    pub repair_failed: u64,
    /// Fragments not checked: their core could not be reached or refused the check.
    pub unreachable: u64,
}

impl Counts {
    fn fields(&self) -> [u64; COUNTS_FIELDS] {
        [
            self.verified,
            self.bytes,
            self.corrupt,
            self.missing,
            self.repaired,
            self.repair_failed,
            self.unreachable,
        ]
    }

    fn from_fields(f: [u64; COUNTS_FIELDS]) -> Counts {
        let [verified, bytes, corrupt, missing, repaired, repair_failed, unreachable] = f;
        Counts {
            verified,
            bytes,
            corrupt,
            missing,
            repaired,
            repair_failed,
            unreachable,
        }
    }

    fn add(&mut self, other: &Counts) {
        let (a, b) = (self.fields(), other.fields());
        *self = Counts::from_fields(std::array::from_fn(|i| a[i] + b[i]));
    }
}

/// A core's scrub record: when the last pass over the versions it is primary of ended, and
/// what that pass found. Value: version u8 (1) ‖ end ms u64 ‖ the `Counts` fields as u64, in
/// their declaration order; little-endian.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrubRecord {
    pub end_ms: u64,
    pub counts: Counts,
}

impl ScrubRecord {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(RECORD_BYTES);
        b.put_u8(RECORD_VERSION);
        b.put_u64_le(self.end_ms);
        for f in self.counts.fields() {
            b.put_u64_le(f);
        }
        assert_eq!(b.len(), RECORD_BYTES);
        b.freeze()
    }

    /// `None` for a value of another length or version.
    pub fn decode(mut b: &[u8]) -> Option<ScrubRecord> {
        if b.len() != RECORD_BYTES || b[0] != RECORD_VERSION {
            return None;
        }
        b.advance(1);
        let end_ms = b.get_u64_le();
        let counts = Counts::from_fields(std::array::from_fn(|_| b.get_u64_le()));
        Some(ScrubRecord { end_ms, counts })
    }
}

/// The request that reads a core's scrub record (answered `Meta`).
pub fn record_request() -> Request {
    Request::MetaGet {
        key: Bytes::from_static(SCRUB_KEY),
    }
}

/// What a core answered about one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Sound,
    Corrupt,
    Missing,
    Unreachable,
}

/// Keeps a pass at `bytes_per_sec`: after each stripe, waits until the bytes checked so far
/// are due.
struct Pacer {
    started: Instant,
    bytes: u64,
    bytes_per_sec: u64,
}

impl Pacer {
    fn new(bytes_per_sec: u64) -> Pacer {
        assert!(bytes_per_sec > 0, "a pass advances");
        Pacer {
            started: Instant::now(),
            bytes: 0,
            bytes_per_sec,
        }
    }

    async fn checked(&mut self, bytes: u64) {
        self.bytes += bytes;
        let due_ms = u128::from(self.bytes) * 1000 / u128::from(self.bytes_per_sec);
        let due = self.started + Duration::from_millis(u64::try_from(due_ms).unwrap_or(u64::MAX));
        tokio::time::sleep_until(due).await;
    }
}

/// Where the version being scrubbed was read from: its record, read again before a repair.
struct Origin<'a> {
    core: usize,
    key: &'a Bytes,
    value: &'a Bytes,
    /// The version's HLC on `core`.
    hlc: u64,
}

impl<'a> Origin<'a> {
    /// The records of a scan page of `core`.
    fn page(core: usize, entries: &'a [(Bytes, proto::MetaEntry)]) -> Vec<Origin<'a>> {
        entries
            .iter()
            .map(|(key, e)| Origin {
                core,
                key,
                value: &e.value,
                hlc: e.hlc,
            })
            .collect()
    }
}

/// The state of one pass.
struct Pass {
    pacer: Pacer,
    /// By walked core: what was found in the versions it is primary of.
    by_walked: HashMap<usize, Counts>,
    walking: usize,
}

impl Pass {
    fn count(&mut self, store: &Store, core: usize, add: Counts) {
        self.by_walked.entry(self.walking).or_default().add(&add);
        store
            .observer()
            .scrubbed(store.backend().core_name(core).as_str(), &add);
    }
}

impl Store {
    /// One full scrub pass over the versions `holders` (this process's cores) are primary
    /// of; each holder's record is written at its end. Returns what it found by holder.
    pub async fn scrub_pass(&self, holders: &[usize], bytes_per_sec: u64) -> Vec<(usize, Counts)> {
        let mut pass = Pass {
            pacer: Pacer::new(bytes_per_sec),
            by_walked: HashMap::new(),
            walking: 0,
        };
        let mut out = Vec::with_capacity(holders.len());
        for &core in holders {
            pass.walking = core;
            pass.by_walked.insert(core, Counts::default());
            for tag in WALKED {
                self.scrub_walk(core, tag, &mut pass).await;
            }
            let counts = pass.by_walked[&core];
            let record = ScrubRecord {
                end_ms: now_ms(),
                counts,
            };
            self.put_scrub_record(core, &record).await;
            self.observer()
                .scrub_pass(self.backend().core_name(core).as_str(), &record, true);
            out.push((core, counts));
        }
        out
    }

    async fn put_scrub_record(&self, core: usize, record: &ScrubRecord) {
        let req = Request::MetaPut {
            key: Bytes::from_static(SCRUB_KEY),
            value: record.encode(),
            hlc: self.backend().hlc(),
        };
        if !matches!(self.backend().call(core, req).await, Ok(Response::Done)) {
            tracing::warn!(
                core = self.backend().core_name(core),
                "the scrub record could not be written"
            );
        }
    }

    /// A core's scrub record (`None`: none yet, unreadable, or the core is not reachable).
    pub async fn scrub_record(&self, core: usize) -> Option<ScrubRecord> {
        match self.backend().call(core, record_request()).await {
            Ok(Response::Meta(Some(e))) => ScrubRecord::decode(&e.value),
            _ => None,
        }
    }

    /// Every record of one kind on `core`, page by page.
    async fn scrub_walk(&self, core: usize, tag: u8, pass: &mut Pass) {
        let prefix = Bytes::from(vec![tag]);
        let mut cursor: Option<Bytes> = None;
        loop {
            let req = Request::MetaScan {
                prefix: prefix.clone(),
                start_after: cursor.clone(),
                limit: PASS_BATCH,
            };
            let Ok(Response::Scan {
                entries,
                next_start_after,
            }) = self.backend().call(core, req).await
            else {
                tracing::warn!(
                    core = self.backend().core_name(core).as_str(),
                    "scrub: scan failed"
                );
                return;
            };
            let origins = Origin::page(core, &entries);
            let compared: Vec<_> = origins
                .iter()
                .filter_map(|o| {
                    let (bucket, rest) = split_key(o.key)?;
                    Some((
                        self.record_cores(tag, &bucket, rest)?.last_row().to_vec(),
                        o,
                    ))
                })
                .collect();
            self.converge(&compared).await;
            for origin in &origins {
                self.scrub_record_entry(tag, origin, pass).await;
            }
            match next_start_after {
                Some(n) if !entries.is_empty() => cursor = Some(n),
                _ => return,
            }
        }
    }

    /// One record (compared with its replicas by the walk): for an `O` or `V` record its
    /// version's fragments, checked when `origin.core` is its primary; for a `U` record the
    /// fragments (and part records) of the upload's parts.
    async fn scrub_record_entry(&self, tag: u8, origin: &Origin<'_>, pass: &mut Pass) {
        let Some((bucket, rest)) = split_key(origin.key) else {
            return;
        };
        match tag {
            b'U' => return self.scrub_upload(&bucket, rest, origin, pass).await,
            b'O' | b'V' => {}
            _ => return,
        }
        let (key, head) = if tag == b'O' {
            let Ok(key) = std::str::from_utf8(rest) else {
                return;
            };
            match ObjectHead::decode(origin.value.clone()) {
                // A version with a `V` record is scrubbed from there.
                Ok(head) if !head.in_versions => (key.to_owned(), head),
                _ => return,
            }
        } else {
            let Some((key, _)) = parse_version_key(rest) else {
                return;
            };
            let Ok(key) = String::from_utf8(key) else {
                return;
            };
            match VersionRecord::decode(origin.value.clone()) {
                Ok(VersionRecord::Object(head)) => (key, head),
                _ => return,
            }
        };
        if self.backend.primary(&self.object_cores(&bucket, &key)) != origin.core {
            return;
        }
        let cores = self.head_cores(&bucket, &key, &head);
        self.scrub_parts(cores.last_row(), head.policy, &head.parts, origin, pass)
            .await;
        if let Some(r) = head.tiering.restore.as_ref().filter(|r| !r.ongoing) {
            let cores = self.cores_in(&bucket, &key, r.policy, r.tier);
            self.scrub_parts(cores.last_row(), r.policy, &r.parts, origin, pass)
                .await;
        }
    }

    /// Anti-entropy for a page of metadata records (each with its replica cores), so replicas
    /// converge even when the hints of a write they missed were lost: the primary compares its
    /// version with every other replica's, another replica with the primary's (so a primary
    /// that missed the write is found by the replicas that have it). Each replica core is
    /// asked per batch of up to `COMPARE_BATCH` records: first for one digest of their
    /// versions (`MetaDigest`, 32 bytes back), and only when it differs for the versions
    /// themselves, in one `Batch`. A difference (a replica without the record, or with another version) is
    /// settled by a quorum read, which writes the newest version to the replicas that lack it
    /// (`Backend::meta_get`). A core that does not answer leaves the record for the next pass.
    async fn converge(&self, page: &[(Vec<usize>, &Origin<'_>)]) {
        let observer = self.observer();
        // Per record: the replicas it is compared with.
        let others: Vec<Vec<usize>> = page
            .iter()
            .map(|(cores, origin)| match cores.first() {
                Some(&p) if p == origin.core => cores[1..].to_vec(),
                Some(&p) if cores.contains(&origin.core) => vec![p],
                _ => Vec::new(),
            })
            .collect();
        // Per replica core: the records asked of it, in batches.
        let mut asks: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, cores) in others.iter().enumerate() {
            for &c in cores {
                asks.entry(c).or_default().push(i);
            }
        }
        // Batches bounded in records and in the bytes the answers will carry (each replica's
        // value is about the walked one's), far below a frame.
        let mut batches: Vec<(usize, Vec<usize>)> = Vec::new();
        for (core, items) in asks {
            let mut bytes = 0;
            for i in items {
                let len = page[i].1.value.len();
                match batches.last_mut() {
                    Some((c, batch))
                        if *c == core
                            && batch.len() < COMPARE_BATCH
                            && bytes + len <= COMPARE_BATCH_BYTES =>
                    {
                        batch.push(i);
                        bytes += len;
                    }
                    _ => {
                        batches.push((core, vec![i]));
                        bytes = len;
                    }
                }
            }
        }
        let answers =
            futures::future::join_all(batches.into_iter().map(|(core, items)| async move {
                // The batch's digest first: equal, every record matches and no value is
                // shipped; else (or from a core that does not know the request) the versions.
                if self.same_digest(core, page, &items).await {
                    return (items, None);
                }
                let parts = items
                    .iter()
                    .map(|&i| {
                        Request::Background(Box::new(Request::MetaGetVersioned {
                            key: page[i].1.key.clone(),
                        }))
                    })
                    .collect();
                let answer = self.backend().call(core, Request::Batch(parts)).await;
                (items, Some(answer))
            }))
            .await;
        // Per record: whether a replica answered another version, or did not answer.
        let mut differs = vec![false; page.len()];
        let mut unreachable = vec![false; page.len()];
        for (items, answer) in answers {
            let Some(answer) = answer else {
                continue;
            };
            let parts = match answer {
                Ok(Response::Batch(parts)) if parts.len() == items.len() => parts,
                _ => {
                    for i in items {
                        unreachable[i] = true;
                    }
                    continue;
                }
            };
            for (i, part) in items.into_iter().zip(parts) {
                match part {
                    Response::MetaVersioned(Some(v)) if !v.deleted && v.hlc == page[i].1.hlc => {}
                    Response::MetaVersioned(_) => differs[i] = true,
                    _ => unreachable[i] = true,
                }
            }
        }
        for (i, (cores, origin)) in page.iter().enumerate() {
            if !cores.contains(&origin.core) {
                continue;
            }
            let walked = self.backend().core_name(origin.core);
            if unreachable[i] {
                observer.scrub_record(&walked, "unreachable");
                continue;
            }
            observer.scrub_record(&walked, "checked");
            if differs[i] && self.backend().meta_get(cores, origin.key).await.is_ok() {
                observer.scrub_record(&walked, "converged");
            }
        }
    }

    /// Whether replica `core` holds exactly the walked versions of `items` (a `MetaDigest`
    /// of their keys equal to the digest of the walked records, all live). Counted in
    /// `percore_scrub_digests_total` by the replica asked.
    async fn same_digest(
        &self,
        core: usize,
        page: &[(Vec<usize>, &Origin<'_>)],
        items: &[usize],
    ) -> bool {
        let keys = items.iter().map(|&i| page[i].1.key.clone()).collect();
        let expected = proto::meta_digest(
            items
                .iter()
                .map(|&i| (&page[i].1.key[..], Some((page[i].1.hlc, false)))),
        );
        let request = Request::Background(Box::new(Request::MetaDigest { keys }));
        let result = match self.backend().call(core, request).await {
            Ok(Response::Digest(d)) if d == expected => "same",
            Ok(Response::Digest(_)) => "differ",
            _ => "failed",
        };
        self.observer()
            .scrub_digest(self.backend().core_name(core).as_str(), result);
        result == "same"
    }

    /// The parts uploaded so far to a multipart upload not completed (`U` ‖ scope ‖ 0 ‖ key ‖
    /// 0 ‖ upload id), stored by its class's policy on the key's data cores; their `P` records
    /// are on the object's metadata replicas, `origin.core` among them.
    async fn scrub_upload(&self, bucket: &str, rest: &[u8], origin: &Origin<'_>, pass: &mut Pass) {
        let Some((key, upload_id)) = crate::records::split_upload_rest(rest) else {
            return;
        };
        let meta_cores = self.object_cores(bucket, key);
        // Every replica compares its part records (`converge`); the primary also checks the
        // parts' fragments.
        let primary = self.backend.primary(&meta_cores) == origin.core;
        let Ok(upload) = UploadRecord::decode(origin.value.clone()) else {
            return;
        };
        let Ok((policy, tier)) = self.place(upload.class, None) else {
            return;
        };
        let cores = self.cores_in(bucket, key, policy, tier);
        let prefix = part_prefix(upload_id);
        let mut cursor: Option<Bytes> = None;
        loop {
            let req = Request::MetaScan {
                prefix: prefix.clone(),
                start_after: cursor.clone(),
                limit: PASS_BATCH,
            };
            let Ok(Response::Scan {
                entries,
                next_start_after,
            }) = self.backend().call(origin.core, req).await
            else {
                return;
            };
            let part_origins = Origin::page(origin.core, &entries);
            let compared: Vec<_> = part_origins
                .iter()
                .map(|o| (meta_cores.last_row().to_vec(), o))
                .collect();
            self.converge(&compared).await;
            for part_origin in &part_origins {
                let Ok(part) = PartRecord::decode(part_origin.value.clone()) else {
                    continue;
                };
                let part = PartRef {
                    version_id: part.version_id,
                    size: part.size,
                };
                // A part uploaded again replaces its record: the record is what a repair
                // checks again.
                if primary {
                    self.scrub_parts(cores.last_row(), policy, &[part], part_origin, pass)
                        .await;
                }
            }
            match next_start_after {
                Some(n) if !entries.is_empty() => cursor = Some(n),
                _ => return,
            }
        }
    }

    async fn scrub_parts(
        &self,
        cores: &[usize],
        policy: Policy,
        parts: &[PartRef],
        origin: &Origin<'_>,
        pass: &mut Pass,
    ) {
        if cores.len() < policy.width() {
            return;
        }
        for part in parts {
            for stripe in part_stripes(part, crate::limits::CHUNK_BYTES) {
                let (fragments, bytes_each) = match policy {
                    Policy::Replicas(n) => (
                        (0..usize::from(n))
                            .map(|i| (cores[i], stripe.fragment_id(0)))
                            .collect::<Vec<_>>(),
                        stripe.len,
                    ),
                    Policy::Ec { k, m } => (
                        (0..usize::from(k + m))
                            .map(|i| (cores[i], stripe.fragment_id(i as u8)))
                            .collect(),
                        cluster::ec::shard_bytes(stripe.len, k),
                    ),
                };
                self.scrub_stripe(&fragments, bytes_each, (policy, cores), origin, pass)
                    .await;
            }
        }
    }

    /// Checks a stripe's fragments at once, then rewrites the damaged and missing ones.
    async fn scrub_stripe(
        &self,
        fragments: &[(usize, FragmentId)],
        bytes_each: u64,
        (policy, cores): (Policy, &[usize]),
        origin: &Origin<'_>,
        pass: &mut Pass,
    ) {
        let checks = fragments
            .iter()
            .map(|&(core, id)| async move { (core, id, self.verify(core, id).await) });
        let verdicts = futures::future::join_all(checks).await;
        let mut checked_bytes = 0;
        for (core, id, verdict) in verdicts {
            let mut add = Counts::default();
            match verdict {
                Verdict::Unreachable => add.unreachable = 1,
                Verdict::Sound => {}
                Verdict::Corrupt => add.corrupt = 1,
                Verdict::Missing => add.missing = 1,
            }
            if verdict != Verdict::Unreachable {
                add.verified = 1;
                add.bytes = bytes_each;
                checked_bytes += bytes_each;
            }
            if matches!(verdict, Verdict::Corrupt | Verdict::Missing) {
                tracing::warn!(
                    core = self.backend().core_name(core),
                    fragment = ?id,
                    ?verdict,
                    "scrub: damaged fragment"
                );
                if self.repair(core, id, policy, cores, origin).await {
                    add.repaired = 1;
                } else {
                    add.repair_failed = 1;
                }
            }
            pass.count(self, core, add);
        }
        pass.pacer.checked(checked_bytes).await;
    }

    async fn verify(&self, core: usize, id: FragmentId) -> Verdict {
        let r = cluster::backend::in_background(
            self.backend().call(core, Request::VerifyFragment { id }),
        )
        .await;
        match r {
            Ok(Response::Done) => Verdict::Sound,
            Ok(Response::Error {
                code: ErrorCode::NotFound,
                ..
            }) => Verdict::Missing,
            Ok(Response::Error {
                code: ErrorCode::Corrupt,
                ..
            }) => Verdict::Corrupt,
            _ => Verdict::Unreachable,
        }
    }

    /// Rewrites fragment `id` on `core` if the version's record still reads as it did when
    /// the walk found it: a version deleted or replaced meanwhile has its fragments retired,
    /// and rebuilding one would leave an orphan. True when rewritten.
    async fn repair(
        &self,
        core: usize,
        id: FragmentId,
        policy: Policy,
        cores: &[usize],
        origin: &Origin<'_>,
    ) -> bool {
        let again = self
            .backend()
            .call(
                origin.core,
                Request::MetaGet {
                    key: origin.key.clone(),
                },
            )
            .await;
        match again {
            Ok(Response::Meta(Some(e))) if e.value == *origin.value => {}
            _ => return false,
        }
        let rewrite = self.backend().repair_fragment(core, id, policy, cores);
        match cluster::backend::in_background(rewrite).await {
            Ok(true) => true,
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(
                    core = self.backend().core_name(core),
                    error = %e,
                    "scrub: repair failed"
                );
                false
            }
        }
    }
}

/// `tag` ‖ bucket ‖ 0 ‖ rest → (bucket, rest).
fn split_key(k: &[u8]) -> Option<(String, &[u8])> {
    let at = k.get(1..)?.iter().position(|b| *b == 0)? + 1;
    let bucket = std::str::from_utf8(&k[1..at]).ok()?.to_owned();
    Some((bucket, &k[at + 1..]))
}

/// When the schedule counts the next pass from: the oldest end in the scrub records of
/// `holders` (shown in the metrics), or now for a core without one. A node's first pass thus
/// comes one period after its first start, not at once: a restarted test or a node that
/// was just upgraded does not read its whole disk while it starts.
async fn last_pass_end(store: &Store, holders: &[usize]) -> u64 {
    let mut oldest = now_ms();
    for &core in holders {
        if let Some(r) = store.scrub_record(core).await {
            store
                .observer()
                .scrub_pass(store.backend().core_name(core).as_str(), &r, false);
            oldest = oldest.min(r.end_ms);
        }
    }
    oldest
}

/// The scrub's schedule (module docs): a pass over the versions this process's cores are
/// primary of each `config.every_days` lifecycle days, counted from the oldest end in their
/// scrub records (from the start for a core without one), and one at once each time `now`
/// yields (the binary sends one on SIGUSR1). Ends when `now` closes; at once on a process
/// without cores.
pub async fn run(store: Store, config: ScrubConfig, mut now: tokio::sync::mpsc::Receiver<()>) {
    let holders = store.backend().local_cores();
    if holders.is_empty() {
        return;
    }
    let check = Duration::from_millis(store.days().day_ms / 10)
        .clamp(CHECK_INTERVAL_MIN, CHECK_INTERVAL_MAX);
    let every_ms = u64::from(config.every_days).saturating_mul(store.days().day_ms);
    let mut last_end_ms = last_pass_end(&store, &holders).await;
    loop {
        let due = every_ms > 0 && now_ms() >= last_end_ms.saturating_add(every_ms);
        if !due {
            tokio::select! {
                () = tokio::time::sleep(check) => continue,
                got = now.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("scrub pass asked for: started");
                }
            }
        }
        // Every core request of the pass (scans and record reads included) runs in the
        // cores' low-share queue.
        let pass = store.scrub_pass(&holders, config.bytes_per_sec);
        let found = cluster::backend::in_background(pass).await;
        last_end_ms = now_ms();
        let mut total = Counts::default();
        for (_, c) in &found {
            total.add(c);
        }
        tracing::info!(?total, "scrub pass");
        let sweep = store.orphan_sweep(&holders);
        match cluster::backend::in_background(sweep).await {
            Ok(swept) => {
                tracing::info!(?swept, "orphan sweep");
                store.observer().orphan_sweep("done");
            }
            Err(why) => {
                tracing::warn!("orphan sweep stopped (its last round deleted nothing): {why}");
                store.observer().orphan_sweep("stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_other_values() {
        let r = ScrubRecord {
            end_ms: 1_700_000_000_123,
            counts: Counts {
                verified: 10,
                bytes: 4096,
                corrupt: 2,
                missing: 1,
                repaired: 3,
                repair_failed: 0,
                unreachable: 7,
            },
        };
        let b = r.encode();
        assert_eq!(b.len(), RECORD_BYTES);
        assert_eq!(ScrubRecord::decode(&b), Some(r));
        assert_eq!(ScrubRecord::decode(&b[..RECORD_BYTES - 1]), None);
        let mut other = b.to_vec();
        other[0] = 2;
        assert_eq!(ScrubRecord::decode(&other), None, "another version");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_keeps_to_its_rate() {
        let mut p = Pacer::new(1000);
        let t0 = Instant::now();
        p.checked(500).await;
        p.checked(1500).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        p.checked(0).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2), "nothing due");
    }

    #[test]
    fn keys_split_at_the_bucket() {
        assert_eq!(
            split_key(b"Obkt\0a/b"),
            Some(("bkt".to_owned(), &b"a/b"[..]))
        );
        assert_eq!(split_key(b"O"), None);
        assert_eq!(split_key(b"Onozero"), None);
    }
}
