//! Condition blocks: operators, their values, and how they hold against a request.
//!
//! A block is `{"Operator": {"key": value-or-values, ...}, ...}`. It holds when every
//! operator's every key holds (AND); a key holds when the request's value matches any of the
//! listed values (OR). Operators: `String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,
//! Like,NotLike}`, `Numeric{Equals,NotEquals,LessThan,LessThanEquals,GreaterThan,
//! GreaterThanEquals}`, the same six `Date…`, `Bool`, `IpAddress`, `NotIpAddress`,
//! `Arn{Equals,NotEquals,Like,NotLike}` and `Null`; each but `Null` takes the `IfExists`
//! suffix and the `ForAnyValue:` / `ForAllValues:` qualifiers.
//!
//! A key the request does not carry (as AWS documents it):
//! - a plain operator is false, a negated one (`…Not…`, `NotIpAddress`) true;
//! - with `IfExists`, true;
//! - `ForAllValues:` is true (every one of no values matches), `ForAnyValue:` false.
//!
//! With a key the request carries, a negated operator is the negation of its positive form
//! (`StringNotEquals` with two values: the request's value is neither); under a set qualifier
//! the negation applies to each request value before `any`/`all`.
//!
//! Refused at parse time (refuse, never ignore): unknown operators and keys, values an operator
//! cannot read (a date that is not a date, a CIDR that is not one), an operator on a key of a
//! type it cannot compare (`IpAddress` on `s3:prefix`, `DateLessThan` on `s3:max-keys`), and
//! `Null` with `IfExists` or a set qualifier.

use std::net::IpAddr;

use crate::error::{MalformedPolicy, Problem};
use crate::eval::RequestContext;
use crate::json::Json;
use crate::keys::{self, KeyType};
use crate::pattern::{glob, Pattern, Tok};

/// What an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    ArnLike,
    Null,
}

/// Every operator name: what it compares and whether it is the negated form.
const OPERATORS: &[(&str, Test, bool)] = &[
    ("StringEquals", Test::StringEquals, false),
    ("StringNotEquals", Test::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        Test::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Test::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", Test::StringLike, false),
    ("StringNotLike", Test::StringLike, true),
    ("NumericEquals", Test::NumericEquals, false),
    ("NumericNotEquals", Test::NumericEquals, true),
    ("NumericLessThan", Test::NumericLessThan, false),
    ("NumericLessThanEquals", Test::NumericLessThanEquals, false),
    ("NumericGreaterThan", Test::NumericGreaterThan, false),
    (
        "NumericGreaterThanEquals",
        Test::NumericGreaterThanEquals,
        false,
    ),
    ("DateEquals", Test::DateEquals, false),
    ("DateNotEquals", Test::DateEquals, true),
    ("DateLessThan", Test::DateLessThan, false),
    ("DateLessThanEquals", Test::DateLessThanEquals, false),
    ("DateGreaterThan", Test::DateGreaterThan, false),
    ("DateGreaterThanEquals", Test::DateGreaterThanEquals, false),
    ("Bool", Test::Bool, false),
    ("IpAddress", Test::IpAddress, false),
    ("NotIpAddress", Test::IpAddress, true),
    ("ArnEquals", Test::ArnLike, false),
    ("ArnNotEquals", Test::ArnLike, true),
    ("ArnLike", Test::ArnLike, false),
    ("ArnNotLike", Test::ArnLike, true),
    ("Null", Test::Null, false),
];

/// The set qualifier of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// None: the key is taken as single-valued.
    Single,
    /// `ForAnyValue:`: some request value matches.
    ForAnyValue,
    /// `ForAllValues:`: every request value matches (true when there are none).
    ForAllValues,
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket is still that IPv4 client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One condition value, read as its operator reads it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(Pattern),
    Number(f64),
    Date(i64),
    Bool(bool),
    Net(Net),
}

/// One operator applied to one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator as the policy wrote it (`ForAnyValue:StringLikeIfExists`).
    operator: String,
    test: Test,
    negated: bool,
    qualifier: Qualifier,
    if_exists: bool,
    /// The canonical key name.
    key: String,
    values: Vec<Value>,
}

/// Parses a Condition block. `variables` is whether `${...}` is a policy variable
/// (Version 2012-10-17).
pub(crate) fn parse_block(
    block: &Json,
    at: &str,
    variables: bool,
) -> Result<Vec<Condition>, MalformedPolicy> {
    let mut conditions = Vec::new();
    let operators = block.object(at, "an object of condition operators")?;
    for (operator, keys_json) in operators {
        let at_op = format!("{at}.{operator}");
        let (test, negated, qualifier, if_exists) =
            parse_operator(operator).map_err(|p| MalformedPolicy::new(at, p))?;
        let entries = keys_json.object(&at_op, "an object of condition keys")?;
        if entries.is_empty() {
            return Err(MalformedPolicy::new(
                at_op,
                Problem::Empty {
                    field: "condition operator",
                },
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for (key_name, values_json) in entries {
            let at_key = format!("{at_op}.{key_name}");
            let Some((key, spec)) = keys::canonical(key_name) else {
                return Err(MalformedPolicy::new(
                    at_op,
                    Problem::UnknownConditionKey {
                        key: key_name.clone(),
                    },
                ));
            };
            if seen.contains(&key) {
                return Err(MalformedPolicy::new(at_op, Problem::DuplicateKey { key }));
            }
            if !applies(test, spec.ty) {
                return Err(MalformedPolicy::new(
                    at_op,
                    Problem::OperatorKeyMismatch {
                        operator: operator.clone(),
                        key: key_name.clone(),
                        key_type: spec.ty.name(),
                    },
                ));
            }
            let values = scalars(values_json, &at_key)?
                .into_iter()
                .map(|v| parse_value(test, operator, &v, variables))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|p| MalformedPolicy::new(&at_key, p))?;
            seen.push(key.clone());
            conditions.push(Condition {
                operator: operator.clone(),
                test,
                negated,
                qualifier,
                if_exists,
                key,
                values,
            });
        }
    }
    Ok(conditions)
}

/// `ForAnyValue:StringLikeIfExists` → (StringLike, not negated, ForAnyValue, IfExists).
fn parse_operator(name: &str) -> Result<(Test, bool, Qualifier, bool), Problem> {
    let unknown = || Problem::UnknownOperator {
        operator: name.to_owned(),
    };
    let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (Qualifier::ForAnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (Qualifier::ForAllValues, r)
    } else {
        (Qualifier::Single, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let &(_, test, negated) = OPERATORS
        .iter()
        .find(|(n, _, _)| *n == base)
        .ok_or_else(unknown)?;
    if test == Test::Null && if_exists {
        return Err(Problem::OperatorNotAllowed {
            operator: name.to_owned(),
            reason: "with IfExists (Null already tests whether the key exists)",
        });
    }
    if test == Test::Null && qualifier != Qualifier::Single {
        return Err(Problem::OperatorNotAllowed {
            operator: name.to_owned(),
            reason: "with ForAnyValue: or ForAllValues:",
        });
    }
    Ok((test, negated, qualifier, if_exists))
}

/// Whether an operator can compare values of a key type.
fn applies(test: Test, ty: KeyType) -> bool {
    match test {
        Test::Null => true,
        Test::StringEquals | Test::StringEqualsIgnoreCase | Test::StringLike => ty != KeyType::Ip,
        Test::NumericEquals
        | Test::NumericLessThan
        | Test::NumericLessThanEquals
        | Test::NumericGreaterThan
        | Test::NumericGreaterThanEquals => matches!(ty, KeyType::Numeric | KeyType::Epoch),
        Test::DateEquals
        | Test::DateLessThan
        | Test::DateLessThanEquals
        | Test::DateGreaterThan
        | Test::DateGreaterThanEquals => matches!(ty, KeyType::Date | KeyType::Epoch),
        Test::Bool => ty == KeyType::Bool,
        Test::IpAddress => ty == KeyType::Ip,
        Test::ArnLike => ty == KeyType::Arn,
    }
}

/// A condition value or array of them, as text (JSON numbers and booleans are allowed and
/// read as their text, as AWS does).
fn scalars(json: &Json, at: &str) -> Result<Vec<String>, MalformedPolicy> {
    let one = |j: &Json| match j {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err(MalformedPolicy::new(
            at,
            Problem::WrongType {
                expected: "a string, number or boolean, or an array of them",
            },
        )),
    };
    match json {
        Json::Array(items) if items.is_empty() => Err(MalformedPolicy::new(
            at,
            Problem::Empty {
                field: "condition values",
            },
        )),
        Json::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn parse_value(test: Test, operator: &str, raw: &str, variables: bool) -> Result<Value, Problem> {
    let invalid = |expected| Problem::InvalidConditionValue {
        operator: operator.to_owned(),
        value: raw.to_owned(),
        expected,
    };
    if !variables
        && raw.contains("${")
        && matches!(
            test,
            Test::StringEquals | Test::StringEqualsIgnoreCase | Test::StringLike | Test::ArnLike
        )
    {
        return Err(Problem::VariableNeedsVersion {
            text: raw.to_owned(),
        });
    }
    Ok(match test {
        Test::StringEquals | Test::StringEqualsIgnoreCase => {
            Value::Text(Pattern::parse(raw, false, variables)?)
        }
        Test::StringLike => Value::Text(Pattern::parse(raw, true, variables)?),
        Test::ArnLike => {
            if !raw.starts_with("arn:") || raw.matches(':').count() < 5 {
                return Err(invalid(
                    "an ARN (arn:partition:service:region:account:resource)",
                ));
            }
            Value::Text(Pattern::parse(raw, true, variables)?)
        }
        Test::NumericEquals
        | Test::NumericLessThan
        | Test::NumericLessThanEquals
        | Test::NumericGreaterThan
        | Test::NumericGreaterThanEquals => {
            Value::Number(parse_number(raw).ok_or_else(|| invalid("a number"))?)
        }
        Test::DateEquals
        | Test::DateLessThan
        | Test::DateLessThanEquals
        | Test::DateGreaterThan
        | Test::DateGreaterThanEquals => {
            Value::Date(keys::parse_date_ms(raw).ok_or_else(|| {
                invalid("an ISO 8601 date (2026-12-04T02:03:11Z) or epoch seconds")
            })?)
        }
        Test::Bool | Test::Null => {
            Value::Bool(parse_bool(raw).ok_or_else(|| invalid("\"true\" or \"false\""))?)
        }
        Test::IpAddress => Value::Net(
            Net::parse(raw).ok_or_else(|| invalid("an IPv4 or IPv6 address or CIDR block"))?,
        ),
    })
}

fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    // Only plain decimal forms: "inf", "NaN" and "1e400" are not numbers a policy means.
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl Condition {
    /// The canonical key the condition tests.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator as the policy wrote it.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The policy variables without a default its values use.
    pub(crate) fn required_variables(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter_map(|v| match v {
                Value::Text(p) => Some(p.required_variables()),
                _ => None,
            })
            .flatten()
    }

    /// Whether the condition holds for the request.
    pub fn holds(&self, ctx: &RequestContext) -> bool {
        let values = ctx.values(&self.key);
        if self.test == Test::Null {
            let absent = values.is_empty();
            return self.values.contains(&Value::Bool(absent));
        }
        let positive = |v: &str| self.values.iter().any(|pv| self.compare(pv, v, ctx));
        match self.qualifier {
            Qualifier::Single if values.is_empty() => self.if_exists || self.negated,
            Qualifier::Single => values.iter().any(|v| positive(v)) != self.negated,
            Qualifier::ForAnyValue if values.is_empty() => self.if_exists,
            Qualifier::ForAnyValue => values.iter().any(|v| positive(v) != self.negated),
            Qualifier::ForAllValues => values.iter().all(|v| positive(v) != self.negated),
        }
    }

    /// Whether the request value `v` matches the policy value `pv` (the positive form).
    fn compare(&self, pv: &Value, v: &str, ctx: &RequestContext) -> bool {
        let lookup = |k: &str| ctx.values(k).first().map(String::as_str);
        match (self.test, pv) {
            (Test::StringEquals | Test::StringLike, Value::Text(p)) => p.matches(v, lookup, false),
            (Test::StringEqualsIgnoreCase, Value::Text(p)) => p.matches(v, lookup, true),
            (Test::ArnLike, Value::Text(p)) => {
                p.resolve(lookup, false).is_some_and(|t| arn_like(&t, v))
            }
            (test, Value::Number(n)) => parse_number(v).is_some_and(|x| ordered(test, x, *n)),
            (test, Value::Date(d)) => keys::parse_date_ms(v).is_some_and(|x| ordered(test, x, *d)),
            (Test::Bool, Value::Bool(b)) => parse_bool(v) == Some(*b),
            (Test::IpAddress, Value::Net(net)) => {
                v.parse::<IpAddr>().is_ok_and(|ip| net.contains(ip))
            }
            _ => unreachable!("a value is parsed for its operator"),
        }
    }

    /// Whether the condition keeps anonymous and arbitrary callers out by a fixed value (a
    /// source network that is not all addresses, a principal ARN or user name without
    /// wildcards): what makes an Allow to `*` not public ([`crate::Policy::is_public`]).
    pub(crate) fn restricts_to_fixed_values(&self) -> bool {
        if self.negated || self.if_exists || self.qualifier != Qualifier::Single {
            return false;
        }
        match (self.test, self.key.as_str()) {
            (Test::IpAddress, keys::SOURCE_IP) => self
                .values
                .iter()
                .all(|v| matches!(v, Value::Net(n) if n.prefix > 0)),
            (
                Test::StringEquals | Test::ArnLike | Test::StringLike,
                keys::PRINCIPAL_ARN | keys::USERNAME,
            ) => self
                .values
                .iter()
                .all(|v| matches!(v, Value::Text(p) if !p.has_wildcard() && !p.has_variable())),
            _ => false,
        }
    }
}

fn ordered<T: PartialOrd + Copy>(test: Test, request: T, policy: T) -> bool {
    match test {
        Test::NumericEquals | Test::DateEquals => request == policy,
        Test::NumericLessThan | Test::DateLessThan => request < policy,
        Test::NumericLessThanEquals | Test::DateLessThanEquals => request <= policy,
        Test::NumericGreaterThan | Test::DateGreaterThan => request > policy,
        Test::NumericGreaterThanEquals | Test::DateGreaterThanEquals => request >= policy,
        _ => unreachable!("only ordered tests compare numbers and dates"),
    }
}

/// ARN matching as AWS does it: the six `:`-separated parts are matched one by one, so a `*`
/// in one part never spans into the next.
fn arn_like(pattern: &[Tok], arn: &str) -> bool {
    let mut parts: Vec<&[Tok]> = Vec::with_capacity(6);
    let mut rest = pattern;
    while parts.len() < 5 {
        let Some(i) = rest.iter().position(|t| *t == Tok::Char(':')) else {
            return false;
        };
        parts.push(&rest[..i]);
        rest = &rest[i + 1..];
    }
    parts.push(rest);
    let text: Vec<&str> = arn.splitn(6, ':').collect();
    if text.len() != 6 {
        return false;
    }
    parts
        .iter()
        .zip(&text)
        .all(|(p, t)| glob(p, &t.chars().collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(json: &str) -> Result<Vec<Condition>, MalformedPolicy> {
        parse_block(&Json::parse(json.as_bytes()).unwrap(), "Condition", true)
    }

    fn holds(json: &str, ctx: &RequestContext) -> bool {
        cond(json).unwrap().iter().all(|c| c.holds(ctx))
    }

    fn ctx() -> RequestContext {
        RequestContext::new(Some("alice"), "s3:ListBucket", "arn:aws:s3:::b")
    }

    #[test]
    fn string_operators() {
        let c = ctx().with_prefix("home/alice/");
        assert!(holds(
            r#"{"StringEquals": {"s3:prefix": "home/alice/"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringEquals": {"s3:prefix": ["x", "home/alice/"]}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"StringEquals": {"s3:prefix": "HOME/alice/"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringEqualsIgnoreCase": {"s3:prefix": "HOME/Alice/"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"StringNotEqualsIgnoreCase": {"s3:prefix": "HOME/Alice/"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringNotEquals": {"s3:prefix": ["a", "b"]}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"StringNotEquals": {"s3:prefix": ["a", "home/alice/"]}}"#,
            &c
        ));
        assert!(holds(r#"{"StringLike": {"s3:prefix": "home/*"}}"#, &c));
        assert!(holds(
            r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#,
            &c
        ));
        assert!(!holds(r#"{"StringNotLike": {"s3:prefix": "home/*"}}"#, &c));
        // StringEquals does not expand wildcards.
        assert!(!holds(r#"{"StringEquals": {"s3:prefix": "home/*"}}"#, &c));
        // The empty string is a value like any other.
        let empty = ctx().with_prefix("");
        assert!(holds(r#"{"StringEquals": {"s3:prefix": ""}}"#, &empty));
        assert!(holds(r#"{"StringLike": {"s3:prefix": "*"}}"#, &empty));
        assert!(!holds(r#"{"StringLike": {"s3:prefix": "?"}}"#, &empty));
    }

    #[test]
    fn missing_keys() {
        let c = ctx();
        assert!(!holds(r#"{"StringEquals": {"s3:prefix": "x"}}"#, &c));
        assert!(holds(r#"{"StringNotEquals": {"s3:prefix": "x"}}"#, &c));
        assert!(holds(r#"{"StringEqualsIfExists": {"s3:prefix": "x"}}"#, &c));
        assert!(holds(
            r#"{"NumericLessThanIfExists": {"s3:max-keys": "10"}}"#,
            &c
        ));
        assert!(!holds(r#"{"NumericLessThan": {"s3:max-keys": "10"}}"#, &c));
        assert!(holds(
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &c
        ));
        // IfExists with the key present tests the value.
        let p = ctx().with_prefix("y");
        assert!(!holds(
            r#"{"StringEqualsIfExists": {"s3:prefix": "x"}}"#,
            &p
        ));
    }

    #[test]
    fn null() {
        let c = ctx().with_prefix("p");
        assert!(holds(r#"{"Null": {"s3:prefix": "false"}}"#, &c));
        assert!(!holds(r#"{"Null": {"s3:prefix": "true"}}"#, &c));
        assert!(holds(r#"{"Null": {"s3:delimiter": "true"}}"#, &c));
        assert!(holds(r#"{"Null": {"s3:delimiter": true}}"#, &c));
        assert!(!holds(r#"{"Null": {"s3:delimiter": false}}"#, &c));
    }

    #[test]
    fn numeric() {
        let c = ctx().with_max_keys(10);
        for (op, v, want) in [
            ("NumericEquals", "10", true),
            ("NumericEquals", "10.0", true),
            ("NumericNotEquals", "10", false),
            ("NumericLessThan", "10", false),
            ("NumericLessThanEquals", "10", true),
            ("NumericGreaterThan", "9", true),
            ("NumericGreaterThanEquals", "11", false),
        ] {
            let json = format!(r#"{{"{op}": {{"s3:max-keys": "{v}"}}}}"#);
            assert_eq!(holds(&json, &c), want, "{json}");
        }
        assert!(holds(
            r#"{"NumericLessThanEquals": {"s3:max-keys": 10}}"#,
            &c
        ));
    }

    #[test]
    fn dates() {
        let c = ctx().with_current_time(1_700_000_000); // 2023-11-14T22:13:20Z
        assert!(holds(
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2023-01-01T00:00:00Z"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"DateLessThan": {"aws:CurrentTime": "2024-01-01"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"DateLessThan": {"aws:CurrentTime": "2023-11-14T22:13:20Z"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"DateLessThanEquals": {"aws:CurrentTime": "2023-11-14T22:13:20Z"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"DateEquals": {"aws:EpochTime": "1700000000"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"DateNotEquals": {"aws:EpochTime": "1700000000"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"DateGreaterThanEquals": {"aws:EpochTime": "2023-11-14T22:13:20Z"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"NumericLessThan": {"aws:EpochTime": 1800000000}}"#,
            &c
        ));
    }

    #[test]
    fn bool() {
        let https = ctx().with_secure_transport(true);
        let http = ctx().with_secure_transport(false);
        assert!(holds(
            r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
            &https
        ));
        assert!(holds(r#"{"Bool": {"aws:SecureTransport": false}}"#, &http));
        assert!(!holds(
            r#"{"Bool": {"aws:SecureTransport": "false"}}"#,
            &https
        ));
        assert!(holds(
            r#"{"BoolIfExists": {"aws:SecureTransport": "false"}}"#,
            &ctx()
        ));
        assert!(!holds(
            r#"{"Bool": {"aws:SecureTransport": "false"}}"#,
            &ctx()
        ));
    }

    #[test]
    fn ip_addresses() {
        let v4 = ctx().with_source_ip("192.0.2.77".parse().unwrap());
        let mapped = ctx().with_source_ip("::ffff:192.0.2.77".parse().unwrap());
        let v6 = ctx().with_source_ip("2001:db8::1".parse().unwrap());
        let r = r#"{"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}}"#;
        assert!(holds(r, &v4) && holds(r, &mapped) && holds(r, &v6));
        let r = r#"{"IpAddress": {"aws:SourceIp": "192.0.2.0/26"}}"#;
        assert!(!holds(r, &v4) && !holds(r, &v6));
        assert!(holds(
            r#"{"IpAddress": {"aws:SourceIp": "192.0.2.77"}}"#,
            &v4
        ));
        assert!(holds(
            r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#,
            &v4
        ));
        assert!(!holds(
            r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#,
            &v6
        ));
        assert!(holds(r#"{"IpAddress": {"aws:SourceIp": "::/0"}}"#, &v6));
        assert!(holds(
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &v4
        ));
        assert!(!holds(
            r#"{"NotIpAddress": {"aws:SourceIp": "192.0.0.0/8"}}"#,
            &v4
        ));
    }

    #[test]
    fn arns() {
        let c = ctx();
        assert!(holds(
            r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::percore:user/alice"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}"#,
            &c
        ));
        // A `*` does not span the parts of an ARN.
        let p = Pattern::parse("arn:*:s3:::x", true, false).unwrap();
        let toks = p.resolve(|_| None, false).unwrap();
        assert!(arn_like(&toks, "arn:aws:s3:::x"));
        assert!(!arn_like(&toks, "arn:aws:extra:s3:::x"));
        assert!(!arn_like(&toks, "arn:aws:s3::x"));
        assert!(holds(
            r#"{"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::percore:user/bob"}}"#,
            &c
        ));
        let anon = RequestContext::new(None, "s3:GetObject", "arn:aws:s3:::b/k");
        assert!(!holds(
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:*:*:*:*:*"}}"#,
            &anon
        ));
    }

    #[test]
    fn set_qualifiers() {
        let none = ctx();
        let tags = ctx()
            .with_request_object_tag("Project", "x")
            .with_request_object_tag("Owner", "y");
        let all = r#"{"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["Project", "Owner", "Cost"]}}"#;
        let any = r#"{"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["Cost", "Owner"]}}"#;
        // ForAllValues over no values is true, ForAnyValue false.
        assert!(holds(all, &none));
        assert!(!holds(any, &none));
        assert!(holds(all, &tags) && holds(any, &tags));
        let only_project =
            r#"{"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": "Project"}}"#;
        assert!(!holds(only_project, &tags));
        let any_not = r#"{"ForAnyValue:StringNotEquals": {"s3:RequestObjectTagKeys": "Project"}}"#;
        assert!(holds(any_not, &tags));
        assert!(holds(
            r#"{"ForAnyValue:StringLikeIfExists": {"s3:RequestObjectTagKeys": "x"}}"#,
            &none
        ));
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"StringEqual": {"s3:prefix": "x"}}"#,
                "unknown condition operator \"StringEqual\"",
            ),
            (
                r#"{"ForSomeValues:StringEquals": {"s3:prefix": "x"}}"#,
                "unknown condition operator",
            ),
            (
                r#"{"StringEquals": {"aws:SourceVpc": "x"}}"#,
                "unknown condition key \"aws:SourceVpc\"",
            ),
            (
                r#"{"IpAddress": {"s3:prefix": "10.0.0.0/8"}}"#,
                "does not apply to the string key",
            ),
            (
                r#"{"DateLessThan": {"s3:max-keys": "1"}}"#,
                "does not apply to the numeric key",
            ),
            (
                r#"{"StringLike": {"aws:SourceIp": "10.*"}}"#,
                "does not apply to the IP address key",
            ),
            (
                r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}"#,
                "IPv4 or IPv6 address or CIDR",
            ),
            (
                r#"{"IpAddress": {"aws:SourceIp": "10.0.0/8"}}"#,
                "IPv4 or IPv6 address or CIDR",
            ),
            (
                r#"{"NumericLessThan": {"s3:max-keys": "ten"}}"#,
                "expected a number",
            ),
            (
                r#"{"NumericLessThan": {"s3:max-keys": "inf"}}"#,
                "expected a number",
            ),
            (
                r#"{"DateLessThan": {"aws:CurrentTime": "tomorrow"}}"#,
                "ISO 8601",
            ),
            (
                r#"{"Bool": {"aws:SecureTransport": "yes"}}"#,
                "\"true\" or \"false\"",
            ),
            (
                r#"{"Null": {"s3:prefix": "maybe"}}"#,
                "\"true\" or \"false\"",
            ),
            (
                r#"{"NullIfExists": {"s3:prefix": "true"}}"#,
                "with IfExists",
            ),
            (
                r#"{"ForAnyValue:Null": {"s3:prefix": "true"}}"#,
                "ForAnyValue",
            ),
            (r#"{"ArnLike": {"aws:PrincipalArn": "alice"}}"#, "an ARN"),
            (
                r#"{"StringEquals": {"s3:prefix": []}}"#,
                "\"condition values\" is empty",
            ),
            (r#"{"StringEquals": {}}"#, "is empty"),
            (
                r#"{"StringEquals": {"s3:prefix": null}}"#,
                "expected a string, number or boolean",
            ),
            (
                r#"{"StringEquals": {"s3:prefix": "a", "S3:Prefix": "b"}}"#,
                "appears more than once",
            ),
            (
                r#"{"StringEquals": {"s3:prefix": "a"}, "StringEquals": {"s3:delimiter": "/"}}"#,
                "\"StringEquals\" appears more than once",
            ),
            (
                r#"{"StringEquals": {"s3:prefix": "${aws:nope}"}}"#,
                "unknown key \"aws:nope\"",
            ),
            (
                r#"["StringEquals"]"#,
                "expected an object of condition operators",
            ),
        ];
        for (json, want) in cases {
            let err = cond(json).expect_err(json);
            assert!(err.to_string().contains(want), "{json}: {err}");
        }
        let err = parse_block(
            &Json::parse(br#"{"StringEquals": {"s3:prefix": "${aws:username}"}}"#).unwrap(),
            "Condition",
            false,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs \"Version\": \"2012-10-17\""),
            "{err}"
        );
    }
}
