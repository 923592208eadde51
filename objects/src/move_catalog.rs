//! The object service's [`Catalog`] for the cluster layer's mover (cluster/DESIGN.md, "Layout
//! changes"): the route of each metadata record (`records::record_route`, the table
//! `Store::record_cores` routes by too), and the stripes on the moving tier that a live record
//! references, fragment by fragment.
//!
//! Record by record (keys in `records::keys`, `tagging`, `lifecycle`, `configs`):
//!
//! | tag | record | route | stripes |
//! |---|---|---|---|
//! | `B` | bucket record | `Bucket(name)` | none |
//! | `O` | object head | `Object(scope, key)` | its parts', its restored copy's (on the tier) |
//! | `V` | version record | `Object(scope, key)` | a version's as a head's; a delete marker: none |
//! | `T` | object tags | `Object(scope, key)` | none (a version id and tags) |
//! | `U` | upload in progress | `Object(scope, key)` | none; its parts' `P` records are its dependents |
//! | `M` | completed upload | `Object(scope, key)` | none (what Complete answered) |
//! | `L` | listing entry | `Listing(scope)` | none |
//! | `C`, `R` | bucket configurations | `Bucket(scope)` | none |
//! | `P` | uploaded part | none (moved with its upload) | its data, by the upload's class |
//! | any other (`H` hints, `S` scrub records, ...) | | none | none |
//!
//! A pass scans the `U` records before the rest (`Catalog::scan_first`): a multipart upload
//! completed while a pass runs is met as a live upload (its parts' data copied as its
//! dependents) or, if it was gone, through the head that its completion wrote first.
//!
//! A head's data and its version record's are the same fragments: both list them, and the
//! mover's second copy finds them in place. Tiers: the mover moves one tier's PG table (the
//! STANDARD policy's), so a catalog lists only the stripes stored on its tier: a head's parts
//! are on `tiering.tier` (heads before format 4 decode as nvme, where all data then was), its
//! restored copy on `restore.tier`; each is listed only when that is the catalog's tier. A
//! stripe listed for another tier would be looked for, copied and retired on the wrong PG
//! table, so what a record does not place on the tier is never listed.
//!
//! Records whose key a route cannot borrow from:
//! - **Part records** (`P` ‖ upload id ‖ 0 ‖ number) live on their object's metadata cores,
//!   but their key does not name the object, and neither the key nor the record says the
//!   part's policy or tier (UploadPart takes them from the upload's class through the layout's
//!   policies). So they have no route (`record_cores` has none for them either); they are an
//!   upload's dependents (`Catalog::dependents`): the mover moves an upload's `P` records with
//!   its live `U` record, and their stripes by the policy and tier of the upload's class
//!   (`Store::place`). Parts of an upload whose `U` record is gone (completed: the head
//!   references their data; aborted) are not moved.
//! - **Version records of keys holding NUL bytes**: a `V` key writes each NUL of the object
//!   key as 0 0xFF, so the key a `Route` must borrow is not in the key bytes: such a record
//!   has no `route`, and `Catalog::group` places it from the key it unescapes.
//!
//! Owns: which route and which stripes, per record. Does not own: moving them
//! (`cluster::moves`), nor the record formats (`records`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cluster::backend::Route;
use cluster::ec::Policy;
use cluster::moves::{Catalog, Stripe};
use placement::{Layout, Tier};

use crate::limits::CHUNK_BYTES;
use crate::records::{
    part_prefix, part_stripes, record_route, split_scoped_key, split_upload_rest, ObjectHead,
    PartRecord, PartRef, RecordRoute, UploadRecord, VersionRecord,
};
use crate::store::Store;

/// Stripes of one part at most: a fragment id numbers its stripe in 24 bits
/// (`records::fragment_id`). A head claiming more is damaged, not a reason to crash.
const PART_STRIPES_MAX: u64 = 1 << 24;

/// The object service's records, for a mover of `tier`'s PG table.
pub struct ObjectCatalog {
    tier: Tier,
    /// Where each storage class stores new data (an upload's parts).
    store: Store,
    /// Heads and version records whose value did not decode or names fragments no id can
    /// number: listed without stripes, warned.
    damaged: AtomicU64,
}

impl ObjectCatalog {
    /// The catalog of a mover of `store`'s STANDARD tier (the table a layout change moves).
    pub fn new(store: &Store) -> ObjectCatalog {
        let tier = store
            .backend()
            .class_policy("STANDARD")
            .map_or(Tier::Nvme, |p| p.tier);
        ObjectCatalog {
            tier,
            store: store.clone(),
            damaged: AtomicU64::new(0),
        }
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The same catalog moving `tier`'s table (tests of the tier filter).
    #[cfg(test)]
    fn with_tier(mut self, tier: Tier) -> ObjectCatalog {
        self.tier = tier;
        self
    }

    /// Heads and version records found damaged so far (their fragments were not listed).
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// The stripes on this catalog's tier of `head`'s data and of its restored copy; `None`
    /// when the head names fragments no id can number.
    fn head_stripes(&self, head: &ObjectHead) -> Option<Vec<Stripe>> {
        let mut out = Vec::new();
        if head.tiering.tier == self.tier {
            data_stripes(&head.parts, head.chunk_bytes, head.policy, &mut out)?;
        }
        if let Some(r) = head
            .tiering
            .restore
            .as_ref()
            .filter(|r| r.tier == self.tier)
        {
            // A restored copy is cut in its head's chunks (`tiering::with_data`).
            data_stripes(&r.parts, head.chunk_bytes, r.policy, &mut out)?;
        }
        Some(out)
    }

    fn warn_damaged(&self, key: &[u8], why: &str) {
        if doubling(&self.damaged) {
            tracing::warn!(
                key = %key.escape_ascii(),
                why,
                damaged = self.damaged(),
                "layout change: a record's data references do not decode; its fragments are \
                 not moved"
            );
        }
    }
}

impl Catalog for ObjectCatalog {
    /// `records::record_route`'s, when the key holds the object's key as it is (a version
    /// record of a key holding NUL escapes it: `group` places those).
    fn route<'k>(&self, key: &'k [u8]) -> Option<Route<'k>> {
        if let Some(name) = key.strip_prefix(b"B") {
            return std::str::from_utf8(name).ok().map(Route::Bucket);
        }
        let (tag, scope, rest) = split_scoped_key(key)?;
        Some(match record_route(tag, scope, rest)? {
            RecordRoute::Bucket(b) => Route::Bucket(b),
            RecordRoute::Listing(b) => Route::Listing(b),
            RecordRoute::Object(b, Cow::Borrowed(k)) => Route::Object(b, k),
            RecordRoute::Object(_, Cow::Owned(_)) => return None,
        })
    }

    /// The route's group, a version record of a key holding NUL's by its unescaped key.
    fn group(&self, key: &[u8], layout: &Layout) -> Option<u32> {
        if let Some(route) = self.route(key) {
            return Some(route.pg(layout));
        }
        let (tag, scope, rest) = split_scoped_key(key)?;
        Some(record_route(tag, scope, rest)?.route().pg(layout))
    }

    fn stripes(&self, key: &[u8], value: &Bytes) -> Vec<Stripe> {
        let head = match key.first() {
            Some(b'O') => ObjectHead::decode(value.clone()).map(Some),
            Some(b'V') => VersionRecord::decode(value.clone()).map(|v| match v {
                VersionRecord::Object(h) => Some(h),
                VersionRecord::DeleteMarker(_) => None,
            }),
            _ => return Vec::new(),
        };
        match head {
            Ok(None) => Vec::new(),
            Ok(Some(h)) => self.head_stripes(&h).unwrap_or_else(|| {
                self.warn_damaged(key, "more stripes or shards than a fragment id numbers");
                Vec::new()
            }),
            Err(e) => {
                self.warn_damaged(key, &e.to_string());
                Vec::new()
            }
        }
    }

    /// A live upload's part records (`P` ‖ upload id ‖ 0).
    fn dependents(&self, key: &[u8], _value: &Bytes) -> Vec<Bytes> {
        match split_scoped_key(key) {
            Some((b'U', _, rest)) => split_upload_rest(rest)
                .map(|(_, upload_id)| vec![part_prefix(upload_id)])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Upload records (`U`): a completion writes its head (`O`, and `V` in a bucket that keeps
    /// versions), which takes over the parts' data, then removes the upload. A pass that met
    /// the head before it was written and the upload after it was removed would list the
    /// parts under neither.
    fn scan_first(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"U")]
    }

    /// A part's stripes, stored by its upload's class (as UploadPart stored them), when that
    /// is on this catalog's tier.
    fn dependent_stripes(&self, owner: (&[u8], &Bytes), key: &[u8], value: &Bytes) -> Vec<Stripe> {
        let upload = match UploadRecord::decode(owner.1.clone()) {
            Ok(u) => u,
            Err(e) => {
                self.warn_damaged(owner.0, &e.to_string());
                return Vec::new();
            }
        };
        let part = match PartRecord::decode(value.clone()) {
            Ok(p) => p,
            Err(e) => {
                self.warn_damaged(key, &e.to_string());
                return Vec::new();
            }
        };
        let Ok((policy, tier)) = self.store.place(upload.class, None) else {
            self.warn_damaged(owner.0, "its storage class has no policy in this layout");
            return Vec::new();
        };
        if tier != self.tier {
            return Vec::new();
        }
        let part = PartRef {
            version_id: part.version_id,
            size: part.size,
        };
        let mut out = Vec::new();
        if data_stripes(&[part], CHUNK_BYTES, policy, &mut out).is_none() {
            self.warn_damaged(key, "more stripes or shards than a fragment id numbers");
            return Vec::new();
        }
        out
    }
}

/// Appends the stripes of `parts`, cut in `chunk_bytes` and stored under `policy`: position i
/// holds a replica (shard 0) or shard i. `None` when a part has more stripes, or the policy
/// more shards, than a fragment id numbers (a damaged record).
fn data_stripes(
    parts: &[PartRef],
    chunk_bytes: u32,
    policy: Policy,
    out: &mut Vec<Stripe>,
) -> Option<()> {
    let shards = u8::try_from(policy.width()).ok()?;
    for p in parts {
        if p.size.div_ceil(u64::from(chunk_bytes)) > PART_STRIPES_MAX {
            return None;
        }
        out.extend(part_stripes(p, chunk_bytes).map(|s| Stripe {
            policy,
            ids: match policy {
                Policy::Replicas(_) => vec![s.fragment_id(0); usize::from(shards)],
                Policy::Ec { .. } => (0..shards).map(|i| s.fragment_id(i)).collect(),
            },
        }));
    }
    Some(())
}

/// Counts one more in `counter`; true at the 1st, 2nd, 4th, 8th, ...: a warning per doubling,
/// so a damaged table is said without flooding the log.
fn doubling(counter: &AtomicU64) -> bool {
    (counter.fetch_add(1, Ordering::Relaxed) + 1).is_power_of_two()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proto::FragmentId;

    use super::*;
    use crate::observe::Unobserved;
    use crate::records::{
        bucket_key, completion_key, fragment_id, head_key, listing_key, part_key, part_prefix,
        scope_of, upload_key, version_key, BucketId, DeleteMarker, PartRecord, Restore,
        StorageClass,
    };
    use crate::store::{Days, Store};
    use crate::test_support::{head_of_parts, small_upload};

    const VERSION: [u8; 12] = [5; 12];

    /// A store of `layout()` (no core is reached: routing only).
    fn store() -> Store {
        let backend =
            cluster::backend::Backend::cluster(layout(), None, Vec::new()).expect("routes");
        let days = Days {
            day_ms: 86_400_000,
            tiering_days: 30,
        };
        Store::new(Arc::new(backend), Arc::new(Unobserved), days)
    }

    /// A 4-node layout, 4 cores each.
    fn layout() -> Arc<Layout> {
        crate::test_support::four_nodes_of_four_cores()
    }

    fn shown(route: Option<Route<'_>>) -> String {
        format!("{route:?}")
    }

    fn scope() -> String {
        scope_of("photos", BucketId::new(7, [3; 8]))
    }

    /// Every scoped record kind of `key`: (tag, its key, the route it must get).
    fn scoped_records<'a>(scope: &'a str, key: &'a str) -> Vec<(u8, Bytes, Route<'a>)> {
        let object = Route::Object(scope, key);
        let mut out = vec![
            (b'O', head_key(scope, key), object),
            (b'T', crate::tagging::tags_key(scope, key), object),
            (b'U', upload_key(scope, key, "0a1b"), object),
            (b'M', completion_key(scope, key, "0a1b"), object),
            (b'L', listing_key(scope, key), Route::Listing(scope)),
            (
                b'C',
                crate::lifecycle::config_key(scope),
                Route::Bucket(scope),
            ),
            (
                b'R',
                crate::configs::config_key(scope, "cors"),
                Route::Bucket(scope),
            ),
        ];
        if !key.contains('\0') {
            out.push((b'V', version_key(scope, key, &VERSION), object));
        }
        out
    }

    #[test]
    fn routes_agree_with_record_cores() {
        let store = store();
        let catalog = ObjectCatalog::new(&store).with_tier(Tier::Nvme);
        let scope = scope();
        for key in ["a/b.jpg", "ünï €", "nul\0key", "ends in a space "] {
            for (tag, k, expected) in scoped_records(&scope, key) {
                let route = catalog.route(&k);
                assert_eq!(
                    shown(route),
                    shown(Some(expected)),
                    "{tag} record of {key:?}"
                );
                let rest = &k[1 + scope.len() + 1..];
                let cores = store.record_cores(tag, &scope, rest).expect("routed");
                assert_eq!(
                    store.backend().meta_cores(route.unwrap()).cores(),
                    cores.cores()
                );
            }
        }
        let b = bucket_key("photos");
        let route = catalog.route(&b);
        assert_eq!(shown(route), shown(Some(Route::Bucket("photos"))));
        assert_eq!(
            store.backend().meta_cores(route.unwrap()).cores(),
            store.bucket_cores("photos").cores()
        );
    }

    #[test]
    fn groups_agree_with_routes_and_place_nul_keys() {
        let layout = layout();
        let catalog = ObjectCatalog::new(&store());
        let scope = scope();
        for key in ["a/b.jpg", "nul\0key", "\0", "k\0\0"] {
            for (tag, k, expected) in scoped_records(&scope, key) {
                let want = Some(expected.pg(&layout));
                assert_eq!(catalog.group(&k, &layout), want, "{tag} record of {key:?}");
            }
            // A version record of a key holding NUL has no route, yet its object's group.
            let v = version_key(&scope, key, &VERSION);
            let want = Route::Object(&scope, key).pg(&layout);
            assert_eq!(catalog.group(&v, &layout), Some(want), "{key:?}");
        }
        // Groups spread: not one constant answer.
        let groups: std::collections::BTreeSet<u32> = (0..200)
            .filter_map(|i| catalog.group(&head_key(&scope, &format!("k{i}")), &layout))
            .collect();
        assert!(groups.len() > 20, "{}", groups.len());
        assert_eq!(catalog.group(&part_key("0a1b", 1), &layout), None);
    }

    #[test]
    fn records_no_route_owns_have_none() {
        let store = store();
        let catalog = ObjectCatalog::new(&store).with_tier(Tier::Nvme);
        let scope = scope();
        // A hint (`H` ‖ kind ‖ target core u32 BE ‖ the hinted key), a core's scrub record,
        // an uploaded part (keyed by upload id alone).
        let hint = [&b"HM\0\0\0\x02"[..], &head_key(&scope, "k")[..]].concat();
        let part = part_key("0a1b", 1);
        for key in [&hint[..], crate::scrub::SCRUB_KEY, &part[..]] {
            assert_eq!(shown(catalog.route(key)), "None", "{}", key.escape_ascii());
        }
        assert!(store.record_cores(b'P', "0a1b", &part[6..]).is_none());
        let mut garbage: Vec<Vec<u8>> = vec![
            vec![],
            b"O".to_vec(),
            b"Ono-nul".to_vec(),
            b"O\xff\0k".to_vec(),
            b"Os\0\xff".to_vec(),
            b"Us\0no-upload-id".to_vec(),
            b"B\xff".to_vec(),
        ];
        let v = version_key(&scope, "k", &VERSION);
        garbage.push(v[..v.len() - 1].to_vec());
        garbage.push([&v[..], b"x"].concat());
        for key in &garbage {
            assert_eq!(shown(catalog.route(key)), "None", "{}", key.escape_ascii());
        }
        // The version key of a key holding NUL does not hold the key itself (module doc).
        let v = version_key(&scope, "nul\0key", &VERSION);
        assert_eq!(shown(catalog.route(&v)), "None");
    }

    /// The stripes of a part of `chunks` chunks, written out: position i holds shard i
    /// (replicas: shard 0).
    fn expected(version_id: [u8; 12], chunks: u64, policy: Policy) -> Vec<Stripe> {
        (0..chunks)
            .map(|c| Stripe {
                policy,
                ids: match policy {
                    Policy::Replicas(n) => (0..n).map(|_| fragment_id(&version_id, c, 0)).collect(),
                    Policy::Ec { k, m } => {
                        (0..k + m).map(|s| fragment_id(&version_id, c, s)).collect()
                    }
                },
            })
            .collect()
    }

    /// A head of parts of `sizes` bytes cut in 4-byte chunks, part i's version id `[10 + i;
    /// 12]`, stored under `policy`.
    fn head(sizes: &[u64], policy: Policy) -> ObjectHead {
        let mut h = head_of_parts(sizes);
        h.chunk_bytes = 4;
        h.policy = policy;
        for (i, p) in h.parts.iter_mut().enumerate() {
            p.version_id = [10 + i as u8; 12];
        }
        h
    }

    #[test]
    fn heads_list_every_stripe_of_every_part() {
        let catalog = ObjectCatalog::new(&store()).with_tier(Tier::Nvme);
        let k = head_key(&scope(), "k");
        let replicated = head(&[10], Policy::Replicas(3));
        assert_eq!(
            catalog.stripes(&k, &replicated.encode()),
            expected([10; 12], 3, Policy::Replicas(3))
        );
        let ec = Policy::Ec { k: 4, m: 2 };
        let stripes = catalog.stripes(&k, &head(&[9], ec).encode());
        assert_eq!(stripes, expected([10; 12], 3, ec));
        // Stripe 2, position 5: the version id, the stripe index (24 bits LE), the shard.
        let mut id = [10; 16];
        id[12..].copy_from_slice(&[2, 0, 0, 5]);
        assert_eq!(stripes[2].ids[5], FragmentId(id));
        let multipart = head(&[8, 12, 1], ec);
        let mut all = expected([10; 12], 2, ec);
        all.extend(expected([11; 12], 3, ec));
        all.extend(expected([12; 12], 1, ec));
        assert_eq!(catalog.stripes(&k, &multipart.encode()), all);
        // Declared sizes only: a part of 5 GiB in 1 MiB chunks.
        let mut big = head(&[5 << 30], Policy::Replicas(2));
        big.chunk_bytes = 1 << 20;
        let stripes = catalog.stripes(&k, &big.encode());
        assert_eq!(stripes.len(), 5 << 10);
        assert_eq!(stripes[5119].ids, vec![fragment_id(&[10; 12], 5119, 0); 2]);
        assert_eq!(catalog.damaged(), 0);
    }

    #[test]
    fn only_the_moving_tier_is_listed() {
        let k = head_key(&scope(), "k");
        let mut h = head(&[6], Policy::Replicas(2));
        h.tiering.tier = Tier::Ssd;
        assert_eq!(
            ObjectCatalog::new(&store())
                .with_tier(Tier::Nvme)
                .stripes(&k, &h.encode()),
            vec![]
        );
        assert_eq!(
            ObjectCatalog::new(&store())
                .with_tier(Tier::Ssd)
                .stripes(&k, &h.encode()),
            expected([10; 12], 2, Policy::Replicas(2))
        );
        // Archived on hdd, restored to nvme: each copy listed by the catalog of its tier.
        h.tiering.class = StorageClass::Glacier;
        h.tiering.tier = Tier::Hdd;
        let ec = Policy::Ec { k: 2, m: 1 };
        h.tiering.restore = Some(Restore {
            ongoing: false,
            expiry_ms: 1,
            days: 1,
            policy: ec,
            tier: Tier::Nvme,
            parts: vec![PartRef {
                version_id: [9; 12],
                size: 6,
            }],
        });
        assert_eq!(
            ObjectCatalog::new(&store())
                .with_tier(Tier::Nvme)
                .stripes(&k, &h.encode()),
            expected([9; 12], 2, ec)
        );
        assert_eq!(
            ObjectCatalog::new(&store())
                .with_tier(Tier::Hdd)
                .stripes(&k, &h.encode()),
            expected([10; 12], 2, Policy::Replicas(2))
        );
        assert_eq!(
            ObjectCatalog::new(&store())
                .with_tier(Tier::Ssd)
                .stripes(&k, &h.encode()),
            vec![]
        );
    }

    #[test]
    fn versions_list_their_data_and_markers_nothing() {
        let catalog = ObjectCatalog::new(&store()).with_tier(Tier::Nvme);
        let k = version_key(&scope(), "k", &VERSION);
        let mut h = head(&[5, 4], Policy::Replicas(1));
        h.in_versions = true;
        let mut all = expected([10; 12], 2, Policy::Replicas(1));
        all.extend(expected([11; 12], 1, Policy::Replicas(1)));
        assert_eq!(catalog.stripes(&k, &VersionRecord::Object(h).encode()), all);
        let marker = VersionRecord::DeleteMarker(DeleteMarker {
            version_id: VERSION,
            null_version: false,
            modified_ms: 1,
        });
        assert_eq!(catalog.stripes(&k, &marker.encode()), vec![]);
        assert_eq!(catalog.damaged(), 0);
    }

    fn part(size: u64) -> PartRecord {
        PartRecord {
            version_id: [4; 12],
            size,
            md5: [0; 16],
            modified_ms: 1,
            checksum: None,
            nonce: None,
        }
    }

    #[test]
    fn an_uploads_parts_move_with_it() {
        let store = store();
        let (policy, tier) = store.place(StorageClass::Standard, None).unwrap();
        let catalog = ObjectCatalog::new(&store);
        assert_eq!(catalog.tier(), tier);
        let u = upload_key(&scope(), "k", "0a1b");
        let upload = small_upload().encode();
        assert_eq!(catalog.dependents(&u, &upload), vec![part_prefix("0a1b")]);
        assert_eq!(
            part_key("0a1b", 7).slice(..part_prefix("0a1b").len()),
            part_prefix("0a1b")
        );
        for (tag, k, _) in scoped_records(&scope(), "k") {
            if tag != b'U' {
                assert_eq!(
                    catalog.dependents(&k, &upload),
                    Vec::<Bytes>::new(),
                    "{tag}"
                );
            }
        }
        // Stored as UploadPart stores it: the class's policy, in CHUNK_BYTES chunks.
        let size = 2 * u64::from(CHUNK_BYTES) + 1;
        let p = part_key("0a1b", 1);
        let owner = (&u[..], &upload);
        assert_eq!(
            catalog.dependent_stripes(owner, &p, &part(size).encode()),
            expected([4; 12], 3, policy)
        );
        let elsewhere = if tier == Tier::Hdd {
            Tier::Nvme
        } else {
            Tier::Hdd
        };
        let other = ObjectCatalog::new(&store).with_tier(elsewhere);
        assert_eq!(
            other.dependent_stripes(owner, &p, &part(size).encode()),
            vec![]
        );
        // Damaged part or upload records: nothing, counted.
        let junk = Bytes::from_static(b"junk");
        assert_eq!(catalog.dependent_stripes(owner, &p, &junk), vec![]);
        assert_eq!(
            catalog.dependent_stripes((&u, &junk), &p, &part(1).encode()),
            vec![]
        );
        assert_eq!(catalog.damaged(), 2);
    }

    #[test]
    fn uploads_and_other_records_list_nothing() {
        let catalog = ObjectCatalog::new(&store()).with_tier(Tier::Nvme);
        let scope = scope();
        let upload = small_upload();
        let u = upload_key(&scope, "k", "0a1b");
        assert_eq!(catalog.stripes(&u, &upload.encode()), vec![]);
        // A part's fragments are listed through its upload (`dependent_stripes`) only.
        assert_eq!(
            catalog.stripes(&part_key("0a1b", 1), &part(9).encode()),
            vec![]
        );
        // Other records are never decoded as heads, whatever their value.
        let value = head(&[4], Policy::Replicas(1)).encode();
        for (tag, k, _) in scoped_records(&scope, "k") {
            if tag != b'O' && tag != b'V' {
                assert_eq!(catalog.stripes(&k, &value), vec![], "{tag}");
            }
        }
        assert_eq!(catalog.stripes(&bucket_key("photos"), &value), vec![]);
        assert_eq!(catalog.damaged(), 0);
    }

    #[test]
    fn damaged_records_list_nothing_and_are_counted() {
        let catalog = ObjectCatalog::new(&store()).with_tier(Tier::Nvme);
        let o = head_key(&scope(), "k");
        let v = version_key(&scope(), "k", &VERSION);
        assert_eq!(catalog.stripes(&o, &Bytes::from_static(b"junk")), vec![]);
        assert_eq!(catalog.stripes(&v, &Bytes::from_static(b"junk")), vec![]);
        assert_eq!(catalog.stripes(&o, &Bytes::new()), vec![]);
        // Decodes, but its part has one stripe more than a fragment id numbers.
        let mut h = head(&[(1 << 24) + 1], Policy::Replicas(1));
        h.chunk_bytes = 1;
        assert_eq!(catalog.stripes(&o, &h.encode()), vec![]);
        assert_eq!(catalog.damaged(), 4);
    }
}
