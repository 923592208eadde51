//! Bucket notification delivery: this node's durable queue of events and the one worker that
//! POSTs them to the operator's webhooks.
//!
//! The queue is a directory, `DATA/notify`, of one file per event, `SEQ.json` (SEQ a 20-digit
//! sequence number, so names sort in queue order), holding `{"webhook": NAME, "event": {…}}`.
//! A file is written as `SEQ.tmp`, fsynced, renamed, and the directory fsynced before the
//! write request answers: an event the client saw acknowledged survives a crash. A file is
//! removed only after its webhook answered 2xx (at-least-once: a crash between the answer and
//! the removal delivers it again). Files rather than the metadata store: the queue is this
//! node's, never replicated (the node that took the write sends its events), and a directory
//! of renamed files has no format to recover beyond "a name ending in `.json` is complete".
//!
//! Bounded: at most [`QUEUE_EVENTS_MAX`] events wait; past that, an event is dropped, counted
//! (`percore_notify_events{result="dropped"}`) and logged — the object write itself has
//! already succeeded and is never refused for its notification. One worker, one request at a
//! time, each with a timeout; a webhook that fails is retried with exponential backoff capped
//! at [`BACKOFF_MAX`], while the other webhooks' events keep flowing.
//!
//! Not owned here: which events a write produces (`notify`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::notify::{Rule, Webhooks};
use crate::ttl_cache::TtlCache;

/// Most events waiting in one node's queue.
pub const QUEUE_EVENTS_MAX: u64 = 100_000;
/// Most events the worker takes from the directory per pass.
const PASS_EVENTS_MAX: usize = 1000;
/// The first retry's wait and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// One delivery attempt's connect and answer deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest event file the worker reads, and the longest status line it reads.
const EVENT_BYTES_MAX: u64 = 64 * 1024;
const STATUS_LINE_BYTES_MAX: usize = 1024;
/// How long a bucket's rules are kept before being read again (a change through this
/// gateway is seen at once: `forget`).
const RULES_TTL: Duration = Duration::from_secs(2);
const RULES_CACHED_MAX: usize = 10_000;
const RULES_CACHED_BYTES_MAX: usize = 16 << 20;

/// The operator's webhooks, this node's queue and the buckets' rules as last read.
pub struct Hub {
    pub(crate) webhooks: Webhooks,
    /// The queue's directory (`None`: a service without one, which queues nothing).
    dir: Option<PathBuf>,
    pub(crate) rules: TtlCache<Arc<Vec<Rule>>>,
    next_seq: AtomicU64,
    depth: AtomicU64,
    wake: tokio::sync::Notify,
    /// Other processes may have stored rules (a cluster's gateways and nodes that serve S3
    /// share the buckets): rules are read on every write even without webhooks here, so an
    /// event for a webhook this process lacks is counted and logged as dropped, not ignored.
    pub(crate) shared: bool,
    /// The webhooks this process lacks that a rule named, each logged once.
    pub(crate) lacking: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new(Webhooks::new(), None, 0, 0)
    }
}

impl Hub {
    fn new(webhooks: Webhooks, dir: Option<PathBuf>, next_seq: u64, depth: u64) -> Hub {
        Hub {
            webhooks,
            dir,
            rules: TtlCache::new(RULES_TTL, RULES_CACHED_MAX, RULES_CACHED_BYTES_MAX),
            next_seq: AtomicU64::new(next_seq),
            depth: AtomicU64::new(depth),
            wake: tokio::sync::Notify::new(),
            shared: false,
            lacking: std::sync::Mutex::default(),
        }
    }

    /// The hub of a process of a cluster (`shared`).
    #[must_use]
    pub fn shared(mut self) -> Hub {
        self.shared = true;
        self
    }

    /// The hub of a process (a node that serves S3, a gateway) whose data directory is `data`:
    /// its queue is `data/notify`, created if missing; leftover `.tmp` files (a crash
    /// mid-write, never acknowledged) are removed.
    pub fn open(data: &Path, webhooks: Webhooks) -> std::io::Result<Hub> {
        let dir = data.join("notify");
        std::fs::create_dir_all(&dir)?;
        let (mut last, mut depth) = (None, 0u64);
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                std::fs::remove_file(dir.join(&*name))?;
            } else if let Some(seq) = seq_of(&name) {
                last = last.max(Some(seq));
                depth += 1;
            }
        }
        crate::metrics::global().notify_queued(depth);
        Ok(Hub::new(
            webhooks,
            Some(dir),
            last.map_or(0, |s| s + 1),
            depth,
        ))
    }

    /// Appends an event for `webhook` to the queue, durably, before returning.
    pub(crate) async fn enqueue(&self, webhook: &str, event: serde_json::Value) {
        let metrics = crate::metrics::global();
        let Some(dir) = self.dir.clone() else {
            metrics.notify_event("dropped");
            return;
        };
        if self.depth.fetch_add(1, Ordering::SeqCst) >= QUEUE_EVENTS_MAX {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            metrics.notify_event("dropped");
            tracing::warn!("notification queue full ({QUEUE_EVENTS_MAX} events): event dropped");
            return;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({ "webhook": webhook, "event": event }).to_string();
        let written = tokio::task::spawn_blocking(move || write_durably(&dir, seq, &body)).await;
        match written {
            Ok(Ok(())) => {
                metrics.notify_event("queued");
                metrics.notify_queued(self.depth.load(Ordering::SeqCst));
                self.wake.notify_one();
            }
            Ok(Err(e)) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                metrics.notify_event("dropped");
                tracing::error!("notification queue write failed: {e}: event dropped");
            }
            Err(e) => panic!("notification queue writer: {e}"),
        }
    }

    /// Runs the delivery worker on `runtime` (nothing to do without webhooks).
    pub fn start(self: &Arc<Hub>, runtime: &tokio::runtime::Handle) {
        if self.dir.is_some() && !self.webhooks.is_empty() {
            runtime.spawn(self.clone().deliver());
        }
    }

    async fn deliver(self: Arc<Hub>) {
        let dir = self.dir.clone().expect("started with a queue");
        let mut failures = 0u32;
        loop {
            let d = dir.clone();
            let files = tokio::task::spawn_blocking(move || pending(&d))
                .await
                .expect("listing the notification queue");
            let files = files.unwrap_or_else(|e| {
                tracing::error!("listing the notification queue: {e}");
                Vec::new()
            });
            let failed = self.pass(&files).await;
            if failed {
                failures = failures.saturating_add(1);
                tokio::time::sleep(backoff(failures)).await;
            } else {
                failures = 0;
                if files.is_empty() {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
                }
            }
        }
    }

    /// Tries each file once, skipping the webhooks that failed in this pass; whether any did.
    async fn pass(&self, files: &[PathBuf]) -> bool {
        let metrics = crate::metrics::global();
        let mut down = BTreeSet::new();
        for path in files {
            let Some((webhook, body)) = read_event(path).await else {
                // Unreadable: kept aside under another name, never retried in a loop.
                tracing::error!(
                    "notification event {} does not parse: set aside",
                    path.display()
                );
                set_aside(path).await;
                self.forget_one(metrics, "dropped");
                continue;
            };
            if down.contains(&webhook) {
                continue;
            }
            let Some(url) = self.webhooks.get(&webhook) else {
                tracing::error!("notification event for unknown webhook {webhook:?}: set aside");
                set_aside(path).await;
                self.forget_one(metrics, "dropped");
                continue;
            };
            match post(url, &body).await {
                Ok(status) if (200..300).contains(&status) => {
                    let p = path.clone();
                    let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(p))
                        .await
                        .expect("removing a delivered event");
                    if let Err(e) = removed {
                        tracing::error!("removing delivered event {}: {e}", path.display());
                    }
                    self.forget_one(metrics, "delivered");
                }
                outcome => {
                    tracing::debug!("webhook {webhook}: {outcome:?}");
                    metrics.notify_event("failed_attempts");
                    down.insert(webhook);
                }
            }
        }
        !down.is_empty()
    }

    fn forget_one(&self, metrics: &crate::metrics::Metrics, result: &str) {
        let before = self.depth.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "the queue's depth counts its files");
        metrics.notify_event(result);
        metrics.notify_queued(before - 1);
    }
}

/// The sequence number of a queue file's name.
fn seq_of(name: &str) -> Option<u64> {
    name.strip_suffix(".json")?.parse().ok()
}

/// The wait before retry number `failures` (1, 2, …): doubling from the minimum, capped.
fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    (BACKOFF_MIN * factor).min(BACKOFF_MAX)
}

fn write_durably(dir: &Path, seq: u64, body: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{seq:020}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(format!("{seq:020}.json")))?;
    std::fs::File::open(dir)?.sync_all()
}

/// The queue's first files, in queue order.
fn pending(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(seq) = seq_of(&entry?.file_name().to_string_lossy()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    seqs.truncate(PASS_EVENTS_MAX);
    Ok(seqs
        .into_iter()
        .map(|s| dir.join(format!("{s:020}.json")))
        .collect())
}

/// Renames an event file that cannot be delivered to `SEQ.bad`, out of the queue.
async fn set_aside(path: &Path) {
    let (from, to) = (path.to_owned(), path.with_extension("bad"));
    let renamed = tokio::task::spawn_blocking(move || std::fs::rename(from, to))
        .await
        .expect("setting an event aside");
    if let Err(e) = renamed {
        tracing::error!("setting {} aside: {e}", path.display());
    }
}

/// A queue file's webhook and the body to POST.
async fn read_event(path: &Path) -> Option<(String, Vec<u8>)> {
    let p = path.to_owned();
    let text = tokio::task::spawn_blocking(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(p)?, EVENT_BYTES_MAX),
            &mut text,
        )
        .map(|_| text)
    })
    .await
    .expect("reading an event")
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let webhook = v.get("webhook")?.as_str()?.to_owned();
    let body = serde_json::to_vec(v.get("event")?).ok()?;
    Some((webhook, body))
}

/// `http://HOST[:PORT][/PATH]` as (host:port, host, path).
pub fn parse_url(url: &str) -> Option<(String, String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Some((addr, authority.to_owned(), path.to_owned()))
}

/// POSTs `body` as JSON to `url`; the answer's status.
async fn post(url: &str, body: &[u8]) -> std::io::Result<u16> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad answer");
    let (addr, host, path) = parse_url(url)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad url"))?;
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(&addr).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(body).await?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < STATUS_LINE_BYTES_MAX && !line.ends_with(b"\r\n") {
            if conn.read(&mut byte).await? == 0 {
                break;
            }
            line.push(byte[0]);
        }
        // "HTTP/1.1 200 OK"
        let line = std::str::from_utf8(&line).map_err(|_| bad())?;
        let mut parts = line.split(' ');
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(bad());
        }
        parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), BACKOFF_MIN);
        assert_eq!(backoff(2), BACKOFF_MIN * 2);
        assert_eq!(backoff(100), BACKOFF_MAX);
    }

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/a/b"),
            Some((
                "127.0.0.1:8080".into(),
                "127.0.0.1:8080".into(),
                "/a/b".into()
            ))
        );
        assert_eq!(
            parse_url("http://h"),
            Some(("h:80".into(), "h".into(), "/".into()))
        );
        assert_eq!(parse_url("https://h/"), None);
        assert_eq!(parse_url("http://h/a b"), None);
        assert_eq!(parse_url("http:///x"), None);
    }

    #[test]
    fn the_queue_survives_reopening() {
        let d = tempfile::tempdir().unwrap();
        write_durably(&d.path().join("notify"), 0, "{}").unwrap_err();
        let hub = Hub::open(d.path(), Webhooks::new()).unwrap();
        assert_eq!(hub.next_seq.load(Ordering::SeqCst), 0);
        let q = d.path().join("notify");
        write_durably(&q, 7, "{}").unwrap();
        std::fs::write(q.join("00000000000000000009.tmp"), "torn").unwrap();
        let hub = Hub::open(d.path(), Webhooks::new()).unwrap();
        assert_eq!(hub.next_seq.load(Ordering::SeqCst), 8);
        assert_eq!(hub.depth.load(Ordering::SeqCst), 1);
        assert!(!q.join("00000000000000000009.tmp").exists());
        assert_eq!(
            pending(&q).unwrap(),
            vec![q.join("00000000000000000007.json")]
        );
    }
}
