//! The retirement schedule: the chunks of replaced and deleted versions, deleted once their
//! grace is over (`Store::retire_chunks`). One compact entry per retired version (what the
//! delete needs and no more: the bucket's scope, shared by the entries of one bucket, the key,
//! the parts, the policy and tier, when it is due) in a FIFO bounded by bytes
//! (`RETIRE_SCHEDULE_BYTES_MAX`), drained by one task that runs due entries, at most
//! `RETIRE_CONCURRENCY_MAX` at once.
//!
//! Why not a generic [`Worker`](crate::workers::Worker): its jobs were boxed futures each
//! holding a whole `ObjectHead`, in a queue of 16,384 jobs; at a 30 s grace that is 546
//! retirements a second, and a suite run overwriting 4 KiB keys at ~7,500/s dropped most of
//! them (issue #16): the replaced chunks stayed on disk until the orphan sweep after the next
//! scrub pass. An entry here is ~170 bytes for a small object, so the bound holds the
//! retirements of 10,000 overwrites a second through the whole grace (`limits`).
//!
//! A retirement the full schedule refuses is deferred, not lost: its chunks are orphans for
//! the orphan sweep. It is counted (`percore_background_dropped{worker="retire"}`) and said in
//! the log at most once per 10 s; the request that replaced the version never waits. The
//! schedule's length and bytes are `percore_background_queued` and
//! `percore_background_queued_bytes` (`worker="retire"`).
//!
//! Deliberately not here: how a stripe is deleted and where a version's chunks are
//! (`store::delete_stripe_on`, `store::object_placement`, the store's own), and the other
//! kinds of background work (`workers`).

use std::collections::VecDeque;
use std::mem::{size_of, size_of_val};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use cluster::backend::Backend;
use cluster::ec::Policy;
use placement::Tier;

use crate::limits::{
    KEY_BYTES_MAX, PARTS_MAX, RETIRE_CONCURRENCY_MAX, RETIRE_SCHEDULE_BYTES_MAX,
    RETIRE_SMALL_ENTRIES_MIN, RETIRE_SMALL_KEY_BYTES,
};
use crate::observe::Observer;
use crate::records::{part_stripes, ObjectHead, PartRef};
use crate::workers::{FullWarnings, FULL_WARNING_EVERY};

/// The name the schedule's counts go by (`Observer`), as the generic worker's did.
const NAME: &str = "retire";

/// Entries per block of the schedule's ring. The ring grows and shrinks a block at a time, so
/// it never copies itself while a request waits on its lock (a doubling `VecDeque` of 300,000
/// entries would move ~20 MB at once) and what it holds is what it counts: at most two
/// part-empty blocks (a `VecDeque` keeps its peak capacity, up to as much again as its
/// length, after a burst).
const BLOCK_ENTRIES: usize = 1024;
/// Bytes of one entry's slot, and of one block of slots.
const SLOT_BYTES: usize = size_of::<Retired>();
const BLOCK_BYTES: usize = BLOCK_ENTRIES * SLOT_BYTES;
/// Bytes of a scope held in an `Arc<str>`: its text and the two counts before it.
const fn scope_bytes(len: usize) -> usize {
    len + 2 * size_of::<usize>()
}
/// A bucket's scope (`records::scope_of`): its name, '/' and the incarnation's id in hex.
const SCOPE_BYTES_MAX: usize =
    crate::limits::BUCKET_NAME_BYTES_MAX + 1 + 2 * size_of::<crate::records::BucketId>();

/// The small entry the bound is sized for: a key of `RETIRE_SMALL_KEY_BYTES`, one part, its
/// scope shared with the entry before.
const SMALL_ENTRY_BYTES: usize = SLOT_BYTES + RETIRE_SMALL_KEY_BYTES + size_of::<PartRef>();
/// The largest entry: the longest key, the most parts, a scope of its own.
const LARGEST_ENTRY_BYTES: usize =
    SLOT_BYTES + KEY_BYTES_MAX + PARTS_MAX * size_of::<PartRef>() + scope_bytes(SCOPE_BYTES_MAX);

const _: () = assert!(SLOT_BYTES <= 80, "an entry stays compact");
const _: () = assert!(
    RETIRE_SMALL_ENTRIES_MIN * SMALL_ENTRY_BYTES + 2 * BLOCK_BYTES <= RETIRE_SCHEDULE_BYTES_MAX,
    "the schedule holds a grace of small overwrites at the rate it is sized for"
);
const _: () = assert!(
    LARGEST_ENTRY_BYTES + BLOCK_BYTES <= RETIRE_SCHEDULE_BYTES_MAX,
    "any one version's retirement fits an empty schedule"
);

/// One retired version: what deleting its chunks needs, and no more. Placed when it runs,
/// not when it is scheduled (`retire`).
struct Retired {
    /// Not run before this instant: the grace is over.
    due: Instant,
    /// The bucket's scope, shared with the entry before when it is the same (overwrites come
    /// in runs per bucket).
    scope: Arc<str>,
    key: Box<str>,
    parts: Box<[PartRef]>,
    chunk_bytes: u32,
    policy: Policy,
    tier: Tier,
    /// Whether this entry's bytes count the scope (it allocated it: the entry before had
    /// another). Entries come in due order, so the entries sharing a scope are a run of the
    /// ring; once the first of the front run has left, its scope is held uncounted until the
    /// run's last leaves: one scope at most, ≤ 112 bytes.
    scope_counted: bool,
}

impl Retired {
    /// Bytes this entry holds beyond its slot.
    fn heap_bytes(&self) -> usize {
        let scope = if self.scope_counted {
            scope_bytes(self.scope.len())
        } else {
            0
        };
        self.key.len() + size_of_val(&*self.parts) + scope
    }
}

/// A version's retirement before it takes its place in the schedule (made outside the lock).
struct Pending {
    key: Box<str>,
    parts: Box<[PartRef]>,
    chunk_bytes: u32,
    policy: Policy,
    tier: Tier,
}

/// The entries in due order, in blocks of `BLOCK_ENTRIES`, and what they hold.
#[derive(Default)]
struct Schedule {
    blocks: VecDeque<VecDeque<Retired>>,
    entries: usize,
    /// Every block's slots, and what the entries hold beyond them.
    bytes: usize,
    /// The owner is gone: the drain ends once the schedule is empty.
    closed: bool,
    full: FullWarnings,
}

impl Schedule {
    /// Appends a retirement due `grace` after `now`, or not before the last entry's: the
    /// schedule stays in due order, so the drain only looks at its front. (A store clone with
    /// a shorter test day after a longer one waits for it: late is safe, early is not.)
    /// Returns the bytes it added, or `None` when they would pass the bound.
    fn push(&mut self, now: Instant, grace: Duration, scope: &str, p: Pending) -> Option<usize> {
        let last = self.blocks.back().and_then(VecDeque::back);
        let due = last.map_or(now + grace, |l| l.due.max(now + grace));
        let shared = last.filter(|l| *l.scope == *scope).map(|l| l.scope.clone());
        let block_full = self.blocks.back().is_none_or(|b| b.len() == BLOCK_ENTRIES);
        let scope_counted = shared.is_none();
        let added = p.key.len()
            + size_of_val(&*p.parts)
            + if scope_counted {
                scope_bytes(scope.len())
            } else {
                0
            }
            + if block_full { BLOCK_BYTES } else { 0 };
        if self.bytes + added > RETIRE_SCHEDULE_BYTES_MAX {
            return None;
        }
        if block_full {
            self.blocks
                .push_back(VecDeque::with_capacity(BLOCK_ENTRIES));
        }
        let entry = Retired {
            due,
            scope: shared.unwrap_or_else(|| Arc::from(scope)),
            key: p.key,
            parts: p.parts,
            chunk_bytes: p.chunk_bytes,
            policy: p.policy,
            tier: p.tier,
            scope_counted,
        };
        let block = self.blocks.back_mut().expect("a block with room");
        assert!(
            block.len() < BLOCK_ENTRIES,
            "a block never grows past its slots"
        );
        block.push_back(entry);
        self.entries += 1;
        self.bytes += added;
        assert!(self.bytes <= RETIRE_SCHEDULE_BYTES_MAX);
        Some(added)
    }

    /// When the first entry is due, if there is one.
    fn front_due(&self) -> Option<Instant> {
        self.blocks.front().and_then(VecDeque::front).map(|e| e.due)
    }

    /// The first entry if it is due at `now`, with the bytes its leaving frees.
    fn pop_due(&mut self, now: Instant) -> Option<(Retired, usize)> {
        let front = self.blocks.front_mut()?;
        if front.front().is_none_or(|e| e.due > now) {
            return None;
        }
        let entry = front.pop_front().expect("checked above");
        let mut freed = entry.heap_bytes();
        if front.is_empty() {
            self.blocks.pop_front();
            freed += BLOCK_BYTES;
        }
        assert!(self.entries > 0 && self.bytes >= freed, "the counts add up");
        self.entries -= 1;
        self.bytes -= freed;
        assert_eq!(
            self.entries == 0,
            self.bytes == 0,
            "an empty schedule holds nothing"
        );
        Some((entry, freed))
    }
}

struct Shared {
    /// A plain lock: a push or a pop holds it for a few hundred nanoseconds (no allocation
    /// but a block's or a new bucket's scope, no copy of the ring), and requests run on the
    /// gateway's threads, not on the cores.
    schedule: Mutex<Schedule>,
    /// Told when an entry arrives in an empty schedule, and when the owner goes.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The retirement schedule of one object service (its `Workers`). Dropping it lets the
/// drain run what is scheduled, at its time, and end.
pub struct Retirements {
    shared: Arc<Shared>,
    observer: Arc<dyn Observer>,
    /// The backend the drain deletes through, bound by the first retirement (inside a
    /// runtime), which starts the drain.
    backend: OnceLock<Arc<Backend>>,
}

impl std::fmt::Debug for Retirements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.len_and_bytes();
        f.debug_struct("Retirements")
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

impl Retirements {
    pub fn new(observer: Arc<dyn Observer>) -> Retirements {
        Retirements {
            shared: Arc::new(Shared {
                schedule: Mutex::new(Schedule::default()),
                wake: Notify::new(),
            }),
            observer,
            backend: OnceLock::new(),
        }
    }

    /// Schedules the deletion, through `backend`, of `head`'s chunks (its parts, stored
    /// under `scope` and `key`) once `grace` is over. Returns false when the schedule is full:
    /// the retirement is dropped (its chunks are left for the orphan sweep), counted, and
    /// said in the log at most once per `FULL_WARNING_EVERY`. Never waits.
    pub fn schedule(
        &self,
        backend: &Arc<Backend>,
        grace: Duration,
        scope: &str,
        key: &str,
        head: ObjectHead,
    ) -> bool {
        if head.parts.is_empty() {
            return true;
        }
        self.start(backend);
        let pending = Pending {
            key: key.into(),
            parts: head.parts.into_boxed_slice(),
            chunk_bytes: head.chunk_bytes,
            policy: head.policy,
            tier: head.tiering.tier,
        };
        let mut s = self.shared.lock();
        let was_empty = s.entries == 0;
        let now = Instant::now();
        let pushed = s.push(now, grace, scope, pending);
        let warn = if pushed.is_none() {
            s.full.refused(now)
        } else {
            None
        };
        drop(s);
        let Some(added) = pushed else {
            self.observer.dropped(NAME);
            if let Some(retirements) = warn {
                tracing::warn!(
                    worker = NAME,
                    retirements,
                    bytes_max = RETIRE_SCHEDULE_BYTES_MAX,
                    "retirement schedule full: replaced chunks left for the orphan sweep \
                     (percore_background_dropped counts them; said at most once per {}s)",
                    FULL_WARNING_EVERY.as_secs()
                );
            }
            return false;
        };
        self.observer.queued(NAME, 1);
        self.observer.queued_bytes(NAME, added as i64);
        if was_empty {
            // The drain waits on this only when the schedule is empty: the due order means a
            // later entry never comes before the front.
            self.shared.wake.notify_one();
        }
        true
    }

    /// Entries scheduled and the bytes they hold (their blocks of slots included).
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let s = self.shared.lock();
        (s.entries, s.bytes)
    }

    fn start(&self, backend: &Arc<Backend>) {
        let bound = self.backend.get_or_init(|| {
            let drain = drain(self.shared.clone(), backend.clone(), self.observer.clone());
            tokio::spawn(drain);
            backend.clone()
        });
        assert!(
            Arc::ptr_eq(bound, backend),
            "one service's retirements go through one backend"
        );
    }
}

impl Drop for Retirements {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Runs the due entries, at most `RETIRE_CONCURRENCY_MAX` at once, in this one task. Ends
/// when the owner is gone and nothing is scheduled or running.
async fn drain(shared: Arc<Shared>, backend: Arc<Backend>, observer: Arc<dyn Observer>) {
    let mut running = FuturesUnordered::new();
    loop {
        let (mut left, mut freed) = (0i64, 0usize);
        let next = {
            let mut s = shared.lock();
            let now = Instant::now();
            while running.len() < RETIRE_CONCURRENCY_MAX {
                let Some((entry, bytes)) = s.pop_due(now) else {
                    break;
                };
                running.push(retire(backend.clone(), entry));
                left += 1;
                freed += bytes;
            }
            if s.closed && s.entries == 0 && running.is_empty() {
                return;
            }
            s.front_due()
        };
        if left > 0 {
            observer.queued(NAME, -left);
            observer.queued_bytes(NAME, -(freed as i64));
        }
        let room = running.len() < RETIRE_CONCURRENCY_MAX;
        tokio::select! {
            Some(()) = running.next(), if !running.is_empty() => {}
            () = sleep_until(next), if room && next.is_some() => {}
            () = shared.wake.notified(), if room && next.is_none() => {}
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Deletes one retired version's chunks, stripe by stripe. Placed now that the grace is
/// over, not held through it: a held placement would keep a layout change's mover waiting at
/// its fence for the whole grace.
async fn retire(backend: Arc<Backend>, entry: Retired) {
    let cores = crate::store::object_placement(
        &backend,
        &entry.scope,
        &entry.key,
        entry.policy,
        entry.tier,
    );
    for part in &*entry.parts {
        for stripe in part_stripes(part, entry.chunk_bytes) {
            crate::store::delete_stripe_on(&backend, &cores, entry.policy, &stripe).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use cluster::backend::{BackendError, Clock, CoreLink};
    use cluster::moves::Cores;
    use proto::{FragmentId, Request, Response};

    use super::*;
    use crate::limits::CHUNK_BYTES;
    use crate::store::{Days, Store};
    use crate::test_support::head_of_parts;

    const SCOPE: &str = "photos/000102030405060708090a0b0c0d0e0f";

    /// What the cores were asked to delete: (core, fragment).
    type Deleted = Arc<Mutex<HashSet<(usize, FragmentId)>>>;

    /// A core that deletes whatever it is asked to, at once.
    struct DeletingCore {
        index: usize,
        deleted: Deleted,
    }

    impl CoreLink for DeletingCore {
        fn call(
            &self,
            request: Request,
        ) -> Pin<Box<dyn Future<Output = Result<Response, BackendError>> + Send + Sync>> {
            if let Request::DeleteFragment { id } = request {
                self.deleted
                    .lock()
                    .expect("not poisoned")
                    .insert((self.index, id));
            }
            Box::pin(std::future::ready(Ok(Response::Done)))
        }
    }

    struct FixedClock;

    impl Clock for FixedClock {
        fn elapsed_ms(&self) -> u64 {
            0
        }
        fn hlc_physical(&self) -> u64 {
            1 << 40
        }
        fn id_salt(&self) -> u64 {
            7
        }
    }

    /// The schedule's counts as the gateway's metrics would add them up.
    #[derive(Default)]
    struct Counted {
        queued: AtomicI64,
        bytes: AtomicI64,
        dropped: AtomicU64,
    }

    impl Observer for Counted {
        fn queued(&self, worker: &'static str, delta: i64) {
            assert_eq!(worker, NAME);
            self.queued.fetch_add(delta, Ordering::SeqCst);
        }
        fn queued_bytes(&self, worker: &'static str, delta: i64) {
            assert_eq!(worker, NAME);
            self.bytes.fetch_add(delta, Ordering::SeqCst);
        }
        fn dropped(&self, worker: &'static str) {
            assert_eq!(worker, NAME);
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A store over 16 cores (4 nodes in 4 zones) that delete at once, with a lifecycle day
    /// of `day_ms` (the test clock: it shortens the retirement grace).
    fn store(day_ms: u64) -> (Store, Deleted, Arc<Counted>) {
        let layout = crate::test_support::four_nodes_of_four_cores();
        let backend = Backend::cluster(layout, None, Vec::new()).expect("routes");
        let deleted = Deleted::default();
        let links = (0..backend.core_count())
            .map(|index| {
                let deleted = deleted.clone();
                Arc::new(DeletingCore { index, deleted }) as Arc<dyn CoreLink>
            })
            .collect();
        let backend = backend.with_links(links, Arc::new(FixedClock));
        let counted = Arc::new(Counted::default());
        let days = Days {
            day_ms,
            tiering_days: 30,
        };
        let store = Store::new(Arc::new(backend), counted.clone(), days);
        (store, deleted, counted)
    }

    /// Version `i`'s head, three replicas, parts of `sizes` with version ids of their own.
    fn version(i: usize, sizes: &[u64]) -> ObjectHead {
        let mut head = head_of_parts(sizes);
        head.policy = Policy::Replicas(3);
        for (p, part) in head.parts.iter_mut().enumerate() {
            part.version_id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            part.version_id[8..].copy_from_slice(&(p as u32).to_le_bytes());
        }
        head
    }

    /// Every fragment of `head`'s chunks, on every core holding it.
    fn fragments(store: &Store, key: &str, head: &ObjectHead) -> Vec<(usize, FragmentId)> {
        let cores = store.head_cores(SCOPE, key, head).replica_cores(3);
        assert_eq!(cores.len(), 3);
        let stripes = head.stripes();
        stripes
            .iter()
            .flat_map(|s| cores.iter().map(|&c| (c, s.fragment_id(0))))
            .collect()
    }

    fn deleted_count(deleted: &Deleted) -> usize {
        deleted.lock().expect("not poisoned").len()
    }

    /// Sleeps until `done` or a minute (of paused time) is over.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..600 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn more_retirements_than_the_old_queue_held_in_one_grace_all_run() {
        // The worker queue this replaced held 16,384 retirements: the rest were dropped.
        const VERSIONS: usize = 20_000;
        let (store, deleted, counted) = store(1_000);
        let mut expected = HashSet::new();
        for i in 0..VERSIONS {
            let key = format!("key-{i}");
            let head = if i % 1000 == 0 {
                version(i, &[2 * u64::from(CHUNK_BYTES) + 5, 7])
            } else {
                version(i, &[4096])
            };
            expected.extend(fragments(&store, &key, &head));
            store.retire_chunks(SCOPE, &key, head);
        }
        assert_eq!(expected.len(), (VERSIONS + 20 * 3) * 3);
        let (entries, bytes) = store.workers().retire.len_and_bytes();
        assert_eq!(entries, VERSIONS);
        assert!(bytes <= RETIRE_SCHEDULE_BYTES_MAX);
        assert_eq!(counted.queued.load(Ordering::SeqCst), VERSIONS as i64);
        assert_eq!(counted.bytes.load(Ordering::SeqCst), bytes as i64);

        tokio::time::sleep(Duration::from_millis(990)).await;
        assert_eq!(
            deleted_count(&deleted),
            0,
            "nothing before the grace is over"
        );
        until(|| deleted_count(&deleted) == expected.len()).await;
        assert!(*deleted.lock().expect("not poisoned") == expected);
        assert_eq!(counted.dropped.load(Ordering::SeqCst), 0, "nothing dropped");
        assert_eq!(store.workers().retire.len_and_bytes(), (0, 0));
        assert_eq!(counted.queued.load(Ordering::SeqCst), 0);
        assert_eq!(counted.bytes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_schedule_counts_what_it_drops_and_still_drains() {
        let (store, deleted, counted) = store(1_000);
        // The most parts a version has: ~240 KB an entry, so a few hundred fill the bound.
        // One part has a chunk; the empty ones weigh as much and leave the drain less to do.
        let mut sizes = vec![0; PARTS_MAX];
        sizes[0] = 4096;
        let attempts = RETIRE_SCHEDULE_BYTES_MAX / (PARTS_MAX * size_of::<PartRef>()) + 20;
        for i in 0..attempts {
            store.retire_chunks(SCOPE, &format!("key-{i}"), version(i, &sizes));
        }
        let (entries, bytes) = store.workers().retire.len_and_bytes();
        let dropped = counted.dropped.load(Ordering::SeqCst) as usize;
        assert!(dropped >= 20, "dropped {dropped}");
        assert_eq!(entries + dropped, attempts, "each one kept or counted");
        assert!(bytes <= RETIRE_SCHEDULE_BYTES_MAX);
        assert!(
            bytes + LARGEST_ENTRY_BYTES > RETIRE_SCHEDULE_BYTES_MAX,
            "refused only at the bound"
        );
        assert_eq!(counted.queued.load(Ordering::SeqCst), entries as i64);

        // Past the grace every kept one runs, and the schedule takes new ones again.
        until(|| deleted_count(&deleted) == entries * 3).await;
        assert_eq!(deleted_count(&deleted), entries * 3);
        until(|| store.workers().retire.len_and_bytes() == (0, 0)).await;
        assert_eq!(store.workers().retire.len_and_bytes(), (0, 0));
        let head = version(attempts, &[4096]);
        let more = fragments(&store, "again", &head);
        store.retire_chunks(SCOPE, "again", head);
        until(|| deleted_count(&deleted) == entries * 3 + 3).await;
        let deleted = deleted.lock().expect("not poisoned");
        assert!(more.iter().all(|f| deleted.contains(f)));
        assert_eq!(counted.dropped.load(Ordering::SeqCst) as usize, dropped);
        assert_eq!(counted.bytes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_scheduled_still_runs_once_the_service_is_gone() {
        let (store, deleted, _) = store(60_000);
        let head = version(1, &[4096]);
        let expected = fragments(&store, "k", &head);
        store.retire_chunks(SCOPE, "k", head);
        drop(store);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(deleted_count(&deleted), 0, "the grace is 30 s, not the day");
        until(|| deleted_count(&deleted) == 3).await;
        assert!(expected
            .iter()
            .all(|f| deleted.lock().expect("not poisoned").contains(f)));
    }

    fn pending(key: &str, parts: usize) -> Pending {
        Pending {
            key: key.into(),
            parts: version(0, &vec![1; parts]).parts.into_boxed_slice(),
            chunk_bytes: CHUNK_BYTES,
            policy: Policy::Replicas(3),
            tier: Tier::default(),
        }
    }

    #[test]
    fn entries_share_their_bucket_keep_due_order_and_count_their_bytes() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        let long = Duration::from_secs(30);
        let a = s.push(t0, long, "b1", pending("a", 1)).expect("room");
        assert_eq!(a, BLOCK_BYTES + 1 + size_of::<PartRef>() + scope_bytes(2));
        let b = s.push(t0, Duration::from_secs(1), "b1", pending("bb", 2));
        assert_eq!(b, Some(2 + 2 * size_of::<PartRef>()), "b1 shared");
        let c = s.push(t0, long, "b2", pending("c", 1));
        assert_eq!(c, Some(1 + size_of::<PartRef>() + scope_bytes(2)));
        assert_eq!(
            (s.entries, s.bytes),
            (3, a + 2 + 2 * size_of::<PartRef>() + c.unwrap())
        );
        assert_eq!(s.front_due(), Some(t0 + long));

        assert!(s.pop_due(t0 + Duration::from_secs(29)).is_none());
        let due = t0 + long;
        let keys: Vec<_> = std::iter::from_fn(|| s.pop_due(due))
            .map(|(e, _)| e.key.to_string())
            .collect();
        assert_eq!(
            keys,
            ["a", "bb", "c"],
            "the shorter grace waited for the longer"
        );
        assert_eq!((s.entries, s.bytes, s.blocks.len()), (0, 0, 0));

        for i in 0..=BLOCK_ENTRIES {
            s.push(t0, long, "b1", pending(&i.to_string(), 1))
                .expect("room");
        }
        assert_eq!(s.blocks.len(), 2);
        let heap: usize = s.blocks.iter().flatten().map(Retired::heap_bytes).sum();
        assert_eq!(s.bytes, 2 * BLOCK_BYTES + heap);
        while s.pop_due(due).is_some() {}
        assert_eq!((s.entries, s.bytes, s.blocks.len()), (0, 0, 0));
    }
}
