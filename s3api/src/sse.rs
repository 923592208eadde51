//! Server-side encryption on PutObject, GetObject and HeadObject (issue 17 item 2): SSE-C
//! (customer keys), SSE-S3 (the master key file's active key) and SSE-KMS (a named key of the
//! master key file). The request's headers are checked as AWS checks them, the body sealed in
//! packages (`objects::seal`) as it streams towards the stripes, and opened package by package
//! as a GET streams it back. The data key is kept only wrapped (`objects::keywrap`) under the
//! customer's key, which is never stored, or under a master key (`objects::master_keys`),
//! whose id the head records so that rotation leaves old objects readable. A PUT that asks
//! for nothing gets its bucket's default encryption (`bucket_encryption`).
//!
//! What this module does not do: copies, multipart uploads and POST forms with SSE headers
//! (refused in `refuse`, `post_upload` and `copy_source`; into a bucket with default
//! encryption by `bucket_encryption`), KMS encryption contexts (refused), an external KMS.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use s3s::{s3_error, S3Result};

use crate::bucket_encryption::BucketDefault;
use crate::checksum::{self, Hashers};
use crate::records::{Encryption, EncryptionKind, ObjectHead, PartRef};
use crate::s3::{s3_err, Gateway};
use cluster::ec::Policy;
use objects::keywrap::{UnwrapError, WrappedKey, KEK_BYTES};
use objects::master_keys::MasterKeys;
use objects::seal::{self, DataKey, PACKAGE_PLAIN_BYTES, PACKAGE_STORED_BYTES};
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
    }
}

/// The response headers of an object's server-side encryption by S3 or KMS keys:
/// (x-amz-server-side-encryption, x-amz-server-side-encryption-aws-kms-key-id).
pub fn response_headers(head: &ObjectHead) -> (Option<ServerSideEncryption>, Option<String>) {
    match head.encryption.as_ref().map(|e| &e.kind) {
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
    let not_applicable = || {
        s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        )
    };
    match (head.encryption.as_ref(), customer) {
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

/// A body stream sealed package by package: yields the stored (sealed) bytes, and keeps the
/// plaintext's size, MD5 and checksums for the request's checks. A package is sealed only
/// once a byte after it has arrived (or the body has ended): the last one is sealed as last.
pub struct Sealer<S> {
    inner: S,
    key: DataKey,
    plain: BytesMut,
    index: u64,
    inner_done: bool,
    finished: bool,
    pub plain_bytes: u64,
    md5: Md5,
    hashers: Hashers,
}

impl<S> Sealer<S> {
    pub fn new(inner: S, key: DataKey, algos: &[checksum::Algo]) -> Sealer<S> {
        Sealer {
            inner,
            key,
            plain: BytesMut::new(),
            index: 0,
            inner_done: false,
            finished: false,
            plain_bytes: 0,
            md5: Md5::new(),
            hashers: Hashers::new(algos),
        }
    }

    fn seal_next(&mut self, last: bool) -> Bytes {
        let take = self.plain.len().min(PACKAGE_PLAIN_BYTES as usize);
        assert!(last || take == PACKAGE_PLAIN_BYTES as usize);
        let plain = self.plain.split_to(take);
        let mut out = Vec::with_capacity(take + seal::TAG_BYTES as usize);
        seal::seal_package(&self.key, self.index, last, &plain, &mut out);
        self.index += 1;
        Bytes::from(out)
    }
}

impl<S, E> futures::Stream for Sealer<S>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.plain.len() as u64 > PACKAGE_PLAIN_BYTES {
                return Poll::Ready(Some(Ok(this.seal_next(false))));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if this.inner_done {
                // At most one package left: 1..=64 KiB, or the empty body's empty package.
                this.finished = true;
                return Poll::Ready(Some(Ok(this.seal_next(true))));
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.inner_done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(piece))) => {
                    this.plain_bytes += piece.len() as u64;
                    this.md5.update(&piece);
                    this.hashers.update(&piece);
                    this.plain.extend_from_slice(&piece);
                }
            }
        }
    }
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
        (cores, policy, version_id): (&[usize], Policy, &[u8; 12]),
        body: Option<S>,
        data_key: DataKey,
        checks: crate::s3::BodyChecks<'_>,
    ) -> S3Result<Sealed>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let mut sealer = Sealer::new(body, data_key, checks.algos);
        let size_max = seal::stored_size(crate::limits::OBJECT_BYTES_MAX);
        let mut ignored = Hashers::new(&[]);
        let (stored_bytes, stored_md5) = self
            .store
            .store_body(
                cores,
                policy,
                version_id,
                Some(&mut sealer),
                size_max,
                &mut ignored,
            )
            .await
            .map_err(s3_err)?;
        let plain_bytes = sealer.plain_bytes;
        assert_eq!(seal::stored_size(plain_bytes), stored_bytes);
        let plain_md5: [u8; 16] = sealer.md5.finalize().into();
        let sums = sealer.hashers.finish();
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

/// A GET's body: a plain object's stored bytes, or an encrypted one's opened packages.
pub type Body = Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>>;

/// A stream of stored bytes (whole packages from `package_first` on) opened package by
/// package, cut to `len` plaintext bytes from `skip` bytes into the first package. A package
/// that fails authentication ends the stream with an error: no byte of it is served.
pub fn opener<S>(
    stored: S,
    key: DataKey,
    plain_bytes: u64,
    range: seal::StoredRange,
    len: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    struct State<S> {
        stored: S,
        key: DataKey,
        buf: BytesMut,
        index: u64,
        skip: u64,
        left: u64,
        ended: bool,
    }
    let state = State {
        stored,
        key,
        buf: BytesMut::new(),
        index: range.package_first,
        skip: range.skip_bytes,
        left: len,
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut st| async move {
        use futures::StreamExt as _;
        if st.left == 0 {
            return None;
        }
        // One whole package, or the rest of the body (the last package).
        while (st.buf.len() as u64) < PACKAGE_STORED_BYTES && !st.ended {
            match st.stored.next().await {
                Some(Ok(b)) => st.buf.extend_from_slice(&b),
                Some(Err(e)) => {
                    st.left = 0;
                    return Some((Err(e), st));
                }
                None => st.ended = true,
            }
        }
        let take = st.buf.len().min(PACKAGE_STORED_BYTES as usize);
        let package = st.buf.split_to(take);
        let opened = seal::open_packages(&st.key, plain_bytes, st.index, &package);
        st.index += 1;
        let plain = match opened {
            Ok(p) => p,
            Err(e) => {
                st.left = 0;
                tracing::error!(error = %e, "a sealed package failed to open");
                let e = std::io::Error::other(format!("the object's stored data is damaged: {e}"));
                return Some((Err(e), st));
            }
        };
        let from = usize::try_from(st.skip).expect("within a package");
        st.skip = 0;
        let to = plain
            .len()
            .min(from + usize::try_from(st.left).unwrap_or(usize::MAX));
        if from >= to {
            st.left = 0;
            let e = std::io::Error::other("the object is shorter than its head says");
            return Some((Err(e), st));
        }
        st.left -= (to - from) as u64;
        Some((Ok(Bytes::copy_from_slice(&plain[from..to])), st))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

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

    fn pieces(body: &[u8], piece: usize) -> Vec<Result<Bytes, std::io::Error>> {
        body.chunks(piece.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    /// Sealed as it streams in pieces of any size, the body opens whole to itself, and every
    /// range opens to its bytes; the plaintext's MD5 and size are kept.
    #[tokio::test]
    async fn sealer_and_opener_round_trip() {
        let p = PACKAGE_PLAIN_BYTES as usize;
        for size in [0, 1, p - 1, p, p + 1, 2 * p, 3 * p + 17] {
            let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            for piece in [1000, p, 3 * p] {
                let key = DataKey::random();
                let mut sealer = Sealer::new(
                    futures::stream::iter(pieces(&body, piece)),
                    key.clone(),
                    &[],
                );
                let mut stored = Vec::new();
                while let Some(b) = sealer.next().await {
                    stored.extend_from_slice(&b.unwrap());
                }
                assert_eq!(sealer.plain_bytes, size as u64);
                assert_eq!(seal::open(&key, &stored).unwrap(), body);
                if size == 0 {
                    continue;
                }
                let last = size as u64 - 1;
                for (first, end) in [(0, 0), (last, last), (0, last), (last / 2, last)] {
                    let range = seal::stored_range(size as u64, first, end);
                    let start = range.stored_offset as usize;
                    let fetched = &stored[start..start + range.stored_len as usize];
                    let len = end - first + 1;
                    let stream = opener(
                        futures::stream::iter(pieces(fetched, 5000)),
                        key.clone(),
                        size as u64,
                        range,
                        len,
                    );
                    let got: Vec<u8> = stream
                        .collect::<Vec<_>>()
                        .await
                        .into_iter()
                        .flat_map(|b| b.unwrap().to_vec())
                        .collect();
                    assert_eq!(got, body[first as usize..=end as usize], "{size} {first}");
                }
            }
        }
    }

    /// A flipped stored byte ends the stream with an error before any byte of its package.
    #[tokio::test]
    async fn opener_refuses_a_damaged_package() {
        let p = PACKAGE_PLAIN_BYTES as usize;
        let body = vec![9u8; 2 * p + 5];
        let key = DataKey::random();
        let mut stored = seal::seal(&key, &body);
        stored[p + 100] ^= 1;
        let range = seal::stored_range(body.len() as u64, 0, body.len() as u64 - 1);
        let stream = opener(
            futures::stream::iter(pieces(&stored, 7000)),
            key,
            body.len() as u64,
            range,
            body.len() as u64,
        );
        let items = stream.collect::<Vec<_>>().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().len(), p);
        assert!(items[1].is_err());
    }
}
