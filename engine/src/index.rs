//! The per-core fragment index: fragment id → packed [`Loc`], in memory, plus per-segment live
//! byte accounting for the reclaimer. Rebuilt on start from a checkpoint and the log tail.
//!
//! An entry is 24 bytes (16-byte key as two u64 for 8-byte alignment, 8-byte packed location)
//! plus hashbrown's one control byte; memory per entry varies with the table's load factor
//! (measured in bench/ and reported there).

use hashbrown::HashMap;

use crate::format::Loc;

type Key = [u64; 2];

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

#[derive(Default)]
pub struct Index {
    map: HashMap<Key, u64>,
    /// Bytes of records the index points to, per segment.
    live_bytes: HashMap<u32, u64>,
}

impl Index {
    pub fn with_capacity(entries: usize) -> Index {
        Index {
            map: HashMap::with_capacity(entries),
            live_bytes: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, id: &[u8; 16]) -> Option<Loc> {
        self.map.get(&key(id)).map(|v| Loc(*v))
    }

    /// Points `id` at `loc`. Returns the old location.
    pub fn insert(&mut self, id: &[u8; 16], loc: Loc) -> Option<Loc> {
        *self.live_bytes.entry(loc.segment()).or_default() += loc.span_bytes();
        let old = self.map.insert(key(id), loc.0).map(Loc);
        if let Some(old) = old {
            self.forget_bytes(old);
        }
        old
    }

    pub fn remove(&mut self, id: &[u8; 16]) -> Option<Loc> {
        let old = self.map.remove(&key(id)).map(Loc);
        if let Some(old) = old {
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

    pub fn iter(&self) -> impl Iterator<Item = ([u8; 16], Loc)> + '_ {
        self.map.iter().map(|(k, v)| (unkey(*k), Loc(*v)))
    }

    /// Approximate heap bytes held by the map (buckets plus control bytes).
    pub fn heap_bytes(&self) -> usize {
        let buckets = self.map.capacity() * 8 / 7;
        buckets.next_power_of_two() * (std::mem::size_of::<(Key, u64)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replace_remove_accounting() {
        let mut ix = Index::default();
        let a = [1u8; 16];
        ix.insert(&a, Loc::new(1, 0, 1000));
        assert_eq!(ix.live_bytes(1), 1024);
        let old = ix.insert(&a, Loc::new(2, 8, 600));
        assert_eq!(old.map(Loc::segment), Some(1));
        assert_eq!(ix.live_bytes(1), 0);
        assert_eq!(ix.live_bytes(2), 1024);
        ix.remove(&a);
        assert_eq!(ix.live_bytes(2), 0);
        assert!(ix.is_empty());
    }
}
