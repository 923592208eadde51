//! The object service's background work, owned and bounded: a request that leaves work behind
//! (the retirement of a replaced version's chunks, a restore, an access-tier move, the repair
//! of a fragment a read found missing or damaged) hands it to
//! a [`Worker`] instead of spawning a task of its own. Each worker has a queue bound
//! (`*_QUEUE_MAX`) and a concurrency bound (`*_CONCURRENCY_MAX`); its depth and what it had to
//! drop are told to the service's [`Observer`] (the gateway shows them in `/-/metrics`:
//! `percore_background_queued`, `percore_background_dropped`), and it stops when the service
//! that owns it is dropped (the queue's senders go, the loop ends). Retirements, which come
//! with every overwrite and delete, have a schedule of their own (`retire`: compact entries
//! bounded by bytes, not boxed jobs), counted under the same names.
//!
//! Before this, each such request called `tokio::spawn`: a burst of overwrites left one
//! sleeping task per replaced version, with no bound and nothing to see. A job a full queue
//! refuses is not lost work but deferred work: unretired chunks are orphans for the orphan
//! sweep, a restore stays ongoing and the lifecycle pass retries it, an access-tier move waits
//! for the object's next read, a repair waits for the next read that finds the damage (or the
//! scrub).
//!
//! Deliberately not here: the periodic passes (lifecycle, repair), which the gateway starts
//! once per process, and the engine's own background work (reclaim), which runs on the cores.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use cluster::backend::Backend;
use cluster::ec::Policy;
use proto::FragmentId;

use crate::limits::{
    ACCESS_CONCURRENCY_MAX, ACCESS_QUEUE_MAX, REPAIR_CONCURRENCY_MAX, REPAIR_QUEUE_MAX,
    RESTORE_CONCURRENCY_MAX, RESTORE_QUEUE_MAX,
};
use crate::observe::{Observer, Unobserved};
use crate::retire::Retirements;

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Job {
    not_before: Instant,
    work: Work,
}

/// Between two warnings of one worker's full queue: each dropped job is counted in the
/// metrics; the log says so once per period, with how many (one line per job flooded the log
/// under sustained overwrites: 338,546 lines in one perf-suite run).
pub(crate) const FULL_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// When a full queue is worth a warning: the first refusal, then at most once per
/// `FULL_WARNING_EVERY`, with the refusals since the last warning.
#[derive(Debug, Default)]
pub(crate) struct FullWarnings {
    last: Option<Instant>,
    unsaid: u64,
}

impl FullWarnings {
    /// Notes one refusal at `now`; `Some(refusals)` when a warning is due.
    pub(crate) fn refused(&mut self, now: Instant) -> Option<u64> {
        self.unsaid += 1;
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < FULL_WARNING_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unsaid))
    }
}

/// One kind of background work: a bounded FIFO queue of jobs, each run no earlier than its
/// `not_before`, at most `concurrency_max` at once.
pub struct Worker {
    name: &'static str,
    observer: Arc<dyn Observer>,
    concurrency_max: usize,
    queue: mpsc::Sender<Job>,
    /// The receiving end until the loop is started (on the first job, inside a runtime).
    pending: Mutex<Option<mpsc::Receiver<Job>>>,
    started: OnceLock<()>,
    full: Mutex<FullWarnings>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("concurrency_max", &self.concurrency_max)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        name: &'static str,
        queue_max: usize,
        concurrency_max: usize,
        observer: Arc<dyn Observer>,
    ) -> Worker {
        assert!(queue_max > 0 && concurrency_max > 0);
        let (queue, pending) = mpsc::channel(queue_max);
        Worker {
            name,
            observer,
            concurrency_max,
            queue,
            pending: Mutex::new(Some(pending)),
            started: OnceLock::new(),
            full: Mutex::new(FullWarnings::default()),
        }
    }

    /// Queues `work` to run after `delay`. Returns false, and counts the job as dropped, when
    /// the queue is full (module docs: what a dropped job of each kind means).
    pub fn submit(
        &self,
        delay: std::time::Duration,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> bool {
        self.start();
        let job = Job {
            not_before: Instant::now() + delay,
            work: Box::pin(work),
        };
        if self.queue.try_send(job).is_ok() {
            self.observer.queued(self.name, 1);
            true
        } else {
            self.observer.dropped(self.name);
            let due = self
                .full
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .refused(Instant::now());
            if let Some(jobs) = due {
                tracing::warn!(
                    worker = self.name,
                    jobs,
                    "background queue full: jobs deferred (percore_background_dropped counts \
                     them; said at most once per {}s)",
                    FULL_WARNING_EVERY.as_secs()
                );
            }
            false
        }
    }

    fn start(&self) {
        self.started.get_or_init(|| {
            let pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let receiver = pending.expect("a worker's loop starts once");
            let observer = self.observer.clone();
            tokio::spawn(run(self.name, receiver, self.concurrency_max, observer));
        });
    }
}

/// Jobs in order, each after its time, at most `concurrency_max` running. Ends when every
/// sender is gone and the queue is empty.
async fn run(
    name: &'static str,
    mut receiver: mpsc::Receiver<Job>,
    concurrency_max: usize,
    observer: Arc<dyn Observer>,
) {
    let running = Arc::new(Semaphore::new(concurrency_max));
    while let Some(job) = receiver.recv().await {
        tokio::time::sleep_until(job.not_before).await;
        let Ok(permit) = running.clone().acquire_owned().await else {
            return;
        };
        observer.queued(name, -1);
        tokio::spawn(async move {
            job.work.await;
            drop(permit);
        });
    }
}

/// The workers of one object service (one `Store` and its clones).
pub struct Workers {
    /// Deletes the chunks of replaced and deleted versions after the retirement grace.
    pub retire: Retirements,
    /// Completes restores of archived objects.
    pub restore: Worker,
    /// Records intelligent-tiering accesses and moves objects back to the frequent tier.
    pub access: Worker,
    /// Rewrites fragments reads found missing or damaged (`repair_on_read`).
    pub repair: Worker,
    /// The fragments (core, id) whose repair is queued or running: a burst of reads of one
    /// damaged object queues each repair once.
    repairing: Arc<Mutex<std::collections::HashSet<(usize, FragmentId)>>>,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("retire", &self.retire)
            .field("restore", &self.restore)
            .field("access", &self.access)
            .field("repair", &self.repair)
            .finish_non_exhaustive()
    }
}

impl Default for Workers {
    fn default() -> Workers {
        Workers::new(Arc::new(Unobserved))
    }
}

impl Workers {
    /// The retirement schedule and the three workers, counted by `observer`.
    pub fn new(observer: Arc<dyn Observer>) -> Workers {
        let worker = |name, queue_max, concurrency_max| {
            Worker::new(name, queue_max, concurrency_max, observer.clone())
        };
        Workers {
            retire: Retirements::new(observer.clone()),
            restore: worker("restore", RESTORE_QUEUE_MAX, RESTORE_CONCURRENCY_MAX),
            access: worker("access", ACCESS_QUEUE_MAX, ACCESS_CONCURRENCY_MAX),
            repair: worker("repair", REPAIR_QUEUE_MAX, REPAIR_CONCURRENCY_MAX),
            repairing: Arc::default(),
            observer,
        }
    }

    /// Queues the rewrite of fragment `id` on `core` from the rest of its stripe (stored
    /// under `policy` on `cores`), which a read found missing or damaged there: repair on
    /// read, so the next read of it is healthy again instead of degraded every time. Runs in
    /// the cores' low-share queue; counted in `percore_read_repairs_total`.
    pub fn repair_on_read(
        &self,
        backend: &Arc<Backend>,
        core: usize,
        id: FragmentId,
        policy: Policy,
        cores: &[usize],
    ) {
        let mark = (core, id);
        if !self
            .repairing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(mark)
        {
            return;
        }
        let (backend, cores, repairing) = (backend.clone(), cores.to_vec(), self.repairing.clone());
        let observer = self.observer.clone();
        let queued = self.repair.submit(std::time::Duration::ZERO, async move {
            let result =
                cluster::backend::in_background(backend.repair_fragment(core, id, policy, &cores))
                    .await;
            let outcome = match &result {
                Ok(true) => "repaired",
                Ok(false) => "gone",
                Err(_) => "failed",
            };
            if let Err(e) = &result {
                tracing::warn!(core = backend.core_name(core), error = %e, "repair on read failed");
            }
            observer.read_repair(outcome);
            repairing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&mark);
        });
        if !queued {
            self.repairing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn runs_in_order_after_the_delay_within_the_bounds() {
        let worker = Worker::new("test-order", 8, 2, Arc::new(Unobserved));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..6 {
            let (running, most, done) = (running.clone(), most.clone(), done.clone());
            assert!(worker.submit(Duration::from_secs(30), async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "nothing runs before its delay"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(done.load(Ordering::SeqCst), 6);
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "at most the concurrency bound at once"
        );
    }

    #[test]
    fn a_full_queue_is_said_once_per_period_with_the_count() {
        let mut w = FullWarnings::default();
        let t0 = Instant::now();
        assert_eq!(w.refused(t0), Some(1), "the first refusal is said");
        let quiet: Vec<_> = (1..1000)
            .map(|i| w.refused(t0 + Duration::from_millis(i)))
            .collect();
        assert!(
            quiet.iter().all(Option::is_none),
            "then nothing within the period"
        );
        let later = t0 + FULL_WARNING_EVERY;
        assert_eq!(w.refused(later), Some(1000), "999 unsaid and this one");
        assert_eq!(w.refused(later + Duration::from_secs(1)), None);
        assert_eq!(w.refused(later + FULL_WARNING_EVERY * 3), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_instead_of_growing() {
        let worker = Worker::new("test-full", 2, 1, Arc::new(Unobserved));
        let accepted = (0..5)
            .filter(|_| worker.submit(Duration::from_secs(60), async {}))
            .count();
        // The loop may already hold one job it is waiting to run: 2 queued + at most 1 taken.
        assert!((2..=3).contains(&accepted), "accepted {accepted}");
    }
}
