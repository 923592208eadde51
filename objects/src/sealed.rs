//! Sealed bodies as streams: a body sealed package by package as it streams towards the
//! stripes (`Sealer`), and stored packages opened package by package as they stream back
//! (`opener`, and `Store::plain_stream` over every part an encrypted object's range touches).
//! The cipher, the package layout and the range arithmetic are `seal`'s; which key a request
//! may use is the S3 layer's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};

use crate::checksum::{Algo, Hashers, Sum};
use crate::records::ObjectHead;
use crate::seal::{self, DataKey, PACKAGE_PLAIN_BYTES, PACKAGE_STORED_BYTES};
use crate::store::Store;
use cluster::ec::Policy;
use cluster::moves::Placement;

/// A stream of plaintext (a GET's body, a copy's source).
pub type Body = Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>>;

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
    pub fn new(inner: S, key: DataKey, algos: &[Algo]) -> Sealer<S> {
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

    /// The plaintext's MD5 and checksums, once the stream has ended.
    pub fn finish(self) -> ([u8; 16], Vec<Sum>) {
        (self.md5.finalize().into(), self.hashers.finish())
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

/// A stream of stored bytes (whole packages from `range.package_first` on) of one sealed body
/// of `plain_bytes`, opened package by package and cut to `len` plaintext bytes from
/// `range.skip_bytes` into the first package. A package that fails authentication ends the
/// stream with an error: no byte of it is served.
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

impl Store {
    /// Bytes [first, first + len) of a version as S3 shows them: a plain body's stored bytes,
    /// or an encrypted one's plaintext, opened with `data_key` (the S3 layer unwrapped it).
    /// Only the packages holding the range are read, part after part, each part opened under
    /// its own nonce base.
    pub fn plain_stream(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
        data_key: Option<&DataKey>,
        first: u64,
        len: u64,
    ) -> Body {
        let (Some(e), Some(data_key)) = (head.encryption.as_ref(), data_key) else {
            assert!(
                head.encryption.is_none(),
                "an encrypted body is read with its key"
            );
            return Box::pin(self.object_stream(bucket, key, head, first, len));
        };
        if len == 0 {
            return Box::pin(futures::stream::empty());
        }
        let pieces = head.sealed_pieces(first, len).expect("an encrypted head");
        let part_keys: Vec<_> = pieces
            .iter()
            .map(|p| e.part_key(data_key, p.part))
            .collect();
        // One head shared by every part's stream (an upload may have 10,000 parts), and each
        // stream made when the one before has ended: one part read at a time.
        let head = Arc::new(head);
        let (store, bucket, key) = (self.clone(), bucket.to_owned(), key.to_owned());
        let streams = pieces
            .into_iter()
            .zip(part_keys)
            .map(move |(piece, part_key)| {
                let stored = store.object_stream(
                    &bucket,
                    &key,
                    head.clone(),
                    piece.stored_offset,
                    piece.range.stored_len,
                );
                opener(stored, part_key, piece.plain_bytes, piece.range, piece.len)
            });
        Box::pin(futures::StreamExt::flatten(futures::stream::iter(streams)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

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
                assert_eq!(sealer.finish().0, <[u8; 16]>::from(Md5::digest(&body)));
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

    /// A multipart body sealed part by part (each under its own nonce base) opens to its
    /// plaintext over every range, whether it lies in one part, spans a part boundary or
    /// covers them all: `ObjectHead::sealed_pieces` picks each part's packages, and each
    /// piece opens under its part's key. A piece opened under another part's key fails.
    #[tokio::test]
    async fn ranges_over_sealed_parts_open_to_their_plaintext() {
        use crate::keywrap::WrappedKey;
        use crate::records::{Encryption, EncryptionKind, PartRef};
        let p = PACKAGE_PLAIN_BYTES;
        let plain_parts = [p + 5, 1, 2 * p, 7];
        let upload_key = DataKey::random();
        let mut head = crate::test_support::head_of_parts(&[]);
        let (mut stored, mut plain, mut nonces, mut parts) = (vec![], vec![], vec![], vec![]);
        for (i, size) in plain_parts.iter().enumerate() {
            let body: Vec<u8> = (0..*size).map(|j| (j as usize * 13 + i) as u8).collect();
            let mut key = DataKey::random();
            key.key = upload_key.key;
            let sealed = seal::seal(&key, &body);
            parts.push(PartRef {
                version_id: [i as u8; 12],
                size: sealed.len() as u64,
            });
            nonces.push(key.nonce_base);
            stored.extend_from_slice(&sealed);
            plain.extend_from_slice(&body);
        }
        head.size = stored.len() as u64;
        head.parts = parts;
        let e = Encryption {
            kind: EncryptionKind::Customer,
            plain_bytes: plain.len() as u64,
            wrapped: WrappedKey::wrap(&[1; 32], &upload_key),
            part_nonces: nonces,
        };
        head.encryption = Some(e.clone());
        let total = plain.len() as u64;
        let edges = [
            0,
            1,
            p - 1,
            p,
            p + 4,
            p + 5,
            p + 6,
            3 * p + 5,
            3 * p + 6,
            total - 1,
        ];
        for &first in &edges {
            for &last in &edges {
                if last < first {
                    continue;
                }
                let len = last - first + 1;
                let mut got = Vec::new();
                for piece in head.sealed_pieces(first, len).unwrap() {
                    let at = piece.stored_offset as usize;
                    let fetched = &stored[at..at + piece.range.stored_len as usize];
                    let stream = opener(
                        futures::stream::iter(pieces(fetched, 4000)),
                        e.part_key(&upload_key, piece.part),
                        piece.plain_bytes,
                        piece.range,
                        piece.len,
                    );
                    for b in stream.collect::<Vec<_>>().await {
                        got.extend_from_slice(&b.unwrap());
                    }
                }
                assert_eq!(
                    got,
                    plain[first as usize..=last as usize],
                    "{first}..={last}"
                );
            }
        }
        // Part 2's packages under part 1's key: refused.
        let piece = head.sealed_pieces(p + 5, 1).unwrap()[0];
        assert_eq!(piece.part, 1);
        let at = piece.stored_offset as usize;
        let fetched = &stored[at..at + piece.range.stored_len as usize];
        let wrong = opener(
            futures::stream::iter(pieces(fetched, 4000)),
            e.part_key(&upload_key, 0),
            piece.plain_bytes,
            piece.range,
            piece.len,
        );
        assert!(wrong.collect::<Vec<_>>().await[0].is_err());
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

/// What `Store::store_sealed` stored: the plaintext's size, MD5 and checksums, and the sealed
/// bytes' size and MD5.
#[derive(Debug)]
pub struct SealedBody {
    pub plain_bytes: u64,
    pub plain_md5: [u8; 16],
    pub sums: Vec<Sum>,
    pub stored_bytes: u64,
    pub stored_md5: [u8; 16],
}

impl Store {
    /// Seals `body` under `key` (computing `algos`' checksums of the plaintext) and stores it
    /// as new chunks under `version_id` on `cores` by `policy`, at most `plain_max` bytes of
    /// plaintext: PUT and UploadPart with SSE, and encrypted copies.
    pub async fn store_sealed<S, E>(
        &self,
        (cores, policy, version_id): (&Placement, Policy, &[u8; 12]),
        body: S,
        key: DataKey,
        (plain_max, algos): (u64, &[Algo]),
    ) -> crate::error::Result<SealedBody>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut sealer = Sealer::new(body, key, algos);
        let mut none = Hashers::new(&[]);
        let (stored_bytes, stored_md5) = self
            .store_body(
                cores,
                policy,
                version_id,
                Some(&mut sealer),
                seal::stored_size(plain_max),
                &mut none,
            )
            .await?;
        let plain_bytes = sealer.plain_bytes;
        assert_eq!(seal::stored_size(plain_bytes), stored_bytes);
        let (plain_md5, sums) = sealer.finish();
        Ok(SealedBody {
            plain_bytes,
            plain_md5,
            sums,
            stored_bytes,
            stored_md5,
        })
    }
}
