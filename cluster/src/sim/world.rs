//! The simulated world: virtual time, an event queue, the network between gateways and cores,
//! node crashes and partitions, and two ways to run tasks over it: a single-threaded executor
//! that polls the tasks (clients, the nemesis) until none is ready, then delivers the next event
//! (`run`: the cluster simulation's, its tasks touch nothing but the world), or a current-thread
//! tokio runtime with its clock paused (`run_tokio`: the object simulation's, whose code under
//! test sleeps, spawns and times out with tokio), where the world's events are tokio timers and
//! its time is tokio's. Every choice comes from one seeded generator and ties are broken by a
//! sequence number, so a seed replays exactly.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::backend::{BackendError, Clock, CoreLink};
use crate::remote::RemoteError;
use engine::sim::SimRng;
use proto::{Request, Response};

use crate::sim::core::{Fault, SimCore};

/// A call whose request or answer is lost fails after this long (the TCP client's timeout,
/// shortened: virtual time is free but must stay below `CORE_DOWN_FOR` for nothing).
pub const CALL_TIMEOUT_MS: u64 = 1000;
/// One-way message delay bounds.
pub const DELAY_MS_MAX: u64 = 40;
/// Physical time of the simulation's epoch (any fixed date: HLCs look real).
const EPOCH_MS: u64 = 1_780_000_000_000;

enum Event {
    /// A request reaches its core.
    Deliver {
        slot: u64,
        from: usize,
        core: usize,
        request: Request,
        sent_ms: u64,
    },
    /// An answer reaches its caller.
    Answer {
        slot: u64,
        from: usize,
        core: usize,
        response: Response,
        sent_ms: u64,
    },
    /// The caller gives up on a lost request or answer.
    Fail { slot: u64, core: usize },
    /// A timer fires.
    Wake(Waker),
}

#[derive(Default)]
struct Slot {
    result: Option<Result<Response, BackendError>>,
    waker: Option<Waker>,
}

/// Network faults in force.
#[derive(Debug, Clone, Copy, Default)]
pub struct Weather {
    /// Per mille of messages lost.
    pub drop_per_mille: u64,
    /// Per mille of requests a core fails without applying them: writes with NoSpace (a full
    /// disk), fragment reads with Corrupt (a damaged record), others with Internal.
    pub error_per_mille: u64,
}

/// The error a failing core answers `request` with.
fn core_error(request: &Request) -> Response {
    let inner = match request {
        Request::Background(inner) => inner,
        other => other,
    };
    let code = match inner {
        Request::PutFragment { .. }
        | Request::MetaPut { .. }
        | Request::MetaPutIf { .. }
        | Request::MetaSwap { .. }
        | Request::MetaPair { .. }
        | Request::PutPaired { .. }
        | Request::MetaDelete { .. } => proto::ErrorCode::NoSpace,
        Request::GetFragment { .. } | Request::VerifyFragment { .. } => proto::ErrorCode::Corrupt,
        _ => proto::ErrorCode::Internal,
    };
    Response::Error {
        code,
        message: "injected by the simulation".into(),
    }
}

pub struct World {
    pub now_ms: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    pub rng: SimRng,
    pub cores: Vec<SimCore>,
    /// The node of each core.
    pub core_node: Vec<usize>,
    pub up: Vec<bool>,
    /// Partition side of each node: two nodes talk when their sides are equal.
    pub side: Vec<u8>,
    /// Crashes of each node so far: the gateway running there loses what it was doing.
    gateway_epoch: Vec<u64>,
    /// Tasks to wake when the node's gateway crashes (`Shared::crashed`).
    gateway_waiters: Vec<Vec<Waker>>,
    pub weather: Weather,
    pub fault: Fault,
    slots: BTreeMap<u64, Slot>,
    next_slot: u64,
    /// Logical time of the history (invocations and completions), strictly increasing.
    history_clock: u64,
    pub messages: u64,
    /// Under `run_tokio`: the tokio instant of virtual time 0, and the driver to wake when an
    /// event earlier than every other is queued.
    tokio: Option<(tokio::time::Instant, Arc<tokio::sync::Notify>)>,
}

impl World {
    /// A world of `layout`'s cores, on its nodes.
    pub fn of_layout(seed: u64, layout: &placement::Layout, fault: Fault) -> World {
        let core_node: Vec<usize> = layout.cores().iter().map(|c| c.node as usize).collect();
        let nodes = core_node.iter().max().map_or(0, |n| n + 1);
        World::new(seed, core_node, nodes, fault)
    }

    pub fn new(seed: u64, core_node: Vec<usize>, nodes: usize, fault: Fault) -> World {
        World {
            now_ms: 0,
            seq: 0,
            events: BTreeMap::new(),
            rng: SimRng::new(seed),
            cores: core_node.iter().map(|_| SimCore::default()).collect(),
            core_node,
            up: vec![true; nodes],
            side: vec![0; nodes],
            gateway_epoch: vec![0; nodes],
            gateway_waiters: vec![Vec::new(); nodes],
            weather: Weather::default(),
            fault,
            slots: BTreeMap::new(),
            next_slot: 0,
            history_clock: 0,
            messages: 0,
            tokio: None,
        }
    }

    /// The virtual time now, in ms. Under `run_tokio` tokio's timers (the code under test's
    /// sleeps) move time too: it is brought up to tokio's clock first.
    pub fn now(&mut self) -> u64 {
        if let Some((base, _)) = &self.tokio {
            let elapsed = tokio::time::Instant::now()
                .duration_since(*base)
                .as_millis() as u64;
            self.now_ms = self.now_ms.max(elapsed);
        }
        self.now_ms
    }

    /// The next instant of the history (operation invocations and completions).
    pub fn tick(&mut self) -> u64 {
        self.history_clock += 1;
        self.history_clock
    }

    /// Crashes `node`: its cores receive nothing until it is up again, and its gateway's
    /// operations in flight end (`Shared::crashed`).
    pub fn crash(&mut self, node: usize) {
        self.up[node] = false;
        self.gateway_epoch[node] += 1;
        for w in self.gateway_waiters[node].drain(..) {
            w.wake();
        }
    }

    fn at(&mut self, time_ms: u64, event: Event) {
        if let Some((_, driver)) = &self.tokio {
            if self.events.keys().next().is_none_or(|&(t, _)| time_ms < t) {
                driver.notify_one();
            }
        }
        self.seq += 1;
        self.events.insert((time_ms, self.seq), event);
    }

    fn delay(&mut self) -> u64 {
        1 + self.rng.below(DELAY_MS_MAX)
    }

    fn lost(&mut self) -> bool {
        self.rng.below(1000) < self.weather.drop_per_mille
    }

    fn reachable(&self, from: usize, core: usize) -> bool {
        let node = self.core_node[core];
        self.up[node] && self.side[node] == self.side[from]
    }

    fn send(&mut self, from: usize, core: usize, request: Request) -> u64 {
        self.next_slot += 1;
        let slot = self.next_slot;
        self.slots.insert(slot, Slot::default());
        self.messages += 1;
        let at = self.now() + self.delay();
        let sent_ms = self.now_ms;
        self.at(
            at,
            Event::Deliver {
                slot,
                from,
                core,
                request,
                sent_ms,
            },
        );
        slot
    }

    fn fail_later(&mut self, slot: u64, core: usize, sent_ms: u64) {
        let at = (sent_ms + CALL_TIMEOUT_MS).max(self.now_ms);
        self.at(at, Event::Fail { slot, core });
    }

    /// Delivers the next event; `false` when there is none.
    fn step(&mut self) -> Option<Vec<Waker>> {
        let (&(time, seq), _) = self.events.iter().next()?;
        let event = self.events.remove(&(time, seq)).expect("listed");
        debug_assert!(time >= self.now_ms, "time runs forward");
        self.now_ms = time;
        let mut wake = Vec::new();
        match event {
            Event::Deliver {
                slot,
                from,
                core,
                request,
                sent_ms,
            } => {
                if !self.reachable(from, core) || self.lost() {
                    self.fail_later(slot, core, sent_ms);
                } else {
                    let fault = self.fault;
                    let failing = self.rng.below(1000) < self.weather.error_per_mille;
                    let response = if failing {
                        core_error(&request)
                    } else {
                        self.cores[core].handle(request, fault)
                    };
                    let at = self.now_ms + self.delay();
                    self.at(
                        at,
                        Event::Answer {
                            slot,
                            from,
                            core,
                            response,
                            sent_ms,
                        },
                    );
                }
            }
            Event::Answer {
                slot,
                from,
                core,
                response,
                sent_ms,
            } => {
                if !self.reachable(from, core) || self.lost() {
                    self.fail_later(slot, core, sent_ms);
                } else {
                    wake.extend(self.complete(slot, Ok(response)));
                }
            }
            Event::Fail { slot, core } => {
                let addr = SocketAddr::from(([127, 0, 0, 1], 20_000 + core as u16));
                let e = RemoteError::Timeout {
                    addr,
                    after: Duration::from_millis(CALL_TIMEOUT_MS),
                };
                wake.extend(self.complete(slot, Err(BackendError::Remote(e))));
            }
            Event::Wake(w) => wake.push(w),
        }
        Some(wake)
    }

    fn complete(&mut self, slot: u64, result: Result<Response, BackendError>) -> Option<Waker> {
        // A caller that was dropped (a cancelled operation) left no slot.
        let s = self.slots.get_mut(&slot)?;
        s.result = Some(result);
        s.waker.take()
    }
}

/// The world, shared by the links, the clocks and the tasks (one thread: the lock is never
/// contended; it only makes the backend's `Send + Sync` seams happy).
#[derive(Clone)]
pub struct Shared(Arc<Mutex<World>>);

impl Shared {
    pub fn new(world: World) -> Shared {
        Shared(Arc::new(Mutex::new(world)))
    }

    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0
            .lock()
            .expect("the world lock is never poisoned: a panic ends the seed")
    }

    /// Waits `ms` of virtual time.
    pub fn sleep(&self, ms: u64) -> impl Future<Output = ()> {
        Sleep {
            world: self.clone(),
            until_ms: None,
            ms,
        }
    }

    /// A random number below `n` from the world's generator.
    pub fn below(&self, n: u64) -> u64 {
        self.lock().rng.below(n)
    }

    pub fn tick(&self) -> u64 {
        self.lock().tick()
    }

    /// Ready when `node` crashes after now.
    pub fn crashed(&self, node: usize) -> impl Future<Output = ()> {
        let epoch = self.lock().gateway_epoch[node];
        Crashed {
            world: self.clone(),
            node,
            epoch,
        }
    }
}

struct Crashed {
    world: Shared,
    node: usize,
    epoch: u64,
}

impl Future for Crashed {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut w = self.world.lock();
        if w.gateway_epoch[self.node] != self.epoch {
            return Poll::Ready(());
        }
        let waiters = &mut w.gateway_waiters[self.node];
        if !waiters.iter().any(|x| x.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct Sleep {
    world: Shared,
    until_ms: Option<u64>,
    ms: u64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut w = self.world.lock();
        match self.until_ms {
            Some(t) if w.now_ms >= t => Poll::Ready(()),
            Some(_) => Poll::Pending,
            None => {
                let t = w.now() + self.ms;
                w.at(t, Event::Wake(cx.waker().clone()));
                drop(w);
                self.until_ms = Some(t);
                Poll::Pending
            }
        }
    }
}

/// One gateway's link to one core.
pub struct SimLink {
    pub world: Shared,
    /// The node the gateway runs on.
    pub from: usize,
    pub core: usize,
}

struct Reply {
    world: Shared,
    slot: u64,
}

impl Future for Reply {
    type Output = Result<Response, BackendError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut w = self.world.lock();
        let s = w
            .slots
            .get_mut(&self.slot)
            .expect("a slot lives until its reply is read");
        if let Some(r) = s.result.take() {
            w.slots.remove(&self.slot);
            return Poll::Ready(r);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.world.lock().slots.remove(&self.slot);
    }
}

impl CoreLink for SimLink {
    fn call(
        &self,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, BackendError>> + Send + Sync>> {
        let world = self.world.clone();
        let (from, core) = (self.from, self.core);
        Box::pin(async move {
            let slot = world.lock().send(from, core, request);
            Reply { world, slot }.await
        })
    }
}

/// One gateway's clock: the world's time plus a fixed skew.
pub struct SimClock {
    pub world: Shared,
    pub skew_ms: i64,
    /// The node the gateway runs on (its ids' salt).
    pub node: usize,
}

impl Clock for SimClock {
    fn elapsed_ms(&self) -> u64 {
        self.world.lock().now()
    }

    fn hlc_physical(&self) -> u64 {
        let ms = (EPOCH_MS + self.world.lock().now()).saturating_add_signed(self.skew_ms);
        ms << 16
    }

    fn id_salt(&self) -> u64 {
        self.node as u64
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

struct TaskWaker {
    id: usize,
    ready: Arc<Mutex<VecDeque<usize>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready.lock().expect("ready queue").push_back(self.id);
    }
}

/// Runs `tasks` to completion on this thread in virtual time. Returns the virtual time at the
/// end. Panics (a bug in the simulation or a deadlock of the code under test) when tasks are
/// pending with no event left to deliver, or past `steps_max` events.
pub fn run(world: &Shared, tasks: Vec<Task>, steps_max: u64) {
    let ready = Arc::new(Mutex::new((0..tasks.len()).collect::<VecDeque<usize>>()));
    let wakers: Vec<Waker> = (0..tasks.len())
        .map(|id| {
            Waker::from(Arc::new(TaskWaker {
                id,
                ready: ready.clone(),
            }))
        })
        .collect();
    let mut tasks: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
    let mut live = tasks.len();
    let mut steps = 0u64;
    while live > 0 {
        loop {
            let next = ready.lock().expect("ready queue").pop_front();
            let Some(id) = next else { break };
            let Some(task) = tasks[id].as_mut() else {
                continue;
            };
            let mut cx = Context::from_waker(&wakers[id]);
            if task.as_mut().poll(&mut cx).is_ready() {
                tasks[id] = None;
                live -= 1;
            }
        }
        if live == 0 {
            break;
        }
        steps += 1;
        assert!(
            steps <= steps_max,
            "the simulation ran past {steps_max} events"
        );
        let woken = world.lock().step();
        let Some(woken) = woken else {
            panic!("deadlock: {live} tasks wait and no event is left");
        };
        for w in woken {
            w.wake();
        }
    }
}

/// A layout of `nodes` nodes of `cores` cores each, one zone per node, 16 placement groups
/// (core `c` of node `n` is the world's core `n * cores + c`).
pub fn layout(nodes: usize, cores: usize) -> Arc<placement::Layout> {
    Arc::new(
        placement::Layout::from_toml_str(&layout_text(nodes, cores, 1))
            .expect("the simulation's layout is valid"),
    )
}

/// The next version of `old`: `nodes` nodes of `cores` cores each as `layout` makes them,
/// its tables built from `old`'s (what `percore layout apply` computes), so that
/// `moves::Transition::new(old, next)` is the change from one to the other.
pub fn next_layout(old: &placement::Layout, nodes: usize, cores: usize) -> Arc<placement::Layout> {
    next_layout_removing(old, nodes, cores, &[])
}

/// `next_layout` with the nodes of index `removed` (0 for the first) marked `removed`: they
/// keep their cores' numbers and hold nothing (a dead node replaced, a drained node taken out).
pub fn next_layout_removing(
    old: &placement::Layout,
    nodes: usize,
    cores: usize,
    removed: &[usize],
) -> Arc<placement::Layout> {
    let text = mark_removed(&layout_text(nodes, cores, old.version() + 1), removed);
    Arc::new(
        placement::Layout::from_toml_str_and_state(&text, Some(&old.state()))
            .expect("the simulation's next layout is valid"),
    )
}

/// `text` (of `layout_text`) with the nodes of index `removed` marked `removed = true`.
fn mark_removed(text: &str, removed: &[usize]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        let zone = line
            .strip_prefix("zone = \"z")
            .and_then(|z| z.strip_suffix('"'))
            .and_then(|z| z.parse::<usize>().ok());
        if zone.is_some_and(|n| removed.contains(&n)) {
            out.push_str("removed = true\n");
        }
    }
    out
}

/// The text of `layout`'s layouts, version `version`.
fn layout_text(nodes: usize, cores: usize, version: u64) -> String {
    use std::fmt::Write as _;
    let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 16\n");
    for n in 0..nodes {
        let _ = write!(
            text,
            "[[node]]\nid = {}\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = {cores}\n\
             zone = \"z{n}\"\n",
            n + 1,
            20_000 + 10 * n,
        );
    }
    text
}

/// Virtual time without a world event before `run_tokio` calls it a deadlock (the code under
/// test's own timers run meanwhile: its longest is the 30 s retirement grace).
const IDLE_MS_MAX: u64 = 600_000;

/// Runs `main` to completion on a current-thread tokio runtime whose clock is paused (it jumps
/// to the next timer whenever every task waits), delivering the world's events as timers at
/// their virtual time: the code under test may sleep, spawn and time out with tokio, all in
/// virtual time, and the run is still a function of the seed (one thread, tasks polled in the
/// order they were woken, no `select!` left to chance). Panics, with the world's state said,
/// past `steps_max` events or `IDLE_MS_MAX` of virtual time without one while `main` waits.
pub fn run_tokio<F: Future>(world: &Shared, main: F, steps_max: u64) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(async {
        let driver = Arc::new(tokio::sync::Notify::new());
        let base = tokio::time::Instant::now();
        world.lock().tokio = Some((base, driver.clone()));
        let mut main = std::pin::pin!(main);
        let mut steps = 0u64;
        loop {
            let next = world.lock().events.keys().next().map(|&(t, _)| t);
            let deadline = match next {
                Some(t) => base + Duration::from_millis(t),
                None => tokio::time::Instant::now() + Duration::from_millis(IDLE_MS_MAX),
            };
            tokio::select! {
                biased;
                out = &mut main => {
                    world.lock().tokio = None;
                    return out;
                }
                () = driver.notified() => continue,
                () = tokio::time::sleep_until(deadline) => {}
            }
            assert!(
                next.is_some(),
                "deadlock: the simulation waits and no event is left"
            );
            steps += 1;
            assert!(
                steps <= steps_max,
                "the simulation ran past {steps_max} events"
            );
            let woken = world.lock().step().expect("an event is due");
            for w in woken {
                w.wake();
            }
        }
    })
}
