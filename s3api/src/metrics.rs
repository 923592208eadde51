//! What this node's background work did, for Prometheus (`GET /-/metrics` on the S3 listener:
//! S3 bucket names never start with `-`, so the path cannot shadow a bucket).
//!
//! Counters add up over the process's life; the per-class object and byte gauges are the
//! current versions this node is PG primary of, as counted by the last lifecycle pass, so a
//! cluster's totals are the sum over its nodes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::records::StorageClass;
use objects::lifecycle::LifecycleStats;

/// The path the metrics are served on.
pub const PATH: &str = "/-/metrics";

/// The process's metrics (one node or gateway per process).
/// The object service's counts (`objects::observe`) go to the global metrics.
#[derive(Debug)]
pub struct ServiceMetrics;

impl objects::observe::Observer for ServiceMetrics {
    fn queued(&self, worker: &'static str, delta: i64) {
        global().background_queued(worker, delta);
    }
    fn queued_bytes(&self, worker: &'static str, delta: i64) {
        global().background_queued_bytes(worker, delta);
    }
    fn dropped(&self, worker: &'static str) {
        global().background_dropped(worker);
    }
    fn read_repair(&self, outcome: &'static str) {
        global().read_repair(outcome);
    }
    fn scrubbed(&self, core: &str, counts: &objects::scrub::Counts) {
        global().record_scrub(core, counts);
    }
    fn scrub_record(&self, core: &str, result: &'static str) {
        global().record_scrub_record(core, result);
    }
    fn scrub_digest(&self, core: &str, result: &'static str) {
        global().record_scrub_digest(core, result);
    }
    fn scrub_pass(&self, core: &str, record: &objects::scrub::ScrubRecord, ended: bool) {
        global().scrub_pass_ended(core, record, ended);
    }
    fn lifecycle_pass(&self, stats: &LifecycleStats) {
        global().record_lifecycle(stats);
    }
    fn orphan(&self, core: &str, result: &'static str) {
        global().record_orphan(core, result);
    }
    fn orphan_sweep(&self, result: &'static str) {
        global().orphan_sweep_ended(result);
    }
}

pub fn global() -> &'static Metrics {
    static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CoreLabel {
    pub core: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CoreResultLabel {
    pub core: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OfflineLabel {
    pub core: String,
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    transitions: Family<ResultLabel, Counter>,
    transitioned_bytes: Counter,
    expired: Counter,
    versions_deleted: Counter,
    uploads_aborted: Counter,
    reclaimed: Counter,
    strays_removed: Counter,
    restores_ended: Counter,
    objects: Family<ClassLabel, Gauge<u64, AtomicU64>>,
    object_bytes: Family<ClassLabel, Gauge<u64, AtomicU64>>,
    hints_replayed: Counter,
    hints_pending: Gauge<u64, AtomicU64>,
    tier_bytes: Family<TierLabel, Gauge<u64, AtomicU64>>,
    core_fragments: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_live_bytes: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_log_appended_bytes: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_meta_bytes: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    background_queued: Family<WorkerLabel, Gauge>,
    background_queued_bytes: Family<WorkerLabel, Gauge>,
    background_dropped: Family<WorkerLabel, Counter>,
    core_free_bytes: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_poisoned: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_offline: Family<OfflineLabel, Gauge<u64, AtomicU64>>,
    core_checkpoint_rebuilt: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_corrupt_records_replayed: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_corrupt_reads: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_cache_reads: Family<CoreResultLabel, Gauge<u64, AtomicU64>>,
    core_cache_evictions: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_cache_bytes: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_cache_budget_bytes: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_free_segment_files: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_segments_reused: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_replay_stale_stops: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    core_guarded_pairs_dropped: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    http_connections: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    meta_calls: Family<KindLabel, Gauge<u64, AtomicU64>>,
    bucket_cache_reads: Family<ResultLabel, Gauge<u64, AtomicU64>>,
    /// The service's bucket cache, read when the metrics are encoded (`watch_bucket_cache`).
    bucket_cache: std::sync::Mutex<Option<Arc<objects::bucket_cache::BucketCache>>>,
    read_repairs: Family<ResultLabel, Counter>,
    requests_rerouted: Family<ResultLabel, Counter>,
    notify_events: Family<ResultLabel, Counter>,
    notify_queued: Gauge<u64, AtomicU64>,
    layout_version: Gauge<u64, AtomicU64>,
    layout_change_groups: Family<PhaseLabel, Gauge<u64, AtomicU64>>,
    layout_moved: Family<KindLabel, Gauge<u64, AtomicU64>>,
    layout_move_eta_seconds: Gauge<u64, AtomicU64>,
    scrub_fragments: Family<CoreResultLabel, Counter>,
    scrub_bytes: Family<CoreLabel, Counter>,
    scrub_last_pass_end_ms: Family<CoreLabel, Gauge<u64, AtomicU64>>,
    scrub_passes: Family<CoreLabel, Counter>,
    scrub_records: Family<CoreResultLabel, Counter>,
    scrub_digests: Family<CoreResultLabel, Counter>,
    orphan_fragments: Family<CoreResultLabel, Counter>,
    orphan_sweeps: Family<ResultLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("percore");
        let m = Metrics {
            transitions: Family::default(),
            transitioned_bytes: Counter::default(),
            expired: Counter::default(),
            versions_deleted: Counter::default(),
            uploads_aborted: Counter::default(),
            reclaimed: Counter::default(),
            strays_removed: Counter::default(),
            restores_ended: Counter::default(),
            objects: Family::default(),
            object_bytes: Family::default(),
            hints_replayed: Counter::default(),
            hints_pending: Gauge::default(),
            tier_bytes: Family::default(),
            core_fragments: Family::default(),
            core_live_bytes: Family::default(),
            core_log_appended_bytes: Family::default(),
            core_meta_bytes: Family::default(),
            background_queued: Family::default(),
            background_queued_bytes: Family::default(),
            background_dropped: Family::default(),
            core_free_bytes: Family::default(),
            core_poisoned: Family::default(),
            core_offline: Family::default(),
            core_checkpoint_rebuilt: Family::default(),
            core_corrupt_records_replayed: Family::default(),
            core_corrupt_reads: Family::default(),
            core_cache_reads: Family::default(),
            core_cache_evictions: Family::default(),
            core_cache_bytes: Family::default(),
            core_cache_budget_bytes: Family::default(),
            core_free_segment_files: Family::default(),
            core_segments_reused: Family::default(),
            core_replay_stale_stops: Family::default(),
            core_guarded_pairs_dropped: Family::default(),
            http_connections: Family::default(),
            meta_calls: Family::default(),
            bucket_cache_reads: Family::default(),
            bucket_cache: std::sync::Mutex::default(),
            read_repairs: Family::default(),
            requests_rerouted: Family::default(),
            notify_events: Family::default(),
            notify_queued: Gauge::default(),
            layout_version: Gauge::default(),
            layout_change_groups: Family::default(),
            layout_moved: Family::default(),
            layout_move_eta_seconds: Gauge::default(),
            scrub_fragments: Family::default(),
            scrub_bytes: Family::default(),
            scrub_last_pass_end_ms: Family::default(),
            scrub_passes: Family::default(),
            scrub_records: Family::default(),
            scrub_digests: Family::default(),
            orphan_fragments: Family::default(),
            orphan_sweeps: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "lifecycle_transitions",
            "Lifecycle and intelligent-tiering data moves, by result",
            m.transitions.clone(),
        );
        registry.register(
            "lifecycle_transitioned_bytes",
            "Bytes of objects moved to another storage class or tier",
            m.transitioned_bytes.clone(),
        );
        registry.register(
            "lifecycle_expired",
            "Current versions expired by lifecycle rules",
            m.expired.clone(),
        );
        registry.register(
            "lifecycle_versions_deleted",
            "Noncurrent versions and delete markers removed by lifecycle rules",
            m.versions_deleted.clone(),
        );
        registry.register(
            "lifecycle_uploads_aborted",
            "Incomplete multipart uploads aborted by lifecycle rules",
            m.uploads_aborted.clone(),
        );
        registry.register(
            "deleted_bucket_records_reclaimed",
            "Records of deleted bucket incarnations removed by the background pass",
            m.reclaimed.clone(),
        );
        registry.register(
            "listing_strays_removed",
            "Listing entries without an object head removed by the background pass",
            m.strays_removed.clone(),
        );
        registry.register(
            "restores_ended",
            "Restored copies of archived objects removed at their expiry",
            m.restores_ended.clone(),
        );
        registry.register(
            "objects",
            "Current object versions this node is primary of, by storage class",
            m.objects.clone(),
        );
        registry.register(
            "object_bytes",
            "Bytes of current object versions this node is primary of, by storage class",
            m.object_bytes.clone(),
        );
        registry.register(
            "repair_hints_replayed",
            "Missed writes replayed by the repair task",
            m.hints_replayed.clone(),
        );
        registry.register(
            "repair_hints_pending",
            "Missed writes waiting for their core, at the last repair pass",
            m.hints_pending.clone(),
        );
        registry.register(
            "tier_object_bytes",
            "Bytes of current object versions this node is primary of, by placement tier",
            m.tier_bytes.clone(),
        );
        registry.register(
            "core_fragments",
            "Fragments stored on each of this process's cores",
            m.core_fragments.clone(),
        );
        registry.register(
            "core_live_bytes",
            "Live bytes stored on each of this process's cores",
            m.core_live_bytes.clone(),
        );
        registry.register(
            "core_log_appended_bytes",
            "Log bytes each core's appends took since it started (records and the padding they \
             left; engine/DESIGN.md, \"Log and group commit\")",
            m.core_log_appended_bytes.clone(),
        );
        registry.register(
            "core_meta_bytes",
            "Bytes of each core's metadata store (its LMDB file) in use",
            m.core_meta_bytes.clone(),
        );
        registry.register(
            "background_queued",
            "Jobs waiting in each background worker's queue (workers.rs; retire: versions in the \
             retirement schedule, retire.rs)",
            m.background_queued.clone(),
        );
        registry.register(
            "background_queued_bytes",
            "Bytes held by a background worker's queue (the retirement schedule's: retire.rs)",
            m.background_queued_bytes.clone(),
        );
        registry.register(
            "background_dropped",
            "Jobs a full background queue refused (deferred: orphans for the sweep, restores \
             the lifecycle pass retries, access moves the next read redoes)",
            m.background_dropped.clone(),
        );
        registry.register(
            "read_repairs",
            "Fragments reads found missing or damaged on a core, by the outcome of their \
             rewrite from the rest of the stripe (repaired; gone: the version was deleted \
             since; failed: the core or the sources could not be reached)",
            m.read_repairs.clone(),
        );
        registry.register(
            "requests_rerouted",
            "S3 requests (without a body, or with one read whole first) that a node refused \
             as routed by an old layout, run again once this process applied that node's map \
             (served: a later run answered; not_applied: the map was not applied within 1 s; \
             refused_again: still refused after 32 runs; the last two answer 503)",
            m.requests_rerouted.clone(),
        );
        registry.register(
            "meta_calls",
            "Metadata calls this process made since it started, by kind (each one round trip \
             to a record's replicas; a scan counts once per page)",
            m.meta_calls.clone(),
        );
        registry.register(
            "bucket_cache_reads",
            "Bucket record reads by result (hit: from the single node's bucket cache, no \
             metadata call; miss: read from the replicas)",
            m.bucket_cache_reads.clone(),
        );
        registry.register(
            "core_free_bytes",
            "Bytes of object data each core may still store: its capacity, or its device's \
             free space above the floor kept for deletes and metadata (0: writes refused)",
            m.core_free_bytes.clone(),
        );
        registry.register(
            "core_poisoned",
            "1 when a core refuses writes after a failed flush (restart or repair it)",
            m.core_poisoned.clone(),
        );
        registry.register(
            "core_offline",
            "1 for each of this process's cores that started offline (damaged partition), \
             with the reason",
            m.core_offline.clone(),
        );
        registry.register(
            "core_checkpoint_rebuilt",
            "1 when the core's checkpoint was damaged at its start and its index was rebuilt \
             from the whole log",
            m.core_checkpoint_rebuilt.clone(),
        );
        registry.register(
            "core_corrupt_records_replayed",
            "Damaged log records the core skipped while replaying its log at start",
            m.core_corrupt_records_replayed.clone(),
        );
        registry.register(
            "core_corrupt_reads",
            "Reads the core refused because the record failed its checks (checksum, id, kind)",
            m.core_corrupt_reads.clone(),
        );
        registry.register(
            "core_cache_reads",
            "Fragment reads on each core by result (hit: served from the core's cache, no \
             device read; miss: read from the device)",
            m.core_cache_reads.clone(),
        );
        registry.register(
            "core_free_segment_files",
            "Reclaimed segment files each core keeps for reuse (counted as free space)",
            m.core_free_segment_files.clone(),
        );
        registry.register(
            "core_segments_reused",
            "Segments each core wrote into a reused file instead of creating one",
            m.core_segments_reused.clone(),
        );
        registry.register(
            "core_replay_stale_stops",
            "Log scans that stopped at a reused segment file's records of an earlier life",
            m.core_replay_stale_stops.clone(),
        );
        registry.register(
            "core_guarded_pairs_dropped",
            "A small object's head and listing entry written with its data that the core's last \
             start dropped at replay because the data's record was damaged or missing",
            m.core_guarded_pairs_dropped.clone(),
        );
        registry.register(
            "core_cache_evictions",
            "Entries each core's cache dropped to stay within its budget",
            m.core_cache_evictions.clone(),
        );
        registry.register(
            "core_cache_bytes",
            "Bytes each core's cache holds (payloads and per-entry overhead)",
            m.core_cache_bytes.clone(),
        );
        registry.register(
            "http_connections",
            "S3 connections each core holds (a node's cores accept from one port and keep what \
             they accepted; \"core N\" is the node's N-th core)",
            m.http_connections.clone(),
        );
        registry.register(
            "core_cache_budget_bytes",
            "Each core's cache budget (cache_mib; 0: disabled)",
            m.core_cache_budget_bytes.clone(),
        );
        registry.register(
            "notify_events",
            "Bucket notification events, by result (queued; delivered: a webhook answered 2xx; \
             failed_attempts: a delivery attempt that did not; dropped: not queued, the queue \
             was full or its file could not be written)",
            m.notify_events.clone(),
        );
        registry.register(
            "notify_queued",
            "Bucket notification events waiting in this node's queue",
            m.notify_queued.clone(),
        );
        registry.register(
            "layout_version",
            "The layout version this process routes by alone (a change in progress: its old \
             one), as the control plane's map says",
            m.layout_version.clone(),
        );
        registry.register(
            "layout_change_groups",
            "Placement groups of the last layout change, by phase (pending, moving, handoff, cut_over, \
             done), as the control plane's map this process applied says",
            m.layout_change_groups.clone(),
        );
        registry.register(
            "layout_moved",
            "What this node's mover copied in the change it moves, by kind (records, \
             fragments, bytes, in_place: fragments found on their new core already, retired: \
             old fragments deleted); 0 on nodes that do not move",
            m.layout_moved.clone(),
        );
        registry.register(
            "layout_move_eta_seconds",
            "Seconds this node's mover expects to need for the groups left, at its rate so far \
             (0: nothing moving here)",
            m.layout_move_eta_seconds.clone(),
        );
        registry.register(
            "scrub_fragments",
            "Fragments the scrub checked on each core, by result (verified: the core read and \
             checked it; corrupt, missing: of those, found damaged or absent; repaired, \
             repair_failed: their rewrite from the rest of the stripe; unreachable: not \
             checked, the core did not answer)",
            m.scrub_fragments.clone(),
        );
        registry.register(
            "scrub_bytes",
            "Bytes of fragments the scrub read and checked on each core",
            m.scrub_bytes.clone(),
        );
        registry.register(
            "scrub_last_pass_end_ms",
            "When the last scrub pass over the versions each core is primary of ended (Unix ms)",
            m.scrub_last_pass_end_ms.clone(),
        );
        registry.register(
            "scrub_passes",
            "Scrub passes ended over the versions each core is primary of",
            m.scrub_passes.clone(),
        );
        registry.register(
            "scrub_records",
            "Object metadata records the scrub compared across their replicas, by the core \
             walked and result (checked; converged: a replica differed and a quorum read \
             repaired it; unreachable: a replica did not answer)",
            m.scrub_records.clone(),
        );
        registry.register(
            "scrub_digests",
            "Batches of metadata records the scrub compared with a replica core by one digest, \
             by the replica asked and result (same: nothing more asked; differ: the versions \
             were then asked for; failed: no digest, e.g. a core that predates the request)",
            m.scrub_digests.clone(),
        );
        registry.register(
            "orphan_fragments",
            "Fragments no record references, older than the orphan grace, that the orphan sweep \
             removed from each core (result: deleted, failed)",
            m.orphan_fragments.clone(),
        );
        registry.register(
            "orphan_sweeps",
            "Orphan sweeps this process ran after its scrub passes (result: done; stopped: a \
             core could not be read or a record did not decode, and its last round deleted \
             nothing)",
            m.orphan_sweeps.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Adds one lifecycle pass: its actions, and the per-class inventory it counted.
    pub fn record_lifecycle(&self, s: &LifecycleStats) {
        let result = |r: &str| ResultLabel { result: r.into() };
        self.transitions
            .get_or_create(&result("done"))
            .inc_by(s.transitioned);
        self.transitions
            .get_or_create(&result("failed"))
            .inc_by(s.failed);
        self.transitioned_bytes.inc_by(s.transitioned_bytes);
        self.expired.inc_by(s.expired);
        self.versions_deleted.inc_by(s.versions_deleted);
        self.uploads_aborted.inc_by(s.uploads_aborted);
        self.reclaimed.inc_by(s.reclaimed);
        self.strays_removed.inc_by(s.strays_removed);
        self.restores_ended.inc_by(s.restores_ended);
        for class in StorageClass::ALL {
            let label = ClassLabel {
                class: class.as_str().into(),
            };
            let i = class.index();
            self.objects.get_or_create(&label).set(s.objects[i]);
            self.object_bytes
                .get_or_create(&label)
                .set(s.object_bytes[i]);
        }
        for (i, tier) in ["nvme", "ssd", "hdd"].iter().enumerate() {
            let label = TierLabel {
                tier: (*tier).to_owned(),
            };
            self.tier_bytes.get_or_create(&label).set(s.tier_bytes[i]);
        }
    }

    /// One core's counters (`name`: `node/index`, or `core i` on a single node).
    pub fn record_core(&self, name: &str, s: &proto::CoreStats) {
        let label = CoreLabel {
            core: name.to_owned(),
        };
        self.core_fragments.get_or_create(&label).set(s.fragments);
        self.core_live_bytes.get_or_create(&label).set(s.live_bytes);
        self.core_log_appended_bytes
            .get_or_create(&label)
            .set(s.log_appended_bytes);
        self.core_meta_bytes.get_or_create(&label).set(s.meta_bytes);
        self.core_free_bytes.get_or_create(&label).set(s.free_bytes);
        self.core_poisoned
            .get_or_create(&label)
            .set(u64::from(s.poisoned));
        self.core_checkpoint_rebuilt
            .get_or_create(&label)
            .set(u64::from(s.checkpoint_rebuilt));
        self.core_corrupt_records_replayed
            .get_or_create(&label)
            .set(s.corrupt_records_replayed);
        self.core_corrupt_reads
            .get_or_create(&label)
            .set(s.corrupt_reads);
        for (result, n) in [("hit", s.cache_hits), ("miss", s.cache_misses)] {
            let label = CoreResultLabel {
                core: name.to_owned(),
                result: result.to_owned(),
            };
            self.core_cache_reads.get_or_create(&label).set(n);
        }
        self.core_cache_evictions
            .get_or_create(&label)
            .set(s.cache_evictions);
        self.core_cache_bytes
            .get_or_create(&label)
            .set(s.cache_bytes);
        self.core_cache_budget_bytes
            .get_or_create(&label)
            .set(s.cache_budget_bytes);
        self.core_free_segment_files
            .get_or_create(&label)
            .set(s.free_segment_files);
        self.core_segments_reused
            .get_or_create(&label)
            .set(s.segments_reused);
        self.core_replay_stale_stops
            .get_or_create(&label)
            .set(s.replay_stale_stops);
        self.core_guarded_pairs_dropped
            .get_or_create(&label)
            .set(s.guarded_pairs_dropped);
    }

    /// The S3 connections the node's core `core` (its index on this node) holds now.
    pub fn http_connections(&self, core: usize, held: usize) {
        let label = CoreLabel {
            core: format!("core {core}"),
        };
        self.http_connections.get_or_create(&label).set(held as u64);
    }

    /// A core that started offline, and why (a core never comes back online in the same
    /// process, so the gauge stays).
    pub fn record_core_offline(&self, name: &str, reason: &str) {
        let label = OfflineLabel {
            core: name.to_owned(),
            reason: reason.to_owned(),
        };
        self.core_offline.get_or_create(&label).set(1);
    }

    /// A background worker's queue grew (+1) or shrank (−1).
    pub fn background_queued(&self, worker: &str, delta: i64) {
        let label = WorkerLabel {
            worker: worker.to_owned(),
        };
        self.background_queued.get_or_create(&label).inc_by(delta);
    }

    /// The bytes a background worker's queue holds grew or shrank by `delta`.
    pub fn background_queued_bytes(&self, worker: &str, delta: i64) {
        let label = WorkerLabel {
            worker: worker.to_owned(),
        };
        self.background_queued_bytes
            .get_or_create(&label)
            .inc_by(delta);
    }

    pub fn background_dropped(&self, worker: &str) {
        let label = WorkerLabel {
            worker: worker.to_owned(),
        };
        self.background_dropped.get_or_create(&label).inc();
    }

    /// A bucket notification event's fate (`notify_queue`).
    pub fn notify_event(&self, result: &str) {
        let label = ResultLabel {
            result: result.to_owned(),
        };
        self.notify_events.get_or_create(&label).inc();
    }

    /// The map's layout and its change's groups by phase (`[(phase, groups)]`).
    pub fn record_layout(&self, version: u64, groups: &[(&str, u64)]) {
        self.layout_version.set(version);
        for (phase, n) in groups {
            self.layout_change_groups
                .get_or_create(&PhaseLabel {
                    phase: (*phase).to_owned(),
                })
                .set(*n);
        }
    }

    /// What this node's mover did so far (`[(kind, count)]`) and its estimate of the rest.
    pub fn record_move(&self, moved: &[(&str, u64)], eta_seconds: u64) {
        for (kind, n) in moved {
            self.layout_moved
                .get_or_create(&KindLabel {
                    kind: (*kind).to_owned(),
                })
                .set(*n);
        }
        self.layout_move_eta_seconds.set(eta_seconds);
    }

    pub fn notify_queued(&self, events: u64) {
        self.notify_queued.set(events);
    }

    pub fn record_repair(&self, replayed: u64, pending: u64) {
        self.hints_replayed.inc_by(replayed);
        self.hints_pending.set(pending);
    }

    /// Fragments the scrub checked on core `name` (`scrub::Counts`).
    pub fn record_scrub(&self, name: &str, c: &objects::scrub::Counts) {
        for (result, n) in [
            ("verified", c.verified),
            ("corrupt", c.corrupt),
            ("missing", c.missing),
            ("repaired", c.repaired),
            ("repair_failed", c.repair_failed),
            ("unreachable", c.unreachable),
        ] {
            let label = CoreResultLabel {
                core: name.to_owned(),
                result: result.to_owned(),
            };
            self.scrub_fragments.get_or_create(&label).inc_by(n);
        }
        let label = CoreLabel {
            core: name.to_owned(),
        };
        self.scrub_bytes.get_or_create(&label).inc_by(c.bytes);
    }

    /// A metadata record the scrub compared across its replicas from core `name`
    /// (`result`: checked, converged or unreachable).
    pub fn record_scrub_digest(&self, name: &str, result: &str) {
        let label = CoreResultLabel {
            core: name.to_owned(),
            result: result.to_owned(),
        };
        self.scrub_digests.get_or_create(&label).inc();
    }

    pub fn record_scrub_record(&self, name: &str, result: &str) {
        let label = CoreResultLabel {
            core: name.to_owned(),
            result: result.to_owned(),
        };
        self.scrub_records.get_or_create(&label).inc();
    }

    /// An orphaned fragment the sweep removed from core `name` (`result`: deleted, failed).
    pub fn record_orphan(&self, name: &str, result: &str) {
        let label = CoreResultLabel {
            core: name.to_owned(),
            result: result.to_owned(),
        };
        self.orphan_fragments.get_or_create(&label).inc();
    }

    /// An orphan sweep ended (`result`: done, stopped).
    pub fn orphan_sweep_ended(&self, result: &str) {
        let label = ResultLabel {
            result: result.to_owned(),
        };
        self.orphan_sweeps.get_or_create(&label).inc();
    }

    /// A scrub pass over the versions core `name` is primary of ended (`ended`), or was
    /// read from the core's record at start (not counted as a pass of this process).
    pub fn scrub_pass_ended(&self, name: &str, r: &objects::scrub::ScrubRecord, ended: bool) {
        let label = CoreLabel {
            core: name.to_owned(),
        };
        self.scrub_last_pass_end_ms
            .get_or_create(&label)
            .set(r.end_ms);
        if ended {
            self.scrub_passes.get_or_create(&label).inc();
        }
    }

    /// A request run again after a layout refusal (`serve::rerun`): `served`, `not_applied` or
    /// `refused_again`.
    pub fn request_rerouted(&self, result: &str) {
        self.requests_rerouted
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn read_repair(&self, outcome: &str) {
        self.read_repairs
            .get_or_create(&ResultLabel {
                result: outcome.into(),
            })
            .inc();
    }

    /// Reports the hits and misses of `cache` from now on.
    pub fn watch_bucket_cache(&self, cache: Arc<objects::bucket_cache::BucketCache>) {
        *self.bucket_cache.lock().expect("metrics lock") = Some(cache);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let watched = self.bucket_cache.lock().expect("metrics lock").clone();
        if let Some((hits, misses)) = watched.map(|c| c.counts()) {
            for (result, n) in [("hit", hits), ("miss", misses)] {
                self.bucket_cache_reads
                    .get_or_create(&ResultLabel {
                        result: result.into(),
                    })
                    .set(n);
            }
        }
        let calls = cluster::backend::meta_calls();
        for (kind, n) in [
            ("get", calls.gets),
            ("put", calls.puts),
            ("conditional_put", calls.conditional_puts),
            ("delete", calls.deletes),
            ("scan", calls.scans),
            ("put_with_data", calls.puts_with_data),
        ] {
            self.meta_calls
                .get_or_create(&KindLabel { kind: kind.into() })
                .set(n);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_inventory_show_up() {
        let m = Metrics::default();
        let mut stats = LifecycleStats {
            transitioned: 2,
            transitioned_bytes: 300,
            failed: 1,
            ..LifecycleStats::default()
        };
        stats.objects[StorageClass::Glacier.index()] = 2;
        m.record_lifecycle(&stats);
        stats.objects[StorageClass::Glacier.index()] = 4;
        m.record_lifecycle(&stats);
        let text = m.encode();
        assert!(
            text.contains("percore_lifecycle_transitions_total{result=\"done\"} 4"),
            "{text}"
        );
        assert!(text.contains("percore_lifecycle_transitions_total{result=\"failed\"} 2"));
        assert!(
            text.contains("percore_objects{class=\"GLACIER\"} 4"),
            "{text}"
        );
        assert!(text.contains("percore_object_bytes{class=\"STANDARD\"} 0"));
        m.background_queued_bytes("retire", 500);
        m.background_queued_bytes("retire", -200);
        let text = m.encode();
        assert!(
            text.contains("percore_background_queued_bytes{worker=\"retire\"} 300"),
            "{text}"
        );
    }
}
