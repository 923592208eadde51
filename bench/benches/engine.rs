//! Engine benchmarks on the real disk (O_DIRECT through glommio, in a temp dir under
//! `PERCORE_BENCH_DIR` or /var/tmp): append throughput next to a raw DmaFile write of the same
//! size and concurrency, random 4 KiB reads, index lookups and bytes per entry, restart time
//! with many fragments. Figures of one run are in bench/README.md.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::format::{log_salt, Loc};
use engine::index::Index;
use engine::io::GlommioDisk;
use engine::partition::open_partition;
use engine::store::{Store, StoreConfig};
use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutor, LocalExecutorBuilder, Shares};

/// Appends in flight at once (the group commit batches them).
const CONCURRENCY: usize = 32;

fn bench_dir() -> PathBuf {
    let base =
        std::env::var_os("PERCORE_BENCH_DIR").map_or_else(|| "/var/tmp".into(), PathBuf::from);
    std::fs::create_dir_all(&base).expect("bench dir");
    base
}

fn executor() -> LocalExecutor {
    LocalExecutorBuilder::default()
        .io_memory(8 << 20)
        .make()
        .expect("glommio executor")
}

async fn open_store(dir: &std::path::Path, checkpoint_every_records: u64) -> Store<GlommioDisk> {
    // The device path: these benches measure the log, not the cache (but `random_read`'s
    // cached row).
    open_store_cached(dir, checkpoint_every_records, 0).await
}

async fn open_store_cached(
    dir: &std::path::Path,
    checkpoint_every_records: u64,
    cache_bytes: u64,
) -> Store<GlommioDisk> {
    let segment_bytes = 64 << 20;
    let p = open_partition(dir, 1, 0, segment_bytes).expect("partition");
    let q = glommio::executor().create_task_queue(
        Shares::Static(10),
        glommio::Latency::NotImportant,
        "bg",
    );
    let disk = GlommioDisk::open(dir, q).await.expect("disk");
    let cfg = StoreConfig {
        segment_bytes,
        capacity_bytes: u64::MAX,
        checkpoint_every_records,
        checkpoint_every_log_bytes: engine::limits::CHECKPOINT_EVERY_LOG_BYTES_DEFAULT,
        salt: log_salt(&p.superblock.partition_uuid),
        format1_segments_below: p.superblock.format1_segments_below,
        batch_bytes: engine::limits::BATCH_BYTES_MAX,
        cache_bytes,
    };
    let store = Store::open(disk, cfg).await.expect("store");
    // The partition lock must outlive the store in this process.
    std::mem::forget(p);
    store
}

fn id(i: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[8..].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    v
}

/// `n` puts of `size` bytes, `CONCURRENCY` in flight.
async fn put_many(store: &Store<GlommioDisk>, first: u64, n: u64, data: &Bytes) {
    let next = Rc::new(RefCell::new(first));
    let end = first + n;
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let store = store.clone();
        let next = next.clone();
        let data = data.clone();
        tasks.push(glommio::spawn_local(async move {
            loop {
                let i = {
                    let mut n = next.borrow_mut();
                    if *n >= end {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                store.put_fragment(id(i), data.clone()).await.expect("put");
            }
        }));
    }
    for t in tasks {
        t.await;
    }
}

/// The raw device path for comparison: `n` writes of `size` at increasing offsets of one
/// preallocated file, each followed by fdatasync, `CONCURRENCY` in flight.
async fn raw_many(file: &Rc<DmaFile>, n: u64, size: usize, file_bytes: u64) {
    let next = Rc::new(RefCell::new(0u64));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let file = file.clone();
        let next = next.clone();
        tasks.push(glommio::spawn_local(async move {
            loop {
                let i = {
                    let mut c = next.borrow_mut();
                    if *c >= n {
                        break;
                    }
                    *c += 1;
                    *c - 1
                };
                let mut buf = file.alloc_dma_buffer(size);
                buf.as_bytes_mut().fill(7);
                let pos = (i * size as u64) % file_bytes;
                file.write_at(buf, pos).await.expect("write");
                file.fdatasync().await.expect("sync");
            }
        }));
    }
    for t in tasks {
        t.await;
    }
}

fn append(c: &mut Criterion) {
    let ex = executor();
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    for size in [4096usize, 64 << 10, 1 << 20] {
        group.throughput(Throughput::Bytes(size as u64));
        let tmp = tempfile::tempdir_in(bench_dir()).expect("tmp");
        let data = Bytes::from(vec![5u8; size]);
        let store = ex.run(open_store(tmp.path(), 1 << 30));
        let counter = Rc::new(RefCell::new(0u64));
        group.bench_with_input(BenchmarkId::new("store_put", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let first = *counter.borrow();
                *counter.borrow_mut() += iters;
                ex.run(put_many(&store, first, iters, &data));
                start.elapsed()
            });
        });
        let raw_tmp = tempfile::tempdir_in(bench_dir()).expect("tmp");
        let file_bytes: u64 = 256 << 20;
        let file = ex.run(async {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .dma_open(raw_tmp.path().join("raw"))
                .await
                .expect("raw file");
            f.pre_allocate(file_bytes, false).await.expect("prealloc");
            Rc::new(f)
        });
        group.bench_with_input(
            BenchmarkId::new("raw_dma_write_fdatasync", size),
            &size,
            |b, _| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    ex.run(raw_many(&file, iters, size, file_bytes));
                    start.elapsed()
                });
            },
        );
    }
    group.finish();
}

fn random_read(c: &mut Criterion) {
    random_read_with(c, "random_4k_get_qd32", 0);
    // Every fragment fits (50k entries of 4 KiB and their overhead: ~210 MiB) and was read
    // once before: every get is a hit, no device read.
    random_read_with(c, "random_4k_get_qd32_cached", 256 << 20);
}

fn random_read_with(c: &mut Criterion, name: &str, cache_bytes: u64) {
    let ex = executor();
    let tmp = tempfile::tempdir_in(bench_dir()).expect("tmp");
    let fragments: u64 = 50_000;
    let store = ex.run(async {
        let s = open_store_cached(tmp.path(), 1 << 30, cache_bytes).await;
        put_many(&s, 0, fragments, &Bytes::from(vec![1u8; 4096])).await;
        if cache_bytes > 0 {
            for i in 0..fragments {
                s.get_fragment(id(i), 0, None).await.expect("get");
            }
        }
        s
    });
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    let seed = Rc::new(RefCell::new(1u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            ex.run(async {
                let left = Rc::new(RefCell::new(iters));
                let mut tasks = Vec::new();
                for _ in 0..CONCURRENCY {
                    let (store, left, seed) = (store.clone(), left.clone(), seed.clone());
                    tasks.push(glommio::spawn_local(async move {
                        loop {
                            {
                                let mut l = left.borrow_mut();
                                if *l == 0 {
                                    break;
                                }
                                *l -= 1;
                            }
                            let i = {
                                let mut x = seed.borrow_mut();
                                *x ^= *x << 13;
                                *x ^= *x >> 7;
                                *x ^= *x << 17;
                                *x % fragments
                            };
                            let b = store.get_fragment(id(i), 0, None).await.expect("get");
                            assert_eq!(b.len(), 4096);
                        }
                    }));
                }
                for t in tasks {
                    t.await;
                }
            });
            start.elapsed()
        });
    });
    group.finish();
}

/// Multiply-fold hashing of the two id words for the reference map below (std's `HashMap` is
/// the SwissTable the index used before, here with a hasher as cheap as hashbrown's default).
#[derive(Default)]
struct RefHasher(u64);

impl std::hash::Hasher for RefHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        let p = u128::from(self.0 ^ v) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// The same ids in a SwissTable (`std::collections::HashMap`), looked up in the same run: the
/// machine is shared, so absolute figures drift between runs and this row is the comparison.
fn index_reference(c: &mut Criterion, entries: u64) {
    type Map = std::collections::HashMap<[u64; 2], u64, std::hash::BuildHasherDefault<RefHasher>>;
    let words = |i: u64| {
        let v = id(i);
        [
            u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(v[8..].try_into().expect("8 bytes")),
        ]
    };
    let mut map = Map::default();
    for i in 0..entries {
        map.insert(words(i), i + 1);
    }
    let mut x = 7u64;
    c.bench_function("index_lookup_1M_swisstable_ref", |b| {
        b.iter(|| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            map.get(&words(x % entries)).copied()
        });
    });
}

/// Grows one index from empty to `entries`, printing heap bytes per entry at `entries` and the
/// extremes seen every 10k inserts from 100k on (growth happens per sub-table, so the figure
/// moves between those bounds), the longest single insert (one sub-table's rehash) and the mean
/// insert time (timer included).
fn index_grow_to(ix: &mut Index, entries: u64) {
    let first = ix.len() as u64;
    let (mut worst, mut best) = (0.0f64, f64::MAX);
    let mut insert_ns_max = 0u128;
    // Inserts slower than 50 us, 200 us, 1 ms, 5 ms: growths show up in the first bins by the
    // thousand, a preemption on this shared machine only as a few.
    let bins_ns = [50_000u128, 200_000, 1_000_000, 5_000_000];
    let mut slow = [0u64; 4];
    let start = Instant::now();
    for i in first..entries {
        let t = Instant::now();
        ix.insert(
            &id(i),
            Loc::new((i / 10_000) as u32 % 1000 + 1, (i % 10_000) * 512, 300),
        );
        let ns = t.elapsed().as_nanos();
        insert_ns_max = insert_ns_max.max(ns);
        for (count, bin) in slow.iter_mut().zip(bins_ns) {
            *count += u64::from(ns >= bin);
        }
        if i + 1 >= 100_000 && (i + 1).is_multiple_of(10_000) {
            let per_entry = ix.heap_bytes() as f64 / ix.len() as f64;
            worst = worst.max(per_entry);
            best = best.min(per_entry);
        }
    }
    eprintln!(
        "index: {} entries, {:.1} heap bytes per entry; from {first} on: {best:.1}..{worst:.1} \
         B/entry (every 10k from 100k), {:.0} ns/insert, longest {:.0} us, inserts over \
         50us/200us/1ms/5ms: {slow:?}",
        ix.len(),
        ix.heap_bytes() as f64 / ix.len() as f64,
        start.elapsed().as_nanos() as f64 / (entries - first) as f64,
        insert_ns_max as f64 / 1000.0,
    );
}

fn index(c: &mut Criterion) {
    index_reference(c, 1_000_000);
    let mut ix = Index::default();
    for (entries, name) in [
        (1_000_000u64, "index_lookup_1M"),
        (10_000_000, "index_lookup_10M"),
    ] {
        index_grow_to(&mut ix, entries);
        let mut x = 7u64;
        c.bench_function(name, |b| {
            b.iter(|| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ix.get(&id(x % entries))
            });
        });
        let mut x = 11u64;
        c.bench_function(&format!("{name}_miss"), |b| {
            b.iter(|| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ix.get(&id(entries + x % entries))
            });
        });
    }
}

fn restart(c: &mut Criterion) {
    let ex = executor();
    let tmp = tempfile::tempdir_in(bench_dir()).expect("tmp");
    let fragments: u64 = 1_000_000;
    ex.run(async {
        let s = open_store(tmp.path(), 1 << 40).await;
        put_many(&s, 0, fragments, &Bytes::new()).await;
        s.checkpoint().await.expect("checkpoint");
        // A log tail after the checkpoint, as after a crash.
        put_many(&s, fragments, 10_000, &Bytes::new()).await;
        s.shutdown().await.expect("closed");
    });
    let mut group = c.benchmark_group("restart");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("open_1M_fragments", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Lock files are per process: reopen through a fresh partition handle each time.
                let dir = tmp.path().to_path_buf();
                total += ex.run(async move {
                    let start = Instant::now();
                    let s = open_store_unlocked(&dir).await;
                    let elapsed = start.elapsed();
                    assert!(s.stats().fragments >= fragments);
                    s.shutdown().await.expect("closed");
                    elapsed
                });
            }
            total
        });
    });
    group.finish();
}

async fn open_store_unlocked(dir: &std::path::Path) -> Store<GlommioDisk> {
    let sb = std::fs::read(dir.join("superblock")).expect("superblock");
    let sb = engine::format::Superblock::decode_for(&sb, 1, 0).expect("owner");
    let q = glommio::executor().create_task_queue(
        Shares::Static(10),
        glommio::Latency::NotImportant,
        "bg",
    );
    let disk = GlommioDisk::open(dir, q).await.expect("disk");
    let cfg = StoreConfig {
        segment_bytes: sb.segment_bytes,
        capacity_bytes: u64::MAX,
        checkpoint_every_records: 1 << 40,
        checkpoint_every_log_bytes: engine::limits::CHECKPOINT_EVERY_LOG_BYTES_DEFAULT,
        salt: log_salt(&sb.partition_uuid),
        format1_segments_below: sb.format1_segments_below,
        batch_bytes: engine::limits::BATCH_BYTES_MAX,
        // The device path: these benches measure the log, not the cache.
        cache_bytes: 0,
    };
    Store::open(disk, cfg).await.expect("store")
}

criterion_group!(benches, append, random_read, index, restart);
criterion_main!(benches);
