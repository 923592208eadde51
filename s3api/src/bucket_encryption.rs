//! Bucket default encryption (Put/Get/DeleteBucketEncryption, issue 17 item 2): one rule, its
//! algorithm SSE-S3 (`AES256`) or SSE-KMS (`aws:kms`, against a named key of the master key
//! file), kept as the bucket's `encryption` configuration record and applied by `sse` to
//! every PutObject, CopyObject and CreateMultipartUpload that asks for no encryption itself.
//!
//! Refused, never ignored: `aws:kms:dsse` and more than one rule (NotImplemented, MalformedXML
//! as AWS), `BucketKeyEnabled: true` (NotImplemented: an S3 Bucket Key saves KMS calls, and
//! percore makes none, so the flag would promise a behaviour that does not exist; `false` is
//! accepted and reported).
//!
//! Record (format 1): format u8 ‖ algorithm u8 (1 AES256, 2 aws:kms) ‖ key id (u16 length ‖
//! bytes; empty: the active master key).
//!
//! Every PutObject without SSE headers needs its bucket's default, so a gateway keeps what it
//! last read per bucket incarnation (scope) for [`CACHE_TTL`] (`ttl_cache`, as CORS rules
//! and policies are kept): a change made through this gateway applies at once, one made
//! through another gateway of a cluster within [`CACHE_TTL`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use s3s::dto::{
    DeleteBucketEncryptionInput, DeleteBucketEncryptionOutput, GetBucketEncryptionInput,
    GetBucketEncryptionOutput, PutBucketEncryptionInput, PutBucketEncryptionOutput,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::s3::{user_of, Gateway};
use crate::ttl_cache::TtlCache;

/// How long a gateway keeps a bucket's default it read.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Bound on the buckets whose default a gateway keeps.
pub const CACHE_ENTRIES_MAX: usize = 4096;
/// Bound on the bytes those entries hold (scope, key id and overhead, about).
pub const CACHE_BYTES_MAX: usize = 1 << 20;

/// Per bucket scope, its default as last read (`None`: none).
pub struct Cache(TtlCache<Option<BucketDefault>>);

impl Default for Cache {
    fn default() -> Cache {
        Cache(TtlCache::new(CACHE_TTL, CACHE_ENTRIES_MAX, CACHE_BYTES_MAX))
    }
}

/// The configuration record's name (`bucket_config`).
pub const CONFIG_NAME: &str = "encryption";
const FORMAT: u8 = 1;
const ALGO_AES256: u8 = 1;
const ALGO_KMS: u8 = 2;

/// A bucket's default encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketDefault {
    /// SSE-S3 under the active master key.
    Aes256,
    /// SSE-KMS under the named key (`None`: the active master key).
    Kms { key_id: Option<String> },
}

impl BucketDefault {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(FORMAT);
        let id = match self {
            BucketDefault::Aes256 => {
                b.put_u8(ALGO_AES256);
                ""
            }
            BucketDefault::Kms { key_id } => {
                b.put_u8(ALGO_KMS);
                key_id.as_deref().unwrap_or("")
            }
        };
        assert!(id.len() <= objects::master_keys::KEY_ID_BYTES_MAX);
        b.put_u16_le(id.len() as u16);
        b.put_slice(id.as_bytes());
        b.freeze()
    }

    /// The record as stored; anything else is damage.
    pub fn decode(mut b: Bytes) -> Option<BucketDefault> {
        if b.remaining() < 4 || b.get_u8() != FORMAT {
            return None;
        }
        let algo = b.get_u8();
        let n = usize::from(b.get_u16_le());
        if b.remaining() != n {
            return None;
        }
        let id = String::from_utf8(b.to_vec()).ok()?;
        match (algo, id.as_str()) {
            (ALGO_AES256, "") => Some(BucketDefault::Aes256),
            (ALGO_KMS, "") => Some(BucketDefault::Kms { key_id: None }),
            (ALGO_KMS, _) if objects::master_keys::valid_id(&id) => {
                Some(BucketDefault::Kms { key_id: Some(id) })
            }
            _ => None,
        }
    }
}

fn not_found() -> S3Error {
    let mut e = s3_error!(
        ServerSideEncryptionConfigurationNotFoundError,
        "The server side encryption configuration was not found"
    );
    e.set_status_code(hyper::StatusCode::NOT_FOUND);
    e
}

/// The one rule of a PutBucketEncryption body, checked.
fn parse(config: ServerSideEncryptionConfiguration, gateway: &Gateway) -> S3Result<BucketDefault> {
    let [rule] = <[ServerSideEncryptionRule; 1]>::try_from(config.rules).map_err(|_| {
        s3_error!(
            MalformedXML,
            "a server-side encryption configuration holds exactly one rule"
        )
    })?;
    if rule.bucket_key_enabled == Some(true) {
        return Err(s3_error!(
            NotImplemented,
            "BucketKeyEnabled: percore has no S3 Bucket Keys (each object's data key is \
             wrapped under a master key directly); leave it out or set it false"
        ));
    }
    let by_default = rule
        .apply_server_side_encryption_by_default
        .ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "ApplyServerSideEncryptionByDefault is missing"
            )
        })?;
    let key_id = by_default.kms_master_key_id.as_deref();
    match by_default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 => {
            if key_id.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms"
                ));
            }
            Ok(BucketDefault::Aes256)
        }
        ServerSideEncryption::AWS_KMS => {
            let key_id = key_id
                .map(|id| crate::sse::kms_key(gateway, id).map(|(id, _)| id))
                .transpose()?;
            Ok(BucketDefault::Kms { key_id })
        }
        ServerSideEncryption::AWS_KMS_DSSE => Err(s3_error!(
            NotImplemented,
            "aws:kms:dsse (dual-layer encryption) is not supported"
        )),
        other => Err(s3_error!(
            InvalidArgument,
            "SSEAlgorithm {other} is not AES256 or aws:kms"
        )),
    }
}

impl Gateway {
    /// The default encryption of the bucket whose scope is `scope`, if it has one (cached:
    /// module docs).
    pub(crate) async fn bucket_encryption(&self, scope: &str) -> S3Result<Option<BucketDefault>> {
        if let Some(known) = self.encryption_defaults.0.get(scope) {
            return Ok(known);
        }
        let read = match self.config_read(scope, CONFIG_NAME).await? {
            None => None,
            Some(raw) => {
                let decoded = BucketDefault::decode(raw);
                if decoded.is_none() {
                    tracing::error!(scope, "a bucket's encryption record is damaged");
                    return Err(s3_error!(InternalError));
                }
                decoded
            }
        };
        let size = scope.len() + 64 + objects::master_keys::KEY_ID_BYTES_MAX;
        self.encryption_defaults.0.put(scope, read.clone(), size);
        Ok(read)
    }

    pub(crate) async fn bucket_encryption_put(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        let default = parse(input.server_side_encryption_configuration, self)?;
        if self.master_keys.is_none() {
            return Err(crate::sse::no_key_file());
        }
        self.encryption_defaults.0.forget(&scope);
        let stored = self
            .config_put(&scope, CONFIG_NAME, &default.encode())
            .await;
        self.encryption_defaults.0.forget(&scope);
        stored?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(crate) async fn bucket_encryption_get(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let default = self
            .bucket_encryption(&scope)
            .await?
            .ok_or_else(not_found)?;
        let (algorithm, key_id) = match default {
            BucketDefault::Aes256 => (ServerSideEncryption::AES256, None),
            BucketDefault::Kms { key_id } => (ServerSideEncryption::AWS_KMS, key_id),
        };
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: key_id,
                sse_algorithm: ServerSideEncryption::from_static(algorithm),
            }),
            bucket_key_enabled: Some(false),
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![rule],
            }),
        }))
    }

    pub(crate) async fn bucket_encryption_delete(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let deleted = self.config_delete(&scope, CONFIG_NAME).await;
        self.encryption_defaults.0.forget(&scope);
        deleted?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record, pinned byte for byte; every cut and bad byte refused.
    #[test]
    fn records_are_golden_and_damage_is_refused() {
        let cases = [
            (BucketDefault::Aes256, "0101".to_owned() + "0000"),
            (
                BucketDefault::Kms { key_id: None },
                "0102".to_owned() + "0000",
            ),
            (
                BucketDefault::Kms {
                    key_id: Some("k-1".into()),
                },
                "0102".to_owned() + "0300" + "6b2d31",
            ),
        ];
        for (d, hex) in cases {
            let enc = d.encode();
            assert_eq!(hex::encode(&enc), hex);
            assert_eq!(BucketDefault::decode(enc.clone()), Some(d));
            for cut in 0..enc.len() {
                assert_eq!(BucketDefault::decode(enc.slice(..cut)), None, "cut {cut}");
            }
            let mut longer = enc.to_vec();
            longer.push(b'x');
            assert_eq!(BucketDefault::decode(Bytes::from(longer)), None);
        }
        for bad in [
            "0201".to_owned() + "0000",
            "0103".into(),
            "0101030061 6263".replace(' ', ""),
        ] {
            assert_eq!(
                BucketDefault::decode(Bytes::from(hex::decode(&bad).unwrap())),
                None,
                "{bad}"
            );
        }
        // An AES256 record with a key id, an id no key may have.
        assert_eq!(
            BucketDefault::decode(Bytes::from(hex::decode("010101006b").unwrap())),
            None
        );
        assert_eq!(
            BucketDefault::decode(Bytes::from(hex::decode("010201002f").unwrap())),
            None
        );
    }
}
