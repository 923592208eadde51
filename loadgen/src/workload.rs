//! What the generator sends: the operation mix, the key set, object sizes and payload bytes.
//!
//! Everything here is deterministic from the seed: the size of key `i`, the bytes of key `i`,
//! and (given the same sequence of random draws) the ops and keys chosen. Nothing here does I/O.
//! Payload bytes come from one pre-filled random buffer sliced as `Bytes`, so a PUT never
//! allocates or fills its body.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};
use serde::Serialize;

use crate::error::{ConfigError, LoadgenError};
use crate::limits;
use crate::units::{format_size_bytes, parse_size_bytes};

/// One kind of request the generator times.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Put,
    Delete,
    List,
    /// A whole multipart upload: initiate, every part, complete.
    Multipart,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Get, Op::Put, Op::Delete, Op::List, Op::Multipart];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Multipart => "multipart",
        }
    }

    pub fn parse(text: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == text)
    }

    /// Whether the op moves object bytes (counted in MiB/s).
    pub fn carries_payload(self) -> bool {
        matches!(self, Op::Get | Op::Put | Op::Multipart)
    }
}

/// The weighted operation mix, e.g. `get=70,put=20,delete=5,list=5`, or one op name alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpMix {
    weights: Vec<(Op, u32)>,
    #[serde(skip)]
    total: u32,
}

impl OpMix {
    pub fn parse(text: &str) -> Result<OpMix, ConfigError> {
        let bad = |reason: &str| ConfigError::Workload {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut weights: Vec<(Op, u32)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((name, weight)) => {
                    let weight: u32 = weight
                        .trim()
                        .parse()
                        .map_err(|_| bad("weights are whole numbers"))?;
                    (name.trim(), weight)
                }
                None => (part, 1),
            };
            let op =
                Op::parse(name).ok_or_else(|| bad("ops are get, put, delete, list, multipart"))?;
            if weights.iter().any(|(o, _)| *o == op) {
                return Err(bad("an op appears twice"));
            }
            if weight > 1_000_000 {
                return Err(bad("a weight is above 1000000"));
            }
            if weight > 0 {
                weights.push((op, weight));
            }
        }
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err(bad("no op has a weight above zero"));
        }
        Ok(OpMix { weights, total })
    }

    pub fn pick(&self, rng: &mut impl Rng) -> Op {
        let mut roll = rng.gen_range(0..self.total);
        for (op, weight) in &self.weights {
            if roll < *weight {
                return *op;
            }
            roll -= weight;
        }
        unreachable!("roll below the total weight always lands on an op")
    }

    pub fn contains(&self, op: Op) -> bool {
        self.weights.iter().any(|(o, _)| *o == op)
    }

    pub fn describe(&self) -> String {
        self.weights
            .iter()
            .map(|(op, w)| format!("{}={w}", op.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Object sizes: `4KiB`, `uniform:1KiB..64KiB`, `lognormal:64KiB,0.5[,16MiB]` (median, sigma,
/// optional cap; the default cap is 64 × the median).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SizeDist {
    Fixed {
        size_bytes: u64,
    },
    Uniform {
        size_bytes_min: u64,
        size_bytes_max: u64,
    },
    LogNormal {
        median_bytes: u64,
        sigma: f64,
        size_bytes_max: u64,
    },
}

impl SizeDist {
    pub fn parse(text: &str) -> Result<SizeDist, ConfigError> {
        let bad = |reason: &str| ConfigError::SizeDist {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let dist = if let Some(range) = text.strip_prefix("uniform:") {
            let (lo, hi) = range
                .split_once("..")
                .ok_or_else(|| bad("uniform takes MIN..MAX"))?;
            let size_bytes_min = parse_size_bytes(lo)?;
            let size_bytes_max = parse_size_bytes(hi)?;
            if size_bytes_min > size_bytes_max {
                return Err(bad("MIN is above MAX"));
            }
            SizeDist::Uniform {
                size_bytes_min,
                size_bytes_max,
            }
        } else if let Some(args) = text.strip_prefix("lognormal:") {
            let parts: Vec<&str> = args.split(',').map(str::trim).collect();
            if parts.len() < 2 || parts.len() > 3 {
                return Err(bad("lognormal takes MEDIAN,SIGMA[,MAX]"));
            }
            let median_bytes = parse_size_bytes(parts[0])?;
            let sigma: f64 = parts[1].parse().map_err(|_| bad("SIGMA is a number"))?;
            if !(0.0..=4.0).contains(&sigma) {
                return Err(bad("SIGMA is in [0, 4]"));
            }
            if median_bytes == 0 {
                return Err(bad("MEDIAN is above zero"));
            }
            let size_bytes_max = match parts.get(2) {
                Some(cap) => parse_size_bytes(cap)?,
                None => median_bytes
                    .saturating_mul(64)
                    .min(limits::OBJECT_SIZE_BYTES_MAX),
            };
            if size_bytes_max < median_bytes {
                return Err(bad("MAX is below MEDIAN"));
            }
            SizeDist::LogNormal {
                median_bytes,
                sigma,
                size_bytes_max,
            }
        } else {
            SizeDist::Fixed {
                size_bytes: parse_size_bytes(text.strip_prefix("fixed:").unwrap_or(text))?,
            }
        };
        if dist.size_bytes_max() > limits::OBJECT_SIZE_BYTES_MAX {
            return Err(ConfigError::out_of_range(
                "object size",
                format_size_bytes(dist.size_bytes_max()),
                0,
                format_size_bytes(limits::OBJECT_SIZE_BYTES_MAX),
            ));
        }
        Ok(dist)
    }

    /// The largest size this distribution yields.
    pub fn size_bytes_max(&self) -> u64 {
        match *self {
            SizeDist::Fixed { size_bytes } => size_bytes,
            SizeDist::Uniform { size_bytes_max, .. }
            | SizeDist::LogNormal { size_bytes_max, .. } => size_bytes_max,
        }
    }

    /// The size when fixed; targets with a size only apply to fixed-size runs.
    pub fn fixed_size_bytes(&self) -> Option<u64> {
        match *self {
            SizeDist::Fixed { size_bytes } => Some(size_bytes),
            _ => None,
        }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        match *self {
            SizeDist::Fixed { size_bytes } => size_bytes,
            SizeDist::Uniform {
                size_bytes_min,
                size_bytes_max,
            } => rng.gen_range(size_bytes_min..=size_bytes_max),
            SizeDist::LogNormal {
                median_bytes,
                sigma,
                size_bytes_max,
            } => {
                // Parameters are checked in `parse`, so construction cannot fail.
                let dist = LogNormal::new((median_bytes as f64).ln(), sigma)
                    .expect("sigma is finite and non-negative");
                let size = dist.sample(rng).round();
                (size as u64).clamp(1, size_bytes_max)
            }
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            SizeDist::Fixed { size_bytes } => format_size_bytes(size_bytes),
            SizeDist::Uniform {
                size_bytes_min,
                size_bytes_max,
            } => format!(
                "uniform:{}..{}",
                format_size_bytes(size_bytes_min),
                format_size_bytes(size_bytes_max)
            ),
            SizeDist::LogNormal {
                median_bytes,
                sigma,
                size_bytes_max,
            } => format!(
                "lognormal:{},{sigma},{}",
                format_size_bytes(median_bytes),
                format_size_bytes(size_bytes_max)
            ),
        }
    }
}

/// How keys are drawn from the key set: `uniform` or `zipf[:EXPONENT]` (default 0.99).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KeyDist {
    Uniform,
    Zipf { exponent: f64 },
}

impl KeyDist {
    pub fn parse(text: &str) -> Result<KeyDist, ConfigError> {
        let bad = |reason: &str| ConfigError::KeyDist {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        match text.split_once(':') {
            None if text == "uniform" => Ok(KeyDist::Uniform),
            None if text == "zipf" => Ok(KeyDist::Zipf { exponent: 0.99 }),
            Some(("zipf", exponent)) => {
                let exponent: f64 = exponent.parse().map_err(|_| bad("exponent is a number"))?;
                if !(0.0..=10.0).contains(&exponent) {
                    return Err(bad("exponent is in [0, 10]"));
                }
                Ok(KeyDist::Zipf { exponent })
            }
            _ => Err(bad("use uniform or zipf[:EXPONENT]")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            KeyDist::Uniform => "uniform".to_owned(),
            KeyDist::Zipf { exponent } => format!("zipf:{exponent}"),
        }
    }
}

/// Draws key indexes in `0..keys` from a [`KeyDist`].
#[derive(Debug, Clone)]
pub struct KeyChooser {
    keys: u64,
    zipf: Option<Zipf<f64>>,
}

impl KeyChooser {
    pub fn new(dist: KeyDist, keys: u64) -> KeyChooser {
        assert!((1..=limits::KEYS_MAX).contains(&keys));
        let zipf = match dist {
            KeyDist::Uniform => None,
            // n >= 1 and exponent >= 0 are checked by the callers, so this cannot fail.
            KeyDist::Zipf { exponent } => {
                Some(Zipf::new(keys, exponent).expect("zipf parameters are checked"))
            }
        };
        KeyChooser { keys, zipf }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        let index = match &self.zipf {
            None => rng.gen_range(0..self.keys),
            // Rank 1 is the hottest key; spread ranks over the key space so hot keys are not
            // neighbours (which would flatter a range-partitioned store).
            Some(zipf) => scatter(zipf.sample(rng) as u64 - 1, self.keys),
        };
        assert!(index < self.keys);
        index
    }
}

/// Which keys each op draws from.
///
/// Without deletes in the mix every op draws from the whole key set. With deletes, the last
/// quarter of the key set (at least one key) is the churn range: DELETE draws only there and GET
/// only below it, so a GET never races a delete of its own key and every NoSuchKey it reports is
/// a real error. PUT and multipart draw from the whole set (re-creating deleted keys with the
/// same bytes); LIST names no key.
#[derive(Debug, Clone)]
pub struct KeyPicker {
    all: KeyChooser,
    /// With deletes: GETs' range `0..stable`, and the churn range `stable..keys`.
    split: Option<(KeyChooser, KeyChooser, u64)>,
}

impl KeyPicker {
    pub fn new(dist: KeyDist, keys: u64, mix: &OpMix) -> Result<KeyPicker, ConfigError> {
        let all = KeyChooser::new(dist, keys);
        if !mix.contains(Op::Delete) {
            return Ok(KeyPicker { all, split: None });
        }
        let churn = keys.div_ceil(4);
        let stable = keys - churn;
        if stable == 0 {
            if mix.contains(Op::Get) {
                return Err(ConfigError::Conflict(
                    "a mix of get and delete needs --keys 2 or more (deletes use their own keys)"
                        .to_owned(),
                ));
            }
            return Ok(KeyPicker { all, split: None });
        }
        let split = (
            KeyChooser::new(dist, stable),
            KeyChooser::new(dist, churn),
            stable,
        );
        Ok(KeyPicker {
            all,
            split: Some(split),
        })
    }

    /// The key index `op` uses next.
    pub fn pick(&self, op: Op, rng: &mut impl Rng) -> u64 {
        match (&self.split, op) {
            (Some((stable, _, _)), Op::Get) => stable.pick(rng),
            (Some((_, churn, offset)), Op::Delete) => offset + churn.pick(rng),
            _ => self.all.pick(rng),
        }
    }
}

/// A fixed bijection on `0..n` (multiplication by a constant coprime to n, mod n).
fn scatter(rank: u64, n: u64) -> u64 {
    let mut step = 0x9E37_79B9_7F4A_7C15_u64 % n.max(1);
    while step != 0 && gcd(step, n) != 1 {
        step -= 1;
    }
    if step == 0 {
        return rank % n;
    }
    ((u128::from(rank) * u128::from(step)) % u128::from(n)) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A 64-bit mix (SplitMix64's finaliser): deterministic per-key randomness from the seed.
pub fn mix64(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key set: names, sizes and byte offsets of every key, all derived from the seed.
#[derive(Debug, Clone)]
pub struct KeySpace {
    pub prefix: String,
    pub keys: u64,
    pub sizes: SizeDist,
    pub seed: u64,
}

impl KeySpace {
    /// Key `index` is `{prefix}{index:010}`; the prefix normally carries the seed.
    pub fn key_name(&self, index: u64) -> String {
        assert!(index < self.keys);
        format!("{}{index:010}", self.prefix)
    }

    /// The size of key `index`: the same on every PUT, so a GET can check the length.
    pub fn size_bytes(&self, index: u64) -> u64 {
        let mut rng = SmallRng::seed_from_u64(mix64(self.seed, index));
        self.sizes.sample(&mut rng)
    }

    /// Where in the payload buffer the bytes of key `index` start.
    pub fn offset_bytes(&self, index: u64, size_bytes: u64, payload: &Payload) -> u64 {
        let spread = payload.len_bytes() - size_bytes;
        mix64(self.seed ^ 0x5EED, index) % (spread + 1)
    }

    /// The body every PUT of key `index` writes (and every GET expects).
    pub fn body(&self, index: u64, payload: &Payload) -> Bytes {
        let size_bytes = self.size_bytes(index);
        let offset = self.offset_bytes(index, size_bytes, payload);
        payload.slice(offset, size_bytes)
    }
}

/// Writes every key of `keyspace` as the file `dir/bucket/key` holding the bytes a PUT of it
/// sends (`--write-files`); how many files. Keys hold `/`, so directories are created.
pub fn write_files(
    dir: &std::path::Path,
    bucket: &str,
    keyspace: &KeySpace,
    payload: &Payload,
) -> Result<u64, LoadgenError> {
    let root = dir.join(bucket);
    for index in 0..keyspace.keys {
        let path = root.join(keyspace.key_name(index));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, keyspace.body(index, payload)));
        written.map_err(|source| LoadgenError::Write { path, source })?;
    }
    Ok(keyspace.keys)
}

/// One buffer of random bytes that every request body is a slice of.
#[derive(Debug, Clone)]
pub struct Payload {
    buffer: Bytes,
}

impl Payload {
    /// A buffer big enough for `object_bytes_max` at `spread` different offsets.
    pub fn new(object_bytes_max: u64, seed: u64) -> Payload {
        assert!(object_bytes_max <= limits::OBJECT_SIZE_BYTES_MAX);
        let spread = limits::PAYLOAD_SPREAD_BYTES_MAX.min(object_bytes_max.max(4096));
        let mut buffer = vec![0_u8; (object_bytes_max + spread) as usize];
        SmallRng::seed_from_u64(mix64(seed, u64::MAX)).fill_bytes(&mut buffer);
        Payload {
            buffer: Bytes::from(buffer),
        }
    }

    pub fn len_bytes(&self) -> u64 {
        self.buffer.len() as u64
    }

    pub fn slice(&self, offset_bytes: u64, size_bytes: u64) -> Bytes {
        assert!(offset_bytes + size_bytes <= self.len_bytes());
        self.buffer
            .slice(offset_bytes as usize..(offset_bytes + size_bytes) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_respects_weights() {
        let mix = OpMix::parse("get=70,put=20,delete=5,list=5").unwrap();
        assert_eq!(mix.describe(), "get=70,put=20,delete=5,list=5");
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0_u32; 5];
        for _ in 0..100_000 {
            let picked = mix.pick(&mut rng);
            counts[Op::ALL.iter().position(|o| *o == picked).unwrap()] += 1;
        }
        assert!((69_000..71_000).contains(&counts[0]), "{counts:?}");
        assert!((19_000..21_000).contains(&counts[1]), "{counts:?}");
        assert!((4_500..5_500).contains(&counts[2]), "{counts:?}");
        assert!((4_500..5_500).contains(&counts[3]), "{counts:?}");
        assert_eq!(counts[4], 0);
        assert_eq!(OpMix::parse("get").unwrap().describe(), "get=1");
        assert!(OpMix::parse("get=1,get=2").is_err());
        assert!(OpMix::parse("fly=3").is_err());
        assert!(OpMix::parse("get=0").is_err());
        assert!(OpMix::parse("").is_err());
    }

    #[test]
    fn size_distributions_parse_and_stay_in_range() {
        let mut rng = SmallRng::seed_from_u64(7);
        assert_eq!(
            SizeDist::parse("4KiB").unwrap(),
            SizeDist::Fixed { size_bytes: 4096 }
        );
        let uniform = SizeDist::parse("uniform:1KiB..64KiB").unwrap();
        for _ in 0..10_000 {
            let s = uniform.sample(&mut rng);
            assert!((1024..=65_536).contains(&s));
        }
        let lognormal = SizeDist::parse("lognormal:64KiB,1.0").unwrap();
        assert_eq!(lognormal.size_bytes_max(), 4 << 20);
        let mut samples: Vec<u64> = (0..20_001).map(|_| lognormal.sample(&mut rng)).collect();
        samples.sort_unstable();
        let median = samples[10_000] as f64;
        assert!((median / 65_536.0 - 1.0).abs() < 0.1, "median {median}");
        assert!(samples.iter().all(|s| (1..=4 << 20).contains(s)));
        assert_eq!(lognormal.describe(), "lognormal:64KiB,1,4MiB");
        assert!(SizeDist::parse("uniform:64KiB..1KiB").is_err());
        assert!(SizeDist::parse("lognormal:64KiB").is_err());
        assert!(SizeDist::parse("2GiB").is_err());
    }

    #[test]
    fn zipf_keys_are_skewed_and_in_range() {
        let chooser = KeyChooser::new(KeyDist::parse("zipf:1.2").unwrap(), 1000);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts = vec![0_u32; 1000];
        for _ in 0..100_000 {
            counts[chooser.pick(&mut rng) as usize] += 1;
        }
        let hottest = *counts.iter().max().unwrap();
        // Rank 1 of zipf(1000, 1.2) draws about 26% of requests; uniform would give 0.1%.
        assert!(hottest > 20_000, "hottest key got {hottest}");
        let uniform = KeyChooser::new(KeyDist::Uniform, 1000);
        assert!((0..10_000).all(|_| uniform.pick(&mut rng) < 1000));
        assert!(KeyDist::parse("zipf:x").is_err());
        assert_eq!(
            KeyDist::parse("zipf").unwrap(),
            KeyDist::Zipf { exponent: 0.99 }
        );
    }

    #[test]
    fn gets_and_deletes_never_share_a_key() {
        let mix = OpMix::parse("get=50,put=20,delete=30").unwrap();
        let picker = KeyPicker::new(KeyDist::Uniform, 100, &mix).unwrap();
        let mut rng = SmallRng::seed_from_u64(9);
        let gets: Vec<u64> = (0..10_000)
            .map(|_| picker.pick(Op::Get, &mut rng))
            .collect();
        let deletes: Vec<u64> = (0..10_000)
            .map(|_| picker.pick(Op::Delete, &mut rng))
            .collect();
        assert!(
            gets.iter().all(|k| *k < 75),
            "gets stay below the churn range"
        );
        assert!(deletes.iter().all(|k| (75..100).contains(k)));
        assert!(deletes.contains(&75) && deletes.contains(&99));
        let puts: Vec<u64> = (0..10_000)
            .map(|_| picker.pick(Op::Put, &mut rng))
            .collect();
        assert!(puts.iter().any(|k| *k >= 75) && puts.iter().any(|k| *k < 75));
        // Without deletes GETs use every key.
        let plain = KeyPicker::new(KeyDist::Uniform, 100, &OpMix::parse("get").unwrap()).unwrap();
        assert!((0..10_000).any(|_| plain.pick(Op::Get, &mut rng) >= 75));
        assert!(KeyPicker::new(KeyDist::Uniform, 1, &mix).is_err());
        assert!(KeyPicker::new(KeyDist::Uniform, 1, &OpMix::parse("put,delete").unwrap()).is_ok());
    }

    #[test]
    fn scatter_is_a_permutation() {
        for n in [1_u64, 2, 7, 64, 1000, 4096] {
            let mut seen: Vec<u64> = (0..n).map(|r| scatter(r, n)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn written_files_hold_what_a_put_sends() {
        let space = KeySpace {
            prefix: "4KiB-s3/".to_owned(),
            keys: 20,
            sizes: SizeDist::parse("uniform:1..8KiB").unwrap(),
            seed: 3,
        };
        let payload = Payload::new(8192, 3);
        let dir = std::env::temp_dir().join(format!("loadgen-files-{}", std::process::id()));
        assert_eq!(write_files(&dir, "b", &space, &payload).unwrap(), 20);
        for i in 0..20 {
            let path = dir.join("b").join(space.key_name(i));
            assert_eq!(std::fs::read(path).unwrap(), space.body(i, &payload));
        }
        // A path that cannot be a directory is an error naming it, not a panic.
        let blocked = dir.join("file");
        std::fs::write(&blocked, b"x").unwrap();
        let err = write_files(&blocked, "b", &space, &payload).unwrap_err();
        assert!(err.to_string().contains("file/b/4KiB-s3"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_set_is_deterministic() {
        let space = KeySpace {
            prefix: "lg/".to_owned(),
            keys: 100,
            sizes: SizeDist::parse("uniform:1..8KiB").unwrap(),
            seed: 42,
        };
        let payload = Payload::new(8192, 42);
        assert_eq!(space.key_name(7), "lg/0000000007");
        for i in 0..100 {
            let a = space.body(i, &payload);
            let b = space.body(i, &payload);
            assert_eq!(a, b);
            assert_eq!(a.len() as u64, space.size_bytes(i));
        }
        let other = Payload::new(8192, 43);
        assert_ne!(payload.slice(0, 64), other.slice(0, 64));
    }
}
