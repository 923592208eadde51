//! Bucket lifecycle configuration: the rule model, its validation (S3's error codes and
//! messages), the conversion from and to s3s's DTOs, the stored record, and the pure decision
//! of which action a rule set takes on one object version at a given time.
//!
//! Owns: what a rule means. Does not own: scanning buckets, applying actions, the clock (the
//! worker passes `now_ms` and the length of a day, which the test clock shortens).
//!
//! Record (`C` ‖ bucket ‖ 0 ‖ `lifecycle`, on the bucket's metadata cores), little-endian:
//! version u8 (1) ‖ rule count u16 ‖ rules, each:
//! id str ‖ enabled u8 ‖ prefix str ‖ tag count u16 ‖ (key str ‖ value str)* ‖
//! size_gt opt u64 ‖ size_lt opt u64 ‖ expiration: tag u8 (0 none, 1 days u32, 2 date u64 ms,
//! 3 expired delete marker) ‖ transition count u16 ‖ (when: days u32 or date, as above with tag
//! 1 or 2 ‖ class str)* ‖ noncurrent expiration opt (days u32 ‖ newer opt u32) ‖ noncurrent
//! transition count u16 ‖ (days u32 ‖ newer opt u32 ‖ class str)* ‖ abort-multipart opt u32.
//! `str` = u16 length ‖ UTF-8; `opt` = u8 0/1 ‖ value.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, NoncurrentVersionTransition, Tag, Timestamp, Transition,
    TransitionStorageClass,
};
use s3s::{s3_error, S3Error, S3Result};

use crate::records::Malformed;

const VERSION: u8 = 1;
/// S3's limits.
pub const RULES_MAX: usize = 1000;
pub const RULE_ID_CHARS_MAX: usize = 255;
pub const NEWER_VERSIONS_MAX: u32 = 100;
/// The stored rules must fit one metadata value (with room to spare).
pub const RECORD_BYTES_MAX: usize = 128 * 1024;
const _: () = assert!(RECORD_BYTES_MAX < proto::limits::META_VALUE_BYTES_MAX as usize);
const DAY_MS: u64 = 86_400_000;

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
// From and to the S3 API, with S3's validation.

fn days(v: i32, what: &str) -> S3Result<u32> {
    if v <= 0 {
        return Err(s3_error!(
            InvalidArgument,
            "'Days' for {what} action must be a positive integer"
        ));
    }
    Ok(v as u32)
}

fn date_ms(t: &Timestamp) -> S3Result<u64> {
    let t = time::OffsetDateTime::from(t.clone());
    if t.time() != time::Time::MIDNIGHT || t.offset() != time::UtcOffset::UTC {
        return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
    }
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| s3_error!(InvalidArgument, "'Date' is before 1970"))
}

fn timestamp_of(ms: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

fn class(c: Option<&TransitionStorageClass>) -> S3Result<String> {
    let c = c.ok_or_else(|| s3_error!(MalformedXML, "a transition needs a StorageClass"))?;
    let c = c.as_str();
    if TRANSITION_CLASSES.contains(&c) {
        Ok(c.to_owned())
    } else {
        Err(s3_error!(
            InvalidStorageClass,
            "The storage class you specified is not valid for a transition: {c}"
        ))
    }
}

fn newer(v: Option<i32>) -> S3Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if n >= 1 && n as u32 <= NEWER_VERSIONS_MAX => Ok(Some(n as u32)),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "'NewerNoncurrentVersions' must be between 1 and {NEWER_VERSIONS_MAX}"
        )),
    }
}

fn tag_pair(t: &Tag) -> S3Result<(String, String)> {
    match (&t.key, &t.value) {
        (Some(k), v) if !k.is_empty() => Ok((k.clone(), v.clone().unwrap_or_default())),
        _ => Err(s3_error!(InvalidTag, "a lifecycle filter tag needs a key")),
    }
}

fn size(v: Option<i64>, what: &str) -> S3Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        Some(_) => Err(s3_error!(InvalidArgument, "'{what}' must not be negative")),
    }
}

fn filter_of(r: &LifecycleRule) -> S3Result<Filter> {
    let Some(f) = &r.filter else {
        return Ok(Filter {
            prefix: r.prefix.clone().unwrap_or_default(),
            ..Filter::default()
        });
    };
    if r.prefix.is_some() {
        return Err(s3_error!(
            MalformedXML,
            "a rule may have a Prefix or a Filter, not both"
        ));
    }
    let set = [
        f.prefix.is_some(),
        f.tag.is_some(),
        f.and.is_some(),
        f.object_size_greater_than.is_some(),
        f.object_size_less_than.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set > 1 {
        return Err(s3_error!(
            MalformedXML,
            "a Filter holds one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan or And"
        ));
    }
    let mut out = Filter {
        prefix: f.prefix.clone().unwrap_or_default(),
        tags: f.tag.iter().map(tag_pair).collect::<S3Result<_>>()?,
        size_gt: size(f.object_size_greater_than, "ObjectSizeGreaterThan")?,
        size_lt: size(f.object_size_less_than, "ObjectSizeLessThan")?,
    };
    if let Some(and) = &f.and {
        out.prefix = and.prefix.clone().unwrap_or_default();
        out.tags = and
            .tags
            .iter()
            .flatten()
            .map(tag_pair)
            .collect::<S3Result<_>>()?;
        out.size_gt = size(and.object_size_greater_than, "ObjectSizeGreaterThan")?;
        out.size_lt = size(and.object_size_less_than, "ObjectSizeLessThan")?;
        let mut names: Vec<&String> = out.tags.iter().map(|(k, _)| k).collect();
        names.sort();
        names.dedup();
        if names.len() != out.tags.len() {
            return Err(s3_error!(
                InvalidRequest,
                "duplicate tag keys in an And filter"
            ));
        }
    }
    // Bounds that also keep every stored string within its u16 length.
    if out.prefix.len() > crate::limits::KEY_BYTES_MAX {
        return Err(s3_error!(
            InvalidArgument,
            "the filter's Prefix is longer than a key may be"
        ));
    }
    if out.tags.len() > crate::limits::TAGS_MAX
        || out.tags.iter().any(|(k, v)| {
            k.chars().count() > crate::limits::TAG_KEY_CHARS_MAX
                || v.chars().count() > crate::limits::TAG_VALUE_CHARS_MAX
        })
    {
        return Err(s3_error!(
            InvalidTag,
            "the filter's tags exceed S3's limits"
        ));
    }
    if let (Some(g), Some(l)) = (out.size_gt, out.size_lt) {
        if g >= l {
            return Err(s3_error!(
                InvalidArgument,
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan"
            ));
        }
    }
    Ok(out)
}

fn expiration_of(e: &LifecycleExpiration) -> S3Result<Expiration> {
    let marker = e.expired_object_delete_marker.unwrap_or(false);
    match (e.days, &e.date, e.expired_object_delete_marker) {
        (Some(d), None, None) => Ok(Expiration::At(When::Days(days(d, "Expiration")?))),
        (None, Some(t), None) => Ok(Expiration::At(When::DateMs(date_ms(t)?))),
        (None, None, Some(_)) if marker => Ok(Expiration::ExpiredObjectDeleteMarker),
        (None, None, Some(_)) => Err(s3_error!(
            MalformedXML,
            "ExpiredObjectDeleteMarker must be true when given alone"
        )),
        _ => Err(s3_error!(
            MalformedXML,
            "Expiration holds one of Days, Date or ExpiredObjectDeleteMarker"
        )),
    }
}

fn transition_of(t: &Transition) -> S3Result<(When, String)> {
    let class = class(t.storage_class.as_ref())?;
    let when = match (t.days, &t.date) {
        (Some(d), None) if d >= 0 => When::Days(d as u32),
        (Some(_), None) => {
            return Err(s3_error!(
                InvalidArgument,
                "'Days' in the Transition action must be zero or positive"
            ))
        }
        (None, Some(t)) => When::DateMs(date_ms(t)?),
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "Transition holds one of Days or Date"
            ))
        }
    };
    if let When::Days(d) = when {
        if class == "STANDARD_IA" && d < 30 {
            return Err(s3_error!(
                InvalidArgument,
                "'Days' in Transition action must be greater than or equal to 30 for storageClass \
                 'STANDARD_IA'"
            ));
        }
    }
    Ok((when, class))
}

fn noncurrent_days(v: Option<i32>) -> S3Result<u32> {
    match v {
        Some(d) => days(d, "NoncurrentVersion"),
        None => Err(s3_error!(MalformedXML, "NoncurrentDays is required")),
    }
}

fn rule_of(r: &LifecycleRule) -> S3Result<Rule> {
    let id = r.id.clone().unwrap_or_default();
    if id.chars().count() > RULE_ID_CHARS_MAX {
        return Err(s3_error!(
            InvalidArgument,
            "ID length should not exceed allowed limit of {RULE_ID_CHARS_MAX}"
        ));
    }
    let filter = filter_of(r)?;
    let expiration = r.expiration.as_ref().map(expiration_of).transpose()?;
    let transitions: Vec<(When, String)> = r
        .transitions
        .iter()
        .flatten()
        .map(transition_of)
        .collect::<S3Result<_>>()?;
    let noncurrent_expiration = r
        .noncurrent_version_expiration
        .as_ref()
        .map(|e: &NoncurrentVersionExpiration| {
            Ok::<_, S3Error>(NoncurrentAction {
                days: noncurrent_days(e.noncurrent_days)?,
                newer_versions: newer(e.newer_noncurrent_versions)?,
            })
        })
        .transpose()?;
    let noncurrent_transitions = r
        .noncurrent_version_transitions
        .iter()
        .flatten()
        .map(|t: &NoncurrentVersionTransition| {
            Ok((
                NoncurrentAction {
                    days: noncurrent_days(t.noncurrent_days)?,
                    newer_versions: newer(t.newer_noncurrent_versions)?,
                },
                class(t.storage_class.as_ref())?,
            ))
        })
        .collect::<S3Result<Vec<_>>>()?;
    let abort_multipart_days = r
        .abort_incomplete_multipart_upload
        .as_ref()
        .map(
            |a: &AbortIncompleteMultipartUpload| match a.days_after_initiation {
                Some(d) => days(d, "AbortIncompleteMultipartUpload"),
                None => Err(s3_error!(MalformedXML, "DaysAfterInitiation is required")),
            },
        )
        .transpose()?;
    let rule = Rule {
        id,
        enabled: r.status.as_str() == ExpirationStatus::ENABLED,
        filter,
        expiration,
        transitions,
        noncurrent_expiration,
        noncurrent_transitions,
        abort_multipart_days,
    };
    check_rule(&rule, r.status.as_str())?;
    Ok(rule)
}

fn check_rule(rule: &Rule, status: &str) -> S3Result<()> {
    if status != ExpirationStatus::ENABLED && status != ExpirationStatus::DISABLED {
        return Err(s3_error!(
            MalformedXML,
            "Status must be Enabled or Disabled"
        ));
    }
    if rule.expiration.is_none()
        && rule.transitions.is_empty()
        && rule.noncurrent_expiration.is_none()
        && rule.noncurrent_transitions.is_empty()
        && rule.abort_multipart_days.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "At least one action needs to be specified in a rule"
        ));
    }
    let tagged = !rule.filter.tags.is_empty();
    if tagged && rule.expiration == Some(Expiration::ExpiredObjectDeleteMarker) {
        return Err(s3_error!(
            InvalidArgument,
            "ExpiredObjectDeleteMarker cannot be specified with object tags"
        ));
    }
    if tagged && rule.abort_multipart_days.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "AbortIncompleteMultipartUpload cannot be specified with Tags"
        ));
    }
    let mut classes: Vec<&str> = rule.transitions.iter().map(|(_, c)| c.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.len() != rule.transitions.len() {
        return Err(s3_error!(
            InvalidRequest,
            "Found two transitions to the same storage class in one rule"
        ));
    }
    if let Some(Expiration::At(When::Days(e))) = rule.expiration {
        if rule
            .transitions
            .iter()
            .any(|(w, _)| matches!(w, When::Days(t) if *t >= e))
        {
            return Err(s3_error!(
                InvalidArgument,
                "'Days' in the Expiration action must be greater than 'Days' in the Transition \
                 action"
            ));
        }
    }
    Ok(())
}

/// Validates a configuration as S3 does and returns its rules.
pub fn from_dto(cfg: &BucketLifecycleConfiguration) -> S3Result<Vec<Rule>> {
    if cfg.rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle configuration needs a rule"
        ));
    }
    if cfg.rules.len() > RULES_MAX {
        return Err(s3_error!(
            InvalidRequest,
            "a lifecycle configuration has at most {RULES_MAX} rules"
        ));
    }
    let mut rules: Vec<Rule> = cfg.rules.iter().map(rule_of).collect::<S3Result<_>>()?;
    for (i, r) in rules.iter().enumerate() {
        if !r.id.is_empty() && rules[..i].iter().any(|o| o.id == r.id) {
            return Err(s3_error!(
                InvalidArgument,
                "Rule ID must be unique: {}",
                r.id
            ));
        }
    }
    // A rule sent without an ID gets one, kept with the rule and shown by
    // GetBucketLifecycleConfiguration (as AWS does).
    for i in 0..rules.len() {
        if rules[i].id.is_empty() {
            let mut attempt = 0u32;
            rules[i].id = loop {
                let id = generated_rule_id(i, attempt);
                if rules.iter().all(|o| o.id != id) {
                    break id;
                }
                attempt += 1;
            };
        }
    }
    Ok(rules)
}

/// An ID for a rule sent without one: 32 hex digits from the standard library's per-process
/// random hash keys (no crate needed), unique within the configuration (the caller retries
/// with the next `attempt` on a collision).
fn generated_rule_id(index: usize, attempt: u32) -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |n: u8| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(index);
        h.write_u32(attempt);
        h.write_u8(n);
        h.finish()
    };
    format!("{:016x}{:016x}", half(0), half(1))
}

fn dto_tag((k, v): &(String, String)) -> Tag {
    Tag {
        key: Some(k.clone()),
        value: Some(v.clone()),
    }
}

fn dto_filter(f: &Filter) -> LifecycleRuleFilter {
    let parts = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_gt.is_some())
        + usize::from(f.size_lt.is_some());
    let mut out = LifecycleRuleFilter::default();
    if parts > 1 {
        out.and = Some(LifecycleRuleAndOperator {
            prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
            tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(dto_tag).collect()),
            object_size_greater_than: f.size_gt.map(|v| v as i64),
            object_size_less_than: f.size_lt.map(|v| v as i64),
        });
    } else {
        out.prefix = Some(f.prefix.clone());
        out.tag = f.tags.first().map(dto_tag);
        out.object_size_greater_than = f.size_gt.map(|v| v as i64);
        out.object_size_less_than = f.size_lt.map(|v| v as i64);
        if out.tag.is_some() || f.size_gt.is_some() || f.size_lt.is_some() {
            out.prefix = None;
        }
    }
    out
}

fn when_parts(w: When) -> (Option<i32>, Option<Timestamp>) {
    match w {
        When::Days(d) => (Some(d as i32), None),
        When::DateMs(ms) => (None, Some(timestamp_of(ms))),
    }
}

/// The stored rules as S3 shows them.
pub fn to_dto(rules: &[Rule]) -> Vec<LifecycleRule> {
    rules
        .iter()
        .map(|r| LifecycleRule {
            id: (!r.id.is_empty()).then(|| r.id.clone()),
            status: ExpirationStatus::from_static(if r.enabled {
                ExpirationStatus::ENABLED
            } else {
                ExpirationStatus::DISABLED
            }),
            filter: Some(dto_filter(&r.filter)),
            prefix: None,
            expiration: r.expiration.as_ref().map(|e| match e {
                Expiration::At(w) => {
                    let (days, date) = when_parts(*w);
                    LifecycleExpiration {
                        days,
                        date,
                        expired_object_delete_marker: None,
                    }
                }
                Expiration::ExpiredObjectDeleteMarker => LifecycleExpiration {
                    days: None,
                    date: None,
                    expired_object_delete_marker: Some(true),
                },
            }),
            transitions: (!r.transitions.is_empty()).then(|| {
                r.transitions
                    .iter()
                    .map(|(w, c)| {
                        let (days, date) = when_parts(*w);
                        Transition {
                            days,
                            date,
                            storage_class: Some(TransitionStorageClass::from(c.clone())),
                        }
                    })
                    .collect()
            }),
            noncurrent_version_expiration: r.noncurrent_expiration.as_ref().map(|a| {
                NoncurrentVersionExpiration {
                    noncurrent_days: Some(a.days as i32),
                    newer_noncurrent_versions: a.newer_versions.map(|n| n as i32),
                }
            }),
            noncurrent_version_transitions: (!r.noncurrent_transitions.is_empty()).then(|| {
                r.noncurrent_transitions
                    .iter()
                    .map(|(a, c)| NoncurrentVersionTransition {
                        noncurrent_days: Some(a.days as i32),
                        newer_noncurrent_versions: a.newer_versions.map(|n| n as i32),
                        storage_class: Some(TransitionStorageClass::from(c.clone())),
                    })
                    .collect()
            }),
            abort_incomplete_multipart_upload: r.abort_multipart_days.map(|d| {
                AbortIncompleteMultipartUpload {
                    days_after_initiation: Some(d as i32),
                }
            }),
        })
        .collect()
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

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), Malformed> {
        if self.0.remaining() < n {
            Err(Malformed("lifecycle record truncated"))
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        self.need(2)?;
        Ok(self.0.get_u16_le())
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        self.need(4)?;
        Ok(self.0.get_u32_le())
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        self.need(8)?;
        Ok(self.0.get_u64_le())
    }
    fn str(&mut self) -> Result<String, Malformed> {
        let n = usize::from(self.u16()?);
        self.need(n)?;
        let s = self.0.split_to(n);
        String::from_utf8(s.to_vec()).map_err(|_| Malformed("lifecycle string not UTF-8"))
    }
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
    let mut r = Reader(b);
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
    if r.0.has_remaining() {
        return Err(Malformed("lifecycle record has trailing bytes"));
    }
    Ok(rules)
}

/// The length of a real day, for callers without a test clock.
pub const fn real_day_ms() -> u64 {
    DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(f: impl FnOnce(&mut LifecycleRule)) -> LifecycleRule {
        let mut r = LifecycleRule {
            abort_incomplete_multipart_upload: None,
            expiration: None,
            filter: None,
            id: Some("r".into()),
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: Some("logs/".into()),
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            transitions: None,
        };
        f(&mut r);
        r
    }

    fn cfg(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
        BucketLifecycleConfiguration { rules }
    }

    fn code(r: S3Result<Vec<Rule>>) -> String {
        r.expect_err("invalid").code().as_str().to_owned()
    }

    fn expire_days(d: i32) -> LifecycleExpiration {
        LifecycleExpiration {
            days: Some(d),
            date: None,
            expired_object_delete_marker: None,
        }
    }

    fn to(class: &str, days: i32) -> Transition {
        Transition {
            days: Some(days),
            date: None,
            storage_class: Some(TransitionStorageClass::from(class.to_owned())),
        }
    }

    #[test]
    fn validation_matches_s3() {
        assert_eq!(
            code(from_dto(&cfg(vec![rule(|_| {})]))),
            "InvalidRequest",
            "no action"
        );
        assert_eq!(
            code(from_dto(&cfg(vec![rule(
                |r| r.expiration = Some(expire_days(0))
            )]))),
            "InvalidArgument"
        );
        let both = rule(|r| {
            r.expiration = Some(expire_days(1));
            r.filter = Some(LifecycleRuleFilter::default());
        });
        assert_eq!(code(from_dto(&cfg(vec![both]))), "MalformedXML");
        let ia = rule(|r| r.transitions = Some(vec![to("STANDARD_IA", 5)]));
        assert_eq!(code(from_dto(&cfg(vec![ia]))), "InvalidArgument");
        let bad = rule(|r| r.transitions = Some(vec![to("REDUCED_REDUNDANCY", 5)]));
        assert_eq!(code(from_dto(&cfg(vec![bad]))), "InvalidStorageClass");
        let order = rule(|r| {
            r.transitions = Some(vec![to("GLACIER", 10)]);
            r.expiration = Some(expire_days(10));
        });
        assert_eq!(code(from_dto(&cfg(vec![order]))), "InvalidArgument");
        let dup = vec![
            rule(|r| r.expiration = Some(expire_days(1))),
            rule(|r| r.expiration = Some(expire_days(2))),
        ];
        assert_eq!(code(from_dto(&cfg(dup))), "InvalidArgument");
        let two_filters = rule(|r| {
            r.prefix = None;
            r.expiration = Some(expire_days(1));
            r.filter = Some(LifecycleRuleFilter {
                prefix: Some("a".into()),
                object_size_greater_than: Some(5),
                ..LifecycleRuleFilter::default()
            });
        });
        assert_eq!(code(from_dto(&cfg(vec![two_filters]))), "MalformedXML");
        let sizes = rule(|r| {
            r.prefix = None;
            r.expiration = Some(expire_days(1));
            r.filter = Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    object_size_greater_than: Some(10),
                    object_size_less_than: Some(10),
                    ..LifecycleRuleAndOperator::default()
                }),
                ..LifecycleRuleFilter::default()
            });
        });
        assert_eq!(code(from_dto(&cfg(vec![sizes]))), "InvalidArgument");
        let noon = rule(|r| {
            r.expiration = Some(LifecycleExpiration {
                days: None,
                date: Some(timestamp_of(DAY_MS * 20_000 + 3_600_000)),
                expired_object_delete_marker: None,
            });
        });
        assert_eq!(code(from_dto(&cfg(vec![noon]))), "InvalidArgument");
    }

    #[test]
    fn rules_round_trip_through_the_record_and_the_api() {
        let full = rule(|r| {
            r.prefix = None;
            r.filter = Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: Some("a/".into()),
                    tags: Some(vec![Tag {
                        key: Some("k".into()),
                        value: Some("v".into()),
                    }]),
                    object_size_greater_than: Some(1),
                    object_size_less_than: Some(1000),
                }),
                ..LifecycleRuleFilter::default()
            });
            r.expiration = Some(expire_days(400));
            r.transitions = Some(vec![to("STANDARD_IA", 30), to("GLACIER", 90)]);
            r.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
                noncurrent_days: Some(7),
                newer_noncurrent_versions: Some(2),
            });
            r.noncurrent_version_transitions = Some(vec![NoncurrentVersionTransition {
                noncurrent_days: Some(3),
                newer_noncurrent_versions: None,
                storage_class: Some(TransitionStorageClass::from("DEEP_ARCHIVE".to_owned())),
            }]);
        });
        let dated = rule(|r| {
            r.id = Some("d".into());
            r.expiration = Some(LifecycleExpiration {
                days: None,
                date: Some(timestamp_of(DAY_MS * 20_000)),
                expired_object_delete_marker: None,
            });
            r.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
                days_after_initiation: Some(3),
            });
        });
        let rules = from_dto(&cfg(vec![full, dated])).unwrap();
        let bytes = encode(&rules);
        assert_eq!(decode(bytes.clone()).unwrap(), rules);
        assert!(decode(bytes.slice(..bytes.len() - 1)).is_err());
        let again = from_dto(&cfg(to_dto(&rules))).unwrap();
        assert_eq!(again, rules, "what GET shows is accepted by PUT unchanged");
    }

    #[test]
    fn actions_follow_s3_precedence() {
        let rules = from_dto(&cfg(vec![rule(|r| {
            r.expiration = Some(expire_days(100));
            r.transitions = Some(vec![to("STANDARD_IA", 30), to("GLACIER", 60)]);
            r.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
                noncurrent_days: Some(5),
                newer_noncurrent_versions: Some(1),
            });
        })]))
        .unwrap();
        let day = 1000;
        let facts = |class: &'static str| Facts {
            key: "logs/x",
            size: 10,
            tags: &[],
            created_ms: 0,
            class,
            current: true,
            delete_marker: false,
            noncurrent_since_ms: None,
            newer_noncurrent: 0,
            sole_delete_marker: false,
        };
        let at = |f: &Facts<'_>, d: u64| action_for(&rules, f, d * day, day);
        assert_eq!(at(&facts("STANDARD"), 29), None);
        assert_eq!(
            at(&facts("STANDARD"), 30),
            Some(Action::Transition("STANDARD_IA".into()))
        );
        assert_eq!(
            at(&facts("STANDARD"), 61),
            Some(Action::Transition("GLACIER".into())),
            "the coldest due class"
        );
        assert_eq!(at(&facts("GLACIER"), 61), None, "never back up");
        assert_eq!(at(&facts("GLACIER"), 100), Some(Action::Expire));
        let other = Facts {
            key: "data/x",
            ..facts("STANDARD")
        };
        assert_eq!(at(&other, 1000), None, "prefix filter");
        let old = Facts {
            current: false,
            noncurrent_since_ms: Some(10 * day),
            newer_noncurrent: 0,
            ..facts("STANDARD")
        };
        assert_eq!(at(&old, 16), None, "the newest noncurrent version is kept");
        let older = Facts {
            newer_noncurrent: 1,
            ..old.clone()
        };
        assert_eq!(at(&older, 14), None);
        assert_eq!(at(&older, 15), Some(Action::DeleteVersion));
    }
}
