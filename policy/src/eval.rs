//! Evaluating policies against a request.
//!
//! A statement applies to a request when its principal (bucket policies), action, resource
//! and every condition match. A policy's decision is [`Decision::ExplicitDeny`] if any
//! applicable statement denies, else [`Decision::Allow`] if any allows, else
//! [`Decision::ImplicitDeny`]. [`authorize`] combines a user's identity policies with the
//! bucket's policy (see the crate docs for the rule).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::document::{
    Effect, PatternList, Policy, PrincipalMatch, Principals, Statement, USER_ARN_PREFIX,
};
use crate::keys;

/// What the policies say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some applicable statement allows it and none denies it.
    Allow,
    /// Some applicable statement denies it: nothing else can allow it.
    ExplicitDeny,
    /// No applicable statement: denied unless something else allows it.
    ImplicitDeny,
}

/// Everything a policy can ask about one request: who, what, on which resource, and the
/// condition keys. Built with [`RequestContext::new`] and the `with_…` helpers, one per key
/// percore supplies; a key never set is absent (what `Null` and `…IfExists` test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    user: Option<String>,
    action: String,
    resource: String,
    values: BTreeMap<String, Vec<String>>,
}

impl RequestContext {
    /// A request by `user` (`None`: anonymous) for `action` (`s3:GetObject`) on `resource`
    /// (`arn:aws:s3:::bucket/key`). Sets `aws:username` and `aws:PrincipalArn` for a user.
    pub fn new(user: Option<&str>, action: &str, resource: impl Into<String>) -> Self {
        let mut ctx = Self {
            user: user.map(str::to_owned),
            action: action.to_owned(),
            resource: resource.into(),
            values: BTreeMap::new(),
        };
        if let Some(user) = user {
            ctx.set(keys::USERNAME, user);
            ctx.set(keys::PRINCIPAL_ARN, &format!("{USER_ARN_PREFIX}{user}"));
        }
        ctx
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The request's values of a canonical key (empty when absent).
    pub fn values(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }

    fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_owned(), vec![value.to_owned()]);
    }

    fn with(mut self, key: &str, value: &str) -> Self {
        self.set(key, value);
        self
    }

    /// `aws:SourceIp`: the client's address.
    pub fn with_source_ip(self, ip: IpAddr) -> Self {
        self.with(keys::SOURCE_IP, &ip.to_string())
    }

    /// `aws:SecureTransport`: whether the request came over TLS.
    pub fn with_secure_transport(self, tls: bool) -> Self {
        self.with(keys::SECURE_TRANSPORT, if tls { "true" } else { "false" })
    }

    /// `aws:CurrentTime` (ISO 8601) and `aws:EpochTime`, from seconds since the epoch.
    pub fn with_current_time(self, epoch_seconds: i64) -> Self {
        self.with(keys::CURRENT_TIME, &keys::format_date(epoch_seconds))
            .with(keys::EPOCH_TIME, &epoch_seconds.to_string())
    }

    /// `aws:UserAgent`.
    pub fn with_user_agent(self, agent: &str) -> Self {
        self.with(keys::USER_AGENT, agent)
    }

    /// `aws:Referer`.
    pub fn with_referer(self, referer: &str) -> Self {
        self.with(keys::REFERER, referer)
    }

    /// `s3:prefix` of a listing (set when the request has a prefix parameter, even empty).
    pub fn with_prefix(self, prefix: &str) -> Self {
        self.with(keys::PREFIX, prefix)
    }

    /// `s3:delimiter` of a listing.
    pub fn with_delimiter(self, delimiter: &str) -> Self {
        self.with(keys::DELIMITER, delimiter)
    }

    /// `s3:max-keys` of a listing (as the request gave it).
    pub fn with_max_keys(self, max_keys: u64) -> Self {
        self.with(keys::MAX_KEYS, &max_keys.to_string())
    }

    /// `s3:x-amz-acl`: the canned ACL header.
    pub fn with_acl(self, acl: &str) -> Self {
        self.with(keys::ACL, acl)
    }

    /// `s3:ExistingObjectTag/<key>`: a tag of the object the request acts on.
    pub fn with_existing_object_tag(self, key: &str, value: &str) -> Self {
        self.with(&format!("{}{key}", keys::EXISTING_OBJECT_TAG), value)
    }

    /// `s3:RequestObjectTag/<key>`, and `key` added to `s3:RequestObjectTagKeys`: a tag the
    /// request sets (x-amz-tagging, PutObjectTagging).
    pub fn with_request_object_tag(mut self, key: &str, value: &str) -> Self {
        self.set(&format!("{}{key}", keys::REQUEST_OBJECT_TAG), value);
        let keys = self
            .values
            .entry(keys::REQUEST_OBJECT_TAG_KEYS.to_owned())
            .or_default();
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
        self
    }

    /// `s3:VersionId`: the version the request names.
    pub fn with_version_id(self, version_id: &str) -> Self {
        self.with(keys::VERSION_ID, version_id)
    }

    /// `s3:x-amz-copy-source`: `bucket/key` a copy reads.
    pub fn with_copy_source(self, source: &str) -> Self {
        self.with(keys::COPY_SOURCE, source)
    }

    /// `s3:x-amz-metadata-directive` of a copy (`COPY` or `REPLACE`).
    pub fn with_metadata_directive(self, directive: &str) -> Self {
        self.with(keys::METADATA_DIRECTIVE, directive)
    }

    /// `s3:x-amz-storage-class`.
    pub fn with_storage_class(self, class: &str) -> Self {
        self.with(keys::STORAGE_CLASS, class)
    }

    /// `s3:x-amz-content-sha256` as the request sent it.
    pub fn with_content_sha256(self, value: &str) -> Self {
        self.with(keys::CONTENT_SHA256, value)
    }

    /// `s3:signatureversion` (`AWS4-HMAC-SHA256`).
    pub fn with_signature_version(self, version: &str) -> Self {
        self.with(keys::SIGNATURE_VERSION, version)
    }

    /// `s3:authType` (`REST-HEADER`, `REST-QUERY-STRING` or `POST`).
    pub fn with_auth_type(self, auth_type: &str) -> Self {
        self.with(keys::AUTH_TYPE, auth_type)
    }

    fn lookup<'a>(&'a self) -> impl Fn(&str) -> Option<&'a str> + 'a {
        |k: &str| self.values(k).first().map(String::as_str)
    }
}

impl PrincipalMatch {
    /// Whether the statement is about this caller.
    fn matches(&self, user: Option<&str>) -> bool {
        let listed = match &self.principals {
            Principals::Everyone => true,
            Principals::Users(users) => user.is_some_and(|u| users.contains(u)),
        };
        listed != self.negated
    }
}

impl PatternList {
    fn matches(&self, text: &str, ctx: &RequestContext, fold: bool) -> bool {
        let any = self
            .patterns
            .iter()
            .any(|p| p.matches(text, ctx.lookup(), fold));
        any != self.negated
    }
}

impl Statement {
    /// Whether the statement applies to the request. A statement using a policy variable the
    /// request has no value for (and that has no default) does not apply: AWS calls such a
    /// statement invalid, and skipping it is the only reading that neither widens a
    /// NotResource or negated condition of an Allow nor guesses a value.
    pub fn applies(&self, ctx: &RequestContext) -> bool {
        self.required_variables
            .iter()
            .all(|k| !ctx.values(k).is_empty())
            && self
                .principal
                .as_ref()
                .is_none_or(|p| p.matches(ctx.user()))
            && self.actions.matches(ctx.action(), ctx, true)
            && self.resources.matches(ctx.resource(), ctx, false)
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

impl Policy {
    /// This policy's decision alone.
    pub fn evaluate(&self, ctx: &RequestContext) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if statement.applies(ctx) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// The decision of a request by the user of `identity` (their identity policies; none for an
/// anonymous caller) on a bucket with `bucket` policy: an explicit deny in any wins, else an
/// allow in any, else an implicit deny (one account, as AWS documents it).
pub fn authorize(ctx: &RequestContext, identity: &[&Policy], bucket: Option<&Policy>) -> Decision {
    let mut allowed = false;
    for policy in identity.iter().copied().chain(bucket) {
        match policy.evaluate(ctx) {
            Decision::ExplicitDeny => return Decision::ExplicitDeny,
            Decision::Allow => allowed = true,
            Decision::ImplicitDeny => {}
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(principal: &str) -> Policy {
        let doc = format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", {principal},
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}}}"#
        );
        Policy::parse_bucket(doc.as_bytes(), "b").unwrap()
    }

    fn decide(p: &Policy, user: Option<&str>) -> Decision {
        p.evaluate(&RequestContext::new(
            user,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
        ))
    }

    #[test]
    fn principal_forms() {
        for everyone in [
            r#""Principal": "*""#,
            r#""Principal": {"AWS": "*"}"#,
            r#""Principal": {"AWS": ["bob", "*"]}"#,
        ] {
            let p = policy(everyone);
            assert_eq!(decide(&p, None), Decision::Allow, "{everyone}");
            assert_eq!(decide(&p, Some("alice")), Decision::Allow, "{everyone}");
        }
        for alice in [
            r#""Principal": {"AWS": "alice"}"#,
            r#""Principal": {"AWS": "arn:aws:iam::percore:user/alice"}"#,
            r#""Principal": {"AWS": ["bob", "alice"]}"#,
        ] {
            let p = policy(alice);
            assert_eq!(decide(&p, Some("alice")), Decision::Allow, "{alice}");
            assert_eq!(decide(&p, Some("Alice")), Decision::ImplicitDeny, "{alice}");
            assert_eq!(decide(&p, Some("carol")), Decision::ImplicitDeny, "{alice}");
            assert_eq!(decide(&p, None), Decision::ImplicitDeny, "{alice}");
        }
        // percore user names may hold `/` and `:`: the whole rest of the ARN is the name.
        let odd = policy(r#""Principal": {"AWS": ["arn:aws:iam::percore:user/team/a:b", "c/d"]}"#);
        assert_eq!(decide(&odd, Some("team/a:b")), Decision::Allow);
        assert_eq!(decide(&odd, Some("c/d")), Decision::Allow);
        assert_eq!(decide(&odd, Some("a:b")), Decision::ImplicitDeny);
        let not_bob = policy(r#""NotPrincipal": {"AWS": "bob"}"#);
        assert_eq!(decide(&not_bob, None), Decision::Allow);
        assert_eq!(decide(&not_bob, Some("alice")), Decision::Allow);
        assert_eq!(decide(&not_bob, Some("bob")), Decision::ImplicitDeny);
    }

    #[test]
    fn actions_fold_case_resources_do_not() {
        let p = policy(r#""Principal": "*""#);
        let get =
            |action: &str, resource: &str| p.evaluate(&RequestContext::new(None, action, resource));
        assert_eq!(get("S3:GETOBJECT", "arn:aws:s3:::b/k"), Decision::Allow);
        assert_eq!(
            get("s3:GetObjectVersion", "arn:aws:s3:::b/k"),
            Decision::ImplicitDeny
        );
        assert_eq!(
            get("s3:GetObject", "arn:aws:s3:::B/k"),
            Decision::ImplicitDeny
        );
        assert_eq!(
            get("s3:GetObject", "ARN:aws:s3:::b/k"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn context_keys() {
        let ctx = RequestContext::new(Some("alice"), "s3:PutObject", "arn:aws:s3:::b/k")
            .with_current_time(1_700_000_000)
            .with_request_object_tag("a", "1")
            .with_request_object_tag("b", "2")
            .with_request_object_tag("a", "3");
        assert_eq!(ctx.values(keys::CURRENT_TIME), ["2023-11-14T22:13:20Z"]);
        assert_eq!(ctx.values(keys::EPOCH_TIME), ["1700000000"]);
        assert_eq!(ctx.values(keys::REQUEST_OBJECT_TAG_KEYS), ["a", "b"]);
        assert_eq!(ctx.values("s3:RequestObjectTag/a"), ["3"]);
        assert_eq!(ctx.values(keys::USERNAME), ["alice"]);
        assert_eq!(
            ctx.values(keys::PRINCIPAL_ARN),
            ["arn:aws:iam::percore:user/alice"]
        );
        let anon = RequestContext::new(None, "s3:GetObject", "arn:aws:s3:::b/k");
        assert!(anon.values(keys::USERNAME).is_empty());
    }

    #[test]
    fn a_statement_with_an_unresolved_variable_does_not_apply() {
        let doc = br#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "NotResource": "arn:aws:s3:::b/home/${aws:username}/*"},
            {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::b/*",
             "Condition": {"StringNotEquals": {"s3:prefix": "${aws:username}"}}},
            {"Effect": "Allow", "Principal": "*", "Action": "s3:DeleteObject",
             "Resource": "arn:aws:s3:::b/${aws:username, 'guest'}/*"}]}"#;
        let p = Policy::parse_bucket(doc, "b").unwrap();
        let anon = |action: &str, key: &str| {
            p.evaluate(&RequestContext::new(
                None,
                action,
                format!("arn:aws:s3:::b/{key}"),
            ))
        };
        // Without a user name neither the NotResource nor the negated condition widens the
        // Allow to everything.
        assert_eq!(anon("s3:GetObject", "x"), Decision::ImplicitDeny);
        assert_eq!(anon("s3:PutObject", "x"), Decision::ImplicitDeny);
        // A default makes the variable resolve.
        assert_eq!(anon("s3:DeleteObject", "guest/x"), Decision::Allow);
        assert_eq!(anon("s3:DeleteObject", "alice/x"), Decision::ImplicitDeny);
        let alice = |action: &str, key: &str| {
            p.evaluate(&RequestContext::new(
                Some("alice"),
                action,
                format!("arn:aws:s3:::b/{key}"),
            ))
        };
        assert_eq!(alice("s3:GetObject", "x"), Decision::Allow);
        assert_eq!(
            alice("s3:GetObject", "home/alice/x"),
            Decision::ImplicitDeny
        );
        assert_eq!(alice("s3:PutObject", "x"), Decision::Allow);
        assert_eq!(alice("s3:DeleteObject", "alice/x"), Decision::Allow);
    }

    #[test]
    fn a_deny_wins_whatever_the_statement_order() {
        let doc = br#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}]}"#;
        let p = Policy::parse_bucket(doc, "b").unwrap();
        assert_eq!(decide(&p, Some("alice")), Decision::ExplicitDeny);
        let mut reversed = p.clone();
        reversed.statements.reverse();
        assert_eq!(decide(&reversed, Some("alice")), Decision::ExplicitDeny);
    }
}
