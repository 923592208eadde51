//! The orphan sweep (issue 13 item 7): fragments that no record references, older than a
//! grace period, are deleted from this process's cores. They are what a crash between a
//! write's data and its head leaves (the head is written last), and what a retirement that
//! missed a core leaves.
//!
//! A sweep, run at the end of each scrub pass (`scrub::run`), round by round:
//! 1. **Candidates**: the fragments of this process's cores (`Request::ListFragments`, by index
//!    shard, at most [`CANDIDATES_PER_ROUND`] per round) whose version id was minted more than
//!    the grace ago (the version id holds the HLC of the write's start).
//! 2. **References**: every `P` (uploaded part), then every `O` (head) and `V` (version)
//!    record of **every core of the cluster** is read; each version id they name (a head's
//!    parts and restored copy, a part's id) is no candidate. Parts come first: a
//!    CompleteMultipartUpload writes its head before it deletes its parts' records, so a part
//!    is seen in one scan or the other.
//! 3. **Deletion**: what is left is deleted (`DeleteFragment`, in the cores' background queue).
//!
//! Any core that cannot be scanned, or a record that does not decode, ends the sweep before
//! step 3: nothing is deleted on a partial view. Deleting only what no record names at a time
//! after the candidates were listed is safe because a reference to an old version id can
//! only appear from a record that already existed (a completed upload's parts, a repair); the
//! new references a write makes name fragments it wrote itself, and [`Store::check_write_age`]
//! refuses to commit data whose write took more than half the grace, so those are always
//! younger than the grace when they are first referenced.
//!
//! Cost: each round reads every `P`, `O` and `V` record of the cluster once, on every node
//! (in the background queue); memory is bounded by the round's candidates.

use std::collections::HashMap;

use bytes::Bytes;
use proto::{FragmentId, Request, Response};

use crate::records::{version_hlc, ObjectHead, PartRecord, VersionRecord};
use crate::store::{now_ms, Store};

/// Default grace: fragments younger than this are never swept (2 days).
pub const GRACE_SECS_DEFAULT: u64 = 2 * 86_400;
/// Fragments considered in one round of a sweep (bounds its memory).
pub const CANDIDATES_PER_ROUND: usize = 250_000;
/// Ids asked for per listing request.
const LIST_BATCH: u32 = proto::limits::FRAGMENT_LIST_MAX;
/// Records read per scan request.
const SCAN_BATCH: u32 = 1000;

/// What a sweep did on this process's cores.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepCounts {
    /// Fragments listed on the swept cores.
    pub listed: u64,
    /// Of those, older than the grace.
    pub old: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans whose deletion failed (the next sweep tries again).
    pub failed: u64,
}

/// The version id a fragment id starts with (`records::fragment_id`).
fn version_of(id: &FragmentId) -> [u8; 12] {
    id.0[..12].try_into().expect("12 bytes")
}

/// The version ids a head references: its parts' and its restored copy's.
fn head_refs(head: &ObjectHead, out: &mut Vec<[u8; 12]>) {
    out.extend(head.parts.iter().map(|p| p.version_id));
    if let Some(r) = &head.tiering.restore {
        out.extend(r.parts.iter().map(|p| p.version_id));
    }
}

/// The version ids one record of kind `tag` references (`None`: it does not decode).
fn record_refs(tag: u8, value: &Bytes) -> Option<Vec<[u8; 12]>> {
    let mut out = Vec::new();
    match tag {
        b'P' => out.push(PartRecord::decode(value.clone()).ok()?.version_id),
        b'O' => head_refs(&ObjectHead::decode(value.clone()).ok()?, &mut out),
        b'V' => match VersionRecord::decode(value.clone()).ok()? {
            VersionRecord::Object(h) => head_refs(&h, &mut out),
            VersionRecord::DeleteMarker(_) => {}
        },
        _ => unreachable!("only P, O and V records are read"),
    }
    Some(out)
}

impl Store {
    /// One sweep of `holders` (this process's cores). `Err`: stopped before deleting anything
    /// in its last round (a core could not be read, or a record did not decode).
    pub async fn orphan_sweep(&self, holders: &[usize]) -> Result<SweepCounts, String> {
        let mut counts = SweepCounts::default();
        let cutoff_ms = now_ms().saturating_sub(self.orphan_grace_ms());
        // Per holder, the next index shard to list (`None`: listed).
        let mut cursors: Vec<(usize, Option<u32>)> =
            holders.iter().map(|&c| (c, Some(0))).collect();
        while cursors.iter().any(|(_, next)| next.is_some()) {
            let mut candidates: HashMap<[u8; 12], Vec<(usize, FragmentId)>> = HashMap::new();
            let mut taken = 0;
            for (core, next) in &mut cursors {
                while let Some(from) = *next {
                    if taken >= CANDIDATES_PER_ROUND {
                        break;
                    }
                    let (ids, after) = self.list_fragments(*core, from).await?;
                    counts.listed += ids.len() as u64;
                    for id in ids {
                        let version = version_of(&id);
                        if cluster::hlc::Hlc::millis(version_hlc(&version)) < cutoff_ms {
                            candidates.entry(version).or_default().push((*core, id));
                            taken += 1;
                            counts.old += 1;
                        }
                    }
                    *next = after;
                }
            }
            if candidates.is_empty() {
                continue;
            }
            for tag in [b'P', b'O', b'V'] {
                for core in self.backend().all_cores() {
                    self.drop_referenced(core, tag, &mut candidates).await?;
                }
            }
            for (core, id) in candidates.into_values().flatten() {
                let request = Request::DeleteFragment { id };
                let r = cluster::backend::in_background(self.backend().call(core, request)).await;
                let name = self.backend().core_name(core);
                if let Ok(Response::Done) = r {
                    counts.deleted += 1;
                    self.observer().orphan(&name, "deleted");
                } else {
                    counts.failed += 1;
                    self.observer().orphan(&name, "failed");
                }
            }
        }
        Ok(counts)
    }

    /// The fragment ids of `core` from index shard `from` on, and the next shard to ask for.
    async fn list_fragments(
        &self,
        core: usize,
        from: u32,
    ) -> Result<(Vec<FragmentId>, Option<u32>), String> {
        let request = Request::ListFragments {
            from,
            limit: LIST_BATCH,
        };
        match cluster::backend::in_background(self.backend().call(core, request)).await {
            Ok(Response::Fragments { ids, next }) => Ok((ids, next)),
            other => Err(format!(
                "listing the fragments of {} failed: {other:?}",
                self.backend().core_name(core)
            )),
        }
    }

    /// Removes from `candidates` every version a `tag` record on `core` references.
    async fn drop_referenced(
        &self,
        core: usize,
        tag: u8,
        candidates: &mut HashMap<[u8; 12], Vec<(usize, FragmentId)>>,
    ) -> Result<(), String> {
        let prefix = Bytes::from(vec![tag]);
        let mut cursor: Option<Bytes> = None;
        loop {
            let request = Request::MetaScan {
                prefix: prefix.clone(),
                start_after: cursor.clone(),
                limit: SCAN_BATCH,
            };
            let r = cluster::backend::in_background(self.backend().call(core, request)).await;
            let Ok(Response::Scan {
                entries,
                next_start_after,
            }) = r
            else {
                return Err(format!(
                    "scanning {} failed: {r:?}",
                    self.backend().core_name(core)
                ));
            };
            for (key, entry) in &entries {
                let refs = record_refs(tag, &entry.value).ok_or_else(|| {
                    format!(
                        "a record on {} does not decode: {}",
                        self.backend().core_name(core),
                        String::from_utf8_lossy(key)
                    )
                })?;
                for version in refs {
                    candidates.remove(&version);
                }
            }
            match next_start_after {
                Some(n) if !entries.is_empty() => cursor = Some(n),
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{PartRecord, PartRef, Restore};
    use crate::test_support::head_of_parts;

    #[test]
    fn records_name_their_versions() {
        let mut head = head_of_parts(&[5, 3]);
        head.parts[1].version_id = [7; 12];
        head.tiering.restore = Some(Restore {
            ongoing: false,
            expiry_ms: 1,
            days: 1,
            policy: head.policy,
            tier: head.tiering.tier,
            parts: vec![PartRef {
                version_id: [9; 12],
                size: 8,
            }],
        });
        let refs = record_refs(b'O', &head.encode()).unwrap();
        assert_eq!(refs, [[2; 12], [7; 12], [9; 12]]);
        head.in_versions = true;
        let version = VersionRecord::Object(head.clone()).encode();
        assert_eq!(record_refs(b'V', &version).unwrap(), refs);
        let part = PartRecord {
            version_id: [4; 12],
            size: 1,
            md5: [0; 16],
            modified_ms: 1,
            checksum: None,
            nonce: None,
        };
        assert_eq!(record_refs(b'P', &part.encode()).unwrap(), [[4; 12]]);
        assert_eq!(record_refs(b'O', &Bytes::from_static(b"junk")), None);
        let id = crate::records::fragment_id(&[6; 12], 3, 1);
        assert_eq!(version_of(&id), [6; 12]);
    }
}
