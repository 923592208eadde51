//! Model-based test of the store over the simulated disk: random puts, gets, deletes, metadata
//! mutations, checkpoints, reclaims and crashes (with torn and lost unsynced writes), checked
//! against a BTreeMap model. Every run is reproducible from the printed seed:
//! `PERCORE_SIM_SEED=<seed> cargo test -p engine --test model`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use engine::sim::{SimDisk, SimRng};
use engine::store::{Store, StoreConfig};
use engine::EngineError;

mod common;
use common::run_on_executor;

const SEGMENT_BYTES: u64 = 1024 * 1024;
/// Small next to the data the runs write (fragments up to 40 KB), so entries are filled,
/// served, invalidated and evicted all through a run: every read is checked against the model
/// whether it came from the cache or the device.
const CACHE_BYTES: u64 = 512 * 1024;

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        capacity_bytes: 64 * SEGMENT_BYTES,
        checkpoint_every_records: 50,
        checkpoint_every_log_bytes: 1 << 40,
        salt: 0x5eed,
        format1_segments_below: 0,
        // Small writes, so bursts become several pipelined writes per group commit.
        batch_bytes: 16 * 1024,
        cache_bytes: CACHE_BYTES,
    }
}

type Values = Vec<Option<Bytes>>;

/// What the model allows a key to hold: any of these (None = absent).
#[derive(Clone, Debug)]
struct Allowed(Vec<Option<Bytes>>);

impl Allowed {
    fn certain(v: Option<Bytes>) -> Allowed {
        Allowed(vec![v])
    }
}

fn payload(rng: &mut SimRng, tag: u64) -> Bytes {
    let len = match rng.below(4) {
        0 => rng.below(64),
        1 => rng.below(5000),
        2 => 4096,
        _ => rng.below(40_000),
    } as usize;
    let mut v = vec![0u8; len];
    let mut x = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in &mut v {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Bytes::from(v)
}

fn frag_id(k: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0..8].copy_from_slice(&k.to_le_bytes());
    id[8] = 0xf0;
    id
}

fn meta_key(k: u64) -> Bytes {
    Bytes::from(format!("b/obj-{k:03}"))
}

struct World {
    disk: SimDisk,
    store: Option<Store<SimDisk>>,
    frags: BTreeMap<u64, Allowed>,
    metas: BTreeMap<u64, Allowed>,
    hlc: u64,
    tag: u64,
}

async fn open(disk: &SimDisk) -> Store<SimDisk> {
    Store::open(disk.clone(), config())
        .await
        .expect("store opens after any crash")
}

impl World {
    fn s(&self) -> &Store<SimDisk> {
        self.store.as_ref().expect("open")
    }

    /// Ends the process (dropping unsynced writes as the simulator decides) and starts anew.
    async fn restart(&mut self) {
        self.store
            .take()
            .expect("open")
            .shutdown()
            .await
            .expect("store closes");
        self.disk = self.disk.restart();
        self.store = Some(open(&self.disk).await);
    }
}

async fn check_all(w: &mut World, seed: u64) {
    let store = w.s().clone();
    for (k, allowed) in &mut w.frags {
        let got = match store.get_fragment(frag_id(*k), 0, None).await {
            Ok(b) => Some(b),
            Err(EngineError::NotFound) => None,
            Err(e) => panic!("seed {seed}: fragment {k}: unexpected error {e}"),
        };
        assert!(
            allowed.0.contains(&got),
            "seed {seed}: fragment {k} holds {:?} bytes, model allows {:?}",
            got.as_ref().map(Bytes::len),
            allowed
                .0
                .iter()
                .map(|a| a.as_ref().map(Bytes::len))
                .collect::<Vec<_>>()
        );
        *allowed = Allowed::certain(got);
    }
    for (k, allowed) in &mut w.metas {
        let got = store.meta_get(&meta_key(*k)).unwrap().map(|v| v.value);
        assert!(
            allowed.0.contains(&got),
            "seed {seed}: meta {k} holds {got:?}"
        );
        *allowed = Allowed::certain(got);
    }
    // Scans agree with point reads.
    let page = store.meta_scan(b"b/", None, 10_000).unwrap();
    let scanned: BTreeSet<Bytes> = page.entries.iter().map(|(k, _)| k.clone()).collect();
    let live: BTreeSet<Bytes> = w
        .metas
        .iter()
        .filter(|(_, a)| a.0[0].is_some())
        .map(|(k, _)| meta_key(*k))
        .collect();
    assert_eq!(scanned, live, "seed {seed}: scan disagrees with the model");
}

/// A burst of concurrent operations, optionally with a crash injected after `crash_ops` disk
/// operations. Successful ones become certain in the model; failed ones leave both outcomes.
async fn burst(w: &mut World, rng: &mut SimRng, seed: u64, crash: bool) {
    let n = 1 + rng.below(12);
    if crash {
        w.disk.crash_after(rng.below(8));
    }
    let mut tasks = Vec::new();
    for _ in 0..n {
        let k = rng.below(24);
        let store = w.s().clone();
        w.tag += 1;
        w.hlc += 1 + rng.below(3);
        match rng.below(5) {
            0 | 1 => {
                let data = payload(rng, w.tag);
                let d2 = data.clone();
                tasks.push((
                    false,
                    k,
                    Some(data),
                    glommio::spawn_local(async move {
                        store.put_fragment(frag_id(k), d2).await.map(|()| true)
                    }),
                ));
            }
            2 => tasks.push((
                false,
                k,
                None,
                glommio::spawn_local(async move {
                    match store.delete_fragment(frag_id(k)).await {
                        Err(EngineError::NotFound) => Ok(false),
                        r => r.map(|()| true),
                    }
                }),
            )),
            3 => {
                let v = payload(rng, w.tag).slice(..);
                let v = v.slice(..v.len().min(300));
                let hlc = w.hlc;
                let v2 = v.clone();
                tasks.push((
                    true,
                    k,
                    Some(v),
                    glommio::spawn_local(async move { store.meta_put(meta_key(k), v2, hlc).await }),
                ));
            }
            _ => {
                let hlc = w.hlc;
                tasks.push((
                    true,
                    k,
                    None,
                    glommio::spawn_local(async move { store.meta_delete(meta_key(k), hlc).await }),
                ));
            }
        }
    }
    // Per key: the values of writes that applied, and of writes whose outcome is unknown.
    let mut outcomes: BTreeMap<(bool, u64), (Values, Values)> = BTreeMap::new();
    for (is_meta, k, value, task) in tasks {
        let result = task.await;
        let o = outcomes.entry((is_meta, k)).or_default();
        match result {
            Ok(true) => o.0.push(value),
            Ok(false) => {}
            Err(e) => {
                assert!(crash, "seed {seed}: error without an injected fault: {e}");
                o.1.push(value);
            }
        }
    }
    for ((is_meta, k), (applied, unknown)) in outcomes {
        let map = if is_meta { &mut w.metas } else { &mut w.frags };
        let entry = map.entry(k).or_insert_with(|| Allowed::certain(None));
        // Log order decides which applied write is last, so any of them may be; the old value
        // remains possible only if no write surely applied.
        let mut allowed = if applied.is_empty() {
            entry.0.clone()
        } else {
            applied
        };
        allowed.extend(unknown);
        *entry = Allowed(allowed);
    }
}

async fn run_seed(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(seed, 64 * SEGMENT_BYTES, dir.path().join("meta"));
    let store = Some(open(&disk).await);
    let mut w = World {
        disk,
        store,
        frags: BTreeMap::new(),
        metas: BTreeMap::new(),
        hlc: 1,
        tag: 0,
    };
    let mut rng = SimRng::new(seed);
    for _step in 0..60 {
        match rng.below(10) {
            0..=5 => {
                burst(&mut w, &mut rng, seed, false).await;
                check_all(&mut w, seed).await;
            }
            6 => {
                burst(&mut w, &mut rng, seed, true).await;
                w.restart().await;
                check_all(&mut w, seed).await;
            }
            7 => {
                w.s().checkpoint().await.unwrap();
            }
            8 => {
                let _ = w.s().reclaim_once().await.unwrap();
                check_all(&mut w, seed).await;
            }
            _ => {
                w.restart().await;
                check_all(&mut w, seed).await;
            }
        }
    }
    let stats = w.s().stats();
    assert!(!stats.poisoned || stats.puts > 0);
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("PERCORE_SIM_SEED") {
        return vec![s.parse().expect("PERCORE_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("PERCORE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (0..n)
        .map(|i| {
            if i < 8 {
                i
            } else {
                base.wrapping_mul(31).wrapping_add(i)
            }
        })
        .collect()
}

#[test]
fn store_matches_model_under_crashes() {
    for seed in seeds() {
        eprintln!("model seed {seed}");
        let result = std::panic::catch_unwind(|| run_on_executor(move || run_seed(seed)));
        assert!(
            result.is_ok(),
            "model test failed; replay with PERCORE_SIM_SEED={seed}"
        );
    }
}

/// Bit flips in durable data are reported as `Corrupt` (or the record is skipped at replay),
/// never returned as data. Fragment ids are written once here, as the gateway uses them.
#[test]
fn bit_flips_never_return_wrong_data() {
    for seed in seeds().into_iter().take(16) {
        eprintln!("flip seed {seed}");
        let r = std::panic::catch_unwind(|| run_on_executor(move || flip_seed(seed)));
        assert!(
            r.is_ok(),
            "flip test failed; replay with PERCORE_SIM_SEED={seed}"
        );
    }
}

async fn flip_seed(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(seed, 64 * SEGMENT_BYTES, dir.path().join("meta"));
    let mut store = open(&disk).await;
    let mut rng = SimRng::new(seed ^ 0xf11b);
    let mut written = BTreeMap::new();
    for k in 0..40u64 {
        let data = payload(&mut rng, k + 1000);
        store.put_fragment(frag_id(k), data.clone()).await.unwrap();
        written.insert(k, data);
    }
    let lens = disk.segment_lens();
    for _ in 0..6 {
        let (seg, len) = lens[rng.below(lens.len() as u64) as usize];
        if len > 0 {
            disk.flip_bit(seg, rng.below(len), rng.below(8) as u8);
        }
    }
    if rng.below(2) == 0 {
        store.shutdown().await.unwrap();
        store = open(&disk.restart()).await;
    }
    let mut lost = 0u32;
    for (k, data) in &written {
        // The scrub's check agrees with a read: sound with the fragment's length, or the
        // same error.
        let verified = store.verify_fragment(frag_id(*k)).await;
        match store.get_fragment(frag_id(*k), 0, None).await {
            Ok(b) => {
                assert_eq!(&b, data, "seed {seed}: fragment {k} returned wrong bytes");
                assert_eq!(verified.ok(), Some(data.len() as u64), "seed {seed}: {k}");
            }
            Err(e @ (EngineError::Corrupt { .. } | EngineError::NotFound)) => {
                lost += 1;
                assert_eq!(
                    std::mem::discriminant(&verified.expect_err("a damaged fragment")),
                    std::mem::discriminant(&e),
                    "seed {seed}: fragment {k}"
                );
            }
            Err(e) => panic!("seed {seed}: unexpected {e}"),
        }
    }
    // Six flips damage at most six records (header or payload), never more.
    assert!(
        lost <= 6,
        "seed {seed}: {lost} fragments lost to 6 bit flips"
    );
}

/// A damaged checkpoint is ignored and the index rebuilt from every segment left, after
/// overwrites, deletes and reclaims removed segments and relocated fragments: every live
/// fragment and metadata record reads back; a deleted fragment may come back only as one of
/// its own earlier values (its tombstone's segment may be gone: engine/DESIGN.md, "Damage").
#[test]
fn damaged_checkpoint_rebuilds_the_index_from_the_log() {
    for seed in seeds().into_iter().take(8) {
        eprintln!("checkpoint damage seed {seed}");
        let r = std::panic::catch_unwind(|| run_on_executor(move || checkpoint_seed(seed)));
        assert!(
            r.is_ok(),
            "checkpoint damage failed; replay with PERCORE_SIM_SEED={seed}"
        );
    }
}

async fn checkpoint_seed(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(seed, 64 * SEGMENT_BYTES, dir.path().join("meta"));
    let store = open(&disk).await;
    let mut rng = SimRng::new(seed ^ 0xc4e7);
    // Every value each fragment ever held, and what it holds now.
    let mut history: BTreeMap<u64, Vec<Bytes>> = BTreeMap::new();
    let mut live: BTreeMap<u64, Option<Bytes>> = BTreeMap::new();
    let mut tag = 0;
    for round in 0..6u64 {
        for _ in 0..60 {
            let k = rng.below(80);
            tag += 1;
            if rng.below(5) == 0 {
                match store.delete_fragment(frag_id(k)).await {
                    Ok(()) | Err(EngineError::NotFound) => {}
                    Err(e) => panic!("seed {seed}: delete {k}: {e}"),
                }
                live.insert(k, None);
            } else {
                let data = payload(&mut rng, tag);
                store.put_fragment(frag_id(k), data.clone()).await.unwrap();
                history.entry(k).or_default().push(data.clone());
                live.insert(k, Some(data));
            }
            let key = meta_key(rng.below(40));
            store
                .meta_put(key, Bytes::from(format!("v{tag}")), round * 1000 + tag)
                .await
                .unwrap();
        }
        while store.reclaim_once().await.unwrap() {}
    }
    let metas: Vec<_> = (0..40)
        .map(|k| store.meta_get(&meta_key(k)).unwrap())
        .collect();
    store.shutdown().await.unwrap();
    let len = disk.small_len("checkpoint").expect("a checkpoint");
    assert!(disk.flip_small_bit("checkpoint", rng.below(len as u64) as usize, 3));
    let store = open(&disk.restart()).await;
    assert!(store.stats().checkpoint_rebuilt, "seed {seed}");
    for (k, now) in &live {
        let got = match store.get_fragment(frag_id(*k), 0, None).await {
            Ok(b) => Some(b),
            Err(EngineError::NotFound) => None,
            Err(e) => panic!("seed {seed}: fragment {k}: {e}"),
        };
        match now {
            Some(v) => assert_eq!(got.as_ref(), Some(v), "seed {seed}: fragment {k}"),
            None => assert!(
                got.is_none_or(|g| history[k].contains(&g)),
                "seed {seed}: deleted fragment {k} came back as bytes it never held"
            ),
        }
    }
    for (k, want) in metas.iter().enumerate() {
        assert_eq!(
            &store.meta_get(&meta_key(k as u64)).unwrap(),
            want,
            "seed {seed}: meta {k}"
        );
    }
    // The rebuild wrote a sound checkpoint: the next start uses it.
    store.shutdown().await.unwrap();
    let store = open(&disk.restart()).await;
    assert!(!store.stats().checkpoint_rebuilt, "seed {seed}");
    for (k, now) in &live {
        if let Some(v) = now {
            assert_eq!(&store.get_fragment(frag_id(*k), 0, None).await.unwrap(), v);
        }
    }
}

/// A failed flush poisons the core: that write and every later one fail with `Poisoned`, reads
/// are still served, and after a restart the acknowledged data is intact.
#[test]
fn failed_flush_poisons_writes_not_reads() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(3, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let a = Bytes::from_static(b"acknowledged");
        store.put_fragment(frag_id(1), a.clone()).await.unwrap();
        disk.fail_next_sync();
        let r = store
            .put_fragment(frag_id(2), Bytes::from_static(b"lost"))
            .await;
        assert!(matches!(r, Err(EngineError::Poisoned)), "{r:?}");
        let r = store
            .put_fragment(frag_id(3), Bytes::from_static(b"later"))
            .await;
        assert!(matches!(r, Err(EngineError::Poisoned)), "{r:?}");
        let r = store
            .meta_put(meta_key(1), Bytes::from_static(b"m"), 9)
            .await;
        assert!(matches!(r, Err(EngineError::Poisoned)), "{r:?}");
        assert_eq!(store.get_fragment(frag_id(1), 0, None).await.unwrap(), a);
        assert!(store.stats().poisoned);
        store.shutdown().await.unwrap();
        let store = open(&disk.restart()).await;
        assert_eq!(store.get_fragment(frag_id(1), 0, None).await.unwrap(), a);
        assert!(!store.stats().poisoned);
        store.shutdown().await.unwrap();
    });
}

/// A partition whose capacity is used up answers `NoSpace`, and nothing half-written becomes
/// visible; deleting and reclaiming makes room again.
#[test]
fn no_space_is_clean_and_recoverable() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(4, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let mut cfg = config();
        cfg.capacity_bytes = 6 * SEGMENT_BYTES;
        let store = Store::open(disk.clone(), cfg.clone()).await.unwrap();
        let big = Bytes::from(vec![7u8; 300_000]);
        let mut stored = Vec::new();
        for k in 0..100u64 {
            match store.put_fragment(frag_id(k), big.clone()).await {
                Ok(()) => stored.push(k),
                Err(EngineError::NoSpace) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!stored.is_empty() && stored.len() < 100);
        let failed = stored.len() as u64;
        assert!(matches!(
            store.get_fragment(frag_id(failed), 0, None).await,
            Err(EngineError::NotFound)
        ));
        for k in &stored[..stored.len() - 1] {
            store.delete_fragment(frag_id(*k)).await.unwrap();
        }
        while store.reclaim_once().await.unwrap() {}
        store
            .put_fragment(frag_id(1000), big.clone())
            .await
            .expect("room after reclaim");
        let last = *stored.last().unwrap();
        assert_eq!(
            store.get_fragment(frag_id(last), 0, None).await.unwrap(),
            big
        );
        store.shutdown().await.unwrap();
    });
}

/// Conditional writes are compare-and-swap: of many concurrent "create if absent" writes
/// exactly one wins, and "replace if still version h" fails once another write got in.
#[test]
fn conditional_meta_writes_are_compare_and_swap() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(5, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let key = Bytes::from_static(b"b/cas");
        let tasks: Vec<_> = (0..10u64)
            .map(|i| {
                let (store, key) = (store.clone(), key.clone());
                glommio::spawn_local(async move {
                    store
                        .meta_put_if(key, Bytes::from(vec![i as u8]), 100 + i, None)
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if t.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "exactly one create-if-absent wins");
        let current = store.meta_get(&key).unwrap().unwrap();
        let h = current.hlc;
        assert!(store
            .meta_put_if(key.clone(), Bytes::from_static(b"x"), 200, Some(h))
            .await
            .unwrap());
        assert!(!store
            .meta_put_if(key.clone(), Bytes::from_static(b"y"), 201, Some(h))
            .await
            .unwrap());
        store.meta_delete(key.clone(), 300).await.unwrap();
        assert!(store
            .meta_put_if(key.clone(), Bytes::from_static(b"z"), 301, None)
            .await
            .unwrap());
        store.shutdown().await.unwrap();
    });
}

/// A swap answers what it replaced and whether it won: of many concurrent swaps of one key,
/// each sees the one applied just before it (a chain without gaps or repeats), and one with
/// an older HLC loses to the newer version it reports.
#[test]
fn meta_swaps_report_what_they_replaced() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(6, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let key = Bytes::from_static(b"b/swap");
        let (won, previous) = store
            .meta_swap(key.clone(), Bytes::from_static(b"first"), 10)
            .await
            .unwrap();
        assert!(won && previous.is_none());
        let tasks: Vec<_> = (0..20u64)
            .map(|i| {
                let (store, key) = (store.clone(), key.clone());
                glommio::spawn_local(async move {
                    let value = Bytes::from(vec![i as u8]);
                    store.meta_swap(key, value, 100 + i).await.map(|r| (i, r))
                })
            })
            .collect();
        let mut seen = std::collections::BTreeMap::new();
        for t in tasks {
            let (i, (won, previous)) = t.await.unwrap();
            let (previous, deleted) = previous.expect("a version was there");
            assert!(!deleted);
            // HLCs rise with the spawn order, so every swap applies over the one before it.
            assert!(won, "swap {i} has the newest HLC when it applies");
            seen.insert(i, previous.hlc);
        }
        let chain: Vec<u64> = seen.values().copied().collect();
        let expected: Vec<u64> = std::iter::once(10).chain(100..119).collect();
        assert_eq!(
            chain, expected,
            "each swap saw the one applied just before it"
        );
        // An older HLC loses and reports the newer version that stays.
        let (won, previous) = store
            .meta_swap(key.clone(), Bytes::from_static(b"late"), 50)
            .await
            .unwrap();
        let (previous, _) = previous.unwrap();
        assert!(!won);
        assert_eq!(previous.hlc, 119);
        assert_eq!(store.meta_get(&key).unwrap().unwrap().hlc, 119);
        // Over a tombstone: the tombstone is reported.
        store.meta_delete(key.clone(), 500).await.unwrap();
        let (won, previous) = store
            .meta_swap(key.clone(), Bytes::from_static(b"again"), 501)
            .await
            .unwrap();
        let (previous, deleted) = previous.unwrap();
        assert!(won && deleted && previous.hlc == 500);
        store.shutdown().await.unwrap();
    });
}

/// Restart after a crash replays a bounded tail of the log, whatever the partition holds:
/// checkpoints are taken by log bytes written (`checkpoint_every_log_bytes`), not only by
/// records, and replay and reclaim read segments through a bounded window. Fragments larger
/// than the window (their checksum computed piece by piece) replay and relocate too. After
/// the crash every acknowledged write reads back. The same writes with the byte cadence off
/// replay everything (so the bound is what the cadence buys, not an accident of the test).
#[test]
fn replay_after_a_crash_reads_a_bounded_tail() {
    run_on_executor(|| async {
        let with_cadence = crash_and_replay(6, 256 * 1024).await;
        let without = crash_and_replay(6, 1 << 40).await;
        eprintln!(
            "replayed with the cadence: {} bytes, {} records ({} checkpoints); without: {} \
             bytes, {} records",
            with_cadence.replayed_bytes,
            with_cadence.replayed_records,
            with_cadence.checkpoints,
            without.replayed_bytes,
            without.replayed_records
        );
        assert!(
            with_cadence.checkpoints >= 10,
            "{} checkpoints for the log at one per 256 KiB",
            with_cadence.checkpoints
        );
        // The tail: one cadence, what was written while the last checkpoint was taken, and
        // the rest of the segment the crash left (read to its end).
        let bound = 256 * 1024 + 2 * BIG_SEGMENT_BYTES;
        assert!(
            with_cadence.replayed_bytes <= bound,
            "replayed {} bytes, bound {bound}",
            with_cadence.replayed_bytes
        );
        assert!(
            without.replayed_bytes > 3 * bound,
            "without the byte cadence everything is replayed: {} bytes",
            without.replayed_bytes
        );
        assert!(with_cadence.replayed_records * 5 < without.replayed_records);
    });
}

const BIG_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

struct ReplayFigures {
    checkpoints: u64,
    replayed_bytes: u64,
    replayed_records: u64,
}

async fn crash_and_replay(seed: u64, every_log_bytes: u64) -> ReplayFigures {
    let window = engine::limits::SCAN_READ_BYTES_MAX;
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(seed, 64 * BIG_SEGMENT_BYTES, dir.path().join("meta"));
    let cfg = StoreConfig {
        segment_bytes: BIG_SEGMENT_BYTES,
        capacity_bytes: 64 * BIG_SEGMENT_BYTES,
        checkpoint_every_records: 1 << 40,
        checkpoint_every_log_bytes: every_log_bytes,
        salt: 0x5eed,
        format1_segments_below: 0,
        batch_bytes: 64 * 1024,
        cache_bytes: CACHE_BYTES,
    };
    let store = Store::open(disk.clone(), cfg.clone()).await.unwrap();
    let mut rng = SimRng::new(seed);
    let mut frags: BTreeMap<u64, Option<Bytes>> = BTreeMap::new();
    let mut metas: BTreeMap<u64, Bytes> = BTreeMap::new();
    for tag in 0..1200u64 {
        let k = rng.below(300);
        if rng.below(6) == 0 {
            match store.delete_fragment(frag_id(k)).await {
                Ok(()) | Err(EngineError::NotFound) => {}
                Err(e) => panic!("delete {k}: {e}"),
            }
            frags.insert(k, None);
        } else {
            // Now and then a fragment larger than the scan's window.
            let data = if tag % 97 == 5 {
                let mut v = payload(&mut rng, tag).to_vec();
                v.resize(window as usize + 300_000, tag as u8);
                Bytes::from(v)
            } else {
                payload(&mut rng, tag)
            };
            store.put_fragment(frag_id(k), data.clone()).await.unwrap();
            frags.insert(k, Some(data));
        }
        let m = rng.below(50);
        let value = Bytes::from(format!("v{tag}"));
        store
            .meta_put(meta_key(m), value.clone(), tag + 1)
            .await
            .unwrap();
        metas.insert(m, value);
        // One reclaim pass (it checkpoints), early: most of the log comes after it.
        if tag == 300 {
            disk.take_largest_read_bytes();
            while store.reclaim_once().await.unwrap() {}
            // Relocating a fragment larger than the window reads that one record whole.
            let largest = disk.take_largest_read_bytes();
            assert!(
                largest <= window + 400_000,
                "reclaim read {largest} bytes at once"
            );
        }
    }
    // Let a checkpoint spawned by the last commit finish, as a running node would have.
    for _ in 0..100 {
        futures_lite::future::yield_now().await;
    }
    let checkpoints = store.stats().checkpoints;
    // No final checkpoint: what kill -9 leaves.
    store.shutdown().await.unwrap();
    let disk = disk.restart();
    disk.take_largest_read_bytes();
    let store = Store::open(disk.clone(), cfg).await.unwrap();
    let largest = disk.take_largest_read_bytes();
    assert!(largest <= window, "replay read {largest} bytes at once");
    let stats = store.stats();
    assert_eq!(stats.corrupt_records_replayed, 0);
    for (k, want) in &frags {
        let got = match store.get_fragment(frag_id(*k), 0, None).await {
            Ok(b) => Some(b),
            Err(EngineError::NotFound) => None,
            Err(e) => panic!("fragment {k}: {e}"),
        };
        assert_eq!(got.as_ref(), want.as_ref(), "fragment {k} after the crash");
    }
    for (m, want) in &metas {
        let got = store.meta_get(&meta_key(*m)).unwrap().map(|v| v.value);
        assert_eq!(got.as_ref(), Some(want), "meta {m} after the crash");
    }
    store.shutdown().await.unwrap();
    ReplayFigures {
        checkpoints,
        replayed_bytes: stats.replayed_bytes,
        replayed_records: stats.replayed_records,
    }
}

/// A fragment larger than the scan's window is verified piece by piece at replay: one flipped
/// bit in its payload and it is skipped as damaged (never indexed); intact, it reads back.
#[test]
fn replay_checks_records_larger_than_its_window() {
    run_on_executor(|| async {
        for flip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let disk = SimDisk::new(7, 64 * BIG_SEGMENT_BYTES, dir.path().join("meta"));
            let cfg = StoreConfig {
                segment_bytes: BIG_SEGMENT_BYTES,
                capacity_bytes: 64 * BIG_SEGMENT_BYTES,
                checkpoint_every_records: 1 << 40,
                checkpoint_every_log_bytes: 1 << 40,
                salt: 0x5eed,
                format1_segments_below: 0,
                batch_bytes: 64 * 1024,
                cache_bytes: CACHE_BYTES,
            };
            let store = Store::open(disk.clone(), cfg.clone()).await.unwrap();
            let len = engine::limits::SCAN_READ_BYTES_MAX as usize * 3 / 2;
            let big = Bytes::from((0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>());
            store.put_fragment(frag_id(1), big.clone()).await.unwrap();
            store.shutdown().await.unwrap();
            let (segment, written) = disk.segment_lens()[0];
            assert!(written >= len as u64);
            if flip {
                // Past the first window: only the streamed checksum can see it.
                assert!(disk.flip_bit(segment, len as u64 - 10, 2));
            }
            let store = Store::open(disk.restart(), cfg).await.unwrap();
            let got = store.get_fragment(frag_id(1), 0, None).await;
            if flip {
                assert!(matches!(got, Err(EngineError::NotFound)), "{got:?}");
                assert_eq!(store.stats().corrupt_records_replayed, 1);
            } else {
                assert_eq!(got.unwrap(), big);
                assert_eq!(store.stats().replayed_records, 1);
            }
            store.shutdown().await.unwrap();
        }
    });
}

/// The config of the replay tests below: checkpoints only at open (replay reads the whole log).
fn replay_config() -> StoreConfig {
    StoreConfig {
        checkpoint_every_records: 1 << 40,
        checkpoint_every_log_bytes: 1 << 40,
        ..config()
    }
}

/// Puts `data[k]` as fragment k, each put awaited (one record per group commit); where each
/// record starts (they follow each other from the segment's start) and where the last ends.
async fn put_one_by_one(store: &Store<SimDisk>, data: &[Bytes]) -> (Vec<u64>, u64) {
    let mut offsets = Vec::new();
    let mut end = 0u64;
    for (k, d) in data.iter().enumerate() {
        store
            .put_fragment(frag_id(k as u64), d.clone())
            .await
            .unwrap();
        offsets.push(end);
        end += engine::format::record_bytes_for(d.len() as u64);
    }
    (offsets, end)
}

/// Every fragment of `data` reads back, but those in `lost`, which are absent.
async fn only_lost_are_gone(store: &Store<SimDisk>, data: &[Bytes], lost: &[usize]) {
    for (k, d) in data.iter().enumerate() {
        let got = store.get_fragment(frag_id(k as u64), 0, None).await;
        if lost.contains(&k) {
            assert!(matches!(got, Err(EngineError::NotFound)), "{k}: {got:?}");
        } else {
            assert_eq!(&got.unwrap(), d, "fragment {k}");
        }
    }
}

/// Small commits one after another share blocks: each group commit goes on where the last one
/// ended (no padding to a block per commit), and a flipped bit at replay still costs only the
/// record it hits. Records after a damaged one rarely start on a block, so the scan finds them
/// by their header at 8-byte steps.
#[test]
fn small_commits_share_blocks_and_a_flip_costs_one_record() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(11, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = Store::open(disk.clone(), replay_config()).await.unwrap();
        let mut rng = SimRng::new(11);
        let written: Vec<Bytes> = (0..40u8)
            .map(|k| Bytes::from(vec![k ^ 0x5a; 100 + rng.below(1400) as usize]))
            .collect();
        let (offsets, end) = put_one_by_one(&store, &written).await;
        // The log took exactly the records' bytes (the padding after the last is not counted).
        assert_eq!(store.stats().log_appended_bytes, end);
        assert!(store.stats().meta_bytes >= 4096);
        store.shutdown().await.unwrap();
        let (segment, durable) = disk.segment_lens()[0];
        assert!(
            durable <= end.div_ceil(4096) * 4096,
            "40 commits of {end} record bytes took {durable} bytes of the segment"
        );
        // A payload bit of record 10, a header byte (its LSN) of record 20.
        assert!(disk.flip_bit(segment, offsets[10] + 64 + 7, 3));
        assert!(disk.flip_bit(segment, offsets[20] + 9, 0));
        let store = Store::open(disk.restart(), replay_config()).await.unwrap();
        assert_eq!(store.stats().corrupt_records_replayed, 2);
        only_lost_are_gone(&store, &written, &[10, 20]).await;
        store.shutdown().await.unwrap();
    });
}

/// A fragment whose bytes hold a record image of this partition naming another segment (a copy
/// of a segment file stored as an object), with its own header damaged: the scan's search
/// past the damage meets the image first. It is passed over, never applied, and the records
/// after the damaged one still replay (ending the scan there, as at a recycled file's old
/// records, would lose them).
#[test]
fn a_record_image_inside_a_damaged_record_neither_applies_nor_ends_replay() {
    use engine::format::{RecordHeader, RecordKind};
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(12, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let cfg = replay_config();
        let store = Store::open(disk.clone(), cfg.clone()).await.unwrap();
        let inner = Bytes::from(vec![0xabu8; 500]);
        let header = RecordHeader {
            kind: RecordKind::Fragment,
            flags: 0,
            lsn: 1,
            id: frag_id(99),
            payload_bytes: inner.len() as u32,
            key_bytes: 0,
            aux: 0,
            segment: Some(77),
        };
        let mut image = vec![0u8; header.record_bytes() as usize];
        header.write_record(cfg.salt, &[&inner], &mut image);
        let written: Vec<Bytes> = (0..8u8)
            .map(|k| match k {
                3 => Bytes::from([image.clone(), vec![7u8; 300]].concat()),
                _ => Bytes::from(vec![k; 700 + 37 * k as usize]),
            })
            .collect();
        let (offsets, _) = put_one_by_one(&store, &written).await;
        store.shutdown().await.unwrap();
        let (segment, _) = disk.segment_lens()[0];
        // Fragment 3's LSN: its header fails its checksum.
        assert!(disk.flip_bit(segment, offsets[3] + 9, 1));
        let store = Store::open(disk.restart(), cfg).await.unwrap();
        let s = store.stats();
        assert_eq!(
            (s.corrupt_records_replayed, s.replay_stale_stops),
            (1, 0),
            "{s:?}"
        );
        assert!(matches!(
            store.get_fragment(frag_id(99), 0, None).await,
            Err(EngineError::NotFound)
        ));
        only_lost_are_gone(&store, &written, &[3]).await;
        store.shutdown().await.unwrap();
    });
}

/// What crashes at random points left of `PAIRS` pairs of metadata writes (an object's head
/// and listing entry, say) over `SEEDS` seeds: pairs of which exactly one key survived, and
/// acknowledged pairs not whole. `split`: each pair written as two records in one group commit
/// (two `meta_put`s queued back to back), instead of one `meta_pair` record.
async fn pairs_after_crashes(split: bool) -> (usize, usize) {
    use engine::meta::MetaMutation;
    const SEEDS: u64 = 60;
    const PAIRS: u64 = 8;
    let (mut torn, mut acked_not_whole) = (0, 0);
    for seed in 0..SEEDS {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(seed, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let mut rng = SimRng::new(seed);
        // Values of 300..1500 bytes: a record spans several 512-byte sectors, which a crash
        // may tear apart.
        let values: Vec<Bytes> = (0..PAIRS)
            .map(|i| Bytes::from(vec![(seed + i) as u8; 300 + rng.below(1200) as usize]))
            .collect();
        disk.crash_after(rng.below(6));
        let mut tasks = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let (head, entry) = (meta_key(i as u64), meta_key(100 + i as u64));
            let (value, hlc) = (value.clone(), 10 + i as u64);
            if split {
                for (key, value) in [(head, value.clone()), (entry, value)] {
                    let store = store.clone();
                    tasks.push((
                        None,
                        glommio::spawn_local(async move { store.meta_put(key, value, hlc).await }),
                    ));
                }
            } else {
                let store = store.clone();
                let put = |key: Bytes, value: Bytes| MetaMutation::Put { key, value, hlc };
                let pair = (put(head, value.clone()), put(entry, value));
                tasks.push((
                    Some(i),
                    glommio::spawn_local(async move {
                        store.meta_pair(pair.0, pair.1).await.map(|(won, _)| won)
                    }),
                ));
            }
        }
        let mut acked = Vec::new();
        for (i, task) in tasks {
            if let (Some(i), Ok(true)) = (i, task.await) {
                acked.push(i);
            }
        }
        store.shutdown().await.expect("store closes");
        let store = open(&disk.restart()).await;
        for (i, value) in values.iter().enumerate() {
            let head = store
                .meta_get(&meta_key(i as u64))
                .unwrap()
                .map(|v| v.value);
            let entry = store
                .meta_get(&meta_key(100 + i as u64))
                .unwrap()
                .map(|v| v.value);
            for got in [&head, &entry].into_iter().flatten() {
                assert_eq!(got, value, "seed {seed}: pair {i} holds another value");
            }
            if head.is_some() != entry.is_some() {
                torn += 1;
            }
            if acked.contains(&i) && (head.is_none() || entry.is_none()) {
                acked_not_whole += 1;
            }
        }
        store.shutdown().await.expect("store closes");
    }
    (torn, acked_not_whole)
}

/// A metadata pair (`Store::meta_pair`) is one record: whatever a crash tears, both keys hold
/// the pair's values or neither does, and an acknowledged pair is whole. Written as two
/// records in one group commit instead, the same crashes leave pairs with one key alone
/// (which is why the object layer writes a head and its listing entry as a pair, or one after
/// the other).
#[test]
fn a_metadata_pair_survives_a_crash_whole_or_not_at_all() {
    run_on_executor(|| async {
        assert_eq!(pairs_after_crashes(false).await, (0, 0));
        let (torn, _) = pairs_after_crashes(true).await;
        assert!(
            torn > 0,
            "two records were never torn apart: the check cannot fail"
        );
    });
}

/// A pair answers like a swap for its first key (whether it won, what it replaced), and each
/// of its keys applies by last-writer-wins on its own; a pair of deletes removes both keys.
/// Replayed from the log alone (LMDB's files and the checkpoint removed; no segment was
/// reclaimed, so replay from the log's beginning finds every record), the store holds the
/// same; a flipped bit in a pair's record costs both keys of that pair and nothing else. (With
/// the checkpoint kept, the new LMDB lacks its mark and the core refuses to start: what the
/// checkpoint covers would not be replayed.)
#[test]
fn a_metadata_pair_applies_each_key_by_its_clock_and_replays_as_one() {
    use engine::meta::MetaMutation;
    let put = |k: u64, v: &'static [u8], hlc| MetaMutation::Put {
        key: meta_key(k),
        value: Bytes::from_static(v),
        hlc,
    };
    let del = |k: u64, hlc| MetaMutation::Delete {
        key: meta_key(k),
        hlc,
    };
    run_on_executor(move || async move {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(21, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = Store::open(disk.clone(), replay_config()).await.unwrap();
        assert_eq!(
            store
                .meta_pair(put(1, b"h1", 10), put(2, b"l1", 10))
                .await
                .unwrap(),
            (true, None)
        );
        // The second key holds a newer version: it keeps it; the first takes the pair's.
        store
            .meta_put(meta_key(4), Bytes::from_static(b"newer"), 50)
            .await
            .unwrap();
        let (won, previous) = store
            .meta_pair(put(1, b"h2", 20), put(4, b"older", 20))
            .await
            .unwrap();
        assert!(won);
        let (previous, deleted) = previous.expect("the first key had a version");
        assert_eq!(
            (previous.hlc, &previous.value[..], deleted),
            (10, &b"h1"[..], false)
        );
        // Older than the first key's version: it loses, and says what beat it.
        let (won, previous) = store
            .meta_pair(put(1, b"h0", 5), put(3, b"l0", 5))
            .await
            .unwrap();
        assert!(!won);
        assert_eq!(previous.unwrap().0.hlc, 20);
        // Both keys deleted at once.
        store
            .meta_pair(put(6, b"h6", 30), put(7, b"l6", 30))
            .await
            .unwrap();
        store.meta_pair(del(7, 31), del(6, 31)).await.unwrap();
        // Refused: two HLCs, or one key twice.
        assert!(store
            .meta_pair(put(8, b"a", 1), put(9, b"b", 2))
            .await
            .is_err());
        assert!(store.meta_pair(put(8, b"a", 1), del(8, 1)).await.is_err());
        let expect = |store: Store<SimDisk>| async move {
            let get = |k| {
                store
                    .meta_get(&meta_key(k))
                    .unwrap()
                    .map(|v| (v.hlc, v.value))
            };
            assert_eq!(get(1), Some((20, Bytes::from_static(b"h2"))));
            assert_eq!(get(2), Some((10, Bytes::from_static(b"l1"))));
            assert_eq!(get(3), Some((5, Bytes::from_static(b"l0"))));
            assert_eq!(get(4), Some((50, Bytes::from_static(b"newer"))));
            assert_eq!((get(6), get(7), get(8), get(9)), (None, None, None, None));
        };
        expect(store.clone()).await;
        store.shutdown().await.unwrap();
        let meta = dir.path().join("meta");
        std::fs::remove_dir_all(&meta).unwrap();
        let e = Store::open(disk.restart(), replay_config()).await.err();
        assert!(
            matches!(e, Some(engine::EngineError::Damaged { .. })),
            "{e:?}"
        );
        std::fs::remove_dir_all(&meta).unwrap();
        assert!(disk.remove_small(engine::store::CHECKPOINT_FILE));
        let store = Store::open(disk.restart(), replay_config()).await.unwrap();
        expect(store.clone()).await;
        let end = store.stats().log_appended_bytes;
        // Three pairs, each awaited (one record per commit); a bit of the middle one's second
        // value flipped.
        let mut offsets = Vec::new();
        for k in [10u64, 12, 14] {
            offsets.push(store.stats().log_appended_bytes - end);
            store
                .meta_pair(put(k, b"head", 60), put(k + 1, b"entry", 60))
                .await
                .unwrap();
        }
        store.shutdown().await.unwrap();
        let segments = disk.segment_lens();
        let (segment, _) = *segments.last().unwrap();
        let record = offsets[1] + (64 + meta_key(12).len() + 4 + meta_key(13).len()) as u64;
        assert!(disk.flip_bit(segment, record + 2, 1));
        std::fs::remove_dir_all(&meta).unwrap();
        assert!(disk.remove_small(engine::store::CHECKPOINT_FILE));
        let store = Store::open(disk.restart(), replay_config()).await.unwrap();
        assert_eq!(store.stats().corrupt_records_replayed, 1);
        let get = |k| store.meta_get(&meta_key(k)).unwrap().map(|v| v.value);
        assert_eq!(
            (get(10), get(11)),
            (
                Some(Bytes::from_static(b"head")),
                Some(Bytes::from_static(b"entry"))
            )
        );
        assert_eq!((get(12), get(13)), (None, None));
        assert_eq!(
            (get(14), get(15)),
            (
                Some(Bytes::from_static(b"head")),
                Some(Bytes::from_static(b"entry"))
            )
        );
        store.shutdown().await.unwrap();
    });
}

/// What crashes at random points left of `OBJECTS` small objects, each a fragment written with
/// its head and listing entry (`Store::put_fragment_paired`), over `SEEDS` seeds: heads left
/// without their fragment (an object whose data is gone), heads without their entry or the
/// other way round, and acknowledged objects not whole. `split`: the fragment and the pair as
/// two writes queued back to back (one group commit) instead of one paired write.
async fn paired_puts_after_crashes(split: bool) -> (usize, usize, usize) {
    use engine::meta::MetaMutation;
    const SEEDS: u64 = 300;
    const OBJECTS: u64 = 8;
    let (mut headless_data, mut torn, mut acked_not_whole) = (0, 0, 0);
    for seed in 0..SEEDS {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(seed, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let mut rng = SimRng::new(seed);
        // Bodies of 4..16 KiB (8 to 32 sectors of 512 bytes, of which a torn write may lose
        // any) and heads of 100..400 bytes.
        let objects: Vec<(Bytes, Bytes)> = (0..OBJECTS)
            .map(|i| {
                let data = vec![(seed + i) as u8; 4096 + rng.below(12 * 1024) as usize];
                let head = vec![(seed + i + 1) as u8; 100 + rng.below(300) as usize];
                (Bytes::from(data), Bytes::from(head))
            })
            .collect();
        disk.crash_after(rng.below(6));
        let mut tasks = Vec::new();
        for (i, (data, head)) in objects.iter().enumerate() {
            let i = i as u64;
            let put = |key: Bytes, value: Bytes| MetaMutation::Put {
                key,
                value,
                hlc: 10 + i,
            };
            let pair = (
                put(meta_key(i), head.clone()),
                put(meta_key(100 + i), head.clone()),
            );
            let (store, data) = (store.clone(), data.clone());
            if split {
                let put_data = store.clone();
                let data_task = glommio::spawn_local(async move {
                    put_data.put_fragment(frag_id(i), data).await.is_ok()
                });
                let pair_task =
                    glommio::spawn_local(
                        async move { store.meta_pair(pair.0, pair.1).await.is_ok() },
                    );
                tasks.push((i, data_task, Some(pair_task)));
            } else {
                let task = glommio::spawn_local(async move {
                    store
                        .put_fragment_paired(frag_id(i), data, pair.0, pair.1)
                        .await
                        .is_ok()
                });
                tasks.push((i, task, None));
            }
        }
        let mut acked = Vec::new();
        for (i, first, second) in tasks {
            let first = first.await;
            let second = match second {
                Some(t) => t.await,
                None => true,
            };
            if first && second {
                acked.push(i);
            }
        }
        store.shutdown().await.expect("store closes");
        let store = open(&disk.restart()).await;
        for (i, (data, head)) in objects.iter().enumerate() {
            let i = i as u64;
            let got_head = store.meta_get(&meta_key(i)).unwrap().map(|v| v.value);
            let got_entry = store.meta_get(&meta_key(100 + i)).unwrap().map(|v| v.value);
            let got_data = match store.get_fragment(frag_id(i), 0, None).await {
                Ok(b) => Some(b),
                Err(EngineError::NotFound) => None,
                Err(e) => panic!("seed {seed}: object {i}: {e}"),
            };
            for got in [&got_head, &got_entry].into_iter().flatten() {
                assert_eq!(got, head, "seed {seed}: object {i} holds another head");
            }
            if let Some(got) = &got_data {
                assert_eq!(got, data, "seed {seed}: object {i} holds other data");
            }
            if got_head.is_some() != got_entry.is_some() {
                torn += 1;
            }
            if got_head.is_some() && got_data.is_none() {
                headless_data += 1;
            }
            let whole = got_head.is_some() && got_entry.is_some() && got_data.is_some();
            if acked.contains(&i) && !whole {
                acked_not_whole += 1;
            }
        }
        store.shutdown().await.expect("store closes");
    }
    (headless_data, torn, acked_not_whole)
}

/// A fragment written with its pair (`Store::put_fragment_paired`): whatever a crash tears, a
/// head never survives without its data, head and entry are whole or gone together, and an
/// acknowledged write is whole. Written as a fragment and a pair queued back to back instead
/// (one group commit, two writes), the same crashes leave heads whose data is gone (a few in
/// 300 seeds: the fragment's header sector must reach the media and a later one not, for
/// replay to skip it as damaged and find the pair after it): the guard is what keeps them
/// out. Removing the guard's check from replay makes the first half fail.
#[test]
fn a_paired_put_never_leaves_a_head_without_its_data() {
    run_on_executor(|| async {
        assert_eq!(paired_puts_after_crashes(false).await, (0, 0, 0));
        let (headless, _, _) = paired_puts_after_crashes(true).await;
        assert!(
            headless > 0,
            "a head never outlived its data: the check cannot fail"
        );
    });
}

/// One flipped bit in a record's magic costs that record alone at replay. Missing magic reads
/// as unwritten space, skipped a block at a time; each block boundary after the damaged record
/// fell inside a fragment's payload, so the scan skipped every record after it in the segment
/// (a seed of `bit_flips_never_return_wrong_data` lost 19 of 40 fragments to 6 flips). The
/// scan now checks whether such bytes are a record of this life whose magic alone is off.
#[test]
fn a_flipped_bit_in_a_record_magic_costs_that_record_alone() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(31, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let mut offsets = Vec::new();
        let mut written = Vec::new();
        for k in 0..10u64 {
            // 5,000 bytes: block boundaries fall inside the payloads.
            let data = Bytes::from(vec![k as u8 + 1; 5000]);
            offsets.push(store.stats().log_appended_bytes);
            store.put_fragment(frag_id(k), data.clone()).await.unwrap();
            written.push(data);
        }
        store.shutdown().await.unwrap();
        let (segment, _) = *disk.segment_lens().last().unwrap();
        // The magic's second byte of the fourth record.
        assert!(disk.flip_bit(segment, offsets[3] + 1, 2));
        let store = open(&disk.restart()).await;
        assert_eq!(store.stats().corrupt_records_replayed, 1);
        for (k, data) in written.iter().enumerate() {
            let got = store.get_fragment(frag_id(k as u64), 0, None).await;
            if k == 3 {
                assert!(matches!(got, Err(EngineError::NotFound)), "{got:?}");
            } else {
                assert_eq!(&got.expect("the records after it replay"), data, "{k}");
            }
        }
        store.shutdown().await.unwrap();
    });
}

/// A sector read back as zeroes where a record starts costs that record, not the rest of the
/// segment: the zeroes read as a round's padding (next block), and each block boundary after
/// it fell inside some record's payload.
#[test]
fn a_zeroed_sector_at_a_record_costs_that_record_alone() {
    run_on_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(32, 64 * SEGMENT_BYTES, dir.path().join("meta"));
        let store = open(&disk).await;
        let mut offsets = Vec::new();
        let mut written = Vec::new();
        for k in 0..10u64 {
            // The first record takes one sector, so the second starts on a sector of its own
            // (the previous record's bytes are not hit); 5,000 bytes for the others.
            let len = if k == 0 { 512 - 64 } else { 5000 };
            let data = Bytes::from(vec![k as u8 + 1; len]);
            offsets.push(store.stats().log_appended_bytes);
            store.put_fragment(frag_id(k), data.clone()).await.unwrap();
            written.push(data);
        }
        store.shutdown().await.unwrap();
        let (segment, _) = *disk.segment_lens().last().unwrap();
        assert_eq!(offsets[1] % 512, 0);
        assert!(disk.zero_sector(segment, offsets[1]));
        let store = open(&disk.restart()).await;
        for (k, data) in written.iter().enumerate() {
            let got = store.get_fragment(frag_id(k as u64), 0, None).await;
            if k == 1 {
                assert!(matches!(got, Err(EngineError::NotFound)), "{got:?}");
            } else {
                assert_eq!(&got.expect("the records after it replay"), data, "{k}");
            }
        }
        store.shutdown().await.unwrap();
    });
}
