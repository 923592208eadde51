//! A small bounded cache of per-bucket lookups that expire: what a gateway last read of a
//! bucket's configuration records (CORS rules, bucket policy), kept for a few seconds so a
//! request does not read the record each time. A change made through this gateway forgets the
//! entry at once; one made through another gateway is seen within the time to live.
//!
//! Bounded in entries and in bytes (each entry's size is the caller's estimate): an insert
//! that would pass a bound first drops the expired entries, and if that is not enough, all of
//! them (a cache, not a store: the next lookups read the records again). An entry larger than
//! the byte bound alone is not kept. Its clock is tokio's, so the object simulation's paused
//! clock expires entries as it does everything else (with a real clock a seed's history could
//! depend on the machine's load).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct TtlCache<V> {
    ttl: Duration,
    entries_max: usize,
    bytes_max: usize,
    entries: Mutex<Entries<V>>,
}

struct Entries<V> {
    map: HashMap<String, (Instant, V, usize)>,
    /// The sum of the entries' sizes.
    bytes: usize,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, entries_max: usize, bytes_max: usize) -> TtlCache<V> {
        TtlCache {
            ttl,
            entries_max,
            bytes_max,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                bytes: 0,
            }),
        }
    }

    /// `name`'s value, unless it expired or was never put.
    pub fn get(&self, name: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, value, _) = entries.map.get(name)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Keeps `value` for `name`, counted as `size` bytes.
    pub fn put(&self, name: &str, value: V, size: usize) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if let Some((_, _, old)) = entries.map.remove(name) {
            entries.bytes -= old;
        }
        let full =
            |e: &Entries<V>| e.map.len() >= self.entries_max || e.bytes + size > self.bytes_max;
        if full(&entries) {
            entries.map.retain(|_, (at, _, _)| at.elapsed() < self.ttl);
            entries.bytes = entries.map.values().map(|(_, _, s)| s).sum();
            if full(&entries) {
                entries.map.clear();
                entries.bytes = 0;
            }
        }
        if size <= self.bytes_max {
            entries.bytes += size;
            entries
                .map
                .insert(name.to_owned(), (Instant::now(), value, size));
        }
    }

    /// Drops `name`'s value (it changed here).
    pub fn forget(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some((_, _, size)) = entries.map.remove(name) {
                entries.bytes -= size;
            }
        }
    }

    /// How many entries and bytes are held (checking the byte count is their sum).
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        let e = self.entries.lock().unwrap();
        let sum: usize = e.map.values().map(|(_, _, s)| s).sum();
        assert_eq!(sum, e.bytes, "the byte count is the entries' sum");
        (e.map.len(), e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_entries_and_bytes_and_expiring() {
        let cache = TtlCache::new(Duration::from_secs(60), 3, 100);
        for i in 0..3 {
            cache.put(&format!("b{i}"), i, 10);
        }
        assert_eq!(cache.get("b2"), Some(2));
        // A fourth name passes the entry bound: nothing has expired, so all go.
        cache.put("b3", 3, 10);
        assert_eq!((cache.get("b0"), cache.get("b3")), (None, Some(3)));
        assert_eq!(cache.held().1, 10);
        // Replacing a name counts its size once; the byte bound holds.
        cache.put("b3", 4, 60);
        assert_eq!((cache.get("b3"), cache.held().1), (Some(4), 60));
        cache.put("b4", 5, 50);
        assert_eq!(
            (cache.get("b3"), cache.get("b4"), cache.held().1),
            (None, Some(5), 50)
        );
        // Larger than the whole bound: not kept.
        cache.put("huge", 6, 101);
        assert_eq!(cache.get("huge"), None);
        cache.forget("b4");
        assert_eq!((cache.get("b4"), cache.held().1), (None, 0));
        let short = TtlCache::new(Duration::ZERO, 3, 100);
        short.put("b", 1, 1);
        assert_eq!(short.get("b"), None, "expired");
    }
}
