//! Multipart uploads' S3 requests: Create, UploadPart, UploadPartCopy, ListParts, Complete,
//! Abort, ListMultipartUploads. The upload logic (part lists, the completed head and its
//! checksum, retried Completes, listings) is the object service's (`objects::multipart`, its
//! records `objects::uploads`); here requests become its calls and its answers DTOs, and a
//! part body's headers and trailers are checked (Content-MD5, x-amz-checksum-*).
//!
//! Server-side encryption: Create draws the upload's data key and keeps it wrapped in the
//! upload (under the customer's key, SSE-C; else a master key: the request's choice, or the
//! bucket's default); UploadPart and UploadPartCopy seal each part under it with a nonce base
//! of their own (`sse`). An SSE-C upload's UploadPart, UploadPartCopy and Complete must carry
//! the customer's key, as GET does.

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, ChecksumAlgorithm, ChecksumType,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyPartResult,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, MultipartUpload, Part,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::{self, checksum_error, sent_checksums, set_checksum, UploadChecksum};
use crate::limits::{LIST_PARTS_MAX, LIST_UPLOADS_MAX};
use crate::records::UploadRecord;
use crate::s3::{
    check_key, copy_conditions, etag, head_condition, now_ms, requested_class, resolve_range,
    s3_err, standard_headers, timestamp, user_metadata, user_of, BodyChecks, Gateway,
};
use objects::multipart::{part_number, Completed, Completion, WantedPart, PART_BYTES_MAX};

pub use objects::uploads::COMPLETION_KEEP_MS;

/// The s3s names of an upload's checksum algorithm and type.
fn s3_names(c: Option<UploadChecksum>) -> (Option<ChecksumAlgorithm>, Option<ChecksumType>) {
    let algo = c.map(|c| ChecksumAlgorithm::from_static(c.algo.s3_name()));
    (algo, c.map(|c| ChecksumType::from_static(c.kind.s3_name())))
}

fn valid_part_number(n: i32) -> S3Result<u32> {
    part_number(n).map_err(s3_err)
}

/// The SSE-C key a request's x-amz-server-side-encryption-customer-* headers carry.
macro_rules! customer_key {
    ($input:expr) => {
        crate::sse::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
    };
}

impl Gateway {
    /// Seals a part of an encrypted upload under the upload's data key (an SSE-C upload's
    /// opened with the request's key: none is 400, a wrong one 403); a key sent for a part of
    /// another upload is 400.
    fn seal_part(
        &self,
        write: &mut objects::multipart::PartWrite,
        customer: Option<&crate::sse::CustomerKey>,
    ) -> S3Result<()> {
        let upload_key = crate::sse::data_key(self, write.upload.encryption.as_ref(), customer)?;
        if let Some(k) = upload_key {
            write.seal_with(&k);
        }
        Ok(())
    }

    pub(crate) async fn mp_create(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = user_of(&req)?;
        let writer = crate::object_acl::signer_of(&req);
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
        let asked = crate::sse::Asked {
            algorithm: input.server_side_encryption.as_ref(),
            kms_key_id: input.ssekms_key_id.as_deref(),
            customer: customer_key!(input)?,
        };
        let write_key = self.write_key(&owned.scope, asked).await?;
        // The completed object's owner and ACL, resolved now (as S3: the initiator writes).
        let asked = crate::object_acl::asked_of_write!(input);
        let acl = self.acl_for_write(&owned, writer.as_deref(), asked).await?;
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
            object_owner: acl.owner,
            acl: acl.acl,
            encryption: write_key
                .as_ref()
                .map(|k| crate::sse::fresh_sealing(k).encryption),
        };
        let upload_id = self
            .store
            .create_upload(&bucket, &input.key, &record)
            .await
            .map_err(s3_err)?;
        let (checksum_algorithm, checksum_type) = s3_names(checksum);
        let (server_side_encryption, ssekms_key_id) =
            crate::sse::kind_headers(record.encryption.as_ref());
        let customer = write_key.as_ref().and_then(crate::sse::WriteKey::customer);
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm,
            checksum_type,
            server_side_encryption,
            ssekms_key_id,
            sse_customer_algorithm: customer.map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer.map(|c| c.md5_base64.clone()),
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
        let customer = customer_key!(input)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let number = valid_part_number(input.part_number)?;
        let mut write = self
            .store
            .part_write(&bucket, &input.key, &input.upload_id, &algos)
            .await
            .map_err(s3_err)?;
        self.seal_part(&mut write, customer.as_ref())?;
        let checks = BodyChecks {
            algos: &write.algos,
            headers: &headers,
            trailers,
            content_length: input.content_length,
            content_md5: input.content_md5.as_deref(),
        };
        let (size, md5, sums) = match &write.part_key {
            None => {
                self.store_checked_body(
                    &write.data_cores,
                    write.policy,
                    &write.version_id,
                    input.body,
                    PART_BYTES_MAX,
                    checks,
                )
                .await?
            }
            Some(part_key) => {
                let at = (&write.data_cores, write.policy, &write.version_id);
                let sealed = self
                    .store_sealed_body(at, input.body, part_key.clone(), checks)
                    .await?;
                (sealed.stored_bytes, sealed.stored_md5, sealed.sums)
            }
        };
        let record = self
            .store
            .commit_part(
                (&bucket, &input.key, &input.upload_id),
                number,
                &write,
                (size, md5, sums),
            )
            .await
            .map_err(s3_err)?;
        let (server_side_encryption, ssekms_key_id) =
            crate::sse::kind_headers(write.upload.encryption.as_ref());
        let mut out = UploadPartOutput {
            e_tag: Some(etag(&hex::encode(md5))),
            server_side_encryption,
            ssekms_key_id,
            sse_customer_algorithm: customer.as_ref().map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer.map(|c| c.md5_base64),
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
        let judged_source = crate::object_acl::judged_source(&req.extensions);
        let input = req.input;
        check_key(&input.key)?;
        let customer = customer_key!(input)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let number = valid_part_number(input.part_number)?;
        let mut write = self
            .store
            .part_write(&bucket, &input.key, &input.upload_id, &[])
            .await
            .map_err(s3_err)?;
        self.seal_part(&mut write, customer.as_ref())?;
        let conditions = copy_conditions!(input);
        let source = self
            .copy_source(&user, &input.copy_source, conditions)
            .await?;
        crate::object_acl::check_judged(judged_source, &source.head)?;
        let src = &source.head;
        let (first, len) = match &input.copy_source_range {
            None => (0, src.shown_size()),
            Some(r) => {
                let range = s3s::dto::Range::parse(r)
                    .map_err(|_| s3_error!(InvalidArgument, "x-amz-copy-source-range"))?;
                if !matches!(range, s3s::dto::Range::Int { last: Some(_), .. }) {
                    return Err(s3_error!(
                        InvalidArgument,
                        "x-amz-copy-source-range must be bytes=first-last"
                    ));
                }
                resolve_range(Some(&range), src.shown_size())?
            }
        };
        let record = self
            .store
            .copy_part(
                (&bucket, &input.key, &input.upload_id),
                number,
                &write,
                (&source.bucket, &source.key, src),
                source.data_key.as_ref(),
                (first, len),
            )
            .await
            .map_err(s3_err)?;
        let mut result = CopyPartResult {
            e_tag: Some(etag(&hex::encode(record.md5))),
            last_modified: Some(timestamp(record.modified_ms)),
            ..Default::default()
        };
        if let Some(s) = &record.checksum {
            set_checksum!(result, s.algo(), s.base64());
        }
        let (server_side_encryption, ssekms_key_id) =
            crate::sse::kind_headers(write.upload.encryption.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: source.version_id,
            server_side_encryption,
            ssekms_key_id,
            sse_customer_algorithm: customer.as_ref().map(|_| crate::sse::ALGORITHM.into()),
            sse_customer_key_md5: customer.map(|c| c.md5_base64),
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
        // AWS takes an SSE-C upload's key here without needing it; one sent is checked.
        let customer = customer_key!(input)?;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let max = usize::try_from(input.max_parts.unwrap_or(LIST_PARTS_MAX as i32))
            .unwrap_or(0)
            .min(LIST_PARTS_MAX);
        let marker = input
            .part_number_marker
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let listed = self
            .store
            .list_parts_page((&bucket, &input.key, &input.upload_id), marker, max)
            .await
            .map_err(s3_err)?;
        let (upload, truncated) = (listed.upload, listed.truncated);
        if customer.is_some() {
            crate::sse::data_key(self, upload.encryption.as_ref(), customer.as_ref())?;
        }
        let page: Vec<Part> = listed
            .parts
            .into_iter()
            .map(|(n, p)| {
                let mut part = Part {
                    part_number: Some(n as i32),
                    e_tag: Some(etag(&hex::encode(p.md5))),
                    size: Some(p.plain_size() as i64),
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
        let customer = customer_key!(input)?;
        let live = self.owned_bucket(&input.bucket, &user).await?;
        let (bucket, versioning) = (live.scope, live.versioning);
        let condition = head_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
        // An SSE-C upload completes with its key (a retried Complete of a completed upload
        // finds none: the object service answers it).
        match self
            .store
            .upload(&bucket, &input.key, &input.upload_id)
            .await
        {
            Ok(upload) => {
                crate::sse::data_key(self, upload.encryption.as_ref(), customer.as_ref())?;
            }
            Err(objects::Error::NoSuchUpload) => {}
            Err(e) => return Err(s3_err(e)),
        }
        let wanted: Vec<WantedPart> = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|w| WantedPart {
                number: w.part_number,
                etag: w.e_tag.as_ref().map(|e| e.value().to_string()),
                checksums: sent_checksums!(w).map(|(a, v)| (a, v.to_owned())).collect(),
            })
            .collect();
        if wanted.is_empty() {
            return Err(s3_error!(MalformedXML, "the part list is empty"));
        }
        let sent: Vec<(checksum::Algo, &str)> = sent_checksums!(input).collect();
        let completion = Completion {
            parts: &wanted,
            checksums: &sent,
            checksum_type: input.checksum_type.as_ref().map(ChecksumType::as_str),
            condition,
            versioning,
        };
        let ids = (
            bucket.as_str(),
            input.key.as_str(),
            input.upload_id.as_str(),
        );
        let done = self
            .store
            .complete_upload(ids, completion)
            .await
            .map_err(s3_err)?;
        let location = Some(format!("/{}/{}", input.bucket, input.key));
        let committed = match done {
            Completed::Committed(committed) => committed,
            // A retry of a completed upload: its first answer, without the checksum.
            Completed::Retried {
                etag: e,
                version_id,
            } => {
                return Ok(S3Response::new(CompleteMultipartUploadOutput {
                    bucket: Some(input.bucket),
                    key: Some(input.key),
                    e_tag: Some(etag(&e)),
                    location,
                    version_id,
                    ..Default::default()
                }))
            }
        };
        let head = &committed.head;
        let event = "s3:ObjectCreated:CompleteMultipartUpload";
        self.notify_created(&bucket, &input.key, head, event).await;
        self.store
            .finish_completion(ids, &committed)
            .await
            .map_err(s3_err)?;
        let (server_side_encryption, ssekms_key_id) = crate::sse::response_headers(head);
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&head.etag)),
            location,
            version_id: committed.version_id.clone(),
            server_side_encryption,
            ssekms_key_id,
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
        self.store
            .abort_upload(&bucket, &input.key, &input.upload_id)
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
        let max = usize::try_from(input.max_uploads.unwrap_or(LIST_UPLOADS_MAX as i32))
            .unwrap_or(0)
            .min(LIST_UPLOADS_MAX);
        let prefix = input.prefix.clone().unwrap_or_default();
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let page = self
            .store
            .list_uploads(&bucket, &prefix, (&key_marker, &id_marker), max)
            .await
            .map_err(s3_err)?;
        let uploads = page
            .uploads
            .into_iter()
            .map(|(key, id, u)| upload_dto(key, id, &u))
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_key_marker: page.next.as_ref().map(|(k, _)| k.clone()),
            next_upload_id_marker: page.next.map(|(_, id)| id),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

/// An upload as ListMultipartUploads shows it.
fn upload_dto(key: String, id: String, u: &UploadRecord) -> MultipartUpload {
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
}
