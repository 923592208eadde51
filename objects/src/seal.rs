//! Chunked authenticated encryption of object bodies (server-side encryption, issue 17 item 2):
//! the pure part, no I/O and no key handling beyond one object's data key.
//!
//! A body is cut into fixed plaintext packages of [`PACKAGE_PLAIN_BYTES`]; each is sealed with
//! AES-256-GCM and stored as ciphertext followed by its 16-byte tag. The object is encrypted
//! before erasure coding, so stripes and fragments only ever carry ciphertext.
//!
//! * Nonce of package `i`: the object's random 96-bit nonce base with `i` (u64, little-endian)
//!   XORed into its last 8 bytes. Distinct indexes give distinct nonces, and every object has
//!   its own random data key, so no nonce repeats under one key.
//! * AAD of package `i`: `"percore-seal-v1"`, `i` (u64 LE) and a last-package flag (one byte).
//!   A package moved to another index, a body cut at a package boundary (the new last package
//!   was sealed as not last) or a package appended after the last all fail to open.
//! * The empty body is one empty package (16 stored bytes), so it cannot be truncated to nothing.
//!
//! What this module does not do: generate keys from anything but the OS RNG, wrap data keys
//! (the gateway's SSE module does), or read and write stripes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;

/// Plaintext bytes in every package but the last.
pub const PACKAGE_PLAIN_BYTES: u64 = 64 * 1024;
/// The AES-GCM tag stored after each package's ciphertext.
pub const TAG_BYTES: u64 = 16;
/// Stored bytes of a full package.
pub const PACKAGE_STORED_BYTES: u64 = PACKAGE_PLAIN_BYTES + TAG_BYTES;
/// Bytes of a data key (AES-256).
pub const DATA_KEY_BYTES: usize = 32;
/// Bytes of a nonce base (the GCM nonce size).
pub const NONCE_BASE_BYTES: usize = 12;

const AAD_DOMAIN: &[u8; 15] = b"percore-seal-v1";

/// Why a sealed body could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A package failed authentication: wrong key, flipped bytes, reordering or truncation.
    #[error("package {index} failed authentication")]
    Auth { index: u64 },
    /// The stored length is not one that sealing produces.
    #[error("stored length {stored_bytes} is not a sealed body's length")]
    StoredLength { stored_bytes: u64 },
}

/// One object's data key and nonce base. Never stored in clear: the gateway stores it wrapped.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    pub key: [u8; DATA_KEY_BYTES],
    pub nonce_base: [u8; NONCE_BASE_BYTES],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key bytes never reach a log.
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random key and nonce base from the OS RNG.
    pub fn random() -> DataKey {
        let mut key = [0u8; DATA_KEY_BYTES];
        let mut nonce_base = [0u8; NONCE_BASE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        rand::rngs::OsRng.fill_bytes(&mut nonce_base);
        DataKey { key, nonce_base }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key))
    }

    fn nonce(&self, index: u64) -> [u8; NONCE_BASE_BYTES] {
        let mut nonce = self.nonce_base;
        for (byte, ix) in nonce[4..].iter_mut().zip(index.to_le_bytes()) {
            *byte ^= ix;
        }
        nonce
    }
}

fn aad(index: u64, last: bool) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..15].copy_from_slice(AAD_DOMAIN);
    aad[15..23].copy_from_slice(&index.to_le_bytes());
    aad[23] = u8::from(last);
    aad
}

/// Packages of a body of `plain_bytes` (at least one: the empty body is one empty package).
pub fn package_count(plain_bytes: u64) -> u64 {
    plain_bytes.div_ceil(PACKAGE_PLAIN_BYTES).max(1)
}

/// Stored bytes of a sealed body of `plain_bytes`.
pub fn stored_size(plain_bytes: u64) -> u64 {
    plain_bytes + package_count(plain_bytes) * TAG_BYTES
}

/// Plaintext bytes of a sealed body of `stored_bytes`, or an error if sealing never produces
/// that length.
pub fn plain_size(stored_bytes: u64) -> Result<u64, SealError> {
    let full = stored_bytes / PACKAGE_STORED_BYTES;
    let rest = stored_bytes % PACKAGE_STORED_BYTES;
    let plain = match rest {
        0 if full > 0 => full * PACKAGE_PLAIN_BYTES,
        // An empty package is only ever the whole (empty) body.
        r if r == TAG_BYTES && full == 0 => 0,
        r if r > TAG_BYTES => full * PACKAGE_PLAIN_BYTES + r - TAG_BYTES,
        _ => return Err(SealError::StoredLength { stored_bytes }),
    };
    debug_assert_eq!(stored_size(plain), stored_bytes);
    Ok(plain)
}

/// The part of a sealed body that serves plaintext bytes `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRange {
    /// Index of the first package to fetch.
    pub package_first: u64,
    /// Packages to fetch, starting at `package_first`.
    pub package_count: u64,
    /// Stored byte offset of `package_first`.
    pub stored_offset: u64,
    /// Stored bytes to fetch.
    pub stored_len: u64,
    /// Offset of plaintext byte `first` within the opened packages.
    pub skip_bytes: u64,
}

/// Maps the plaintext range `first..=last` of a body of `plain_bytes` to the packages to
/// fetch. The caller has checked `first <= last < plain_bytes`.
pub fn stored_range(plain_bytes: u64, first: u64, last: u64) -> StoredRange {
    assert!(
        first <= last && last < plain_bytes,
        "range {first}..={last} of {plain_bytes}"
    );
    let package_first = first / PACKAGE_PLAIN_BYTES;
    let package_last = last / PACKAGE_PLAIN_BYTES;
    let stored_offset = package_first * PACKAGE_STORED_BYTES;
    let stored_end = ((package_last + 1) * PACKAGE_STORED_BYTES).min(stored_size(plain_bytes));
    StoredRange {
        package_first,
        package_count: package_last - package_first + 1,
        stored_offset,
        stored_len: stored_end - stored_offset,
        skip_bytes: first - package_first * PACKAGE_PLAIN_BYTES,
    }
}

/// Seals one package. `plain` is at most [`PACKAGE_PLAIN_BYTES`], and exactly that unless
/// `last`.
pub fn seal_package(key: &DataKey, index: u64, last: bool, plain: &[u8], out: &mut Vec<u8>) {
    assert!(plain.len() as u64 <= PACKAGE_PLAIN_BYTES);
    assert!(last || plain.len() as u64 == PACKAGE_PLAIN_BYTES);
    let aad = aad(index, last);
    let sealed = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&key.nonce(index)),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        // aes-gcm only fails on messages beyond 64 GiB; a package is 64 KiB.
        .expect("AES-GCM seals a package");
    assert_eq!(sealed.len(), plain.len() + TAG_BYTES as usize);
    out.extend_from_slice(&sealed);
}

/// Seals a whole body.
pub fn seal(key: &DataKey, plain: &[u8]) -> Vec<u8> {
    let count = package_count(plain.len() as u64);
    let mut out = Vec::with_capacity(stored_size(plain.len() as u64) as usize);
    let cipher = key.cipher();
    for index in 0..count {
        let start = (index * PACKAGE_PLAIN_BYTES) as usize;
        let end = (start + PACKAGE_PLAIN_BYTES as usize).min(plain.len());
        let aad = aad(index, index + 1 == count);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&key.nonce(index)),
                Payload {
                    msg: &plain[start..end],
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals a package");
        out.extend_from_slice(&sealed);
    }
    assert_eq!(out.len() as u64, stored_size(plain.len() as u64));
    out
}

/// Opens consecutive packages `package_first..` of a body of `plain_bytes` from their stored
/// bytes (a [`StoredRange`]'s fetch, or the whole body with `package_first` 0).
pub fn open_packages(
    key: &DataKey,
    plain_bytes: u64,
    package_first: u64,
    stored: &[u8],
) -> Result<Vec<u8>, SealError> {
    let total = package_count(plain_bytes);
    let cipher = key.cipher();
    let mut out = Vec::with_capacity(stored.len());
    for (index, sealed) in (package_first..).zip(stored.chunks(PACKAGE_STORED_BYTES as usize)) {
        if index >= total || (sealed.len() as u64) < TAG_BYTES {
            return Err(SealError::StoredLength {
                stored_bytes: stored.len() as u64,
            });
        }
        let aad = aad(index, index + 1 == total);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&key.nonce(index)),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Auth { index })?;
        out.extend_from_slice(&plain);
    }
    if stored.is_empty() {
        return Err(SealError::StoredLength { stored_bytes: 0 });
    }
    Ok(out)
}

/// Opens a whole sealed body.
pub fn open(key: &DataKey, stored: &[u8]) -> Result<Vec<u8>, SealError> {
    let plain_bytes = plain_size(stored.len() as u64)?;
    let plain = open_packages(key, plain_bytes, 0, stored)?;
    assert_eq!(plain.len() as u64, plain_bytes);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PACKAGE_PLAIN_BYTES;

    fn pattern(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    fn key() -> DataKey {
        DataKey {
            key: [7u8; 32],
            nonce_base: [9u8; 12],
        }
    }

    #[test]
    fn round_trip_at_package_edges() {
        let key = DataKey::random();
        for len in [0, 1, 15, 16, 17, P - 1, P, P + 1, 2 * P, 3 * P + 5] {
            let plain = pattern(len);
            let stored = seal(&key, &plain);
            assert_eq!(stored.len() as u64, stored_size(len), "len {len}");
            assert_eq!(plain_size(stored.len() as u64), Ok(len));
            if len >= 64 {
                // The pattern does not survive in the ciphertext.
                assert!(!stored.windows(64).any(|w| w == &plain[..64]));
            }
            assert_eq!(open(&key, &stored).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn package_by_package_matches_whole_body() {
        let key = key();
        let plain = pattern(2 * P + 100);
        let mut stored = Vec::new();
        for (index, chunk) in plain.chunks(P as usize).enumerate() {
            seal_package(&key, index as u64, index == 2, chunk, &mut stored);
        }
        assert_eq!(stored, seal(&key, &plain));
        let mut empty = Vec::new();
        seal_package(&key, 0, true, &[], &mut empty);
        assert_eq!(empty, seal(&key, &[]));
    }

    #[test]
    fn every_flipped_byte_fails() {
        let key = key();
        for len in [0, 40, P + 3] {
            let stored = seal(&key, &pattern(len));
            for at in 0..stored.len() {
                // Every byte of the small bodies; every 97th and the package edges of the big.
                if len > 100 && at % 97 != 0 && (at as u64 + 1) % PACKAGE_STORED_BYTES > 1 {
                    continue;
                }
                let mut bad = stored.clone();
                bad[at] ^= 0x01;
                assert!(
                    matches!(open(&key, &bad), Err(SealError::Auth { .. })),
                    "len {len} byte {at}"
                );
            }
        }
    }

    #[test]
    fn wrong_key_or_nonce_base_fails() {
        let stored = seal(&key(), &pattern(1000));
        let mut other = key();
        other.key[31] ^= 1;
        assert_eq!(open(&other, &stored), Err(SealError::Auth { index: 0 }));
        let mut other = key();
        other.nonce_base[0] ^= 1;
        assert_eq!(open(&other, &stored), Err(SealError::Auth { index: 0 }));
    }

    #[test]
    fn truncation_and_reordering_fail() {
        let key = key();
        let plain = pattern(3 * P);
        let stored = seal(&key, &plain);
        let n = PACKAGE_STORED_BYTES as usize;
        // Cut at a package boundary: the new last package was sealed as not last.
        assert_eq!(
            open(&key, &stored[..2 * n]),
            Err(SealError::Auth { index: 1 })
        );
        assert_eq!(open(&key, &stored[..n]), Err(SealError::Auth { index: 0 }));
        // Cut inside a package.
        assert!(open(&key, &stored[..2 * n + 100]).is_err());
        assert!(open(&key, &stored[..stored.len() - 1]).is_err());
        // Swap packages 0 and 1.
        let mut swapped = stored[n..2 * n].to_vec();
        swapped.extend_from_slice(&stored[..n]);
        swapped.extend_from_slice(&stored[2 * n..]);
        assert_eq!(open(&key, &swapped), Err(SealError::Auth { index: 0 }));
        // A package appended after the last (here: a copy of the last).
        let mut longer = stored.clone();
        longer.extend_from_slice(&stored[2 * n..]);
        assert!(open(&key, &longer).is_err());
        // A sealed package opened at another index through a range fetch.
        assert_eq!(
            open_packages(&key, 3 * P, 1, &stored[..n]),
            Err(SealError::Auth { index: 1 })
        );
    }

    #[test]
    fn impossible_stored_lengths_are_refused() {
        for stored_bytes in [0, 1, TAG_BYTES - 1, PACKAGE_STORED_BYTES + TAG_BYTES] {
            assert_eq!(
                plain_size(stored_bytes),
                Err(SealError::StoredLength { stored_bytes })
            );
        }
        assert_eq!(plain_size(TAG_BYTES), Ok(0));
        assert_eq!(plain_size(PACKAGE_STORED_BYTES), Ok(P));
    }

    /// Every range of the tiny sizes, and for sizes around the package edges every range
    /// whose ends lie near a package edge or on a stride through the middle, against a direct
    /// slice of the plaintext.
    #[test]
    fn range_mapping_exhaustive_for_small_sizes() {
        let key = key();
        let interesting = |len: u64| -> Vec<u64> {
            let mut at: Vec<u64> = (0..len).filter(|i| i % P < 3 || i % P > P - 4).collect();
            at.extend((0..len).step_by(9973));
            at.sort_unstable();
            at.dedup();
            at
        };
        for len in [1, 2, 5, P - 1, P, P + 1, 2 * P + 7] {
            let plain = pattern(len);
            let stored = seal(&key, &plain);
            let points = interesting(len);
            for &first in &points {
                for &last in points.iter().filter(|&&l| l >= first) {
                    let r = stored_range(len, first, last);
                    let end = (r.stored_offset + r.stored_len) as usize;
                    let fetched = &stored[r.stored_offset as usize..end];
                    assert_eq!(
                        fetched.len().div_ceil(PACKAGE_STORED_BYTES as usize) as u64,
                        r.package_count
                    );
                    let opened = open_packages(&key, len, r.package_first, fetched).unwrap();
                    let skip = r.skip_bytes as usize;
                    let want = &plain[first as usize..=last as usize];
                    assert_eq!(
                        &opened[skip..skip + want.len()],
                        want,
                        "len {len} {first}..={last}"
                    );
                }
            }
        }
    }

    /// Every plaintext size up to four packages: the stored size maps back, and no other
    /// length in between is accepted.
    #[test]
    fn size_mapping_exhaustive_for_small_sizes() {
        let mut accepted = 0;
        for stored_bytes in 0..=stored_size(4 * P) {
            if let Ok(plain) = plain_size(stored_bytes) {
                assert_eq!(stored_size(plain), stored_bytes);
                accepted += 1;
            }
        }
        assert_eq!(accepted, 4 * P + 1, "one stored length per plaintext size");
        for plain in 0..=4 * P {
            assert_eq!(plain_size(stored_size(plain)), Ok(plain));
        }
    }

    #[test]
    fn nonces_are_distinct_per_index() {
        let key = key();
        let mut seen = std::collections::HashSet::new();
        for index in (0..10_000).chain([u64::MAX - 1, u64::MAX]) {
            assert!(seen.insert(key.nonce(index)));
        }
    }
}
