//! Multipart uploads: Create, UploadPart, ListParts, Complete, Abort, ListMultipartUploads.
//!
//! An upload is a `U` record on the object's cores; each uploaded part is a `P` record (its
//! own version id, size and MD5) whose chunks are stored like a single PUT's. Complete checks
//! the client's part list (ascending numbers, matching ETags, 5 MiB minimum but the last) and
//! commits an object head that lists the parts in order: no byte is copied.
//!
//! Checksums: an upload created with `x-amz-checksum-algorithm` keeps each part's checksum of
//! that algorithm in its part record, and Complete derives the object's from them (COMPOSITE or
//! FULL_OBJECT, `checksum.rs`). Uploads created without one get S3's default: each part's
//! CRC64NVME is kept the same way, and Complete combines them into a FULL_OBJECT CRC64NVME
//! (none when a part has none: parts uploaded before this default).
//!
//! A completed upload leaves an `M` record (its ETag, shown version id and a digest of the
//! part list) for `COMPLETION_KEEP_MS`: a retried Complete with the same parts answers the
//! same success instead of NoSuchUpload (SDKs retry on timeouts; AWS behaves so). The
//! background pass removes older ones. Records are keyed by the bucket's scope, so an upload
//! of a deleted bucket is never reached through a bucket created again under its name.

use md5::{Digest, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, ChecksumAlgorithm, ChecksumType,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CompletedPart, CopyPartResult,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, MultipartUpload, Part,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::{
    self, checksum_error, sent_checksums, set_checksum, Hashers, ObjectChecksum, UploadChecksum,
};
use crate::limits::{CHUNK_BYTES, LIST_PARTS_MAX, OBJECT_BYTES_MAX, PARTS_MAX, PART_BYTES_MIN};
use crate::records::{
    completion_key, parts_digest, upload_key, CompletionRecord, ObjectHead, PartRecord, PartRef,
    Tiering, UploadRecord, Versioning,
};
use crate::s3::{
    check_key, etag, head_condition, now_ms, requested_class, resolve_range, s3_err,
    standard_headers, timestamp, user_metadata, user_of, BodyChecks, CopyConditions, Gateway,
};
use crate::versioning::head_version_id;
use cluster::ec::Policy;
use placement::Tier;

pub use objects::uploads::COMPLETION_KEEP_MS;

/// The largest part (S3's limit).
const PART_BYTES_MAX: u64 = OBJECT_BYTES_MAX;

/// The s3s names of an upload's checksum algorithm and type.
fn s3_names(c: Option<UploadChecksum>) -> (Option<ChecksumAlgorithm>, Option<ChecksumType>) {
    let algo = c.map(|c| ChecksumAlgorithm::from_static(c.algo.s3_name()));
    (algo, c.map(|c| ChecksumType::from_static(c.kind.s3_name())))
}

fn valid_part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=PARTS_MAX as u32).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "part numbers are 1 to 10000"))
}

/// The parts a CompleteMultipartUpload names, checked against the uploaded ones: ascending
/// numbers, matching ETags (and checksums, for an upload with an algorithm), 5 MiB minimum but
/// the last.
fn choose_parts(
    wanted: &[CompletedPart],
    uploaded: &[(u32, PartRecord)],
    checksum: Option<UploadChecksum>,
) -> S3Result<Vec<(u32, PartRecord)>> {
    let mut chosen: Vec<(u32, PartRecord)> = Vec::with_capacity(wanted.len());
    for w in wanted {
        let n = valid_part_number(w.part_number.ok_or_else(|| s3_error!(InvalidPart))?)?;
        if chosen.last().is_some_and(|(last, _)| *last >= n) {
            return Err(s3_error!(InvalidPartOrder));
        }
        let (_, p) = uploaded
            .iter()
            .find(|(m, _)| *m == n)
            .ok_or_else(|| s3_error!(InvalidPart, "part {n} was not uploaded"))?;
        let given = w
            .e_tag
            .as_ref()
            .map(|e| e.value().trim_matches('"').to_string());
        if given.as_deref() != Some(hex::encode(p.md5).as_str()) {
            return Err(s3_error!(
                InvalidPart,
                "the ETag of part {n} does not match"
            ));
        }
        // Without an algorithm nothing was stored to compare with: the values are ignored.
        if let Some(c) = checksum {
            c.check_part(n, p.checksum.as_ref(), sent_checksums!(w))
                .map_err(checksum_error)?;
        }
        chosen.push((n, p.clone()));
    }
    if let Some((n, _)) = chosen[..chosen.len() - 1]
        .iter()
        .find(|(_, p)| p.size < PART_BYTES_MIN)
    {
        return Err(s3_error!(EntityTooSmall, "part {n} is smaller than 5 MiB"));
    }
    Ok(chosen)
}

/// The digest of a Complete's part list (`records::parts_digest`).
fn digest_of(wanted: &[CompletedPart]) -> u64 {
    let parts: Vec<(i32, String)> = wanted
        .iter()
        .map(|w| {
            let etag = w.e_tag.as_ref().map(|e| e.value().to_string());
            (w.part_number.unwrap_or(0), etag.unwrap_or_default())
        })
        .collect();
    let refs: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
    parts_digest(&refs)
}

/// The head of a completed upload: its chosen parts in order, the md5-of-md5s `-N` ETag.
fn completed_head(
    upload: UploadRecord,
    chosen: &[(u32, PartRecord)],
    checksum: Option<ObjectChecksum>,
    version_id: [u8; 12],
    (policy, tier): (Policy, Tier),
    versioning: Versioning,
) -> ObjectHead {
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
    ObjectHead {
        size: parts.iter().map(|p| p.size).sum(),
        modified_ms: now_ms(),
        etag: format!("{}-{}", hex::encode(md5s), chosen.len()),
        version_id,
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
        encryption: None,
    }
}

/// The algorithm each part of `upload`'s is checksummed with and its checksum kept in: the
/// upload's, else CRC64NVME (S3's default: an upload created without an algorithm gets a
/// FULL_OBJECT CRC64NVME, combined from its parts' at Complete).
fn part_algo(upload: Option<UploadChecksum>) -> checksum::Algo {
    upload.map_or(checksum::Algo::Crc64Nvme, |c| c.algo)
}

/// The checksum of the completed object, checked against the value the client sent for it.
fn complete_checksum(
    checksum: Option<UploadChecksum>,
    chosen: &[(u32, PartRecord)],
    sent: &[(checksum::Algo, &str)],
) -> S3Result<Option<ObjectChecksum>> {
    let Some(c) = checksum else {
        if let Some((algo, _)) = sent.first() {
            return Err(checksum_error(checksum::ChecksumError::UploadWithout {
                algo: *algo,
            }));
        }
        // The default: FULL_OBJECT CRC64NVME, when every part has its CRC64NVME (parts
        // uploaded by older versions have none: then no checksum, as before).
        let default = UploadChecksum {
            algo: checksum::Algo::Crc64Nvme,
            kind: checksum::Kind::FullObject,
        };
        let parts: Option<Vec<_>> = chosen
            .iter()
            .map(|(n, p)| {
                let sum = p.checksum.as_ref().filter(|s| s.algo() == default.algo)?;
                Some((*n, Some(sum), p.size))
            })
            .collect();
        return Ok(parts.and_then(|parts| default.object_checksum(&parts).ok()));
    };
    let parts: Vec<_> = chosen
        .iter()
        .map(|(n, p)| (*n, p.checksum.as_ref(), p.size))
        .collect();
    let object = c.object_checksum(&parts).map_err(checksum_error)?;
    for (algo, value) in sent {
        object.verify(*algo, value).map_err(checksum_error)?;
    }
    Ok(Some(object))
}

impl Gateway {
    pub(crate) async fn mp_create(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let checksum = UploadChecksum::parse(
            input
                .checksum_algorithm
                .as_ref()
                .map(ChecksumAlgorithm::as_str),
            input.checksum_type.as_ref().map(ChecksumType::as_str),
        )
        .map_err(checksum_error)?;
        let owned = self.owned_bucket(&input.bucket, &user).await?;
        let lock = crate::object_lock::WriteLock {
            mode: input.object_lock_mode.as_ref(),
            until: input.object_lock_retain_until_date.as_ref(),
            hold: input.object_lock_legal_hold_status.as_ref(),
        };
        let lock = self.write_lock(&owned, &lock).await?;
        let bucket = owned.scope;
        let record = UploadRecord {
            owner: user,
            initiated_ms: now_ms(),
            content_type: input.content_type.unwrap_or_default(),
            metadata: user_metadata(input.metadata)?,
            headers: standard_headers(
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires,
            ),
            checksum,
            class: requested_class(input.storage_class.as_ref())?,
            tags: input
                .tagging
                .as_deref()
                .map(crate::tagging::parse_header)
                .transpose()?
                .unwrap_or_default(),
            lock,
        };
        // A class this cluster has no policy for is refused now, not at the first part.
        self.store.place(record.class, None).map_err(s3_err)?;
        let hlc = self.backend.hlc();
        let upload_id = hex::encode(self.store.version_id(hlc, input.key.as_bytes()));
        let cores = self.store.object_cores(&bucket, &input.key);
        let k = upload_key(&bucket, &input.key, &upload_id);
        self.backend
            .meta_put(&cores, &k, &record.encode(), hlc)
            .await
            .map_err(s3_err)?;
        // A bucket deleted meanwhile must not keep the upload (see `Store::liveness`).
        if let Err(e) = self.store.settle_live(&bucket).await {
            let _ = self
                .backend
                .meta_delete(&cores, &k, self.backend.hlc())
                .await;
            return Err(s3_err(e.error));
        }
        let (checksum_algorithm, checksum_type) = s3_names(checksum);
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm,
            checksum_type,
            ..Default::default()
        }))
    }

    pub(crate) async fn mp_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let user = user_of(&req)?;
        let mut algos = checksum::requested(&req.headers)?;
        let (headers, trailers) = (req.headers, req.trailing_headers);
        let input = req.input;
        check_key(&input.key)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let number = valid_part_number(input.part_number)?;
        let upload = self
            .store
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        if let Some(c) = upload.checksum {
            // S3 refuses a part checked with another algorithm than the upload's.
            c.check_part_request(&algos).map_err(checksum_error)?;
        }
        let kept = part_algo(upload.checksum);
        if !algos.contains(&kept) {
            algos.push(kept);
        }
        let hlc = self.backend.hlc();
        let version_id = self.store.version_id(hlc, input.upload_id.as_bytes());
        let (policy, tier) = self.store.place(upload.class, None).map_err(s3_err)?;
        let data_cores = self.store.cores_in(&bucket, &input.key, policy, tier);
        let checks = BodyChecks {
            algos: &algos,
            headers: &headers,
            trailers,
            content_length: input.content_length,
            content_md5: input.content_md5.as_deref(),
        };
        let (size, md5, sums) = self
            .store_checked_body(
                &data_cores,
                policy,
                &version_id,
                input.body,
                PART_BYTES_MAX,
                checks,
            )
            .await?;
        let sum = sums.into_iter().find(|s| s.algo() == kept);
        let record = PartRecord {
            version_id,
            size,
            md5,
            modified_ms: now_ms(),
            checksum: sum,
        };
        self.store
            .put_part_record(
                &bucket,
                &input.key,
                &input.upload_id,
                (number, &record),
                (policy, tier),
            )
            .await
            .map_err(s3_err)?;
        let mut out = UploadPartOutput {
            e_tag: Some(etag(&hex::encode(md5))),
            ..Default::default()
        };
        if let Some(s) = &record.checksum {
            set_checksum!(out, s.algo(), s.base64());
        }
        Ok(S3Response::new(out))
    }

    pub(crate) async fn mp_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let number = valid_part_number(input.part_number)?;
        let upload = self
            .store
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        };
        let source = self
            .copy_source(&user, &input.copy_source, conditions)
            .await?;
        let src = source.head.clone();
        let (first, len) = match &input.copy_source_range {
            None => (0, src.size),
            Some(r) => {
                let range = s3s::dto::Range::parse(r)
                    .map_err(|_| s3_error!(InvalidArgument, "x-amz-copy-source-range"))?;
                if !matches!(range, s3s::dto::Range::Int { last: Some(_), .. }) {
                    return Err(s3_error!(
                        InvalidArgument,
                        "x-amz-copy-source-range must be bytes=first-last"
                    ));
                }
                resolve_range(Some(&range), src.size)?
            }
        };
        let hlc = self.backend.hlc();
        let version_id = self.store.version_id(hlc, input.upload_id.as_bytes());
        let (policy, tier) = self.store.place(upload.class, None).map_err(s3_err)?;
        let data_cores = self.store.cores_in(&bucket, &input.key, policy, tier);
        let body = self
            .store
            .object_stream(&source.bucket, &source.key, src, first, len);
        let mut hashers = Hashers::new(&[part_algo(upload.checksum)]);
        let (size, md5) = self
            .store
            .store_body(
                &data_cores,
                policy,
                &version_id,
                Some(body),
                PART_BYTES_MAX,
                &mut hashers,
            )
            .await
            .map_err(s3_err)?;
        let record = PartRecord {
            version_id,
            size,
            md5,
            modified_ms: now_ms(),
            checksum: hashers.finish().pop(),
        };
        self.store
            .put_part_record(
                &bucket,
                &input.key,
                &input.upload_id,
                (number, &record),
                (policy, tier),
            )
            .await
            .map_err(s3_err)?;
        let mut result = CopyPartResult {
            e_tag: Some(etag(&hex::encode(md5))),
            last_modified: Some(timestamp(record.modified_ms)),
            ..Default::default()
        };
        if let Some(s) = &record.checksum {
            set_checksum!(result, s.algo(), s.base64());
        }
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: source.version_id,
            ..Default::default()
        }))
    }

    pub(crate) async fn mp_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let upload = self
            .store
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        let max = usize::try_from(input.max_parts.unwrap_or(LIST_PARTS_MAX as i32))
            .unwrap_or(0)
            .min(LIST_PARTS_MAX);
        let marker = input
            .part_number_marker
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let all = self
            .store
            .parts(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        let after: Vec<_> = all.into_iter().filter(|(n, _)| *n > marker).collect();
        let truncated = after.len() > max;
        let page: Vec<Part> = after
            .into_iter()
            .take(max)
            .map(|(n, p)| {
                let mut part = Part {
                    part_number: Some(n as i32),
                    e_tag: Some(etag(&hex::encode(p.md5))),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.modified_ms)),
                    ..Default::default()
                };
                if let Some(s) = &p.checksum {
                    set_checksum!(part, s.algo(), s.base64());
                }
                part
            })
            .collect();
        let next = page
            .last()
            .and_then(|p| p.part_number)
            .filter(|_| truncated);
        let (checksum_algorithm, checksum_type) = s3_names(upload.checksum);
        Ok(S3Response::new(ListPartsOutput {
            checksum_algorithm,
            checksum_type,
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            parts: Some(page),
            storage_class: Some(upload.class.as_str().to_owned().into()),
            ..Default::default()
        }))
    }

    pub(crate) async fn mp_complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let live = self.owned_bucket(&input.bucket, &user).await?;
        let (bucket, versioning) = (live.scope, live.versioning);
        let condition = head_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
        let wanted = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_deref())
            .unwrap_or_default();
        if wanted.is_empty() {
            return Err(s3_error!(MalformedXML, "the part list is empty"));
        }
        let digest = digest_of(wanted);
        let cores = self.store.object_cores(&bucket, &input.key);
        let done_key = completion_key(&bucket, &input.key, &input.upload_id);
        if let Some(done) = self
            .store
            .completion(&cores, &done_key)
            .await
            .map_err(s3_err)?
        {
            if done.parts_digest != digest {
                return Err(s3_error!(
                    NoSuchUpload,
                    "the upload was completed with another part list"
                ));
            }
            return Ok(S3Response::new(CompleteMultipartUploadOutput {
                bucket: Some(input.bucket.clone()),
                key: Some(input.key.clone()),
                e_tag: Some(etag(&done.etag)),
                location: Some(format!("/{}/{}", input.bucket, input.key)),
                version_id: done.version_id,
                ..Default::default()
            }));
        }
        let upload = self
            .store
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        if let Some(c) = upload.checksum {
            c.check_type(input.checksum_type.as_ref().map(ChecksumType::as_str))
                .map_err(checksum_error)?;
        }
        let sent: Vec<(checksum::Algo, &str)> = sent_checksums!(input).collect();
        let uploaded = self
            .store
            .parts(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        let chosen = choose_parts(wanted, &uploaded, upload.checksum)?;
        let size: u64 = chosen.iter().map(|(_, p)| p.size).sum();
        if size > OBJECT_BYTES_MAX * 1000 {
            return Err(s3_error!(EntityTooLarge));
        }
        let object_checksum = complete_checksum(upload.checksum, &chosen, &sent)?;
        let place = self.store.place(upload.class, None).map_err(s3_err)?;
        // The version's id is taken at commit (`commit_head`).
        let mut head = completed_head(upload, &chosen, object_checksum, [0; 12], place, versioning);
        self.store
            .commit_head(
                &bucket,
                &input.key,
                &mut head,
                condition.as_ref(),
                versioning,
            )
            .await
            .map_err(|e| s3_err(e.error))?;
        let event = "s3:ObjectCreated:CompleteMultipartUpload";
        self.notify_created(&bucket, &input.key, &head, event).await;
        let done = CompletionRecord {
            completed_ms: now_ms(),
            parts_digest: digest,
            version_id: versioning.keeps_versions().then(|| head_version_id(&head)),
            etag: head.etag.clone(),
        };
        let hlc = self.backend.hlc();
        self.backend
            .meta_put(&cores, &done_key, &done.encode(), hlc)
            .await
            .map_err(s3_err)?;
        self.store
            .finish_upload(
                &bucket,
                &input.key,
                &input.upload_id,
                &uploaded,
                &head.parts,
                place,
            )
            .await
            .map_err(s3_err)?;
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&head.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: versioning.keeps_versions().then(|| head_version_id(&head)),
            ..Default::default()
        };
        if let Some(c) = &head.checksum {
            set_checksum!(out, c.sum.algo(), c.value());
            out.checksum_type = Some(ChecksumType::from_static(c.kind.s3_name()));
        }
        Ok(S3Response::new(out))
    }

    pub(crate) async fn mp_abort(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let upload = self
            .store
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        let parts = self
            .store
            .parts(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_err)?;
        let place = self.store.place(upload.class, None).map_err(s3_err)?;
        self.store
            .finish_upload(&bucket, &input.key, &input.upload_id, &parts, &[], place)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(crate) async fn mp_list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let max = usize::try_from(input.max_uploads.unwrap_or(1000))
            .unwrap_or(0)
            .min(1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let scan = upload_key(&bucket, &prefix, "");
        // Upload records sit with their objects, on any core: one merged scan of every core.
        let scan = scan.slice(..scan.len() - 1);
        let mut found = std::collections::BTreeMap::new();
        let entries = self
            .backend
            .meta_scan_all_pages(&scan)
            .await
            .map_err(s3_err)?;
        for (k, e) in entries {
            let rest = &k[2 + bucket.len()..];
            let Some(split) = rest.iter().rposition(|b| *b == 0) else {
                continue;
            };
            let key = String::from_utf8_lossy(&rest[..split]).into_owned();
            let id = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            if let Ok(u) = UploadRecord::decode(e.value) {
                found.insert((key, id), u);
            }
        }
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let mut after = found.into_iter().filter(|((k, id), _)| {
            k.as_str() > key_marker.as_str()
                || (k == &key_marker && !id_marker.is_empty() && id.as_str() > id_marker.as_str())
        });
        let page: Vec<_> = after.by_ref().take(max).collect();
        let truncated = after.next().is_some();
        let next = page
            .last()
            .filter(|_| truncated)
            .map(|((k, id), _)| (k.clone(), id.clone()));
        let uploads = page
            .into_iter()
            .map(|((key, id), u)| {
                let (checksum_algorithm, checksum_type) = s3_names(u.checksum);
                MultipartUpload {
                    key: Some(key),
                    upload_id: Some(id),
                    initiated: Some(timestamp(u.initiated_ms)),
                    checksum_algorithm,
                    checksum_type,
                    storage_class: Some(u.class.as_str().to_owned().into()),
                    ..Default::default()
                }
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: next.as_ref().map(|(k, _)| k.clone()),
            next_upload_id_marker: next.map(|(_, id)| id),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
