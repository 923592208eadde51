//! Thread-per-core serving (a node's S3 port): every storage core's glommio executor accepts
//! connections from the port's socket and serves them itself, hyper and s3s included, so a
//! request is parsed, authenticated and answered on the core that accepted it. A request for
//! that core's own data reaches its store without leaving the thread; other cores are reached
//! through their handles (core-to-core channels). The tokio runtime stays for background work:
//! its handle is entered whenever a core polls a connection (`InRuntime`), so the timers and
//! the occasional `tokio::spawn` of the service work unchanged.
//!
//! Connection caps, timeouts, TLS and the shutdown drain are `serve`'s: one registry for the
//! whole server, whichever core accepted. A core far ahead of the others in connections leaves
//! the next one to them for a moment (`accept_share`). `percore gateway` (no cores) serves on tokio
//! (`serve::serve`).
//!
//! Why (#16, "Thread-per-core from socket to disk"): with hyper on tokio threads, every core
//! call was a hop between a tokio worker and a glommio executor each way (a flume send and an
//! eventfd wake-up in, a futex wake-up out), and the 2 tokio workers and 2 cores shared 2 CPUs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::accept_share::{AcceptShare, ACCEPT_DEFER_MAX, ACCEPT_DEFER_POLL};
use crate::core_stream::CoreStream;
use crate::serve::{stopped, Exec, HttpLimits, Service, Shared, ROOM_POLL};
use crate::tls::Tls;

/// A future polled with a tokio runtime entered, on a thread that is not one of its workers.
/// A panic while polling it ends it (logged), as tokio ends a panicking task: glommio would
/// carry the panic out of the core's executor, and a core thread that panics aborts the node.
pub struct InRuntime<F> {
    runtime: tokio::runtime::Handle,
    /// `None` once a poll panicked.
    future: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = ()>> InRuntime<F> {
    pub fn new(runtime: tokio::runtime::Handle, future: F) -> InRuntime<F> {
        InRuntime {
            runtime,
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future<Output = ()>> Future for InRuntime<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(());
        };
        let _entered = this.runtime.enter();
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(polled) => polled,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "an HTTP task on a core panicked: it is dropped");
                // Its drop may panic too: it is the same broken state, and it ends here.
                let broken = this.future.take();
                let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(broken)));
                Poll::Ready(())
            }
        }
    }
}

/// One S3 port served by the cores of a node: `core_task` for each core, then `run` until the
/// shutdown.
pub struct CoreServer {
    shared: Arc<Shared>,
    share: Arc<AcceptShare>,
    runtime: tokio::runtime::Handle,
}

impl CoreServer {
    pub fn new(
        service: Service,
        limits: HttpLimits,
        tls: Option<Arc<Tls>>,
        cores: usize,
        runtime: tokio::runtime::Handle,
    ) -> CoreServer {
        CoreServer {
            shared: Arc::new(Shared::new(service, limits, tls)),
            share: AcceptShare::new(cores),
            runtime,
        }
    }

    /// What core `core` (of the `cores` given to `new`) runs, given the port's socket as a
    /// listener of that core's executor: the accept loop, which spawns each connection on the
    /// same core. Ends at the stop.
    pub fn core_task(
        &self,
        core: usize,
    ) -> impl FnOnce(glommio::net::TcpListener) -> InRuntime<AcceptLoop> + Send + Sync + 'static
    {
        assert!(
            core < self.share.cores(),
            "core {core} of {}",
            self.share.cores()
        );
        let (shared, runtime) = (Arc::clone(&self.shared), self.runtime.clone());
        let share = Arc::clone(&self.share);
        move |listener| {
            let accept = accept_loop(listener, shared, (share, core), runtime.clone());
            InRuntime::new(runtime, Box::pin(accept))
        }
    }

    /// Waits for `shutdown`, stops every core's accept loop and drains the connections (at
    /// most `serve::DRAIN_TIMEOUT`). The caller then stops the cores, which drops whatever a
    /// drain left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.shared.stop_after(shutdown).await;
        self.shared.drain().await;
    }
}

/// A core's accept loop, as `core_task` makes it.
pub type AcceptLoop = Pin<Box<dyn Future<Output = ()>>>;

async fn accept_loop(
    listener: glommio::net::TcpListener,
    shared: Arc<Shared>,
    (share, core): (Arc<AcceptShare>, usize),
    runtime: tokio::runtime::Handle,
) {
    let builder = shared.builder(Exec::Core(runtime.clone()));
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            () = shared.registry.room(ROOM_POLL) => {}
            () = stopped(&mut stop) => break,
        }
        tokio::select! {
            () = my_turn(&share, core) => {}
            () = stopped(&mut stop) => break,
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    crate::serve::accept_failed(&e.into(), &shared.registry).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        // Without it a response written in two pieces waits ~40 ms for a delayed ACK.
        let _ = stream.set_nodelay(true);
        if let Some(connection) = shared.connection(&builder, peer) {
            let held = share.hold(core);
            let served = connection.run(CoreStream::new(stream));
            let served = async move {
                served.await;
                drop(held);
            };
            glommio::spawn_local(InRuntime::new(runtime.clone(), served)).detach();
        }
    }
}

/// Returns once core `core` may accept: it is not ahead of the others (`AcceptShare::ahead`),
/// or it left the port to them for `ACCEPT_DEFER_MAX`.
async fn my_turn(share: &AcceptShare, core: usize) {
    let mut waited = std::time::Duration::ZERO;
    while share.ahead(core) && waited < ACCEPT_DEFER_MAX {
        glommio::timer::sleep(ACCEPT_DEFER_POLL).await;
        waited += ACCEPT_DEFER_POLL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking connection task ends alone; the core's executor goes on with its others.
    #[test]
    fn a_panicking_task_ends_and_the_core_goes_on() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        let ran = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let panicking = glommio::spawn_local(InRuntime::new(handle.clone(), async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    panic!("a handler bug");
                }));
                panicking.await;
                // The executor still runs tasks, and tokio's timers still reach them.
                let (tx, rx) = std::sync::mpsc::channel();
                glommio::spawn_local(InRuntime::new(handle, async move {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    tx.send(()).unwrap();
                }))
                .await;
                rx.try_recv().is_ok()
            })
            .unwrap()
            .join();
        assert!(matches!(ran, Ok(true)), "{ran:?}");
    }
}
