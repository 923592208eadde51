//! One seed's run: a 3-zone cluster (one node per zone, two cores each), one gateway
//! (`Backend`) per node with its own skewed clock, concurrent clients doing object-shaped
//! operations over a few buckets and keys, a nemesis injecting faults while they run, and the
//! gateways' repair tasks; then the cluster heals, repair and a read of every record run, and
//! the final state is checked (see `check` for the per-read rules).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use cluster::backend::{Backend, Clock, CoreLink, Route};
use cluster::ec::{decode_stripe, encode_stripe, shard_bytes, Policy};
use placement::Layout;
use proto::FragmentId;

use crate::check::{History, Read, Ver};
use cluster::sim::core::Fault;
use cluster::sim::world::{run, Shared, SimClock, SimLink, World};

pub const NODES: usize = 3;
const CORES_PER_NODE: usize = 2;
const BUCKETS: u64 = 2;
const KEYS: u64 = 3;
/// Entries per listing page (small, so listings page).
const PAGE: u32 = 2;
/// Events one seed may deliver (a bound far above what a run needs).
const STEPS_MAX: u64 = 1_000_000;
/// Repair passes after healing before the hints must be gone.
const HEAL_PASSES_MAX: usize = 5;
/// The erasure code of EC objects (STANDARD's, over the 6 cores).
const EC_K: u8 = 4;
const EC_M: u8 = 2;
/// The head value's byte after the version id: an EC object.
const KIND_EC: u8 = 1;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub clients: usize,
    pub ops_per_client: usize,
    /// Faults during the run (crashes, partitions, lost messages).
    pub faults: bool,
    /// Clock skew of a gateway, ± this many ms at most.
    pub skew_ms_max: u64,
    pub fault: Fault,
    /// Which of the counted properties fail a run.
    pub strict: Strict,
    /// Clients also do conditional creates (`create`), as `objects::Store::check_head` and `put_head_if` do them (see
    /// main.rs `sim_conditional_creates`).
    pub conditional: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            clients: 4,
            ops_per_client: 12,
            faults: true,
            skew_ms_max: 300,
            fault: Fault::None,
            strict: Strict::default(),
            conditional: false,
        }
    }
}

/// Properties the design does not promise, counted by default; `true` makes them fail a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Strict {
    /// Flip-flops between readers (`check::History::check`).
    pub reads: bool,
    /// Acknowledged writes out of real-time order (`check::History::inversions`).
    pub order: bool,
}

/// What a run did, for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub ops: u64,
    pub failed_ops: u64,
    pub messages: u64,
    pub repaired: u64,
    pub under_replicated_fragments: u64,
    /// Reads older than what an earlier read returned (`check`), by the later reader.
    pub flip_flops_get: u64,
    pub flip_flops_list: u64,
    /// Acknowledged writes ordered against real time by skewed clocks (`check::inversions`).
    pub inversions: u64,
    /// Replicas of records older than the record's newest acknowledged write once hints are
    /// drained, before the final reads repair them (a hint lost with a failed holder write,
    /// or deleted after a newer hint for the same record replaced it).
    pub stale_after_repair: u64,
    /// A hash of the whole history (what every operation did, when, and what it saw).
    pub history_hash: u64,
}

impl Stats {
    pub fn add(&mut self, s: &Stats) {
        self.ops += s.ops;
        self.failed_ops += s.failed_ops;
        self.messages += s.messages;
        self.repaired += s.repaired;
        self.under_replicated_fragments += s.under_replicated_fragments;
        self.flip_flops_get += s.flip_flops_get;
        self.flip_flops_list += s.flip_flops_list;
        self.inversions += s.inversions;
        self.stale_after_repair += s.stale_after_repair;
        // Commutative: the total does not depend on how seeds were spread over threads.
        self.history_hash = self.history_hash.wrapping_add(s.history_hash);
    }
}

fn layout() -> Arc<Layout> {
    static LAYOUT: OnceLock<Arc<Layout>> = OnceLock::new();
    LAYOUT
        .get_or_init(|| cluster::sim::world::layout(NODES, CORES_PER_NODE))
        .clone()
}

fn bucket(i: u64) -> String {
    format!("b{i}")
}

fn object(i: u64) -> String {
    format!("k{i}")
}

fn record_key(tag: u8, bucket: &str, key: &str) -> Bytes {
    let mut k = BytesMut::new();
    k.put_u8(tag);
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    k.put_slice(key.as_bytes());
    k.freeze()
}

fn head_key(bucket: &str, key: &str) -> Bytes {
    record_key(b'O', bucket, key)
}

fn listing_key(bucket: &str, key: &str) -> Bytes {
    record_key(b'L', bucket, key)
}

fn listing_prefix(bucket: &str) -> Bytes {
    record_key(b'L', bucket, "")
}

/// An object version's data, derived from its write id (so any read can check it).
fn data_of(id: u64) -> Bytes {
    let len = 1 + (id % 61) as usize;
    Bytes::from(
        (0..len)
            .map(|i| (id as u8).wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

fn fragment_of(id: u64) -> FragmentId {
    let mut f = [0u8; 16];
    f[..8].copy_from_slice(&id.to_le_bytes());
    f[8] = 0xf5;
    FragmentId(f)
}

fn id_of(value: &Bytes) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

struct Env {
    world: Shared,
    history: RefCell<History>,
    failures: RefCell<Vec<String>>,
    stats: RefCell<Stats>,
    clients_running: RefCell<usize>,
    /// The gateway of each node (replaced by a fresh one when its node crashes).
    gateways: RefCell<Vec<Arc<Backend>>>,
    /// Starts node n's gateway.
    start_gateway: Box<dyn Fn(usize) -> Arc<Backend>>,
}

impl Env {
    /// Node `node`'s gateway, `None` while the node is down.
    fn gateway(&self, node: usize) -> Option<Arc<Backend>> {
        let up = self.world.lock().up[node];
        up.then(|| self.gateways.borrow()[node].clone())
    }

    fn fail(&self, message: String) {
        self.failures.borrow_mut().push(message);
    }
}

/// Writes version `id`'s data: one fragment on the replicas, or an EC 4+2 stripe (shard i on
/// the i-th core of the object's list, with its id's last byte i).
async fn put_data(gw: &Backend, b: &str, k: &str, id: u64, ec: bool) -> bool {
    let data = data_of(id);
    if !ec {
        let cores = gw.route_n(Route::Object(b, k), gw.replicas());
        return gw
            .put_fragment(&cores, cores.len() as u8, fragment_of(id), &data)
            .await
            .is_ok();
    }
    let shards = ec_shards(id);
    let cores = gw.route_n(Route::Object(b, k), shards.len());
    let stripe: Vec<_> = shards
        .into_iter()
        .enumerate()
        .map(|(i, shard)| (shard_id(id, i), shard))
        .collect();
    gw.put_shards(&cores, Policy::Ec { k: EC_K, m: EC_M }, &stripe)
        .await
        .is_ok()
}

/// The k + m shards of version `id`'s data.
fn ec_shards(id: u64) -> Vec<Bytes> {
    encode_stripe(&data_of(id), EC_K, EC_M).expect("a small stripe encodes")
}

fn shard_id(id: u64, shard: usize) -> FragmentId {
    let mut f = fragment_of(id);
    f.0[15] = shard as u8;
    f
}

/// Reads version `id`'s data back: the fragment from the first replica that has it, or the
/// k data shards, decoding from the parity shards for any that cannot be read.
async fn get_data(gw: &Backend, b: &str, k: &str, id: u64, ec: bool) -> Result<Bytes, String> {
    let len = data_of(id).len() as u64;
    if !ec {
        let cores = gw.route_n(Route::Object(b, k), gw.replicas());
        return gw
            .get_fragment(&cores, fragment_of(id), 0, len)
            .await
            .map_err(|e| e.to_string());
    }
    let width = usize::from(EC_K + EC_M);
    let cores = gw.route_n(Route::Object(b, k), width);
    let shard_len = shard_bytes(len, EC_K);
    let mut available = Vec::new();
    for (i, &core) in cores.iter().enumerate() {
        if available.len() == usize::from(EC_K) {
            break;
        }
        if let Ok(shard) = gw
            .get_fragment(&[core], shard_id(id, i), 0, shard_len)
            .await
        {
            available.push((i, shard));
        }
    }
    if available.len() < usize::from(EC_K) {
        return Err(format!("{} of {width} shards readable", available.len()));
    }
    let data = decode_stripe(EC_K, EC_M, &available)?;
    let mut out = BytesMut::new();
    for d in data {
        out.extend_from_slice(&d);
    }
    out.truncate(len as usize);
    Ok(out.freeze())
}

/// One object write: the data fragment on its replicas, then the head record (a swap, as
/// s3.rs `commit_unversioned` writes it), then the listing entry, all with one HLC. Each
/// record is a write of the history; the swap's answer is a read.
async fn put(env: &Env, gw: &Backend, b: &str, k: &str, ec: bool) -> bool {
    let id = env.world.tick();
    let hlc = gw.hlc();
    // The version is fixed here: its writes start now for the history.
    let start = env.world.tick();
    if !put_data(gw, b, k, id, ec).await {
        return false;
    }
    let mut value = id.to_le_bytes().to_vec();
    if ec {
        value.push(KIND_EC);
    }
    let value = Bytes::from(value);
    let records = [
        (
            head_key(b, k),
            gw.route_n(Route::Object(b, k), gw.replicas()),
        ),
        (
            listing_key(b, k),
            gw.route_n(Route::Listing(b), gw.replicas()),
        ),
    ];
    for (n, (key, cores)) in records.into_iter().enumerate() {
        let i = env
            .history
            .borrow_mut()
            .write(&key, Ver::put(hlc, value.clone()), start);
        if n == 0 {
            // The head as the object layer commits it: a swap, whose answer (the version it
            // replaced, or the newer one that beat it) is a read of the key too.
            let swap_start = env.world.tick();
            let Ok(swap) = gw.meta_swap(&cores, &key, &value, hlc).await else {
                return false;
            };
            let at = env.world.tick();
            let got = swap
                .previous
                .filter(|p| !p.deleted)
                .map(|p| Ver::put(p.hlc, p.value));
            let mut history = env.history.borrow_mut();
            history.read(Read {
                key: key.clone(),
                start: swap_start,
                end: at,
                got,
                what: "swap-previous",
            });
            history.ack(&key, i, at);
            continue;
        }
        if gw.meta_put(&cores, &key, &value, hlc).await.is_err() {
            return false;
        }
        let at = env.world.tick();
        env.history.borrow_mut().ack(&key, i, at);
    }
    true
}

/// A conditional create (`If-None-Match: *`) as `objects::Store::check_head`, `put_head_if` and `write_current` do it:
/// the data, then the head read from every replica (a quorum read that repairs the first
/// core), a compare-and-swap on the first core
/// expecting no live head, then the listing entry and the head on every replica. A won
/// compare-and-swap is a read that saw the key absent.
async fn create(env: &Env, gw: &Backend, b: &str, k: &str) -> bool {
    let id = env.world.tick();
    let data = data_of(id);
    let frag_cores = gw.route_n(Route::Object(b, k), gw.replicas());
    if gw
        .put_fragment(&frag_cores, frag_cores.len() as u8, fragment_of(id), &data)
        .await
        .is_err()
    {
        return false;
    }
    let hkey = head_key(b, k);
    let cores = gw.route_n(Route::Object(b, k), gw.replicas());
    let start = env.world.tick();
    match gw.meta_get(&cores, &hkey).await {
        Ok(None) => {}
        // Exists: PreconditionFailed.
        Ok(Some(_)) => return true,
        Err(_) => return false,
    }
    let hlc = gw.hlc();
    let value = Bytes::copy_from_slice(&id.to_le_bytes());
    let i = env
        .history
        .borrow_mut()
        .write(&hkey, Ver::put(hlc, value.clone()), start);
    match gw.meta_put_if(cores[0], &hkey, &value, hlc, None).await {
        Ok(true) => {}
        // Lost the race: PreconditionFailed.
        Ok(false) => return true,
        Err(_) => return false,
    }
    let end = env.world.tick();
    env.history.borrow_mut().read(Read {
        key: hkey.clone(),
        start,
        end,
        got: None,
        what: "create-if-absent",
    });
    let lkey = listing_key(b, k);
    let li = env
        .history
        .borrow_mut()
        .write(&lkey, Ver::put(hlc, value.clone()), start);
    let lcores = gw.route_n(Route::Listing(b), gw.replicas());
    if gw.meta_put(&lcores, &lkey, &value, hlc).await.is_err() {
        return false;
    }
    let at = env.world.tick();
    env.history.borrow_mut().ack(&lkey, li, at);
    if gw.meta_put(&cores, &hkey, &value, hlc).await.is_err() {
        return false;
    }
    let at = env.world.tick();
    env.history.borrow_mut().ack(&hkey, i, at);
    true
}

async fn delete(env: &Env, gw: &Backend, b: &str, k: &str) -> bool {
    let hlc = gw.hlc();
    let start = env.world.tick();
    let records = [
        (
            head_key(b, k),
            gw.route_n(Route::Object(b, k), gw.replicas()),
        ),
        (
            listing_key(b, k),
            gw.route_n(Route::Listing(b), gw.replicas()),
        ),
    ];
    for (key, cores) in records {
        let i = env
            .history
            .borrow_mut()
            .write(&key, Ver::tombstone(hlc), start);
        if gw.meta_delete(&cores, &key, hlc).await.is_err() {
            return false;
        }
        let at = env.world.tick();
        env.history.borrow_mut().ack(&key, i, at);
    }
    true
}

/// Reads one record (with read repair) and records what it saw; `None` when it failed.
async fn read_record(
    env: &Env,
    gw: &Backend,
    key: &Bytes,
    cores: &[usize],
    what: &'static str,
) -> Option<Option<Ver>> {
    let start = env.world.tick();
    let got = gw.meta_get(cores, key).await.ok()?;
    let end = env.world.tick();
    let got = got.map(|e| Ver::put(e.hlc, e.value));
    env.history.borrow_mut().read(Read {
        key: key.clone(),
        start,
        end,
        got: got.clone(),
        what,
    });
    Some(got)
}

/// An object read: the head, then its data, which must be the version's.
async fn get(env: &Env, gw: &Backend, b: &str, k: &str, healthy: bool) -> bool {
    let cores = gw.route_n(Route::Object(b, k), gw.replicas());
    let Some(got) = read_record(env, gw, &head_key(b, k), &cores, "get").await else {
        return false;
    };
    let Some(ver) = got else { return true };
    let Some(id) = id_of(&ver.value) else {
        env.fail(format!(
            "get {b}/{k}: a head value that no put wrote: {ver:?}"
        ));
        return false;
    };
    let want = data_of(id);
    match get_data(gw, b, k, id, ver.value.get(8) == Some(&KIND_EC)).await {
        Ok(data) if data == want => true,
        Ok(data) => {
            env.fail(format!(
                "get {b}/{k}: version {id} read {data:?}, wrote {want:?}"
            ));
            false
        }
        Err(e) if healthy => {
            env.fail(format!(
                "get {b}/{k}: the data of version {id} is unreadable on a healthy cluster: {e}"
            ));
            false
        }
        Err(_) => false,
    }
}

/// A whole listing of a bucket, page by page; every key of the bucket becomes a read of its
/// listing record, over the window of the page that covered it.
async fn list(env: &Env, gw: &Backend, b: &str) -> bool {
    let cores = gw.route_n(Route::Listing(b), gw.replicas());
    let prefix = listing_prefix(b);
    let mut cursor: Option<Bytes> = None;
    let mut last: Option<Bytes> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 1000, "a listing of a few keys ends");
        let start = env.world.tick();
        let Ok((entries, next)) = gw.meta_scan(&cores, &prefix, cursor.clone(), PAGE).await else {
            return false;
        };
        let end = env.world.tick();
        if entries.len() > PAGE as usize || (entries.len() < PAGE as usize && next.is_some()) {
            env.fail(format!(
                "list {b}: a page of {} entries with resume point {next:?}",
                entries.len()
            ));
        }
        // Keys this page covers: after the cursor, up to its resume point (or the end).
        for i in 0..KEYS {
            let key = listing_key(b, &object(i));
            let after = cursor.as_ref().is_none_or(|c| key > *c);
            let before = next.as_ref().is_none_or(|n| key <= *n);
            if !(after && before) {
                continue;
            }
            let got = entries
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, e)| Ver::put(e.hlc, e.value.clone()));
            env.history.borrow_mut().read(Read {
                key,
                start,
                end,
                got,
                what: "list",
            });
        }
        for (k, _) in &entries {
            if !k.starts_with(&prefix) || last.as_ref().is_some_and(|l| k <= l) {
                env.fail(format!(
                    "list {b}: key {k:?} out of order or outside the bucket"
                ));
            }
            last = Some(k.clone());
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return true,
        }
    }
}

/// Runs `op` on node `node`'s gateway; a crash of the node ends it (`false`), wherever it is.
async fn on_gateway(env: &Env, node: usize, op: impl Future<Output = bool>) -> bool {
    let crashed = env.world.crashed(node);
    match futures::future::select(std::pin::pin!(op), std::pin::pin!(crashed)).await {
        futures::future::Either::Left((ok, _)) => ok,
        futures::future::Either::Right(((), _)) => false,
    }
}

async fn client(env: Rc<Env>, node: usize, ops: usize, conditional: bool) {
    for _ in 0..ops {
        let pause = env.world.below(60);
        env.world.sleep(pause).await;
        let b = bucket(env.world.below(BUCKETS));
        let k = object(env.world.below(KEYS));
        let choice = env.world.below(100);
        // A client of a crashed gateway is refused.
        let ok = match env.gateway(node) {
            None => false,
            Some(gw) => {
                let op = async {
                    match choice {
                        0..20 if conditional => put(&env, &gw, &b, &k, false).await,
                        30..40 if conditional => create(&env, &gw, &b, &k).await,
                        0..25 => put(&env, &gw, &b, &k, false).await,
                        25..40 => put(&env, &gw, &b, &k, true).await,
                        40..70 => get(&env, &gw, &b, &k, false).await,
                        70..85 => delete(&env, &gw, &b, &k).await,
                        _ => list(&env, &gw, &b).await,
                    }
                };
                on_gateway(&env, node, op).await
            }
        };
        let mut s = env.stats.borrow_mut();
        s.ops += 1;
        s.failed_ops += u64::from(!ok);
    }
    *env.clients_running.borrow_mut() -= 1;
}

/// Crashes and restarts nodes, partitions and heals the network, loses messages, while the
/// clients run.
async fn nemesis(env: Rc<Env>) {
    while *env.clients_running.borrow() > 0 {
        let pause = 50 + env.world.below(600);
        env.world.sleep(pause).await;
        let mut w = env.world.lock();
        let node = w.rng.below(NODES as u64) as usize;
        match w.rng.below(6) {
            0 => {
                // The node's gateway dies with it: a fresh one (no HLC, no down marks)
                // serves when the node is back.
                w.crash(node);
                drop(w);
                let fresh = (env.start_gateway)(node);
                env.gateways.borrow_mut()[node] = fresh;
            }
            1 => w.up[node] = true,
            2 => {
                for s in 0..NODES {
                    w.side[s] = w.rng.below(2) as u8;
                }
            }
            3 => w.side.fill(0),
            4 => {
                w.weather.drop_per_mille = [0, 10, 50][w.rng.below(3) as usize];
                w.weather.error_per_mille = [0, 0, 10, 50][w.rng.below(4) as usize];
            }
            _ => {
                w.up.fill(true);
                w.side.fill(0);
            }
        }
    }
}

/// A gateway's background repair (lib.rs `start_repair`): a pass over its own node's hints
/// every 2 s while the clients run.
async fn repairer(env: Rc<Env>, node: usize, own: Vec<usize>) {
    while *env.clients_running.borrow() > 0 {
        env.world.sleep(2000).await;
        let Some(gw) = env.gateway(node) else {
            continue;
        };
        let pass = async {
            let s = cluster::backend::in_background(gw.repair_pass(&own)).await;
            env.stats.borrow_mut().repaired += s.repaired;
            true
        };
        on_gateway(&env, node, pass).await;
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Runs one seed; `Err` describes the first violation found.
pub fn run_seed(seed: u64, cfg: &Config) -> Result<Stats, String> {
    let layout = layout();
    let world = Shared::new(World::of_layout(seed, &layout, cfg.fault));
    let core_node = world.lock().core_node.clone();
    let span = 2 * cfg.skew_ms_max + 1;
    let skews: Vec<i64> = (0..NODES)
        .map(|_| world.below(span) as i64 - cfg.skew_ms_max as i64)
        .collect();
    let start_gateway = {
        let world = world.clone();
        let core_node = core_node.clone();
        move |node: usize| -> Arc<Backend> {
            let links: Vec<Arc<dyn CoreLink>> = (0..core_node.len())
                .map(|core| {
                    Arc::new(SimLink {
                        world: world.clone(),
                        from: node,
                        core,
                    }) as Arc<dyn CoreLink>
                })
                .collect();
            let clock: Arc<dyn Clock> = Arc::new(SimClock {
                world: world.clone(),
                skew_ms: skews[node],
                node,
            });
            let b = Backend::cluster(layout.clone(), None, Vec::new())
                .expect("the simulation's layout makes a backend");
            Arc::new(b.with_links(links, clock))
        }
    };
    let gateways: Vec<Arc<Backend>> = (0..NODES).map(&start_gateway).collect();
    let nodes_cores = core_node.clone();
    let own = move |node: usize| -> Vec<usize> {
        (0..nodes_cores.len())
            .filter(|&c| nodes_cores[c] == node)
            .collect()
    };
    let env = Rc::new(Env {
        world: world.clone(),
        history: RefCell::default(),
        failures: RefCell::default(),
        stats: RefCell::default(),
        clients_running: RefCell::new(cfg.clients),
        gateways: RefCell::new(gateways),
        start_gateway: Box::new(start_gateway),
    });

    // The run: clients, the nemesis, the repairers.
    let mut tasks: Vec<Task> = Vec::new();
    for c in 0..cfg.clients {
        tasks.push(Box::pin(client(
            env.clone(),
            c % NODES,
            cfg.ops_per_client,
            cfg.conditional,
        )));
    }
    if cfg.faults {
        tasks.push(Box::pin(nemesis(env.clone())));
    }
    for node in 0..NODES {
        tasks.push(Box::pin(repairer(env.clone(), node, own(node))));
    }
    run(&world, tasks, STEPS_MAX);

    // Heal, let the down marks expire, drain the hints, read everything back.
    {
        let mut w = world.lock();
        w.up.fill(true);
        w.side.fill(0);
        w.weather = cluster::sim::world::Weather::default();
    }
    let gateways = env.gateways.borrow().clone();
    let finish: Task = Box::pin(heal_and_check(env.clone(), gateways.clone(), own));
    run(&world, vec![finish], STEPS_MAX);
    let flips = env.history.borrow().check(cfg.strict.reads)?;
    let inversions = env.history.borrow().inversions();
    if cfg.strict.order {
        if let Some(i) = inversions.first() {
            return Err(i.clone());
        }
    }
    let flips_get = flips.iter().filter(|f| f.starts_with("get ")).count() as u64;
    if let Some(f) = env.failures.borrow().first() {
        return Err(f.clone());
    }
    converged(&env, &gateways[0])?;
    let mut stats = *env.stats.borrow();
    stats.messages = world.lock().messages;
    stats.flip_flops_get = flips_get;
    stats.inversions = inversions.len() as u64;
    stats.history_hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        format!("{:?}", env.history.borrow()).hash(&mut h);
        h.finish()
    };
    stats.flip_flops_list = flips.len() as u64 - flips_get;
    stats.under_replicated_fragments = fragments_checked(&env, &gateways[0])?;
    Ok(stats)
}

async fn heal_and_check(
    env: Rc<Env>,
    gateways: Vec<Arc<Backend>>,
    own: impl Fn(usize) -> Vec<usize>,
) {
    env.world
        .sleep(cluster::limits::CORE_DOWN_FOR.as_millis() as u64 + 1)
        .await;
    let mut pending = 0;
    for _ in 0..HEAL_PASSES_MAX {
        pending = 0;
        for (node, gw) in gateways.iter().enumerate() {
            let s = gw.repair_pass(&own(node)).await;
            env.stats.borrow_mut().repaired += s.repaired;
            pending += s.pending;
        }
        if pending == 0 {
            break;
        }
    }
    if pending > 0 {
        env.fail(format!(
            "{pending} hints still pending after {HEAL_PASSES_MAX} repair passes on a healed cluster"
        ));
    }
    let stale = stale_after_repair(&env, &gateways[0]);
    env.stats.borrow_mut().stale_after_repair = stale;
    // Every object through a rotating gateway: reads must succeed now, and their repairs
    // bring every replica of every record up to date.
    let mut g = 0;
    for bi in 0..BUCKETS {
        let b = bucket(bi);
        for ki in 0..KEYS {
            let k = object(ki);
            let gw = &gateways[g % gateways.len()];
            g += 1;
            if !get(&env, gw, &b, &k, true).await {
                env.fail(format!("get {b}/{k} failed on a healed cluster"));
            }
            let cores = gw.route_n(Route::Listing(&b), gw.replicas());
            if read_record(&env, gw, &listing_key(&b, &k), &cores, "final read")
                .await
                .is_none()
            {
                env.fail(format!("reading the listing entry of {b}/{k} failed"));
            }
        }
        if !list(&env, &gateways[0], &b).await {
            env.fail(format!("list {b} failed on a healed cluster"));
        }
    }
}

/// Replicas holding a version older than their record's newest acknowledged write.
fn stale_after_repair(env: &Env, gw: &Backend) -> u64 {
    let w = env.world.lock();
    let history = env.history.borrow();
    let mut count = 0;
    for bi in 0..BUCKETS {
        let b = bucket(bi);
        for ki in 0..KEYS {
            let k = object(ki);
            let records = [
                (
                    head_key(&b, &k),
                    gw.route_n(Route::Object(&b, &k), gw.replicas()),
                ),
                (
                    listing_key(&b, &k),
                    gw.route_n(Route::Listing(&b), gw.replicas()),
                ),
            ];
            for (key, cores) in records {
                let Some(acked) = history.acked_floor(&key, u64::MAX) else {
                    continue;
                };
                for c in cores {
                    let have = w.cores[c].meta.get(&key).map(|s| Ver {
                        hlc: s.hlc,
                        live: !s.deleted,
                        value: s.value.clone(),
                    });
                    count += u64::from(have.as_ref().is_none_or(|h| h < acked));
                }
            }
        }
    }
    count
}

/// After healing and repair: every replica of every record holds the same version, that
/// version is no older than the newest that landed, and no hint is left.
fn converged(env: &Env, gw: &Backend) -> Result<(), String> {
    let w = env.world.lock();
    let history = env.history.borrow();
    for bi in 0..BUCKETS {
        let b = bucket(bi);
        for ki in 0..KEYS {
            let k = object(ki);
            let records = [
                (
                    head_key(&b, &k),
                    gw.route_n(Route::Object(&b, &k), gw.replicas()),
                ),
                (
                    listing_key(&b, &k),
                    gw.route_n(Route::Listing(&b), gw.replicas()),
                ),
            ];
            for (key, cores) in records {
                let versions: Vec<_> = cores.iter().map(|&c| w.cores[c].meta.get(&key)).collect();
                if versions.iter().any(|v| *v != versions[0]) {
                    return Err(format!(
                        "replicas of {key:?} on cores {cores:?} did not converge: {versions:?}"
                    ));
                }
                let floor = history.landed_floor(&key);
                let have = versions[0].map(|s| Ver {
                    hlc: s.hlc,
                    live: !s.deleted,
                    value: s.value.clone(),
                });
                if floor.is_some() && have < floor {
                    return Err(format!(
                        "{key:?} converged to {have:?}, older than {floor:?} which had landed"
                    ));
                }
            }
        }
    }
    for (c, core) in w.cores.iter().enumerate() {
        if let Some((k, _)) = core
            .meta
            .iter()
            .find(|(k, s)| k.starts_with(b"H") && !s.deleted)
        {
            return Err(format!("core {c} still holds hint {k:?} after repair"));
        }
    }
    Ok(())
}

/// Every data fragment of every live object, on every core that should hold it: a copy
/// present must be exact (a replica's bytes, or the shard the encoding gives: hints rebuild
/// EC shards from the others); the count of objects with a copy missing is returned (a hint
/// that was never stored because its holder failed: the sweep, not hints, owns those).
fn fragments_checked(env: &Env, gw: &Backend) -> Result<u64, String> {
    let w = env.world.lock();
    let mut count = 0;
    for bi in 0..BUCKETS {
        let b = bucket(bi);
        for ki in 0..KEYS {
            let k = object(ki);
            let head = head_key(&b, &k);
            let primary = gw.route_n(Route::Object(&b, &k), gw.replicas())[0];
            let Some(stored) = w.cores[primary].meta.get(&head).filter(|s| !s.deleted) else {
                continue;
            };
            let Some(id) = id_of(&stored.value) else {
                continue;
            };
            let expected: Vec<(FragmentId, Bytes)> = if stored.value.get(8) == Some(&KIND_EC) {
                ec_shards(id)
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| (shard_id(id, i), s))
                    .collect()
            } else {
                vec![(fragment_of(id), data_of(id)); gw.replicas()]
            };
            let cores = gw.route_n(Route::Object(&b, &k), expected.len());
            let mut missing = false;
            for (&core, (fid, want)) in cores.iter().zip(&expected) {
                match w.cores[core].fragments.get(&fid.0) {
                    None => missing = true,
                    Some(have) if have == want => {}
                    Some(have) => {
                        return Err(format!(
                            "{b}/{k} version {id}: core {core} holds {have:?} as {fid:?}, \
                             expected {want:?}"
                        ))
                    }
                }
            }
            count += u64::from(missing);
        }
    }
    Ok(count)
}
