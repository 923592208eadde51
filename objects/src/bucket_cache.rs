//! The bucket records a store read, kept for the next requests (`Store::with_bucket_cache`).
//!
//! Every S3 request on a bucket reads its record first (who owns it, its incarnation, its
//! versioning). On a single node that read asked both metadata replicas, one of them on the
//! other core: about 5% of a 4 KiB GET's cycles, and a wake-up of the other core. The record
//! changes rarely (CreateBucket, DeleteBucket, versioning, the first tag change), and on a
//! single node every change goes through this process's store, so the store can keep what it
//! read and forget it exactly when it writes.
//!
//! **Exact, not eventual.** A read never answers from the cache what a read of the replicas
//! would not have answered:
//! - a write of any bucket record (`writing`) drops the bucket's entry when it starts and again
//!   when it ends, whatever its outcome;
//! - while any write is in flight, nothing is cached (so a read cannot find an older record in
//!   the cache after another read found the newer one on the replicas);
//! - a read of the replicas is cached only if no write started or ended while it ran (the
//!   generation it saw at its start is still the cache's, under the lock that writes take);
//! - a write runs to its end even if the request that made it is dropped (its client gone):
//!   the store runs it as a task of its own (`Store::write_bucket`), or core calls already
//!   sent would land after the cache took the write for over.
//!
//! Not for a store whose cores other processes write too (a cluster node: the other nodes'
//! gateways change bucket records); the binary turns it on for single nodes only. Absent
//! buckets are not cached: a request for one is rare and cheap to refuse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::records::BucketRecord;

/// Buckets cached at most; past it, the cache starts again empty (a deployment has far fewer
/// buckets: S3 allows 10,000 per account).
pub const BUCKET_CACHE_ENTRIES_MAX: usize = 10_000;

#[derive(Default)]
pub struct BucketCache {
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    records: HashMap<String, (BucketRecord, u64)>,
    /// Moves at the start and at the end of every write.
    generation: u64,
    /// Writes started and not ended.
    writing: u32,
}

/// A miss: the generation to hand back to `offer` with what the replicas answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss(u64);

impl BucketCache {
    /// The record of `bucket` and its HLC, if cached; else the miss to `offer` the read with.
    pub fn get(&self, bucket: &str) -> Result<(BucketRecord, u64), Miss> {
        let inner = self.inner.lock().expect("bucket cache lock");
        if let Some(entry) = inner.records.get(bucket) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            Ok(entry.clone())
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            Err(Miss(inner.generation))
        }
    }

    /// Keeps what a read of the replicas that missed with `miss` found, unless a write started
    /// or ended since, or one is in flight.
    pub fn offer(&self, bucket: &str, miss: Miss, record: &BucketRecord, hlc: u64) {
        let mut inner = self.inner.lock().expect("bucket cache lock");
        if inner.generation != miss.0 || inner.writing > 0 {
            return;
        }
        if inner.records.len() >= BUCKET_CACHE_ENTRIES_MAX {
            inner.records.clear();
        }
        inner
            .records
            .insert(bucket.to_owned(), (record.clone(), hlc));
    }

    /// Marks a write of `bucket`'s record in flight until the guard drops.
    pub fn writing<'a>(&'a self, bucket: &'a str) -> Writing<'a> {
        let mut inner = self.inner.lock().expect("bucket cache lock");
        inner.writing += 1;
        inner.generation += 1;
        inner.records.remove(bucket);
        Writing {
            cache: self,
            bucket,
        }
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// A write of a bucket record in flight (`BucketCache::writing`).
pub struct Writing<'a> {
    cache: &'a BucketCache,
    bucket: &'a str,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        // A poisoned lock: a panic under it elsewhere; the process is going down anyway, and
        // a drop must not panic again.
        if let Ok(mut inner) = self.cache.inner.lock() {
            inner.writing -= 1;
            inner.generation += 1;
            inner.records.remove(self.bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BucketId;

    fn record(owner: &str) -> BucketRecord {
        BucketRecord::new(owner.into(), 1, BucketId::LEGACY)
    }

    #[test]
    fn a_read_is_kept_until_a_write() {
        let cache = BucketCache::default();
        let miss = cache.get("b").unwrap_err();
        cache.offer("b", miss, &record("alice"), 7);
        assert_eq!(cache.get("b").unwrap(), (record("alice"), 7));
        drop(cache.writing("b"));
        assert!(cache.get("b").is_err(), "a write drops the entry");
        assert_eq!(cache.counts(), (1, 2));
    }

    #[test]
    fn a_read_that_overlaps_a_write_is_not_kept() {
        let cache = BucketCache::default();
        // The write starts during the read.
        let miss = cache.get("b").unwrap_err();
        let w = cache.writing("b");
        cache.offer("b", miss, &record("old"), 1);
        assert!(cache.get("b").is_err());
        drop(w);
        cache.offer("b", miss, &record("old"), 1);
        assert!(cache.get("b").is_err(), "the write ended during the read");
        // The read starts during the write and ends before it.
        let w = cache.writing("b");
        let miss = cache.get("b").unwrap_err();
        cache.offer("b", miss, &record("old"), 1);
        assert!(
            cache.get("b").is_err(),
            "nothing is kept while a write runs"
        );
        drop(w);
        // A read wholly after the write is kept.
        let miss = cache.get("b").unwrap_err();
        cache.offer("b", miss, &record("new"), 2);
        assert_eq!(cache.get("b").unwrap(), (record("new"), 2));
    }

    #[test]
    fn a_write_of_another_bucket_holds_back_every_offer() {
        let cache = BucketCache::default();
        let miss = cache.get("a").unwrap_err();
        cache.offer("a", miss, &record("x"), 1);
        let w = cache.writing("b");
        assert!(cache.get("a").is_ok(), "another bucket's entry stays");
        let miss = cache.get("c").unwrap_err();
        cache.offer("c", miss, &record("y"), 1);
        drop(w);
        assert!(cache.get("c").is_err());
    }

    #[test]
    fn a_full_cache_starts_again() {
        let cache = BucketCache::default();
        for i in 0..=BUCKET_CACHE_ENTRIES_MAX {
            let name = format!("b{i}");
            let miss = cache.get(&name).unwrap_err();
            cache.offer(&name, miss, &record("o"), 1);
        }
        assert!(cache.get("b0").is_err());
        assert!(cache.get(&format!("b{BUCKET_CACHE_ENTRIES_MAX}")).is_ok());
        assert_eq!(cache.inner.lock().unwrap().records.len(), 1);
    }
}
