//! What the object service tells about its background work: the counts the gateway shows in
//! `/-/metrics`. The service never names the metrics registry; it calls its [`Observer`],
//! whose every method has a default that ignores the count (tests and simulations need none).

use crate::lifecycle::LifecycleStats;
use crate::scrub::{Counts, ScrubRecord};

pub trait Observer: Send + Sync + 'static {
    /// `delta` jobs entered (+) or left (-) `worker`'s queue (`workers`).
    fn queued(&self, worker: &'static str, delta: i64) {
        let _ = (worker, delta);
    }

    /// The bytes `worker`'s queue holds grew (+) or shrank (-) by `delta` (the retirement
    /// schedule's: `retire`).
    fn queued_bytes(&self, worker: &'static str, delta: i64) {
        let _ = (worker, delta);
    }

    /// A full queue of `worker` refused a job.
    fn dropped(&self, worker: &'static str) {
        let _ = worker;
    }

    /// A repair on read ended: "repaired", "gone" or "failed".
    fn read_repair(&self, outcome: &'static str) {
        let _ = outcome;
    }

    /// The scrub checked fragments held by core `core` (`scrub`).
    fn scrubbed(&self, core: &str, counts: &Counts) {
        let _ = (core, counts);
    }

    /// The scrub compared a record of core `core` with its replicas: "checked", "converged"
    /// or "unreachable".
    fn scrub_record(&self, core: &str, result: &'static str) {
        let _ = (core, result);
    }

    /// The scrub compared a batch of core `core`'s records by digest: "same", "differ" or
    /// "failed".
    fn scrub_digest(&self, core: &str, result: &'static str) {
        let _ = (core, result);
    }

    /// Core `core`'s last scrub pass, as its record says (`ended`: the pass just ended, not
    /// read back at a start).
    fn scrub_pass(&self, core: &str, record: &ScrubRecord, ended: bool) {
        let _ = (core, record, ended);
    }

    /// The orphan sweep deleted (or failed to delete) a fragment of core `core`
    /// (`orphans`): "deleted" or "failed".
    fn orphan(&self, core: &str, result: &'static str) {
        let _ = (core, result);
    }

    /// A lifecycle pass ended, having done `stats` (`lifecycle::pass`).
    fn lifecycle_pass(&self, stats: &LifecycleStats) {
        let _ = stats;
    }

    /// An orphan sweep ended: "done" or "stopped".
    fn orphan_sweep(&self, result: &'static str) {
        let _ = result;
    }
}

/// The observer that ignores every count.
#[derive(Debug, Default)]
pub struct Unobserved;

impl Observer for Unobserved {}
