//! The gateway's view of the storage cores: routing a key to its replica cores, quorum
//! metadata reads and writes, replicated fragment writes and reads. Talks to cores only through
//! `engine::CoreHandle` (in-process) with `proto` messages; payloads stay `Bytes` end to end.
//!
//! Routing is rendezvous hashing over this node's cores (stable, documented below). It is the
//! single-node placement of the first gateway slice; the `placement` crate's layout → PG →
//! cores mapping replaces it with the cluster issue.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use engine::CoreHandle;
use proto::{ErrorCode, FragmentId, MetaEntry, Request, Response};

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
}

pub struct Backend {
    cores: Vec<CoreHandle>,
    hlc_last: AtomicU64,
    /// The STANDARD policy of this node (`ec::node_policy`).
    policy: placement::ClassPolicy,
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

/// Every core answered `Done` (a write quorum of all replicas).
fn all_done(results: Vec<Result<Response, BackendError>>) -> Result<(), BackendError> {
    for r in results {
        match r? {
            Response::Done => {}
            other => return Err(core_error(other)),
        }
    }
    Ok(())
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

impl Backend {
    pub fn new(cores: Vec<CoreHandle>) -> Backend {
        assert!(!cores.is_empty(), "a node has at least one core");
        Backend {
            policy: crate::ec::node_policy(cores.len()),
            cores,
            hlc_last: AtomicU64::new(0),
        }
    }

    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    /// The scheme new data of `size_bytes` is stored with on this node.
    pub fn policy_for(&self, size_bytes: u64) -> crate::ec::Policy {
        self.policy.scheme_for(size_bytes)
    }

    /// Copies kept of every object and metadata record on this node: 3, or every core when
    /// there are fewer (one core keeps one copy; the server warns at start).
    pub fn replicas(&self) -> usize {
        self.cores.len().min(3)
    }

    /// A hybrid logical timestamp greater than every one this gateway issued.
    pub fn hlc(&self) -> u64 {
        let physical = engine::hlc::physical_now();
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

    /// The `replicas()` cores that own `route_key`, in rendezvous order (highest score first).
    pub fn route(&self, route_key: &[u8]) -> Vec<usize> {
        self.route_n(route_key, self.replicas())
    }

    /// The first `n` cores of `route_key`'s rendezvous order (n ≤ the node's cores).
    pub fn route_n(&self, route_key: &[u8], n: usize) -> Vec<usize> {
        assert!(
            n <= self.cores.len(),
            "a policy never spans more cores than the node has"
        );
        let mut scored: Vec<(u64, usize)> = (0..self.cores.len())
            .map(|i| (stable_hash(&[route_key, &(i as u32).to_le_bytes()]), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored.into_iter().take(n).map(|(_, i)| i).collect()
    }

    pub fn all_cores(&self) -> std::ops::Range<usize> {
        0..self.cores.len()
    }

    pub async fn call(&self, core: usize, request: Request) -> Result<Response, BackendError> {
        Ok(self.cores[core].call(request).await?)
    }

    /// Runs one request per core concurrently; results in the order of `cores`.
    async fn fan_out(
        &self,
        cores: &[usize],
        make: impl Fn() -> Request,
    ) -> Vec<Result<Response, BackendError>> {
        let calls = cores.iter().map(|c| self.call(*c, make()));
        futures::future::join_all(calls).await
    }

    /// Writes a metadata record on every core of `cores`. All must succeed: on one node the
    /// write quorum is every replica (a failed core fails the write rather than silently
    /// leaving fewer copies; repair comes with the cluster issue).
    pub async fn meta_put(
        &self,
        cores: &[usize],
        key: &Bytes,
        value: &Bytes,
        hlc: u64,
    ) -> Result<(), BackendError> {
        let results = self
            .fan_out(cores, || Request::MetaPut {
                key: key.clone(),
                value: value.clone(),
                hlc,
            })
            .await;
        all_done(results)
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
            other => Err(core_error(other)),
        }
    }

    pub async fn meta_delete(
        &self,
        cores: &[usize],
        key: &Bytes,
        hlc: u64,
    ) -> Result<(), BackendError> {
        let results = self
            .fan_out(cores, || Request::MetaDelete {
                key: key.clone(),
                hlc,
            })
            .await;
        all_done(results)
    }

    /// Reads a metadata record from every replica and returns the newest (highest HLC).
    pub async fn meta_get(
        &self,
        cores: &[usize],
        key: &Bytes,
    ) -> Result<Option<MetaEntry>, BackendError> {
        let results = self
            .fan_out(cores, || Request::MetaGet { key: key.clone() })
            .await;
        let mut newest: Option<MetaEntry> = None;
        for r in results {
            match r? {
                Response::Meta(Some(e)) => {
                    if newest.as_ref().is_none_or(|n| e.hlc > n.hlc) {
                        newest = Some(e);
                    }
                }
                Response::Meta(None) => {}
                other => return Err(core_error(other)),
            }
        }
        Ok(newest)
    }

    /// One page of a scan on one core.
    pub async fn meta_scan(
        &self,
        core: usize,
        prefix: &Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    ) -> Result<(Vec<(Bytes, MetaEntry)>, Option<Bytes>), BackendError> {
        let req = Request::MetaScan {
            prefix: prefix.clone(),
            start_after,
            limit,
        };
        match self.call(core, req).await? {
            Response::Scan {
                entries,
                next_start_after,
            } => Ok((entries, next_start_after)),
            other => Err(core_error(other)),
        }
    }

    /// Stores a fragment on every core of `cores`, concurrently.
    pub async fn put_fragment(
        &self,
        cores: &[usize],
        id: FragmentId,
        data: &Bytes,
    ) -> Result<(), BackendError> {
        let results = self
            .fan_out(cores, || Request::PutFragment {
                id,
                data: data.clone(),
            })
            .await;
        all_done(results)
    }

    /// Reads a byte range of a fragment from the first replica that has it intact.
    pub async fn get_fragment(
        &self,
        cores: &[usize],
        id: FragmentId,
        offset_bytes: u64,
        len_bytes: u64,
    ) -> Result<Bytes, BackendError> {
        let mut last = BackendError::NotFound;
        for core in cores {
            let req = Request::GetFragment {
                id,
                offset_bytes,
                len_bytes: Some(len_bytes),
            };
            match self.call(*core, req).await? {
                Response::Fragment(b) if b.len() as u64 == len_bytes => return Ok(b),
                Response::Fragment(_) => last = BackendError::Protocol,
                // Corrupt or missing here: another replica may have it.
                other => last = core_error(other),
            }
        }
        Err(last)
    }

    /// Deletes a fragment from every replica, ignoring replicas that never had it.
    pub async fn delete_fragment(
        &self,
        cores: &[usize],
        id: FragmentId,
    ) -> Result<(), BackendError> {
        let results = self.fan_out(cores, || Request::DeleteFragment { id }).await;
        for r in results {
            match r? {
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
