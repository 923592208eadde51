//! Object Lock in the store: a bucket's lock configuration (its default retention, the bucket
//! configuration record `object-lock`, and the bucket record's `object_lock` flag), the lock
//! state a new version is written with, and changes of a version's retention and legal hold.
//! The S3 layer (the gateway's `object_lock.rs`) parses the requests (modes, dates, XML) and
//! spells the answers; the rule deciding whether a version may be deleted is `versions`'s
//! (`delete_refused`).
//!
//! Where the state lives: the bucket record's `object_lock` flag (never cleared; versioning then
//! stays Enabled), the default retention as the configuration record, and a version's state in
//! its head and its version record (`records::ObjectLock`, head format 7), changed by
//! compare-and-swap of each record.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::limits::{LOCK_DEFAULT_DAYS_MAX, LOCK_DEFAULT_YEARS_MAX, LOCK_SWAP_TRIES_MAX};
use crate::records::{
    head_key, version_key, BucketRecord, LockMode, ObjectHead, ObjectLock, Retention, VersionRecord,
};
use crate::store::Store;

/// The bucket configuration record's name (`configs`).
pub const CONFIG_NAME: &str = "object-lock";
const DAY_MS: u64 = 86_400_000;
/// A retention year, as S3 counts a default retention's Years.
const YEAR_DAYS: u64 = 365;
/// The stored configuration's format.
const CONFIG_FORMAT: u8 = 1;
// The longest default retention, added to any date before 2^62 ms, cannot overflow.
const _: () = assert!((LOCK_DEFAULT_YEARS_MAX as u64) * YEAR_DAYS * DAY_MS < (1u64 << 62));
const _: () = assert!((LOCK_DEFAULT_DAYS_MAX as u64) * DAY_MS < (1u64 << 62));

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

/// The stored configuration (a record that does not parse is a damaged one).
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
        1 if (1..=LOCK_DEFAULT_DAYS_MAX).contains(&n) => Period::Days(n),
        2 if (1..=LOCK_DEFAULT_YEARS_MAX).contains(&n) => Period::Years(n),
        _ => return Err(bad),
    };
    Ok(Some(DefaultRule { mode, period }))
}

/// Whether the retention of a version may not go from `old` to `new` at `now_ms` (`bypass` as
/// in `versions::delete_refused`): an active COMPLIANCE retention may only be extended, by
/// anyone; an active GOVERNANCE one may be extended, and shortened, removed or changed in mode
/// only with the bypass. An expired retention is no retention.
pub fn retention_refused(
    old: Option<Retention>,
    new: Option<Retention>,
    now_ms: u64,
    bypass: bool,
) -> bool {
    let Some(old) = old.filter(|r| r.until_ms > now_ms) else {
        return false;
    };
    let extends = new.is_some_and(|n| n.mode == old.mode && n.until_ms >= old.until_ms);
    !(extends || (old.mode == LockMode::Governance && bypass))
}

impl Store {
    /// The bucket's default retention (`None`: none).
    pub async fn default_rule(&self, scope: &str) -> Result<Option<DefaultRule>> {
        match self.config_read(scope, CONFIG_NAME).await? {
            None => Ok(None),
            Some(b) => decode_config(b).map_err(|e| Error::Damaged(e.into())),
        }
    }

    /// The lock state a new version written at `now_ms` to the bucket `scope` (with Object
    /// Lock) gets: the retention and legal hold asked for, the retention else the bucket's
    /// default.
    pub async fn write_lock(
        &self,
        scope: &str,
        (retention, legal_hold): (Option<Retention>, Option<bool>),
        now_ms: u64,
    ) -> Result<ObjectLock> {
        let mut retention = retention;
        if retention.is_none() {
            if let Some(rule) = self.default_rule(scope).await? {
                retention = Some(Retention {
                    mode: rule.mode,
                    until_ms: now_ms + rule.period.ms(),
                });
            }
        }
        Ok(ObjectLock {
            retention,
            legal_hold,
        })
    }

    /// Sets the bucket `name`'s lock configuration (its incarnation `record`, read at HLC
    /// `hlc`): the default rule first (a flag set without it is a lock without default
    /// retention), then the bucket's flag, by compare-and-swap.
    pub async fn set_lock_config(
        &self,
        name: &str,
        (record, hlc): (&BucketRecord, u64),
        rule: Option<&DefaultRule>,
    ) -> Result<()> {
        let scope = record.scope(name);
        self.config_put(&scope, CONFIG_NAME, &encode_config(rule))
            .await?;
        if !record.object_lock {
            let mut record = record.clone();
            record.object_lock = true;
            self.swap_bucket(name, &record, hlc).await?;
        }
        Ok(())
    }

    /// Sets the retention of one version of `key` to `new` at `now_ms`, unless its Object Lock
    /// refuses the change (`retention_refused`: Locked).
    pub async fn set_retention(
        &self,
        (scope, key, version_id): (&str, &str, &[u8; 12]),
        new: Option<Retention>,
        now_ms: u64,
        bypass: bool,
    ) -> Result<()> {
        self.change_lock(scope, key, version_id, |lock| {
            if retention_refused(lock.retention, new, now_ms, bypass) {
                return Err(Error::Locked);
            }
            Ok(ObjectLock {
                retention: new,
                ..*lock
            })
        })
        .await
    }

    /// Sets the legal hold of one version of `key` on or off.
    pub async fn set_legal_hold(
        &self,
        (scope, key, version_id): (&str, &str, &[u8; 12]),
        on: bool,
    ) -> Result<()> {
        self.change_lock(scope, key, version_id, |lock| {
            Ok(ObjectLock {
                legal_hold: Some(on),
                ..*lock
            })
        })
        .await
    }

    /// Changes the lock state of one version in every record holding it (`change_version`).
    async fn change_lock(
        &self,
        scope: &str,
        key: &str,
        version_id: &[u8; 12],
        change: impl Fn(&ObjectLock) -> Result<ObjectLock>,
    ) -> Result<()> {
        self.change_version(scope, key, version_id, |h| {
            h.lock = change(&h.lock)?;
            Ok(())
        })
        .await
        .map_err(|e| match e {
            Error::VersionChanged(_) => {
                Error::VersionChanged("the object version changed while its lock was set; retry")
            }
            e => e,
        })
    }

    /// Sets the access control list of one version of `key` (`ObjectHead::acl`; `None`: the
    /// S3 layer's default) in every record holding it (`change_version`).
    pub async fn set_acl(
        &self,
        (scope, key, version_id): (&str, &str, &[u8; 12]),
        acl: Option<Bytes>,
    ) -> Result<()> {
        self.change_version(scope, key, version_id, |h| {
            h.acl.clone_from(&acl);
            Ok(())
        })
        .await
    }

    /// Changes one version in every record holding it (its head, if it is current, and its
    /// version record), each by compare-and-swap against the record read, retried against
    /// concurrent changes. `change` judges the version it finds and changes it (an error
    /// leaves the record as it is). NoSuchVersion when no record holds it.
    pub(crate) async fn change_version(
        &self,
        scope: &str,
        key: &str,
        version_id: &[u8; 12],
        change: impl Fn(&mut ObjectHead) -> Result<()>,
    ) -> Result<()> {
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
            Err(Error::NoSuchVersion)
        }
    }

    /// `change_version` on one record (the head when `is_head`, else the version record):
    /// whether it held the version.
    async fn change_record(
        &self,
        scope: &str,
        key: &str,
        (record_key, is_head): (&Bytes, bool),
        version_id: &[u8; 12],
        change: &impl Fn(&mut ObjectHead) -> Result<()>,
    ) -> Result<bool> {
        let cores = self.object_cores(scope, key);
        let damaged = |e: crate::records::Malformed| Error::Damaged(e.to_string());
        for _ in 0..LOCK_SWAP_TRIES_MAX {
            let Some(e) = self.backend.meta_get(&cores, record_key).await? else {
                return Ok(false);
            };
            let value = if is_head {
                let mut h = ObjectHead::decode(e.value).map_err(damaged)?;
                if &h.version_id != version_id {
                    return Ok(false);
                }
                change(&mut h)?;
                h.encode()
            } else {
                match VersionRecord::decode(e.value).map_err(damaged)? {
                    VersionRecord::Object(mut h) => {
                        change(&mut h)?;
                        VersionRecord::Object(h).encode()
                    }
                    VersionRecord::DeleteMarker(_) => return Ok(false),
                }
            };
            if self.cas(&cores, record_key, value, e.hlc).await? {
                return Ok(true);
            }
        }
        Err(Error::VersionChanged(
            "the object version changed while it was being changed; retry",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

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
                retention_refused(old, new, NOW, bypass),
                refused,
                "{old:?} -> {new:?} bypass {bypass}"
            );
        }
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
}
