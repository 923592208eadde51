//! Which connections the HTTP server keeps: a global cap and a per-client-address cap, and,
//! when a cap is reached, which connection makes room.
//!
//! A connection is *idle* while no request is in flight on it: between keep-alive requests, and
//! also while it is still sending the headers of its first request (hyper has not dispatched a
//! request yet). A socket that never completes its headers is therefore idle from the moment it
//! is accepted. At a cap the oldest idle connection is closed for the new one (what nginx does
//! with its keep-alive connections when it runs out): a flood of idle or half-sent sockets
//! cannot lock a new client out, and a connection serving a request is never cut. When nothing
//! is idle, the global cap makes new connections wait in the kernel's accept queue and the
//! per-client cap refuses the new connection.
//!
//! Bug that produced the rule: with a plain semaphore of 4096 connections, 4200 unauthenticated
//! sockets holding a partial request made every legitimate GET time out until they closed.
//!
//! [`Metered`] wraps a connection's socket to see a client that stops reading: a write that
//! finds the socket full starts a clock, any successful write stops it (nginx's `send_timeout`).
//!
//! Does not own the timeouts themselves (`serve` runs them per connection) nor the request
//! bodies (`http_body`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The caps a registry enforces.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub connections_max: usize,
    pub per_client_max: usize,
}

/// One connection's shared state: the requests in flight on it and since when it is idle.
#[derive(Debug)]
pub struct ConnState {
    epoch: Instant,
    in_flight: AtomicU32,
    /// Microseconds from `epoch` to the moment the connection last became idle.
    idle_since_us: AtomicU64,
    /// Microseconds from `epoch` (plus one, so 0 means none) since a write to the socket
    /// found it full with no write succeeding since: the client is not reading.
    unread_since_us: AtomicU64,
    /// Notified when the registry sheds this connection: its task drops it at once.
    shed: Notify,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            epoch: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since_us: AtomicU64::new(0),
            unread_since_us: AtomicU64::new(0),
            shed: Notify::new(),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// A request starts; it ends when the returned guard is dropped (with the response body).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            state: Arc::clone(self),
        }
    }

    /// How long the connection has been idle, or `None` while a request is in flight.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) != 0 {
            return None;
        }
        let since = self.idle_since_us.load(Ordering::Acquire);
        Some(Duration::from_micros(self.now_us().saturating_sub(since)))
    }

    /// A write to the socket found it full (`true`: the first such time is kept), or a write
    /// succeeded (`false`).
    fn write_blocked(&self, blocked: bool) {
        if blocked {
            let now = self.now_us() + 1;
            let _ =
                self.unread_since_us
                    .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        } else if self.unread_since_us.load(Ordering::Relaxed) != 0 {
            self.unread_since_us.store(0, Ordering::Release);
        }
    }

    /// How long the socket has stayed full (the client reading nothing), if it is.
    pub fn unread_for(&self) -> Option<Duration> {
        match self.unread_since_us.load(Ordering::Acquire) {
            0 => None,
            since => Some(Duration::from_micros(
                (self.now_us() + 1).saturating_sub(since),
            )),
        }
    }

    /// Ends when the registry sheds this connection.
    pub async fn shed(&self) {
        self.shed.notified().await;
    }
}

/// A request in flight on a connection (see [`ConnState::begin`]).
#[derive(Debug)]
pub struct InFlight {
    state: Arc<ConnState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.state.now_us();
        self.state.idle_since_us.store(now, Ordering::Release);
        let before = self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a request ended twice");
    }
}

/// A connection's socket that records, in its `ConnState`, when writes stop making progress.
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, state: Arc<ConnState>) -> Metered<S> {
        Metered { inner, state }
    }

    fn record(&self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => self.state.write_blocked(false),
            Poll::Pending => self.state.write_blocked(true),
            Poll::Ready(_) => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.record(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug)]
struct Entry {
    client: IpAddr,
    state: Arc<ConnState>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
}

impl Inner {
    /// The connection idle the longest, among those of `client` when given.
    fn oldest_idle(&self, client: Option<IpAddr>) -> Option<u64> {
        self.conns
            .iter()
            .filter(|(_, e)| client.is_none_or(|c| e.client == c))
            .filter_map(|(&id, e)| e.state.idle_for().map(|idle| (idle, std::cmp::Reverse(id))))
            .max()
            .map(|(_, std::cmp::Reverse(id))| id)
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        let count = self
            .per_client
            .get_mut(&entry.client)
            .expect("every connection is counted under its client");
        *count -= 1;
        if *count == 0 {
            self.per_client.remove(&entry.client);
        }
        Some(entry)
    }

    fn shed(&mut self, id: u64) {
        if let Some(entry) = self.remove(id) {
            entry.state.shed.notify_one();
        }
    }
}

/// The connections of one server.
#[derive(Debug)]
pub struct Registry {
    caps: Caps,
    inner: Mutex<Inner>,
    /// Notified when a connection leaves.
    left: Notify,
    /// Connections closed to make room (global and per-client caps, descriptor exhaustion).
    shed_total: AtomicU64,
    /// Connections refused at the per-client cap.
    refused_total: AtomicU64,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client already holds `per_client_max` connections, all busy.
    PerClient,
    /// The server holds `connections_max` connections, all busy.
    Full,
}

impl Registry {
    pub fn new(caps: Caps) -> Arc<Registry> {
        assert!(caps.connections_max > 0 && caps.per_client_max > 0);
        Arc::new(Registry {
            caps,
            inner: Mutex::new(Inner::default()),
            left: Notify::new(),
            shed_total: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock but an invariant assert, which aborts the
        // process's serving anyway: a poisoned lock's data is still consistent enough to read.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (connections shed to make room, connections refused at the per-client cap).
    pub fn counters(&self) -> (u64, u64) {
        (
            self.shed_total.load(Ordering::Relaxed),
            self.refused_total.load(Ordering::Relaxed),
        )
    }

    /// Waits until a new connection could be admitted: below the cap, or one is idle.
    /// Rechecks every `poll` (a connection turning idle notifies nobody).
    pub async fn room(&self, poll: Duration) {
        loop {
            let left = self.left.notified();
            {
                let inner = self.lock();
                if inner.conns.len() < self.caps.connections_max
                    || inner.oldest_idle(None).is_some()
                {
                    return;
                }
            }
            let _ = tokio::time::timeout(poll, left).await;
        }
    }

    /// Admits a connection from `client`, closing the oldest idle one where a cap is reached.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Ticket, Refused> {
        let mut inner = self.lock();
        if inner.per_client.get(&client).copied().unwrap_or(0) >= self.caps.per_client_max {
            let Some(id) = inner.oldest_idle(Some(client)) else {
                self.refused_total.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::PerClient);
            };
            inner.shed(id);
            self.shed_total.fetch_add(1, Ordering::Relaxed);
        }
        if inner.conns.len() >= self.caps.connections_max {
            let Some(id) = inner.oldest_idle(None) else {
                return Err(Refused::Full);
            };
            inner.shed(id);
            self.shed_total.fetch_add(1, Ordering::Relaxed);
        }
        assert!(inner.conns.len() < self.caps.connections_max);
        let id = inner.next_id;
        inner.next_id += 1;
        let state = Arc::new(ConnState::new());
        inner.conns.insert(
            id,
            Entry {
                client,
                state: Arc::clone(&state),
            },
        );
        *inner.per_client.entry(client).or_insert(0) += 1;
        Ok(Ticket {
            registry: Arc::clone(self),
            id,
            state,
        })
    }

    /// Closes the connection idle the longest (the process ran out of file descriptors).
    /// Returns whether there was one.
    pub fn shed_oldest_idle(&self) -> bool {
        let mut inner = self.lock();
        let Some(id) = inner.oldest_idle(None) else {
            return false;
        };
        inner.shed(id);
        self.shed_total.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Waits until every connection has left.
    pub async fn drained(&self) {
        loop {
            let left = self.left.notified();
            if self.is_empty() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), left).await;
        }
    }
}

/// An admitted connection; it leaves the registry when the ticket is dropped.
#[derive(Debug)]
pub struct Ticket {
    registry: Arc<Registry>,
    id: u64,
    pub state: Arc<ConnState>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Already gone when it was shed.
        let _ = self.registry.lock().remove(self.id);
        self.registry.left.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn registry(connections_max: usize, per_client_max: usize) -> Arc<Registry> {
        Registry::new(Caps {
            connections_max,
            per_client_max,
        })
    }

    #[test]
    fn full_of_idle_connections_sheds_the_oldest() {
        let reg = registry(3, 3);
        let c1 = reg.admit(ip(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let c2 = reg.admit(ip(2)).unwrap();
        let c3 = reg.admit(ip(3)).unwrap();
        let _busy = c1.state.begin(); // c1 is the oldest but busy: c2 goes
        let c4 = reg.admit(ip(4)).unwrap();
        assert_eq!(reg.len(), 3);
        assert_eq!(reg.counters(), (1, 0));
        drop(c2); // already shed: nothing more leaves
        assert_eq!(reg.len(), 3);
        drop((c3, c4));
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn full_of_busy_connections_refuses() {
        let reg = registry(2, 2);
        let c1 = reg.admit(ip(1)).unwrap();
        let c2 = reg.admit(ip(2)).unwrap();
        let _g = (c1.state.begin(), c2.state.begin());
        assert_eq!(reg.admit(ip(3)).unwrap_err(), Refused::Full);
        assert!(!reg.shed_oldest_idle());
    }

    #[test]
    fn per_client_cap_sheds_that_clients_idle_or_refuses() {
        let reg = registry(10, 2);
        let other = reg.admit(ip(9)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let c1 = reg.admit(ip(1)).unwrap();
        let c2 = reg.admit(ip(1)).unwrap();
        let _busy_b = c2.state.begin();
        let c3 = reg.admit(ip(1)).unwrap(); // c1 (idle) goes, not the older `other`
        assert_eq!(reg.len(), 3);
        let _busy_c = c3.state.begin();
        assert_eq!(reg.admit(ip(1)).unwrap_err(), Refused::PerClient);
        assert_eq!(reg.counters(), (1, 1));
        drop((c1, other));
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn idle_time_counts_from_the_last_request() {
        let reg = registry(1, 1);
        let c1 = reg.admit(ip(1)).unwrap();
        let req = c1.state.begin();
        assert_eq!(c1.state.idle_for(), None);
        drop(req);
        assert!(c1
            .state
            .idle_for()
            .is_some_and(|idle| idle < Duration::from_secs(1)));
    }
}
