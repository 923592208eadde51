//! Unit tests of the index internals: accounting, the empty-slot sentinel, hash spread over
//! sub-tables for structured ids, resizing. The model test against a `HashMap` and the memory
//! measurement with a counting allocator are in `engine/tests/index_model.rs`.

use super::*;

/// An id shaped like the gateway's `fragment_id`: version id (12 bytes) ‖ chunk (24 bits) ‖
/// shard (8 bits). Many ids share the first 12 bytes.
fn fragment_like(version: u64, chunk: u32, shard: u8) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&version.to_le_bytes());
    id[12..15].copy_from_slice(&chunk.to_le_bytes()[..3]);
    id[15] = shard;
    id
}

fn loc(i: u64) -> Loc {
    Loc::new(1 + (i % 7) as u32, (i % 1000) * 8, 64 + (i % 3000))
}

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

#[test]
#[should_panic(expected = "spans no sector")]
fn a_location_without_sectors_is_refused() {
    let mut ix = Index::default();
    ix.insert(&[3u8; 16], Loc::new(1, 0, 0));
}

#[test]
fn the_zero_id_and_extreme_locations_are_ordinary_entries() {
    let mut ix = Index::default();
    let far = Loc::new(
        crate::limits::SEGMENTS_MAX - 1,
        (1 << 31) - 8,
        16 * 1024 * 1024 + 64,
    );
    assert_eq!(ix.get(&[0u8; 16]), None);
    ix.insert(&[0u8; 16], Loc::new(0, 0, 1));
    ix.insert(&[0xffu8; 16], far);
    assert_eq!(ix.get(&[0u8; 16]), Some(Loc::new(0, 0, 1)));
    assert_eq!(ix.get(&[0xffu8; 16]), Some(far));
    assert_eq!(ix.len(), 2);
    ix.check_invariants();
}

#[test]
fn structured_ids_spread_over_subtables() {
    let mut counts = vec![0usize; SUBTABLES];
    let mut n = 0usize;
    for version in 0..40u64 {
        for chunk in 0..400u32 {
            for shard in 0..6u8 {
                counts[subtable_of(hash(&key(&fragment_like(version, chunk, shard))))] += 1;
                n += 1;
            }
        }
    }
    let mean = n / SUBTABLES;
    let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
    assert!(max.unwrap() < 2 * mean, "max {max:?} mean {mean}");
    assert!(min.unwrap() > mean / 2, "min {min:?} mean {mean}");
}

#[test]
fn growth_keeps_memory_bound_and_removal_frees_it() {
    let mut ix = Index::default();
    let empty_bytes = ix.heap_bytes();
    let mut worst = 0.0f64;
    for i in 0..150_000u64 {
        ix.insert(&fragment_like(i / 1000, (i % 1000) as u32, 0), loc(i));
        if i >= 100_000 && i.is_multiple_of(5_000) {
            let per_entry = ix.heap_bytes() as f64 / ix.len() as f64;
            worst = worst.max(per_entry);
        }
    }
    assert!(worst <= 32.0, "{worst} bytes per entry");
    ix.check_invariants();
    for i in 0..150_000u64 {
        let id = fragment_like(i / 1000, (i % 1000) as u32, 0);
        assert_eq!(ix.remove(&id), Some(loc(i)));
        if i.is_multiple_of(50_000) {
            ix.check_invariants();
        }
    }
    assert!(ix.is_empty());
    assert_eq!(ix.live_bytes_total(), 0);
    ix.check_invariants();
    // Emptied sub-tables release their slots; the live-byte map keeps its (small) buckets.
    assert!(ix.tables.iter().all(|t| t.capacity() == 0));
    assert!(ix.heap_bytes() < empty_bytes + 4096);
}

#[test]
fn with_capacity_grows_few_subtables() {
    let entries = 200_000u64;
    let mut ix = Index::with_capacity(entries as usize);
    let before: Vec<usize> = ix.tables.iter().map(Table::capacity).collect();
    for i in 0..entries {
        ix.insert(
            &fragment_like(i / 9000, (i % 9000) as u32, (i % 9) as u8),
            loc(i),
        );
    }
    let grown = ix
        .tables
        .iter()
        .zip(&before)
        .filter(|(t, c)| t.capacity() != **c)
        .count();
    assert!(grown <= SUBTABLES / 20, "{grown} sub-tables grew");
    assert!(ix.heap_bytes() as f64 / ix.len() as f64 <= 32.0);
}

#[test]
fn listing_by_sub_tables_lists_every_id_once() {
    let mut ix = Index::default();
    let mut all = std::collections::HashSet::new();
    for v in 0..3000u64 {
        let id = fragment_like(v, (v % 5) as u32, (v % 3) as u8);
        ix.insert(&id, loc(v));
        all.insert(id);
    }
    let mut listed = Vec::new();
    let mut from = Some(0);
    let mut pages = 0;
    while let Some(f) = from {
        let (ids, next) = ix.ids_in(f, 100);
        assert!(
            ids.len() <= 100 || next == Some(f + 1),
            "whole sub-tables up to the limit"
        );
        listed.extend(ids);
        from = next;
        pages += 1;
    }
    assert!(pages > 10);
    assert_eq!(listed.len(), all.len());
    assert_eq!(
        listed.into_iter().collect::<std::collections::HashSet<_>>(),
        all
    );
    // An id inserted behind the cursor is not listed; one left in place is listed once.
    let (first, next) = ix.ids_in(0, 1);
    assert_eq!(first.len(), ix.tables[0].len().min(1));
    assert_eq!(next, Some(1));
    assert_eq!(ix.ids_in(SUBTABLES, 10), (vec![], None));
}
