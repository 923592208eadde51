//! S3 Object Lock: a bucket's lock configuration (enabled, default retention), each object
//! version's retention (GOVERNANCE or COMPLIANCE until a date) and legal hold, and the rule
//! that decides whether a version may be deleted or its retention changed.
//!
//! Where the state lives: the bucket record's `object_lock` flag (never cleared; versioning then
//! stays Enabled), the default retention as the bucket configuration record `object-lock`
//! (`bucket_config`), and a version's state in its head and its version record
//! (`records::ObjectLock`, head format 7), changed by compare-and-swap of each record.
//!
//! Where it is enforced: the object service's `delete_version` (`objects::versions`), the
//! one place a version is removed (DeleteObject and DeleteObjects with a versionId, the
//! lifecycle worker's noncurrent expirations), judges the record it is about to remove by
//! `objects::versions::delete_refused` (a refusal is 403 AccessDenied); only the
//! reclaim of a deleted bucket incarnation (unreachable by any name) skips it. A write over a
//! key never removes a version in a lock bucket (versioning is Enabled and cannot be
//! suspended), and tiering moves keep the head's lock fields.
//!
//! Who may bypass governance retention: the access gate (`authz`) decides it when a request
//! carries `x-amz-bypass-governance-retention: true` — the bucket owner unless the policy
//! denies it, anyone else only with `s3:BypassGovernanceRetention` from the bucket policy.
//!
//! Not done here: the object-lock token of replication (percore does not replicate buckets).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use s3s::dto::{
    DefaultRetention, GetObjectLegalHoldInput, GetObjectLegalHoldOutput,
    GetObjectLockConfigurationInput, GetObjectLockConfigurationOutput, GetObjectRetentionInput,
    GetObjectRetentionOutput, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, PutObjectLegalHoldInput, PutObjectLegalHoldOutput,
    PutObjectLockConfigurationInput, PutObjectLockConfigurationOutput, PutObjectRetentionInput,
    PutObjectRetentionOutput, Timestamp,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::limits::{
    LOCK_DEFAULT_DAYS_MAX as DEFAULT_DAYS_MAX, LOCK_DEFAULT_YEARS_MAX as DEFAULT_YEARS_MAX,
    LOCK_SWAP_TRIES_MAX,
};
use crate::records::{
    head_key, version_key, LockMode, ObjectHead, ObjectLock, Retention, VersionRecord, Versioning,
};
use crate::s3::{now_ms, s3_err, timestamp, user_of, Gateway, Owned};

/// The bucket configuration record's name (`bucket_config`).
pub const CONFIG_NAME: &str = "object-lock";
const DAY_MS: u64 = 86_400_000;
/// A retention year, as S3 counts a default retention's Years.
const YEAR_DAYS: u64 = 365;
/// The stored configuration's format.
const CONFIG_FORMAT: u8 = 1;
// The longest default retention, added to any date before 2^62 ms, cannot overflow.
const _: () = assert!((DEFAULT_YEARS_MAX as u64) * YEAR_DAYS * DAY_MS < (1u64 << 62));
const _: () = assert!((DEFAULT_DAYS_MAX as u64) * DAY_MS < (1u64 << 62));

/// A bucket's default retention: mode and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRule {
    pub mode: LockMode,
    pub period: Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Years(u32),
}

impl Period {
    fn ms(self) -> u64 {
        match self {
            Period::Days(d) => u64::from(d) * DAY_MS,
            Period::Years(y) => u64::from(y) * YEAR_DAYS * DAY_MS,
        }
    }
}

/// format u8 (1) ‖ mode u8 (0: no default retention) ‖ (unit u8: 1 days, 2 years ‖ count
/// u32, with a mode).
pub fn encode_config(rule: Option<&DefaultRule>) -> Bytes {
    let mut b = BytesMut::with_capacity(7);
    b.put_u8(CONFIG_FORMAT);
    match rule {
        None => b.put_u8(0),
        Some(r) => {
            b.put_u8(match r.mode {
                LockMode::Governance => 1,
                LockMode::Compliance => 2,
            });
            let (unit, n) = match r.period {
                Period::Days(d) => (1, d),
                Period::Years(y) => (2, y),
            };
            b.put_u8(unit);
            b.put_u32_le(n);
        }
    }
    b.freeze()
}

/// The stored configuration (a record that does not parse is an internal error).
pub fn decode_config(mut b: Bytes) -> Result<Option<DefaultRule>, &'static str> {
    let bad = "malformed object lock configuration record";
    if b.remaining() < 2 || b.get_u8() != CONFIG_FORMAT {
        return Err(bad);
    }
    let mode = match b.get_u8() {
        0 if !b.has_remaining() => return Ok(None),
        1 => LockMode::Governance,
        2 => LockMode::Compliance,
        _ => return Err(bad),
    };
    if b.remaining() != 5 {
        return Err(bad);
    }
    let unit = b.get_u8();
    let n = b.get_u32_le();
    let period = match unit {
        1 if (1..=DEFAULT_DAYS_MAX).contains(&n) => Period::Days(n),
        2 if (1..=DEFAULT_YEARS_MAX).contains(&n) => Period::Years(n),
        _ => return Err(bad),
    };
    Ok(Some(DefaultRule { mode, period }))
}

/// Checks a PutObjectLockConfiguration body: `ObjectLockEnabled` must be `Enabled`; a rule
/// needs a mode and exactly one of Days and Years, positive and within S3's bounds.
pub fn parse_config(config: Option<ObjectLockConfiguration>) -> S3Result<Option<DefaultRule>> {
    let Some(config) = config else {
        return Err(s3_error!(
            MalformedXML,
            "ObjectLockConfiguration is missing"
        ));
    };
    match config
        .object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
    {
        Some("Enabled") => {}
        _ => return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled")),
    }
    let Some(rule) = config.rule else {
        return Ok(None);
    };
    let Some(retention) = rule.default_retention else {
        return Err(s3_error!(MalformedXML, "Rule needs a DefaultRetention"));
    };
    let mode = retention
        .mode
        .as_ref()
        .and_then(|m| LockMode::parse(m.as_str()))
        .ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "DefaultRetention needs a Mode, GOVERNANCE or COMPLIANCE"
            )
        })?;
    let positive = |n: i32, max: u32, what: &str| -> S3Result<u32> {
        match u32::try_from(n) {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(s3_error!(
                InvalidArgument,
                "Default retention period must be a positive integer value of at most {max} {what}"
            )),
        }
    };
    let period = match (retention.days, retention.years) {
        (Some(d), None) => Period::Days(positive(d, DEFAULT_DAYS_MAX, "days")?),
        (None, Some(y)) => Period::Years(positive(y, DEFAULT_YEARS_MAX, "years")?),
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "DefaultRetention needs exactly one of Days and Years"
            ))
        }
    };
    Ok(Some(DefaultRule { mode, period }))
}

fn shown_config(rule: Option<DefaultRule>) -> ObjectLockConfiguration {
    ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule: rule.map(|r| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(r.mode.as_str().to_owned())),
                days: match r.period {
                    Period::Days(d) => Some(d as i32),
                    Period::Years(_) => None,
                },
                years: match r.period {
                    Period::Years(y) => Some(y as i32),
                    Period::Days(_) => None,
                },
            }),
        }),
    }
}

/// Whether a version with `lock` is protected from deletion at `now_ms` by anything (what
/// the lifecycle worker skips).
pub fn holds(lock: &ObjectLock, now_ms: u64) -> bool {
    objects::versions::lock_protection(lock, now_ms).is_some()
}

/// Whether the retention of a version may go from `old` to `new` at `now_ms` (`bypass` as
/// in `objects::versions::delete_refused`): an active COMPLIANCE retention may only be extended, by anyone; an
/// active GOVERNANCE one may be extended, and shortened, removed or changed in mode only
/// with the bypass. An expired retention is no retention.
pub fn retention_refusal(
    old: Option<Retention>,
    new: Option<Retention>,
    now_ms: u64,
    bypass: bool,
) -> Option<S3Error> {
    let old = old.filter(|r| r.until_ms > now_ms)?;
    let extends = new.is_some_and(|n| n.mode == old.mode && n.until_ms >= old.until_ms);
    let allowed = extends || (old.mode == LockMode::Governance && bypass);
    (!allowed).then(|| {
        s3_error!(
            AccessDenied,
            "Access Denied because object protected by object lock."
        )
    })
}

fn ms_of(t: &Timestamp) -> S3Result<u64> {
    let t = time::OffsetDateTime::from(t.clone());
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "The retain until date must be in the future!"
        )
    })
}

/// A retention a request asks for (mode and date both given or neither), the date in the
/// future.
fn requested_retention(
    mode: Option<&str>,
    until: Option<&Timestamp>,
    now_ms: u64,
) -> S3Result<Option<Retention>> {
    match (mode, until) {
        (None, None) => Ok(None),
        (Some(mode), Some(until)) => {
            let mode = LockMode::parse(mode).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Unknown wormMode directive: the mode must be GOVERNANCE or COMPLIANCE"
                )
            })?;
            let until_ms = ms_of(until)?;
            if until_ms <= now_ms {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Ok(Some(Retention { mode, until_ms }))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )),
    }
}

fn requested_hold(status: Option<&str>) -> S3Result<Option<bool>> {
    match status {
        None => Ok(None),
        Some("ON") => Ok(Some(true)),
        Some("OFF") => Ok(Some(false)),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-legal-hold must be ON or OFF"
        )),
    }
}

fn missing_configuration() -> S3Error {
    s3_error!(
        InvalidRequest,
        "Bucket is missing Object Lock Configuration"
    )
}

/// The lock headers of a GET or HEAD: mode, retain-until date, legal hold, those the caller
/// may see.
pub fn shown(
    lock: &ObjectLock,
    may_see: crate::authz::LockHeaders,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let retention = lock.retention.filter(|_| may_see.retention);
    let mode = retention.map(|r| ObjectLockMode::from(r.mode.as_str().to_owned()));
    let until = retention.map(|r| timestamp(r.until_ms));
    let hold = lock
        .legal_hold
        .filter(|_| may_see.legal_hold)
        .map(hold_status);
    (mode, until, hold)
}

fn hold_status(on: bool) -> ObjectLockLegalHoldStatus {
    ObjectLockLegalHoldStatus::from_static(if on {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    })
}

/// The x-amz-object-lock-* fields of a write (PUT, copy, CreateMultipartUpload).
pub(crate) struct WriteLock<'a> {
    pub mode: Option<&'a ObjectLockMode>,
    pub until: Option<&'a Timestamp>,
    pub hold: Option<&'a ObjectLockLegalHoldStatus>,
}

/// `Gateway::locked_version` for a retention or legal-hold request's bucket, key and version.
macro_rules! locked_version {
    ($gateway:expr, $user:expr, $input:expr) => {
        $gateway
            .locked_version(
                $user,
                &$input.bucket,
                &$input.key,
                $input.version_id.as_deref(),
            )
            .await?
    };
}

impl Gateway {
    /// The lock state a new version written to `bucket` gets: what the request asks for, or
    /// else the bucket's default retention. Any lock field on a bucket without Object Lock is
    /// InvalidRequest, as in S3; a bucket without it pays no read.
    pub(crate) async fn write_lock(
        &self,
        bucket: &Owned,
        w: &WriteLock<'_>,
    ) -> S3Result<ObjectLock> {
        let asked = w.mode.is_some() || w.until.is_some() || w.hold.is_some();
        if !bucket.record.object_lock {
            return if asked {
                Err(missing_configuration())
            } else {
                Ok(ObjectLock::default())
            };
        }
        let now = now_ms();
        let mut retention = requested_retention(w.mode.map(ObjectLockMode::as_str), w.until, now)?;
        let legal_hold = requested_hold(w.hold.map(ObjectLockLegalHoldStatus::as_str))?;
        if retention.is_none() {
            if let Some(rule) = self.default_rule(&bucket.scope).await? {
                retention = Some(Retention {
                    mode: rule.mode,
                    until_ms: now + rule.period.ms(),
                });
            }
        }
        Ok(ObjectLock {
            retention,
            legal_hold,
        })
    }

    async fn default_rule(&self, scope: &str) -> S3Result<Option<DefaultRule>> {
        match self.config_read(scope, CONFIG_NAME).await? {
            None => Ok(None),
            Some(b) => decode_config(b).map_err(|e| s3_error!(InternalError, "{e}")),
        }
    }

    pub(crate) async fn lock_config_put(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let owned = self.owned_bucket(&input.bucket, &user).await?;
        let rule = parse_config(input.object_lock_configuration)?;
        if !owned.record.object_lock && owned.versioning != Versioning::Enabled {
            return Err(s3_error!(
                InvalidBucketState,
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
            ));
        }
        // The rule first: a flag set without it is a lock without default retention.
        self.config_put(&owned.scope, CONFIG_NAME, &encode_config(rule.as_ref()))
            .await?;
        if !owned.record.object_lock {
            let mut record = owned.record.clone();
            record.object_lock = true;
            self.store
                .swap_bucket(&input.bucket, &record, owned.hlc)
                .await
                .map_err(s3_err)?;
        }
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(crate) async fn lock_config_get(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let user = user_of(&req)?;
        let owned = self.owned_bucket(&req.input.bucket, &user).await?;
        if !owned.record.object_lock {
            return Err(s3_error!(
                ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket"
            ));
        }
        let rule = self.default_rule(&owned.scope).await?;
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(shown_config(rule)),
        }))
    }

    /// The version a retention or legal-hold request names, in a bucket with Object Lock.
    async fn locked_version(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(ObjectHead, String)> {
        let owned = self.owned_bucket(bucket, user).await?;
        if !owned.record.object_lock {
            return Err(missing_configuration());
        }
        let (head, _, scope) = self.object_for_read(user, bucket, key, version_id).await?;
        Ok((head, scope))
    }

    /// Changes the lock state of one version in every record holding it (its head, if it is
    /// current, and its version record), each by compare-and-swap against the record read,
    /// retried against concurrent changes. `change` judges the state it finds and returns the
    /// new one (an error leaves the record as it is).
    async fn change_lock(
        &self,
        scope: &str,
        key: &str,
        version_id: &[u8; 12],
        change: impl Fn(&ObjectLock) -> S3Result<ObjectLock>,
    ) -> S3Result<()> {
        let mut found = false;
        for (record_key, is_head) in [
            (head_key(scope, key), true),
            (version_key(scope, key, version_id), false),
        ] {
            found |= self
                .change_record(scope, key, (&record_key, is_head), version_id, &change)
                .await?;
        }
        if found {
            Ok(())
        } else {
            Err(crate::versioning::no_such_version())
        }
    }

    /// `change_lock` on one record (the head when `is_head`, else the version record):
    /// whether it held the version.
    async fn change_record(
        &self,
        scope: &str,
        key: &str,
        (record_key, is_head): (&Bytes, bool),
        version_id: &[u8; 12],
        change: &impl Fn(&ObjectLock) -> S3Result<ObjectLock>,
    ) -> S3Result<bool> {
        let cores = self.store.object_cores(scope, key);
        for _ in 0..LOCK_SWAP_TRIES_MAX {
            let entry = self.backend.meta_get(&cores, record_key).await;
            let Some(e) = entry.map_err(s3_err)? else {
                return Ok(false);
            };
            let value = if is_head {
                let mut h = ObjectHead::decode(e.value).map_err(|e| s3_error!(e, InternalError))?;
                if &h.version_id != version_id {
                    return Ok(false);
                }
                h.lock = change(&h.lock)?;
                h.encode()
            } else {
                match VersionRecord::decode(e.value).map_err(|e| s3_error!(e, InternalError))? {
                    VersionRecord::Object(mut h) => {
                        h.lock = change(&h.lock)?;
                        VersionRecord::Object(h).encode()
                    }
                    VersionRecord::DeleteMarker(_) => return Ok(false),
                }
            };
            if self.cas(&cores, record_key, value, e.hlc).await? {
                return Ok(true);
            }
        }
        Err(s3_error!(
            OperationAborted,
            "the object version changed while its lock was set; retry"
        ))
    }

    pub(crate) async fn retention_put(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let user = user_of(&req)?;
        let bypass = req.input.bypass_governance_retention == Some(true)
            && crate::authz::bypass_granted(&req.extensions);
        let input = req.input;
        let (head, scope) = locked_version!(self, &user, input);
        let now = now_ms();
        let Some(retention) = input.retention else {
            return Err(s3_error!(
                MalformedXML,
                "the request needs a Retention element"
            ));
        };
        // An empty Retention removes the retention (GOVERNANCE: with the bypass).
        let new = match (retention.mode, retention.retain_until_date) {
            (None, None) => None,
            (Some(mode), Some(until)) => {
                let mode = LockMode::parse(mode.as_str()).ok_or_else(|| {
                    s3_error!(MalformedXML, "Mode must be GOVERNANCE or COMPLIANCE")
                })?;
                let until_ms = ms_of(&until)?;
                if until_ms <= now {
                    return Err(s3_error!(
                        InvalidArgument,
                        "The retain until date must be in the future!"
                    ));
                }
                Some(Retention { mode, until_ms })
            }
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "Retention needs both Mode and RetainUntilDate"
                ))
            }
        };
        self.change_lock(&scope, &input.key, &head.version_id, |lock| {
            if let Some(e) = retention_refusal(lock.retention, new, now, bypass) {
                return Err(e);
            }
            Ok(ObjectLock {
                retention: new,
                ..*lock
            })
        })
        .await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(crate) async fn retention_get(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let (head, _) = locked_version!(self, &user, input);
        let Some(r) = head.lock.retention else {
            return Err(no_lock_configuration());
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(r.mode.as_str().to_owned())),
                retain_until_date: Some(timestamp(r.until_ms)),
            }),
        }))
    }

    pub(crate) async fn legal_hold_put(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let status = input.legal_hold.and_then(|h| h.status);
        let on = match status.as_ref().map(ObjectLockLegalHoldStatus::as_str) {
            Some("ON") => true,
            Some("OFF") => false,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "LegalHold needs a Status, ON or OFF"
                ))
            }
        };
        let (head, scope) = locked_version!(self, &user, input);
        self.change_lock(&scope, &input.key, &head.version_id, |lock| {
            Ok(ObjectLock {
                legal_hold: Some(on),
                ..*lock
            })
        })
        .await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(crate) async fn legal_hold_get(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let (head, _) = locked_version!(self, &user, input);
        let Some(on) = head.lock.legal_hold else {
            return Err(no_lock_configuration());
        };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(hold_status(on)),
            }),
        }))
    }
}

fn no_lock_configuration() -> S3Error {
    s3_error!(
        NoSuchObjectLockConfiguration,
        "The specified object does not have a ObjectLock configuration"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn lock(mode: Option<LockMode>, until_ms: u64, hold: Option<bool>) -> ObjectLock {
        ObjectLock {
            retention: mode.map(|mode| Retention { mode, until_ms }),
            legal_hold: hold,
        }
    }

    /// Deletion of a version, as S3 documents it: mode × active × bypass × legal hold.
    #[test]
    fn deletion_table() {
        use LockMode::{Compliance as C, Governance as G};
        let later = NOW + 1;
        let earlier = NOW - 1;
        // (mode, until, hold, bypass, refused)
        let table = [
            (None, 0, None, false, false),
            (None, 0, Some(false), false, false),
            (None, 0, Some(true), false, true),
            (None, 0, Some(true), true, true),
            (Some(G), later, None, false, true),
            (Some(G), later, None, true, false),
            (Some(G), later, Some(true), true, true),
            (Some(G), earlier, None, false, false),
            (Some(C), later, None, false, true),
            (Some(C), later, None, true, true),
            (Some(C), later, Some(false), true, true),
            (Some(C), earlier, None, false, false),
            (Some(C), earlier, Some(true), true, true),
            (Some(C), NOW, None, false, false),
        ];
        for (mode, until, hold, bypass, refused) in table {
            let l = lock(mode, until, hold);
            let got = objects::versions::delete_refused(&l, NOW, bypass);
            assert_eq!(got, refused, "{l:?} bypass {bypass}");
            assert_eq!(
                holds(&l, NOW),
                objects::versions::delete_refused(&l, NOW, false)
            );
        }
    }

    /// Changes of retention: COMPLIANCE only extended, GOVERNANCE shortened, removed or
    /// changed in mode only with the bypass, an expired retention replaced freely.
    #[test]
    fn retention_change_table() {
        use LockMode::{Compliance as C, Governance as G};
        let r = |mode, until_ms| Some(Retention { mode, until_ms });
        let (t, t_later, t_sooner) = (NOW + 10_000, NOW + 20_000, NOW + 5_000);
        // (old, new, bypass, refused)
        let table = [
            (None, r(C, t), false, false),
            (None, None, false, false),
            (r(C, t), r(C, t_later), false, false),
            (r(C, t), r(C, t), false, false),
            (r(C, t), r(C, t_sooner), true, true),
            (r(C, t), r(G, t_later), true, true),
            (r(C, t), None, true, true),
            (r(G, t), r(G, t_later), false, false),
            (r(G, t), r(G, t_sooner), false, true),
            (r(G, t), r(G, t_sooner), true, false),
            (r(G, t), None, false, true),
            (r(G, t), None, true, false),
            (r(G, t), r(C, t_later), false, true),
            (r(G, t), r(C, t_later), true, false),
            (r(C, NOW - 1), None, false, false),
            (r(C, NOW - 1), r(G, t), false, false),
        ];
        for (old, new, bypass, refused) in table {
            assert_eq!(
                retention_refusal(old, new, NOW, bypass).is_some(),
                refused,
                "{old:?} -> {new:?} bypass {bypass}"
            );
        }
    }

    #[test]
    fn configurations_parse_like_s3() {
        let cfg = |enabled: Option<&str>, mode: Option<&str>, days, years| {
            Some(ObjectLockConfiguration {
                object_lock_enabled: enabled.map(|e| ObjectLockEnabled::from(e.to_owned())),
                rule: mode.map(|m| ObjectLockRule {
                    default_retention: Some(DefaultRetention {
                        mode: (!m.is_empty()).then(|| ObjectLockRetentionMode::from(m.to_owned())),
                        days,
                        years,
                    }),
                }),
            })
        };
        let code = |c| parse_config(c).unwrap_err().code().as_str().to_owned();
        assert_eq!(
            parse_config(cfg(Some("Enabled"), None, None, None)).unwrap(),
            None
        );
        assert_eq!(
            parse_config(cfg(Some("Enabled"), Some("COMPLIANCE"), Some(3), None)).unwrap(),
            Some(DefaultRule {
                mode: LockMode::Compliance,
                period: Period::Days(3)
            })
        );
        assert_eq!(
            parse_config(cfg(Some("Enabled"), Some("GOVERNANCE"), None, Some(100))).unwrap(),
            Some(DefaultRule {
                mode: LockMode::Governance,
                period: Period::Years(100)
            })
        );
        assert_eq!(code(None), "MalformedXML");
        assert_eq!(code(cfg(None, None, None, None)), "MalformedXML");
        assert_eq!(
            code(cfg(Some("Disabled"), None, None, None)),
            "MalformedXML"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("GOVERNANCE"), Some(1), Some(1))),
            "MalformedXML"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("GOVERNANCE"), None, None)),
            "MalformedXML"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some(""), Some(1), None)),
            "MalformedXML"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("FOREVER"), Some(1), None)),
            "MalformedXML"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("GOVERNANCE"), Some(0), None)),
            "InvalidArgument"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("GOVERNANCE"), Some(-1), None)),
            "InvalidArgument"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("GOVERNANCE"), Some(36_501), None)),
            "InvalidArgument"
        );
        assert_eq!(
            code(cfg(Some("Enabled"), Some("GOVERNANCE"), None, Some(101))),
            "InvalidArgument"
        );
    }

    /// The stored record, pinned byte for byte, and every cut of it refused.
    #[test]
    fn stored_configuration_is_pinned() {
        assert_eq!(hex::encode(encode_config(None)), "0100");
        let rule = DefaultRule {
            mode: LockMode::Compliance,
            period: Period::Years(7),
        };
        let enc = encode_config(Some(&rule));
        assert_eq!(hex::encode(&enc), "01020207000000");
        assert_eq!(decode_config(enc.clone()).unwrap(), Some(rule));
        assert_eq!(decode_config(encode_config(None)).unwrap(), None);
        for cut in 0..enc.len() {
            assert!(decode_config(enc.slice(..cut)).is_err(), "cut at {cut}");
        }
        // Another format, mode 3, unit 3, Days 0, Years 101, a byte too many.
        for bad in [
            "0200",
            "0103",
            "01010300000000",
            "01010100000000",
            "01010265000000",
            "0100ff",
        ] {
            let b = Bytes::from(hex::decode(bad).unwrap());
            assert!(decode_config(b).is_err(), "{bad}");
        }
        let days = DefaultRule {
            mode: LockMode::Governance,
            period: Period::Days(1),
        };
        assert_eq!(
            decode_config(encode_config(Some(&days))).unwrap(),
            Some(days)
        );
        assert_eq!(Period::Days(2).ms(), 2 * DAY_MS);
        assert_eq!(Period::Years(1).ms(), 365 * DAY_MS);
    }

    #[test]
    fn requested_retention_needs_both_fields_and_a_future_date() {
        let future = timestamp(NOW + 1000);
        let past = timestamp(NOW - 1000);
        assert_eq!(requested_retention(None, None, NOW).unwrap(), None);
        assert_eq!(
            requested_retention(Some("GOVERNANCE"), Some(&future), NOW).unwrap(),
            Some(Retention {
                mode: LockMode::Governance,
                until_ms: NOW + 1000
            })
        );
        for (mode, until) in [
            (Some("GOVERNANCE"), None),
            (None, Some(&future)),
            (Some("GOVERNANCE"), Some(&past)),
            (Some("governance"), Some(&future)),
        ] {
            let e = requested_retention(mode, until, NOW).unwrap_err();
            assert_eq!(e.code().as_str(), "InvalidArgument");
        }
        assert_eq!(requested_hold(Some("ON")).unwrap(), Some(true));
        assert_eq!(requested_hold(Some("OFF")).unwrap(), Some(false));
        assert!(requested_hold(Some("on")).is_err());
    }
}
