//! The object service's store: where an object's records and data live and how they are
//! written, read and retired, over the `cluster` crate's backend. The S3 layer (the gateway)
//! calls it with plain values and turns its [`Error`]s into S3 codes in one place.
//!
//! Write order (ARCHITECTURE.md, the life of a PUT): a body's chunks on their cores
//! (`store_body`), then the object head, then the listing entry (`write_current`), both with
//! one HLC taken at commit; a replaced version's chunks are retired after a grace
//! (`retire_chunks`). Deletes go the other way round: listing entry, then head. Where the
//! head's cores hold the bucket's listing too (any key on a node with as many cores as
//! copies), head and entry are one record on each core instead, written in one round
//! (`listing_with_head`), and a small body held back from the cores goes in that same write
//! (`store_body_holding`, `commit_head_held`: one durable round for the whole PUT). Records
//! are keyed by the bucket's scope (its incarnation, `records`), and a write checks after
//! committing that the incarnation is still live (`settle_live`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};

use cluster::backend::{Backend, BackendError, Route, Swap};
use cluster::ec::Policy;
use cluster::limits::FRAGMENT_READ_DEADLINE;
use cluster::moves::{same_cores, Cores, Placement};
use placement::Tier;
use proto::{FragmentId, MetaWrite};

use crate::checksum::Hashers;
use crate::error::{CommitError, Error, Result};
use crate::limits::{CHUNK_BYTES, STRIPES_IN_FLIGHT_MAX};
use crate::observe::Observer;
use crate::records::{
    bucket_key, head_key, listing_key, part_stripes, scope_name, version_hlc, versions_prefix,
    BucketId, BucketRecord, ListingEntry, ObjectHead, PartRef, StorageClass, StripeRef,
};
use crate::workers::Workers;

/// The largest body `Store::store_body_holding` keeps for its commit to write: a small
/// object's round trips count more than its bytes.
pub const HELD_STRIPE_BYTES_MAX: u64 = 64 * 1024;

/// A small body's only stripe, not yet stored (`Store::store_body_holding`): its commit
/// writes it (`Store::commit_head_held`).
pub struct HeldStripe {
    pub(crate) stripe: StripeRef,
    pub(crate) policy: Policy,
    pub(crate) data: Bytes,
}

/// How long a replaced or deleted version's chunks stay readable.
const RETIRE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Listing entries without a head one emptiness check removes before it answers "not
/// empty" (the background pass removes the rest).
const STRAY_ENTRIES_MAX: u32 = 100;

/// How often, and how long each time, a commit waits for a DeleteBucket to decide.
const LIVE_WAITS_MAX: u32 = 50;
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// A page of a bucket's listing (`Store::list_page`): keys with their entries, and common
/// prefixes.
#[derive(Debug, Default)]
pub struct Listed {
    pub entries: Vec<(String, ListingEntry)>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix (with 0xFF appended) the page covered, raw.
    pub last_key: Option<Vec<u8>>,
}

impl Listed {
    /// Where the next page starts, when there is one.
    pub fn next_token(&self) -> Option<Vec<u8>> {
        if self.truncated {
            self.last_key.clone()
        } else {
            None
        }
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new bucket incarnation's id: the HLC and 8 bytes of a hash salted by the gateway
/// (`Backend::id_salt`: random per process; uniqueness comes from the HLC, the bytes only keep
/// two gateways with equal clocks apart).
pub fn new_bucket_id(hlc: u64, name: &str, salt: u64) -> BucketId {
    BucketId::new(
        hlc,
        cluster::backend::stable_hash(&[name.as_bytes(), &hlc.to_le_bytes(), &salt.to_le_bytes()])
            .to_le_bytes(),
    )
}

/// The cores holding data of `key` in the bucket scope `bucket` stored under `policy` on
/// `tier` (the first ones of its route in the tier's PG table): `Store::cores_in`, for what
/// holds the backend but no store (the retirement schedule).
pub(crate) fn object_placement(
    backend: &Backend,
    bucket: &str,
    key: &str,
    policy: Policy,
    tier: Tier,
) -> Placement {
    backend.route_in(Route::Object(bucket, key), tier, policy.width())
}

/// Deletes every fragment of a stripe on `cores`, ignoring ones that are already gone:
/// `Store::delete_stripe`, for what holds the backend but no store (the retirement schedule).
pub(crate) async fn delete_stripe_on(
    backend: &Backend,
    cores: &Placement,
    policy: Policy,
    stripe: &StripeRef,
) {
    let result = match policy {
        Policy::Replicas(n) => {
            let replicas = cores.replica_cores(usize::from(n));
            backend
                .delete_fragment(&replicas, stripe.fragment_id(0))
                .await
        }
        Policy::Ec { k, m } => {
            let dels = (0..usize::from(k + m)).map(|i| {
                let at = cores.fragment_cores(i);
                async move {
                    backend
                        .delete_fragment(&at, stripe.fragment_id(i as u8))
                        .await
                }
            });
            futures::future::join_all(dels).await.into_iter().collect()
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "deleting a stripe failed; left for the orphan sweep");
    }
}

/// Swaps `Store::swap_in` makes against records with newer HLCs.
const SWAP_TRIES: usize = 4;

/// The object service's store. Cheap to clone: clones share the backend, the workers and the
/// moves under way.
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Arc<Backend>,
    /// Background work requests leave behind (`workers`), shared by the clones.
    workers: Arc<Workers>,
    /// The lifecycle day and the INTELLIGENT_TIERING idle days (`with_days`).
    days: Days,
    /// Fragments no record references are swept once this old (`with_orphan_grace`).
    orphan_grace_ms: u64,
    /// Where the counts of background work go (the gateway's metrics).
    observer: Arc<dyn Observer>,
    /// Object versions whose data this process is moving now (`tiering::Moves`): requests,
    /// the lifecycle pass and restores.
    pub(crate) moves: Arc<crate::tiering::Moves>,
    /// Per core, the last listing entry the lifecycle pass checked for a head (its sweep
    /// resumes there: `lifecycle::pass`).
    pub(crate) listing_sweep: Arc<std::sync::Mutex<std::collections::HashMap<usize, Bytes>>>,
    /// The bucket records read, kept (`with_bucket_cache`: single nodes).
    bucket_cache: Option<Arc<crate::bucket_cache::BucketCache>>,
}

/// How long the object service's days are.
#[derive(Debug, Clone, Copy)]
pub struct Days {
    pub day_ms: u64,
    pub tiering_days: u64,
}

impl Store {
    /// A store over `backend`, its workers' counts told to `observer`, with real days.
    pub fn new(backend: Arc<Backend>, observer: Arc<dyn Observer>, days: Days) -> Store {
        Store {
            backend,
            workers: Arc::new(Workers::new(observer.clone())),
            days,
            orphan_grace_ms: crate::orphans::GRACE_SECS_DEFAULT * 1000,
            observer,
            moves: Arc::default(),
            listing_sweep: Arc::default(),
            bucket_cache: None,
        }
    }

    /// The same store keeping the bucket records it reads until it writes them
    /// (`bucket_cache`). Only for a store no other process writes through: a single node.
    pub fn with_bucket_cache(mut self) -> Store {
        self.bucket_cache = Some(Arc::default());
        self
    }

    /// The bucket cache, if this store keeps one.
    pub fn bucket_cache(&self) -> Option<&Arc<crate::bucket_cache::BucketCache>> {
        self.bucket_cache.as_ref()
    }

    /// Runs `write`, a write of `bucket`'s record. With the bucket cache, the write is marked
    /// in flight for the cache (`BucketCache::writing`) and runs as a task of its own: a
    /// request dropped halfway (its client gone) would otherwise leave core calls already
    /// sent to land after the cache took the write for over, and the cache would keep the
    /// record they replace.
    async fn write_bucket<T: Send + 'static>(
        &self,
        bucket: &str,
        write: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let Some(cache) = self.bucket_cache.clone() else {
            return write.await;
        };
        let bucket = bucket.to_owned();
        let task = tokio::spawn(async move {
            let _writing = cache.writing(&bucket);
            write.await
        });
        match task.await {
            Ok(written) => written,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Storage(BackendError::Down {
                core: "the runtime (stopping)".into(),
            })),
        }
    }

    /// The same store with other days (the test clock shortens them).
    pub fn with_days(mut self, days: Days) -> Store {
        self.days = days;
        self
    }

    /// The same store sweeping fragments no record references once they are `grace_ms` old;
    /// a data write that takes more than half of it is refused.
    pub fn with_orphan_grace(mut self, grace_ms: u64) -> Store {
        assert!(grace_ms >= 2, "a grace lasts");
        self.orphan_grace_ms = grace_ms;
        self
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    pub fn workers(&self) -> &Arc<Workers> {
        &self.workers
    }

    pub fn days(&self) -> Days {
        self.days
    }

    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.observer
    }

    pub fn orphan_grace_ms(&self) -> u64 {
        self.orphan_grace_ms
    }

    pub fn bucket_cores(&self, bucket: &str) -> Placement {
        self.backend.meta_cores(Route::Bucket(bucket))
    }

    pub fn object_cores(&self, bucket: &str, key: &str) -> Placement {
        self.backend.meta_cores(Route::Object(bucket, key))
    }

    pub fn listing_cores(&self, bucket: &str) -> Placement {
        self.backend.meta_cores(Route::Listing(bucket))
    }

    /// The metadata cores of the record `tag ‖ scope ‖ 0 ‖ rest` (`records`): heads, versions,
    /// tags, uploads and completions on their object's, listing entries on the bucket
    /// listing's, configurations on the bucket record's. `None`: another kind, or a key that
    /// does not parse.
    pub fn record_cores(&self, tag: u8, scope: &str, rest: &[u8]) -> Option<Placement> {
        let route = crate::records::record_route(tag, scope, rest)?;
        Some(self.backend.meta_cores(route.route()))
    }

    pub async fn bucket(&self, bucket: &str) -> Result<Option<BucketRecord>> {
        Ok(self.bucket_entry(bucket).await?.map(|(b, _)| b))
    }

    /// The bucket's record and its HLC (what a compare-and-swap of it expects).
    pub async fn bucket_entry(&self, bucket: &str) -> Result<Option<(BucketRecord, u64)>> {
        let miss = match self.bucket_cache.as_ref().map(|c| c.get(bucket)) {
            Some(Ok(hit)) => return Ok(Some(hit)),
            Some(Err(miss)) => Some(miss),
            None => None,
        };
        let cores = self.bucket_cores(bucket);
        let entry = self.backend.meta_get(&cores, &bucket_key(bucket)).await?;
        let Some(e) = entry else {
            return Ok(None);
        };
        let record = BucketRecord::decode(e.value).map_err(|e| Error::Damaged(e.to_string()))?;
        if let (Some(cache), Some(miss)) = (&self.bucket_cache, miss) {
            cache.offer(bucket, miss, &record, e.hlc);
        }
        Ok(Some((record, e.hlc)))
    }

    /// Whether `scope` is its bucket's live incarnation. A DeleteBucket marks the record
    /// deleting before it checks the bucket is empty, so a write whose records were durable
    /// before it read `Live` here was visible to that emptiness check (the delete fails with
    /// BucketNotEmpty); a write that reads `Dead` is in an incarnation no name reaches.
    pub async fn liveness(&self, scope: &str) -> Result<Liveness> {
        let name = scope_name(scope);
        Ok(match self.bucket(name).await? {
            Some(b) if b.scope(name) == scope && !b.deleting => Liveness::Live,
            Some(b) if b.scope(name) == scope => Liveness::Deleting,
            _ => Liveness::Dead,
        })
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>> {
        let cores = self.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &head_key(bucket, key))
            .await?;
        match entry {
            None => Ok(None),
            Some(e) => ObjectHead::decode(e.value)
                .map(Some)
                .map_err(|e| Error::Damaged(e.to_string())),
        }
    }

    /// One page of the bucket's listing index after `after` (raw key bytes), S3 style:
    /// keys under `prefix`, rolled up into common prefixes at `delimiter`.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<Vec<u8>>,
        max_keys: usize,
    ) -> Result<Listed> {
        let base = listing_key(bucket, "");
        let scan_prefix = listing_key(bucket, prefix);
        let mut cursor: Option<Bytes> = after.map(|a| {
            let mut k = base.to_vec();
            k.extend_from_slice(&a);
            Bytes::from(k)
        });
        let cores = self.listing_cores(bucket);
        let mut contents = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut truncated = false;
        // max-keys=0 returns an empty, untruncated page.
        'pages: while contents.len() + prefixes.len() < max_keys {
            let want = ((max_keys - contents.len() - prefixes.len()) as u32).clamp(1, 1000);
            let (entries, next) = self
                .backend
                .meta_scan(&cores, &scan_prefix, cursor.clone(), want)
                .await?;
            for (k, e) in &entries {
                if contents.len() + prefixes.len() >= max_keys {
                    truncated = true;
                    break 'pages;
                }
                let key = String::from_utf8_lossy(&k[base.len()..]).into_owned();
                if let Some(d) = delimiter {
                    if let Some(at) = key[prefix.len()..].find(d) {
                        let cp = key[..prefix.len() + at + d.len()].to_string();
                        // Skip every key under this common prefix: 0xFF never occurs in UTF-8.
                        let mut skip = base.to_vec();
                        skip.extend_from_slice(cp.as_bytes());
                        skip.push(0xff);
                        last_key = Some(skip[base.len()..].to_vec());
                        cursor = Some(Bytes::from(skip));
                        prefixes.push(cp);
                        continue 'pages;
                    }
                }
                let entry = ListingEntry::decode(e.value.clone())
                    .map_err(|e| Error::Damaged(e.to_string()))?;
                contents.push((key, entry));
                last_key = Some(k[base.len()..].to_vec());
                cursor = Some(k.clone());
            }
            match next {
                Some(n) if entries.len() as u32 >= want => cursor = Some(n),
                _ => break,
            }
        }
        if !truncated && contents.len() + prefixes.len() >= max_keys && max_keys > 0 {
            // Exactly full: truncated only if one more key exists after the last.
            let (more, _) = self
                .backend
                .meta_scan(&cores, &scan_prefix, cursor.clone(), 1)
                .await?;
            truncated = !more.is_empty();
        }
        Ok(Listed {
            entries: contents,
            prefixes,
            truncated,
            last_key,
        })
    }

    /// Streams a request body into `CHUNK_BYTES` stripes under `version_id`, stored on `cores`
    /// by `policy` (whole on each for replicas; k data + m parity shards, one per core, for EC).
    /// Returns its size and MD5. On any error, the fragments already stored are removed.
    pub async fn store_body<S, E>(
        &self,
        cores: &Placement,
        policy: Policy,
        version_id: &[u8; 12],
        body: Option<S>,
        size_max: u64,
        hashers: &mut Hashers,
    ) -> Result<(u64, [u8; 16])>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let place = (cores, policy, version_id);
        let (size, md5, held) = self
            .store_body_holding(place, body, size_max, hashers, false)
            .await?;
        debug_assert!(held.is_none());
        Ok((size, md5))
    }

    /// `store_body` that, when `hold` is set, keeps a body of one replicated stripe of at most
    /// `HELD_STRIPE_BYTES_MAX` instead of storing it: the commit writes it with the object's
    /// head and listing entry in one round where one set of cores holds all three
    /// (`Store::commit_head_held`), or first, alone, where not.
    pub async fn store_body_holding<S, E>(
        &self,
        (cores, policy, version_id): (&Placement, Policy, &[u8; 12]),
        body: Option<S>,
        size_max: u64,
        hashers: &mut Hashers,
        hold: bool,
    ) -> Result<(u64, [u8; 16], Option<HeldStripe>)>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        assert!(
            cores.last_row().len() >= policy.width(),
            "the route covers the policy's width"
        );
        let mut body = body.ok_or_else(|| Error::IncompleteBody("no body".into()))?;
        let mut md5 = Md5::new();
        let mut size: u64 = 0;
        let mut chunk = BytesMut::new();
        // Stripes handed to the cores so far; up to `STRIPES_IN_FLIGHT_MAX` of them are being
        // stored while the body is read on (one stripe at a time left the cores idle while the
        // next megabyte arrived, and the network idle while the cores wrote).
        let mut started: u64 = 0;
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let result = async {
            loop {
                let piece = body.next().await;
                let last = piece.is_none();
                if let Some(piece) = piece {
                    let piece = piece.map_err(|e| Error::IncompleteBody(e.to_string()))?;
                    size += piece.len() as u64;
                    if size > size_max {
                        return Err(Error::TooLarge);
                    }
                    md5.update(&piece);
                    hashers.update(&piece);
                    chunk.extend_from_slice(&piece);
                }
                let holds = hold
                    && last
                    && started == 0
                    && matches!(policy, Policy::Replicas(_))
                    && chunk.len() as u64 <= HELD_STRIPE_BYTES_MAX;
                if holds && !chunk.is_empty() {
                    self.check_write_age(version_id)?;
                    let data = std::mem::take(&mut chunk).freeze();
                    return Ok(Some(HeldStripe {
                        stripe: StripeRef {
                            version_id: *version_id,
                            index: 0,
                            len: data.len() as u64,
                        },
                        policy,
                        data,
                    }));
                }
                while chunk.len() >= CHUNK_BYTES as usize || (last && !chunk.is_empty()) {
                    if in_flight.len() >= STRIPES_IN_FLIGHT_MAX {
                        if let Some(done) = in_flight.next().await {
                            done?;
                        }
                    }
                    let take = chunk.len().min(CHUNK_BYTES as usize);
                    let data = chunk.split_to(take).freeze();
                    let stripe = StripeRef {
                        version_id: *version_id,
                        index: started,
                        len: take as u64,
                    };
                    in_flight
                        .push(async move { self.put_stripe(cores, policy, &stripe, data).await });
                    started += 1;
                }
                if last {
                    while let Some(done) = in_flight.next().await {
                        done?;
                    }
                    // Data written too slowly for the orphan sweep's grace is not referenced.
                    return self.check_write_age(version_id).map(|()| None);
                }
            }
        }
        .await;
        // Every store is over before any removal starts: a store still in flight could land
        // after the delete of its stripe and leave an orphan.
        while in_flight.next().await.is_some() {}
        drop(in_flight);
        match result {
            Ok(kept) => Ok((size, md5.finalize().into(), kept)),
            Err(e) => {
                for index in 0..=started {
                    let stripe = StripeRef {
                        version_id: *version_id,
                        index,
                        len: 0,
                    };
                    self.delete_stripe(cores, policy, &stripe).await;
                }
                Err(e)
            }
        }
    }

    pub async fn put_stripe(
        &self,
        cores: &Placement,
        policy: Policy,
        stripe: &StripeRef,
        data: Bytes,
    ) -> Result<()> {
        match policy {
            Policy::Replicas(n) => self
                .backend
                .put_fragment(cores, n, stripe.fragment_id(0), &data)
                .await
                .map_err(Error::from),
            Policy::Ec { k, m } => {
                let shards = cluster::ec::encode_stripe(&data, k, m).map_err(Error::Internal)?;
                let placed: Vec<_> = shards
                    .into_iter()
                    .enumerate()
                    .map(|(i, shard)| (stripe.fragment_id(i as u8), shard))
                    .collect();
                self.backend
                    .put_shards(cores, policy, &placed)
                    .await
                    .map_err(Error::from)
            }
        }
    }

    /// Deletes every fragment of a stripe, ignoring ones that are already gone.
    pub async fn delete_stripe(&self, cores: &Placement, policy: Policy, stripe: &StripeRef) {
        delete_stripe_on(&self.backend, cores, policy, stripe).await;
    }

    pub async fn delete_part_chunks(&self, cores: &Placement, policy: Policy, part: &PartRef) {
        for stripe in part_stripes(part, CHUNK_BYTES) {
            self.delete_stripe(cores, policy, &stripe).await;
        }
    }

    /// How and where new data of `class` (and `size`, when known) is stored: the class's
    /// policy and tier (INTELLIGENT_TIERING starts in the frequent tier: STANDARD's policy).
    pub fn place(&self, class: StorageClass, size: Option<u64>) -> Result<(Policy, Tier)> {
        let name = match class {
            StorageClass::IntelligentTiering => "STANDARD",
            other => other.as_str(),
        };
        let p = self
            .backend
            .class_policy(name)
            .ok_or_else(|| Error::NoPolicy(class.as_str().to_owned()))?;
        Ok((p.scheme_for(size.unwrap_or(u64::MAX)), p.tier))
    }

    /// The cores holding data stored under `policy` on `tier` (the first ones of its route in
    /// the tier's PG table).
    pub fn cores_in(&self, bucket: &str, key: &str, policy: Policy, tier: Tier) -> Placement {
        object_placement(&self.backend, bucket, key, policy, tier)
    }

    /// The cores holding a head's parts.
    pub fn head_cores(&self, bucket: &str, key: &str, head: &ObjectHead) -> Placement {
        self.cores_in(bucket, key, head.policy, head.tiering.tier)
    }

    /// The bytes [first, first + len) of a stored object, a stripe's span at a time, with
    /// spans read ahead of the one being sent within the process's budget (`read_ahead`: the
    /// next stripes' reads overlap the current one's send). Healthy EC reads fetch the span's data shards, in
    /// parallel; a shard that cannot be read makes the stripe be decoded from any k of its
    /// shards. The stream ends after its first error.
    pub fn object_stream(
        &self,
        bucket: &str,
        key: &str,
        head: impl Into<Arc<ObjectHead>>,
        first: u64,
        len: u64,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static {
        use futures::StreamExt as _;
        let head: Arc<ObjectHead> = head.into();
        let this = self.clone();
        let place: Arc<(String, String)> = Arc::new((bucket.to_owned(), key.to_owned()));
        let spans = stripe_spans(head.clone(), first, len);
        let reads = crate::read_ahead::ReadAhead::new(
            spans,
            |span| span.as_ref().map_or(0, |(_, _, want)| *want),
            move |span| {
                let (this, place, head) = (this.clone(), place.clone(), head.clone());
                Box::pin(async move {
                    let Some((stripe, offset, want)) = span else {
                        return Err(std::io::Error::other("object shorter than its head says"));
                    };
                    this.read_span(&place, &head, &stripe, offset, want).await
                })
            },
            crate::read_ahead::Budget::process(),
        );
        let pieces = reads.flat_map(|r| {
            let pieces: Vec<Result<Bytes, std::io::Error>> = match r {
                Ok(pieces) => pieces.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(pieces)
        });
        Box::pin(pieces.scan(false, |failed, r| {
            let item = (!*failed).then(|| {
                *failed = r.is_err();
                r
            });
            futures::future::ready(item)
        }))
    }

    /// `want` bytes of `stripe` from `offset`, for `object_stream`, in the pieces the cores
    /// answered (an EC span's data shards are not copied into one buffer).
    async fn read_span(
        &self,
        place: &(String, String),
        head: &ObjectHead,
        stripe: &StripeRef,
        offset: u64,
        want: u64,
    ) -> Result<Vec<Bytes>, std::io::Error> {
        // Placed span by span: a slow reader holds no placement between reads, so a layout
        // change's fence never waits for a whole download.
        let cores = self.head_cores(&place.0, &place.1, head);
        let (pieces, damaged) =
            read_stripe(&self.backend, &cores, head.policy, stripe, offset, want)
                .await
                // The backend error rides inside, for `get_object` to map the first one.
                .map_err(std::io::Error::other)?;
        // A read answering other than what was asked would cut or pad the body.
        let got: usize = pieces.iter().map(Bytes::len).sum();
        if got as u64 != want || pieces.iter().any(Bytes::is_empty) {
            return Err(std::io::Error::other(format!(
                "a fragment read answered {got} bytes where {want} were asked"
            )));
        }
        // A repair rebuilds from one row: not while the group moves (the mover reads every
        // fragment it copies back whole).
        if let [row] = *cores.rows() {
            for (core, id) in damaged {
                self.workers
                    .repair_on_read(&self.backend, core, id, head.policy, row);
            }
        }
        Ok(pieces)
    }

    /// The check of a conditional write of `key`: a quorum read of its head judged against
    /// `cond`. The write follows with `put_head_if` at an HLC taken after this read, which
    /// moved the clock past the head's (or its tombstone's): the authority's last-writer-wins
    /// rule would otherwise refuse a write whose HLC is older than what it replaces, when the
    /// gateway that wrote that had a clock ahead of this one's (If-None-Match: * after a
    /// delete, If-Match after a PUT, answering 412 though the condition held).
    pub async fn check_head(
        &self,
        bucket: &str,
        key: &str,
        cond: &HeadCondition,
    ) -> Result<Checked> {
        let cores = self.object_cores(bucket, key);
        // A quorum read, not the primary alone: a primary that missed an acknowledged write
        // would let If-None-Match: * overwrite it (found by the simulation, 8 of 2000 seeds);
        // the read repairs the primary before its compare-and-swap.
        let current = self
            .backend
            .meta_get(&cores, &head_key(bucket, key))
            .await?;
        let current_head = match &current {
            Some(e) => Some(
                ObjectHead::decode(e.value.clone()).map_err(|e| Error::Damaged(e.to_string()))?,
            ),
            None => None,
        };
        let expect = match (cond, &current, &current_head) {
            (HeadCondition::Absent, None, _) => None,
            (HeadCondition::Absent, Some(_), _) => {
                return Err(Error::PreconditionFailed);
            }
            (HeadCondition::Matches(_), None, _) | (_, _, None) => {
                return Err(Error::NoSuchKey);
            }
            (HeadCondition::Matches(tag), Some(e), Some(h)) => {
                // Nothing is retired here: the caller owns the new version's chunks (a
                // multipart upload keeps its parts for a retry).
                if h.etag != tag.trim_matches('"') {
                    return Err(Error::PreconditionFailed);
                }
                Some(e.hlc)
            }
        };
        Ok(Checked {
            expect,
            current: current_head,
        })
    }

    /// The write of a conditional write after `check_head`: a compare-and-swap on the PG's
    /// first core, the authority for conditional writes, against the head the check read
    /// (the other replicas follow in `write_current`). PreconditionFailed when another write
    /// came in between. When the authority refuses but a read quorum still holds what the
    /// check read, the authority was behind (it missed a write and the check's repair of it
    /// was lost): that read repairs it again and the swap is made once more; if it still
    /// refuses, 503 (retry), never a 412 for a condition that held (found by the object
    /// simulation with lost messages, seed 2392).
    pub async fn put_head_if(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
        expect: Option<u64>,
    ) -> Result<()> {
        let cores = self.object_cores(bucket, key);
        let hkey = head_key(bucket, key);
        let value = head.encode();
        for _ in 0..2 {
            if self
                .backend
                .meta_put_if_in(&cores, &hkey, &value, hlc, expect)
                .await?
            {
                return Ok(());
            }
            let now = self.backend.meta_get(&cores, &hkey).await?;
            if now.map(|e| e.hlc) != expect {
                return Err(Error::PreconditionFailed);
            }
        }
        Err(Error::Storage(BackendError::Quorum {
            what: "conditional write",
            got: 0,
            need: 1,
            of: 1,
            last: "the authority of the key's replicas is behind them".into(),
        }))
    }

    /// Writes `head` as the key's current version: its head, then its listing entry. In
    /// this order a listing never names a key that was not written (issue #12: a PUT whose
    /// head write failed, on a full disk, left a listed key that 404'd and kept its bucket
    /// from being deleted); a crash between the two leaves a head without an entry, which
    /// the next write or delete of the key settles. Deletes go the other way round, entry
    /// first, so that a listed key always has its head.
    /// Where the head's replicas hold the listing entry too (`listing_with_head`), both go
    /// in one record on each core, both or neither.
    pub async fn write_current(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
    ) -> Result<()> {
        if !self.put_head_listed(bucket, key, head, hlc).await? {
            self.put_listing(bucket, key, head, hlc).await?;
        }
        Ok(())
    }

    /// Writes `head` as the key's head record, with its listing entry in the same record where
    /// the head's cores hold the listing (`listing_with_head`). Returns whether the entry was
    /// written.
    pub async fn put_head_listed(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
    ) -> Result<bool> {
        let cores = self.object_cores(bucket, key);
        let Some(listing) = self.listing_with_head(&cores, bucket, key, head) else {
            self.put_head(bucket, key, head, hlc).await?;
            return Ok(false);
        };
        let record = MetaWrite::Put {
            key: head_key(bucket, key),
            value: head.encode(),
        };
        self.backend
            .meta_pair(&cores, &record, &listing.write, hlc)
            .await?;
        Ok(true)
    }

    /// The write of `head`'s listing entry, when the head's cores `cores` are the bucket
    /// listing's too (every key on a node with as many cores as copies): the head's write then
    /// carries it in the same record (`Backend::meta_pair`), one round trip where two
    /// followed each other, and a crash can never keep one without the other. `None` where
    /// the listing lives on other cores: the entry is then written after the head. Keep it
    /// until the write has ended: it holds the listing's placement, so that a layout change
    /// moving the listing's group waits for the write at its fence as for any write routed
    /// there (the head's placement counts in the head's group alone).
    pub fn listing_with_head(
        &self,
        cores: &Placement,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
    ) -> Option<PairedListing> {
        let placement = self.listing_cores(bucket);
        same_cores(cores, &placement).then(|| PairedListing {
            write: MetaWrite::Put {
                key: listing_key(bucket, key),
                value: listing_entry(head).encode(),
            },
            _placement: placement,
        })
    }

    /// `Backend::meta_swap` of the record `value(hlc)` at a fresh HLC, made again at an HLC
    /// past the record it lost to while that one is as new or newer (up to `SWAP_TRIES` swaps): the
    /// record may be a write that committed before this one under a clock ahead of this
    /// gateway's, and of two writes the one that commits last wins (commit order, not clocks;
    /// found by the object simulation with skewed clocks). Only a write that commits meanwhile
    /// still beats it. Returns the last swap and its HLC.
    pub async fn swap_in(
        &self,
        cores: &Placement,
        key: &Bytes,
        value: impl FnMut(u64) -> Bytes,
    ) -> Result<(Swap, u64), BackendError> {
        self.swap_in_with(cores, key, value, None, None).await
    }

    /// `swap_in` that writes `also` (a record of another key on the same cores: a listing
    /// entry, `listing_with_head`) in each swap's record, at its HLC (`Backend::meta_pair`),
    /// and `data` (a held body whose replicas are `cores`: `pairs_with`) in the first swap's
    /// write (`Backend::put_paired`; a swap made again finds it stored).
    pub async fn swap_in_with(
        &self,
        cores: &Placement,
        key: &Bytes,
        mut value: impl FnMut(u64) -> Bytes,
        also: Option<&MetaWrite>,
        mut data: Option<&HeldStripe>,
    ) -> Result<(Swap, u64), BackendError> {
        // A held body goes only where its write can carry it: never dropped.
        assert!(
            data.is_none()
                || also.is_some() && data.is_some_and(|d| matches!(d.policy, Policy::Replicas(_))),
            "a held body goes with a listing entry, replicated"
        );
        let mut tries = 1;
        loop {
            // `meta_swap` observed the record it lost to: this HLC is past it.
            let hlc = self.backend.hlc();
            let swap = match (also, data.take()) {
                (None, _) => self.backend.meta_swap(cores, key, &value(hlc), hlc).await?,
                (Some(also), held) => {
                    let first = MetaWrite::Put {
                        key: key.clone(),
                        value: value(hlc),
                    };
                    match held {
                        Some(HeldStripe {
                            stripe,
                            policy: Policy::Replicas(n),
                            data,
                        }) => {
                            let id = stripe.fragment_id(0);
                            let backend = &self.backend;
                            backend
                                .put_paired(cores, *n, id, data, &first, also, hlc)
                                .await?
                        }
                        Some(_) => unreachable!("a held body is replicated (asserted above)"),
                        None => self.backend.meta_pair(cores, &first, also, hlc).await?,
                    }
                }
            };
            // Beaten by a newer record, or by another write at the same HLC (two gateways
            // whose skewed clocks read the same instant; the tie went to the other value:
            // seed 1899 of the skewed-clock simulation).
            let beaten = swap.previous.as_ref().is_some_and(|p| p.hlc >= hlc);
            if swap.won || !beaten || tries == SWAP_TRIES {
                return Ok((swap, hlc));
            }
            tries += 1;
        }
    }

    /// Whether a held body (stored on `data_cores`) can go in the write of its head on
    /// `cores`: the same cores, each row exactly the body's replicas.
    pub fn pairs_with(held: &HeldStripe, data_cores: &Placement, cores: &Placement) -> bool {
        let Policy::Replicas(n) = held.policy else {
            return false;
        };
        same_cores(data_cores, cores) && cores.rows().iter().all(|r| r.len() == usize::from(n))
    }

    /// Stores a held body on its cores, alone (where it cannot go with its head).
    pub async fn store_held(&self, data_cores: &Placement, held: HeldStripe) -> Result<()> {
        self.put_stripe(data_cores, held.policy, &held.stripe, held.data)
            .await
    }

    /// Writes `head` as the key's head record.
    pub async fn put_head(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
    ) -> Result<()> {
        let cores = self.object_cores(bucket, key);
        self.backend
            .meta_put(&cores, &head_key(bucket, key), &head.encode(), hlc)
            .await
            .map_err(Error::from)
    }

    /// Writes the listing entry of `head` (after its head: see `write_current`).
    pub async fn put_listing(
        &self,
        bucket: &str,
        key: &str,
        head: &ObjectHead,
        hlc: u64,
    ) -> Result<()> {
        let lcores = self.listing_cores(bucket);
        let listing = listing_entry(head).encode();
        self.backend
            .meta_put(&lcores, &listing_key(bucket, key), &listing, hlc)
            .await
            .map_err(Error::from)
    }

    /// Deletes an object (tombstones its head and listing entry, retires its chunks). Deleting
    /// a key that does not exist succeeds, as in S3; a listing entry left without its head
    /// (by a write that failed or crashed before this order was kept) is removed too.
    pub async fn delete_key(&self, bucket: &str, key: &str) -> Result<()> {
        let Some(head) = self.head(bucket, key).await? else {
            return self.drop_stray_listing(bucket, key).await.map(|_| ());
        };
        let hlc = self.backend.hlc();
        let lcores = self.listing_cores(bucket);
        let cores = self.object_cores(bucket, key);
        if same_cores(&cores, &lcores) {
            // Both on the same cores: one record each, both or neither.
            let head_gone = MetaWrite::Delete {
                key: head_key(bucket, key),
            };
            let entry_gone = MetaWrite::Delete {
                key: listing_key(bucket, key),
            };
            self.backend
                .meta_pair(&cores, &entry_gone, &head_gone, hlc)
                .await?;
        } else {
            // Listing entry first: whatever fails, no entry is left without its head.
            self.backend
                .meta_delete(&lcores, &listing_key(bucket, key), hlc)
                .await?;
            self.backend
                .meta_delete(&cores, &head_key(bucket, key), hlc)
                .await?;
        }
        self.retire_chunks(bucket, key, head);
        Ok(())
    }

    /// Removes `key`'s listing entry if its head is absent (call it once the head was read as
    /// absent). The tombstone takes the entry's own HLC plus one, so it hides that entry and
    /// nothing newer: a write of the key that commits meanwhile keeps its entry. Returns
    /// whether an entry was removed.
    pub async fn drop_stray_listing(&self, bucket: &str, key: &str) -> Result<bool> {
        let lcores = self.listing_cores(bucket);
        let lkey = listing_key(bucket, key);
        let Some(entry) = self.backend.meta_get(&lcores, &lkey).await? else {
            return Ok(false);
        };
        if self.has_current(bucket, key).await? {
            return Ok(false);
        }
        self.backend
            .meta_delete(&lcores, &lkey, entry.hlc + 1)
            .await?;
        Ok(true)
    }

    /// Whether a key has a current head (a listing entry stands for one).
    pub async fn has_current(&self, bucket: &str, key: &str) -> Result<bool> {
        Ok(self.head(bucket, key).await?.is_some())
    }

    /// After a write's records are durable: `Ok` if `scope` is still its bucket's live
    /// incarnation. While a DeleteBucket decides (the record is marked deleting) it waits,
    /// bounded; if the delete is still undecided the client is told OperationAborted and the
    /// chunks are kept (the write is in the bucket if the delete fails). In a dead
    /// incarnation the write is unreachable: NoSuchBucket, and the caller may retire its
    /// chunks (the background pass reclaims the records).
    pub async fn settle_live(&self, scope: &str) -> Result<(), CommitError> {
        for _ in 0..LIVE_WAITS_MAX {
            match self.liveness(scope).await {
                Ok(Liveness::Live) => return Ok(()),
                Ok(Liveness::Dead) => return Err(Error::NoSuchBucket.into()),
                Ok(Liveness::Deleting) => tokio::time::sleep(LIVE_WAIT).await,
                Err(error) => {
                    return Err(CommitError {
                        error,
                        keep_chunks: true,
                    })
                }
            }
        }
        Err(CommitError {
            error: Error::BucketDeleting,
            keep_chunks: true,
        })
    }

    /// Deletes a replaced version's chunks after `RETIRE_GRACE` (or a lifecycle day, if the
    /// test clock makes that shorter), so GETs that read its head just before the overwrite
    /// still stream it whole. Chunks of a process that stops before then, or that a full
    /// retirement schedule refuses (`retire`: counted, said in the log), are left for the
    /// orphan sweep (their ids carry the version id). The chunks are placed when the grace is
    /// over, not held through it: a held placement would keep a layout change's mover waiting
    /// at its fence for the whole grace.
    pub fn retire_chunks(&self, bucket: &str, key: &str, head: ObjectHead) {
        let grace = RETIRE_GRACE.min(std::time::Duration::from_millis(self.days.day_ms));
        self.workers
            .retire
            .schedule(&self.backend, grace, bucket, key, head);
    }

    /// CreateBucket's record, owned by `owner`, of a new incarnation (`new_bucket_id`); with
    /// Object Lock, versioning is Enabled for good. A compare-and-swap on the record's first
    /// core (the authority, as for conditional object writes), so of concurrent creators
    /// exactly one wins (issue #12: 16 of 40 races answered 200 to both), then the write on
    /// every replica. `None`: another creation holds the name (the caller reads whose).
    pub async fn create_bucket(
        &self,
        bucket: &str,
        owner: String,
        object_lock: bool,
    ) -> Result<Option<BucketRecord>> {
        let hlc = self.backend.hlc();
        let id = new_bucket_id(hlc, bucket, self.backend.id_salt());
        let mut record = BucketRecord::new(owner, now_ms(), id);
        if object_lock {
            record.object_lock = true;
            record.versioning = crate::records::Versioning::Enabled;
        }
        let (store, name) = (self.clone(), bucket.to_owned());
        self.write_bucket(bucket, async move {
            let cores = store.bucket_cores(&name);
            let key = bucket_key(&name);
            let value = record.encode();
            if !store
                .backend
                .meta_put_if_in(&cores, &key, &value, hlc, None)
                .await?
            {
                return Ok(None);
            }
            store.backend.meta_put(&cores, &key, &value, hlc).await?;
            Ok(Some(record))
        })
        .await
    }

    /// DeleteBucket's last step, once the bucket is marked and found empty: the record's
    /// tombstone. What its incarnation left is the background pass's to reclaim.
    pub async fn remove_bucket(&self, bucket: &str) -> Result<()> {
        let hlc = self.backend.hlc();
        let (store, name) = (self.clone(), bucket.to_owned());
        self.write_bucket(bucket, async move {
            let cores = store.bucket_cores(&name);
            store
                .backend
                .meta_delete(&cores, &bucket_key(&name), hlc)
                .await
                .map_err(Error::from)
        })
        .await
    }

    /// Every bucket's name and record (ListBuckets), from one merged scan of all cores
    /// (bucket records sit on any core; deleted buckets hidden); a record that does not
    /// decode is left out.
    pub async fn bucket_records(&self) -> Result<Vec<(String, BucketRecord)>> {
        let entries = self
            .backend
            .meta_scan_all_pages(&Bytes::from_static(b"B"))
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(k, e)| {
                let name = String::from_utf8_lossy(&k[1..]).into_owned();
                BucketRecord::decode(e.value).ok().map(|b| (name, b))
            })
            .collect())
    }

    /// One batch of a scan for the version listing's walk: of `cores` (one replica set) or,
    /// without, of every core (`Backend::meta_scan`, `meta_scan_all`).
    pub async fn scan_batch(
        &self,
        cores: Option<&Placement>,
        prefix: &Bytes,
        after: Option<Bytes>,
        limit: u32,
    ) -> Result<(Vec<(Bytes, proto::MetaEntry)>, Option<Bytes>)> {
        match cores {
            Some(cores) => self.backend.meta_scan(cores, prefix, after, limit).await,
            None => self.backend.meta_scan_all(prefix, after, limit).await,
        }
        .map_err(Error::from)
    }

    /// Replaces a bucket's record if it is still the one read with HLC `expect` (a
    /// compare-and-swap on its first core, then every replica). Returns the new HLC; a lost
    /// race is OperationAborted (S3's answer to conflicting bucket operations).
    pub async fn swap_bucket(
        &self,
        bucket: &str,
        record: &BucketRecord,
        expect: u64,
    ) -> Result<u64> {
        let hlc = self.backend.hlc();
        let (store, name) = (self.clone(), bucket.to_owned());
        let value = record.encode();
        self.write_bucket(bucket, async move {
            let cores = store.bucket_cores(&name);
            let key = bucket_key(&name);
            let won = store
                .backend
                .meta_put_if_in(&cores, &key, &value, hlc, Some(expect))
                .await?;
            if !won {
                return Err(Error::BucketConflict);
            }
            store.backend.meta_put(&cores, &key, &value, hlc).await?;
            Ok(hlc)
        })
        .await
    }

    /// Whether a bucket incarnation holds nothing: no listed key with a head, no version or
    /// delete marker (as in S3), and no multipart upload in progress (percore refuses to
    /// delete a bucket under a pending upload: its parts would outlive the bucket). Listing
    /// entries left without a head are removed on the way, up to `STRAY_ENTRIES_MAX` per
    /// call.
    pub async fn is_empty(&self, scope: &str) -> Result<bool> {
        let prefix = listing_key(scope, "");
        let cores = self.listing_cores(scope);
        let mut cursor = None;
        for _ in 0..STRAY_ENTRIES_MAX {
            let (entries, _) = self.backend.meta_scan(&cores, &prefix, cursor, 1).await?;
            let Some((k, _)) = entries.into_iter().next() else {
                return Ok(!self.has_versions(scope).await? && !self.has_uploads(scope).await?);
            };
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if self.has_current(scope, &key).await? || !self.drop_stray_listing(scope, &key).await?
            {
                return Ok(false);
            }
            cursor = Some(k);
        }
        Ok(false)
    }

    /// Whether an incarnation has a multipart upload in progress (on any core).
    pub async fn has_uploads(&self, scope: &str) -> Result<bool> {
        let prefix = crate::records::upload_key(scope, "", "");
        // `U` ‖ scope ‖ 0 ‖ (key ‖ 0 ‖ id): drop the key's empty-key separator.
        let prefix = prefix.slice(..prefix.len() - 1);
        let (entries, _) = self.backend.meta_scan_all(&prefix, None, 1).await?;
        Ok(!entries.is_empty())
    }

    /// Whether a bucket still holds a version or delete marker (on any core: a key's records
    /// live on its own cores).
    pub async fn has_versions(&self, bucket: &str) -> Result<bool> {
        let prefix = versions_prefix(bucket, b"").freeze();
        {
            let (entries, _) = self.backend.meta_scan_all(&prefix, None, 1).await?;
            if !entries.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Refuses to let data written under `version_id` be referenced when its write started
    /// more than half the orphan grace ago (the sweep could have taken it for an orphan).
    pub fn check_write_age(&self, version_id: &[u8; 12]) -> Result<()> {
        let started_ms = cluster::hlc::Hlc::millis(version_hlc(version_id));
        let age_ms = now_ms().saturating_sub(started_ms);
        if age_ms > self.orphan_grace_ms / 2 {
            return Err(Error::WriteTooSlow {
                took_secs: age_ms / 1000,
                grace_secs: self.orphan_grace_ms / 1000,
            });
        }
        Ok(())
    }
}

/// The spans of [first, first + len) of `head`'s body, a stripe's part each: (stripe, offset
/// in it, bytes), or `None` (and nothing after) where the head's parts end too soon.
fn stripe_spans(
    head: Arc<ObjectHead>,
    first: u64,
    len: u64,
) -> impl Iterator<Item = Option<(StripeRef, u64, u64)>> + Send + 'static {
    let end = first + len;
    let mut pos = first;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let Some((stripe, offset)) = head.locate(pos) else {
            pos = end;
            return Some(None);
        };
        let want = (stripe.len - offset).min(end - pos);
        pos += want;
        Some(Some((stripe, offset, want)))
    })
}

/// Reads `want` bytes of a stripe from `offset` (within the stripe), in pieces: replicas, one
/// piece from the first core that has the fragment intact; EC, one piece per data shard the
/// span covers, read in parallel, or, if one fails, slices of the stripe decoded from any k
/// of its shards (every shard fetched).
///
/// Also returns the fragments found missing or damaged on their cores on the way (core,
/// fragment), for a repair on read.
async fn read_stripe(
    backend: &Backend,
    cores: &Placement,
    policy: Policy,
    stripe: &StripeRef,
    offset: u64,
    want: u64,
) -> Result<(Vec<Bytes>, Vec<(usize, FragmentId)>), BackendError> {
    match policy {
        Policy::Replicas(n) => {
            let cores = cores.replica_cores(usize::from(n));
            let id = stripe.fragment_id(0);
            let (read, damaged) = backend.get_fragment_noting(&cores, id, offset, want).await;
            read.map(|b| (vec![b], damaged.into_iter().map(|c| (c, id)).collect()))
        }
        Policy::Ec { k, m } => {
            let shard = cluster::ec::shard_bytes(stripe.len, k);
            let end = offset + want;
            let (first, last) = (offset / shard, (end - 1) / shard);
            // A shard slower than the deadline is treated as missing: decoding from the
            // others is faster than waiting for a stuck core.
            let direct = (first..=last).map(|i| async move {
                let from = offset.max(i * shard);
                let to = end.min((i + 1) * shard);
                let holders = cores.fragment_cores(i as usize);
                let read = backend.get_fragment_noting(
                    &holders,
                    stripe.fragment_id(i as u8),
                    from - i * shard,
                    to - from,
                );
                tokio::time::timeout(FRAGMENT_READ_DEADLINE, read).await
            });
            let direct: Option<Vec<Bytes>> = futures::future::join_all(direct)
                .await
                .into_iter()
                .map(|r| match r {
                    Ok((Ok(b), _)) => Some(b),
                    _ => None,
                })
                .collect();
            if let Some(pieces) = direct {
                return Ok((pieces, Vec::new()));
            }
            tracing::warn!(
                stripe = stripe.index,
                shards = ?(first..=last),
                "degraded read: decoding the stripe"
            );
            let reads = (0..usize::from(k + m)).map(|j| async move {
                let (r, damaged) = backend
                    .get_fragment_noting(
                        &cores.fragment_cores(j),
                        stripe.fragment_id(j as u8),
                        0,
                        shard,
                    )
                    .await;
                (j, r, damaged)
            });
            let mut damaged = Vec::new();
            let mut available: Vec<(usize, Bytes)> = Vec::new();
            for (j, r, bad) in futures::future::join_all(reads).await {
                damaged.extend(bad.into_iter().map(|c| (c, stripe.fragment_id(j as u8))));
                if let Ok(b) = r {
                    available.push((j, b));
                }
            }
            if available.len() < usize::from(k) {
                return Err(BackendError::NotFound);
            }
            let data = cluster::ec::decode_stripe(k, m, &available).map_err(|message| {
                BackendError::Core {
                    code: proto::ErrorCode::Corrupt,
                    message,
                }
            })?;
            // The wanted span as slices of the decoded shards: no copy.
            let mut pieces = Vec::new();
            let mut pos = offset;
            while pos < end {
                let (j, w) = ((pos / shard) as usize, pos % shard);
                let t = (shard - w).min(end - pos);
                pieces.push(data[j].slice(w as usize..(w + t) as usize));
                pos += t;
            }
            Ok((pieces, damaged))
        }
    }
}

/// What `Store::check_head` found: the HLC the compare-and-swap expects (none: the key is
/// absent) and the head the write would replace.
pub struct Checked {
    pub expect: Option<u64>,
    pub current: Option<ObjectHead>,
}

/// A conditional write of an object: `If-None-Match: *` or `If-Match: <etag>`.
pub enum HeadCondition {
    Absent,
    Matches(String),
}

/// Where a bucket incarnation stands (`Store::liveness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Live,
    /// A DeleteBucket is checking it is empty.
    Deleting,
    /// Deleted (or deleted and created again: another incarnation).
    Dead,
}

/// A listing entry written with its head (`Store::listing_with_head`), and the listing's
/// placement, held while it is written.
pub struct PairedListing {
    pub write: MetaWrite,
    _placement: Placement,
}

/// The listing entry of `head` (`put_listing`, `Store::listing_with_head`).
fn listing_entry(head: &ObjectHead) -> ListingEntry {
    ListingEntry {
        size: head.shown_size(),
        modified_ms: head.modified_ms,
        etag: head.etag.clone(),
        in_versions: head.in_versions,
        class: head.tiering.class,
        owner: head.owner.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (stripe index, offset in it, bytes) of each span, `None` where the head runs out.
    fn spans(head: ObjectHead, first: u64, len: u64) -> Vec<Option<(u64, u64, u64)>> {
        stripe_spans(Arc::new(head), first, len)
            .map(|s| s.map(|(stripe, offset, want)| (stripe.index, offset, want)))
            .collect()
    }

    #[test]
    fn a_range_is_cut_at_stripe_and_part_ends() {
        const MIB: u64 = 1 << 20;
        // Two parts: 2.5 MiB (three stripes, the last half full) and 1 MiB.
        let head = crate::test_support::head_of_parts(&[5 * MIB / 2, MIB]);
        assert_eq!(
            spans(head.clone(), 0, head.size),
            vec![
                Some((0, 0, MIB)),
                Some((1, 0, MIB)),
                Some((2, 0, MIB / 2)),
                Some((0, 0, MIB)),
            ]
        );
        // From inside a stripe, across the part boundary, ending inside the next stripe.
        assert_eq!(
            spans(head.clone(), MIB + 10, 2 * MIB),
            vec![
                Some((1, 10, MIB - 10)),
                Some((2, 0, MIB / 2)),
                Some((0, 0, MIB / 2 + 10)),
            ]
        );
        assert_eq!(spans(head.clone(), 7, 1), vec![Some((0, 7, 1))]);
        assert!(spans(head.clone(), 0, 0).is_empty());
        // A head whose parts end before its size: the span there is None, and the last.
        let mut short = head;
        short.parts.pop();
        assert_eq!(
            spans(short, 2 * MIB, 2 * MIB),
            vec![Some((2, 0, MIB / 2)), None]
        );
    }

    /// A listing entry written with its head holds the listing group's placement until the
    /// write ends (`listing_with_head`): where the two groups differ but share their cores, a
    /// change moving the listing's group must wait for the entry at its fence, and only the
    /// listing's own placement counts there. Before, it was dropped once the rows were
    /// compared, and the fence could pass while the entry was still on its way to the old row.
    #[test]
    fn a_paired_listing_holds_the_listing_group_until_it_is_written() {
        use crate::test_support::{four_nodes_of_four_cores, head_of_parts, nodes_of_four_cores};
        use cluster::moves::Transition;
        let old = four_nodes_of_four_cores();
        let new = Arc::new(
            placement::Layout::from_toml_str_and_state(
                &nodes_of_four_cores(5, 2),
                Some(&old.state()),
            )
            .expect("a valid next layout"),
        );
        let t = Arc::new(Transition::new(old, new).expect("one change"));
        let backend = Backend::moving(t.clone(), None, Vec::new()).expect("routes");
        let days = Days {
            day_ms: 86_400_000,
            tiering_days: 30,
        };
        let store = Store::new(
            Arc::new(backend),
            Arc::new(crate::observe::Unobserved),
            days,
        );
        let head = head_of_parts(&[1]);
        // A key whose head group is not its bucket listing's, on the same cores, the listing's
        // group moving.
        let found = (0..64).find_map(|b| {
            let bucket = format!("b{b}");
            let listing = store.listing_cores(&bucket);
            let phase = listing.phase()?;
            (0..512).find_map(|k| {
                let key = format!("k{k}");
                let cores = store.object_cores(&bucket, &key);
                (cores.pg() != listing.pg() && same_cores(&cores, &listing))
                    .then(|| (bucket.clone(), key, listing.pg(), phase))
            })
        });
        let (bucket, key, pg, phase) = found.expect("such a key among 64 x 512");
        let cores = store.object_cores(&bucket, &key);
        assert_eq!(t.in_flight(pg, phase), 0, "nothing else is routed there");
        let paired = store
            .listing_with_head(&cores, &bucket, &key, &head)
            .expect("the same cores pair");
        assert_eq!(
            t.in_flight(pg, phase),
            1,
            "the entry's write counts in its group"
        );
        drop(cores);
        assert_eq!(t.in_flight(pg, phase), 1, "until the write ends");
        drop(paired);
        assert_eq!(t.in_flight(pg, phase), 0);
    }
}
