//! One core's cache of whole small fragments, so a hot GET touches no device.
//!
//! Owns: the entries (fragment id → the [`Loc`] it was read from and its payload), their byte
//! budget, the eviction order and the hit/miss/eviction counters. Does not own: when entries
//! are filled or dropped (`store.rs` decides: a CRC-verified read fills, every index change of
//! an id drops or moves its entry), nor the verification of bytes (it stores what it is given).
//!
//! Exactness: an entry remembers the location it was read from, and [`FragmentCache::get`]
//! serves it only when the caller's current index location is the same. Locations are never
//! reused while a store is open (segment numbers only grow), so an entry that an invalidation
//! missed can never be served: it is dropped on its next lookup. The explicit invalidations in
//! `store.rs` keep memory from holding dead bytes; this check keeps correctness independent of
//! them.
//!
//! Eviction: segmented LRU. A new entry enters the probation list; a hit there promotes it to
//! the protected list (at most `PROTECTED_PERMILLE` of the budget; its least recent entries
//! are demoted back to probation's head). Victims come from probation's tail first. A scan
//! (many fragments read once: a listing pass, a cold backup read) therefore only cycles
//! probation and never flushes entries that were hit twice. Plain LRU fails that (one pass
//! larger than the budget flushes everything); CLOCK keeps one reference bit per entry, and a
//! long scan moves the hand round the whole ring, clearing those bits, so hot entries lose
//! their protection after one sweep (`tests::scan_does_not_flush_the_hot_set` fails with LRU).
//!
//! Layout: entries live in a `Vec` arena with a free list, linked by `u32` indices into two
//! intrusive doubly-linked lists, and a hashbrown map id → slot. `sharded-slab` (declared in
//! the workspace) is not used: it is a lock-free slab for sharing slots between threads, with
//! per-thread shards, atomic generation counters and guards on every access; this cache is
//! owned by one single-threaded executor (one per core, never shared), so a plain arena does
//! the same job without atomics or guards.
//!
//! Memory: each entry is charged its payload plus `ENTRY_OVERHEAD_BYTES` (arena slot and map
//! slot); the charged total never exceeds the budget between calls.

use bytes::Bytes;
use hashbrown::HashMap;

use crate::format::Loc;
use crate::limits::CACHE_ENTRY_BYTES_MAX;

/// Share of the budget (per mille) the protected list may hold.
const PROTECTED_PERMILLE: u64 = 800;
const NIL: u32 = u32::MAX;
/// Bytes charged per entry beside its payload: its arena slot and its map slot (id, index,
/// control byte).
pub const ENTRY_OVERHEAD_BYTES: u64 =
    (std::mem::size_of::<Node>() + std::mem::size_of::<([u8; 16], u32)>() + 1) as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Probation = 0,
    Protected = 1,
}

struct Node {
    id: [u8; 16],
    loc: Loc,
    data: Bytes,
    prev: u32,
    next: u32,
    list: List,
}

impl Node {
    fn charge(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// Head (most recent) and tail (least recent) of one list, and the bytes charged to it.
#[derive(Clone, Copy)]
struct Ends {
    head: u32,
    tail: u32,
    bytes: u64,
}

impl Default for Ends {
    fn default() -> Ends {
        Ends {
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }
}

/// Counters of one core's cache, reported in `StoreStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads the cache could not serve (the fragment was read from the device).
    pub misses: u64,
    /// Entries dropped to stay within the budget.
    pub evictions: u64,
    /// Entries dropped because their fragment was overwritten, deleted, or found damaged.
    pub invalidations: u64,
    /// Bytes charged now (payloads and per-entry overhead).
    pub used_bytes: u64,
    pub entries: u64,
    pub budget_bytes: u64,
}

pub struct FragmentCache {
    budget_bytes: u64,
    protected_bytes_max: u64,
    entry_bytes_max: u64,
    map: HashMap<[u8; 16], u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    lists: [Ends; 2],
    stats: CacheStats,
}

impl FragmentCache {
    /// A cache holding at most `budget_bytes` (0: disabled, every call is a no-op).
    pub fn new(budget_bytes: u64) -> FragmentCache {
        FragmentCache {
            budget_bytes,
            protected_bytes_max: budget_bytes / 1000 * PROTECTED_PERMILLE,
            // One entry may take at most an eighth of a small budget, so a budget of a few
            // entries is not emptied by each insert.
            entry_bytes_max: CACHE_ENTRY_BYTES_MAX.min(budget_bytes / 8),
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            lists: [Ends::default(); 2],
            stats: CacheStats {
                budget_bytes,
                ..CacheStats::default()
            },
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget_bytes > 0
    }

    /// Whether a payload of `len_bytes` would be kept (callers copy it only then).
    pub fn admits(&self, len_bytes: u64) -> bool {
        self.enabled() && len_bytes <= self.entry_bytes_max
    }

    /// The whole payload of `id` if it is cached from `loc`, the fragment's current location.
    /// An entry from another location is stale and dropped. Counts a hit or a miss.
    pub fn get(&mut self, id: &[u8; 16], loc: Loc) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let Some(&slot) = self.map.get(id) else {
            self.stats.misses += 1;
            return None;
        };
        if self.nodes[slot as usize].loc != loc {
            self.remove_slot(slot);
            self.stats.invalidations += 1;
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.touch(slot);
        Some(self.nodes[slot as usize].data.clone())
    }

    /// Keeps `data`, the verified payload of `id` read from `loc`, replacing any entry of `id`.
    /// Evicts least recently used entries (probation first) to stay within the budget.
    pub fn insert(&mut self, id: [u8; 16], loc: Loc, data: Bytes) {
        if !self.admits(data.len() as u64) {
            return;
        }
        self.invalidate(&id);
        let node = Node {
            id,
            loc,
            data,
            prev: NIL,
            next: NIL,
            list: List::Probation,
        };
        let slot = if let Some(s) = self.free.pop() {
            self.nodes[s as usize] = node;
            s
        } else {
            let s = u32::try_from(self.nodes.len()).expect("entries bounded by the budget");
            assert!(s != NIL);
            self.nodes.push(node);
            s
        };
        self.map.insert(id, slot);
        self.push_head(List::Probation, slot);
        self.stats.entries += 1;
        while self.stats.used_bytes > self.budget_bytes {
            let victim = match self.lists[List::Probation as usize].tail {
                NIL => self.lists[List::Protected as usize].tail,
                t => t,
            };
            assert!(victim != NIL, "a cache over budget holds entries");
            self.remove_slot(victim);
            self.stats.evictions += 1;
        }
    }

    /// Drops the entry of `id`, if any (its fragment was overwritten, deleted or damaged).
    pub fn invalidate(&mut self, id: &[u8; 16]) {
        if let Some(&slot) = self.map.get(id) {
            self.remove_slot(slot);
            self.stats.invalidations += 1;
        }
    }

    /// The fragment `id` moved from `from` to `to` with the same bytes (reclaim's copy): an
    /// entry read from `from` follows it; an entry from elsewhere is stale and dropped.
    pub fn relocate(&mut self, id: &[u8; 16], from: Loc, to: Loc) {
        if let Some(&slot) = self.map.get(id) {
            if self.nodes[slot as usize].loc == from {
                self.nodes[slot as usize].loc = to;
            } else {
                self.remove_slot(slot);
                self.stats.invalidations += 1;
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// A hit: probation → protected head (demoting protected's tail past its share), protected
    /// → its head.
    fn touch(&mut self, slot: u32) {
        self.unlink(slot);
        self.push_head(List::Protected, slot);
        while self.lists[List::Protected as usize].bytes > self.protected_bytes_max {
            let tail = self.lists[List::Protected as usize].tail;
            assert!(tail != NIL);
            if tail == slot {
                // A single entry above the protected share stays where it is.
                break;
            }
            self.unlink(tail);
            self.push_head(List::Probation, tail);
        }
    }

    fn push_head(&mut self, list: List, slot: u32) {
        let charge = self.nodes[slot as usize].charge();
        let ends = &mut self.lists[list as usize];
        let old_head = ends.head;
        ends.head = slot;
        if ends.tail == NIL {
            ends.tail = slot;
        }
        ends.bytes += charge;
        if old_head != NIL {
            self.nodes[old_head as usize].prev = slot;
        }
        let node = &mut self.nodes[slot as usize];
        node.list = list;
        node.prev = NIL;
        node.next = old_head;
        self.stats.used_bytes += charge;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next, list, charge) = {
            let n = &self.nodes[slot as usize];
            (n.prev, n.next, n.list, n.charge())
        };
        if prev == NIL {
            self.lists[list as usize].head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list as usize].tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        let ends = &mut self.lists[list as usize];
        assert!(ends.bytes >= charge && self.stats.used_bytes >= charge);
        ends.bytes -= charge;
        self.stats.used_bytes -= charge;
    }

    fn remove_slot(&mut self, slot: u32) {
        self.unlink(slot);
        let node = &mut self.nodes[slot as usize];
        node.data = Bytes::new();
        let id = node.id;
        let removed = self.map.remove(&id);
        assert_eq!(removed, Some(slot));
        self.free.push(slot);
        assert!(self.stats.entries > 0);
        self.stats.entries -= 1;
    }

    /// Walks both lists and asserts the links, the byte accounting and the map. O(n), for
    /// tests.
    pub fn check_invariants(&self) {
        let mut seen = 0u64;
        let mut total = 0u64;
        for list in [List::Probation, List::Protected] {
            let ends = self.lists[list as usize];
            let (mut at, mut prev, mut bytes) = (ends.head, NIL, 0u64);
            while at != NIL {
                let n = &self.nodes[at as usize];
                assert_eq!(n.list, list);
                assert_eq!(n.prev, prev);
                assert_eq!(self.map.get(&n.id), Some(&at));
                bytes += n.charge();
                seen += 1;
                prev = at;
                at = n.next;
            }
            assert_eq!(ends.tail, prev);
            assert_eq!(ends.bytes, bytes);
            total += bytes;
        }
        assert_eq!(seen, self.stats.entries);
        assert_eq!(seen as usize, self.map.len());
        assert_eq!(total, self.stats.used_bytes);
        assert!(self.stats.used_bytes <= self.budget_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(k: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&k.to_le_bytes());
        id
    }

    fn loc(k: u64) -> Loc {
        Loc::new(1, k * 8192, 4096 + 64)
    }

    fn data(k: u64) -> Bytes {
        Bytes::from(vec![k as u8; 4096])
    }

    const ENTRY: u64 = 4096 + ENTRY_OVERHEAD_BYTES;

    #[test]
    fn hit_after_insert_and_miss_from_another_location() {
        let mut c = FragmentCache::new(64 * ENTRY);
        assert_eq!(c.get(&id(1), loc(1)), None);
        c.insert(id(1), loc(1), data(1));
        assert_eq!(c.get(&id(1), loc(1)), Some(data(1)));
        // The index moved the id (an overwrite): the entry is stale and dropped.
        assert_eq!(c.get(&id(1), loc(2)), None);
        assert_eq!(c.get(&id(1), loc(1)), None);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.invalidations, s.entries), (1, 3, 1, 0));
        c.check_invariants();
    }

    #[test]
    fn invalidate_and_relocate() {
        let mut c = FragmentCache::new(64 * ENTRY);
        c.insert(id(1), loc(1), data(1));
        c.insert(id(2), loc(2), data(2));
        c.invalidate(&id(1));
        assert_eq!(c.get(&id(1), loc(1)), None);
        c.relocate(&id(2), loc(2), loc(9));
        assert_eq!(c.get(&id(2), loc(9)), Some(data(2)));
        // A move from a location the entry was not read from drops it.
        c.relocate(&id(2), loc(3), loc(10));
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.stats().used_bytes, 0);
        c.check_invariants();
    }

    #[test]
    fn budget_is_respected_under_many_inserts() {
        let budget = 100 * ENTRY + 17;
        let mut c = FragmentCache::new(budget);
        for k in 0..10_000 {
            c.insert(id(k), loc(k), data(k));
            if k % 7 == 0 {
                let _ = c.get(&id(k / 2), loc(k / 2));
            }
            assert!(c.stats().used_bytes <= budget);
        }
        c.check_invariants();
        let s = c.stats();
        assert_eq!(s.entries, 100);
        assert_eq!(s.evictions, 10_000 - 100);
    }

    #[test]
    fn oversized_entries_and_disabled_cache_are_not_kept() {
        let mut c = FragmentCache::new(1 << 30);
        let largest = Bytes::from(vec![0u8; CACHE_ENTRY_BYTES_MAX as usize]);
        c.insert(id(1), loc(1), largest);
        assert_eq!(c.stats().entries, 1);
        let big = Bytes::from(vec![0u8; CACHE_ENTRY_BYTES_MAX as usize + 1]);
        c.insert(id(2), loc(2), big);
        assert_eq!(c.stats().entries, 1);
        let mut off = FragmentCache::new(0);
        off.insert(id(1), loc(1), data(1));
        assert_eq!(off.get(&id(1), loc(1)), None);
        assert_eq!(off.stats(), CacheStats::default());
    }

    #[test]
    fn scan_does_not_flush_the_hot_set() {
        let mut c = FragmentCache::new(1000 * ENTRY);
        let hot = 0..500u64;
        for _ in 0..2 {
            for k in hot.clone() {
                if c.get(&id(k), loc(k)).is_none() {
                    c.insert(id(k), loc(k), data(k));
                }
            }
        }
        // One pass over 20 budgets of cold fragments, each read once.
        for k in 10_000..30_000u64 {
            assert!(c.get(&id(k), loc(k)).is_none());
            c.insert(id(k), loc(k), data(k));
        }
        let before = c.stats().hits;
        for k in hot.clone() {
            assert_eq!(
                c.get(&id(k), loc(k)),
                Some(data(k)),
                "hot fragment {k} kept"
            );
        }
        assert_eq!(c.stats().hits - before, 500);
        c.check_invariants();
    }

    #[test]
    fn protected_share_is_bounded() {
        let mut c = FragmentCache::new(100 * ENTRY);
        for k in 0..100 {
            c.insert(id(k), loc(k), data(k));
            assert!(c.get(&id(k), loc(k)).is_some());
        }
        assert!(c.lists[List::Protected as usize].bytes <= c.protected_bytes_max);
        c.check_invariants();
    }
}
