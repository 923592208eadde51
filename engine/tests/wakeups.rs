//! Wake-ups across threads with glommio's reactor as percore carries it
//! (`vendor/glommio/PATCHES.md`): a core parks without `sys_membarrier`, ordering its sleep
//! against senders with a fence on each side. A lost wake-up leaves an executor asleep with a
//! message waiting and no timer to wake it, so each exchange below would stop for good, and
//! the test fails if its rounds do not finish within a generous bound (minutes; they take a
//! few seconds in a debug build). Most rounds find the receiving side parked (its channel was
//! empty when it last looked); the others find it still running and test nothing.
//!
//! Checked: with the notifier's eventfd write taken out, both tests fail. With only the two
//! fences taken out they passed five runs: on x86 the notifier's compare-exchange is already a
//! full barrier, and the sleeper's window is a few instructions (PATCHES.md says so).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_lite::StreamExt;
use glommio::channels::shared_channel;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

const ROUNDS: u64 = 20_000;
const BOUND: Duration = Duration::from_secs(120);

/// Waits for `done` or fails, naming what stopped.
fn finished_within_bound(done: &mpsc::Receiver<()>, what: &str) {
    done.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what}: not done within {BOUND:?}: a wake-up was lost"));
}

/// An executor on a thread of its own running `work`.
fn executor<F, Fut>(what: &str, work: F) -> ExecutorJoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(work)
        .unwrap_or_else(|e| panic!("executor {what} starts: {e}"))
}

/// Two executors answer each other over glommio's shared channels, one message in flight:
/// each receive finds its channel empty and parks until the other side's send wakes it.
#[test]
fn two_executors_ping_pong_over_shared_channels() {
    let (to_b, from_a) = shared_channel::new_bounded::<u64>(1);
    let (to_a, from_b) = shared_channel::new_bounded::<u64>(1);
    let a = executor("a", move || async move {
        let tx = to_b.connect().await;
        let rx = from_b.connect().await;
        for i in 0..ROUNDS {
            tx.send(i).await.expect("b is there");
            assert_eq!(rx.recv().await, Some(i + 1));
        }
    });
    let b = executor("b", move || async move {
        let rx = from_a.connect().await;
        let tx = to_a.connect().await;
        for i in 0..ROUNDS {
            assert_eq!(rx.recv().await, Some(i));
            tx.send(i + 1).await.expect("a is there");
        }
    });
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        a.join().expect("a finishes");
        b.join().expect("b finishes");
        let _ = done_tx.send(());
    });
    finished_within_bound(&done, "two executors over shared channels");
}

/// A plain thread (as tokio's threads do for a core) wakes a task of a parked executor: the
/// waker goes through glommio's foreign-wake queue and the executor's sleep notifier.
#[test]
fn a_plain_thread_wakes_a_parked_executor() {
    let (to_core, mut from_thread) = futures_channel::mpsc::unbounded::<u64>();
    let (to_thread, from_core) = mpsc::channel::<u64>();
    let core = executor("core", move || async move {
        while let Some(i) = from_thread.next().await {
            to_thread.send(i + 1).expect("the thread waits");
        }
    });
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        for i in 0..ROUNDS {
            to_core.unbounded_send(i).expect("the executor runs");
            assert_eq!(from_core.recv(), Ok(i + 1));
        }
        drop(to_core);
        core.join().expect("the executor finishes");
        let _ = done_tx.send(());
    });
    finished_within_bound(&done, "a plain thread waking an executor");
}
