//! Multipart uploads in the store: the upload record (`U`), its part records (`P`, each with
//! its own version id, size and MD5, its chunks stored like a single PUT's), the record a
//! completed upload leaves (`M`) so that a retried Complete answers the same success, and the
//! removal of an upload's records and unused chunks. Records are keyed by the bucket's scope
//! (its incarnation), so an upload of a deleted bucket is never reached through a bucket
//! created again under its name. The requests (Create, UploadPart, Complete, ...) are
//! `multipart`'s.

use cluster::ec::Policy;
use cluster::moves::Placement;
use placement::Tier;

use crate::error::{Error, Result};
use crate::records::{
    part_key, part_prefix, upload_key, CompletionRecord, PartRecord, PartRef, UploadRecord,
};
use crate::store::{now_ms, Store};

/// How long a completed upload answers a retried Complete (the background pass removes its
/// record after that, within a pass).
pub const COMPLETION_KEEP_MS: u64 = 3_600_000;

impl Store {
    pub async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
        let cores = self.object_cores(bucket, key);
        let entry = self
            .backend
            .meta_get(&cores, &upload_key(bucket, key, upload_id))
            .await?
            .ok_or(Error::NoSuchUpload)?;
        UploadRecord::decode(entry.value).map_err(|e| Error::Damaged(e.to_string()))
    }

    /// Every part record of an upload, in part-number order.
    pub async fn parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<(u32, PartRecord)>> {
        let cores = self.object_cores(bucket, key);
        let prefix = part_prefix(upload_id);
        let mut cursor = None;
        let mut out = Vec::new();
        loop {
            let (entries, next) = self
                .backend
                .meta_scan(&cores, &prefix, cursor, 1000)
                .await?;
            for (k, e) in entries {
                let n = k[prefix.len()..]
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::Damaged("malformed part key".into()))?;
                let p = PartRecord::decode(e.value).map_err(|e| Error::Damaged(e.to_string()))?;
                out.push((n, p));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// A completed upload's record, if it is recent enough to answer a retry.
    pub async fn completion(
        &self,
        cores: &Placement,
        key: &bytes::Bytes,
    ) -> Result<Option<CompletionRecord>> {
        let Some(entry) = self.backend.meta_get(cores, key).await? else {
            return Ok(None);
        };
        let done =
            CompletionRecord::decode(entry.value).map_err(|e| Error::Damaged(e.to_string()))?;
        Ok((now_ms().saturating_sub(done.completed_ms) < COMPLETION_KEEP_MS).then_some(done))
    }

    /// Removes an upload's records; retires the chunks of its parts not in `keep`.
    pub async fn finish_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, PartRecord)],
        keep: &[PartRef],
        (policy, tier): (Policy, Tier),
    ) -> Result<()> {
        let cores = self.object_cores(bucket, key);
        let data_cores = self.cores_in(bucket, key, policy, tier);
        let hlc = self.backend.hlc();
        for (n, p) in parts {
            self.backend
                .meta_delete(&cores, &part_key(upload_id, *n), hlc)
                .await?;
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
            .map_err(Error::from)
    }

    /// Records an uploaded part once its data is stored, ordered by that moment (an HLC taken
    /// now, not when the request started): of two uploads of one part number, the one that
    /// completes last is the part, as in S3. The record is swapped in: the winner retires the
    /// part it replaced, a loser (a later upload of the part already committed) its own chunks.
    pub async fn put_part_record(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        (number, record): (u32, &PartRecord),
        (policy, tier): (Policy, Tier),
    ) -> Result<()> {
        let cores = &self.object_cores(bucket, key);
        let k = part_key(upload_id, number);
        let value = record.encode();
        let (swap, _) = self.swap_in(cores, &k, |_| value.clone()).await?;
        let unreferenced = if swap.won {
            swap.previous
                .filter(|p| !p.deleted)
                .and_then(|p| PartRecord::decode(p.value).ok())
                .filter(|old| old.version_id != record.version_id)
        } else {
            Some(record.clone())
        };
        if let Some(old) = unreferenced {
            let old = PartRef {
                version_id: old.version_id,
                size: old.size,
            };
            let data_cores = self.cores_in(bucket, key, policy, tier);
            self.delete_part_chunks(&data_cores, policy, &old).await;
        }
        Ok(())
    }
}
