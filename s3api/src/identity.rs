//! Identity policies: a user's own policy (kept with the user in `users.toml`, set with
//! `percore user policy set`), checked and combined with the bucket's policy for every request
//! the user signs. The access gate (`authz`) asks [`decide`] wherever it judged by the bucket
//! policy alone before, and [`require`] for the operations no bucket policy decides.
//!
//! # The rule
//!
//! percore has no accounts: each user owns its buckets the way an AWS account owns its
//! resources. A user **without** an identity policy is such an account's root: its requests
//! are judged as before (owner of its own buckets unless the bucket policy denies, others'
//! buckets only by their policy's Allow). A user **with** an identity policy is like an IAM user
//! of the account that owns its buckets, and AWS's evaluation logic applies as documented for
//! it ("Policy evaluation logic", same-account and cross-account requests):
//!
//! 1. An explicit Deny in the identity policy or in the bucket policy wins, whoever owns the
//!    bucket.
//! 2. **Its own buckets** (same account): an Allow in either the identity policy or the bucket
//!    policy is enough. Owning the bucket grants nothing more: what the identity policy does
//!    not allow, only the bucket policy can.
//! 3. **Another user's bucket** (cross-account): both sides must allow, the identity policy and
//!    the bucket policy; either alone is not enough. A grant of the bucket's ACL (`acl`) is the
//!    bucket's side as its policy's Allow is: the bucket policy can then only deny, and the
//!    identity policy must still allow.
//! 4. Requests that no bucket policy judges need an Allow from the identity policy:
//!    ListBuckets (`s3:ListAllMyBuckets` on `arn:aws:s3:::*`), CreateBucket (`s3:CreateBucket`
//!    on the bucket), the owner-only policy operations and the owner's public access block and
//!    ownership controls operations (their own actions on the bucket). An operation percore
//!    maps to no action is refused to such a user (a hole otherwise: nothing could deny it).
//! 5. Root never has an identity policy (the CLI refuses one) and is never restricted by one.
//!
//! Condition keys are the request's, as for bucket policies (`authz::Facts`): `aws:username`,
//! `aws:SourceIp`, `s3:prefix` and the others work the same inside identity policies. An
//! identity policy has no Principal or NotPrincipal (the policy crate refuses one:
//! MalformedPolicy); its Resource may name any bucket. Keys the gateway does not supply (object
//! tags) are refused as in bucket policies (`bucket_policy::uses_unsupplied_keys`).
//!
//! Not done here: several policies per user, groups, roles, permission boundaries (one policy
//! per user, as one inline policy).

use std::sync::Arc;

use policy::{authorize, Decision, Policy, RequestContext};

use crate::creds::Users;

/// The identity policy `text`, parsed and checked against what the gateway supplies; the
/// error says what is wrong (MalformedPolicy's message, or the keys not supplied).
pub fn validate(text: &str) -> Result<Policy, String> {
    let parsed =
        Policy::parse_identity(text.as_bytes()).map_err(|e| format!("MalformedPolicy: {e}"))?;
    if crate::bucket_policy::uses_unsupplied_keys(text, &parsed) {
        return Err(format!(
            "NotImplemented: {}",
            crate::bucket_policy::UNSUPPLIED_MESSAGE
        ));
    }
    Ok(parsed)
}

/// The identity policy of the signer of `access_key`, if it has one (root never does).
pub fn policy_of(users: &Users, access_key: &str) -> Option<Arc<Policy>> {
    let user = users.by_access_key(access_key)?;
    if user.name == crate::creds::ROOT_USER {
        return None;
    }
    users.identity_policy(&user.name).cloned()
}

/// Where the caller of one request stands to the bucket it acts on (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The bucket's owner.
    Owner,
    /// Not the owner, but the bucket's ACL grants it the request's action (`acl`).
    Granted,
    /// Anyone else, anonymous callers included.
    Other,
}

impl Standing {
    /// The standing of the bucket's `owner`, else of a caller the bucket's ACL grants the
    /// action (`granted`), else of anyone.
    pub fn of(owner: bool, granted: bool) -> Standing {
        match (owner, granted) {
            (true, _) => Standing::Owner,
            (false, true) => Standing::Granted,
            (false, false) => Standing::Other,
        }
    }
}

/// Whether a request (`ctx`) is allowed, by the caller's `identity` policy (`None`: the caller
/// has none, or is anonymous) and the bucket's policy (`bucket`), for a caller of `standing`
/// (module docs).
pub fn decide(
    standing: Standing,
    identity: Option<&Policy>,
    bucket: Option<&Policy>,
    ctx: &RequestContext,
) -> bool {
    let theirs = authorize(ctx, &[], bucket);
    let own = identity.map(|p| p.evaluate(ctx));
    if theirs == Decision::ExplicitDeny || own == Some(Decision::ExplicitDeny) {
        return false;
    }
    // An ACL grant is the bucket's side of the judgement, as its policy's Allow is (AWS's
    // cross-account rule, the ACL being the resource-based permission).
    let bucket_allows = theirs == Decision::Allow || standing == Standing::Granted;
    match own {
        // Root, a user without an identity policy, or anonymous: the owner needs no Allow.
        None => standing == Standing::Owner || bucket_allows,
        Some(own) if standing == Standing::Owner => own == Decision::Allow || bucket_allows,
        Some(own) => own == Decision::Allow && bucket_allows,
    }
}

/// For a request no bucket policy judges (module docs, rule 4): whether the identity policy
/// allows it.
pub fn require(identity: &Policy, ctx: &RequestContext) -> bool {
    identity.evaluate(ctx) == Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::object_arn;

    fn identity(text: &str) -> Policy {
        validate(text).unwrap()
    }

    fn bucket(text: &str) -> Policy {
        Policy::parse_bucket(text.as_bytes(), "b").unwrap()
    }

    fn get(user: &str, key: &str) -> RequestContext {
        RequestContext::new(Some(user), "s3:GetObject", object_arn("b", key))
    }

    /// The combinations of AWS's documented evaluation, same- and cross-account.
    #[test]
    fn the_table() {
        let allow = identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",
            "Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let deny = identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject",
            "Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let other = identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject",
            "Resource":"*"}]}"#,
        );
        let bucket_allow = bucket(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let bucket_deny = bucket(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let ctx = get("alice", "k");
        // Every combination, each row for the three standings: the owner, a caller the
        // bucket's ACL grants the action, anyone else.
        // (identity policy, bucket policy, allowed as [Owner, Granted, Other])
        let rows: [(Option<&Policy>, Option<&Policy>, [bool; 3]); 12] = [
            // No identity policy: the owner needs no Allow, a grant is the bucket's Allow,
            // anyone else needs the bucket policy's; its Deny wins.
            (None, None, [true, true, false]),
            (None, Some(&bucket_allow), [true, true, true]),
            (None, Some(&bucket_deny), [false, false, false]),
            // An identity Allow: enough on its own bucket; elsewhere the bucket's side (its
            // policy or a grant) must allow too.
            (Some(&allow), None, [true, true, false]),
            (Some(&allow), Some(&bucket_allow), [true, true, true]),
            (Some(&allow), Some(&bucket_deny), [false, false, false]),
            // An identity policy silent on the action: owning the bucket or a grant gives
            // nothing more; only the owner's bucket policy can allow.
            (Some(&other), None, [false, false, false]),
            (Some(&other), Some(&bucket_allow), [true, false, false]),
            (Some(&other), Some(&bucket_deny), [false, false, false]),
            // An identity Deny wins everywhere.
            (Some(&deny), None, [false, false, false]),
            (Some(&deny), Some(&bucket_allow), [false, false, false]),
            (Some(&deny), Some(&bucket_deny), [false, false, false]),
        ];
        let standings = [Standing::Owner, Standing::Granted, Standing::Other];
        for (i, (id, b, expected)) in rows.into_iter().enumerate() {
            for (standing, expected) in standings.into_iter().zip(expected) {
                assert_eq!(
                    decide(standing, id, b, &ctx),
                    expected,
                    "row {i}, {standing:?}"
                );
            }
        }
    }

    #[test]
    fn standing_of_owner_and_grant() {
        assert_eq!(Standing::of(true, false), Standing::Owner);
        assert_eq!(Standing::of(true, true), Standing::Owner);
        assert_eq!(Standing::of(false, true), Standing::Granted);
        assert_eq!(Standing::of(false, false), Standing::Other);
    }

    #[test]
    fn condition_keys_work_in_identity_policies() {
        let home = identity(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:GetObject",
             "Resource":"arn:aws:s3:::b/home/${aws:username}/*"},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
             "Condition":{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}},
            {"Effect":"Deny","Action":"s3:*","Resource":"*",
             "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
        );
        let inside: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let outside: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let at = |ctx: RequestContext, ip| ctx.with_source_ip(ip);
        assert!(decide(
            Standing::Owner,
            Some(&home),
            None,
            &at(get("alice", "home/alice/x"), inside)
        ));
        assert!(!decide(
            Standing::Owner,
            Some(&home),
            None,
            &at(get("alice", "home/bob/x"), inside)
        ));
        assert!(!decide(
            Standing::Owner,
            Some(&home),
            None,
            &at(get("alice", "home/alice/x"), outside)
        ));
        let list = |prefix: &str| {
            RequestContext::new(Some("alice"), "s3:ListBucket", policy::bucket_arn("b"))
                .with_prefix(prefix)
                .with_source_ip(inside)
        };
        assert!(decide(
            Standing::Owner,
            Some(&home),
            None,
            &list("home/alice/")
        ));
        assert!(!decide(Standing::Owner, Some(&home), None, &list("home/")));
        assert!(require(&home, &at(get("alice", "home/alice/x"), inside)));
        assert!(!require(&home, &at(get("alice", "elsewhere"), inside)));
    }

    #[test]
    fn validation_refuses_principals_and_unsupplied_keys() {
        let with_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
        let e = validate(with_principal).unwrap_err();
        assert!(
            e.starts_with("MalformedPolicy") && e.contains("Principal"),
            "{e}"
        );
        let e = validate("{not json").unwrap_err();
        assert!(e.starts_with("MalformedPolicy"), "{e}");
        let tags = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny",
            "Action":"s3:GetObject","Resource":"*",
            "Condition":{"StringEquals":{"s3:ExistingObjectTag/class":"secret"}}}]}"#;
        assert!(validate(tags).unwrap_err().starts_with("NotImplemented"));
    }
}
