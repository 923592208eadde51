//! The fragment index against a model: random insert / replace / remove / get sequences
//! compared with a `std::collections::HashMap` (including ids that share long prefixes, many
//! sub-table growths, removals down to empty), and its memory measured by a counting allocator
//! rather than trusted from `heap_bytes()`. Deterministic seeds, sizes kept small for debug
//! builds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use engine::format::Loc;
use engine::index::Index;

/// Counts this thread's live heap bytes (thread-local, so tests running beside it on other
/// threads do not disturb the figure).
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn count(delta_add: usize, delta_sub: usize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = (live.get() + delta_add).saturating_sub(delta_sub);
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// A test-only allocator: every call forwards to the system allocator unchanged and only counts
// (GlobalAlloc is an unsafe trait; nothing here dereferences anything).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    LIVE_BYTES.with(Cell::get)
}

fn reset_peak() {
    PEAK_BYTES.with(|p| p.set(live_bytes()));
}

fn peak_bytes() -> usize {
    PEAK_BYTES.with(Cell::get)
}

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Candidate ids: a third random, a third shaped like the gateway's fragment ids (a few version
/// ids shared by many chunk/shard suffixes), a third differing from one base id in one byte or
/// two.
fn id_pool(rng: &mut Rng, n: usize) -> Vec<[u8; 16]> {
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(n);
    let base: [u8; 16] = rng
        .next()
        .to_le_bytes()
        .repeat(2)
        .try_into()
        .expect("16 bytes");
    let versions: Vec<u64> = (0..4).map(|_| rng.next()).collect();
    while ids.len() < n {
        let mut id = [0u8; 16];
        match rng.below(3) {
            0 => {
                id[..8].copy_from_slice(&rng.next().to_le_bytes());
                id[8..].copy_from_slice(&rng.next().to_le_bytes());
            }
            1 => {
                id[..8].copy_from_slice(&versions[rng.below(4) as usize].to_le_bytes());
                id[12..15].copy_from_slice(&(rng.below(1 << 24) as u32).to_le_bytes()[..3]);
                id[15] = rng.below(12) as u8;
            }
            _ => {
                id = base;
                id[rng.below(16) as usize] = rng.next() as u8;
                id[rng.below(16) as usize] = rng.next() as u8;
            }
        }
        if seen.insert(id) {
            ids.push(id);
        }
    }
    ids
}

fn random_loc(rng: &mut Rng) -> Loc {
    Loc::new(
        rng.below(40) as u32 + 1,
        rng.below(1 << 20) * 8,
        rng.below(200_000) + 1,
    )
}

/// Compares everything observable: length, per-segment and total live bytes, every entry
/// through `get` and through `iter` (each exactly once), and the index's own invariants.
fn check_against(ix: &Index, model: &HashMap<[u8; 16], Loc>) {
    assert_eq!(ix.len(), model.len());
    assert_eq!(ix.is_empty(), model.is_empty());
    let mut live: HashMap<u32, u64> = HashMap::new();
    for (id, loc) in model {
        *live.entry(loc.segment()).or_default() += loc.span_bytes();
        assert_eq!(ix.get(id), Some(*loc));
    }
    for segment in 0..=41 {
        assert_eq!(
            ix.live_bytes(segment),
            live.get(&segment).copied().unwrap_or(0)
        );
    }
    assert_eq!(ix.live_bytes_total(), live.values().sum::<u64>());
    let mut seen = HashSet::new();
    for (id, loc) in ix.iter() {
        assert!(seen.insert(id), "iter yields each entry once");
        assert_eq!(model.get(&id), Some(&loc));
    }
    assert_eq!(seen.len(), model.len());
    ix.check_invariants();
}

fn one_op(rng: &mut Rng, ids: &[[u8; 16]], ix: &mut Index, model: &mut HashMap<[u8; 16], Loc>) {
    let id = ids[rng.below(ids.len() as u64) as usize];
    match rng.below(10) {
        0..=5 => {
            let loc = random_loc(rng);
            assert_eq!(ix.insert(&id, loc), model.insert(id, loc));
        }
        6 | 7 => assert_eq!(ix.remove(&id), model.remove(&id)),
        _ => assert_eq!(ix.get(&id), model.get(&id).copied()),
    }
}

fn run_model(seed: u64, pool: usize, ops: usize) {
    let mut rng = Rng(seed);
    let ids = id_pool(&mut rng, pool);
    let mut ix = Index::default();
    let mut model = HashMap::new();
    // Growing: the pool fills up over the run, so every sub-table grows many times.
    for step in 0..ops {
        let live_pool = (pool * (step + 1) / ops).max(16);
        one_op(&mut rng, &ids[..live_pool], &mut ix, &mut model);
        if step.is_multiple_of(10_000) {
            check_against(&ix, &model);
        }
    }
    check_against(&ix, &model);
    // Shrinking to empty in random order, with lookups of present and absent ids between.
    let mut present: Vec<[u8; 16]> = model.keys().copied().collect();
    while let Some(id) = present.pop() {
        let swap = rng.below(present.len() as u64 + 1) as usize;
        let id = if swap < present.len() {
            std::mem::replace(&mut present[swap], id)
        } else {
            id
        };
        assert_eq!(ix.remove(&id), model.remove(&id));
        assert_eq!(ix.remove(&id), None);
        let probe = ids[rng.below(ids.len() as u64) as usize];
        assert_eq!(ix.get(&probe), model.get(&probe).copied());
        if present.len().is_multiple_of(5_000) {
            check_against(&ix, &model);
        }
    }
    assert!(ix.is_empty());
    assert_eq!(ix.live_bytes_total(), 0);
    check_against(&ix, &model);
    // And usable again after shrinking to nothing.
    for _ in 0..2_000 {
        one_op(&mut rng, &ids[..ids.len().min(1_000)], &mut ix, &mut model);
    }
    check_against(&ix, &model);
}

#[test]
fn index_matches_a_hashmap_model() {
    for seed in [1, 2, 0xdead_beef] {
        run_model(seed, 30_000, 60_000);
    }
}

#[test]
fn small_index_matches_a_hashmap_model() {
    // Few ids: tables stay at their smallest sizes, where wrap-around and shrinking to zero
    // happen most.
    for seed in 10..20 {
        run_model(seed, 200, 3_000);
    }
}

/// The bytes the allocator actually handed out for the index match `heap_bytes()` (which
/// includes the load slack), stay ≤ 32 per entry at every size measured, and the peak during
/// growth (one sub-table's old and new arrays at once) adds almost nothing.
#[test]
fn memory_counted_by_the_allocator_stays_within_32_bytes_per_entry() {
    let mut rng = Rng(99);
    let base = live_bytes();
    let mut ix = Index::default();
    let mut worst = 0.0f64;
    let mut worst_peak = 0.0f64;
    reset_peak();
    for i in 1..=300_000u64 {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i / 64).to_le_bytes());
        id[12..15].copy_from_slice(&(i as u32).to_le_bytes()[..3]);
        id[15] = (i % 64) as u8;
        ix.insert(&id, random_loc(&mut rng));
        if i >= 100_000 && i.is_multiple_of(10_000) {
            let counted = live_bytes() - base;
            let reported = ix.heap_bytes();
            let diff = counted.abs_diff(reported);
            assert!(diff <= 64, "allocator {counted} vs heap_bytes {reported}");
            let per_entry = counted as f64 / i as f64;
            let peak_per_entry = (peak_bytes() - base) as f64 / i as f64;
            worst = worst.max(per_entry);
            worst_peak = worst_peak.max(peak_per_entry);
            reset_peak();
        }
    }
    eprintln!("index memory 100k..300k: worst {worst:.2} B/entry, peak {worst_peak:.2}");
    assert!(worst <= 32.0, "{worst} bytes per entry");
    assert!(worst_peak <= 32.0, "{worst_peak} bytes per entry at peak");
    drop(ix);
    assert!(live_bytes() - base < 1024, "everything freed");
}
