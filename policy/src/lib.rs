//! percore policy: the AWS access-policy language for bucket policies and per-user identity
//! policies, parsed, validated and evaluated.
//!
//! Pure code: no I/O, no async, no clock (the caller passes the time in the
//! [`RequestContext`]), no HTTP or S3 types. The gateway parses a document with
//! [`Policy::parse_bucket`] or [`Policy::parse_identity`] (a [`MalformedPolicy`] says what is
//! wrong and where), maps an S3 operation to its action with [`action_for`], builds a
//! [`RequestContext`] and asks [`authorize`].
//!
//! - [`document`]: the grammar and its validation ([`Policy`], [`Statement`]).
//! - [`condition`]: Condition operators and how they treat missing keys and sets.
//! - [`keys`]: the condition keys percore supplies, and dates.
//! - [`pattern`]: `*`/`?` wildcards and `${...}` policy variables.
//! - [`eval`]: [`RequestContext`], [`Decision`], [`authorize`].
//! - [`actions`]: the S3 action names and the operation → action table.
//!
//! # Principals
//!
//! percore users are names. A principal names one as `arn:aws:iam::percore:user/NAME` or as
//! the bare `NAME`; `"*"` or `{"AWS": "*"}` is everyone, anonymous callers included. Other
//! ARNs, principal types (`Service`, `CanonicalUser`, `Federated`) and wildcards inside a
//! name are refused. [`Policy::named_users`] lists the names so the caller can refuse a policy
//! naming a user that does not exist. User names compare exactly (case-sensitive).
//!
//! # Evaluation (one account, as AWS documents it)
//!
//! 1. Every request starts denied.
//! 2. The applicable policies are the caller's identity policies (none when anonymous) and
//!    the bucket's policy. A statement applies when its Principal/NotPrincipal (bucket
//!    policies only), Action/NotAction, Resource/NotResource and all its conditions match.
//! 3. An applicable Deny in any of them is final: [`Decision::ExplicitDeny`].
//! 4. Otherwise an applicable Allow in either the identity policies or the bucket policy is
//!    enough: [`Decision::Allow`] (within one account either grants on its own).
//! 5. Otherwise [`Decision::ImplicitDeny`]: the caller decides what that means for requests
//!    ownership alone allows (a bucket owner's own requests).
//!
//! Refuse, never ignore: a field, operator, condition key, action or principal type that the
//! crate does not know is a [`MalformedPolicy`], never skipped, because a skipped Deny is a
//! hole.

pub mod actions;
pub mod condition;
pub mod document;
pub mod error;
pub mod eval;
mod json;
pub mod keys;
pub mod limits;
pub mod pattern;

pub use actions::{action_for, bucket_arn, object_arn, RequiredAction, ResourceKind, S3_ACTIONS};
pub use document::{
    Effect, Policy, PolicyKind, PrincipalMatch, Principals, Statement, Version, S3_ARN_PREFIX,
    USER_ARN_PREFIX,
};
pub use error::{MalformedPolicy, Problem};
pub use eval::{authorize, Decision, RequestContext};
pub use pattern::wildcard_match;
