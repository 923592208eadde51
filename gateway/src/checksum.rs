//! x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}: which ones a request asks for, computing
//! them over the body as it streams, and checking them against the values sent in headers or
//! in aws-chunked trailers (s3s parses the trailers but does not verify them: we must).
//!
//! Values are base64 of the big-endian checksum (4 bytes for the CRC-32s, 8 for CRC-64/NVME, the
//! digest for SHA), as S3 encodes them.

use base64::Engine as _;
use http::HeaderMap;
use s3s::{s3_error, S3Result};
use sha1::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

const ALL: [Algo; 5] = [
    Algo::Crc32,
    Algo::Crc32c,
    Algo::Crc64Nvme,
    Algo::Sha1,
    Algo::Sha256,
];

impl Algo {
    pub fn header(self) -> &'static str {
        match self {
            Algo::Crc32 => "x-amz-checksum-crc32",
            Algo::Crc32c => "x-amz-checksum-crc32c",
            Algo::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algo::Sha1 => "x-amz-checksum-sha1",
            Algo::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn from_name(name: &str) -> Option<Algo> {
        let name = name.trim().to_ascii_lowercase();
        let name = name.strip_prefix("x-amz-checksum-").unwrap_or(&name);
        ALL.into_iter()
            .find(|a| a.header().ends_with(&format!("-{name}")))
    }
}

enum State {
    Crc32(crc32fast::Hasher),
    Fast(crc_fast::Digest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// The checksums being computed over one body.
pub struct Hashers {
    states: Vec<(Algo, State)>,
}

impl Hashers {
    pub fn new(algos: &[Algo]) -> Hashers {
        let states = algos
            .iter()
            .map(|a| {
                let s = match a {
                    Algo::Crc32 => State::Crc32(crc32fast::Hasher::new()),
                    Algo::Crc32c => {
                        State::Fast(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi), 4)
                    }
                    Algo::Crc64Nvme => {
                        State::Fast(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme), 8)
                    }
                    Algo::Sha1 => State::Sha1(sha1::Sha1::new()),
                    Algo::Sha256 => State::Sha256(sha2::Sha256::new()),
                };
                (*a, s)
            })
            .collect();
        Hashers { states }
    }

    pub fn update(&mut self, data: &[u8]) {
        for (_, s) in &mut self.states {
            match s {
                State::Crc32(h) => h.update(data),
                State::Fast(d, _) => d.update(data),
                State::Sha1(h) => h.update(data),
                State::Sha256(h) => h.update(data),
            }
        }
    }

    /// Each checksum, base64-encoded as S3 sends it.
    pub fn finish(self) -> Vec<(Algo, String)> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        self.states
            .into_iter()
            .map(|(a, s)| {
                let v = match s {
                    State::Crc32(h) => b64(&h.finalize().to_be_bytes()),
                    State::Fast(d, len) => b64(&d.finalize().to_be_bytes()[8 - len..]),
                    State::Sha1(h) => b64(&h.finalize()),
                    State::Sha256(h) => b64(&h.finalize()),
                };
                (a, v)
            })
            .collect()
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The checksums a request asks the server to verify: values in headers, the algorithm of
/// `x-amz-sdk-checksum-algorithm`, and those announced by `x-amz-trailer`.
pub fn requested(headers: &HeaderMap) -> S3Result<Vec<Algo>> {
    let mut algos: Vec<Algo> = ALL
        .into_iter()
        .filter(|a| headers.contains_key(a.header()))
        .collect();
    let named = [
        header_str(headers, "x-amz-sdk-checksum-algorithm"),
        header_str(headers, "x-amz-trailer"),
    ];
    for name in named.into_iter().flatten() {
        for part in name.split(',') {
            let algo = Algo::from_name(part)
                .ok_or_else(|| s3_error!(InvalidArgument, "unknown checksum algorithm {part:?}"))?;
            if !algos.contains(&algo) {
                algos.push(algo);
            }
        }
    }
    Ok(algos)
}

/// Compares computed checksums with the values the client sent, in headers or trailers.
/// A checksum announced but never sent is an error, as is any mismatch.
pub fn verify(
    computed: &[(Algo, String)],
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
) -> S3Result<()> {
    for (algo, value) in computed {
        let sent = header_str(headers, algo.header())
            .or_else(|| trailers.and_then(|t| header_str(t, algo.header())));
        match sent {
            Some(s) if s.trim() == value => {}
            Some(_) => {
                return Err(s3_error!(
                    BadDigest,
                    "the {} you specified did not match the calculated checksum",
                    algo.header()
                ))
            }
            // Only the algorithm was named (x-amz-sdk-checksum-algorithm without a value):
            // nothing to compare, the value is returned to the client.
            None if header_str(headers, "x-amz-trailer").is_none() => {}
            None => {
                return Err(s3_error!(
                    InvalidRequest,
                    "the announced trailer {} was not sent",
                    algo.header()
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // "hello world" as computed by the AWS SDKs.
        let mut h = Hashers::new(&ALL);
        h.update(b"hello ");
        h.update(b"world");
        let got = h.finish();
        let want = [
            (Algo::Crc32, "DUoRhQ=="),
            (Algo::Crc32c, "yZRlqg=="),
            (Algo::Crc64Nvme, "jSnVw/bqjr4="),
            (Algo::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            (Algo::Sha256, "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
        ];
        for ((a, v), (wa, wv)) in got.iter().zip(want) {
            assert_eq!((*a, v.as_str()), (wa, wv));
        }
    }

    #[test]
    fn requested_and_verified() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32c".parse().unwrap());
        assert_eq!(requested(&headers).unwrap(), vec![Algo::Crc32c]);
        let computed = vec![(Algo::Crc32c, "yZRlqg==".to_string())];
        assert!(
            verify(&computed, &headers, None).is_err(),
            "announced trailer missing"
        );
        let mut trailers = HeaderMap::new();
        trailers.insert("x-amz-checksum-crc32c", "yZRlqg==".parse().unwrap());
        verify(&computed, &headers, Some(&trailers)).unwrap();
        trailers.insert("x-amz-checksum-crc32c", "AAAAAA==".parse().unwrap());
        assert!(verify(&computed, &headers, Some(&trailers)).is_err());
        headers.insert("x-amz-trailer", "x-amz-checksum-md4".parse().unwrap());
        assert!(requested(&headers).is_err());
    }
}
