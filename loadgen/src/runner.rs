//! Driving a run: prepare, the open- or closed-loop measured phase, cleanup.
//!
//! Owns the real clock, the tasks and the pacing thread. The open-loop pacing decisions come
//! from the sans-I/O `scheduler::OpenLoop`; this module only sleeps, spawns and forwards
//! completions to it. Every request becomes one `stats::Sample` sent to a single collector task.
//!
//! The open-loop pacer is a plain OS thread, not a tokio task: tokio's timer has 1 ms
//! granularity, which at 20k req/s would release requests in bursts of 20 and charge each up to
//! a millisecond of the generator's own lateness. The thread's lateness is reported as send lag.
//! It hands due requests in batches to a fixed set of lanes (long-lived tasks running requests
//! as futures), so dispatch costs no task spawn and no thread wake per request (see
//! `pace_open_loop`).
//!
//! A helper thread reads the CPU time of the `--server-pid` processes and of the generator at
//! the start and the end of the measured phase (`cpu`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::config::{Mode, Plan, VerifyMode};
use crate::cpu::{self, CpuSummary, Snapshot};
use crate::error::{LoadgenError, OpError};
use crate::limits;
use crate::progress::Progress;
use crate::s3::{Endpoint, S3Client};
use crate::scheduler::{self, Action, OpenLoop};
use crate::stats::{Recorder, Sample};
use crate::summary::EndpointSummary;
use crate::workload::{mix64, KeyPicker, KeySpace, Op, OpMix, Payload};

/// Everything a request needs, shared by all tasks.
#[derive(Debug, Clone)]
pub struct Context {
    pub client: S3Client,
    pub endpoints: Vec<Endpoint>,
    pub bucket: String,
    pub keyspace: KeySpace,
    pub payload: Payload,
    pub mix: OpMix,
    pub picker: KeyPicker,
    pub verify: VerifyMode,
    pub pacer_spin: bool,
    pub part_bytes: u64,
    pub list_keys_max: u32,
    pub timeout: Duration,
    pub slice_ns: u64,
    pub seed: u64,
    start: Instant,
}

impl Context {
    pub fn new(plan: &Plan, pool_size: usize) -> Context {
        let settings = &plan.settings;
        Context {
            client: S3Client::new(pool_size, &plan.tls),
            endpoints: plan.endpoints.clone(),
            bucket: settings.bucket.clone(),
            keyspace: plan.keyspace.clone(),
            payload: Payload::new(settings.size.size_bytes_max(), settings.seed),
            mix: plan.mix.clone(),
            picker: plan.picker.clone(),
            verify: settings.verify,
            pacer_spin: settings.pacer_spin,
            part_bytes: settings.part_size_bytes,
            list_keys_max: settings.list_keys_max,
            timeout: plan.timeout,
            slice_ns: plan.slice.as_nanos() as u64,
            seed: settings.seed,
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the run's clock started.
    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }

    fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }

    fn restart_clock(&mut self) {
        self.start = Instant::now();
    }
}

/// Sends one request and times it. `intended_ns` is when it was due.
async fn execute(
    ctx: &Context,
    endpoint: usize,
    op: Op,
    key: u64,
    intended_ns: u64,
    delayed: bool,
) -> Sample {
    let sent_ns = ctx.now_ns().max(intended_ns);
    let result = tokio::time::timeout(ctx.timeout, request(ctx, endpoint, op, key)).await;
    let done_ns = ctx.now_ns().max(sent_ns);
    let (first_byte_ns, bytes, error) = match result {
        Ok(Ok((first_byte, bytes))) => (
            first_byte.map(|t| ctx.ns(t).clamp(sent_ns, done_ns)),
            bytes,
            None,
        ),
        Ok(Err(error)) => (None, 0, Some(error)),
        Err(_) => (None, 0, Some(OpError::Timeout)),
    };
    Sample {
        endpoint,
        op,
        intended_ns,
        sent_ns,
        first_byte_ns,
        done_ns,
        bytes,
        error,
        delayed,
    }
}

/// The S3 calls of one op; returns the response-head time (GET) and object bytes moved.
async fn request(
    ctx: &Context,
    endpoint: usize,
    op: Op,
    key: u64,
) -> Result<(Option<Instant>, u64), OpError> {
    let ep = &ctx.endpoints[endpoint];
    let name = ctx.keyspace.key_name(key);
    match op {
        Op::Get => {
            let expected = ctx.keyspace.body(key, &ctx.payload);
            let compare = ctx.verify.compares_bytes(expected.len() as u64);
            let got = ctx
                .client
                .get_object(ep, &ctx.bucket, &name, &expected, compare)
                .await?;
            Ok((Some(got.first_byte), got.size_bytes))
        }
        Op::Put => {
            let body = ctx.keyspace.body(key, &ctx.payload);
            let size = body.len() as u64;
            ctx.client.put_object(ep, &ctx.bucket, &name, body).await?;
            Ok((None, size))
        }
        Op::Multipart => {
            let body = ctx.keyspace.body(key, &ctx.payload);
            let size = body.len() as u64;
            ctx.client
                .multipart_put(ep, &ctx.bucket, &name, body, ctx.part_bytes)
                .await?;
            Ok((None, size))
        }
        Op::Delete => {
            ctx.client.delete_object(ep, &ctx.bucket, &name).await?;
            Ok((None, 0))
        }
        Op::List => {
            ctx.client
                .list_objects(
                    ep,
                    &ctx.bucket,
                    &ctx.keyspace.prefix,
                    ctx.list_keys_max,
                    None,
                )
                .await?;
            Ok((None, 0))
        }
    }
}

/// Creates the bucket and PUTs every key on every endpoint. Any failure stops the run: a GET
/// run against a half-prepared key set would report misses as server errors.
pub async fn prepare(ctx: Arc<Context>, concurrency: u32, quiet: bool) -> Result<(), LoadgenError> {
    for (index, endpoint) in ctx.endpoints.iter().enumerate() {
        if let Err(first) = ctx.client.create_bucket(endpoint, &ctx.bucket).await {
            return Err(LoadgenError::Prepare {
                endpoint: endpoint.name.clone(),
                failed: 1,
                total: 1,
                first,
            });
        }
        let started = Instant::now();
        let (failed, first) =
            for_each_key(&ctx, index, concurrency, quiet, "prepare", Op::Put).await;
        if let Some(first) = first {
            return Err(LoadgenError::Prepare {
                endpoint: endpoint.name.clone(),
                failed,
                total: ctx.keyspace.keys,
                first,
            });
        }
        if !quiet {
            eprintln!(
                "prepare {}: {} objects under {} in {:.1} s",
                endpoint.name,
                ctx.keyspace.keys,
                ctx.keyspace.prefix,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Deletes every key (and the bucket when asked) on every endpoint; failures are reported,
/// not fatal.
pub async fn cleanup(ctx: Arc<Context>, concurrency: u32, delete_bucket: bool, quiet: bool) -> u64 {
    let mut failures = 0;
    for (index, endpoint) in ctx.endpoints.iter().enumerate() {
        let (failed, first) =
            for_each_key(&ctx, index, concurrency, quiet, "cleanup", Op::Delete).await;
        failures += failed;
        if let Some(first) = first {
            eprintln!(
                "cleanup {}: {failed} deletes failed, first: {first}",
                endpoint.name
            );
        }
        if delete_bucket {
            if let Err(e) = ctx.client.delete_bucket(endpoint, &ctx.bucket).await {
                failures += 1;
                eprintln!(
                    "cleanup {}: cannot delete bucket {}: {e}",
                    endpoint.name, ctx.bucket
                );
            }
        }
        if !quiet {
            eprintln!("cleanup {}: done", endpoint.name);
        }
    }
    failures
}

/// Runs `op` (PUT or DELETE) on every key with `concurrency` workers; returns the failure
/// count and the first failure.
async fn for_each_key(
    ctx: &Arc<Context>,
    endpoint: usize,
    concurrency: u32,
    quiet: bool,
    phase: &'static str,
    op: Op,
) -> (u64, Option<OpError>) {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let ctx = Arc::clone(ctx);
        let next = Arc::clone(&next);
        let done = Arc::clone(&done);
        workers.spawn(async move {
            let mut failed = 0_u64;
            let mut first = None;
            loop {
                let key = next.fetch_add(1, Ordering::Relaxed);
                if key >= ctx.keyspace.keys {
                    break;
                }
                let result =
                    tokio::time::timeout(ctx.timeout, request(&ctx, endpoint, op, key)).await;
                let error = match result {
                    Ok(Ok(_)) => None,
                    // Deleting a key that is not there is what cleanup wants.
                    Ok(Err(OpError::S3 { code, .. }))
                        if op == Op::Delete && (code == "NoSuchKey" || code == "NotFound") =>
                    {
                        None
                    }
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some(OpError::Timeout),
                };
                if let Some(e) = error {
                    failed += 1;
                    first.get_or_insert(e);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (failed, first)
        });
    }
    let name = &ctx.endpoints[endpoint].name;
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.tick().await;
    let mut failed = 0;
    let mut first = None;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok((f, e))) => {
                    failed += f;
                    if first.is_none() {
                        first = e;
                    }
                }
                Some(Err(join)) => std::panic::resume_unwind(join.into_panic()),
                None => break,
            },
            _ = ticker.tick() => {
                if !quiet {
                    eprintln!("{phase} {name}: {}/{}", done.load(Ordering::Relaxed), ctx.keyspace.keys);
                }
            }
        }
    }
    (failed, first)
}

/// The measured phase. Returns the per-endpoint summaries and the CPU figures.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    ctx: &Context,
    plan: &Plan,
) -> Result<(Vec<EndpointSummary>, CpuSummary), LoadgenError> {
    let mut ctx = ctx.clone();
    let warmup_ns = plan.warmup.as_nanos() as u64;
    let end_ns = warmup_ns + plan.duration.as_nanos() as u64;
    let endpoints = ctx.endpoints.len();
    let names: Vec<(String, String)> = ctx
        .endpoints
        .iter()
        .map(|e| (e.name.clone(), e.url.clone()))
        .collect();
    let open_loop = matches!(plan.settings.mode, Mode::OpenLoop { .. });
    let intervals_max = ((end_ns + plan.timeout.as_nanos() as u64) / 1_000_000_000 + 2) as usize;
    let recorder = Recorder::new(endpoints, warmup_ns, end_ns, open_loop, intervals_max);
    let (tx, rx) = mpsc::channel::<Sample>(limits::SAMPLE_QUEUE_MAX);
    let total_s = (warmup_ns + (end_ns - warmup_ns)) as f64 / 1e9;
    let progress = Progress::new(
        "run",
        total_s,
        plan.warmup.as_secs_f64(),
        plan.progress_interval,
        plan.settings.quiet,
    );
    ctx.restart_clock();
    let ctx = Arc::new(ctx);
    let collector = runtime.spawn(collect(rx, recorder, progress, Arc::clone(&ctx)));
    let cpu_probe = {
        let ctx = Arc::clone(&ctx);
        let pids = plan.settings.server_pids.clone();
        std::thread::Builder::new()
            .name("loadgen-cpu".to_owned())
            .spawn(move || probe_cpu(&ctx, &pids, warmup_ns, end_ns))
            .map_err(LoadgenError::Pacer)?
    };
    match plan.settings.mode {
        Mode::OpenLoop {
            rate_per_s,
            inflight_max,
        } => {
            let total = (rate_per_s * end_ns as f64 / 1e9).ceil() as u64;
            let handle = runtime.handle().clone();
            let ctx = Arc::clone(&ctx);
            let hard_end_ns = end_ns + plan.timeout.as_nanos() as u64 + 1_000_000_000;
            // One lane per runtime worker thread: requests run on every thread.
            let lanes = plan.settings.threads;
            let pacer = std::thread::Builder::new()
                .name("loadgen-pacer".to_owned())
                .spawn(move || {
                    pace_open_loop(
                        &ctx,
                        &handle,
                        &tx,
                        rate_per_s,
                        total,
                        u64::from(inflight_max),
                        hard_end_ns,
                        lanes,
                    );
                });
            match pacer {
                Ok(pacer) => {
                    if let Err(panic) = pacer.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                Err(e) => return Err(LoadgenError::Pacer(e)),
            }
        }
        Mode::ClosedLoop { concurrency } => {
            runtime.block_on(closed_loop(Arc::clone(&ctx), tx, concurrency, end_ns));
        }
    }
    let recorder = match runtime.block_on(collector) {
        Ok(recorder) => recorder,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    };
    let slice_ns = ctx.slice_ns;
    let measured: Vec<u64> = (0..endpoints)
        .map(|e| scheduler::owned_ns(e, warmup_ns, end_ns, slice_ns, endpoints))
        .collect();
    let summaries = recorder.summarize(&names, &measured);
    let (start, end, wall_s) = match cpu_probe.join() {
        Ok(readings) => readings,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let requests = summaries.iter().map(|e| e.ok + e.errors).sum();
    let bytes = summaries.iter().flat_map(|e| &e.ops).map(|o| o.bytes).sum();
    let cpu = cpu::summarize(
        &start,
        &end,
        wall_s,
        cpu::clock_ticks_per_s(),
        requests,
        bytes,
    );
    Ok((summaries, cpu))
}

/// Reads the CPU time of the servers and of the generator at the start and at the end of the
/// measured phase (a thread of its own, so the reading is on time whatever the pacing does).
/// Returns both readings and the wall time between them, s.
fn probe_cpu(
    ctx: &Context,
    pids: &[u32],
    warmup_ns: u64,
    end_ns: u64,
) -> (Snapshot, Snapshot, f64) {
    let sleep_until = |t_ns: u64| {
        let now = ctx.now_ns();
        if t_ns > now {
            std::thread::sleep(Duration::from_nanos(t_ns - now));
        }
    };
    sleep_until(warmup_ns);
    let from = Instant::now();
    let start = Snapshot::take(pids);
    sleep_until(end_ns);
    let end = Snapshot::take(pids);
    (start, end, from.elapsed().as_secs_f64())
}

/// With `--pacer-spin`, how long before a due time the pacer stops sleeping and yields.
const PACER_SPIN: Duration = Duration::from_micros(60);
/// The pacer wakes at most once per quantum (unless `--pacer-spin`): at high rates it releases
/// every request due since its last wake in one batch, at most this late, instead of paying a
/// sleep, a wake-up and a hand-over to the runtime per request (which at 20k req/s on a shared
/// 2-CPU machine cost more than the requests themselves and put the pacer hundreds of ms
/// behind). Below 1 / quantum (5000 req/s) it changes nothing.
const PACER_QUANTUM: Duration = Duration::from_micros(200);
/// How often the pacer looks for completions while the in-flight bound holds it back.
const PACER_BLOCKED_POLL: Duration = Duration::from_micros(100);

/// One request handed from the pacer to a lane.
#[derive(Debug, Clone, Copy)]
struct Job {
    endpoint: usize,
    op: Op,
    key: u64,
    intended_ns: u64,
    delayed: bool,
}

/// A lane: one long-lived task that runs every request the pacer hands it, concurrently, as
/// futures of its own (no task spawned per request). The pacer hands over batches: everything
/// that fell due since its last wake, so a lane is woken once per pacer wake, not once per
/// request. Ends when the pacer drops its sender and the last request finished.
async fn lane(
    ctx: Arc<Context>,
    mut jobs: mpsc::UnboundedReceiver<Vec<Job>>,
    tx: mpsc::Sender<Sample>,
    completed: Arc<AtomicU64>,
) {
    let mut inflight = FuturesUnordered::new();
    let mut open = true;
    while open || !inflight.is_empty() {
        tokio::select! {
            batch = jobs.recv(), if open => match batch {
                Some(batch) => {
                    for job in batch {
                        let ctx = &ctx;
                        inflight.push(async move {
                            execute(ctx, job.endpoint, job.op, job.key, job.intended_ns, job.delayed)
                                .await
                        });
                    }
                }
                None => open = false,
            },
            Some(sample) = inflight.next(), if !inflight.is_empty() => {
                // The collector outlives every sender; a closed channel means shutdown.
                let _ = tx.send(sample).await;
                completed.fetch_add(1, Ordering::Release);
            }
        }
    }
}

/// Asks the kernel to wake this thread on time: the default timer slack (50 µs) is added to
/// every sleep and would be charged as send lag.
#[allow(unsafe_code)] // prctl on the calling thread, plain integers
fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and touches only this thread's timer slack.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_u64, 0_u64, 0_u64, 0_u64) };
}

/// The open-loop pacer: releases each request at its due time to the lanes, never more than
/// `inflight_max` at once.
///
/// Dispatch costs no task spawn and no wake per request: the pacer wakes at the next due time
/// but at most once per `PACER_QUANTUM` (timer slack set to 1 ns), collects every request due
/// by then into one batch, and hands it to the next lane (round robin over wakes): one
/// hand-over and at most one thread woken per pacer wake. At 20k req/s a wake finds about four requests due; when the pacer or the
/// machine falls behind, the backlog leaves in one batch instead of one spawn each. Each
/// request keeps its own due time: a request released up to a quantum late is charged that
/// lateness (send lag, latency from the due time), never released early.
///
/// Completions are counted in an atomic the pacer reads when it wakes, not sent to it: waking
/// the pacer once per completion would cost a context switch per request, on machines where
/// the generator shares the CPUs with the server it measures.
#[allow(clippy::too_many_arguments)]
fn pace_open_loop(
    ctx: &Arc<Context>,
    handle: &Handle,
    tx: &mpsc::Sender<Sample>,
    rate_per_s: f64,
    total: u64,
    inflight_max: u64,
    hard_end_ns: u64,
    lanes_count: usize,
) {
    tight_timer_slack();
    let spin = ctx.pacer_spin;
    let mut schedule = OpenLoop::new(rate_per_s, total, inflight_max);
    let mut rng = SmallRng::seed_from_u64(mix64(ctx.seed, 0x00C0_FFEE));
    let endpoints = ctx.endpoints.len();
    let completed = Arc::new(AtomicU64::new(0));
    let mut lanes = Vec::with_capacity(lanes_count);
    for _ in 0..lanes_count.max(1) {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        handle.spawn(lane(
            Arc::clone(ctx),
            jobs_rx,
            tx.clone(),
            Arc::clone(&completed),
        ));
        lanes.push((jobs_tx, Vec::new()));
    }
    let mut next_lane = 0;
    let quantum_ns = if spin {
        0
    } else {
        PACER_QUANTUM.as_nanos() as u64
    };
    let mut last_wake_ns = 0;
    // A wake's whole batch goes to one lane, the next wake's to the next: one hand-over (and
    // at most one thread woken) per pacer wake, and the lanes share the load over time.
    let flush = |lanes: &mut Vec<(mpsc::UnboundedSender<Vec<Job>>, Vec<Job>)>,
                 next_lane: &mut usize| {
        let (jobs_tx, batch) = &mut lanes[*next_lane];
        if !batch.is_empty() {
            // A lane ends only after the pacer drops its sender: the send cannot fail.
            let _ = jobs_tx.send(std::mem::take(batch));
            *next_lane = (*next_lane + 1) % lanes.len();
        }
    };
    loop {
        schedule.completed_up_to(completed.load(Ordering::Acquire));
        let now = ctx.now_ns();
        match schedule.poll(now) {
            Action::Send(dispatch) => {
                let op = ctx.mix.pick(&mut rng);
                let key = ctx.picker.pick(op, &mut rng);
                let endpoint =
                    scheduler::endpoint_at(dispatch.intended_ns, ctx.slice_ns, endpoints);
                lanes[next_lane].1.push(Job {
                    endpoint,
                    op,
                    key,
                    intended_ns: dispatch.intended_ns,
                    delayed: dispatch.delayed,
                });
            }
            Action::WaitUntil(t) => {
                flush(&mut lanes, &mut next_lane);
                let wait = Duration::from_nanos(t.max(last_wake_ns + quantum_ns) - now);
                // A sleep may still overshoot by the wake-up latency, charged as send lag.
                // With --pacer-spin the last stretch yields instead: exact, but it keeps a CPU
                // busy, which on a small machine shared with the server costs more than it saves.
                if spin && wait < PACER_SPIN {
                    std::thread::yield_now();
                } else if spin {
                    std::thread::sleep(wait.saturating_sub(PACER_SPIN));
                } else {
                    std::thread::sleep(wait);
                    last_wake_ns = ctx.now_ns();
                }
            }
            Action::WaitForCompletion => {
                flush(&mut lanes, &mut next_lane);
                if now >= hard_end_ns {
                    abandon(ctx, &mut schedule, &mut rng, tx, now);
                    continue;
                }
                std::thread::sleep(PACER_BLOCKED_POLL);
            }
            Action::Finished => {
                flush(&mut lanes, &mut next_lane);
                break;
            }
        }
    }
    // Dropping the lanes' senders lets each lane end after its last request; the requests still
    // in flight each end by their own timeout, and the collector waits for their samples (every
    // lane holds a sender), so the pacer need not.
}

/// Charges every request that was due but never sent as a `NotSent` error.
fn abandon(
    ctx: &Context,
    schedule: &mut OpenLoop,
    rng: &mut SmallRng,
    tx: &mpsc::Sender<Sample>,
    now: u64,
) {
    let endpoints = ctx.endpoints.len();
    for (_, intended_ns) in schedule.abandon(now) {
        let op = ctx.mix.pick(rng);
        // Drawn and dropped so the op/key sequence stays the same as in a run that sent it.
        let _ = ctx.picker.pick(op, rng);
        let sample = Sample {
            endpoint: scheduler::endpoint_at(intended_ns, ctx.slice_ns, endpoints),
            op,
            intended_ns,
            sent_ns: now,
            first_byte_ns: None,
            done_ns: now,
            bytes: 0,
            error: Some(OpError::NotSent),
            delayed: true,
        };
        if tx.blocking_send(sample).is_err() {
            return;
        }
    }
}

/// Closed loop: `concurrency` workers, each sending its next request when the last finishes.
async fn closed_loop(ctx: Arc<Context>, tx: mpsc::Sender<Sample>, concurrency: u32, end_ns: u64) {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let ctx = Arc::clone(&ctx);
        let tx = tx.clone();
        workers.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(mix64(ctx.seed, u64::from(worker) + 1));
            let endpoints = ctx.endpoints.len();
            loop {
                let now = ctx.now_ns();
                if now >= end_ns {
                    break;
                }
                let endpoint = scheduler::endpoint_at(now, ctx.slice_ns, endpoints);
                let op = ctx.mix.pick(&mut rng);
                let key = ctx.picker.pick(op, &mut rng);
                let sample = execute(&ctx, endpoint, op, key, now, false).await;
                if tx.send(sample).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    while let Some(joined) = workers.join_next().await {
        if let Err(join) = joined {
            std::panic::resume_unwind(join.into_panic());
        }
    }
}

/// The collector: the only owner of the recorder.
async fn collect(
    mut rx: mpsc::Receiver<Sample>,
    mut recorder: Recorder,
    mut progress: Progress,
    ctx: Arc<Context>,
) -> Recorder {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            sample = rx.recv() => match sample {
                Some(sample) => {
                    recorder.record(&sample);
                    while let Ok(sample) = rx.try_recv() {
                        recorder.record(&sample);
                    }
                }
                None => break,
            },
            _ = ticker.tick() => {
                let elapsed = Duration::from_nanos(ctx.now_ns());
                let second = elapsed.as_secs() as usize;
                // Samples arrive within a moment of completing; a second ago is complete.
                recorder.close_intervals_before(second.saturating_sub(1));
                progress.tick(elapsed, &mut recorder);
            }
        }
    }
    progress.finish();
    recorder
}
