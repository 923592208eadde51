//! Bucket lifecycle rules in the object service's terms: the rule model, the stored record
//! and the pure decision of which action a rule set takes on one object version at a given
//! time; and the background pass that applies them (`pass`).
//!
//! Owns: what a rule means, how it is stored, and the pass. Does not own: the S3 API's
//! configuration documents and their validation with S3's error codes (the S3 layer's
//! `lifecycle` converts them to and from [`Rule`]s).
//!
//! Record (`C` ‖ bucket ‖ 0 ‖ `lifecycle`, on the bucket's metadata cores), little-endian:
//! version u8 (1) ‖ rule count u16 ‖ rules, each:
//! id str ‖ enabled u8 ‖ prefix str ‖ tag count u16 ‖ (key str ‖ value str)* ‖
//! size_gt opt u64 ‖ size_lt opt u64 ‖ expiration: tag u8 (0 none, 1 days u32, 2 date u64 ms,
//! 3 expired delete marker) ‖ transition count u16 ‖ (when: days u32 or date, as above with tag
//! 1 or 2 ‖ class str)* ‖ noncurrent expiration opt (days u32 ‖ newer opt u32) ‖ noncurrent
//! transition count u16 ‖ (days u32 ‖ newer opt u32 ‖ class str)* ‖ abort-multipart opt u32.
//! `str` = u16 length ‖ UTF-8; `opt` = u8 0/1 ‖ value.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::records::{Malformed, Reader};
use crate::store::Store;

pub mod pass;

pub use pass::{LifecycleStats, IT_INFREQUENT_DAYS};

const VERSION: u8 = 1;
/// S3's limits.
pub const RULES_MAX: usize = 1000;
pub const RULE_ID_CHARS_MAX: usize = 255;
pub const NEWER_VERSIONS_MAX: u32 = 100;
/// The stored rules must fit one metadata value (with room to spare).
pub const RECORD_BYTES_MAX: usize = 128 * 1024;
const _: () = assert!(RECORD_BYTES_MAX < proto::limits::META_VALUE_BYTES_MAX as usize);
/// A real day (the test clock shortens the days the pass counts: `Store::days`).
pub const DAY_MS: u64 = 86_400_000;

/// The storage classes a transition may target (percore's classes other than STANDARD).
pub const TRANSITION_CLASSES: [&str; 4] = [
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
];

/// When an action applies: days after the object's creation (or after it became noncurrent),
/// or from a date on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Days(u32),
    DateMs(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiration {
    At(When),
    /// Remove a delete marker that no longer hides any version.
    ExpiredObjectDeleteMarker,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    pub prefix: String,
    pub tags: Vec<(String, String)>,
    pub size_gt: Option<u64>,
    pub size_lt: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoncurrentAction {
    pub days: u32,
    /// Keep this many newer noncurrent versions whatever their age.
    pub newer_versions: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    pub expiration: Option<Expiration>,
    pub transitions: Vec<(When, String)>,
    pub noncurrent_expiration: Option<NoncurrentAction>,
    pub noncurrent_transitions: Vec<(NoncurrentAction, String)>,
    pub abort_multipart_days: Option<u32>,
}

/// What the worker knows of one object version.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub key: &'a str,
    pub size: u64,
    pub tags: &'a [(String, String)],
    pub created_ms: u64,
    pub class: &'a str,
    /// The latest version of its key.
    pub current: bool,
    pub delete_marker: bool,
    /// For a noncurrent version: when it stopped being current.
    pub noncurrent_since_ms: Option<u64>,
    /// Noncurrent versions of the key newer than this one.
    pub newer_noncurrent: u32,
    /// For a current delete marker: no other version of the key is left.
    pub sole_delete_marker: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Current version: expire it (a delete marker in a versioned bucket, a delete otherwise).
    Expire,
    /// Remove this version permanently (noncurrent expiration, an expired delete marker).
    DeleteVersion,
    /// Re-store under another class.
    Transition(String),
}

impl Filter {
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        f.key.starts_with(&self.prefix)
            && self.tags.iter().all(|t| f.tags.contains(t))
            && self.size_gt.is_none_or(|g| f.size > g)
            && self.size_lt.is_none_or(|l| f.size < l)
    }
}

fn due(when: When, since_ms: u64, now_ms: u64, day_ms: u64) -> bool {
    match when {
        When::Days(d) => now_ms >= since_ms.saturating_add(u64::from(d).saturating_mul(day_ms)),
        When::DateMs(t) => now_ms >= t,
    }
}

/// Rank of a class on the way to colder storage: a transition never goes back up.
fn coldness(class: &str) -> u8 {
    match class {
        "STANDARD_IA" | "INTELLIGENT_TIERING" => 1,
        "GLACIER" => 2,
        "DEEP_ARCHIVE" => 3,
        _ => 0,
    }
}

/// The action the enabled rules take on a version now, if any. Expiration wins over
/// transition; among transitions the coldest due one wins (S3's precedence).
pub fn action_for(rules: &[Rule], f: &Facts<'_>, now_ms: u64, day_ms: u64) -> Option<Action> {
    let mut transition: Option<&'static str> = None;
    let mut consider = |class: &str| {
        let Some(class) = TRANSITION_CLASSES.iter().copied().find(|c| *c == class) else {
            return;
        };
        if coldness(class) > coldness(f.class)
            && transition.is_none_or(|t| coldness(class) > coldness(t))
        {
            transition = Some(class);
        }
    };
    for r in rules.iter().filter(|r| r.enabled && r.filter.matches(f)) {
        if f.current {
            match (&r.expiration, f.delete_marker) {
                (Some(Expiration::ExpiredObjectDeleteMarker), true) if f.sole_delete_marker => {
                    return Some(Action::DeleteVersion)
                }
                (Some(Expiration::At(w)), false) if due(*w, f.created_ms, now_ms, day_ms) => {
                    return Some(Action::Expire)
                }
                _ => {}
            }
            if !f.delete_marker {
                for (w, class) in &r.transitions {
                    if due(*w, f.created_ms, now_ms, day_ms) {
                        consider(class);
                    }
                }
            }
        } else if let Some(since) = f.noncurrent_since_ms {
            let applies = |a: &NoncurrentAction| {
                due(When::Days(a.days), since, now_ms, day_ms)
                    && a.newer_versions.is_none_or(|n| f.newer_noncurrent >= n)
            };
            if r.noncurrent_expiration.as_ref().is_some_and(applies) {
                return Some(Action::DeleteVersion);
            }
            if !f.delete_marker {
                for (a, class) in &r.noncurrent_transitions {
                    if applies(a) {
                        consider(class);
                    }
                }
            }
        }
    }
    transition.map(|c| Action::Transition(c.to_owned()))
}

/// Whether an upload started at `initiated_ms` is to be aborted now.
pub fn abort_upload(
    rules: &[Rule],
    key: &str,
    initiated_ms: u64,
    now_ms: u64,
    day_ms: u64,
) -> bool {
    rules.iter().any(|r| {
        r.enabled
            && key.starts_with(&r.filter.prefix)
            && r.abort_multipart_days
                .is_some_and(|d| due(When::Days(d), initiated_ms, now_ms, day_ms))
    })
}

// ---------------------------------------------------------------------------------------------
// The stored record.

/// `C` ‖ bucket ‖ 0 ‖ `lifecycle`.
pub fn config_key(bucket: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(bucket.len() + 11);
    k.put_u8(b'C');
    k.put_slice(bucket.as_bytes());
    k.put_u8(0);
    k.put_slice(b"lifecycle");
    k.freeze()
}

fn put_str(b: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len()).expect("validated lengths fit u16");
    b.put_u16_le(len);
    b.put_slice(s.as_bytes());
}

fn put_opt(b: &mut BytesMut, v: Option<u64>) {
    match v {
        Some(v) => {
            b.put_u8(1);
            b.put_u64_le(v);
        }
        None => b.put_u8(0),
    }
}

fn put_when(b: &mut BytesMut, w: When) {
    match w {
        When::Days(d) => {
            b.put_u8(1);
            b.put_u32_le(d);
        }
        When::DateMs(ms) => {
            b.put_u8(2);
            b.put_u64_le(ms);
        }
    }
}

fn put_noncurrent(b: &mut BytesMut, a: &NoncurrentAction) {
    b.put_u32_le(a.days);
    put_opt(b, a.newer_versions.map(u64::from));
}

pub fn encode(rules: &[Rule]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(VERSION);
    b.put_u16_le(rules.len() as u16);
    for r in rules {
        put_str(&mut b, &r.id);
        b.put_u8(u8::from(r.enabled));
        put_str(&mut b, &r.filter.prefix);
        b.put_u16_le(r.filter.tags.len() as u16);
        for (k, v) in &r.filter.tags {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        put_opt(&mut b, r.filter.size_gt);
        put_opt(&mut b, r.filter.size_lt);
        match &r.expiration {
            None => b.put_u8(0),
            Some(Expiration::At(w)) => put_when(&mut b, *w),
            Some(Expiration::ExpiredObjectDeleteMarker) => b.put_u8(3),
        }
        b.put_u16_le(r.transitions.len() as u16);
        for (w, c) in &r.transitions {
            put_when(&mut b, *w);
            put_str(&mut b, c);
        }
        match &r.noncurrent_expiration {
            None => b.put_u8(0),
            Some(a) => {
                b.put_u8(1);
                put_noncurrent(&mut b, a);
            }
        }
        b.put_u16_le(r.noncurrent_transitions.len() as u16);
        for (a, c) in &r.noncurrent_transitions {
            put_noncurrent(&mut b, a);
            put_str(&mut b, c);
        }
        put_opt(&mut b, r.abort_multipart_days.map(u64::from));
    }
    b.freeze()
}

/// Lifecycle rules' own fields, over the shared record reader.
trait RuleFields {
    fn opt(&mut self) -> Result<Option<u64>, Malformed>;
    fn opt_u32(&mut self) -> Result<Option<u32>, Malformed>;
    fn when(&mut self, tag: u8) -> Result<When, Malformed>;
    fn noncurrent(&mut self) -> Result<NoncurrentAction, Malformed>;
}

impl RuleFields for Reader {
    fn opt(&mut self) -> Result<Option<u64>, Malformed> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.u64().map(Some),
            _ => Err(Malformed("lifecycle option tag")),
        }
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, Malformed> {
        self.opt()?
            .map(|v| u32::try_from(v).map_err(|_| Malformed("lifecycle count")))
            .transpose()
    }
    fn when(&mut self, tag: u8) -> Result<When, Malformed> {
        match tag {
            1 => Ok(When::Days(self.u32()?)),
            2 => Ok(When::DateMs(self.u64()?)),
            _ => Err(Malformed("lifecycle time tag")),
        }
    }
    fn noncurrent(&mut self) -> Result<NoncurrentAction, Malformed> {
        Ok(NoncurrentAction {
            days: self.u32()?,
            newer_versions: self.opt_u32()?,
        })
    }
}

pub fn decode(b: Bytes) -> Result<Vec<Rule>, Malformed> {
    let mut r = Reader::new(b, "lifecycle");
    if r.u8()? != VERSION {
        return Err(Malformed("unknown lifecycle record version"));
    }
    let n = r.u16()?;
    let mut rules = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let id = r.str()?;
        let enabled = r.u8()? == 1;
        let mut filter = Filter {
            prefix: r.str()?,
            ..Filter::default()
        };
        for _ in 0..r.u16()? {
            filter.tags.push((r.str()?, r.str()?));
        }
        filter.size_gt = r.opt()?;
        filter.size_lt = r.opt()?;
        let expiration = match r.u8()? {
            0 => None,
            3 => Some(Expiration::ExpiredObjectDeleteMarker),
            t => Some(Expiration::At(r.when(t)?)),
        };
        let mut transitions = Vec::new();
        for _ in 0..r.u16()? {
            let t = r.u8()?;
            transitions.push((r.when(t)?, r.str()?));
        }
        let noncurrent_expiration = match r.u8()? {
            0 => None,
            1 => Some(r.noncurrent()?),
            _ => return Err(Malformed("lifecycle option tag")),
        };
        let mut noncurrent_transitions = Vec::new();
        for _ in 0..r.u16()? {
            noncurrent_transitions.push((r.noncurrent()?, r.str()?));
        }
        let abort_multipart_days = r.opt_u32()?;
        rules.push(Rule {
            id,
            enabled,
            filter,
            expiration,
            transitions,
            noncurrent_expiration,
            noncurrent_transitions,
            abort_multipart_days,
        });
    }
    if !r.is_done() {
        return Err(Malformed("lifecycle record has trailing bytes"));
    }
    Ok(rules)
}

/// The length of a real day, for callers without a test clock.
pub const fn real_day_ms() -> u64 {
    DAY_MS
}

impl Store {
    /// A bucket's lifecycle rules (`None`: no configuration).
    pub async fn lifecycle_rules(&self, bucket: &str) -> Result<Option<Vec<Rule>>> {
        let entry = self
            .backend
            .meta_get(&self.bucket_cores(bucket), &config_key(bucket))
            .await?;
        entry
            .map(|e| decode(e.value).map_err(|e| Error::Damaged(e.to_string())))
            .transpose()
    }

    /// Stores a bucket's lifecycle rules, `encoded` (by [`encode`], at most
    /// [`RECORD_BYTES_MAX`]), replacing any. A configuration written to an incarnation deleted
    /// meanwhile is reclaimed with it (`settle_live`).
    pub async fn put_lifecycle(&self, bucket: &str, encoded: &Bytes) -> Result<()> {
        assert!(encoded.len() <= RECORD_BYTES_MAX, "checked by the caller");
        let hlc = self.backend.hlc();
        self.backend
            .meta_put(
                &self.bucket_cores(bucket),
                &config_key(bucket),
                encoded,
                hlc,
            )
            .await?;
        self.settle_live(bucket).await.map_err(|e| e.error)
    }

    /// Removes a bucket's lifecycle rules (none to remove is no error, as in S3).
    pub async fn delete_lifecycle(&self, bucket: &str) -> Result<()> {
        let hlc = self.backend.hlc();
        self.backend
            .meta_delete(&self.bucket_cores(bucket), &config_key(bucket), hlc)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_every_cut_is_refused() {
        let rule = Rule {
            id: "r1".into(),
            enabled: true,
            filter: Filter {
                prefix: "logs/é".into(),
                tags: vec![("k".into(), "v".into())],
                size_gt: Some(1),
                size_lt: None,
            },
            expiration: Some(Expiration::At(When::DateMs(1_700_000_000_000))),
            transitions: vec![(When::Days(30), "GLACIER".into())],
            noncurrent_expiration: Some(NoncurrentAction {
                days: 7,
                newer_versions: Some(2),
            }),
            noncurrent_transitions: vec![(
                NoncurrentAction {
                    days: 1,
                    newer_versions: None,
                },
                "STANDARD_IA".into(),
            )],
            abort_multipart_days: Some(3),
        };
        let whole = encode(std::slice::from_ref(&rule));
        assert_eq!(decode(whole.clone()).expect("whole"), vec![rule]);
        for cut in 0..whole.len() {
            assert!(decode(whole.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = whole.to_vec();
        longer.push(0);
        assert!(decode(Bytes::from(longer)).is_err(), "trailing bytes");
    }
}
