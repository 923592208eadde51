//! The gateway's view of the storage cores: routing a request to the cores that own it, quorum
//! metadata reads and writes, fragment writes with a write quorum, reads that skip cores known
//! to be down. Cores are reached in-process (`engine::CoreHandle`) or over TCP (`remote`), with
//! the same `proto` messages; payloads stay `Bytes` end to end.
//!
//! Two routers:
//! - **Node** (`Backend::new`, `percore serve` without a layout): rendezvous hashing over this
//!   node's cores by the record's route key (`stable_hash`, pinned: existing data directories
//!   keep their routing).
//! - **Layout** (`Backend::cluster`): `placement`'s PG of (bucket, key) and the PG's ordered
//!   core list for the policy (see placement/README.md). Metadata records live on the first
//!   `meta_replicas` cores of the PG's list (distinct zones when the layout has them).
//!
//! Quorums (cluster/DESIGN.md, "Routing, quorums, repair"): a metadata write needs W = ⌊n/2⌋ + 1 of its n replicas,
//! a read R = n − W + 1, so every read overlaps every acknowledged write; the newest HLC wins,
//! tombstones included, and a replica seen stale by a read is repaired on the spot. Fragments:
//! replicas need W of n; an EC k+m stripe needs k shards durable (k + 1 when k = m), MinIO's
//! rule, so one zone of a 3-zone EC 4+2 cluster may be down and writes continue. Writes that
//! miss a core leave a hint record on the cores that took them (`hints`), which the repair
//! task replays when the core is back.
//!
//! Seams for the deterministic simulation (cluster/tests/sim): a core may also be reached
//! through any [`CoreLink`] and time read from any [`Clock`] (`Backend::with_links`); the real
//! in-process and TCP links and the system clock are untouched by them.

use std::collections::{BTreeMap, VecDeque};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use engine::CoreHandle;
use placement::{ClassPolicy, Layout};
use proto::{ErrorCode, FragmentId, MetaEntry, MetaVersion, MetaWrite, Request, Response};

use crate::ec::Policy;
use crate::limits::{
    CONDITIONAL_WAIT_MAX, CORE_DOWN_FOR, HANDOFF_WAIT_POLL, NO_LEASE_WAIT_POLL, SCAN_BATCH_MAX,
};
use crate::moves::{Choice, Cores, Placement, Transition};
use crate::remote::{RemoteCore, RemoteError};

/// Errors from the storage side, mapped to S3 codes once in `s3.rs`.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("not found")]
    NotFound,
    #[error("storage is full")]
    NoSpace,
    #[error("storage core error {code:?}: {message}")]
    Core { code: ErrorCode, message: String },
    #[error("engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("unexpected response from a core")]
    Protocol,
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("core {core} is down (a call failed less than {CORE_DOWN_FOR:?} ago)")]
    Down { core: String },
    /// The core runs but started offline: its partition is damaged (`reason` says how).
    #[error("core {core} is offline: {reason}")]
    Offline { core: String, reason: String },
    /// A conditional write's serializer holds no lease (cluster/DESIGN.md, "Failover of
    /// conditional writes"): nothing was written.
    #[error(
        "core {core} holds no lease to serialize conditional writes (cut off from the control \
         plane's leader, or demoted)"
    )]
    NoLease { core: String },
    #[error("{what}: {got} of {of} cores succeeded, {need} needed (last error: {last})")]
    Quorum {
        what: &'static str,
        got: usize,
        need: usize,
        of: usize,
        last: String,
    },
}

impl BackendError {
    /// Whether the core answered that the record is missing or failed its checks (as
    /// opposed to not answering): a repair can rewrite it there.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            BackendError::NotFound
                | BackendError::Core {
                    code: ErrorCode::Corrupt,
                    ..
                }
        )
    }

    /// Whether the error says the core is unreachable or offline (as opposed to an answer
    /// from it about this request): the core is then skipped for a while.
    fn is_transport(&self) -> bool {
        matches!(
            self,
            BackendError::Offline { .. }
                | BackendError::Remote(
                    RemoteError::Unreachable { .. }
                        | RemoteError::Timeout { .. }
                        | RemoteError::Protocol { .. }
                )
        )
    }
}

/// What a record is routed by.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// The bucket's record.
    Bucket(&'a str),
    /// The bucket's ordered listing index (one PG per bucket: a page merges its replicas only,
    /// whatever the size of the cluster).
    Listing(&'a str),
    /// An object's records and data.
    Object(&'a str, &'a str),
}

/// `tag` ‖ parts: a node-router route key.
fn tagged(tag: u8, parts: &[&[u8]]) -> Bytes {
    let mut k = BytesMut::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.put_u8(tag);
    for p in parts {
        k.put_slice(p);
    }
    k.freeze()
}

impl Route<'_> {
    /// The route key of the node router: the bytes its rendezvous hash has always used (the
    /// bucket record's, the listing prefix's and the object head's metadata keys, whose
    /// layout the object service owns; pinned here so routing never changes under data).
    fn node_key(self) -> Bytes {
        match self {
            Route::Bucket(b) => tagged(b'B', &[b.as_bytes()]),
            Route::Listing(b) => tagged(b'L', &[b.as_bytes()]),
            Route::Object(b, k) => tagged(b'O', &[b.as_bytes(), b"\0", k.as_bytes()]),
        }
    }

    /// The PG on a cluster. A bucket's record hashes as key `bucket` of the empty bucket and
    /// its listing index as the empty key of the bucket: neither is an object's (bucket, key)
    /// (bucket names and keys are never empty).
    pub fn pg(self, layout: &Layout) -> u32 {
        match self {
            Route::Bucket(b) => layout.pg_of(b"", b.as_bytes()),
            Route::Listing(b) => layout.pg_of(b.as_bytes(), b""),
            Route::Object(b, k) => layout.pg_of(b.as_bytes(), k.as_bytes()),
        }
    }
}

enum Link {
    Local(CoreHandle),
    Remote(RemoteCore),
    /// Any other way to a core (the simulation's network).
    Other(Arc<dyn CoreLink>),
    /// A core of a node removed from the layout (`NodeSpec::removed`): it keeps its number,
    /// nothing connects to it, every call answers `Down`.
    Gone,
}

/// A way to reach one core other than in-process or over TCP: the deterministic simulation's
/// network. A failure to reach the core is reported as `BackendError::Remote` with
/// `RemoteError::Unreachable` or `Timeout`, which marks the core down as a TCP failure would.
pub trait CoreLink: Send + Sync {
    fn call(
        &self,
        request: Request,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, BackendError>> + Send + Sync>,
    >;
}

/// Where a backend reads time when it is not the system's (the simulation's clock, with a
/// skew per gateway).
pub trait Clock: Send + Sync {
    /// Milliseconds since the backend started (down marks).
    fn elapsed_ms(&self) -> u64;
    /// The physical part of a new HLC, in `crate::hlc::physical_now`'s units.
    fn hlc_physical(&self) -> u64;
    /// What keeps ids minted at equal HLCs by two gateways apart (`Backend::id_salt`).
    fn id_salt(&self) -> u64;
}

struct Core {
    link: Link,
    /// `node/index` for messages.
    name: String,
    /// Milliseconds since `Backend::started` until which calls skip this core.
    down_until_ms: AtomicU64,
    /// Why the core said it is offline, in its last answer (cleared by any other answer).
    offline: std::sync::Mutex<Option<String>>,
    /// Whether `offline` holds a reason (read without the lock on every answer).
    offline_seen: std::sync::atomic::AtomicBool,
    /// The core's build predates `MetaPair` and `PutPaired` (it refused one as an unknown
    /// kind): its pairs go as separate writes (`send_split`). Cleared when a call to it fails
    /// in transport (`call_core`): it may restart on a newer build, as in a rolling upgrade.
    lacks_pairs: std::sync::atomic::AtomicBool,
}

impl Core {
    /// One request on this core's link, without the backend's bookkeeping (down marks,
    /// offline answers): `Backend::call_core`, and repairs sent without waiting. Over TCP, a
    /// non-zero `epoch` (`Backend::stamp_epoch`) is sent with the request (`Request::Fenced`).
    async fn send(&self, request: Request, epoch: u64) -> Result<Response, BackendError> {
        match &self.link {
            Link::Local(h) => h.call(request).await.map_err(BackendError::from),
            Link::Remote(r) if epoch > 0 => {
                let fenced = Request::Fenced {
                    epoch,
                    request: Box::new(request),
                };
                r.call(&fenced).await.map_err(BackendError::from)
            }
            Link::Remote(r) => r.call(&request).await.map_err(BackendError::from),
            Link::Other(l) => l.call(request).await,
            Link::Gone => Err(BackendError::Down {
                core: format!("{} (its node was removed from the layout)", self.name),
            }),
        }
    }
}

impl Core {
    fn new(link: Link, name: String) -> Core {
        Core {
            link,
            name,
            down_until_ms: AtomicU64::new(0),
            offline: std::sync::Mutex::new(None),
            offline_seen: std::sync::atomic::AtomicBool::new(false),
            lacks_pairs: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `send` of a pair (`MetaPair`, `PutPaired`), said in kinds an older build knows where
    /// this core's build refused them: a rolling upgrade's nodes of the build before keep
    /// taking writes (and are not marked down for a refusal). Called boxed (`call_core`), so
    /// its state stays out of every other call's future.
    async fn send_pair(&self, request: Request, epoch: u64) -> Result<Response, BackendError> {
        if self.lacks_pairs.load(Ordering::Relaxed) {
            return self.send_split(request, epoch).await;
        }
        // Cheap: the pair's byte fields are shared, not copied.
        let result = self.send(request.clone(), epoch).await;
        match &result {
            Err(BackendError::Remote(RemoteError::UnknownKind { kind, .. }))
                if *kind == proto::K_META_PAIR || *kind == proto::K_PUT_PAIRED =>
            {
                if !self.lacks_pairs.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        core = %self.name,
                        kind,
                        "the core's build predates paired writes: they go to it as separate writes"
                    );
                }
                self.send_split(request, epoch).await
            }
            _ => result,
        }
    }

    /// A pair's writes as requests of kinds every build knows, one after the other: the
    /// fragment, `first`, then `second` (the order the object layer wrote them in before
    /// pairs: a head before its listing entry, an entry's removal before its head's). On this
    /// core they are not one record, as they were not in those builds. Answered as the pair
    /// is: `Swapped` for `first` (a `MetaSwap` for a put; for a delete, the versions read
    /// around it), or the first error answer.
    async fn send_split(&self, request: Request, epoch: u64) -> Result<Response, BackendError> {
        let (background, plain) = match request {
            Request::Background(inner) => (true, *inner),
            plain => (false, plain),
        };
        let send = |r: Request| {
            let r = if background {
                Request::Background(Box::new(r))
            } else {
                r
            };
            self.send(r, epoch)
        };
        let (fragment, first, second, hlc) = match plain {
            Request::MetaPair { first, second, hlc } => (None, first, second, hlc),
            Request::PutPaired {
                id,
                data,
                first,
                second,
                hlc,
            } => (Some((id, data)), first, second, hlc),
            other => return send(other).await,
        };
        if let Some((id, data)) = fragment {
            match send(Request::PutFragment { id, data }).await? {
                Response::Done => {}
                other => return Ok(other),
            }
        }
        let answer = match first {
            MetaWrite::Put { key, value } => send(Request::MetaSwap { key, value, hlc }).await?,
            MetaWrite::Delete { key } => {
                let previous = match send(Request::MetaGetVersioned { key: key.clone() }).await? {
                    Response::MetaVersioned(v) => v,
                    other => return Ok(other),
                };
                let removal = Request::MetaDelete {
                    key: key.clone(),
                    hlc,
                };
                match send(removal).await? {
                    Response::Done => {}
                    other => return Ok(other),
                }
                // Won: the key's version is now this tombstone (a later write may have beaten
                // it since; then it reads as lost, as a swap after that write would).
                match send(Request::MetaGetVersioned { key }).await? {
                    Response::MetaVersioned(after) => Response::Swapped {
                        won: after.is_some_and(|v| v.deleted && v.hlc == hlc),
                        previous,
                    },
                    other => return Ok(other),
                }
            }
        };
        if !matches!(answer, Response::Swapped { .. }) {
            return Ok(answer);
        }
        let second = match second {
            MetaWrite::Put { key, value } => Request::MetaPut { key, value, hlc },
            MetaWrite::Delete { key } => Request::MetaDelete { key, hlc },
        };
        match send(second).await? {
            Response::Done => Ok(answer),
            other => Ok(other),
        }
    }
}

/// Whether `request` is a pair (`MetaPair`, `PutPaired`), sent as background work or not.
fn is_pair(request: &Request) -> bool {
    match request {
        Request::Background(inner) => is_pair(inner),
        Request::MetaPair { .. } | Request::PutPaired { .. } => true,
        _ => false,
    }
}

#[derive(Clone)]
enum Router {
    Node,
    Layout(Arc<Layout>),
}

/// What a layout change replaces while the backend serves (`begin_change`, `finish_change`):
/// the cores, how routes map to them, and the change routed by. A call reads it once; core
/// indices keep their meaning from one view to the next (a change appends the cores only the
/// new layout has, and `Transition::new` refuses one that would renumber them).
pub(crate) struct View {
    cores: Vec<Arc<Core>>,
    router: Router,
    /// The layout version frames are stamped with (0: a single node without a layout).
    layout_version: u64,
    /// The layout change in progress, which `place` routes by.
    pub(crate) transition: Option<Arc<Transition>>,
    /// The change that ended last (`adopt`): a fragment hint for a position it gave away is
    /// dropped, not replayed, after the change too.
    last_change: Option<Arc<Transition>>,
}

impl View {
    /// Whether operations routed by this view are held until they end: a layout's, outside a
    /// change (the node router never changes; a change counts its operations per group).
    pub(crate) fn holdable(&self) -> bool {
        self.transition.is_none() && matches!(self.router, Router::Layout(_))
    }
}

/// What `Backend::begin_change` replaced: the operations routed by the view before it
/// (`Placement`s made outside a change hold it) still in flight.
pub struct Replaced(Arc<View>);

impl Replaced {
    /// Operations routed by the replaced view not finished yet (and, for an instant, calls
    /// reading it).
    pub fn in_flight(&self) -> usize {
        Arc::strong_count(&self.0) - 1
    }
}

pub struct Backend {
    view: arc_swap::ArcSwap<View>,
    hlc_last: AtomicU64,
    /// The STANDARD policy: `ec::node_policy` on one node, the layout's on a cluster.
    policy: ClassPolicy,
    /// Every storage class's policy (the layout's, or `ec::node_class_policy`).
    classes: std::collections::BTreeMap<String, ClassPolicy>,
    /// Copies of every metadata record.
    meta_replicas: usize,
    started: Instant,
    /// The simulation's clock (`with_links`); `None`: the system clock.
    clock: Option<Arc<dyn Clock>>,
    /// The simulation's links to cores a layout change adds (`with_link_maker`), by core index.
    link_maker: Option<LinkMaker>,
    /// How nodes stand for serializing conditional writes (the control map's demotions, set
    /// by the node's map follower; a node not listed serves).
    standing: arc_swap::ArcSwap<BTreeMap<u64, Standing>>,
    /// Bumped by each new standing; conditional writes in flight by the parity of the one
    /// they chose under (`enter_standing`).
    standing_gen: AtomicU64,
    standing_in_flight: [AtomicU32; 2],
    /// This node's gate (`route_under_gate`; none on a pure gateway or a single node).
    gate: std::sync::OnceLock<Arc<engine::LayoutGate>>,
    /// How this process takes a newer control map from a node that refused its frame
    /// (`catch_up_with`; none without a control plane).
    catch_up: std::sync::OnceLock<Arc<dyn CatchUp>>,
    /// The highest map index fetched from a refusing node so far: concurrent refusals naming
    /// the same index fetch it once.
    map_fetched: AtomicU64,
    /// The routing epoch frames to other processes' cores carry (`stamp_epoch`; 0: none).
    epoch: AtomicU64,
}

/// A process's way to the control map it follows, for a node that refused one of its frames
/// as routed by an old layout (`RemoteError::LayoutMismatch`): the node answers its own map
/// (`Request::ControlMap`), sealed with the cluster secret, and the process applies it as
/// its follower would, without waiting for the voters (control/DESIGN.md, "How nodes follow
/// the map").
pub trait CatchUp: Send + Sync {
    /// The log index of the map this process has applied.
    fn applied(&self) -> u64;
    /// Takes a sealed map a node answered, to be applied like one from the voters: its
    /// index, or why it was not taken (it does not verify under this process's secret).
    fn offer(&self, sealed: &[u8]) -> Result<u64, String>;
}

/// How a node stands for serializing conditional writes (`Backend::standing_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its cores serialize the groups whose row they head.
    Serves,
    /// Demoted: the next core of the row serializes.
    Skipped,
    /// On its way back from a demotion: the groups whose row it heads wait.
    Waits,
}

/// A conditional write counted under the standing it chose its serializer by.
struct StandingGuard<'a>(&'a AtomicU32);

impl Drop for StandingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Makes the link to a core by its index (the simulation's network).
pub type LinkMaker = Arc<dyn Fn(usize) -> Arc<dyn CoreLink> + Send + Sync>;

tokio::task_local! {
    /// Set while background work runs (`in_background`): its requests go to the cores'
    /// low-share task queue.
    static BACKGROUND: bool;
}

/// Runs `work` as background work: every core request it makes (directly, not from tasks it
/// spawns) is sent as `Request::Background`, which the core runs in its low-share task queue.
/// The lifecycle pass, the repair pass and restores run this way.
pub async fn in_background<F: std::future::Future>(work: F) -> F::Output {
    BACKGROUND.scope(true, work).await
}

tokio::task_local! {
    /// The highest control-map index a node named while refusing one of this operation's
    /// frames as routed by an old layout (0: none), for `noting_refusals`.
    static REFUSED_AT: Arc<AtomicU64>;
}

/// Runs `op`, noting whether a node refused one of its frames as routed by an old layout:
/// `Some(index)` of the map that node named. This process fetches that map from the node
/// while the refused call returns (`catch_up_from`); once it has applied it
/// (`Backend::caught_up`), the same operation run again is routed by it. Frames of tasks that
/// `op` spawns are not noted.
pub fn noting_refusals<F: std::future::Future>(
    op: F,
) -> impl std::future::Future<Output = (F::Output, Option<u64>)> {
    use futures::FutureExt;
    // A combinator, not an async block: one that took `op` would hold it twice (an S3
    // request's future is about 16 KiB).
    let at = Arc::new(AtomicU64::new(0));
    REFUSED_AT.scope(Arc::clone(&at), op).map(move |out| {
        let at = at.load(Ordering::Relaxed);
        (out, (at > 0).then_some(at))
    })
}

/// What a write that reports what it replaced found (`Backend::meta_swap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    /// Every replica that took the write holds it as the record's current version (false: a
    /// write with a newer HLC reached one of them first, and wins everywhere in the end).
    pub won: bool,
    /// The newest version the replicas that took the write held just before it (a write
    /// quorum overlaps every acknowledged write, so this is the last acknowledged one unless
    /// a write raced this one), or the newer version that beat it.
    pub previous: Option<MetaVersion>,
}

/// Metadata calls this process made since it started, by kind: each is one round trip to a
/// record's replicas (a scan counts once per page). Read by `/-/metrics`; the figures the
/// layers issue gives per PUT are deltas of these.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MetaCalls {
    pub gets: u64,
    pub puts: u64,
    pub conditional_puts: u64,
    pub deletes: u64,
    pub scans: u64,
    /// Metadata writes that carried an object's data too (`Backend::put_paired`).
    pub puts_with_data: u64,
}

static META_CALLS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
const CALL_GET: usize = 0;
const CALL_PUT: usize = 1;
const CALL_PUT_IF: usize = 2;
const CALL_DELETE: usize = 3;
const CALL_SCAN: usize = 4;
const CALL_PUT_WITH_DATA: usize = 5;

fn count_call(kind: usize) {
    META_CALLS[kind].fetch_add(1, Ordering::Relaxed);
}

/// The metadata calls this process made so far (all its backends together).
pub fn meta_calls() -> MetaCalls {
    let get = |k: usize| META_CALLS[k].load(Ordering::Relaxed);
    MetaCalls {
        gets: get(CALL_GET),
        puts: get(CALL_PUT),
        conditional_puts: get(CALL_PUT_IF),
        deletes: get(CALL_DELETE),
        scans: get(CALL_SCAN),
        puts_with_data: get(CALL_PUT_WITH_DATA),
    }
}

/// W of n: a majority.
pub fn write_quorum(n: usize) -> usize {
    n / 2 + 1
}

/// R of n: overlaps every write quorum.
pub fn read_quorum(n: usize) -> usize {
    n + 1 - write_quorum(n)
}

/// Shards of an EC k+m stripe that must be durable before a PUT is acknowledged.
pub fn ec_write_quorum(k: u8, m: u8) -> usize {
    usize::from(k) + usize::from(k == m)
}

/// Orders two versions of a record as every core does (`engine::meta`): by HLC, then a value
/// above a tombstone, then by value bytes.
fn newer(a: &MetaVersion, b: &MetaVersion) -> bool {
    (a.hlc, !a.deleted, &a.value) > (b.hlc, !b.deleted, &b.value)
}

/// 64-bit FNV-1a: stable across processes, versions and machines (routing must never change
/// under existing data).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Final avalanche (SplitMix64 finalizer) so nearby keys spread over cores.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The results of one request sent to several cores.
pub(crate) struct Fanned {
    pub(crate) ok: Vec<(usize, Response)>,
    pub(crate) failed: Vec<(usize, BackendError)>,
}

impl Fanned {
    fn last_error(&self) -> String {
        self.failed
            .last()
            .map_or_else(|| "none".to_owned(), |(_, e)| e.to_string())
    }

    /// Ok when every replica set of `sets` has a write quorum of its cores that answered
    /// `Done` (one set, or two during a layout change, see `moves`); a quorum lost to full
    /// disks is NoSpace.
    pub(crate) fn write_quorum_sets(
        &self,
        what: &'static str,
        sets: &[&[usize]],
    ) -> Result<(), BackendError> {
        for set in sets {
            let need = write_quorum(set.len());
            self.done_quorum_in(what, need, set.len(), |c| set.contains(&c))?;
        }
        Ok(())
    }

    /// Ok when at least `need` of the cores `member` accepts answered `Done`.
    fn done_quorum_in(
        &self,
        what: &'static str,
        need: usize,
        of: usize,
        member: impl Fn(usize) -> bool,
    ) -> Result<(), BackendError> {
        let done = self
            .ok
            .iter()
            .filter(|(c, r)| member(*c) && matches!(r, Response::Done))
            .count();
        if done >= need {
            return Ok(());
        }
        Err(self.quorum_error(what, done, need, of))
    }

    /// Why `got` of `of` answers fell short of `need`: NoSpace when a core was full (the
    /// caller answers 507, not 503), else the quorum with the last error seen.
    pub(crate) fn quorum_error(
        &self,
        what: &'static str,
        got: usize,
        need: usize,
        of: usize,
    ) -> BackendError {
        let full = self.ok.iter().any(|(_, r)| {
            matches!(
                r,
                Response::Error {
                    code: ErrorCode::NoSpace,
                    ..
                }
            )
        }) || self
            .failed
            .iter()
            .any(|(_, e)| matches!(e, BackendError::NoSpace));
        if full {
            return BackendError::NoSpace;
        }
        let last = self
            .ok
            .iter()
            .find(|(_, r)| !matches!(r, Response::Done))
            .map_or_else(|| self.last_error(), |(_, r)| format!("{r:?}"));
        BackendError::Quorum {
            what,
            got,
            need,
            of,
            last,
        }
    }

    /// The first core that answered `Done`.
    /// Up to `n` of the cores that answered `Done`, in the order of the cores written.
    pub(crate) fn done(&self, n: usize) -> Vec<usize> {
        self.ok
            .iter()
            .filter(|(_, r)| matches!(r, Response::Done))
            .map(|(c, _)| *c)
            .take(n)
            .collect()
    }

    /// The cores that did not answer `Done`.
    pub(crate) fn missed(&self) -> Vec<usize> {
        let mut m: Vec<usize> = self.failed.iter().map(|(c, _)| *c).collect();
        m.extend(
            self.ok
                .iter()
                .filter(|(_, r)| !matches!(r, Response::Done))
                .map(|(c, _)| *c),
        );
        m
    }
}

fn core_error(r: Response) -> BackendError {
    match r {
        Response::Error {
            code: ErrorCode::NotFound,
            ..
        } => BackendError::NotFound,
        Response::Error {
            code: ErrorCode::NoSpace,
            ..
        } => BackendError::NoSpace,
        Response::Error { code, message } => BackendError::Core { code, message },
        _ => BackendError::Protocol,
    }
}

/// One replica's side of a merged scan.
struct ScanStream {
    core: usize,
    buffered: VecDeque<(Bytes, MetaVersion)>,
    cursor: Option<Bytes>,
    done: bool,
}

/// What a merged scan needs to keep hearing from: its quorum, the replica sets of a
/// cluster-wide one, how many cores it scans.
struct Need<'a> {
    quorum: ScanQuorum,
    sets: Option<&'a [Vec<usize>]>,
    scanned: usize,
    /// Whether tombstones are returned (the mover copies them), not only live records.
    tombstones: bool,
}

/// Which replicas a merged scan must keep hearing from (`Backend::scan_merged`).
#[derive(Clone, Copy)]
enum ScanQuorum {
    /// A read quorum of the cores scanned, which are one record set's replicas (`meta_scan`).
    Replicas,
    /// A read quorum of every metadata replica set of the cluster (`meta_scan_all`): the cores
    /// scanned are all of them, and the scan does not know which set a record belongs to.
    EverySet,
    /// A read quorum of each of the given replica sets (`Need::sets`): the two replica sets of a
    /// placement group during a layout change (`moves`), or one set whose cores hold records of
    /// other groups too (the mover's scans). Repairs like `EverySet`: only cores holding an
    /// older version.
    Sets,
}

impl Backend {
    /// One node: its cores in-process, routed by the node router.
    pub fn new(cores: Vec<CoreHandle>) -> Backend {
        assert!(!cores.is_empty(), "a node has at least one core");
        let n = cores.len();
        Backend {
            policy: crate::ec::node_policy(n),
            classes: placement::policy::DEFAULT_CLASSES
                .iter()
                .map(|c| ((*c).to_owned(), crate::ec::node_class_policy(c, n)))
                .collect(),
            meta_replicas: n.min(3),
            view: arc_swap::ArcSwap::from_pointee(View {
                cores: cores
                    .into_iter()
                    .enumerate()
                    .map(|(i, h)| Arc::new(Core::new(Link::Local(h), format!("core {i}"))))
                    .collect(),
                router: Router::Node,
                layout_version: 0,
                transition: None,
                last_change: None,
            }),
            hlc_last: AtomicU64::new(0),
            started: Instant::now(),
            clock: None,
            link_maker: None,
            standing: arc_swap::ArcSwap::default(),
            standing_gen: AtomicU64::new(0),
            standing_in_flight: [AtomicU32::new(0), AtomicU32::new(0)],
            gate: std::sync::OnceLock::new(),
            catch_up: std::sync::OnceLock::new(),
            map_fetched: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        }
    }

    /// A cluster node or pure gateway: every core of `layout`. The cores of node `local_node`
    /// are reached in-process through `local` (that node's handles in core-index order), every
    /// other core over TCP at its layout endpoint, frames stamped with the layout's version.
    pub fn cluster(
        layout: Arc<Layout>,
        local_node: Option<u64>,
        local: Vec<CoreHandle>,
    ) -> Result<Backend, String> {
        if let Some(id) = local_node {
            let own = layout
                .cores()
                .iter()
                .filter(|c| layout.nodes()[c.node as usize].id == id)
                .count();
            if own == 0 {
                return Err(format!(
                    "node {id} is not in layout version {}",
                    layout.version()
                ));
            }
            if own != local.len() {
                return Err(format!(
                    "node {id} has {own} cores in the layout but {} were started",
                    local.len()
                ));
            }
        } else if !local.is_empty() {
            return Err("local cores need the id of their node".into());
        }
        // By core index: a node's indices need not be contiguous (`[[node.core]]` tables).
        let mut local: std::collections::BTreeMap<u32, CoreHandle> =
            local.into_iter().map(|h| (h.index(), h)).collect();
        let mut cores = Vec::with_capacity(layout.cores().len());
        for c in layout.cores() {
            cores.push(Arc::new(layout_core(&layout, c, local_node, &mut local)?));
        }
        Backend::of_layout(layout, cores)
    }

    /// A gateway during a layout change: every core of `transition`'s old and new layouts
    /// (`Transition::cores`: the old layout's in its order, then those only the new one has),
    /// frames stamped with the version of the layout each core is taken from. The plain calls
    /// route by the old layout; `place` routes by both (see `moves`).
    pub fn moving(
        transition: Arc<Transition>,
        local_node: Option<u64>,
        local: Vec<CoreHandle>,
    ) -> Result<Backend, String> {
        if local_node.is_none() && !local.is_empty() {
            return Err("local cores need the id of their node".into());
        }
        let mut local: std::collections::BTreeMap<u32, CoreHandle> =
            local.into_iter().map(|h| (h.index(), h)).collect();
        let (old, new) = (transition.old_layout(), transition.new_layout());
        let mut cores = Vec::with_capacity(transition.cores().len());
        for id in transition.cores() {
            let layout = if old.core_index(*id).is_some() {
                old
            } else {
                new
            };
            let c = &layout.cores()[layout.core_index(*id).expect("a core of the union")];
            cores.push(Arc::new(layout_core(layout, c, local_node, &mut local)?));
        }
        if !local.is_empty() {
            return Err(format!(
                "{} local cores are in neither layout version",
                local.len()
            ));
        }
        out_of_reach(&mut cores, &transition);
        let backend = Backend::of_layout(old.clone(), cores)?;
        let view = backend.view.load_full();
        backend.view.store(Arc::new(View {
            cores: view.cores.clone(),
            router: Router::Layout(old.clone()),
            layout_version: view.layout_version,
            transition: Some(transition),
            last_change: None,
        }));
        Ok(backend)
    }

    /// The backend of `layout` over `cores` (one per layout core, in its order, or more).
    fn of_layout(layout: Arc<Layout>, cores: Vec<Arc<Core>>) -> Result<Backend, String> {
        let policy = layout
            .policies()
            .get("STANDARD")
            .cloned()
            .ok_or("the layout has no STANDARD policy")?;
        let depth = layout
            .table(policy.tier)
            .ok_or_else(|| format!("no PG table for tier {}", policy.tier))?
            .depth();
        Ok(Backend {
            meta_replicas: depth.min(3),
            classes: layout.policies().clone(),
            policy,
            view: arc_swap::ArcSwap::from_pointee(View {
                cores,
                layout_version: layout.version(),
                router: Router::Layout(layout),
                transition: None,
                last_change: None,
            }),
            hlc_last: AtomicU64::new(0),
            started: Instant::now(),
            clock: None,
            link_maker: None,
            standing: arc_swap::ArcSwap::default(),
            standing_gen: AtomicU64::new(0),
            standing_in_flight: [AtomicU32::new(0), AtomicU32::new(0)],
            gate: std::sync::OnceLock::new(),
            catch_up: std::sync::OnceLock::new(),
            map_fetched: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        })
    }

    /// What keeps ids this gateway mints from an HLC (bucket incarnations) apart from another
    /// gateway's minted at an equal HLC: random per process, or the simulation clock's (so a
    /// seed replays exactly).
    pub fn id_salt(&self) -> u64 {
        static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        match &self.clock {
            Some(clock) => clock.id_salt(),
            None => *PROCESS.get_or_init(|| {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u32(std::process::id());
                h.finish()
            }),
        }
    }

    /// The same backend with every core reached through `links` (one per core, in the
    /// layout's core order) and time read from `clock`: the deterministic simulation's seam.
    pub fn with_links(mut self, links: Vec<Arc<dyn CoreLink>>, clock: Arc<dyn Clock>) -> Backend {
        let view = self.view.load_full();
        assert_eq!(links.len(), view.cores.len(), "one link per core");
        let cores = (view.cores.iter().zip(links))
            .map(|(core, link)| match core.link {
                // A removed node's core stays out of reach.
                Link::Gone => core.clone(),
                _ => Arc::new(Core::new(Link::Other(link), core.name.clone())),
            })
            .collect();
        self.view.store(Arc::new(View {
            cores,
            router: view.router.clone(),
            layout_version: view.layout_version,
            transition: view.transition.clone(),
            last_change: view.last_change.clone(),
        }));
        self.clock = Some(clock);
        self
    }

    /// `with_links` with every core's link made by `maker`, which also makes the links of the
    /// cores a layout change adds (`begin_change`, `adopt`).
    pub fn with_link_maker(mut self, maker: LinkMaker, clock: Arc<dyn Clock>) -> Backend {
        let links = (0..self.core_count()).map(|i| maker(i)).collect();
        self.link_maker = Some(maker);
        self.with_links(links, clock)
    }

    /// The core `c` of `layout` at index `index`, added by a layout change.
    fn added_core(
        &self,
        layout: &Layout,
        c: &placement::Core,
        index: usize,
        local_node: Option<u64>,
        local: &mut std::collections::BTreeMap<u32, CoreHandle>,
    ) -> Result<Arc<Core>, String> {
        Ok(Arc::new(match &self.link_maker {
            Some(_) if layout.nodes()[c.node as usize].removed => {
                Core::new(Link::Gone, c.id.to_string())
            }
            Some(make) => Core::new(Link::Other(make(index)), c.id.to_string()),
            None => layout_core(layout, c, local_node, local)?,
        }))
    }

    pub fn core_count(&self) -> usize {
        self.view.load().cores.len()
    }

    /// The layout version frames are stamped with (0: a single node without a layout).
    pub fn layout_version(&self) -> u64 {
        self.view.load().layout_version
    }

    /// The layout this backend routes by alone (a change in progress: its old one); `None`
    /// on a single node.
    pub fn layout(&self) -> Option<Arc<Layout>> {
        match &self.view.load().router {
            Router::Layout(l) => Some(l.clone()),
            Router::Node => None,
        }
    }

    /// The layout change this backend routes by, if one is in progress.
    pub fn transition(&self) -> Option<Arc<Transition>> {
        self.view.load().transition.clone()
    }

    /// The change in progress, else the one that ended last.
    pub(crate) fn last_transition(&self) -> Option<Arc<Transition>> {
        let view = self.view.load();
        view.transition.clone().or_else(|| view.last_change.clone())
    }

    pub(crate) fn view(&self) -> arc_swap::Guard<Arc<View>> {
        self.view.load()
    }

    /// Starts routing by `transition` while serving (a node or gateway that learned of a
    /// committed layout change): this backend routes by its old layout (or by its new one: a
    /// node started with the new layout to join the change). The
    /// cores only the new layout has are added after the others (this node's own from
    /// `local`, the rest over TCP stamped with the new version). Every group starts
    /// `Pending`, routed as before; the operations routed before the change are not counted
    /// in any group, so the caller waits for `Replaced::in_flight` to reach zero before it
    /// lets a group move (the fence of `moves`). Starting the change already routed by is
    /// accepted and replaces nothing.
    pub fn begin_change(
        &self,
        transition: Arc<Transition>,
        local_node: Option<u64>,
        local: Vec<CoreHandle>,
    ) -> Result<Option<Replaced>, String> {
        let view = self.view.load_full();
        if let Some(t) = &view.transition {
            if Arc::ptr_eq(t, &transition) {
                return Ok(None);
            }
            return Err(format!(
                "a layout change to version {} is in progress",
                t.new_layout().version()
            ));
        }
        let (old, new) = (transition.old_layout(), transition.new_layout());
        match &view.router {
            // From the old layout, or from the new one: a node that started with the new
            // layout to join the change (the union numbers the new layout's cores as it does).
            Router::Layout(l) if l.version() == old.version() || l.version() == new.version() => {}
            Router::Layout(l) => {
                return Err(format!(
                    "the change from layout version {} to {} does not start from version {},                      which this gateway routes by",
                    old.version(),
                    new.version(),
                    l.version()
                ))
            }
            Router::Node => return Err("a single node has no layout to change".into()),
        }
        self.check_policies(new)?;
        let union = transition.cores();
        let renumbered = view.cores.len() > union.len()
            || view
                .cores
                .iter()
                .zip(union)
                .any(|(k, id)| k.name != id.to_string());
        if renumbered {
            return Err(format!(
                "this gateway's cores are not numbered as the change from layout version {} to                  {} numbers them",
                old.version(),
                new.version()
            ));
        }
        let mut local: std::collections::BTreeMap<u32, CoreHandle> =
            local.into_iter().map(|h| (h.index(), h)).collect();
        let mut cores = view.cores.clone();
        for id in &union[cores.len()..] {
            let layout = if new.core_index(*id).is_some() {
                new
            } else {
                old
            };
            let c = &layout.cores()[layout.core_index(*id).expect("a core of the union")];
            cores.push(self.added_core(layout, c, cores.len(), local_node, &mut local)?);
        }
        out_of_reach(&mut cores, &transition);
        let previous = self.view.swap(Arc::new(View {
            cores,
            router: Router::Layout(old.clone()),
            layout_version: old.version(),
            transition: Some(transition),
            last_change: None,
        }));
        drop(view);
        Ok(Some(Replaced(previous)))
    }

    /// Stamps the frames to every remote core with `version` from now on (those stamped newer
    /// keep theirs). A process whose change has cut every group over routes each of them as
    /// the new layout does, so it says so: a node that adopted the new layout already, and
    /// refuses frames routed by the old one, takes this process's frames too
    /// (`LayoutFollower::apply`). The version it routes by (`layout_version`) is unchanged.
    pub fn stamp_frames(&self, version: u64) {
        for core in &self.view.load().cores {
            if let Link::Remote(r) = &core.link {
                r.raise_layout_version(version);
            }
        }
    }

    /// The layout version the frames to each remote core are stamped with, in core order.
    pub fn frame_stamps(&self) -> Vec<u64> {
        let view = self.view.load();
        let remote = view.cores.iter().filter_map(|core| match &core.link {
            Link::Remote(r) => Some(r.layout_version()),
            _ => None,
        });
        remote.collect()
    }

    /// Routes by `layout` alone from now on: the end of the change in progress (every group
    /// `Done`), or a newer layout whose cores keep this backend's numbering (a restarted
    /// gateway catching up). Cores that keep their index are kept, frames to them stamped
    /// with the new version from now on; the new layout's other cores are added (this node's
    /// own from `local`); cores past the new layout's are dropped (a call that chose one
    /// before answers `Down`). Adopted outside a change (from a layout's plain view), it
    /// returns that view: the operations routed by it may still be in flight, their frames
    /// to kept cores stamped with the new version from now on, and the caller waits for them
    /// (`Replaced::in_flight`) before it counts the layout as applied.
    pub fn adopt(
        &self,
        layout: Arc<Layout>,
        local_node: Option<u64>,
        local: Vec<CoreHandle>,
    ) -> Result<Option<Replaced>, String> {
        let view = self.view.load_full();
        let same = |i: usize, c: &placement::Core| {
            view.cores
                .get(i)
                .is_some_and(|k| k.name == c.id.to_string())
        };
        self.check_policies(&layout)?;
        let mut local: std::collections::BTreeMap<u32, CoreHandle> =
            local.into_iter().map(|h| (h.index(), h)).collect();
        let mut cores = Vec::with_capacity(layout.cores().len());
        let removed = |c: &placement::Core| layout.nodes()[c.node as usize].removed;
        for (i, c) in layout.cores().iter().enumerate() {
            if same(i, c) && removed(c) {
                // Its node left with this version: nothing connects to it any more.
                cores.push(Arc::new(Core::new(Link::Gone, c.id.to_string())));
            } else if same(i, c) {
                let kept = view.cores[i].clone();
                if let Link::Remote(r) = &kept.link {
                    r.set_layout_version(layout.version());
                }
                if let Link::Local(h) = &kept.link {
                    local.remove(&h.index());
                }
                cores.push(kept);
            } else if view.cores.iter().any(|k| k.name == c.id.to_string()) {
                return Err(format!(
                    "layout version {} numbers core {} otherwise than version {}",
                    layout.version(),
                    c.id,
                    view.layout_version
                ));
            } else {
                cores.push(self.added_core(&layout, c, i, local_node, &mut local)?);
            }
        }
        let last_change = view.transition.clone().or_else(|| view.last_change.clone());
        self.view.store(Arc::new(View {
            cores,
            layout_version: layout.version(),
            router: Router::Layout(layout),
            transition: None,
            last_change,
        }));
        Ok(view.holdable().then(|| Replaced(view)))
    }

    /// A layout this backend can switch to: the same STANDARD policy (the backend's quorums
    /// and copies are fixed at its start).
    fn check_policies(&self, layout: &Layout) -> Result<(), String> {
        match layout.policies().get("STANDARD") {
            Some(p) if *p == self.policy => Ok(()),
            _ => Err(format!(
                "layout version {} changes the STANDARD policy: restart the gateway with it",
                layout.version()
            )),
        }
    }

    /// `node/index` (cluster) or `core i` (single node).
    pub fn core_name(&self, core: usize) -> String {
        self.view
            .load()
            .cores
            .get(core)
            .map_or_else(|| format!("core {core}"), |c| c.name.clone())
    }

    /// Archive classes stored on a faster tier than hdd because this cluster has no hdd
    /// cores (the documented fallback), as a message for operators; `None` when none fell back.
    pub fn fallback_warning(&self) -> Option<String> {
        let fell: Vec<String> = ["GLACIER", "DEEP_ARCHIVE"]
            .iter()
            .filter_map(|c| {
                let p = self.classes.get(*c)?;
                // A tier the layout names for the class is a choice, not a fallback.
                (!p.explicit && p.tier != placement::Tier::Hdd)
                    .then(|| format!("{c} on {}", p.tier))
            })
            .collect();
        (!fell.is_empty()).then(|| {
            format!(
                "no hdd cores: archive classes fall back to a faster tier ({}); they keep their \
                 archive semantics (restore before read)",
                fell.join(", ")
            )
        })
    }

    /// The policy of a storage class (`None`: the class is not defined here).
    pub fn class_policy(&self, class: &str) -> Option<&ClassPolicy> {
        self.classes.get(class)
    }

    /// The first `n` cores of `route`'s list in the PG table of `tier` (the node router has
    /// one tier: `tier` is ignored there).
    pub fn route_in(&self, route: Route<'_>, tier: placement::Tier, n: usize) -> Placement {
        let view = self.view.load();
        if let Some(t) = view.transition.as_ref().filter(|t| t.tier() == tier) {
            return t.place(route, n);
        }
        let mut placement = Placement::row(match &view.router {
            Router::Node => self.route_n(route, n),
            Router::Layout(layout) => {
                let table = layout
                    .table(tier)
                    .expect("every policy's tier has a table (placement::Layout)");
                assert!(
                    n <= table.depth(),
                    "a policy never spans more cores than the table"
                );
                table
                    .row_indices(route.pg(layout), n)
                    .iter()
                    .map(|&i| i as usize)
                    .collect()
            }
        });
        if view.holdable() {
            placement.held = Some(arc_swap::Guard::into_inner(view));
        }
        placement
    }

    /// Copies kept of every metadata record: 3, or every core when there are fewer (one core
    /// keeps one copy; the server warns at start).
    pub fn replicas(&self) -> usize {
        self.meta_replicas
    }

    /// A hybrid logical timestamp greater than every one this gateway issued or saw.
    pub fn hlc(&self) -> u64 {
        let physical = self
            .clock
            .as_ref()
            .map_or_else(crate::hlc::physical_now, |c| c.hlc_physical());
        let mut last = self.hlc_last.load(Ordering::Relaxed);
        loop {
            let next = physical.max(last + 1);
            match self.hlc_last.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The HLC receive rule: a timestamp read from a core moves this gateway's clock past it,
    /// so a write after a read of another gateway's write is ordered after it.
    fn observe(&self, hlc: u64) {
        self.hlc_last.fetch_max(hlc, Ordering::Relaxed);
    }

    /// The cores holding `route`'s metadata records, primary first.
    pub fn meta_cores(&self, route: Route<'_>) -> Placement {
        self.place_meta(route)
    }

    /// The first `n` cores of `route`'s list: fragment i lives on the i-th.
    pub fn route_n(&self, route: Route<'_>, n: usize) -> Vec<usize> {
        let view = self.view.load();
        match &view.router {
            Router::Node => {
                assert!(
                    n <= view.cores.len(),
                    "a policy never spans more cores than the node has"
                );
                let key = route.node_key();
                let mut scored: Vec<(u64, usize)> = (0..view.cores.len())
                    .map(|i| (stable_hash(&[&key, &(i as u32).to_le_bytes()]), i))
                    .collect();
                scored.sort_unstable_by(|a, b| b.cmp(a));
                scored.into_iter().take(n).map(|(_, i)| i).collect()
            }
            Router::Layout(layout) => {
                let table = layout
                    .table(self.policy.tier)
                    .expect("checked in Backend::cluster");
                assert!(
                    n <= table.depth(),
                    "a policy never spans more cores than the table is deep"
                );
                table
                    .row_indices(route.pg(layout), n)
                    .iter()
                    .map(|&i| i as usize)
                    .collect()
            }
        }
    }

    /// The cores this process runs (in-process handles).
    pub fn local_cores(&self) -> Vec<usize> {
        let view = self.view.load();
        (0..view.cores.len())
            .filter(|&i| matches!(view.cores[i].link, Link::Local(_)))
            .collect()
    }

    /// Every core but those of removed nodes.
    pub fn all_cores(&self) -> Vec<usize> {
        let view = self.view.load();
        (0..view.cores.len())
            .filter(|&i| !matches!(view.cores[i].link, Link::Gone))
            .collect()
    }

    /// Whether `core` belongs to a node removed from the layout: it never takes data again.
    pub fn is_gone(&self, core: usize) -> bool {
        self.core(core)
            .is_some_and(|c| matches!(c.link, Link::Gone))
    }

    /// Core `core` of the current view; `None` when a layout change that removed it has ended
    /// (a caller that chose its cores before that).
    fn core(&self, core: usize) -> Option<Arc<Core>> {
        self.view.load().cores.get(core).cloned()
    }

    /// Whether `core` is the one whose thread runs the caller (a node serving HTTP on its
    /// cores): a call to it never leaves the thread.
    fn is_local(&self, core: usize) -> bool {
        self.view
            .load()
            .cores
            .get(core)
            .is_some_and(|c| matches!(&c.link, Link::Local(h) if h.is_current()))
    }

    fn now_ms(&self) -> u64 {
        match &self.clock {
            Some(c) => c.elapsed_ms(),
            None => self.started.elapsed().as_millis() as u64,
        }
    }

    /// Why `core` said it is offline (damaged partition), if that was its last answer.
    pub fn offline_reason(&self, core: usize) -> Option<String> {
        self.core(core)?.offline.lock().ok().and_then(|o| o.clone())
    }

    /// Whether calls currently skip `core` (a call to it failed in the last `CORE_DOWN_FOR`).
    pub fn is_down(&self, core: usize) -> bool {
        self.core(core)
            .is_some_and(|c| self.now_ms() < c.down_until_ms.load(Ordering::Relaxed))
    }

    /// One request to one core. A core that cannot be reached is marked down and skipped (an
    /// immediate `Down`) until `CORE_DOWN_FOR` has passed; then the next call tries it again.
    pub async fn call(&self, core: usize, request: Request) -> Result<Response, BackendError> {
        if self.is_down(core) {
            return Err(BackendError::Down {
                core: self.core_name(core),
            });
        }
        self.call_core(core, request).await
    }

    /// `call` even when `core` is marked down (a scan that cannot reach its quorum without
    /// it); an answer lifts the mark.
    pub(crate) async fn call_anyway(
        &self,
        core: usize,
        request: Request,
    ) -> Result<Response, BackendError> {
        let result = self.call_core(core, request).await;
        if let (Ok(_), Some(c)) = (&result, self.core(core)) {
            c.down_until_ms.store(0, Ordering::Relaxed);
        }
        result
    }

    /// `call` without the down mark's check.
    async fn call_core(&self, core: usize, request: Request) -> Result<Response, BackendError> {
        let Some(c) = self.core(core) else {
            // Chosen under a view that had it: the layout change that removed it has ended.
            return Err(BackendError::Down {
                core: format!("core {core} (no longer in the layout)"),
            });
        };
        let request = match request {
            // MapApplied asks the node, not its partition: answered alone, never queued.
            Request::Batch(_)
            | Request::Background(_)
            | Request::MapApplied
            | Request::ControlLevel
            | Request::ControlMap
            | Request::Lease { .. } => request,
            plain if BACKGROUND.try_with(|b| *b).unwrap_or(false) => {
                Request::Background(Box::new(plain))
            }
            plain => plain,
        };
        let epoch = self.epoch.load(Ordering::Acquire);
        // Only another process's core can run an older build.
        let sent = if matches!(c.link, Link::Remote(_)) && is_pair(&request) {
            Box::pin(c.send_pair(request, epoch)).await
        } else {
            c.send(request, epoch).await
        };
        let result = match sent {
            Err(e @ BackendError::Down { .. }) if matches!(c.link, Link::Gone) => return Err(e),
            Err(e @ BackendError::Remote(RemoteError::LayoutMismatch { index, .. })) => {
                let _ = REFUSED_AT.try_with(|at| at.fetch_max(index, Ordering::Relaxed));
                self.catch_up_from(&c, index).await;
                return Err(e);
            }
            result => result,
        };
        // An offline core (damaged partition) answers everything, batches included, with one
        // error: treated like an unreachable core, so reads go around it.
        let result = match result {
            Ok(Response::Error {
                code: ErrorCode::Offline,
                message,
            }) => Err(BackendError::Offline {
                core: c.name.clone(),
                reason: message,
            }),
            other => other,
        };
        // The lock is taken only around an offline answer, never on the healthy path.
        match &result {
            Err(BackendError::Offline { reason, .. }) => {
                if let Ok(mut offline) = c.offline.lock() {
                    *offline = Some(reason.clone());
                    c.offline_seen.store(true, Ordering::Relaxed);
                }
            }
            Ok(_) if c.offline_seen.swap(false, Ordering::Relaxed) => {
                if let Ok(mut offline) = c.offline.lock() {
                    *offline = None;
                }
            }
            _ => {}
        }
        if let Err(e) = &result {
            if e.is_transport() {
                // It may come back on another build (an upgrade restarts it): asked again.
                c.lacks_pairs.store(false, Ordering::Relaxed);
                let until = self.now_ms() + CORE_DOWN_FOR.as_millis() as u64;
                if c.down_until_ms.swap(until, Ordering::Relaxed) <= self.now_ms() {
                    tracing::warn!(core = %c.name, error = %e, "core unreachable or offline: marked down");
                }
            }
        }
        result
    }

    /// Sends one request per core of `cores` as background work (the cores' low-share queue)
    /// in tasks of their own, without waiting for the answers: a best-effort write nothing
    /// waits for (a read repair a quorum does not need). `false`, nothing sent, outside a
    /// tokio runtime. Cores marked down are skipped, and nothing is marked down on a failure.
    fn send_detached(&self, cores: &[usize], make: impl Fn(usize) -> Request) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        // Read while the operation that routed these writes runs: the stamp cannot have passed
        // the phase it routed under (`stamp_epoch`).
        let epoch = self.epoch.load(Ordering::Acquire);
        for &core in cores {
            if self.is_down(core) {
                continue;
            }
            let Some(c) = self.core(core) else { continue };
            let request = Request::Background(Box::new(make(core)));
            runtime.spawn(async move {
                if let Err(e) = c.send(request, epoch).await {
                    tracing::debug!(core = %c.name, error = %e, "a read repair was not made");
                }
            });
        }
        true
    }

    /// Runs one request per core concurrently.
    pub(crate) async fn fan_out(&self, cores: &[usize], make: impl Fn(usize) -> Request) -> Fanned {
        let calls = cores.iter().map(|c| self.call(*c, make(*c)));
        let results = futures::future::join_all(calls).await;
        let mut fanned = Fanned {
            ok: Vec::new(),
            failed: Vec::new(),
        };
        for (core, r) in cores.iter().zip(results) {
            match r {
                Ok(resp) => fanned.ok.push((*core, resp)),
                Err(e) => fanned.failed.push((*core, e)),
            }
        }
        fanned
    }

    /// Writes a metadata record on a write quorum of `cores`; replicas that missed it get a
    /// hint (see `hints`).
    pub async fn meta_put(
        &self,
        cores: &(impl Cores + ?Sized),
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
    ) -> Result<(), BackendError> {
        self.meta_put_in(&cores.union(), &cores.rows(), key, value, hlc)
            .await
    }

    /// `meta_put` to every core of `cores`, acknowledged once each replica set of `sets` (whose
    /// cores are all in `cores`) has a write quorum.
    pub(crate) async fn meta_put_in(
        &self,
        cores: &[usize],
        sets: &[&[usize]],
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
    ) -> Result<(), BackendError> {
        count_call(CALL_PUT);
        let fanned = self
            .fan_out(cores, |_| Request::MetaPut {
                key: key.clone(),
                value: value.clone(),
                hlc,
            })
            .await;
        fanned.write_quorum_sets("metadata write", sets)?;
        self.hint_missed_meta(&fanned, key).await;
        Ok(())
    }

    /// `meta_put` that learns, in the same round trip, whether the write is the record's
    /// current version and what it replaced (`Request::MetaSwap`): the object layer's commit
    /// without a read before and a read after its write.
    pub async fn meta_swap(
        &self,
        cores: &(impl Cores + ?Sized),
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
    ) -> Result<Swap, BackendError> {
        self.meta_swap_in(&cores.union(), &cores.rows(), key, value, hlc)
            .await
    }

    /// `meta_swap` of `first` (a put or a delete) with a second write of another key at the
    /// same HLC, in one round trip and one log record on each core (`Request::MetaPair`):
    /// on any core both are applied or neither, even across a crash. For records whose
    /// replicas are the same cores (`same_cores`): an object's head and its listing entry
    /// on a node that holds both. Answers for `first`, as `meta_swap` does.
    pub async fn meta_pair(
        &self,
        cores: &(impl Cores + ?Sized),
        first: &MetaWrite,
        second: &MetaWrite,
        hlc: u64,
    ) -> Result<Swap, BackendError> {
        let request = || Request::MetaPair {
            first: first.clone(),
            second: second.clone(),
            hlc,
        };
        let keys = [first.key(), second.key()];
        self.swap_fanned(&cores.union(), &cores.rows(), &keys, request, None)
            .await
    }

    /// `meta_pair` with a fragment of `n` replicas in the same write on each core
    /// (`Request::PutPaired`): a small object's data, head and listing entry in one round
    /// trip and one durable round, where `cores` hold all three (every row holds the
    /// fragment's `n` replicas). A core that missed it gets a hint for the fragment and for
    /// each key.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_paired(
        &self,
        cores: &(impl Cores + ?Sized),
        n: u8,
        id: FragmentId,
        data: &Bytes,
        first: &MetaWrite,
        second: &MetaWrite,
        hlc: u64,
    ) -> Result<Swap, BackendError> {
        let rows = cores.rows();
        assert!(
            rows.iter().all(|row| row.len() == usize::from(n)),
            "every row holds the fragment's replicas"
        );
        let request = || Request::PutPaired {
            id,
            data: data.clone(),
            first: first.clone(),
            second: second.clone(),
            hlc,
        };
        let keys = [first.key(), second.key()];
        let fragment = Some((Policy::Replicas(n), id));
        self.swap_fanned(&cores.union(), &rows, &keys, request, fragment)
            .await
    }

    /// `meta_swap` with the quorums of `meta_put_in`.
    pub(crate) async fn meta_swap_in(
        &self,
        cores: &[usize],
        sets: &[&[usize]],
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
    ) -> Result<Swap, BackendError> {
        let request = || Request::MetaSwap {
            key: key.clone(),
            value: value.clone(),
            hlc,
        };
        self.swap_fanned(cores, sets, &[key], request, None).await
    }

    /// A swap (`MetaSwap`, `MetaPair` or `PutPaired`, answered `Swapped` for `keys[0]`)
    /// fanned out to `cores` with the quorums of `meta_put_in`; a core that missed it gets a
    /// hint for each of `keys`, and for `fragment` (its policy and id) when the write carries
    /// one, naming the first of `sets` that holds the core.
    async fn swap_fanned(
        &self,
        cores: &[usize],
        sets: &[&[usize]],
        keys: &[&Bytes],
        request: impl Fn() -> Request,
        fragment: Option<(Policy, FragmentId)>,
    ) -> Result<Swap, BackendError> {
        let key = keys[0];
        count_call(if fragment.is_some() {
            CALL_PUT_WITH_DATA
        } else {
            CALL_PUT
        });
        let mut fanned = self.fan_out(cores, |_| request()).await;
        let mut swap = Swap {
            won: true,
            previous: None,
        };
        // Per answering core: whether it now holds the newest version seen (it refused this
        // write for a newer one) — only meaningful when the swap lost.
        let mut answers: Vec<(usize, bool, Option<MetaVersion>)> = Vec::new();
        for (core, response) in &mut fanned.ok {
            if let Response::Swapped { won, previous } = response {
                swap.won &= *won;
                let previous = previous.take();
                if let Some(p) = &previous {
                    if swap.previous.as_ref().is_none_or(|q| newer(p, q)) {
                        swap.previous = Some(p.clone());
                    }
                }
                answers.push((*core, *won, previous));
                // Taken: counts toward the quorum and hints like a plain write's answer.
                *response = Response::Done;
            }
        }
        fanned.write_quorum_sets("metadata write", sets)?;
        if let Some((policy, id)) = fragment {
            for core in fanned.missed() {
                let row = sets
                    .iter()
                    .find(|set| set.contains(&core))
                    .expect("a fanned core is in one of the sets");
                self.hint_missed_fragments(&[(core, id)], policy, row, &fanned)
                    .await;
            }
        }
        for key in keys {
            self.hint_missed_meta(&fanned, key).await;
        }
        // The receive rule: the record this write replaced or lost to is older than the next
        // HLC this gateway takes (a retry of a lost swap is ordered after it).
        if let Some(p) = &swap.previous {
            self.observe(p.hlc);
        }
        // A lost swap has seen a newer version (perhaps from a write that failed after
        // reaching one replica): like a read, it repairs the replicas that do not hold it, so
        // no later read returns an older one than this answer reported (found by the
        // simulation: a get after such a swap flip-flopped).
        if let (false, Some(newest)) = (swap.won, &swap.previous) {
            let stale: Vec<usize> = answers
                .iter()
                .filter(|(_, won, p)| *won || p.as_ref() != Some(newest))
                .map(|(c, _, _)| *c)
                .collect();
            if !stale.is_empty() {
                let repair = |_| repair_request(key, newest);
                // Best effort, as a read's repair.
                let _ = self.fan_out(&stale, repair).await;
            }
        }
        Ok(swap)
    }

    /// `meta_put_if` on the core that serializes `cores`' conditional writes
    /// (`Placement::choose`, by the nodes' standing: `Backend::standing_of`). Waits, bounded
    /// by `CONDITIONAL_WAIT_MAX` (then 503), while no core may serialize: the group hands the
    /// role over in a layout change, a node of its row is on its way back from a demotion,
    /// the serializer or this node holds no lease (a node just started, or being demoted).
    pub async fn meta_put_if_in(
        &self,
        cores: &Placement,
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
        expect_hlc: Option<u64>,
    ) -> Result<bool, BackendError> {
        let deadline = tokio::time::Instant::now() + CONDITIONAL_WAIT_MAX;
        loop {
            let wait = {
                // Counted under the standing it chooses by, until the write's answer.
                let _chosen_under = self.enter_standing();
                let no_lease = self.gate.get().is_some_and(|g| !g.holds_lease());
                match cores.choose(&|c| self.standing_of(c)) {
                    Choice::NoneUsable(e) => return Err(e),
                    Choice::Wait(e) => (HANDOFF_WAIT_POLL, e),
                    Choice::Core(..) if no_lease => (
                        NO_LEASE_WAIT_POLL,
                        BackendError::NoLease {
                            core: "this node's gateway".into(),
                        },
                    ),
                    Choice::Core(core, _serialized) => {
                        match self.meta_put_if(core, key, value, hlc, expect_hlc).await {
                            Err(e @ BackendError::NoLease { .. }) => (NO_LEASE_WAIT_POLL, e),
                            done => return done,
                        }
                    }
                }
            };
            if tokio::time::Instant::now() + wait.0 > deadline {
                return Err(wait.1);
            }
            tokio::time::sleep(wait.0).await;
        }
    }

    /// The core that runs a group's background duties (scrub, lifecycle, tiering) for the
    /// records placed at `cores`: the one that serializes its conditional writes now, so a
    /// demoted node's groups are not left without one, else (a handoff, a node on its way
    /// back) the row's first core that stays. Two cores may both act for a moment around a
    /// change of standing; the duties are idempotent and their writes conditional.
    pub fn primary(&self, cores: &Placement) -> usize {
        cores
            .serializer(&|c| self.standing_of(c))
            .unwrap_or_else(|| cores.authority())
    }

    /// How core `core`'s node stands for serializing conditional writes (the control map's
    /// demotions, `set_standing`).
    pub fn standing_of(&self, core: usize) -> Standing {
        let standing = self.standing.load();
        if standing.is_empty() {
            return Standing::Serves;
        }
        match self.node_of(core).and_then(|n| standing.get(&n)) {
            None => Standing::Serves,
            Some(s) => *s,
        }
    }

    /// The node id of core `core` (`None` on a single node without a layout).
    pub fn node_of(&self, core: usize) -> Option<u64> {
        let view = self.view.load();
        if let Some(t) = &view.transition {
            return t.cores().get(core).map(|c| c.node);
        }
        match &view.router {
            Router::Layout(l) => l.cores().get(core).map(|c| c.id.node),
            Router::Node => None,
        }
    }

    /// This node's gate: its gateway routes conditional writes only while the node holds a
    /// lease (a node cut off from the control plane's leader may route by a stale map).
    pub fn route_under_gate(&self, gate: Arc<engine::LayoutGate>) {
        let _ = self.gate.set(gate);
    }

    /// From now on every frame to another process's cores carries routing `epoch` (the epoch
    /// of the control map this process applied: a pure gateway's, which the mover does not
    /// fence), so that a node whose map is a phase ahead refuses it (`engine::LayoutGate`,
    /// "fenced frames"). Call it once the map is applied, after this process's own fence of
    /// the operations routed under the phases before: an operation routed under an older
    /// phase then never sends a frame stamped with the new epoch. Never goes down.
    pub fn stamp_epoch(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// From now on a refusal of a frame routed by an old layout (or stamped with an old
    /// epoch), naming a map index this process has not applied, fetches that node's map and
    /// hands it to `catch_up` before the refusal is returned: the caller's retry is routed by
    /// it.
    pub fn catch_up_with(&self, catch_up: Arc<dyn CatchUp>) {
        let _ = self.catch_up.set(catch_up);
    }

    /// Whether a request refused as routed by an old layout can be routed again by a newer
    /// map (this process follows a control plane, `catch_up_with`): only then does the S3
    /// layer keep what it needs to run a request again.
    pub fn can_catch_up(&self) -> bool {
        self.catch_up.get().is_some()
    }

    /// Waits until this process has applied the control map at `index` or a later one, at
    /// most `REROUTE_WAIT_MAX`: whether it has (at once `false` without a control plane).
    /// Called once the refused operation has ended: applying a map waits for the operations
    /// routed under the one before (the binary's `LayoutFollower::apply`), that one included.
    pub async fn caught_up(&self, index: u64) -> bool {
        let Some(catch_up) = self.catch_up.get() else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + crate::limits::REROUTE_WAIT_MAX;
        while catch_up.applied() < index {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(crate::limits::REROUTE_WAIT_POLL).await;
        }
        true
    }

    /// After core `c` refused a frame naming map `index`: fetches the node's map (once per
    /// index however many refusals name it) and offers it. It does not wait for the map to be
    /// applied: applying it may wait for the very operation that was refused (a step of a
    /// change fences the operations routed under the phase before), so the refusal goes up at
    /// once, and the request's run again (`caught_up`) or the client's retry finds the map
    /// applied or being applied.
    async fn catch_up_from(&self, c: &Core, index: u64) {
        let Some(catch_up) = self.catch_up.get() else {
            return;
        };
        if index == 0 || catch_up.applied() >= index {
            return;
        }
        let before = self.map_fetched.fetch_max(index, Ordering::AcqRel);
        if before < index {
            let taken = match c.send(Request::ControlMap, 0).await {
                Ok(Response::ControlMap(sealed)) if sealed.is_empty() => {
                    Err("it has no map to answer".to_owned())
                }
                Ok(Response::ControlMap(sealed)) => catch_up.offer(&sealed).map(|_| ()),
                Ok(other) => Err(format!("it answered {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = taken {
                tracing::warn!(core = %c.name, index, "the map of a node that refused a frame as routed by an old layout was not taken: {why}");
                // The next refusal naming it tries again.
                let _ = self.map_fetched.compare_exchange(
                    index,
                    before,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
    }

    /// Takes the control map's demotions (node id → `Skipped` for a demoted node, `Waits`
    /// for one on its way back), then waits (bounded) until no conditional write this process
    /// chose a serializer for under the standing before is in flight: the fence a restore
    /// needs before the node serializes again.
    pub async fn set_standing(&self, standing: BTreeMap<u64, Standing>) {
        if **self.standing.load() == standing {
            return;
        }
        self.standing.store(Arc::new(standing));
        let before = self.standing_gen.fetch_add(1, Ordering::SeqCst);
        let counted = &self.standing_in_flight[(before % 2) as usize];
        let drained = tokio::time::Instant::now() + CONDITIONAL_WAIT_MAX * 3;
        while counted.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() > drained {
                tracing::warn!("conditional writes chosen under the last demotions still run");
                return;
            }
            tokio::time::sleep(HANDOFF_WAIT_POLL).await;
        }
    }

    fn enter_standing(&self) -> StandingGuard<'_> {
        loop {
            let generation = self.standing_gen.load(Ordering::SeqCst);
            let counted = &self.standing_in_flight[(generation % 2) as usize];
            counted.fetch_add(1, Ordering::SeqCst);
            if self.standing_gen.load(Ordering::SeqCst) == generation {
                return StandingGuard(counted);
            }
            counted.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Compare-and-swap of a metadata record on one core; `Ok(false)` when the condition failed.
    pub async fn meta_put_if(
        &self,
        core: usize,
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
        expect_hlc: Option<u64>,
    ) -> Result<bool, BackendError> {
        count_call(CALL_PUT_IF);
        let req = Request::MetaPutIf {
            key: key.clone(),
            value: value.clone(),
            hlc,
            expect_hlc,
        };
        match self.call(core, req).await? {
            Response::Done => Ok(true),
            Response::Error {
                code: ErrorCode::ConditionFailed,
                ..
            } => Ok(false),
            // Demoted, or cut off from the control plane: nothing was written.
            Response::Error {
                code: ErrorCode::NoLease,
                ..
            } => Err(BackendError::NoLease {
                core: self.core_name(core),
            }),
            other => Err(core_error(other)),
        }
    }

    /// Tombstones a metadata record on a write quorum of `cores`.
    pub async fn meta_delete(
        &self,
        cores: &(impl Cores + ?Sized),
        key: &Bytes,
        hlc: u64,
    ) -> Result<(), BackendError> {
        self.meta_delete_in(&cores.union(), &cores.rows(), key, hlc)
            .await
    }

    /// `meta_delete` with the quorums of `meta_put_in`.
    pub(crate) async fn meta_delete_in(
        &self,
        cores: &[usize],
        sets: &[&[usize]],
        key: &Bytes,
        hlc: u64,
    ) -> Result<(), BackendError> {
        count_call(CALL_DELETE);
        let fanned = self
            .fan_out(cores, |_| Request::MetaDelete {
                key: key.clone(),
                hlc,
            })
            .await;
        fanned.write_quorum_sets("metadata delete", sets)?;
        self.hint_missed_meta(&fanned, key).await;
        Ok(())
    }

    /// Reads a metadata record from a read quorum of `cores` and returns the newest version
    /// (`None` when that is a tombstone or there is none). Replicas that answered an older
    /// version are brought up to date before returning (read repair).
    pub async fn meta_get(
        &self,
        cores: &(impl Cores + ?Sized),
        key: &Bytes,
    ) -> Result<Option<MetaEntry>, BackendError> {
        self.meta_get_in(&cores.union(), &cores.rows(), key).await
    }

    /// `meta_get` from every core of `cores`, answered once each replica set of `sets` (whose
    /// cores are all in `cores`) has a read quorum of answers.
    pub(crate) async fn meta_get_in(
        &self,
        cores: &[usize],
        sets: &[&[usize]],
        key: &Bytes,
    ) -> Result<Option<MetaEntry>, BackendError> {
        count_call(CALL_GET);
        let fanned = self
            .fan_out(cores, |_| Request::MetaGetVersioned { key: key.clone() })
            .await;
        let mut answers: Vec<(usize, Option<MetaVersion>)> = Vec::new();
        // Replicas whose copy failed its checksum: repaired with the newest like stale ones
        // (the write replaces the damaged value).
        let mut damaged: Vec<usize> = Vec::new();
        let mut last = fanned.last_error();
        for (core, r) in fanned.ok {
            match r {
                Response::MetaVersioned(v) => answers.push((core, v)),
                other => {
                    if let Response::Error {
                        code: ErrorCode::Corrupt,
                        ..
                    } = &other
                    {
                        damaged.push(core);
                    }
                    last = format!("{:?}", core_error(other));
                }
            }
        }
        for set in sets {
            let need = read_quorum(set.len());
            let got = answers.iter().filter(|(c, _)| set.contains(c)).count();
            if got < need {
                return Err(BackendError::Quorum {
                    what: "metadata read",
                    got,
                    need,
                    of: set.len(),
                    last,
                });
            }
        }
        let mut newest: Option<MetaVersion> = None;
        for (_, v) in &answers {
            if let Some(v) = v {
                if newest.as_ref().is_none_or(|n| newer(v, n)) {
                    newest = Some(v.clone());
                }
            }
        }
        let Some(newest) = newest else {
            return Ok(None);
        };
        self.observe(newest.hlc);
        let mut stale: Vec<usize> = answers
            .iter()
            .filter(|(_, v)| v.as_ref() != Some(&newest))
            .map(|(c, _)| *c)
            .collect();
        stale.extend(damaged);
        if !stale.is_empty() {
            // A write quorum of every set holding the newest version already keeps every
            // later read from an older one: the repair need not delay this answer. So does a
            // write quorum of the first set alone while a group moves (sets: its old row, then
            // its new one): until the cut-over every read takes a read quorum of the old row,
            // and the mover copies what a read quorum of it holds before it cuts over. The new
            // cores lack every record the mover has not copied yet; waiting for their repair
            // put a durable write in most reads of a moving group (bench/README.md, "Layout
            // change"). Only a write refused by the new row is on the old one alone after the
            // copy: never acknowledged, its repair is best effort either way.
            let holds = |set: &[usize]| {
                let holding = answers
                    .iter()
                    .filter(|(c, v)| set.contains(c) && v.as_ref() == Some(&newest))
                    .count();
                holding >= write_quorum(set.len())
            };
            let held = sets.iter().all(|set| holds(set)) || (sets.len() > 1 && holds(sets[0]));
            let repair = |_| repair_request(key, &newest);
            if !(held && self.send_detached(&stale, repair)) {
                let repaired = self.fan_out(&stale, repair).await;
                // A version on fewer than a write quorum (a write that failed after reaching
                // some replicas, or still in flight) is answered only once the repair put it
                // on a write quorum: otherwise the next read, from other replicas, could
                // return the older one, a read going back in time (found by the simulation,
                // 2 of 20,000 seeds, with repairs lost to faults). A replica that stays stale
                // beyond that is found by the next read.
                if !held {
                    let holding = |set: &[usize]| {
                        let had = answers
                            .iter()
                            .filter(|(c, v)| set.contains(c) && v.as_ref() == Some(&newest))
                            .count();
                        let done = repaired
                            .ok
                            .iter()
                            .filter(|(c, r)| set.contains(c) && matches!(r, Response::Done))
                            .count();
                        had + done
                    };
                    let confirmed = |set: &[usize]| holding(set) >= write_quorum(set.len());
                    let ok = sets.iter().all(|set| confirmed(set))
                        || (sets.len() > 1 && confirmed(sets[0]));
                    if !ok {
                        let short = sets
                            .iter()
                            .find(|set| !confirmed(set))
                            .expect("a set short of its quorum");
                        return Err(BackendError::Quorum {
                            what: "metadata read repair",
                            got: holding(short),
                            need: write_quorum(short.len()),
                            of: short.len(),
                            last: repaired.last_error(),
                        });
                    }
                }
            }
        }
        Ok((!newest.deleted).then(|| MetaEntry {
            hlc: newest.hlc,
            value: newest.value,
        }))
    }

    /// Up to `limit` live records under `prefix` after `start_after`, in key order, merged from
    /// a read quorum of `cores` (each key's newest version; tombstones hide older values on
    /// other replicas). The second value is where to resume: `None` once the prefix is
    /// exhausted; fewer than `limit` entries always come with `None`.
    pub async fn meta_scan(
        &self,
        cores: &(impl Cores + ?Sized),
        prefix: &Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    ) -> Result<(Vec<(Bytes, MetaEntry)>, Option<Bytes>), BackendError> {
        let rows = cores.rows();
        // During a layout change, a quorum of each row, cores marked down tried anyway (a
        // listing must not fail on a down mark while groups move under it).
        let moving = self.view.load().transition.is_some();
        let (entries, next) = if let (false, [row]) = (moving, &*rows) {
            self.scan_merged(row, ScanQuorum::Replicas, None, prefix, start_after, limit)
                .await?
        } else {
            let sets = rows.iter().map(|r| r.to_vec()).collect();
            self.meta_scan_sets(&cores.union(), sets, false, prefix, start_after, limit)
                .await?
        };
        Ok((live(entries), next))
    }

    /// A merged scan of `cores` holding a read quorum of every replica set of `sets`: with
    /// `tombstones`, deleted records come with their HLC (`MetaVersion`), else only live ones.
    pub(crate) async fn meta_scan_sets(
        &self,
        cores: &[usize],
        sets: Vec<Vec<usize>>,
        tombstones: bool,
        prefix: &Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    ) -> Result<(Vec<(Bytes, MetaVersion)>, Option<Bytes>), BackendError> {
        let mode = if tombstones {
            ScanMode::Versions
        } else {
            ScanMode::Live
        };
        self.scan_merged(
            cores,
            ScanQuorum::Sets,
            Some((sets, mode)),
            prefix,
            start_after,
            limit,
        )
        .await
    }

    /// `meta_scan` over every core of the cluster (for rare cluster-wide listings: buckets,
    /// multipart uploads, whether a bucket holds any), as quorum-correct as a point read: it
    /// hears from a read quorum of every metadata replica set (every PG's first replicas on a
    /// cluster; any `replicas()` of the node's cores on one node), so each record it returns
    /// is the newest of a read quorum of its replicas and no acknowledged record is missed.
    /// Cores marked down are tried anyway when the quorum needs them; when it cannot be had
    /// the scan fails (`BackendError::Quorum`) rather than answer an incomplete list.
    /// One answering core per record was enough before: once lost messages had marked cores
    /// down, ListMultipartUploads left out acknowledged uploads or listed aborted ones, and
    /// DeleteBucket answered 204 over a pending upload (found by the object simulation).
    pub async fn meta_scan_all(
        &self,
        prefix: &Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    ) -> Result<(Vec<(Bytes, MetaEntry)>, Option<Bytes>), BackendError> {
        let cores = self.all_cores();
        let (entries, next) = self
            .scan_merged(
                &cores,
                ScanQuorum::EverySet,
                None,
                prefix,
                start_after,
                limit,
            )
            .await?;
        Ok((live(entries), next))
    }

    /// The metadata replica sets a cluster-wide scan must reach a read quorum of, `None` on
    /// one node (the node router may put a record on any `replicas()` of its cores).
    fn meta_replica_sets(&self) -> Option<Vec<Vec<usize>>> {
        let view = self.view.load();
        if let Some(t) = &view.transition {
            // A moving group's sets as its phase routes writes: the old row, both, or the new
            // one (checking the old layout's alone missed an upload written after a cut-over,
            // found by the object simulation, grow with faults, seed 59).
            let mut sets: Vec<Vec<usize>> = (0..t.old_layout().placement_groups())
                .flat_map(|pg| t.meta_sets(pg, self.meta_replicas))
                .map(|mut set| {
                    set.sort_unstable();
                    set
                })
                .collect();
            sets.sort_unstable();
            sets.dedup();
            return Some(sets);
        }
        let Router::Layout(layout) = &view.router else {
            return None;
        };
        let table = layout
            .table(self.policy.tier)
            .expect("checked in Backend::cluster");
        let mut sets: Vec<Vec<usize>> = (0..layout.placement_groups())
            .map(|pg| {
                let mut set: Vec<usize> = table
                    .row_indices(pg, self.meta_replicas)
                    .iter()
                    .map(|&i| i as usize)
                    .collect();
                set.sort_unstable();
                set
            })
            .collect();
        sets.sort_unstable();
        sets.dedup();
        Some(sets)
    }

    /// Whether the scanned cores still in a merge (`alive`) hold a read quorum of every record
    /// the scan may return; `Err` is the quorum error naming the worst replica set.
    fn scan_quorum_met(
        &self,
        need: &Need<'_>,
        alive: &[usize],
        last: &str,
    ) -> Result<(), BackendError> {
        let scanned = need.scanned;
        let (got, need, of) = match (need.quorum, need.sets) {
            (ScanQuorum::Replicas, _) => (alive.len(), read_quorum(scanned), scanned),
            (ScanQuorum::EverySet, Some(sets)) => {
                let n = self.meta_replicas;
                let got = sets
                    .iter()
                    .map(|set| set.iter().filter(|c| alive.contains(c)).count())
                    .min()
                    .unwrap_or(n);
                (got, read_quorum(n), n)
            }
            (ScanQuorum::Sets, Some(sets)) => {
                // The set with the smallest margin over its read quorum.
                let worst = sets
                    .iter()
                    .map(|set| {
                        let got = set.iter().filter(|c| alive.contains(c)).count();
                        (got as i64 - read_quorum(set.len()) as i64, got, set.len())
                    })
                    .min()
                    .unwrap_or((0, 0, 0));
                (worst.1, read_quorum(worst.2), worst.2)
            }
            (ScanQuorum::Sets, None) => unreachable!("a Sets scan names its sets"),
            (ScanQuorum::EverySet, None) => {
                // Any `n` of the node's cores may be a record's replicas: the worst set lost
                // as many as failed.
                let n = self.meta_replicas;
                let failed = scanned - alive.len();
                (n.saturating_sub(failed), read_quorum(n), n)
            }
        };
        if got < need {
            return Err(BackendError::Quorum {
                what: "listing",
                got,
                need,
                of,
                last: last.to_owned(),
            });
        }
        Ok(())
    }

    /// Every live record under `prefix` on the whole cluster (`meta_scan_all`, page after
    /// page), for the rare listings that need them all (buckets, multipart uploads).
    pub async fn meta_scan_all_pages(
        &self,
        prefix: &Bytes,
    ) -> Result<Vec<(Bytes, MetaEntry)>, BackendError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let (entries, next) = self.meta_scan_all(prefix, cursor, SCAN_BATCH_MAX).await?;
            out.extend(entries);
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    async fn scan_merged(
        &self,
        cores: &[usize],
        quorum: ScanQuorum,
        given: Option<(Vec<Vec<usize>>, ScanMode)>,
        prefix: &Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    ) -> Result<(Vec<(Bytes, MetaVersion)>, Option<Bytes>), BackendError> {
        count_call(CALL_SCAN);
        let mut streams: Vec<ScanStream> = cores
            .iter()
            .map(|&core| ScanStream {
                core,
                buffered: VecDeque::new(),
                cursor: start_after.clone(),
                done: false,
            })
            .collect();
        let batch = limit.clamp(1, SCAN_BATCH_MAX);
        let tombstones = matches!(given, Some((_, ScanMode::Versions)));
        let sets = match quorum {
            ScanQuorum::Replicas => None,
            ScanQuorum::EverySet => self.meta_replica_sets(),
            ScanQuorum::Sets => given.map(|(sets, _)| sets),
        };
        let need = Need {
            quorum,
            sets: sets.as_deref(),
            scanned: cores.len(),
            tombstones,
        };
        // A scan of one key range's replicas confirms what it returns as a point read does
        // (`repair_scanned`); a cluster-wide or moving scan's repair stays best effort.
        let confirm = matches!(quorum, ScanQuorum::Replicas).then_some(cores.len());
        let mut out = Vec::new();
        let mut repairs = Vec::new();
        loop {
            self.refill(&mut streams, prefix, batch, &need).await?;
            // Every stream that is not done has buffered entries: keys up to the smallest of
            // their last buffered keys are known on every stream.
            let frontier = streams
                .iter()
                .filter(|s| !s.done)
                .filter_map(|s| s.buffered.back().map(|(k, _)| k.clone()))
                .min();
            while let Some(key) = streams
                .iter()
                .filter_map(|s| s.buffered.front().map(|(k, _)| k))
                .min()
                .cloned()
            {
                if frontier.as_ref().is_some_and(|f| key > *f) {
                    break;
                }
                let mut held: Vec<(usize, MetaVersion)> = Vec::new();
                for s in &mut streams {
                    if s.buffered.front().is_some_and(|(k, _)| *k == key) {
                        let (_, v) = s.buffered.pop_front().expect("front exists");
                        held.push((s.core, v));
                    }
                }
                let v = held
                    .iter()
                    .map(|(_, v)| v)
                    .reduce(|a, b| if newer(b, a) { b } else { a })
                    .expect("some stream held the smallest key")
                    .clone();
                // Every stream still in the merge has read past `key`: one that does not hold
                // its newest version is stale, and is repaired like a point read's replicas.
                // A cluster-wide scan does not know the key's replicas: it repairs only the
                // cores holding an older version (writing it to all the others spread the
                // record over every core of the cluster).
                let stale: Vec<usize> = match quorum {
                    ScanQuorum::Replicas => streams
                        .iter()
                        .map(|s| s.core)
                        .filter(|c| !held.iter().any(|(h, hv)| h == c && *hv == v))
                        .collect(),
                    ScanQuorum::EverySet | ScanQuorum::Sets => held
                        .iter()
                        .filter(|(_, hv)| *hv != v)
                        .map(|(c, _)| *c)
                        .collect(),
                };
                if !stale.is_empty() {
                    let holding = held.iter().filter(|(_, hv)| *hv == v).count();
                    repairs.push((key.clone(), v.clone(), stale, holding));
                }
                self.observe(v.hlc);
                if !v.deleted || need.tombstones {
                    out.push((key.clone(), v));
                    if out.len() as u32 >= limit {
                        self.repair_scanned(repairs, confirm).await?;
                        return Ok((out, Some(key)));
                    }
                }
            }
            if streams.iter().all(|s| s.done && s.buffered.is_empty()) {
                self.repair_scanned(repairs, confirm).await?;
                return Ok((out, None));
            }
        }
    }

    /// Read repair for a merged scan: each entry some replicas of the read quorum did not hold
    /// at its newest version (`holding` did) is rewritten there, with its HLC. Without it a
    /// write that failed after reaching one replica was listed by one listing and not by the
    /// next, depending on which replicas answered (found by the simulation, 3 of 2000 seeds).
    /// With `confirm` (the number of scanned replicas), a version held by fewer than their
    /// write quorum is answered only once its repair reached that many: a repair lost to a
    /// fault let the next listing, from other replicas, list the older version (2 of 20,000
    /// seeds). Else best effort: a replica that stays stale is found by the next read.
    async fn repair_scanned(
        &self,
        repairs: Vec<(Bytes, MetaVersion, Vec<usize>, usize)>,
        confirm: Option<usize>,
    ) -> Result<(), BackendError> {
        for (key, newest, stale, holding) in repairs {
            let repair = |_| repair_request(&key, &newest);
            let repaired = self.fan_out(&stale, repair).await;
            let Some(of) = confirm.filter(|&of| holding < write_quorum(of)) else {
                continue;
            };
            let need = write_quorum(of);
            let done = repaired
                .ok
                .iter()
                .filter(|(_, r)| matches!(r, Response::Done))
                .count();
            if holding + done < need {
                return Err(BackendError::Quorum {
                    what: "listing read repair",
                    got: holding + done,
                    need,
                    of,
                    last: repaired.last_error(),
                });
            }
        }
        Ok(())
    }

    /// Fetches the next page of every stream that has run dry; drops streams whose core
    /// failed, and fails when those left miss the scan's quorum. In a cluster-wide scan, cores
    /// skipped because they are marked down are tried anyway when the quorum needs them.
    async fn refill(
        &self,
        streams: &mut Vec<ScanStream>,
        prefix: &Bytes,
        batch: u32,
        need: &Need<'_>,
    ) -> Result<(), BackendError> {
        let dry: Vec<usize> = (0..streams.len())
            .filter(|&i| !streams[i].done && streams[i].buffered.is_empty())
            .collect();
        if dry.is_empty() {
            return Ok(());
        }
        let page = |s: &ScanStream| Request::MetaScanVersioned {
            prefix: prefix.clone(),
            start_after: s.cursor.clone(),
            limit: batch,
        };
        let calls = dry
            .iter()
            .map(|&i| self.call(streams[i].core, page(&streams[i])));
        let mut results = futures::future::join_all(calls).await;
        let skipped: Vec<usize> = (0..dry.len())
            .filter(|&j| matches!(results[j], Err(BackendError::Down { .. })))
            .collect();
        // Only cluster-wide scans: a replica scan (a bucket's listing) short of its quorum
        // fails as before.
        if matches!(need.quorum, ScanQuorum::EverySet | ScanQuorum::Sets) && !skipped.is_empty() {
            let alive: Vec<usize> = (0..streams.len())
                .filter(|i| !dry.iter().zip(&results).any(|(d, r)| d == i && r.is_err()))
                .map(|i| streams[i].core)
                .collect();
            let short = self.scan_quorum_met(need, &alive, "").is_err();
            if short {
                let forced = skipped
                    .iter()
                    .map(|&j| self.call_anyway(streams[dry[j]].core, page(&streams[dry[j]])));
                let retried = futures::future::join_all(forced).await;
                for (&j, r) in skipped.iter().zip(retried) {
                    results[j] = r;
                }
            }
        }
        let mut failed = Vec::new();
        let mut last = String::new();
        for (i, r) in dry.into_iter().zip(results) {
            match r {
                Ok(Response::ScanVersioned {
                    entries,
                    next_start_after,
                }) => {
                    let s = &mut streams[i];
                    // An empty page cannot continue (a core always returns ≥ 1 entry before
                    // a resume point); treat it as the end rather than loop.
                    s.done = next_start_after.is_none() || entries.is_empty();
                    s.cursor = next_start_after;
                    s.buffered.extend(entries);
                }
                Ok(other) => {
                    last = format!("{:?}", core_error(other));
                    failed.push(i);
                }
                Err(e) => {
                    last = e.to_string();
                    failed.push(i);
                }
            }
        }
        for i in failed.into_iter().rev() {
            streams.remove(i);
        }
        let alive: Vec<usize> = streams.iter().map(|s| s.core).collect();
        self.scan_quorum_met(need, &alive, &last)
    }

    /// Stores a whole fragment on the first `n` cores of every row of `cores` (replicas):
    /// `put_shards` with the same fragment at every position.
    pub async fn put_fragment(
        &self,
        cores: &(impl Cores + ?Sized),
        n: u8,
        id: FragmentId,
        data: &Bytes,
    ) -> Result<(), BackendError> {
        let shards: Vec<(FragmentId, Bytes)> = (0..n).map(|_| (id, data.clone())).collect();
        self.put_shards(cores, Policy::Replicas(n), &shards).await
    }

    /// Stores the fragments of one stripe under `policy`, fragment i (`shards[i]`) on
    /// position i of every row of `cores`, concurrently; acknowledged once every row holds
    /// the policy's write quorum durable (`write_quorum` of the replicas, `ec_write_quorum`
    /// shards). Missed ones get a hint naming the row they belong to.
    pub async fn put_shards(
        &self,
        cores: &(impl Cores + ?Sized),
        policy: Policy,
        shards: &[(FragmentId, Bytes)],
    ) -> Result<(), BackendError> {
        let width = policy.width();
        assert_eq!(shards.len(), width, "one fragment per position");
        let need = match policy {
            Policy::Replicas(n) => write_quorum(usize::from(n)),
            Policy::Ec { k, m } => ec_write_quorum(k, m),
        };
        let rows = cores.rows();
        // (core, position) once each, in the order of the rows.
        let mut writes: Vec<(usize, usize)> = Vec::with_capacity(width * rows.len());
        for row in rows.iter() {
            assert!(row.len() >= width, "placed for the whole stripe");
            for (i, &c) in row[..width].iter().enumerate() {
                if !writes.contains(&(c, i)) {
                    writes.push((c, i));
                }
            }
        }
        let calls = writes.iter().map(|&(c, i)| {
            let (id, data) = &shards[i];
            let request = Request::PutFragment {
                id: *id,
                data: data.clone(),
            };
            self.call(c, request)
        });
        let results = futures::future::join_all(calls).await;
        let done: Vec<bool> = results
            .iter()
            .map(|r| matches!(r, Ok(Response::Done)))
            .collect();
        let mut fanned = Fanned {
            ok: Vec::new(),
            failed: Vec::new(),
        };
        for (&(c, _), r) in writes.iter().zip(results) {
            match r {
                Ok(resp) => fanned.ok.push((c, resp)),
                Err(e) => fanned.failed.push((c, e)),
            }
        }
        let written = |core: usize, i: usize| {
            let w = writes
                .iter()
                .position(|&x| x == (core, i))
                .expect("written");
            done[w]
        };
        for row in rows.iter() {
            let got = (0..width).filter(|&i| written(row[i], i)).count();
            if got < need {
                return Err(fanned.quorum_error("fragment write", got, need, width));
            }
        }
        // A missed write is hinted once, with the stripe of the first row it belongs to.
        let mut hinted: Vec<(usize, usize)> = Vec::new();
        for row in rows.iter() {
            let mut missed: Vec<(usize, FragmentId)> = Vec::new();
            for i in 0..width {
                if !written(row[i], i) && !hinted.contains(&(row[i], i)) {
                    hinted.push((row[i], i));
                    missed.push((row[i], shards[i].0));
                }
            }
            if !missed.is_empty() {
                self.hint_missed_fragments(&missed, policy, &row[..width], &fanned)
                    .await;
            }
        }
        Ok(())
    }

    /// Reads a byte range of a fragment from the first of `cores` that has it intact, trying
    /// cores that are up before cores marked down.
    pub async fn get_fragment(
        &self,
        cores: &[usize],
        id: FragmentId,
        offset_bytes: u64,
        len_bytes: u64,
    ) -> Result<Bytes, BackendError> {
        self.get_fragment_noting(cores, id, offset_bytes, len_bytes)
            .await
            .0
    }

    /// `get_fragment`, and the cores that answered, before one served it, that the fragment
    /// is missing or damaged (not those that could not be reached): what a repair on read
    /// rewrites (`repair_fragment`).
    pub async fn get_fragment_noting(
        &self,
        cores: &[usize],
        id: FragmentId,
        offset_bytes: u64,
        len_bytes: u64,
    ) -> (Result<Bytes, BackendError>, Vec<usize>) {
        let mut order: Vec<usize> = cores.to_vec();
        // The calling core's own copy first (no hop), then in order; cores marked down last.
        order.sort_by_key(|&c| (self.is_down(c), !self.is_local(c)));
        let mut last = BackendError::NotFound;
        let mut damaged = Vec::new();
        for core in order {
            let req = Request::GetFragment {
                id,
                offset_bytes,
                len_bytes: Some(len_bytes),
            };
            match self.call(core, req).await {
                Ok(Response::Fragment(b)) if b.len() as u64 == len_bytes => {
                    return (Ok(b), damaged)
                }
                Ok(Response::Fragment(_)) => last = BackendError::Protocol,
                // Corrupt or missing here: another replica may have it.
                Ok(other) => {
                    last = core_error(other);
                    if last.is_damage() {
                        damaged.push(core);
                    }
                }
                Err(e) => last = e,
            }
        }
        (Err(last), damaged)
    }

    /// Deletes a fragment from every replica, ignoring replicas that never had it. A core
    /// that cannot be reached keeps its copy (an orphan, left for the sweep).
    pub async fn delete_fragment(
        &self,
        cores: &[usize],
        id: FragmentId,
    ) -> Result<(), BackendError> {
        let fanned = self
            .fan_out(cores, |_| Request::DeleteFragment { id })
            .await;
        for (core, e) in &fanned.failed {
            tracing::debug!(core = %self.core_name(*core), error = %e, "fragment delete missed");
        }
        for (_, r) in fanned.ok {
            match r {
                Response::Done
                | Response::Error {
                    code: ErrorCode::NotFound,
                    ..
                } => {}
                other => return Err(core_error(other)),
            }
        }
        Ok(())
    }
}

/// What a `Sets` scan returns.
#[derive(Clone, Copy)]
enum ScanMode {
    /// Live records only.
    Live,
    /// Tombstones too.
    Versions,
}

/// The live records of a merged scan's answer.
fn live(entries: Vec<(Bytes, MetaVersion)>) -> Vec<(Bytes, MetaEntry)> {
    entries
        .into_iter()
        .filter(|(_, v)| !v.deleted)
        .map(|(k, v)| {
            (
                k,
                MetaEntry {
                    hlc: v.hlc,
                    value: v.value,
                },
            )
        })
        .collect()
}

/// The cores of a node `transition` removes: out of reach from its start (the node is dead, or
/// drained and about to stop).
fn out_of_reach(cores: &mut [Arc<Core>], transition: &Transition) {
    for (i, core) in cores.iter_mut().enumerate() {
        if transition.leaves(i) && !matches!(core.link, Link::Gone) {
            *core = Arc::new(Core::new(Link::Gone, core.name.clone()));
        }
    }
}

/// The backend's core for core `c` of `layout`: in-process through `local` when it is node
/// `local_node`'s (taken from `local`), else over TCP at its layout endpoint.
fn layout_core(
    layout: &Layout,
    c: &placement::Core,
    local_node: Option<u64>,
    local: &mut std::collections::BTreeMap<u32, CoreHandle>,
) -> Result<Core, String> {
    let node = &layout.nodes()[c.node as usize];
    let link = if node.removed {
        // This node's own too: a removed node serves no core (its handle is set aside).
        if Some(node.id) == local_node {
            local.remove(&u32::from(c.id.index));
        }
        Link::Gone
    } else if Some(node.id) == local_node {
        let handle = local
            .remove(&u32::from(c.id.index))
            .ok_or_else(|| format!("core {} of the layout has no local core", c.id))?;
        Link::Local(handle)
    } else {
        let port = node.base_port.checked_add(c.id.index).ok_or_else(|| {
            format!(
                "core {}: port {} + {} overflows",
                c.id, node.base_port, c.id.index
            )
        })?;
        let addr = (node.address.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("core {}: address {}: {e}", c.id, node.address))?
            .next()
            .ok_or_else(|| format!("core {}: {} has no address", c.id, node.address))?;
        Link::Remote(RemoteCore::new(addr, layout.version()))
    };
    Ok(Core::new(link, c.id.to_string()))
}

/// The write that brings a stale replica to `newest` (same HLC: every replica converges), a
/// tombstone as a delete: a read repair, and a record copied from one core to another.
pub(crate) fn repair_request(key: &Bytes, newest: &MetaVersion) -> Request {
    if newest.deleted {
        Request::MetaDelete {
            key: key.clone(),
            hlc: newest.hlc,
        }
    } else {
        Request::MetaPut {
            key: key.clone(),
            value: newest.value.clone(),
            hlc: newest.hlc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn stable_hash_is_pinned() {
        // Routing must never change under existing data: this value is part of the format.
        let h = stable_hash(&[b"bucket", b"key"]);
        assert_eq!(h, PINNED, "{h:#x}");
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
    }

    const PINNED: u64 = 0x9c6d_6709_32f2_089e;
}
