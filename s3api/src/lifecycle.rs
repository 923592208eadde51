//! Bucket lifecycle configuration in the S3 API: Put/Get/DeleteBucketLifecycleConfiguration,
//! the conversion of S3's configuration documents from and to the object service's rules
//! (`objects::lifecycle`: the rule model, its record and evaluation, and the background pass
//! that applies them), with S3's validation, error codes and messages.

use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, DeleteBucketLifecycleInput,
    DeleteBucketLifecycleOutput, ExpirationStatus, GetBucketLifecycleConfigurationInput,
    GetBucketLifecycleConfigurationOutput, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
    NoncurrentVersionTransition, PutBucketLifecycleConfigurationInput,
    PutBucketLifecycleConfigurationOutput, Tag, Timestamp, Transition, TransitionStorageClass,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::records::StorageClass;
use crate::s3::{s3_err, user_of, Gateway};
pub use objects::lifecycle::{
    action_for, decode, encode, Action, Expiration, Facts, Filter, NoncurrentAction, Rule, When,
    DAY_MS, NEWER_VERSIONS_MAX, RECORD_BYTES_MAX, RULES_MAX, RULE_ID_CHARS_MAX, TRANSITION_CLASSES,
};

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

impl Gateway {
    pub(crate) async fn lifecycle_put(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let bucket = self.owned_bucket(&input.bucket, &user).await?.scope;
        let cfg = input
            .lifecycle_configuration
            .ok_or_else(|| s3_error!(MalformedXML, "a LifecycleConfiguration is required"))?;
        let rules = from_dto(&cfg)?;
        for r in &rules {
            for class in r
                .transitions
                .iter()
                .map(|(_, c)| c)
                .chain(r.noncurrent_transitions.iter().map(|(_, c)| c))
            {
                let class = StorageClass::parse(class).expect("validated by from_dto");
                self.store.place(class, None).map_err(s3_err)?;
            }
        }
        let encoded = encode(&rules);
        if encoded.len() > RECORD_BYTES_MAX {
            return Err(s3_error!(
                InvalidRequest,
                "the lifecycle configuration is too large ({} bytes stored, at most {})",
                encoded.len(),
                RECORD_BYTES_MAX
            ));
        }
        self.store
            .put_lifecycle(&bucket, &encoded)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(crate) async fn lifecycle_get(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let user = user_of(&req)?;
        let bucket = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let rules = self
            .store
            .lifecycle_rules(&bucket)
            .await
            .map_err(s3_err)?
            .ok_or_else(|| s3_error!(NoSuchLifecycleConfiguration))?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(to_dto(&rules)),
            ..Default::default()
        }))
    }

    pub(crate) async fn lifecycle_delete(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let user = user_of(&req)?;
        let bucket = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        self.store.delete_lifecycle(&bucket).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
    }
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
