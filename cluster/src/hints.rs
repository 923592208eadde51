//! Hinted repair: a write acknowledged by its quorum but missed by some cores (down, full,
//! failing) leaves one **hint** per missed core, a metadata record on each of the first
//! [`HINT_HOLDERS`] cores that took the write. A repair pass, run by every gateway over the cores of its own node, replays hints
//! whose target is reachable again: a missed metadata record is copied (same HLC, so
//! last-writer-wins makes the copy idempotent), a missed fragment is copied from a replica or
//! rebuilt from any k shards of its stripe. A replayed hint is deleted; a hint whose data is
//! gone everywhere (the object was overwritten or deleted since) is dropped.
//!
//! Keys (big-endian core numbers so one target's hints scan together):
//! - `H` ‖ `M` ‖ target core u32 ‖ record key → empty value;
//! - `H` ‖ `F` ‖ target core u32 ‖ fragment id (16 bytes) → stripe: kind u8 (0 replicas,
//!   1 EC) ‖ k u8 ‖ m u8 ‖ count u16 ‖ core u32 × count (fragment i of the stripe on the i-th;
//!   all little-endian).
//!
//! Core numbers are indices into the backend's core list (the layout's core order; during a
//! layout change the union of both versions, numbered as the new layout numbers its cores:
//! `moves::Transition::new` refuses a change that would renumber them), so a hint names the
//! same core before, during and after a change. A fragment hint for a position a cut-over
//! group gave away is dropped (`Transition::left`).
//!
//! Not owned here: scrubbing (finding damage nobody wrote down) and moving data for layout
//! changes (`moves`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proto::{ErrorCode, FragmentId, MetaVersion, Request, Response};

use crate::backend::{Backend, BackendError, Fanned};
use crate::ec::Policy;

/// How many cores keep each hint: the first cores that took the write, which the layout
/// spreads over failure domains, so a hint outlives the loss of one holder (its disk, its
/// node). A hint is replayed by each holder's node; replays are idempotent.
pub const HINT_HOLDERS: usize = 2;

const TAG_META: u8 = b'M';
const TAG_FRAGMENT: u8 = b'F';
/// Hints one scan request reads.
const PASS_HINTS_MAX: u32 = 1000;
/// Replays (each a few core calls) one pass makes per holder at most.
const PASS_REPLAYS_MAX: u32 = 1000;

fn hint_key(tag: u8, target: usize, rest: &[u8]) -> Bytes {
    let mut k = BytesMut::with_capacity(6 + rest.len());
    k.put_u8(b'H');
    k.put_u8(tag);
    k.put_u32(target as u32);
    k.put_slice(rest);
    k.freeze()
}

fn encode_stripe(policy: Policy, cores: &[usize]) -> Bytes {
    let mut v = BytesMut::with_capacity(5 + 4 * cores.len());
    match policy {
        Policy::Replicas(_) => v.put_slice(&[0, 0, 0]),
        Policy::Ec { k, m } => v.put_slice(&[1, k, m]),
    }
    v.put_u16_le(cores.len() as u16);
    for c in cores {
        v.put_u32_le(*c as u32);
    }
    v.freeze()
}

fn decode_stripe(mut v: Bytes, core_count: usize) -> Option<(Policy, Vec<usize>)> {
    if v.remaining() < 5 {
        return None;
    }
    let (kind, k, m) = (v.get_u8(), v.get_u8(), v.get_u8());
    let n = usize::from(v.get_u16_le());
    if v.remaining() != 4 * n {
        return None;
    }
    let cores: Vec<usize> = (0..n).map(|_| v.get_u32_le() as usize).collect();
    if cores.iter().any(|c| *c >= core_count) {
        return None;
    }
    let policy = match kind {
        0 => Policy::Replicas(n as u8),
        1 if usize::from(k) + usize::from(m) == n && k > 0 => Policy::Ec { k, m },
        _ => return None,
    };
    Some((policy, cores))
}

/// The id of shard `shard` of the stripe `id` belongs to (records::fragment_id: the last
/// byte is the shard index).
fn sibling(id: FragmentId, shard: usize) -> FragmentId {
    let mut s = id;
    s.0[15] = shard as u8;
    s
}

/// What one repair pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RepairStats {
    pub repaired: u64,
    pub dropped: u64,
    pub pending: u64,
}

enum Outcome {
    Repaired,
    /// Nothing left to copy (overwritten or deleted since): the hint is obsolete.
    Gone,
    /// The target or the sources are not reachable yet.
    Later,
}

impl Backend {
    /// Records a hint for every core of a metadata write that did not take it, on the first
    /// [`HINT_HOLDERS`] cores that did.
    pub(crate) async fn hint_missed_meta(&self, fanned: &Fanned, key: &Bytes) {
        let holders = fanned.done(HINT_HOLDERS);
        for target in fanned.missed() {
            let hint = hint_key(TAG_META, target, key);
            self.put_hint(&holders, hint, Bytes::new()).await;
        }
    }

    /// Records a hint for every missed shard `(core, id)` of a stripe stored on `stripe_cores`
    /// under `policy`, on the first [`HINT_HOLDERS`] cores that took their shard.
    pub(crate) async fn hint_missed_fragments(
        &self,
        missed: &[(usize, FragmentId)],
        policy: Policy,
        stripe_cores: &[usize],
        fanned: &Fanned,
    ) {
        let holders = fanned.done(HINT_HOLDERS);
        let value = encode_stripe(policy, stripe_cores);
        for (target, id) in missed {
            let hint = hint_key(TAG_FRAGMENT, *target, &id.0);
            self.put_hint(&holders, hint, value.clone()).await;
        }
    }

    /// Stores a hint on every holder at once; each holder's repair pass replays it (a replay
    /// is idempotent: a metadata copy keeps its HLC, a fragment is rebuilt only where missing).
    async fn put_hint(&self, holders: &[usize], key: Bytes, value: Bytes) {
        let hlc = self.hlc();
        let puts = holders.iter().map(|&holder| {
            let request = Request::MetaPut {
                key: key.clone(),
                value: value.clone(),
                hlc,
            };
            async move { (holder, self.call(holder, request).await) }
        });
        for (holder, r) in futures::future::join_all(puts).await {
            if !matches!(r, Ok(Response::Done)) {
                tracing::warn!(core = %self.core_name(holder), "a repair hint could not be stored");
            }
        }
    }

    /// One pass over the hints held by `holders` (this node's cores): replays those whose
    /// target answers again.
    pub async fn repair_pass(&self, holders: &[usize]) -> RepairStats {
        let mut stats = RepairStats::default();
        for &holder in holders {
            self.repair_holder(holder, &mut stats).await;
        }
        stats
    }

    /// Every hint `holder` keeps, page by page: hints for a core still down are counted and
    /// skipped without I/O, so they never hold up the others; at most `PASS_REPLAYS_MAX`
    /// replays per pass bound its time.
    async fn repair_holder(&self, holder: usize, stats: &mut RepairStats) {
        let mut cursor: Option<Bytes> = None;
        let mut replays = 0;
        loop {
            let req = Request::MetaScan {
                prefix: Bytes::from_static(b"H"),
                start_after: cursor.clone(),
                limit: PASS_HINTS_MAX,
            };
            let Ok(Response::Scan {
                entries,
                next_start_after,
            }) = self.call(holder, req).await
            else {
                return;
            };
            for (hint, entry) in entries {
                cursor = Some(hint.clone());
                if replays >= PASS_REPLAYS_MAX || self.target_down(&hint) {
                    stats.pending += 1;
                    continue;
                }
                replays += 1;
                match self.replay(holder, &hint, entry.value).await {
                    Outcome::Later => {
                        stats.pending += 1;
                        continue;
                    }
                    Outcome::Repaired => stats.repaired += 1,
                    Outcome::Gone => stats.dropped += 1,
                }
                let hlc = self.hlc();
                let _ = self
                    .call(holder, Request::MetaDelete { key: hint, hlc })
                    .await;
            }
            if next_start_after.is_none() {
                return;
            }
        }
    }

    /// Whether the core a hint is for is marked down (its replay would fail at once).
    fn target_down(&self, hint: &Bytes) -> bool {
        hint.get(2..6)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .is_some_and(|t| t < self.core_count() && self.is_down(t))
    }

    async fn replay(&self, holder: usize, hint: &Bytes, value: Bytes) -> Outcome {
        if hint.len() < 6 {
            return Outcome::Gone;
        }
        let target = u32::from_be_bytes(hint[2..6].try_into().expect("4 bytes")) as usize;
        // A core past the layout's, or of a removed node, never takes data again.
        if target >= self.core_count() || self.is_gone(target) {
            return Outcome::Gone;
        }
        if self.is_down(target) {
            return Outcome::Later;
        }
        let rest = hint.slice(6..);
        match hint[1] {
            TAG_META => self.replay_meta(holder, target, rest).await,
            TAG_FRAGMENT if rest.len() == 16 => {
                let id = FragmentId(rest[..].try_into().expect("16 bytes"));
                // Another holder of the same hint may have replayed it already: a fragment
                // the target reads back whole is not rebuilt again.
                let probe = Request::GetFragment {
                    id,
                    offset_bytes: 0,
                    len_bytes: Some(1),
                };
                if matches!(self.call(target, probe).await, Ok(Response::Fragment(_))) {
                    return Outcome::Repaired;
                }
                match decode_stripe(value, self.core_count()) {
                    // A position a layout change took from the target since: its fragments
                    // there were retired, a replay would leave an orphan.
                    Some((_, cores))
                        if self
                            .last_transition()
                            .is_some_and(|t| t.left(&cores, target)) =>
                    {
                        Outcome::Gone
                    }
                    Some((policy, cores)) => self.replay_fragment(target, id, policy, &cores).await,
                    None => Outcome::Gone,
                }
            }
            _ => Outcome::Gone,
        }
    }

    async fn replay_meta(&self, holder: usize, target: usize, key: Bytes) -> Outcome {
        let current = self
            .call(holder, Request::MetaGetVersioned { key: key.clone() })
            .await;
        let Ok(Response::MetaVersioned(Some(v))) = current else {
            return Outcome::Gone;
        };
        let req = copy_request(key, v);
        match self.call(target, req).await {
            Ok(Response::Done) => Outcome::Repaired,
            _ => Outcome::Later,
        }
    }

    /// Rewrites fragment `id` on `target` from the other fragments of its stripe (a replica,
    /// or any k shards of an EC stripe stored under `policy` on `cores`, in shard order): the
    /// repair of a fragment a read found missing or damaged there. `Ok(false)` when nothing
    /// is left to rebuild it from (the version was deleted since); an error when the target
    /// or the sources cannot be reached now.
    pub async fn repair_fragment(
        &self,
        target: usize,
        id: FragmentId,
        policy: Policy,
        cores: &[usize],
    ) -> Result<bool, BackendError> {
        match self.replay_fragment(target, id, policy, cores).await {
            Outcome::Repaired => Ok(true),
            Outcome::Gone => Ok(false),
            Outcome::Later => Err(BackendError::Core {
                code: ErrorCode::Busy,
                message: format!(
                    "fragment {id:?}: {} or the stripe's other fragments cannot be reached now",
                    self.core_name(target)
                ),
            }),
        }
    }

    async fn replay_fragment(
        &self,
        target: usize,
        id: FragmentId,
        policy: Policy,
        cores: &[usize],
    ) -> Outcome {
        let data = match policy {
            Policy::Replicas(_) => {
                let sources: Vec<usize> = cores.iter().copied().filter(|c| *c != target).collect();
                self.read_whole(&sources, id).await
            }
            Policy::Ec { k, m } => self.rebuild_shard(target, id, k, m, cores).await,
        };
        let data = match data {
            Ok(d) => d,
            Err(BackendError::NotFound) => return Outcome::Gone,
            Err(_) => return Outcome::Later,
        };
        match self.call(target, Request::PutFragment { id, data }).await {
            Ok(Response::Done) => Outcome::Repaired,
            _ => Outcome::Later,
        }
    }

    /// A whole fragment from the first of `cores` that has it; NotFound only when every core
    /// answered that it has none.
    pub(crate) async fn read_whole(
        &self,
        cores: &[usize],
        id: FragmentId,
    ) -> Result<Bytes, BackendError> {
        let mut all_missing = true;
        for &c in cores {
            let req = Request::GetFragment {
                id,
                offset_bytes: 0,
                len_bytes: None,
            };
            match self.call(c, req).await {
                Ok(Response::Fragment(b)) => return Ok(b),
                Ok(Response::Error {
                    code: ErrorCode::NotFound,
                    ..
                }) => {}
                _ => all_missing = false,
            }
        }
        Err(if all_missing {
            BackendError::NotFound
        } else {
            BackendError::Protocol
        })
    }

    /// Shard `id` of an EC stripe rebuilt from any k of the others.
    pub(crate) async fn rebuild_shard(
        &self,
        target: usize,
        id: FragmentId,
        k: u8,
        m: u8,
        cores: &[usize],
    ) -> Result<Bytes, BackendError> {
        let shard = usize::from(id.0[15]);
        let reads = cores
            .iter()
            .enumerate()
            .filter(|(i, c)| *i != shard && **c != target)
            .map(|(i, &c)| async move { (i, self.read_whole(&[c], sibling(id, i)).await) });
        let results = futures::future::join_all(reads).await;
        let missing = results
            .iter()
            .filter(|(_, r)| matches!(r, Err(BackendError::NotFound)))
            .count();
        let available: Vec<(usize, Bytes)> = results
            .into_iter()
            .filter_map(|(i, r)| r.ok().map(|b| (i, b)))
            .collect();
        if available.len() < usize::from(k) {
            return Err(if missing + usize::from(k) >= cores.len() {
                BackendError::NotFound
            } else {
                BackendError::Protocol
            });
        }
        let data =
            crate::ec::decode_stripe(k, m, &available).map_err(|message| BackendError::Core {
                code: ErrorCode::Corrupt,
                message,
            })?;
        if shard < usize::from(k) {
            return Ok(data[shard].clone());
        }
        let mut stripe = BytesMut::with_capacity(data.iter().map(Bytes::len).sum());
        for d in &data {
            stripe.extend_from_slice(d);
        }
        let shards = crate::ec::encode_stripe(&stripe.freeze(), k, m).map_err(|message| {
            BackendError::Core {
                code: ErrorCode::Internal,
                message,
            }
        })?;
        Ok(shards[shard].clone())
    }
}

/// The write that copies version `v` of `key` (same HLC).
fn copy_request(key: Bytes, v: MetaVersion) -> Request {
    if v.deleted {
        Request::MetaDelete { key, hlc: v.hlc }
    } else {
        Request::MetaPut {
            key,
            value: v.value,
            hlc: v.hlc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_values_round_trip_and_reject_garbage() {
        let v = encode_stripe(Policy::Ec { k: 4, m: 2 }, &[5, 1, 2, 3, 4, 0]);
        assert_eq!(
            decode_stripe(v.clone(), 6),
            Some((Policy::Ec { k: 4, m: 2 }, vec![5, 1, 2, 3, 4, 0]))
        );
        assert_eq!(decode_stripe(v.clone(), 5), None, "core out of range");
        assert_eq!(decode_stripe(v.slice(..7), 6), None, "truncated");
        let r = encode_stripe(Policy::Replicas(3), &[0, 1, 2]);
        assert_eq!(
            decode_stripe(r, 3),
            Some((Policy::Replicas(3), vec![0, 1, 2]))
        );
        assert_eq!(sibling(FragmentId([7; 16]), 3).0[15], 3);
    }
}
