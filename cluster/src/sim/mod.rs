//! The pieces both deterministic simulations run on: simulated cores (`core`) answering the
//! engine's requests by its rules, and the world (`world`): virtual time, the network between
//! gateways and cores (delays, reorders, losses, partitions, node crashes), skewed clocks and
//! the executors. The cluster simulation (`cluster/tests/sim`) drives the backend with it; the
//! object simulation (`s3api/tests/osim`) drives the S3 object service over the backend.

pub mod core;
pub mod world;

/// A number from the environment (a seed, a seed count), or a panic naming the bad value.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

/// The seeds a simulation test runs: `{prefix}_SEED` alone when set (a replay), else
/// `{prefix}_SEEDS` seeds (default `default`) from `{prefix}_FIRST` (default 0).
pub fn seeds(prefix: &str, default: u64) -> Vec<u64> {
    if let Some(s) = env_u64(&format!("{prefix}_SEED")) {
        return vec![s];
    }
    let first = env_u64(&format!("{prefix}_FIRST")).unwrap_or(0);
    let n = env_u64(&format!("{prefix}_SEEDS")).unwrap_or(default);
    (first..first + n).collect()
}

/// `run`, with a panic (an assertion of the code under test, a deadlock of the simulation)
/// turned into the run's failure, so its seed is printed.
pub fn caught<T>(run: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("panicked: {message}"))
    })
}

/// Runs `run` on every seed, spread over the machine's threads (each seed whole on one
/// thread, so the split changes nothing), each panic caught. Returns the results in seed
/// order.
pub fn run_spread<T: Send>(
    seeds: &[u64],
    run: impl Fn(u64) -> Result<T, String> + Sync,
) -> Vec<(u64, Result<T, String>)> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let run = &run;
    let mut results: Vec<(u64, Result<T, String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    seeds
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|&seed| (seed, caught(|| run(seed))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a simulation thread panicked"))
            .collect()
    });
    results.sort_by_key(|(seed, _)| *seed);
    results
}
