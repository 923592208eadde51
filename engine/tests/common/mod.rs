//! What several of the engine's integration tests share.

/// Runs `f`'s future to its end on a glommio executor of its own thread (1 MiB of I/O
/// memory: the tests' stores are small).
pub fn run_on_executor<F: std::future::Future<Output = ()> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move { f().await })
        .expect("executor starts")
        .join()
        .expect("executor finishes");
}
