//! The placement state: the PG tables of one layout version, stored next to the layout file so
//! that the next version starts from them (see `rebalance`). Once tables depend on history they
//! are no longer a function of the layout file alone, so every process must load the same state.
//! This module owns the state's value ([`State`]) and its byte format; it does not decide what
//! the tables hold, and it does no I/O (the CLI writes the bytes atomically).
//!
//! # Format 1 (all integers little-endian, fixed width)
//!
//! ```text
//! offset  size  field
//!      0     8  magic "PCPGTAB1"
//!      8     4  format_version u32 = 1
//!     12     4  kind u32 = 1 (PG tables)
//!     16     8  length_bytes u64: the whole file, trailer included
//!     24     8  layout_version u64 (the epoch the tables belong to)
//!     32     4  placement_groups u32 (P)
//!     36     4  tier_count u32 (0..=3)
//!     40        tier_count tier sections, tiers strictly increasing:
//!          +0     1  tier u8 (0 nvme, 1 ssd, 2 hdd)
//!          +1     1  depth u8 (1..=WIDTH_MAX)
//!          +2     2  reserved u16 = 0
//!          +4     4  member_count u32 (depth..=CORES_MAX)
//!          +8        member_count × 16 bytes, core ids strictly increasing:
//!                      node u64, index u16, reserved u16 = 0, weight u32 (1..=WEIGHT_MAX)
//!          ..        P × depth × u16: member index of each slot, row-major; a row holds
//!                    distinct members
//!    end-8     8  checksum u64: SipHash-2-4 keyed ("percore1", "pgtable1") of every byte
//!                 before it
//! ```
//!
//! A 100-core tier of depth 12 at P = 4096 takes 40 + 8 + 1600 + 98 304 + 8 bytes. Decoding
//! checks every field above and fails with a [`StateError`] naming the first violation.

use crate::error::StateError;
use crate::hash::siphash24;
use crate::layout::{CoreId, Layout, Tier};
use crate::limits;

/// The state file's magic.
pub const MAGIC: [u8; 8] = *b"PCPGTAB1";
/// The state format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Record kind of a state file holding PG tables.
pub const KIND_TABLES: u32 = 1;
/// Checksum key, first half: "percore1" little-endian.
pub const CHECKSUM_KEY0: u64 = u64::from_le_bytes(*b"percore1");
/// Checksum key, second half: "pgtable1" little-endian.
pub const CHECKSUM_KEY1: u64 = u64::from_le_bytes(*b"pgtable1");

const HEADER_BYTES: usize = 40;
const TIER_HEADER_BYTES: usize = 8;
const MEMBER_BYTES: usize = 16;
const CHECKSUM_BYTES: usize = 8;
const TIERS_MAX: usize = 3;

/// The largest valid state: three tiers of the most cores at the largest P and depth.
pub const STATE_BYTES_MAX: usize = HEADER_BYTES
    + TIERS_MAX
        * (TIER_HEADER_BYTES
            + limits::CORES_MAX * MEMBER_BYTES
            + limits::PLACEMENT_GROUPS_MAX as usize * limits::WIDTH_MAX * 2)
    + CHECKSUM_BYTES;

// Slots are stored as u16 member indices.
const _: () = assert!(limits::CORES_MAX <= u16::MAX as usize + 1);
const _: () = assert!(limits::WIDTH_MAX <= u8::MAX as usize);

/// The PG tables of one layout version, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The layout epoch the tables belong to.
    pub layout_version: u64,
    pub placement_groups: u32,
    /// One per tier, by tier.
    pub tables: Vec<StateTable>,
}

/// The stored table of one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTable {
    pub tier: Tier,
    pub depth: usize,
    /// The tier's cores and their weights when the table was made, sorted by id. The weights
    /// give the previous fair shares (see `rebalance`).
    pub members: Vec<(CoreId, u32)>,
    /// Index into `members` of every slot, row-major (`placement_groups × depth`).
    pub slots: Vec<u32>,
}

impl StateTable {
    /// The core of every slot, row-major.
    pub fn cores(&self) -> Vec<CoreId> {
        self.slots
            .iter()
            .map(|&m| self.members[m as usize].0)
            .collect()
    }
}

impl State {
    /// The tables of a built layout.
    pub fn of(layout: &Layout) -> State {
        let tables = layout
            .tables()
            .iter()
            .map(|t| StateTable {
                tier: t.tier(),
                depth: t.depth(),
                members: t.members().iter().map(|m| (m.id, m.weight)).collect(),
                slots: t.member_slots(),
            })
            .collect();
        State {
            layout_version: layout.version(),
            placement_groups: layout.placement_groups(),
            tables,
        }
    }

    /// The table of `tier`.
    pub fn table(&self, tier: Tier) -> Option<&StateTable> {
        self.tables.iter().find(|t| t.tier == tier)
    }

    /// Whether `bytes` start like a state file (the magic), as opposed to a layout TOML.
    pub fn is_state(bytes: &[u8]) -> bool {
        bytes.starts_with(&MAGIC)
    }

    /// The state in format 1.
    pub fn encode(&self) -> Vec<u8> {
        self.check().expect("a State built by this crate is valid");
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&KIND_TABLES.to_le_bytes());
        out.extend_from_slice(&(self.encoded_len() as u64).to_le_bytes());
        out.extend_from_slice(&self.layout_version.to_le_bytes());
        out.extend_from_slice(&self.placement_groups.to_le_bytes());
        out.extend_from_slice(&(self.tables.len() as u32).to_le_bytes());
        for t in &self.tables {
            out.push(tier_code(t.tier));
            out.push(t.depth as u8);
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&(t.members.len() as u32).to_le_bytes());
            for &(id, weight) in &t.members {
                out.extend_from_slice(&id.node.to_le_bytes());
                out.extend_from_slice(&id.index.to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(&weight.to_le_bytes());
            }
            for &m in &t.slots {
                out.extend_from_slice(&(m as u16).to_le_bytes());
            }
        }
        let checksum = siphash24(CHECKSUM_KEY0, CHECKSUM_KEY1, &out);
        out.extend_from_slice(&checksum.to_le_bytes());
        assert_eq!(out.len(), self.encoded_len());
        out
    }

    fn encoded_len(&self) -> usize {
        let tiers: usize = self
            .tables
            .iter()
            .map(|t| TIER_HEADER_BYTES + t.members.len() * MEMBER_BYTES + t.slots.len() * 2)
            .sum();
        HEADER_BYTES + tiers + CHECKSUM_BYTES
    }

    /// Parses and checks a state in format 1.
    pub fn decode(bytes: &[u8]) -> Result<State, StateError> {
        if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
            return Err(StateError::Truncated {
                size_bytes: bytes.len(),
            });
        }
        if bytes.len() > STATE_BYTES_MAX {
            return Err(StateError::TooLarge {
                size_bytes: bytes.len(),
                max_bytes: STATE_BYTES_MAX,
            });
        }
        if bytes[..8] != MAGIC {
            return Err(StateError::BadMagic);
        }
        let mut r = Reader { bytes, at: 8 };
        let format = r.u32();
        if format != FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat {
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        let kind = r.u32();
        if kind != KIND_TABLES {
            return Err(StateError::BadKind { found: kind });
        }
        let length = r.u64();
        if length != bytes.len() as u64 {
            return Err(StateError::LengthMismatch {
                header_bytes: length,
                size_bytes: bytes.len(),
            });
        }
        let body = bytes.len() - CHECKSUM_BYTES;
        let stored = u64::from_le_bytes(bytes[body..].try_into().expect("8 bytes"));
        let computed = siphash24(CHECKSUM_KEY0, CHECKSUM_KEY1, &bytes[..body]);
        if stored != computed {
            return Err(StateError::Checksum { stored, computed });
        }
        let r = Reader {
            bytes: &bytes[..body],
            at: r.at,
        };
        let state = decode_body(r)?;
        state.check()?;
        Ok(state)
    }

    /// The invariants of a state: P, tiers, depths, members and distinct rows.
    fn check(&self) -> Result<(), StateError> {
        let invalid = |reason: String| Err(StateError::Invalid { reason });
        let p = self.placement_groups;
        if !p.is_power_of_two() || p > limits::PLACEMENT_GROUPS_MAX {
            return invalid(format!("placement_groups {p} is not a power of two ≤ max"));
        }
        if self.tables.len() > TIERS_MAX || !self.tables.windows(2).all(|w| w[0].tier < w[1].tier) {
            return invalid("tiers are not strictly increasing".into());
        }
        for t in &self.tables {
            if !(1..=limits::WIDTH_MAX).contains(&t.depth) {
                return invalid(format!("tier {}: depth {}", t.tier, t.depth));
            }
            if t.members.len() < t.depth || t.members.len() > limits::CORES_MAX {
                return invalid(format!("tier {}: {} members", t.tier, t.members.len()));
            }
            if !t.members.windows(2).all(|w| w[0].0 < w[1].0) {
                return invalid(format!("tier {}: members not sorted by id", t.tier));
            }
            if let Some(&(id, w)) = t
                .members
                .iter()
                .find(|(_, w)| !(1..=limits::WEIGHT_MAX).contains(w))
            {
                return invalid(format!("tier {}: core {id} has weight {w}", t.tier));
            }
            if t.slots.len() != p as usize * t.depth {
                return invalid(format!("tier {}: {} slots", t.tier, t.slots.len()));
            }
            for (pg, row) in t.slots.chunks_exact(t.depth).enumerate() {
                for (i, &m) in row.iter().enumerate() {
                    if m as usize >= t.members.len() || row[..i].contains(&m) {
                        return invalid(format!("tier {}: row of PG {pg}", t.tier));
                    }
                }
            }
        }
        Ok(())
    }
}

fn decode_body(mut r: Reader<'_>) -> Result<State, StateError> {
    let layout_version = r.u64();
    let placement_groups = r.u32();
    let tier_count = r.u32() as usize;
    if tier_count > TIERS_MAX {
        return Err(StateError::Invalid {
            reason: format!("{tier_count} tiers"),
        });
    }
    if !placement_groups.is_power_of_two() || placement_groups > limits::PLACEMENT_GROUPS_MAX {
        return Err(StateError::Invalid {
            reason: format!("placement_groups {placement_groups}"),
        });
    }
    let mut tables = Vec::with_capacity(tier_count);
    for _ in 0..tier_count {
        r.need(TIER_HEADER_BYTES)?;
        let tier = tier_of(r.u8())?;
        let depth = usize::from(r.u8());
        let reserved = r.u16();
        let member_count = r.u32() as usize;
        if reserved != 0 || member_count > limits::CORES_MAX {
            return Err(StateError::Invalid {
                reason: format!("tier {tier}: header"),
            });
        }
        r.need(member_count * MEMBER_BYTES)?;
        let mut members = Vec::with_capacity(member_count);
        for _ in 0..member_count {
            let node = r.u64();
            let index = r.u16();
            let reserved = r.u16();
            let weight = r.u32();
            if reserved != 0 {
                return Err(StateError::Invalid {
                    reason: format!("tier {tier}: member reserved bytes"),
                });
            }
            members.push((CoreId { node, index }, weight));
        }
        let slot_count = placement_groups as usize * depth;
        r.need(slot_count * 2)?;
        let slots = (0..slot_count).map(|_| u32::from(r.u16())).collect();
        tables.push(StateTable {
            tier,
            depth,
            members,
            slots,
        });
    }
    if r.at != r.bytes.len() {
        return Err(StateError::Invalid {
            reason: format!("{} trailing bytes", r.bytes.len() - r.at),
        });
    }
    Ok(State {
        layout_version,
        placement_groups,
        tables,
    })
}

pub(crate) fn tier_code(tier: Tier) -> u8 {
    match tier {
        Tier::Nvme => 0,
        Tier::Ssd => 1,
        Tier::Hdd => 2,
    }
}

fn tier_of(code: u8) -> Result<Tier, StateError> {
    match code {
        0 => Ok(Tier::Nvme),
        1 => Ok(Tier::Ssd),
        2 => Ok(Tier::Hdd),
        _ => Err(StateError::Invalid {
            reason: format!("unknown tier code {code}"),
        }),
    }
}

/// A cursor over checked bytes: callers `need` a length before reading fixed-width fields.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), StateError> {
        if self.bytes.len() - self.at < n {
            return Err(StateError::Invalid {
                reason: format!("section past the end at offset {}", self.at),
            });
        }
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let out: [u8; N] = self.bytes[self.at..self.at + N]
            .try_into()
            .expect("callers check the length first");
        self.at += N;
        out
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}
