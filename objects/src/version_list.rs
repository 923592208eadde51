//! The version listing (`Store::versions_page`): one page of every version and delete marker
//! of a bucket incarnation under a prefix, in key order and newest first within a key, rolled
//! up into common prefixes at a delimiter, after a key marker and a version marker. It merges
//! the bucket's listing index (`L`: current versions without a `V` record) with the version
//! index (`V`, on every core), as `versions`' header says they are stored.
//!
//! It answers plain values: what S3 shows of each version, the common prefixes and the next
//! markers. Parsing the request (marker syntax, max-keys bounds) and the DTOs are the S3
//! layer's.

use cluster::moves::Placement;
use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::records::{
    listing_key, parse_version_key, version_key, versions_prefix, DeleteMarker, ListingEntry,
    StorageClass, VersionRecord,
};
use crate::store::Store;
use crate::versions::{head_version_id, shown_version_id, VersionRef, VERSIONS_SCAN_BATCH};

/// What a version listing asks for.
#[derive(Debug, Clone)]
pub struct VersionQuery<'a> {
    /// The bucket's scope (its incarnation).
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// A non-empty delimiter, or `None`.
    pub delimiter: Option<&'a str>,
    /// A non-empty key marker: the page starts after it (after `version_marker` of it, when
    /// given).
    pub key_marker: Option<&'a str>,
    pub version_marker: Option<VersionRef>,
    /// Versions, delete markers and common prefixes on the page, at most.
    pub max_keys: usize,
    /// Whether the bucket can hold `V` records (it kept versions at some time).
    pub with_versions: bool,
}

/// One page of a version listing.
#[derive(Debug, Default)]
pub struct VersionsPage {
    /// Versions and delete markers, in key order, newest first within a key.
    pub items: Vec<PageItem>,
    pub prefixes: Vec<String>,
    /// The next key and version id markers, when the page is truncated (no version id
    /// marker after a common prefix).
    pub next: Option<(String, Option<String>)>,
}

/// A version or delete marker on a page.
#[derive(Debug)]
pub struct PageItem {
    /// The key's bytes.
    pub key: Vec<u8>,
    pub is_latest: bool,
    pub version: ListedVersion,
}

/// What a version listing shows of a version.
#[derive(Debug)]
pub enum ListedVersion {
    Object {
        /// As shown: `null` or 24 lowercase hex digits.
        version_id: String,
        size: u64,
        etag: String,
        modified_ms: u64,
        class: StorageClass,
        /// The version's owner when it is not the bucket owner.
        owner: Option<String>,
    },
    Marker(DeleteMarker),
}

impl Store {
    /// One page of ListObjectVersions: every version under the prefix in key order, newest
    /// first within a key, rolled up at the delimiter, after the markers.
    pub async fn versions_page(&self, q: &VersionQuery<'_>) -> Result<VersionsPage> {
        let mut page = VersionsPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        let (mut walk, mut previous_key) = self.start_walk(q).await?;
        let mut count = 0;
        let mut last: Option<(String, Option<String>)> = None;
        while let Some(item) = walk.next(self).await? {
            let key = String::from_utf8_lossy(&item.key).into_owned();
            let rolled = q.delimiter.and_then(|d| {
                let rest = key.get(q.prefix.len()..)?;
                rest.find(d)
                    .map(|at| key[..q.prefix.len() + at + d.len()].to_string())
            });
            if let Some(cp) = rolled {
                walk.skip_prefix(q.bucket, cp.as_bytes());
                // A common prefix at or before the key marker was on an earlier page.
                if q.key_marker.is_some_and(|m| cp.as_str() <= m) {
                    continue;
                }
                if count == q.max_keys {
                    page.next = last;
                    return Ok(page);
                }
                last = Some((cp.clone(), None));
                page.prefixes.push(cp);
                count += 1;
                previous_key = None;
                continue;
            }
            if count == q.max_keys {
                page.next = last;
                return Ok(page);
            }
            let is_latest = previous_key.as_deref() != Some(&item.key[..]);
            previous_key = Some(item.key.clone());
            let version = item.version;
            let shown = match &version {
                ListedVersion::Object { version_id, .. } => version_id.clone(),
                ListedVersion::Marker(m) => shown_version_id(m.null_version, &m.version_id),
            };
            last = Some((key, Some(shown)));
            page.items.push(PageItem {
                key: item.key,
                is_latest,
                version,
            });
            count += 1;
        }
        Ok(page)
    }

    /// The sources of a version listing, positioned after the markers, and the key whose
    /// latest version is before the start (so its versions on this page are not latest).
    async fn start_walk(&self, q: &VersionQuery<'_>) -> Result<(VersionWalk, Option<Vec<u8>>)> {
        let batch = (q.max_keys + 2).min(VERSIONS_SCAN_BATCH as usize) as u32;
        let lprefix = listing_key(q.bucket, q.prefix);
        let vprefix = versions_prefix(q.bucket, q.prefix.as_bytes()).freeze();
        let (lcursor, vcursor, previous) = match (q.key_marker, q.version_marker) {
            (None, _) => (None, None, None),
            (Some(k), None) => (
                Some(listing_key(q.bucket, k)),
                Some(after_key(q.bucket, k)),
                None,
            ),
            (Some(k), Some(v)) => {
                let at = match v {
                    VersionRef::Id(id) => Some(version_key(q.bucket, k, &id)),
                    VersionRef::Null => self
                        .null_versions(q.bucket, k)
                        .await?
                        .first()
                        .map(|(vk, _)| vk.clone()),
                };
                match at {
                    None => (
                        Some(listing_key(q.bucket, k)),
                        Some(after_key(q.bucket, k)),
                        None,
                    ),
                    Some(at) => {
                        // Versions of the marker's key after it are latest only if nothing
                        // of that key sorts before the marker.
                        let newest = self.key_versions(q.bucket, k, 1).await?;
                        let before = newest.first().is_some_and(|(nk, _)| *nk <= at);
                        let previous = before.then(|| k.as_bytes().to_vec());
                        (Some(listing_key(q.bucket, k)), Some(at), previous)
                    }
                }
            }
        };
        let lbase = listing_key(q.bucket, "").len();
        let vbase = versions_prefix(q.bucket, b"").len();
        let listing = Source::new(
            Some(self.listing_cores(q.bucket)),
            lprefix,
            lbase,
            lcursor,
            true,
            batch,
        );
        // A key's version records live on its own cores: one scan merged over every core (its
        // cost grows with the cluster, unlike ListObjects; noted in s3api/DESIGN.md).
        let versions = q
            .with_versions
            .then(|| Source::new(None, vprefix, vbase, vcursor, false, batch));
        let walk = VersionWalk {
            bucket: q.bucket.to_owned(),
            listing,
            versions,
            null_of: None,
        };
        Ok((walk, previous))
    }
}

/// The first position after every version of `key` in the version index: the key's prefix
/// ends 0 0; 0 1 sorts after all of them and before any longer key (0 FF, or a non-zero byte).
fn after_key(bucket: &str, key: &str) -> Bytes {
    after_key_raw(bucket, key.as_bytes())
}

/// One version found by a walk: from the listing index (a current version without a `V`
/// record, the key's only one at rest) or from the version index.
struct WalkItem {
    raw: Bytes,
    key: Vec<u8>,
    /// The position within the key: the `V` key's last 20 bytes (zero for listing entries,
    /// which sort after every `V` record of their key: `position`).
    order: [u8; 20],
    from_listing: bool,
    /// Whether this is a null version (a listing entry always is).
    null: bool,
    version: ListedVersion,
}

/// Where an item sorts in the merge: by key, then a key's `V` records newest first, then its
/// listing entry. A listing entry is a version written before the bucket kept versions, older
/// than any `V` record of its key but the copy of itself that a write records (which sorts
/// by its old HLC, last, and is the same version).
type Position = (Vec<u8>, bool, [u8; 20]);

impl WalkItem {
    fn position(&self) -> Position {
        (self.key.clone(), self.from_listing, self.order)
    }
}

/// One sorted scan (a core's version index, or the bucket's listing index) read in batches.
struct Source {
    /// The replicas of an index (a bucket's listing), or `None`: every core of the cluster.
    cores: Option<Placement>,
    prefix: Bytes,
    /// Bytes of the bucket part of its keys.
    base: usize,
    /// The last raw key read (or skipped to): the scan resumes after it.
    cursor: Option<Bytes>,
    buf: VecDeque<WalkItem>,
    done: bool,
    listing: bool,
    batch: u32,
}

impl Source {
    fn new(
        cores: Option<Placement>,
        prefix: Bytes,
        base: usize,
        cursor: Option<Bytes>,
        listing: bool,
        batch: u32,
    ) -> Source {
        Source {
            cores,
            prefix,
            base,
            cursor,
            buf: VecDeque::new(),
            done: false,
            listing,
            batch,
        }
    }

    /// Reads the next batch of the scan (the listing index's may all be filtered out). With
    /// `limit` (a raw key), entries at or after it are dropped unread and the scan resumes
    /// at `limit`: the version index is read only where the listing index already was.
    async fn fetch(&mut self, store: &Store, limit: Option<&Bytes>) -> Result<()> {
        let cursor = self.cursor.clone();
        let (entries, next) = store
            .scan_batch(self.cores.as_ref(), &self.prefix, cursor, self.batch)
            .await?;
        if let Some((k, _)) = entries.last() {
            self.cursor = Some(k.clone());
        }
        self.done = next.is_none();
        for (raw, e) in entries {
            if let Some(l) = limit.filter(|l| raw >= **l) {
                // Read before the listing index was: read again once it has been.
                self.cursor = Some(l.clone());
                self.done = false;
                break;
            }
            if let Some(item) = self.item(raw, e.value)? {
                self.buf.push_back(item);
            }
        }
        Ok(())
    }

    /// The listing index's: with an empty buffer, every key this source may still hold
    /// sorts after this one (`None`: nothing read yet).
    fn passed_key(&self) -> Option<&[u8]> {
        assert!(self.listing, "the version index's cursor is a raw key");
        self.cursor.as_ref().map(|c| &c[self.base.min(c.len())..])
    }

    /// Whether every item of this source at or before `key` (every one when `None`) is
    /// buffered: the merge may take its smallest item.
    fn reached(&self, bucket: &str, key: Option<&[u8]>) -> bool {
        if self.done || !self.buf.is_empty() {
            return true;
        }
        let Some(key) = key else {
            return false;
        };
        if self.listing {
            self.passed_key().is_some_and(|p| p >= key)
        } else {
            let after = after_key_raw(bucket, key);
            self.cursor.as_ref().is_some_and(|c| *c >= after)
        }
    }

    fn item(&self, raw: Bytes, value: Bytes) -> Result<Option<WalkItem>> {
        let rest = &raw[self.base..];
        if self.listing {
            let e = ListingEntry::decode(value).map_err(|e| Error::Damaged(e.to_string()))?;
            // A current version with a `V` record is listed from the version index.
            if e.in_versions {
                return Ok(None);
            }
            return Ok(Some(WalkItem {
                key: rest.to_vec(),
                raw,
                order: [0; 20],
                from_listing: true,
                null: true,
                version: ListedVersion::Object {
                    version_id: "null".to_string(),
                    size: e.size,
                    etag: e.etag,
                    modified_ms: e.modified_ms,
                    class: e.class,
                    owner: e.owner,
                },
            }));
        }
        let (key, _) = parse_version_key(rest)
            .ok_or_else(|| Error::Damaged("malformed version key".to_string()))?;
        let mut order = [0u8; 20];
        order.copy_from_slice(&raw[raw.len() - 20..]);
        let record = VersionRecord::decode(value).map_err(|e| Error::Damaged(e.to_string()))?;
        let null = record.null_version();
        let version = match record {
            VersionRecord::Object(h) => ListedVersion::Object {
                version_id: head_version_id(&h),
                size: h.shown_size(),
                etag: h.etag,
                modified_ms: h.modified_ms,
                class: h.tiering.class,
                owner: h.owner,
            },
            VersionRecord::DeleteMarker(m) => ListedVersion::Marker(m),
        };
        Ok(Some(WalkItem {
            raw,
            key,
            order,
            from_listing: false,
            null,
            version,
        }))
    }

    /// Drops everything up to `position` (a raw key) and resumes the scan after it.
    fn skip_to(&mut self, position: &Bytes) {
        while self.buf.front().is_some_and(|i| i.raw <= *position) {
            self.buf.pop_front();
        }
        if self.buf.is_empty() && self.cursor.as_ref().is_none_or(|c| c < position) {
            self.cursor = Some(position.clone());
        }
    }
}

/// `after_key` for raw key bytes: the version index's first position after every version of
/// `key` (and of every key before it).
fn after_key_raw(bucket: &str, key: &[u8]) -> Bytes {
    let mut k = versions_prefix(bucket, key);
    k.put_slice(&[0, 1]);
    k.freeze()
}

/// A merge of the listing index and the version index by `Position`, without duplicates (a
/// `V` record is on several cores), showing one null version per key.
///
/// A write that moves a key's version from the listing index to the version index (a version
/// written before the bucket kept versions, recorded by the write that replaces it, or
/// replaced as the null version) writes the `V` records first and changes the listing entry
/// last, so the walk reads a key's listing entry before its `V` records: it sees the version
/// in one index or both, never in neither (the version index used to be read first, and a
/// listing concurrent with a delete marker on such a key listed no version of it; found by
/// the object simulation). Seen in both, or with the null version a write in a suspended
/// bucket replaces (written before the old one is removed), the key shows its newest null
/// version only: S3's null version is one version.
struct VersionWalk {
    bucket: String,
    listing: Source,
    /// `None` in a bucket that never kept versions.
    versions: Option<Source>,
    /// The key whose null version the walk has already yielded.
    null_of: Option<Vec<u8>>,
}

impl VersionWalk {
    async fn next(&mut self, store: &Store) -> Result<Option<WalkItem>> {
        while let Some(item) = self.next_any(store).await? {
            if item.null {
                if self.null_of.as_deref() == Some(&item.key[..]) {
                    // An older null version of the key, mid-write: the newer one replaces it.
                    continue;
                }
                self.null_of = Some(item.key.clone());
            }
            return Ok(Some(item));
        }
        Ok(None)
    }

    /// The next item of the merge, null versions not yet deduplicated.
    async fn next_any(&mut self, store: &Store) -> Result<Option<WalkItem>> {
        loop {
            let min = self
                .listing
                .buf
                .front()
                .into_iter()
                .chain(self.versions.iter().filter_map(|v| v.buf.front()))
                .map(WalkItem::position)
                .min();
            let key = min.as_ref().map(|(k, _, _)| k.as_slice());
            // The listing index first, and only as far as the merge has come (it skips the
            // entries of versions that have `V` records: most, in a versioned bucket).
            if !self.listing.reached(&self.bucket, key) {
                self.listing.fetch(store, None).await?;
                continue;
            }
            let limit = match self.listing.passed_key() {
                _ if self.listing.done => None,
                Some(passed) => Some(after_key_raw(&self.bucket, passed)),
                None => unreachable!("a listing index not yet read is not reached"),
            };
            match &mut self.versions {
                Some(v) if !v.reached(&self.bucket, key) => {
                    v.fetch(store, limit.as_ref()).await?;
                    continue;
                }
                _ => {}
            }
            let Some(min) = min else {
                assert!(self.listing.done, "every source was read");
                assert!(self.versions.as_ref().is_none_or(|v| v.done));
                return Ok(None);
            };
            let mut found = None;
            for s in std::iter::once(&mut self.listing).chain(self.versions.as_mut()) {
                if s.buf.front().is_some_and(|i| i.position() == min) {
                    let item = s.buf.pop_front();
                    found = found.or(item);
                }
            }
            return Ok(found);
        }
    }

    /// Skips every key under the common prefix `cp` (0xFF never occurs in UTF-8).
    fn skip_prefix(&mut self, bucket: &str, cp: &[u8]) {
        let mut position = BytesMut::from(&listing_key(bucket, "")[..]);
        position.put_slice(cp);
        position.put_u8(0xff);
        self.listing.skip_to(&position.freeze());
        if let Some(v) = &mut self.versions {
            let mut position = versions_prefix(bucket, cp);
            position.put_u8(0xff);
            v.skip_to(&position.freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hlc: u64) -> [u8; 12] {
        let mut id = [7u8; 12];
        id[..8].copy_from_slice(&hlc.to_le_bytes());
        id
    }

    fn listing_source(bucket: &str) -> Source {
        let base = listing_key(bucket, "").len();
        Source::new(
            Some(Placement::row(vec![0])),
            listing_key(bucket, ""),
            base,
            None,
            true,
            10,
        )
    }

    fn version_source(bucket: &str) -> Source {
        let base = versions_prefix(bucket, b"").len();
        let prefix = versions_prefix(bucket, b"").freeze();
        Source::new(None, prefix, base, None, false, 10)
    }

    fn entry(in_versions: bool) -> Bytes {
        ListingEntry {
            size: 3,
            modified_ms: 5,
            etag: "e".into(),
            in_versions,
            class: StorageClass::default(),
            owner: None,
        }
        .encode()
    }

    fn marker(hlc: u64, null_version: bool) -> Bytes {
        VersionRecord::DeleteMarker(DeleteMarker {
            version_id: id(hlc),
            null_version,
            modified_ms: hlc,
        })
        .encode()
    }

    #[test]
    fn after_key_follows_every_version_of_its_key_and_precedes_longer_keys() {
        let after = after_key("b", "k");
        for hlc in [0, 1, u64::MAX] {
            assert!(version_key("b", "k", &id(hlc)) < after);
        }
        for longer in ["k\0", "k\0\0", "ka", "k\u{1}"] {
            assert!(
                after < version_key("b", longer, &id(u64::MAX)),
                "{longer:?}"
            );
        }
    }

    #[test]
    fn a_listing_entry_sorts_after_its_keys_versions_and_before_the_next_key() {
        let bucket = "b";
        let listing = listing_source(bucket);
        let versions = version_source(bucket);
        let item = |s: &Source, raw: Bytes, value: Bytes| s.item(raw, value).unwrap().unwrap();
        let l = item(&listing, listing_key(bucket, "k"), entry(false));
        let newest = item(
            &versions,
            version_key(bucket, "k", &id(9)),
            marker(9, false),
        );
        let older = item(&versions, version_key(bucket, "k", &id(2)), marker(2, true));
        let next = item(
            &versions,
            version_key(bucket, "k0", &id(1)),
            marker(1, false),
        );
        assert!(newest.position() < older.position());
        assert!(older.position() < l.position());
        assert!(l.position() < next.position());
        assert!(l.null && older.null && !newest.null);
        assert_eq!(newest.key, b"k");
        assert!(matches!(
            l.version,
            ListedVersion::Object { ref version_id, size: 3, .. } if version_id == "null"
        ));
    }

    #[test]
    fn a_listing_entry_with_a_version_record_is_listed_from_the_version_index() {
        let listing = listing_source("b");
        assert!(listing
            .item(listing_key("b", "k"), entry(true))
            .unwrap()
            .is_none());
    }

    #[test]
    fn damaged_records_are_errors() {
        let listing = listing_source("b");
        let versions = version_source("b");
        let junk = Bytes::from_static(b"\xee junk");
        assert!(matches!(
            listing.item(listing_key("b", "k"), junk.clone()),
            Err(Error::Damaged(_))
        ));
        assert!(matches!(
            versions.item(version_key("b", "k", &id(1)), junk),
            Err(Error::Damaged(_))
        ));
        // A `V` key whose key part never ends.
        let mut unended = versions_prefix("b", b"k");
        unended.put_slice(&[b'a'; 20][..]);
        assert!(matches!(
            versions.item(unended.freeze(), marker(1, false)),
            Err(Error::Damaged(_))
        ));
    }

    #[test]
    fn skip_to_drops_what_it_passes_and_moves_the_cursor_forward_only() {
        let mut s = version_source("b");
        for (key, hlc) in [("a/1", 3), ("a/2", 2), ("c", 1)] {
            let raw = version_key("b", key, &id(hlc));
            let item = s.item(raw.clone(), marker(hlc, false)).unwrap().unwrap();
            s.buf.push_back(item);
        }
        let mut past_a = versions_prefix("b", b"a/");
        past_a.put_u8(0xff);
        let past_a = past_a.freeze();
        s.skip_to(&past_a);
        assert_eq!(s.buf.len(), 1);
        assert_eq!(s.buf[0].key, b"c");
        // Items left buffered: the scan's cursor is theirs.
        assert_eq!(s.cursor, None);
        s.buf.clear();
        s.cursor = Some(version_key("b", "z", &id(1)));
        s.skip_to(&past_a);
        assert_eq!(s.cursor, Some(version_key("b", "z", &id(1))));
        s.cursor = None;
        s.skip_to(&past_a);
        assert_eq!(s.cursor, Some(past_a));
    }
}
