//! The S3 side of x-amz-checksum-*: which checksums a request asks for (its headers), checking
//! the computed ones against the values sent in headers or aws-chunked trailers (s3s parses the
//! trailers but does not verify them: we must), setting them on s3s DTOs, and the S3 codes of
//! checksum errors. The checksums themselves are the object service's (`objects::checksum`).

use http::HeaderMap;
use s3s::{s3_error, S3Error, S3Result};

pub use objects::checksum::*;

/// The S3 code of each checksum error: the one place they are mapped.
// By value: it is `map_err`'s function.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn checksum_error(e: ChecksumError) -> S3Error {
    let message = e.to_string();
    match e {
        ChecksumError::UnknownAlgorithm(_)
        | ChecksumError::UnknownType(_)
        | ChecksumError::TypeWithoutAlgorithm
        | ChecksumError::TypeNotSupported { .. }
        | ChecksumError::AlgorithmMismatch { .. }
        | ChecksumError::TypeMismatch { .. }
        | ChecksumError::UploadWithout { .. } => s3_error!(InvalidRequest, "{message}"),
        ChecksumError::PartMismatch { .. } | ChecksumError::PartMissing { .. } => {
            s3_error!(InvalidPart, "{message}")
        }
        ChecksumError::ObjectMismatch { .. } => s3_error!(BadDigest, "{message}"),
    }
}

/// Sets the `checksum_<algo>` field of an s3s DTO (they all name them alike).
macro_rules! set_checksum {
    ($dto:expr, $algo:expr, $value:expr) => {
        match $algo {
            $crate::checksum::Algo::Crc32 => $dto.checksum_crc32 = Some($value),
            $crate::checksum::Algo::Crc32c => $dto.checksum_crc32c = Some($value),
            $crate::checksum::Algo::Crc64Nvme => $dto.checksum_crc64nvme = Some($value),
            $crate::checksum::Algo::Sha1 => $dto.checksum_sha1 = Some($value),
            $crate::checksum::Algo::Sha256 => $dto.checksum_sha256 = Some($value),
        }
    };
}

/// The `checksum_<algo>` fields of an s3s DTO that are set, as (algorithm, value).
macro_rules! sent_checksums {
    ($dto:expr) => {
        [
            (
                $crate::checksum::Algo::Crc32,
                $dto.checksum_crc32.as_deref(),
            ),
            (
                $crate::checksum::Algo::Crc32c,
                $dto.checksum_crc32c.as_deref(),
            ),
            (
                $crate::checksum::Algo::Crc64Nvme,
                $dto.checksum_crc64nvme.as_deref(),
            ),
            ($crate::checksum::Algo::Sha1, $dto.checksum_sha1.as_deref()),
            (
                $crate::checksum::Algo::Sha256,
                $dto.checksum_sha256.as_deref(),
            ),
        ]
        .into_iter()
        .filter_map(|(a, v): ($crate::checksum::Algo, Option<&str>)| v.map(|v| (a, v)))
    };
}

pub(crate) use {sent_checksums, set_checksum};

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
pub fn verify(computed: &[Sum], headers: &HeaderMap, trailers: Option<&HeaderMap>) -> S3Result<()> {
    for sum in computed {
        let (algo, value) = (sum.algo(), sum.base64());
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
    fn requested_and_verified() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32c".parse().unwrap());
        assert_eq!(requested(&headers).unwrap(), vec![Algo::Crc32c]);
        let mut h = Hashers::new(&[Algo::Crc32c]);
        h.update(b"hello world");
        let computed = h.finish().remove(0);
        let computed = vec![computed];
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

    /// The checksum of each piece, for each algorithm.
    #[test]
    fn checksum_errors_have_their_s3_codes() {
        for (a, k) in [
            (Some("SHA256"), Some("FULL_OBJECT")),
            (Some("MD5"), None),
            (None, Some("COMPOSITE")),
        ] {
            let e = UploadChecksum::parse(a, k).unwrap_err();
            assert_eq!(*checksum_error(e).code(), s3s::S3ErrorCode::InvalidRequest);
        }
        let part = ChecksumError::PartMissing {
            part: 2,
            algo: Algo::Crc32,
        };
        assert_eq!(*checksum_error(part).code(), s3s::S3ErrorCode::InvalidPart);
        let whole = ChecksumError::ObjectMismatch { algo: Algo::Sha1 };
        assert_eq!(*checksum_error(whole).code(), s3s::S3ErrorCode::BadDigest);
    }
}
