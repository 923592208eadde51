//! The policy document of a browser POST upload (AWS "Creating a POST policy"): the base64
//! `policy` form field, parsed and checked against the form's fields. Plain code over strings:
//! no I/O, no knowledge of signatures (`post_upload` checks the signature over the same
//! base64 text before this module trusts anything in it).
//!
//! - `expiration` (ISO 8601, required): past → 403 "Policy expired."; missing or malformed →
//!   400 InvalidPolicyDocument.
//! - Conditions: `{"field": "value"}` and `["eq", "$field", "value"]` (exact match),
//!   `["starts-with", "$field", "prefix"]` (`""` matches anything; for Content-Type each
//!   comma-separated value must start with the prefix), `["content-length-range", min, max]`
//!   (the file's size, checked while it streams: `post_upload`). Field names are
//!   case-insensitive, values are not. A field the form does not carry has the empty value,
//!   so only `starts-with ""` lets it be absent. `$bucket` is the bucket the request names.
//! - Every form field but `policy`, `x-amz-signature`, `file` (and SigV2's `signature` and
//!   `awsaccesskeyid`) and `x-ignore-*` must be named by an `eq`/`starts-with` condition, else
//!   403 "Extra input fields".
//!
//! A failed condition is 403 AccessDenied "Invalid according to Policy: …" (AWS's words), a
//! document that cannot be read is 400 InvalidPolicyDocument.

use base64::Engine as _;
use serde_json::Value;

use crate::limits::POST_POLICY_BYTES_MAX as POLICY_BYTES_MAX;

/// One condition of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The field (lowercase, without `$`) equals the value.
    Eq { field: String, value: String },
    /// The field starts with the prefix.
    StartsWith { field: String, prefix: String },
    /// The file's size in bytes is within `min..=max`.
    LengthRange { min: u64, max: u64 },
}

/// A parsed policy document.
#[derive(Debug, Clone)]
pub struct PostPolicy {
    /// Unix seconds.
    pub expiration_secs: i64,
    pub conditions: Vec<Condition>,
}

/// Why a form does not pass its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The document cannot be read (400 InvalidPolicyDocument); the text says what is wrong.
    Malformed(String),
    /// Past its expiration (403).
    Expired,
    /// A condition the form does not meet, as AWS quotes it (403).
    Failed(String),
    /// Form fields no condition names (403).
    ExtraFields(Vec<String>),
}

impl PolicyError {
    /// The message AWS gives for it.
    pub fn message(&self) -> String {
        match self {
            PolicyError::Malformed(what) => format!("Invalid Policy: {what}"),
            PolicyError::Expired => "Invalid according to Policy: Policy expired.".to_owned(),
            PolicyError::Failed(c) => {
                format!("Invalid according to Policy: Policy Condition failed: {c}")
            }
            PolicyError::ExtraFields(names) => format!(
                "Invalid according to Policy: Extra input fields: {}",
                names.join(", ")
            ),
        }
    }
}

/// Fields every policy leaves uncovered (AWS).
fn exempt(name: &str) -> bool {
    matches!(
        name,
        "policy" | "x-amz-signature" | "file" | "signature" | "awsaccesskeyid"
    ) || name.starts_with("x-ignore-")
}

impl PostPolicy {
    /// Decodes and parses the `policy` field.
    pub fn parse(b64: &str) -> Result<PostPolicy, PolicyError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| PolicyError::Malformed("the policy is not valid base64.".to_owned()))?;
        if raw.len() > POLICY_BYTES_MAX {
            return Err(PolicyError::Malformed(format!(
                "the policy is over {POLICY_BYTES_MAX} bytes."
            )));
        }
        let doc: Value = serde_json::from_slice(&raw)
            .map_err(|_| PolicyError::Malformed("Invalid JSON.".to_owned()))?;
        let doc = doc
            .as_object()
            .ok_or_else(|| PolicyError::Malformed("Invalid JSON.".to_owned()))?;
        let expiration = match doc.get("expiration") {
            None => {
                return Err(PolicyError::Malformed(
                    "Policy missing expiration.".to_owned(),
                ))
            }
            Some(Value::String(s)) => parse_expiration(s)?,
            Some(other) => {
                return Err(PolicyError::Malformed(format!(
                    "Invalid 'expiration' value: '{other}'"
                )))
            }
        };
        let conditions = match doc.get("conditions") {
            None => Vec::new(),
            Some(Value::Array(list)) => {
                list.iter().map(parse_condition).collect::<Result<_, _>>()?
            }
            Some(_) => {
                return Err(PolicyError::Malformed(
                    "Policy conditions must be a list.".to_owned(),
                ))
            }
        };
        Ok(PostPolicy {
            expiration_secs: expiration,
            conditions,
        })
    }

    /// The file size range the policy allows (the intersection of its ranges).
    pub fn length_range(&self) -> (u64, u64) {
        self.conditions
            .iter()
            .fold((0, u64::MAX), |(lo, hi), c| match c {
                Condition::LengthRange { min, max } => (lo.max(*min), hi.min(*max)),
                _ => (lo, hi),
            })
    }

    /// Checks expiration and every field condition against the form. `fields`: names
    /// lowercase, in form order; `bucket`: the request's; `now_secs`: Unix seconds.
    pub fn check(
        &self,
        fields: &[(String, String)],
        bucket: &str,
        now_secs: i64,
    ) -> Result<(), PolicyError> {
        if now_secs >= self.expiration_secs {
            return Err(PolicyError::Expired);
        }
        let value_of = |name: &str| -> &str {
            if name == "bucket" {
                return bucket;
            }
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v.as_str())
        };
        for c in &self.conditions {
            let met = match c {
                Condition::Eq { field, value } => value_of(field) == value,
                Condition::StartsWith { field, prefix } if field == "content-type" => {
                    value_of(field)
                        .split(',')
                        .all(|v| v.trim_start().starts_with(prefix.as_str()))
                }
                Condition::StartsWith { field, prefix } => {
                    value_of(field).starts_with(prefix.as_str())
                }
                Condition::LengthRange { .. } => true,
            };
            if !met {
                return Err(PolicyError::Failed(quote(c)));
            }
        }
        let mut extra: Vec<String> = fields
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !exempt(n) && !self.names(n))
            .cloned()
            .collect();
        extra.dedup();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::ExtraFields(extra))
        }
    }

    /// Whether an exact-match condition names `field` (a SigV4 policy must hold one for each
    /// of its signature fields, AWS's rule: their values are then the form's, checked as any
    /// condition).
    pub fn has_eq(&self, name: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c, Condition::Eq { field, .. } if field == name))
    }

    fn names(&self, name: &str) -> bool {
        self.conditions.iter().any(|c| match c {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == name,
            Condition::LengthRange { .. } => false,
        })
    }
}

/// `2026-12-04T12:00:00.000Z` (any RFC 3339 time; AWS writes ISO 8601 in UTC).
fn parse_expiration(s: &str) -> Result<i64, PolicyError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| PolicyError::Malformed(format!("Invalid 'expiration' value: '{s}'")))
}

fn field_name(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let name = s.strip_prefix('$')?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_condition(v: &Value) -> Result<Condition, PolicyError> {
    let bad = |what: &str| PolicyError::Malformed(format!("Invalid {what}: {v}"));
    match v {
        Value::Object(map) => {
            let mut it = map.iter();
            match (it.next(), it.next()) {
                (Some((name, Value::String(value))), None) => Ok(Condition::Eq {
                    field: name.trim_start_matches('$').to_ascii_lowercase(),
                    value: value.clone(),
                }),
                _ => Err(bad("Simple-Condition")),
            }
        }
        Value::Array(items) => {
            let op = items
                .first()
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            match (op.as_deref(), items.len()) {
                (Some("eq" | "starts-with"), 3) => {
                    let field = field_name(&items[1]).ok_or_else(|| bad("Condition"))?;
                    let value = items[2]
                        .as_str()
                        .ok_or_else(|| bad("Condition"))?
                        .to_owned();
                    Ok(if op.as_deref() == Some("eq") {
                        Condition::Eq { field, value }
                    } else {
                        Condition::StartsWith {
                            field,
                            prefix: value,
                        }
                    })
                }
                (Some("content-length-range"), 3) => {
                    let min = number(&items[1]).ok_or_else(|| bad("content-length-range"))?;
                    let max = number(&items[2]).ok_or_else(|| bad("content-length-range"))?;
                    if min > max {
                        return Err(bad("content-length-range"));
                    }
                    Ok(Condition::LengthRange { min, max })
                }
                _ => Err(bad("Condition")),
            }
        }
        _ => Err(bad("Condition")),
    }
}

/// A condition as AWS quotes it in its error message.
fn quote(c: &Condition) -> String {
    let s = |t: &str| serde_json::Value::String(t.to_owned()).to_string();
    match c {
        Condition::Eq { field, value } => {
            format!("[\"eq\", {}, {}]", s(&format!("${field}")), s(value))
        }
        Condition::StartsWith { field, prefix } => {
            format!(
                "[\"starts-with\", {}, {}]",
                s(&format!("${field}")),
                s(prefix)
            )
        }
        Condition::LengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<PostPolicy, PolicyError> {
        PostPolicy::parse(&base64::engine::general_purpose::STANDARD.encode(json))
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    const LATER: &str = "2100-01-01T00:00:00.000Z";

    #[test]
    fn every_condition_kind() {
        let p = policy(&format!(
            r#"{{"expiration": "{LATER}", "conditions": [
                {{"bucket": "b1"}}, ["eq", "$key", "k"], ["starts-with", "$Content-Type", "image/"],
                ["starts-with", "$x-amz-meta-any", ""], ["content-length-range", 1, "10"]]}}"#
        ))
        .unwrap();
        assert_eq!(p.length_range(), (1, 10));
        let ok = fields(&[("key", "k"), ("content-type", "image/png, image/gif")]);
        assert_eq!(p.check(&ok, "b1", 0), Ok(()));
        assert!(matches!(p.check(&ok, "b2", 0), Err(PolicyError::Failed(_))));
        let bad_type = fields(&[("key", "k"), ("content-type", "image/png, text/html")]);
        assert!(matches!(
            p.check(&bad_type, "b1", 0),
            Err(PolicyError::Failed(_))
        ));
        let bad_key = fields(&[("key", "k2"), ("content-type", "image/png")]);
        assert_eq!(
            p.check(&bad_key, "b1", 0),
            Err(PolicyError::Failed(r#"["eq", "$key", "k"]"#.to_owned()))
        );
        let extra = fields(&[
            ("key", "k"),
            ("content-type", "image/png"),
            ("acl", "private"),
        ]);
        assert_eq!(
            p.check(&extra, "b1", 0),
            Err(PolicyError::ExtraFields(vec!["acl".to_owned()]))
        );
        let exempt = fields(&[
            ("key", "k"),
            ("content-type", "image/png"),
            ("x-ignore-me", "1"),
            ("x-amz-signature", "s"),
        ]);
        assert_eq!(p.check(&exempt, "b1", 0), Ok(()));
    }

    #[test]
    fn expiration() {
        let p = policy(r#"{"expiration": "2020-01-01T00:00:00Z", "conditions": []}"#).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(p.check(&[], "b", now), Err(PolicyError::Expired));
        for doc in [
            r#"{"expiration": "tomorrow", "conditions": []}"#,
            r#"{"expiration": 5}"#,
            r#"{"conditions": []}"#,
            r#"["not an object"]"#,
            r#"{"expiration": "2100-01-01T00:00:00Z", "conditions": [["neq", "$key", "a"]]}"#,
            r#"{"expiration": "2100-01-01T00:00:00Z", "conditions": [["content-length-range", 5, 1]]}"#,
        ] {
            assert!(
                matches!(policy(doc), Err(PolicyError::Malformed(_))),
                "{doc}"
            );
        }
        assert!(matches!(
            PostPolicy::parse("not base64!"),
            Err(PolicyError::Malformed(_))
        ));
    }
}
