//! One seed's run: a 3-zone cluster (one node per zone, two cores each, 3 metadata replicas),
//! one object service (`s3api::s3::Gateway`) per node over its own backend and skewed clock,
//! and steps of concurrent S3 operations by two users, each through a random node, each judged
//! against the model (`model`) when its step ends; then every bucket is read whole. With a
//! layout change (`Config::change`), the mover moves the data meanwhile (`run_mover`), and
//! after it everything is read again through the new layout alone
//! (`read_through_new_layout`, `placed`).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use cluster::backend::{Backend, Clock, CoreLink, Route};
use cluster::ec::Policy;
use cluster::moves::{Catalog, Mover, MoverConfig, Transition};
use cluster::sim::core::{Fault, Stored};
use cluster::sim::world::{
    layout, next_layout, next_layout_removing, run_tokio, Shared, SimClock, SimLink, Weather, World,
};
use futures::StreamExt;
use objects::move_catalog::ObjectCatalog;
use objects::records::{scope_of, BucketRecord};
use s3api::s3::Gateway;
use s3s::dto;
use s3s::{S3Request, S3};

use crate::model::{
    body_of, err, id_of, shown, Model, Outcome, Res, Upload, Ver, VersionEntry, Versioning, USERS,
};

const NODES: usize = 3;
const CORES_PER_NODE: usize = 2;
const BUCKETS: [&str; 3] = ["sb0", "sb1", "sb2"];
/// The keys of the narrow workload (`Config::wide` off: as when the first seeds were found).
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// The keys of the wide workload: as many (so as many writes meet on one key), two of them
/// under prefixes, one nested, for listings with a prefix and a delimiter.
const WIDE_KEYS: [&str; 4] = ["k0", "k1", "d/k2", "d/e/k3"];
/// The prefixes listings ask for (`Op::ListPrefixed`).
const PREFIXES: [&str; 5] = ["", "k", "d/", "d/e", "x"];
/// Versions per ListObjectVersions page of `Op::ListVersionsPaged` (small, so it pages).
const VERSIONS_PAGE: i32 = 2;

/// The workload's keys.
fn keys(wide: bool) -> &'static [&'static str; 4] {
    if wide {
        &WIDE_KEYS
    } else {
        &KEYS
    }
}

/// Key `k` as the `&'static str` of the workload's keys.
fn static_key(k: &str) -> &'static str {
    KEYS.iter()
        .chain(&WIDE_KEYS)
        .copied()
        .find(|x| *x == k)
        .expect("a workload key")
}
/// Keys per ListObjectsV2 page (small, so listings page).
const PAGE: i32 = 2;
/// Events one seed may deliver (far above what a run needs).
const STEPS_MAX: u64 = 5_000_000;
/// The object services' orphan grace (see `run_seed`).
const ORPHAN_GRACE_MS: u64 = 1 << 45;
/// The longest a step's operation waits before it starts (staggers the concurrent ones).
const STAGGER_MS: u64 = 30;

/// Independent switches of a run, each on or off by itself.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub steps: usize,
    /// Operations per step at most (they run concurrently).
    pub width: u64,
    /// A deliberate bug of the cores (the test that shows the checker fails).
    pub fault: Fault,
    /// Faults during steps: lost messages, failing cores, a node crashing (and restarting
    /// with a fresh object service when the step ends), a node cut off.
    pub faults: bool,
    /// Each node's clock reads the virtual time plus a skew drawn in ± this (0: no skew, and
    /// nothing drawn, so the histories of unskewed seeds stay as they were).
    pub skew_ms_max: u64,
    /// The operations added after the first findings (conditional writes, copies): off, the
    /// generator draws exactly as it did before them, so the seeds of the regression tests
    /// below still run the histories that found their bugs.
    pub wide: bool,
    /// Version listings in the steps of conditional writes into buckets that keep versions
    /// (off: a known bug, `osim_failed_conditional_write_listed`, is kept out of the way).
    pub list_conditional_versions: bool,
    /// A layout change whose data a mover moves while the steps run (`Change`; `None`: the
    /// cluster keeps its layout, and nothing is drawn for a change, so the histories of the
    /// seeds above stay as they were).
    pub change: Option<Change>,
    /// Every operation goes through the first node's service, which keeps the bucket records
    /// it reads (`Store::with_bucket_cache`, exact only for a single writer): the other nodes
    /// serve none. Off: as before (the node is still drawn, so histories do not move).
    pub one_gateway: bool,
}

/// The layout change of a run (`Config::change`). `moves::Transition` refuses a change that
/// renumbers cores, so a shrink removes the last node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// 3 → 4 nodes: a position or two of a group's row move.
    Grow,
    /// 4 → 3 nodes: the last node's positions move to the others.
    Shrink,
    /// 4 nodes, one of them dead (`DEAD_NODE`, not the last: its cores keep their numbers),
    /// replaced by a fifth: the dead node is marked removed, its positions move to the others
    /// and the new node, rebuilt from the other copies (its cores never answer, and no
    /// operation goes through its gateway).
    Replace,
}

/// The node `Change::Replace` replaces (by index: the second).
const DEAD_NODE: usize = 1;

impl Change {
    /// (nodes before, nodes after).
    fn nodes(self) -> (usize, usize) {
        match self {
            Change::Grow => (NODES, NODES + 1),
            Change::Shrink => (NODES + 1, NODES),
            Change::Replace => (NODES + 1, NODES + 2),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            steps: 30,
            width: 4,
            fault: Fault::None,
            faults: false,
            skew_ms_max: 0,
            wide: true,
            list_conditional_versions: false,
            change: None,
            one_gateway: false,
        }
    }
}

impl Config {
    /// The workload as it was when the seeds of the regression tests were found.
    pub fn narrow() -> Config {
        Config {
            wide: false,
            ..Config::default()
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub ops: u64,
    /// Operations answered with an S3 error (the model expected each).
    pub errors: u64,
    pub messages: u64,
    /// Races of two users creating one name, and of DeleteBucket with a PUT into it.
    pub races: u64,
    /// Placement groups moved by layout changes (`Config::change`).
    pub groups_moved: u64,
    /// Movers started again: after their node crashed, or cut in the middle of a step.
    pub mover_restarts: u64,
    /// Fragment copies found where the new layout puts them after a change (without faults).
    pub fragments_placed: u64,
    /// Bucket records the one gateway found in its cache (`Config::one_gateway`; since its
    /// last restart).
    pub bucket_cache_hits: u64,
    pub history_hash: u64,
}

impl Stats {
    pub fn add(&mut self, s: &Stats) {
        self.ops += s.ops;
        self.errors += s.errors;
        self.messages += s.messages;
        self.races += s.races;
        self.groups_moved += s.groups_moved;
        self.mover_restarts += s.mover_restarts;
        self.fragments_placed += s.fragments_placed;
        self.bucket_cache_hits += s.bucket_cache_hits;
        // Commutative: the total does not depend on how seeds were spread over threads.
        self.history_hash = self.history_hash.wrapping_add(s.history_hash);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateBucket(usize, &'static str),
    DeleteBucket(usize, &'static str),
    PutVersioning(usize, &'static str, bool),
    GetVersioning(usize, &'static str),
    Put(usize, &'static str, &'static str, u64),
    /// PutObject with If-None-Match: * (`None`) or If-Match: that ETag.
    PutIf(usize, &'static str, &'static str, u64, Option<String>),
    /// CopyObject: (user, bucket, key, source bucket, source key, source version id).
    Copy(
        usize,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<String>,
    ),
    Get(usize, &'static str, &'static str),
    Head(usize, &'static str, &'static str),
    /// With a version id: that version.
    Delete(usize, &'static str, &'static str, Option<String>),
    DeleteMany(usize, &'static str, Vec<&'static str>),
    ListKeys(usize, &'static str),
    /// ListObjectsV2 of the keys under a prefix, with the delimiter "/" or without.
    ListPrefixed(usize, &'static str, &'static str, bool),
    ListVersions(usize, &'static str),
    /// ListObjectVersions in pages of `VERSIONS_PAGE`.
    ListVersionsPaged(usize, &'static str),
    CreateUpload(usize, &'static str, &'static str),
    /// (user, bucket, key, upload id, body id).
    UploadPart(usize, &'static str, String, String, u64),
    /// (user, bucket, key, upload id, parts).
    Complete(usize, &'static str, String, String, Vec<(i32, String)>),
    Abort(usize, &'static str, String, String),
    ListUploads(usize, &'static str),
    ListParts(usize, &'static str, String, String),
}

impl Op {
    fn bucket(&self) -> &'static str {
        match self {
            Op::CreateBucket(_, name)
            | Op::DeleteBucket(_, name)
            | Op::PutVersioning(_, name, _)
            | Op::GetVersioning(_, name)
            | Op::Put(_, name, _, _)
            | Op::PutIf(_, name, _, _, _)
            | Op::Copy(_, name, _, _, _, _)
            | Op::Get(_, name, _)
            | Op::Head(_, name, _)
            | Op::Delete(_, name, _, _)
            | Op::DeleteMany(_, name, _)
            | Op::ListKeys(_, name)
            | Op::ListPrefixed(_, name, _, _)
            | Op::ListVersions(_, name)
            | Op::ListVersionsPaged(_, name)
            | Op::CreateUpload(_, name, _)
            | Op::UploadPart(_, name, _, _, _)
            | Op::Complete(_, name, _, _, _)
            | Op::Abort(_, name, _, _)
            | Op::ListUploads(_, name)
            | Op::ListParts(_, name, _, _) => name,
        }
    }

    fn bucket_write(&self) -> bool {
        matches!(
            self,
            Op::CreateBucket(..) | Op::DeleteBucket(..) | Op::PutVersioning(..)
        )
    }

    /// The locks a write takes within a step: object keys and upload keys of its bucket.
    fn locks(&self) -> Vec<String> {
        match self {
            Op::Put(_, _, k, _)
            | Op::PutIf(_, _, k, _, _)
            | Op::Copy(_, _, k, _, _, _)
            | Op::Delete(_, _, k, _) => vec![format!("o/{k}")],
            Op::DeleteMany(_, _, ks) => ks.iter().map(|k| format!("o/{k}")).collect(),
            Op::CreateUpload(_, _, k) => vec![format!("user/{k}")],
            Op::UploadPart(_, _, k, _, _) | Op::Abort(_, _, k, _) | Op::ListParts(_, _, k, _) => {
                vec![format!("user/{k}")]
            }
            Op::Complete(_, _, k, _, _) => vec![format!("o/{k}"), format!("user/{k}")],
            _ => Vec::new(),
        }
    }

    /// The object a copy reads while its step runs: (bucket, key).
    fn source(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Op::Copy(_, _, _, sb, sk, _) => Some((sb, sk)),
            _ => None,
        }
    }

    /// Whether `self` reads what `other` writes (a copy's source).
    fn reads_written_by(&self, other: &Op) -> bool {
        self.source().is_some_and(|(b, k)| {
            other.bucket() == b
                && (other.bucket_write() || other.locks().contains(&format!("o/{k}")))
        })
    }

    /// If-None-Match: * of key `k`.
    fn creates(&self, k: &str) -> bool {
        matches!(self, Op::PutIf(_, _, key, _, None) if *key == k)
    }
}

fn pick<T: Clone>(world: &Shared, items: &[T]) -> T {
    items[world.below(items.len() as u64) as usize].clone()
}

/// A random operation on the model's state.
fn generate(world: &Shared, m: &Model, next_id: &mut u64, wide: bool) -> Op {
    let user = world.below(2) as usize;
    let owned: Vec<&'static str> = BUCKETS
        .iter()
        .copied()
        .filter(|name| m.buckets.get(*name).is_some_and(|bkt| bkt.owner == user))
        .collect();
    // Mostly the user's own buckets (else most operations are refused).
    let name = if !owned.is_empty() && world.below(10) < 8 {
        pick(world, &owned)
    } else {
        pick(world, &BUCKETS)
    };
    let k = pick(world, keys(wide));
    let bucket = m.buckets.get(name);
    *next_id += 1;
    let id = *next_id;
    // A name nobody holds is mostly taken (else most operations answer NoSuchBucket).
    if bucket.is_none() && world.below(2) == 0 {
        return Op::CreateBucket(user, name);
    }
    // One draw more only in the wide workload (the narrow one draws as it always did).
    if wide {
        let r = world.below(100);
        if r < 24 {
            return generate_wide(world, m, (user, name, k, id), r);
        }
    }
    match world.below(100) {
        0..=7 => Op::CreateBucket(user, name),
        8..=12 => match bucket {
            // Half the time, a step towards an empty bucket instead: an upload aborted, a
            // version deleted.
            Some(bkt) if bkt.owner == user && !bkt.is_empty() && world.below(2) == 0 => {
                if let Some((upload, up)) = bkt.uploads.iter().next() {
                    Op::Abort(user, name, up.key.clone(), upload.clone())
                } else if let Some((k, l)) = bkt.keys.iter().find(|(_, l)| !l.is_empty()) {
                    let k = static_key(k);
                    Op::Delete(user, name, k, Some(l[0].vid.clone()))
                } else {
                    Op::DeleteBucket(user, name)
                }
            }
            _ => Op::DeleteBucket(user, name),
        },
        13..=16 => Op::PutVersioning(user, name, world.below(3) > 0),
        17..=18 => Op::GetVersioning(user, name),
        19..=36 => Op::Put(user, name, k, id),
        37..=46 => Op::Get(user, name, k),
        47..=49 => Op::Head(user, name, k),
        50..=55 => Op::Delete(user, name, k, None),
        56..=61 => {
            // A version that exists (to empty versioned buckets), else a plain delete.
            let versions: Vec<(&str, String)> = bucket
                .map(|bkt| {
                    bkt.keys
                        .iter()
                        .flat_map(|(k, l)| l.iter().map(|v| (k.as_str(), v.vid.clone())))
                        .collect()
                })
                .unwrap_or_default();
            if versions.is_empty() {
                Op::Delete(user, name, k, None)
            } else {
                let (k, v) = pick(world, &versions);
                let k = static_key(k);
                Op::Delete(user, name, k, Some(v))
            }
        }
        62..=64 => {
            let mut keys: Vec<&'static str> = keys(wide)
                .iter()
                .copied()
                .filter(|_| world.below(2) == 0)
                .collect();
            if keys.is_empty() {
                keys.push(k);
            }
            Op::DeleteMany(user, name, keys)
        }
        65..=71 => Op::ListKeys(user, name),
        72..=75 => Op::ListVersions(user, name),
        76..=79 => Op::CreateUpload(user, name, k),
        80..=95 => {
            let live: Vec<(String, Upload)> = bucket
                .map(|bkt| {
                    bkt.uploads
                        .iter()
                        .map(|(i, up)| (i.clone(), up.clone()))
                        .collect()
                })
                .unwrap_or_default();
            // A live upload of the bucket, or now and then a dead one (of any bucket).
            if !live.is_empty() && world.below(5) > 0 {
                let (upload, up) = pick(world, &live);
                match (world.below(6), up.parts.is_empty()) {
                    (0..=2, true) | (0, false) => Op::UploadPart(user, name, up.key, upload, id),
                    (1..=3, false) => Op::Complete(
                        user,
                        name,
                        up.key,
                        upload,
                        up.parts.iter().map(|(n, (e, _))| (*n, e.clone())).collect(),
                    ),
                    (3 | 4, _) => Op::ListParts(user, name, up.key, upload),
                    _ => Op::Abort(user, name, up.key, upload),
                }
            } else if !m.dead_uploads.is_empty() {
                let d = pick(world, &m.dead_uploads);
                let name = BUCKETS
                    .iter()
                    .copied()
                    .find(|bkt| *bkt == d.bucket)
                    .expect("a name");
                let user = m.buckets.get(name).map_or(user, |bkt| bkt.owner);
                match (world.below(4), &d.completed) {
                    (0, Some((_, parts, _, _))) => {
                        Op::Complete(user, name, d.key, d.id, parts.clone())
                    }
                    (0 | 1, _) => Op::UploadPart(user, name, d.key, d.id, id),
                    (2, _) => Op::ListParts(user, name, d.key, d.id),
                    _ => Op::Abort(user, name, d.key, d.id),
                }
            } else {
                Op::ListUploads(user, name)
            }
        }
        _ => Op::ListUploads(user, name),
    }
}

/// An operation of the wide workload only (`Config::wide`), of `user` on `name`/`k`, by `r`
/// (below 24): a conditional write, a copy, a listing under a prefix, a paged version listing.
fn generate_wide(
    world: &Shared,
    m: &Model,
    (user, name, k, id): (usize, &'static str, &'static str, u64),
    r: u64,
) -> Op {
    let bucket = m.buckets.get(name);
    match r {
        16..=20 => return Op::ListPrefixed(user, name, pick(world, &PREFIXES), world.below(3) > 0),
        21.. => return Op::ListVersionsPaged(user, name),
        _ => {}
    }
    // What a key's state is unknown of (a write that may or may not have landed) is not
    // the subject of a condition or a copy's source: their outcome would be unknown too.
    let known = |b: &str, k: &str| {
        !m.tainted.contains(b) && m.buckets.get(b).is_none_or(|bkt| !bkt.unknown.contains(k))
    };
    if r < 8 {
        // Mostly a key with a current object (else most If-Match answer NoSuchKey).
        let objects: Vec<&'static str> = WIDE_KEYS
            .iter()
            .copied()
            .filter(|k| bucket.is_some_and(|bkt| bkt.current(k).is_some()))
            .collect();
        let k = if !objects.is_empty() && world.below(3) > 0 {
            pick(world, &objects)
        } else {
            k
        };
        if !known(name, k) {
            return Op::Put(user, name, k, id);
        }
        // If-None-Match: *, or If-Match: the current ETag, one of an older version, or none.
        let etags: Vec<String> = bucket
            .and_then(|bkt| bkt.keys.get(k))
            .map(|l| l.iter().filter_map(|v| v.etag.clone()).collect())
            .unwrap_or_default();
        let current = bucket
            .and_then(|bkt| bkt.current(k))
            .and_then(|v| v.etag.clone());
        let cond = match world.below(6) {
            0..=2 => None,
            3 | 4 if current.is_some() => current,
            _ if !etags.is_empty() => Some(pick(world, &etags)),
            _ => Some(hex_md5(b"no such body")),
        };
        return Op::PutIf(user, name, k, id, cond);
    }
    // A copy: mostly from the user's own buckets (one of them may be `name`).
    let owned: Vec<&'static str> = BUCKETS
        .iter()
        .copied()
        .filter(|b| m.buckets.get(*b).is_some_and(|bkt| bkt.owner == user))
        .collect();
    let sb = if !owned.is_empty() && world.below(10) < 8 {
        pick(world, &owned)
    } else {
        pick(world, &BUCKETS)
    };
    // Mostly a key that has versions there (else most copies answer NoSuchKey).
    let held: Vec<&'static str> = WIDE_KEYS
        .iter()
        .copied()
        .filter(|k| {
            m.buckets
                .get(sb)
                .is_some_and(|bkt| bkt.keys.contains_key(*k))
        })
        .collect();
    let mut sk = if !held.is_empty() && world.below(5) > 0 {
        pick(world, &held)
    } else {
        pick(world, &WIDE_KEYS)
    };
    // Of a version that exists (an object or a marker), or of the current version.
    let versions: Vec<String> = m
        .buckets
        .get(sb)
        .and_then(|bkt| bkt.keys.get(sk))
        .map(|l| l.iter().map(|v| v.vid.clone()).collect())
        .unwrap_or_default();
    let vid = (!versions.is_empty() && world.below(3) == 0).then(|| pick(world, &versions));
    if sb == name && sk == k && vid.is_none() {
        // A copy onto itself needs a change S3 asks for (not simulated): another key.
        let at = WIDE_KEYS.iter().position(|x| *x == k).expect("a key");
        sk = WIDE_KEYS[(at + 1) % WIDE_KEYS.len()];
    }
    if !known(sb, sk) {
        return Op::Get(user, sb, sk);
    }
    Op::Copy(user, name, k, sb, sk, vid)
}

/// The ETag S3 gives a body written whole (its MD5, in hex).
pub fn hex_md5(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// Whether `op` may join the step's `ops`: writes touch disjoint keys and uploads, a bucket's
/// configuration or existence changes alone, except two races: both users creating one name,
/// and DeleteBucket against a PUT into the bucket (unversioned).
fn fits(cfg: &Config, m: &Model, ops: &[Op], op: &Op) -> bool {
    // A copy's source is not written in its step (what the copy read would be unknown).
    if ops
        .iter()
        .any(|o| op.reads_written_by(o) || o.reads_written_by(op))
    {
        return false;
    }
    let name = op.bucket();
    let same: Vec<&Op> = ops.iter().filter(|o| o.bucket() == name).collect();
    // A known bug kept out of the random runs (`osim_failed_conditional_write_listed`): a
    // conditional write into a bucket that keeps versions writes its version record before
    // its condition is checked, so a concurrent version listing may show a version that fails.
    let keeps_versions = m
        .buckets
        .get(name)
        .is_some_and(|bkt| bkt.versioning != Versioning::Off);
    let versions = |o: &Op| matches!(o, Op::ListVersions(..) | Op::ListVersionsPaged(..));
    let conditional_listed = |a: &Op, b: &Op| {
        matches!(a, Op::PutIf(..)) && versions(b) || versions(a) && matches!(b, Op::PutIf(..))
    };
    if !cfg.list_conditional_versions
        && keeps_versions
        && same.iter().any(|o| conditional_listed(o, op))
    {
        return false;
    }
    // A listing of several pages is not a snapshot (S3 promises none across pages): a write
    // between two pages may show a key half as before, half as after (two latest versions).
    // Paged version listings run in steps that write nothing else in their bucket.
    let paged = |o: &Op| matches!(o, Op::ListVersionsPaged(..));
    let writes = |o: &Op| o.bucket_write() || !o.locks().is_empty();
    if same
        .iter()
        .any(|o| paged(o) && writes(op) || writes(o) && paged(op))
    {
        return false;
    }
    if same.is_empty() {
        return true;
    }
    let bucket_write = |o: &Op| o.bucket_write();
    if op.bucket_write() || same.iter().any(|o| bucket_write(o)) {
        if same.len() != 1 {
            return false;
        }
        return match (same[0], op) {
            (Op::CreateBucket(u1, _), Op::CreateBucket(u2, _)) => u1 != u2,
            (Op::DeleteBucket(..), Op::Put(..)) | (Op::Put(..), Op::DeleteBucket(..)) => m
                .buckets
                .get(name)
                .is_some_and(|bkt| bkt.versioning == Versioning::Off),
            _ => false,
        };
    }
    let taken: BTreeSet<String> = same.iter().flat_map(|o| o.locks()).collect();
    if op.locks().iter().all(|l| !taken.contains(l)) {
        return true;
    }
    // One race: two creates of one key (If-None-Match: *), of which at most one may win.
    match op {
        Op::PutIf(_, _, k, _, None) => {
            let holders: Vec<&&Op> = same
                .iter()
                .filter(|o| o.locks().contains(&format!("o/{k}")))
                .collect();
            holders.len() == 1 && holders[0].creates(k)
        }
        _ => false,
    }
}

fn request<T>(input: T, user: usize, method: http::Method) -> S3Request<T> {
    S3Request {
        input,
        method,
        uri: http::Uri::from_static("/"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: Some(s3s::auth::Credentials {
            access_key: USERS[user].to_owned(),
            secret_key: "simulated".to_owned().into(),
        }),
        region: None,
        service: None,
        trailing_headers: None,
    }
}

fn code(e: &s3s::S3Error) -> String {
    e.code().as_str().to_owned()
}

fn etag(e: Option<&dto::ETag>) -> String {
    e.map(|e| e.value().to_owned()).unwrap_or_default()
}

/// A version listing's versions, then its delete markers, as the model's rows: key, version
/// id, ETag (none for a marker), whether latest.
fn version_rows(
    versions: Option<Vec<dto::ObjectVersion>>,
    markers: Option<Vec<dto::DeleteMarkerEntry>>,
) -> Vec<(String, String, Option<String>, bool)> {
    let versions = versions.unwrap_or_default().into_iter().map(|v| {
        (
            v.key.unwrap_or_default(),
            v.version_id.unwrap_or_default(),
            Some(etag(v.e_tag.as_ref())),
            v.is_latest == Some(true),
        )
    });
    let markers = markers.unwrap_or_default().into_iter().map(|d| {
        (
            d.key.unwrap_or_default(),
            d.version_id.unwrap_or_default(),
            None,
            d.is_latest == Some(true),
        )
    });
    versions.chain(markers).collect()
}

fn blob(data: Bytes) -> dto::StreamingBlob {
    dto::StreamingBlob::wrap(futures::stream::iter([Ok::<Bytes, std::io::Error>(data)]))
}

/// GetObject of `k` (of version `vid`, else the current one), its body read whole and checked
/// to be the bytes of the write it names.
async fn get(gw: &Gateway, user: usize, name: &str, k: &str, vid: Option<String>) -> Outcome {
    let input = dto::GetObjectInput {
        bucket: name.into(),
        key: k.into(),
        version_id: vid,
        ..Default::default()
    };
    let out = gw
        .get_object(request(input, user, http::Method::GET))
        .await
        .map_err(|e| code(&e))?
        .output;
    let mut body = Vec::new();
    if let Some(mut stream) = out.body {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => body.extend_from_slice(&c),
                Err(e) => return Err(format!("body stream failed: {e}")),
            }
        }
    }
    let id = id_of(&body).ok_or("a body too short")?;
    if body_of(id) != body {
        return Err(format!("body of write {id} damaged"));
    }
    Ok(Res::Object(id, etag(out.e_tag.as_ref()), out.version_id))
}

/// Runs `op` through `gw` as the HTTP layer would after authenticating its user.
async fn exec(gw: &Gateway, op: &Op) -> Outcome {
    use http::Method;
    match op.clone() {
        Op::CreateBucket(user, name) => {
            let input = dto::CreateBucketInput {
                bucket: name.into(),
                ..Default::default()
            };
            gw.create_bucket(request(input, user, Method::PUT))
                .await
                .map(|_| Res::Done)
                .map_err(|e| code(&e))
        }
        Op::DeleteBucket(user, name) => {
            let input = dto::DeleteBucketInput {
                bucket: name.into(),
                ..Default::default()
            };
            gw.delete_bucket(request(input, user, Method::DELETE))
                .await
                .map(|_| Res::Done)
                .map_err(|e| code(&e))
        }
        Op::PutVersioning(user, name, enabled) => {
            let status = if enabled { "Enabled" } else { "Suspended" };
            let input = dto::PutBucketVersioningInput::builder()
                .bucket(name.into())
                .versioning_configuration(dto::VersioningConfiguration {
                    status: Some(dto::BucketVersioningStatus::from(status.to_owned())),
                    ..Default::default()
                })
                .build()
                .expect("a versioning input");
            gw.put_bucket_versioning(request(input, user, Method::PUT))
                .await
                .map(|_| Res::Done)
                .map_err(|e| code(&e))
        }
        Op::GetVersioning(user, name) => {
            let input = dto::GetBucketVersioningInput {
                bucket: name.into(),
                ..Default::default()
            };
            gw.get_bucket_versioning(request(input, user, Method::GET))
                .await
                .map(|r| Res::Status(r.output.status.map(|s| s.as_str().to_owned())))
                .map_err(|e| code(&e))
        }
        Op::Put(user, name, k, id) => {
            let data = body_of(id);
            let input = dto::PutObjectInput {
                bucket: name.into(),
                key: k.into(),
                content_length: Some(data.len() as i64),
                body: Some(blob(data)),
                ..Default::default()
            };
            gw.put_object(request(input, user, Method::PUT))
                .await
                .map(|r| Res::Written(r.output.version_id, etag(r.output.e_tag.as_ref())))
                .map_err(|e| code(&e))
        }
        Op::PutIf(user, name, k, id, cond) => {
            let data = body_of(id);
            let (if_none_match, if_match) = match cond {
                None => (Some(dto::ETagCondition::Any), None),
                Some(e) => (None, Some(dto::ETagCondition::ETag(dto::ETag::Strong(e)))),
            };
            let input = dto::PutObjectInput {
                bucket: name.into(),
                key: k.into(),
                content_length: Some(data.len() as i64),
                body: Some(blob(data)),
                if_none_match,
                if_match,
                ..Default::default()
            };
            gw.put_object(request(input, user, Method::PUT))
                .await
                .map(|r| Res::Written(r.output.version_id, etag(r.output.e_tag.as_ref())))
                .map_err(|e| code(&e))
        }
        Op::Copy(user, name, k, sb, sk, vid) => {
            let input = dto::CopyObjectInput::builder()
                .bucket(name.into())
                .key(k.into())
                .copy_source(dto::CopySource::Bucket {
                    bucket: sb.into(),
                    key: sk.into(),
                    version_id: vid.map(Into::into),
                })
                .build()
                .expect("a copy input");
            gw.copy_object(request(input, user, Method::PUT))
                .await
                .map(|r| {
                    let o = r.output;
                    let e = o.copy_object_result.and_then(|c| c.e_tag);
                    Res::Written(o.version_id, etag(e.as_ref()))
                })
                .map_err(|e| code(&e))
        }
        Op::Get(user, name, k) => get(gw, user, name, k, None).await,
        Op::Head(user, name, k) => {
            let input = dto::HeadObjectInput {
                bucket: name.into(),
                key: k.into(),
                ..Default::default()
            };
            gw.head_object(request(input, user, Method::HEAD))
                .await
                .map(|r| {
                    let o = r.output;
                    Res::Object(
                        o.content_length.unwrap_or(-1) as u64,
                        etag(o.e_tag.as_ref()),
                        o.version_id,
                    )
                })
                .map_err(|e| code(&e))
        }
        Op::Delete(user, name, k, vid) => {
            let input = dto::DeleteObjectInput {
                bucket: name.into(),
                key: k.into(),
                version_id: vid,
                ..Default::default()
            };
            gw.delete_object(request(input, user, Method::DELETE))
                .await
                .map(|r| Res::Deleted(r.output.version_id, r.output.delete_marker == Some(true)))
                .map_err(|e| code(&e))
        }
        Op::DeleteMany(user, name, keys) => {
            let delete = dto::Delete {
                objects: keys
                    .iter()
                    .map(|k| dto::ObjectIdentifier {
                        key: (*k).into(),
                        ..Default::default()
                    })
                    .collect(),
                quiet: None,
            };
            let input = dto::DeleteObjectsInput::builder()
                .bucket(name.into())
                .delete(delete)
                .build()
                .expect("a delete input");
            let out = gw
                .delete_objects(request(input, user, Method::POST))
                .await
                .map_err(|e| code(&e))?
                .output;
            let deleted = out
                .deleted
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    (
                        d.key.unwrap_or_default(),
                        d.delete_marker_version_id.or(d.version_id),
                        d.delete_marker == Some(true),
                    )
                })
                .collect();
            let errors = out
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.key.unwrap_or_default(), e.code.unwrap_or_default()))
                .collect();
            Ok(Res::DeletedMany(deleted, errors))
        }
        Op::ListKeys(user, name) => {
            let mut keys: Vec<(String, String)> = Vec::new();
            let mut token = None;
            for _ in 0..20 {
                let input = dto::ListObjectsV2Input {
                    bucket: name.into(),
                    max_keys: Some(PAGE),
                    continuation_token: token.take(),
                    ..Default::default()
                };
                let out = gw
                    .list_objects_v2(request(input, user, Method::GET))
                    .await
                    .map_err(|e| code(&e))?
                    .output;
                let page = out.contents.unwrap_or_default();
                if page.len() > PAGE as usize {
                    return Err(format!("a page of {} keys (at most {PAGE})", page.len()));
                }
                for o in page {
                    let key = o.key.unwrap_or_default();
                    if keys.last().is_some_and(|(last, _)| *last >= key) {
                        return Err(format!("listed {key} after {keys:?}"));
                    }
                    keys.push((key, etag(o.e_tag.as_ref())));
                }
                if out.is_truncated != Some(true) {
                    return Ok(Res::Keys(keys));
                }
                token = out.next_continuation_token;
                if token.is_none() {
                    return Err("truncated without a continuation token".into());
                }
            }
            Err("a listing of a few keys ran past 20 pages".into())
        }
        Op::ListPrefixed(user, name, prefix, delimiter) => {
            list_prefixed(gw, user, name, prefix, delimiter).await
        }
        Op::ListVersionsPaged(user, name) => list_versions_paged(gw, user, name).await,
        Op::ListVersions(user, name) => {
            let input = dto::ListObjectVersionsInput {
                bucket: name.into(),
                ..Default::default()
            };
            let out = gw
                .list_object_versions(request(input, user, Method::GET))
                .await
                .map_err(|e| code(&e))?
                .output;
            if out.is_truncated == Some(true) {
                return Err("a few versions listed in more than one page".into());
            }
            let all = version_rows(out.versions, out.delete_markers);
            Ok(Res::Versions(all))
        }
        Op::CreateUpload(user, name, k) => {
            let input = dto::CreateMultipartUploadInput {
                bucket: name.into(),
                key: k.into(),
                ..Default::default()
            };
            gw.create_multipart_upload(request(input, user, Method::POST))
                .await
                .map(|r| Res::UploadId(r.output.upload_id.unwrap_or_default()))
                .map_err(|e| code(&e))
        }
        Op::UploadPart(user, name, k, upload, id) => {
            let data = body_of(id);
            let input = dto::UploadPartInput {
                bucket: name.into(),
                key: k,
                upload_id: upload,
                part_number: 1,
                content_length: Some(data.len() as i64),
                body: Some(blob(data)),
                ..Default::default()
            };
            gw.upload_part(request(input, user, Method::PUT))
                .await
                .map(|r| Res::ETag(etag(r.output.e_tag.as_ref())))
                .map_err(|e| code(&e))
        }
        Op::Complete(user, name, k, upload, parts) => {
            let input = dto::CompleteMultipartUploadInput {
                bucket: name.into(),
                key: k,
                upload_id: upload,
                multipart_upload: Some(dto::CompletedMultipartUpload {
                    parts: Some(
                        parts
                            .iter()
                            .map(|(n, e)| dto::CompletedPart {
                                part_number: Some(*n),
                                e_tag: Some(dto::ETag::Strong(e.clone())),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            };
            gw.complete_multipart_upload(request(input, user, Method::POST))
                .await
                .map(|r| Res::Written(r.output.version_id, etag(r.output.e_tag.as_ref())))
                .map_err(|e| code(&e))
        }
        Op::Abort(user, name, k, upload) => {
            let input = dto::AbortMultipartUploadInput {
                bucket: name.into(),
                key: k,
                upload_id: upload,
                ..Default::default()
            };
            gw.abort_multipart_upload(request(input, user, Method::DELETE))
                .await
                .map(|_| Res::Done)
                .map_err(|e| code(&e))
        }
        Op::ListUploads(user, name) => {
            let input = dto::ListMultipartUploadsInput {
                bucket: name.into(),
                ..Default::default()
            };
            let out = gw
                .list_multipart_uploads(request(input, user, Method::GET))
                .await
                .map_err(|e| code(&e))?
                .output;
            Ok(Res::Uploads(
                out.uploads
                    .unwrap_or_default()
                    .into_iter()
                    .map(|bkt| {
                        (
                            bkt.key.unwrap_or_default(),
                            bkt.upload_id.unwrap_or_default(),
                        )
                    })
                    .collect(),
            ))
        }
        Op::ListParts(user, name, k, upload) => {
            let input = dto::ListPartsInput {
                bucket: name.into(),
                key: k,
                upload_id: upload,
                ..Default::default()
            };
            let out = gw
                .list_parts(request(input, user, Method::GET))
                .await
                .map_err(|e| code(&e))?
                .output;
            Ok(Res::Parts(
                out.parts
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| (p.part_number.unwrap_or_default(), etag(p.e_tag.as_ref())))
                    .collect(),
            ))
        }
    }
}

/// ListObjectsV2 under `prefix` (with the delimiter "/" or without), in pages of `PAGE`
/// entries (keys and common prefixes), continued: every entry in order, once.
async fn list_prefixed(
    gw: &Gateway,
    user: usize,
    name: &str,
    prefix: &str,
    delimiter: bool,
) -> Outcome {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let mut token = None;
    for _ in 0..20 {
        let input = dto::ListObjectsV2Input {
            bucket: name.into(),
            prefix: Some(prefix.into()),
            delimiter: delimiter.then(|| "/".into()),
            max_keys: Some(PAGE),
            continuation_token: token.take(),
            ..Default::default()
        };
        let out = gw
            .list_objects_v2(request(input, user, http::Method::GET))
            .await
            .map_err(|e| code(&e))?
            .output;
        let mut page: Vec<(String, Option<String>)> = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.key.unwrap_or_default(), Some(etag(o.e_tag.as_ref()))))
            .chain(
                out.common_prefixes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| (p.prefix.unwrap_or_default(), None)),
            )
            .collect();
        if page.len() > PAGE as usize {
            return Err(format!("a page of {} entries (at most {PAGE})", page.len()));
        }
        page.sort();
        for (entry, tag) in page {
            if last.as_ref().is_some_and(|l| *l >= entry) {
                return Err(format!("listed {entry} after {last:?}"));
            }
            last = Some(entry.clone());
            match tag {
                Some(tag) => keys.push((entry, tag)),
                None => prefixes.push(entry),
            }
        }
        if out.is_truncated != Some(true) {
            return Ok(Res::Listed(keys, prefixes));
        }
        token = out.next_continuation_token;
        if token.is_none() {
            return Err("truncated without a continuation token".into());
        }
    }
    Err("a listing of a few keys ran past 20 pages".into())
}

/// ListObjectVersions in pages of `VERSIONS_PAGE` versions and markers, each continued from
/// the page before's key and version id markers.
async fn list_versions_paged(gw: &Gateway, user: usize, name: &str) -> Outcome {
    let mut all: Vec<VersionEntry> = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    for _ in 0..50 {
        let input = dto::ListObjectVersionsInput {
            bucket: name.into(),
            max_keys: Some(VERSIONS_PAGE),
            key_marker: key_marker.take(),
            version_id_marker: version_marker.take(),
            ..Default::default()
        };
        let out = gw
            .list_object_versions(request(input, user, http::Method::GET))
            .await
            .map_err(|e| code(&e))?
            .output;
        let before = all.len();
        all.extend(version_rows(out.versions, out.delete_markers));
        let n = all.len() - before;
        if n > VERSIONS_PAGE as usize {
            return Err(format!("a page of {n} versions (at most {VERSIONS_PAGE})"));
        }
        if out.is_truncated != Some(true) {
            return Ok(Res::Versions(all));
        }
        key_marker = out.next_key_marker;
        version_marker = out.next_version_id_marker;
        if key_marker.is_none() {
            return Err("truncated without a key marker".into());
        }
    }
    Err("a listing of a few versions ran past 50 pages".into())
}

/// What a read answers in state `m` (`None`: not a read).
fn expect_read(m: &Model, op: &Op) -> Option<Outcome> {
    Some(match op {
        Op::Get(user, name, k) => m.get(*user, name, k),
        Op::Head(user, name, k) => m.get(*user, name, k).map(|r| match r {
            Res::Object(id, e, v) => Res::Object(body_of(id).len() as u64, e, v),
            other => other,
        }),
        Op::GetVersioning(user, name) => m.owned(*user, name).map(|bkt| {
            Res::Status(match bkt.versioning {
                Versioning::Off => None,
                Versioning::Enabled => Some("Enabled".into()),
                Versioning::Suspended => Some("Suspended".into()),
            })
        }),
        Op::ListParts(user, name, _, upload) => m.owned(*user, name).and_then(|bkt| {
            bkt.uploads
                .get(upload)
                .map(|up| Res::Parts(up.parts.iter().map(|(n, (e, _))| (*n, e.clone())).collect()))
                .ok_or_else(|| "NoSuchUpload".to_owned())
        }),
        _ => return None,
    })
}

/// A listing's entries by key.
fn by_key<T: Clone>(entries: &[(String, T)]) -> BTreeMap<String, Vec<(String, T)>> {
    let mut out: BTreeMap<String, Vec<(String, T)>> = BTreeMap::new();
    for e in entries {
        out.entry(e.0.clone()).or_default().push(e.clone());
    }
    out
}

/// Each key's entries equal to those before the step or after it (keys of unknown state
/// skipped).
fn per_key<T: PartialEq + std::fmt::Debug + Clone>(
    got: &BTreeMap<String, Vec<T>>,
    before: &BTreeMap<String, Vec<T>>,
    after: &BTreeMap<String, Vec<T>>,
    unknown: &BTreeSet<String>,
) -> Result<(), String> {
    let keys: BTreeSet<&String> = got
        .keys()
        .chain(before.keys())
        .chain(after.keys())
        .collect();
    let none = Vec::new();
    for k in keys {
        if unknown.contains(k) {
            continue;
        }
        let g = got.get(k).unwrap_or(&none);
        let (name, a) = (
            before.get(k).unwrap_or(&none),
            after.get(k).unwrap_or(&none),
        );
        if g != name && g != a {
            return Err(format!(
                "key {k}: listed {g:?}, the model has {name:?} (or {a:?})"
            ));
        }
    }
    Ok(())
}

/// Checks a listing's answer against the states before and after its step.
fn judge_list(before: &Model, after: &Model, op: &Op, got: &Outcome) -> Result<(), String> {
    let (user, name) = match op {
        Op::ListKeys(user, name)
        | Op::ListPrefixed(user, name, _, _)
        | Op::ListVersions(user, name)
        | Op::ListVersionsPaged(user, name)
        | Op::ListUploads(user, name) => (*user, *name),
        _ => unreachable!("a listing"),
    };
    let unknown = after
        .buckets
        .get(name)
        .map(|bkt| bkt.unknown.clone())
        .unwrap_or_default();
    let expected_err = before.owned(user, name).err();
    match (got, expected_err) {
        (Err(g), Some(e)) if *g == e => return Ok(()),
        (Err(g), _) => return Err(format!("answered {g}")),
        (Ok(_), Some(e)) => return Err(format!("listed where the model answers {e}")),
        (Ok(_), None) => {}
    }
    match got {
        Ok(Res::Keys(keys)) => {
            let got = by_key(keys);
            let strip = |m: BTreeMap<String, Vec<(String, String)>>| {
                m.into_iter().filter(|(_, v)| !v.is_empty()).collect()
            };
            per_key(
                &got,
                &strip(before.list_keys(user, name)?),
                &strip(after.list_keys(user, name)?),
                &unknown,
            )
        }
        Ok(Res::Listed(keys, prefixes)) => {
            let Op::ListPrefixed(_, _, prefix, delimiter) = op else {
                return Err("a listing under a prefix answered for another".into());
            };
            // The keys under the prefix, but those rolled up into a common prefix.
            let rolled = |k: &str| -> Option<String> {
                let rest = k.strip_prefix(*prefix)?;
                let at = rest.find('/').filter(|_| *delimiter)?;
                Some(format!("{prefix}{}", &rest[..=at]))
            };
            let shown = |k: &str| k.starts_with(*prefix) && rolled(k).is_none();
            let contents = |m: &Model| -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
                Ok(m.list_keys(user, name)?
                    .into_iter()
                    .filter(|(k, v)| shown(k) && !v.is_empty())
                    .collect())
            };
            per_key(
                &by_key(keys),
                &contents(before)?,
                &contents(after)?,
                &unknown,
            )?;
            // A common prefix is listed iff one of its keys holds an object, each key as
            // before or after the step: listed where a key holds one in both, not where none
            // holds one in either (one holding a key of unknown state is skipped).
            let objects = |m: &Model| -> Result<BTreeSet<String>, String> {
                Ok(m.list_keys(user, name)?
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, _)| k)
                    .collect())
            };
            let (b, a) = (objects(before)?, objects(after)?);
            let candidates: BTreeSet<String> = b
                .iter()
                .chain(&a)
                .filter_map(|k| rolled(k))
                .chain(prefixes.iter().cloned())
                .collect();
            for p in candidates {
                if unknown.iter().any(|u| rolled(u).as_ref() == Some(&p)) {
                    continue;
                }
                let under = |k: &&String| rolled(k).as_ref() == Some(&p);
                let must = b.iter().filter(under).any(|k| a.contains(k));
                let may = b.iter().chain(&a).any(|k| under(&k));
                let listed = prefixes.contains(&p);
                if (must && !listed) || (listed && !may) {
                    return Err(format!(
                        "common prefix {p} listed: {listed}; the model has objects under it \
                         before {:?}, after {:?}",
                        b.iter().filter(under).collect::<Vec<_>>(),
                        a.iter().filter(under).collect::<Vec<_>>()
                    ));
                }
            }
            Ok(())
        }
        Ok(Res::Versions(all)) => {
            // Versions and delete markers come in two lists: each in order, newest first.
            let split = |entries: Vec<VersionEntry>| {
                let mut m: BTreeMap<String, Vec<VersionEntry>> = BTreeMap::new();
                let (mut v, d): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.2.is_some());
                v.extend(d);
                for e in v {
                    m.entry(e.0.clone()).or_default().push(e);
                }
                m
            };
            let flat =
                |m: BTreeMap<String, Vec<VersionEntry>>| split(m.into_values().flatten().collect());
            let got = split(all.clone());
            per_key(
                &got,
                &flat(before.list_versions(user, name)?),
                &flat(after.list_versions(user, name)?),
                &unknown,
            )
        }
        Ok(Res::Uploads(ups)) => {
            let mut sorted = ups.clone();
            sorted.sort();
            if sorted != *ups {
                return Err(format!("uploads out of order: {ups:?}"));
            }
            let got = by_key(ups);
            let strip = |m: BTreeMap<String, Vec<(String, String)>>| {
                m.into_iter()
                    .map(|(k, mut v)| {
                        v.sort();
                        (k, v)
                    })
                    .filter(|(_, v)| !v.is_empty())
                    .collect()
            };
            // Keys with an upload left unknown.
            let unknown_uploads: BTreeSet<String> = after
                .buckets
                .get(name)
                .map(|bkt| {
                    bkt.unknown
                        .iter()
                        .filter_map(|u| u.strip_prefix("uk/").map(str::to_owned))
                        .chain(
                            bkt.uploads
                                .iter()
                                .filter(|(id, _)| bkt.unknown.contains(&format!("u/{id}")))
                                .map(|(_, up)| up.key.clone()),
                        )
                        .collect()
                })
                .unwrap_or_default();
            let (before, after) = (
                strip(before.list_uploads(user, name)?),
                strip(after.list_uploads(user, name)?),
            );
            // Under faults too: a miss fails the run (cluster-wide scans hear a read quorum
            // of every replica set; they only counted misses while one core was enough).
            per_key(&got, &before, &after, &unknown_uploads)
        }
        other => Err(format!("answered {other:?}")),
    }
}

/// Checks a write's answer against the state before its step and applies it to `after`.
/// (Writes of one step touch disjoint state, so `before` is the state each one saw.)
/// The bucket `name` as the model has it for `user`, or `None` when the model refuses the
/// request and the answer was that refusal (an error if it was anything else).
fn owned_or_refused<'m>(
    before: &'m Model,
    user: usize,
    name: &str,
    got: &Outcome,
) -> Result<Option<&'m crate::model::Bucket>, String> {
    match before.owned(user, name) {
        Ok(bkt) => Ok(Some(bkt)),
        Err(e) if *got == Err(e.clone()) => Ok(None),
        Err(_) => Err(format!("answered {got:?}")),
    }
}

fn judge_write(before: &Model, after: &mut Model, op: &Op, got: &Outcome) -> Result<(), String> {
    let unexpected = || Err(format!("answered {got:?}"));
    let faults = before.faults;
    match op {
        Op::CreateBucket(user, name) => match (before.buckets.get(*name), got) {
            (None, Ok(Res::Done)) => {
                after.incarnations += 1;
                after.buckets.insert(
                    (*name).to_owned(),
                    crate::model::Bucket {
                        owner: *user,
                        incarnation: after.incarnations,
                        versioning: Versioning::Off,
                        keys: BTreeMap::new(),
                        unknown: BTreeSet::new(),
                        uploads: BTreeMap::new(),
                    },
                );
                Ok(())
            }
            // us-east-1's legacy rule: the owner re-creating its bucket gets 200.
            (Some(bkt), Ok(Res::Done)) if bkt.owner == *user => Ok(()),
            (Some(bkt), Err(e)) if bkt.owner != *user && e == "BucketAlreadyExists" => Ok(()),
            // Under faults a DeleteBucket that answered BucketNotEmpty may have failed to
            // clear its mark (best effort): the owner's re-create then answers this.
            (Some(bkt), Err(e))
                if faults && bkt.owner == *user && e == "BucketAlreadyOwnedByYou" =>
            {
                Ok(())
            }
            _ => unexpected(),
        },
        Op::DeleteBucket(user, name) => {
            let expected = before.owned(*user, name).and_then(|bkt| {
                if bkt.is_empty() {
                    Ok(Res::Done)
                } else {
                    Err("BucketNotEmpty".into())
                }
            });
            // What an ambiguous write left unknown may be there or not.
            let maybe_empty = before.owned(*user, name).is_ok_and(|bkt| {
                bkt.keys
                    .iter()
                    .all(|(k, l)| l.is_empty() || bkt.unknown.contains(k))
                    && bkt
                        .uploads
                        .keys()
                        .all(|id| bkt.unknown.contains(&format!("u/{id}")))
            });
            let either =
                expected == err("BucketNotEmpty") && maybe_empty && matches!(got, Ok(Res::Done));
            if *got != expected && !either {
                if std::env::var_os("PERCORE_OSIM_TRACE").is_some() {
                    println!("model of {name}: {:?}", before.buckets.get(*name));
                }
                return Err(format!("answered {got:?}, the model {expected:?}"));
            }
            if got.is_ok() {
                after.buckets.remove(*name);
            }
            Ok(())
        }
        Op::PutVersioning(user, name, enabled) => {
            let expected = before.owned(*user, name).map(|_| Res::Done);
            if *got != expected {
                return Err(format!("answered {got:?}, the model {expected:?}"));
            }
            if got.is_ok() {
                after.owned_mut(*user, name)?.versioning = if *enabled {
                    Versioning::Enabled
                } else {
                    Versioning::Suspended
                };
            }
            Ok(())
        }
        Op::Put(user, name, k, id) => {
            let Some(bkt) = owned_or_refused(before, *user, name, got)? else {
                return Ok(());
            };
            written(bkt, after, *user, name, k, *id, None, got)
        }
        Op::PutIf(user, name, k, id, cond) => {
            let Some(bkt) = owned_or_refused(before, *user, name, got)? else {
                return Ok(());
            };
            // If-None-Match: * writes where there is no current object (none, or a delete
            // marker); If-Match needs the current object (else NoSuchKey) with that ETag.
            let current = bkt.current(k).and_then(|v| v.etag.as_ref());
            let refused = match (cond, current) {
                (None, Some(_)) => Some("PreconditionFailed"),
                (Some(_), None) => Some("NoSuchKey"),
                (Some(want), Some(e)) if want != e => Some("PreconditionFailed"),
                _ => None,
            };
            match refused {
                Some(code) if *got == err(code) => Ok(()),
                Some(_) => unexpected(),
                None => written(bkt, after, *user, name, k, *id, None, got),
            }
        }
        Op::Copy(user, name, k, sb, sk, svid) => {
            let Some(bkt) = owned_or_refused(before, *user, name, got)? else {
                return Ok(());
            };
            let Some(src) = owned_or_refused(before, *user, sb, got)? else {
                return Ok(());
            };
            let versions = src.keys.get(*sk);
            let source = match svid {
                None => src.current(sk).ok_or("NoSuchKey"),
                Some(v) => match versions.and_then(|l| l.iter().find(|x| x.vid == *v)) {
                    None => Err("NoSuchVersion"),
                    // S3 refuses a delete marker named as a copy's source.
                    Some(x) if x.etag.is_none() => Err("InvalidRequest"),
                    Some(x) => Ok(x),
                },
            };
            match source {
                Err(code) if *got == err(code) => Ok(()),
                Err(_) => unexpected(),
                // The copy is one object written whole: its ETag is its bytes' MD5.
                Ok(v) => {
                    let etag = hex_md5(&body_of(v.body));
                    written(bkt, after, *user, name, k, v.body, Some(&etag), got)
                }
            }
        }
        Op::Delete(user, name, k, vid) => {
            let Some(bkt) = owned_or_refused(before, *user, name, got)? else {
                return Ok(());
            };
            let Ok(Res::Deleted(got_vid, marker)) = got else {
                return unexpected();
            };
            if let Some(vid) = vid
                .as_deref()
                .filter(|_| faults && bkt.unknown.contains(*k))
            {
                // What the key holds is unknown: so is what deleting its version removed.
                after.owned_mut(*user, name)?.remove_version(k, vid);
                return Ok(());
            }
            let ab = after.owned_mut(*user, name)?;
            if !faults {
                ab.unknown.remove(*k);
            }
            delete_one(bkt, ab, k, vid.as_deref(), got_vid.as_deref(), *marker)
        }
        Op::DeleteMany(user, name, keys) => {
            let Some(bkt) = owned_or_refused(before, *user, name, got)? else {
                return Ok(());
            };
            let Ok(Res::DeletedMany(deleted, errors)) = got else {
                return unexpected();
            };
            // Each key deleted or failed, in the order asked; a key that failed (under
            // faults, with a code the model does not decide) stays unknown.
            let ab = after.owned_mut(*user, name)?;
            let mut deleted = deleted.iter();
            let mut failed = errors.iter();
            for k in keys {
                if let Some((fk, code)) = failed.clone().next().filter(|(fk, _)| fk == k) {
                    failed.next();
                    if !faults || MODEL_CODES.contains(&code.as_str()) {
                        return Err(format!("deleting {fk} failed with {code}"));
                    }
                    ab.unknown.insert((*k).to_owned());
                    continue;
                }
                let Some((dk, dvid, marker)) = deleted.next() else {
                    return Err(format!("{k} neither deleted nor failed"));
                };
                if k != dk {
                    return Err(format!("deleted {dk} where {k} was asked"));
                }
                if !faults {
                    ab.unknown.remove(*k);
                }
                delete_one(bkt, ab, k, None, dvid.as_deref(), *marker)?;
            }
            if deleted.next().is_some() || failed.next().is_some() {
                return unexpected();
            }
            Ok(())
        }
        Op::CreateUpload(user, name, k) => match (before.owned(*user, name), got) {
            (Err(e), Err(g)) if e == *g => Ok(()),
            (Ok(_), Ok(Res::UploadId(id))) if !id.is_empty() => {
                after.owned_mut(*user, name)?.uploads.insert(
                    id.clone(),
                    Upload {
                        key: (*k).to_owned(),
                        parts: BTreeMap::new(),
                    },
                );
                Ok(())
            }
            _ => unexpected(),
        },
        Op::UploadPart(user, name, _, upload, id) => {
            let live = before
                .owned(*user, name)
                .map(|bkt| bkt.uploads.contains_key(upload));
            match (live, got) {
                (Err(e), Err(g)) if e == *g => Ok(()),
                (Ok(false), Err(g)) if g == "NoSuchUpload" => Ok(()),
                (Ok(true), Ok(Res::ETag(e))) => {
                    let up = after
                        .owned_mut(*user, name)?
                        .uploads
                        .get_mut(upload)
                        .expect("live");
                    up.parts.insert(1, (e.clone(), *id));
                    Ok(())
                }
                _ => unexpected(),
            }
        }
        Op::Complete(user, name, k, upload, parts) => {
            let Some(bkt) = owned_or_refused(before, *user, name, got)? else {
                return Ok(());
            };
            if let Some(up) = bkt.uploads.get(upload) {
                let Ok(Res::Written(vid, etag)) = got else {
                    return unexpected();
                };
                let vid = new_version(bkt.versioning, vid.as_deref())?;
                let body = up.parts.get(&1).expect("completed with its part").1;
                let incarnation = bkt.incarnation;
                let ab = after.owned_mut(*user, name)?;
                ab.uploads.remove(upload);
                if !faults {
                    ab.unknown.remove(k.as_str());
                }
                ab.push(
                    k,
                    Ver {
                        vid: vid.clone(),
                        etag: Some(etag.clone()),
                        body,
                    },
                );
                after.dead_uploads.push(crate::model::DeadUpload {
                    bucket: (*name).to_owned(),
                    key: k.clone(),
                    id: upload.clone(),
                    completed: Some((incarnation, parts.clone(), shown(&vid, bkt), etag.clone())),
                });
                return Ok(());
            }
            // A retried Complete in the same incarnation answers the same success.
            let done = before.dead_uploads.iter().find(|d| {
                d.id == *upload
                    && d.completed
                        .as_ref()
                        .is_some_and(|c| c.0 == bkt.incarnation && c.1 == *parts)
            });
            match (done.and_then(|d| d.completed.as_ref()), got) {
                (Some((_, _, vid, etag)), Ok(Res::Written(v, e))) if v == vid && e == etag => {
                    Ok(())
                }
                (None, Err(g)) if g == "NoSuchUpload" => Ok(()),
                _ => unexpected(),
            }
        }
        Op::Abort(user, name, k, upload) => {
            let live = before
                .owned(*user, name)
                .map(|bkt| bkt.uploads.contains_key(upload));
            match (live, got) {
                (Err(e), Err(g)) if e == *g => Ok(()),
                (Ok(false), Err(g)) if g == "NoSuchUpload" => Ok(()),
                (Ok(true), Ok(Res::Done)) => {
                    after.owned_mut(*user, name)?.uploads.remove(upload);
                    after.dead_uploads.push(crate::model::DeadUpload {
                        bucket: (*name).to_owned(),
                        key: k.clone(),
                        id: upload.clone(),
                        completed: None,
                    });
                    Ok(())
                }
                _ => unexpected(),
            }
        }
        _ => unreachable!("a write"),
    }
}

/// A new version of `k` with body `body` as answered (`Written`, with the ETag `etag` when the
/// model knows it), checked and applied to `after`.
#[allow(clippy::too_many_arguments)]
fn written(
    bkt: &crate::model::Bucket,
    after: &mut Model,
    user: usize,
    name: &str,
    k: &str,
    body: u64,
    etag: Option<&str>,
    got: &Outcome,
) -> Result<(), String> {
    let Ok(Res::Written(vid, got_etag)) = got else {
        return Err(format!("answered {got:?}"));
    };
    if etag.is_some_and(|e| e != got_etag) {
        return Err(format!("answered {got:?}, the model's ETag {etag:?}"));
    }
    let vid = new_version(bkt.versioning, vid.as_deref())?;
    let faults = after.faults;
    let ab = after.owned_mut(user, name)?;
    if !faults {
        ab.unknown.remove(k);
    }
    ab.push(
        k,
        Ver {
            vid,
            etag: Some(got_etag.clone()),
            body,
        },
    );
    Ok(())
}

/// The version id a new version gets in a bucket in state `v`, checked against the answer.
fn new_version(v: Versioning, got: Option<&str>) -> Result<String, String> {
    match (v, got) {
        (Versioning::Off, None) | (Versioning::Suspended, None | Some("null")) => Ok("null".into()),
        (Versioning::Enabled, Some(id)) if id != "null" && !id.is_empty() => Ok(id.to_owned()),
        _ => Err(format!(
            "version id {got:?} in a bucket with versioning {v:?}"
        )),
    }
}

/// One key's delete (of version `vid`, or the current one) as answered, checked and applied.
fn delete_one(
    before: &crate::model::Bucket,
    after: &mut crate::model::Bucket,
    key: &str,
    vid: Option<&str>,
    got_vid: Option<&str>,
    marker: bool,
) -> Result<(), String> {
    if let Some(vid) = vid {
        let was = before
            .keys
            .get(key)
            .and_then(|l| l.iter().find(|v| v.vid == vid));
        let expected_marker = was.is_some_and(|v| v.etag.is_none());
        if got_vid != Some(vid) || marker != expected_marker {
            return Err(format!(
                "deleting version {vid} answered ({got_vid:?}, marker {marker}), the model has {was:?}"
            ));
        }
        after.remove_version(key, vid);
        return Ok(());
    }
    match (before.versioning, got_vid, marker) {
        (Versioning::Off, None, false) => {
            after.keys.remove(key);
            Ok(())
        }
        (Versioning::Suspended, Some("null"), true) => {
            after.push(
                key,
                Ver {
                    vid: "null".into(),
                    etag: None,
                    body: 0,
                },
            );
            Ok(())
        }
        (Versioning::Enabled, Some(v), true) if v != "null" => {
            after.push(
                key,
                Ver {
                    vid: v.to_owned(),
                    etag: None,
                    body: 0,
                },
            );
            Ok(())
        }
        _ => Err(format!(
            "a delete in a bucket with versioning {:?} answered ({got_vid:?}, marker {marker})",
            before.versioning
        )),
    }
}

/// Whether `a` and `b` are two creates (If-None-Match: *) of one key.
fn racing_creates(a: &Op, b: &Op) -> bool {
    match a {
        Op::PutIf(_, name, k, _, None) => b.bucket() == *name && b.creates(k),
        _ => false,
    }
}

/// Two creates of one key (If-None-Match: *) racing: where the key has no current object and
/// both may write, exactly one wins and the other answers PreconditionFailed; else each gets
/// the answer it gets alone.
fn judge_creates(
    before: &Model,
    after: &mut Model,
    first: (&Op, &Outcome),
    second: (&Op, &Outcome),
) -> Result<(), String> {
    let (Op::PutIf(user1, name, key, _, _), Op::PutIf(user2, _, _, _, _)) = (first.0, second.0)
    else {
        unreachable!("two creates");
    };
    let free = |u: usize| {
        before
            .owned(u, name)
            .is_ok_and(|bkt| bkt.current(key).is_none())
    };
    if !(free(*user1) && free(*user2)) {
        judge_write(before, after, first.0, first.1)?;
        return judge_write(before, after, second.0, second.1);
    }
    let (winner, loser) = match (first.1, second.1) {
        (Ok(_), Err(_)) => (first, second),
        (Err(_), Ok(_)) => (second, first),
        _ => {
            return Err(format!(
                "answered {:?} and {:?}: exactly one wins",
                first.1, second.1
            ))
        }
    };
    if *loser.1 != err("PreconditionFailed") {
        return Err(format!("the loser answered {:?}", loser.1));
    }
    judge_write(before, after, winner.0, winner.1)
}

/// The race of DeleteBucket and a PUT into its (unversioned) bucket: never both acknowledged
/// while the object is lost; the PUT is in the bucket iff the bucket survives.
fn judge_delete_put(
    before: &Model,
    after: &mut Model,
    del: (&Op, &Outcome),
    put: (&Op, &Outcome),
) -> Result<(), String> {
    let (Op::DeleteBucket(du, name), Op::Put(pu, _, k, id)) = (del.0, put.0) else {
        unreachable!("a DeleteBucket and a Put");
    };
    let faults = before.faults;
    let Ok(bkt) = before.owned(*du, name) else {
        // The bucket is not the deleter's: both are judged alone.
        judge_write(before, after, del.0, del.1)?;
        return judge_write(before, after, put.0, put.1);
    };
    if bkt.owner != *pu {
        judge_write(before, after, del.0, del.1)?;
        return judge_write(before, after, put.0, put.1);
    }
    // Empty but for the PUT's key (or, under faults, but for what is unknown).
    let others_empty = bkt
        .uploads
        .keys()
        .all(|id| faults && bkt.unknown.contains(&format!("u/{id}")))
        && (faults || bkt.unknown.iter().all(|u| u == k))
        && bkt
            .keys
            .iter()
            .all(|(key, l)| key == k || l.is_empty() || (faults && bkt.unknown.contains(key)));
    match (del.1, put.1) {
        (Ok(Res::Done), Err(e)) if e == "NoSuchBucket" || e == "OperationAborted" => {
            let put_key_empty = bkt.keys.get(*k).is_none_or(Vec::is_empty)
                || (faults && bkt.unknown.contains(*k));
            if !others_empty || !put_key_empty {
                return Err(format!("DeleteBucket of a bucket holding {:?} answered 204", bkt.keys));
            }
            after.buckets.remove(*name);
            Ok(())
        }
        (Ok(Res::Done), Ok(_)) => Err(format!(
            "DeleteBucket answered 204 and a PUT of {k} into it answered 200 (the acknowledged object is lost)"
        )),
        (Err(e), Ok(Res::Written(None, etag))) if e == "BucketNotEmpty" => {
            let ab = after.owned_mut(*pu, name)?;
            if !faults {
 ab.unknown.remove(*k);
}
            ab.push(
                k,
                Ver {
                    vid: "null".into(),
                    etag: Some(etag.clone()),
                    body: *id,
                },
            );
            Ok(())
        }
        (Err(e), Err(p)) if e == "BucketNotEmpty" && p == "OperationAborted" => {
            // The PUT is in the bucket or not: the next GET tells.
            after.owned_mut(*pu, name)?.unknown.insert((*k).to_owned());
            Ok(())
        }
        (Err(e), Err(p)) if e == "BucketNotEmpty" && !others_empty && p == "NoSuchBucket" => {
            Err("a PUT answered NoSuchBucket into a bucket that survived".into())
        }
        _ => Err(format!(
            "DeleteBucket answered {:?}, a concurrent PUT of {k} {:?}",
            del.1, put.1
        )),
    }
}

/// The error codes the model decides; any other (ServiceUnavailable, InternalError,
/// InsufficientStorage, OperationAborted, RequestTimeout, a crashed gateway) says the
/// operation may or may not have happened.
const MODEL_CODES: [&str; 10] = [
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchVersion",
    "PreconditionFailed",
    "InvalidRequest",
    "NoSuchUpload",
    "BucketNotEmpty",
    "BucketAlreadyExists",
    "BucketAlreadyOwnedByYou",
    "AccessDenied",
];

/// Marks what an ambiguous `op` may have changed as unknown in `m` (a race's partner too).
fn taint(m: &mut Model, op: &Op, ops: &[Op]) {
    let name = op.bucket();
    let racing = ops.iter().filter(|o| o.bucket() == name).count() > 1
        && ops.iter().any(|o| o.bucket() == name && o.bucket_write());
    if op.bucket_write() || racing {
        m.tainted.insert(name.to_owned());
        return;
    }
    let Some(bkt) = m.buckets.get_mut(name) else {
        return;
    };
    match op {
        Op::Put(_, _, k, _)
        | Op::PutIf(_, _, k, _, _)
        | Op::Copy(_, _, k, _, _, _)
        | Op::Delete(_, _, k, _) => {
            bkt.unknown.insert((*k).to_owned());
        }
        Op::DeleteMany(_, _, ks) => bkt.unknown.extend(ks.iter().map(|k| (*k).to_owned())),
        Op::CreateUpload(_, _, k) => {
            bkt.unknown.insert(format!("uk/{k}"));
        }
        Op::UploadPart(_, _, _, id, _) | Op::Abort(_, _, _, id) => {
            bkt.unknown.insert(format!("u/{id}"));
        }
        Op::Complete(_, _, k, id, _) => {
            bkt.unknown.insert(k.clone());
            bkt.unknown.insert(format!("u/{id}"));
        }
        _ => {}
    }
}

/// Judges one step: its writes (applied to the model), then its reads (each key as before the
/// step or after it).
fn judge_step(
    m: &mut Model,
    ops: &[Op],
    outs: &[Outcome],
    stats: &mut Stats,
) -> Result<(), String> {
    let before = m.clone();
    let mut after = m.clone();
    let mut done = vec![false; ops.len()];
    if m.faults {
        for (i, op) in ops.iter().enumerate() {
            let name = op.bucket();
            if before.tainted.contains(name) {
                done[i] = true;
                continue;
            }
            if let Err(code) = &outs[i] {
                if !MODEL_CODES.contains(&code.as_str()) {
                    done[i] = true;
                    taint(&mut after, op, ops);
                    continue;
                }
            }
            // Of an upload left unknown, or a key's read: nothing to check; a Complete of an
            // unknown upload makes its key unknown too.
            let unknown = |what: String| {
                before
                    .buckets
                    .get(name)
                    .is_some_and(|bkt| bkt.unknown.contains(&what))
            };
            let skip = match op {
                Op::UploadPart(_, _, _, id, _)
                | Op::Abort(_, _, _, id)
                | Op::ListParts(_, _, _, id)
                | Op::Complete(_, _, _, id, _) => unknown(format!("u/{id}")),
                // A condition on a key of unknown state, a copy of one: the write's outcome
                // is unknown too.
                Op::Get(_, _, k) | Op::Head(_, _, k) | Op::PutIf(_, _, k, _, _) => {
                    unknown((*k).to_owned())
                }
                Op::Copy(_, _, _, sb, sk, _) => {
                    before.tainted.contains(*sb)
                        || before
                            .buckets
                            .get(*sb)
                            .is_some_and(|bkt| bkt.unknown.contains(*sk))
                }
                _ => false,
            };
            if skip {
                done[i] = true;
                if matches!(op, Op::Complete(..) | Op::PutIf(..) | Op::Copy(..)) {
                    taint(&mut after, op, ops);
                }
            }
        }
        // Of two racing creates of one key, one left unknown leaves the other's outcome
        // unknown too (it may have lost to it).
        for i in 0..ops.len() {
            for j in 0..ops.len() {
                if i != j && done[i] && !done[j] && racing_creates(&ops[i], &ops[j]) {
                    done[j] = true;
                    taint(&mut after, &ops[j], ops);
                }
            }
        }
        // A name tainted now: its other operations of the step are not judged either.
        for (i, op) in ops.iter().enumerate() {
            done[i] |= after.tainted.contains(op.bucket());
        }
    }
    // The races first.
    for i in 0..ops.len() {
        for j in i + 1..ops.len() {
            if done[i] || done[j] || ops[i].bucket() != ops[j].bucket() {
                continue;
            }
            match (&ops[i], &ops[j]) {
                (Op::CreateBucket(..), Op::CreateBucket(..)) => {
                    stats.races += 1;
                    if before.buckets.contains_key(ops[i].bucket()) {
                        judge_write(&before, &mut after, &ops[i], &outs[i])
                            .map_err(|e| format!("{:?}: {e}", ops[i]))?;
                        judge_write(&before, &mut after, &ops[j], &outs[j])
                            .map_err(|e| format!("{:?}: {e}", ops[j]))?;
                    } else {
                        let won = outs[i].is_ok() as usize + outs[j].is_ok() as usize;
                        if won != 1 {
                            return Err(format!(
                                "two users created one name: {:?} and {:?}",
                                outs[i], outs[j]
                            ));
                        }
                        let (w, l) = if outs[i].is_ok() { (i, j) } else { (j, i) };
                        if outs[l] != err("BucketAlreadyExists") {
                            return Err(format!("the loser of a create race got {:?}", outs[l]));
                        }
                        judge_write(&before, &mut after, &ops[w], &outs[w])
                            .map_err(|e| format!("{:?}: {e}", ops[w]))?;
                    }
                    (done[i], done[j]) = (true, true);
                }
                (a, b) if racing_creates(a, b) => {
                    stats.races += 1;
                    judge_creates(
                        &before,
                        &mut after,
                        (&ops[i], &outs[i]),
                        (&ops[j], &outs[j]),
                    )
                    .map_err(|e| format!("{:?} with {:?}: {e}", ops[i], ops[j]))?;
                    (done[i], done[j]) = (true, true);
                }
                (Op::DeleteBucket(..), Op::Put(..)) | (Op::Put(..), Op::DeleteBucket(..)) => {
                    stats.races += 1;
                    let (d, p) = if matches!(ops[i], Op::DeleteBucket(..)) {
                        (i, j)
                    } else {
                        (j, i)
                    };
                    judge_delete_put(
                        &before,
                        &mut after,
                        (&ops[d], &outs[d]),
                        (&ops[p], &outs[p]),
                    )
                    .map_err(|e| format!("{:?} with {:?}: {e}", ops[d], ops[p]))?;
                    (done[i], done[j]) = (true, true);
                }
                _ => {}
            }
        }
    }
    for (i, op) in ops.iter().enumerate() {
        let read = matches!(
            op,
            Op::Get(..)
                | Op::Head(..)
                | Op::GetVersioning(..)
                | Op::ListKeys(..)
                | Op::ListPrefixed(..)
                | Op::ListVersions(..)
                | Op::ListVersionsPaged(..)
                | Op::ListUploads(..)
                | Op::ListParts(..)
        );
        if done[i] || read {
            continue;
        }
        judge_write(&before, &mut after, op, &outs[i]).map_err(|e| format!("{op:?}: {e}"))?;
    }
    for (i, op) in ops.iter().enumerate() {
        let got = &outs[i];
        if done[i] {
            continue;
        }
        if let Some(name) = expect_read(&before, op) {
            let a = expect_read(&after, op).expect("a read");
            // A key whose state is unknown: the GET tells it (an unversioned bucket).
            let unknown_after = |bk: &str, k: &str| {
                after
                    .buckets
                    .get(bk)
                    .is_some_and(|bkt| bkt.unknown.contains(k))
            };
            if let Op::Get(_, bk, k) | Op::Head(_, bk, k) = op {
                // Under faults a key left unknown stays so (its write may still land).
                if after.faults && unknown_after(bk, k) {
                    continue;
                }
            }
            if let Op::Get(user, bk, k) = op {
                if unknown_after(bk, k) {
                    let bkt = after.owned_mut(*user, bk)?;
                    bkt.unknown.remove(*k);
                    match got {
                        Ok(Res::Object(id, etag, None)) => bkt.push(
                            k,
                            Ver {
                                vid: "null".into(),
                                etag: Some(etag.clone()),
                                body: *id,
                            },
                        ),
                        Err(e) if e == "NoSuchKey" => {
                            bkt.keys.remove(*k);
                        }
                        other => return Err(format!("{op:?}: answered {other:?}")),
                    }
                    continue;
                }
            }
            let unknown_key = match op {
                Op::Head(_, bk, k) => after
                    .buckets
                    .get(*bk)
                    .is_some_and(|bkt| bkt.unknown.contains(*k)),
                _ => false,
            };
            if !unknown_key && *got != name && *got != a {
                return Err(format!(
                    "{op:?}: answered {got:?}, the model {name:?} (or {a:?})"
                ));
            }
        } else if matches!(
            op,
            Op::ListKeys(..)
                | Op::ListPrefixed(..)
                | Op::ListVersions(..)
                | Op::ListVersionsPaged(..)
                | Op::ListUploads(..)
        ) {
            judge_list(&before, &after, op, got).map_err(|e| format!("{op:?}: {e}"))?;
        }
    }
    *m = after;
    Ok(())
}

/// The cluster of a run: its layout, or the layout change it goes through.
struct Cluster {
    /// Nodes, each with an object service: every node of both layouts during a change.
    nodes: usize,
    /// The layout the gateways route by (during a change, the old one: `transition` says the
    /// rest).
    layout: Arc<placement::Layout>,
    transition: Option<Arc<Transition>>,
}

impl Cluster {
    fn of(cfg: &Config) -> Result<Cluster, String> {
        let Some(change) = cfg.change else {
            return Ok(Cluster {
                nodes: NODES,
                layout: shape(),
                transition: None,
            });
        };
        let (from, to) = change.nodes();
        let old = layout(from, CORES_PER_NODE);
        let new = match change {
            Change::Replace => next_layout_removing(&old, to, CORES_PER_NODE, &[DEAD_NODE]),
            Change::Grow | Change::Shrink => next_layout(&old, to, CORES_PER_NODE),
        };
        let transition = Transition::new(old.clone(), new).map_err(|e| e.to_string())?;
        Ok(Cluster {
            nodes: from.max(to),
            layout: old,
            transition: Some(Arc::new(transition)),
        })
    }

    /// The run's world: the layout's cores, or during a change the union of both versions'
    /// (`Transition::cores`), node n's cores on node n, where its object service runs.
    fn world(&self, seed: u64, fault: Fault) -> World {
        match &self.transition {
            None => World::of_layout(seed, &self.layout, fault),
            Some(t) => {
                // `CoreId::node` is the node's id, 1 for the first.
                let core_node = t.cores().iter().map(|c| (c.node - 1) as usize).collect();
                World::new(seed, core_node, self.nodes, fault)
            }
        }
    }

    /// Node `node`'s backend, fresh (a restart: no HLC state, no down marks). During a change
    /// every backend routes by the one `Transition`: the fence it keeps is per process, and
    /// this simulation is one process, so it is exact (across processes the control plane
    /// fences).
    fn backend(&self, world: &Shared, node: usize, skew_ms: i64) -> Arc<Backend> {
        let backend = match &self.transition {
            None => Backend::cluster(self.layout.clone(), None, Vec::new()),
            Some(t) => Backend::moving(t.clone(), None, Vec::new()),
        }
        .expect("the simulation's backend");
        Arc::new(linked(world, backend, node, skew_ms))
    }
}

/// `backend` reaching every core through the world's network from `node`, on its clock.
fn linked(world: &Shared, backend: Backend, node: usize, skew_ms: i64) -> Backend {
    let links: Vec<Arc<dyn CoreLink>> = (0..backend.core_count())
        .map(|core| {
            Arc::new(SimLink {
                world: world.clone(),
                from: node,
                core,
            }) as Arc<dyn CoreLink>
        })
        .collect();
    let clock: Arc<dyn Clock> = Arc::new(SimClock {
        world: world.clone(),
        skew_ms,
        node,
    });
    backend.with_links(links, clock)
}

/// One object service per node, over the world's cores.
fn gateways(world: &Shared, cluster: &Cluster, skews: &[i64]) -> Vec<Gateway> {
    (0..cluster.nodes)
        .map(|node| gateway(world, cluster, node, skews[node]))
        .collect()
}

/// Node `node`'s object service, fresh (a restart: no HLC state, no down marks).
fn gateway(world: &Shared, cluster: &Cluster, node: usize, skew_ms: i64) -> Gateway {
    service(cluster.backend(world, node, skew_ms))
}

/// Node `node`'s service `g`, keeping bucket records if it is the one gateway of the run.
fn cached(cfg: &Config, node: usize, g: Gateway) -> Gateway {
    if cfg.one_gateway && node == 0 {
        g.with_bucket_cache()
    } else {
        g
    }
}

fn service(backend: Arc<Backend>) -> Gateway {
    // The write-age check compares the real clock with the HLC's (the simulation's epoch): a
    // grace of centuries keeps it out of the way (no orphan sweep runs).
    Gateway::new(backend, "us-east-1".into()).with_orphan_grace(ORPHAN_GRACE_MS)
}

/// The simulated cluster's layout: `NODES` nodes of `CORES_PER_NODE` cores.
fn shape() -> Arc<placement::Layout> {
    layout(NODES, CORES_PER_NODE)
}

/// Two PUTs of one key through two gateways started at the same virtual instant (equal clocks,
/// so equal HLCs), then a GET: it must return one of the two bodies whole, with its ETag.
pub fn same_instant_puts(seed: u64) -> Result<(), String> {
    let cluster = Cluster::of(&Config::default())?;
    let world = Shared::new(cluster.world(seed, Fault::None));
    let gws = gateways(&world, &cluster, &[0; NODES]);
    let main = async {
        let created = exec(&gws[0], &Op::CreateBucket(0, "sb0")).await;
        if created != Ok(Res::Done) {
            return Err(format!("CreateBucket answered {created:?}"));
        }
        let (a, b) = futures::future::join(
            exec(&gws[0], &Op::Put(0, "sb0", "k0", 1)),
            exec(&gws[1], &Op::Put(0, "sb0", "k0", 2)),
        )
        .await;
        let etags = [(1, a), (2, b)]
            .into_iter()
            .map(|(id, r)| match r {
                Ok(Res::Written(_, etag)) => Ok((id, etag)),
                other => Err(format!("PUT {id} answered {other:?}")),
            })
            .collect::<Result<Vec<_>, String>>()?;
        match exec(&gws[2], &Op::Get(0, "sb0", "k0")).await {
            Ok(Res::Object(id, etag, _)) if etags.contains(&(id, etag.clone())) => Ok(()),
            other => Err(format!("after PUTs {etags:?}, GET answered {other:?}")),
        }
    };
    run_tokio(&world, main, STEPS_MAX)
}

/// One seed's run: what its tasks (the steps, the mover) share.
struct Run {
    world: Shared,
    cluster: Cluster,
    cfg: Config,
    skews: Vec<i64>,
    /// The step the workload is at (the mover starts a few steps in, so data exists).
    step: Cell<usize>,
    /// Every group of the layout change is done (the final check waits for it).
    moved: Cell<bool>,
    /// Every operation and its answer, printed (with a replayed seed).
    trace: bool,
}

/// Runs one seed. `Err` names the first operation the model refused.
pub fn run_seed(seed: u64, cfg: &Config) -> Result<Stats, String> {
    let cluster = Cluster::of(cfg)?;
    let world = Shared::new(cluster.world(seed, cfg.fault));
    let skews: Vec<i64> = (0..cluster.nodes)
        .map(|_| match cfg.skew_ms_max {
            0 => 0,
            max => world.below(2 * max + 1) as i64 - max as i64,
        })
        .collect();
    let gateways: Vec<Gateway> = gateways(&world, &cluster, &skews)
        .into_iter()
        .enumerate()
        .map(|(node, g)| cached(cfg, node, g))
        .collect();
    let mover_backend = gateways[MOVER_NODE].backend().clone();
    let run = Run {
        world: world.clone(),
        cluster,
        cfg: *cfg,
        skews,
        step: Cell::new(0),
        moved: Cell::new(false),
        trace: std::env::var_os("PERCORE_OSIM_TRACE").is_some(),
    };
    let main = async {
        let steps = run_steps(&run, gateways);
        if run.cluster.transition.is_none() {
            return steps.await;
        }
        let mover = run_mover(&run, mover_backend);
        let (mut stats, (groups, restarts)) = futures::future::try_join(steps, mover).await?;
        stats.groups_moved = groups;
        stats.mover_restarts = restarts;
        Ok(stats)
    };
    run_tokio(&world, main, STEPS_MAX)
}

/// The steps of one seed, then the final check (after the layout change, once every group is
/// done, and then again through the new layout alone).
async fn run_steps(run: &Run, mut gateways: Vec<Gateway>) -> Result<Stats, String> {
    let (world, cfg) = (&run.world, &run.cfg);
    let mut model = Model {
        faults: cfg.faults,
        ..Model::default()
    };
    let mut stats = Stats::default();
    let mut hash: u64 = 0;
    let mut next_id = 0u64;
    for step in 0..=cfg.steps {
        run.step.set(step);
        let final_check = step == cfg.steps;
        let mut ops: Vec<Op> = Vec::new();
        if final_check {
            if run.cluster.transition.is_some() {
                // The final check reads what the mover moved.
                while !run.moved.get() {
                    world.sleep(MOVER_POLL_MS).await;
                }
            }
            ops = final_ops(&model, cfg.wide);
        } else {
            let width = 1 + world.below(cfg.width);
            for _ in 0..width * 3 {
                if ops.len() as u64 == width {
                    break;
                }
                let op = generate(world, &model, &mut next_id, cfg.wide);
                if fits(cfg, &model, &ops, &op) {
                    ops.push(op);
                }
            }
        }
        // The nemesis: this step's weather, a node cut off, a node to crash meanwhile.
        let mut crash = None;
        if cfg.faults && !final_check {
            let mut w = world.lock();
            w.weather = Weather {
                drop_per_mille: w.rng.below(30),
                error_per_mille: w.rng.below(20),
            };
            if w.rng.below(8) == 0 {
                let node = w.rng.below(run.cluster.nodes as u64) as usize;
                w.side[node] = 1;
            }
            if w.rng.below(8) == 0 {
                crash = Some((
                    w.rng.below(run.cluster.nodes as u64) as usize,
                    w.rng.below(60),
                ));
            }
            if run.trace {
                println!(
                    "{step} nemesis: {:?}, sides {:?}, crash {crash:?}",
                    w.weather, w.side
                );
            }
        }
        let runs = ops.iter().map(|op| {
            let mut node = world.below(run.cluster.nodes as u64) as usize;
            if cfg.change == Some(Change::Replace) && node == DEAD_NODE {
                node += 1;
            }
            if cfg.one_gateway {
                node = 0;
            }
            let delay = if final_check {
                0
            } else {
                world.below(STAGGER_MS)
            };
            let gw = &gateways[node];
            async move {
                world.sleep(delay).await;
                // A gateway that crashes ends its operations where they are.
                let crashed = world.crashed(node);
                match futures::future::select(Box::pin(exec(gw, op)), Box::pin(crashed)).await {
                    futures::future::Either::Left((out, _)) => out,
                    futures::future::Either::Right(_) => err("GatewayCrashed"),
                }
            }
        });
        let nemesis = async {
            if let Some((node, at_ms)) = crash {
                world.sleep(at_ms).await;
                world.lock().crash(node);
            }
        };
        let (outs, ()) = futures::future::join(futures::future::join_all(runs), nemesis).await;
        if cfg.faults {
            // Healed at the step's end; a crashed node restarts with a fresh service.
            let mut w = world.lock();
            w.weather = Weather::default();
            w.side = vec![0; run.cluster.nodes];
            if let Some((node, _)) = crash {
                w.up[node] = true;
                drop(w);
                let fresh = gateway(world, &run.cluster, node, run.skews[node]);
                gateways[node] = cached(cfg, node, fresh);
            }
        }
        record(run, &step.to_string(), &ops, &outs, &mut stats, &mut hash);
        judge_step(&mut model, &ops, &outs, &mut stats).map_err(|e| format!("step {step}: {e}"))?;
    }
    if run.cluster.transition.is_some() {
        read_through_new_layout(run, &mut model, &mut stats, &mut hash).await?;
        if !cfg.faults {
            stats.fragments_placed = placed(run)?;
        }
    }
    if let Some(cache) = gateways[0].store().bucket_cache() {
        stats.bucket_cache_hits = cache.counts().0;
    }
    let w = world.lock();
    stats.messages = w.messages;
    stats.history_hash = hash ^ w.now_ms.rotate_left(32) ^ w.messages;
    Ok(stats)
}

/// The final check's operations: every bucket read whole, alone (the listings exact).
fn final_ops(model: &Model, wide: bool) -> Vec<Op> {
    let mut ops = Vec::new();
    for name in BUCKETS {
        let user = model.buckets.get(name).map_or(0, |bkt| bkt.owner);
        ops.extend([
            Op::ListKeys(user, name),
            Op::ListVersions(user, name),
            Op::ListUploads(user, name),
        ]);
        ops.extend(keys(wide).iter().map(|k| Op::Get(user, name, k)));
    }
    ops
}

/// Counts `ops` and their answers, hashes them into the history, prints them when tracing.
fn record(run: &Run, step: &str, ops: &[Op], outs: &[Outcome], stats: &mut Stats, hash: &mut u64) {
    for (op, out) in ops.iter().zip(outs) {
        stats.ops += 1;
        stats.errors += u64::from(out.is_err());
        let line = format!("{step} {op:?} {out:?}");
        if run.trace {
            println!("{line}");
        }
        *hash = hash.rotate_left(7) ^ cluster::backend::stable_hash(&[line.as_bytes()]);
    }
}

/// The node whose process runs the mover (beside its object service).
const MOVER_NODE: usize = 0;
/// The mover's rate limit (the bodies are small: it hardly waits for it).
const MOVER_RATE_BYTES_PER_S: u64 = 20_000;
/// The longest pause between two steps of the mover (so that the move spreads over many
/// steps of the workload).
const MOVER_PAUSE_MS_MAX: u64 = 100;
/// How often a task waiting for the mover (or the mover for its start) looks again.
const MOVER_POLL_MS: u64 = 50;
/// The longest a mover cut in the middle of a step runs before it is cut.
const MOVER_CUT_MS_MAX: u64 = 400;

/// The object service's catalog for `t`'s mover: of the new layout's STANDARD tier (the one
/// the change moves), its classes' policies from a store routing by that layout alone.
fn catalog_of(t: &Transition) -> ObjectCatalog {
    let backend = Backend::cluster(t.new_layout().clone(), None, Vec::new())
        .expect("the new layout's backend");
    let catalog = ObjectCatalog::new(Gateway::new(Arc::new(backend), "us-east-1".into()).store());
    assert_eq!(catalog.tier(), t.tier(), "the change moves STANDARD's tier");
    catalog
}

/// Why a mover stopped before every group was done.
enum Stop {
    /// Its node crashed (its process lost what it was doing).
    Crashed,
    /// It alone crashed, in the middle of a step.
    Cut,
}

/// The layout change's mover (`cluster::moves::Mover` over the object service's catalog,
/// `objects::move_catalog::ObjectCatalog`, of the old layout's STANDARD tier), on node
/// `MOVER_NODE`: from a step of the first third of the workload on, a step of the mover (a
/// group to `CutOver`, or to `Done`) after each pause of up to `MOVER_PAUSE_MS_MAX`, until
/// every group is done. Under faults it stops where it is when its node crashes and starts
/// again (a new `Mover` over a fresh backend, from the groups' phases) once the node is up,
/// and once it is cut in the middle of a step (a crash of the mover alone). Returns (groups
/// moved, restarts).
async fn run_mover(run: &Run, mut backend: Arc<Backend>) -> Result<(u64, u64), String> {
    let (world, cfg) = (&run.world, &run.cfg);
    let t = run.cluster.transition.as_ref().expect("a layout change");
    let catalog = catalog_of(t);
    // One group a step, or a few together (their phases advanced together).
    let config = MoverConfig {
        rate_bytes_per_s: MOVER_RATE_BYTES_PER_S,
        groups_per_step: 1 + world.below(4) as usize,
    };
    let start = 1 + world.below((cfg.steps as u64 / 6).max(1));
    while (run.step.get() as u64) < start {
        world.sleep(MOVER_POLL_MS).await;
    }
    // Under faults, the mover step in which it is cut once.
    let mut cut_at = cfg.faults.then(|| world.below(2 * t.groups().len() as u64));
    let (mut groups, mut restarts, mut n) = (0, 0, 0u64);
    loop {
        let mover = Mover::new(&backend, &catalog, config);
        let stop = loop {
            world.sleep(world.below(MOVER_PAUSE_MS_MAX)).await;
            n += 1;
            let cut_ms = match cut_at {
                Some(at) if n > at => {
                    cut_at = None;
                    Some(1 + world.below(MOVER_CUT_MS_MAX))
                }
                _ => None,
            };
            let crashed = world.crashed(MOVER_NODE);
            let stopped = async move {
                match cut_ms {
                    None => {
                        crashed.await;
                        Stop::Crashed
                    }
                    Some(ms) => {
                        match futures::future::select(Box::pin(crashed), Box::pin(world.sleep(ms)))
                            .await
                        {
                            futures::future::Either::Left(_) => Stop::Crashed,
                            futures::future::Either::Right(_) => Stop::Cut,
                        }
                    }
                }
            };
            match futures::future::select(Box::pin(mover.step()), Box::pin(stopped)).await {
                futures::future::Either::Left((Ok(Some((pg, phase))), _)) => {
                    if run.trace {
                        println!("{} mover: group {pg} {phase:?}", run.step.get());
                    }
                }
                futures::future::Either::Left((Ok(None), _)) => break None,
                futures::future::Either::Left((Err(e), _)) => {
                    return Err(format!("the mover failed: {e}"));
                }
                futures::future::Either::Right((stop, _)) => break Some(stop),
            }
        };
        groups += mover.progress().groups;
        drop(mover);
        let Some(stop) = stop else { break };
        restarts += 1;
        if run.trace {
            println!("the mover stopped ({}), starts again", stop.said());
        }
        if let Stop::Crashed = stop {
            while !world.lock().up[MOVER_NODE] {
                world.sleep(MOVER_POLL_MS).await;
            }
            backend = run
                .cluster
                .backend(world, MOVER_NODE, run.skews[MOVER_NODE]);
        }
    }
    let (done, total) = t.done();
    if done != total {
        return Err(format!(
            "the mover ended with {done} of {total} groups done"
        ));
    }
    run.moved.set(true);
    Ok((groups, restarts))
}

impl Stop {
    fn said(&self) -> &'static str {
        match self {
            Stop::Crashed => "its node crashed",
            Stop::Cut => "cut in the middle of a step",
        }
    }
}

/// After the change, the proof that the data moved: a fresh object service over the new
/// layout alone (`Backend::cluster`, no transition: no old row to fall back to) reads
/// everything once more, alone, as the final check does (listings exact, every key's current
/// version with its bytes), and every version the model holds by its version id, bytes
/// checked.
async fn read_through_new_layout(
    run: &Run,
    model: &mut Model,
    stats: &mut Stats,
    hash: &mut u64,
) -> Result<(), String> {
    let t = run.cluster.transition.as_ref().expect("a layout change");
    let backend = Backend::cluster(t.new_layout().clone(), None, Vec::new())
        .expect("the new layout's backend");
    let gw = service(Arc::new(linked(&run.world, backend, 0, run.skews[0])));
    let ops = final_ops(model, run.cfg.wide);
    let outs = futures::future::join_all(ops.iter().map(|op| exec(&gw, op))).await;
    record(run, "new layout:", &ops, &outs, stats, hash);
    judge_step(model, &ops, &outs, stats)
        .map_err(|e| format!("read through the new layout alone: {e}"))?;
    for (name, bkt) in &model.buckets {
        if model.tainted.contains(name) {
            continue;
        }
        for (k, versions) in &bkt.keys {
            if bkt.unknown.contains(k) {
                continue;
            }
            for v in versions {
                let Some(e) = &v.etag else { continue };
                let got = get(&gw, bkt.owner, name, k, Some(v.vid.clone())).await;
                record(
                    run,
                    "new layout:",
                    &[Op::Get(bkt.owner, static_bucket(name), static_key(k))],
                    std::slice::from_ref(&got),
                    stats,
                    hash,
                );
                match &got {
                    Ok(Res::Object(id, etag, _)) if *id == v.body && etag == e => {}
                    _ => {
                        return Err(format!(
                            "read through the new layout alone: {name}/{k} version {}: \
                             answered {got:?}, the model body {} ETag {e}",
                            v.vid, v.body
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// The bucket name `name` as the `&'static str` of `BUCKETS`.
fn static_bucket(name: &str) -> &'static str {
    BUCKETS
        .iter()
        .copied()
        .find(|b| *b == name)
        .expect("a workload bucket")
}

/// Without faults, after the change: every fragment a live record of a bucket that exists
/// references (the newest of its key over every core, as `ObjectCatalog` lists its stripes)
/// is on every core its
/// group's new row puts it on, and on no other core (the mover retired the old copies). A
/// GET through the new layout may read a replica a row kept, so this is what shows each moved
/// position was copied. Under faults a write acknowledged by a quorum may miss a replica (no
/// repair pass runs here), and a crashed gateway's write may still land on an old core.
/// Returns the fragment copies checked.
fn placed(run: &Run) -> Result<u64, String> {
    let t = run.cluster.transition.as_ref().expect("a layout change");
    let new = t.new_layout();
    let table = new.table(t.tier()).expect("the moving tier's table");
    let catalog = catalog_of(t);
    let w = run.world.lock();
    let mut newest: BTreeMap<&Bytes, &Stored> = BTreeMap::new();
    for core in &w.cores {
        for (key, s) in &core.meta {
            let e = newest.entry(key).or_insert(s);
            if (s.hlc, !s.deleted, &s.value) > (e.hlc, !e.deleted, &e.value) {
                *e = s;
            }
        }
    }
    // The records of buckets that exist: a deleted incarnation's heads may outlive their
    // data (DeleteBucket of a bucket emptied meanwhile), and are no object of anyone's.
    let scopes: BTreeSet<String> = newest
        .iter()
        .filter(|(_, s)| !s.deleted)
        .filter_map(|(key, s)| {
            let name = std::str::from_utf8(key.strip_prefix(b"B")?).ok()?;
            let record = BucketRecord::decode(s.value.clone()).ok()?;
            Some(scope_of(name, record.id))
        })
        .collect();
    let mut fragments = 0;
    for (key, s) in &newest {
        let Some(Route::Object(b, k)) = catalog.route(key).filter(|_| !s.deleted) else {
            continue;
        };
        if !scopes.contains(b) {
            continue;
        }
        let pg = new.pg_of(b.as_bytes(), k.as_bytes());
        // Its own stripes, and an upload's parts' (found here from the upload's key, not
        // through the catalog's `dependents`, whose omission this must catch).
        let mut stripes = catalog.stripes(key, &s.value);
        let parts = objects::records::split_scoped_key(key)
            .filter(|(tag, _, _)| *tag == b'U')
            .and_then(|(_, _, rest)| objects::records::split_upload_rest(rest))
            .map(|(_, upload_id)| objects::records::part_prefix(upload_id));
        if let Some(prefix) = parts {
            for (dk, ds) in newest.range::<&Bytes, _>(&prefix..) {
                if !dk.starts_with(&prefix) {
                    break;
                }
                if !ds.deleted {
                    stripes.extend(catalog.dependent_stripes((key, &s.value), dk, &ds.value));
                }
            }
        }
        for stripe in stripes {
            let row = table.row_indices(pg, stripe.ids.len());
            // A removed node's copies went with it.
            for (c, core) in w.cores.iter().enumerate().filter(|(c, _)| !t.leaves(*c)) {
                for (i, id) in stripe.ids.iter().enumerate() {
                    let here = match stripe.policy {
                        Policy::Replicas(_) => row.contains(&(c as u32)),
                        Policy::Ec { .. } => row[i] as usize == c,
                    };
                    let held = core.fragments.contains_key(&id.0);
                    fragments += u64::from(here);
                    if here != held {
                        return Err(format!(
                            "after the change, record {} (group {pg}, new row {row:?}): \
                             core {c} {} fragment {i} {id:?}",
                            key.escape_ascii(),
                            if held { "still holds" } else { "misses" }
                        ));
                    }
                }
            }
        }
    }
    Ok(fragments)
}
