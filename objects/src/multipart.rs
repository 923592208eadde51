//! Multipart uploads as requests: create an upload, store a part (uploaded or copied),
//! complete, abort, list an upload's parts and a bucket's uploads. The records they write and
//! read (`U`, `P`, `M`) are `uploads`'s; the S3 layer (the gateway's `multipart.rs`) parses the
//! requests, checks a part body's headers and trailers, and spells the answers.
//!
//! Complete checks the client's part list (ascending numbers, matching ETags, 5 MiB minimum but
//! the last) and commits an object head that lists the parts in order: no byte is copied.
//!
//! Checksums: an upload created with an algorithm keeps each part's checksum of that algorithm
//! in its part record, and Complete derives the object's from them (COMPOSITE or FULL_OBJECT,
//! `checksum`). Uploads created without one get S3's default: each part's CRC64NVME is kept the
//! same way, and Complete combines them into a FULL_OBJECT CRC64NVME (none when a part has
//! none: parts uploaded before this default).
//!
//! A completed upload leaves an `M` record (its ETag, shown version id and a digest of the part
//! list) for `COMPLETION_KEEP_MS`: a retried Complete with the same parts answers the same
//! success instead of NoSuchUpload (SDKs retry on timeouts; AWS behaves so).

use cluster::ec::Policy;
use cluster::moves::Placement;
use md5::{Digest, Md5};
use placement::Tier;

use crate::checksum::{self, Algo, Hashers, ObjectChecksum, Sum, UploadChecksum};
use crate::error::{Error, PartError, Result};
use crate::limits::{CHUNK_BYTES, OBJECT_BYTES_MAX, PARTS_MAX, PART_BYTES_MIN};
use crate::records::{
    completion_key, parts_digest, upload_key, CompletionRecord, ObjectHead, PartRecord, PartRef,
    Tiering, UploadRecord, Versioning,
};
use crate::seal::DataKey;
use crate::store::{now_ms, HeadCondition, Store};
use crate::versions::head_version_id;

/// The largest part (S3's limit).
pub const PART_BYTES_MAX: u64 = OBJECT_BYTES_MAX;

/// The largest completed upload.
const UPLOAD_BYTES_MAX: u64 = OBJECT_BYTES_MAX * 1000;

/// A part number as a request gives it, checked: 1 to 10000.
pub fn part_number(n: i32) -> Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=PARTS_MAX as u32).contains(n))
        .ok_or(Error::Part(PartError::Number))
}

/// A part a Complete names: its number, its ETag as sent, and the checksums sent for it.
#[derive(Debug, Clone, Default)]
pub struct WantedPart {
    pub number: Option<i32>,
    pub etag: Option<String>,
    pub checksums: Vec<(Algo, String)>,
}

/// A CompleteMultipartUpload: the parts named, the object checksums sent and the checksum type,
/// the write's condition (If-Match, If-None-Match) and the bucket's versioning.
pub struct Completion<'a> {
    pub parts: &'a [WantedPart],
    pub checksums: &'a [(Algo, &'a str)],
    pub checksum_type: Option<&'a str>,
    pub condition: Option<HeadCondition>,
    pub versioning: Versioning,
}

/// What a Complete did.
#[derive(Debug)]
pub enum Completed {
    /// A retry of an upload completed with the same part list: its first answer (the object's
    /// ETag and shown version id).
    Retried {
        etag: String,
        version_id: Option<String>,
    },
    /// The object committed now; `Store::finish_completion` records the completion and
    /// removes the upload.
    Committed(Box<Committed>),
}

/// An upload whose object a Complete committed (`Store::complete_upload`), its completion not
/// yet recorded.
#[derive(Debug)]
#[must_use = "an upload committed is finished by Store::finish_completion"]
pub struct Committed {
    pub head: ObjectHead,
    /// The version id a Complete shows (none when the bucket keeps no versions).
    pub version_id: Option<String>,
    digest: u64,
    uploaded: Vec<(u32, PartRecord)>,
    place: (Policy, Tier),
}

/// A part about to be stored: its upload, the version id its chunks are stored under, where,
/// and the checksums to compute (those the request asked for, and the one the part keeps).
#[derive(Debug)]
pub struct PartWrite {
    pub upload: UploadRecord,
    pub version_id: [u8; 12],
    pub policy: Policy,
    pub tier: Tier,
    pub data_cores: Placement,
    pub algos: Vec<Algo>,
    /// An encrypted upload's part: the upload's data key with a fresh nonce base
    /// (`seal_with`).
    pub part_key: Option<DataKey>,
}

impl PartWrite {
    /// Seals the part under its upload's data key (the S3 layer unwrapped it) and a nonce
    /// base of its own, drawn now: a part uploaded again never reuses a nonce.
    pub fn seal_with(&mut self, upload_key: &DataKey) {
        let mut part_key = DataKey::random();
        part_key.key = upload_key.key;
        self.part_key = Some(part_key);
    }

    /// The algorithm the part's checksum is kept in.
    fn kept(&self) -> Algo {
        part_algo(self.upload.checksum)
    }
}

/// A page of a bucket's uploads (`Store::list_uploads`): (key, upload id, record), and where
/// the next page starts when there is one.
#[derive(Debug, Default)]
pub struct UploadsPage {
    pub uploads: Vec<(String, String, UploadRecord)>,
    pub truncated: bool,
    pub next: Option<(String, String)>,
}

/// A page of an upload's parts (`Store::list_parts_page`).
#[derive(Debug)]
pub struct PartsPage {
    pub upload: UploadRecord,
    pub parts: Vec<(u32, PartRecord)>,
    pub truncated: bool,
}

/// The algorithm each part of `upload`'s is checksummed with and its checksum kept in: the
/// upload's, else CRC64NVME (S3's default: an upload created without an algorithm gets a
/// FULL_OBJECT CRC64NVME, combined from its parts' at Complete).
fn part_algo(upload: Option<UploadChecksum>) -> Algo {
    upload.map_or(Algo::Crc64Nvme, |c| c.algo)
}

/// The digest of a Complete's part list (`records::parts_digest`).
fn digest_of(wanted: &[WantedPart]) -> u64 {
    let refs: Vec<(i32, &str)> = wanted
        .iter()
        .map(|w| (w.number.unwrap_or(0), w.etag.as_deref().unwrap_or_default()))
        .collect();
    parts_digest(&refs)
}

/// The parts a Complete names, checked against the uploaded ones: ascending numbers, matching
/// ETags (and checksums, for an upload with an algorithm), 5 MiB minimum but the last.
fn choose_parts(
    wanted: &[WantedPart],
    uploaded: &[(u32, PartRecord)],
    checksum: Option<UploadChecksum>,
) -> Result<Vec<(u32, PartRecord)>> {
    assert!(
        !wanted.is_empty(),
        "the S3 layer refuses an empty part list"
    );
    let mut chosen: Vec<(u32, PartRecord)> = Vec::with_capacity(wanted.len());
    for w in wanted {
        let n = part_number(w.number.ok_or(Error::Part(PartError::Missing))?)?;
        if chosen.last().is_some_and(|(last, _)| *last >= n) {
            return Err(Error::Part(PartError::Order));
        }
        let (_, p) = uploaded
            .iter()
            .find(|(m, _)| *m == n)
            .ok_or(Error::Part(PartError::NotUploaded(n)))?;
        let given = w.etag.as_deref().map(|e| e.trim_matches('"'));
        if given != Some(hex::encode(p.md5).as_str()) {
            return Err(Error::Part(PartError::ETag(n)));
        }
        // Without an algorithm nothing was stored to compare with: the values are ignored.
        if let Some(c) = checksum {
            let sent = w.checksums.iter().map(|(a, v)| (*a, v.as_str()));
            c.check_part(n, p.checksum.as_ref(), sent)?;
        }
        chosen.push((n, p.clone()));
    }
    if let Some((n, _)) = chosen[..chosen.len() - 1]
        .iter()
        .find(|(_, p)| p.plain_size() < PART_BYTES_MIN)
    {
        return Err(Error::Part(PartError::TooSmall(*n)));
    }
    Ok(chosen)
}

/// The head of a completed upload: its chosen parts in order, the md5-of-md5s `-N` ETag; an
/// encrypted upload's with each part's nonce base. Every part of an encrypted upload is
/// sealed and no part of another is (`Store::commit_part`): anything else is damage.
fn completed_head(
    upload: UploadRecord,
    chosen: &[(u32, PartRecord)],
    checksum: Option<ObjectChecksum>,
    (policy, tier): (Policy, Tier),
    versioning: Versioning,
) -> Result<ObjectHead> {
    let nonces: Vec<_> = chosen.iter().filter_map(|(_, p)| p.nonce).collect();
    let encryption = match upload.encryption {
        None if nonces.is_empty() => None,
        Some(mut e) if nonces.len() == chosen.len() => {
            e.plain_bytes = chosen.iter().map(|(_, p)| p.plain_size()).sum();
            e.part_nonces = nonces;
            Some(e)
        }
        _ => {
            return Err(Error::Damaged(
                "an upload's parts and its encryption disagree".into(),
            ))
        }
    };
    let mut md5s = Md5::new();
    for (_, p) in chosen {
        md5s.update(p.md5);
    }
    let md5s: [u8; 16] = md5s.finalize().into();
    let parts: Vec<PartRef> = chosen
        .iter()
        .map(|(_, p)| PartRef {
            version_id: p.version_id,
            size: p.size,
        })
        .collect();
    // Each part's checksum, kept when the upload has an algorithm (every part then has one).
    let algo = checksum.as_ref().map(|c| c.sum.algo());
    let sums: Vec<_> = chosen
        .iter()
        .filter_map(|(_, p)| p.checksum.clone())
        .collect();
    let part_checksums =
        if sums.len() == chosen.len() && sums.iter().all(|s| Some(s.algo()) == algo) {
            sums
        } else {
            Vec::new()
        };
    Ok(ObjectHead {
        size: parts.iter().map(|p| p.size).sum(),
        modified_ms: now_ms(),
        etag: format!("{}-{}", hex::encode(md5s), chosen.len()),
        // The version's id is taken at commit (`commit_head`).
        version_id: [0; 12],
        chunk_bytes: CHUNK_BYTES,
        policy,
        content_type: upload.content_type,
        metadata: upload.metadata,
        headers: upload.headers,
        parts,
        checksum,
        null_version: versioning.writes_null(),
        in_versions: versioning.keeps_versions(),
        tiering: Tiering {
            class: upload.class,
            tier,
            ..Tiering::default()
        },
        tags: upload.tags,
        part_checksums,
        lock: upload.lock,
        encryption,
        owner: upload.object_owner,
        acl: upload.acl,
    })
}

/// The checksum of the completed object, checked against the value the client sent for it.
fn complete_checksum(
    checksum: Option<UploadChecksum>,
    chosen: &[(u32, PartRecord)],
    sent: &[(Algo, &str)],
) -> Result<Option<ObjectChecksum>> {
    let Some(c) = checksum else {
        if let Some((algo, _)) = sent.first() {
            return Err(checksum::ChecksumError::UploadWithout { algo: *algo }.into());
        }
        // The default: FULL_OBJECT CRC64NVME, when every part has its CRC64NVME (parts
        // uploaded by older versions have none: then no checksum, as before).
        let default = UploadChecksum {
            algo: Algo::Crc64Nvme,
            kind: checksum::Kind::FullObject,
        };
        let parts: Option<Vec<_>> = chosen
            .iter()
            .map(|(n, p)| {
                let sum = p.checksum.as_ref().filter(|s| s.algo() == default.algo)?;
                Some((*n, Some(sum), p.plain_size()))
            })
            .collect();
        return Ok(parts.and_then(|parts| default.object_checksum(&parts).ok()));
    };
    let parts: Vec<_> = chosen
        .iter()
        .map(|(n, p)| (*n, p.checksum.as_ref(), p.plain_size()))
        .collect();
    let object = c.object_checksum(&parts)?;
    for (algo, value) in sent {
        object.verify(*algo, value)?;
    }
    Ok(Some(object))
}

impl Store {
    /// Creates an upload of `key` in the bucket `scope`; returns its id. A class this cluster
    /// has no policy for is refused now, not at the first part.
    pub async fn create_upload(
        &self,
        scope: &str,
        key: &str,
        record: &UploadRecord,
    ) -> Result<String> {
        self.place(record.class, None)?;
        let hlc = self.backend.hlc();
        let upload_id = hex::encode(self.version_id(hlc, key.as_bytes()));
        let cores = self.object_cores(scope, key);
        let k = upload_key(scope, key, &upload_id);
        self.backend
            .meta_put(&cores, &k, &record.encode(), hlc)
            .await?;
        // A bucket deleted meanwhile must not keep the upload (see `Store::liveness`).
        if let Err(e) = self.settle_live(scope).await {
            let _ = self
                .backend
                .meta_delete(&cores, &k, self.backend.hlc())
                .await;
            return Err(e.error);
        }
        Ok(upload_id)
    }

    /// Prepares storing a part of an upload: finds the upload, checks the checksums the
    /// request asks for against its algorithm (S3 refuses a part checked with another), and
    /// picks the part's version id and cores.
    pub async fn part_write(
        &self,
        scope: &str,
        key: &str,
        upload_id: &str,
        requested: &[Algo],
    ) -> Result<PartWrite> {
        let upload = self.upload(scope, key, upload_id).await?;
        if let Some(c) = upload.checksum {
            c.check_part_request(requested)?;
        }
        let mut algos = requested.to_vec();
        let kept = part_algo(upload.checksum);
        if !algos.contains(&kept) {
            algos.push(kept);
        }
        let hlc = self.backend.hlc();
        let version_id = self.version_id(hlc, upload_id.as_bytes());
        let (policy, tier) = self.place(upload.class, None)?;
        let data_cores = self.cores_in(scope, key, policy, tier);
        Ok(PartWrite {
            upload,
            version_id,
            policy,
            tier,
            data_cores,
            algos,
            part_key: None,
        })
    }

    /// Records part `number` of an upload once its body is stored (`write`'s chunks, of
    /// `size` bytes with that MD5 and checksums). Returns the part's record.
    pub async fn commit_part(
        &self,
        (scope, key, upload_id): (&str, &str, &str),
        number: u32,
        write: &PartWrite,
        (size, md5, sums): (u64, [u8; 16], Vec<Sum>),
    ) -> Result<PartRecord> {
        let kept = write.kept();
        if write.upload.encryption.is_some() != write.part_key.is_some() {
            return Err(Error::Internal(
                "a part of an encrypted upload is sealed, and only such a part".into(),
            ));
        }
        let record = PartRecord {
            version_id: write.version_id,
            size,
            md5,
            modified_ms: now_ms(),
            checksum: sums.into_iter().find(|s| s.algo() == kept),
            nonce: write.part_key.as_ref().map(|k| k.nonce_base),
        };
        self.put_part_record(
            scope,
            key,
            upload_id,
            (number, &record),
            (write.policy, write.tier),
        )
        .await?;
        Ok(record)
    }

    /// Stores the bytes [first, first + len) of an object (its bucket's scope, key and head;
    /// shown bytes: the plaintext of an encrypted one, opened with `src_key`) as part
    /// `number` of an upload (UploadPartCopy), sealed if the upload is encrypted. Returns the
    /// part's record.
    pub async fn copy_part(
        &self,
        (scope, key, upload_id): (&str, &str, &str),
        number: u32,
        write: &PartWrite,
        (src_scope, src_key, src): (&str, &str, &ObjectHead),
        src_data_key: Option<&DataKey>,
        range: (u64, u64),
    ) -> Result<PartRecord> {
        let algos = [write.kept()];
        let stored = self
            .copy_body(
                (src_scope, src_key, src),
                range,
                (&write.data_cores, write.policy),
                &write.version_id,
                (PART_BYTES_MAX, &algos),
                (src_data_key, write.part_key.as_ref()),
            )
            .await?;
        self.commit_part((scope, key, upload_id), number, write, stored)
            .await
    }

    /// Stores the shown bytes [first, first + len) of an object (bucket, key, head; an
    /// encrypted one opened with the first key) as new chunks under `version_id` on `cores`
    /// by `policy`, at most `size_max` bytes, computing `algos`' checksums of them; sealed
    /// under the second key when there is one. Returns the stored size and MD5 (the sealed
    /// bytes' when sealed) and the checksums (a copy, or a part copied).
    pub async fn copy_body(
        &self,
        (bucket, key, head): (&str, &str, &ObjectHead),
        (first, len): (u64, u64),
        (cores, policy): (&Placement, Policy),
        version_id: &[u8; 12],
        (size_max, algos): (u64, &[Algo]),
        (source_key, seal_key): (Option<&DataKey>, Option<&DataKey>),
    ) -> Result<(u64, [u8; 16], Vec<Sum>)> {
        let body = self.plain_stream(bucket, key, head.clone(), source_key, first, len);
        let Some(seal_key) = seal_key else {
            let mut hashers = Hashers::new(algos);
            let (size, md5) = self
                .store_body(
                    cores,
                    policy,
                    version_id,
                    Some(body),
                    size_max,
                    &mut hashers,
                )
                .await?;
            return Ok((size, md5, hashers.finish()));
        };
        let sealed = self
            .store_sealed(
                (cores, policy, version_id),
                body,
                seal_key.clone(),
                (size_max, algos),
            )
            .await?;
        Ok((sealed.stored_bytes, sealed.stored_md5, sealed.sums))
    }

    /// Completes an upload: a retry of a completed one answers its first success (when its
    /// part list is the same); else the parts are chosen and the head committed. The caller
    /// then tells of the new object and calls `finish_completion`.
    pub async fn complete_upload(
        &self,
        (scope, key, upload_id): (&str, &str, &str),
        c: Completion<'_>,
    ) -> Result<Completed> {
        let digest = digest_of(c.parts);
        let cores = self.object_cores(scope, key);
        let done_key = completion_key(scope, key, upload_id);
        if let Some(done) = self.completion(&cores, &done_key).await? {
            if done.parts_digest != digest {
                return Err(Error::Part(PartError::CompletedOtherwise));
            }
            return Ok(Completed::Retried {
                etag: done.etag,
                version_id: done.version_id,
            });
        }
        let upload = self.upload(scope, key, upload_id).await?;
        if let Some(u) = upload.checksum {
            u.check_type(c.checksum_type)?;
        }
        let uploaded = self.parts(scope, key, upload_id).await?;
        let chosen = choose_parts(c.parts, &uploaded, upload.checksum)?;
        let size: u64 = chosen.iter().map(|(_, p)| p.size).sum();
        if size > UPLOAD_BYTES_MAX {
            return Err(Error::TooLarge);
        }
        let object_checksum = complete_checksum(upload.checksum, &chosen, c.checksums)?;
        let place = self.place(upload.class, None)?;
        let mut head = completed_head(upload, &chosen, object_checksum, place, c.versioning)?;
        self.commit_head(scope, key, &mut head, c.condition.as_ref(), c.versioning)
            .await
            .map_err(|e| e.error)?;
        let version_id = c
            .versioning
            .keeps_versions()
            .then(|| head_version_id(&head));
        Ok(Completed::Committed(Box::new(Committed {
            head,
            version_id,
            digest,
            uploaded,
            place,
        })))
    }

    /// Finishes a Complete that committed: records the completion (a retry then answers the
    /// same success), then removes the upload's records and the parts the object does not use.
    pub async fn finish_completion(
        &self,
        (scope, key, upload_id): (&str, &str, &str),
        done: &Committed,
    ) -> Result<()> {
        let record = CompletionRecord {
            completed_ms: now_ms(),
            parts_digest: done.digest,
            version_id: done.version_id.clone(),
            etag: done.head.etag.clone(),
        };
        let cores = self.object_cores(scope, key);
        let hlc = self.backend.hlc();
        let done_key = completion_key(scope, key, upload_id);
        self.backend
            .meta_put(&cores, &done_key, &record.encode(), hlc)
            .await?;
        let parts = &done.head.parts;
        self.finish_upload(scope, key, upload_id, &done.uploaded, parts, done.place)
            .await
    }

    /// Aborts an upload: its records and its parts' chunks go.
    pub async fn abort_upload(&self, scope: &str, key: &str, upload_id: &str) -> Result<()> {
        let upload = self.upload(scope, key, upload_id).await?;
        let parts = self.parts(scope, key, upload_id).await?;
        let place = self.place(upload.class, None)?;
        self.finish_upload(scope, key, upload_id, &parts, &[], place)
            .await
    }

    /// A page of an upload's parts: at most `max` after part number `marker`.
    pub async fn list_parts_page(
        &self,
        (scope, key, upload_id): (&str, &str, &str),
        marker: u32,
        max: usize,
    ) -> Result<PartsPage> {
        let upload = self.upload(scope, key, upload_id).await?;
        let all = self.parts(scope, key, upload_id).await?;
        let after: Vec<_> = all.into_iter().filter(|(n, _)| *n > marker).collect();
        let truncated = after.len() > max;
        Ok(PartsPage {
            upload,
            parts: after.into_iter().take(max).collect(),
            truncated,
        })
    }

    /// A page of a bucket's uploads whose key starts with `prefix`, in (key, upload id) order,
    /// after `key_marker` (and, in that key, after `id_marker` when one is given); at most
    /// `max`.
    pub async fn list_uploads(
        &self,
        scope: &str,
        prefix: &str,
        (key_marker, id_marker): (&str, &str),
        max: usize,
    ) -> Result<UploadsPage> {
        let scan = upload_key(scope, prefix, "");
        // Upload records sit with their objects, on any core: one merged scan of every core.
        let scan = scan.slice(..scan.len() - 1);
        let mut found = std::collections::BTreeMap::new();
        let entries = self.backend.meta_scan_all_pages(&scan).await?;
        for (k, e) in entries {
            let rest = &k[2 + scope.len()..];
            let Some(split) = rest.iter().rposition(|b| *b == 0) else {
                continue;
            };
            let key = String::from_utf8_lossy(&rest[..split]).into_owned();
            let id = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            if let Ok(u) = UploadRecord::decode(e.value) {
                found.insert((key, id), u);
            }
        }
        let mut after = found.into_iter().filter(|((k, id), _)| {
            k.as_str() > key_marker
                || (k == key_marker && !id_marker.is_empty() && id.as_str() > id_marker)
        });
        let uploads: Vec<_> = after
            .by_ref()
            .take(max)
            .map(|((k, id), u)| (k, id, u))
            .collect();
        let truncated = after.next().is_some();
        let next = uploads
            .last()
            .filter(|_| truncated)
            .map(|(k, id, _)| (k.clone(), id.clone()));
        Ok(UploadsPage {
            uploads,
            truncated,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u8, size: u64) -> PartRecord {
        PartRecord {
            version_id: [n; 12],
            size,
            md5: [n; 16],
            modified_ms: 0,
            checksum: None,
            nonce: None,
        }
    }

    fn wanted(n: i32, md5: [u8; 16]) -> WantedPart {
        WantedPart {
            number: Some(n),
            etag: Some(format!("\"{}\"", hex::encode(md5))),
            checksums: Vec::new(),
        }
    }

    #[test]
    fn part_lists_are_checked_like_s3() {
        let big = PART_BYTES_MIN;
        let uploaded = vec![(1, part(1, big)), (2, part(2, 10)), (3, part(3, 10))];
        let chosen = choose_parts(&[wanted(1, [1; 16]), wanted(3, [3; 16])], &uploaded, None);
        assert_eq!(chosen.unwrap().len(), 2);
        let err = |w: &[WantedPart]| match choose_parts(w, &uploaded, None) {
            Err(Error::Part(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(&[wanted(3, [3; 16]), wanted(1, [1; 16])]),
            PartError::Order
        );
        assert_eq!(err(&[wanted(4, [4; 16])]), PartError::NotUploaded(4));
        assert_eq!(err(&[wanted(1, [9; 16])]), PartError::ETag(1));
        assert_eq!(err(&[wanted(0, [1; 16])]), PartError::Number);
        assert_eq!(
            err(&[wanted(2, [2; 16]), wanted(3, [3; 16])]),
            PartError::TooSmall(2)
        );
        let unnumbered = WantedPart {
            number: None,
            ..wanted(1, [1; 16])
        };
        assert_eq!(err(&[unnumbered]), PartError::Missing);
    }

    #[test]
    fn a_retry_is_known_by_its_part_list() {
        let a = [wanted(1, [1; 16]), wanted(2, [2; 16])];
        let b = [wanted(1, [1; 16]), wanted(2, [3; 16])];
        assert_eq!(digest_of(&a), digest_of(&a.clone()));
        assert_ne!(digest_of(&a), digest_of(&b));
    }
}
