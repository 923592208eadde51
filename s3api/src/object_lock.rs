//! S3 Object Lock requests: a bucket's lock configuration (enabled, default retention), each
//! object version's retention (GOVERNANCE or COMPLIANCE until a date) and legal hold. Here:
//! the requests parsed (modes, dates, the configuration's XML) and answered. The state, its
//! record codec, the default rule applied to new versions and the changes of a version's lock
//! (by compare-and-swap, judged by `objects::lock::retention_refused`) are the object
//! service's (`objects::lock`).
//!
//! Where the state lives: the bucket record's `object_lock` flag (never cleared; versioning then
//! stays Enabled), the default retention as the bucket configuration record `object-lock`
//! (`objects::configs`), and a version's state in its head and its version record
//! (`records::ObjectLock`, head format 7).
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
};
use crate::records::{LockMode, ObjectHead, ObjectLock, Retention, Versioning};
use crate::s3::{now_ms, s3_err, timestamp, user_of, Gateway, Owned};

pub use objects::lock::{DefaultRule, Period};

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
        let retention = requested_retention(w.mode.map(ObjectLockMode::as_str), w.until, now)?;
        let legal_hold = requested_hold(w.hold.map(ObjectLockLegalHoldStatus::as_str))?;
        self.store
            .write_lock(&bucket.scope, (retention, legal_hold), now)
            .await
            .map_err(s3_err)
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
        self.store
            .set_lock_config(&input.bucket, (&owned.record, owned.hlc), rule.as_ref())
            .await
            .map_err(s3_err)?;
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
        let rule = self
            .store
            .default_rule(&owned.scope)
            .await
            .map_err(s3_err)?;
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
        self.store
            .set_retention((&scope, &input.key, &head.version_id), new, now, bypass)
            .await
            .map_err(s3_err)?;
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
        self.store
            .set_legal_hold((&scope, &input.key, &head.version_id), on)
            .await
            .map_err(s3_err)?;
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
                objects::versions::lock_protection(&l, NOW).is_some(),
                objects::versions::delete_refused(&l, NOW, false)
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
