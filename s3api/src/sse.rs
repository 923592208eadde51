//! Server-side encryption on PutObject, GetObject and HeadObject (issue 17 item 2): SSE-C
//! (customer keys), SSE-S3 (the master key file's active key) and SSE-KMS (a named key of the
//! master key file). The request's headers are checked as AWS checks them, the body sealed in
//! packages (`objects::seal`) as it streams towards the stripes, and opened package by package
//! as a GET streams it back. The data key is kept only wrapped (`objects::keywrap`) under the
//! customer's key, which is never stored, or under a master key (`objects::master_keys`),
//! whose id the head records so that rotation leaves old objects readable. A PUT that asks
//! for nothing gets its bucket's default encryption (`bucket_encryption`).
//!
//! Copies and multipart uploads: a copy's source is opened with its own key (SSE-C: the
//! x-amz-copy-source-server-side-encryption-customer-* headers) and the copy sealed under the
//! key the request asks for, else its bucket's default (`copy_sealing`); a multipart upload
//! gets one data key when it is created, and each part is sealed under it with a nonce base of
//! its own (`objects::multipart`).
//!
//! POST forms: their SSE fields become a PutObject's headers (`post_upload`).
//!
//! What this module does not do: KMS encryption contexts (refused), an external KMS.

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest, Md5};
use s3s::{s3_error, S3Result};

use crate::bucket_encryption::BucketDefault;
use crate::checksum;
use crate::records::{Encryption, EncryptionKind, ObjectHead, PartRef};
use crate::s3::{s3_err, Gateway};
use cluster::ec::Policy;
use cluster::moves::Placement;
use objects::keywrap::{UnwrapError, WrappedKey, KEK_BYTES};
use objects::master_keys::MasterKeys;
use objects::seal::DataKey;
use s3s::dto::ServerSideEncryption;

/// The one algorithm SSE-C names.
pub const ALGORITHM: &str = "AES256";

/// A customer key from a request's headers, checked against its MD5.
pub struct CustomerKey {
    key: [u8; KEK_BYTES],
    /// The key's MD5 as the client sent it (base64), echoed in responses.
    pub md5_base64: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key bytes never reach a log.
        f.write_str("CustomerKey(..)")
    }
}

/// The SSE-C key a request carries, if any, with AWS's errors for a bad one: every header
/// needed, AES256 the only algorithm, a 256-bit key in base64, its MD5 matching.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    if algorithm.is_none() && key.is_none() && key_md5.is_none() {
        return Ok(None);
    }
    if algorithm != Some(ALGORITHM) {
        return Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide \
             a valid encryption algorithm."
        ));
    }
    let Some(key) = key else {
        return Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide \
             an appropriate secret key."
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; KEK_BYTES] = b64
        .decode(key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The secret key was invalid for the specified algorithm."
            )
        })?;
    let Some(key_md5) = key_md5 else {
        return Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide \
             the client calculated MD5 of the secret key."
        ));
    };
    if b64.decode(key_md5).ok().as_deref() != Some(Md5::digest(key).as_slice()) {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(CustomerKey {
        key,
        md5_base64: key_md5.to_owned(),
    }))
}

/// The key a write seals its body under.
#[derive(Debug)]
pub enum WriteKey {
    Customer(CustomerKey),
    /// SSE-S3: the master key file's active key.
    Master(MasterKey),
    /// SSE-KMS: the master key file's key the request (or the bucket's default) named.
    Kms(MasterKey),
}

/// A key of the master key file, with its id.
pub struct MasterKey {
    pub id: String,
    key: [u8; KEK_BYTES],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl WriteKey {
    /// The customer key, for SSE-C's response headers.
    pub fn customer(&self) -> Option<&CustomerKey> {
        match self {
            WriteKey::Customer(c) => Some(c),
            WriteKey::Master(_) | WriteKey::Kms(_) => None,
        }
    }
}

/// What a PutObject asks for, as headers (s3s's parsed input).
pub struct Asked<'a> {
    pub algorithm: Option<&'a ServerSideEncryption>,
    pub kms_key_id: Option<&'a str>,
    pub customer: Option<CustomerKey>,
}

/// SSE-S3 or SSE-KMS asked of a gateway started without a master key file.
pub fn no_key_file() -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "server-side encryption with S3 or KMS keys needs a master key file, and this gateway \
         has none (see README, Encryption)"
    )
}

fn master_keys(gateway: &Gateway) -> S3Result<&MasterKeys> {
    gateway.master_keys.as_deref().ok_or_else(no_key_file)
}

/// The key id a KMS key id names: itself, or an ARN's part after `:key/` (an ARN of
/// anything else names no key: "").
fn kms_key_id(named: &str) -> &str {
    match named.strip_prefix("arn:") {
        Some(_) => named.rsplit_once(":key/").map_or("", |(_, id)| id),
        None => named,
    }
}

/// The master key file's key a KMS key id names: its bare id, or an ARN ending in
/// `:key/ID`. An unknown key answers 400 KMS.NotFoundException, as AWS does.
pub fn kms_key(gateway: &Gateway, named: &str) -> S3Result<(String, [u8; KEK_BYTES])> {
    let keys = master_keys(gateway)?;
    let id = kms_key_id(named);
    if let Some(key) = keys.get(id) {
        return Ok((id.to_owned(), *key));
    }
    let mut e = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("KMS.NotFoundException".into()),
        format!("Invalid keyId '{named}'"),
    );
    e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    Err(e)
}

fn active_key(gateway: &Gateway) -> S3Result<MasterKey> {
    let (id, key) = master_keys(gateway)?.active();
    Ok(MasterKey {
        id: id.to_owned(),
        key: *key,
    })
}

fn named_key(gateway: &Gateway, named: Option<&str>) -> S3Result<MasterKey> {
    match named {
        None => active_key(gateway),
        Some(named) => {
            let (id, key) = kms_key(gateway, named)?;
            Ok(MasterKey { id, key })
        }
    }
}

impl Gateway {
    /// The same service with the master key file's keys (SSE-S3, SSE-KMS); without them those
    /// answer NotImplemented and objects stored with them answer 500.
    pub fn with_master_keys(mut self, keys: std::sync::Arc<MasterKeys>) -> Gateway {
        self.master_keys = Some(keys);
        self
    }

    /// The key a PutObject seals its body under: the one its headers ask for, else its
    /// bucket's default (`scope`'s), else none. Checked as AWS checks them: SSE-C with
    /// another algorithm, a KMS key id without aws:kms, an unknown algorithm: 400
    /// InvalidArgument; an unknown KMS key: 400 KMS.NotFoundException.
    pub(crate) async fn write_key(
        &self,
        scope: &str,
        asked: Asked<'_>,
    ) -> S3Result<Option<WriteKey>> {
        let algorithm = asked.algorithm.map(ServerSideEncryption::as_str);
        if let Some(customer) = asked.customer {
            if algorithm.is_some() || asked.kms_key_id.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with Customer provided key is incompatible with the \
                     encryption method specified"
                ));
            }
            return Ok(Some(WriteKey::Customer(customer)));
        }
        if asked.kms_key_id.is_some() && algorithm != Some(ServerSideEncryption::AWS_KMS) {
            return Err(s3_error!(
                InvalidArgument,
                "Server Side Encryption with AWS KMS managed key requires HTTP header \
                 x-amz-server-side-encryption : aws:kms"
            ));
        }
        match algorithm {
            Some(ServerSideEncryption::AES256) => Ok(Some(WriteKey::Master(active_key(self)?))),
            Some(ServerSideEncryption::AWS_KMS) => {
                Ok(Some(WriteKey::Kms(named_key(self, asked.kms_key_id)?)))
            }
            Some(ServerSideEncryption::AWS_KMS_DSSE) => Err(s3_error!(
                NotImplemented,
                "aws:kms:dsse (dual-layer encryption) is not supported"
            )),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "x-amz-server-side-encryption: {other} is not AES256 or aws:kms"
            )),
            None => match self.bucket_encryption(scope).await? {
                None => Ok(None),
                Some(BucketDefault::Aes256) => Ok(Some(WriteKey::Master(active_key(self)?))),
                Some(BucketDefault::Kms { key_id }) => {
                    Ok(Some(WriteKey::Kms(named_key(self, key_id.as_deref())?)))
                }
            },
        }
    }
}

/// The encryption a new head records for a body sealed under `data_key`.
pub fn encryption(write_key: &WriteKey, data_key: &DataKey, plain_bytes: u64) -> Encryption {
    let (kind, kek) = match write_key {
        WriteKey::Customer(c) => (EncryptionKind::Customer, &c.key),
        WriteKey::Master(m) => (
            EncryptionKind::Master {
                key_id: m.id.clone(),
            },
            &m.key,
        ),
        WriteKey::Kms(m) => (
            EncryptionKind::Kms {
                key_id: m.id.clone(),
            },
            &m.key,
        ),
    };
    Encryption {
        kind,
        plain_bytes,
        wrapped: WrappedKey::wrap(kek, data_key),
        part_nonces: Vec::new(),
    }
}

/// What a new upload or copy is sealed under: `write_key`'s encryption of a fresh data key
/// (`plain_bytes` 0: the writer fills it in), and that key.
pub fn fresh_sealing(write_key: &WriteKey) -> objects::copy::Sealing {
    let data_key = DataKey::random();
    objects::copy::Sealing {
        encryption: encryption(write_key, &data_key, 0),
        data_key,
    }
}

/// The response headers of an object's server-side encryption by S3 or KMS keys:
/// (x-amz-server-side-encryption, x-amz-server-side-encryption-aws-kms-key-id).
pub fn response_headers(head: &ObjectHead) -> (Option<ServerSideEncryption>, Option<String>) {
    kind_headers(head.encryption.as_ref())
}

/// `response_headers` of an encryption (an object's, an upload's).
pub fn kind_headers(e: Option<&Encryption>) -> (Option<ServerSideEncryption>, Option<String>) {
    match e.map(|e| &e.kind) {
        Some(EncryptionKind::Master { .. }) => (
            Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AES256,
            )),
            None,
        ),
        Some(EncryptionKind::Kms { key_id }) => (
            Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AWS_KMS,
            )),
            Some(key_id.clone()),
        ),
        Some(EncryptionKind::Customer) | None => (None, None),
    }
}

/// The data key a read of `head` opens the body with: `None` for a plain object. SSE-C: a
/// key for a plain object or for one not stored with SSE-C, no key for an SSE-C one: 400
/// InvalidRequest; the wrong key: 403 AccessDenied (as AWS). SSE-S3 and SSE-KMS: a master key
/// missing from the file, or one that does not open the object's data key (the file was
/// changed), is the server's fault: 500, logged at ERROR, and no byte is served.
pub fn read_key(
    gateway: &Gateway,
    head: &ObjectHead,
    customer: Option<&CustomerKey>,
) -> S3Result<Option<DataKey>> {
    data_key(gateway, head.encryption.as_ref(), customer)
}

/// `read_key` of an encryption: an object's, or an upload's (its parts are sealed under it,
/// and UploadPart and Complete of an SSE-C upload need its key).
pub fn data_key(
    gateway: &Gateway,
    encryption: Option<&Encryption>,
    customer: Option<&CustomerKey>,
) -> S3Result<Option<DataKey>> {
    let not_applicable = || {
        s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        )
    };
    match (encryption, customer) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(not_applicable()),
        (Some(e), customer) => match &e.kind {
            EncryptionKind::Customer => customer_read_key(e, customer).map(Some),
            EncryptionKind::Master { key_id } | EncryptionKind::Kms { key_id } => {
                if customer.is_some() {
                    return Err(not_applicable());
                }
                master_read_key(gateway, e, key_id).map(Some)
            }
        },
    }
}

fn customer_read_key(e: &Encryption, customer: Option<&CustomerKey>) -> S3Result<DataKey> {
    let Some(c) = customer else {
        return Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct \
             parameters must be provided to retrieve the object."
        ));
    };
    match e.wrapped.unwrap(&c.key) {
        Ok(key) => Ok(key),
        Err(UnwrapError::WrongKey) => Err(s3_error!(
            AccessDenied,
            "The provided key does not match the key the object was encrypted with."
        )),
        Err(UnwrapError::Damaged) => {
            tracing::error!("an object's wrapped data key failed authentication");
            Err(s3_error!(
                InternalError,
                "the object's key record is damaged"
            ))
        }
    }
}

fn master_read_key(gateway: &Gateway, e: &Encryption, key_id: &str) -> S3Result<DataKey> {
    let Some(keys) = gateway.master_keys.as_deref() else {
        tracing::error!(
            key_id,
            "an object is encrypted under a master key and this gateway has no master key file"
        );
        return Err(s3_error!(
            InternalError,
            "the master key this object was encrypted under is not available"
        ));
    };
    let Some(kek) = keys.get(key_id) else {
        tracing::error!(
            key_id,
            "an object's master key is missing from the master key file"
        );
        return Err(s3_error!(
            InternalError,
            "the master key this object was encrypted under is not available"
        ));
    };
    e.wrapped.unwrap(kek).map_err(|err| {
        tracing::error!(key_id, error = %err, "an object's data key does not open under its master key");
        s3_error!(
            InternalError,
            "the object's data key does not open under its master key"
        )
    })
}

/// What a sealed store stored: the plaintext's size, MD5 and checksums, and the MD5 of the
/// stored bytes (the object's ETag: the plaintext's MD5 would let anyone who may list the
/// bucket confirm a guess of the content).
pub struct Sealed {
    pub plain_bytes: u64,
    pub stored_bytes: u64,
    pub stored_md5: [u8; 16],
    pub sums: Vec<checksum::Sum>,
}

impl crate::s3::Gateway {
    /// `store_checked_body` for a body sealed under `data_key`: the request's Content-Length,
    /// Content-MD5 and checksums are checked against the plaintext.
    pub(crate) async fn store_sealed_body<S, E>(
        &self,
        (cores, policy, version_id): (&Placement, Policy, &[u8; 12]),
        body: Option<S>,
        data_key: DataKey,
        checks: crate::s3::BodyChecks<'_>,
    ) -> S3Result<Sealed>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let limits = (crate::limits::OBJECT_BYTES_MAX, checks.algos);
        let objects::sealed::SealedBody {
            plain_bytes,
            plain_md5,
            sums,
            stored_bytes,
            stored_md5,
        } = self
            .store
            .store_sealed((cores, policy, version_id), body, data_key, limits)
            .await
            .map_err(s3_err)?;
        let trailers = checks.trailers.and_then(|t| t.take());
        let verdict = crate::s3::check_body(
            plain_bytes,
            &plain_md5,
            checks.content_length,
            checks.content_md5,
        )
        .and_then(|()| checksum::verify(&sums, checks.headers, trailers.as_ref()));
        if let Err(e) = verdict {
            let part = PartRef {
                version_id: *version_id,
                size: stored_bytes,
            };
            self.store.delete_part_chunks(cores, policy, &part).await;
            return Err(e);
        }
        Ok(Sealed {
            plain_bytes,
            stored_bytes,
            stored_md5,
            sums,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_b64(key: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(Md5::digest(key))
    }

    #[test]
    fn customer_key_headers_are_checked_as_aws_does() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = [5u8; 32];
        let (k, m) = (b64.encode(key), md5_b64(&key));
        assert!(customer_key(None, None, None).unwrap().is_none());
        let got = customer_key(Some("AES256"), Some(&k), Some(&m))
            .unwrap()
            .unwrap();
        assert_eq!((got.key, got.md5_base64.as_str()), (key, m.as_str()));
        let short = b64.encode([5u8; 31]);
        let other_md5 = md5_b64(&[6u8; 32]);
        for (a, k, m) in [
            (None, Some(k.as_str()), Some(m.as_str())),
            (Some("aws:kms"), Some(&k), Some(&m)),
            (Some("AES256"), None, Some(&m)),
            (Some("AES256"), Some(short.as_str()), Some(&m)),
            (Some("AES256"), Some("not base64!"), Some(&m)),
            (Some("AES256"), Some(&k), None),
            (Some("AES256"), Some(&k), Some(other_md5.as_str())),
            (Some("AES256"), Some(&k), Some("xx")),
        ] {
            let e = customer_key(a, k, m).unwrap_err();
            assert_eq!(
                *e.code(),
                s3s::S3ErrorCode::InvalidArgument,
                "{a:?} {k:?} {m:?}"
            );
        }
    }

    #[test]
    fn kms_key_ids_are_bare_or_key_arns() {
        for (named, id) in [
            ("backups", "backups"),
            ("arn:aws:kms:us-east-1:111122223333:key/backups", "backups"),
            ("arn:aws:kms:us-east-1:111122223333:alias/backups", ""),
            ("arn:aws:s3:::bucket", ""),
            ("alias/backups", "alias/backups"),
        ] {
            assert_eq!(kms_key_id(named), id, "{named}");
        }
    }
}
