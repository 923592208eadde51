//! Storage-class policies: the [`Scheme`] (replicas r or EC k+m), the tier it targets and the
//! small-object path, and the documented default rule that picks the best scheme the failure
//! domains of a tier allow. What a policy means for the bytes (encoding, quorums) belongs to the
//! engine; this module only says how wide an object is and where it may live.

use std::fmt;

use crate::layout::Tier;
use crate::limits;

/// How an object's stripes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Each chunk stored whole on `n` cores.
    Replicas(u8),
    /// Each stripe as k data + m parity fragments on k + m cores.
    Ec { k: u8, m: u8 },
}

impl Scheme {
    /// Cores an object under this scheme is spread over (the PG list prefix it uses).
    pub fn width(self) -> usize {
        match self {
            Scheme::Replicas(n) => usize::from(n),
            Scheme::Ec { k, m } => usize::from(k) + usize::from(m),
        }
    }

    /// Fragments (or copies) that may be lost with the object still readable.
    pub fn tolerance(self) -> usize {
        match self {
            Scheme::Replicas(n) => usize::from(n).saturating_sub(1),
            Scheme::Ec { m, .. } => usize::from(m),
        }
    }

    /// Parses the layout file's `ec = "K+M"` notation (K ≥ 1, M ≥ 1).
    pub fn parse_ec(text: &str) -> Result<Scheme, String> {
        let (k, m) = text
            .split_once('+')
            .ok_or_else(|| format!("ec = {text:?}: expected \"K+M\", e.g. \"4+2\""))?;
        let k: u8 = k
            .trim()
            .parse()
            .map_err(|_| format!("ec = {text:?}: K is not a number"))?;
        let m: u8 = m
            .trim()
            .parse()
            .map_err(|_| format!("ec = {text:?}: M is not a number"))?;
        if k == 0 || m == 0 {
            return Err(format!(
                "ec = {text:?}: K and M must both be at least 1 (use replicas)"
            ));
        }
        Ok(Scheme::Ec { k, m })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Replicas(1) => write!(f, "1 copy"),
            Scheme::Replicas(n) => write!(f, "{n} replicas"),
            Scheme::Ec { k, m } => write!(f, "EC {k}+{m}"),
        }
    }
}

/// The policy of one storage class, as the layout defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPolicy {
    /// The scheme of objects at or above `small_object_bytes`.
    pub scheme: Scheme,
    /// The tier whose cores hold the fragments.
    pub tier: Tier,
    /// Objects below this size are stored as `small_replicas` copies when `scheme` is EC
    /// (0: never). Replicated schemes ignore it.
    pub small_object_bytes: u64,
    /// Copies of a small object.
    pub small_replicas: u8,
    /// Written in the layout file (false: chosen by the default rule).
    pub explicit: bool,
}

impl ClassPolicy {
    /// The scheme of an object of `size_bytes`.
    pub fn scheme_for(&self, size_bytes: u64) -> Scheme {
        match self.scheme {
            Scheme::Ec { .. } if size_bytes < self.small_object_bytes => {
                Scheme::Replicas(self.small_replicas)
            }
            scheme => scheme,
        }
    }

    /// The schemes this policy can produce (the small one first when it applies).
    pub fn schemes(&self) -> Vec<Scheme> {
        match self.scheme {
            Scheme::Ec { .. } if self.small_object_bytes > 0 => {
                vec![Scheme::Replicas(self.small_replicas), self.scheme]
            }
            scheme => vec![scheme],
        }
    }

    /// PG table positions this policy uses.
    pub fn depth(&self) -> usize {
        self.schemes()
            .into_iter()
            .map(Scheme::width)
            .max()
            .unwrap_or(0)
    }
}

/// The effective policy of one object: its scheme and the tier of its cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    pub scheme: Scheme,
    pub tier: Tier,
}

/// The storage classes that exist without being written in the layout file.
pub const DEFAULT_CLASSES: [&str; 4] = ["STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"];

/// The schemes the default rule tries for `class`, best first. STANDARD: EC 4+2, EC 2+2,
/// 3 replicas, 2 replicas. The others put EC 8+4 in front.
pub fn default_ladder(class: &str) -> &'static [Scheme] {
    const STANDARD: [Scheme; 4] = [
        Scheme::Ec { k: 4, m: 2 },
        Scheme::Ec { k: 2, m: 2 },
        Scheme::Replicas(3),
        Scheme::Replicas(2),
    ];
    const WIDE: [Scheme; 5] = [
        Scheme::Ec { k: 8, m: 4 },
        Scheme::Ec { k: 4, m: 2 },
        Scheme::Ec { k: 2, m: 2 },
        Scheme::Replicas(3),
        Scheme::Replicas(2),
    ];
    if class == "STANDARD" {
        &STANDARD
    } else {
        &WIDE
    }
}

/// The default tier of `class` among the tiers `present` (non-empty): GLACIER and DEEP_ARCHIVE
/// go to hdd when some core has it; everything else to the fastest tier present.
pub fn default_tier(class: &str, present: &[Tier]) -> Tier {
    assert!(!present.is_empty());
    let archive = matches!(class, "GLACIER" | "DEEP_ARCHIVE");
    if archive && present.contains(&Tier::Hdd) {
        return Tier::Hdd;
    }
    *present.iter().min().expect("present is not empty")
}

/// The default rule: the first scheme of `ladder` that fits the tier's cores and survives the
/// loss of one whole top-level failure domain; one copy when nothing else fits (a single core).
///
/// `domains` are the core counts of the tier's top-level failure domains: its zones when it
/// spans two or more, else its nodes when it spans two or more, else its cores (one each).
pub fn default_scheme(ladder: &[Scheme], domains: &[usize]) -> Scheme {
    let cores: usize = domains.iter().sum();
    assert!(cores > 0);
    ladder
        .iter()
        .copied()
        .find(|s| s.width() <= cores && waterfill_max(domains, s.width()) <= s.tolerance())
        .unwrap_or(Scheme::Replicas(1))
}

/// The default small-object copies: min(3, cores of the tier).
pub fn default_small_replicas(cores: usize) -> u8 {
    cores.min(usize::from(limits::SMALL_REPLICAS_DEFAULT)) as u8
}

/// The fewest fragments the fullest domain must hold when `width` fragments go to distinct
/// cores of domains with `capacities` cores each, spread as evenly as possible: the smallest L
/// with Σ min(capacity, L) ≥ width. The PG table achieves exactly this (see `table`).
pub fn waterfill_max(capacities: &[usize], width: usize) -> usize {
    assert!(capacities.iter().sum::<usize>() >= width);
    (0..=width)
        .find(|&l| capacities.iter().map(|&c| c.min(l)).sum::<usize>() >= width)
        .expect("L = width always fits")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-node rule the gateway uses (`cluster::ec::node_policy`): six or more cores
    /// EC 4+2, four or five EC 2+2, fewer min(3, cores) replicas; small objects min(3, cores).
    #[test]
    fn one_node_matches_the_gateway() {
        let want = [
            (1, Scheme::Replicas(1)),
            (2, Scheme::Replicas(2)),
            (3, Scheme::Replicas(3)),
            (4, Scheme::Ec { k: 2, m: 2 }),
            (5, Scheme::Ec { k: 2, m: 2 }),
            (6, Scheme::Ec { k: 4, m: 2 }),
            (12, Scheme::Ec { k: 4, m: 2 }),
        ];
        for (cores, scheme) in want {
            let domains = vec![1; cores];
            assert_eq!(default_scheme(default_ladder("STANDARD"), &domains), scheme);
            assert_eq!(default_small_replicas(cores), cores.min(3) as u8);
        }
        let twelve = vec![1; 12];
        assert_eq!(
            default_scheme(default_ladder("STANDARD_IA"), &twelve),
            Scheme::Ec { k: 8, m: 4 }
        );
    }

    #[test]
    fn rule_survives_a_top_level_domain() {
        // Two nodes of six cores: EC 4+2 would put three fragments on a node.
        assert_eq!(
            default_scheme(default_ladder("STANDARD"), &[6, 6]),
            Scheme::Ec { k: 2, m: 2 }
        );
        // Three zones: two fragments each.
        assert_eq!(
            default_scheme(default_ladder("STANDARD"), &[4, 4, 4]),
            Scheme::Ec { k: 4, m: 2 }
        );
        assert_eq!(
            default_scheme(default_ladder("GLACIER"), &[4, 4, 4]),
            Scheme::Ec { k: 8, m: 4 }
        );
        // A lopsided pair: one core and five.
        assert_eq!(
            default_scheme(default_ladder("STANDARD"), &[1, 5]),
            Scheme::Replicas(3)
        );
        assert_eq!(
            default_scheme(default_ladder("STANDARD"), &[1, 1]),
            Scheme::Replicas(2)
        );
    }

    #[test]
    fn waterfill() {
        assert_eq!(waterfill_max(&[1, 5], 4), 3);
        assert_eq!(waterfill_max(&[4, 4, 4], 6), 2);
        assert_eq!(waterfill_max(&[1, 1, 1, 1, 1, 1], 6), 1);
        assert_eq!(waterfill_max(&[12], 6), 6);
    }

    #[test]
    fn ec_notation() {
        assert_eq!(Scheme::parse_ec("4+2"), Ok(Scheme::Ec { k: 4, m: 2 }));
        assert_eq!(Scheme::parse_ec(" 8 + 4 "), Ok(Scheme::Ec { k: 8, m: 4 }));
        assert!(Scheme::parse_ec("4").is_err());
        assert!(Scheme::parse_ec("0+2").is_err());
        assert!(Scheme::parse_ec("4+0").is_err());
        assert!(Scheme::parse_ec("4+x").is_err());
    }
}
