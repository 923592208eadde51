//! The stable hashes placement is built on, written out by hand so that they never change with a
//! compiler or library version (Rust's `DefaultHasher` makes no such promise), and the
//! rendezvous score. This module is part of the on-disk contract: changing any function or
//! constant here remaps every object, and the golden tests below exist to catch that.
//!
//! - [`siphash24`]: SipHash-2-4 (Aumasson and Bernstein), 64-bit output, over bytes.
//! - [`pg_hash`]: SipHash-2-4 with key ([`PG_KEY0`], [`PG_KEY1`]) over
//!   `u32le(len(bucket)) ‖ bucket ‖ u32le(len(key)) ‖ key`. The PG is its low bits.
//! - [`rendezvous_key`]: the score of a (PG, fragment position, core) triple. Smaller wins.
//!
//! Only integer operations and IEEE-754 `+ - * /` (exactly rounded on every target Rust
//! supports, never contracted into FMA) are used, so every process on every machine computes the
//! same bits; the natural logarithm of weighted rendezvous is therefore computed here too rather
//! than by the platform's libm, whose last bit may differ between systems.

use crate::layout::CoreId;

/// SipHash key, first half, of the object → PG hash: the bytes "percore1" little-endian.
pub const PG_KEY0: u64 = u64::from_le_bytes(*b"percore1");
/// SipHash key, second half, of the object → PG hash: the bytes "pg-hash1" little-endian.
pub const PG_KEY1: u64 = u64::from_le_bytes(*b"pg-hash1");
/// SipHash key, first half, of the rendezvous seeds: "percore1".
pub const RENDEZVOUS_KEY0: u64 = u64::from_le_bytes(*b"percore1");
/// SipHash key, second half, of the rendezvous seeds: "rdv-seed".
pub const RENDEZVOUS_KEY1: u64 = u64::from_le_bytes(*b"rdv-seed");

/// SipHash-2-4 of `msg` under the 128-bit key (`k0`, `k1`).
pub fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8) yields 8 bytes"));
        compress(&mut v, m, 2);
    }
    let mut last = (msg.len() as u64) << 56;
    for (i, b) in chunks.remainder().iter().enumerate() {
        last |= u64::from(*b) << (8 * i);
    }
    compress(&mut v, last, 2);
    v[2] ^= 0xff;
    sip_rounds(&mut v, 4);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn compress(v: &mut [u64; 4], m: u64, rounds: usize) {
    v[3] ^= m;
    sip_rounds(v, rounds);
    v[0] ^= m;
}

fn sip_rounds(v: &mut [u64; 4], rounds: usize) {
    for _ in 0..rounds {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
}

/// The 64-bit object hash: SipHash-2-4 keyed ([`PG_KEY0`], [`PG_KEY1`]) over the
/// length-prefixed bucket and key (lengths as u32 little-endian).
pub fn pg_hash(bucket: &[u8], key: &[u8]) -> u64 {
    assert!(u32::try_from(bucket.len()).is_ok() && u32::try_from(key.len()).is_ok());
    // S3 names fit the stack buffer (bucket ≤ 63 bytes, key ≤ 1024): no allocation per lookup.
    let mut stack = [0u8; 1280];
    let mut heap = Vec::new();
    let len = 8 + bucket.len() + key.len();
    let msg: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let (b_len, rest) = msg.split_at_mut(4);
    b_len.copy_from_slice(&(bucket.len() as u32).to_le_bytes());
    let (b, rest) = rest.split_at_mut(bucket.len());
    b.copy_from_slice(bucket);
    let (k_len, k) = rest.split_at_mut(4);
    k_len.copy_from_slice(&(key.len() as u32).to_le_bytes());
    k.copy_from_slice(key);
    siphash24(PG_KEY0, PG_KEY1, msg)
}

/// A core's rendezvous seed: SipHash-2-4 keyed ([`RENDEZVOUS_KEY0`], [`RENDEZVOUS_KEY1`]) over
/// `"core" ‖ u64le(node id) ‖ u16le(core index)`. Only the identity of a core enters placement:
/// its address, port, zone name or weight do not change which PGs prefer it.
pub fn core_seed(core: CoreId) -> u64 {
    let mut msg = [0u8; 14];
    msg[..4].copy_from_slice(b"core");
    msg[4..12].copy_from_slice(&core.node.to_le_bytes());
    msg[12..].copy_from_slice(&core.index.to_le_bytes());
    siphash24(RENDEZVOUS_KEY0, RENDEZVOUS_KEY1, &msg)
}

/// The seed of fragment position `position` of placement group `pg`: SipHash-2-4 keyed as
/// [`core_seed`] over `"pg" ‖ u32le(pg) ‖ u8(position)`. Each position draws its own
/// rendezvous, so a change at one position does not shift the others.
pub fn slot_seed(pg: u32, position: u8) -> u64 {
    let mut msg = [0u8; 7];
    msg[..2].copy_from_slice(b"pg");
    msg[2..6].copy_from_slice(&pg.to_le_bytes());
    msg[6] = position;
    siphash24(RENDEZVOUS_KEY0, RENDEZVOUS_KEY1, &msg)
}

/// Combines a slot seed and a core seed into the 64-bit draw of their pair: the 128-bit product
/// of the two (each xored with a fixed odd constant) folded to 64 bits, then the MurmurHash3
/// 64-bit finalizer.
pub fn pair_hash(slot_seed: u64, core_seed: u64) -> u64 {
    let p = u128::from(slot_seed ^ 0xa076_1d64_78bd_642f)
        * u128::from(core_seed ^ 0xe703_7ed1_a0b4_28db);
    fmix64((p as u64) ^ ((p >> 64) as u64))
}

/// MurmurHash3's 64-bit finalizer (a bijection with full avalanche).
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The weighted rendezvous key of a pair draw: `-ln(u) / weight` with `u = (⌊h / 2^11⌋ + 1) /
/// 2^53` in (0, 1]. Smaller wins. This is the exponential-race form of weighted rendezvous
/// hashing: each core's key is an exponential variable of rate `weight`, so a core wins a free
/// slot with probability proportional to its weight.
pub fn weighted_key(h: u64, inv_weight: f64) -> f64 {
    neg_ln_unit(h) * inv_weight
}

/// [`weighted_key`] of (PG `pg`, position `position`, `core` of `weight`) from scratch: what the
/// table builder computes with cached seeds. Slow; for oracles and tools.
pub fn rendezvous_key(pg: u32, position: u8, core: CoreId, weight: u32) -> f64 {
    assert!(weight > 0);
    weighted_key(
        pair_hash(slot_seed(pg, position), core_seed(core)),
        1.0 / f64::from(weight),
    )
}

/// `-ln(u)` for `u = (⌊h / 2^11⌋ + 1) / 2^53`, from basic IEEE operations only: `u = m × 2^e`
/// with m in [√½, √2), then `ln m = 2 atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| ≤ 0.1716`, summed
/// to the s^23 term (relative error below 1e-16).
pub fn neg_ln_unit(h: u64) -> f64 {
    const LN2: f64 = std::f64::consts::LN_2;
    const SQRT2: f64 = std::f64::consts::SQRT_2;
    // 2^-53: an exact scaling of an integer below 2^53 + 1.
    let unit = ((h >> 11) + 1) as f64 * (1.0 / 9_007_199_254_740_992.0);
    let bits = unit.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut mantissa = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | (1023u64 << 52));
    if mantissa >= SQRT2 {
        mantissa *= 0.5;
        exponent += 1;
    }
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    // Horner form of 1 + s²/3 + s⁴/5 + … + s²²/23.
    let mut sum = 1.0 / 23.0;
    for odd in [21.0, 19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        sum = sum * s2 + 1.0 / odd;
    }
    let ln_unit = exponent as f64 * LN2 + 2.0 * s * sum;
    assert!(ln_unit <= 0.0);
    // 0.0 - x, not -x: u = 1 gives +0.0, so keys compare correctly as bit patterns.
    0.0 - ln_unit
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vectors of the SipHash paper (key 00..0f, messages 00, 00 01, ...).
    #[test]
    fn siphash_reference_vectors() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..64).collect();
        assert_eq!(siphash24(k0, k1, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(k0, k1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(k0, k1, &msg[..2]), 0x0d6c_8009_d9a9_4f5a);
    }

    /// Cross-check against the standard library's (deprecated but still SipHash-2-4) hasher on
    /// every message length around the 8-byte block boundaries.
    #[test]
    #[allow(deprecated)]
    fn siphash_matches_std() {
        use std::hash::Hasher;
        let msg: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..msg.len() {
            let mut std = std::hash::SipHasher::new_with_keys(PG_KEY0, PG_KEY1);
            std.write(&msg[..len]);
            assert_eq!(
                siphash24(PG_KEY0, PG_KEY1, &msg[..len]),
                std.finish(),
                "len {len}"
            );
        }
    }

    #[test]
    fn neg_ln_is_close_to_libm_and_monotone() {
        let mut last = f64::INFINITY;
        for i in 0..=20_000u64 {
            // u from 2^-53 to 1 across the whole range, exponent and mantissa.
            let top = if i == 20_000 {
                (1 << 53) - 1
            } else {
                i * i * 22_517_998
            };
            let h = top << 11;
            let u = ((h >> 11) + 1) as f64 / 9_007_199_254_740_992.0;
            let got = neg_ln_unit(h);
            let want = -u.ln();
            assert!(
                (got - want).abs() <= 1e-15 * want.max(1e-3),
                "u {u}: {got} vs {want}"
            );
            assert!(got <= last, "not monotone at u {u}");
            last = got;
        }
        assert_eq!(
            neg_ln_unit(u64::MAX).to_bits(),
            0.0f64.to_bits(),
            "+0.0, never -0.0"
        );
        assert!((neg_ln_unit(0) - 53.0 * std::f64::consts::LN_2).abs() < 1e-12);
    }

    /// Golden values: if any of these change, every object of every cluster moves.
    #[test]
    fn golden_hashes() {
        let got = [
            pg_hash(b"", b""),
            pg_hash(b"photos", b"2024/cat.jpg"),
            pg_hash(b"b", b"k"),
            core_seed(CoreId { node: 1, index: 0 }),
            slot_seed(4095, 5),
        ];
        let want = [
            0x5919_a22c_0bd1_a8a0,
            0x890b_20d0_c338_e747,
            0xb71e_47b2_ca3a_5795,
            0xd251_f6b6_c6b9_e836,
            0x7067_05d9_a1ed_ee93,
        ];
        assert_eq!(got, want, "{got:#018x?}");
    }
}
