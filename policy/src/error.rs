//! The one error of the crate: a policy document that is not accepted, with where and why.
//!
//! Every rejection is S3's `MalformedPolicy` (IAM calls it `MalformedPolicyDocument`): the
//! gateway maps it to that code with 400 and uses the [`std::fmt::Display`] text as the
//! message, so the text says exactly what is wrong and where (`Statement[2] (Sid "Deny"):
//! Condition: unknown condition operator "StringEqual"`).

use thiserror::Error;

/// A rejected policy document: [`at`](Self::at) names the place, [`problem`](Self::problem)
/// what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{at}: {problem}")]
pub struct MalformedPolicy {
    /// Where in the document: `policy`, `Statement[0] (Sid "x")`, `Statement[1].Condition`…
    pub at: String,
    /// What is wrong.
    pub problem: Problem,
}

impl MalformedPolicy {
    pub(crate) fn new(at: impl Into<String>, problem: Problem) -> Self {
        Self {
            at: at.into(),
            problem,
        }
    }

    /// The S3 error code every rejection maps to.
    pub fn code(&self) -> &'static str {
        "MalformedPolicy"
    }
}

/// What is wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("the document is not valid JSON: {detail}")]
    InvalidJson { detail: String },
    #[error("the document is {size_bytes} bytes, more than the {max_bytes} bytes allowed")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("unknown field \"{field}\" (known: {known})")]
    UnknownField { field: String, known: &'static str },
    #[error("the key \"{key}\" appears more than once")]
    DuplicateKey { key: String },
    #[error("missing required field \"{field}\"")]
    MissingField { field: &'static str },
    #[error("\"{first}\" and \"{second}\" cannot both be given")]
    Conflicting {
        first: &'static str,
        second: &'static str,
    },
    #[error("unsupported Version \"{version}\" (use \"2012-10-17\" or \"2008-10-17\")")]
    UnsupportedVersion { version: String },
    #[error("the policy has no statements")]
    NoStatements,
    #[error("the Sid \"{sid}\" is used by more than one statement")]
    DuplicateSid { sid: String },
    #[error("Effect must be \"Allow\" or \"Deny\", not \"{effect}\"")]
    InvalidEffect { effect: String },
    #[error("\"{field}\" is empty")]
    Empty { field: &'static str },
    #[error("an identity policy cannot name a principal (\"{field}\"): it applies to its user")]
    PrincipalInIdentityPolicy { field: &'static str },
    #[error("a bucket policy statement needs \"Principal\" or \"NotPrincipal\"")]
    MissingPrincipal,
    #[error("invalid principal \"{principal}\": {reason}")]
    InvalidPrincipal {
        principal: String,
        reason: &'static str,
    },
    #[error("unsupported principal type \"{kind}\" (percore knows only \"AWS\" and \"*\")")]
    UnsupportedPrincipalType { kind: String },
    #[error("invalid action \"{action}\": {reason}")]
    InvalidAction {
        action: String,
        reason: &'static str,
    },
    #[error("invalid resource \"{resource}\": {reason}")]
    InvalidResource {
        resource: String,
        reason: &'static str,
    },
    #[error(
        "resource \"{resource}\" is not within the bucket \"{bucket}\" \
         (use arn:aws:s3:::{bucket} or arn:aws:s3:::{bucket}/...)"
    )]
    ResourceOutsideBucket { resource: String, bucket: String },
    #[error("unknown condition operator \"{operator}\"")]
    UnknownOperator { operator: String },
    #[error("the operator \"{operator}\" cannot be used {reason}")]
    OperatorNotAllowed {
        operator: String,
        reason: &'static str,
    },
    #[error("unknown condition key \"{key}\" (percore refuses keys it does not supply)")]
    UnknownConditionKey { key: String },
    #[error("the operator \"{operator}\" does not apply to the {key_type} key \"{key}\"")]
    OperatorKeyMismatch {
        operator: String,
        key: String,
        key_type: &'static str,
    },
    #[error("\"{value}\" is not a valid value for \"{operator}\": expected {expected}")]
    InvalidConditionValue {
        operator: String,
        value: String,
        expected: &'static str,
    },
    #[error("invalid policy variable in \"{text}\": {reason}")]
    InvalidVariable { text: String, reason: String },
    #[error("\"{text}\" uses a policy variable, which needs \"Version\": \"2012-10-17\"")]
    VariableNeedsVersion { text: String },
}
