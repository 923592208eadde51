//! One sub-table of the fragment index: a flat array of 24-byte slots with open addressing,
//! linear probing and Robin Hood displacement, backward-shift deletion (no tombstones), and
//! growth or shrinkage by a small factor to any size (not only powers of two).
//!
//! Owns: the slot layout, probing, resizing and the sub-table's own invariants. Does not own:
//! choosing the sub-table for a key, the hash function (both in the parent module) or live-byte
//! accounting.
//!
//! A key's home slot is `(h * capacity) >> 64` where `h` is the key's in-table hash (the hash bits
//! the parent did not use to pick the sub-table), so homes follow hash order. Every run of
//! occupied slots is kept sorted by hash (Robin Hood order with ties broken by hash): a lookup
//! stops at its key, at an empty slot, or at the first resident that sorts after it (misses stay
//! as short as hits), an insert shifts the rest of the run one slot on, and a resize places the
//! entries in one pass in hash order without probing.

use super::{table_hash, Key};

/// One entry: the fragment id as two u64 (8-byte alignment) and the packed location.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Slot {
    pub key: Key,
    pub loc: u64,
}

/// The location of an empty slot. A location with a span of 0 sectors never names a record (a
/// record is at least its 64-byte header, one sector), and `Index::insert` asserts that no such
/// location is stored, so 0 is free to mean "empty".
pub(super) const EMPTY_LOC: u64 = 0;

const EMPTY: Slot = Slot {
    key: [0, 0],
    loc: EMPTY_LOC,
};

/// Grow before an insert would take the load above `LOAD_MAX_NUM / LOAD_DEN` (90%).
const LOAD_MAX_NUM: usize = 9;
const LOAD_DEN: usize = 10;
/// Growth multiplies the capacity by 9/8, so a sub-table that just grew is 80% full: 30 bytes
/// per entry at worst (24 / 0.8), 24 / 0.9 = 26.7 just before it grows.
const GROW_NUM: usize = 9;
const GROW_DEN: usize = 8;
/// Shrink when a removal leaves the load below 3/8, back to 80% (hysteresis against thrashing
/// between growth and shrinkage).
const SHRINK_NUM: usize = 3;
const SHRINK_DEN: usize = 8;
const RESIZE_LOAD_NUM: usize = 4;
const RESIZE_LOAD_DEN: usize = 5;
/// The smallest allocation, and the smallest step of a growth (small tables would otherwise grow
/// by one slot at a time).
pub(super) const CAPACITY_MIN: usize = 8;
const GROW_STEP_MIN: usize = 4;
/// Slots a lookup compares at once from the home slot before walking on (most hits are there at
/// 80–90% load; the mean distance from home is ~3).
const WINDOW: usize = 4;
/// Entries one sub-table may hold (its length is a u32).
pub(super) const TABLE_ENTRIES_MAX: usize = 1 << 31;

const _: () = assert!(RESIZE_LOAD_NUM * LOAD_DEN < LOAD_MAX_NUM * RESIZE_LOAD_DEN);
const _: () = assert!(SHRINK_NUM * RESIZE_LOAD_DEN < RESIZE_LOAD_NUM * SHRINK_DEN);
const _: () = assert!(LOAD_MAX_NUM < LOAD_DEN && GROW_NUM > GROW_DEN);
const _: () = assert!(TABLE_ENTRIES_MAX <= u32::MAX as usize);

enum Probe {
    Found(usize),
    /// Absent; this is the slot it would take.
    Vacant(usize),
}

#[derive(Default)]
pub(super) struct Table {
    slots: Box<[Slot]>,
    len: u32,
}

impl Table {
    /// A table that holds `entries` without growing (90% load when it has them).
    pub fn with_capacity(entries: usize) -> Table {
        let mut t = Table::default();
        if entries > 0 {
            t.resize(
                (entries * LOAD_DEN)
                    .div_ceil(LOAD_MAX_NUM)
                    .max(CAPACITY_MIN),
            );
        }
        t
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn slots(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.slots.iter().filter(|s| s.loc != EMPTY_LOC)
    }

    pub fn get(&self, key: &Key, h: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let home = self.home(h);
        if let Some(window) = self.slots.get(home..home + WINDOW) {
            let (found, empty) = scan_window(window, key);
            if found != 0 {
                return Some(window[found.trailing_zeros() as usize].loc);
            }
            if empty != 0 {
                return None;
            }
        }
        self.find(key, h).map(|i| self.slots[i].loc)
    }

    /// Points `key` at `loc`; returns the old location.
    pub fn insert(&mut self, key: Key, loc: u64, h: u64) -> Option<u64> {
        assert_ne!(loc, EMPTY_LOC);
        let mut vacant = None;
        if self.capacity() > 0 {
            match self.probe(&key, h) {
                Probe::Found(i) => {
                    let old = self.slots[i].loc;
                    self.slots[i].loc = loc;
                    return Some(old);
                }
                Probe::Vacant(i) => vacant = Some(i),
            }
        }
        assert!(self.len() < TABLE_ENTRIES_MAX);
        let i = match vacant {
            Some(i) if (self.len() + 1) * LOAD_DEN <= self.capacity() * LOAD_MAX_NUM => i,
            _ => {
                self.resize(grown(self.capacity()));
                match self.probe(&key, h) {
                    Probe::Vacant(i) => i,
                    Probe::Found(_) => unreachable!("the key was absent before the resize"),
                }
            }
        };
        self.put_at(i, Slot { key, loc });
        self.len += 1;
        None
    }

    pub fn remove(&mut self, key: &Key, h: u64) -> Option<u64> {
        let i = self.find(key, h)?;
        let old = self.slots[i].loc;
        self.shift_back(i);
        self.len -= 1;
        if self.len() * SHRINK_DEN < self.capacity() * SHRINK_NUM {
            let capacity = if self.len == 0 {
                0
            } else {
                capacity_for(self.len())
            };
            if capacity < self.capacity() {
                self.resize(capacity);
            }
        }
        Some(old)
    }

    fn home(&self, h: u64) -> usize {
        ((u128::from(h) * self.capacity() as u128) >> 64) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.capacity() {
            0
        } else {
            i + 1
        }
    }

    /// How far slot `i` is from `home`, walking forward with wrap-around.
    fn distance(&self, home: usize, i: usize) -> usize {
        if i >= home {
            i - home
        } else {
            i + self.capacity() - home
        }
    }

    fn find(&self, key: &Key, h: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        match self.probe(key, h) {
            Probe::Found(i) => Some(i),
            Probe::Vacant(_) => None,
        }
    }

    /// Walks from the home slot of `key` to the key, or to where Robin Hood order puts it: the
    /// first empty slot or the first resident that sorts after it. Entries are kept sorted by
    /// (home, in-table hash) along every run of occupied slots, so a resident sorts after `key`
    /// when it is closer to its home, or as close with a larger hash.
    fn probe(&self, key: &Key, h: u64) -> Probe {
        assert!(self.len() < self.capacity());
        let mut i = self.home(h);
        let mut dist = 0usize;
        loop {
            let resident = &self.slots[i];
            if resident.loc == EMPTY_LOC {
                return Probe::Vacant(i);
            }
            if resident.key == *key {
                return Probe::Found(i);
            }
            let rh = table_hash(&resident.key);
            let resident_dist = self.distance(self.home(rh), i);
            if resident_dist < dist || (resident_dist == dist && rh > h) {
                return Probe::Vacant(i);
            }
            i = self.next(i);
            dist += 1;
            assert!(
                dist < self.capacity(),
                "a table below full load has an empty slot"
            );
        }
    }

    /// Puts `slot` at `i`, moving the run of entries from `i` up to the next empty slot one slot
    /// on (order kept).
    fn put_at(&mut self, i: usize, slot: Slot) {
        let mut carried = slot;
        let mut j = i;
        let mut moved = 0usize;
        loop {
            let resident = std::mem::replace(&mut self.slots[j], carried);
            if resident.loc == EMPTY_LOC {
                return;
            }
            carried = resident;
            j = self.next(j);
            moved += 1;
            assert!(
                moved < self.capacity(),
                "a table below full load has an empty slot"
            );
        }
    }

    /// Empties slot `i` and moves each following displaced entry one slot back, so no
    /// tombstone is needed and every entry stays reachable from its home without a gap.
    fn shift_back(&mut self, mut i: usize) {
        loop {
            let j = self.next(i);
            let s = self.slots[j];
            if s.loc == EMPTY_LOC || self.home(table_hash(&s.key)) == j {
                self.slots[i] = EMPTY;
                return;
            }
            self.slots[i] = s;
            i = j;
        }
    }

    /// Moves every entry into a new array of `capacity` slots, in one pass and without probing:
    /// the entries, taken in hash order, go each to its new home or right after the previous
    /// one. Only this sub-table's entries move, so one resize is small next to the whole index.
    fn resize(&mut self, capacity: usize) {
        assert!(capacity == 0 || self.len() * LOAD_DEN <= capacity * LOAD_MAX_NUM);
        assert!(capacity >= self.len());
        let sorted = self.sorted_entries();
        self.slots = vec![EMPTY; capacity].into_boxed_slice();
        if sorted.is_empty() {
            return;
        }
        // Entries pushed past the end wrap to the front, and the front entries must then start
        // after them: find the number of wrapped entries `wrapped` with `overflow(wrapped) ==
        // wrapped` (overflow grows with its argument, so iterating from 0 reaches it).
        let mut wrapped = 0;
        loop {
            let overflow = self.overflow(&sorted, wrapped);
            if overflow <= wrapped {
                assert_eq!(overflow, wrapped);
                break;
            }
            wrapped = overflow;
        }
        let mut next = wrapped;
        for (h, s) in &sorted {
            let at = self.home(*h).max(next);
            next = at + 1;
            let i = if at >= capacity { at - capacity } else { at };
            assert_eq!(self.slots[i].loc, EMPTY_LOC);
            self.slots[i] = *s;
        }
        #[cfg(feature = "strict")]
        self.check();
    }

    /// How many entries would run past the end if placement started at slot `first`.
    fn overflow(&self, sorted: &[(u64, Slot)], first: usize) -> usize {
        let mut next = first;
        for (h, _) in sorted {
            next = self.home(*h).max(next) + 1;
        }
        next.saturating_sub(self.capacity())
    }

    /// Every entry with its in-table hash, in hash order. The slots already hold them in that
    /// order except for the run that wraps around the end, whose entries at the front (homes
    /// near the end) sort last.
    fn sorted_entries(&self) -> Vec<(u64, Slot)> {
        let mut entries = Vec::with_capacity(self.len());
        let mut wrapped = 0;
        let mut in_first_run = true;
        for (i, s) in self.slots.iter().enumerate() {
            if s.loc == EMPTY_LOC {
                in_first_run = false;
                continue;
            }
            let h = table_hash(&s.key);
            if in_first_run && self.home(h) > i {
                wrapped += 1;
            }
            entries.push((h, *s));
        }
        assert_eq!(entries.len(), self.len());
        entries.rotate_left(wrapped);
        assert!(entries.first().map(|e| e.0) <= entries.last().map(|e| e.0));
        #[cfg(feature = "strict")]
        assert!(entries.is_sorted_by_key(|e| e.0));
        entries
    }

    /// Walks the whole table and asserts its invariants: the count, every entry reachable from
    /// its home without crossing an empty slot, runs sorted by hash, each entry found.
    pub fn check(&self) {
        let mut count = 0usize;
        for (i, s) in self.slots.iter().enumerate() {
            if s.loc == EMPTY_LOC {
                assert_eq!(*s, EMPTY);
                continue;
            }
            count += 1;
            let home = self.home(table_hash(&s.key));
            let dist = self.distance(home, i);
            let mut j = home;
            while j != i {
                assert_ne!(
                    self.slots[j].loc, EMPTY_LOC,
                    "no gap between home and entry"
                );
                j = self.next(j);
            }
            let prev = &self.slots[(i + self.capacity() - 1) % self.capacity()];
            if prev.loc != EMPTY_LOC && dist > 0 {
                // Sorted run: the previous entry's home is before this one's, or the same with a
                // hash no larger.
                let prev_i = (i + self.capacity() - 1) % self.capacity();
                let prev_h = table_hash(&prev.key);
                let prev_dist = self.distance(self.home(prev_h), prev_i);
                assert!(prev_dist + 1 >= dist, "robin hood order");
                assert!(
                    prev_dist + 1 > dist || prev_h <= table_hash(&s.key),
                    "hash order"
                );
            }
            assert_eq!(self.find(&s.key, table_hash(&s.key)), Some(i));
        }
        assert_eq!(count, self.len());
        assert!(count * LOAD_DEN <= self.capacity() * LOAD_MAX_NUM || count == 0);
    }
}

/// Which slots of `window` hold `key`, and which are empty, as bit masks computed without
/// branches: a hit costs one burst of loads and a predictable branch, so the CPU can run ahead
/// into the next lookup while this one waits for memory.
fn scan_window(window: &[Slot], key: &Key) -> (u32, u32) {
    let mut found = 0u32;
    let mut empty = 0u32;
    for (k, s) in window.iter().enumerate() {
        let occupied = u32::from(s.loc != EMPTY_LOC);
        let same = u32::from(((s.key[0] ^ key[0]) | (s.key[1] ^ key[1])) == 0);
        found |= (same & occupied) << k;
        empty |= (occupied ^ 1) << k;
    }
    (found, empty)
}

/// The capacity a resize gives `entries` entries: 80% load, at least `CAPACITY_MIN`.
pub(super) fn capacity_for(entries: usize) -> usize {
    (entries * RESIZE_LOAD_DEN)
        .div_ceil(RESIZE_LOAD_NUM)
        .max(CAPACITY_MIN)
}

fn grown(capacity: usize) -> usize {
    if capacity == 0 {
        return CAPACITY_MIN;
    }
    (capacity * GROW_NUM / GROW_DEN).max(capacity + GROW_STEP_MIN)
}
