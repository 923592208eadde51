//! Multipart uploads: Create, UploadPart, ListParts, Complete, Abort, ListMultipartUploads.
//!
//! An upload is a `U` record on the object's cores; each uploaded part is a `P` record (its
//! own version id, size and MD5) whose chunks are stored like a single PUT's. Complete checks
//! the client's part list (ascending numbers, matching ETags, 5 MiB minimum but the last) and
//! commits an object head that lists the parts in order: no byte is copied.

use md5::{Digest, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyPartResult, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListPartsInput, ListPartsOutput, MultipartUpload, Part, UploadPartCopyInput,
    UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::{self, Hashers};
use crate::limits::{CHUNK_BYTES, OBJECT_BYTES_MAX, PARTS_MAX, PART_BYTES_MIN};
use crate::records::{
    part_key, part_prefix, upload_key, ObjectHead, PartRecord, PartRef, UploadRecord,
};
use crate::s3::{
    check_key, etag, head_condition, new_version_id, now_ms, resolve_range, s3_err,
    standard_headers, timestamp, user_metadata, user_of, BodyChecks, CopyConditions, Gateway,
};

/// The largest part (S3's limit).
const PART_BYTES_MAX: u64 = OBJECT_BYTES_MAX;

fn valid_part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=PARTS_MAX as u32).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "part numbers are 1 to 10000"))
}

impl Gateway {
    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
        let cores = self.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &upload_key(bucket, key, upload_id))
            .await
            .map_err(s3_err)?
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        UploadRecord::decode(entry.value).map_err(|e| s3_error!(e, InternalError))
    }

    /// Every part record of an upload, in part-number order.
    async fn parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<Vec<(u32, PartRecord)>> {
        let core = self.object_cores(bucket, key)[0];
        let prefix = part_prefix(upload_id);
        let mut cursor = None;
        let mut out = Vec::new();
        loop {
            let (entries, next) = self
                .backend
                .meta_scan(core, &prefix, cursor, 1000)
                .await
                .map_err(s3_err)?;
            for (k, e) in entries {
                let n = k[prefix.len()..]
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| s3_error!(InternalError, "malformed part key"))?;
                let p = PartRecord::decode(e.value).map_err(|e| s3_error!(e, InternalError))?;
                out.push((n, p));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Removes an upload's records; retires the chunks of its parts not in `keep`.
    async fn finish_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, PartRecord)],
        keep: &[PartRef],
    ) -> S3Result<()> {
        let cores = self.object_cores(bucket, key);
        let policy = self.policy_for(None);
        let data_cores = self.data_cores(bucket, key, policy);
        let hlc = self.backend.hlc();
        for (n, p) in parts {
            self.backend
                .meta_delete(&cores, &part_key(upload_id, *n), hlc)
                .await
                .map_err(s3_err)?;
            if !keep.iter().any(|k| k.version_id == p.version_id) {
                self.delete_part_chunks(
                    &data_cores,
                    policy,
                    &PartRef {
                        version_id: p.version_id,
                        size: p.size,
                    },
                )
                .await;
            }
        }
        self.backend
            .meta_delete(&cores, &upload_key(bucket, key, upload_id), hlc)
            .await
            .map_err(s3_err)
    }

    pub(crate) async fn mp_create(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        self.owned_bucket(&input.bucket, &user).await?;
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
        };
        let hlc = self.backend.hlc();
        let upload_id = hex::encode(new_version_id(hlc, input.key.as_bytes()));
        let cores = self.object_cores(&input.bucket, &input.key);
        let k = upload_key(&input.bucket, &input.key, &upload_id);
        self.backend
            .meta_put(&cores, &k, &record.encode(), hlc)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    pub(crate) async fn mp_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let user = user_of(&req)?;
        let algos = checksum::requested(&req.headers)?;
        let (headers, trailers) = (req.headers, req.trailing_headers);
        let input = req.input;
        check_key(&input.key)?;
        self.owned_bucket(&input.bucket, &user).await?;
        let number = valid_part_number(input.part_number)?;
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let hlc = self.backend.hlc();
        let version_id = new_version_id(hlc, input.upload_id.as_bytes());
        let policy = self.policy_for(None);
        let data_cores = self.data_cores(&input.bucket, &input.key, policy);
        let checks = BodyChecks {
            algos: &algos,
            headers: &headers,
            trailers,
            content_length: input.content_length,
            content_md5: input.content_md5.as_deref(),
        };
        let (size, md5, _) = self
            .store_checked_body(
                &data_cores,
                policy,
                &version_id,
                input.body,
                PART_BYTES_MAX,
                checks,
            )
            .await?;
        let record = PartRecord {
            version_id,
            size,
            md5,
            modified_ms: now_ms(),
        };
        self.put_part_record(
            &input.bucket,
            &input.key,
            &input.upload_id,
            number,
            &record,
            hlc,
        )
        .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&hex::encode(md5))),
            ..Default::default()
        }))
    }

    pub(crate) async fn mp_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        self.owned_bucket(&input.bucket, &user).await?;
        let number = valid_part_number(input.part_number)?;
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        };
        let (src_bucket, src_key, src) = self
            .copy_source(&user, &input.copy_source, conditions)
            .await?;
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
        let version_id = new_version_id(hlc, input.upload_id.as_bytes());
        let policy = self.policy_for(None);
        let data_cores = self.data_cores(&input.bucket, &input.key, policy);
        let body = self.object_stream(&src_bucket, &src_key, src, first, len);
        let mut none = Hashers::new(&[]);
        let (size, md5) = self
            .store_body(
                &data_cores,
                policy,
                &version_id,
                Some(body),
                PART_BYTES_MAX,
                &mut none,
            )
            .await?;
        let record = PartRecord {
            version_id,
            size,
            md5,
            modified_ms: now_ms(),
        };
        self.put_part_record(
            &input.bucket,
            &input.key,
            &input.upload_id,
            number,
            &record,
            hlc,
        )
        .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&hex::encode(md5))),
                last_modified: Some(timestamp(record.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    /// Records an uploaded part; a part uploaded again replaces (and retires) the earlier one.
    async fn put_part_record(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        record: &PartRecord,
        hlc: u64,
    ) -> S3Result<()> {
        let cores = &self.object_cores(bucket, key);
        let k = part_key(upload_id, number);
        let previous = self.backend.meta_get(cores, &k).await.map_err(s3_err)?;
        self.backend
            .meta_put(cores, &k, &record.encode(), hlc)
            .await
            .map_err(s3_err)?;
        if let Some(old) = previous.and_then(|e| PartRecord::decode(e.value).ok()) {
            if old.version_id != record.version_id {
                let old = PartRef {
                    version_id: old.version_id,
                    size: old.size,
                };
                let policy = self.policy_for(None);
                let data_cores = self.data_cores(bucket, key, policy);
                self.delete_part_chunks(&data_cores, policy, &old).await;
            }
        }
        Ok(())
    }

    pub(crate) async fn mp_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        self.owned_bucket(&input.bucket, &user).await?;
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let max = usize::try_from(input.max_parts.unwrap_or(1000))
            .unwrap_or(0)
            .min(1000);
        let marker = input
            .part_number_marker
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let all = self
            .parts(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let after: Vec<_> = all.into_iter().filter(|(n, _)| *n > marker).collect();
        let truncated = after.len() > max;
        let page: Vec<Part> = after
            .into_iter()
            .take(max)
            .map(|(n, p)| Part {
                part_number: Some(n as i32),
                e_tag: Some(etag(&hex::encode(p.md5))),
                size: Some(p.size as i64),
                last_modified: Some(timestamp(p.modified_ms)),
                ..Default::default()
            })
            .collect();
        let next = page
            .last()
            .and_then(|p| p.part_number)
            .filter(|_| truncated);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            parts: Some(page),
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
        self.owned_bucket(&input.bucket, &user).await?;
        let condition = head_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
        let upload = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let wanted = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if wanted.is_empty() {
            return Err(s3_error!(MalformedXML, "the part list is empty"));
        }
        let uploaded = self
            .parts(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let mut chosen: Vec<(u32, PartRecord)> = Vec::with_capacity(wanted.len());
        for w in &wanted {
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
            chosen.push((n, p.clone()));
        }
        if let Some((n, _)) = chosen[..chosen.len() - 1]
            .iter()
            .find(|(_, p)| p.size < PART_BYTES_MIN)
        {
            return Err(s3_error!(EntityTooSmall, "part {n} is smaller than 5 MiB"));
        }
        let size: u64 = chosen.iter().map(|(_, p)| p.size).sum();
        if size > OBJECT_BYTES_MAX * 1000 {
            return Err(s3_error!(EntityTooLarge));
        }
        let mut md5s = Md5::new();
        for (_, p) in &chosen {
            md5s.update(p.md5);
        }
        let md5s: [u8; 16] = md5s.finalize().into();
        let hlc = self.backend.hlc();
        let parts: Vec<PartRef> = chosen
            .iter()
            .map(|(_, p)| PartRef {
                version_id: p.version_id,
                size: p.size,
            })
            .collect();
        let head = ObjectHead {
            size,
            modified_ms: now_ms(),
            etag: format!("{}-{}", hex::encode(md5s), chosen.len()),
            version_id: new_version_id(hlc, input.upload_id.as_bytes()),
            chunk_bytes: CHUNK_BYTES,
            policy: self.policy_for(None),
            content_type: upload.content_type,
            metadata: upload.metadata,
            headers: upload.headers,
            parts,
        };
        self.commit_head(&input.bucket, &input.key, &head, hlc, condition.as_ref())
            .await?;
        self.finish_upload(
            &input.bucket,
            &input.key,
            &input.upload_id,
            &uploaded,
            &head.parts,
        )
        .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&head.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    pub(crate) async fn mp_abort(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        self.owned_bucket(&input.bucket, &user).await?;
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let parts = self
            .parts(&input.bucket, &input.key, &input.upload_id)
            .await?;
        self.finish_upload(&input.bucket, &input.key, &input.upload_id, &parts, &[])
            .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(crate) async fn mp_list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let max = usize::try_from(input.max_uploads.unwrap_or(1000))
            .unwrap_or(0)
            .min(1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let scan = upload_key(&input.bucket, &prefix, "");
        // Upload records sit with their objects, on any core: merge every core's.
        let scan = scan.slice(..scan.len() - 1);
        let mut found = std::collections::BTreeMap::new();
        for core in self.backend.all_cores() {
            let mut cursor = None;
            loop {
                let (entries, next) = self
                    .backend
                    .meta_scan(core, &scan, cursor, 1000)
                    .await
                    .map_err(s3_err)?;
                for (k, e) in entries {
                    let rest = &k[2 + input.bucket.len()..];
                    let Some(split) = rest.iter().rposition(|b| *b == 0) else {
                        continue;
                    };
                    let key = String::from_utf8_lossy(&rest[..split]).into_owned();
                    let id = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
                    if let Ok(u) = UploadRecord::decode(e.value) {
                        found.insert((key, id), u);
                    }
                }
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
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
            .map(|((key, id), u)| MultipartUpload {
                key: Some(key),
                upload_id: Some(id),
                initiated: Some(timestamp(u.initiated_ms)),
                ..Default::default()
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
