//! Wrapping of an object's data key (`seal::DataKey`) under a key-encryption key: the customer's
//! key for SSE-C, later a master key for SSE-S3. The key-encryption key is never stored; what
//! the object head keeps is a [`WrappedKey`]:
//!
//! ```text
//! offset  bytes  field
//!      0      1  format (1)
//!      1     16  salt (random per object)
//!     17     32  check: HMAC-SHA256(kek, "percore-kek-check" || salt)
//!     49     12  nonce (random per object)
//!     61     60  AES-256-GCM under HMAC-SHA256(kek, "percore-kek-wrap" || salt) of the
//!                data key (32) || nonce base (12), with its 16-byte tag
//! ```
//!
//! The salted check tells a wrong key (the client's error: AWS answers 403) from a damaged
//! wrap (the GCM tag fails with the right key: ours, an internal error) without decrypting,
//! and, salted, it says nothing that links two objects written with the same key. Both
//! derived keys differ from the key-encryption key itself, so no key is used for two purposes.

use aes_gcm::aead::{Aead, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::seal::{DataKey, DATA_KEY_BYTES, NONCE_BASE_BYTES};

/// Bytes of a key-encryption key (AES-256).
pub const KEK_BYTES: usize = 32;
/// Bytes of an encoded [`WrappedKey`].
pub const WRAPPED_KEY_BYTES: usize = 1 + 16 + 32 + 12 + SEALED_BYTES;
const SEALED_BYTES: usize = DATA_KEY_BYTES + NONCE_BASE_BYTES + 16;
const FORMAT: u8 = 1;

type HmacSha256 = Hmac<Sha256>;

/// Why a data key could not be unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// The key-encryption key is not the one the data key was wrapped with.
    #[error("the key does not match the object's key")]
    WrongKey,
    /// The right key, but the wrap fails authentication or is not a wrap: damaged metadata.
    #[error("the wrapped data key is damaged")]
    Damaged,
}

/// A data key wrapped under a key-encryption key, as stored in an object head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    salt: [u8; 16],
    check: [u8; 32],
    nonce: [u8; 12],
    sealed: [u8; SEALED_BYTES],
}

fn derive(kek: &[u8; KEK_BYTES], label: &[u8], salt: &[u8; 16]) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(kek).expect("HMAC takes any key length");
    mac.update(label);
    mac.update(salt);
    mac
}

fn wrap_cipher(kek: &[u8; KEK_BYTES], salt: &[u8; 16]) -> Aes256Gcm {
    let wrap_key = derive(kek, b"percore-kek-wrap", salt)
        .finalize()
        .into_bytes();
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&wrap_key))
}

impl WrappedKey {
    /// Wraps `data_key` under `kek` with a fresh random salt and nonce.
    pub fn wrap(kek: &[u8; KEK_BYTES], data_key: &DataKey) -> WrappedKey {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let check: [u8; 32] = derive(kek, b"percore-kek-check", &salt)
            .finalize()
            .into_bytes()
            .into();
        let mut plain = [0u8; DATA_KEY_BYTES + NONCE_BASE_BYTES];
        plain[..DATA_KEY_BYTES].copy_from_slice(&data_key.key);
        plain[DATA_KEY_BYTES..].copy_from_slice(&data_key.nonce_base);
        let sealed = wrap_cipher(kek, &salt)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &[FORMAT],
                },
            )
            .expect("AES-GCM wraps 44 bytes");
        WrappedKey {
            salt,
            check,
            nonce,
            sealed: sealed.try_into().expect("44 bytes and a 16-byte tag"),
        }
    }

    /// The data key, if `kek` is the key it was wrapped with.
    pub fn unwrap(&self, kek: &[u8; KEK_BYTES]) -> Result<DataKey, UnwrapError> {
        // Constant-time comparison of the check.
        derive(kek, b"percore-kek-check", &self.salt)
            .verify_slice(&self.check)
            .map_err(|_| UnwrapError::WrongKey)?;
        let plain = wrap_cipher(kek, &self.salt)
            .decrypt(
                Nonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.sealed,
                    aad: &[FORMAT],
                },
            )
            .map_err(|_| UnwrapError::Damaged)?;
        assert_eq!(plain.len(), DATA_KEY_BYTES + NONCE_BASE_BYTES);
        let mut data_key = DataKey {
            key: [0; DATA_KEY_BYTES],
            nonce_base: [0; NONCE_BASE_BYTES],
        };
        data_key.key.copy_from_slice(&plain[..DATA_KEY_BYTES]);
        data_key
            .nonce_base
            .copy_from_slice(&plain[DATA_KEY_BYTES..]);
        Ok(data_key)
    }

    /// The stored form (see the module's table).
    pub fn encode(&self) -> [u8; WRAPPED_KEY_BYTES] {
        let mut out = [0u8; WRAPPED_KEY_BYTES];
        out[0] = FORMAT;
        out[1..17].copy_from_slice(&self.salt);
        out[17..49].copy_from_slice(&self.check);
        out[49..61].copy_from_slice(&self.nonce);
        out[61..].copy_from_slice(&self.sealed);
        out
    }

    /// Reads the stored form; anything else is damaged metadata.
    pub fn decode(bytes: &[u8]) -> Result<WrappedKey, UnwrapError> {
        if bytes.len() != WRAPPED_KEY_BYTES || bytes[0] != FORMAT {
            return Err(UnwrapError::Damaged);
        }
        let field = |range: std::ops::Range<usize>| &bytes[range];
        Ok(WrappedKey {
            salt: field(1..17).try_into().expect("16 bytes"),
            check: field(17..49).try_into().expect("32 bytes"),
            nonce: field(49..61).try_into().expect("12 bytes"),
            sealed: field(61..WRAPPED_KEY_BYTES).try_into().expect("60 bytes"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_through_encoding() {
        let kek = [3u8; KEK_BYTES];
        let data_key = DataKey::random();
        let wrapped = WrappedKey::wrap(&kek, &data_key);
        let decoded = WrappedKey::decode(&wrapped.encode()).unwrap();
        assert_eq!(decoded, wrapped);
        assert_eq!(decoded.unwrap(&kek).unwrap(), data_key);
    }

    #[test]
    fn wrong_key_is_told_from_damage() {
        let kek = [3u8; KEK_BYTES];
        let wrapped = WrappedKey::wrap(&kek, &DataKey::random()).encode();
        for bit in [0, 100, 255] {
            let mut other = kek;
            other[bit / 8] ^= 1 << (bit % 8);
            let w = WrappedKey::decode(&wrapped).unwrap();
            assert_eq!(w.unwrap(&other), Err(UnwrapError::WrongKey));
        }
        // Every byte flipped: the format byte fails decoding, salt and check bytes read as
        // a wrong key (the check no longer matches), nonce and sealed bytes as damage.
        for at in 0..WRAPPED_KEY_BYTES {
            let mut bad = wrapped;
            bad[at] ^= 0x80;
            let got = WrappedKey::decode(&bad).and_then(|w| w.unwrap(&kek));
            let want = if (1..=48).contains(&at) {
                UnwrapError::WrongKey
            } else {
                UnwrapError::Damaged
            };
            assert_eq!(got, Err(want), "byte {at}");
        }
        assert_eq!(WrappedKey::decode(&wrapped[1..]), Err(UnwrapError::Damaged));
    }

    #[test]
    fn salts_and_nonces_differ_per_wrap() {
        let kek = [5u8; KEK_BYTES];
        let data_key = DataKey::random();
        let (a, b) = (
            WrappedKey::wrap(&kek, &data_key),
            WrappedKey::wrap(&kek, &data_key),
        );
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.check, b.check);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.sealed, b.sealed);
    }
}
