//! The condition keys percore supplies, their types, and the date formats policies use.
//!
//! A key not in [`KEYS`] is refused when a policy names it (in a Condition or a `${...}`
//! variable): a condition on a key percore never fills would silently never match, and for a
//! Deny that means a protection that is not there. Key names are case-insensitive (AWS); the
//! tag key after `s3:ExistingObjectTag/` and `s3:RequestObjectTag/` is case-sensitive.

use crate::limits::TAG_KEY_BYTES_MAX;

/// What values of a key mean, which decides the operators that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Text: String operators.
    String,
    /// A number: Numeric and String operators.
    Numeric,
    /// An ISO 8601 instant: Date and String operators.
    Date,
    /// Seconds since the Unix epoch: Date, Numeric and String operators.
    Epoch,
    /// `true` or `false`: Bool and String operators.
    Bool,
    /// An IP address: IpAddress and NotIpAddress only.
    Ip,
    /// An ARN: Arn and String operators.
    Arn,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Numeric => "numeric",
            KeyType::Date => "date",
            KeyType::Epoch => "epoch-time",
            KeyType::Bool => "boolean",
            KeyType::Ip => "IP address",
            KeyType::Arn => "ARN",
        }
    }
}

/// One known condition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The canonical spelling (for tag keys, the prefix up to and with the `/`).
    pub name: &'static str,
    pub ty: KeyType,
    /// The request may carry several values (`s3:RequestObjectTagKeys`).
    pub multi_valued: bool,
    /// The name is a prefix followed by a tag key.
    pub tag_prefix: bool,
}

const fn key(name: &'static str, ty: KeyType) -> KeySpec {
    KeySpec {
        name,
        ty,
        multi_valued: false,
        tag_prefix: false,
    }
}

pub const SOURCE_IP: &str = "aws:SourceIp";
pub const SECURE_TRANSPORT: &str = "aws:SecureTransport";
pub const USERNAME: &str = "aws:username";
pub const PRINCIPAL_ARN: &str = "aws:PrincipalArn";
pub const CURRENT_TIME: &str = "aws:CurrentTime";
pub const EPOCH_TIME: &str = "aws:EpochTime";
pub const USER_AGENT: &str = "aws:UserAgent";
pub const REFERER: &str = "aws:Referer";
pub const PREFIX: &str = "s3:prefix";
pub const DELIMITER: &str = "s3:delimiter";
pub const MAX_KEYS: &str = "s3:max-keys";
pub const ACL: &str = "s3:x-amz-acl";
pub const EXISTING_OBJECT_TAG: &str = "s3:ExistingObjectTag/";
pub const REQUEST_OBJECT_TAG: &str = "s3:RequestObjectTag/";
pub const REQUEST_OBJECT_TAG_KEYS: &str = "s3:RequestObjectTagKeys";
pub const VERSION_ID: &str = "s3:VersionId";
pub const COPY_SOURCE: &str = "s3:x-amz-copy-source";
pub const METADATA_DIRECTIVE: &str = "s3:x-amz-metadata-directive";
pub const STORAGE_CLASS: &str = "s3:x-amz-storage-class";
pub const CONTENT_SHA256: &str = "s3:x-amz-content-sha256";
pub const SIGNATURE_VERSION: &str = "s3:signatureversion";
pub const AUTH_TYPE: &str = "s3:authType";

/// Every key percore supplies (see [`crate::RequestContext`] for how each is filled).
pub const KEYS: &[KeySpec] = &[
    key(SOURCE_IP, KeyType::Ip),
    key(SECURE_TRANSPORT, KeyType::Bool),
    key(USERNAME, KeyType::String),
    key(PRINCIPAL_ARN, KeyType::Arn),
    key(CURRENT_TIME, KeyType::Date),
    key(EPOCH_TIME, KeyType::Epoch),
    key(USER_AGENT, KeyType::String),
    key(REFERER, KeyType::String),
    key(PREFIX, KeyType::String),
    key(DELIMITER, KeyType::String),
    key(MAX_KEYS, KeyType::Numeric),
    key(ACL, KeyType::String),
    KeySpec {
        tag_prefix: true,
        ..key(EXISTING_OBJECT_TAG, KeyType::String)
    },
    KeySpec {
        tag_prefix: true,
        ..key(REQUEST_OBJECT_TAG, KeyType::String)
    },
    KeySpec {
        multi_valued: true,
        ..key(REQUEST_OBJECT_TAG_KEYS, KeyType::String)
    },
    key(VERSION_ID, KeyType::String),
    key(COPY_SOURCE, KeyType::String),
    key(METADATA_DIRECTIVE, KeyType::String),
    key(STORAGE_CLASS, KeyType::String),
    key(CONTENT_SHA256, KeyType::String),
    key(SIGNATURE_VERSION, KeyType::String),
    key(AUTH_TYPE, KeyType::String),
];

/// The canonical name of a key as a policy spells it, and its spec; `None` for an unknown
/// key (or a tag key that is empty or too long).
pub fn canonical(name: &str) -> Option<(String, &'static KeySpec)> {
    for spec in KEYS {
        if spec.tag_prefix {
            let n = spec.name.len();
            if name.len() > n
                && name.is_char_boundary(n)
                && name[..n].eq_ignore_ascii_case(spec.name)
            {
                let tag = &name[n..];
                if tag.len() > TAG_KEY_BYTES_MAX {
                    return None;
                }
                return Some((format!("{}{tag}", spec.name), spec));
            }
        } else if name.eq_ignore_ascii_case(spec.name) {
            return Some((spec.name.to_owned(), spec));
        }
    }
    None
}

/// Milliseconds since the Unix epoch of a policy or request date: seconds since the epoch
/// (`1700000000`), a date (`2026-12-04`, midnight UTC) or a date and time
/// (`2026-12-04T02:03:11Z`, `…T02:03:11.250Z`, `…T02:03:11+01:00`, `…T02:03Z`; no zone is UTC).
pub fn parse_date_ms(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.len() <= 12 {
        return text.parse::<i64>().ok().map(|s| s * 1000);
    }
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let mut ms = days * 86_400_000;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if rest[0] != b'T' && rest[0] != b't' {
        return None;
    }
    let (time_ms, zone) = parse_time(&rest[1..])?;
    ms += time_ms;
    ms -= parse_zone(zone)?;
    Some(ms)
}

/// `hh:mm[:ss[.fff]]` and what follows it.
fn parse_time(b: &[u8]) -> Option<(i64, &[u8])> {
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let hour = digits(&b[0..2])?;
    let minute = digits(&b[3..5])?;
    let mut rest = &b[5..];
    let mut second = 0;
    let mut millis = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        second = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            let frac = &rest[1..=n];
            let mut scaled = 0;
            for (i, c) in frac.iter().take(3).enumerate() {
                scaled += i64::from(c - b'0') * [100, 10, 1][i];
            }
            millis = scaled;
            rest = &rest[1 + n..];
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some((((hour * 60 + minute) * 60 + second) * 1000 + millis, rest))
}

/// The zone's offset from UTC in milliseconds: empty or `Z` is 0, else `±hh:mm` or `±hhmm`.
fn parse_zone(b: &[u8]) -> Option<i64> {
    match b {
        [] | [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60_000;
            Some(if *sign == b'+' { offset } else { -offset })
        }
        _ => None,
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-12-04T02:03:11Z`: how `aws:CurrentTime` is filled.
pub fn format_date(epoch_seconds: i64) -> String {
    let days = epoch_seconds.div_euclid(86_400);
    let secs = epoch_seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_case_insensitive_tag_keys_are_not() {
        assert_eq!(
            canonical("AWS:SOURCEIP").map(|k| k.0),
            Some(SOURCE_IP.to_owned())
        );
        assert_eq!(
            canonical("s3:existingobjecttag/Project").map(|k| k.0),
            Some("s3:ExistingObjectTag/Project".to_owned())
        );
        assert_eq!(canonical("s3:ExistingObjectTag/"), None);
        assert_eq!(canonical("aws:SourceVpc"), None);
        assert_eq!(canonical(""), None);
    }

    #[test]
    fn dates_parse_in_every_accepted_form() {
        assert_eq!(parse_date_ms("1970-01-01"), Some(0));
        assert_eq!(parse_date_ms("1700000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_date_ms("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_date_ms("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500)
        );
        assert_eq!(
            parse_date_ms("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_date_ms("2023-11-14T22:13Z"), Some(1_699_999_980_000));
        assert_eq!(parse_date_ms("2024-02-29"), Some(1_709_164_800_000));
        for bad in [
            "",
            "2023-02-29",
            "2023-13-01",
            "2023-11-14T25:00:00Z",
            "yesterday",
            "2023-11-14T22:13:20Q",
        ] {
            assert_eq!(parse_date_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatted_dates_parse_back() {
        for s in [0, 1_700_000_000, 951_782_400, 4_102_444_799] {
            assert_eq!(
                parse_date_ms(&format_date(s)),
                Some(s * 1000),
                "{}",
                format_date(s)
            );
        }
        assert_eq!(format_date(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
