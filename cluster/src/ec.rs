//! Storage policies and the erasure-coding math of a stripe (pure functions, no I/O).
//!
//! A stripe is up to `CHUNK_BYTES` of an object part. Under EC k+m it is cut into k data shards
//! of `shard_bytes(len, k)` (the last one zero-padded) and m parity shards computed with
//! reed-solomon-simd; shard i is fragment i of the stripe, stored on the i-th core of the
//! object's core list. The code is systematic: a healthy read fetches data shards only and
//! decodes nothing; a degraded read fetches any k shards and decodes the stripe once.

use bytes::{Bytes, BytesMut};

/// How an object's stripes are stored: `placement`'s scheme (replicas r, or EC k+m).
pub use placement::Scheme as Policy;

/// Objects smaller than this are replicated even where EC is the policy (small-object path).
pub const SMALL_OBJECT_BYTES: u64 = placement::limits::SMALL_OBJECT_BYTES_DEFAULT;

/// The STANDARD policy of a node of `cores` cores, each its own failure domain, by the
/// `placement` default rule (one source for the rule; see placement/README.md): six or more
/// cores EC 4+2, four or five EC 2+2, fewer min(3, cores) replicas, and objects under
/// `SMALL_OBJECT_BYTES` as min(3, cores) replicas. Computed once per node.
pub fn node_policy(cores: usize) -> placement::ClassPolicy {
    node_class_policy("STANDARD", cores)
}

/// The policy of `class` on a node of `cores` cores by the same rule (the other classes put
/// EC 8+4 first: 12 or more cores). One tier on a node: every class is on nvme.
pub fn node_class_policy(class: &str, cores: usize) -> placement::ClassPolicy {
    assert!(cores > 0, "a node has at least one core");
    let domains = vec![1usize; cores];
    placement::ClassPolicy {
        scheme: placement::policy::default_scheme(
            placement::policy::default_ladder(class),
            &domains,
        ),
        tier: placement::Tier::Nvme,
        small_object_bytes: SMALL_OBJECT_BYTES,
        small_replicas: placement::policy::default_small_replicas(cores),
        explicit: false,
    }
}

/// Bytes of each shard of a stripe of `len` bytes: ⌈len / k⌉ rounded up to even (the codec's
/// requirement).
pub fn shard_bytes(len: u64, k: u8) -> u64 {
    let s = len.div_ceil(u64::from(k)).max(2);
    s + (s & 1)
}

/// Cuts a stripe into k equal data shards (zero-copy slices but the padded last one) and
/// computes the m parity shards.
pub fn encode_stripe(stripe: &Bytes, k: u8, m: u8) -> Result<Vec<Bytes>, String> {
    let shard = shard_bytes(stripe.len() as u64, k) as usize;
    let mut shards: Vec<Bytes> = Vec::with_capacity(usize::from(k) + usize::from(m));
    for i in 0..usize::from(k) {
        let start = (i * shard).min(stripe.len());
        let end = ((i + 1) * shard).min(stripe.len());
        if end - start == shard {
            shards.push(stripe.slice(start..end));
        } else {
            let mut padded = BytesMut::zeroed(shard);
            padded[..end - start].copy_from_slice(&stripe[start..end]);
            shards.push(padded.freeze());
        }
    }
    let parity = reed_solomon_simd::encode(usize::from(k), usize::from(m), &shards)
        .map_err(|e| e.to_string())?;
    shards.extend(parity.into_iter().map(Bytes::from));
    Ok(shards)
}

/// Rebuilds the k data shards of a stripe from any k of its k + m shards (`(index, shard)`).
pub fn decode_stripe(k: u8, m: u8, available: &[(usize, Bytes)]) -> Result<Vec<Bytes>, String> {
    let k = usize::from(k);
    let originals = available
        .iter()
        .filter(|(i, _)| *i < k)
        .map(|(i, s)| (*i, s.as_ref()));
    let recovery = available
        .iter()
        .filter(|(i, _)| *i >= k)
        .map(|(i, s)| (*i - k, s.as_ref()));
    let mut restored = reed_solomon_simd::decode(k, usize::from(m), originals, recovery)
        .map_err(|e| e.to_string())?;
    (0..k)
        .map(|i| {
            available
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, s)| s.clone())
                // Restored shards move into `Bytes` without a copy.
                .or_else(|| restored.remove(&i).map(Bytes::from))
                .ok_or_else(|| format!("data shard {i} was not restored"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_m_lost_shards_are_restored() {
        for len in [1usize, 2, 3, 1000, 4096, (1 << 20) - 1, 1 << 20] {
            let stripe = Bytes::from((0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>());
            for (k, m) in [(4u8, 2u8), (2, 2)] {
                let shards = encode_stripe(&stripe, k, m).unwrap();
                assert_eq!(shards.len(), usize::from(k + m));
                let n = usize::from(k + m);
                // Every pair of lost shards (m = 2).
                for a in 0..n {
                    for b in a + 1..n {
                        let left: Vec<(usize, Bytes)> = shards
                            .iter()
                            .cloned()
                            .enumerate()
                            .filter(|(i, _)| *i != a && *i != b)
                            .collect();
                        let data = decode_stripe(k, m, &left).unwrap();
                        let joined: Vec<u8> = data.iter().flat_map(|s| s.iter().copied()).collect();
                        assert_eq!(&joined[..len], &stripe[..], "len {len} k {k} lost {a},{b}");
                    }
                }
            }
        }
    }

    #[test]
    fn default_policy_rule() {
        let of = |size: u64, cores: usize| node_policy(cores).scheme_for(size);
        assert_eq!(of(1 << 20, 1), Policy::Replicas(1));
        assert_eq!(of(1 << 20, 2), Policy::Replicas(2));
        assert_eq!(of(1 << 20, 3), Policy::Replicas(3));
        assert_eq!(of(1 << 20, 4), Policy::Ec { k: 2, m: 2 });
        assert_eq!(of(1 << 20, 5), Policy::Ec { k: 2, m: 2 });
        assert_eq!(of(1 << 20, 6), Policy::Ec { k: 4, m: 2 });
        assert_eq!(of(1 << 20, 12), Policy::Ec { k: 4, m: 2 });
        assert_eq!(of(SMALL_OBJECT_BYTES, 12), Policy::Ec { k: 4, m: 2 });
        assert_eq!(of(SMALL_OBJECT_BYTES - 1, 12), Policy::Replicas(3));
        assert_eq!(of(1000, 2), Policy::Replicas(2));
        assert_eq!(shard_bytes(1, 4), 2);
        assert_eq!(shard_bytes(1 << 20, 4), 1 << 18);
        assert_eq!(shard_bytes(7, 2), 4);
    }
}
