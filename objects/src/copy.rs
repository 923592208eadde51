//! Copies (CopyObject): a new version of the destination key with the source version's bytes
//! copied into new chunks (a copy never shares chunks with its source, so either can be deleted
//! or moved alone), its checksum computed from the bytes copied, and the metadata and tags the
//! request chose. The S3 layer resolves the source (ownership, versionId, the copy-source-if-*
//! conditions) and parses the directives; a part copied into an upload is `multipart`'s
//! `copy_part`, over the same `copy_body`.

use crate::checksum::{Algo, Kind, ObjectChecksum};
use crate::error::Result;
use crate::limits::{CHUNK_BYTES, OBJECT_BYTES_MAX};
use crate::records::{
    Encryption, ObjectHead, ObjectLock, PartRef, StorageClass, Tiering, Versioning,
};
use crate::seal::DataKey;
use crate::store::{now_ms, Store};

/// A copy's source: its bucket's scope, its key and the version copied, with its data key
/// when it is encrypted (the S3 layer unwrapped it).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub head: &'a ObjectHead,
    pub data_key: Option<&'a DataKey>,
}

/// How a copy is sealed: its encryption's kind and its data key, wrapped (`plain_bytes` and
/// the nonce bases are the copy's to fill), and that data key.
#[derive(Debug, Clone)]
pub struct Sealing {
    pub encryption: Encryption,
    pub data_key: DataKey,
}

/// What the copy is written with: its content type, user metadata and standard headers, its
/// tags, storage class, Object Lock settings and access control list (the destination's own,
/// never the source's, as S3), and the algorithm of its checksum (`None`: the source's, else
/// CRC64NVME, as AWS).
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub content_type: String,
    pub metadata: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub class: StorageClass,
    pub lock: ObjectLock,
    pub owner: Option<String>,
    pub acl: Option<bytes::Bytes>,
    pub algo: Option<Algo>,
    /// The copy's encryption (the destination's own, as S3), none: stored plain.
    pub sealing: Option<Sealing>,
}

impl Written {
    /// The source's content type, metadata and headers (the COPY metadata directive).
    pub fn source_metadata(mut self, src: &ObjectHead) -> Written {
        self.content_type.clone_from(&src.content_type);
        self.metadata.clone_from(&src.metadata);
        self.headers.clone_from(&src.headers);
        self
    }
}

impl Store {
    /// Copies `source` to `key` in the bucket `scope` (of `versioning`) as a new version;
    /// returns its head once committed. A failed commit removes the copied chunks (unless the
    /// commit's outcome is unknown), as a failed PUT does.
    pub async fn copy_object(
        &self,
        (scope, key, versioning): (&str, &str, Versioning),
        source: Source<'_>,
        written: Written,
    ) -> Result<ObjectHead> {
        let src = source.head;
        let algo = written.algo.unwrap_or_else(|| {
            src.checksum
                .as_ref()
                .map_or(Algo::Crc64Nvme, |c| c.sum.algo())
        });
        let version_id = self.version_id(self.backend.hlc(), key.as_bytes());
        let (policy, tier) = self.place(written.class, Some(src.size))?;
        let cores = self.cores_in(scope, key, policy, tier);
        let sealing = written.sealing;
        let (size, md5, sums) = self
            .copy_body(
                (source.scope, source.key, src),
                (0, src.shown_size()),
                (&cores, policy),
                &version_id,
                (OBJECT_BYTES_MAX, &[algo]),
                (source.data_key, sealing.as_ref().map(|s| &s.data_key)),
            )
            .await?;
        let encryption = sealing.map(|s| Encryption {
            plain_bytes: src.shown_size(),
            part_nonces: Vec::new(),
            ..s.encryption
        });
        let mut head = ObjectHead {
            size,
            modified_ms: now_ms(),
            etag: hex::encode(md5),
            version_id,
            chunk_bytes: CHUNK_BYTES,
            policy,
            content_type: written.content_type,
            metadata: written.metadata,
            headers: written.headers,
            parts: vec![PartRef { version_id, size }],
            checksum: sums.first().map(|sum| ObjectChecksum {
                sum: sum.clone(),
                kind: Kind::FullObject,
                parts: 1,
            }),
            null_version: versioning.writes_null(),
            in_versions: versioning.keeps_versions(),
            tiering: Tiering {
                class: written.class,
                tier,
                ..Tiering::default()
            },
            tags: written.tags,
            part_checksums: Vec::new(),
            lock: written.lock,
            encryption,
            owner: written.owner,
            acl: written.acl,
        };
        let committed = self
            .commit_head(scope, key, &mut head, None, versioning)
            .await;
        if let Err(e) = committed {
            // Nothing points at the copied chunks: remove them (as a failed PUT does).
            if !e.keep_chunks {
                self.retire_chunks(scope, key, head);
            }
            return Err(e.error);
        }
        Ok(head)
    }
}
