//! A simulated core: an in-memory model of one engine core answering the same `proto`
//! requests with the engine's rules (engine/src/meta.rs and store.rs): last-writer-wins by
//! (HLC, value above tombstone, value bytes), tombstones kept and returned by the versioned
//! reads, `MetaPutIf` as a compare-and-swap on the live HLC, scans in key order with the
//! engine's paging rule, fragments overwritten in place. Every mutation it acknowledges is
//! durable (the engine acknowledges after its group commit), so a crash of the node loses only
//! requests that had not reached it yet; the disk's own faults are engine/src/sim.rs's job.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::{
    CoreStats, ErrorCode, FragmentId, MetaEntry, MetaVersion, MetaWrite, Request, Response,
};

/// One stored version of a key: hlc, tombstone, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hlc: u64,
    pub deleted: bool,
    pub value: Bytes,
}

impl Stored {
    /// The engine's order (engine::meta::newer): by HLC, a value above a tombstone, then bytes.
    fn beats(&self, old: &Stored) -> bool {
        (self.hlc, !self.deleted, &self.value) > (old.hlc, !old.deleted, &old.value)
    }

    fn version(&self) -> MetaVersion {
        MetaVersion {
            hlc: self.hlc,
            deleted: self.deleted,
            value: self.value.clone(),
        }
    }
}

/// A deliberate bug for the test that shows the checker fails (`Fault::None` in every
/// normal run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Acknowledges metadata writes without applying them, one time in `n` (a lying disk).
    DropsMetaWrites(u64),
}

#[derive(Default)]
pub struct SimCore {
    pub meta: BTreeMap<Bytes, Stored>,
    pub fragments: BTreeMap<[u8; 16], Bytes>,
    /// Metadata writes seen (drives `Fault::DropsMetaWrites`).
    writes: u64,
}

fn error(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_owned(),
    }
}

impl SimCore {
    /// Applies one request and returns the core's answer.
    pub fn handle(&mut self, request: Request, fault: Fault) -> Response {
        match request {
            Request::Batch(parts) => {
                Response::Batch(parts.into_iter().map(|r| self.handle(r, fault)).collect())
            }
            Request::Background(inner) => match *inner {
                Request::Batch(_) | Request::Background(_) => error(
                    ErrorCode::BadRequest,
                    "a background request wraps one plain request",
                ),
                plain => self.handle(plain, fault),
            },
            Request::PutFragment { id, data } => {
                self.fragments.insert(id.0, data);
                Response::Done
            }
            Request::GetFragment {
                id,
                offset_bytes,
                len_bytes,
            } => self.get_fragment(id, offset_bytes, len_bytes),
            Request::VerifyFragment { id } => match self.fragments.get(&id.0) {
                Some(_) => Response::Done,
                None => error(ErrorCode::NotFound, "no such fragment"),
            },
            // The simulated core lists everything in one page (shard 0).
            Request::ListFragments { from, limit } => Response::Fragments {
                ids: match from {
                    0 => self
                        .fragments
                        .keys()
                        .take(limit as usize)
                        .map(|k| proto::FragmentId(*k))
                        .collect(),
                    _ => Vec::new(),
                },
                next: None,
            },
            Request::DeleteFragment { id } => match self.fragments.remove(&id.0) {
                Some(_) => Response::Done,
                None => error(ErrorCode::NotFound, "no such fragment"),
            },
            Request::MetaPut { key, value, hlc } => self.write(
                key,
                Stored {
                    hlc,
                    deleted: false,
                    value,
                },
                fault,
            ),
            Request::MetaSwap { key, value, hlc } => {
                let previous = self.meta.get(&key).map(Stored::version);
                let new = Stored {
                    hlc,
                    deleted: false,
                    value,
                };
                let won = self.meta.get(&key).is_none_or(|old| new.beats(old));
                match self.write(key, new, fault) {
                    Response::Done => Response::Swapped { won, previous },
                    other => other,
                }
            }
            // One record on a real core: both writes apply or neither (a dropped write
            // drops both).
            Request::MetaPair { first, second, hlc } => {
                let stored = |write: MetaWrite| match write {
                    MetaWrite::Put { key, value } => (
                        key,
                        Stored {
                            hlc,
                            deleted: false,
                            value,
                        },
                    ),
                    MetaWrite::Delete { key } => (
                        key,
                        Stored {
                            hlc,
                            deleted: true,
                            value: Bytes::new(),
                        },
                    ),
                };
                let (key, new) = stored(first);
                let previous = self.meta.get(&key).map(Stored::version);
                let won = self.meta.get(&key).is_none_or(|old| new.beats(old));
                self.writes += 1;
                if let Fault::DropsMetaWrites(n) = fault {
                    if self.writes.is_multiple_of(n) {
                        return Response::Swapped { won, previous };
                    }
                }
                for (key, new) in [(key, new), stored(second)] {
                    if self.meta.get(&key).is_none_or(|old| new.beats(old)) {
                        self.meta.insert(key, new);
                    }
                }
                Response::Swapped { won, previous }
            }
            // The fragment, then its pair (a real core's guard keeps the pair from applying
            // without the fragment after a crash; the simulated core loses neither).
            Request::PutPaired {
                id,
                data,
                first,
                second,
                hlc,
            } => {
                self.fragments.insert(id.0, data);
                self.handle(Request::MetaPair { first, second, hlc }, fault)
            }
            Request::MetaDelete { key, hlc } => self.write(
                key,
                Stored {
                    hlc,
                    deleted: true,
                    value: Bytes::new(),
                },
                fault,
            ),
            Request::MetaPutIf {
                key,
                value,
                hlc,
                expect_hlc,
            } => {
                let current = self.meta.get(&key).filter(|s| !s.deleted).map(|s| s.hlc);
                if current == expect_hlc {
                    let new = Stored {
                        hlc,
                        deleted: false,
                        value,
                    };
                    self.write(key, new, fault)
                } else {
                    error(
                        ErrorCode::ConditionFailed,
                        "the key's current version is not the expected one",
                    )
                }
            }
            Request::MetaGet { key } => Response::Meta(
                self.meta
                    .get(&key)
                    .filter(|s| !s.deleted)
                    .map(|s| MetaEntry {
                        hlc: s.hlc,
                        value: s.value.clone(),
                    }),
            ),
            Request::MetaGetVersioned { key } => {
                Response::MetaVersioned(self.meta.get(&key).map(Stored::version))
            }
            Request::MetaDigest { keys } => Response::Digest(proto::meta_digest(
                keys.iter()
                    .map(|k| (&k[..], self.meta.get(k).map(|s| (s.hlc, s.deleted)))),
            )),
            Request::MetaScan {
                prefix,
                start_after,
                limit,
            } => {
                let (entries, next_start_after) =
                    self.scan(&prefix, start_after.as_ref(), limit, false);
                Response::Scan {
                    entries: entries
                        .into_iter()
                        .map(|(k, s)| {
                            (
                                k,
                                MetaEntry {
                                    hlc: s.hlc,
                                    value: s.value,
                                },
                            )
                        })
                        .collect(),
                    next_start_after,
                }
            }
            Request::MetaScanVersioned {
                prefix,
                start_after,
                limit,
            } => {
                let (entries, next_start_after) =
                    self.scan(&prefix, start_after.as_ref(), limit, true);
                Response::ScanVersioned {
                    entries: entries.into_iter().map(|(k, s)| (k, s.version())).collect(),
                    next_start_after,
                }
            }
            Request::Stats => Response::Stats(CoreStats {
                fragments: self.fragments.len() as u64,
                live_bytes: self.fragments.values().map(|b| b.len() as u64).sum(),
                ..CoreStats::default()
            }),
            // The simulation follows no control map, checks no layout and enforces no lease.
            Request::MapApplied | Request::Lease { .. } => Response::MapApplied {
                index: 0,
                floor: 0,
                version: 0,
            },
            Request::ControlMap => Response::ControlMap(Bytes::new()),
            Request::ControlLevel => Response::ControlLevel(proto::CONTROL_LEVEL),
            // The simulation checks no epoch (its gateways follow no control map).
            Request::Fenced { request, .. } => self.handle(*request, fault),
        }
    }

    fn write(&mut self, key: Bytes, new: Stored, fault: Fault) -> Response {
        self.writes += 1;
        if let Fault::DropsMetaWrites(n) = fault {
            if self.writes.is_multiple_of(n) {
                return Response::Done;
            }
        }
        if self.meta.get(&key).is_none_or(|old| new.beats(old)) {
            self.meta.insert(key, new);
        }
        Response::Done
    }

    fn get_fragment(&self, id: FragmentId, offset: u64, len: Option<u64>) -> Response {
        let Some(data) = self.fragments.get(&id.0) else {
            return error(ErrorCode::NotFound, "no such fragment");
        };
        let size = data.len() as u64;
        if offset > size {
            return error(
                ErrorCode::BadRequest,
                "range starts past the fragment's end",
            );
        }
        let end = len.map_or(size, |l| size.min(offset.saturating_add(l)));
        Response::Fragment(data.slice(offset as usize..end as usize))
    }

    /// engine::meta::MetaStore::scan_inner: entries under `prefix` after `start_after`, at
    /// most `limit` counted entries; a resume point only when another key (live or not)
    /// follows a full page.
    fn scan(
        &self,
        prefix: &Bytes,
        start_after: Option<&Bytes>,
        limit: u32,
        tombstones: bool,
    ) -> (Vec<(Bytes, Stored)>, Option<Bytes>) {
        let lower = match start_after {
            Some(s) if s >= prefix => std::ops::Bound::Excluded(s.clone()),
            _ => std::ops::Bound::Included(prefix.clone()),
        };
        let mut entries: Vec<(Bytes, Stored)> = Vec::new();
        let mut next = None;
        for (k, s) in self.meta.range((lower, std::ops::Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if entries.len() as u32 >= limit {
                next = entries.last().map(|(k, _)| k.clone());
                break;
            }
            if tombstones || !s.deleted {
                entries.push((k.clone(), s.clone()));
            }
        }
        (entries, next)
    }
}
