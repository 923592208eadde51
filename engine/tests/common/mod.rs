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

/// `len` bytes of a xorshift stream seeded by `seed`: no window of them repeats within a
/// fragment, so a flipped byte, a stale copy or a record's place on the disk is recognised.
#[allow(dead_code)] // not every test binary uses every helper
pub fn xorshift_bytes(seed: u64, len: usize) -> bytes::Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
