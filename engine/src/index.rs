//! The per-core fragment index: fragment id → packed [`Loc`], in memory, plus per-segment live
//! byte accounting for the reclaimer. Rebuilt on start from a checkpoint and the log tail.
//!
//! Owns: the in-memory map and its memory bound (≤ 32 bytes per entry, `engine/DESIGN.md`,
//! "Index"). Does not own: the checkpoint format (`format.rs`) or when entries change
//! (`store.rs`).
//!
//! Layout: `SUBTABLES` open-addressing sub-tables ([`table`]) of 24-byte slots (16-byte id as two
//! u64, 8-byte location; no control bytes: a location of 0 sectors marks an empty slot). A fixed
//! mixing hash of the id picks the sub-table with its top bits and the home slot with the rest:
//! fragment ids are structured (version id ‖ chunk ‖ shard), so their raw bits are never used.
//! Each sub-table grows by 9/8 at 90% load, so its load stays between 80% and 90% (26.7 to 30
//! bytes per entry), and a growth rehashes one sub-table (~1/1024 of the index), never the whole
//! index at once: no 2x memory spike, no long pause on the executor.

mod table;

use hashbrown::HashMap;

use crate::format::Loc;
use table::{Slot, Table};

type Key = [u64; 2];

/// Sub-tables, selected by the top `SUBTABLE_BITS` of the hash. Enough that one sub-table's
/// rehash is small at tens of millions of entries (10M entries: ~10k per sub-table, ~270 KiB),
/// few enough that the directory (24 KiB) is small next to 100k entries.
const SUBTABLE_BITS: u32 = 10;
const SUBTABLES: usize = 1 << SUBTABLE_BITS;
/// Entries the index may hold: every sub-table at its own bound is far more than memory allows;
/// this is what `len` arithmetic is checked against.
pub const INDEX_ENTRIES_MAX: usize = SUBTABLES * table::TABLE_ENTRIES_MAX;

fn key(id: &[u8; 16]) -> Key {
    [
        u64::from_le_bytes(id[0..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(id[8..16].try_into().expect("8 bytes")),
    ]
}

fn unkey(k: Key) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0..8].copy_from_slice(&k[0].to_le_bytes());
    id[8..16].copy_from_slice(&k[1].to_le_bytes());
    id
}

/// The 64-bit product of `a` and `b` folded onto itself: every input bit reaches the middle
/// output bits.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A fixed (unseeded) mixing hash of the whole id: each half is multiplied by its own odd
/// constant, then the two are combined and mixed once more. Not DoS-resistant: ids are made by
/// the gateway, not chosen by clients.
fn hash(k: &Key) -> u64 {
    let a = fold_mul(k[0] ^ 0x243f_6a88_85a3_08d3, 0x9e37_79b9_7f4a_7c15);
    let b = fold_mul(k[1] ^ 0x1319_8a2e_0370_7344, 0xd6e8_feb8_6659_fd93);
    fold_mul(a ^ b.rotate_left(32), 0xa076_1d64_78bd_642f)
}

fn subtable_of(h: u64) -> usize {
    (h >> (64 - SUBTABLE_BITS)) as usize
}

/// The hash bits left after the sub-table choice, for the home slot inside the sub-table.
fn table_hash(k: &Key) -> u64 {
    hash(k) << SUBTABLE_BITS
}

pub struct Index {
    tables: Box<[Table]>,
    len: usize,
    /// Bytes of records the index points to, per segment.
    live_bytes: HashMap<u32, u64>,
}

impl Default for Index {
    fn default() -> Index {
        Index::with_capacity(0)
    }
}

impl Index {
    /// Sizes every sub-table for its expected share of `entries` plus two standard deviations
    /// (a sub-table's share is binomial), so inserting `entries` ids grows only the ~2% of
    /// sub-tables that get more, each by one small step; the rest end at ~88% load.
    pub fn with_capacity(entries: usize) -> Index {
        let share = entries.div_ceil(SUBTABLES);
        let per_table = if entries == 0 {
            0
        } else {
            share + 2 * share.isqrt() + 1
        };
        Index {
            tables: (0..SUBTABLES)
                .map(|_| Table::with_capacity(per_table))
                .collect(),
            len: 0,
            live_bytes: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, id: &[u8; 16]) -> Option<Loc> {
        let k = key(id);
        let h = hash(&k);
        self.tables[subtable_of(h)]
            .get(&k, h << SUBTABLE_BITS)
            .map(Loc)
    }

    /// Points `id` at `loc`. Returns the old location.
    pub fn insert(&mut self, id: &[u8; 16], loc: Loc) -> Option<Loc> {
        // A record is at least its header: a span of 0 sectors is a bug (and marks empty slots).
        assert!(loc.span_bytes() > 0, "indexed location spans no sector");
        let k = key(id);
        let h = hash(&k);
        let old = self.tables[subtable_of(h)]
            .insert(k, loc.0, h << SUBTABLE_BITS)
            .map(Loc);
        *self.live_bytes.entry(loc.segment()).or_default() += loc.span_bytes();
        if let Some(old) = old {
            self.forget_bytes(old);
        } else {
            assert!(self.len < INDEX_ENTRIES_MAX);
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, id: &[u8; 16]) -> Option<Loc> {
        let k = key(id);
        let h = hash(&k);
        let old = self.tables[subtable_of(h)]
            .remove(&k, h << SUBTABLE_BITS)
            .map(Loc);
        if let Some(old) = old {
            assert!(self.len > 0);
            self.len -= 1;
            self.forget_bytes(old);
        }
        old
    }

    /// Live accounting counts each record's sector-rounded span (the index keeps no exact
    /// length), so it overstates by less than 512 bytes per entry.
    fn forget_bytes(&mut self, old: Loc) {
        let b = self
            .live_bytes
            .get_mut(&old.segment())
            .expect("an indexed segment is counted");
        assert!(*b >= old.span_bytes());
        *b -= old.span_bytes();
        if *b == 0 {
            self.live_bytes.remove(&old.segment());
        }
    }

    pub fn live_bytes(&self, segment: u32) -> u64 {
        self.live_bytes.get(&segment).copied().unwrap_or(0)
    }

    pub fn live_bytes_total(&self) -> u64 {
        self.live_bytes.values().sum()
    }

    /// Every entry exactly once, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = ([u8; 16], Loc)> + '_ {
        self.tables
            .iter()
            .flat_map(Table::slots)
            .map(|s| (unkey(s.key), Loc(s.loc)))
    }

    /// The ids in sub-tables `from..`, whole sub-tables at a time until `limit` ids (the orphan
    /// sweep's listing), and the first sub-table not listed (`None`: the last was). A
    /// sub-table is listed whole or not at all, and an id never moves between sub-tables, so
    /// an id present for a whole listing is listed exactly once; a sub-table holding more than
    /// `limit` ids alone is cut to `limit` (the rest is not listed, which only leaves it out
    /// of the sweep).
    pub fn ids_in(&self, from: usize, limit: usize) -> (Vec<[u8; 16]>, Option<usize>) {
        let mut ids = Vec::new();
        let mut at = from.min(SUBTABLES);
        while at < SUBTABLES {
            let table = &self.tables[at];
            if !ids.is_empty() && ids.len() + table.len() > limit {
                break;
            }
            ids.extend(table.slots().take(limit).map(|s| unkey(s.key)));
            at += 1;
        }
        (ids, (at < SUBTABLES).then_some(at))
    }

    /// Heap bytes held by the index: the directory, every sub-table's slot array (load slack
    /// included) and the per-segment live-byte map (hashbrown: one control byte per bucket plus
    /// a group of trailing control bytes). Allocator headers are not counted (one per sub-table).
    pub fn heap_bytes(&self) -> usize {
        let slots: usize = self.tables.iter().map(Table::capacity).sum();
        let live_buckets = match self.live_bytes.capacity() {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        let live = if live_buckets == 0 {
            0
        } else {
            live_buckets * (std::mem::size_of::<(u32, u64)>() + 1) + 16
        };
        std::mem::size_of_val::<[Table]>(&self.tables) + slots * std::mem::size_of::<Slot>() + live
    }

    /// Walks every sub-table and asserts its invariants and the total count. O(n), for tests
    /// (`strict` builds check one sub-table after each of its resizes).
    pub fn check_invariants(&self) {
        let mut n = 0usize;
        for (i, t) in self.tables.iter().enumerate() {
            t.check();
            for s in t.slots() {
                assert_eq!(subtable_of(hash(&s.key)), i);
            }
            n += t.len();
        }
        assert_eq!(n, self.len);
        assert_eq!(self.iter().count(), self.len);
    }
}

#[cfg(test)]
mod tests;
