//! A deterministic simulation of the cluster layer, in the spirit of FoundationDB's simulator
//! and TigerBeetle's VOPR: the real `cluster::backend::Backend` (routing by layout, quorum
//! metadata writes and reads with read repair, merged listings, fragment writes and reads,
//! hinted handoff and its repair pass) runs over simulated cores and a simulated network,
//! driven by random operations from a seed and checked against a model.
//!
//! What is simulated (all from one seed, in virtual time, on one thread):
//! - **the network** (`world`): every core call is a message with a random delay (so messages
//!   reorder), lost at a rate the nemesis changes (request or answer: a lost answer means the
//!   core applied a write the caller saw fail), failing after a timeout;
//! - **failing cores**: a core answers a request with an error without applying it, at a rate
//!   the nemesis changes: NoSpace for writes (a full disk), Corrupt for fragment reads (a
//!   damaged record), Internal otherwise;
//! - **partitions** between nodes (a gateway runs on its node and sees only its side) and
//!   **node crashes and restarts** (a down node's cores receive nothing, and its gateway dies:
//!   its operations and repair pass in flight end where they are, and a fresh gateway without
//!   HLC state or down marks serves after the restart);
//! - **clocks**: each gateway's HLC reads the virtual time plus its own skew (± 300 ms), through
//!   the backend's `Clock` seam; down marks (`CORE_DOWN_FOR`) run in virtual time too;
//! - **the cores** (`core`): an in-memory model answering the same `proto::Request`s with the
//!   engine's rules. The real engine store is not used: its metadata lives in LMDB files and
//!   its request dispatch and disk run on glommio, neither deterministic nor cheap enough for
//!   thousands of seeds a minute. The engine's own disk faults (torn writes, lost flushes, bit
//!   flips) are tested by engine/src/sim.rs; here an acknowledged write is durable.
//!
//! The workload (`workload`): a 3-zone cluster (3 nodes × 2 cores, 3 metadata replicas), one
//! gateway per node, 4 concurrent clients putting (data as one fragment on 3 replicas or an
//! EC 4+2 stripe over the 6 cores, then the head record, then the listing entry, one HLC),
//! getting (head, then data, decoded from parity when shards are missing: must be the
//! version's bytes), deleting (tombstones) and listing (2 keys a page) over 2 buckets × 3
//! keys, each gateway's repair task running every 2 s, and a nemesis crashing, partitioning,
//! losing messages and failing requests meanwhile. Then the cluster heals, repair passes drain the hints, every object is
//! read and every bucket listed through the gateways (these must succeed), and the final state
//! is checked: replicas converged, no hint left, nothing older than what had landed, every
//! fragment and EC shard present on its core exact (hints rebuild missed shards).
//!
//! The checker (`check`): per record, every read returns a version written by a write that
//! had started, no older than any write acknowledged before it started (read-after-write, no
//! resurrection after a delete); listings are reads of every key of the pages that covered
//! them, in order, exactly paged. Two stronger properties the design does not promise are
//! counted, and fail a run only when asked (`Strict`): no read older than what an earlier
//! read returned (no flip-flop), and acknowledged writes ordered as in real time.
//!
//! Not simulated: the object layer above the backend (objects/src/records/, s3.rs: versioning,
//! multipart; its conditional create is mirrored in `workload::create`, behind a switch, see
//! `sim_conditional_creates`), layout changes, the engine's own crash recovery.
//!
//! Found so far: conditional creates on a stale primary (fixed in s3.rs) and listing
//! flip-flops on failed writes (fixed by read repair in merged scans), regression tests now;
//! and, as an ignored test naming its first seed, writes ordered against real time by skewed
//! clocks. `sim_seeds` prints the counts of the last two and the objects left
//! under-replicated (hints lost with their holder).
//!
//! Running: `cargo test -p cluster --test sim` runs `PERCORE_SIM_SEEDS` seeds (default 5000,
//! seeds 0 to N − 1, spread over the machine's cores; each seed runs whole on one thread, so
//! the split changes nothing); a failure prints its seed, and `PERCORE_SIM_SEED=<seed> cargo
//! test -p cluster --test sim sim_seeds -- --nocapture` replays exactly that run (the summary
//! line ends with a hash of the whole history to compare). Seeds are fixed so CI is
//! reproducible; explore others with `PERCORE_SIM_FIRST=<first seed>` (and `PERCORE_SIM_SEEDS`).

mod check;
mod workload;

use cluster::sim::{caught, env_u64, run_spread, seeds};
use workload::{run_seed, Config, Strict};

const SEEDS_DEFAULT: u64 = 5000;

/// `run_seed`, a panic caught (`cluster::sim::caught`).
fn run_caught(seed: u64, cfg: &Config) -> Result<workload::Stats, String> {
    caught(|| run_seed(seed, cfg))
}

#[test]
fn sim_seeds() {
    let seeds = seeds("PERCORE_SIM", SEEDS_DEFAULT);
    let cfg = Config::default();
    let mut total = workload::Stats::default();
    let mut failures: Vec<(u64, String)> = Vec::new();
    for (seed, result) in run_spread(&seeds, |seed| run_seed(seed, &cfg)) {
        match result {
            Ok(s) => total.add(&s),
            Err(e) => failures.push((seed, e)),
        }
    }
    if let Some((seed, e)) = failures.into_iter().min_by_key(|(s, _)| *s) {
        panic!(
            "simulation seed {seed} failed: {e}\nreplay: PERCORE_SIM_SEED={seed} cargo test -p \
             cluster --test sim sim_seeds -- --nocapture"
        );
    }
    println!(
        "{} seeds: {} operations ({} failed under faults), {} messages, {} hints replayed, {} \
         objects left under-replicated; flip-flops between readers (not promised for failed \
         writes): {} seen by a get, {} by a listing; acknowledged writes out of real-time order \
         (clock skew): {}; replicas behind an acknowledged write once hints were drained: {}; \
         history hash {:016x}",
        seeds.len(),
        total.ops,
        total.failed_ops,
        total.messages,
        total.repaired,
        total.under_replicated_fragments,
        total.flip_flops_get,
        total.flip_flops_list,
        total.inversions,
        total.stale_after_repair,
        total.history_hash
    );
    assert!(total.ops > 0);
}

/// Same seed, same run: the whole history is a function of the seed (and different seeds
/// make different histories).
#[test]
fn sim_replays_exactly() {
    let cfg = Config::default();
    let mut hashes = Vec::new();
    for seed in [1, 77, 4242] {
        let a = run_seed(seed, &cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let b = run_seed(seed, &cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "seed {seed}");
        hashes.push(a.history_hash);
    }
    hashes.dedup();
    assert_eq!(hashes.len(), 3, "three seeds, three histories");
}

/// Without faults nothing fails.
#[test]
fn sim_without_faults_every_operation_succeeds() {
    let cfg = Config {
        faults: false,
        ..Config::default()
    };
    for seed in 0..100 {
        let s = run_seed(seed, &cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(s.failed_ops, 0, "seed {seed}");
    }
}

/// Without clock skew, acknowledged writes are ordered as in real time.
#[test]
fn sim_without_skew_versions_follow_real_time() {
    let cfg = Config {
        skew_ms_max: 0,
        strict: Strict {
            order: true,
            ..Strict::default()
        },
        ..Config::default()
    };
    for seed in 0..300 {
        if let Err(e) = run_seed(seed, &cfg) {
            panic!("seed {seed}: {e}");
        }
    }
}

/// The checker fails when the system is wrong: cores that acknowledge one metadata write in
/// five without applying it are caught within a few seeds.
#[test]
fn sim_catches_cores_that_lose_acknowledged_writes() {
    let cfg = Config {
        fault: cluster::sim::core::Fault::DropsMetaWrites(5),
        ..Config::default()
    };
    let caught = (0..50).find_map(|seed| run_seed(seed, &cfg).err().map(|e| (seed, e)));
    let (seed, e) = caught.expect("a lying core is caught");
    println!("caught at seed {seed}: {e}");
}

/// Runs `PERCORE_SIM_SEEDS` seeds (or `SEEDS_DEFAULT`) from `PERCORE_SIM_FIRST` (or 0) under
/// `cfg` and panics with the count and the first that failed. For the ignored tests that show
/// a known weakness: they fail while it is there.
fn no_seed_fails(cfg: &Config) {
    let from = env_u64("PERCORE_SIM_FIRST").unwrap_or(0);
    let n = env_u64("PERCORE_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let failed: Vec<(u64, String)> = (from..from + n)
        .filter_map(|s| run_caught(s, cfg).err().map(|e| (s, e)))
        .collect();
    if let Some((seed, e)) = failed.first() {
        panic!(
            "{} of {n} seeds failed; the first, {seed}: {e}\nreplay: PERCORE_SIM_FIRST={seed} \
             PERCORE_SIM_SEEDS=1",
            failed.len()
        );
    }
}

/// Conditional creates (If-None-Match: *) as `objects::Store::check_head` does them: the head is read from
/// every replica (which repairs a stale first core), then compared-and-swapped on the PG's first
/// core. Regression test: when the read was on the first core alone, a first core that missed an
/// acknowledged write (down or cut off while the other two took it, its hint not replayed yet)
/// answered "absent" and the create won over an existing object: a 200 where S3 answers 412, and
/// the object written before was overwritten (8 of seeds 0..2000, the first: 251).
#[test]
fn sim_conditional_creates() {
    let cfg = Config {
        conditional: true,
        ..Config::default()
    };
    no_seed_fails(&cfg);
}

/// Gateways whose clocks are skewed order writes by HLC, not by real time: a PUT or DELETE
/// through a gateway whose clock is behind, started after another gateway acknowledged a write
/// of the same key, gets an older HLC and is invisible from the moment it is acknowledged (a
/// GET right after returns the earlier version; a DELETE does not delete). S3 promises
/// read-after-write; the HLC only orders writes after what the gateway itself has observed.
/// Ignored: the design accepts it today (skew is bounded by NTP in practice); it needs the
/// skew bounded and waited out, a causality token, or versions assigned by the PG's primary.
#[test]
#[ignore = "finds writes ordered against real time by clock skew (805 of 2000 seeds at ±300 ms)"]
fn sim_skewed_clocks_keep_real_time_order() {
    let cfg = Config {
        skew_ms_max: env_u64("PERCORE_SIM_SKEW_MS").unwrap_or(300),
        strict: Strict {
            order: true,
            ..Strict::default()
        },
        ..Config::default()
    };
    no_seed_fails(&cfg);
}

/// Two seeds beyond the default range (73046, 78370) where a listing returned a version held
/// by one replica (a write that failed after reaching it), its repair to the others was lost
/// to a fault, and the next listing, from other replicas, returned the older version. A read
/// now answers such a version only once its repair reached a write quorum (else it fails).
#[test]
fn sim_listings_confirm_what_they_return() {
    let cfg = Config {
        strict: Strict {
            reads: true,
            ..Strict::default()
        },
        ..Config::default()
    };
    let failed: Vec<String> = [73046, 78370]
        .iter()
        .filter_map(|&s| run_caught(s, &cfg).err().map(|e| format!("seed {s}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// No read, get or listing, returns an older version than an earlier read returned.
/// Regression test: listings merged a read quorum of replicas and repaired nothing, so a write
/// that failed after reaching one replica was listed by one listing and not by the next (3 of
/// seeds 0..2000, the first: 80); a merged scan now repairs the replicas it found stale, as a
/// get does.
#[test]
fn sim_listings_never_flip_flop() {
    let cfg = Config {
        strict: Strict {
            reads: true,
            ..Strict::default()
        },
        ..Config::default()
    };
    no_seed_fails(&cfg);
}
