//! Policy documents: the JSON grammar, its validation, and the typed [`Policy`].
//!
//! Fields are case-sensitive as in AWS; any field, operator or key percore does not know is
//! refused, never skipped. A bucket policy's statements must name a principal and stay within
//! the bucket; an identity policy's must not name one (it applies to the user it is attached to).

use std::collections::BTreeSet;

use crate::actions::S3_ACTIONS;
use crate::condition::{self, Condition};
use crate::error::{MalformedPolicy, Problem};
use crate::json::Json;
use crate::limits::{BUCKET_POLICY_BYTES_MAX, IDENTITY_POLICY_BYTES_MAX, USER_NAME_BYTES_MAX};
use crate::pattern::Pattern;

/// The ARN prefix of every S3 resource.
pub const S3_ARN_PREFIX: &str = "arn:aws:s3:::";

/// How a principal names a percore user: `arn:aws:iam::percore:user/NAME` (or the bare NAME).
pub const USER_ARN_PREFIX: &str = "arn:aws:iam::percore:user/";

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2008-10-17` (also a document without Version): no policy variables.
    V2008_10_17,
    /// `2012-10-17`: policy variables (`${aws:username}`).
    V2012_10_17,
}

/// What a policy is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// A bucket policy of this bucket.
    Bucket(String),
    /// An identity policy of a user.
    Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a statement is about: everyone (`*`, anonymous callers included) or named users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    Everyone,
    Users(BTreeSet<String>),
}

/// A Principal (`negated` false) or NotPrincipal (true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalMatch {
    pub principals: Principals,
    pub negated: bool,
}

/// An Action/NotAction or Resource/NotResource list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternList {
    pub(crate) patterns: Vec<Pattern>,
    pub negated: bool,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `None` in identity policies.
    pub principal: Option<PrincipalMatch>,
    /// Action patterns, lowercased: action names are case-insensitive.
    pub(crate) actions: PatternList,
    pub(crate) resources: PatternList,
    pub(crate) conditions: Vec<Condition>,
    /// The keys of the policy variables (without a default) the statement uses: a request
    /// without a value for one of them is outside the statement.
    pub(crate) required_variables: BTreeSet<String>,
}

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: Version,
    pub id: Option<String>,
    pub kind: PolicyKind,
    pub statements: Vec<Statement>,
}

const POLICY_FIELDS: &str = "Version, Id, Statement";
const STATEMENT_FIELDS: &str =
    "Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition";

impl Policy {
    /// Parses and validates the bucket policy of `bucket` (at most 20 KiB).
    pub fn parse_bucket(document: &[u8], bucket: &str) -> Result<Self, MalformedPolicy> {
        parse(
            document,
            PolicyKind::Bucket(bucket.to_owned()),
            BUCKET_POLICY_BYTES_MAX,
        )
    }

    /// Parses and validates an identity policy (at most 6 KiB).
    pub fn parse_identity(document: &[u8]) -> Result<Self, MalformedPolicy> {
        parse(document, PolicyKind::Identity, IDENTITY_POLICY_BYTES_MAX)
    }

    /// Every user the policy's principals name, so the caller can refuse a policy naming a
    /// user that does not exist (AWS answers that with MalformedPolicy "Invalid principal").
    pub fn named_users(&self) -> BTreeSet<&str> {
        let mut users = BTreeSet::new();
        for s in &self.statements {
            if let Some(PrincipalMatch {
                principals: Principals::Users(names),
                ..
            }) = &s.principal
            {
                users.extend(names.iter().map(String::as_str));
            }
        }
        users
    }

    /// Every condition key the policy's conditions test and every policy variable without a
    /// default it uses (canonical spellings), so a caller that does not supply some key can
    /// refuse the policy instead of evaluating a condition that can never match.
    pub fn keys_used(&self) -> BTreeSet<&str> {
        let mut keys = BTreeSet::new();
        for s in &self.statements {
            keys.extend(s.conditions.iter().map(Condition::key));
            keys.extend(s.required_variables.iter().map(String::as_str));
        }
        keys
    }

    /// Whether the policy is public, as GetBucketPolicyStatus reports it: some Allow
    /// statement applies to everyone (`*`, or a NotPrincipal, which always leaves callers
    /// in) without a condition that pins the caller to fixed values (an `IpAddress` on
    /// `aws:SourceIp` with no `/0` block, or an exact `aws:PrincipalArn` or `aws:username`).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            let everyone = matches!(
                &s.principal,
                Some(
                    PrincipalMatch {
                        principals: Principals::Everyone,
                        negated: false,
                    } | PrincipalMatch { negated: true, .. }
                )
            );
            s.effect == Effect::Allow
                && everyone
                && !s
                    .conditions
                    .iter()
                    .any(Condition::restricts_to_fixed_values)
        })
    }
}

fn parse(document: &[u8], kind: PolicyKind, max_bytes: usize) -> Result<Policy, MalformedPolicy> {
    if document.len() > max_bytes {
        return Err(MalformedPolicy::new(
            "policy",
            Problem::TooLarge {
                size_bytes: document.len(),
                max_bytes,
            },
        ));
    }
    let json = Json::parse(document)?;
    let fields = json.object("policy", "a JSON object")?;
    let mut version = None;
    let mut id = None;
    let mut statement_json = None;
    for (field, value) in fields {
        match field.as_str() {
            "Version" => version = Some(value),
            "Id" => id = Some(value),
            "Statement" => statement_json = Some(value),
            _ => {
                return Err(MalformedPolicy::new(
                    "policy",
                    Problem::UnknownField {
                        field: field.clone(),
                        known: POLICY_FIELDS,
                    },
                ))
            }
        }
    }
    let version = match version {
        None => Version::V2008_10_17,
        Some(Json::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
        Some(Json::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
        Some(Json::String(v)) => {
            return Err(MalformedPolicy::new(
                "Version",
                Problem::UnsupportedVersion { version: v.clone() },
            ))
        }
        Some(_) => return Err(wrong("Version", "a string")),
    };
    let id = match id {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err(wrong("Id", "a string")),
    };
    let statement_json = statement_json.ok_or_else(|| missing("policy", "Statement"))?;
    let items: Vec<&Json> = match statement_json {
        Json::Array(items) => items.iter().collect(),
        one @ Json::Object(_) => vec![one],
        _ => return Err(wrong("Statement", "an object or an array of objects")),
    };
    if items.is_empty() {
        return Err(MalformedPolicy::new("Statement", Problem::NoStatements));
    }
    let mut statements: Vec<Statement> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let statement = parse_statement(item, i, version, &kind)?;
        if let Some(sid) = statement.sid.as_deref().filter(|s| !s.is_empty()) {
            if statements.iter().any(|s| s.sid.as_deref() == Some(sid)) {
                return Err(MalformedPolicy::new(
                    format!("Statement[{i}]"),
                    Problem::DuplicateSid {
                        sid: sid.to_owned(),
                    },
                ));
            }
        }
        statements.push(statement);
    }
    Ok(Policy {
        version,
        id,
        kind,
        statements,
    })
}

fn wrong(at: &str, expected: &'static str) -> MalformedPolicy {
    MalformedPolicy::new(at, Problem::WrongType { expected })
}

fn missing(at: &str, field: &'static str) -> MalformedPolicy {
    MalformedPolicy::new(at, Problem::MissingField { field })
}

/// The fields of one statement, as given.
#[derive(Default)]
struct Fields<'a> {
    sid: Option<&'a Json>,
    effect: Option<&'a Json>,
    principal: Option<&'a Json>,
    not_principal: Option<&'a Json>,
    action: Option<&'a Json>,
    not_action: Option<&'a Json>,
    resource: Option<&'a Json>,
    not_resource: Option<&'a Json>,
    condition: Option<&'a Json>,
}

fn parse_statement(
    json: &Json,
    index: usize,
    version: Version,
    kind: &PolicyKind,
) -> Result<Statement, MalformedPolicy> {
    let mut at = format!("Statement[{index}]");
    let entries = json.object(&at, "a statement object")?;
    let mut f = Fields::default();
    for (field, value) in entries {
        let slot = match field.as_str() {
            "Sid" => &mut f.sid,
            "Effect" => &mut f.effect,
            "Principal" => &mut f.principal,
            "NotPrincipal" => &mut f.not_principal,
            "Action" => &mut f.action,
            "NotAction" => &mut f.not_action,
            "Resource" => &mut f.resource,
            "NotResource" => &mut f.not_resource,
            "Condition" => &mut f.condition,
            _ => {
                return Err(MalformedPolicy::new(
                    at,
                    Problem::UnknownField {
                        field: field.clone(),
                        known: STATEMENT_FIELDS,
                    },
                ))
            }
        };
        *slot = Some(value);
    }
    let sid = match f.sid {
        None => None,
        Some(Json::String(s)) => {
            at = format!("{at} (Sid {s:?})");
            Some(s.clone())
        }
        Some(_) => return Err(wrong(&format!("{at}.Sid"), "a string")),
    };
    let effect = match f.effect {
        None => return Err(missing(&at, "Effect")),
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(Json::String(e)) => {
            return Err(MalformedPolicy::new(
                format!("{at}.Effect"),
                Problem::InvalidEffect { effect: e.clone() },
            ))
        }
        Some(_) => return Err(wrong(&format!("{at}.Effect"), "a string")),
    };
    let principal = parse_principal_field(&f, &at, kind)?;
    let (action_json, negated) = one_of(f.action, f.not_action, "Action", "NotAction", &at)?;
    let actions = parse_actions(
        action_json,
        negated,
        &format!("{at}.{}", name(negated, "Action")),
    )?;
    let (resource_json, negated) =
        one_of(f.resource, f.not_resource, "Resource", "NotResource", &at)?;
    let resources = parse_resources(
        resource_json,
        negated,
        &format!("{at}.{}", name(negated, "Resource")),
        version,
        kind,
    )?;
    let conditions = match f.condition {
        None => Vec::new(),
        Some(c) => condition::parse_block(
            c,
            &format!("{at}.Condition"),
            version == Version::V2012_10_17,
        )?,
    };
    let required_variables = resources
        .patterns
        .iter()
        .flat_map(Pattern::required_variables)
        .chain(conditions.iter().flat_map(Condition::required_variables))
        .map(str::to_owned)
        .collect();
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        resources,
        conditions,
        required_variables,
    })
}

fn name(negated: bool, field: &str) -> String {
    if negated {
        format!("Not{field}")
    } else {
        field.to_owned()
    }
}

/// Exactly one of a field and its Not form: the value and whether it is the Not form.
fn one_of<'a>(
    plain: Option<&'a Json>,
    not: Option<&'a Json>,
    plain_name: &'static str,
    not_name: &'static str,
    at: &str,
) -> Result<(&'a Json, bool), MalformedPolicy> {
    match (plain, not) {
        (Some(_), Some(_)) => Err(MalformedPolicy::new(
            at,
            Problem::Conflicting {
                first: plain_name,
                second: not_name,
            },
        )),
        (Some(p), None) => Ok((p, false)),
        (None, Some(n)) => Ok((n, true)),
        (None, None) => Err(missing(at, plain_name)),
    }
}

fn parse_principal_field(
    f: &Fields,
    at: &str,
    kind: &PolicyKind,
) -> Result<Option<PrincipalMatch>, MalformedPolicy> {
    if *kind == PolicyKind::Identity {
        return match (f.principal, f.not_principal) {
            (Some(_), _) => Err(MalformedPolicy::new(
                at,
                Problem::PrincipalInIdentityPolicy { field: "Principal" },
            )),
            (_, Some(_)) => Err(MalformedPolicy::new(
                at,
                Problem::PrincipalInIdentityPolicy {
                    field: "NotPrincipal",
                },
            )),
            (None, None) => Ok(None),
        };
    }
    let (json, negated) = match (f.principal, f.not_principal) {
        (None, None) => return Err(MalformedPolicy::new(at, Problem::MissingPrincipal)),
        _ => one_of(
            f.principal,
            f.not_principal,
            "Principal",
            "NotPrincipal",
            at,
        )?,
    };
    let at = format!("{at}.{}", name(negated, "Principal"));
    let principals = parse_principals(json, &at)?;
    if negated && principals == Principals::Everyone {
        return Err(MalformedPolicy::new(
            at,
            Problem::InvalidPrincipal {
                principal: "*".to_owned(),
                reason: "NotPrincipal \"*\" would match no one",
            },
        ));
    }
    Ok(Some(PrincipalMatch {
        principals,
        negated,
    }))
}

/// `"*"`, `{"AWS": "*"}`, `{"AWS": "arn:aws:iam::percore:user/NAME"}`, `{"AWS": "NAME"}`, or
/// `{"AWS": [...]}` of those.
fn parse_principals(json: &Json, at: &str) -> Result<Principals, MalformedPolicy> {
    let aws = match json {
        Json::String(s) if s == "*" => return Ok(Principals::Everyone),
        Json::String(s) => {
            return Err(MalformedPolicy::new(
                at,
                Problem::InvalidPrincipal {
                    principal: s.clone(),
                    reason: "a principal string must be \"*\"; name users as {\"AWS\": [...]}",
                },
            ))
        }
        other => {
            let entries = other.object(at, "\"*\" or an object such as {\"AWS\": ...}")?;
            let mut aws = None;
            for (kind, value) in entries {
                if kind == "AWS" {
                    aws = Some(value);
                } else {
                    return Err(MalformedPolicy::new(
                        at,
                        Problem::UnsupportedPrincipalType { kind: kind.clone() },
                    ));
                }
            }
            aws.ok_or_else(|| missing(at, "AWS"))?
        }
    };
    let at = format!("{at}.AWS");
    let mut users = BTreeSet::new();
    for p in aws.strings(&at, "AWS")? {
        if p == "*" {
            return Ok(Principals::Everyone);
        }
        users.insert(principal_user(p).map_err(|reason| {
            MalformedPolicy::new(
                &at,
                Problem::InvalidPrincipal {
                    principal: p.to_owned(),
                    reason,
                },
            )
        })?);
    }
    Ok(Principals::Users(users))
}

/// The user a principal entry names: `arn:aws:iam::percore:user/NAME` or NAME, where NAME
/// follows percore's rule for user names (1 to 64 printable ASCII characters, `/` and `:`
/// included; a bare NAME cannot start with `arn:`).
fn principal_user(p: &str) -> Result<String, &'static str> {
    let name = if let Some(name) = p.strip_prefix(USER_ARN_PREFIX) {
        name
    } else if p.starts_with("arn:") {
        return Err("percore users are named arn:aws:iam::percore:user/NAME (or NAME)");
    } else {
        p
    };
    if name.contains(['*', '?']) {
        return Err("wildcards are not allowed in principals (only \"*\" alone, for everyone)");
    }
    if name.is_empty()
        || name.len() > USER_NAME_BYTES_MAX
        || !name.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("a percore user name is 1 to 64 printable ASCII characters");
    }
    Ok(name.to_owned())
}

fn parse_actions(json: &Json, negated: bool, at: &str) -> Result<PatternList, MalformedPolicy> {
    let field = if negated { "NotAction" } else { "Action" };
    let mut patterns = Vec::new();
    for action in json.strings(at, field)? {
        let invalid = |reason| {
            MalformedPolicy::new(
                at,
                Problem::InvalidAction {
                    action: action.to_owned(),
                    reason,
                },
            )
        };
        let lower = action.to_ascii_lowercase();
        if lower != "*" && !lower.starts_with("s3:") {
            return Err(invalid(
                "not an S3 action (percore knows only \"s3:...\" and \"*\")",
            ));
        }
        let pattern =
            Pattern::parse(&lower, true, false).map_err(|p| MalformedPolicy::new(at, p))?;
        if !S3_ACTIONS
            .iter()
            .any(|known| pattern.matches(known, |_| None, true))
        {
            return Err(invalid("no S3 action has this name"));
        }
        patterns.push(pattern);
    }
    Ok(PatternList { patterns, negated })
}

fn parse_resources(
    json: &Json,
    negated: bool,
    at: &str,
    version: Version,
    kind: &PolicyKind,
) -> Result<PatternList, MalformedPolicy> {
    let field = if negated { "NotResource" } else { "Resource" };
    let variables = version == Version::V2012_10_17;
    let mut patterns = Vec::new();
    for resource in json.strings(at, field)? {
        let invalid = |reason| {
            MalformedPolicy::new(
                at,
                Problem::InvalidResource {
                    resource: resource.to_owned(),
                    reason,
                },
            )
        };
        if !variables && resource.contains("${") {
            return Err(MalformedPolicy::new(
                at,
                Problem::VariableNeedsVersion {
                    text: resource.to_owned(),
                },
            ));
        }
        let pattern =
            Pattern::parse(resource, true, variables).map_err(|p| MalformedPolicy::new(at, p))?;
        match kind {
            PolicyKind::Bucket(bucket) => {
                // The bucket part must be spelled out: `arn:aws:s3:::b` or `arn:aws:s3:::b/…`.
                let literal = pattern.literal_prefix();
                let whole = format!("{S3_ARN_PREFIX}{bucket}");
                let exact = literal == whole && !pattern.has_wildcard() && !pattern.has_variable();
                if !exact && !literal.starts_with(&format!("{whole}/")) {
                    return Err(MalformedPolicy::new(
                        at,
                        Problem::ResourceOutsideBucket {
                            resource: resource.to_owned(),
                            bucket: bucket.clone(),
                        },
                    ));
                }
            }
            PolicyKind::Identity => {
                if resource != "*" && !resource.starts_with(S3_ARN_PREFIX) {
                    return Err(invalid(
                        "not an S3 resource (use \"*\" or arn:aws:s3:::bucket[/key])",
                    ));
                }
            }
        }
        patterns.push(pattern);
    }
    Ok(PatternList { patterns, negated })
}
