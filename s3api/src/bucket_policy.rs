//! Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus, the stored record,
//! and the cache the access gate (`authz`) reads policies through.
//!
//! The policy is one metadata record, `R` ‖ scope ‖ `\0` ‖ `policy` (`bucket_config`), on the
//! bucket record's replicas: format byte 1 ‖ the document as the owner sent it (UTF-8, at most
//! the policy crate's 20 KiB). Keyed by the bucket's scope, it dies with its incarnation: the
//! lifecycle pass reclaims it with the bucket's other `R` records, and a bucket re-created
//! under the same name starts without a policy.
//!
//! Put validates with the `policy` crate (`MalformedPolicy`, 400, with the crate's message:
//! what is wrong and where), then refuses a principal naming no user of this gateway
//! (`MalformedPolicy` "Invalid principal in policy", as AWS) and a policy testing a key the
//! gateway does not supply: `s3:ExistingObjectTag/…` and `s3:RequestObjectTag…` (the tags
//! of PutObjectTagging arrive in a body the gate never sees), `NotImplemented` — a Deny on a
//! key that is never there would never apply. `x-amz-confirm-remove-self-bucket-access` is
//! refused too: these four operations stay the bucket owner's whatever the policy says (a
//! policy cannot lock its owner out, and cannot grant them to anyone else; `authz`).
//!
//! GetBucketPolicyStatus reports `IsPublic` as the crate's [`policy::Policy::is_public`]: an
//! Allow statement for everyone (`*`, or a NotPrincipal) without a condition pinning the
//! caller to fixed values (`aws:SourceIp` without a `/0` block, an exact `aws:username` or
//! `aws:PrincipalArn`).
//!
//! [`State`] caches, per scope, the parsed policy or its absence for [`CACHE_TTL`], at most
//! [`CACHE_ENTRIES_MAX`] scopes and [`CACHE_BYTES_MAX`] bytes of documents (when full, expired
//! entries go, then all). Put/DeleteBucketPolicy drop the scope on the gateway that served
//! them; another gateway of a cluster sees the change within the TTL.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use s3s::dto::{
    DeleteBucketPolicyInput, DeleteBucketPolicyOutput, GetBucketPolicyInput, GetBucketPolicyOutput,
    GetBucketPolicyStatusInput, GetBucketPolicyStatusOutput, PolicyStatus, PutBucketPolicyInput,
    PutBucketPolicyOutput,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::creds::Users;
use crate::live_users::LiveUsers;
use crate::records::{scope_name, Malformed};
use crate::s3::{user_of, Gateway};
use crate::ttl_cache::TtlCache;

const VERSION: u8 = 1;
/// The stored record: the format byte and the largest document the crate accepts.
pub const RECORD_BYTES_MAX: usize = 1 + policy::limits::BUCKET_POLICY_BYTES_MAX;
const _: () = assert!(RECORD_BYTES_MAX < proto::limits::META_VALUE_BYTES_MAX as usize);
/// How long a scope's looked-up policy is used without reading it again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Scopes the cache holds at most.
pub const CACHE_ENTRIES_MAX: usize = 4096;
/// Bytes the cache holds at most, counting a parsed policy as four times its document.
pub const CACHE_BYTES_MAX: usize = 32 << 20;
/// Condition keys (prefixes, lowercase) the gateway does not supply: a policy using one is
/// refused (module docs).
const UNSUPPLIED_KEYS: [&str; 2] = ["s3:existingobjecttag/", "s3:requestobjecttag"];

/// A bucket's policy: the document as given and its parsed form.
#[derive(Debug)]
pub struct Stored {
    pub text: String,
    pub policy: policy::Policy,
}

/// The policy cache and the users principals may name, shared by the gateway's clones.
pub struct State {
    cache: TtlCache<Lookup>,
    users: OnceLock<Arc<LiveUsers>>,
}

impl Default for State {
    fn default() -> State {
        State {
            cache: TtlCache::new(CACHE_TTL, CACHE_ENTRIES_MAX, CACHE_BYTES_MAX),
            users: OnceLock::new(),
        }
    }
}

/// What the cache knows of a scope.
#[derive(Debug, Clone)]
enum Lookup {
    NoPolicy,
    Policy(Arc<Stored>),
}

impl Lookup {
    fn of(stored: Option<Arc<Stored>>) -> Lookup {
        stored.map_or(Lookup::NoPolicy, Lookup::Policy)
    }

    fn stored(self) -> Option<Arc<Stored>> {
        match self {
            Lookup::NoPolicy => None,
            Lookup::Policy(s) => Some(s),
        }
    }
}

fn size_of(scope: &str, lookup: &Lookup) -> usize {
    let policy = match lookup {
        Lookup::NoPolicy => 0,
        Lookup::Policy(s) => 4 * s.text.len() + 256,
    };
    scope.len() + 64 + policy
}

impl State {
    /// The users of this gateway (set once, when the S3 service is built).
    pub fn set_users(&self, users: Arc<LiveUsers>) {
        // A second service over the same gateway has the same users.
        let _ = self.users.set(users);
    }

    /// The users now (they are reloaded when their files change: `live_users`).
    pub fn users(&self) -> Option<Arc<Users>> {
        self.users.get().map(|u| u.current())
    }

    fn get(&self, scope: &str) -> Option<Lookup> {
        self.cache.get(scope)
    }

    fn put(&self, scope: &str, lookup: Lookup) {
        let size = size_of(scope, &lookup);
        self.cache.put(scope, lookup, size);
    }

    /// Drops `scope`'s lookup (its policy changed here).
    pub fn forget(&self, scope: &str) {
        self.cache.forget(scope);
    }
}

/// The configuration record's name (`bucket_config`): `R` ‖ scope ‖ 0 ‖ `policy`.
const CONFIG_NAME: &str = "policy";

/// Format 1: version u8 ‖ the document's UTF-8 bytes.
pub fn encode(text: &str) -> Bytes {
    assert!(text.len() <= policy::limits::BUCKET_POLICY_BYTES_MAX);
    let mut b = BytesMut::with_capacity(1 + text.len());
    b.put_u8(VERSION);
    b.put_slice(text.as_bytes());
    b.freeze()
}

/// The document of a stored record.
pub fn decode(b: &[u8]) -> Result<String, Malformed> {
    match b.split_first() {
        Some((&VERSION, text)) if text.len() <= policy::limits::BUCKET_POLICY_BYTES_MAX => {
            String::from_utf8(text.to_vec()).map_err(|_| Malformed("policy: not UTF-8"))
        }
        Some((&VERSION, _)) => Err(Malformed("policy: too long")),
        Some(_) => Err(Malformed("policy: unknown format")),
        None => Err(Malformed("policy: empty")),
    }
}

fn malformed(message: &str) -> S3Error {
    s3_error!(MalformedPolicy, "{message}")
}

/// The policy `text` for `bucket`, parsed and checked against what this gateway supplies
/// (module docs).
pub fn validate(text: &str, bucket: &str, users: Option<&Users>) -> S3Result<policy::Policy> {
    let parsed = policy::Policy::parse_bucket(text.as_bytes(), bucket)
        .map_err(|e| malformed(&e.to_string()))?;
    if let Some(unknown) = parsed
        .named_users()
        .into_iter()
        .find(|name| !users.is_some_and(|u| u.has_name(name)))
    {
        return Err(malformed(&format!(
            "Invalid principal in policy: no user named \"{unknown}\""
        )));
    }
    if uses_unsupplied_keys(text, &parsed) {
        return Err(s3_error!(NotImplemented, "{UNSUPPLIED_MESSAGE}"));
    }
    Ok(parsed)
}

/// Why a policy using a key of [`UNSUPPLIED_KEYS`] is refused.
pub(crate) const UNSUPPLIED_MESSAGE: &str = "percore does not supply the condition keys \
    s3:ExistingObjectTag/<key>, s3:RequestObjectTag/<key> and s3:RequestObjectTagKeys to \
    policies";

/// Whether the policy `text` (parsed: `parsed`) tests a key the gateway does not supply, in a
/// condition or a policy variable (bucket and identity policies alike).
pub(crate) fn uses_unsupplied_keys(text: &str, parsed: &policy::Policy) -> bool {
    let lowered = text.to_ascii_lowercase();
    let in_variable = UNSUPPLIED_KEYS
        .iter()
        .any(|k| lowered.contains(&format!("${{{k}")));
    let in_condition = parsed.keys_used().into_iter().any(|key| {
        let key = key.to_ascii_lowercase();
        UNSUPPLIED_KEYS.iter().any(|k| key.starts_with(k))
    });
    in_variable || in_condition
}

impl Gateway {
    /// A scope's policy (`None`: none), through the cache.
    pub(crate) async fn bucket_policy(&self, scope: &str) -> S3Result<Option<Arc<Stored>>> {
        if let Some(lookup) = self.policies.get(scope) {
            return Ok(lookup.stored());
        }
        let stored = self.read_policy(scope).await?.map(Arc::new);
        self.policies.put(scope, Lookup::of(stored.clone()));
        Ok(stored)
    }

    async fn read_policy(&self, scope: &str) -> S3Result<Option<Stored>> {
        let Some(stored) = self.config_read(scope, CONFIG_NAME).await? else {
            return Ok(None);
        };
        let text = decode(&stored).map_err(|e| s3_error!(e, InternalError))?;
        // Stored only after validation: a document the crate no longer accepts is a fault.
        let policy = policy::Policy::parse_bucket(text.as_bytes(), scope_name(scope))
            .map_err(|e| s3_error!(InternalError, "the stored bucket policy is refused: {e}"))?;
        Ok(Some(Stored { text, policy }))
    }

    pub(crate) async fn policy_put(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        if input.confirm_remove_self_bucket_access == Some(true) {
            return Err(s3_error!(
                NotImplemented,
                "the bucket owner always keeps access to the bucket's policy"
            ));
        }
        let parsed = validate(
            &input.policy,
            &input.bucket,
            self.policies.users().as_deref(),
        )?;
        self.check_public_policy(&scope, &parsed).await?;
        let stored = self
            .config_put(&scope, CONFIG_NAME, &encode(&input.policy))
            .await;
        self.policies.forget(&scope);
        stored?;
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    pub(crate) async fn policy_get(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let stored = self
            .read_policy(&scope)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy))?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(stored.text),
        }))
    }

    pub(crate) async fn policy_delete(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        self.config_delete(&scope, CONFIG_NAME).await?;
        self.policies.forget(&scope);
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    pub(crate) async fn policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let stored = self
            .read_policy(&scope)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy))?;
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(stored.policy.is_public()),
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::User;

    fn users() -> Users {
        let mut u = Users::default();
        u.add(User {
            name: "alice".into(),
            access_key: "ALICEACCESSKEY000001".into(),
            secret_key: "alice-secret-key-000000000001".into(),
        })
        .unwrap();
        u
    }

    #[test]
    fn record_round_trip_and_refusals() {
        let text = r#"{"Version":"2012-10-17","Statement":[]}"#;
        assert_eq!(decode(&encode(text)).unwrap(), text);
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, b'{']).is_err());
        assert!(decode(&[1, 0xff]).is_err());
        assert_eq!(
            &crate::bucket_config::config_key("b/00", CONFIG_NAME)[..],
            b"Rb/00\0policy"
        );
    }

    #[test]
    fn validation() {
        let doc = |principal: &str, condition: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{principal},
                "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"{condition}}}]}}"#
            )
        };
        let code = |text: &str| {
            validate(text, "b", Some(&users()))
                .err()
                .map(|e| e.code().as_str().to_owned())
        };
        assert_eq!(code(&doc("\"*\"", "")), None);
        assert_eq!(code(&doc(r#"{"AWS":"alice"}"#, "")), None);
        assert_eq!(
            code(&doc(r#"{"AWS":"arn:aws:iam::percore:user/bob"}"#, "")),
            Some("MalformedPolicy".into())
        );
        assert_eq!(code("{"), Some("MalformedPolicy".into()));
        let tag = r#","Condition":{"StringEquals":{"s3:ExistingObjectTag/class":"secret"}}"#;
        assert_eq!(code(&doc("\"*\"", tag)), Some("NotImplemented".into()));
        let request_tag = r#","Condition":{"Null":{"s3:RequestObjectTagKeys":"true"}}"#;
        assert_eq!(
            code(&doc("\"*\"", request_tag)),
            Some("NotImplemented".into())
        );
        let ip = r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
        assert_eq!(code(&doc("\"*\"", ip)), None);
    }

    #[test]
    fn cache_is_bounded_and_forgets() {
        let state = State::default();
        for i in 0..CACHE_ENTRIES_MAX + 10 {
            state.put(&format!("b{i}"), Lookup::NoPolicy);
        }
        assert!(state.cache.held().0 <= CACHE_ENTRIES_MAX);
        state.put("x", Lookup::NoPolicy);
        assert!(state.get("x").is_some());
        state.forget("x");
        assert!(state.get("x").is_none());
    }
}
