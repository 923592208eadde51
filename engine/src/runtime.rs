//! Starting a node's cores: one pinned glommio executor per partition, each serving requests
//! from a bounded cross-thread queue ([`CoreHandle`], usable from tokio) and from its own TCP
//! port (base port + core index). Requests and responses are `proto` messages; payloads move
//! as `Bytes` without copies at the boundary. The node's [`LayoutGate`] is shared by its cores:
//! their servers check every frame against it, and `MapApplied` is answered from it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use glommio::{LocalExecutorBuilder, Placement, Shares};
use proto::{
    CoreStats, ErrorCode, FragmentId, MetaEntry, MetaVersion, MetaWrite, Request, Response,
};

use crate::error::{EngineError, Result};
use crate::format::log_salt;
use crate::gate::LayoutGate;
use crate::io::GlommioDisk;
use crate::limits::{
    BACKGROUND_SCAN_CHUNK_ENTRIES, CACHE_BYTES_PER_CORE_DEFAULT,
    CHECKPOINT_EVERY_LOG_BYTES_DEFAULT, CORE_QUEUE_LEN_MAX, SCAN_ENTRIES_MAX,
    SEGMENT_BYTES_DEFAULT,
};
use crate::meta::{MetaMutation, MetaValue};
use crate::partition::open_partition;
use crate::store::{Store, StoreConfig, StoreStats};

/// One core of a node.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub index: u32,
    /// The partition directory this core owns.
    pub dir: PathBuf,
    /// Pin the executor to this CPU (`None`: let the OS place it; tests oversubscribe).
    pub cpu: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: u64,
    pub cores: Vec<CoreConfig>,
    pub segment_bytes: u64,
    pub capacity_bytes_per_core: u64,
    /// glommio's registered I/O memory per core; must fit RLIMIT_MEMLOCK (see tuning/).
    pub io_memory_bytes: usize,
    /// Records between automatic checkpoints.
    pub checkpoint_every_records: u64,
    /// Log bytes between automatic checkpoints (see `StoreConfig::checkpoint_every_log_bytes`).
    pub checkpoint_every_log_bytes: u64,
    /// Where each core listens (port = base_port + core index); `None`: no TCP listener.
    pub listen: Option<(IpAddr, u16)>,
    /// The layout the node's gate starts with, as its floor and its version (0 accepts any
    /// frame); the node's map follower moves it at run time (`Node::layout_gate`).
    pub layout_version: u64,
    /// Interval of the background reclaimer.
    pub reclaim_interval: Duration,
    /// Budget of each core's fragment cache (0 disables it).
    pub cache_bytes_per_core: u64,
}

impl NodeConfig {
    /// A node of `cores` partitions under `data_dir/core-N`.
    pub fn simple(node_id: u64, data_dir: &std::path::Path, cores: u32) -> NodeConfig {
        NodeConfig {
            node_id,
            cores: (0..cores)
                .map(|i| CoreConfig {
                    index: i,
                    dir: data_dir.join(format!("core-{i}")),
                    cpu: None,
                })
                .collect(),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            capacity_bytes_per_core: u64::MAX,
            io_memory_bytes: 4 << 20,
            checkpoint_every_records: 100_000,
            checkpoint_every_log_bytes: CHECKPOINT_EVERY_LOG_BYTES_DEFAULT,
            listen: None,
            layout_version: 0,
            reclaim_interval: Duration::from_secs(5),
            cache_bytes_per_core: CACHE_BYTES_PER_CORE_DEFAULT,
        }
    }
}

struct Call {
    request: Request,
    reply: oneshot::Sender<Response>,
}

/// Work a caller hands a core to run on its executor (`CoreHandle::spawn`): made on the
/// core's thread, so the future need not be `Send`.
type Work =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Send + Sync>;

enum CoreMsg {
    Call(Call),
    /// Run a task on the core's executor (detached): the HTTP server of thread-per-core
    /// serving (`s3api::serve_cores`).
    Spawn(Work),
    /// Stop after the requests already received (sent by `Node::shutdown`).
    Stop,
}

/// A Send + Clone handle to one core, for tokio tasks and other threads.
#[derive(Clone)]
pub struct CoreHandle {
    index: u32,
    /// Unique among the cores of this process (several nodes may run in one test process).
    id: u64,
    tx: flume::Sender<CoreMsg>,
}

/// The ids given to cores (`CoreHandle::id`), from 1.
static NEXT_CORE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// The id of the core whose executor runs on this thread (0: none).
    static CURRENT_CORE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether the caller runs on a core's executor thread (of any node in this process): what it
/// spawns there runs beside the core's requests, and `crate::peers` may serve it.
pub fn on_core_thread() -> bool {
    CURRENT_CORE.with(std::cell::Cell::get) != 0
}

impl CoreHandle {
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether the caller runs on this core's own thread (thread-per-core serving): a call
    /// then stays on the thread, and a read that may pick among replicas prefers this one.
    pub fn is_current(&self) -> bool {
        CURRENT_CORE.with(std::cell::Cell::get) == self.id
    }

    /// Sends a request and waits for its response. Waits while the core's queue is full
    /// (backpressure); `Stopped` once the core is gone. In-process calls carry no layout
    /// version: the gate does not check them (it answers `MapApplied` all the same).
    pub async fn call(&self, request: Request) -> Result<Response> {
        let (reply, rx) = oneshot::channel();
        let msg = CoreMsg::Call(Call { request, reply });
        self.tx
            .send_async(msg)
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Like `call` but fails with `Busy` instead of waiting when the queue is full.
    pub async fn try_call(&self, request: Request) -> Result<Response> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(CoreMsg::Call(Call { request, reply }))
            .map_err(|e| match e {
                flume::TrySendError::Full(_) => EngineError::Busy,
                flume::TrySendError::Disconnected(_) => EngineError::Stopped,
            })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Runs `work()` as a task on this core's executor, beside its requests: `work` is called
    /// on the core's thread, so the future it makes may hold the core's thread-local I/O
    /// (glommio sockets). The task is detached; it ends with the core at the latest. An
    /// offline core runs it too. `Stopped` once the core is gone.
    pub fn spawn<F, Fut>(&self, work: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let work: Work = Box::new(move || Box::pin(work()));
        self.tx
            .send(CoreMsg::Spawn(work))
            .map_err(|_| EngineError::Stopped)
    }

    /// Blocking form for non-async callers (tests, tools).
    pub fn call_blocking(&self, request: Request) -> Result<Response> {
        futures_lite::future::block_on(self.call(request))
    }
}

/// A running node: its cores' threads and handles.
pub struct Node {
    handles: Vec<CoreHandle>,
    threads: Vec<JoinHandle<()>>,
    offline: Vec<(u32, String)>,
    gate: Arc<LayoutGate>,
}

impl Node {
    /// Opens every partition and starts its core. Returns once every core has recovered and
    /// is serving, or the first core's error. A core whose partition is damaged (see
    /// `EngineError::is_damage`) does not stop the node: it starts offline (`Node::offline`)
    /// and answers every request `Offline`.
    pub fn start(cfg: &NodeConfig) -> Result<Node> {
        let gate = Arc::new(LayoutGate::new(cfg.layout_version));
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        let mut ready = Vec::new();
        for core in &cfg.cores {
            let (tx, rx) = flume::bounded::<CoreMsg>(CORE_QUEUE_LEN_MAX);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
            let placement = core.cpu.map_or(Placement::Unbound, Placement::Fixed);
            let core_cfg = core.clone();
            let node_cfg = cfg.clone();
            let core_gate = gate.clone();
            let id = NEXT_CORE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // No spin before park: measured on 2 CPUs shared with the load generator (4 KiB GET,
            // 64 in flight), spinning 20 µs cost 16% of the ops/s and 100 µs 24%.
            let handle = LocalExecutorBuilder::new(placement)
                .name(&format!("percore-core-{}", core.index))
                .io_memory(cfg.io_memory_bytes)
                .spawn(move || async move {
                    CURRENT_CORE.with(|c| c.set(id));
                    run_core(node_cfg, core_cfg, core_gate, rx, ready_tx).await;
                })
                .map_err(|e| EngineError::Config(format!("starting core {}: {e}", core.index)))?;
            threads.push(std::thread::spawn(move || {
                if let Err(e) = handle.join() {
                    // A core that panicked is a bug. Crash the node (it recovers from its log on
                    // restart) rather than keep a process whose core's port accepts connections
                    // and never answers, as a full disk once made it do.
                    tracing::error!(error = %e, "core thread panicked: aborting the node");
                    eprintln!("percore: a core thread panicked ({e}); aborting");
                    std::process::abort();
                }
            }));
            handles.push(CoreHandle {
                index: core.index,
                id,
                tx,
            });
            ready.push(ready_rx);
        }
        let mut offline = Vec::new();
        for (i, r) in ready.into_iter().enumerate() {
            match r.recv() {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(reason))) => offline.push((cfg.cores[i].index, reason)),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(EngineError::Config(format!(
                        "core {i} stopped while starting"
                    )))
                }
            }
        }
        Ok(Node {
            handles,
            threads,
            offline,
            gate,
        })
    }

    /// The node's layout gate, shared by its cores: the map follower sets the layouts the
    /// cores accept (`LayoutGate::set_layout`) and the map index applied
    /// (`LayoutGate::set_applied`); both take effect from the next frame, on open connections
    /// too.
    pub fn layout_gate(&self) -> Arc<LayoutGate> {
        self.gate.clone()
    }

    /// The cores that started offline (damaged partition), with the reason.
    pub fn offline(&self) -> &[(u32, String)] {
        &self.offline
    }

    pub fn handles(&self) -> &[CoreHandle] {
        &self.handles
    }

    /// Stops every core after the requests already queued, and waits for the threads. Calls
    /// through handles kept elsewhere get `Stopped` afterwards.
    pub fn shutdown(self) {
        for h in &self.handles {
            let _ = h.tx.send(CoreMsg::Stop);
        }
        drop(self.handles);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What a core reports once it has started: `Some(reason)` when it started offline.
type Ready = Result<Option<String>>;

async fn run_core(
    node: NodeConfig,
    core: CoreConfig,
    gate: Arc<LayoutGate>,
    rx: flume::Receiver<CoreMsg>,
    ready: std::sync::mpsc::Sender<Ready>,
) {
    let listener = match node.listen {
        Some((ip, base)) => {
            let port = base.checked_add(core.index as u16);
            match port.map(|p| crate::io::bind_listener(SocketAddr::new(ip, p))) {
                Some(Ok(l)) => Some(l),
                Some(Err(e)) => {
                    let _ = ready.send(Err(e));
                    return;
                }
                None => {
                    let _ = ready.send(Err(EngineError::Config("core port overflows".into())));
                    return;
                }
            }
        }
        None => None,
    };
    let (store, partition) = match open_core(&node, &core).await {
        Ok(s) => s,
        Err(e) if e.is_damage() => {
            let reason = e.to_string();
            tracing::error!(core = core.index, %reason, "core OFFLINE: its partition is damaged");
            let _ = ready.send(Ok(Some(reason.clone())));
            run_offline(listener, &gate, reason, rx).await;
            return;
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(None));
    let stats = store.stats();
    tracing::info!(core = core.index, ?stats, "core serving");
    if let Some(free) = stats.device_free_bytes {
        if free < stats.device_floor_bytes + node.segment_bytes {
            tracing::warn!(
                core = core.index,
                free_bytes = free,
                floor_bytes = stats.device_floor_bytes,
                "the device is below the free space kept for deletes and metadata: object data \
                 is refused (507) until space is freed (README, \"When a disk fills\")"
            );
        }
    }
    let stop = Rc::new(std::cell::Cell::new(false));
    start_reclaimer(&store, node.reclaim_interval, stop.clone());
    // Kept, not detached: the listener must close when the core stops (a detached task
    // blocked in accept outlived the core, and the port stayed bound for a restart).
    let server = listener.map(|listener| {
        let store = store.downgrade();
        let (gate, stop) = (gate.clone(), stop.clone());
        glommio::spawn_local(async move {
            let target = crate::server::Target::Store(store);
            crate::server::serve(listener, target, gate, stop).await;
        })
    });
    // In-flight requests from the handle are bounded by the queue and by this semaphore.
    let inflight = Rc::new(glommio::sync::Semaphore::new(CORE_QUEUE_LEN_MAX as u64));
    while let Some(call) = next_call(&rx).await {
        if let Some(answer) = gate.node_answer(&call.request) {
            let _ = call.reply.send(answer);
            continue;
        }
        if let Some(refused) = gate.lease_refusal(&call.request) {
            let _ = call.reply.send(refused);
            continue;
        }
        let Ok(permit) = inflight.clone().acquire_static_permit(1).await else {
            break;
        };
        let store = store.clone();
        glommio::spawn_local(async move {
            let response = dispatch(&store, call.request).await;
            let _ = call.reply.send(response);
            drop(permit);
        })
        .detach();
    }
    drop(rx);
    stop.set(true);
    if let Some(server) = server {
        server.cancel().await;
    }
    // Every handle is gone: wait for queued work, checkpoint, close.
    let _ = inflight.acquire(CORE_QUEUE_LEN_MAX as u64).await;
    if let Err(e) = store.checkpoint().await {
        tracing::warn!(core = core.index, error = %e, "final checkpoint failed");
    }
    // Background tasks hold weak references: only in-flight work can delay the close, which
    // must happen before the partition could be opened again in this process.
    if let Err(e) = store.shutdown().await {
        tracing::warn!(core = core.index, error = %e, "core did not close within 30 s");
    }
    drop(partition);
}

/// Serves an offline core until the node stops: every request, from the handle or the
/// core's port, is answered `Offline` with the reason, so the gateway reads around it and
/// `percore status` shows why. `MapApplied` is about the node and answered from its gate.
async fn run_offline(
    listener: Option<glommio::net::TcpListener>,
    gate: &Arc<LayoutGate>,
    reason: String,
    rx: flume::Receiver<CoreMsg>,
) {
    let stop = Rc::new(std::cell::Cell::new(false));
    let reason: Rc<str> = reason.into();
    let server = listener.map(|listener| {
        let target = crate::server::Target::Offline(reason.clone());
        let (gate, stop) = (gate.clone(), stop.clone());
        glommio::spawn_local(async move {
            crate::server::serve(listener, target, gate, stop).await;
        })
    });
    while let Some(call) = next_call(&rx).await {
        let response = gate
            .node_answer(&call.request)
            .unwrap_or_else(|| crate::server::offline_response(&reason));
        let _ = call.reply.send(response);
    }
    stop.set(true);
    if let Some(server) = server {
        server.cancel().await;
    }
}

/// The next call from the core's handles; work handed over by `CoreHandle::spawn` is started
/// on the way. `None`: stop (a `Stop`, or every handle gone).
async fn next_call(rx: &flume::Receiver<CoreMsg>) -> Option<Call> {
    loop {
        match rx.recv_async().await {
            Ok(CoreMsg::Call(call)) => return Some(call),
            Ok(CoreMsg::Spawn(work)) => {
                glommio::spawn_local(work()).detach();
            }
            Ok(CoreMsg::Stop) | Err(_) => return None,
        }
    }
}

async fn open_core(
    node: &NodeConfig,
    core: &CoreConfig,
) -> Result<(Store<GlommioDisk>, crate::partition::OpenPartition)> {
    let partition = open_partition(&core.dir, node.node_id, core.index, node.segment_bytes)?;
    let background = glommio::executor().create_task_queue(
        Shares::Static(10),
        glommio::Latency::NotImportant,
        "reclaim",
    );
    let disk = GlommioDisk::open(&core.dir, background)
        .await?
        .with_partitions_on_device(partitions_on_device(node, core));
    let cfg = StoreConfig {
        segment_bytes: node.segment_bytes,
        capacity_bytes: node.capacity_bytes_per_core,
        checkpoint_every_records: node.checkpoint_every_records,
        checkpoint_every_log_bytes: node.checkpoint_every_log_bytes,
        salt: log_salt(&partition.superblock.partition_uuid),
        format1_segments_below: partition.superblock.format1_segments_below,
        batch_bytes: crate::limits::BATCH_BYTES_MAX,
        cache_bytes: node.cache_bytes_per_core,
    };
    let store = Store::open(disk, cfg).await?;
    // The partition (and its lock) lives as long as the core.
    Ok((store, partition))
}

/// How many of the node's partitions live on the same filesystem as `core`'s (each keeps its
/// own reserve there). A directory not created yet counts by its nearest existing ancestor.
fn partitions_on_device(node: &NodeConfig, core: &CoreConfig) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let device = |dir: &std::path::Path| {
        dir.ancestors()
            .find_map(|d| std::fs::metadata(d).ok())
            .map(|m| m.dev())
    };
    let Some(mine) = device(&core.dir) else {
        return 1;
    };
    let sharing = node
        .cores
        .iter()
        .filter(|c| device(&c.dir) == Some(mine))
        .count();
    u32::try_from(sharing).unwrap_or(u32::MAX).max(1)
}

fn start_reclaimer(
    store: &Store<GlommioDisk>,
    interval: Duration,
    stop: Rc<std::cell::Cell<bool>>,
) {
    // A weak reference, upgraded for a pass only: a stopping core's `Store::shutdown` waits
    // for every strong one. The interval is slept in short steps, so a stop is seen within one
    // (a whole interval held every stop of an idle node 0-5 s: 5.05 s measured per SIGTERM).
    let weak = store.downgrade();
    store.spawn_background(async move {
        'passes: while !stop.get() {
            let mut left = interval;
            while !left.is_zero() {
                let nap = left.min(crate::limits::RECLAIM_STOP_POLL);
                glommio::timer::sleep(nap).await;
                left -= nap;
                if stop.get() {
                    break 'passes;
                }
            }
            let Some(store) = weak.upgrade() else {
                break;
            };
            if let Err(e) = store.reclaim_pass().await {
                tracing::warn!(error = %e, "reclaim failed");
            }
        }
    });
}

fn error_response(e: &EngineError) -> Response {
    let code = match e {
        EngineError::NotFound => ErrorCode::NotFound,
        EngineError::NoSpace => ErrorCode::NoSpace,
        EngineError::Corrupt { .. } | EngineError::Damaged { .. } => ErrorCode::Corrupt,
        EngineError::Offline { .. } => ErrorCode::Offline,
        EngineError::Poisoned => ErrorCode::Poisoned,
        EngineError::TooLarge { .. } => ErrorCode::TooLarge,
        EngineError::BadRequest(_) | EngineError::Config(_) => ErrorCode::BadRequest,
        EngineError::Busy => ErrorCode::Busy,
        EngineError::Stopped
        | EngineError::Partition { .. }
        | EngineError::Io { .. }
        | EngineError::Meta { .. } => ErrorCode::Internal,
    };
    Response::Error {
        code,
        message: e.to_string(),
    }
}

/// `free_bytes` is what fragment data may still take: the tighter of the configured capacity
/// and the device's free space above its floor (shared with the partitions on that device)
/// plus the core's free segment files (held on the device, free for this core's log).
/// `capacity_bytes` is then used + free, unless a configured capacity is the bound.
fn stats_of(s: &StoreStats) -> CoreStats {
    let by_capacity = s.capacity_bytes.saturating_sub(s.used_bytes);
    let by_device = s.device_free_bytes.map_or(u64::MAX, |free| {
        free.saturating_add(s.free_segment_bytes)
            .saturating_sub(s.device_floor_bytes)
    });
    let free_bytes = by_capacity.min(by_device);
    let capacity_bytes = if by_device < by_capacity {
        s.used_bytes.saturating_add(by_device)
    } else {
        s.capacity_bytes
    };
    CoreStats {
        fragments: s.fragments,
        live_bytes: s.live_bytes,
        dead_bytes: s.used_bytes.saturating_sub(s.live_bytes),
        capacity_bytes,
        free_bytes,
        segments: s.segments,
        corrupt_reads: s.corrupt_reads,
        poisoned: s.poisoned,
        puts: s.puts,
        gets: s.gets,
        deletes: s.deletes,
        corrupt_records_replayed: s.corrupt_records_replayed,
        checkpoint_rebuilt: s.checkpoint_rebuilt,
        cache_hits: s.cache.hits,
        cache_misses: s.cache.misses,
        cache_evictions: s.cache.evictions,
        cache_bytes: s.cache.used_bytes,
        cache_budget_bytes: s.cache.budget_bytes,
        free_segment_files: s.free_segment_files,
        segments_reused: s.segments_reused,
        replay_stale_stops: s.replay_stale_stops,
        log_appended_bytes: s.log_appended_bytes,
        meta_bytes: s.meta_bytes,
        guarded_pairs_dropped: s.guarded_pairs_dropped,
    }
}

/// Runs one request against the store. Batches run their parts concurrently so that writes
/// in one batch share a group commit.
pub async fn dispatch(store: &Store<GlommioDisk>, request: Request) -> Response {
    match request {
        Request::Batch(parts) => {
            let tasks: Vec<_> = parts
                .into_iter()
                .map(|r| {
                    let store = store.clone();
                    glommio::spawn_local(async move { dispatch_one(&store, r).await })
                })
                .collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            Response::Batch(out)
        }
        other => dispatch_one(store, other).await,
    }
}

/// The answer of a swap (`MetaSwap`, `MetaPair`): whether it won, and the version before it.
fn swapped((won, previous): (bool, Option<(MetaValue, bool)>)) -> Response {
    Response::Swapped {
        won,
        previous: previous.map(|(v, deleted)| MetaVersion {
            hlc: v.hlc,
            deleted,
            value: v.value,
        }),
    }
}

/// A pair's metadata write at its HLC.
fn mutation(write: MetaWrite, hlc: u64) -> MetaMutation {
    match write {
        MetaWrite::Put { key, value } => MetaMutation::Put { key, value, hlc },
        MetaWrite::Delete { key } => MetaMutation::Delete { key, hlc },
    }
}

async fn dispatch_one(store: &Store<GlommioDisk>, request: Request) -> Response {
    if let Request::Background(inner) = request {
        return in_background(store, *inner).await;
    }
    let result = match request {
        Request::PutFragment { id, data } => store
            .put_fragment(id.0, data)
            .await
            .map(|()| Response::Done),
        Request::GetFragment {
            id,
            offset_bytes,
            len_bytes,
        } => store
            .get_fragment(id.0, offset_bytes, len_bytes)
            .await
            .map(Response::Fragment),
        Request::DeleteFragment { id } => {
            store.delete_fragment(id.0).await.map(|()| Response::Done)
        }
        Request::VerifyFragment { id } => store.verify_fragment(id.0).await.map(|_| Response::Done),
        Request::ListFragments { from, limit } => {
            let (ids, next) = store.list_fragments(from, limit);
            Ok(Response::Fragments {
                ids: ids.into_iter().map(FragmentId).collect(),
                next,
            })
        }
        Request::MetaDigest { keys } => keys
            .iter()
            .map(|key| {
                let state = store.meta_get_versioned(key)?;
                Ok(state.map(|(v, deleted)| (v.hlc, deleted)))
            })
            .collect::<Result<Vec<_>>>()
            .map(|states| {
                let entries = keys.iter().map(|k| &k[..]).zip(states);
                Response::Digest(proto::meta_digest(entries))
            }),
        Request::MetaPut { key, value, hlc } => store
            .meta_put(key, value, hlc)
            .await
            .map(|_| Response::Done),
        Request::MetaSwap { key, value, hlc } => {
            store.meta_swap(key, value, hlc).await.map(swapped)
        }
        Request::MetaPair { first, second, hlc } => store
            .meta_pair(mutation(first, hlc), mutation(second, hlc))
            .await
            .map(swapped),
        Request::PutPaired {
            id,
            data,
            first,
            second,
            hlc,
        } => store
            .put_fragment_paired(id.0, data, mutation(first, hlc), mutation(second, hlc))
            .await
            .map(swapped),
        Request::MetaPutIf {
            key,
            value,
            hlc,
            expect_hlc,
        } => match store.meta_put_if(key, value, hlc, expect_hlc).await {
            Ok(true) => Ok(Response::Done),
            Ok(false) => Ok(Response::Error {
                code: ErrorCode::ConditionFailed,
                message: "the key's current version is not the expected one".into(),
            }),
            Err(e) => Err(e),
        },
        Request::MetaDelete { key, hlc } => {
            store.meta_delete(key, hlc).await.map(|_| Response::Done)
        }
        Request::MetaGet { key } => store.meta_get(&key).map(|v| {
            Response::Meta(v.map(|v| MetaEntry {
                hlc: v.hlc,
                value: v.value,
            }))
        }),
        Request::MetaScan {
            prefix,
            start_after,
            limit,
        } => store
            .meta_scan(&prefix, start_after.as_deref(), limit)
            .map(|page| Response::Scan {
                entries: page
                    .entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            MetaEntry {
                                hlc: v.hlc,
                                value: v.value,
                            },
                        )
                    })
                    .collect(),
                next_start_after: page.next_start_after,
            }),
        Request::MetaGetVersioned { key } => store.meta_get_versioned(&key).map(|v| {
            Response::MetaVersioned(v.map(|(v, deleted)| MetaVersion {
                hlc: v.hlc,
                deleted,
                value: v.value,
            }))
        }),
        Request::MetaScanVersioned {
            prefix,
            start_after,
            limit,
        } => store
            .meta_scan_versioned(&prefix, start_after.as_deref(), limit)
            .map(|page| Response::ScanVersioned {
                entries: page
                    .entries
                    .into_iter()
                    .map(|(k, v, deleted)| {
                        (
                            k,
                            MetaVersion {
                                hlc: v.hlc,
                                deleted,
                                value: v.value,
                            },
                        )
                    })
                    .collect(),
                next_start_after: page.next_start_after,
            }),
        Request::Stats => Ok(Response::Stats(stats_of(&store.stats()))),
        // Answered from the node's gate where requests arrive (the server and the handle
        // loop); wrapped, it would need the gate here for no use.
        Request::MapApplied
        | Request::Lease { .. }
        | Request::ControlMap
        | Request::ControlLevel => Err(EngineError::BadRequest(
            "MapApplied, Lease, ControlMap and ControlLevel are sent alone, not in a batch \
                 or a background request",
        )),
        Request::Batch(_) => Err(EngineError::BadRequest("nested batch")),
        // Unwrapped by the core's server, where it arrives over TCP, after the gate's check.
        Request::Fenced { .. } => Err(EngineError::BadRequest(
            "a fenced request is answered by a core's server, not inside another request",
        )),
        Request::Background(_) => unreachable!("handled above"),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// Runs one request in the core's low-share background task queue (the reclaimer's), so
/// lifecycle moves, repair and restores yield the CPU to foreground requests.
async fn in_background(store: &Store<GlommioDisk>, request: Request) -> Response {
    if matches!(request, Request::Batch(_) | Request::Background(_)) {
        return error_response(&EngineError::BadRequest(
            "a background request wraps one plain request",
        ));
    }
    let (tx, rx) = oneshot::channel();
    let inner = store.clone();
    store.spawn_background(async move {
        let answer = match request {
            Request::MetaScan { .. } | Request::MetaScanVersioned { .. } => {
                scan_in_chunks(&inner, request).await
            }
            other => Box::pin(dispatch_one(&inner, other)).await,
        };
        let _ = tx.send(answer);
    });
    rx.await
        .unwrap_or_else(|_| error_response(&EngineError::Stopped))
}

/// A background metadata scan read `BACKGROUND_SCAN_CHUNK_ENTRIES` at a time, the task queue
/// yielding to the core's foreground queue between two pieces, and answered as one page: a
/// page of 1,000 read at once held the core for about 300 µs (the mover's scans, every step of
/// a layout change, on the cores that serve GETs). The pieces are separate LMDB reads, so the
/// page is not one snapshot; no scan's page is across replicas either, and a key written
/// meanwhile is found by the next step's scan as by the next page's.
async fn scan_in_chunks(store: &Store<GlommioDisk>, request: Request) -> Response {
    let (Request::MetaScan {
        start_after, limit, ..
    }
    | Request::MetaScanVersioned {
        start_after, limit, ..
    }) = &request
    else {
        unreachable!("called with scans only");
    };
    if *limit == 0 || *limit > SCAN_ENTRIES_MAX {
        // Refused as a whole (the store's check).
        return dispatch_one(store, request).await;
    }
    let limit = *limit;
    let mut start_after = start_after.clone();
    let mut page: Option<Response> = None;
    loop {
        let taken = page.as_ref().map_or(0, page_len);
        // The same scan from where the page got to, for one piece.
        let mut piece = request.clone();
        if let Request::MetaScan {
            start_after: from,
            limit: want,
            ..
        }
        | Request::MetaScanVersioned {
            start_after: from,
            limit: want,
            ..
        } = &mut piece
        {
            *from = start_after.take();
            *want = (limit - taken).min(BACKGROUND_SCAN_CHUNK_ENTRIES);
        }
        let piece = Box::pin(dispatch_one(store, piece)).await;
        page = Some(match (page, piece) {
            (None, first) => first,
            (
                Some(Response::Scan { mut entries, .. }),
                Response::Scan {
                    entries: more,
                    next_start_after,
                },
            ) => {
                entries.extend(more);
                Response::Scan {
                    entries,
                    next_start_after,
                }
            }
            (
                Some(Response::ScanVersioned { mut entries, .. }),
                Response::ScanVersioned {
                    entries: more,
                    next_start_after,
                },
            ) => {
                entries.extend(more);
                Response::ScanVersioned {
                    entries,
                    next_start_after,
                }
            }
            // An error (a damaged value, LMDB): the page is not answered in part.
            (Some(_), error) => return error,
        });
        let page_ref = page.as_ref().expect("just set");
        match page_ref.next_start_after().cloned() {
            Some(next) if page_len(page_ref) < limit => start_after = Some(next),
            _ => return page.expect("just set"),
        }
        glommio::executor().yield_task_queue_now().await;
    }
}

/// Entries in a scan's answer (0 for any other answer).
fn page_len(page: &Response) -> u32 {
    let n = match page {
        Response::Scan { entries, .. } => entries.len(),
        Response::ScanVersioned { entries, .. } => entries.len(),
        _ => 0,
    };
    n as u32
}

/// Convenience for callers: a fragment id from a u128.
pub fn fragment_id(v: u128) -> FragmentId {
    FragmentId(v.to_le_bytes())
}

/// Convenience: a `Bytes` key.
pub fn key(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
